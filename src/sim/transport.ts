/**
 * The simulated transport: the libp2p contract (core/transport.ts) over the simulated packet
 * network, so protocol code sees the same behaviour in both worlds.
 *
 * A link is a connection with a small handshake (the dialer's SYN names its node id; the
 * listener refuses ids outside the network config) and a TCP-like stream on top of a lossy
 * network: frames carry a sequence number, a lost frame is sent again with exponential back-off,
 * the receiver delivers strictly in sequence and drops duplicates. So per-link order holds under
 * loss, duplication and reordering, and those faults show up as delay, as they do over TCP.
 *
 * Both sides dial every peer they have no link with. Simultaneous dials are settled by one rule
 * both sides apply the same way: the connection dialed by the lower node id wins. A dial that is
 * newer (by the dialer's incarnation, then dial serial) replaces an older link, which is how a
 * restarted peer, or one whose side of the link timed out, gets its link back.
 *
 * Links die from a reset (the peer crashed, stopped, or dropped us), from a bad frame, or after
 * `linkIdleTimeoutMs` without any packet (a partition, a paused peer); keepalive frames, internal
 * to the transport, keep a quiet link alive. A send with no live link is dropped and counted.
 *
 * A peer refused for misbehaviour (`refuse`) loses its link, is not dialed, and its SYNs are
 * reset as refused until the refusal ends; the redial is planned for that moment.
 */
import {
  CoreError, PeerRefusals, TransportError, assert, defaultTransportLimits, emptyTransportStats, encodeWithinLimit, errorMessage,
  type Clock, type LinkInfo, type Logger, type Message, type MessageRegistry, type NodeId,
  type PeerRefusal, type Prng, type SynodError, type TimerId, type Timers, type Transport, type TransportHandlers,
  type TransportLimits, type TransportStats
} from '../core/index.js'
import type { EventOwner, SimKernel } from './kernel.js'
import type { SimNetwork } from './network.js'
import { shortId } from './names.js'

export interface SimTransportLimits extends TransportLimits {
  /** A dial with no answer for this long is abandoned and retried with back-off. */
  handshakeTimeoutMs: number
  /** First retransmission delay of a lost frame; doubles per attempt (a TCP retransmission timer). */
  retransmitDelayMsMin: number
  retransmitDelayMsMax: number
}

export const defaultSimTransportLimits: Readonly<SimTransportLimits> = Object.freeze({
  ...defaultTransportLimits,
  handshakeTimeoutMs: 3_000,
  retransmitDelayMsMin: 200,
  retransmitDelayMsMax: 1_000
})

type ResetReason = 'refused' | 'duplicate' | 'unknown' | 'closed' | 'crashed' | 'idle' | 'bad-frame' | 'replaced'

interface SynPacket {
  readonly kind: 'syn'
  readonly label: string
  readonly connection: string
  /** The handshake carries the dialer's node id (in libp2p, proven by the Noise handshake). */
  readonly dialer: NodeId
  readonly incarnation: number
  readonly serial: number
}

interface SynAckPacket { readonly kind: 'syn-ack', readonly label: string, readonly connection: string }
interface ResetPacket { readonly kind: 'rst', readonly label: string, readonly connection: string, readonly reason: ResetReason }

type FrameBody = { readonly kind: 'message', readonly bytes: Uint8Array } | { readonly kind: 'keepalive' }

interface FramePacket {
  readonly kind: 'frame'
  readonly label: string
  readonly connection: string
  readonly sequence: number
  readonly body: FrameBody
  /** Stands in for the receiver's acknowledgement: frees the frame's bytes in the sender's queue. */
  readonly onDelivered: () => void
}

/** Everything a simulated transport puts on the simulated network. */
export type LinkPacket = SynPacket | SynAckPacket | ResetPacket | FramePacket

export interface SimTransportInit {
  self: NodeId
  /** The network config: the only ids allowed past the handshake, and the peers to dial. */
  members: readonly NodeId[]
  /** The overlay neighbours to keep links with; all other members by default. */
  linkPeers?: readonly NodeId[]
  /**
   * Loss above the transport: each received message is dropped with this probability, as when a
   * connection resets with data in flight or the transport is datagram-based. The stream below
   * stays reliable; this is what exercises protocols' own repair.
   */
  messageLoss?: { rate: number, random: Prng }
  registry: MessageRegistry
  network: SimNetwork<LinkPacket>
  kernel: SimKernel
  /** The incarnation this transport belongs to: its timers and deliveries die with it. */
  owner: EventOwner
  log: Logger
  limits?: Partial<SimTransportLimits>
}

