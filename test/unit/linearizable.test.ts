/**
 * The store's linearizability checker: known-good and known-bad histories, the two input formats
 * and their errors, agreement with a brute-force checker on small random histories, histories
 * generated from a real register (always linearizable, and not once a read is corrupted), and
 * the time it takes on 20,000 operations.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import fc from 'fast-check'
import { createPrng, type Prng } from '../../src/core/index.js'
import { CheckError, checkLinearizable, describeOperation, parseHistory, type KvHistoryOperation, type LinearizabilityFailureKind } from '../../src/check/index.js'

const put = (client: number, value: string, call: number, ret: number | null, key = 'x'): KvHistoryOperation => ({ client, op: 'put', key, value, call_ns: call, return_ns: ret })
const get = (client: number, output: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation => ({ client, op: 'get', key, output, call_ns: call, return_ns: ret })
const del = (client: number, call: number, ret: number | null, key = 'x'): KvHistoryOperation => ({ client, op: 'delete', key, call_ns: call, return_ns: ret })
const cas = (client: number, expected: string | null, value: string, output: boolean | undefined, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'cas', key, expected, value, ...(output === undefined ? {} : { output }), call_ns: call, return_ns: ret })

describe('known histories', () => {
  const cases: Array<{ name: string, history: KvHistoryOperation[], linearizable: boolean, kind?: LinearizabilityFailureKind }> = [
    { name: 'empty', history: [], linearizable: true },
    { name: 'sequential', history: [put(1, 'a', 0, 10), get(2, 'a', 20, 30), put(2, 'b', 40, 50), get(1, 'b', 60, 70), del(1, 80, 90), get(2, null, 100, 110)], linearizable: true },
    { name: 'a read overlapping a write sees the old value', history: [put(1, 'a', 0, 10), put(1, 'b', 20, 50), get(2, 'a', 30, 40)], linearizable: true },
    { name: 'a read overlapping a write sees the new value', history: [put(1, 'a', 0, 10), put(1, 'b', 20, 50), get(2, 'b', 30, 40)], linearizable: true },
    { name: 'concurrent writes, reads agree on the last', history: [put(1, 'a', 0, 10), put(2, 'b', 0, 10), get(1, 'a', 20, 30), get(2, 'a', 40, 50)], linearizable: true },
    { name: 'touching intervals count as concurrent', history: [get(1, 'a', 0, 10), put(2, 'a', 10, 20)], linearizable: true },
    { name: 'stale read after a completed write', history: [put(1, 'a', 0, 10), put(1, 'b', 20, 30), get(2, 'a', 40, 50)], linearizable: false, kind: 'stale-read' },
    { name: 'lost write: acknowledged, then read absent', history: [put(1, 'a', 0, 10), get(2, null, 20, 30)], linearizable: false, kind: 'no-linearization' },
    { name: 'lost write: concurrent writes, then the reads disagree', history: [put(1, 'a', 0, 10), put(2, 'b', 0, 10), get(1, 'a', 20, 30), get(2, 'b', 40, 50)], linearizable: false, kind: 'no-linearization' },
    { name: 'reads go back in time', history: [put(1, 'a', 0, 10), put(1, 'b', 20, 100), get(2, 'b', 30, 40), get(3, 'a', 50, 60)], linearizable: false, kind: 'no-linearization' },
    { name: 'cas applied twice on one expected value', history: [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 40), cas(3, 'a', 'c', true, 25, 35)], linearizable: false, kind: 'no-linearization' },
    { name: 'concurrent cas: one applies, one does not', history: [put(1, 'a', 0, 10), cas(2, 'a', 'b', true, 20, 40), cas(3, 'a', 'c', false, 25, 35), get(1, 'b', 50, 60)], linearizable: true },
    { name: 'cas on an absent key', history: [cas(1, null, 'a', true, 0, 10), get(2, 'a', 20, 30)], linearizable: true },
    { name: 'cas expecting absent applies to a present key', history: [put(1, 'a', 0, 10), cas(2, null, 'b', true, 20, 30)], linearizable: false, kind: 'no-linearization' },
    { name: 'cas rejected though the value matched', history: [put(1, 'a', 0, 10), cas(2, 'a', 'b', false, 20, 30)], linearizable: false, kind: 'no-linearization' },
    { name: 'cas rejected on another value', history: [put(1, 'a', 0, 10), cas(2, 'z', 'b', false, 20, 30), get(1, 'a', 40, 50)], linearizable: true },
    { name: 'an unreturned write that took effect', history: [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(1, 'b', 30, 40)], linearizable: true },
    { name: 'an unreturned write that did not take effect', history: [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(1, 'a', 30, 40)], linearizable: true },
    { name: 'an unreturned write taking effect long after', history: [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(1, 'a', 1_000, 1_010), get(1, 'b', 5_000, 5_010)], linearizable: true },
    { name: 'an unreturned write cannot be undone once seen', history: [put(1, 'a', 0, 10), put(2, 'b', 20, null), get(1, 'b', 30, 40), get(1, 'a', 50, 60)], linearizable: false, kind: 'no-linearization' },
    { name: 'an unreturned write cannot take effect before its call', history: [put(1, 'a', 0, 10), get(1, 'b', 20, 30), put(2, 'b', 40, null)], linearizable: false, kind: 'future-read' },
    { name: 'an unreturned cas that applied', history: [put(1, 'a', 0, 10), cas(2, 'a', 'b', undefined, 20, null), get(1, 'b', 30, 40)], linearizable: true },
    { name: 'an unreturned cas that did not apply', history: [put(1, 'a', 0, 10), cas(2, 'a', 'b', undefined, 20, null), get(1, 'a', 30, 40)], linearizable: true },
    { name: 'an unreturned cas whose expected value was never there', history: [put(1, 'a', 0, 10), cas(2, 'z', 'b', undefined, 20, null), get(1, 'b', 30, 40)], linearizable: false, kind: 'no-linearization' },
    { name: 'an unreturned delete', history: [put(1, 'a', 0, 10), del(2, 20, null), get(1, null, 30, 40)], linearizable: true },
    { name: 'an unreturned get constrains nothing', history: [put(1, 'a', 0, 10), { ...get(2, 'never', 20, null) }, get(1, 'a', 30, 40)], linearizable: true },
    { name: 'delete then get absent', history: [put(1, 'a', 0, 10), del(2, 20, 30), get(1, null, 40, 50)], linearizable: true },
    { name: 'delete then get the deleted value', history: [put(1, 'a', 0, 10), del(2, 20, 30), get(1, 'a', 40, 50)], linearizable: false, kind: 'stale-read' },
    { name: 'get of a key never written', history: [get(1, null, 0, 10)], linearizable: true },
    { name: 'get of a value never written', history: [get(1, 'a', 0, 10)], linearizable: false, kind: 'unwritten-value' },
    { name: 'keys are independent', history: [put(1, 'a', 0, 10, 'x'), put(1, 'b', 20, 30, 'y'), get(2, 'a', 40, 50, 'x'), get(2, 'b', 40, 50, 'y'), get(2, null, 40, 50, 'z')], linearizable: true },
    { name: 'a write on another key does not satisfy a read', history: [put(1, 'a', 0, 10, 'y'), get(2, 'a', 20, 30, 'x')], linearizable: false, kind: 'unwritten-value' },
    { name: 'equal values written twice', history: [put(1, 'a', 0, 10), put(2, 'b', 20, 30), put(1, 'a', 40, 50), get(2, 'a', 60, 70), get(1, 'a', 80, 90)], linearizable: true }
  ]
  for (const { name, history, linearizable, kind } of cases) {
    it(`${linearizable ? 'accepts' : 'rejects'}: ${name}`, () => {
      const report = checkLinearizable(history)
      assert.equal(report.ok, linearizable)
      assert.equal(report.verdict, linearizable ? 'linearizable' : 'not-linearizable')
      assert.equal(report.operations, history.length)
      assert.equal(report.failures.length, linearizable ? 0 : 1)
      assert.equal(report.failures[0]?.kind, kind)
      assert.equal(bruteForceLinearizable(history), linearizable, 'the brute-force checker agrees')
    })
  }

  it('describes a search failure: the key, the longest prefix, the value after it and the operation that cannot fit', () => {
    const history = [put(1, 'a', 0, 10, 'other'), put(1, 'a', 0, 10), put(2, 'b', 0, 10), get(1, 'a', 20, 30), get(2, 'b', 40, 50)]
    const report = checkLinearizable(history)
    assert.equal(report.keys, 2)
    assert.equal(report.failures.length, 1)
    const [failure] = report.failures
    assert.equal(failure?.key, 'x')
    assert.equal(failure?.verdict, 'not-linearizable')
    assert.equal(failure?.kind, 'no-linearization')
    assert.equal(failure?.operations, 4)
    assert.equal(failure?.linearizedMax, 3)
    assert.equal(failure?.valueAfterPrefix, 'a')
    assert.deepEqual(failure?.prefixTail.map((operation) => operation.index), [2, 1, 3])
    assert.deepEqual(failure?.stuck.map((operation) => operation.index), [4])
    assert.ok((failure?.searchSteps ?? 0) > 0)
    assert.match(failure?.reason ?? '', /orders 3 of 4 operations, leaving the value "a"; from there, no order of the one operation that may take effect next lets #4 client 2 get = "b" \[40, 50\] take effect before it returned/)
  })

  it('names the three operations of a stale read without searching', () => {
    const history = [put(1, 'a', 0, 10, 'other'), put(1, 'a', 0, 10), put(1, 'b', 20, 30), get(2, 'a', 40, 50)]
    const [failure] = checkLinearizable(history).failures
    assert.equal(failure?.kind, 'stale-read')
    assert.equal(failure?.searchSteps, 0)
    assert.deepEqual(failure?.stuck.map((operation) => operation.index), [3, 1, 2])
    assert.equal(failure?.reason, '#3 client 2 get = "a" [40, 50] saw "a", written only by #1 client 1 put "a" [0, 10] and then certainly overwritten by #2 client 1 put "b" [20, 30], called after that write returned and returned before the read was called')
    const future = checkLinearizable([get(1, 'a', 0, 10), put(2, 'a', 20, 30)]).failures[0]
    assert.equal(future?.kind, 'future-read')
    assert.deepEqual(future?.stuck.map((operation) => operation.index), [0, 1])
    const unwritten = checkLinearizable([put(1, 'a', 0, 10), cas(2, 'b', 'b', true, 20, 30)]).failures[0]
    assert.equal(unwritten?.kind, 'unwritten-value', 'a cas that writes the value it expects does not count as its writer')
  })

  it('reports a key whose search exceeds searchStepsMax as unknown, and a violation elsewhere first', () => {
    const history = [put(1, 'a', 0, 10), put(2, 'b', 0, 10), get(1, 'b', 20, 30), get(1, 'z', 0, 10, 'y')]
    const unknown = checkLinearizable(history.slice(0, 3), { searchStepsMax: 2 })
    assert.equal(unknown.verdict, 'unknown')
    assert.equal(unknown.ok, false)
    assert.equal(unknown.failures[0]?.verdict, 'unknown')
    assert.equal(unknown.failures[0]?.searchSteps, 2)
    assert.match(unknown.failures[0]?.reason ?? '', /gave up after 2 search steps/)
    const both = checkLinearizable(history, { searchStepsMax: 2 })
    assert.equal(both.verdict, 'not-linearizable')
    assert.deepEqual(both.failures.map((failure) => [failure.key, failure.verdict]), [['y', 'not-linearizable'], ['x', 'unknown']])
    assert.equal(checkLinearizable(history.slice(0, 3)).verdict, 'linearizable')
  })

  it('refuses an operation that does not fit the format, naming its index', () => {
    const bad = { client: 1, op: 'put', key: 'x', call_ns: 0, return_ns: 1 } as KvHistoryOperation
    assert.throws(() => checkLinearizable([put(1, 'a', 0, 1), bad]), (error: unknown) => error instanceof CheckError && error.code === 'CHECK_BAD_HISTORY' && /operation at index 1, field value/.test(error.message))
  })

  it('describes operations in one line', () => {
    assert.equal(describeOperation(cas(3, 'a', 'b', true, 100, 250), 12), '#12 client 3 cas "a" -> "b" = true [100, 250]')
    assert.equal(describeOperation(get(1, null, 0, null)), 'client 1 get = ? [0, never returned]')
    assert.equal(describeOperation(get(1, null, 0, 5)), 'client 1 get = absent [0, 5]')
  })
})

describe('parseHistory', () => {
  const operations = [put(1, 'a', 0, 10), { ...get(2, 'a', 5, 20), client: 'c2' }, cas(1, null, 'b', false, 30, 40), cas(1, 'a', 'b', undefined, 50, null), del(2, 60, null)]

  it('reads a JSON array and JSON Lines to the same operations', () => {
    assert.deepEqual(parseHistory(JSON.stringify(operations)), operations)
    assert.deepEqual(parseHistory(operations.map((operation) => JSON.stringify(operation)).join('\n') + '\n'), operations)
    assert.deepEqual(parseHistory('\n' + operations.map((operation) => JSON.stringify(operation)).join('\r\n\r\n')), operations)
    assert.deepEqual(parseHistory(''), [])
    assert.deepEqual(parseHistory('  []  '), [])
  })

  it('ignores the output of a put or delete, and of anything that never returned, and unknown fields', () => {
    const parsed = parseHistory(JSON.stringify([
      { ...put(1, 'a', 0, 10), output: 'ok', node: 'n1' },
      { ...del(1, 20, 30), output: true },
      { ...get(1, 'a', 40, null), output: 'z' },
      { ...cas(1, 'a', 'b', true, 50, null) }
    ]))
    assert.deepEqual(parsed, [put(1, 'a', 0, 10), del(1, 20, 30), { client: 1, op: 'get', key: 'x', call_ns: 40, return_ns: null }, cas(1, 'a', 'b', undefined, 50, null)])
  })

  const line = (fields: Record<string, unknown>): string => JSON.stringify({ client: 1, op: 'get', key: 'x', output: null, call_ns: 0, return_ns: 1, ...fields })
  const errors: Array<{ name: string, text: string, where: RegExp, details: Record<string, unknown> }> = [
    { name: 'missing call_ns', text: [line({}), line({ call_ns: undefined })].join('\n'), where: /^line 2, field call_ns: /, details: { line: 2, field: 'call_ns' } },
    { name: 'missing return_ns', text: JSON.stringify([JSON.parse(line({})), { ...JSON.parse(line({})) as object, return_ns: undefined }]), where: /^operation at index 1, field return_ns: /, details: { index: 1, field: 'return_ns' } },
    { name: 'unknown op', text: line({ op: 'increment' }), where: /^line 1, field op: Invalid option/, details: { line: 1, field: 'op' } },
    { name: 'return before call', text: line({ call_ns: 10, return_ns: 5 }), where: /^line 1, field return_ns: the operation returns \(5\) before it is called \(10\)/, details: { line: 1, field: 'return_ns' } },
    { name: 'a put without its value', text: line({ op: 'put' }), where: /^line 1, field value: a put needs the value it writes/, details: { line: 1, field: 'value' } },
    { name: 'a cas without expected', text: line({ op: 'cas', value: 'a', output: true }), where: /^line 1, field expected: /, details: { line: 1, field: 'expected' } },
    { name: 'a returned cas without its outcome', text: line({ op: 'cas', expected: null, value: 'a', output: undefined }), where: /^line 1, field output: a cas that returned needs whether it applied/, details: { line: 1, field: 'output' } },
    { name: 'a returned get without what it read', text: line({ output: undefined }), where: /^line 1, field output: a get that returned needs the value it read/, details: { line: 1, field: 'output' } },
    { name: 'a get that read a boolean', text: line({ output: true }), where: /^line 1, field output: /, details: { line: 1, field: 'output' } },
    { name: 'a key that is not a string', text: line({ key: 7 }), where: /^line 1, field key: /, details: { line: 1, field: 'key' } },
    { name: 'a client that is neither string nor number', text: line({ client: null }), where: /^line 1, field client: expected a string or a number/, details: { line: 1, field: 'client' } },
    { name: 'a line that is not JSON', text: [line({}), '', '{"client": 1,'].join('\n'), where: /^line 3: not JSON/, details: { line: 3 } },
    { name: 'an array that is not JSON', text: '[{"client": 1}', where: /^history: not JSON/, details: {} },
    { name: 'an entry that is not an object', text: '[3]', where: /^operation at index 0: /, details: { index: 0 } }
  ]
  for (const { name, text, where, details } of errors) {
    it(`refuses ${name} with a typed error naming where`, () => {
      assert.throws(() => parseHistory(text), (error: unknown) => {
        assert.ok(error instanceof CheckError)
        assert.equal(error.code, 'CHECK_BAD_HISTORY')
        assert.match(error.message, where)
        assert.deepEqual(error.details, details)
        return true
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------
// References: a brute-force checker, and histories from a real register

type Register = Map<string, string | null>

/** The register's answer to `operation` on `state`: the state after, or undefined if it cannot happen. */
function applyToRegister (state: Register, operation: KvHistoryOperation): Register | undefined {
  const current = state.get(operation.key) ?? null
  const withValue = (value: string | null): Register => new Map(state).set(operation.key, value)
  const returned = operation.return_ns !== null
  switch (operation.op) {
    case 'put': return withValue(operation.value as string)
    case 'delete': return withValue(null)
    case 'get': return !returned || operation.output === current ? state : undefined
    case 'cas':
      if (!returned) return current === operation.expected ? withValue(operation.value as string) : state
      if (operation.output === true) return current === operation.expected ? withValue(operation.value as string) : undefined
      return current === operation.expected ? undefined : state
  }
}

