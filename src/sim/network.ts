/**
 * The simulated packet network: per directed link latency, loss, duplication and reordering, plus
 * partitions. It moves opaque payloads between node ids; the simulated transport builds
 * connections on top of it. Every decision draws from the seeded generator it is given, and every
 * packet's fate (blocked, lost, duplicated, delivered) is written to the kernel trace.
 *
 * Partitions are checked when a packet is sent: a packet already on the wire when a partition
 * starts still arrives, as it would have left the switch already.
 */
import { assert, type NodeId, type Prng } from '../core/index.js'
import type { SimKernel } from './kernel.js'
import { shortId } from './names.js'

export type LatencyDistribution =
  | { readonly kind: 'constant', readonly ms: number }
  | { readonly kind: 'uniform', readonly minMs: number, readonly maxMs: number }
  /** Normal, clipped at zero. */
  | { readonly kind: 'normal', readonly meanMs: number, readonly stdDevMs: number }
  /** Log-normal: a long right tail, as real networks have. `sigma` is the spread of ln(latency). */
  | { readonly kind: 'logNormal', readonly medianMs: number, readonly sigma: number }

export interface LinkConditions {
  readonly latency: LatencyDistribution
  readonly lossProbability: number
  readonly duplicateProbability: number
  /** Share of packets held back by up to `reorderDelayMsMax` extra, so later ones may overtake them. 0 keeps the link FIFO. */
  readonly reorderProbability: number
  readonly reorderDelayMsMax: number
}

const calmConditions: LinkConditions = {
  latency: { kind: 'uniform', minMs: 1, maxMs: 5 },
  lossProbability: 0,
  duplicateProbability: 0,
  reorderProbability: 0,
  reorderDelayMsMax: 50
}

/** A quiet LAN: a few milliseconds, nothing lost, duplicated or reordered. */
export const calmLinkConditions: Readonly<LinkConditions> = Object.freeze(calmConditions)

/** Anything the network carries; `label` names it in the trace. */
export interface NetworkPayload {
  readonly label: string
}

export type PacketReceiver<Payload> = (from: NodeId, payload: Payload) => void

/** What happened to a packet at send time: 'sent' means it is on the wire. */
export type SendFate = 'sent' | 'lost' | 'blocked'

export type PartitionKind = 'symmetric' | 'asymmetric' | 'majority-minority' | 'bridge'

export interface PartitionInfo {
  readonly id: number
  readonly kind: PartitionKind
  /** The groups as given: symmetric groups; [sources, targets]; [majority, minority]; [sideA, sideB, [bridge]]. */
  readonly groups: readonly (readonly NodeId[])[]
}

interface Partition extends PartitionInfo {
  readonly blocked: ReadonlySet<string>
}

export interface NetworkStats {
  sent: number
  delivered: number
  lost: number
  blocked: number
  duplicated: number
  reordered: number
  /** Packets that arrived where nobody listens (the node is down or its transport stopped). */
  undeliverable: number
}

const linkKey = (from: NodeId, to: NodeId): string => `${from}>${to}`

export class SimNetwork<Payload extends NetworkPayload = NetworkPayload> {
  private defaults: LinkConditions
  private readonly overrides = new Map<string, Partial<LinkConditions>>()
  private readonly receivers = new Map<NodeId, PacketReceiver<Payload>>()
  /** Per directed link, the arrival time of the last in-order packet: FIFO never goes below it. */
  private readonly lastArrivalMs = new Map<string, number>()
  private readonly partitions = new Map<number, Partition>()
  private nextPartitionId = 1
  private readonly counters: NetworkStats = { sent: 0, delivered: 0, lost: 0, blocked: 0, duplicated: 0, reordered: 0, undeliverable: 0 }

  constructor (
    private readonly kernel: SimKernel,
    private readonly random: Prng,
    defaults: Partial<LinkConditions> = {}
  ) {
    this.defaults = { ...calmLinkConditions, ...defaults }
  }

  // --- endpoints ----------------------------------------------------------------------------

  attach (node: NodeId, receiver: PacketReceiver<Payload>): void {
    this.receivers.set(node, receiver)
  }

  detach (node: NodeId): void {
    this.receivers.delete(node)
  }

  // --- conditions ---------------------------------------------------------------------------

  defaultConditions (): LinkConditions {
    return this.defaults
  }

  setDefaultConditions (conditions: Partial<LinkConditions>): void {
    this.defaults = { ...this.defaults, ...conditions }
  }

