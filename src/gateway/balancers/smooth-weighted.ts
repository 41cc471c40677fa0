/**
 * Weighted round robin, exactly nginx's smooth weighted round robin (nginx commit 52327e0627f4,
 * 2012, `ngx_http_upstream_get_peer`): on each pick every peer's current weight grows by its
 * weight, the peer with the highest current weight wins (the first in configuration order on
 * ties: nginx compares with a strict `>`), and the winner's current weight drops by the total
 * weight. Weights {a: 5, b: 1, c: 1} give a a b a c a a, and every run of T = Σw consecutive
 * picks holds each peer exactly its weight times.
 *
 * Avoided peers (the `avoid` set of a retry) are treated as nginx treats the peers a request has
 * already tried (its `tried` bitmap): absent for that one pick. Their current weights do not
 * grow, their weights do not count in that pick's total, and the winner, the best of the others,
 * drops by the others' total. The next pick sees them again as if nothing happened to them.
 *
 * nginx's loop touches every peer, O(n). This one does not. After k picks (counted since the last
 * reset) a peer's current weight is c_i = k·w_i + offset_i, where the offset only changes when
 * the peer wins (−total) or is avoided (−w_i, as its k·w_i share grew without it). Within a group
 * of peers of equal weight, the order by current weight is therefore the order by offset, which
 * stays put between picks; so each distinct weight keeps a heap of its peers by (offset desc,
 * configuration index asc), and a pick compares only each group's top by current weight, ties to
 * the lower configuration index. Only the winner's (and avoided peers') offsets change.
 *
 * Complexity: `pick` O(d + log n), d = the number of distinct weights (d = 1 for all-equal
 * weights, d = n in the worst case, where this is no better than nginx's loop); with r avoided
 * peers, O(d + r·log n). Every max(2^16, n) picks the k·w terms are folded into the offsets and
 * the heaps restored, O(n), so the numbers stay small: amortised O(1). `setUpstreams` O(n) when the set or a
 * weight changed (current weights reset to 0, as nginx does on reload), O(n) to compare
 * otherwise. With integer weights the picks are identical to nginx's loop (all sums exact below
 * 2^53); fractional (slow-start) weights round differently from a running `current += w`, so
 * there the sequence is nginx's up to floating-point ties.
 */
import type { StrategyName } from './index.js'
import { IndexedHeap } from './indexed-heap.js'
import { countAvoided, InFlightCounts, UpstreamListBalancer, type Balancer, type BalancerUpstream, type PickRequest } from './types.js'

/** Fold k·w into the offsets after this many picks (or n, if larger). */
const REBASE_PICKS = 1 << 16

interface WeightGroup {
  readonly weight: number
  readonly heap: IndexedHeap
}

export class SmoothWeightedBalancer extends UpstreamListBalancer implements Balancer {
  readonly strategy: StrategyName = 'weighted-round-robin'
  private total = 0
  /** current weight of peer i = picks · weights[i] + offsets[i]. */
  private offsets: number[] = []
  private picks = 0
  private groups: WeightGroup[] = []
  private groupOf: number[] = []
  /** avoidStamp[i] === pickStamp: peer i is avoided in the pick under way. */
  private avoidStamp: number[] = []
  private pickStamp = 0

  constructor (private readonly counts: InFlightCounts = new InFlightCounts()) { super() }

  protected rebuild (_upstreams: readonly BalancerUpstream[]): void {
    this.total = this.weights.reduce((sum, weight) => sum + weight, 0)
    this.offsets = this.ids.map(() => 0)
    this.avoidStamp = this.ids.map(() => 0)
    this.picks = 0
    const byWeight = new Map<number, number>()
    this.groups = []
    this.groupOf = this.weights.map((weight) => {
      let group = byWeight.get(weight)
      if (group === undefined) {
        group = this.groups.length
        byWeight.set(weight, group)
        const offsets = this.offsets
        this.groups.push({ weight, heap: new IndexedHeap((a, b) => offsets[a] > offsets[b] || (offsets[a] === offsets[b] && a < b)) })
      }
      return group
    })
    for (let peer = 0; peer < this.ids.length; peer++) this.groups[this.groupOf[peer]].heap.push(peer)
  }

  pick (_request: PickRequest, avoid?: ReadonlySet<string>): string | null {
    const avoided = countAvoided(this.index, avoid)
    if (avoided === this.ids.length) return null // nothing eligible (or everything tried): no state changes, as in nginx
    let total = this.total
    const stamp = ++this.pickStamp
    if (avoided > 0 && avoid !== undefined) {
      for (const id of avoid) {
        const peer = this.index.get(id)
        if (peer === undefined) continue
        this.avoidStamp[peer] = stamp
        total -= this.weights[peer]
      }
    }
    const next = this.picks + 1
    const notAvoided = (peer: number): boolean => this.avoidStamp[peer] !== stamp
    let best = -1
    let bestCurrent = 0
    for (const group of this.groups) {
      const top = avoided === 0 ? group.heap.peek() : group.heap.firstAccepted(notAvoided)
      if (top < 0) continue
      const current = next * group.weight + this.offsets[top]
      if (best < 0 || current > bestCurrent || (current === bestCurrent && top < best)) {
        best = top
        bestCurrent = current
      }
    }
    this.picks = next
    this.offsets[best] -= total
    this.groups[this.groupOf[best]].heap.update(best)
    if (avoided > 0 && avoid !== undefined) {
      for (const id of avoid) {
        const peer = this.index.get(id)
        if (peer === undefined) continue
        this.offsets[peer] -= this.weights[peer]
        this.groups[this.groupOf[peer]].heap.update(peer)
      }
    }
    if (this.picks >= REBASE_PICKS && this.picks >= this.ids.length) this.rebase()
    return this.ids[best]
  }

  started (id: string): void { this.counts.increment(id) }
  finished (id: string): void { this.counts.decrement(id) }
  inFlight (id: string): number { return this.counts.get(id) }

  /** The current weights nginx would hold now, in configuration order (for tests and status). */
  currentWeights (): number[] {
    return this.ids.map((_id, peer) => this.picks * this.weights[peer] + this.offsets[peer])
  }

  /** Folds picks·w into the offsets so the numbers stay near the current weights. */
  private rebase (): void {
    for (let peer = 0; peer < this.ids.length; peer++) this.offsets[peer] += this.picks * this.weights[peer]
    this.picks = 0
    // Exact for integer weights (the order cannot change); with fractional weights two offsets
    // may round to a tie, so restore each heap rather than trust the old order.
    for (const group of this.groups) group.heap.reorder()
  }
}
