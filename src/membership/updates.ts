/**
 * The dissemination queue: the newest claim about each member, each passed on at most
 * `transmitsMax` times, the least sent first. Updates ride on probes and acks for free; the
 * gossip timer sends the rest. A newer claim about a member replaces the older ones, except that
 * suspicions of one member from different accusers are kept side by side: each is a confirmation
 * that shortens the suspicion elsewhere.
 */
import type { NodeId } from '../core/index.js'
import type { MemberUpdate } from './messages.js'

interface Queued { update: MemberUpdate, transmits: number, order: number }

export class UpdateQueue {
  /** By member, or member/accuser for suspicions. */
  private readonly queued = new Map<string, Queued>()
  private order = 0

  constructor (private readonly transmitsMax: () => number) {}

  get size (): number { return this.queued.size }

  enqueue (update: MemberUpdate): void {
    for (const [key, entry] of this.queued) {
      if (entry.update.member === update.member && (update.state !== 'suspect' || entry.update.state !== 'suspect')) this.queued.delete(key)
    }
    this.queued.set(keyOf(update), { update, transmits: 0, order: ++this.order })
  }

  /**
   * Up to `countMax` updates for one message: updates about the members in `first` (the recipient,
   * this node) lead, then the least transmitted, newest first among equals. Nothing is counted
   * until `sent` confirms the message left, so a send with no route wastes no transmission.
   */
  select (countMax: number, first: readonly NodeId[] = []): MemberUpdate[] {
    if (this.queued.size === 0 || countMax <= 0) return []
    const chosen: Queued[] = []
    for (const member of first) {
      for (const entry of this.queued.values()) if (entry.update.member === member && !chosen.includes(entry)) chosen.push(entry)
    }
    if (chosen.length < countMax) {
      const rest = [...this.queued.values()].filter((entry) => !chosen.includes(entry))
      rest.sort((a, b) => a.transmits - b.transmits || b.order - a.order)
      chosen.push(...rest.slice(0, countMax - chosen.length))
    }
    return chosen.slice(0, countMax).map((entry) => entry.update)
  }

  /** Counts one transmission of each update a message carried; drops those sent enough. */
  sent (updates: readonly MemberUpdate[]): void {
    const limit = this.transmitsMax()
    for (const update of updates) {
      const key = keyOf(update)
      const entry = this.queued.get(key)
      if (entry === undefined || entry.update !== update) continue
      entry.transmits++
      if (entry.transmits >= limit) this.queued.delete(key)
    }
  }
}

function keyOf (update: MemberUpdate): string {
  return update.state === 'suspect' ? `${update.member}/${update.from}` : update.member
}
