/**
 * The convergence checker: replicas of a key must hold the same set of versioned values, and
 * every acknowledged write must be held or superseded by a greater version. Also the input
 * file's format and its errors.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CheckError, checkConvergence, parseConvergenceInput, type ConvergenceInput, type ConvergenceViolationKind, type KvHistoryOperation, type ReplicaKeyState } from '../../src/check/index.js'

const put = (client: number, value: string, version: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'put', key, value, ...(version === null ? {} : { version }), call_ns: call, return_ns: ret })
const del = (client: number, version: string | null, call: number, ret: number | null, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'delete', key, ...(version === null ? {} : { version }), call_ns: call, return_ns: ret })
const get = (client: number, output: string | null, version: string | null, call: number, ret: number, key = 'x'): KvHistoryOperation =>
  ({ client, op: 'get', key, output, version, call_ns: call, return_ns: ret })
const replica = (node: string, values: Array<[string | null, string]>, key = 'x'): ReplicaKeyState =>
  ({ node, key, values: values.map(([value, version]) => ({ value, version })) })
const everywhere = (values: Array<[string | null, string]>, key = 'x'): ReplicaKeyState[] => ['n1', 'n2', 'n3'].map((node) => replica(node, values, key))

describe('checkConvergence', () => {
  const cases: Array<{ name: string, input: ConvergenceInput, violations?: Array<[ConvergenceViolationKind, string]> }> = [
    { name: 'nothing at all', input: { replicas: [], history: [] } },
    { name: 'one last writer everywhere, the earlier write superseded', input: { replicas: everywhere([['b', '2.0.n2']]), history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '2.0.n2', 0, 10), get(1, 'b', '2.0.n2', 20, 30)] } },
    { name: 'versions compare numerically', input: { replicas: everywhere([['b', '10.0.n1']]), history: [put(1, 'a', '9.0.n1', 0, 10), put(1, 'b', '10.0.n1', 20, 30)] } },
    { name: 'a tombstone everywhere', input: { replicas: everywhere([[null, '2.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), del(1, '2.0.n1', 20, 30)] } },
    { name: 'a write superseded by a delete', input: { replicas: everywhere([[null, '2.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '1.5.n2', 0, 10), del(1, '2.0.n1', 20, 30)] } },
    {
      name: 'siblings compared as sets',
      input: { replicas: [replica('n1', [['a', '1.0.n1'], ['b', '1.0.n2']]), replica('n2', [['b', '1.0.n2'], ['a', '1.0.n1'], ['a', '1.0.n1']])], history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '1.0.n2', 0, 10)] }
    },
    { name: 'writes that never returned may be anywhere or nowhere', input: { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null), del(3, null, 20, null, 'y')] } },
    { name: 'keys are independent', input: { replicas: [...everywhere([['a', '1.0.n1']]), ...everywhere([['b', '1.0.n2']], 'y')], history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '1.0.n2', 0, 10, 'y')] } },
    { name: 'diverged: different last writers', input: { replicas: [replica('n1', [['a', '1.0.n1']]), replica('n2', [['b', '2.0.n2']]), replica('n3', [['b', '2.0.n2']])], history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '2.0.n2', 0, 10)] }, violations: [['diverged', 'x']] },
    { name: 'diverged: one replica holds nothing', input: { replicas: [replica('n1', [['a', '1.0.n1']]), replica('n2', [])], history: [put(1, 'a', '1.0.n1', 0, 10)] }, violations: [['diverged', 'x']] },
    { name: 'diverged: different sibling sets', input: { replicas: [replica('n1', [['a', '1.0.n1'], ['b', '1.0.n2']]), replica('n2', [['a', '1.0.n1']])], history: [] }, violations: [['diverged', 'x']] },
    { name: 'diverged: a tombstone against a value with its version', input: { replicas: [replica('n1', [[null, '1.0.n1']]), replica('n2', [['a', '1.0.n1']])], history: [] }, violations: [['diverged', 'x']] },
    { name: 'lost write: acknowledged, then on no replica', input: { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', '2.0.n2', 20, 30)] }, violations: [['lost-write', 'x']] },
    { name: 'lost write: a delete forgotten', input: { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), del(2, '2.0.n2', 20, 30)] }, violations: [['lost-write', 'x']] },
    { name: 'lost write: replicas hold nothing', input: { replicas: everywhere([]), history: [put(1, 'a', '1.0.n1', 0, 10)] }, violations: [['lost-write', 'x']] },
    { name: 'lost write: a key no replica lists', input: { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), put(1, 'b', '2.0.n1', 20, 30, 'y'), del(1, '3.0.n1', 40, 50, 'y')] }, violations: [['lost-write', 'y'], ['lost-write', 'y']] },
    { name: 'lost write: its version holds another value', input: { replicas: everywhere([['z', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10)] }, violations: [['lost-write', 'x']] },
    {
      name: 'diverged and lost at once',
      input: { replicas: [replica('n1', [['a', '1.0.n1']]), replica('n2', [])], history: [put(1, 'a', '1.0.n1', 0, 10), put(1, 'b', '2.0.n1', 20, 30)] },
      violations: [['diverged', 'x'], ['lost-write', 'x']]
    }
  ]
  for (const { name, input, violations = [] } of cases) {
    it(`${violations.length === 0 ? 'accepts' : 'rejects'}: ${name}`, () => {
      const report = checkConvergence(input)
      assert.deepEqual(report.violations.map((violation) => [violation.kind, violation.key]), violations, JSON.stringify(report.violations, null, 2))
      assert.equal(report.ok, violations.length === 0)
      assert.equal(report.verdict, violations.length === 0 ? 'converged' : 'not-converged')
    })
  }

  it('counts keys, replicas and acknowledged writes', () => {
    const report = checkConvergence({ replicas: [replica('n1', [['a', '1.0.n1']]), replica('n2', [['a', '1.0.n1']]), replica('n1', [], 'y')], history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null, 'z'), get(1, null, null, 0, 10, 'w')] })
    assert.deepEqual([report.keys, report.replicas, report.writes], [3, 2, 1])
  })

  it('explains a divergence with each replica\'s values, and a lost write with the write', () => {
    const diverged = checkConvergence({ replicas: [replica('n2', [['b', '2.0.n2']]), replica('n1', [['a', '1.0.n1']]), replica('n3', [['b', '2.0.n2']])], history: [] }).violations[0]
    assert.equal(diverged?.reason, 'the 3 replicas of key "x" hold 2 different states: n1 holds "a"@1.0.n1; n2, n3 hold "b"@2.0.n2')
    assert.deepEqual(diverged?.replicas.map((state) => state.node), ['n1', 'n2', 'n3'])
    const lost = checkConvergence({ replicas: everywhere([[null, '1.0.n1']]), history: [del(1, '1.0.n1', 0, 10), put(2, 'b', '0.9.n2', 20, 30)] }).violations
    assert.equal(lost.length, 0, 'an older write superseded by a tombstone is not lost')
    const [missing] = checkConvergence({ replicas: everywhere([[null, '1.0.n1']]), history: [put(2, 'b', '3.0.n2', 20, 30)] }).violations
    assert.equal(missing?.reason, '#0 client 2 put "b" [20, 30] @3.0.n2 was acknowledged, but no replica holds it or a greater version (n1: tombstone@1.0.n1; n2: tombstone@1.0.n1; n3: tombstone@1.0.n1)')
    assert.deepEqual(missing?.operations.map((operation) => operation.index), [0])
  })
})

describe('parseConvergenceInput', () => {
  it('reads a file', () => {
    const input = { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10), { ...put(2, 'b', null, 20, null), node: 'n2' }] }
    const parsed = parseConvergenceInput(JSON.stringify(input))
    assert.deepEqual(parsed, { replicas: input.replicas, history: [put(1, 'a', '1.0.n1', 0, 10), put(2, 'b', null, 20, null)] })
    assert.equal(checkConvergence(parsed).verdict, 'converged')
  })

  const valid = { replicas: everywhere([['a', '1.0.n1']]), history: [put(1, 'a', '1.0.n1', 0, 10)] }
  const errors: Array<{ name: string, text: string, message: RegExp, details: Record<string, unknown> }> = [
    { name: 'not JSON', text: '{"replicas": [', message: /^convergence input: not JSON/, details: {} },
    { name: 'an array', text: '[]', message: /^convergence input: expected an object with "replicas" and "history"/, details: {} },
    { name: 'no replicas', text: JSON.stringify({ history: [] }), message: /^convergence input, field replicas: /, details: { field: 'replicas' } },
    { name: 'no history', text: JSON.stringify({ replicas: [] }), message: /^convergence input, field history: expected a JSON array of operations/, details: { field: 'history' } },
    { name: 'a bad version', text: JSON.stringify({ ...valid, replicas: [replica('n1', [['a', 'v1']])] }), message: /^convergence input, field replicas\.0\.values\.0\.version: expected a version/, details: { field: 'replicas.0.values.0.version' } },
    { name: 'a value that is not a string or null', text: JSON.stringify({ ...valid, replicas: [{ node: 'n1', key: 'x', values: [{ value: 3, version: '1.0.n1' }] }] }), message: /field replicas\.0\.values\.0\.value: /, details: { field: 'replicas.0.values.0.value' } },
    { name: 'a replica listing a key twice', text: JSON.stringify({ ...valid, replicas: [replica('n1', []), replica('n1', [])] }), message: /^convergence input, field replicas\.1: node "n1" lists key "x" twice/, details: { field: 'replicas.1' } },
    { name: 'a bad operation', text: JSON.stringify({ ...valid, history: [put(1, 'a', '1.0.n1', 0, 10), { ...put(1, 'b', null, 20, 30), value: undefined }] }), message: /^history, operation at index 1, field value: a put needs the value/, details: { index: 1, field: 'value' } },
    { name: 'a cas', text: JSON.stringify({ ...valid, history: [{ client: 1, op: 'cas', key: 'x', expected: null, value: 'a', output: true, call_ns: 0, return_ns: 10 }] }), message: /^history, operation at index 0, field op: cas is not offered/, details: { index: 0, field: 'op' } }
  ]
  for (const { name, text, message, details } of errors) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseConvergenceInput(text), (error: unknown) => {
        assert.ok(error instanceof CheckError)
        assert.equal(error.code, 'CHECK_BAD_HISTORY')
        assert.match(error.message, message)
        assert.deepEqual(error.details, details)
        return true
      })
    })
  }
})
