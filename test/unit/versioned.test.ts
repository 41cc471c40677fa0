/**
 * Per-key versioned state (src/store/versioned.ts), the DVV sets under the `causal` and
 * `eventual` levels. Random histories of writes at three nodes, with stale client contexts and
 * random anti-entropy merges between them, feed the CRDT laws (commutative, associative,
 * idempotent merge), the no-resurrection and concurrency properties, and convergence under the
 * sibling bound; then the wire form, stamps and last-writer order.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeCanonical, encodeCanonical, HybridLogicalClock } from '../../src/core/index.js'
import {
  applyWrite, compareStamps, covers, decodeVersionedState, EMPTY_VERSIONED_STATE, encodeVersionedState, encodeVersionedStateGeneric, formatStamp, versionedStateProblem,
  joinStates, joinVectors, lastWriter, mergeStates, nextDot, parseStamp, STATE_DIGEST_BYTES, stateDigest, statesEqual, StoreError,
  KEY_BYTES_WIRE_MAX, VERSION_VECTOR_NODES_WIRE_MAX, VERSIONED_SIBLINGS_WIRE_MAX, versionedStateSchema, type Dot, type Sibling, type Stamp, type VersionedState, type VersionVector
} from '../../src/store/index.js'
import { mutate, mutations } from '../support/mutations.js'

const NODES = ['a', 'b', 'c'] as const
const UNBOUNDED_SIBLINGS = 1_024

type Step =
  | { kind: 'write', at: number, mode: 'lww' | 'sibling', contextFrom: number, tombstone: boolean, advanceMs: number, arbitraryMs: number }
  | { kind: 'merge', from: number, into: number }

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    at: fc.nat(NODES.length - 1),
    mode: fc.constantFrom('lww' as const, 'sibling' as const),
    // Which earlier state the client read its context from: stale contexts make concurrent writes.
    contextFrom: fc.nat(),
    tombstone: fc.boolean(),
    advanceMs: fc.nat(3),
    /** The physical part when stamps are arbitrary rather than from the node's clock. */
    arbitraryMs: fc.nat(20)
  }),
  fc.record({ kind: fc.constant('merge' as const), from: fc.nat(NODES.length - 1), into: fc.nat(NODES.length - 1) })
)

interface History {
  /** Each node's state at the end. */
  replicas: VersionedState[]
  /** Every state any node held, in order: the pool the laws are checked over. */
  seen: VersionedState[]
  writes: number
}

/** Where stamps come from: each node's hybrid logical clock, or anywhere (the laws must not depend on stamps). */
type StampSource = 'clock' | 'arbitrary'

/**
 * Plays a history: every node stamps its writes with its own hybrid logical clock over a shared
 * virtual time with a per-node skew, and observes the stamps of states it merges, as a replica does.
 */
function play (steps: readonly Step[], siblingsMax: number, skewsMs: readonly number[] = [0, 7, -3], stampSource: StampSource = 'clock'): History {
  let trueMs = 100
  const clocks = NODES.map((_, index) => new HybridLogicalClock(() => trueMs + skewsMs[index]))
  const replicas: VersionedState[] = NODES.map(() => EMPTY_VERSIONED_STATE)
  const seen: VersionedState[] = [EMPTY_VERSIONED_STATE]
  let writes = 0
  for (const step of steps) {
    if (step.kind === 'write') {
      trueMs += step.advanceMs
      const node = NODES[step.at]
      const state = replicas[step.at]
      const [physicalMs, logical] = stampSource === 'clock' ? clocks[step.at].now() : [step.arbitraryMs, 0]
      const context = step.mode === 'lww' ? state.context : seen[step.contextFrom % seen.length].context
      const value = step.tombstone ? null : new TextEncoder().encode(`${node}${writes}`)
      replicas[step.at] = applyWrite(state, { dot: nextDot(state, node), stamp: [physicalMs, logical, node], value, context, dependencies: [] }, siblingsMax)
      writes++
    } else {
      for (const sibling of replicas[step.from].siblings) clocks[step.into].observe([sibling.stamp[0], sibling.stamp[1]])
      replicas[step.into] = mergeStates(replicas[step.into], replicas[step.from], siblingsMax)
    }
    seen.push(replicas[step.kind === 'write' ? step.at : step.into])
  }
  return { replicas, seen, writes }
}

/** Merges every ordered pair of replicas in the given order, rounds times. */
function mergeAllPairs (replicas: VersionedState[], order: ReadonlyArray<readonly [number, number]>, siblingsMax: number, rounds = 2): VersionedState[] {
  const states = [...replicas]
  for (let round = 0; round < rounds; round++) {
    for (const [from, into] of order) states[into] = mergeStates(states[into], states[from], siblingsMax)
  }
  return states
}

