/**
 * Consensus benchmark: PoS and DPoS on 4 local processes (`synod up`, real libp2p, LMDB, HTTP)
 * under a load of signed transfers, in one run:
 * - the Ed25519 verification limit of this machine: verifications per second per core (the same
 *   `verify` the ledger uses), measured with every core verifying at once, before and after the
 *   engines run, x cores / nodes, in transactions per second: every node must verify every
 *   transaction once, and all four share these cores. One core alone is measured and shown too:
 *   where cores are not independent (SMT siblings, a shared host) it overstates the machine;
 * - per engine and offered rate: transactions finalized per second in the steady window (those
 *   in blocks the bench saw final between 2 s after the phase's first submission and its last
 *   submission, over the time between the first and last such observation: the warm-up and the
 *   drain are left out; the whole phase's figure, finalized over submit start to last finality,
 *   is kept in the JSON), and finality latency p50/p99: from the moment the bench submitted a transaction to the moment it saw the
 *   transaction's block final (PoS: committed; DPoS: irreversible) on node 0, polled every 50 ms;
 * - per phase, what explains a miss: refusals by code, blocks and transactions per block, extra
 *   PoS rounds, the largest mempool seen, the nodes' and the client's CPU per transaction, and the
 *   CPU that processes outside the bench used meanwhile (from /proc/stat: a busy machine skews
 *   every figure, and the verdict says so).
 *
 * The load is pre-signed before it is measured, from 200 senders funded first, submitted in
 * batches of 50 (`POST /v1/txs`, each a CBOR array of the transactions' canonical bytes) over
 * keep-alive HTTP (undici) to the four nodes in turn at a steady offered rate. A warm-up phase
 * at half the first rate (30 s, not judged) comes first; the rates then run in order on the same
 * cluster.
 * Targets (issue 6): >= 1 000 finalized tx/s, p99 finality <= 3 s, >= 50% of the limit.
 */
import { availableParallelism } from 'node:os'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { encodeCanonical, fromHex, keyPairFromSeed, sha256, type Ed25519KeyPair } from '../src/core/index.js'
import { addressFromPublicKey, encodeTx, signTx, txHash, txToJson, type Address } from '../src/ledger/index.js'
import { CBOR_CONTENT_TYPE } from '../src/node/ledger-api.js'
import { freeBasePort, getJson, runSynodUp, stopAllUpRuns } from '../test/support/cluster.js'
import { cpuSeconds, envSeconds, machineCpu, otherProcessesSeconds, parentPid, percentile, type BenchResult } from './util.js'
import { verificationsPerSecond, verificationsPerSecondAllCores } from './verify-rate.js'

const NODES = 4
const SENDERS = 200
const FUNDING = 10_000_000n
const PHASE_MS = 15_000
const DRAIN_MS = 8_000
const IN_FLIGHT_MAX = 64
/** The steady window starts this long after a phase's first submission. */
const WARMUP_MS = 2_000
/**
 * Before the first measured rate, a warm-up phase offers WARMUP_PHASE_SHARE of it for
 * `SYNOD_BENCH_WARMUP_SECONDS` (30; 0 for none), not judged: fresh node processes run their
 * first seconds in V8's interpreter and baseline code while its optimizing compiler takes CPU from
 * them, which is not the steady state of a long-running node. Later rates run on the same warm cluster.
 */
const WARMUP_PHASE_MS = (envSeconds('SYNOD_BENCH_WARMUP_SECONDS', 0) ?? 30) * 1000
const WARMUP_PHASE_SHARE = 0.5
/** Other processes' CPU, in cores, above which a phase is flagged as measured on a busy machine. */
const FOREIGN_CORES_MAX = 0.15
const FUNDING_TIMEOUT_MS = 60_000
/** A finality watcher's request gets no answer in this long: the poll counts as missed. */
const WATCH_TIMEOUT_MS = 2_000
/** Transactions per `POST /v1/txs` request, as a wallet or an exchange batches them; `SYNOD_BENCH_BATCH` changes it. */
const BATCH_TXS = Number(process.env.SYNOD_BENCH_BATCH ?? 50)
/**
 * How the load is submitted: `cbor` (the default) posts each batch as a CBOR array of the
 * transactions' canonical bytes (`Content-Type: application/cbor`), as a wallet sends raw signed
 * transactions; `json` posts their JSON forms. `SYNOD_BENCH_TX_FORMAT` chooses.
 */
