/** `synod check linearizable|causal|convergence FILE`: the summary each prints and its exit codes (0 yes, 1 no, 2 undecided or unusable). */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CausalReport, ConvergenceReport, KvHistoryOperation, LinearizabilityReport } from '../../src/check/index.js'
import { SYNOD_MAIN } from '../support/cluster.js'

interface Run { code: number, stdout: string, stderr: string }

async function synodCheck (...args: string[]): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [SYNOD_MAIN, 'check', ...args], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

const directory = mkdtempSync(join(tmpdir(), 'synod-check-'))
after(() => { rmSync(directory, { recursive: true, force: true }) })
let files = 0
function historyFile (content: string): string {
  const file = join(directory, `history-${files++}.json`)
  writeFileSync(file, content)
  return file
}
const jsonLines = (operations: KvHistoryOperation[]): string => operations.map((operation) => JSON.stringify(operation)).join('\n') + '\n'

const good: KvHistoryOperation[] = [
  { client: 1, op: 'put', key: 'x', value: 'a', call_ns: 0, return_ns: 10 },
  { client: 2, op: 'get', key: 'x', output: 'a', call_ns: 5, return_ns: 20 },
  { client: 'c3', op: 'cas', key: 'y', expected: null, value: 'b', output: true, call_ns: 0, return_ns: 30 },
  { client: 1, op: 'put', key: 'x', value: 'c', call_ns: 40, return_ns: null }
]
const stale: KvHistoryOperation[] = [
  { client: 1, op: 'put', key: 'x', value: 'a', call_ns: 0, return_ns: 10 },
  { client: 1, op: 'put', key: 'x', value: 'b', call_ns: 20, return_ns: 30 },
  { client: 2, op: 'get', key: 'x', output: 'a', call_ns: 40, return_ns: 50 }
]
const racing: KvHistoryOperation[] = [
  { client: 1, op: 'put', key: 'x', value: 'a', call_ns: 0, return_ns: 10 },
  { client: 2, op: 'put', key: 'x', value: 'b', call_ns: 0, return_ns: 10 },
  { client: 1, op: 'get', key: 'x', output: 'a', call_ns: 20, return_ns: 30 },
  { client: 2, op: 'get', key: 'x', output: 'b', call_ns: 40, return_ns: 50 }
]

