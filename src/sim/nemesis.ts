/**
 * The nemesis: injects faults into a simulated cluster, TigerBeetle VOPR style. The seed picks not
 * only when and where faults strike but also how hostile the world is: loss, duplication,
 * reordering and latency spread, how often faults come and how long they last, and which fault
 * kinds are in play at all (a kind may get weight zero, so different seeds explore different
 * mixes: "swarm testing").
 *
 * A run has two phases. In the safety phase faults come and go while protocols must stay safe.
 * In the liveness phase every fault is healed (partitions removed, crashed nodes restarted,
 * paused nodes resumed, bursts ended) and the cluster must converge.
 */
import { assert, type NodeId, type Prng } from '../core/index.js'
import type { SimCluster } from './cluster.js'
import type { EventId, SimKernel } from './kernel.js'
import { describeGroups, type LatencyDistribution, type LinkConditions, type SimNetwork } from './network.js'
import type { LinkPacket } from './transport.js'

export const faultKinds = [
  'partition-symmetric',
  'partition-asymmetric',
  'partition-majority-minority',
  'partition-bridge',
  'crash-restart',
  'pause',
  'network-burst'
] as const

export type FaultKind = typeof faultKinds[number]

export interface InjectedFault {
  readonly atMs: number
  readonly kind: FaultKind
  /**
   * Who the fault hits, in groups: the symmetric groups; [sources, targets] (sources cannot
   * reach targets); [majority, minority]; [sideA, sideB, [bridge]]; [[crashed node]];
   * [[paused node]]; [[node]] or [all nodes] for a burst.
   */
  readonly targets: readonly (readonly NodeId[])[]
  readonly durationMs: number
  /** Extra parameters, such as a burst's loss and latency. */
  readonly detail: string
}

/** How hostile this seed's world is; drawn once per run by `drawFaultProfile`. */
export interface FaultProfile {
  /** Link conditions for the whole run, outside bursts (and in the liveness phase). */
  readonly baseline: LinkConditions
  /** Mean gap between two fault injections in the safety phase. */
  readonly faultGapMsMean: number
  readonly faultDurationMsMin: number
  readonly faultDurationMsMax: number
  /** Relative odds of each fault kind; zero keeps a kind out of this run. */
  readonly kindWeights: Readonly<Record<FaultKind, number>>
  readonly burstLossProbability: number
  /** A burst multiplies latency by this. */
  readonly burstLatencyFactor: number
  /**
   * Most nodes down (crashed) or paused at once. A paused node answers nobody, so it counts as
   * down. A minority, so a quorum could still form; in a cluster of one or two nodes that would
   * be none, so those may lose one node at a time.
   */
  readonly nodesDownMax: number
}

// The ranges the seed draws from.
const LOSS_PROBABILITY_MAX = 0.2
const DUPLICATE_PROBABILITY_MAX = 0.1
const REORDER_PROBABILITY_MAX = 0.3
/** Share of seeds that reorder at all; the rest keep links FIFO. */
const REORDERING_SEEDS_SHARE = 0.5
const REORDER_DELAY_MS_MAX = 100
const LATENCY_MS_MIN = 1
const LATENCY_MS_MAX = 40
const LOG_NORMAL_SIGMA_MAX = 1
const FAULT_GAP_MS_MIN = 300
const FAULT_GAP_MS_MAX = 5_000
const FAULT_DURATION_MS_MIN = 200
const FAULT_DURATION_MS_CAP_MIN = 1_000
const FAULT_DURATION_MS_CAP_MAX = 10_000
const KIND_WEIGHT_MAX = 4
const BURST_LOSS_PROBABILITY_MIN = 0.2
const BURST_LOSS_PROBABILITY_MAX = 0.6
const BURST_LATENCY_FACTOR_MAX = 10
/** Most groups in a symmetric split. */
const PARTITION_GROUPS_MAX = 3
/** Decimal places of drawn probabilities, so profiles read cleanly in reports. */
const PROBABILITY_DIGITS = 3

