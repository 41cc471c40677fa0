/**
 * Power of two choices (Mitzenmacher 2001, "The Power of Two Choices in Randomized Load
 * Balancing"), as Envoy's LEAST_REQUEST runs it: draw two distinct upstreams at random, each with
 * probability proportional to its weight, and send to the one with the lower load / weight,
 * where load defaults to inFlight + 1 (the request being placed counts). Ties go to the first
 * drawn. Loads are compared by cross-multiplication (load_a·w_b against load_b·w_a).
 *
 * Drawing: Vose's alias method (Vose 1991, "A Linear Algorithm for Generating Random Numbers
 * with a Given Distribution"): `setUpstreams` builds the table in O(n), a draw is one uniform
 * integer and one uniform float, O(1). The second candidate is redrawn while it equals the first
 * (or is avoided), at most DRAW_ATTEMPTS times; if one upstream holds so much of the weight that
 * every redraw hits it, the second candidate is the next eligible upstream after the first in
 * configuration order (deterministic; it happens with probability (w_first / T)^16). If the
 * first candidate keeps landing on avoided upstreams, the pick scans the non-avoided ones and
 * takes the lowest load / weight (ties to configuration order): a retry avoiding most of the
 * weight is rare and cheap at O(n). One eligible upstream is picked without drawing.
 *
 * Randomness comes from the injected `Prng` (the simulator's seed replays it); `load` lets a
 * caller plug a latency-aware estimate (Finagle's peak EWMA, say) in place of the count.
 *
 * Complexity: `pick` O(1) expected (at most 2·DRAW_ATTEMPTS draws), O(n) only in the fallbacks
 * above; `setUpstreams` O(n); `started`/`finished` O(1).
 */
import type { Prng } from '../../core/index.js'
import type { StrategyName } from './index.js'
import { countAvoided, InFlightCounts, UpstreamListBalancer, type Balancer, type BalancerUpstream, type PickRequest } from './types.js'

/** Redraws allowed for each candidate before the fallbacks. */
export const DRAW_ATTEMPTS = 16

export interface P2cOptions {
  random: Prng
  /** The load of an upstream with `inFlight` requests in flight; lower is better. Default: inFlight + 1. */
  load?: (id: string, inFlight: number) => number
}

/** Vose's alias table: draws index i with probability weights[i] / Σ weights in O(1). */
export class AliasTable {
  readonly size: number
  private readonly probability: Float64Array
  private readonly alias: Int32Array

  constructor (weights: readonly number[]) {
    const size = weights.length
    this.size = size
    this.probability = new Float64Array(size)
    this.alias = new Int32Array(size)
    if (size === 0) return
    const total = weights.reduce((sum, weight) => sum + weight, 0)
    const scaled = weights.map((weight) => weight * size / total)
    const small: number[] = []
    const large: number[] = []
    for (let index = size - 1; index >= 0; index--) (scaled[index] < 1 ? small : large).push(index)
    while (small.length > 0 && large.length > 0) {
      const less = small.pop() as number
      const more = large.pop() as number
      this.probability[less] = scaled[less]
      this.alias[less] = more
      scaled[more] = scaled[more] + scaled[less] - 1
      ;(scaled[more] < 1 ? small : large).push(more)
    }
    // What is left is 1 up to rounding.
    for (const index of large) { this.probability[index] = 1; this.alias[index] = index }
    for (const index of small) { this.probability[index] = 1; this.alias[index] = index }
  }

  /** An index drawn in proportion to its weight. */
  draw (random: Prng): number {
    const column = random.int(0, this.size - 1)
    return random.float() < this.probability[column] ? column : this.alias[column]
  }
}

export class P2cBalancer extends UpstreamListBalancer implements Balancer {
  readonly strategy: StrategyName = 'p2c'
  private table = new AliasTable([])
  private readonly random: Prng
  private readonly load: (id: string, inFlight: number) => number

  constructor (options: P2cOptions, private readonly counts: InFlightCounts = new InFlightCounts()) {
    super()
    this.random = options.random
    this.load = options.load ?? ((_id, inFlight) => inFlight + 1)
  }

  protected rebuild (_upstreams: readonly BalancerUpstream[]): void {
    this.table = new AliasTable(this.weights)
  }

  pick (_request: PickRequest, avoid?: ReadonlySet<string>): string | null {
    const count = this.ids.length
    const available = count - countAvoided(this.index, avoid)
    if (available === 0) return null
    const ok = (position: number): boolean => avoid === undefined || !avoid.has(this.ids[position])
    if (available === 1) {
      if (count === 1) return this.ids[0]
      for (let position = 0; position < count; position++) if (ok(position)) return this.ids[position]
    }
    let first = -1
    for (let attempt = 0; attempt < DRAW_ATTEMPTS && first < 0; attempt++) {
      const drawn = this.table.draw(this.random)
      if (ok(drawn)) first = drawn
    }
    if (first < 0) return this.ids[this.leastLoaded(ok)]
    let second = -1
    for (let attempt = 0; attempt < DRAW_ATTEMPTS && second < 0; attempt++) {
      const drawn = this.table.draw(this.random)
      if (drawn !== first && ok(drawn)) second = drawn
    }
    if (second < 0) {
      for (let step = 1; step < count && second < 0; step++) {
        const position = (first + step) % count
        if (ok(position)) second = position
      }
    }
    return this.ids[this.lighter(first, second)]
  }

  started (id: string): void { this.counts.increment(id) }
  finished (id: string): void { this.counts.decrement(id) }
  inFlight (id: string): number { return this.counts.get(id) }

  /** The candidate with the lower load / weight; the first on a tie. */
  private lighter (first: number, second: number): number {
    const firstLoad = this.load(this.ids[first], this.counts.get(this.ids[first]))
    const secondLoad = this.load(this.ids[second], this.counts.get(this.ids[second]))
    return secondLoad * this.weights[first] < firstLoad * this.weights[second] ? second : first
  }

  /** The fallback scan: the lowest load / weight among the positions `ok` takes. */
  private leastLoaded (ok: (position: number) => boolean): number {
    let best = -1
    for (let position = 0; position < this.ids.length; position++) {
      if (!ok(position)) continue
      if (best < 0 || this.lighter(best, position) === position) best = position
    }
    return best
  }
}
