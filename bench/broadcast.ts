/**
 * Broadcast benchmark, in the simulator: Plumtree against plain flooding (the baseline, measured in
 * the same run) on random 6-regular, small-world, ring and tree overlays of 16, 128 and 1000 nodes,
 * with no faults, with 5% message loss, and with 30% of the nodes crashed. For each: delivery %
 * (deliveries / (live nodes x broadcasts)), hops and virtual latency of delivered copies, and
 * duplicates per node per broadcast in steady state (one broadcast at a time, a second apart,
 * after a warm-up that lets the Plumtree tree form). Targets, at n = 1000 on random 6-regular:
 * 100% delivery with no faults and with 5% loss, <= 0.2 duplicates per node per broadcast, 100%
 * delivery to the survivors with 30% crashed.
 *
 * Each cluster runs in a worker thread (one per core, two at most), since clusters are independent
 * and every run is a pure function of its seed.
 */
import { availableParallelism } from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { createPrng, type NodeId, type Prng } from '../src/core/index.js'
import { isConnected, type BroadcastMode, type Graph, type TopologySpecInput } from '../src/net/index.js'
import { makeOverlaySim, note, type OverlaySim } from '../test/support/overlay-sim.js'
import { percentile, type BenchResult } from './util.js'

const SEED = 1
const SIZES = [16, 128, 1_000]
/** Sizes at which ring and tree are left out: a 1000-node ring has diameter 500, and both cost wall time for nothing the targets need. */
const SPARSE_TOPOLOGIES_SIZE_MAX = 128
const LOSS_RATE = 0.05
const CRASHED_SHARE = 0.3
const WARMUP_BROADCASTS = 10
const WARMUP_GAP_MS = 500
const WARMUP_QUIET_MS = 2_000
const MEASURED_BROADCASTS = 20
const MEASURED_GAP_MS = 1_000
/** Virtual time after the last measured broadcast before deliveries are counted. */
const DRAIN_MS = 3_000
/** With loss, repair (IHAVE/GRAFT, then digest exchange every second) gets this long. */
const LOSS_DRAIN_MS = 15_000
const SETTLE_MS_MAX = 30_000
const TARGET_DUPLICATES_MAX = 0.2
const TARGET_SIZE = 1_000
const TARGET_TOPOLOGY = 'random 6-regular'

type ScenarioName = 'no faults' | '5% loss' | '30% crashed'
const scenarioOrder: ScenarioName[] = ['no faults', '5% loss', '30% crashed']

interface TopologyChoice { name: string, spec: (seed: number) => TopologySpecInput, sparse: boolean }

const topologies: TopologyChoice[] = [
  { name: 'random 6-regular', spec: (seed) => ({ kind: 'random-regular', degree: 6, seed }), sparse: false },
  { name: 'small world (6)', spec: (seed) => ({ kind: 'small-world', neighbours: 6, seed }), sparse: false },
  { name: 'ring', spec: () => ({ kind: 'ring' }), sparse: true },
  { name: 'tree (fanout 3)', spec: () => ({ kind: 'tree', fanout: 3 }), sparse: true }
]

/** One simulated cluster: the loss scenario needs its own (loss applies from boot); no-faults then crash share one. */
interface Job { nodes: number, topology: string, mode: BroadcastMode, lossy: boolean }

interface ScenarioFigures {
  scenario: ScenarioName
  nodes: number
  topology: string
  mode: BroadcastMode
  liveNodes: number
  broadcasts: number
  deliveries: number
  deliveredTwice: number
  deliveryPercent: number
  /** Over delivered copies, the origin's own delivery left out. */
  hopsP50: number
  hopsP99: number
  latencyMsP50: number
  latencyMsP99: number
  duplicatesPerNodePerBroadcast: number
  /** Deltas over the measured phase, summed over live nodes. */
  counters: { duplicates: number, repairDuplicates: number, repaired: number, grafts: number, prunes: number, linkStatesAnnounced: number }
  routesSettled: boolean
  settleMs: number
  crashed: number
  seed: number
  virtualMs: number
  wallMs: number
}