export function drawFaultProfile (random: Prng, nodeCount: number): FaultProfile {
  const faultDurationMsMax = random.int(FAULT_DURATION_MS_CAP_MIN, FAULT_DURATION_MS_CAP_MAX)
  return {
    baseline: drawBaseline(random),
    faultGapMsMean: random.int(FAULT_GAP_MS_MIN, FAULT_GAP_MS_MAX),
    faultDurationMsMin: FAULT_DURATION_MS_MIN,
    faultDurationMsMax,
    kindWeights: drawKindWeights(random),
    burstLossProbability: roundProbability(BURST_LOSS_PROBABILITY_MIN + random.float() * (BURST_LOSS_PROBABILITY_MAX - BURST_LOSS_PROBABILITY_MIN)),
    burstLatencyFactor: random.int(2, BURST_LATENCY_FACTOR_MAX),
    nodesDownMax: Math.max(1, Math.floor((nodeCount - 1) / 2))
  }
}

function drawBaseline (random: Prng): LinkConditions {
  const reorders = random.chance(REORDERING_SEEDS_SHARE)
  return {
    latency: drawLatency(random),
    lossProbability: roundProbability(random.float() * LOSS_PROBABILITY_MAX),
    duplicateProbability: roundProbability(random.float() * DUPLICATE_PROBABILITY_MAX),
    reorderProbability: reorders ? roundProbability(random.float() * REORDER_PROBABILITY_MAX) : 0,
    reorderDelayMsMax: REORDER_DELAY_MS_MAX
  }
}

function drawLatency (random: Prng): LatencyDistribution {
  const baseMs = random.int(LATENCY_MS_MIN, LATENCY_MS_MAX)
  switch (random.pick(['constant', 'uniform', 'normal', 'logNormal'] as const)) {
    case 'constant':
      return { kind: 'constant', ms: baseMs }
    case 'uniform': {
      const spreadMs = random.int(0, baseMs)
      return { kind: 'uniform', minMs: baseMs - spreadMs, maxMs: baseMs + spreadMs }
    }
    case 'normal':
      return { kind: 'normal', meanMs: baseMs, stdDevMs: random.int(0, baseMs) }
    case 'logNormal':
      return { kind: 'logNormal', medianMs: baseMs, sigma: roundProbability(random.float() * LOG_NORMAL_SIGMA_MAX) }
  }
}

function drawKindWeights (random: Prng): Record<FaultKind, number> {
  const weights = Object.fromEntries(faultKinds.map((kind) => [kind, random.int(0, KIND_WEIGHT_MAX)])) as Record<FaultKind, number>
  if (faultKinds.every((kind) => weights[kind] === 0)) weights[random.pick(faultKinds)] = 1
  return weights
}

function roundProbability (value: number): number {
  const scale = 10 ** PROBABILITY_DIGITS
  return Math.round(value * scale) / scale
}

export function scaleLatency (latency: LatencyDistribution, factor: number): LatencyDistribution {
  switch (latency.kind) {
    case 'constant': return { kind: 'constant', ms: latency.ms * factor }
    case 'uniform': return { kind: 'uniform', minMs: latency.minMs * factor, maxMs: latency.maxMs * factor }
    case 'normal': return { kind: 'normal', meanMs: latency.meanMs * factor, stdDevMs: latency.stdDevMs * factor }
    case 'logNormal': return { kind: 'logNormal', medianMs: latency.medianMs * factor, sigma: latency.sigma }
  }
}

export function describeLatency (latency: LatencyDistribution): string {
  switch (latency.kind) {
    case 'constant': return `constant ${latency.ms} ms`
    case 'uniform': return `uniform ${latency.minMs}..${latency.maxMs} ms`
    case 'normal': return `normal mean ${latency.meanMs} ms sd ${latency.stdDevMs} ms`
    case 'logNormal': return `log-normal median ${latency.medianMs} ms sigma ${latency.sigma}`
  }
}

export interface NemesisInit {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  /** The nemesis's own stream: where and when faults strike. */
  random: Prng
  profile: FaultProfile
}

export class Nemesis {
  private readonly injected: InjectedFault[] = []
  private readonly pendingEvents = new Set<EventId>()
  private burstActive = false
  private phase: 'idle' | 'safety' | 'liveness' = 'idle'

  constructor (private readonly init: NemesisInit) {}

  /** Applies the seed's baseline network and starts injecting faults. */
  startSafetyPhase (): void {
    assert(this.phase === 'idle', 'the safety phase starts once, first')
    this.phase = 'safety'
    const { network, profile, kernel } = this.init
    network.setDefaultConditions(profile.baseline)
    kernel.trace('nemesis.safety', describeProfile(profile))
    this.scheduleNextFault()
  }

