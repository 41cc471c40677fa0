/**
 * The hybrid logical clock (src/core/hlc.ts): the send and receive rules of Kulkarni et al.
 * 2014 as a table, monotonicity whatever the physical clock does, causality across clocks with
 * skew, and refusal of remote timestamps too far ahead or malformed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { compareHlc, DEFAULT_HLC_DRIFT_MS_MAX, HybridLogicalClock, type HlcTimestamp } from '../../src/core/index.js'

/** A clock the test moves by hand. */
function manualClock (startMs = 0): { clock: HybridLogicalClock, set: (ms: number) => void } {
  let nowMs = startMs
  return { clock: new HybridLogicalClock(() => nowMs, { driftMsMax: 1_000 }), set: (ms) => { nowMs = ms } }
}

/** Brings a fresh clock to the state (l, c) through its public interface. */
function clockAt (physicalMs: number, logical: number): { clock: HybridLogicalClock, set: (ms: number) => void } {
  const handle = manualClock(physicalMs)
  handle.clock.now()
  for (let tick = 0; tick < logical; tick++) handle.clock.now()
  assert.deepEqual(handle.clock.last(), [physicalMs, logical])
  return handle
}

describe('compareHlc', () => {
  const cases: Array<[HlcTimestamp, HlcTimestamp, number]> = [
    [[5, 0], [5, 0], 0],
    [[5, 1], [5, 0], 1],
    [[5, 9], [6, 0], -1],
    [[7, 0], [6, 99], 1]
  ]
  for (const [a, b, expected] of cases) {
    it(`${JSON.stringify(a)} vs ${JSON.stringify(b)} is ${expected}`, () => {
      assert.equal(Math.sign(compareHlc(a, b)), expected)
      assert.equal(Math.sign(compareHlc(b, a)), 0 - expected)
    })
  }
})

describe('the paper\'s rules', () => {
  // Send (or local) event at state (l, c) with physical time pt: l' = max(l, pt); c' = l' = l ? c + 1 : 0.
  const sendCases: Array<{ name: string, state: [number, number], clockMs: number, expected: HlcTimestamp }> = [
    { name: 'the clock advanced: physical part follows it, logical resets', state: [100, 3], clockMs: 105, expected: [105, 0] },
    { name: 'the clock stalled: logical ticks', state: [100, 3], clockMs: 100, expected: [100, 4] },
    { name: 'the clock went back: physical part holds, logical ticks', state: [100, 3], clockMs: 90, expected: [100, 4] }
  ]
  for (const { name, state, clockMs, expected } of sendCases) {
    it(`send: ${name}`, () => {
      const { clock, set } = clockAt(...state)
      set(clockMs)
      assert.deepEqual(clock.now(), expected)
      assert.deepEqual(clock.last(), expected)
    })
  }

  // Receive of (l_m, c_m): l' = max(l, l_m, pt); c' = max(c, c_m) + 1 when l' = l = l_m, c + 1 when only l,
  // c_m + 1 when only l_m, else 0.
  const receiveCases: Array<{ name: string, state: [number, number], remote: HlcTimestamp, clockMs: number, expected: HlcTimestamp }> = [
    { name: 'physical time is ahead of both', state: [100, 3], remote: [101, 7], clockMs: 110, expected: [110, 0] },
    { name: 'local and remote tie ahead of physical time', state: [100, 3], remote: [100, 7], clockMs: 90, expected: [100, 8] },
    { name: 'local and remote tie, local logical larger', state: [100, 9], remote: [100, 7], clockMs: 90, expected: [100, 10] },
    { name: 'local is ahead of both', state: [100, 3], remote: [95, 7], clockMs: 90, expected: [100, 4] },
    { name: 'remote is ahead of both', state: [100, 3], remote: [120, 7], clockMs: 110, expected: [120, 8] },
    { name: 'all three tie', state: [100, 3], remote: [100, 5], clockMs: 100, expected: [100, 6] },
    { name: 'local ties physical time, remote behind', state: [100, 3], remote: [99, 5], clockMs: 100, expected: [100, 4] },
    { name: 'remote ties physical time, local behind', state: [100, 3], remote: [105, 5], clockMs: 105, expected: [105, 6] }
  ]
  for (const { name, state, remote, clockMs, expected } of receiveCases) {
    it(`receive: ${name}`, () => {
      const { clock, set } = clockAt(...state)
      set(clockMs)
      assert.equal(clock.observe(remote), true)
      assert.deepEqual(clock.last(), expected)
    })
  }
})

