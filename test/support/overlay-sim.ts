/** A simulated cluster of overlay nodes on a chosen topology, for tests and the broadcast benchmark. */
import { z } from 'zod'
import { defineMessage, type Message, type NodeId, type Service } from '../../src/core/index.js'
import { OverlayService, type BroadcastMode, type Graph, type OverlayLimits, type TopologySpecInput } from '../../src/net/index.js'
import type { SimCluster, SimKernel, SimNetwork, LinkPacket } from '../../src/sim/index.js'
import { makeOverlayCluster } from './overlay-cluster.js'

export interface OverlaySimInit {
  nodes: number
  topology: TopologySpecInput
  seed: number
  messageLossRate?: number
  limits?: Partial<OverlayLimits>
  broadcastMode?: BroadcastMode
  linkStateRouting?: boolean
}

export interface OverlaySim {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  graph: Graph
  members: readonly NodeId[]
  overlay: (id: NodeId) => OverlayService | undefined
  /** Every up node routes to every other up node it can reach in the live graph. */
  routesSettled: () => boolean
  /** Every up node has a live link to each of its up neighbours. */
  linksSettled: () => boolean
  /** Notes delivered by broadcast (topic "notes") and by routed send, in delivery order. */
  broadcasts: Received[]
  routed: Received[]
}

export function makeOverlaySim (init: OverlaySimInit): OverlaySim {
  const broadcasts: Received[] = []
  const routed: Received[] = []
  const { kernel, network, cluster, graph } = makeOverlayCluster({
    nodes: init.nodes,
    seed: init.seed,
    topology: init.topology,
    messageLossRate: init.messageLossRate,
    overlay: { limits: init.limits, broadcastMode: init.broadcastMode, linkStateRouting: init.linkStateRouting },
    services: ({ id }, overlay, kernel) => {
      const record = (into: Received[]) => (message: Message, delivery: { origin: NodeId, hops: number }): void => {
        into.push({ at: id, origin: delivery.origin, seq: (message as TestNote).seq, hops: delivery.hops, atMs: kernel.now() })
      }
      overlay.subscribe('notes', record(broadcasts))
      overlay.onRouted('test.note', record(routed))
      return [new NoteService()]
    }
  })
  const members = cluster.members
  const overlay = (id: NodeId): OverlayService | undefined => cluster.service(id, OverlayService)
  const routesSettled = (): boolean => {
    const up = members.filter((id) => cluster.isUp(id))
    const upIndex = new Set(up.map((id) => members.indexOf(id)))
    for (const id of up) {
      const reachable = liveComponent(graph, members.indexOf(id), upIndex)
      const routes = new Set(overlay(id)?.routes().map((route) => route.destination))
      for (const index of reachable) if (index !== members.indexOf(id) && !routes.has(members[index] as NodeId)) return false
      if (routes.size !== reachable.size - 1) return false
    }
    return true
  }
  const linksSettled = (): boolean => members.every((id) => {
    const service = overlay(id)
    if (service === undefined) return true
    return service.neighbourViews().every((view) => view.state === 'connected' || !cluster.isUp(view.peer))
  })
  return { kernel, network, cluster, graph, members, overlay, routesSettled, linksSettled, broadcasts, routed }
}

/** Nodes reachable from `start` through up nodes only. */
export function liveComponent (graph: Graph, start: number, up: ReadonlySet<number>): Set<number> {
  const seen = new Set<number>([start])
  const queue = [start]
  for (let index = 0; index < queue.length; index++) {
    for (const next of graph.adjacency[queue[index] as number] ?? []) {
      if (up.has(next) && !seen.has(next)) { seen.add(next); queue.push(next) }
    }
  }
  return seen
}

/** The application message the tests send and broadcast. */
export const testNote = defineMessage('test.note', { seq: z.number().int().nonnegative() })
export type TestNote = { type: 'test.note', seq: number }
export const note = (seq: number): TestNote => ({ type: 'test.note', seq })

/** Registers the test message type; the overlay does the rest. */
class NoteService implements Service {
  readonly name = 'notes'
  readonly messages = [testNote]
  start (): void {}
  onMessage (): void {}
}

export interface Received { at: NodeId, origin: NodeId, seq: number, hops: number, atMs: number }
