/**
 * Membership benchmark, in the simulator, at n = 5, 50 and 500 on a random 8-regular overlay
 * (full mesh at n = 5) with link-state routing, the production path: probes travel through the
 * overlay's routed send.
 *
 * - Detection: crash one node (a process crash: its connections reset), measure at every other
 *   node the virtual time until it declares the node dead; restart it, wait until all hold it
 *   alive again; repeat. p50, p99 and max over all observations.
 * - Silent failure: the same with the node cut off by a partition instead (no reset, nothing to
 *   hint at the failure but unanswered probes).
 * - False positives: a settled cluster, then 5% message loss and a 2 s pause of a random node
 *   every few seconds, for `FALSE_POSITIVE_RUN_MS`: healthy nodes declared dead (target 0),
 *   suspicions raised (all refuted).
 * - Load: membership messages sent per node per second in a quiet steady state, and under the
 *   5% loss run. Target: independent of n within 20% (max/min of the quiet figures <= 1.2).
 *
 * Each size runs in a worker thread (two at most), since runs are independent and every run is a
 * pure function of its seed.
 */
import { availableParallelism } from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import type { NodeId } from '../src/core/index.js'
import type { MembershipStats } from '../src/membership/index.js'
import type { TopologySpecInput } from '../src/net/index.js'
import { makeMembershipSim, type MembershipSim } from '../test/support/membership-sim.js'
import { percentile, type BenchResult } from './util.js'

/** `MEMBERSHIP_BENCH_SIZES=5,50` runs a subset; n = 500 takes long in the simulator (see docs/membership.md). */
const SIZES = (process.env.MEMBERSHIP_BENCH_SIZES ?? '5,50,500').split(',').map(Number).filter((size) => Number.isInteger(size) && size >= 3)
const SEED = 1
const CRASH_TRIALS = 6
const DEGREE = 8
const WARMUP_MS_MAX = 60_000
const DETECTION_WAIT_MS_MAX = 30_000
const QUIET_WINDOW_MS = 30_000
const FALSE_POSITIVE_RUN_MS = 60_000
const PAUSE_MS = 2_000
const LOSS_RATE = 0.05
const TARGET_DETECTION_P99_MS = 5_000
const TARGET_LOAD_SPREAD = 1.2

interface SizeFigures {
  nodes: number
  detectionMs: number[]
  silentDetectionMs: number[]
  falseDeaths: number
  suspicions: number
  pauses: number
  quietMessagesPerNodeSecond: number
  lossyMessagesPerNodeSecond: number
  wallMs: number
}

function topologyFor (nodes: number, seed: number): TopologySpecInput {
  return nodes - 1 <= DEGREE ? { kind: 'full-mesh' } : { kind: 'random-regular', degree: DEGREE, seed }
}

/** Until every node holds every other alive and the start-up news has been passed on in full. */
function warmUp (sim: MembershipSim): void {
  if (!sim.runUntil(() => sim.allAlive(), WARMUP_MS_MAX)) throw new Error(`cluster of ${sim.members.length} did not settle within ${WARMUP_MS_MAX} ms`)
  const quiet = (): boolean => sim.members.every((id) => (sim.membership(id)?.updatesQueued() ?? 0) === 0)
  if (!sim.runUntil(quiet, WARMUP_MS_MAX, 500)) throw new Error(`cluster of ${sim.members.length} still had updates to gossip after ${WARMUP_MS_MAX} ms`)
}

function messagesSent (sim: MembershipSim): number {
  let total = 0
  for (const id of sim.members) {
    const stats: MembershipStats | undefined = sim.membership(id)?.stats()
    for (const count of Object.values(stats?.messagesSent ?? {})) total += count
  }
  return total
}

