/**
 * The store's `strong` level under crashes, across 5 real processes: 10 clients run random get,
 * put, delete and cas on 8 keys against random live nodes while a nemesis SIGKILLs one node (now
 * and then a second one: never more than 2 down) and restarts it from its data directory. Then
 * every node comes back and reads every key. The whole history, final reads included, must be
 * linearizable (src/check/linearizable.ts), and every node must read the same final value.
 *
 * The history is written under $TMPDIR, and `synod check linearizable FILE` checks it again from
 * the command line; it is kept when the test fails. A failing run keeps the cluster directory (node logs, LMDB) and
 * prints its path; SYNOD_SEED=n replays the same choices of keys, operations, nodes and victims
 * (not the same timing: these are real processes).
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkLinearizable, describeOperation, type KvHistoryOperation, type LinearizabilityReport } from '../../src/check/index.js'
import { createPrng, type Prng } from '../../src/core/index.js'
import { TestCluster, SYNOD_MAIN } from '../support/cluster.js'
import { KvHistoryRecorder, KvHttpClient, historyJson, type KvAnswer, type KvCall } from '../support/kv-history.js'
import { waitUntil } from '../support/ports.js'

const NODES = 5
const CLIENTS = 10
const KEYS = Array.from({ length: 8 }, (_, index) => `k${index}`)
const LOAD_MS = 30_000
const REQUEST_TIMEOUT_MS = 5_000
/** At most this many nodes down at once: with 3 replicas a key may lose its quorum (STORE_NO_QUORUM, a definite failure). */
const DOWN_MAX = 2
const OPERATIONS_OK_MIN = 500
const SETTLE_TIMEOUT_MS = 20_000
const FINAL_READ_ATTEMPTS_MAX = 20

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** A SIGKILL, in ms on the history's clock (call_ns / 1e6), with the operations in flight then. */
interface KillEvent { node: number, atMs: number, inFlight: number, downAfter: number, healthyAtMs?: number }

interface MembershipStatus { services: { membership?: { states?: { alive?: number } } } }

/** Runs `synod check linearizable FILE`; resolves with its exit code and output. */
async function runCheckCli (file: string): Promise<{ code: number | null, output: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SYNOD_MAIN, 'check', 'linearizable', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('error', reject)
    child.once('exit', (code) => { resolve({ code, output }) })
  })
}

function describeFailures (report: LinearizabilityReport): string {
  return report.failures.map((failure) => [
    `key ${JSON.stringify(failure.key)}: ${failure.verdict} (${failure.operations} operations, ${failure.searchSteps} steps)`,
    `  ${failure.reason}`,
    `  longest linearizable prefix: ${failure.linearizedMax} operations, value after it ${JSON.stringify(failure.valueAfterPrefix)}`,
    ...failure.prefixTail.map((operation) => `    prefix: ${describeOperation(operation, operation.index)}`),
    ...failure.stuck.map((operation) => `    stuck:  ${describeOperation(operation, operation.index)}`)
  ].join('\n')).join('\n')
}

