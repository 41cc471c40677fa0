/**
 * Consensus benchmark: PoS and DPoS on 4 local processes (`synod up`, real libp2p, LMDB, HTTP)
 * under a load of signed transfers, in one run:
 * - the Ed25519 verification limit of this machine: verifications per second on one core (the
 *   same `verify` the ledger uses) x cores / nodes, in transactions per second: every node must
 *   verify every transaction once, and all four share these cores;
 * - per engine and offered rate: transactions finalized per second in the steady window, and
 *   finality latency p50/p99: from the moment the bench submitted a transaction to the moment it
 *   saw the transaction's block final (PoS: committed; DPoS: irreversible) on node 0, polled
 *   every 50 ms.
 *
 * The load is pre-signed before it is measured, from 200 senders funded first, submitted in
 * batches of 50 (`POST /v1/txs`) over keep-alive HTTP (undici) to the four nodes in turn at a
 * steady offered rate.
 * Targets (issue 6): >= 1 000 finalized tx/s, p99 finality <= 3 s, >= 50% of the limit.
 */
import { availableParallelism } from 'node:os'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { fromHex, keyPairFromSeed, sha256, sign, verify, type Ed25519KeyPair } from '../src/core/index.js'
import { addressFromPublicKey, signTx, txToJson, type Address } from '../src/ledger/index.js'
import { freeBasePort, getJson, runSynodUp, stopAllUpRuns } from '../test/support/cluster.js'
import { percentile, type BenchResult } from './util.js'

const NODES = 4
const SENDERS = 200
const FUNDING = 10_000_000n
const PHASE_MS = 15_000
const DRAIN_MS = 8_000
const IN_FLIGHT_MAX = 64
/** Transactions per `POST /v1/txs` request, as a wallet or an exchange batches them; `SYNOD_BENCH_BATCH` changes it. */
const BATCH_TXS = Number(process.env.SYNOD_BENCH_BATCH ?? 50)
const TARGET_TPS = 1_000
const TARGET_P99_MS = 3_000
const TARGET_SHARE = 0.5
/** Offered rates and engines; `SYNOD_BENCH_RATES=1000,2000` and `SYNOD_BENCH_ENGINES=pos` narrow a run. */
const OFFERED_RATES = (process.env.SYNOD_BENCH_RATES ?? '1000,1500,1800').split(',').map(Number).filter((rate) => rate > 0)
const ALL_ENGINES = ['pos', 'dpos'] as const
const ENGINES = ALL_ENGINES.filter((engine) => (process.env.SYNOD_BENCH_ENGINES ?? 'pos,dpos').split(',').includes(engine))

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Single-thread Ed25519 verifications per second on ~150-byte messages. */
function verificationsPerSecond (): number {
  const key = keyPairFromSeed(sha256(Uint8Array.of(1)))
  const messages = Array.from({ length: 256 }, (_, index) => sha256(Uint8Array.of(index)).subarray(0, 32))
  const signed = messages.map((message) => { const long = new Uint8Array(150); long.set(message); return { message: long, signature: sign(key, long) } })
  let done = 0
  const started = performance.now()
  while (performance.now() - started < 2_000) {
    for (const item of signed) if (!verify(key.publicKey, item.message, item.signature)) throw new Error('verify failed')
    done += signed.length
  }
  return done / ((performance.now() - started) / 1000)
}

interface ChainBody { finalizedHeight: number | null, head: { height: number }, chainId: string }
interface BlockBody { txs: Array<{ hash: string }> }

interface PhaseResult { engine: string, offered: number, submitted: number, refused: number, finalized: number, tps: number, p50: number, p99: number, cpuUsPerTx: number, clientCpuUsPerTx: number }

