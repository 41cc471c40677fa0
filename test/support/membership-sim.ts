/**
 * A simulated cluster running the production overlay and membership services on each node, for
 * the membership tests and benchmark. Records every membership event with the virtual time.
 */
import type { NodeId, Service } from '../../src/core/index.js'
import { MembershipService, type MembershipEvent, type MembershipLimits } from '../../src/membership/index.js'
import type { OverlayService, OverlayLimits, TopologySpecInput } from '../../src/net/index.js'
import type { SimCluster, SimKernel, SimNetwork, LinkPacket, ServiceContext } from '../../src/sim/index.js'
import { makeOverlayCluster, runKernelUntil } from './overlay-cluster.js'

export interface MembershipSimInit {
  nodes: number
  seed: number
  /** Full mesh by default. */
  topology?: TopologySpecInput
  messageLossRate?: number
  limits?: Partial<MembershipLimits>
  overlayLimits?: Partial<OverlayLimits>
  linkStateRouting?: boolean
  /** More services per node (a Byzantine one, say). */
  extraServices?: (context: ServiceContext, overlay: OverlayService) => Service[]
}

export interface RecordedEvent { at: NodeId, boot: number, event: MembershipEvent }

export interface MembershipSim {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  members: readonly NodeId[]
  events: RecordedEvent[]
  membership: (id: NodeId) => MembershipService | undefined
  /** Every up node other than `member` holds `member` in `state`. */
  allSee: (member: NodeId, state: string, among?: readonly NodeId[]) => boolean
  /** Every up node (or every node of `among`) holds every other up node alive. */
  allAlive: (among?: readonly NodeId[]) => boolean
  /** The (state, incarnation) every up node holds for every member, as one string per node. */
  views: (among?: readonly NodeId[]) => string[]
  /**
   * Runs until `predicate` holds, checking it every `checkEveryMs` of virtual time rather than
   * after every event (the views cost O(n^2) to compare). Times are read from recorded events.
   */
  runUntil: (predicate: () => boolean, maxMs: number, checkEveryMs?: number) => boolean
}

export function makeMembershipSim (init: MembershipSimInit): MembershipSim {
  const events: RecordedEvent[] = []
  const { kernel, network, cluster } = makeOverlayCluster({
    nodes: init.nodes,
    seed: init.seed,
    topology: init.topology,
    messageLossRate: init.messageLossRate,
    overlay: { limits: init.overlayLimits, linkStateRouting: init.linkStateRouting },
    services: (context, overlay) => {
      const membership = new MembershipService({ net: overlay, limits: init.limits })
      membership.onChange((event) => { events.push({ at: context.id, boot: context.boot, event }) })
      return [membership, ...(init.extraServices?.(context, overlay) ?? [])]
    }
  })
  const members = cluster.members
  const membership = (id: NodeId): MembershipService | undefined => cluster.service(id, MembershipService)
  const upAmong = (among: readonly NodeId[] = members): NodeId[] => among.filter((id) => cluster.isUp(id))
  const allSee = (member: NodeId, state: string, among: readonly NodeId[] = members): boolean =>
    upAmong(among).every((id) => id === member || membership(id)?.stateOf(member) === state)
  const allAlive = (among: readonly NodeId[] = members): boolean => {
    const up = upAmong(among)
    return up.every((id) => up.every((other) => membership(id)?.stateOf(other) === 'alive'))
  }
  const views = (among: readonly NodeId[] = members): string[] => upAmong(among).map((id) => {
    const view = membership(id)?.view()
    return (view?.members ?? []).map((member) => `${member.id.slice(0, 4)}:${member.state}@${member.incarnation}`).join(' ')
  })
  const runUntil = (predicate: () => boolean, maxMs: number, checkEveryMs = 50): boolean => runKernelUntil(kernel, predicate, maxMs, checkEveryMs)
  return { kernel, network, cluster, members, events, membership, allSee, allAlive, views, runUntil }
}

/** Percentile of a sorted-ascending list, nearest rank. */
export function percentile (sorted: readonly number[], share: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(share * sorted.length) - 1))] as number
}

/** Runs `seeds` seeds through `trial`, reporting the failing seed in the error. */
export function forSeeds (seeds: readonly number[], trial: (seed: number) => void): void {
  for (const seed of seeds) {
    try {
      trial(seed)
    } catch (error) {
      if (error instanceof Error) error.message = `seed ${seed}: ${error.message}`
      throw error
    }
  }
}