/** Virtual ms until each other up node declared `victim` dead, from `sinceMs`. */
function detections (sim: MembershipSim, victim: NodeId, sinceMs: number): number[] {
  const firstDeath = new Map<NodeId, number>()
  for (const entry of sim.events) {
    const event = entry.event
    if (event.kind === 'state' && event.member === victim && event.to === 'dead' && event.atMs >= sinceMs && !firstDeath.has(entry.at)) firstDeath.set(entry.at, event.atMs - sinceMs)
  }
  return sim.members.filter((id) => id !== victim && sim.cluster.isUp(id)).map((id) => firstDeath.get(id) ?? Number.POSITIVE_INFINITY)
}

function measureSize (nodes: number, progress: (line: string) => void): SizeFigures {
  const started = performance.now()
  const sim = makeMembershipSim({ nodes, seed: SEED, topology: topologyFor(nodes, SEED) })
  warmUp(sim)
  progress(`n=${nodes}: settled at ${Math.round(sim.kernel.now())} ms virtual`)

  const before = messagesSent(sim)
  sim.kernel.runFor(QUIET_WINDOW_MS)
  const quietMessagesPerNodeSecond = (messagesSent(sim) - before) / nodes / (QUIET_WINDOW_MS / 1_000)

  const detectionMs: number[] = []
  const silentDetectionMs: number[] = []
  for (let trial = 0; trial < CRASH_TRIALS; trial++) {
    const silent = trial % 2 === 1
    const victim = sim.members[(trial * 7 + 3) % nodes] as NodeId
    sim.kernel.runFor(137 * (trial + 1))
    const sinceMs = sim.kernel.now()
    if (silent) sim.network.partition([[victim], sim.members.filter((id) => id !== victim)])
    else sim.cluster.crash(victim)
    sim.runUntil(() => sim.allSee(victim, 'dead', sim.members.filter((id) => id !== victim)), DETECTION_WAIT_MS_MAX)
    const observed = detections(sim, victim, sinceMs);
    (silent ? silentDetectionMs : detectionMs).push(...observed)
    if (silent) sim.network.heal()
    else sim.cluster.restart(victim)
    if (!sim.runUntil(() => sim.allAlive(), DETECTION_WAIT_MS_MAX)) throw new Error(`n=${nodes}: ${victim} did not come back after trial ${trial}`)
    progress(`n=${nodes}: trial ${trial + 1}/${CRASH_TRIALS} (${silent ? 'partitioned' : 'crashed'}) p99 so far ${percentile(silent ? silentDetectionMs : detectionMs, 99)} ms`)
  }

  // Settled without loss, then 5% of messages lost from here on: the steady state under loss.
  const lossy = makeMembershipSim({ nodes, seed: SEED + 1, topology: topologyFor(nodes, SEED + 1) })
  warmUp(lossy)
  lossy.cluster.setMessageLossRate(LOSS_RATE)
  progress(`n=${nodes}: settled at ${Math.round(lossy.kernel.now())} ms virtual; 5% loss from now on`)
  const lossyStartMs = lossy.kernel.now()
  const lossyBefore = messagesSent(lossy)
  let pauses = 0
  while (lossy.kernel.now() - lossyStartMs < FALSE_POSITIVE_RUN_MS) {
    lossy.kernel.runFor(2_000 + (pauses * 7919) % 3_000)
    lossy.cluster.pause(lossy.members[(pauses * 31 + 5) % nodes] as NodeId, PAUSE_MS)
    pauses++
    if (pauses % 5 === 0) progress(`n=${nodes}: 5% loss run at ${Math.round((lossy.kernel.now() - lossyStartMs) / 1_000)} of ${FALSE_POSITIVE_RUN_MS / 1_000} s, ${pauses} pauses`)
  }
  lossy.kernel.runFor(10_000)
  const lossyMessagesPerNodeSecond = (messagesSent(lossy) - lossyBefore) / nodes / ((lossy.kernel.now() - lossyStartMs) / 1_000)
  const after = lossy.events.filter((entry) => entry.event.atMs >= lossyStartMs)
  const falseDeaths = after.filter((entry) => entry.event.kind === 'state' && entry.event.to === 'dead').length
  const suspicions = after.filter((entry) => entry.event.kind === 'state' && entry.event.to === 'suspect').length
  progress(`n=${nodes}: loss and pauses done, ${falseDeaths} false deaths, ${suspicions} suspicions`)
  return { nodes, detectionMs, silentDetectionMs, falseDeaths, suspicions, pauses, quietMessagesPerNodeSecond, lossyMessagesPerNodeSecond, wallMs: performance.now() - started }
}