/**
 * The definition, checked by enumeration over the whole history (every key at once, so it also
 * checks that splitting by key is sound): some order of all returned operations and any subset of
 * the unreturned ones that respects real time and that the register explains.
 */
function bruteForceLinearizable (history: readonly KvHistoryOperation[]): boolean {
  const placed = new Array<boolean>(history.length).fill(false)
  const search = (state: Register): boolean => {
    if (history.every((operation, index) => placed[index] === true || operation.return_ns === null)) return true
    for (const [index, operation] of history.entries()) {
      if (placed[index] === true) continue
      const mustComeFirst = history.some((other, otherIndex) => placed[otherIndex] !== true && other.return_ns !== null && other.return_ns < operation.call_ns)
      if (mustComeFirst) continue
      const after = applyToRegister(state, operation)
      if (after === undefined) continue
      placed[index] = true
      if (search(after)) return true
      placed[index] = false
    }
    return false
  }
  return search(new Map())
}

interface RegisterHistoryOptions {
  clients: number
  operations: number
  keys: number
  /** Distinct values written; 0: every write writes a new one (which makes the search easy). */
  values: number
  /** Chance that an operation never returns (its effect then happens later, or never). */
  unreturnedChance: number
  latencyNsMax: number
  thinkNsMax: number
}