const ALL_PAIRS: Array<readonly [number, number]> = NODES.flatMap((_, from) => NODES.map((_, into) => [from, into] as const)).filter(([from, into]) => from !== into)

function assertSameState (actual: VersionedState, expected: VersionedState, message?: string): void {
  assert.ok(statesEqual(actual, expected), `${message ?? 'states differ'}:\n${describeState(actual)}\n${describeState(expected)}`)
}

function describeState (state: VersionedState): string {
  return JSON.stringify({ context: state.context, siblings: state.siblings.map((sibling) => `${sibling.dot.join(':')}@${formatStamp(sibling.stamp)}`) })
}

const historyArbitrary = fc.array(stepArbitrary, { maxLength: 60 })
/** Three states of one history, by index into everything its nodes held. */
const threeOfArbitrary = fc.tuple(fc.nat(), fc.nat(), fc.nat())

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('mergeStates is a CRDT join', () => {
  for (const [siblingsMax, stampSource] of [[UNBOUNDED_SIBLINGS, 'clock'], [2, 'clock'], [1, 'clock'], [2, 'arbitrary'], [1, 'arbitrary']] as const) {
    it(`is commutative, associative and idempotent (siblingsMax ${siblingsMax}, ${stampSource} stamps)`, () => {
      fc.assert(fc.property(historyArbitrary, threeOfArbitrary, (steps, [i, j, k]) => {
        const { seen } = play(steps, siblingsMax, undefined, stampSource)
        const [a, b, c] = [seen[i % seen.length], seen[j % seen.length], seen[k % seen.length]]
        const merge = (x: VersionedState, y: VersionedState): VersionedState => mergeStates(x, y, siblingsMax)
        assertSameState(merge(a, b), merge(b, a), 'commutative')
        assertSameState(merge(merge(a, b), c), merge(a, merge(b, c)), 'associative')
        assertSameState(merge(a, a), a, 'idempotent')
        assertSameState(merge(merge(a, b), b), merge(a, b), 'idempotent on a joined state')
        assertSameState(merge(a, EMPTY_VERSIONED_STATE), a, 'the empty state is the identity')
      }), { numRuns: 500 })
    })
  }

  it('takes one side as it is exactly when the full join gives that side', () => {
    let shortcuts = 0
    for (const [siblingsMax, stampSource] of [[UNBOUNDED_SIBLINGS, 'clock'], [2, 'clock'], [1, 'arbitrary']] as const) {
      fc.assert(fc.property(historyArbitrary, fc.nat(), fc.nat(), (steps, i, j) => {
        const { seen } = play(steps, siblingsMax, undefined, stampSource)
        const [a, b] = [seen[i % seen.length], seen[j % seen.length]]
        const merged = mergeStates(a, b, siblingsMax)
        assertSameState(merged, joinStates(a, b, siblingsMax), 'the shortcut agrees with the full join')
        assert.equal(hex(encodeVersionedState(merged)), hex(encodeVersionedState(joinStates(a, b, siblingsMax))))
        if (merged === a || merged === b) shortcuts++
      }), { numRuns: 500 })
    }
    // Newer states of one key are the common case: the shortcut must be taken, not only be safe.
    assert.ok(shortcuts > 300, `shortcut taken ${shortcuts} times of 1 500`)
  })

  it('takes no shortcut past a write the other side superseded, or one it holds differently', () => {
    const write = (counter: number, value: number): VersionedState['siblings'][number] =>
      ({ dot: [NODES[0], counter], stamp: [1_000 + counter, 0, NODES[0]], value: new Uint8Array([value]), dependencies: [] })
    // Both have seen dot 2; `b` superseded it, `a` still holds it: the join holds neither write.
    const a: VersionedState = { context: { [NODES[0]]: 2 }, siblings: [write(2, 2)] }
    const b: VersionedState = { context: { [NODES[0]]: 2 }, siblings: [write(1, 1)] }
    for (const [x, y] of [[a, b], [b, a]]) {
      assert.deepEqual(mergeStates(x, y, 4).siblings, [])
      assertSameState(mergeStates(x, y, 4), joinStates(x, y, 4), 'superseded on one side')
    }
    // One dot, two values (a node that lost its disk): the newer stamp wins on both sides.
    const c: VersionedState = { context: { [NODES[0]]: 2 }, siblings: [{ ...write(2, 7), stamp: [5_000, 0, NODES[0]] }] }
    for (const [x, y] of [[a, c], [c, a]]) assertSameState(mergeStates(x, y, 4), c, 'same dot, newer stamp')
  })

  it('keeps the canonical order and covers every sibling it holds', () => {
    fc.assert(fc.property(historyArbitrary, (steps) => {
      for (const state of play(steps, 3).seen) {
        assert.ok(versionedStateSchema.safeParse(state).success, describeState(state))
        assertBounded(state, 3)
      }
    }), { numRuns: 200 })
  })
})