interface JobResult { job: Job, scenarios: ScenarioFigures[], wallMs: number, heapMb: number }

type WorkerReport = { kind: 'progress', line: string } | { kind: 'done', result: JobResult } | { kind: 'failed', message: string }

// --- one cluster --------------------------------------------------------------------------------

function topologyChoice (name: string): TopologyChoice {
  const choice = topologies.find((candidate) => candidate.name === name)
  if (choice === undefined) throw new Error(`unknown topology ${name}`)
  return choice
}

/**
 * Runs virtual time in steps until every live node routes to every node it can reach (or, with
 * routing off, has all its live links up); the check is costly at n = 1000, so it is not run per event.
 */
function settleRoutes (sim: OverlaySim, stepMs: number, routing: boolean): { settled: boolean, settleMs: number } {
  const started = sim.kernel.now()
  while (sim.kernel.now() - started < SETTLE_MS_MAX) {
    sim.kernel.runFor(stepMs)
    if (routing ? sim.routesSettled() : sim.linksSettled()) return { settled: true, settleMs: sim.kernel.now() - started }
  }
  return { settled: false, settleMs: sim.kernel.now() - started }
}

function liveMembers (sim: OverlaySim): NodeId[] {
  return sim.members.filter((id) => sim.cluster.isUp(id))
}

interface Counters { duplicates: number, repairDuplicates: number, repaired: number, grafts: number, prunes: number, linkStatesAnnounced: number }

function countersOf (sim: OverlaySim, nodes: readonly NodeId[]): Counters {
  const sum: Counters = { duplicates: 0, repairDuplicates: 0, repaired: 0, grafts: 0, prunes: 0, linkStatesAnnounced: 0 }
  for (const id of nodes) {
    const stats = sim.overlay(id)?.stats()
    if (stats === undefined) continue
    sum.duplicates += stats.broadcast.duplicates
    sum.repairDuplicates += stats.broadcast.repairDuplicates
    sum.repaired += stats.broadcast.repaired
    sum.grafts += stats.broadcast.grafts
    sum.prunes += stats.broadcast.prunes
    sum.linkStatesAnnounced += stats.linkStatesAnnounced
  }
  return sum
}

function minus (after: Counters, before: Counters): Counters {
  return {
    duplicates: after.duplicates - before.duplicates,
    repairDuplicates: after.repairDuplicates - before.repairDuplicates,
    repaired: after.repaired - before.repaired,
    grafts: after.grafts - before.grafts,
    prunes: after.prunes - before.prunes,
    linkStatesAnnounced: after.linkStatesAnnounced - before.linkStatesAnnounced
  }
}

class Broadcaster {
  private nextSeq = 1
  readonly sentMs = new Map<number, number>()

  constructor (private readonly sim: OverlaySim, private readonly origins: Prng) {}

  /** Broadcasts from random live origins, `gapMs` apart; returns their sequence numbers. */
  run (count: number, gapMs: number): number[] {
    const seqs: number[] = []
    for (let index = 0; index < count; index++) {
      const origin = this.origins.pick(liveMembers(this.sim))
      const seq = this.nextSeq++
      this.sentMs.set(seq, this.sim.kernel.now())
      this.sim.overlay(origin)?.broadcast('notes', note(seq))
      seqs.push(seq)
      this.sim.kernel.runFor(gapMs)
    }
    return seqs
  }
}

/**
 * Picks `count` nodes to crash, in a seeded random order, taking a node only if the survivors stay
 * connected without it; so on a ring the crashed nodes end up one arc, on a tree mostly leaves.
 */