interface Connection {
  readonly key: string
  readonly peer: NodeId
  state: 'dialing' | 'open' | 'closed'
  nextSendSequence: number
  nextDeliverSequence: number
  /** Frames that arrived ahead of a gap; bounded by the sender's `sendQueueBytesMax`. */
  readonly aheadOfGap: Map<number, FramePacket>
  bytesInFlight: number
  lastSentMs: number
  lastReceivedMs: number
  /** The handshake timeout while dialing; the keepalive tick while open. */
  timer: TimerId | null
}

interface PeerState {
  readonly id: NodeId
  open: Connection | null
  dialing: Connection | null
  redialDelayMs: number
  redialTimer: TimerId | null
  everConnected: boolean
  sinceMs: number
  framesSent: number
  framesReceived: number
  /** Newest dial seen from this peer (accepted or lost a tie-break) as [incarnation, serial]: an older or equal SYN is a stale copy. */
  newestDialSeen: readonly [number, number] | null
}

export class SimTransport implements Transport {
  readonly self: NodeId
  private readonly limits: SimTransportLimits
  private readonly allowed: ReadonlySet<NodeId>
  private readonly peers = new Map<NodeId, PeerState>()
  private readonly counters: TransportStats = emptyTransportStats()
  private readonly refused = new PeerRefusals()
  private readonly timers: Clock & Timers
  private handlers: TransportHandlers | null = null
  private running = false
  private used = false
  private dialSerial = 0

  constructor (private readonly init: SimTransportInit) {
    this.self = init.self
    this.limits = { ...defaultSimTransportLimits, ...init.limits }
    this.allowed = new Set(init.members)
    this.timers = init.kernel.timersFor(init.owner)
    const linkPeers = new Set(init.linkPeers ?? init.members)
    for (const member of [...new Set(init.members)].sort()) {
      if (member !== init.self && linkPeers.has(member)) this.peers.set(member, this.newPeerState(member))
    }
  }

  isRunning (): boolean {
    return this.running
  }

  async start (handlers: TransportHandlers): Promise<void> {
    assert(!this.used, 'a SimTransport starts once; a restarted node gets a new one')
    this.used = true
    this.handlers = handlers
    this.running = true
    this.init.network.attach(this.self, (from, packet) => { this.receive(from, packet) })
    for (const peer of this.peers.values()) this.dial(peer)
  }

  /** A clean shutdown: peers get a reset, local handlers see every link go down. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    for (const peer of this.peers.values()) {
      this.cancelRedial(peer)
      this.abandonDial(peer, 'closed')
      this.closeLink(peer, 'stopped', 'closed')
    }
    this.init.network.detach(this.self)
  }

  /**
   * The process died: no handler runs again, and the operating system resets every connection,
   * so peers learn of it one network latency later (unless a partition eats the reset).
   */
  crash (): void {
    if (!this.running) return
    this.running = false
    for (const peer of this.peers.values()) {
      this.cancelRedial(peer)
      for (const connection of [peer.open, peer.dialing]) {
        if (connection === null) continue
        this.stopTimer(connection)
        connection.state = 'closed'
        this.sendReset(peer.id, connection.key, 'crashed')
      }
      peer.open = null
      peer.dialing = null
    }
    this.init.network.detach(this.self)
  }

  send<M extends Message> (to: NodeId, message: M): void {
    this.writeFrame(to, encodeWithinLimit(this.init.registry, message, this.limits.messageBytesMax))
  }

  /** Puts arbitrary bytes on the link to `to` as one frame, bypassing encoding: for fault-injection tests only. */
  sendRawFrameForTesting (to: NodeId, bytes: Uint8Array): void {
    this.writeFrame(to, bytes)
  }

  links (): LinkInfo[] {
    return [...this.peers.values()].map((peer) => ({
      peer: peer.id,
      state: peer.open !== null ? 'connected' : 'disconnected',
      sinceMs: peer.sinceMs,
      framesSent: peer.framesSent,
      framesReceived: peer.framesReceived
    }))
  }