describe('applyWrite', () => {
  it('leaves one sibling when the context covers every sibling', () => {
    fc.assert(fc.property(historyArbitrary, fc.nat(), fc.nat(NODES.length - 1), (steps, pick, at) => {
      const { seen } = play(steps, UNBOUNDED_SIBLINGS)
      const state = seen[pick % seen.length]
      const node = NODES[at]
      const stamp: Stamp = [1_000_000, 0, node]
      const written = applyWrite(state, { dot: nextDot(state, node), stamp, value: new Uint8Array([1]), context: state.context, dependencies: [] }, UNBOUNDED_SIBLINGS)
      assert.equal(written.siblings.length, 1)
      assert.deepEqual(written.siblings[0].dot, nextDot(state, node))
      assert.ok(covers(written.context, written.siblings[0].dot))
    }), { numRuns: 300 })
  })

  it('changes nothing when the same write is applied again', () => {
    const write = { dot: nextDot(EMPTY_VERSIONED_STATE, 'a'), stamp: [10, 0, 'a'] as Stamp, value: new Uint8Array([1]), context: {}, dependencies: [] }
    const once = applyWrite(EMPTY_VERSIONED_STATE, write, 4)
    assert.equal(applyWrite(once, write, 4), once)
  })

  it('keeps what the client did not see as siblings and drops what it did', () => {
    const first = applyWrite(EMPTY_VERSIONED_STATE, { dot: ['a', 1], stamp: [10, 0, 'a'], value: bytes('v1'), context: {}, dependencies: [] }, 4)
    const second = applyWrite(first, { dot: ['a', 2], stamp: [11, 0, 'a'], value: bytes('v2'), context: {}, dependencies: [] }, 4)
    assert.deepEqual(values(second), ['v1', 'v2'], 'a blind write is concurrent with v1')
    assert.deepEqual(second.context, { a: 2 })
    const resolved = applyWrite(second, { dot: ['a', 3], stamp: [12, 0, 'a'], value: bytes('v3'), context: second.context, dependencies: [['other', [9, 0, 'b']]] }, 4)
    assert.deepEqual(values(resolved), ['v3'])
    assert.deepEqual(resolved.siblings[0].dependencies, [['other', [9, 0, 'b']]])
  })

  it('supersedes the other siblings with the oldest stamps beyond siblingsMax, never the write itself', () => {
    let state = EMPTY_VERSIONED_STATE
    for (const [counter, physicalMs] of [[1, 50], [2, 30], [3, 40]]) {
      state = applyWrite(state, { dot: ['a', counter], stamp: [physicalMs, 0, 'a'], value: bytes(`at${physicalMs}`), context: {}, dependencies: [] }, 2)
    }
    assert.deepEqual(values(state), ['at40', 'at50'])
    assert.deepEqual(state.context, { a: 3 }, 'the dropped write stays covered')
    const late = applyWrite(state, { dot: ['b', 1], stamp: [10, 0, 'b'], value: bytes('late'), context: {}, dependencies: [] }, 2)
    assert.deepEqual(values(late), ['late', 'at50'], 'a write with an old stamp is still readable by its writer')
    assert.deepEqual(late.context, { a: 3, b: 1 })
    assert.deepEqual(values(applyWrite(late, { dot: ['b', 2], stamp: [5, 0, 'b'], value: bytes('only'), context: {}, dependencies: [] }, 1)), ['only'])
  })

  it('rejects a malformed dot or bound as a programmer error', () => {
    const write = { dot: ['a', 0] as Dot, stamp: [1, 0, 'a'] as Stamp, value: null, context: {}, dependencies: [] }
    assert.throws(() => applyWrite(EMPTY_VERSIONED_STATE, write, 4), /assertion failed/)
    assert.throws(() => applyWrite(EMPTY_VERSIONED_STATE, { ...write, dot: ['a', 1] }, 0), /assertion failed/)
    assert.throws(() => mergeStates(EMPTY_VERSIONED_STATE, EMPTY_VERSIONED_STATE, 1_025), /assertion failed/)
  })
})

