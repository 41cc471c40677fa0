/**
 * Per-peer message batching for the store's services. Many keys' messages go to the same
 * replicas within one turn of the event loop; the outbox gathers a peer's messages and sends them
 * at the end of the turn (a zero timer) as one batch: one envelope, one encoding, one frame.
 * Messages for this node itself are delivered then too, without encoding.
 *
 * A message nobody waits for (an asynchronous replica write) may linger: it waits up to
 * `lingerMs` for company, as Kafka's producer `linger.ms` does, and goes with the next batch to
 * its peer, whichever comes first. Under load a peer then gets one frame per linger period instead
 * of one per turn; idle, a lingering message costs at most `lingerMs` of delay.
 *
 * A neighbour gets the batch over the direct link; anyone else through the overlay's routing.
 * With no live path the batch is lost, as on a lossy link: the protocols above time out and retry.
 */
import type { Env, Message, NodeId, TimerId } from '../core/index.js'

/** What the store needs from the overlay: routed messages to any member. */
export interface StoreNet {
  send<M extends Message> (to: NodeId, message: M): void
  onRouted (type: string, handler: (message: Message, delivery: { origin: NodeId, hops: number }) => void): void
}

export interface PeerOutboxInit<M extends Message> {
  net: StoreNet
  /** The batch message type, e.g. `store.batch`. */
  batchType: string
  /** Messages one batch carries at most. */
  batchMessagesMax: number
  /** A peer's queue goes out at once when it reaches this many bytes (about). */
  batchBytesMax: number
  approximateBytes: (message: M) => number
  /** Delivers a message this node sent to itself. */
  deliverLocal: (message: M) => void
}

export class PeerOutbox<M extends Message> {
  private env: Env | null = null
  private readonly queues = new Map<NodeId, { messages: M[], bytes: number }>()
  /** Peers with a live direct link now. */
  private readonly directPeers = new Set<NodeId>()
  private flushTimer: TimerId | null = null
  private lingerTimer: TimerId | null = null
  /** Messages that found no path or did not fit a frame. */
  unsent = 0

  constructor (private readonly init: PeerOutboxInit<M>) {}

  start (env: Env): void {
    this.env = env
    this.directPeers.clear()
    for (const link of env.links()) if (link.state === 'connected') this.directPeers.add(link.peer)
  }

  stop (): void {
    if (this.flushTimer !== null) this.env?.clearTimer(this.flushTimer)
    if (this.lingerTimer !== null) this.env?.clearTimer(this.lingerTimer)
    this.flushTimer = null
    this.lingerTimer = null
    this.queues.clear()
    this.env = null
  }

  linkChanged (peer: NodeId, connected: boolean): void {
    if (connected) this.directPeers.add(peer)
    else this.directPeers.delete(peer)
  }

  /**
   * Queues a message for `to`; it goes out at the end of this turn, or with `lingerMs` > 0 within
   * that many milliseconds (sooner when another message to any peer ends the turn's batch).
   */
  send (to: NodeId, message: M, lingerMs = 0): void {
    const env = this.env
    if (env === null) return
    let queue = this.queues.get(to)
    if (queue === undefined) {
      queue = { messages: [], bytes: 0 }
      this.queues.set(to, queue)
    }
    queue.messages.push(message)
    queue.bytes += this.init.approximateBytes(message)
    if (queue.messages.length >= this.init.batchMessagesMax || queue.bytes >= this.init.batchBytesMax) this.flushTo(to, queue)
    if (lingerMs > 0) this.lingerTimer ??= env.setTimer(lingerMs, () => { this.lingerTimer = null; this.flushAll() })
    else this.flushTimer ??= env.setTimer(0, () => { this.flushTimer = null; this.flushAll() })
  }

  private flushAll (): void {
    for (const [peer, queued] of this.queues) this.flushTo(peer, queued)
  }

  /**
   * Sends one message at once, outside any batch. False when no live path exists now (nothing
   * was sent), so a caller can try another peer.
   */
  transmit<W extends Message> (to: NodeId, wire: W): boolean {
    const env = this.env
    if (env === null) return false
    try {
      if (this.directPeers.has(to)) env.send(to, wire)
      else this.init.net.send(to, wire)
      return true
    } catch (error) {
      // No path now, or a batch too large for one frame: lost, as on a lossy link (the protocols retry).
      const code = (error as { code?: string }).code
      if (code === 'NET_UNREACHABLE' || code === 'TRANSPORT_FRAME_TOO_LARGE') {
        this.unsent++
        return false
      }
      throw error
    }
  }

  private flushTo (to: NodeId, queue: { messages: M[], bytes: number }): void {
    this.queues.delete(to)
    if (queue.messages.length === 0 || this.env === null) return
    if (to === this.env.self) {
      for (const message of queue.messages) this.init.deliverLocal(message)
      return
    }
    if (queue.messages.length === 1) this.transmit(to, queue.messages[0] as M)
    else this.transmit(to, { type: this.init.batchType, messages: queue.messages })
  }
}
