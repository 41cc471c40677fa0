/**
 * Broadcast by epidemic broadcast tree (Plumtree, Leitão et al. 2007), plus pull repair.
 *
 * Each node splits its live overlay links into eager peers (the spanning tree: full messages) and
 * lazy peers (only "I have" notices, batched). A duplicate arriving over an eager link prunes that
 * link to lazy, so after the first few broadcasts the eager links form a tree and duplicates stay
 * near zero. A notice for a message that does not arrive in time grafts the announcer back into
 * the tree and asks it for the message. Periodic digest exchange with a random neighbour repairs
 * what both paths missed (loss, a crash, a late join). The application sees each message once:
 * ids are remembered in a bounded seen-cache.
 */
import type { NodeId, TimerId } from '../core/index.js'
import { IDS_PER_MESSAGE_MAX, type NetDigest, type NetGossip, type NetGraft, type NetIHave } from './overlay-messages.js'

export interface BroadcastLimits {
  /** Ids remembered as seen; the oldest are forgotten first. */
  seenIdsMax: number
  /** How long a seen id is remembered. Must exceed `messageCacheMs` so repair never re-delivers. */
  seenTtlMs: number
  /** Messages kept for grafts and repair. */
  messageCacheEntriesMax: number
  /** How long a message is kept for grafts and repair. */
  messageCacheMs: number
  /** "I have" notices are batched per peer and sent at this interval. */
  lazyPushIntervalMs: number
  /** Wait for a message announced by IHAVE before grafting the announcer. */
  graftTimeoutMs: number
  /** Wait before grafting the next announcer when the first graft brought nothing. */
  graftRetryMs: number
  /** Digest exchange with one random neighbour at this interval. */
  repairIntervalMs: number
  /** Messages sent in answer to one digest. */
  repairBatchMessagesMax: number
  /**
   * Digest repair leaves alone messages younger than this: they are most likely still travelling
   * down the tree, and a repair copy that overtakes the tree copy makes the tree copy a duplicate,
   * which prunes a real tree link.
   */
  repairMinAgeMs: number
}

export const defaultBroadcastLimits: Readonly<BroadcastLimits> = Object.freeze({
  seenIdsMax: 200_000,
  seenTtlMs: 300_000,
  messageCacheEntriesMax: 4_096,
  messageCacheMs: 60_000,
  lazyPushIntervalMs: 100,
  graftTimeoutMs: 400,
  graftRetryMs: 200,
  repairIntervalMs: 1_000,
  repairBatchMessagesMax: 128,
  repairMinAgeMs: 2_000
})

/** `flood` pushes every message on every link and never prunes: the baseline Plumtree is measured against. */
export type BroadcastMode = 'plumtree' | 'flood'

export interface BroadcastStats {
  originated: number
  delivered: number
  /** Copies of a message already seen that arrived along the tree (what Plumtree minimises). */
  duplicates: number
  /** Copies already seen that arrived as repair or graft answers. */
  repairDuplicates: number
  /** Messages first received through digest repair. */
  repaired: number
  grafts: number
  prunes: number
  ihaveIdsSent: number
  digestsSent: number
}

/** What the broadcast layer needs from its host: links, time, timers, randomness, delivery. */
export interface BroadcastPort {
  now (): number
  setTimer (afterMs: number, fire: () => void): TimerId
  clearTimer (id: TimerId): void
  pick (peers: readonly NodeId[]): NodeId
  sendGossip (to: NodeId, gossip: NetGossip): void
  sendIHave (to: NodeId, message: NetIHave): void
  sendGraft (to: NodeId, message: NetGraft): void
  sendPrune (to: NodeId): void
  sendDigest (to: NodeId, message: NetDigest): void
  deliver (gossip: NetGossip): void
}

interface Missing { announcers: NodeId[], timer: TimerId | null }
interface Cached { gossip: NetGossip, storedMs: number }