describe('causality', () => {
  it('keeps concurrent writes as siblings after a merge', () => {
    fc.assert(fc.property(historyArbitrary, fc.nat(), (steps, pick) => {
      const { seen } = play(steps, UNBOUNDED_SIBLINGS)
      const base = seen[pick % seen.length]
      // Two coordinators write from the same state without seeing each other's write.
      const atA = applyWrite(base, { dot: nextDot(base, 'a'), stamp: [1_000_000, 0, 'a'], value: bytes('from a'), context: base.context, dependencies: [] }, UNBOUNDED_SIBLINGS)
      const atB = applyWrite(base, { dot: nextDot(base, 'b'), stamp: [1_000_000, 0, 'b'], value: bytes('from b'), context: base.context, dependencies: [] }, UNBOUNDED_SIBLINGS)
      const merged = mergeStates(atA, atB, UNBOUNDED_SIBLINGS)
      assert.deepEqual(values(merged), ['from a', 'from b'])
      assert.equal(lastWriter(merged)?.dot[0], 'b', 'the node id breaks the stamp tie')
    }), { numRuns: 300 })
  })

  it('never resurrects a sibling a write superseded, whatever replica it merges with', () => {
    fc.assert(fc.property(historyArbitrary, fc.nat(), fc.nat(), (steps, readPick, coordinatorPick) => {
      const { seen } = play(steps, UNBOUNDED_SIBLINGS)
      const read = seen[readPick % seen.length]
      const coordinator = seen[coordinatorPick % seen.length]
      // A client read `read` and writes through a fourth node, whose state may be any the others held:
      // a node's dots come from its own state, so the history's nodes cannot take an arbitrary one.
      const node = 'd'
      const written = applyWrite(coordinator, { dot: nextDot(coordinator, node), stamp: [1_000_000, 0, node], value: bytes('new'), context: read.context, dependencies: [] }, UNBOUNDED_SIBLINGS)
      for (const other of seen) {
        for (const merged of [mergeStates(written, other, UNBOUNDED_SIBLINGS), mergeStates(other, written, UNBOUNDED_SIBLINGS)]) {
          for (const sibling of merged.siblings) assert.ok(!covers(read.context, sibling.dot), `${sibling.dot.join(':')} came back`)
        }
      }
    }), { numRuns: 200 })
  })

  it('removes a superseded sibling from a replica that still holds it', () => {
    const x = applyWrite(EMPTY_VERSIONED_STATE, { dot: ['a', 1], stamp: [10, 0, 'a'], value: bytes('x'), context: {}, dependencies: [] }, 4)
    const atB = mergeStates(EMPTY_VERSIONED_STATE, x, 4)
    const atC = mergeStates(EMPTY_VERSIONED_STATE, x, 4)
    const deleted = applyWrite(atC, { dot: ['c', 1], stamp: [11, 0, 'c'], value: null, context: atC.context, dependencies: [] }, 4)
    const healed = mergeStates(atB, deleted, 4)
    assert.deepEqual(healed.siblings.map((sibling) => sibling.value), [null])
    assert.equal(lastWriter(healed)?.value, null)
    assertSameState(mergeStates(healed, x, 4), healed, 'the old write arriving late changes nothing')
  })
})