describe('the strong store across 5 real processes, with nodes SIGKILLed and restarted', () => {
  const seed = process.env.SYNOD_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.SYNOD_SEED)
  let cluster: TestCluster
  let passed = false
  const suiteStartedMs = Date.now()
  const client = new KvHttpClient(REQUEST_TIMEOUT_MS)
  /** Nodes killed, or restarted and not yet healthy: clients leave them alone. */
  const down = new Set<number>()

  const everyNodeSeesAllAlive = async (): Promise<boolean> => {
    const views = await Promise.all(Array.from({ length: NODES }, async (_, index) => await cluster.getJson<MembershipStatus>(index, '/v1/status')))
    return views.every((view) => view?.services.membership?.states?.alive === NODES)
  }

  before(async () => {
    cluster = await TestCluster.create(NODES)
    await cluster.startAllHealthy()
    await waitUntil(everyNodeSeesAllAlive, SETTLE_TIMEOUT_MS, `every node sees all ${NODES} members alive`, 100)
  }, { timeout: 60_000 })

  after(async () => {
    await client.close()
    if (cluster === undefined) return
    for (let index = 0; index < NODES; index++) await cluster.kill(index)
    if (passed) rmSync(cluster.dir, { recursive: true, force: true })
    else console.log(`store-linearizable: kept the cluster directory (node logs node-N.log, data/) at ${cluster.dir}`)
  })

  it('keeps a linearizable history and loses no acknowledged write', { timeout: 110_000 }, async () => {
    const startedMs = Date.now()
    const prng = createPrng(seed)
    console.log(`store-linearizable: seed ${seed} (SYNOD_SEED=${seed} replays the same choices)`)
    const recorder = new KvHistoryRecorder()
    const kills: KillEvent[] = []
    const loadEndMs = Date.now() + LOAD_MS
    /** Set when the nemesis fails (a node that does not come back): the clients stop early. */
    let stopped = false

    const upNodes = (): number[] => Array.from({ length: NODES }, (_, index) => index).filter((index) => !down.has(index))

    const clientLoop = async (index: number, random: Prng): Promise<void> => {
      let name = String(index)
      let renames = 0
      let sequence = 0
      /** The last value this client saw per key: what its next cas expects. */
      const seen = new Map<string, string | null>()
      while (!stopped && Date.now() < loadEndMs) {
        const key = random.pick(KEYS)
        const roll = random.float()
        const call: KvCall = roll < 0.35
          ? { op: 'get', key }
          : roll < 0.6
            ? { op: 'put', key, value: `c${index}-${++sequence}` }
            : roll < 0.7
              ? { op: 'delete', key }
              : { op: 'cas', key, expected: seen.get(key) ?? null, value: `c${index}-${++sequence}` }
        const live = upNodes()
        const node = random.pick(live.length > 0 ? live : [0])
        const answer: KvAnswer = await recorder.record(name, node, call, async (sent) => await client.run(cluster.api(node), sent))
        if (answer.outcome === 'indefinite') {
          name = `${index}.${++renames}`
          continue
        }
        if (answer.outcome === 'failed') {
          await sleep(random.int(5, 50))
          continue
        }
        if (call.op === 'get') seen.set(key, answer.output as string | null)
        else if (call.op === 'put') seen.set(key, call.value)
        else if (call.op === 'delete') seen.set(key, null)
        else seen.set(key, answer.output === true ? call.value : answer.current ?? null)
      }
    }

    const kill = async (node: number): Promise<void> => {
      down.add(node)
      kills.push({ node, atMs: Math.round(recorder.nowNs() / 1e6), inFlight: recorder.inFlight, downAfter: down.size })
      await cluster.kill(node, 'SIGKILL')
    }
    const restart = async (node: number): Promise<void> => {
      cluster.start(node)
      await cluster.waitHealthy(node)
      down.delete(node)
      const event = kills.findLast((kill) => kill.node === node)
      if (event !== undefined) event.healthyAtMs = Math.round(recorder.nowNs() / 1e6)
    }

    const nemesis = async (random: Prng): Promise<void> => {
      await sleep(random.int(1_000, 2_000))
      while (Date.now() + 3_000 < loadEndMs) {
        const victims = [random.pick(upNodes())]
        await kill(victims[0] as number)
        const downMs = random.int(2_000, 4_000)
        let waitedMs = 0
        if (down.size < DOWN_MAX && random.chance(0.35)) {
          waitedMs = random.int(500, 1_500)
          await sleep(waitedMs)
          const second = random.pick(upNodes())
          victims.push(second)
          await kill(second)
        }
        await sleep(downMs - waitedMs)
        await Promise.all(victims.map(restart))
        await sleep(random.int(500, 1_500))
      }
    }

    const nemesisDone = nemesis(prng.fork('nemesis')).then(() => null, (error: unknown) => { stopped = true; return error })
    await Promise.all(Array.from({ length: CLIENTS }, async (_, index) => { await clientLoop(index, prng.fork(`client-${index}`)) }))
    const nemesisError = await nemesisDone
    if (nemesisError !== null) throw nemesisError
    const loadDoneMs = Date.now() - startedMs

    // Everyone back, and known alive by everyone: then every node reads every key.
    await Promise.all([...down].map(restart))
    await waitUntil(everyNodeSeesAllAlive, SETTLE_TIMEOUT_MS, `every node sees all ${NODES} members alive after the load`, 100)
    const finalValues = new Map<string, Array<string | null>>()
    for (const key of KEYS) {
      const values: Array<string | null> = []
      for (let node = 0; node < NODES; node++) {
        let value: string | null | undefined
        for (let attempt = 1; value === undefined; attempt++) {
          const answer = await recorder.record(`final-${node}.${key}.${attempt}`, node, { op: 'get', key }, async (sent) => await client.run(cluster.api(node), sent))
          if (answer.outcome === 'ok') value = answer.output as string | null
          else if (attempt >= FINAL_READ_ATTEMPTS_MAX) assert.fail(`node ${node} could not read ${key} after ${attempt} attempts: ${answer.code}`)
          else await sleep(250)
        }
        values.push(value)
      }
      finalValues.set(key, values)
    }

    const history = recorder.operations
    const historyFile = join(tmpdir(), `synod-store-history-${seed}-${process.pid}.json`)
    writeFileSync(historyFile, historyJson(history))
    const checkStartedMs = Date.now()
    const report = checkLinearizable(history)
    const checkMs = Date.now() - checkStartedMs
    const indefinite = recorder.indefiniteCount()
    const kept = history.filter((operation: KvHistoryOperation) => !operation.client.toString().startsWith('final-')).length
    console.log([
      `store-linearizable: verdict ${report.verdict}: ${report.operations} operations (${kept} under load), ${recorder.tally.ok} answered, ${indefinite} indefinite ${JSON.stringify(recorder.tally.indefinite)}, ` +
        `definite failures ${JSON.stringify(recorder.tally.failed)}; checked in ${checkMs} ms (${report.searchSteps} search steps)`,
      `store-linearizable: ${kills.length} kills ${JSON.stringify(kills)}; load ended at ${loadDoneMs} ms`,
      `store-linearizable: final values ${JSON.stringify(Object.fromEntries([...finalValues].map(([key, values]) => [key, values[0]])))}`,
      `store-linearizable: history in ${historyFile} (kept if this test fails; check it again with: node dist/src/cli/main.js check linearizable ${historyFile})`
    ].join('\n'))
    if (!report.ok) {
      const copy = join(cluster.dir, 'history.json')
      writeFileSync(copy, historyJson(history))
      assert.fail(`the history is ${report.verdict} (seed ${seed}); history ${historyFile} (copy ${copy}), node logs in ${cluster.dir}\n${describeFailures(report)}`)
    }
    assert.deepEqual(recorder.tally.unexpected, [], 'answers outside the HTTP contract')
    for (const [key, values] of finalValues) {
      assert.ok(values.every((value) => value === values[0]), `every node reads the same final ${key}: ${JSON.stringify(values)}`)
    }
    assert.ok(recorder.tally.ok >= OPERATIONS_OK_MIN, `at least ${OPERATIONS_OK_MIN} operations answered, got ${recorder.tally.ok}`)
    assert.ok(kills.some((event) => event.inFlight > 0), `a node was killed while operations were in flight: ${JSON.stringify(kills)}`)

    const cli = await runCheckCli(historyFile)
    console.log(`store-linearizable: synod check linearizable exited ${cli.code}:\n${cli.output.trimEnd()}`)
    assert.equal(cli.code, 0, 'synod check linearizable accepts the saved history')
    console.log(`store-linearizable: wall time ${Date.now() - suiteStartedMs} ms (cluster start included), ${Date.now() - startedMs} ms since the load began`)
    passed = true
    rmSync(historyFile, { force: true })
  })
})