export class PlumtreeBroadcast {
  private readonly eager = new Set<NodeId>()
  private readonly lazy = new Set<NodeId>()
  private readonly seen = new Map<string, number>()
  private readonly cache = new Map<string, Cached>()
  private readonly missing = new Map<string, Missing>()
  private readonly lazyQueue = new Map<NodeId, string[]>()
  private lazyTimer: TimerId | null = null
  private repairTimer: TimerId | null = null
  readonly stats: BroadcastStats = { originated: 0, delivered: 0, duplicates: 0, repairDuplicates: 0, repaired: 0, grafts: 0, prunes: 0, ihaveIdsSent: 0, digestsSent: 0 }

  constructor (private readonly self: NodeId, private readonly port: BroadcastPort, private readonly limits: BroadcastLimits, private readonly mode_: BroadcastMode = 'plumtree') {}

  start (): void {
    this.scheduleRepair()
  }

  stop (): void {
    if (this.lazyTimer !== null) this.port.clearTimer(this.lazyTimer)
    if (this.repairTimer !== null) this.port.clearTimer(this.repairTimer)
    for (const entry of this.missing.values()) if (entry.timer !== null) this.port.clearTimer(entry.timer)
    this.lazyTimer = null
    this.repairTimer = null
    this.missing.clear()
  }

  /** A new live link starts eager: the tree then prunes what it does not need. */
  linkUp (peer: NodeId): void {
    this.lazy.delete(peer)
    this.eager.add(peer)
  }

  linkDown (peer: NodeId): void {
    this.eager.delete(peer)
    this.lazy.delete(peer)
    this.lazyQueue.delete(peer)
    for (const entry of this.missing.values()) entry.announcers = entry.announcers.filter((announcer) => announcer !== peer)
  }

  mode (peer: NodeId): 'eager' | 'lazy' | null {
    return this.eager.has(peer) ? 'eager' : this.lazy.has(peer) ? 'lazy' : null
  }

  /** Delivers locally and pushes to the tree; `gossip.origin` must be this node. */
  originate (gossip: NetGossip): void {
    this.stats.originated++
    this.accept(gossip, null)
  }

  onGossip (from: NodeId, gossip: NetGossip): void {
    if (this.hasSeen(gossip.id)) {
      if (gossip.repair) {
        this.stats.repairDuplicates++
        return
      }
      this.stats.duplicates++
      if (this.mode_ === 'flood') return
      // Prune even when the sender is not eager here: it pushes to us, so it holds us as eager.
      if (this.eager.delete(from)) this.lazy.add(from)
      this.stats.prunes++
      this.port.sendPrune(from)
      return
    }
    if (gossip.repair) this.stats.repaired++
    else if (this.lazy.delete(from)) this.eager.add(from)
    this.accept(gossip, from)
  }

  onIHave (from: NodeId, message: NetIHave): void {
    for (const id of message.ids) {
      if (this.hasSeen(id)) continue
      const entry = this.missing.get(id)
      if (entry !== undefined) {
        if (!entry.announcers.includes(from)) entry.announcers.push(from)
        if (entry.timer === null) entry.timer = this.port.setTimer(this.limits.graftTimeoutMs, () => { this.graftNext(id) })
        continue
      }
      const created: Missing = { announcers: [from], timer: null }
      created.timer = this.port.setTimer(this.limits.graftTimeoutMs, () => { this.graftNext(id) })
      this.missing.set(id, created)
    }
  }

  onGraft (from: NodeId, message: NetGraft): void {
    this.lazy.delete(from)
    this.eager.add(from)
    for (const id of message.ids) {
      const cached = this.cache.get(id)
      if (cached !== undefined) this.port.sendGossip(from, { ...cached.gossip, repair: true })
    }
  }

  onPrune (from: NodeId): void {
    if (this.eager.delete(from)) this.lazy.add(from)
  }

  /**
   * Answers a neighbour's digest: sends the cached messages it lacks (only when its digest was
   * complete, otherwise we cannot tell) and grafts the ids it has that we never saw.
   */
  onDigest (from: NodeId, digest: NetDigest): void {
    const theirs = new Set(digest.ids)
    if (digest.complete) {
      let sent = 0
      for (const [id, cached] of this.cache) {
        if (sent >= this.limits.repairBatchMessagesMax) break
        if (theirs.has(id) || !this.repairable(cached)) continue
        this.port.sendGossip(from, { ...cached.gossip, repair: true })
        sent++
      }
    }
    const wanted = digest.ids.filter((id) => !this.hasSeen(id)).slice(0, IDS_PER_MESSAGE_MAX)
    if (wanted.length > 0) this.port.sendGraft(from, { type: 'net.graft', ids: wanted })
  }

