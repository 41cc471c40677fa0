/** The compliance world for libp2p: real libp2p nodes on loopback TCP in this process. */
import { randomBytes } from 'node:crypto'
import { keyPairFromSeed, nodeIdFromPublicKey, silentLogger, type NodeId, type Transport } from '../../src/core/index.js'
import { Libp2pTransport, type Libp2pPeer } from '../../src/node/index.js'
import { COMPLIANCE_MESSAGE_BYTES_MAX, NodeRecorder, complianceRegistry, type TransportWorld } from './transport-compliance.js'
import { freePort, waitUntil } from './ports.js'

interface Identity { id: NodeId, seed: Uint8Array, publicKey: Uint8Array, port: number }

async function identity (): Promise<Identity> {
  const seed = new Uint8Array(randomBytes(32))
  const keyPair = keyPairFromSeed(seed)
  return { id: nodeIdFromPublicKey(keyPair.publicKey), seed, publicKey: keyPair.publicKey, port: await freePort() }
}

export class Libp2pWorld implements TransportWorld {
  private identities: Identity[] = []
  private transports: Array<Libp2pTransport | null> = []
  private recorders: NodeRecorder[] = []
  private readonly extra: Libp2pTransport[] = []

  async createNodes (count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.identities.push(await identity())
    for (let i = 0; i < count; i++) await this.startNode(i)
  }

  nodeId (index: number): NodeId { return this.identity(index).id }

  transport (index: number): Transport {
    const transport = this.transports[index]
    if (transport === undefined || transport === null) throw new Error(`node ${index} is not running`)
    return transport
  }

  recorder (index: number): NodeRecorder {
    const recorder = this.recorders[index]
    if (recorder === undefined) throw new Error(`no node ${index}`)
    return recorder
  }

  async stopNode (index: number): Promise<void> {
    await this.transports[index]?.stop()
    this.transports[index] = null
  }

  async startNode (index: number): Promise<void> {
    const me = this.identity(index)
    const recorder = new NodeRecorder()
    const transport = this.make(me, this.identities.map((member) => this.peerOf(member)))
    this.recorders[index] = recorder
    this.transports[index] = transport
    await transport.start(recorder.handlers)
  }

  async startOutsider (target: number): Promise<{ id: NodeId, transport: Transport, recorder: NodeRecorder }> {
    const targetId = this.nodeId(target)
    // Only the lower node id of a pair dials, so pick an outsider that will dial the target.
    let outsider = await identity()
    while (outsider.id >= targetId) outsider = await identity()
    const recorder = new NodeRecorder()
    const transport = this.make(outsider, [this.peerOf(outsider), this.peerOf(this.identity(target))])
    this.extra.push(transport)
    await transport.start(recorder.handlers)
    return { id: outsider.id, transport, recorder }
  }

  async sendRaw (from: number, to: number, bytes: Uint8Array): Promise<void> {
    const transport = this.transports[from]
    if (transport === undefined || transport === null) throw new Error(`node ${from} is not running`)
    transport.sendRawFrameForTesting(this.nodeId(to), bytes)
  }

  /** The clock `Libp2pTransport` uses by default. */
  now (): number { return performance.timeOrigin + performance.now() }

  async waitFor (condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    await waitUntil(condition, timeoutMs, what)
  }

  async close (): Promise<void> {
    for (const transport of [...this.transports, ...this.extra]) await transport?.stop()
  }

  private identity (index: number): Identity {
    const found = this.identities[index]
    if (found === undefined) throw new Error(`no node ${index}`)
    return found
  }

  private peerOf (member: Identity): Libp2pPeer {
    return { id: member.id, publicKey: member.publicKey, address: `/ip4/127.0.0.1/tcp/${member.port}` }
  }

  private make (me: Identity, peers: Libp2pPeer[]): Libp2pTransport {
    return new Libp2pTransport({
      self: me.id,
      seed: me.seed,
      listen: `/ip4/127.0.0.1/tcp/${me.port}`,
      peers,
      registry: complianceRegistry(),
      log: silentLogger,
      limits: { messageBytesMax: COMPLIANCE_MESSAGE_BYTES_MAX, reconnectDelayMsMax: 500 }
    })
  }
}
