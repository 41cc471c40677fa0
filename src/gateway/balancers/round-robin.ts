/**
 * Plain round robin: ignores weights and cycles through the upstreams in configuration order,
 * skipping the ones a pick must avoid (nginx's `proxy_next_upstream` retry skips the peers it
 * already tried the same way).
 *
 * A new eligible set does not restart the cycle: the cursor continues after the upstream picked
 * last if it is still eligible; if it left, after the first upstream that followed it in the old
 * order and is still eligible. So health flapping one upstream does not keep sending the next
 * request to the first upstream.
 *
 * Complexity: `pick` O(1 + a), a = the avoided upstreams it skips over (a ≤ |avoid|);
 * `setUpstreams` O(n), and only when the set changes; `started`/`finished` O(1).
 *
 * Reference: nginx's round robin (`ngx_http_upstream_round_robin.c`) with all weights equal;
 * Envoy's ROUND_ROBIN policy with equal weights.
 */
import type { StrategyName } from './index.js'
import { checkUpstreams, InFlightCounts, sameUpstreams, type Balancer, type BalancerUpstream, type PickRequest } from './types.js'

export class RoundRobinBalancer implements Balancer {
  readonly strategy: StrategyName = 'round-robin'
  private ids: string[] = []
  private weights: number[] = []
  private index = new Map<string, number>()
  /** Where the next pick starts looking. */
  private cursor = 0
  /** The id picked last, to place the cursor in a new set. */
  private lastPicked: string | null = null

  constructor (private readonly counts: InFlightCounts = new InFlightCounts()) {}

  setUpstreams (upstreams: readonly BalancerUpstream[]): void {
    checkUpstreams(upstreams)
    if (sameUpstreams(this.ids, this.weights, upstreams)) return
    const oldIds = this.ids
    const oldLast = this.lastPicked === null ? -1 : (this.index.get(this.lastPicked) ?? -1)
    this.ids = upstreams.map((upstream) => upstream.id)
    this.weights = upstreams.map((upstream) => upstream.weight)
    this.index = new Map(this.ids.map((id, position) => [id, position]))
    this.cursor = 0
    if (oldLast < 0 || this.ids.length === 0) return
    // The first upstream at or after the old cursor position that is still eligible, starting
    // with the last picked one itself (the cursor then goes one past it).
    for (let step = 0; step < oldIds.length; step++) {
      const position = this.index.get(oldIds[(oldLast + step) % oldIds.length])
      if (position === undefined) continue
      this.cursor = step === 0 ? (position + 1) % this.ids.length : position
      return
    }
  }

  pick (_request: PickRequest, avoid?: ReadonlySet<string>): string | null {
    const count = this.ids.length
    for (let step = 0; step < count; step++) {
      const position = (this.cursor + step) % count
      const id = this.ids[position]
      if (avoid !== undefined && avoid.has(id)) continue
      this.cursor = (position + 1) % count
      this.lastPicked = id
      return id
    }
    return null
  }

  started (id: string): void { this.counts.increment(id) }
  finished (id: string): void { this.counts.decrement(id) }
  inFlight (id: string): number { return this.counts.get(id) }
}