/** CPU seconds (user + system) a process used so far, from /proc (Linux); 0 elsewhere. */
function cpuSeconds (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

async function runEngine (engine: typeof ALL_ENGINES[number], limitTps: number, progress: (line: string) => void): Promise<PhaseResult[]> {
  const dataDir = mkdtempSync(join(tmpdir(), `synod-bench-${engine}-`))
  const basePort = await freeBasePort(NODES)
  const apis = Array.from({ length: NODES }, (_, index) => `http://127.0.0.1:${basePort + 100 + index}`)
  const pools = apis.map((api) => new Pool(api, { connections: 8, pipelining: 1 }))
  const results: PhaseResult[] = []
  try {
    progress(`${engine}: starting 4 nodes`)
    const up = runSynodUp(dataDir, basePort, ['--nodes', String(NODES), '--consensus', engine])
    await up.ready
    const chain = async (): Promise<ChainBody | null> => await getJson<ChainBody>(`${apis[0]}/v1/chain`)
    while (((await chain())?.finalizedHeight ?? 0) < 2) await sleep(200)
    const chainId = (await chain() as ChainBody).chainId
    const pids = await Promise.all(apis.map(async (api) => (await getJson<{ pid: number }>(`${api}/v1/status`))?.pid ?? 0))
    const nodesCpu = (): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)

    // Finality watcher: every tx hash's first sighting in a final block on node 0.
    const finalAt = new Map<string, number>()
    let watched = (await chain())?.finalizedHeight ?? 0
    let watching = true
    const watcher = (async () => {
      while (watching) {
        const final = (await chain())?.finalizedHeight ?? watched
        const now = performance.now()
        for (let height = watched + 1; height <= final; height++) {
          const block = await getJson<BlockBody>(`${apis[0]}/v1/blocks/${height}`)
          for (const tx of block?.txs ?? []) if (!finalAt.has(tx.hash)) finalAt.set(tx.hash, now)
        }
        watched = Math.max(watched, final)
        await sleep(50)
      }
    })()

    const post = async (node: number, body: string): Promise<{ ok: boolean, hash?: string }> => {
      const response = await (pools[node] as Pool).request({ path: '/v1/tx', method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const text = await response.body.text()
      return response.statusCode === 202 ? { ok: true, hash: (JSON.parse(text) as { hash: string }).hash } : { ok: false }
    }

    const postBatch = async (node: number, body: string): Promise<boolean[]> => {
      const response = await (pools[node] as Pool).request({ path: '/v1/txs', method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const text = await response.body.text()
      if (response.statusCode !== 202) return []
      return (JSON.parse(text) as { results: Array<{ status: string }> }).results.map((result) => result.status === 'pending')
    }

    // Fund the senders from the node accounts (50 each, within the pool's nonce gap).
    const nodeKeys: Ed25519KeyPair[] = Array.from({ length: NODES }, (_, index) => keyPairFromSeed(fromHex((JSON.parse(readFileSync(join(dataDir, 'data', `node-${index}`, 'node.key'), 'utf8')) as { seed: string }).seed)))
    const senders: Ed25519KeyPair[] = Array.from({ length: SENDERS }, (_, index) => keyPairFromSeed(sha256(new TextEncoder().encode(`bench-sender-${engine}-${index}`))))
    const funding = senders.map((sender, index) => {
      const from = nodeKeys[index % NODES] as Ed25519KeyPair
      const { hash, ...json } = txToJson(signTx({ chainId, publicKey: from.publicKey, nonce: Math.floor(index / NODES), fee: 1n, body: { kind: 'transfer', to: addressFromPublicKey(sender.publicKey), amount: FUNDING } }, from))
      return { node: index % NODES, hash, body: JSON.stringify(json) }
    })
    for (const item of funding) await post(item.node, item.body)
    progress(`${engine}: funding ${SENDERS} senders`)
    while (!funding.every((item) => finalAt.has(item.hash))) await sleep(200)

    const nonces = new Map<Address, number>()
    for (const offered of OFFERED_RATES) {
      const count = Math.round(offered * PHASE_MS / 1000)
      // Pre-signed before the clock starts: signing is the clients' work, not the nodes'.
      const load = Array.from({ length: count }, (_, index) => {
        const sender = senders[index % SENDERS] as Ed25519KeyPair
        const address = addressFromPublicKey(sender.publicKey)
        const nonce = nonces.get(address) ?? 0
        nonces.set(address, nonce + 1)
        const { hash, ...json } = txToJson(signTx({ chainId, publicKey: sender.publicKey, nonce, fee: 1n, body: { kind: 'transfer', to: addressFromPublicKey(senders[(index * 7 + 1) % SENDERS]?.publicKey as Uint8Array), amount: 1n } }, sender))
        return { hash, body: JSON.stringify(json) }
      })
      progress(`${engine}: offering ${offered} tx/s for ${PHASE_MS / 1000} s (${count} pre-signed transfers, ${BATCH_TXS} a request)`)
      const submittedAt = new Map<string, number>()
      let refused = 0
      let inFlight = 0
      const cpuBefore = nodesCpu()
      const clientBefore = process.cpuUsage()
      const started = performance.now()
      for (let first = 0; first < load.length; first += BATCH_TXS) {
        const batch = load.slice(first, first + BATCH_TXS)
        const due = started + (first * 1000) / offered
        const wait = due - performance.now()
        if (wait > 1) await sleep(wait)
        while (inFlight >= IN_FLIGHT_MAX) await sleep(1)
        inFlight++
        const at = performance.now()
        const node = (first / BATCH_TXS) % NODES
        void postBatch(node, `[${batch.map((item) => item.body).join(',')}]`).then((statuses) => {
          for (const [index, ok] of statuses.entries()) {
            if (ok) submittedAt.set((batch[index] as { hash: string }).hash, at)
            else refused++
          }
        }, () => { refused += batch.length }).finally(() => { inFlight-- })
      }
      while (inFlight > 0) await sleep(5)
      const submitEnd = performance.now()
      await sleep(DRAIN_MS)
      // The steady window: transactions submitted after the first second, finalized by the end of the drain.
      const latencies: number[] = []
      let finalizedInPhase = 0
      let firstFinal = Number.POSITIVE_INFINITY
      let lastFinal = 0
      for (const [hash, at] of submittedAt) {
        const final = finalAt.get(hash)
        if (final === undefined) continue
        finalizedInPhase++
        firstFinal = Math.min(firstFinal, final)
        lastFinal = Math.max(lastFinal, final)
        if (at - started >= 1_000) latencies.push(final - at)
      }
      const unfinalized = submittedAt.size - finalizedInPhase
      // Throughput: every finalized transaction of the phase over the span from the submit start to the later of the last finality and the submit end.
      const span = (Math.max(lastFinal, submitEnd) - started) / 1000
      const tps = finalizedInPhase / span
      const cpuUsPerTx = (nodesCpu() - cpuBefore) * 1e6 / Math.max(1, finalizedInPhase)
      const client = process.cpuUsage(clientBefore)
      const clientCpuUsPerTx = (client.user + client.system) / Math.max(1, finalizedInPhase)
      const result: PhaseResult = { engine, offered, submitted: submittedAt.size, refused: refused + unfinalized, finalized: finalizedInPhase, tps, p50: percentile(latencies, 50), p99: percentile(latencies, 99), cpuUsPerTx, clientCpuUsPerTx }
      results.push(result)
      progress(`${engine} @ ${offered}: ${result.finalized}/${count} final, ${tps.toFixed(0)} tx/s, p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms, nodes' CPU ${cpuUsPerTx.toFixed(0)} us/tx (the bench client ${clientCpuUsPerTx.toFixed(0)}), ${refused} refused, ${unfinalized} not final, limit ${limitTps.toFixed(0)} tx/s`)
      if (result.p99 > TARGET_P99_MS * 3 || finalizedInPhase < count * 0.5) break
    }
    watching = false
    await watcher
  } finally {
    await Promise.all(pools.map(async (pool) => await pool.close()))
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  }
  return results
}

export async function consensusBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  // Interrupted (Ctrl-C, a timeout): stop the clusters, whose nodes would otherwise outlive the bench.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void stopAllUpRuns().finally(() => process.exit(130)) })
  }
  const perCore = verificationsPerSecond()
  const cores = availableParallelism()
  const limitTps = perCore * cores / NODES
  progress(`Ed25519: ${perCore.toFixed(0)} verifications/s per core x ${cores} cores / ${NODES} nodes = ${limitTps.toFixed(0)} tx/s (${(NODES * 1e6 / perCore).toFixed(0)} us of CPU per tx for the ${NODES} verifications)`)
  const rows: string[][] = []
  const verdicts: string[] = []
  const data: Record<string, unknown> = { verificationsPerSecondPerCore: perCore, cores, nodes: NODES, limitTps }
  for (const engine of ENGINES) {
    const phases = await runEngine(engine, limitTps, progress)
    data[engine] = phases
    for (const phase of phases) {
      rows.push([engine, String(phase.offered), phase.tps.toFixed(0), phase.p50.toFixed(0), phase.p99.toFixed(0), String(phase.refused), phase.cpuUsPerTx.toFixed(0), `${(100 * phase.tps / limitTps).toFixed(0)}%`])
    }
    // The best sustained rate: the highest throughput among phases whose p99 meets the target.
    const sustained = phases.filter((phase) => phase.p99 <= TARGET_P99_MS).sort((a, b) => b.tps - a.tps)[0]
    if (sustained === undefined) verdicts.push(`${engine}: no offered rate kept p99 finality within ${TARGET_P99_MS} ms`)
    else {
      const share = sustained.tps / limitTps
      verdicts.push(`${engine}: ${sustained.tps.toFixed(0)} finalized tx/s at p99 ${sustained.p99.toFixed(0)} ms (${(100 * share).toFixed(0)}% of the ${limitTps.toFixed(0)} tx/s limit): ` +
        `${sustained.tps >= TARGET_TPS ? 'meets' : 'misses'} >= ${TARGET_TPS} tx/s, meets p99 <= ${TARGET_P99_MS} ms, ${share >= TARGET_SHARE ? 'meets' : 'misses'} >= ${TARGET_SHARE * 100}% of the limit`)
    }
  }
  return {
    name: 'consensus',
    title: `finalized transfers on 4 local processes, submitted ${BATCH_TXS} a request; limit = ${perCore.toFixed(0)} Ed25519 verifications/s x ${cores} cores / ${NODES} nodes = ${limitTps.toFixed(0)} tx/s`,
    header: ['engine', 'offered tx/s', 'finalized tx/s', 'p50 ms', 'p99 ms', 'refused or lost', 'nodes CPU us/tx', 'of limit'],
    rows,
    verdict: verdicts.join('\n'),
    data
  }
}