/**
 * A linearizable history by construction: each client's operations get random, overlapping
 * intervals; each operation a point inside its interval (or after its call, or never, when it
 * does not return); the register applies them in the order of those points and answers.
 */
function registerHistory (prng: Prng, options: RegisterHistoryOptions): KvHistoryOperation[] {
  const clock = new Array<number>(options.clients).fill(0)
  const planned: Array<{ operation: KvHistoryOperation, at: number | null }> = []
  let written = 0
  const kinds = ['get', 'get', 'get', 'put', 'put', 'delete', 'cas', 'cas'] as const
  for (let count = 0; count < options.operations; count++) {
    const client = count % options.clients
    const call = (clock[client] as number) + prng.int(0, options.thinkNsMax)
    const latency = prng.int(0, options.latencyNsMax)
    const unreturned = prng.chance(options.unreturnedChance)
    const at = unreturned ? (prng.chance(0.5) ? call + prng.int(0, 4 * options.latencyNsMax) : null) : call + prng.int(0, latency)
    // A client whose operation never returns gives up on it and goes on, as Jepsen's clients do.
    clock[client] = call + (unreturned ? options.latencyNsMax : latency)
    const op = prng.pick(kinds)
    const value = options.values === 0 ? `v${written++}` : `v${prng.int(0, options.values - 1)}`
    const operation: KvHistoryOperation = { client, op, key: `k${prng.int(0, options.keys - 1)}`, call_ns: call, return_ns: unreturned ? null : call + latency }
    if (op === 'put' || op === 'cas') operation.value = value
    planned.push({ operation, at })
  }
  const state = new Map<string, string | null>()
  const ordered = planned.filter((entry) => entry.at !== null).sort((a, b) => (a.at as number) - (b.at as number))
  for (const { operation } of ordered) {
    const current = state.get(operation.key) ?? null
    if (operation.op === 'cas') operation.expected = prng.chance(0.6) ? current : prng.chance(0.5) ? null : `v${prng.int(0, Math.max(1, options.values) - 1)}`
    if (operation.return_ns !== null && operation.op === 'get') operation.output = current
    if (operation.return_ns !== null && operation.op === 'cas') operation.output = current === operation.expected
    const after = applyToRegister(state, { ...operation, return_ns: null })
    if (after !== undefined) state.set(operation.key, after.get(operation.key) ?? null)
  }
  for (const { operation, at } of planned) if (at === null && operation.op === 'cas') operation.expected = null
  return planned.map((entry) => entry.operation)
}