describe('synod check linearizable', () => {
  it('exits 0 on a linearizable history (JSON Lines) and prints the summary', async () => {
    const run = await synodCheck('linearizable', historyFile(jsonLines(good)))
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^operations\s+4$/m)
    assert.match(run.stdout, /^keys\s+2$/m)
    assert.match(run.stdout, /^verdict\s+linearizable$/m)
    assert.match(run.stdout, /^time\s+\d+ ms \(\d+ search steps\)$/m)
  })

  it('exits 1 on a history that is not (JSON array), naming the key, the kind and the operations', async () => {
    const direct = await synodCheck('linearizable', historyFile(JSON.stringify(stale)))
    assert.equal(direct.code, 1, direct.stderr)
    assert.match(direct.stdout, /^verdict\s+not-linearizable$/m)
    assert.match(direct.stdout, /^key "x": not-linearizable, stale-read \(3 operations\)$/m)
    assert.match(direct.stdout, /^ {4}#2 client 2 get = "a" \[40, 50\]$/m)

    const searched = await synodCheck('linearizable', historyFile(JSON.stringify(racing)))
    assert.equal(searched.code, 1, searched.stderr)
    assert.match(searched.stdout, /^key "x": not-linearizable, no-linearization \(4 operations\)$/m)
    assert.match(searched.stdout, /end of the longest linearizable prefix:/)
    assert.match(searched.stdout, /operations that could come next:\n {4}#3 client 2 get = "b" \[40, 50\]/)
  })

  it('exits 2 when the search limit leaves a key undecided', async () => {
    const run = await synodCheck('linearizable', '--search-steps-max', '1', historyFile(JSON.stringify(racing)))
    assert.equal(run.code, 2, run.stderr)
    assert.match(run.stdout, /^verdict\s+unknown$/m)
    assert.match(run.stdout, /search-limit/)
  })

  it('prints the whole report with --json', async () => {
    const run = await synodCheck('linearizable', '--json', historyFile(JSON.stringify(racing)))
    assert.equal(run.code, 1)
    const report = JSON.parse(run.stdout) as LinearizabilityReport & { elapsedMs: number, file: string }
    assert.equal(report.verdict, 'not-linearizable')
    assert.equal(report.failures[0]?.kind, 'no-linearization')
    assert.equal(typeof report.elapsedMs, 'number')
  })

  it('exits 2 with a typed error on a file that is not a history, or not there', async () => {
    const cases: Array<[string, RegExp]> = [
      [historyFile('{"client": 1, "op": "get", "key": "x", "output": null, "return_ns": 5}\n'), /^error CLI_BAD_INPUT: .* is not a store history: line 1, field call_ns: /],
      [historyFile('[{"client": 1, "op": "increment", "key": "x", "call_ns": 0, "return_ns": 5}]'), /^error CLI_BAD_INPUT: .* is not a store history: operation at index 0, field op: /],
      [historyFile('{"client": 1, "op": "put", "key": "x", "value": "a", "call_ns": 9, "return_ns": 5}'), /^error CLI_BAD_INPUT: .* is not a store history: line 1, field return_ns: the operation returns \(5\) before it is called \(9\)/],
      [join(directory, 'missing.json'), /^error CLI_BAD_INPUT: cannot read /]
    ]
    for (const [file, pattern] of cases) {
      const run = await synodCheck('linearizable', file)
      assert.equal(run.code, 2)
      assert.match(run.stderr, pattern)
    }
  })

  it('lists linearizable under `synod check --help`', async () => {
    const run = await synodCheck('--help')
    assert.equal(run.code, 0)
    assert.match(run.stdout, /linearizable \[options\] <file>/)
  })
})

const causalGood: KvHistoryOperation[] = [
  { client: 1, op: 'put', key: 'x', value: 'a', version: '1.0.n1', call_ns: 0, return_ns: 10 },
  { client: 2, op: 'get', key: 'x', output: 'a', version: '1.0.n1', call_ns: 20, return_ns: 30 },
  { client: 2, op: 'delete', key: 'x', version: '2.0.n2', call_ns: 40, return_ns: 50 },
  { client: 1, op: 'get', key: 'y', output: null, version: null, call_ns: 20, return_ns: 30 }
]
const causalStale: KvHistoryOperation[] = [
  { client: 1, op: 'put', key: 'x', value: 'a', version: '1.0.n1', call_ns: 0, return_ns: 10 },
  { client: 1, op: 'put', key: 'x', value: 'b', version: '2.0.n1', call_ns: 20, return_ns: 30 },
  { client: 1, op: 'get', key: 'x', output: 'a', version: '1.0.n1', call_ns: 40, return_ns: 50 }
]

describe('synod check causal', () => {
  it('exits 0 on a causal history (JSON Lines) and prints the summary', async () => {
    const run = await synodCheck('causal', historyFile(jsonLines(causalGood)))
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^operations\s+4$/m)
    assert.match(run.stdout, /^sessions\s+2$/m)
    assert.match(run.stdout, /^keys\s+2$/m)
    assert.match(run.stdout, /^verdict\s+causal$/m)
  })

  it('exits 1 on a history that is not (JSON array), naming the kind, the guarantee and the operations', async () => {
    const run = await synodCheck('causal', historyFile(JSON.stringify(causalStale)))
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stdout, /^verdict\s+not-causal$/m)
    assert.match(run.stdout, /^stale-read \(key "x", read-your-writes\)$/m)
    assert.match(run.stdout, /^ {4}#1 client 1 put "b" \[20, 30\] @2\.0\.n1$/m)
  })

  it('prints the whole report with --json', async () => {
    const run = await synodCheck('causal', '--json', historyFile(JSON.stringify(causalStale)))
    assert.equal(run.code, 1)
    const report = JSON.parse(run.stdout) as CausalReport & { elapsedMs: number }
    assert.equal(report.verdict, 'not-causal')
    assert.equal(report.violations[0]?.guarantee, 'read-your-writes')
    assert.equal(typeof report.elapsedMs, 'number')
  })

  it('exits 2 on a file it cannot use: a cas, an answer without its version, not a history', async () => {
    const cases: Array<[string, RegExp]> = [
      [historyFile(jsonLines([...causalGood, { client: 3, op: 'cas', key: 'x', expected: null, value: 'c', output: true, call_ns: 60, return_ns: 70 }])), /^error CLI_BAD_INPUT: .* is not a causal store history: operation at index 4, field op: cas is not offered/],
      [historyFile(jsonLines([{ client: 1, op: 'put', key: 'x', value: 'a', call_ns: 0, return_ns: 10 }])), /^error CLI_BAD_INPUT: .* is not a causal store history: operation at index 0, field version: /],
      [historyFile('{"client": 1, "op": "get", "key": "x", "output": null, "version": "v1", "call_ns": 0, "return_ns": 5}\n'), /^error CLI_BAD_INPUT: .* is not a store history: line 1, field version: /],
      [join(directory, 'missing.json'), /^error CLI_BAD_INPUT: cannot read /]
    ]
    for (const [file, pattern] of cases) {
      const run = await synodCheck('causal', file)
      assert.equal(run.code, 2)
      assert.match(run.stderr, pattern)
    }
  })
})

