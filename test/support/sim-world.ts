/**
 * The simulated world for the transport compliance suite: nodes are `SimTransport`s on one
 * simulated network, and waiting advances virtual time, so the suite runs in milliseconds and
 * replays exactly.
 */
import { createPrng, keyPairFromSeed, nodeIdFromPublicKey, type NodeId, type Prng, type Transport } from '../../src/core/index.js'
import { SimKernel, SimNetwork, SimTransport, createTraceLogger, type EventOwner, type LinkConditions, type LinkPacket } from '../../src/sim/index.js'
import { COMPLIANCE_MESSAGE_BYTES_MAX, NodeRecorder, complianceRegistry, type TransportWorld } from './transport-compliance.js'

const KEY_SEED_BYTES = 32

export interface SimWorldOptions {
  seed?: number
  /** Network conditions for every link; the default is a calm LAN. */
  conditions?: Partial<LinkConditions>
}

interface WorldNode {
  readonly id: NodeId
  transport: SimTransport
  recorder: NodeRecorder
}

export class SimWorld implements TransportWorld {
  readonly kernel = new SimKernel()
  readonly network: SimNetwork<LinkPacket>
  private readonly random: Prng
  private readonly nodes: WorldNode[] = []
  private readonly outsiders: SimTransport[] = []
  private members: NodeId[] = []

  constructor (options: SimWorldOptions = {}) {
    this.random = createPrng(options.seed ?? 1)
    this.network = new SimNetwork<LinkPacket>(this.kernel, this.random.fork('network'), options.conditions)
  }

  async createNodes (count: number): Promise<void> {
    const keys = this.random.fork('keys')
    const ids = Array.from({ length: count }, () => nodeIdFromPublicKey(keyPairFromSeed(keys.bytes(KEY_SEED_BYTES)).publicKey))
    this.members = [...ids].sort()
    for (const id of ids) {
      const recorder = new NodeRecorder()
      const transport = this.newTransport(id, this.kernel.addNode(id), this.members)
      this.nodes.push({ id, transport, recorder })
      await transport.start(recorder.handlers)
    }
  }

  nodeId (index: number): NodeId { return this.node(index).id }
  transport (index: number): Transport { return this.node(index).transport }
  recorder (index: number): NodeRecorder { return this.node(index).recorder }

  async stopNode (index: number): Promise<void> {
    const node = this.node(index)
    this.kernel.crash(node.id)
    node.transport.crash()
  }

  async startNode (index: number): Promise<void> {
    const node = this.node(index)
    node.recorder = new NodeRecorder()
    node.transport = this.newTransport(node.id, this.kernel.restart(node.id), this.members)
    await node.transport.start(node.recorder.handlers)
  }

  async startOutsider (target: number): Promise<{ id: NodeId, transport: Transport, recorder: NodeRecorder }> {
    const keyPair = keyPairFromSeed(this.random.fork(`outsider/${this.outsiders.length}`).bytes(KEY_SEED_BYTES))
    const id = nodeIdFromPublicKey(keyPair.publicKey)
    const recorder = new NodeRecorder()
    // The outsider believes it belongs with its target; the target's config says otherwise.
    const transport = this.newTransport(id, this.kernel.addNode(id), [id, this.nodeId(target)])
    this.outsiders.push(transport)
    await transport.start(recorder.handlers)
    return { id, transport, recorder }
  }

  async sendRaw (from: number, to: number, bytes: Uint8Array): Promise<void> {
    this.node(from).transport.sendRawFrameForTesting(this.nodeId(to), bytes)
  }

  now (): number { return this.kernel.now() }

  async waitFor (condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (!this.kernel.runUntil(condition, timeoutMs)) {
      throw new Error(`timed out after ${timeoutMs} virtual ms waiting for: ${what}\nlast trace lines:\n${this.kernel.recentTrace().slice(-20).join('\n')}`)
    }
  }

  async close (): Promise<void> {
    for (const transport of [...this.nodes.map((node) => node.transport), ...this.outsiders]) await transport.stop()
  }

  private node (index: number): WorldNode {
    const node = this.nodes[index]
    if (node === undefined) throw new RangeError(`no node ${index} in this world`)
    return node
  }

  private newTransport (self: NodeId, owner: EventOwner, members: readonly NodeId[]): SimTransport {
    return new SimTransport({
      self,
      members,
      registry: complianceRegistry(),
      network: this.network,
      kernel: this.kernel,
      owner,
      log: createTraceLogger(this.kernel, { node: self.slice(0, 8) }),
      limits: { messageBytesMax: COMPLIANCE_MESSAGE_BYTES_MAX }
    })
  }
}