describe('convergence under the sibling bound', () => {
  it('respects siblingsMax and converges to one non-empty state whatever the merge order', () => {
    const orderArbitrary = fc.shuffledSubarray(ALL_PAIRS, { minLength: ALL_PAIRS.length, maxLength: ALL_PAIRS.length })
    fc.assert(fc.property(
      fc.array(stepArbitrary, { maxLength: 80 }), fc.integer({ min: 1, max: 3 }), orderArbitrary, orderArbitrary,
      fc.array(fc.integer({ min: -20, max: 20 }), { minLength: 3, maxLength: 3 }), fc.constantFrom<StampSource>('clock', 'arbitrary'),
      (steps, siblingsMax, firstOrder, secondOrder, skewsMs, stampSource) => {
        const { replicas, seen, writes } = play(steps, siblingsMax, skewsMs, stampSource)
        for (const state of seen) assertBounded(state, siblingsMax)
        const first = mergeAllPairs(replicas, firstOrder, siblingsMax)
        const second = mergeAllPairs(replicas, secondOrder, siblingsMax)
        const joined = replicas.reduce((all, state) => mergeStates(all, state, siblingsMax), EMPTY_VERSIONED_STATE)
        for (const state of [...first, ...second]) {
          assertBounded(state, siblingsMax)
          assertSameState(state, joined, 'replicas converge on the join of all of them')
        }
        if (writes > 0) assert.notEqual(lastWriter(joined), null, 'a written key does not vanish')
      }
    ), { numRuns: 500 })
  })

  // Regression: dropping siblings for the bound in mergeStates (the first design) made these fail.
  it('does not lose a written key when a write supersedes a sibling with a larger stamp (siblingsMax 1)', () => {
    let a = write(EMPTY_VERSIONED_STATE, ['a', 1], 101, {}, 1)
    let b = write(EMPTY_VERSIONED_STATE, ['b', 1], 101, {}, 1)
    // A client read b's state and writes through c, whose clock is behind: its stamp is the smallest.
    let c = write(EMPTY_VERSIONED_STATE, ['c', 1], 100, b.context, 1)
    for (let round = 0; round < 2; round++) {
      c = mergeStates(c, b, 1)
      b = mergeStates(b, a, 1)
      a = mergeStates(a, c, 1)
      c = mergeStates(c, a, 1)
      b = mergeStates(b, c, 1)
      a = mergeStates(a, b, 1)
    }
    assert.deepEqual(a.siblings.map((sibling) => sibling.dot), [['c', 1], ['a', 1]], 'both concurrent survivors, by stamp')
    assertSameState(b, a)
    assertSameState(c, a)
  })

  it('merges associatively when a write supersedes the siblings that outnumbered an older one (siblingsMax 2)', () => {
    const t1 = write(EMPTY_VERSIONED_STATE, ['a', 1], 10, {}, 2)
    const x = mergeStates(write(EMPTY_VERSIONED_STATE, ['c', 1], 5, {}, 2), t1, 2)
    const w = write(EMPTY_VERSIONED_STATE, ['b', 1], 11, {}, 2)
    const seenBoth = mergeStates(t1, w, 2)
    const y = write(seenBoth, ['d', 1], 20, seenBoth.context, 2)
    const left = mergeStates(mergeStates(x, w, 2), y, 2)
    assertSameState(left, mergeStates(x, mergeStates(w, y, 2), 2))
    assert.deepEqual(left.siblings.map((sibling) => sibling.dot), [['c', 1], ['d', 1]], 'c:1 was concurrent with everything that superseded')
  })

  it('does not lose a written key when each node\'s write, with the oldest stamp, supersedes the other\'s (siblingsMax 1)', () => {
    let a = write(EMPTY_VERSIONED_STATE, ['a', 1], 1, {}, 1)
    let b = write(EMPTY_VERSIONED_STATE, ['b', 1], 1, {}, 1)
    b = write(b, ['b', 2], 0, a.context, 1)
    a = write(a, ['a', 2], 0, { b: 1 }, 1)
    const joined = mergeStates(a, b, 1)
    assert.deepEqual(joined.siblings.map((sibling) => sibling.dot), [['a', 2], ['b', 2]])
    assertSameState(mergeStates(b, a, 1), joined)
  })

  it('bounds a faulty peer\'s state to siblingsMax per node', () => {
    const siblings: Sibling[] = [1, 2, 3, 4].map((counter) => ({ dot: ['a', counter], stamp: [counter, 0, 'a'], value: null, dependencies: [] }))
    const merged = mergeStates(EMPTY_VERSIONED_STATE, { context: { a: 4 }, siblings }, 2)
    assert.deepEqual(merged.siblings.map((sibling) => sibling.dot), [['a', 3], ['a', 4]])
  })
})

const oddValue = fc.oneof(
  fc.constantFrom(-1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 0, 1, '', 'a', '__proto__', 'x'.repeat(129), 'a b', null, true, 7n, [], {}, new Uint8Array(2)),
  fc.string({ maxLength: 5 }), fc.integer({ min: -3, max: 40 })
)
const mutationArbitrary = mutations(oddValue, ['extra', 'a', 'value', '0'])