function pickCrashes (graph: Graph, count: number, random: Prng): number[] {
  const alive = graph.adjacency.map(() => true)
  const order = random.shuffle(graph.adjacency.map((_, index) => index))
  const chosen: number[] = []
  for (let progressed = true; chosen.length < count && progressed;) {
    progressed = false
    for (const node of order) {
      if (chosen.length >= count) break
      if (!alive[node]) continue
      alive[node] = false
      if (isConnected(graph, (index) => alive[index] === true)) {
        chosen.push(node)
        progressed = true
      } else {
        alive[node] = true
      }
    }
  }
  return chosen
}

function measure (
  sim: OverlaySim, broadcaster: Broadcaster, job: Job, scenario: ScenarioName, drainMs: number,
  context: { routesSettled: boolean, settleMs: number, crashed: number }
): ScenarioFigures {
  const wallStarted = performance.now()
  const virtualStarted = sim.kernel.now()
  const live = liveMembers(sim)
  const before = countersOf(sim, live)
  const seqs = broadcaster.run(MEASURED_BROADCASTS, MEASURED_GAP_MS)
  sim.kernel.runFor(drainMs)
  const counters = minus(countersOf(sim, live), before)
  const measured = new Set(seqs)
  const liveSet = new Set(live)
  const deliveredAt = new Set<string>()
  const hops: number[] = []
  const latenciesMs: number[] = []
  let deliveredTwice = 0
  for (const entry of sim.broadcasts) {
    if (!measured.has(entry.seq) || !liveSet.has(entry.at)) continue
    const key = `${entry.seq}@${entry.at}`
    if (deliveredAt.has(key)) { deliveredTwice++; continue }
    deliveredAt.add(key)
    if (entry.at === entry.origin) continue
    hops.push(entry.hops)
    latenciesMs.push(entry.atMs - (broadcaster.sentMs.get(entry.seq) ?? entry.atMs))
  }
  const expected = live.length * seqs.length
  return {
    scenario,
    nodes: job.nodes,
    topology: job.topology,
    mode: job.mode,
    liveNodes: live.length,
    broadcasts: seqs.length,
    deliveries: deliveredAt.size,
    deliveredTwice,
    deliveryPercent: (100 * deliveredAt.size) / expected,
    hopsP50: percentile(hops, 50),
    hopsP99: percentile(hops, 99),
    latencyMsP50: percentile(latenciesMs, 50),
    latencyMsP99: percentile(latenciesMs, 99),
    duplicatesPerNodePerBroadcast: counters.duplicates / expected,
    counters,
    ...context,
    seed: SEED,
    virtualMs: sim.kernel.now() - virtualStarted,
    wallMs: performance.now() - wallStarted
  }
}

function warmUp (sim: OverlaySim, broadcaster: Broadcaster): void {
  broadcaster.run(WARMUP_BROADCASTS, WARMUP_GAP_MS)
  sim.kernel.runFor(WARMUP_QUIET_MS)
}

/** One line per scenario, so figures of finished clusters show even if a later one fails. */
function summary (figures: ScenarioFigures): string {
  return `${figures.scenario}: delivery ${fixed(figures.deliveryPercent, 2)}%, hops p50/p99 ${fixed(figures.hopsP50, 0)}/${fixed(figures.hopsP99, 0)}, ` +
    `latency p50/p99 ${fixed(figures.latencyMsP50, 0)}/${fixed(figures.latencyMsP99, 0)} ms, duplicates/node/broadcast ${fixed(figures.duplicatesPerNodePerBroadcast, 3)}, ` +
    `counters ${JSON.stringify(figures.counters)}`
}

