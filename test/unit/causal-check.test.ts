/**
 * The causal consistency checker (CCv, versions as the arbitration order): known-good and
 * known-bad histories for each violation and session guarantee, writes that never returned,
 * the format's extra checks, version order, and a generated 20,000-operation history from a
 * causally consistent store (which must pass, and fail once a read is made stale).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng, type Prng } from '../../src/core/index.js'
import { CheckError, checkCausal, compareVersions, describeVersionedOperation, parseHistory, type CausalViolationKind, type KvHistoryOperation, type SessionGuarantee } from '../../src/check/index.js'

type Client = string | number
const put = (client: Client, value: string, version: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'put', key, value, ...(version === null ? {} : { version }), call_ns: call, return_ns: ret })
const del = (client: Client, version: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'delete', key, ...(version === null ? {} : { version }), call_ns: call, return_ns: ret })
const get = (client: Client, output: string | null, version: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ret === null ? { client, op: 'get', key, call_ns: call, return_ns: null } : { client, op: 'get', key, output, version, call_ns: call, return_ns: ret }

interface Case {
  name: string
  history: KvHistoryOperation[]
  violations?: Array<[CausalViolationKind, SessionGuarantee | null]>
  /** Indices of the operations the first violation names, in order. */
  involved?: number[]
}