describe('decoding', () => {
  it('refuses exactly what versionedStateSchema refuses, for valid and mutated states', () => {
    let refused = 0
    let accepted = 0
    const runs = Number(process.env.SYNOD_STATE_CHECK_RUNS ?? 3_000)
    fc.assert(fc.property(historyArbitrary, fc.nat(), fc.array(mutationArbitrary, { maxLength: 3 }), (steps, pick, mutations) => {
      const { seen } = play(steps, 3)
      const value = decodeCanonical(encodeVersionedState(seen[pick % seen.length] as VersionedState))
      for (const mutation of mutations) mutate(value, mutation)
      const byZod = zodAccepts(value)
      const problem = versionedStateProblem(value)
      if ((problem === null) !== byZod) assert.fail(`zod ${byZod ? 'accepts' : 'refuses'}, the direct check says ${problem ?? 'fine'}: ${JSON.stringify(value, (_, item: unknown) => typeof item === 'bigint' ? `${item}n` : item instanceof Uint8Array ? `bytes(${item.length})` : item)}`)
      if (byZod) accepted++
      else refused++
    }), { numRuns: runs })
    assert.ok(refused > runs / 6 && accepted > runs / 6, `both verdicts are exercised (${accepted} accepted, ${refused} refused)`)
    // A __proto__ key that cborg made an own property, and the bounds.
    const withProto = decodeCanonical(encodeCanonical({ context: { ['__proto__']: 1 }, siblings: [] }))
    assert.equal(versionedStateProblem(withProto) === null, zodAccepts(withProto))
    for (const state of [
      { context: Object.fromEntries(Array.from({ length: VERSION_VECTOR_NODES_WIRE_MAX + 1 }, (_, index) => [`n${index}`, 1])), siblings: [] },
      { context: {}, siblings: Array.from({ length: VERSIONED_SIBLINGS_WIRE_MAX + 1 }, () => null) },
      { context: { a: 1 }, siblings: [{ dot: ['a', 1], stamp: [1, 0, 'a'], value: null, dependencies: [['k'.repeat(KEY_BYTES_WIRE_MAX + 1), [1, 0, 'a']]] }] }
    ]) assert.ok(versionedStateProblem(state) !== null && !zodAccepts(state))
  })

  it('refuses a list that arrives as a byte string with a StoreError (zod threw a TypeError on it)', () => {
    const bytes = encodeCanonical({ context: {}, siblings: new Uint8Array(2) })
    assert.throws(() => versionedStateSchema.safeParse(decodeCanonical(bytes)), TypeError, 'zod\'s readonly() freezes what it could not parse')
    assert.throws(() => decodeVersionedState(bytes), (error: unknown) => error instanceof StoreError && error.code === 'STORE_BAD_REQUEST')
  })
})

/** zod's verdict; it throws (a TypeError from `readonly()`) on a byte string where it expects a list, which is a refusal too. */
function zodAccepts (value: unknown): boolean {
  try {
    return versionedStateSchema.safeParse(value).success
  } catch {
    return false
  }
}