  stats (): TransportStats {
    return { ...this.counters }
  }

  refuse (peer: NodeId, untilMs: number): void {
    const change = this.refused.set(peer, untilMs, this.timers.now())
    if (change === 'none') return
    this.trace(`link.refuse-${change}`, peer, `until ${untilMs}`)
    if (change === 'refused') this.init.log.info({ peer, untilMs }, 'refusing a peer for misbehaviour')
    const state = this.peers.get(peer)
    if (state === undefined) return
    // Any planned redial is replanned: for the end of the refusal, or now that it is lifted.
    this.cancelRedial(state)
    if (change === 'lifted') {
      this.dial(state)
      return
    }
    this.abandonDial(state, 'refused')
    this.closeLink(state, 'refused for misbehaviour', 'refused')
    this.scheduleRedial(state)
  }

  refusals (): PeerRefusal[] {
    return this.refused.list(this.timers.now())
  }

  // --- sending ------------------------------------------------------------------------------

  private writeFrame (to: NodeId, bytes: Uint8Array): void {
    const peer = this.peers.get(to)
    const connection = this.running ? peer?.open ?? null : null
    if (peer === undefined || connection === null) {
      this.counters.droppedFrames++
      this.trace('link.drop', to, 'no live link')
      return
    }
    if (connection.bytesInFlight + bytes.length > this.limits.sendQueueBytesMax) {
      this.counters.droppedFrames++
      this.trace('link.drop', to, 'send queue full')
      return
    }
    peer.framesSent++
    this.counters.framesSent++
    this.counters.bytesSent += bytes.length
    this.transmit(connection, { kind: 'message', bytes })
  }

  private transmit (connection: Connection, body: FrameBody): void {
    const sequence = connection.nextSendSequence++
    const bytes = body.kind === 'message' ? body.bytes.length : 0
    connection.bytesInFlight += bytes
    let delivered = false
    const packet: FramePacket = {
      kind: 'frame',
      label: `${body.kind === 'message' ? 'frame' : 'keepalive'} ${connection.key}#${sequence} ${bytes}B`,
      connection: connection.key,
      sequence,
      body,
      onDelivered: () => {
        if (delivered) return
        delivered = true
        connection.bytesInFlight -= bytes
      }
    }
    this.transmitAttempt(connection, packet, this.limits.retransmitDelayMsMin)
  }

  /** One attempt; a frame the network lost or blocked goes again later while the link lives. */
  private transmitAttempt (connection: Connection, packet: FramePacket, retryDelayMs: number): void {
    if (!this.running || connection.state !== 'open') return
    connection.lastSentMs = this.timers.now()
    if (this.init.network.send(this.self, connection.peer, packet) === 'sent') return
    const nextDelayMs = Math.min(retryDelayMs * 2, this.limits.retransmitDelayMsMax)
    this.timers.setTimer(retryDelayMs, () => { this.transmitAttempt(connection, packet, nextDelayMs) })
  }

  /**
   * Handshake packets are retransmitted like TCP's SYN and SYN-ACK: a lost one costs a
   * retransmission delay, not a whole handshake timeout, for as long as it is `stillWanted`.
   */
  private sendHandshake (to: NodeId, packet: SynPacket | SynAckPacket, stillWanted: () => boolean, retryDelayMs = this.limits.retransmitDelayMsMin): void {
    if (!this.running || !stillWanted()) return
    if (this.init.network.send(this.self, to, packet) === 'sent') return
    const nextDelayMs = Math.min(retryDelayMs * 2, this.limits.retransmitDelayMsMax)
    this.timers.setTimer(retryDelayMs, () => { this.sendHandshake(to, packet, stillWanted, nextDelayMs) })
  }

  private sendReset (to: NodeId, connection: string, reason: ResetReason): void {
    this.init.network.send(this.self, to, { kind: 'rst', label: `rst ${connection} ${reason}`, connection, reason })
  }

  // --- dialing ------------------------------------------------------------------------------