  /** Stops injecting and heals everything, so the cluster can show it converges. */
  startLivenessPhase (): void {
    assert(this.phase === 'safety', 'the liveness phase follows the safety phase')
    this.phase = 'liveness'
    const { kernel, network, cluster, profile } = this.init
    for (const id of this.pendingEvents) kernel.cancel(id)
    this.pendingEvents.clear()
    kernel.trace('nemesis.liveness', 'heal everything')
    network.heal()
    network.clearLinkConditions()
    network.setDefaultConditions(profile.baseline)
    this.burstActive = false
    for (const node of cluster.nodes) {
      if (cluster.isPaused(node.id)) cluster.resume(node.id)
      if (!cluster.isUp(node.id)) cluster.restart(node.id)
    }
  }

  faults (): InjectedFault[] {
    return this.injected.slice()
  }

  private later (delayMs: number, fire: () => void): void {
    const id = this.init.kernel.schedule(delayMs, () => {
      this.pendingEvents.delete(id)
      fire()
    })
    this.pendingEvents.add(id)
  }

  private scheduleNextFault (): void {
    const gapMs = this.init.random.int(0, 2 * this.init.profile.faultGapMsMean)
    this.later(gapMs, () => {
      this.injectFault()
      this.scheduleNextFault()
    })
  }

  private injectFault (): void {
    const { random, profile, kernel } = this.init
    const kind = pickWeighted(random, profile.kindWeights)
    const durationMs = random.int(profile.faultDurationMsMin, profile.faultDurationMsMax)
    const outcome = this.inject(kind, durationMs)
    if (outcome === null) {
      kernel.trace('nemesis.skip', `${kind} not applicable now`)
      return
    }
    const fault: InjectedFault = { atMs: kernel.now(), kind, targets: outcome.targets, durationMs, detail: outcome.detail }
    this.injected.push(fault)
    kernel.trace('nemesis.fault', `${kind} ${describeGroups(fault.targets)} for ${durationMs} ms ${fault.detail}`.trimEnd())
  }

  /** Applies one fault and plans its end; null when the fault cannot apply right now. */
  private inject (kind: FaultKind, durationMs: number): { targets: NodeId[][], detail: string } | null {
    switch (kind) {
      case 'partition-symmetric': return this.partitionSymmetric(durationMs)
      case 'partition-asymmetric': return this.partitionAsymmetric(durationMs)
      case 'partition-majority-minority': return this.partitionMajorityMinority(durationMs)
      case 'partition-bridge': return this.partitionBridge(durationMs)
      case 'crash-restart': return this.crashRestart(durationMs)
      case 'pause': return this.pause(durationMs)
      case 'network-burst': return this.networkBurst(durationMs)
    }
  }

  private shuffledMembers (): NodeId[] {
    return this.init.random.shuffle(this.init.cluster.members)
  }

  private healLater (partitionId: number, durationMs: number): void {
    this.later(durationMs, () => { this.init.network.heal(partitionId) })
  }

  private partitionSymmetric (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const nodes = this.shuffledMembers()
    if (nodes.length < 2) return null
    const groupCount = this.init.random.int(2, Math.min(PARTITION_GROUPS_MAX, nodes.length))
    // The first nodes seed each group so none is empty; the rest land anywhere.
    const groups: NodeId[][] = nodes.slice(0, groupCount).map((node) => [node])
    for (const node of nodes.slice(groupCount)) groups[this.init.random.int(0, groupCount - 1)].push(node)
    this.healLater(this.init.network.partition(groups), durationMs)
    return { targets: groups, detail: '' }
  }

  private partitionAsymmetric (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const nodes = this.shuffledMembers()
    if (nodes.length < 2) return null
    const sourceCount = this.init.random.int(1, nodes.length - 1)
    const sources = nodes.slice(0, sourceCount)
    const targets = nodes.slice(sourceCount)
    this.healLater(this.init.network.partitionOneWay(sources, targets), durationMs)
    return { targets: [sources, targets], detail: 'sources cannot reach targets' }
  }

  private partitionMajorityMinority (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const nodes = this.shuffledMembers()
    if (nodes.length < 3) return null
    const minoritySize = this.init.random.int(1, Math.floor((nodes.length - 1) / 2))
    const minority = nodes.slice(0, minoritySize)
    const majority = nodes.slice(minoritySize)
    this.healLater(this.init.network.partitionMajorityMinority(majority, minority), durationMs)
    return { targets: [majority, minority], detail: '' }
  }