function runInWorker (nodes: number, progress: (line: string) => void): Promise<SizeFigures> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { nodes } })
    worker.on('message', (message: { progress?: string, result?: SizeFigures }) => {
      if (message.progress !== undefined) progress(message.progress)
      if (message.result !== undefined) resolve(message.result)
    })
    worker.on('error', reject)
    worker.on('exit', (code) => { if (code !== 0) reject(new Error(`worker for n=${nodes} exited with ${code}`)) })
  })
}

async function inParallel<T, R> (items: T[], limit: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length)
  let next = 0
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await run(items[index] as T)
    }
  })
  await Promise.all(lanes)
  return results
}

const ms = (value: number): string => Number.isFinite(value) ? String(Math.round(value)) : 'never'

export async function membershipBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  // Largest first, so the longest run starts at once.
  const sizes = [...SIZES].sort((a, b) => b - a)
  const figures = (await inParallel(sizes, Math.min(2, availableParallelism()), (nodes) => runInWorker(nodes, progress))).sort((a, b) => a.nodes - b.nodes)
  const loads = figures.map((entry) => entry.quietMessagesPerNodeSecond)
  const loadSpread = Math.max(...loads) / Math.min(...loads)
  const worstP99 = Math.max(...figures.map((entry) => percentile(entry.detectionMs, 99)))
  const falseDeaths = figures.reduce((sum, entry) => sum + entry.falseDeaths, 0)
  const met = worstP99 <= TARGET_DETECTION_P99_MS && falseDeaths === 0 && loadSpread <= TARGET_LOAD_SPREAD
  return {
    name: 'membership',
    title: `SWIM + Lifeguard in the simulator, 1 s probe interval, random ${DEGREE}-regular overlay (full mesh at n = 5)`,
    header: ['n', 'crash p50 ms', 'crash p99 ms', 'crash max ms', 'silent p50 ms', 'silent p99 ms', 'false deaths', 'suspicions', 'msgs/node/s quiet', 'msgs/node/s 5% loss', 'wall s'],
    rows: figures.map((entry) => [
      String(entry.nodes),
      ms(percentile(entry.detectionMs, 50)), ms(percentile(entry.detectionMs, 99)), ms(Math.max(...entry.detectionMs)),
      ms(percentile(entry.silentDetectionMs, 50)), ms(percentile(entry.silentDetectionMs, 99)),
      `${entry.falseDeaths}/${entry.pauses} pauses`, String(entry.suspicions),
      entry.quietMessagesPerNodeSecond.toFixed(2), entry.lossyMessagesPerNodeSecond.toFixed(2),
      (entry.wallMs / 1_000).toFixed(1)
    ]),
    verdict: `${met ? 'MET' : 'NOT MET'}: crash detection p99 ${ms(worstP99)} ms at worst (target <= ${TARGET_DETECTION_P99_MS}), ` +
      `${falseDeaths} false deaths under ${LOSS_RATE * 100}% loss and ${PAUSE_MS} ms pauses (target 0), ` +
      `quiet load max/min across sizes ${loadSpread.toFixed(2)} (target <= ${TARGET_LOAD_SPREAD})`,
    data: { figures, targets: { detectionP99Ms: TARGET_DETECTION_P99_MS, falseDeaths: 0, loadSpread: TARGET_LOAD_SPREAD } }
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const { nodes } = workerData as { nodes: number }
  const result = measureSize(nodes, (line) => { port.postMessage({ progress: line }) })
  port.postMessage({ result })
}