const TX_FORMAT = txFormat(process.env.SYNOD_BENCH_TX_FORMAT)

function txFormat (value: string | undefined): 'cbor' | 'json' {
  if (value === undefined || value === 'cbor' || value === 'json') return value ?? 'cbor'
  throw new Error(`SYNOD_BENCH_TX_FORMAT is cbor or json, not ${JSON.stringify(value)}`)
}
const TARGET_TPS = 1_000
const TARGET_P99_MS = 3_000
const TARGET_SHARE = 0.5
/**
 * Offered rates, in order on one cluster until one is overloaded, and engines;
 * `SYNOD_BENCH_RATES=1000,2000` and `SYNOD_BENCH_ENGINES=pos` narrow a run. Past 1 200 the steps
 * are 100 tx/s: the verdict is the highest rate sustained, and with coarser steps (1 000 then
 * 1 500 before) a cluster that sustains 1 400 reported 1 000.
 */
const OFFERED_RATES = (process.env.SYNOD_BENCH_RATES ?? '1000,1200,1300,1400,1500,1600,1700,1800,1900,2000').split(',').map(Number).filter((rate) => rate > 0)
const ALL_ENGINES = ['pos', 'dpos'] as const
const ENGINES = ALL_ENGINES.filter((engine) => (process.env.SYNOD_BENCH_ENGINES ?? 'pos,dpos').split(',').includes(engine))

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface ChainBody { finalizedHeight: number | null, head: { height: number }, chainId: string, mempool: { size: number }, consensus?: { extraRounds?: number } }
interface BlockBody { header: { height: number, timeMs: number }, txs: string[] }
interface FinalBlock { height: number, timeMs: number, txs: number, seenAt: number }

interface PhaseResult {
  engine: string
  /** The unjudged warm-up phase before the measured rates. */
  warmup: boolean
  offered: number
  submitted: number
  refused: number
  /** Refusals by error code (and `HTTP <status>` or `network` for failed requests). */
  refusedBy: Record<string, number>
  notFinal: number
  finalized: number
  /** Finalized tx/s in the steady window. */
  tps: number
  /** Finalized tx/s over the whole phase: every finalized transaction / (last finality - first submission). */
  phaseTps: number
  windowMs: number
  p50: number
  p99: number
  blocks: number
  txsPerBlockMean: number
  txsPerBlockMax: number
  blockIntervalMsMean: number
  extraRounds: number | null
  mempoolMax: number
  cpuUsPerTx: number
  clientCpuUsPerTx: number
  /** CPU used by processes outside the bench during the phase, in cores. */
  foreignCores: number
}


/** Counters summed over the nodes at the end of an engine's run, from their Prometheus text (`GET /metrics`). */
const METRICS = [
  'synod_ledger_txs_accepted_total', 'synod_ledger_txs_rejected_total', 'synod_ledger_signatures_skipped_total', 'synod_ledger_signatures_verified_total', 'synod_ledger_intake_dropped_total',
  'synod_ledger_blocks_rejected_total', 'synod_ledger_reorgs_total', 'synod_pos_extra_rounds_total', 'synod_pos_invalid_messages_total',
  'synod_ledger_compact_blocks_assembled_total', 'synod_ledger_compact_txs_fetched_total', 'synod_ledger_compact_blocks_unavailable_total',
  'synod_process_cpu_seconds_total', 'synod_nodejs_gc_duration_seconds_sum'
]

