/**
 * The real transport: libp2p over TCP with Noise encryption and Yamux multiplexing. The node's
 * Ed25519 key is its libp2p identity, so a peer id proves the node id. Only members of the
 * network config get past the handshake (the connection gater runs once Noise has authenticated
 * the remote key). Each side sends on one long-lived outbound stream per peer, so per-link order
 * holds; frames are varint length-prefixed and bounded by `messageBytesMax` on both ends.
 *
 * A peer refused for misbehaviour (`refuse`) is hung up on, and the gater denies dialing it and
 * its handshakes both ways until the refusal ends; the reconnect loop waits for that moment.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { FrameReader, encodeFrame } from './frames.js'
import { lazyWindowUpdates, tunedNoise, type UntunedPart } from './libp2p-tuning.js'
import {
  CoreError, PeerRefusals, TransportError, defaultTransportLimits, encodeWithinLimit, emptyTransportStats, errorMessage,
  type LinkInfo, type Logger, type Message, type MessageRegistry, type NodeId, type PeerRefusal, type Transport,
  type TransportHandlers, type TransportLimits, type TransportStats
} from '../core/index.js'

export const FRAME_PROTOCOL = '/synod/frames/1.0.0'
/** Frames written in one turn are sent as chunks of at most this many bytes (measured: 60 KiB chunks were slower). */
const BATCH_BYTES_MAX = 512 * 1_024
const YAMUX_STREAM_WINDOW_BYTES = 4 * 1_048_576
const YAMUX_STREAM_WINDOW_BYTES_MAX = 16 * 1_048_576

export interface Libp2pPeer {
  id: NodeId
  publicKey: Uint8Array
  /** Multiaddr the peer listens on, without the /p2p suffix. */
  address: string
}

export interface Libp2pTransportInit {
  self: NodeId
  seed: Uint8Array
  listen: string
  /** Every member of the network config: the only peers allowed past the handshake. */
  peers: readonly Libp2pPeer[]
  /** The overlay neighbours to keep links with; all other members by default. */
  linkPeers?: readonly NodeId[]
  registry: MessageRegistry
  log: Logger
  limits?: Partial<TransportLimits>
  now?: () => number
}

interface PeerLink {
  readonly peer: Libp2pPeer
  readonly peerId: PeerId
  readonly dialer: boolean
  outbound: Stream | null
  opening: boolean
  everConnected: boolean
  sinceMs: number
  framesSent: number
  framesReceived: number
  redialDelayMs: number
  redialTimer: NodeJS.Timeout | null
  /** Frames written since the last flush; sent as one chunk so Noise and Yamux frame them once. */
  batch: Uint8Array[]
  batchBytes: number
}

export class Libp2pTransport implements Transport {
  readonly self: NodeId
  private readonly limits: TransportLimits
  private readonly now: () => number
  private readonly links_ = new Map<NodeId, PeerLink>()
  private readonly byPeerId = new Map<string, PeerLink>()
  /** Every member, links or not, by peer id (for the connection gater) and by node id. */
  private readonly memberByPeerId = new Map<string, NodeId>()
  private readonly memberPeerIds = new Map<NodeId, PeerId>()
  private readonly refused = new PeerRefusals()
  private readonly counters: TransportStats = emptyTransportStats()
  private node: Libp2p | null = null
  private handlers: TransportHandlers | null = null
  private stopping = false
  /** Connections and streams the tunings of `libp2p-tuning.ts` could not be applied to, by missing part. */
  private readonly untunedCounts = new Map<UntunedPart, number>()

  constructor (private readonly init: Libp2pTransportInit) {
    this.self = init.self
    this.limits = { ...defaultTransportLimits, ...init.limits }
    this.now = init.now ?? (() => performance.timeOrigin + performance.now())
  }

  /** The listening addresses, once started (for tests and status). */
  addresses (): string[] {
    return this.node?.getMultiaddrs().map((address) => address.toString()) ?? []
  }