  /** Overrides some conditions on one directed link; `null` removes the override. */
  setLinkConditions (from: NodeId, to: NodeId, conditions: Partial<LinkConditions> | null): void {
    if (conditions === null) this.overrides.delete(linkKey(from, to))
    else this.overrides.set(linkKey(from, to), conditions)
  }

  clearLinkConditions (): void {
    this.overrides.clear()
  }

  conditionsFor (from: NodeId, to: NodeId): LinkConditions {
    const override = this.overrides.get(linkKey(from, to))
    return override === undefined ? this.defaults : { ...this.defaults, ...override }
  }

  // --- packets ------------------------------------------------------------------------------

  /**
   * Puts a packet on the directed link from -> to and returns its fate at send time. A sent
   * packet arrives after a drawn latency (and perhaps twice); it is handed to whoever is
   * attached at `to` when it arrives, as an event owned by the receiver's incarnation.
   */
  send (from: NodeId, to: NodeId, payload: Payload): SendFate {
    const route = `${shortId(from)}>${shortId(to)} ${payload.label}`
    if (!this.canReach(from, to)) {
      this.counters.blocked++
      this.kernel.trace('net.block', route)
      return 'blocked'
    }
    const conditions = this.conditionsFor(from, to)
    if (this.random.chance(conditions.lossProbability)) {
      this.counters.lost++
      this.kernel.trace('net.loss', route)
      return 'lost'
    }
    this.counters.sent++
    const arrival = this.arrivalDelayMs(from, to, conditions, route)
    this.scheduleArrival(from, to, payload, arrival.delayMs, route)
    if (this.random.chance(conditions.duplicateProbability)) {
      this.counters.duplicated++
      // A copy of an in-order packet travels as if sent again right behind it, so the link stays
      // FIFO: nothing sent later arrives before it (a late copy would be a reordering). A copy
      // of a held-back packet trails it by one more latency.
      const copyLatencyMs = drawLatencyMs(conditions.latency, this.random)
      const duplicateDelayMs = arrival.reordered ? arrival.delayMs + copyLatencyMs : this.fifoDelayMs(from, to, copyLatencyMs)
      this.kernel.trace('net.dup', `${route} +${duplicateDelayMs}`)
      this.scheduleArrival(from, to, payload, duplicateDelayMs, route)
    }
    return 'sent'
  }

  private arrivalDelayMs (from: NodeId, to: NodeId, conditions: LinkConditions, route: string): { delayMs: number, reordered: boolean } {
    const latencyMs = drawLatencyMs(conditions.latency, this.random)
    if (this.random.chance(conditions.reorderProbability)) {
      // Held back, and kept out of the FIFO bookkeeping so later packets may overtake it.
      const extraMs = this.random.int(1, Math.max(1, conditions.reorderDelayMsMax))
      this.counters.reordered++
      this.kernel.trace('net.reorder', `${route} +${extraMs}`)
      return { delayMs: latencyMs + extraMs, reordered: true }
    }
    return { delayMs: this.fifoDelayMs(from, to, latencyMs), reordered: false }
  }

  /** The delay that keeps the directed link FIFO: never before the last in-order arrival on it. */
  private fifoDelayMs (from: NodeId, to: NodeId, delayMs: number): number {
    const key = linkKey(from, to)
    const arrivalMs = Math.max(this.kernel.now() + delayMs, this.lastArrivalMs.get(key) ?? 0)
    this.lastArrivalMs.set(key, arrivalMs)
    return arrivalMs - this.kernel.now()
  }

  private scheduleArrival (from: NodeId, to: NodeId, payload: Payload, delayMs: number, route: string): void {
    this.kernel.schedule(delayMs, () => {
      const receiver = this.receivers.get(to)
      if (receiver === undefined) {
        this.counters.undeliverable++
        this.kernel.trace('net.nobody', route)
        return
      }
      this.counters.delivered++
      this.kernel.trace('net.deliver', route)
      receiver(from, payload)
    }, this.kernel.ownerOf(to), `deliver ${route}`)
  }

  // --- partitions ---------------------------------------------------------------------------

  /** Splits the listed nodes into groups that cannot reach each other (both directions). Unlisted nodes are unaffected. */
  partition (groups: readonly (readonly NodeId[])[]): number {
    assertDisjoint(groups)
    const blocked = new Set<string>()
    groups.forEach((group, index) => {
      for (const other of groups.slice(index + 1)) blockBothWays(blocked, group, other)
    })
    return this.addPartition('symmetric', groups, blocked)
  }