async function scrapeMetrics (api: string): Promise<Record<string, number>> {
  try {
    const response = await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(5_000) })
    const text = await response.text()
    const values: Record<string, number> = {}
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue
      const match = /^([a-z_]+)(?:\{[^}]*\})? ([-+0-9.eE]+|NaN)$/.exec(line)
      if (match !== null && METRICS.includes(match[1] as string)) values[match[1] as string] = (values[match[1] as string] ?? 0) + Number(match[2])
    }
    return values
  } catch {
    return {}
  }
}

const ownCpuSeconds = (): number => { const usage = process.cpuUsage(); return (usage.user + usage.system) / 1e6 }

interface EngineRun { phases: PhaseResult[], metrics: Array<Record<string, number>> }

async function runEngine (engine: typeof ALL_ENGINES[number], progress: (line: string) => void): Promise<EngineRun> {
  const dataDir = mkdtempSync(join(tmpdir(), `synod-bench-${engine}-`))
  const basePort = await freeBasePort(NODES)
  const apis = Array.from({ length: NODES }, (_, index) => `http://127.0.0.1:${basePort + 100 + index}`)
  const pools = apis.map((api) => new Pool(api, { connections: 8, pipelining: 1 }))
  const results: PhaseResult[] = []
  let metrics: Array<Record<string, number>> = []
  try {
    progress(`${engine}: starting 4 nodes`)
    const up = runSynodUp(dataDir, basePort, ['--nodes', String(NODES), '--gateway-port', '0', '--consensus', engine])
    await up.ready
    // The finality watcher's requests go over one keep-alive connection of its own (undici's
    // request): `fetch`, with its streams and abort signal, cost the bench client more CPU a poll
    // than the submissions a second, and the client shares the cores with the nodes it measures.
    const watchPool = new Pool(apis[0] as string, { connections: 1, pipelining: 1 })
    pools.push(watchPool)
    const watchJson = async <T>(path: string): Promise<T | null> => {
      try {
        const response = await watchPool.request({ path, method: 'GET', headersTimeout: WATCH_TIMEOUT_MS, bodyTimeout: WATCH_TIMEOUT_MS })
        if (response.statusCode !== 200) {
          await response.body.dump()
          return null
        }
        return await response.body.json() as T
      } catch {
        return null
      }
    }
    const chain = async (): Promise<ChainBody | null> => await watchJson<ChainBody>('/v1/chain')
    while (((await chain())?.finalizedHeight ?? 0) < 2) await sleep(200)
    const chainId = (await chain() as ChainBody).chainId
    const pids = await Promise.all(apis.map(async (api) => (await getJson<{ pid: number }>(`${api}/v1/status`))?.pid ?? 0))
    const nodesCpu = (): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
    // `synod up` itself (the nodes' parent) relays their output: the bench's own, not foreign, CPU.
    const upPid = parentPid(pids[0] ?? 0)
    const benchCpu = (): number => nodesCpu() + (upPid > 1 ? cpuSeconds(upPid) : 0) + ownCpuSeconds()

    // Finality watcher: every tx hash's first sighting in a final block on node 0.
    const finalAt = new Map<string, number>()
    const finalBlocks: FinalBlock[] = []
    let mempoolMax = 0
    let extraRounds: number | null = null
    let watched = (await chain())?.finalizedHeight ?? 0
    let watching = true
    const watcher = (async () => {
      while (watching) {
        const body = await chain()
        const final = body?.finalizedHeight ?? watched
        mempoolMax = Math.max(mempoolMax, body?.mempool.size ?? 0)
        extraRounds = body?.consensus?.extraRounds ?? extraRounds
        const now = performance.now()
        for (let height = watched + 1; height <= final; height++) {
          const block = await watchJson<BlockBody>(`/v1/blocks/${height}?txs=hashes`)
          if (block === null) continue
          finalBlocks.push({ height, timeMs: block.header.timeMs, txs: block.txs.length, seenAt: now })
          for (const tx of block.txs) if (!finalAt.has(tx)) finalAt.set(tx, now)
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

    /** Each transaction's outcome in order: null when pooled, else the refusal's code. */
    const postBatch = async (node: number, body: string | Uint8Array, count: number): Promise<Array<string | null>> => {
      const response = await (pools[node] as Pool).request({ path: '/v1/txs', method: 'POST', headers: { 'content-type': typeof body === 'string' ? 'application/json' : CBOR_CONTENT_TYPE }, body })
      const text = await response.body.text()
      if (response.statusCode !== 202) {
        let code = `HTTP ${response.statusCode}`
        try { code = (JSON.parse(text) as { code?: string }).code ?? code } catch {}
        return new Array<string | null>(count).fill(code)
      }
      return (JSON.parse(text) as { results: Array<{ status: string, code?: string }> }).results.map((result) => result.status === 'pending' ? null : result.code ?? result.status)
    }

    // Fund the senders from the node accounts (50 each, within the pool's nonce gap).
    const nodeKeys: Ed25519KeyPair[] = Array.from({ length: NODES }, (_, index) => keyPairFromSeed(fromHex((JSON.parse(readFileSync(join(dataDir, 'data', `node-${index}`, 'node.key'), 'utf8')) as { seed: string }).seed)))
    const senders: Ed25519KeyPair[] = Array.from({ length: SENDERS }, (_, index) => keyPairFromSeed(sha256(new TextEncoder().encode(`bench-sender-${engine}-${index}`))))
    const nodeNonces = await Promise.all(nodeKeys.map(async (key) => (await getJson<{ nonce: number }>(`${apis[0]}/v1/accounts/${addressFromPublicKey(key.publicKey)}`))?.nonce ?? 0))
    const funding = senders.map((sender, index) => {
      const from = nodeKeys[index % NODES] as Ed25519KeyPair
      const nonce = (nodeNonces[index % NODES] ?? 0) + Math.floor(index / NODES)
      const { hash, ...json } = txToJson(signTx({ chainId, publicKey: from.publicKey, nonce, fee: 1n, body: { kind: 'transfer', to: addressFromPublicKey(sender.publicKey), amount: FUNDING } }, from))
      return { node: index % NODES, hash, body: JSON.stringify(json) }
    })
    const fundingRefused = (await Promise.all(funding.map(async (item) => await post(item.node, item.body)))).filter((answer) => !answer.ok).length
    progress(`${engine}: funding ${SENDERS} senders${fundingRefused > 0 ? ` (${fundingRefused} refused)` : ''}`)
    const fundingStarted = performance.now()
    while (!funding.every((item) => finalAt.has(item.hash))) {
      if (performance.now() - fundingStarted > FUNDING_TIMEOUT_MS) throw new Error(`${engine}: ${funding.filter((item) => !finalAt.has(item.hash)).length} of ${SENDERS} funding transfers not final after ${FUNDING_TIMEOUT_MS} ms (${fundingRefused} refused)`)
      await sleep(200)
    }

    const nonces = new Map<Address, number>()
    const firstRate = OFFERED_RATES[0] ?? 0
    const plan = [
      ...(WARMUP_PHASE_MS > 0 && firstRate > 0 ? [{ offered: Math.round(firstRate * WARMUP_PHASE_SHARE), ms: WARMUP_PHASE_MS, warmup: true }] : []),
      ...OFFERED_RATES.map((offered) => ({ offered, ms: PHASE_MS, warmup: false }))
    ]
    for (const { offered, ms, warmup } of plan) {
      const count = Math.round(offered * ms / 1000)
      // Pre-signed before the clock starts: signing is the clients' work, not the nodes'.
      const load = Array.from({ length: count }, (_, index) => {
        const sender = senders[index % SENDERS] as Ed25519KeyPair
        const address = addressFromPublicKey(sender.publicKey)
        const nonce = nonces.get(address) ?? 0
        nonces.set(address, nonce + 1)
        const tx = signTx({ chainId, publicKey: sender.publicKey, nonce, fee: 1n, body: { kind: 'transfer', to: addressFromPublicKey(senders[(index * 7 + 1) % SENDERS]?.publicKey as Uint8Array), amount: 1n } }, sender)
        if (TX_FORMAT === 'cbor') return { hash: txHash(tx), body: encodeTx(tx) }
        const { hash, ...json } = txToJson(tx)
        return { hash, body: JSON.stringify(json) }
      })
      progress(`${engine}: ${warmup ? 'warm-up (not judged): ' : ''}offering ${offered} tx/s for ${ms / 1000} s (${count} pre-signed transfers, ${BATCH_TXS} a request, as ${TX_FORMAT})`)
      const submittedAt = new Map<string, number>()
      const refusedBy: Record<string, number> = {}
      const refuse = (code: string, count: number): void => { refusedBy[code] = (refusedBy[code] ?? 0) + count }
      let inFlight = 0
      const cpuBefore = nodesCpu()
      const clientBefore = process.cpuUsage()
      const benchBefore = benchCpu()
      // Not the hypervisor's steal: that is the host's, not another process on this machine.
      const machineBefore = machineCpu()
      const roundsBefore = extraRounds
      const blocksBefore = finalBlocks.length
      mempoolMax = 0
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
        const body = TX_FORMAT === 'json' ? `[${batch.map((item) => item.body as string).join(',')}]` : encodeCanonical(batch.map((item) => item.body))
        void postBatch(node, body, batch.length).then((outcomes) => {
          for (const [index, code] of outcomes.entries()) {
            if (code === null) submittedAt.set((batch[index] as { hash: string }).hash, at)
            else refuse(code, 1)
          }
        }, () => { refuse('network', batch.length) }).finally(() => { inFlight-- })
      }
      while (inFlight > 0) await sleep(5)
      const submitEnd = performance.now()
      await sleep(DRAIN_MS)
      const phaseSeconds = (performance.now() - started) / 1000
      const foreignCores = otherProcessesSeconds(machineBefore, machineCpu(), benchCpu() - benchBefore) / phaseSeconds
      // Latency: transactions submitted after the first second, finalized by the end of the drain.
      const latencies: number[] = []
      let finalizedInPhase = 0
      let lastFinal = 0
      const windowStart = started + WARMUP_MS
      for (const [hash, at] of submittedAt) {
        const final = finalAt.get(hash)
        if (final === undefined) continue
        finalizedInPhase++
        lastFinal = Math.max(lastFinal, final)
        if (at - started >= 1_000) latencies.push(final - at)
      }
      const unfinalized = submittedAt.size - finalizedInPhase
      const refused = Object.values(refusedBy).reduce((sum, value) => sum + value, 0)
      // Steady throughput: finalized while the load was steady. Finality arrives a block at a time, so the
      // window runs between two observations: the transactions in the blocks first seen final after the
      // window's first observation, up to its last, over the time between them.
      const observations = [...new Set(finalBlocks.filter((block) => block.seenAt >= windowStart && block.seenAt <= submitEnd).map((block) => block.seenAt))]
      const windowFrom = observations[0] ?? windowStart
      const windowTo = observations[observations.length - 1] ?? submitEnd
      const windowMs = windowTo - windowFrom
      const finalInWindow = finalBlocks.filter((block) => block.seenAt > windowFrom && block.seenAt <= windowTo).reduce((sum, block) => sum + block.txs, 0)
      const tps = windowMs > 0 ? finalInWindow / (windowMs / 1000) : 0
      // Whole phase: every finalized transaction over the span from the submit start to the later of the last finality and the submit end.
      const phaseTps = finalizedInPhase / ((Math.max(lastFinal, submitEnd) - started) / 1000)
      const cpuUsPerTx = (nodesCpu() - cpuBefore) * 1e6 / Math.max(1, finalizedInPhase)
      const client = process.cpuUsage(clientBefore)
      const clientCpuUsPerTx = (client.user + client.system) / Math.max(1, finalizedInPhase)
      // The phase's blocks: those the bench saw final during it, with at least one of its transactions or within the window.
      const blocks = finalBlocks.slice(blocksBefore).filter((block) => block.seenAt >= started && block.seenAt <= started + phaseSeconds * 1000)
      const loaded = blocks.filter((block) => block.seenAt >= windowStart && block.seenAt <= submitEnd)
      const intervals = loaded.slice(1).map((block, index) => block.timeMs - (loaded[index] as FinalBlock).timeMs)
      const roundsAfter: number | null = extraRounds
      const result: PhaseResult = {
        engine,
        warmup,
        offered,
        submitted: submittedAt.size,
        refused,
        refusedBy,
        notFinal: unfinalized,
        finalized: finalizedInPhase,
        tps,
        phaseTps,
        windowMs,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        blocks: blocks.length,
        txsPerBlockMean: loaded.length === 0 ? 0 : loaded.reduce((sum, block) => sum + block.txs, 0) / loaded.length,
        txsPerBlockMax: Math.max(0, ...blocks.map((block) => block.txs)),
        blockIntervalMsMean: intervals.length === 0 ? Number.NaN : intervals.reduce((sum, value) => sum + value, 0) / intervals.length,
        extraRounds: roundsAfter === null || roundsBefore === null ? null : roundsAfter - roundsBefore,
        mempoolMax,
        cpuUsPerTx,
        clientCpuUsPerTx,
        foreignCores
      }
      results.push(result)
      const codes = Object.entries(refusedBy).map(([code, value]) => `${code} ${value}`).join(', ')
      progress(`${engine} @ ${offered}${warmup ? ' (warm-up)' : ''}: ${result.finalized}/${count} final; steady ${tps.toFixed(0)} tx/s (whole phase ${phaseTps.toFixed(0)}), p50 ${result.p50.toFixed(0)} ms, p99 ${result.p99.toFixed(0)} ms; ` +
        `${refused} refused${codes === '' ? '' : ` (${codes})`}, ${unfinalized} not final; ${blocks.length} blocks, ${result.txsPerBlockMean.toFixed(0)} tx/block (max ${result.txsPerBlockMax}), every ${result.blockIntervalMsMean.toFixed(0)} ms` +
        `${result.extraRounds === null ? '' : `, ${result.extraRounds} extra rounds`}, mempool up to ${mempoolMax} on node 0; ` +
        `nodes' CPU ${cpuUsPerTx.toFixed(0)} us/tx (the bench client ${clientCpuUsPerTx.toFixed(0)}); other processes ${foreignCores.toFixed(2)} cores${foreignCores > FOREIGN_CORES_MAX ? ' (BUSY MACHINE: figures skewed)' : ''}`)
      // A refused or lost transaction leaves a gap in its sender's nonces: a faster phase would be measured on a stalled load.
      if (refused + unfinalized > 0) {
        progress(warmup
          ? `${engine}: the warm-up lost ${refused + unfinalized} transactions; no rate measured (the senders' later nonces would not execute)`
          : `${engine}: stopping the ramp at ${offered} tx/s (${refused + unfinalized} transactions refused or lost; the senders' later nonces would not execute)`)
        break
      }
      if (!warmup && (result.p99 > TARGET_P99_MS * 3 || finalizedInPhase < count * 0.5)) {
        progress(`${engine}: stopping the ramp at ${offered} tx/s (p99 ${result.p99.toFixed(0)} ms, ${finalizedInPhase} of ${count} final: overloaded)`)
        break
      }
    }
    watching = false
    await watcher
    metrics = await Promise.all(apis.map(scrapeMetrics))
    const total = (name: string): number => metrics.reduce((sum, node) => sum + (node[name] ?? 0), 0)
    progress(`${engine}: the 4 nodes' /metrics at the end: ${total('synod_ledger_txs_accepted_total')} txs admitted to mempools, ${total('synod_ledger_txs_rejected_total')} refused, ` +
      `${total('synod_ledger_signatures_verified_total')} transaction signatures verified and ${total('synod_ledger_signatures_skipped_total')} skipped (verified before), ` +
      `${total('synod_ledger_intake_dropped_total')} gossiped txs dropped from full intake queues, ${total('synod_ledger_blocks_rejected_total')} blocks rejected, ${total('synod_pos_extra_rounds_total')} extra PoS rounds (since start), ` +
      `${total('synod_ledger_compact_blocks_assembled_total')} compact blocks put together (${total('synod_ledger_compact_txs_fetched_total')} txs fetched, ${total('synod_ledger_compact_blocks_unavailable_total')} given up), ` +
      `garbage collection ${total('synod_nodejs_gc_duration_seconds_sum').toFixed(1)} s of ${total('synod_process_cpu_seconds_total').toFixed(1)} CPU s (whole run)`)
  } finally {
    await Promise.all(pools.map(async (pool) => await pool.close()))
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  }
  return { phases: results, metrics }
}

export async function consensusBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  // Interrupted (Ctrl-C, a timeout): stop the clusters, whose nodes would otherwise outlive the bench.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void stopAllUpRuns().finally(() => process.exit(130)) })
  }
  // The limit: the machine's Ed25519 verifications per second with every core verifying at once
  // (per core under that load, x cores), measured before and after the engines run (the mean of the
  // two: a shared host drifts), / nodes. One core alone is measured too and shown: on a host whose
  // cores are not independent, one core's rate x cores overstates what the machine can verify.
  const cores = availableParallelism()
  const singleCore = verificationsPerSecond()
  const allCores = async (when: string): Promise<number> => {
    const rates = await verificationsPerSecondAllCores(cores)
    const total = rates.reduce((sum, rate) => sum + rate, 0)
    progress(`Ed25519 ${when}: ${cores} cores at once verify ${total.toFixed(0)}/s (${rates.map((rate) => rate.toFixed(0)).join(' + ')}); one core alone ${singleCore.toFixed(0)}/s, x ${cores} = ${(singleCore * cores).toFixed(0)}`)
    return total
  }
  const before = await allCores('before')
  const phasesByEngine = new Map<string, EngineRun>()
  for (const engine of ENGINES) phasesByEngine.set(engine, await runEngine(engine, progress))
  const after = await allCores('after')
  const machineRate = (before + after) / 2
  const perCore = machineRate / cores
  const limitTps = machineRate / NODES
  progress(`limit: ${machineRate.toFixed(0)} verifications/s (mean of before and after) / ${NODES} nodes = ${limitTps.toFixed(0)} tx/s (${(NODES * 1e6 / perCore).toFixed(0)} us of CPU per tx for the ${NODES} verifications)`)
  const rows: string[][] = []
  const verdicts: string[] = []
  const data: Record<string, unknown> = {
    verificationsPerSecondPerCore: perCore,
    verificationsPerSecondAllCores: { before, after },
    verificationsPerSecondOneCoreAlone: singleCore,
    cores,
    nodes: NODES,
    limitTps,
    limitTpsFromOneCoreAlone: singleCore * cores / NODES,
    targets: { tps: TARGET_TPS, p99Ms: TARGET_P99_MS, shareOfLimit: TARGET_SHARE },
    steadyWindowOffsetMs: WARMUP_MS,
    warmupPhase: { ms: WARMUP_PHASE_MS, shareOfFirstRate: WARMUP_PHASE_SHARE },
    engines: ENGINES
  }
  for (const engine of ENGINES) {
    const { phases, metrics } = phasesByEngine.get(engine) as EngineRun
    data[engine] = phases
    data[`${engine}Metrics`] = metrics
    const mark = (ok: boolean): string => ok ? 'pass' : 'FAIL'
    for (const phase of phases) {
      const share = phase.tps / limitTps
      rows.push([
        engine, String(phase.offered), phase.tps.toFixed(0), phase.p50.toFixed(0), phase.p99.toFixed(0), String(phase.refused + phase.notFinal),
        phase.txsPerBlockMean.toFixed(0), phase.cpuUsPerTx.toFixed(0), phase.foreignCores.toFixed(2), `${(100 * share).toFixed(0)}%`,
        phase.warmup ? 'warm-up' : `${mark(phase.tps >= TARGET_TPS)} ${mark(phase.p99 <= TARGET_P99_MS)} ${mark(share >= TARGET_SHARE)}`
      ])
    }
    // The best sustained rate: the highest steady throughput among phases that kept p99 within the target and lost nothing.
    const sustained = phases.filter((phase) => !phase.warmup && phase.p99 <= TARGET_P99_MS && phase.refused + phase.notFinal === 0).sort((a, b) => b.tps - a.tps)[0]
    const busy = phases.filter((phase) => !phase.warmup && phase.foreignCores > FOREIGN_CORES_MAX).map((phase) => `${phase.offered} tx/s (${phase.foreignCores.toFixed(2)} cores)`)
    const busyNote = busy.length === 0 ? '' : `; WARNING: other processes used the CPU during the phase${busy.length > 1 ? 's' : ''} at ${busy.join(', ')}: rerun on an idle machine`
    const warmupLost = phases.find((phase) => phase.warmup && phase.refused + phase.notFinal > 0)
    if (warmupLost !== undefined) verdicts.push(`${engine}: no rate measured: the warm-up at ${warmupLost.offered} tx/s lost ${warmupLost.refused + warmupLost.notFinal} transactions`)
    else if (sustained === undefined) verdicts.push(`${engine}: no offered rate was finalized in full with p99 finality within ${TARGET_P99_MS} ms${busyNote}`)
    else {
      const share = sustained.tps / limitTps
      verdicts.push(`${engine}: ${sustained.tps.toFixed(0)} finalized tx/s (offered ${sustained.offered}) at p50 ${sustained.p50.toFixed(0)} ms, p99 ${sustained.p99.toFixed(0)} ms (${(100 * share).toFixed(0)}% of the ${limitTps.toFixed(0)} tx/s limit): ` +
        `${sustained.tps >= TARGET_TPS ? 'meets' : 'misses'} >= ${TARGET_TPS} tx/s, meets p99 <= ${TARGET_P99_MS} ms, ${share >= TARGET_SHARE ? 'meets' : 'misses'} >= ${TARGET_SHARE * 100}% of the limit${busyNote}`)
    }
  }
  return {
    name: 'consensus',
    title: `finalized transfers on 4 local processes, submitted ${BATCH_TXS} a request (${TX_FORMAT === 'cbor' ? 'CBOR: the transactions\' canonical bytes' : 'JSON'}); ` +
      `${WARMUP_PHASE_MS > 0 ? `a ${WARMUP_PHASE_MS / 1000} s warm-up at ${WARMUP_PHASE_SHARE * 100}% of the first rate, not judged, then each rate for ${PHASE_MS / 1000} s on the same cluster; ` : ''}finalized tx/s in the steady window (${WARMUP_MS / 1000} s after the first submission to the last); ` +
      `finality = first seen final on node 0 - submitted; limit = ${perCore.toFixed(0)} Ed25519 verifications/s per core with all ${cores} verifying x ${cores} cores / ${NODES} nodes = ${limitTps.toFixed(0)} tx/s ` +
      `(one core alone: ${singleCore.toFixed(0)}/s, x ${cores} / ${NODES} = ${(singleCore * cores / NODES).toFixed(0)} tx/s); ` +
      `targets: >= ${TARGET_TPS} tx/s, p99 <= ${TARGET_P99_MS} ms, >= ${TARGET_SHARE * 100}% of the limit`,
    header: ['engine', 'offered tx/s', 'finalized tx/s', 'p50 ms', 'p99 ms', 'refused or lost', 'tx/block', 'nodes CPU us/tx', 'other cores', 'of limit', 'tx/s p99 limit'],
    rows,
    verdict: verdicts.join('\n'),
    data
  }
}