describe('HybridLogicalClock', () => {
  it('issues strictly increasing timestamps whatever the clock does, and each exceeds every one observed', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('now' as const), clockMs: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({ kind: fc.constant('observe' as const), clockMs: fc.integer({ min: 0, max: 10_000 }), remote: fc.tuple(fc.integer({ min: 0, max: 12_000 }), fc.integer({ min: 0, max: 50 })) })
    )
    fc.assert(fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
      let nowMs = 0
      const clock = new HybridLogicalClock(() => nowMs, { driftMsMax: 1_000 })
      let highest: HlcTimestamp = clock.last()
      for (const current of steps) {
        nowMs = current.clockMs
        if (current.kind === 'now') {
          const issued = clock.now()
          assert.ok(compareHlc(issued, highest) > 0, `${JSON.stringify(issued)} after ${JSON.stringify(highest)}`)
          assert.ok(issued[0] >= current.clockMs, 'the physical part never lags the clock')
          highest = issued
        } else {
          const before = clock.last()
          const accepted = clock.observe(current.remote)
          assert.equal(accepted, current.remote[0] - current.clockMs <= 1_000)
          if (accepted) {
            assert.ok(compareHlc(clock.last(), current.remote) > 0)
            assert.ok(compareHlc(clock.last(), before) > 0)
            highest = clock.last()
          } else {
            assert.deepEqual(clock.last(), before)
          }
        }
        assert.deepEqual(clock.last(), highest)
      }
    }), { numRuns: 300 })
  })

  it('keeps causality across clocks with skew: a receive follows its send', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: -500, max: 500 }), { minLength: 3, maxLength: 3 }),
      fc.array(fc.record({ from: fc.nat(2), to: fc.nat(2), advanceMs: fc.nat(20) }), { maxLength: 100 }),
      (skewsMs, messages) => {
        let trueMs = 1_000
        const clocks = skewsMs.map((skewMs) => new HybridLogicalClock(() => trueMs + skewMs))
        for (const { from, to, advanceMs } of messages) {
          trueMs += advanceMs
          const sent = clocks[from].now()
          assert.equal(clocks[to].observe(sent), true)
          assert.ok(compareHlc(clocks[to].now(), sent) > 0)
        }
      }
    ), { numRuns: 200 })
  })

  it('makes now() exceed a remote timestamp ahead of the local clock', () => {
    const { clock } = manualClock(1_000)
    assert.deepEqual(clock.now(), [1_000, 0])
    assert.equal(clock.observe([1_500, 42]), true)
    assert.deepEqual(clock.now(), [1_500, 44])
  })

  it('resets the logical part once the physical clock passes the physical part', () => {
    const { clock, set } = manualClock(1_000)
    clock.observe([1_500, 42])
    set(1_200)
    assert.deepEqual(clock.now(), [1_500, 44])
    set(1_501)
    assert.deepEqual(clock.now(), [1_501, 0])
    assert.deepEqual(clock.now(), [1_501, 1])
  })

  it('refuses a remote further than driftMsMax ahead and changes nothing', () => {
    const { clock } = manualClock(1_000)
    clock.now()
    assert.equal(clock.observe([2_001, 0]), false)
    assert.deepEqual(clock.last(), [1_000, 0])
    assert.equal(clock.observe([2_000, 0]), true, 'exactly driftMsMax ahead is accepted')
    assert.deepEqual(clock.last(), [2_000, 1])
  })

  it('defaults driftMsMax to a minute', () => {
    assert.equal(DEFAULT_HLC_DRIFT_MS_MAX, 60_000)
    const clock = new HybridLogicalClock(() => 0)
    assert.equal(clock.observe([60_001, 0]), false)
    assert.equal(clock.observe([60_000, 0]), true)
  })

  it('refuses malformed remote timestamps', () => {
    const malformed: unknown[] = [
      [-1, 0], [0, -1], [1.5, 0], [0, 0.5], [Number.NaN, 0], [0, Number.POSITIVE_INFINITY],
      [Number.MAX_SAFE_INTEGER + 1, 0], [0, Number.MAX_SAFE_INTEGER], ['1', 0], [1], [1, 2, 3], null, {}
    ]
    const { clock } = manualClock(1_000)
    clock.now()
    for (const remote of malformed) {
      assert.equal(clock.observe(remote as HlcTimestamp), false, JSON.stringify(remote))
      assert.deepEqual(clock.last(), [1_000, 0])
    }
  })

  it('takes whole milliseconds from a fractional clock', () => {
    const clock = new HybridLogicalClock(() => 1_234.9)
    assert.deepEqual(clock.now(), [1_234, 0])
  })

  it('rejects a bad driftMsMax and a bad clock as programmer errors', () => {
    assert.throws(() => new HybridLogicalClock(() => 0, { driftMsMax: -1 }), /assertion failed/)
    assert.throws(() => new HybridLogicalClock(() => Number.NaN).now(), /assertion failed/)
    assert.throws(() => new HybridLogicalClock(() => -5).now(), /assertion failed/)
  })
})
