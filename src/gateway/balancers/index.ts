/**
 * The balancers' public face: the strategies, the factory the gateway builds one from, and the
 * pure health and retry-budget state machines the gateway drives them with.
 *
 * Per-pick complexity, n eligible upstreams (details in each file's comment):
 * - `round-robin` (round-robin.ts): O(1), plus the avoided upstreams it skips;
 * - `weighted-round-robin` (smooth-weighted.ts): nginx's smooth weighted round robin in
 *   O(d + log n), d = the number of distinct weights;
 * - `least-connections`, `weighted-least-connections` (least-connections.ts): O(log n), an
 *   indexed heap (nginx `least_conn`, Envoy LEAST_REQUEST);
 * - `p2c` (p2c.ts): O(1) expected, two weighted draws from an alias table (Envoy LEAST_REQUEST,
 *   Mitzenmacher's power of two choices);
 * - `key-affinity` (key-affinity.ts): O(replication factor) on the ring, O(1) through a Maglev
 *   table (Eisenbud et al., NSDI 2016), p2c without a key.
 *
 * `createBalancer` is O(1); every strategy is protocol code: no IO, randomness only from the
 * injected `Prng`.
 */
import type { Prng } from '../../core/index.js'
import { KeyAffinityBalancer, type PreferenceRing } from './key-affinity.js'
import { LeastConnectionsBalancer } from './least-connections.js'
import { P2cBalancer } from './p2c.js'
import { RoundRobinBalancer } from './round-robin.js'
import { SmoothWeightedBalancer } from './smooth-weighted.js'
import type { Balancer } from './types.js'

export * from './types.js'
export { RoundRobinBalancer } from './round-robin.js'
export { SmoothWeightedBalancer } from './smooth-weighted.js'
export { LeastConnectionsBalancer } from './least-connections.js'
export { P2cBalancer, AliasTable, DRAW_ATTEMPTS, type P2cOptions } from './p2c.js'
export { MaglevTable, MAGLEV_TABLE_SIZE_DEFAULT } from './maglev.js'
export { KeyAffinityBalancer, type KeyAffinityOptions, type PreferenceRing } from './key-affinity.js'
export * from './upstream-set.js'
export * from './retry-budget.js'
export * from './peak-ewma.js'

export const STRATEGY_NAMES = ['round-robin', 'weighted-round-robin', 'least-connections', 'weighted-least-connections', 'p2c', 'key-affinity'] as const
export type StrategyName = (typeof STRATEGY_NAMES)[number]

export interface BalancerOptions {
  /** Randomness for p2c (and key affinity's keyless requests); the others ignore it. */
  random: Prng
  /** p2c's load of an upstream; default inFlight + 1. */
  load?: (id: string, inFlight: number) => number
  /** Key affinity's ring, read at each pick. */
  ring?: () => PreferenceRing | null
  /** Key affinity: the upstream id serving a ring node. */
  upstreamOf?: (nodeId: string) => string | undefined
  /** Key affinity's Maglev table size (a prime). */
  maglevTableSize?: number
}

export function createBalancer (name: StrategyName, options: BalancerOptions): Balancer {
  switch (name) {
    case 'round-robin': return new RoundRobinBalancer()
    case 'weighted-round-robin': return new SmoothWeightedBalancer()
    case 'least-connections': return new LeastConnectionsBalancer(false)
    case 'weighted-least-connections': return new LeastConnectionsBalancer(true)
    case 'p2c': return new P2cBalancer(options)
    case 'key-affinity': return new KeyAffinityBalancer(options)
    default: throw new RangeError(`unknown balancing strategy ${String(name)}`)
  }
}