describe('known histories', () => {
  const cases: Case[] = [
    { name: 'empty', history: [] },
    { name: 'one session reads its writes', history: [put(1, 'a', '1.0.n1', 0, 10), get(1, 'a', '1.0.n1', 20, 30), del(1, '2.0.n1', 40, 50), get(1, null, '2.0.n1', 60, 70)] },
    { name: 'a get of a key never written', history: [get(1, null, null, 0, 10), put(2, 'a', '1.0.n1', 0, 10, 'y')] },
    { name: 'another session may not have seen a write yet', history: [put(1, 'a', '1.0.n1', 0, 10), get(2, null, null, 20, 30), get(2, 'a', '1.0.n1', 40, 50)] },
    {
      name: 'concurrent writes resolved by last-writer-wins, ties broken by node',
      history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '1.0.n2', 0, 10), get(1, 'b', '1.0.n2', 20, 30), get(2, 'b', '1.0.n2', 20, 30), get(3, 'a', '1.0.n1', 20, 30), get(3, 'b', '1.0.n2', 40, 50)]
    },
    { name: 'versions compare numerically, not as strings', history: [put(1, 'a', '9.0.n1', 0, 10), put(1, 'b', '10.0.n1', 20, 30), get(1, 'b', '10.0.n1', 40, 50), put(1, 'c', '10.10.n1', 60, 70), put(1, 'd', '10.11.n1', 80, 90), get(2, 'd', '10.11.n1', 100, 110)] },
    { name: 'a tombstone is read with its version', history: [put(1, 'a', '1.0.n1', 0, 10), del(2, '2.0.n2', 20, 30), get(3, 'a', '1.0.n1', 40, 50), get(3, null, '2.0.n2', 60, 70), get(2, null, '2.0.n2', 80, 90)] },
    {
      name: 'a dependency across sessions, respected',
      history: [put(1, 'a', '1.0.n1', 0, 10), get(2, 'a', '1.0.n1', 20, 30), put(2, 'b', '2.0.n2', 40, 50, 'y'), get(3, 'b', '2.0.n2', 60, 70, 'y'), get(3, 'a', '1.0.n1', 80, 90)]
    },
    { name: 'read-your-writes broken: an older version', history: [put(1, 'a', '1.0.n1', 0, 10), put(1, 'b', '2.0.n1', 20, 30), get(1, 'a', '1.0.n1', 40, 50)], violations: [['stale-read', 'read-your-writes']], involved: [1, 2, 0] },
    { name: 'read-your-writes broken: nothing', history: [put(1, 'a', '1.0.n1', 0, 10), get(1, null, null, 20, 30)], violations: [['stale-read', 'read-your-writes']], involved: [0, 1] },
    { name: 'read-your-writes broken: a delete undone', history: [put(1, 'a', '1.0.n1', 0, 10), del(1, '2.0.n1', 20, 30), get(1, 'a', '1.0.n1', 40, 50)], violations: [['stale-read', 'read-your-writes']] },
    {
      name: 'monotonic reads broken',
      history: [put(1, 'a', '1.0.n1', 0, 10), put(1, 'b', '2.0.n1', 20, 30), get(2, 'b', '2.0.n1', 40, 50), get(2, 'a', '1.0.n1', 60, 70)],
      violations: [['stale-read', 'monotonic-reads']],
      involved: [1, 2, 3, 0]
    },
    { name: 'monotonic reads broken: a tombstone forgotten', history: [put(1, 'a', '1.0.n1', 0, 10), del(1, '2.0.n1', 20, 30), get(2, null, '2.0.n1', 40, 50), get(2, 'a', '1.0.n1', 60, 70)], violations: [['stale-read', 'monotonic-reads']] },
    {
      name: 'writes-follow-reads broken across sessions',
      history: [put(1, 'a', '1.0.n1', 0, 10), get(2, 'a', '1.0.n1', 20, 30), put(2, 'b', '2.0.n2', 40, 50, 'y'), get(3, 'b', '2.0.n2', 60, 70, 'y'), get(3, null, null, 80, 90)],
      violations: [['stale-read', 'writes-follow-reads']],
      involved: [0, 2, 3, 4]
    },
    {
      name: 'monotonic writes broken, seen from another session',
      history: [put(1, 'a', '1.0.n1', 0, 10), put(1, 'b', '2.0.n1', 20, 30, 'y'), get(2, 'b', '2.0.n1', 40, 50, 'y'), get(2, null, null, 60, 70)],
      violations: [['stale-read', 'monotonic-writes']]
    },
    {
      name: 'a dependency through several sessions',
      history: [
        put(1, 'a', '1.0.n1', 0, 10), get(2, 'a', '1.0.n1', 20, 30), put(2, 'b', '2.0.n2', 40, 50, 'y'),
        get(3, 'b', '2.0.n2', 60, 70, 'y'), put(3, 'c', '3.0.n3', 80, 90, 'z'), get(4, 'c', '3.0.n3', 100, 110, 'z'), get(4, null, null, 120, 130)
      ],
      violations: [['stale-read', 'writes-follow-reads']]
    },
    { name: 'cyclic: a get reads a write that comes after it in its session', history: [get(1, 'a', '1.0.n1', 0, 10), put(1, 'a', '1.0.n1', 20, 30)], violations: [['cyclic-causality', null]] },
    {
      name: 'cyclic across sessions',
      history: [get(1, 'b', '1.0.n2', 0, 10), put(1, 'a', '1.0.n1', 20, 30, 'y'), get(2, 'a', '1.0.n1', 0, 10, 'y'), put(2, 'b', '1.0.n2', 20, 30)],
      violations: [['cyclic-causality', null]]
    },
    { name: 'thin air: a version nothing wrote', history: [put(1, 'a', '1.0.n1', 0, 10), get(2, 'z', '9.0.n9', 20, 30)], violations: [['thin-air-read', null]] },
    { name: 'thin air: a version with another value', history: [put(1, 'a', '1.0.n1', 0, 10), get(2, 'b', '1.0.n1', 20, 30)], violations: [['thin-air-read', null]], involved: [0, 1] },
    { name: 'thin air: a version of another key', history: [put(1, 'a', '1.0.n1', 0, 10, 'y'), get(2, 'a', '1.0.n1', 20, 30)], violations: [['thin-air-read', null]] },
    { name: 'thin air: a value without a version', history: [put(1, 'a', '1.0.n1', 0, 10), get(2, 'a', null, 20, 30)], violations: [['thin-air-read', null]] },
    { name: 'thin air: a tombstone read as a value', history: [del(1, '1.0.n1', 0, 10), get(2, 'a', '1.0.n1', 20, 30)], violations: [['thin-air-read', null]] },
    { name: 'causality against arbitration in one session', history: [put(1, 'a', '2.0.n1', 0, 10), put(1, 'b', '1.0.n1', 20, 30)], violations: [['causality-against-arbitration', 'monotonic-writes']], involved: [0, 1] },
    {
      name: 'causality against arbitration across sessions',
      history: [put(1, 'a', '2.0.n1', 0, 10), get(2, 'a', '2.0.n1', 20, 30), put(2, 'b', '1.0.n2', 40, 50)],
      violations: [['causality-against-arbitration', 'writes-follow-reads']],
      involved: [0, 1, 2]
    },
    { name: 'two writes of a key with one version', history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '1.0.n1', 0, 10), get(3, 'b', '1.0.n1', 20, 30)], violations: [['duplicate-version', null]] },
    { name: 'an unanswered get constrains nothing', history: [put(1, 'a', '1.0.n1', 0, 10), get(1, null, null, 20, null)] },
    { name: 'an unanswered write nobody saw', history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null), get(3, 'a', '1.0.n1', 30, 40)] },
    { name: 'an unanswered write read later, with the version the store gave it', history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null), get(3, 'b', '5.0.n2', 30, 40), get(3, 'b', '5.0.n2', 50, 60), get(1, 'b', '5.0.n2', 70, 80)] },
    { name: 'an unanswered delete read later', history: [put(1, 'a', '1.0.n1', 0, 10), del(2, null, 20, null), get(3, null, '5.0.n2', 30, 40), get(3, null, '5.0.n2', 50, 60)] },
    { name: 'an unanswered write cannot be read before its call', history: [put(1, 'a', '1.0.n1', 0, 10), get(3, 'b', '5.0.n2', 20, 30), put(2, 'b', null, 40, null)], violations: [['thin-air-read', null]] },
    { name: 'an unanswered write has one version', history: [put(2, 'b', null, 0, null), get(3, 'b', '5.0.n2', 20, 30), get(4, 'b', '6.0.n2', 20, 30)], violations: [['thin-air-read', null]] },
    { name: 'an unanswered write, once read, stays read', history: [put(2, 'b', null, 0, null), get(3, 'b', '5.0.n2', 20, 30), get(3, null, null, 40, 50)], violations: [['stale-read', 'monotonic-reads']] },
    {
      name: 'an unanswered write is checked against its causal past',
      history: [put(1, 'a', '5.0.n1', 0, 10), get(2, 'a', '5.0.n1', 20, 30), put(2, 'b', null, 40, null), get(3, 'b', '1.0.n2', 50, 60)],
      violations: [['causality-against-arbitration', 'writes-follow-reads']]
    }
  ]
  for (const { name, history, violations = [], involved } of cases) {
    it(`${violations.length === 0 ? 'accepts' : 'rejects'}: ${name}`, () => {
      const report = checkCausal(history)
      assert.deepEqual(report.violations.map((violation) => [violation.kind, violation.guarantee]), violations, JSON.stringify(report.violations, null, 2))
      assert.equal(report.ok, violations.length === 0)
      assert.equal(report.verdict, violations.length === 0 ? 'causal' : 'not-causal')
      assert.equal(report.operations, history.length)
      if (involved !== undefined) assert.deepEqual(report.violations[0]?.operations.map((operation) => operation.index), involved)
      for (const violation of report.violations) assert.ok(violation.reason.length > 0)
    })
  }

  it('counts sessions and keys', () => {
    const report = checkCausal([put('a', 'a', '1.0.n1', 0, 10), put('b', 'b', '2.0.n1', 0, 10, 'y'), get('a', 'b', '2.0.n1', 20, 30, 'y'), get(3, null, null, 0, 10, 'z')])
    assert.deepEqual([report.sessions, report.keys, report.verdict], [3, 3, 'causal'])
  })

  it('explains a stale read with the operations and the guarantee', () => {
    const report = checkCausal([put(1, 'a', '1.0.n1', 0, 10), get(2, 'a', '1.0.n1', 20, 30), put(2, 'b', '2.0.n2', 40, 50, 'y'), get(3, 'b', '2.0.n2', 60, 70, 'y'), get(3, null, null, 80, 90)])
    const [violation] = report.violations
    assert.equal(violation?.key, 'x')
    assert.match(violation?.reason ?? '', /^#4 client 3 get = absent \[80, 90\] returned nothing, but its session read #2 client 2 put "b" \[40, 50\] @2\.0\.n2 in #3 .*, and that write causally follows #0 client 1 put "a" \[0, 10\] @1\.0\.n1$/)
  })

  it('names the operations of a cycle in order', () => {
    const report = checkCausal([get(1, 'a', '1.0.n1', 0, 10), get(1, null, null, 12, 15, 'y'), put(1, 'a', '1.0.n1', 20, 30)])
    const [violation] = report.violations
    assert.equal(violation?.kind, 'cyclic-causality')
    assert.equal(violation?.key, null)
    assert.deepEqual(violation?.operations.map((operation) => operation.index), [0, 1, 2])
    assert.match(violation?.reason ?? '', /a cycle of 3 operations \(a get read a write that comes after it in its session\): #0 .* -\(session order\)-> #1 .* -\(session order\)-> #2 .* -\(read by\)-> #0 /)
  })

  it('still checks what does not depend on a cycle', () => {
    const report = checkCausal([get(1, 'a', '1.0.n1', 0, 10), put(1, 'a', '1.0.n1', 20, 30), put(2, 'b', '1.0.n2', 0, 10, 'y'), get(2, null, null, 20, 30, 'y')])
    assert.deepEqual(report.violations.map((violation) => violation.kind).sort(), ['cyclic-causality', 'stale-read'])
  })
})