describe('against references', () => {
  const smallHistory = fc.array(fc.record({
    client: fc.nat(3),
    op: fc.constantFrom('get', 'put', 'delete', 'cas'),
    key: fc.constantFrom('x', 'y'),
    value: fc.constantFrom('a', 'b'),
    expected: fc.constantFrom(null, 'a', 'b'),
    read: fc.constantFrom(null, 'a', 'b'),
    applied: fc.boolean(),
    call: fc.nat(20),
    latency: fc.nat(10),
    returned: fc.boolean()
  }, { requiredKeys: [] }).map((drawn) => {
    const operation: KvHistoryOperation = { client: drawn.client ?? 0, op: drawn.op ?? 'get', key: drawn.key ?? 'x', call_ns: drawn.call ?? 0, return_ns: drawn.returned === false ? null : (drawn.call ?? 0) + (drawn.latency ?? 0) }
    if (operation.op === 'put' || operation.op === 'cas') operation.value = drawn.value ?? 'a'
    if (operation.op === 'cas') operation.expected = drawn.expected ?? null
    if (operation.return_ns !== null && operation.op === 'get') operation.output = drawn.read ?? null
    if (operation.return_ns !== null && operation.op === 'cas') operation.output = drawn.applied ?? false
    return operation
  }), { maxLength: 8 })

  it('agrees with the brute-force checker on small random histories', () => {
    let rejected = 0
    fc.assert(fc.property(smallHistory, (history) => {
      const expected = bruteForceLinearizable(history)
      if (!expected) rejected++
      assert.equal(checkLinearizable(history).ok, expected)
    }), { numRuns: 3_000 })
    assert.ok(rejected > 100, `enough non-linearizable cases were drawn (${rejected})`)
  })

  const registerOptions = fc.record({
    seed: fc.nat(0xffff_ffff),
    clients: fc.integer({ min: 1, max: 6 }),
    operations: fc.integer({ min: 1, max: 80 }),
    keys: fc.integer({ min: 1, max: 3 }),
    values: fc.integer({ min: 0, max: 3 }),
    unreturnedChance: fc.constantFrom(0, 0.05, 0.2)
  })

  it('accepts every history from a real register with overlapping intervals', () => {
    fc.assert(fc.property(registerOptions, ({ seed, ...options }) => {
      const history = registerHistory(createPrng(seed), { ...options, latencyNsMax: 100, thinkNsMax: 30 })
      const report = checkLinearizable(history)
      assert.equal(report.verdict, 'linearizable', JSON.stringify(report.failures[0]))
    }), { numRuns: 300 })
  })

  it('rejects such a history once one read returns a value never written', () => {
    fc.assert(fc.property(registerOptions, fc.nat(), ({ seed, ...options }, pick) => {
      const history = registerHistory(createPrng(seed), { ...options, latencyNsMax: 100, thinkNsMax: 30 })
      const reads = history.filter((operation) => operation.op === 'get' && operation.return_ns !== null)
      fc.pre(reads.length > 0)
      const corrupted = reads[pick % reads.length] as KvHistoryOperation
      corrupted.output = 'never written'
      const report = checkLinearizable(history)
      assert.equal(report.verdict, 'not-linearizable')
      assert.deepEqual(report.failures.map((failure) => failure.key), [corrupted.key])
    }), { numRuns: 300 })
  })
})

