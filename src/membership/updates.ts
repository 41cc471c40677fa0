/**
 * The dissemination queue: the newest claim about each member, each passed on at most
 * `transmitsMax` times, the least sent first. Updates ride on probes and acks for free; the
 * gossip timer sends the rest. A newer claim about a member replaces the older ones, except that
 * suspicions of one member from different accusers are kept side by side: each is a confirmation
 * that shortens the suspicion elsewhere.
 *
 * Every message asks the queue for updates, so the queue is kept sorted (least transmitted,
 * then newest) and indexed by member: `select` costs O(countMax), `enqueue` and `sent` a binary
 * search and an array shift, whatever the cluster size (memberlist keeps a B-tree for the same
 * reason).
 */
import type { NodeId } from '../core/index.js'
import type { MemberUpdate } from './messages.js'

interface Queued { key: string, update: MemberUpdate, transmits: number, order: number }

export class UpdateQueue {
  /** Least transmitted first, newest first among equals. */
  private readonly sorted: Queued[] = []
  /** By member, or member/accuser for suspicions. */
  private readonly byKey = new Map<string, Queued>()
  private readonly keysByMember = new Map<NodeId, Set<string>>()
  private order = 0

  constructor (private readonly transmitsMax: () => number) {}

  get size (): number { return this.byKey.size }

  enqueue (update: MemberUpdate): void {
    const key = keyOf(update)
    for (const heldKey of [...this.keysByMember.get(update.member) ?? []]) {
      const held = this.byKey.get(heldKey) as Queued
      if (heldKey === key || update.state !== 'suspect' || held.update.state !== 'suspect') this.remove(held)
    }
    const entry: Queued = { key, update, transmits: 0, order: ++this.order }
    this.byKey.set(key, entry)
    let keys = this.keysByMember.get(update.member)
    if (keys === undefined) this.keysByMember.set(update.member, keys = new Set())
    keys.add(key)
    this.insert(entry)
  }

  /**
   * Up to `countMax` updates for one message: updates about the members in `first` (the recipient,
   * this node) lead, then the least transmitted, newest first among equals. Nothing is counted
   * until `sent` confirms the message left, so a send with no route wastes no transmission.
   */
  select (countMax: number, first: readonly NodeId[] = []): MemberUpdate[] {
    if (this.byKey.size === 0 || countMax <= 0) return []
    const chosen = new Set<Queued>()
    for (const member of first) {
      for (const key of this.keysByMember.get(member) ?? []) {
        if (chosen.size < countMax) chosen.add(this.byKey.get(key) as Queued)
      }
    }
    for (let index = 0; index < this.sorted.length && chosen.size < countMax; index++) chosen.add(this.sorted[index] as Queued)
    return [...chosen].map((entry) => entry.update)
  }

  /** Counts one transmission of each update a message carried; drops those sent enough. */
  sent (updates: readonly MemberUpdate[]): void {
    const limit = this.transmitsMax()
    for (const update of updates) {
      const entry = this.byKey.get(keyOf(update))
      if (entry === undefined || entry.update !== update) continue
      this.sorted.splice(this.indexOf(entry), 1)
      entry.transmits++
      if (entry.transmits >= limit) this.forget(entry)
      else this.insert(entry)
    }
  }

  private remove (entry: Queued): void {
    this.sorted.splice(this.indexOf(entry), 1)
    this.forget(entry)
  }

  private forget (entry: Queued): void {
    this.byKey.delete(entry.key)
    const keys = this.keysByMember.get(entry.update.member)
    keys?.delete(entry.key)
    if (keys?.size === 0) this.keysByMember.delete(entry.update.member)
  }

  private insert (entry: Queued): void {
    this.sorted.splice(this.lowerBound(entry), 0, entry)
  }

  private indexOf (entry: Queued): number {
    const index = this.lowerBound(entry)
    if (this.sorted[index] !== entry) throw new Error('update queue index out of step')
    return index
  }

  /** The first position whose entry does not come before `entry`. */
  private lowerBound (entry: Queued): number {
    let low = 0
    let high = this.sorted.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (comesBefore(this.sorted[middle] as Queued, entry)) low = middle + 1
      else high = middle
    }
    return low
  }
}

function comesBefore (a: Queued, b: Queued): boolean {
  return a.transmits < b.transmits || (a.transmits === b.transmits && a.order > b.order)
}

function keyOf (update: MemberUpdate): string {
  return update.state === 'suspect' ? `${update.member}/${update.from}` : update.member
}