  private accept (gossip: NetGossip, from: NodeId | null): void {
    this.remember(gossip)
    const waiting = this.missing.get(gossip.id)
    if (waiting !== undefined) {
      if (waiting.timer !== null) this.port.clearTimer(waiting.timer)
      this.missing.delete(gossip.id)
    }
    this.stats.delivered++
    this.port.deliver(gossip)
    const onward: NetGossip = { ...gossip, hops: gossip.hops + 1, repair: false }
    for (const peer of this.eager) if (peer !== from) this.port.sendGossip(peer, onward)
    for (const peer of this.lazy) if (peer !== from) this.queueIHave(peer, gossip.id)
  }

  private remember (gossip: NetGossip): void {
    const now = this.port.now()
    this.seen.set(gossip.id, now)
    this.cache.set(gossip.id, { gossip, storedMs: now })
    while (this.seen.size > this.limits.seenIdsMax) this.seen.delete(this.seen.keys().next().value as string)
    while (this.cache.size > this.limits.messageCacheEntriesMax) this.cache.delete(this.cache.keys().next().value as string)
  }

  private hasSeen (id: string): boolean {
    const seenMs = this.seen.get(id)
    if (seenMs === undefined) return false
    if (this.port.now() - seenMs <= this.limits.seenTtlMs) return true
    this.seen.delete(id)
    return false
  }

  /** Old enough to have finished its trip down the tree, young enough to be in the repair window. */
  private repairable (cached: Cached): boolean {
    const ageMs = this.port.now() - cached.storedMs
    return ageMs >= this.limits.repairMinAgeMs && ageMs <= this.limits.messageCacheMs
  }

  private graftNext (id: string): void {
    const entry = this.missing.get(id)
    if (entry === undefined) return
    entry.timer = null
    if (this.hasSeen(id)) { this.missing.delete(id); return }
    const announcer = entry.announcers.shift()
    if (announcer === undefined) { this.missing.delete(id); return }
    this.lazy.delete(announcer)
    this.eager.add(announcer)
    this.stats.grafts++
    this.port.sendGraft(announcer, { type: 'net.graft', ids: [id] })
    entry.timer = this.port.setTimer(this.limits.graftRetryMs, () => { this.graftNext(id) })
  }

  private queueIHave (peer: NodeId, id: string): void {
    const queue = this.lazyQueue.get(peer)
    if (queue === undefined) this.lazyQueue.set(peer, [id])
    else queue.push(id)
    this.lazyTimer ??= this.port.setTimer(this.limits.lazyPushIntervalMs, () => { this.flushIHaves() })
  }

  private flushIHaves (): void {
    this.lazyTimer = null
    for (const [peer, ids] of this.lazyQueue) {
      for (let start = 0; start < ids.length; start += IDS_PER_MESSAGE_MAX) {
        const chunk = ids.slice(start, start + IDS_PER_MESSAGE_MAX)
        this.stats.ihaveIdsSent += chunk.length
        this.port.sendIHave(peer, { type: 'net.ihave', ids: chunk })
      }
    }
    this.lazyQueue.clear()
  }

  private scheduleRepair (): void {
    this.repairTimer = this.port.setTimer(this.limits.repairIntervalMs, () => {
      this.repairTimer = null
      this.sendDigest()
      this.scheduleRepair()
    })
  }

  private sendDigest (): void {
    const peers = [...this.eager, ...this.lazy].sort()
    if (peers.length === 0) return
    const recent: string[] = []
    for (const [id, cached] of this.cache) if (this.repairable(cached)) recent.push(id)
    const ids = recent.slice(-IDS_PER_MESSAGE_MAX)
    this.stats.digestsSent++
    this.port.sendDigest(this.port.pick(peers), { type: 'net.digest', ids, complete: ids.length === recent.length })
  }
}