describe('at scale', () => {
  const scales: Array<{ name: string, options: RegisterHistoryOptions }> = [
    { name: '20,000 operations, 10 clients, 100 keys', options: { clients: 10, operations: 20_000, keys: 100, values: 0, unreturnedChance: 0.002, latencyNsMax: 1_000_000, thinkNsMax: 200_000 } },
    { name: '20,000 operations, 10 clients, 3 hot keys', options: { clients: 10, operations: 20_000, keys: 3, values: 0, unreturnedChance: 0.002, latencyNsMax: 1_000_000, thinkNsMax: 200_000 } },
    { name: '20,000 operations, 10 clients, 1 hot key, 5 values', options: { clients: 10, operations: 20_000, keys: 1, values: 5, unreturnedChance: 0, latencyNsMax: 1_000_000, thinkNsMax: 200_000 } }
  ]
  for (const { name, options } of scales) {
    it(`checks ${name} in a few seconds, and finds a violation in it`, (t) => {
      const history = registerHistory(createPrng(7), options)
      const timed = (what: string, checked: KvHistoryOperation[]): ReturnType<typeof checkLinearizable> => {
        const started = performance.now()
        const report = checkLinearizable(checked)
        const elapsedMs = performance.now() - started
        t.diagnostic(`${name}${what}: ${report.verdict} in ${elapsedMs.toFixed(0)} ms, ${report.searchSteps} search steps`)
        assert.ok(elapsedMs < 20_000, `took ${elapsedMs.toFixed(0)} ms`)
        return report
      }
      const report = timed('', history)
      assert.equal(report.verdict, 'linearizable')
      assert.equal(report.operations, options.operations)
      assert.equal(report.keys, options.keys)

      // One read corrupted: the direct checks see it.
      const read = history.findLast((operation) => operation.op === 'get' && operation.return_ns !== null && operation.output !== null) as KvHistoryOperation
      const corrupted = timed(', one read corrupted', history.map((operation) => operation === read ? { ...operation, output: 'never written' } : operation))
      assert.deepEqual(corrupted.failures.map((failure) => [failure.key, failure.kind]), [[read.key, 'unwritten-value']])

      // Once everything has returned, two writes race and two reads disagree on the winner: only the
      // search can tell, and it has to rule out every order of everything before.
      const end = Math.max(...history.map((operation) => operation.return_ns ?? operation.call_ns)) + 1_000
      const disagreement = [put(1, 'left', end, end + 10, 'k0'), put(2, 'right', end, end + 10, 'k0'), get(1, 'left', end + 20, end + 30, 'k0'), get(2, 'right', end + 40, end + 50, 'k0')]
      const disagreeing = timed(', two reads disagreeing at the end', [...history, ...disagreement])
      assert.deepEqual(disagreeing.failures.map((failure) => [failure.key, failure.kind]), [['k0', 'no-linearization']])
    })
  }
})