  private dial (peer: PeerState): void {
    if (!this.running || peer.open !== null || peer.dialing !== null || peer.redialTimer !== null) return
    if (this.refused.isRefused(peer.id, this.timers.now())) {
      this.scheduleRedial(peer)
      return
    }
    const serial = ++this.dialSerial
    const incarnation = this.init.owner.epoch
    const connection = this.newConnection(`${shortId(this.self)}/${incarnation}/${serial}`, peer.id, 'dialing')
    peer.dialing = connection
    connection.timer = this.timers.setTimer(this.limits.handshakeTimeoutMs, () => {
      connection.timer = null
      if (peer.dialing !== connection) return
      this.trace('link.dial-timeout', peer.id, connection.key)
      this.abandonDial(peer, null)
      this.scheduleRedial(peer)
    })
    this.trace('link.dial', peer.id, connection.key)
    const syn: SynPacket = { kind: 'syn', label: `syn ${connection.key}`, connection: connection.key, dialer: this.self, incarnation, serial }
    this.sendHandshake(peer.id, syn, () => peer.dialing === connection)
  }

  /** Gives up the pending dial, telling the peer when a reason is given. */
  private abandonDial (peer: PeerState, resetReason: ResetReason | null): void {
    const connection = peer.dialing
    if (connection === null) return
    this.stopTimer(connection)
    connection.state = 'closed'
    peer.dialing = null
    if (resetReason !== null) this.sendReset(peer.id, connection.key, resetReason)
  }

  /** Plans the next dial: after the back-off delay, or when the peer's refusal ends. */
  private scheduleRedial (peer: PeerState): void {
    if (!this.running || peer.open !== null || peer.dialing !== null || peer.redialTimer !== null) return
    const refusedForMs = this.refused.remainingMs(peer.id, this.timers.now())
    const delayMs = refusedForMs > 0 ? refusedForMs : peer.redialDelayMs
    if (refusedForMs === 0) peer.redialDelayMs = Math.min(delayMs * 2, this.limits.reconnectDelayMsMax)
    peer.redialTimer = this.timers.setTimer(delayMs, () => {
      peer.redialTimer = null
      this.dial(peer)
    })
  }

  private cancelRedial (peer: PeerState): void {
    if (peer.redialTimer !== null) this.timers.clearTimer(peer.redialTimer)
    peer.redialTimer = null
  }

  // --- receiving ----------------------------------------------------------------------------

  private receive (from: NodeId, packet: LinkPacket): void {
    if (!this.running) return
    switch (packet.kind) {
      case 'syn': this.onSyn(from, packet); break
      case 'syn-ack': this.onSynAck(from, packet); break
      case 'rst': this.onReset(from, packet); break
      case 'frame': this.onFrame(from, packet); break
    }
  }

  private onSyn (from: NodeId, syn: SynPacket): void {
    const peer = this.allowed.has(from) && syn.dialer === from ? this.peers.get(from) : undefined
    if (peer === undefined) {
      this.refuseSyn(from, syn, 'not-member')
      return
    }
    if (this.refused.isRefused(from, this.timers.now())) {
      this.refuseSyn(from, syn, 'misbehaved')
      return
    }
    if (peer.open?.key === syn.connection) {
      // A duplicate SYN: our answer may have been lost, so answer again.
      this.sendSynAck(peer, peer.open)
      return
    }
    if (isStaleDial(peer.newestDialSeen, syn)) {
      this.trace('link.stale-syn', from, syn.connection)
      return
    }
    peer.newestDialSeen = [syn.incarnation, syn.serial]
    if (peer.dialing !== null && this.self < from) {
      // Simultaneous dials: ours wins, the peer will accept it and drop its own.
      this.trace('link.tie-break', from, `keep ${peer.dialing.key}, refuse ${syn.connection}`)
      this.sendReset(from, syn.connection, 'duplicate')
      return
    }
    this.accept(peer, syn)
  }

  private accept (peer: PeerState, syn: SynPacket): void {
    this.abandonDial(peer, null)
    this.closeLink(peer, 'replaced by a newer dial', 'replaced')
    const connection = this.newConnection(syn.connection, peer.id, 'open')
    this.establish(peer, connection, () => { this.sendSynAck(peer, connection) })
  }

  private refuseSyn (from: NodeId, syn: SynPacket, why: 'not-member' | 'misbehaved'): void {
    if (why === 'not-member') {
      this.counters.refusedPeers++
      this.init.log.warn({ peer: from, dialer: syn.dialer }, 'refused a peer that is not in the network config')
    } else {
      this.counters.refusedBannedPeers++
    }
    this.trace('link.refused', from, `${syn.connection} ${why}`)
    this.sendReset(from, syn.connection, 'refused')
  }

