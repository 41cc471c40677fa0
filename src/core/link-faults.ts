/**
 * Faults injected on purpose into one node's links, for the dashboard's fault panel and for tests
 * on real processes: a transport decorator that can cut the node off from chosen peers (a
 * partition), delay every frame it sends or receives, and drop a share of them.
 *
 * - A peer in `isolatedFrom` is unreachable both ways: frames to it are dropped at send, frames
 *   from it are dropped on arrival, and the services see its link go `disconnected` (as a
 *   partition looks to a node whose TCP connections reset). Lifting the cut reports the link
 *   `connected` again if the real link is up.
 * - `latencyMs` delays each frame this node sends and each frame it receives by that much (so a
 *   round trip through the node grows by twice the figure). One fixed delay per direction keeps
 *   the transport's promise of in-order delivery on a link.
 * - `lossPercent` drops that share of the frames sent and of the frames received, independently.
 *
 * Pure protocol code: time, timers and randomness come in through the constructor.
 */
import type { Message } from './codec.js'
import type { Clock, LinkInfo, LinkState, NodeId, Timers } from './env.js'
import { CoreError } from './errors.js'
import type { Prng } from './prng.js'
import type { PeerRefusal, Transport, TransportHandlers, TransportStats } from './transport.js'

/** The highest latency a fault may add per direction, in milliseconds. */
export const LINK_FAULT_LATENCY_MS_MAX = 10_000

export interface LinkFaults {
  /** Peers this node is cut off from, both ways. */
  readonly isolatedFrom: readonly NodeId[]
  /** Milliseconds added to every frame sent and every frame received; 0 for none. */
  readonly latencyMs: number
  /** Percentage (0..100) of frames dropped in each direction. */
  readonly lossPercent: number
}

export const noLinkFaults: LinkFaults = Object.freeze({ isolatedFrom: Object.freeze([]), latencyMs: 0, lossPercent: 0 })

export interface LinkFaultStats {
  /** Frames dropped because of a cut link (sent or received). */
  framesDroppedIsolated: number
  /** Frames dropped by the injected loss (sent or received). */
  framesDroppedLoss: number
  /** Frames delayed by the injected latency (sent or received). */
  framesDelayed: number
  /** Delayed frames whose delivery failed (an oversized frame sent, a message a service refused). */
  deliveryErrors: number
}