  async start (handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers
    this.stopping = false
    const linkPeers = new Set(this.init.linkPeers ?? this.init.peers.map((peer) => peer.id))
    for (const peer of this.init.peers) {
      if (peer.id === this.self) continue
      const peerId = peerIdFromPublicKey(publicKeyFromRaw(peer.publicKey))
      this.memberByPeerId.set(peerId.toString(), peer.id)
      this.memberPeerIds.set(peer.id, peerId)
      if (!linkPeers.has(peer.id)) continue
      const link: PeerLink = {
        peer, peerId, dialer: this.self < peer.id, outbound: null, opening: false, everConnected: false,
        sinceMs: this.now(), framesSent: 0, framesReceived: 0, redialDelayMs: this.limits.reconnectDelayMsMin, redialTimer: null, batch: [], batchBytes: 0
      }
      this.links_.set(peer.id, link)
      this.byPeerId.set(peerId.toString(), link)
    }
    const node = await createLibp2p({
      privateKey: await generateKeyPairFromSeed('Ed25519', this.init.seed),
      addresses: { listen: [this.init.listen] },
      transports: [tcp()],
      connectionEncrypters: [tunedNoise((part) => { this.untuned(part) })],
      streamMuxers: [yamux({
        enableKeepAlive: true,
        keepAliveInterval: this.limits.keepaliveIntervalMs,
        // Yamux's default 256 KiB stream window stalls a busy link on window updates; frames are
        // consumed as they arrive, so a larger window only lets more bytes be in flight.
        streamOptions: { initialStreamWindowSize: YAMUX_STREAM_WINDOW_BYTES, maxStreamWindowSize: YAMUX_STREAM_WINDOW_BYTES_MAX }
      })],
      services: { identify: identify() },
      connectionGater: {
        denyDialMultiaddr: () => false,
        denyDialPeer: (peerId) => this.isRefused(this.memberByPeerId.get(peerId.toString())),
        denyInboundEncryptedConnection: (peerId) => this.denyHandshake(peerId, 'inbound'),
        denyOutboundEncryptedConnection: (peerId) => this.denyHandshake(peerId, 'outbound')
      }
    })
    this.node = node
    await node.handle(FRAME_PROTOCOL, (stream, connection) => { this.readInbound(stream, connection) }, { maxInboundStreams: 4 })
    node.addEventListener('peer:connect', (event) => { this.peerConnected(event.detail.toString()) })
    node.addEventListener('peer:disconnect', (event) => { this.peerDisconnected(event.detail.toString()) })
    for (const link of this.links_.values()) this.reconnect(link)
  }

  async stop (): Promise<void> {
    this.stopping = true
    for (const link of this.links_.values()) this.cancelRedial(link)
    const node = this.node
    this.node = null
    if (node !== null) await node.stop()
    for (const link of this.links_.values()) this.markDown(link)
  }

  send<M extends Message> (to: NodeId, message: M): void {
    this.writeFrame(to, encodeWithinLimit(this.init.registry, message, this.limits.messageBytesMax))
  }

  /** Puts an arbitrary frame payload on the link to `to`, bypassing encoding: for fault-injection tests only. */
  sendRawFrameForTesting (to: NodeId, payload: Uint8Array): void {
    this.writeFrame(to, payload)
  }

  links (): LinkInfo[] {
    return [...this.links_.values()].map((link) => ({
      peer: link.peer.id,
      state: link.outbound !== null ? 'connected' : 'disconnected',
      sinceMs: link.sinceMs,
      framesSent: link.framesSent,
      framesReceived: link.framesReceived
    }))
  }

  stats (): TransportStats {
    return { ...this.counters }
  }

  refuse (peer: NodeId, untilMs: number): void {
    const change = this.refused.set(peer, untilMs, this.now())
    if (change === 'none') return
    const link = this.links_.get(peer)
    // Any planned redial is replanned: for the end of the refusal, or now that it is lifted.
    if (link !== undefined) this.cancelRedial(link)
    if (change === 'lifted') {
      if (link !== undefined) this.reconnect(link)
      return
    }
    this.init.log.info({ peer, untilMs }, 'refusing a peer for misbehaviour')
    if (link !== undefined) this.linkLost(link)
    this.hangUp(peer)
  }

  refusals (): PeerRefusal[] {
    return this.refused.list(this.now())
  }

  private writeFrame (to: NodeId, payload: Uint8Array): void {
    const link = this.links_.get(to)
    const stream = link?.outbound ?? null
    if (link === undefined || stream === null || stream.status !== 'open') {
      this.counters.droppedFrames++
      return
    }
    if (stream.writeBufferLength + link.batchBytes + payload.length > this.limits.sendQueueBytesMax) {
      this.counters.droppedFrames++
      return
    }
    const frame = encodeFrame(payload)
    if (link.batch.length === 0) queueMicrotask(() => { this.flush(link) })
    link.batch.push(frame)
    link.batchBytes += frame.length
    // A full batch goes now, so the peer starts on it while this side encodes the rest.
    if (link.batchBytes >= BATCH_BYTES_MAX) this.flush(link)
  }