const replicas = (values: Array<{ value: string | null, version: string }>): Array<{ node: string, key: string, values: typeof values }> =>
  ['n1', 'n2'].map((node) => ({ node, key: 'x', values }))

describe('synod check convergence', () => {
  const history = [causalGood[0], causalGood[2]] as KvHistoryOperation[]

  it('exits 0 when the replicas converged and kept every acknowledged write', async () => {
    const run = await synodCheck('convergence', historyFile(JSON.stringify({ replicas: replicas([{ value: null, version: '2.0.n2' }]), history })))
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^replicas\s+2$/m)
    assert.match(run.stdout, /^keys\s+1$/m)
    assert.match(run.stdout, /^writes\s+2 acknowledged$/m)
    assert.match(run.stdout, /^verdict\s+converged$/m)
  })

  it('exits 1 on diverged replicas and on a lost write', async () => {
    const diverged = await synodCheck('convergence', historyFile(JSON.stringify({
      replicas: [{ node: 'n1', key: 'x', values: [{ value: null, version: '2.0.n2' }] }, { node: 'n2', key: 'x', values: [{ value: 'a', version: '1.0.n1' }] }],
      history
    })))
    assert.equal(diverged.code, 1, diverged.stderr)
    assert.match(diverged.stdout, /^verdict\s+not-converged$/m)
    assert.match(diverged.stdout, /^diverged \(key "x"\)$/m)
    assert.match(diverged.stdout, /^ {4}n2: "a"@1\.0\.n1$/m)

    const lost = await synodCheck('convergence', '--json', historyFile(JSON.stringify({ replicas: replicas([{ value: 'a', version: '1.0.n1' }]), history })))
    assert.equal(lost.code, 1, lost.stderr)
    const report = JSON.parse(lost.stdout) as ConvergenceReport
    assert.deepEqual(report.violations.map((violation) => [violation.kind, violation.operations[0]?.index]), [['lost-write', 1]])
  })

  it('exits 2 on a file it cannot use', async () => {
    const cases: Array<[string, RegExp]> = [
      [historyFile(jsonLines(causalGood)), /^error CLI_BAD_INPUT: .* is not a convergence input: convergence input: not JSON/],
      [historyFile(JSON.stringify({ replicas: [{ node: 'n1', key: 'x', values: [{ value: 'a', version: '1' }] }], history })), /^error CLI_BAD_INPUT: .* is not a convergence input: convergence input, field replicas\.0\.values\.0\.version: /],
      [join(directory, 'missing.json'), /^error CLI_BAD_INPUT: cannot read /]
    ]
    for (const [file, pattern] of cases) {
      const run = await synodCheck('convergence', file)
      assert.equal(run.code, 2)
      assert.match(run.stderr, pattern)
    }
  })

  it('lists the checkers under `synod check --help`', async () => {
    const run = await synodCheck('--help')
    assert.equal(run.code, 0)
    assert.match(run.stdout, /causal \[options\] <file>/)
    assert.match(run.stdout, /convergence \[options\] <file>/)
  })
})
