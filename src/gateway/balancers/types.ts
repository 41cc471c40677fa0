/**
 * The balancers' shared vocabulary: the `Balancer` interface every strategy implements, the
 * upstream and request shapes, the argument checks, and the in-flight counters.
 *
 * Complexity: `checkUpstreams` and `sameUpstreams` are O(n) (called from `setUpstreams`, once
 * per change of the eligible set, never per request); the in-flight counters are a `Map`, O(1)
 * per `started`/`finished`/`inFlight`.
 *
 * Reference: the interface follows the shape of nginx's upstream peer API
 * (`ngx_http_upstream_get_round_robin_peer` / `free_round_robin_peer`: a pick, a "tried" set the
 * retry loop grows, and a release) and Envoy's `LoadBalancer::chooseHost` with its per-host
 * active-request counter (`rq_active`).
 */
import type { StrategyName } from './index.js'

/** One upstream to balance over. `weight > 0`, possibly fractional (slow start scales it). */
export interface BalancerUpstream { readonly id: string, readonly weight: number }

/** What a pick may look at: the routing key (the store key) for key affinity. */
export interface PickRequest { readonly key?: string }

export interface Balancer {
  readonly strategy: StrategyName
  /**
   * Replaces the eligible upstreams (configuration order matters for ties). In-flight counts of
   * ids persist across calls (an id removed and re-added keeps its count; finished() for an id
   * not currently eligible still decrements).
   */
  setUpstreams (upstreams: readonly BalancerUpstream[]): void
  /** The chosen upstream id, never one in `avoid`; null when no eligible upstream remains. */
  pick (request: PickRequest, avoid?: ReadonlySet<string>): string | null
  /** A request to id began (the caller calls this once per pick it uses). */
  started (id: string): void
  /** It ended; never drives a count below 0. */
  finished (id: string): void
  inFlight (id: string): number
}

/**
 * Throws a RangeError for a non-positive or non-finite weight or a repeated id: the gateway
 * validates its configuration long before this, so reaching it is a programmer error.
 */
export function checkUpstreams (upstreams: readonly BalancerUpstream[]): void {
  const seen = new Set<string>()
  for (const upstream of upstreams) {
    if (!(upstream.weight > 0) || !Number.isFinite(upstream.weight)) throw new RangeError(`upstream ${upstream.id}: weight must be a positive finite number, got ${upstream.weight}`)
    if (seen.has(upstream.id)) throw new RangeError(`upstream ${upstream.id} appears twice`)
    seen.add(upstream.id)
  }
}

/** True when both lists hold the same ids with the same weights in the same order. */
export function sameUpstreams (ids: readonly string[], weights: readonly number[], upstreams: readonly BalancerUpstream[]): boolean {
  if (ids.length !== upstreams.length) return false
  for (let index = 0; index < upstreams.length; index++) {
    if (ids[index] !== upstreams[index].id || weights[index] !== upstreams[index].weight) return false
  }
  return true
}

/**
 * What a strategy does first when the eligible set changes: check it, skip an identical one,
 * and keep it as parallel arrays (ids, weights) with an id-to-position index; then the strategy
 * rebuilds its own structures in `rebuild`.
 */
export abstract class UpstreamListBalancer {
  protected ids: string[] = []
  protected weights: number[] = []
  protected index = new Map<string, number>()

  setUpstreams (upstreams: readonly BalancerUpstream[]): void {
    checkUpstreams(upstreams)
    if (sameUpstreams(this.ids, this.weights, upstreams)) return
    this.ids = upstreams.map((upstream) => upstream.id)
    this.weights = upstreams.map((upstream) => upstream.weight)
    this.index = new Map(this.ids.map((id, position) => [id, position]))
    this.rebuild(upstreams)
  }

  /** Rebuilds the strategy's structures for the new `ids` and `weights`. */
  protected abstract rebuild (upstreams: readonly BalancerUpstream[]): void
}

/** In-flight requests per upstream id, kept for ids that are not (or no longer) eligible too. */
export class InFlightCounts {
  private readonly counts = new Map<string, number>()

  get (id: string): number { return this.counts.get(id) ?? 0 }

  /** Adds one and returns the new count. */
  increment (id: string): number {
    const count = this.get(id) + 1
    this.counts.set(id, count)
    return count
  }

  /** Takes one away (never below 0) and returns the new count. */
  decrement (id: string): number {
    const count = this.get(id) - 1
    if (count <= 0) {
      this.counts.delete(id)
      return 0
    }
    this.counts.set(id, count)
    return count
  }
}

/** How many of `avoid` are among the eligible ids: O(|avoid|). */
export function countAvoided (index: ReadonlyMap<string, number>, avoid: ReadonlySet<string> | undefined): number {
  if (avoid === undefined || avoid.size === 0) return 0
  let count = 0
  for (const id of avoid) if (index.has(id)) count++
  return count
}