describe('encoding', () => {
  it('writes the bytes cborg\'s canonical encoder gives, for any state', () => {
    const nodeId = fc.oneof(fc.constantFrom(...NODES), fc.stringMatching(/^[0-9A-Za-z_-]{1,40}$/))
    const counter = fc.oneof(fc.nat(30), fc.nat(), fc.maxSafeNat(), fc.constantFrom(23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32))
    const stamp = fc.tuple(counter, counter, nodeId)
    const key = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme', maxLength: 40 }))
    const sibling = fc.record({
      dot: fc.tuple(nodeId, counter),
      stamp,
      value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
      dependencies: fc.array(fc.tuple(key, stamp), { maxLength: 4 })
    })
    const state = fc.record({ context: fc.dictionary(nodeId, counter, { maxKeys: 30 }), siblings: fc.array(sibling, { maxLength: 5 }) })
    fc.assert(fc.property(state, (generated) => {
      assert.equal(hex(encodeVersionedState(generated)), hex(encodeVersionedStateGeneric(generated)))
    }), { numRuns: 2_000 })
    // Past the shape (a fractional counter, a node id that is not ASCII), the general encoder decides.
    const odd: VersionedState = { context: { 'é': 1 }, siblings: [{ dot: ['a', 1], stamp: [1.5, 0, 'a'], value: null, dependencies: [['\uD800', [1, 0, 'a']]] }] }
    assert.equal(hex(encodeVersionedState(odd)), hex(encodeVersionedStateGeneric(odd)))
  })

  it('round-trips every state, and equal states have equal bytes and digests', () => {
    fc.assert(fc.property(historyArbitrary, (steps) => {
      const { seen } = play(steps, 3)
      for (const state of seen) {
        const encoded = encodeVersionedState(state)
        const decoded = decodeVersionedState(encoded)
        assertSameState(decoded, state, 'round trip')
        assert.deepEqual(encodeVersionedState(decoded), encoded)
        assert.deepEqual(stateDigest(decoded), stateDigest(state))
        assert.equal(stateDigest(state).length, STATE_DIGEST_BYTES)
      }
    }), { numRuns: 200 })
  })

  it('gives different digests to different states and ignores zero vector entries', () => {
    const one = applyWrite(EMPTY_VERSIONED_STATE, { dot: ['a', 1], stamp: [10, 0, 'a'], value: bytes('x'), context: {}, dependencies: [] }, 4)
    const other = applyWrite(EMPTY_VERSIONED_STATE, { dot: ['a', 1], stamp: [10, 0, 'a'], value: bytes('y'), context: {}, dependencies: [] }, 4)
    assert.notDeepEqual(stateDigest(one), stateDigest(other))
    const withZero: VersionedState = { context: { ...one.context, z: 0 }, siblings: one.siblings }
    assert.ok(statesEqual(withZero, one))
    assert.deepEqual(stateDigest(withZero), stateDigest(one))
  })

  it('rejects random bytes with a StoreError, never a crash', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (garbage) => {
      try {
        decodeVersionedState(garbage)
      } catch (error) {
        assert.ok(error instanceof StoreError, String(error))
        assert.equal(error.code, 'STORE_BAD_REQUEST')
      }
    }), { numRuns: 1_000 })
  })

  const sibling = { dot: ['a', 1], stamp: [10, 0, 'a'], value: new Uint8Array([1]), dependencies: [] }
  const malformed: Array<[string, unknown]> = [
    ['not a map', [1, 2]],
    ['a missing field', { context: {} }],
    ['an extra field', { context: {}, siblings: [], extra: 1 }],
    ['a negative counter', { context: { a: -1 }, siblings: [] }],
    ['a fractional counter', { context: { a: 1.5 }, siblings: [] }],
    ['a node id with a dot', { context: { 'a.b': 1 }, siblings: [] }],
    ['an empty node id', { context: { '': 1 }, siblings: [] }],
    ['a node id of 129 characters', { context: { ['n'.repeat(129)]: 1 }, siblings: [] }],
    ['__proto__ as a node id', { context: Object.fromEntries([['__proto__', 1]]), siblings: [] }],
    ['a dot counter of 0', { context: { a: 1 }, siblings: [{ ...sibling, dot: ['a', 0] }] }],
    ['a dot the context does not cover', { context: { a: 0 }, siblings: [sibling] }],
    ['two siblings with one dot', { context: { a: 1 }, siblings: [sibling, { ...sibling, stamp: [11, 0, 'a'] }] }],
    ['siblings out of order', { context: { a: 2 }, siblings: [{ ...sibling, dot: ['a', 2], stamp: [11, 0, 'a'] }, sibling] }],
    ['a string value', { context: { a: 1 }, siblings: [{ ...sibling, value: 'text' }] }],
    ['a malformed stamp', { context: { a: 1 }, siblings: [{ ...sibling, stamp: [10, 0] }] }],
    ['a dependency key over the wire limit', { context: { a: 1 }, siblings: [{ ...sibling, dependencies: [['k'.repeat(4_097), [1, 0, 'b']]] }] }],
    ['1025 siblings', { context: { a: 1_025 }, siblings: Array.from({ length: 1_025 }, (_, index) => ({ ...sibling, dot: ['a', index + 1], stamp: [index, 0, 'a'] })) }],
    ['4097 dependencies', { context: { a: 1 }, siblings: [{ ...sibling, dependencies: Array.from({ length: 4_097 }, () => ['k', [1, 0, 'b']]) }] }],
    ['4097 vector entries', { context: Object.fromEntries(Array.from({ length: 4_097 }, (_, index) => [`n${index}`, 1])), siblings: [] }]
  ]
  for (const [name, value] of malformed) {
    it(`rejects ${name}`, () => {
      assert.throws(() => decodeVersionedState(encodeCanonical(value)), (error: unknown) => error instanceof StoreError && error.code === 'STORE_BAD_REQUEST')
    })
  }

  it('accepts the largest state the bounds allow', () => {
    const siblings = Array.from({ length: 1_024 }, (_, index) => ({ ...sibling, dot: ['a', index + 1], stamp: [index, 0, 'a'] }))
    const decoded = decodeVersionedState(encodeCanonical({ context: { a: 1_024, ['n'.repeat(128)]: Number.MAX_SAFE_INTEGER }, siblings }))
    assert.equal(decoded.siblings.length, 1_024)
  })
})

