/**
 * The gateway's health state machine (`UpstreamSet`) and retry budget, on virtual time: active
 * check thresholds, outlier ejection that grows on repeat and is forgiven over time, the cap on
 * ejected upstreams, slow start, panic mode, and membership; and p2c's peak EWMA latency.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_HEALTH_POLICY, PeakEwma, RetryBudget, SLOW_START_STEPS, UpstreamSet, type HealthPolicy, type UpstreamEvent } from '../../src/gateway/balancers/index.js'

const THREE = [{ id: 'a', weight: 1 }, { id: 'b', weight: 2 }, { id: 'c', weight: 1 }]

function setWith (policy: Partial<HealthPolicy> = {}, specs = THREE): { set: UpstreamSet, events: UpstreamEvent[] } {
  const events: UpstreamEvent[] = []
  const set = new UpstreamSet({ ...DEFAULT_HEALTH_POLICY, slowStartWindowMs: 0, ...policy }, (event) => events.push(event))
  set.setUpstreams(specs, 0)
  return { set, events }
}
const serving = (set: UpstreamSet, nowMs: number): string[] => set.eligible(nowMs).upstreams.map((spec) => spec.id)
const weightOf = (set: UpstreamSet, id: string, nowMs: number): number | undefined => set.eligible(nowMs).upstreams.find((spec) => spec.id === id)?.weight

describe('UpstreamSet', () => {
  it('starts with every upstream serving at full weight, in configuration order', () => {
    const { set } = setWith()
    assert.deepEqual(set.eligible(0).upstreams, THREE)
    assert.equal(set.eligible(0).panicking, false)
  })

  it('takes an upstream out after unhealthyThreshold failed checks in a row, and back after healthyThreshold passed', () => {
    const { set, events } = setWith({ unhealthyThreshold: 3, healthyThreshold: 2 })
    set.recordCheck('b', false, 1)
    set.recordCheck('b', false, 2)
    set.recordCheck('b', true, 3) // a pass breaks the streak
    set.recordCheck('b', false, 4)
    set.recordCheck('b', false, 5)
    assert.deepEqual(serving(set, 5), ['a', 'b', 'c'], 'two failures in a row are not three')
    set.recordCheck('b', false, 6)
    assert.deepEqual(serving(set, 6), ['a', 'c'])
    set.recordCheck('b', true, 7)
    assert.deepEqual(serving(set, 7), ['a', 'c'], 'one pass is not two')
    set.recordCheck('b', true, 8)
    assert.deepEqual(serving(set, 8), ['a', 'b', 'c'])
    assert.deepEqual(events.map((event) => event.kind), ['unhealthy', 'healthy'])
  })

  it('ejects after consecutive 5xx, for base × times ejected, capped, and a success resets the streak', () => {
    const { set, events } = setWith({ consecutive5xx: 3, baseEjectionMs: 1_000, ejectionMsMax: 2_500, ejectionPercentMax: 100 })
    set.recordResult('a', '5xx', 0)
    set.recordResult('a', '5xx', 0)
    set.recordResult('a', 'success', 0)
    set.recordResult('a', '5xx', 0)
    set.recordResult('a', '5xx', 0)
    assert.deepEqual(serving(set, 0), ['a', 'b', 'c'])
    set.recordResult('a', '5xx', 10)
    assert.deepEqual(serving(set, 10), ['b', 'c'])
    assert.deepEqual(serving(set, 1_009), ['b', 'c'])
    assert.deepEqual(serving(set, 1_010), ['a', 'b', 'c'], 'back after 1 × base')
    for (let i = 0; i < 3; i++) set.recordResult('a', '5xx', 1_100)
    assert.deepEqual(serving(set, 3_099), ['b', 'c'], 'the second ejection lasts 2 × base')
    assert.deepEqual(serving(set, 3_100), ['a', 'b', 'c'])
    for (let i = 0; i < 3; i++) set.recordResult('a', '5xx', 3_200)
    const third = events.filter((event) => event.kind === 'ejected').at(-1)
    assert.ok(third?.kind === 'ejected')
    assert.equal(third.forMs, 2_500, 'the third would be 3 × base, capped at ejectionMsMax')
    assert.deepEqual(events.filter((event) => event.kind === 'ejected').map((event) => event.kind === 'ejected' ? event.times : 0), [1, 2, 3])
  })

  it('forgives one past ejection per base period in service', () => {
    const { set, events } = setWith({ consecutiveConnectFailures: 1, baseEjectionMs: 1_000, ejectionPercentMax: 100 })
    set.recordResult('a', 'connect-failure', 0) // ejected until 1 000 (1st)
    set.recordResult('a', 'timeout', 1_000) // back at 1 000, ejected again at once: 2nd, until 3 000
    assert.deepEqual(serving(set, 2_999), ['b', 'c'])
    assert.deepEqual(serving(set, 3_000), ['a', 'b', 'c'])
    // 2.5 base periods in service forgive two ejections: the next counts as the first again.
    set.recordResult('a', 'connect-failure', 5_500)
    const last = events.filter((event) => event.kind === 'ejected').at(-1)
    assert.ok(last?.kind === 'ejected')
    assert.equal(last.times, 1)
    assert.equal(last.forMs, 1_000)
  })

  it('never ejects more than ejectionPercentMax of the upstreams, but always may eject one', () => {
    const { set, events } = setWith({ consecutive5xx: 1, ejectionPercentMax: 10, baseEjectionMs: 1_000 })
    set.recordResult('a', '5xx', 0)
    set.recordResult('b', '5xx', 0)
    assert.deepEqual(serving(set, 0), ['b', 'c'], '10% of 3 rounds down to 0, yet one may go')
    assert.deepEqual(events.map((event) => event.kind), ['ejected', 'ejection-refused'])
    const half = setWith({ consecutive5xx: 1, ejectionPercentMax: 50 }, [1, 2, 3, 4].map((index) => ({ id: `u${index}`, weight: 1 })))
    for (const id of ['u1', 'u2', 'u3']) half.set.recordResult(id, '5xx', 0)
    assert.deepEqual(serving(half.set, 0), ['u3', 'u4'])
  })

  it('ramps a returning upstream from the minimum weight to full over the slow-start window', () => {
    const { set } = setWith({ consecutive5xx: 1, baseEjectionMs: 1_000, ejectionPercentMax: 100, slowStartWindowMs: 1_000, slowStartMinWeightPercent: 10, slowStartAggression: 1 })
    set.recordResult('b', '5xx', 0)
    assert.equal(weightOf(set, 'b', 500), undefined)
    const stepMs = 1_000 / SLOW_START_STEPS
    assert.equal(weightOf(set, 'b', 1_000), 2 * 0.1, 'back at the minimum share of its weight 2')
    assert.equal(weightOf(set, 'b', 1_000 + 5 * stepMs), 2 * 0.5)
    assert.equal(weightOf(set, 'b', 1_000 + 9 * stepMs + 1), 2 * 0.9)
    assert.equal(weightOf(set, 'b', 2_000), 2, 'full weight after the window')
    assert.equal(weightOf(set, 'a', 1_500), 1, 'the others were never slowed')
    const before = set.eligible(2_000).generation
    assert.equal(set.eligible(10_000).generation, before, 'nothing changes once at full weight')
  })

  it('ramps faster with a higher aggression', () => {
    const { set } = setWith({ consecutive5xx: 1, baseEjectionMs: 1_000, ejectionPercentMax: 100, slowStartWindowMs: 1_000, slowStartMinWeightPercent: 1, slowStartAggression: 2 })
    set.recordResult('a', '5xx', 0)
    assert.ok(Math.abs((weightOf(set, 'a', 1_250) as number) - Math.sqrt(0.2)) < 1e-9, '(0.2)^(1/2) at step 2 of 10')
  })

  it('panics below the threshold and balances over every upstream, and stops panicking when enough come back', () => {
    const { set, events } = setWith({ unhealthyThreshold: 1, healthyThreshold: 1, panicThresholdPercent: 50 })
    set.recordCheck('a', false, 1)
    assert.deepEqual(serving(set, 1), ['b', 'c'], '2 of 3 serve: 67% is not below 50%')
    set.recordCheck('b', false, 2)
    const panic = set.eligible(2)
    assert.equal(panic.panicking, true)
    assert.deepEqual(panic.upstreams.map((spec) => spec.id), ['a', 'b', 'c'], 'panic: all of them, at configured weight')
    set.recordCheck('a', true, 3)
    assert.equal(set.eligible(3).panicking, false)
    assert.deepEqual(serving(set, 3), ['a', 'c'])
    assert.deepEqual(events.filter((event) => event.kind === 'panic').map((event) => event.kind === 'panic' && event.panicking), [true, false])
  })

  it('with panic mode off, an all-unhealthy set is empty', () => {
    const { set } = setWith({ unhealthyThreshold: 1, panicThresholdPercent: 0 })
    for (const { id } of THREE) set.recordCheck(id, false, 1)
    assert.deepEqual(serving(set, 1), [])
  })

  it('takes out upstreams whose node the membership view holds dead or left, and keeps suspects', () => {
    const { set } = setWith()
    set.setMembership('a', 'suspect', 1)
    set.setMembership('b', 'dead', 1)
    set.setMembership('c', 'left', 1)
    assert.deepEqual(set.eligible(1).panicking, true, 'one of three serves: panic')
    const relaxed = setWith({ panicThresholdPercent: 0 })
    relaxed.set.setMembership('a', 'suspect', 1)
    relaxed.set.setMembership('b', 'dead', 1)
    assert.deepEqual(serving(relaxed.set, 1), ['a', 'c'])
    relaxed.set.setMembership('b', 'alive', 2)
    assert.deepEqual(serving(relaxed.set, 2), ['a', 'b', 'c'])
  })

  it('keeps health across setUpstreams, and a new upstream starts slow', () => {
    const { set } = setWith({ unhealthyThreshold: 1, slowStartWindowMs: 1_000, panicThresholdPercent: 0 })
    set.recordCheck('a', false, 1)
    set.setUpstreams([...THREE, { id: 'd', weight: 4 }], 10)
    assert.deepEqual(serving(set, 10), ['b', 'c', 'd'])
    assert.equal(weightOf(set, 'd', 10), 0.4)
    assert.equal(weightOf(set, 'b', 10), 2, 'upstreams of the first set start at full weight')
  })

  it('refuses a non-positive weight or a duplicate id', () => {
    const { set } = setWith()
    assert.throws(() => { set.setUpstreams([{ id: 'a', weight: 0 }], 0) }, RangeError)
    assert.throws(() => { set.setUpstreams([{ id: 'a', weight: 1 }, { id: 'a', weight: 1 }], 0) }, RangeError)
  })
})

describe('RetryBudget', () => {
  it('allows retryPercentMax of the requests plus a per-second floor', () => {
    const budget = new RetryBudget({ retryPercentMax: 20, retriesPerSecondMin: 2, tokensMax: 100 }, 0)
    for (let i = 0; i < 100; i++) budget.deposit()
    let allowed = 0
    while (budget.tryWithdraw(0)) allowed++
    assert.equal(allowed, 20 + 2, '20% of 100 requests, plus the floor of 2')
    assert.equal(budget.tryWithdraw(499), false, 'the floor refills at 2 per second: one needs 500 ms')
    assert.equal(budget.tryWithdraw(500), true)
  })

  it('grants a fractional floor rate over time (0.5 per second: one every 2 s)', () => {
    const budget = new RetryBudget({ retryPercentMax: 0, retriesPerSecondMin: 0.5, tokensMax: 100 }, 0)
    let granted = 0
    for (let second = 1; second <= 60; second++) if (budget.tryWithdraw(second * 1_000)) granted++
    assert.equal(granted, 30)
  })

  it('caps saved-up deposits at tokensMax', () => {
    const budget = new RetryBudget({ retryPercentMax: 50, retriesPerSecondMin: 0, tokensMax: 5 }, 0)
    for (let i = 0; i < 1_000; i++) budget.deposit()
    assert.equal(budget.available(0), 5)
  })
})

describe('PeakEwma', () => {
  const near = (actual: number, expected: number, what: string): void => { assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`) }

  it('starts at the default, jumps to a peak at once, and averages down over the decay time', () => {
    const ewma = new PeakEwma({ decayMs: 1_000, defaultRttMs: 30, errorPenaltyMs: 500 })
    assert.equal(ewma.estimateMs('a', 0), 30)
    ewma.observe('a', 2, false, 0)
    assert.equal(ewma.estimateMs('a', 0), 2)
    ewma.observe('a', 50, false, 10)
    assert.equal(ewma.estimateMs('a', 10), 50, 'a slower answer is taken whole')
    ewma.observe('a', 1, false, 1_010)
    near(ewma.estimateMs('a', 1_010), 50 * Math.exp(-1) + 1 * (1 - Math.exp(-1)), 'a faster one a second later moves it by 1 - e^-1')
  })

  it('decays toward zero while an upstream gets no answers, so it is tried again', () => {
    const ewma = new PeakEwma({ decayMs: 1_000, defaultRttMs: 30, errorPenaltyMs: 500 })
    ewma.observe('slow', 50, false, 0)
    near(ewma.estimateMs('slow', 2_000), 50 * Math.exp(-2), 'two time constants later')
    assert.ok(ewma.load('slow', 0, 5_000) < ewma.load('slow', 0, 0))
  })

  it('lets the default estimate of an upstream never heard from decay too, so it is tried in the end', () => {
    const ewma = new PeakEwma({ decayMs: 1_000, defaultRttMs: 30, errorPenaltyMs: 500 })
    assert.equal(ewma.estimateMs('new', 0), 30)
    near(ewma.estimateMs('new', 3_000), 30 * Math.exp(-3), 'three time constants after it was first weighed')
  })

  it('takes the wait of a first request as a lower bound until the first answer replaces it', () => {
    const ewma = new PeakEwma({ decayMs: 1_000, defaultRttMs: 1, errorPenaltyMs: 500 })
    ewma.sent('new', 100)
    assert.equal(ewma.estimateMs('new', 140), 40, 'waiting 40 ms for its first answer')
    ewma.observe('new', 3, false, 150)
    assert.equal(ewma.estimateMs('new', 150), 3, 'the first answer replaces it')
    ewma.sent('new', 200)
    assert.equal(ewma.estimateMs('new', 300) < 3, true, 'later requests do not count their wait')
  })

  it('counts an error as at least the penalty, and weighs the estimate by in-flight + 1', () => {
    const ewma = new PeakEwma({ decayMs: 1_000, defaultRttMs: 30, errorPenaltyMs: 500 })
    ewma.observe('failing', 1, true, 0)
    assert.equal(ewma.estimateMs('failing', 0), 500, 'a fast failure does not look attractive')
    ewma.observe('b', 4, false, 0)
    assert.equal(ewma.load('b', 0, 0), 4)
    assert.equal(ewma.load('b', 3, 0), 16)
  })
})