describe('the format', () => {
  const refuses = (history: KvHistoryOperation[], pattern: RegExp, details: Record<string, unknown>): void => {
    assert.throws(() => checkCausal(history), (error: unknown) => {
      assert.ok(error instanceof CheckError)
      assert.equal(error.code, 'CHECK_BAD_HISTORY')
      assert.match(error.message, pattern)
      assert.deepEqual(error.details, details)
      return true
    })
  }

  it('refuses a cas', () => {
    refuses([put(1, 'a', '1.0.n1', 0, 10), { client: 1, op: 'cas', key: 'x', expected: 'a', value: 'b', output: true, call_ns: 20, return_ns: 30 }], /^operation at index 1, field op: cas is not offered/, { index: 1, field: 'op' })
  })

  it('refuses answers without their version', () => {
    refuses([put(1, 'a', null, 0, 10)], /^operation at index 0, field version: a put that returned needs the version/, { index: 0, field: 'version' })
    refuses([del(1, null, 0, 10)], /^operation at index 0, field version: a delete that returned needs the version/, { index: 0, field: 'version' })
    refuses([{ client: 1, op: 'get', key: 'x', output: null, call_ns: 0, return_ns: 10 }], /^operation at index 0, field version: a get that returned needs the version it read/, { index: 0, field: 'version' })
  })

  it('refuses a version that is not one', () => {
    refuses([put(1, 'a', '1.0', 0, 10)], /^operation at index 0, field version: expected "<physicalMs>\.<logical>\.<node>"/, { index: 0, field: 'version' })
    refuses([put(1, 'a', '1.0.n 1', 0, 10)], /field version/, { index: 0, field: 'version' })
  })

  it('refuses a client that goes on after an operation that never returned', () => {
    refuses([put(1, 'a', null, 0, null), get(1, null, null, 20, 30)], /^operation at index 1, field client: client 1 goes on after operation at index 0, which never returned/, { index: 1, field: 'client' })
  })

  it('reads versions with parseHistory, and drops them from operations that never returned', () => {
    const text = [
      put(1, 'a', '1.0.n1', 0, 10),
      { ...put(2, 'b', null, 20, null), version: '2.0.n2' },
      get(3, 'a', '1.0.n1', 30, 40),
      { ...get(3, null, null, 50, 60), version: null }
    ].map((operation) => JSON.stringify(operation)).join('\n')
    assert.deepEqual(parseHistory(text), [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null), get(3, 'a', '1.0.n1', 30, 40), get(3, null, null, 50, 60)])
    assert.throws(() => parseHistory(JSON.stringify([{ ...put(1, 'a', null, 0, 10), version: 7 }])), (error: unknown) => error instanceof CheckError && /^operation at index 0, field version: /.test(error.message))
    assert.throws(() => parseHistory(JSON.stringify([put(1, 'a', 'v1', 0, 10)])), (error: unknown) => error instanceof CheckError && /^operation at index 0, field version: expected /.test(error.message))
  })

  it('orders versions by physical time, logical counter, then node', () => {
    const sorted = ['10.0.a', '9.5.z', '9.10.a', '9.10.b', '0009.11.a', '1.0.n-1', '1.0.n_1', '1.0.N1']
    sorted.sort(compareVersions)
    assert.deepEqual(sorted, ['1.0.N1', '1.0.n-1', '1.0.n_1', '9.5.z', '9.10.a', '9.10.b', '0009.11.a', '10.0.a'])
    assert.equal(compareVersions('12345678901234567890.0.a', '12345678901234567891.0.a'), -1)
    assert.equal(compareVersions('007.1.x', '7.1.x'), 0)
    assert.throws(() => compareVersions('7.1', '7.1.x'), CheckError)
  })

  it('describes an operation with its version', () => {
    assert.equal(describeVersionedOperation(put(1, 'a', '1.0.n1', 0, 10), 3), '#3 client 1 put "a" [0, 10] @1.0.n1')
    assert.equal(describeVersionedOperation(get(1, null, null, 0, 10)), 'client 1 get = absent [0, 10]')
  })
})

