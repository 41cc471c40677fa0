/**
 * Key affinity: requests for the same store key go to the same upstream, so a node's caches and
 * the coordinator role for that key stay put.
 *
 * For a request with a key:
 * 1. with a ring (the store's `HashRing`, read through `ring()` at each pick so a refreshed ring
 *    takes effect at once), the first replica in the key's preference list whose upstream
 *    (`upstreamOf(nodeId)`, the node id itself by default) is eligible and not avoided: the
 *    request lands on a node that holds the key, the coordinator when it is up;
 * 2. otherwise (no ring, or none of the replicas usable), a Maglev table over the eligible
 *    upstreams with their weights (Eisenbud et al., NSDI 2016, see maglev.ts), rebuilt only when
 *    the set or a weight changes. With `avoid`, the pick walks the following table slots to the
 *    first non-avoided upstream, so a retry lands on a stable second choice.
 *
 * A request without a key goes to an inner power-of-two-choices balancer (p2c.ts, Envoy's
 * LEAST_REQUEST). All three paths share one set of in-flight counts.
 *
 * Complexity: keyed `pick` O(r) for the ring walk (r = the preference list's length, the
 * replication factor) plus O(1) for the Maglev lookup (one SHA-256); with `avoid`, about
 * 1 / (1 − a) slot probes expected when the avoided upstreams hold a share a of the slots (the
 * table's permutations scatter each backend's slots), plus O(|avoid|) to count them; keyless
 * `pick` as p2c, O(1) expected. `setUpstreams` O(n) plus the Maglev build, O(M·(log M + w_max/w_mean)),
 * when the set changed.
 */
import type { StrategyName } from './index.js'
import { MAGLEV_TABLE_SIZE_DEFAULT, MaglevTable } from './maglev.js'
import { P2cBalancer, type P2cOptions } from './p2c.js'
import { countAvoided, InFlightCounts, UpstreamListBalancer, type Balancer, type BalancerUpstream, type PickRequest } from './types.js'

/** What key affinity needs of a ring: the replicas of a key, most preferred first. */
export interface PreferenceRing {
  preferenceList (key: string): readonly string[]
}

export interface KeyAffinityOptions extends P2cOptions {
  /** The current ring, or null when there is none (yet). */
  ring?: () => PreferenceRing | null
  /** The upstream id serving a ring node, undefined when no upstream does. Default: the node id. */
  upstreamOf?: (nodeId: string) => string | undefined
  /** The Maglev table's size M, a prime. Default MAGLEV_TABLE_SIZE_DEFAULT. */
  maglevTableSize?: number
}

export class KeyAffinityBalancer extends UpstreamListBalancer implements Balancer {
  readonly strategy: StrategyName = 'key-affinity'
  private table: MaglevTable
  private readonly counts = new InFlightCounts()
  private readonly keyless: P2cBalancer
  private readonly tableSize: number

  constructor (private readonly options: KeyAffinityOptions) {
    super()
    this.tableSize = options.maglevTableSize ?? MAGLEV_TABLE_SIZE_DEFAULT
    this.table = new MaglevTable([], this.tableSize)
    this.keyless = new P2cBalancer(options, this.counts)
  }

  protected rebuild (upstreams: readonly BalancerUpstream[]): void {
    this.table = new MaglevTable(upstreams, this.tableSize)
    this.keyless.setUpstreams(upstreams)
  }

  pick (request: PickRequest, avoid?: ReadonlySet<string>): string | null {
    const key = request.key
    if (key === undefined) return this.keyless.pick(request, avoid)
    const usable = (id: string): boolean => this.index.has(id) && (avoid === undefined || !avoid.has(id))
    const ring = this.options.ring?.() ?? null
    if (ring !== null) {
      for (const nodeId of ring.preferenceList(key)) {
        const upstream = this.options.upstreamOf === undefined ? nodeId : this.options.upstreamOf(nodeId)
        if (upstream !== undefined && usable(upstream)) return upstream
      }
    }
    if (this.ids.length - countAvoided(this.index, avoid) === 0) return null
    const slot = this.table.slotOf(key)
    for (let probe = 0; probe < this.table.size; probe++) {
      const upstream = this.table.at(slot + probe) as string
      if (usable(upstream)) return upstream
    }
    // Only reachable with more upstreams than slots, when every slot's owner is avoided but an
    // upstream without a slot is not: keep the contract (null only when none is left).
    return this.keyless.pick(request, avoid)
  }

  started (id: string): void { this.counts.increment(id) }
  finished (id: string): void { this.counts.decrement(id) }
  inFlight (id: string): number { return this.counts.get(id) }
}