function runJob (job: Job, progress: (line: string) => void): JobResult {
  const wallStarted = performance.now()
  const label = `n=${job.nodes} ${job.topology} ${job.mode}${job.lossy ? ' 5% loss' : ''}`
  const elapsed = (): string => `${((performance.now() - wallStarted) / 1_000).toFixed(1)} s`
  // Link-state routing costs one broadcast per node at start, O(n x links) messages: at n = 1000
  // that is most of the wall time and none of what is measured, so the big clusters broadcast only.
  const routing = job.nodes < TARGET_SIZE
  const sim = makeOverlaySim({
    nodes: job.nodes,
    topology: topologyChoice(job.topology).spec(SEED),
    seed: SEED,
    broadcastMode: job.mode,
    messageLossRate: job.lossy ? LOSS_RATE : undefined,
    linkStateRouting: routing
  })
  const random = createPrng(SEED).fork(`broadcast-bench/${label}`)
  const broadcaster = new Broadcaster(sim, random.fork('origins'))
  const stepMs = job.nodes >= TARGET_SIZE ? 1_000 : 250
  const initial = settleRoutes(sim, stepMs, routing)
  progress(`${label}: routes ${initial.settled ? 'settled' : 'NOT settled'} at ${sim.kernel.now()} ms virtual (${elapsed()})`)
  warmUp(sim, broadcaster)
  progress(`${label}: warmed up (${elapsed()})`)
  const scenarios: ScenarioFigures[] = []
  if (job.lossy) {
    scenarios.push(measure(sim, broadcaster, job, '5% loss', LOSS_DRAIN_MS, { routesSettled: initial.settled, settleMs: initial.settleMs, crashed: 0 }))
  } else {
    scenarios.push(measure(sim, broadcaster, job, 'no faults', DRAIN_MS, { routesSettled: initial.settled, settleMs: initial.settleMs, crashed: 0 }))
    progress(`${label}: no faults measured (${elapsed()})`)
    const crashes = pickCrashes(sim.graph, Math.round(CRASHED_SHARE * job.nodes), random.fork('crashes'))
    for (const index of crashes) sim.cluster.crash(sim.members[index] as NodeId)
    const after = settleRoutes(sim, stepMs, routing)
    progress(`${label}: ${crashes.length} crashed, routes ${after.settled ? 'settled' : 'NOT settled'} after ${after.settleMs} ms virtual (${elapsed()})`)
    warmUp(sim, broadcaster)
    scenarios.push(measure(sim, broadcaster, job, '30% crashed', DRAIN_MS, { routesSettled: after.settled, settleMs: after.settleMs, crashed: crashes.length }))
  }
  for (const figures of scenarios) progress(`${label}: ${summary(figures)}`)
  const heapMb = process.memoryUsage().heapUsed / 1_048_576
  progress(`${label}: done in ${elapsed()}, ${sim.kernel.now()} ms virtual, heap ${heapMb.toFixed(0)} MiB`)
  return { job, scenarios, wallMs: performance.now() - wallStarted, heapMb }
}

// --- workers ------------------------------------------------------------------------------------

async function runInWorker (job: Job, progress: (line: string) => void): Promise<JobResult> {
  return await new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { broadcastBenchJob: job } })
    let settled = false
    worker.on('message', (message: WorkerReport) => {
      if (message.kind === 'progress') progress(message.line)
      else if (message.kind === 'done') { settled = true; resolve(message.result); void worker.terminate() } else { settled = true; reject(new Error(message.message)); void worker.terminate() }
    })
    worker.on('error', (error) => { if (!settled) { settled = true; reject(error) } })
    worker.on('exit', (code) => { if (!settled) { settled = true; reject(new Error(`broadcast benchmark worker exited with ${code}`)) } })
  })
}

/** Runs jobs on `workers` threads, biggest first, so the long n = 1000 clusters start at once. */
async function runAll (jobs: Job[], workers: number, progress: (line: string) => void): Promise<JobResult[]> {
  const queue = [...jobs].sort((a, b) => b.nodes - a.nodes)
  const results: JobResult[] = []
  const lane = async (): Promise<void> => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) results.push(await runInWorker(job, progress))
  }
  await Promise.all(Array.from({ length: Math.max(1, workers) }, lane))
  return results
}