  /**
   * Sends the frames written in this turn of the event loop as one chunk: one Yamux data frame and
   * one Noise message per chunk instead of per frame, which is most of the cost of small messages.
   */
  private flush (link: PeerLink): void {
    const frames = link.batch
    const bytes = link.batchBytes
    if (frames.length === 0) return
    link.batch = []
    link.batchBytes = 0
    const stream = link.outbound
    if (stream === null || stream.status !== 'open') {
      this.counters.droppedFrames += frames.length
      return
    }
    const chunk = frames.length === 1 ? frames[0] as Uint8Array : Buffer.concat(frames, bytes)
    try {
      stream.send(chunk)
      link.framesSent += frames.length
      this.counters.framesSent += frames.length
      this.counters.bytesSent += bytes
    } catch (error) {
      this.counters.droppedFrames += frames.length
      this.init.log.debug({ peer: link.peer.id, reason: errorMessage(error) }, 'send failed')
    }
  }

  /** The connection gater's check once Noise has authenticated the remote key. */
  private denyHandshake (peerId: PeerId, direction: 'inbound' | 'outbound'): boolean {
    const member = this.memberByPeerId.get(peerId.toString())
    if (member === undefined) {
      this.counters.refusedPeers++
      this.init.log.warn({ peerId: peerId.toString(), direction }, 'refused a peer that is not in the network config')
      return true
    }
    if (!this.isRefused(member)) return false
    this.counters.refusedBannedPeers++
    this.init.log.debug({ peer: member, direction }, 'refused a peer that is refused for misbehaviour')
    return true
  }

  /** Closes every connection with a member (a connection that got past the gater before its refusal, say). */
  private hangUp (peer: NodeId): void {
    const peerId = this.memberPeerIds.get(peer)
    if (peerId === undefined || this.node === null) return
    this.node.hangUp(peerId).catch((error: unknown) => {
      this.init.log.debug({ peer, reason: errorMessage(error) }, 'hanging up failed')
    })
  }

  /** Connections and streams left untuned since start: a dependency upgrade moved what the tunings reach into. */
  untunedConnections (): number {
    let total = 0
    for (const count of this.untunedCounts.values()) total += count
    return total
  }

  private untuned (part: UntunedPart): void {
    const count = this.untunedCounts.get(part) ?? 0
    this.untunedCounts.set(part, count + 1)
    if (count === 0) this.init.log.warn({ part }, 'a libp2p connection or stream could not be tuned (src/node/libp2p-tuning.ts): it works, only slower')
  }

  private isRefused (peer: NodeId | undefined): boolean {
    return peer !== undefined && this.refused.isRefused(peer, this.now())
  }

  /**
   * Brings a link back: reopens the frame stream on a live connection, or, for the lower node id
   * of the pair (the dialer), dials. The higher id waits to be dialed, so there is one connection
   * per pair and one stream per direction, which is what keeps per-link order.
   */
  private reconnect (link: PeerLink): void {
    const node = this.node
    if (node === null || this.stopping || link.outbound !== null || link.redialTimer !== null) return
    if (this.isRefused(link.peer.id)) {
      this.scheduleRedial(link)
      return
    }
    if (node.getConnections(link.peerId).some((connection) => connection.status === 'open')) {
      this.peerConnected(link.peerId.toString())
      return
    }
    if (!link.dialer) return
    const address = multiaddr(`${link.peer.address}/p2p/${link.peerId.toString()}`)
    node.dial(address).then(
      () => {
        link.redialDelayMs = this.limits.reconnectDelayMsMin
        this.peerConnected(link.peerId.toString())
      },
      (error: unknown) => {
        this.init.log.debug({ peer: link.peer.id, reason: errorMessage(error), retryInMs: link.redialDelayMs }, 'dial failed')
        this.scheduleRedial(link)
      }
    )
  }

