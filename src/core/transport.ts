/**
 * The transport between nodes, implemented by libp2p (`src/node`) and by the simulated network
 * (`src/sim`). Both pass one compliance suite (`test/support/transport-compliance.ts`).
 *
 * Contract: messages to one peer arrive in the order sent while the link stays up; a message sent
 * with no live link is dropped and counted (protocols own their retries); frames over
 * `messageBytesMax` are refused by sender and receiver; a peer not in the network config is
 * refused at the handshake; a peer that sends bytes that do not decode is counted, reported
 * through `onPeerMisbehaved` and its link dropped; links come back by themselves after a restart;
 * a peer refused with `refuse` is disconnected and kept away until its refusal ends.
 */
import type { Message, MessageRegistry } from './codec.js'
import type { LinkInfo, LinkState, NodeId } from './env.js'
import { TransportError, type SynodError } from './errors.js'

export interface TransportHandlers {
  onMessage (from: NodeId, message: Message): void
  onLinkChange (peer: NodeId, state: LinkState): void
  onPeerMisbehaved? (peer: NodeId, error: SynodError): void
}

export interface TransportStats {
  framesSent: number
  framesReceived: number
  /** Bytes written to links, length prefixes included. */
  bytesSent: number
  bytesReceived: number
  /** Frames that failed to decode (garbage, oversized, unknown type, schema mismatch). */
  badFrames: number
  /** Handshakes refused because the remote key is not in the network config. */
  refusedPeers: number
  /** Handshakes refused because the peer is refused for misbehaviour (see `Transport.refuse`). */
  refusedBannedPeers: number
  /** Frames dropped at send: no live link, or the send queue full. */
  droppedFrames: number
  /** Links that came up again after going down. */
  reconnects: number
}

export interface Transport {
  readonly self: NodeId
  start (handlers: TransportHandlers): Promise<void>
  stop (): Promise<void>
  /** Throws `TRANSPORT_FRAME_TOO_LARGE` for an oversized message; otherwise never throws. */
  send<M extends Message> (to: NodeId, message: M): void
  links (): LinkInfo[]
  stats (): TransportStats
  /**
   * Drops any live link with `peer` and refuses links with it (both dialing it and accepting it)
   * until clock time `untilMs` (the transport's own `now`); an `untilMs` at or before now lifts a
   * refusal. After the refusal ends, the link comes back by itself like after any drop.
   */
  refuse (peer: NodeId, untilMs: number): void
  /** The refusals in force, expired ones pruned. */
  refusals (): PeerRefusal[]
}

export interface PeerRefusal {
  readonly peer: NodeId
  readonly untilMs: number
}

export function emptyTransportStats (): TransportStats {
  return { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, badFrames: 0, refusedPeers: 0, refusedBannedPeers: 0, droppedFrames: 0, reconnects: 0 }
}

/**
 * The bookkeeping behind `Transport.refuse`, shared by every transport: which peers are refused
 * until when. Time comes in as an argument; a refusal ends at its `untilMs` and is pruned lazily.
 */
export class PeerRefusals {
  private readonly untilMs = new Map<NodeId, number>()

  /**
   * Records (or moves) a refusal, or lifts one when `untilMs` is at or before `nowMs`. Says what
   * the transport must act on: 'refused' (drop the link, replan the redial), 'lifted' (redial
   * now), or 'none' (lifting a refusal that was not in force).
   */
  set (peer: NodeId, untilMs: number, nowMs: number): 'refused' | 'lifted' | 'none' {
    const wasRefused = this.isRefused(peer, nowMs)
    if (untilMs > nowMs) {
      this.untilMs.set(peer, untilMs)
      return 'refused'
    }
    this.untilMs.delete(peer)
    return wasRefused ? 'lifted' : 'none'
  }

  /** Milliseconds until the refusal of `peer` ends; 0 when it is not refused. */
  remainingMs (peer: NodeId, nowMs: number): number {
    const untilMs = this.untilMs.get(peer)
    if (untilMs === undefined) return 0
    if (untilMs > nowMs) return untilMs - nowMs
    this.untilMs.delete(peer)
    return 0
  }

  isRefused (peer: NodeId, nowMs: number): boolean {
    return this.remainingMs(peer, nowMs) > 0
  }

  list (nowMs: number): PeerRefusal[] {
    for (const peer of [...this.untilMs.keys()]) this.remainingMs(peer, nowMs)
    return [...this.untilMs].map(([peer, untilMs]) => ({ peer, untilMs }))
  }
}

/**
 * Encodes a message for the wire and enforces `messageBytesMax` at the sender, the same way in
 * every transport: an oversized message is a `TRANSPORT_FRAME_TOO_LARGE`, never a silent drop.
 */
export function encodeWithinLimit (registry: MessageRegistry, message: Message, messageBytesMax: number): Uint8Array {
  const payload = registry.encode(message)
  if (payload.length > messageBytesMax) {
    throw new TransportError('TRANSPORT_FRAME_TOO_LARGE', `message ${message.type} is ${payload.length} bytes, over messageBytesMax ${messageBytesMax}`, { bytes: payload.length, messageBytesMax })
  }
  return payload
}