function jobsFor (sizes: readonly number[]): Job[] {
  const jobs: Job[] = []
  for (const nodes of sizes) {
    for (const topology of topologies) {
      if (topology.sparse && nodes > SPARSE_TOPOLOGIES_SIZE_MAX) continue
      for (const mode of ['plumtree', 'flood'] as const) {
        for (const lossy of [false, true]) jobs.push({ nodes, topology: topology.name, mode, lossy })
      }
    }
  }
  return jobs
}

// --- report -------------------------------------------------------------------------------------

function fixed (value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '-'
}

function row (figures: ScenarioFigures, firstOfScenario: boolean): string[] {
  const notes = [
    figures.routesSettled ? '' : 'routes unsettled',
    figures.deliveredTwice > 0 ? `${figures.deliveredTwice} twice` : '',
    figures.counters.linkStatesAnnounced > 0 ? `${figures.counters.linkStatesAnnounced} link-state ann.` : '',
    figures.scenario === '30% crashed' ? `${figures.crashed} crashed` : ''
  ].filter((text) => text !== '').join(', ')
  return [
    firstOfScenario ? figures.scenario : '',
    String(figures.nodes),
    figures.topology,
    figures.mode,
    fixed(figures.deliveryPercent, 2),
    fixed(figures.hopsP50, 0),
    fixed(figures.hopsP99, 0),
    fixed(figures.latencyMsP50, 0),
    fixed(figures.latencyMsP99, 0),
    fixed(figures.duplicatesPerNodePerBroadcast, 3),
    notes
  ]
}

function verdictFor (all: ScenarioFigures[]): { text: string, met: boolean | null } {
  const find = (scenario: ScenarioName, mode: BroadcastMode): ScenarioFigures | undefined =>
    all.find((figures) => figures.scenario === scenario && figures.mode === mode && figures.nodes === TARGET_SIZE && figures.topology === TARGET_TOPOLOGY)
  const checks: Array<[string, ScenarioFigures | undefined, (figures: ScenarioFigures) => boolean, (figures: ScenarioFigures) => string]> = [
    ['delivery, no faults', find('no faults', 'plumtree'), (f) => f.deliveries === f.liveNodes * f.broadcasts, (f) => `${fixed(f.deliveryPercent, 2)}% (target 100%)`],
    ['delivery, 5% loss', find('5% loss', 'plumtree'), (f) => f.deliveries === f.liveNodes * f.broadcasts, (f) => `${fixed(f.deliveryPercent, 2)}% (target 100%)`],
    ['duplicates/node/broadcast, steady state', find('no faults', 'plumtree'), (f) => f.duplicatesPerNodePerBroadcast <= TARGET_DUPLICATES_MAX,
      (f) => `${fixed(f.duplicatesPerNodePerBroadcast, 3)} (target <= ${TARGET_DUPLICATES_MAX}; flooding ${fixed(find('no faults', 'flood')?.duplicatesPerNodePerBroadcast ?? Number.NaN, 3)})`],
    ['delivery to survivors, 30% crashed', find('30% crashed', 'plumtree'), (f) => f.deliveries === f.liveNodes * f.broadcasts, (f) => `${fixed(f.deliveryPercent, 2)}% (target 100%)`]
  ]
  const lines = checks.map(([name, figures, passes, describe]) =>
    figures === undefined ? `  ${name}: not measured (n=${TARGET_SIZE} not run): NOT MET` : `  ${name}: ${describe(figures)}: ${passes(figures) ? 'MET' : 'NOT MET'}`)
  const measuredAll = checks.every(([, figures]) => figures !== undefined)
  const met = measuredAll ? checks.every(([, figures, passes]) => passes(figures as ScenarioFigures)) : null
  const overall = met === null ? 'NOT MET (targets not measured)' : met ? 'MET' : 'NOT MET'
  return { text: [`targets at n=${TARGET_SIZE}, ${TARGET_TOPOLOGY}, Plumtree (seed ${SEED}): ${overall}`, ...lines].join('\n'), met }
}