/** Checks a fault description from an untrusted source; throws `CORE_BAD_LINK_FAULTS` naming the field. */
export function parseLinkFaults (input: unknown, members: readonly NodeId[], self: NodeId): LinkFaults {
  const bad = (field: string, expected: string): never => {
    throw new CoreError('CORE_BAD_LINK_FAULTS', `link faults: ${field}: expected ${expected}`, { field })
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return bad('(body)', 'a JSON object')
  const body = input as Record<string, unknown>
  for (const field of Object.keys(body)) {
    if (!['isolatedFrom', 'latencyMs', 'lossPercent'].includes(field)) bad(field, 'no such field (isolatedFrom, latencyMs, lossPercent)')
  }
  const isolated = body.isolatedFrom ?? []
  if (!Array.isArray(isolated) || isolated.some((peer) => typeof peer !== 'string' || !members.includes(peer) || peer === self)) {
    bad('isolatedFrom', 'a list of the ids of other members')
  }
  const latencyMs = body.latencyMs ?? 0
  if (typeof latencyMs !== 'number' || !Number.isInteger(latencyMs) || latencyMs < 0 || latencyMs > LINK_FAULT_LATENCY_MS_MAX) {
    bad('latencyMs', `an integer in 0..${LINK_FAULT_LATENCY_MS_MAX}`)
  }
  const lossPercent = body.lossPercent ?? 0
  if (typeof lossPercent !== 'number' || !Number.isFinite(lossPercent) || lossPercent < 0 || lossPercent > 100) {
    bad('lossPercent', 'a number in 0..100')
  }
  return { isolatedFrom: [...new Set(isolated as string[])].sort(), latencyMs: latencyMs as number, lossPercent: lossPercent as number }
}

export interface FaultyTransportInit {
  inner: Transport
  clock: Clock
  timers: Timers
  random: Prng
}

export class FaultyTransport implements Transport {
  readonly self: NodeId
  private faults: LinkFaults = noLinkFaults
  private isolated = new Set<NodeId>()
  private handlers: TransportHandlers | null = null
  private readonly counters: LinkFaultStats = { framesDroppedIsolated: 0, framesDroppedLoss: 0, framesDelayed: 0, deliveryErrors: 0 }
  /** Per lane (peer and direction), when its last delayed frame is due. */
  private readonly laneDueMs = new Map<string, number>()
  /** Delayed frames not yet delivered or sent, so `stop` can cancel them. */
  private readonly pending = new Set<number>()

  constructor (private readonly init: FaultyTransportInit) {
    this.self = init.inner.self
  }

  async start (handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers
    await this.init.inner.start({
      onMessage: (from, message) => {
        if (this.isolated.has(from)) { this.counters.framesDroppedIsolated++; return }
        if (this.lost()) return
        this.afterLatency(`receive ${from}`, () => {
          // A cut made while the frame was in flight drops it too.
          if (this.isolated.has(from)) { this.counters.framesDroppedIsolated++; return }
          // Delivered from a timer, not from the inner transport's own guarded call: a service
          // that throws on a peer's message must not take the process down.
          try {
            handlers.onMessage(from, message)
          } catch (error) {
            this.counters.deliveryErrors++
            handlers.onPeerMisbehaved?.(from, new CoreError('CORE_DECODE_FAILED', `a delayed message from ${from} was refused: ${error instanceof Error ? error.message : String(error)}`, { peer: from }))
          }
        })
      },
      onLinkChange: (peer, state) => {
        if (!this.isolated.has(peer)) handlers.onLinkChange(peer, state)
      },
      ...(handlers.onPeerMisbehaved === undefined ? {} : { onPeerMisbehaved: handlers.onPeerMisbehaved.bind(handlers) })
    })
  }

  async stop (): Promise<void> {
    for (const id of this.pending) this.init.timers.clearTimer(id)
    this.pending.clear()
    this.laneDueMs.clear()
    await this.init.inner.stop()
  }

  send<M extends Message> (to: NodeId, message: M): void {
    if (this.isolated.has(to)) { this.counters.framesDroppedIsolated++; return }
    if (this.lost()) return
    this.afterLatency(`send ${to}`, () => {
      // A cut made while the frame was in flight drops it too.
      if (this.isolated.has(to)) { this.counters.framesDroppedIsolated++; return }
      // Sent from a timer: an error (an oversized frame) can no longer reach the caller, so it is
      // counted as a dropped frame instead of escaping.
      try {
        this.init.inner.send(to, message)
      } catch {
        this.counters.deliveryErrors++
      }
    })
  }

  links (): LinkInfo[] {
    return this.init.inner.links().map((link) => this.isolated.has(link.peer) && link.state === 'connected'
      ? { ...link, state: 'disconnected' as LinkState }
      : link)
  }

  stats (): TransportStats {
    return this.init.inner.stats()
  }

  refuse (peer: NodeId, untilMs: number): void {
    this.init.inner.refuse(peer, untilMs)
  }

  refusals (): PeerRefusal[] {
    return this.init.inner.refusals()
  }

  /** The faults in force. */
  current (): LinkFaults {
    return this.faults
  }

  faultStats (): LinkFaultStats {
    return { ...this.counters }
  }

  /** Replaces the faults in force; tells the services about every link a change cut or restored. */
  set (faults: LinkFaults): void {
    const before = this.isolated
    this.faults = faults
    this.isolated = new Set(faults.isolatedFrom)
    const handlers = this.handlers
    if (handlers === null) return
    const connected = new Set(this.init.inner.links().filter((link) => link.state === 'connected').map((link) => link.peer))
    for (const peer of this.isolated) {
      if (!before.has(peer) && connected.has(peer)) handlers.onLinkChange(peer, 'disconnected')
    }
    for (const peer of before) {
      if (!this.isolated.has(peer) && connected.has(peer)) handlers.onLinkChange(peer, 'connected')
    }
  }

  private lost (): boolean {
    if (this.faults.lossPercent <= 0) return false
    if (!this.init.random.chance(this.faults.lossPercent / 100)) return false
    this.counters.framesDroppedLoss++
    return true
  }

  /**
   * Runs `deliver` after the latency in force, never before an earlier frame of the same lane (one
   * peer, one direction): lowering the latency while frames are in flight must not let a later
   * frame overtake them.
   */
  private afterLatency (lane: string, deliver: () => void): void {
    const nowMs = this.init.clock.now()
    const dueMs = Math.max(nowMs + this.faults.latencyMs, this.laneDueMs.get(lane) ?? 0)
    if (dueMs <= nowMs) { this.laneDueMs.delete(lane); deliver(); return }
    this.laneDueMs.set(lane, dueMs)
    this.counters.framesDelayed++
    const id = this.init.timers.setTimer(dueMs - nowMs, () => {
      this.pending.delete(id)
      if (this.laneDueMs.get(lane) === dueMs) this.laneDueMs.delete(lane)
      deliver()
    })
    this.pending.add(id)
  }
}
