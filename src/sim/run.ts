/**
 * One simulation run from one seed: build the cluster, let the nemesis loose for the safety
 * phase, heal everything, and check that the cluster converges in the liveness phase. The result
 * carries the seed, the faults, a summary and the trace hash; the same seed gives the same result
 * to the byte, so a failing seed is a reproducible bug report.
 */
import { z } from 'zod'
import { CoreError, SEED_MAX, createPrng, errorMessage, type NodeId, type TransportStats } from '../core/index.js'
import { defaultHelloLimits } from '../net/index.js'
import { SimCluster } from './cluster.js'
import { SimKernel, type KernelStats } from './kernel.js'
import { SimNetwork, type NetworkStats } from './network.js'
import { Nemesis, describeProfile, drawFaultProfile, type FaultProfile, type InjectedFault } from './nemesis.js'
import type { LinkPacket } from './transport.js'

/** Largest simulated cluster; beyond it a run stops being quick. */
export const simulationNodesMax = 64
/** Longest safety phase accepted, in virtual time (a day). */
export const simulationDurationMsMax = 86_400_000
/** How long the healed cluster gets to converge before the run is a failure. */
export const defaultLivenessTimeoutMs = 30_000
/** Trace lines a result keeps for a failing seed's report. */
const TRACE_TAIL_LINES_MAX = 40

const simulationOptionsSchema = z.strictObject({
  seed: z.number().int().min(0).max(SEED_MAX),
  nodes: z.number().int().min(1).max(simulationNodesMax),
  durationMs: z.number().int().min(0).max(simulationDurationMsMax),
  livenessTimeoutMs: z.number().int().min(0).max(simulationDurationMsMax).optional()
})

export interface SimulationOptions {
  seed: number
  nodes: number
  /** Virtual length of the safety phase (faults on). The liveness phase follows it. */
  durationMs: number
  /** Bound on the liveness phase, in virtual time. */
  livenessTimeoutMs?: number
}

export interface NodeSummary {
  index: number
  id: NodeId
  up: boolean
  /** Incarnations the simulator started. */
  incarnations: number
  /** The boot count the hello service read from disk: lower than incarnations when a crash beat a sync. */
  boots: number
  bootDurable: boolean
  reachable: NodeId[]
  greetsSent: number
  greetsReceived: number
  transport: TransportStats | null
  diskWritesLostAtCrash: number
}

export interface SimulationSummary {
  profile: FaultProfile
  livenessStartMs: number
  endMs: number
  /** After the liveness phase, every node reaches every other node. */
  converged: boolean
  convergedAtMs: number | null
  nodes: NodeSummary[]
  network: NetworkStats
  kernel: KernelStats
  startFailures: string[]
  /** The last trace lines, kept only when the run did not converge. */
  traceTail: string[]
}

export interface SimulationResult {
  seed: number
  nodes: number
  durationMs: number
  faults: InjectedFault[]
  traceHash: string
  /** Kernel events fired. */
  events: number
  summary: SimulationSummary
}

export function runSimulation (options: SimulationOptions): SimulationResult {
  const parsed = simulationOptionsSchema.safeParse(options)
  if (!parsed.success) {
    throw new CoreError('CORE_CONFIG_INVALID', `bad simulation options: ${parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; ')}`)
  }
  const { seed, nodes, durationMs } = parsed.data
  const livenessTimeoutMs = parsed.data.livenessTimeoutMs ?? defaultLivenessTimeoutMs
  const kernel = new SimKernel()
  try {
    return simulate(kernel, seed, nodes, durationMs, livenessTimeoutMs)
  } catch (error) {
    throw new Error(`simulation seed ${seed} failed at virtual ${kernel.now()} ms: ${errorMessage(error)}`, { cause: error })
  }
}

function simulate (kernel: SimKernel, seed: number, nodeCount: number, durationMs: number, livenessTimeoutMs: number): SimulationResult {
  const root = createPrng(seed)
  kernel.trace('sim.start', `seed ${seed} nodes ${nodeCount} safety ${durationMs} ms`)
  const network = new SimNetwork<LinkPacket>(kernel, root.fork('network'))
  const cluster = new SimCluster({ kernel, network, random: root.fork('cluster'), nodeCount })
  const profile = drawFaultProfile(root.fork('profile'), nodeCount)
  const nemesis = new Nemesis({ kernel, network, cluster, random: root.fork('nemesis'), profile })

  nemesis.startSafetyPhase()
  cluster.start()
  kernel.runFor(durationMs)

  nemesis.startLivenessPhase()
  const livenessStartMs = kernel.now()
  // Reachability is "heard within peerTimeoutMs", so only judge once anything heard before the heal has expired.
  const judgeFromMs = livenessStartMs + defaultHelloLimits.peerTimeoutMs
  const converged = kernel.runUntil(() => kernel.now() >= judgeFromMs && isConverged(cluster), livenessTimeoutMs)
  const endMs = kernel.now()
  kernel.trace('sim.end', converged ? `converged at ${endMs}` : 'did not converge')

  return {
    seed,
    nodes: nodeCount,
    durationMs,
    faults: nemesis.faults(),
    traceHash: kernel.traceHash(),
    events: kernel.stats().eventsFired,
    summary: {
      profile,
      livenessStartMs,
      endMs,
      converged,
      convergedAtMs: converged ? endMs : null,
      nodes: cluster.nodes.map((node) => summarizeNode(cluster, node.id)),
      network: network.stats(),
      kernel: kernel.stats(),
      startFailures: [...cluster.failures()],
      traceTail: converged ? [] : kernel.recentTrace().slice(-TRACE_TAIL_LINES_MAX)
    }
  }
}