  /** Blocks sources -> targets while targets -> sources stays open. */
  partitionOneWay (sources: readonly NodeId[], targets: readonly NodeId[]): number {
    assertDisjoint([sources, targets])
    const blocked = new Set<string>()
    for (const from of sources) for (const to of targets) blocked.add(linkKey(from, to))
    return this.addPartition('asymmetric', [sources, targets], blocked)
  }

  /** A two-way split where one side holds a strict majority of the listed nodes. */
  partitionMajorityMinority (majority: readonly NodeId[], minority: readonly NodeId[]): number {
    assert(majority.length > minority.length, `a majority side (${majority.length}) must outnumber the minority (${minority.length})`)
    assertDisjoint([majority, minority])
    const blocked = new Set<string>()
    blockBothWays(blocked, majority, minority)
    return this.addPartition('majority-minority', [majority, minority], blocked)
  }

  /** Two sides that cannot reach each other, and one bridge node that reaches both. */
  partitionBridge (sideA: readonly NodeId[], sideB: readonly NodeId[], bridge: NodeId): number {
    assertDisjoint([sideA, sideB, [bridge]])
    const blocked = new Set<string>()
    blockBothWays(blocked, sideA, sideB)
    return this.addPartition('bridge', [sideA, sideB, [bridge]], blocked)
  }

  private addPartition (kind: PartitionKind, groups: readonly (readonly NodeId[])[], blocked: Set<string>): number {
    const id = this.nextPartitionId++
    const frozenGroups = groups.map((group) => [...group])
    this.partitions.set(id, { id, kind, groups: frozenGroups, blocked })
    this.kernel.trace('net.partition', `#${id} ${kind} ${describeGroups(frozenGroups)}`)
    return id
  }

  /** Removes one partition, or every partition when no id is given. */
  heal (partitionId?: number): void {
    if (partitionId === undefined) {
      if (this.partitions.size > 0) this.kernel.trace('net.heal', 'all')
      this.partitions.clear()
      return
    }
    if (this.partitions.delete(partitionId)) this.kernel.trace('net.heal', `#${partitionId}`)
  }

  canReach (from: NodeId, to: NodeId): boolean {
    if (this.partitions.size === 0) return true
    const key = linkKey(from, to)
    for (const partition of this.partitions.values()) if (partition.blocked.has(key)) return false
    return true
  }

  activePartitions (): PartitionInfo[] {
    return [...this.partitions.values()].map(({ id, kind, groups }) => ({ id, kind, groups }))
  }

  stats (): NetworkStats {
    return { ...this.counters }
  }
}

/** One latency draw in whole milliseconds (virtual time is kept in integers so traces read cleanly). */
export function drawLatencyMs (distribution: LatencyDistribution, random: Prng): number {
  switch (distribution.kind) {
    case 'constant':
      return Math.max(0, Math.round(distribution.ms))
    case 'uniform':
      return Math.max(0, Math.round(distribution.minMs + random.float() * (distribution.maxMs - distribution.minMs)))
    case 'normal':
      return Math.max(0, Math.round(distribution.meanMs + distribution.stdDevMs * standardNormal(random)))
    case 'logNormal':
      return Math.max(0, Math.round(distribution.medianMs * Math.exp(distribution.sigma * standardNormal(random))))
  }
}

/** Box-Muller; 1 - float() is in (0, 1], so the logarithm is finite. */
function standardNormal (random: Prng): number {
  const radius = Math.sqrt(-2 * Math.log(1 - random.float()))
  return radius * Math.cos(2 * Math.PI * random.float())
}

function blockBothWays (blocked: Set<string>, sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
  for (const a of sideA) {
    for (const b of sideB) {
      blocked.add(linkKey(a, b))
      blocked.add(linkKey(b, a))
    }
  }
}

function assertDisjoint (groups: readonly (readonly NodeId[])[]): void {
  const seen = new Set<NodeId>()
  for (const group of groups) {
    for (const node of group) {
      assert(!seen.has(node), `node ${node} appears in two partition groups`)
      seen.add(node)
    }
  }
}

export function describeGroups (groups: readonly (readonly NodeId[])[]): string {
  return groups.map((group) => `[${group.map(shortId).join(' ')}]`).join(' ')
}