  /** Retransmitted until sent while the link lives; any frame from the peer would confirm it anyway. */
  private sendSynAck (peer: PeerState, connection: Connection): void {
    const synAck: SynAckPacket = { kind: 'syn-ack', label: `syn-ack ${connection.key}`, connection: connection.key }
    this.sendHandshake(peer.id, synAck, () => peer.open === connection)
  }

  private onSynAck (from: NodeId, synAck: SynAckPacket): void {
    const peer = this.peers.get(from)
    if (peer === undefined || peer.open?.key === synAck.connection) return
    if (peer.dialing?.key === synAck.connection) {
      this.completeDial(peer)
      return
    }
    this.sendReset(from, synAck.connection, 'unknown')
  }

  private completeDial (peer: PeerState): Connection {
    const connection = peer.dialing
    assert(connection !== null, 'completeDial with no pending dial')
    this.stopTimer(connection)
    peer.dialing = null
    this.establish(peer, connection)
    return connection
  }

  private onReset (from: NodeId, reset: ResetPacket): void {
    const peer = this.peers.get(from)
    if (peer === undefined) return
    if (peer.dialing?.key === reset.connection) {
      this.trace('link.dial-reset', from, `${reset.connection} ${reset.reason}`)
      this.abandonDial(peer, null)
      this.scheduleRedial(peer)
    } else if (peer.open?.key === reset.connection) {
      this.closeLink(peer, `reset ${reset.reason}`, null)
    }
  }

  private onFrame (from: NodeId, frame: FramePacket): void {
    const peer = this.peers.get(from)
    if (peer === undefined) return
    let connection = peer.open?.key === frame.connection ? peer.open : null
    // The SYN-ACK was lost or overtaken; a frame on our pending dial proves the peer accepted it.
    if (connection === null && peer.dialing?.key === frame.connection) connection = this.completeDial(peer)
    if (connection === null) {
      this.sendReset(from, frame.connection, 'unknown')
      return
    }
    connection.lastReceivedMs = this.timers.now()
    if (frame.sequence < connection.nextDeliverSequence || connection.aheadOfGap.has(frame.sequence)) {
      this.trace('link.duplicate', from, `${frame.connection}#${frame.sequence}`)
      return
    }
    connection.aheadOfGap.set(frame.sequence, frame)
    this.deliverInOrder(peer, connection)
  }

  private deliverInOrder (peer: PeerState, connection: Connection): void {
    for (;;) {
      if (connection.state !== 'open' || !this.running) return
      const frame = connection.aheadOfGap.get(connection.nextDeliverSequence)
      if (frame === undefined) return
      connection.aheadOfGap.delete(connection.nextDeliverSequence)
      connection.nextDeliverSequence++
      frame.onDelivered()
      if (frame.body.kind === 'message') this.deliverMessage(peer, frame.body.bytes)
    }
  }

  private deliverMessage (peer: PeerState, bytes: Uint8Array): void {
    this.counters.bytesReceived += bytes.length
    if (bytes.length > this.limits.messageBytesMax) {
      this.badFrame(peer, new TransportError('TRANSPORT_BAD_FRAME', `frame of ${bytes.length} bytes from ${peer.id} is over messageBytesMax ${this.limits.messageBytesMax}`, { peer: peer.id, bytes: bytes.length }))
      return
    }
    let message: Message
    try {
      message = this.init.registry.decode(bytes)
    } catch (error) {
      this.badFrame(peer, error instanceof CoreError ? error : new TransportError('TRANSPORT_BAD_FRAME', `bad frame from ${peer.id}: ${errorMessage(error)}`, { peer: peer.id }))
      return
    }
    const loss = this.init.messageLoss
    if (loss !== undefined && loss.rate > 0 && loss.random.chance(loss.rate)) {
      this.trace('message.lost', peer.id, message.type)
      return
    }
    peer.framesReceived++
    this.counters.framesReceived++
    this.trace('link.message', peer.id, message.type)
    this.handlers?.onMessage(peer.id, message)
  }

