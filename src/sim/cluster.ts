/**
 * A cluster of simulated nodes, each the production `NodeHost` with its services, wired to the
 * simulated disk, transport, clock and timers. Identities come from the seed, so a seed always
 * builds the same cluster. Nodes can crash (unsynced writes lost, links reset, events dropped),
 * restart (same identity, same durable disk, a new incarnation) and pause.
 */
import {
  NodeHost, assert, keyPairFromSeed, nodeIdFromPublicKey, registryFor,
  type Ed25519KeyPair, type NodeId, type Prng, type Service
} from '../core/index.js'
import { HelloService } from '../net/index.js'
import { SimDisk } from './disk.js'
import type { EventOwner, SimKernel } from './kernel.js'
import { createTraceLogger, type TraceLogLevel } from './logger.js'
import { shortId } from './names.js'
import type { SimNetwork } from './network.js'
import { SimTransport, type LinkPacket, type SimTransportLimits } from './transport.js'

export interface ServiceContext {
  readonly index: number
  readonly id: NodeId
  /** 1 for the first incarnation, then one more per restart. */
  readonly boot: number
  /** Every node id, sorted: the network config. */
  readonly members: readonly NodeId[]
}

/** Builds a fresh set of services for each incarnation of a node. */
export type ServiceFactory = (context: ServiceContext) => Service[]

export const helloServices: ServiceFactory = () => [new HelloService()]

/** Bytes of an Ed25519 key seed. */
const KEY_SEED_BYTES = 32

export interface SimClusterInit {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  /** The cluster's own stream; keys, disks and nodes fork from it by label. */
  random: Prng
  nodeCount: number
  services?: ServiceFactory
  /** The overlay neighbours each node keeps links with; every other member by default. */
  linkPeers?: (id: NodeId, members: readonly NodeId[]) => NodeId[]
  /** Probability that a received message is lost above the transport (see SimTransportInit.messageLoss). */
  messageLossRate?: number
  transportLimits?: Partial<SimTransportLimits>
  syncLatencyMsMin?: number
  syncLatencyMsMax?: number
  logLevelMin?: TraceLogLevel
}

export interface SimNode {
  readonly index: number
  readonly id: NodeId
  readonly keyPair: Ed25519KeyPair
  /** Outlives incarnations: a restart finds what was durable. */
  readonly disk: SimDisk
  boots: number
  /** The live incarnation's parts; null while the node is down. */
  host: NodeHost | null
  transport: SimTransport | null
  services: readonly Service[]
}

export class SimCluster {
  readonly nodes: readonly SimNode[]
  /** Every node id, sorted: the network config each node is given. */
  readonly members: readonly NodeId[]
  private readonly byId = new Map<NodeId, SimNode>()
  private readonly messageLosses = new Map<NodeId, { rate: number, random: Prng }>()
  private messageLossRate: number
  private readonly startFailures: string[] = []

  constructor (private readonly init: SimClusterInit) {
    assert(Number.isInteger(init.nodeCount) && init.nodeCount >= 1, `a cluster needs at least one node, got ${init.nodeCount}`)
    this.messageLossRate = init.messageLossRate ?? 0
    const keys = init.random.fork('keys')
    this.nodes = Array.from({ length: init.nodeCount }, (_, index) => this.createNode(index, keyPairFromSeed(keys.bytes(KEY_SEED_BYTES))))
    for (const node of this.nodes) this.byId.set(node.id, node)
    assert(this.byId.size === this.nodes.length, 'two simulated nodes drew the same id')
    this.members = this.nodes.map((node) => node.id).sort()
  }

  /**
   * Changes the share of received messages lost above the transport, at every node now and in
   * later incarnations (a benchmark settles a cluster, then turns loss on).
   */
  setMessageLossRate (rate: number): void {
    assert(rate >= 0 && rate <= 1, `a loss rate is in 0..1, got ${rate}`)
    this.messageLossRate = rate
    for (const loss of this.messageLosses.values()) loss.rate = rate
  }

  /** Each incarnation's loss stream is forked by label, so it draws nothing while the rate is 0. */
  private messageLossFor (node: SimNode): { rate: number, random: Prng } {
    const loss = { rate: this.messageLossRate, random: this.init.random.fork(`loss/${node.index}/${node.boots}`) }
    this.messageLosses.set(node.id, loss)
    return loss
  }