/** Every node is up, has a live link to every other node, and has heard from each lately. */
export function isConverged (cluster: SimCluster): boolean {
  for (const id of cluster.members) {
    const node = cluster.node(id)
    const hello = cluster.hello(id)
    if (!cluster.isUp(id) || node.transport === null || hello === undefined) return false
    const reachable = new Set(hello.reachable())
    const linked = new Set(node.transport.links().filter((link) => link.state === 'connected').map((link) => link.peer))
    for (const peer of cluster.members) {
      if (peer !== id && !(reachable.has(peer) && linked.has(peer))) return false
    }
  }
  return true
}

function summarizeNode (cluster: SimCluster, id: NodeId): NodeSummary {
  const node = cluster.node(id)
  const status = cluster.hello(id)?.status()
  return {
    index: node.index,
    id,
    up: cluster.isUp(id),
    incarnations: node.boots,
    boots: status?.boots ?? 0,
    bootDurable: status?.bootDurable ?? false,
    reachable: status?.reachable ?? [],
    greetsSent: status?.greetsSent ?? 0,
    greetsReceived: status?.peers.reduce((sum, peer) => sum + peer.greetsReceived, 0) ?? 0,
    transport: node.transport?.stats() ?? null,
    diskWritesLostAtCrash: node.disk.stats().writesLostAtCrash
  }
}

// --- report ------------------------------------------------------------------------------------

/** A plain-text report: the seed first, then the faults, the summary, and the trace hash last. */
export function formatReport (result: SimulationResult): string {
  const names = new Map(result.summary.nodes.map((node) => [node.id, `n${node.index}`]))
  const name = (id: NodeId): string => names.get(id) ?? id
  return [
    `seed ${result.seed}`,
    `nodes ${result.nodes}, safety phase ${result.durationMs} ms, liveness phase ${result.summary.endMs - result.summary.livenessStartMs} ms`,
    `profile: ${describeProfile(result.summary.profile)}`,
    ...formatFaults(result.faults, name),
    ...formatSummary(result, name),
    `trace hash ${result.traceHash}`
  ].join('\n') + '\n'
}

function formatFaults (faults: readonly InjectedFault[], name: (id: NodeId) => string): string[] {
  const lines = [`faults (${faults.length}):`]
  for (const fault of faults) {
    const targets = fault.targets.map((group) => `{${group.map(name).join(' ')}}`).join(' ')
    lines.push(`  t=${fault.atMs} ms  ${fault.kind}  ${targets}  for ${fault.durationMs} ms${fault.detail === '' ? '' : `  (${fault.detail})`}`)
  }
  return lines
}

function formatSummary (result: SimulationResult, name: (id: NodeId) => string): string[] {
  const { summary } = result
  const peersEach = result.nodes - 1
  const lines = [
    'summary:',
    `  converged: ${summary.converged ? `yes, at ${summary.convergedAtMs ?? 0} ms` : `NO (by ${summary.endMs} ms)`}`
  ]
  for (const node of summary.nodes) {
    const stats = node.transport
    lines.push(`  ${name(node.id)} ${node.id}  ${node.up ? 'up' : 'down'}  incarnations ${node.incarnations}  boots ${node.boots}${node.bootDurable ? '' : ' (not durable)'}` +
      `  reaches ${node.reachable.length}/${peersEach} [${node.reachable.map(name).sort().join(' ')}]  greets sent ${node.greetsSent} received ${node.greetsReceived}` +
      (stats === null ? '' : `  frames ${stats.framesSent}/${stats.framesReceived}  dropped ${stats.droppedFrames}  bad ${stats.badFrames}  reconnects ${stats.reconnects}`) +
      `  writes lost ${node.diskWritesLostAtCrash}`)
  }
  const net = summary.network
  lines.push(`  network: sent ${net.sent} delivered ${net.delivered} lost ${net.lost} blocked ${net.blocked} duplicated ${net.duplicated} reordered ${net.reordered} undeliverable ${net.undeliverable}`)
  lines.push(`  events: fired ${summary.kernel.eventsFired} dropped ${summary.kernel.eventsDropped} deferred ${summary.kernel.eventsDeferred}`)
  for (const failure of summary.startFailures) lines.push(`  start failure: ${failure}`)
  if (summary.traceTail.length > 0) lines.push('  last trace lines:', ...summary.traceTail.map((line) => `    ${line}`))
  return lines
}