describe('vectors', () => {
  const vectorArbitrary = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'constructor', 'toString'), fc.nat(5))

  it('joins per node by max, commutatively, with sorted keys and no zero entries', () => {
    fc.assert(fc.property(vectorArbitrary, vectorArbitrary, (a, b) => {
      const joined = joinVectors(a, b)
      assert.deepEqual(joined, joinVectors(b, a))
      assert.deepEqual(Object.keys(joined), [...Object.keys(joined)].sort())
      for (const node of ['a', 'b', 'c', 'constructor', 'toString']) {
        const expected = Math.max(ownCounter(a, node), ownCounter(b, node))
        assert.equal(ownCounter(joined, node), expected)
        assert.equal(covers(joined, [node, 1]), expected >= 1)
      }
    }))
  })

  it('reads only its own entries, so a node named like an Object method is at 0', () => {
    const empty: VersionVector = {}
    assert.equal(covers(empty, ['constructor', 1]), false)
    assert.equal(covers(empty, ['toString', 1]), false)
    assert.deepEqual(nextDot(EMPTY_VERSIONED_STATE, 'constructor'), ['constructor', 1])
  })
})

describe('stamps', () => {
  it('orders by physical part, logical part, then node', () => {
    const ordered: Stamp[] = [[1, 0, 'b'], [1, 1, 'a'], [2, 0, 'a'], [2, 0, 'b'], [2, 0, 'ba'], [10, 0, 'a']]
    for (const [index, stamp] of ordered.entries()) {
      for (const [otherIndex, other] of ordered.entries()) assert.equal(Math.sign(compareStamps(stamp, other)), Math.sign(index - otherIndex))
    }
  })

  it('picks the last writer by stamp, the node id breaking ties', () => {
    assert.equal(lastWriter(EMPTY_VERSIONED_STATE), null)
    const siblings: Sibling[] = [
      { dot: ['b', 1], stamp: [5, 2, 'b'], value: bytes('b'), dependencies: [] },
      { dot: ['c', 1], stamp: [5, 2, 'c'], value: bytes('c'), dependencies: [] },
      { dot: ['a', 1], stamp: [5, 1, 'a'], value: bytes('a'), dependencies: [] }
    ]
    let state = EMPTY_VERSIONED_STATE
    for (const sibling of siblings) state = mergeStates(state, { context: Object.fromEntries([sibling.dot]), siblings: [sibling] }, 8)
    assert.deepEqual(values(state), ['a', 'b', 'c'])
    assert.equal(lastWriter(state), state.siblings[2])
    assert.deepEqual(lastWriter({ context: state.context, siblings: [...state.siblings].reverse() })?.dot, ['c', 1])
  })

  it('formats and parses back', () => {
    const node = fc.stringMatching(/^[0-9A-Za-z_-]{1,128}$/).filter((text) => text !== '__proto__')
    const count = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
    fc.assert(fc.property(count, count, node, (physicalMs, logical, id) => {
      const stamp: Stamp = [physicalMs, logical, id]
      assert.deepEqual(parseStamp(formatStamp(stamp)), stamp)
    }))
    assert.equal(formatStamp([1_700_000_000_000, 3, 'node-1']), '1700000000000.3.node-1')
  })

  for (const text of ['', '1.2', '1.2.', '.1.a', '1..a', '01.2.a', '1.02.a', '-1.2.a', '1.2.a.b', '1.2.a b', '1.5e3.a', '9007199254740992.0.a',
    `1.2.${'n'.repeat(129)}`, '1.2.__proto__', ' 1.2.a', '1.2.a\n']) {
    it(`rejects the stamp ${JSON.stringify(text.length > 20 ? `${text.slice(0, 20)}...` : text)}`, () => {
      assert.equal(parseStamp(text), null)
    })
  }
})

/** A write of an empty value with stamp [physicalMs, 0, node]. */
function write (state: VersionedState, dot: Dot, physicalMs: number, context: VersionVector, siblingsMax: number): VersionedState {
  return applyWrite(state, { dot, stamp: [physicalMs, 0, dot[0]], value: new Uint8Array(0), context, dependencies: [] }, siblingsMax)
}

/** At most siblingsMax siblings of each coordinating node. */
function assertBounded (state: VersionedState, siblingsMax: number): void {
  const byNode = new Map<string, number>()
  for (const sibling of state.siblings) byNode.set(sibling.dot[0], (byNode.get(sibling.dot[0]) ?? 0) + 1)
  for (const [node, count] of byNode) assert.ok(count <= siblingsMax, `${count} siblings of ${node}, more than ${siblingsMax}: ${describeState(state)}`)
}

function ownCounter (vector: VersionVector, node: string): number {
  return Object.hasOwn(vector, node) ? vector[node] : 0
}

function bytes (text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

function values (state: VersionedState): Array<string | null> {
  return state.siblings.map((sibling) => sibling.value === null ? null : new TextDecoder().decode(sibling.value))
}