  /** Plans the next reconnect: after the back-off delay, or when the peer's refusal ends. */
  private scheduleRedial (link: PeerLink): void {
    if (this.stopping || link.redialTimer !== null) return
    const refusedForMs = this.refused.remainingMs(link.peer.id, this.now())
    const delayMs = refusedForMs > 0 ? refusedForMs : link.redialDelayMs
    if (refusedForMs === 0) link.redialDelayMs = Math.min(link.redialDelayMs * 2, this.limits.reconnectDelayMsMax)
    link.redialTimer = setTimeout(() => {
      link.redialTimer = null
      this.reconnect(link)
    }, delayMs)
    link.redialTimer.unref()
  }

  private cancelRedial (link: PeerLink): void {
    if (link.redialTimer !== null) clearTimeout(link.redialTimer)
    link.redialTimer = null
  }

  private peerConnected (peerIdText: string): void {
    const link = this.byPeerId.get(peerIdText)
    const node = this.node
    if (link === undefined || node === null || link.outbound !== null || link.opening) return
    if (this.isRefused(link.peer.id)) {
      this.hangUp(link.peer.id)
      return
    }
    const connection = node.getConnections(link.peerId).find((candidate) => candidate.status === 'open')
    if (connection === undefined) return
    link.opening = true
    connection.newStream(FRAME_PROTOCOL).then((stream) => {
      link.opening = false
      if (this.stopping) { stream.abort(new Error('transport stopping')); return }
      // Refused while the stream was opening: the refusal has already planned the reconnect.
      if (this.isRefused(link.peer.id)) { stream.abort(new Error('peer refused')); return }
      stream.maxWriteBufferLength = this.limits.sendQueueBytesMax
      stream.addEventListener('close', () => { if (link.outbound === stream) this.linkLost(link) })
      link.outbound = stream
      link.sinceMs = this.now()
      link.redialDelayMs = this.limits.reconnectDelayMsMin
      if (link.everConnected) this.counters.reconnects++
      link.everConnected = true
      this.handlers?.onLinkChange(link.peer.id, 'connected')
    }, (error: unknown) => {
      link.opening = false
      this.init.log.debug({ peer: link.peer.id, reason: errorMessage(error) }, 'could not open the frame stream')
      connection.abort(new Error('frame stream refused'))
    })
  }

  private peerDisconnected (peerIdText: string): void {
    const link = this.byPeerId.get(peerIdText)
    if (link !== undefined) this.linkLost(link)
  }

  /** Marks the link down (a no-op when it already is) and arranges for it to come back. */
  private linkLost (link: PeerLink): void {
    this.markDown(link)
    this.scheduleRedial(link)
  }

  private markDown (link: PeerLink): void {
    const stream = link.outbound
    if (stream === null) return
    link.outbound = null
    link.sinceMs = this.now()
    if (stream.status === 'open') stream.abort(new Error('link down'))
    this.handlers?.onLinkChange(link.peer.id, 'disconnected')
  }

  private readInbound (stream: Stream, connection: Connection): void {
    const link = this.byPeerId.get(connection.remotePeer.toString())
    if (link === undefined || this.isRefused(link.peer.id)) {
      stream.abort(new Error(link === undefined ? 'not a member' : 'peer refused'))
      return
    }
    if (!lazyWindowUpdates(stream)) this.untuned('window-update')
    const reader = new FrameReader(this.limits.messageBytesMax)
    const onMessage = (event: { data: Uint8Array | Uint8ArrayList }): void => {
      try {
        for (const payload of reader.push(event.data)) {
          this.counters.bytesReceived += payload.length
          const message = this.init.registry.decode(payload)
          link.framesReceived++
          this.counters.framesReceived++
          this.handlers?.onMessage(link.peer.id, message)
        }
      } catch (error) {
        stream.removeEventListener('message', onMessage)
        if (!this.stopping) this.badFrame(link, connection, error)
      }
    }
    stream.addEventListener('message', onMessage)
  }

  private badFrame (link: PeerLink, connection: Connection, cause: unknown): void {
    this.counters.badFrames++
    const error = cause instanceof CoreError || cause instanceof TransportError
      ? cause
      : new TransportError('TRANSPORT_BAD_FRAME', `bad frame from ${link.peer.id}: ${errorMessage(cause)}`, { peer: link.peer.id })
    this.handlers?.onPeerMisbehaved?.(link.peer.id, error)
    this.init.log.warn({ peer: link.peer.id, code: error.code, reason: error.message }, 'dropping the link to a peer that sent a bad frame')
    this.linkLost(link)
    connection.abort(error)
  }
}
