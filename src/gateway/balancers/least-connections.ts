/**
 * Least connections, plain and weighted. `least-connections` picks the upstream with the fewest
 * requests in flight; `weighted-least-connections` the smallest (inFlight + 1) / weight, compared
 * by cross-multiplication ((a + 1)·w_b against (b + 1)·w_a), so no quotient is ever rounded.
 * The "+ 1" counts the request being placed: with all upstreams idle, the heavier one wins.
 * Ties go to the upstream picked least recently (never picked counts as oldest, then
 * configuration order), so idle upstreams take turns instead of the first one taking everything.
 *
 * The upstreams sit in an indexed binary heap under (load, last pick, configuration index). A
 * pick takes the top (or the first non-avoided one), stamps it as just picked and sifts it down;
 * `started`/`finished` change one count and sift that upstream.
 *
 * Complexity: `pick` O(log n) (with r avoided upstreams, O(r + log n)); `started`, `finished`
 * O(log n) for an eligible id, O(1) otherwise; `setUpstreams` O(n) when the set or a weight
 * changed, O(n) to compare otherwise.
 *
 * Reference: nginx's `least_conn` (`ngx_http_upstream_least_conn_module.c`, which compares
 * conns/weight by cross-multiplication in an O(n) scan and breaks ties by weighted round robin)
 * and Envoy's LEAST_REQUEST (active requests + 1 over weight); here with a recency tie-break and
 * a heap instead of the scan.
 */
import type { StrategyName } from './index.js'
import { IndexedHeap } from './indexed-heap.js'
import { InFlightCounts, UpstreamListBalancer, type Balancer, type BalancerUpstream, type PickRequest } from './types.js'

export class LeastConnectionsBalancer extends UpstreamListBalancer implements Balancer {
  readonly strategy: StrategyName
  /** In-flight count of each eligible upstream (mirrors `counts`, for the comparator). */
  private loads: number[] = []
  /** When each eligible upstream was last picked (0 = never). */
  private stamps: number[] = []
  /** Last-pick stamps by id, kept across eligible sets like the in-flight counts. */
  private readonly lastPicked = new Map<string, number>()
  private clock = 0
  private readonly heap: IndexedHeap

  constructor (weighted: boolean, private readonly counts: InFlightCounts = new InFlightCounts()) {
    super()
    this.strategy = weighted ? 'weighted-least-connections' : 'least-connections'
    // Order: load (weighted: (inFlight + 1) / weight, cross-multiplied), then the older last
    // pick, then configuration order: a strict total order, so the heap's answer is unique.
    const recency = (a: number, b: number): boolean => this.stamps[a] < this.stamps[b] || (this.stamps[a] === this.stamps[b] && a < b)
    this.heap = new IndexedHeap(weighted
      ? (a, b) => {
          const left = (this.loads[a] + 1) * this.weights[b]
          const right = (this.loads[b] + 1) * this.weights[a]
          return left < right || (left === right && recency(a, b))
        }
      : (a, b) => this.loads[a] < this.loads[b] || (this.loads[a] === this.loads[b] && recency(a, b)))
  }

  protected rebuild (_upstreams: readonly BalancerUpstream[]): void {
    this.loads = this.ids.map((id) => this.counts.get(id))
    this.stamps = this.ids.map((id) => this.lastPicked.get(id) ?? 0)
    this.heap.heapify(this.ids.length)
  }

  pick (_request: PickRequest, avoid?: ReadonlySet<string>): string | null {
    const best = avoid === undefined || avoid.size === 0
      ? this.heap.peek()
      : this.heap.firstAccepted((handle) => !avoid.has(this.ids[handle]))
    if (best < 0) return null
    const id = this.ids[best]
    this.stamps[best] = ++this.clock
    this.lastPicked.set(id, this.clock)
    this.heap.update(best)
    return id
  }

  started (id: string): void { this.moved(id, this.counts.increment(id)) }
  finished (id: string): void { this.moved(id, this.counts.decrement(id)) }
  inFlight (id: string): number { return this.counts.get(id) }

  private moved (id: string, count: number): void {
    const handle = this.index.get(id)
    if (handle === undefined || this.loads[handle] === count) return
    this.loads[handle] = count
    this.heap.update(handle)
  }
}