  private badFrame (peer: PeerState, error: SynodError): void {
    this.counters.badFrames++
    this.trace('link.bad-frame', peer.id, error.code)
    this.handlers?.onPeerMisbehaved?.(peer.id, error)
    this.init.log.warn({ peer: peer.id, code: error.code, reason: error.message }, 'dropping the link to a peer that sent a bad frame')
    this.closeLink(peer, 'bad frame', 'bad-frame')
  }

  // --- link state ---------------------------------------------------------------------------

  /** `beforeAnnounce` runs once the link is live but before handlers hear of it (the listener's SYN-ACK goes first). */
  private establish (peer: PeerState, connection: Connection, beforeAnnounce?: () => void): void {
    const now = this.timers.now()
    connection.state = 'open'
    connection.lastReceivedMs = now
    connection.lastSentMs = now
    peer.open = connection
    peer.sinceMs = now
    peer.redialDelayMs = this.limits.reconnectDelayMsMin
    this.cancelRedial(peer)
    if (peer.everConnected) this.counters.reconnects++
    peer.everConnected = true
    this.armKeepalive(peer, connection)
    this.trace('link.up', peer.id, connection.key)
    beforeAnnounce?.()
    this.handlers?.onLinkChange(peer.id, 'connected')
  }

  /** Takes the live link down (if any), resets it at the peer unless the peer reset it, and plans a redial. */
  private closeLink (peer: PeerState, reason: string, resetReason: ResetReason | null): void {
    const connection = peer.open
    if (connection === null) return
    this.stopTimer(connection)
    connection.state = 'closed'
    peer.open = null
    peer.sinceMs = this.timers.now()
    if (resetReason !== null) this.sendReset(peer.id, connection.key, resetReason)
    this.trace('link.down', peer.id, `${connection.key} ${reason}`)
    this.scheduleRedial(peer)
    this.handlers?.onLinkChange(peer.id, 'disconnected')
  }

  /** Wakes when the link next needs a keepalive or has been silent too long, whichever is first. */
  private armKeepalive (peer: PeerState, connection: Connection): void {
    const keepaliveDueMs = connection.lastSentMs + this.limits.keepaliveIntervalMs
    const idleDueMs = connection.lastReceivedMs + this.limits.linkIdleTimeoutMs
    const delayMs = Math.max(1, Math.min(keepaliveDueMs, idleDueMs) - this.timers.now())
    connection.timer = this.timers.setTimer(delayMs, () => {
      connection.timer = null
      this.keepaliveTick(peer, connection)
    })
  }

  private keepaliveTick (peer: PeerState, connection: Connection): void {
    if (!this.running || peer.open !== connection) return
    const now = this.timers.now()
    if (now - connection.lastReceivedMs >= this.limits.linkIdleTimeoutMs) {
      this.closeLink(peer, 'idle', 'idle')
      return
    }
    if (now - connection.lastSentMs >= this.limits.keepaliveIntervalMs) this.transmit(connection, { kind: 'keepalive' })
    this.armKeepalive(peer, connection)
  }

  private stopTimer (connection: Connection): void {
    if (connection.timer !== null) this.timers.clearTimer(connection.timer)
    connection.timer = null
  }

  private newConnection (key: string, peer: NodeId, state: 'dialing' | 'open'): Connection {
    const now = this.timers.now()
    return { key, peer, state, nextSendSequence: 0, nextDeliverSequence: 0, aheadOfGap: new Map(), bytesInFlight: 0, lastSentMs: now, lastReceivedMs: now, timer: null }
  }

  private newPeerState (id: NodeId): PeerState {
    return {
      id, open: null, dialing: null, redialDelayMs: this.limits.reconnectDelayMsMin, redialTimer: null,
      everConnected: false, sinceMs: 0, framesSent: 0, framesReceived: 0, newestDialSeen: null
    }
  }

  private trace (kind: string, peer: NodeId, details: string): void {
    this.init.kernel.trace(kind, `${shortId(this.self)}>${shortId(peer)} ${details}`)
  }
}

function isStaleDial (newest: readonly [number, number] | null, syn: SynPacket): boolean {
  if (newest === null) return false
  const [incarnation, serial] = newest
  return syn.incarnation < incarnation || (syn.incarnation === incarnation && syn.serial <= serial)
}
