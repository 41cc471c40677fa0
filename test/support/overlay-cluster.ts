/**
 * The simulated cluster every overlay-based test harness starts from: a kernel, a seeded network,
 * a topology, and on each node the production overlay linked to its topology neighbours, plus
 * whatever services the harness runs over it.
 */
import { createPrng, type Service } from '../../src/core/index.js'
import { OverlayService, buildTopology, overlayNeighbours, type Graph, type OverlayInit, type TopologySpecInput } from '../../src/net/index.js'
import { SimCluster, SimKernel, SimNetwork, type LinkPacket, type ServiceContext } from '../../src/sim/index.js'

export interface OverlayClusterInit {
  nodes: number
  seed: number
  /** Full mesh by default. */
  topology?: TopologySpecInput
  messageLossRate?: number
  /** Overlay settings besides the neighbours, which come from the topology. */
  overlay?: Omit<OverlayInit, 'neighbours'>
  /** The services each incarnation runs beside its overlay (listed after it). */
  services: (context: ServiceContext, overlay: OverlayService, kernel: SimKernel) => Service[]
}

export interface OverlayCluster {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  graph: Graph
}

export function makeOverlayCluster (init: OverlayClusterInit): OverlayCluster {
  const kernel = new SimKernel({ traceLinesKeptMax: 0 })
  const random = createPrng(init.seed)
  const network = new SimNetwork<LinkPacket>(kernel, random.fork('network'))
  const graph = buildTopology(init.topology ?? { kind: 'full-mesh' }, init.nodes)
  const cluster = new SimCluster({
    kernel,
    network,
    random: random.fork('cluster'),
    nodeCount: init.nodes,
    messageLossRate: init.messageLossRate,
    linkPeers: (id, members) => overlayNeighbours(graph.adjacency, members, id),
    services: (context) => {
      const overlay = new OverlayService({ ...init.overlay, neighbours: overlayNeighbours(graph.adjacency, context.members, context.id) })
      return [overlay, ...init.services(context, overlay, kernel)]
    }
  })
  cluster.start()
  return { kernel, network, cluster, graph }
}

/**
 * Runs the kernel until `predicate` holds, checking it every `checkEveryMs` of virtual time
 * rather than after every event; false when `maxMs` passed first.
 */
export function runKernelUntil (kernel: SimKernel, predicate: () => boolean, maxMs: number, checkEveryMs: number): boolean {
  const endMs = kernel.now() + maxMs
  while (!predicate()) {
    if (kernel.now() >= endMs) return false
    kernel.runFor(Math.min(checkEveryMs, endMs - kernel.now()))
  }
  return true
}
