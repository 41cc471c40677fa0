/** `synod check linearizable FILE`: the summary it prints and its exit codes (0 yes, 1 no, 2 undecided or unusable). */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KvHistoryOperation, LinearizabilityReport } from '../../src/check/index.js'
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