/** `SYNOD_BENCH_BROADCAST_SIZES=16,128` runs a subset; `SYNOD_BENCH_WORKERS` sets the threads. */
function sizesFromEnvironment (): number[] {
  const text = process.env.SYNOD_BENCH_BROADCAST_SIZES
  if (text === undefined || text.trim() === '') return SIZES
  return text.split(',').map((part) => Number(part.trim())).filter((size) => SIZES.includes(size))
}

export async function broadcastBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const started = performance.now()
  const workers = Number(process.env.SYNOD_BENCH_WORKERS ?? Math.min(2, availableParallelism()))
  const jobs = jobsFor(sizesFromEnvironment())
  progress(`${jobs.length} clusters on ${workers} worker threads, seed ${SEED}`)
  const results = await runAll(jobs, workers, progress)
  const all = results.flatMap((result) => result.scenarios)
  const topologyRank = (name: string): number => topologies.findIndex((topology) => topology.name === name)
  all.sort((a, b) =>
    scenarioOrder.indexOf(a.scenario) - scenarioOrder.indexOf(b.scenario) || a.nodes - b.nodes ||
    topologyRank(a.topology) - topologyRank(b.topology) || (a.mode === b.mode ? 0 : a.mode === 'plumtree' ? -1 : 1))
  const rows: string[][] = []
  for (const scenario of scenarioOrder) {
    const group = all.filter((figures) => figures.scenario === scenario)
    if (rows.length > 0 && group.length > 0) rows.push([])
    group.forEach((figures, index) => { rows.push(row(figures, index === 0)) })
  }
  const verdict = verdictFor(all)
  const wallMs = performance.now() - started
  const skipped = SIZES.filter((size) => size > SPARSE_TOPOLOGIES_SIZE_MAX).join(', ')
  return {
    name: 'broadcast',
    title: `Plumtree vs flooding in the simulator (seed ${SEED}); ${MEASURED_BROADCASTS} broadcasts from random live origins ${MEASURED_GAP_MS} ms apart after ` +
      `${WARMUP_BROADCASTS} warm-up broadcasts; deliveries counted ${DRAIN_MS / 1_000} s after the last (${LOSS_DRAIN_MS / 1_000} s with loss); ` +
      `hops and latency (virtual ms) over delivered copies, the origin's own left out; ring and tree not run at n=${skipped}; ` +
      `link-state routing off at n=${TARGET_SIZE} (broadcast only); ` +
      `wall ${(wallMs / 1_000).toFixed(0)} s`,
    header: ['scenario', 'n', 'topology', 'mode', 'delivery %', 'hops p50', 'hops p99', 'lat p50 ms', 'lat p99 ms', 'dup/node/bcast', 'notes'],
    rows,
    verdict: verdict.text,
    data: {
      seed: SEED,
      method: {
        warmupBroadcasts: WARMUP_BROADCASTS, warmupGapMs: WARMUP_GAP_MS, measuredBroadcasts: MEASURED_BROADCASTS, measuredGapMs: MEASURED_GAP_MS,
        drainMs: DRAIN_MS, lossDrainMs: LOSS_DRAIN_MS, lossRate: LOSS_RATE, crashedShare: CRASHED_SHARE
      },
      scenarios: all,
      clusters: results.map((result) => ({ ...result.job, wallMs: result.wallMs, heapMb: result.heapMb })),
      met: verdict.met,
      wallMs
    }
  }
}

// --- worker entry: this module, loaded in a worker thread with a job, runs that one cluster ---

if (!isMainThread && (workerData as { broadcastBenchJob?: Job } | null)?.broadcastBenchJob !== undefined) {
  const port = parentPort
  const job = (workerData as { broadcastBenchJob: Job }).broadcastBenchJob
  const report = (message: WorkerReport): void => { port?.postMessage(message) }
  try {
    report({ kind: 'done', result: runJob(job, (line) => { report({ kind: 'progress', line }) }) })
  } catch (error) {
    report({ kind: 'failed', message: error instanceof Error ? error.stack ?? error.message : String(error) })
  }
}