// ---------------------------------------------------------------------------------------------
// Histories from a causally consistent store

interface CausalStoreOptions {
  clients: number
  operations: number
  keys: number
  /** Chance, per operation, that a client pulls another client's replica state. */
  syncChance: number
  unreturnedChance: number
}

/**
 * A causally consistent store by construction: each client works on its own replica (key ->
 * version and value, tombstones included) and now and then merges another replica's whole state
 * (per key, the greater version). A write's version is a Lamport clock above everything its
 * replica has seen, so it exceeds every version in its causal past; a read returns the replica's
 * value, which is the greatest version of the key the replica has seen. A client whose
 * operation gets no answer goes on as a new session on the same replica.
 */
function causalStoreHistory (prng: Prng, options: CausalStoreOptions): KvHistoryOperation[] {
  const replicas = Array.from({ length: options.clients }, () => new Map<string, { version: string, counter: number, node: string, value: string | null }>())
  const clocks = new Array<number>(options.clients).fill(0)
  const generations = new Array<number>(options.clients).fill(0)
  const history: KvHistoryOperation[] = []
  let written = 0
  for (let count = 0; count < options.operations; count++) {
    const client = prng.int(0, options.clients - 1)
    const replica = replicas[client] as Map<string, { version: string, counter: number, node: string, value: string | null }>
    if (prng.chance(options.syncChance)) {
      const source = prng.int(0, options.clients - 1)
      for (const [key, entry] of replicas[source] as typeof replica) {
        const mine = replica.get(key)
        if (mine === undefined || mine.counter < entry.counter || (mine.counter === entry.counter && mine.node < entry.node)) replica.set(key, entry)
      }
      clocks[client] = Math.max(clocks[client] as number, clocks[source] as number)
    }
    const key = `k${prng.int(0, options.keys - 1)}`
    const op = prng.pick(['get', 'get', 'put', 'put', 'delete'] as const)
    const unreturned = prng.chance(options.unreturnedChance)
    const name = `c${client}.${generations[client] as number}`
    const call = count * 10
    const base = { client: name, key, call_ns: call, return_ns: unreturned ? null : call + 5 }
    if (op === 'get') {
      const entry = replica.get(key)
      history.push(unreturned ? { ...base, op } : { ...base, op, output: entry?.value ?? null, version: entry?.version ?? null })
    } else {
      const value = op === 'put' ? `v${written++}` : null
      const counter = (clocks[client] as number) + 1
      clocks[client] = counter
      const node = `n${client}`
      const version = `${counter}.0.${node}`
      // An unanswered write took effect half the time.
      if (!unreturned || prng.chance(0.5)) replica.set(key, { version, counter, node, value })
      history.push({ ...base, op, ...(op === 'put' ? { value: value as string } : {}), ...(unreturned ? {} : { version }) })
    }
    if (unreturned) generations[client] = (generations[client] as number) + 1
  }
  return history
}