  private createNode (index: number, keyPair: Ed25519KeyPair): SimNode {
    const id = nodeIdFromPublicKey(keyPair.publicKey)
    const owner = this.init.kernel.addNode(id)
    const disk = new SimDisk({
      timers: this.init.kernel.timersFor(owner),
      device: this.init.kernel.worldTimers(),
      random: this.init.random.fork(`disk/${index}`),
      syncLatencyMsMin: this.init.syncLatencyMsMin,
      syncLatencyMsMax: this.init.syncLatencyMsMax,
      trace: (kind, details) => { this.init.kernel.trace(kind, `${shortId(id)} ${details}`) }
    })
    return { index, id, keyPair, disk, boots: 0, host: null, transport: null, services: [] }
  }

  /** Boots every node that has not booted yet. */
  start (): void {
    for (const node of this.nodes) {
      if (node.boots === 0) this.boot(node, this.ownerOf(node))
    }
  }

  node (id: NodeId): SimNode {
    const node = this.byId.get(id)
    assert(node !== undefined, `no simulated node ${id}`)
    return node
  }

  isUp (id: NodeId): boolean {
    return this.init.kernel.isUp(id)
  }

  isPaused (id: NodeId): boolean {
    return this.init.kernel.isPaused(id)
  }

  /** The process dies: timers and deliveries are dropped, links reset, unsynced writes lost. */
  crash (id: NodeId): void {
    const node = this.node(id)
    if (!this.isUp(id)) return
    this.init.kernel.crash(id)
    node.transport?.crash()
    node.disk.crash()
    node.host = null
    node.transport = null
    node.services = []
  }

  /** A new incarnation with the same identity and the same durable disk. */
  restart (id: NodeId): void {
    const node = this.node(id)
    if (this.isUp(id)) return
    this.boot(node, this.init.kernel.restart(id))
  }

  /** A stop-the-world pause: the node runs nothing for `durationMs`, then catches up in order. */
  pause (id: NodeId, durationMs: number): void {
    this.init.kernel.pause(id, durationMs)
  }

  resume (id: NodeId): void {
    this.init.kernel.resume(id)
  }

  /** The service of class `kind` in a node's live incarnation, if it runs one (none while it is down). */
  service<T extends Service> (id: NodeId, kind: abstract new (...args: never[]) => T): T | undefined {
    return this.node(id).services.find((service): service is T => service instanceof kind)
  }

  /** The hello service of a node's live incarnation, if it runs one. */
  hello (id: NodeId): HelloService | undefined {
    return this.service(id, HelloService)
  }

  /** Boots that did not get as far as starting the transport. */
  failures (): readonly string[] {
    return this.startFailures
  }

  private ownerOf (node: SimNode): EventOwner {
    const owner = this.init.kernel.ownerOf(node.id)
    assert(owner !== undefined, `node ${node.id} not registered with the kernel`)
    return owner
  }

  private boot (node: SimNode, owner: EventOwner): void {
    const { kernel, network } = this.init
    node.boots++
    const timers = kernel.timersFor(owner)
    const log = createTraceLogger(kernel, { node: shortId(node.id) }, this.init.logLevelMin)
    node.disk.reopen(timers)
    const services = (this.init.services ?? helloServices)({ index: node.index, id: node.id, boot: node.boots, members: this.members })
    const transport = new SimTransport({
      self: node.id, members: this.members, linkPeers: this.init.linkPeers?.(node.id, this.members),
      messageLoss: this.messageLossFor(node),
      registry: registryFor(services), network, kernel, owner, log, limits: this.init.transportLimits
    })
    const host = new NodeHost({
      self: node.id,
      members: this.members,
      clock: timers,
      timers,
      random: this.init.random.fork(`node/${node.index}/boot/${node.boots}`),
      disk: node.disk,
      log,
      transport,
      services,
      onPeerMisbehaved: (peer, error) => { kernel.trace('node.misbehaved', `${shortId(node.id)} blames ${shortId(peer)} ${error.code}`) }
    })
    node.host = host
    node.transport = transport
    node.services = services
    kernel.trace('node.boot', `${shortId(node.id)} boot ${node.boots}`)
    this.startHost(node, host, transport)
  }

  /**
   * `NodeHost.start` is async only because a real transport is; everything it does in the
   * simulator happens before its first await, so the node is up when this returns.
   */
  private startHost (node: SimNode, host: NodeHost, transport: SimTransport): void {
    const boot = node.boots
    host.start().catch((error: unknown) => {
      this.startFailures.push(`node ${node.id} boot ${boot} failed to start: ${error instanceof Error ? error.message : String(error)}`)
    })
    if (!transport.isRunning()) this.startFailures.push(`node ${node.id} boot ${boot} did not start its transport`)
  }
}