  private partitionBridge (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const nodes = this.shuffledMembers()
    if (nodes.length < 3) return null
    const [bridge, ...rest] = nodes
    const sideASize = this.init.random.int(1, rest.length - 1)
    const sideA = rest.slice(0, sideASize)
    const sideB = rest.slice(sideASize)
    this.healLater(this.init.network.partitionBridge(sideA, sideB, bridge), durationMs)
    return { targets: [sideA, sideB, [bridge]], detail: 'bridge reaches both sides' }
  }

  /** Nodes crashed or paused right now: neither answers its peers. */
  private unavailableCount (): number {
    const { cluster } = this.init
    return cluster.members.filter((id) => !cluster.isUp(id) || cluster.isPaused(id)).length
  }

  private crashRestart (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const { cluster, random, profile } = this.init
    const candidates = cluster.members.filter((id) => cluster.isUp(id))
    if (this.unavailableCount() >= profile.nodesDownMax || candidates.length === 0) return null
    const victim = random.pick(candidates)
    cluster.crash(victim)
    this.later(durationMs, () => { cluster.restart(victim) })
    return { targets: [[victim]], detail: '' }
  }

  private pause (durationMs: number): { targets: NodeId[][], detail: string } | null {
    const { cluster, random, profile } = this.init
    const candidates = cluster.members.filter((id) => cluster.isUp(id) && !cluster.isPaused(id))
    if (this.unavailableCount() >= profile.nodesDownMax || candidates.length === 0) return null
    const victim = random.pick(candidates)
    cluster.pause(victim, durationMs)
    return { targets: [[victim]], detail: '' }
  }

  /** Heavy loss and slow links for a while, either everywhere or around one node. */
  private networkBurst (durationMs: number): { targets: NodeId[][], detail: string } | null {
    if (this.burstActive) return null
    const { network, random, profile, cluster } = this.init
    const burst: Partial<LinkConditions> = {
      lossProbability: profile.burstLossProbability,
      latency: scaleLatency(profile.baseline.latency, profile.burstLatencyFactor)
    }
    this.burstActive = true
    const detail = `loss ${profile.burstLossProbability} latency x${profile.burstLatencyFactor}`
    if (random.chance(0.5)) {
      network.setDefaultConditions(burst)
      this.later(durationMs, () => { this.endBurst() })
      return { targets: [[...cluster.members]], detail }
    }
    const center = random.pick(cluster.members)
    for (const other of cluster.members) {
      if (other === center) continue
      network.setLinkConditions(center, other, burst)
      network.setLinkConditions(other, center, burst)
    }
    this.later(durationMs, () => { this.endBurst() })
    return { targets: [[center]], detail }
  }

  private endBurst (): void {
    const { network, profile, kernel } = this.init
    network.clearLinkConditions()
    network.setDefaultConditions(profile.baseline)
    this.burstActive = false
    kernel.trace('nemesis.burst-end', '')
  }
}

function pickWeighted (random: Prng, weights: Readonly<Record<FaultKind, number>>): FaultKind {
  const total = faultKinds.reduce((sum, kind) => sum + weights[kind], 0)
  assert(total > 0, 'at least one fault kind has a positive weight')
  let ticket = random.int(0, total - 1)
  for (const kind of faultKinds) {
    if (ticket < weights[kind]) return kind
    ticket -= weights[kind]
  }
  throw new Error('unreachable: the weighted ticket fell past the last kind')
}

export function describeProfile (profile: FaultProfile): string {
  const { baseline } = profile
  const kinds = faultKinds.map((kind) => `${kind}:${profile.kindWeights[kind]}`).join(' ')
  return [
    `latency ${describeLatency(baseline.latency)}`,
    `loss ${baseline.lossProbability}`,
    `duplicate ${baseline.duplicateProbability}`,
    `reorder ${baseline.reorderProbability}`,
    `fault gap mean ${profile.faultGapMsMean} ms`,
    `fault duration ${profile.faultDurationMsMin}..${profile.faultDurationMsMax} ms`,
    `burst loss ${profile.burstLossProbability} latency x${profile.burstLatencyFactor}`,
    `nodes down max ${profile.nodesDownMax}`,
    `weights ${kinds}`
  ].join(' | ')
}