describe('histories from a causally consistent store', () => {
  it('accepts small ones, many seeds', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const history = causalStoreHistory(createPrng(seed), { clients: 3, operations: 40, keys: 3, syncChance: 0.3, unreturnedChance: 0.05 })
      const report = checkCausal(history)
      assert.equal(report.verdict, 'causal', `seed ${seed}: ${JSON.stringify(report.violations[0], null, 2)}`)
    }
  })

  it('checks 20,000 operations over 10 clients and 100 keys', () => {
    const history = causalStoreHistory(createPrng(20_000), { clients: 10, operations: 20_000, keys: 100, syncChance: 0.2, unreturnedChance: 0.002 })
    assert.ok(history.some((operation) => operation.return_ns === null))
    const report = checkCausal(history)
    assert.equal(report.verdict, 'causal', JSON.stringify(report.violations[0], null, 2))
    assert.equal(report.operations, 20_000)
    assert.equal(report.keys, 100)
    assert.ok(report.sessions >= 10)

    // The last session that wrote a key, reading nothing from it afterwards: read-your-writes broken.
    const last = history.at(-1) as KvHistoryOperation
    const write = history.findLast((operation) => operation.op === 'put' && operation.return_ns !== null && !history.some((other) => other.client === operation.client && other.call_ns > operation.call_ns && other.return_ns === null)) as KvHistoryOperation
    const stale = get(write.client, null, null, last.call_ns + 100, last.call_ns + 110, write.key)
    const broken = checkCausal([...history, stale])
    assert.equal(broken.verdict, 'not-causal')
    assert.deepEqual(broken.violations.map((violation) => [violation.kind, violation.guarantee, violation.key]), [['stale-read', 'read-your-writes', write.key]])
  })
})
