/**
 * The gateway's balancing strategies (src/gateway/balancers): nginx's smooth weighted round robin
 * against nginx's own published sequence and against nginx's O(n) loop as an oracle, its window
 * and smoothness properties; round robin; least connections (plain and weighted) against an O(n)
 * oracle; power of two choices on a seeded Prng; key affinity over a fake ring and Maglev.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { createPrng } from '../../src/core/index.js'
import {
  AliasTable, createBalancer, KeyAffinityBalancer, LeastConnectionsBalancer, MaglevTable, P2cBalancer, RoundRobinBalancer,
  SmoothWeightedBalancer, STRATEGY_NAMES, type Balancer, type BalancerUpstream, type PreferenceRing
} from '../../src/gateway/balancers/index.js'

const vectors = JSON.parse(readFileSync(new URL('../../../test/fixtures/lb-vectors.json', import.meta.url), 'utf8')) as {
  smooth_weighted_round_robin: { cases: Array<{ weights: Record<string, number>, picks: string[] }> }
}

const UNIVERSE = Array.from({ length: 12 }, (_, index) => `u${index}`)
const upstreamsOf = (weights: Record<string, number>): BalancerUpstream[] => Object.entries(weights).map(([id, weight]) => ({ id, weight }))
const withIds = (weights: readonly number[]): BalancerUpstream[] => weights.map((weight, index) => ({ id: `u${index}`, weight }))
const picks = (balancer: Balancer, count: number, avoid?: ReadonlySet<string>): Array<string | null> =>
  Array.from({ length: count }, () => balancer.pick({}, avoid))

/**
 * nginx's loop, transcribed from ngx_http_upstream_get_peer: the oracle. An avoided peer is
 * skipped before its current weight grows and before its weight joins the total, as nginx skips
 * a peer in the request's `tried` bitmap. A new set (ids, order or weights) resets every current
 * weight to 0; the same set again changes nothing.
 */
class NaiveSmoothWeighted {
  private list: BalancerUpstream[] = []
  private current: number[] = []

  setUpstreams (list: readonly BalancerUpstream[]): void {
    if (list.length === this.list.length && list.every((upstream, index) => upstream.id === this.list[index].id && upstream.weight === this.list[index].weight)) return
    this.list = list.map((upstream) => ({ ...upstream }))
    this.current = list.map(() => 0)
  }

  pick (avoid?: ReadonlySet<string>): string | null {
    let best = -1
    let total = 0
    for (let index = 0; index < this.list.length; index++) {
      if (avoid?.has(this.list[index].id) === true) continue
      this.current[index] += this.list[index].weight
      total += this.list[index].weight
      if (best < 0 || this.current[index] > this.current[best]) best = index
    }
    if (best < 0) return null
    this.current[best] -= total
    return this.list[best].id
  }
}

/** Least connections by an O(n) scan, with the same order: load, then older last pick, then configuration order. */
class NaiveLeastConnections {
  private list: BalancerUpstream[] = []
  private readonly counts = new Map<string, number>()
  private readonly lastPicked = new Map<string, number>()
  private clock = 0

  constructor (private readonly weighted: boolean) {}

  setUpstreams (list: readonly BalancerUpstream[]): void { this.list = list.slice() }
  started (id: string): void { this.counts.set(id, this.inFlight(id) + 1) }
  finished (id: string): void { this.counts.set(id, Math.max(0, this.inFlight(id) - 1)) }
  inFlight (id: string): number { return this.counts.get(id) ?? 0 }

  pick (avoid?: ReadonlySet<string>): string | null {
    let best: BalancerUpstream | null = null
    for (const upstream of this.list) {
      if (avoid?.has(upstream.id) === true) continue
      if (best === null || this.before(upstream, best)) best = upstream
    }
    if (best === null) return null
    this.lastPicked.set(best.id, ++this.clock)
    return best.id
  }

  /** a comes strictly before b (a is later in configuration order than the incumbent b, so ties keep b). */
  private before (a: BalancerUpstream, b: BalancerUpstream): boolean {
    const [left, right] = this.weighted
      ? [(this.inFlight(a.id) + 1) * b.weight, (this.inFlight(b.id) + 1) * a.weight]
      : [this.inFlight(a.id), this.inFlight(b.id)]
    if (left !== right) return left < right
    return (this.lastPicked.get(a.id) ?? 0) < (this.lastPicked.get(b.id) ?? 0)
  }
}

const weightArb = fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constantFrom(1, 2, 5)) // repeats are the interesting case
const listArb = fc.uniqueArray(fc.constantFrom(...UNIVERSE), { maxLength: 12 }).chain((ids) =>
  fc.array(weightArb, { minLength: ids.length, maxLength: ids.length }).map((weights) => ids.map((id, index) => ({ id, weight: weights[index] }))))
const avoidArb = fc.oneof(
  { arbitrary: fc.constant<string[]>([]), weight: 3 },
  { arbitrary: fc.subarray(UNIVERSE, { maxLength: 5 }), weight: 2 },
  { arbitrary: fc.subarray(UNIVERSE, { minLength: 10 }), weight: 1 })

type SwrrStep = { kind: 'pick', avoid: string[] } | { kind: 'set', list: BalancerUpstream[] } | { kind: 'same' }
const swrrStepArb: fc.Arbitrary<SwrrStep> = fc.oneof(
  { arbitrary: avoidArb.map((avoid) => ({ kind: 'pick' as const, avoid })), weight: 20 },
  { arbitrary: listArb.map((list) => ({ kind: 'set' as const, list })), weight: 1 },
  { arbitrary: fc.constant({ kind: 'same' as const }), weight: 1 })

describe('weighted round robin (nginx smooth weighted round robin)', () => {
  it('gives nginx\'s published sequence, period after period', () => {
    for (const { weights, picks: expected } of vectors.smooth_weighted_round_robin.cases) {
      const balancer = createBalancer('weighted-round-robin', { random: createPrng(1) })
      balancer.setUpstreams(upstreamsOf(weights))
      assert.deepEqual(picks(balancer, expected.length * 3), [...expected, ...expected, ...expected])
    }
  })

  it('makes the same picks as nginx\'s O(n) loop, across avoid sets and new upstream sets', () => {
    fc.assert(fc.property(listArb, fc.array(swrrStepArb, { maxLength: 300 }), (initial, steps) => {
      const fast = new SmoothWeightedBalancer()
      const naive = new NaiveSmoothWeighted()
      let list = initial
      fast.setUpstreams(list)
      naive.setUpstreams(list)
      for (const step of steps) {
        if (step.kind === 'pick') {
          const avoid = new Set(step.avoid)
          assert.equal(fast.pick({}, avoid), naive.pick(avoid))
        } else {
          if (step.kind === 'set') list = step.list
          const copy = list.map((upstream) => ({ ...upstream })) // 'same': an equal list, not the same array
          fast.setUpstreams(copy)
          naive.setUpstreams(copy)
        }
      }
    }), { numRuns: 300 })
  })

  it('stays equal to the oracle over a long run (past the offset rebase every 2^16 picks)', () => {
    const list = withIds([7, 7, 3, 1, 7, 3])
    const fast = new SmoothWeightedBalancer()
    const naive = new NaiveSmoothWeighted()
    fast.setUpstreams(list)
    naive.setUpstreams(list)
    const prng = createPrng(7)
    for (let step = 0; step < 200_000; step++) {
      const avoid = prng.chance(0.05) ? new Set([`u${prng.int(0, 5)}`]) : undefined
      if (fast.pick({}, avoid) !== naive.pick(avoid)) assert.fail(`differs from nginx's loop at pick ${step}`)
    }
  })

  it('holds every upstream exactly its weight times in every window of Σw picks, at every offset', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 12 }), (weights) => {
      const total = weights.reduce((sum, weight) => sum + weight, 0)
      const balancer = new SmoothWeightedBalancer()
      balancer.setUpstreams(withIds(weights))
      const sequence = picks(balancer, 3 * total).map((id) => Number((id as string).slice(1)))
      const counts = weights.map(() => 0)
      for (let index = 0; index < total; index++) counts[sequence[index]]++
      for (let start = 0; ; start++) {
        if (counts.some((count, index) => count !== weights[index])) assert.fail(`window at offset ${start}: ${counts} against weights ${weights}`)
        if (start + total >= sequence.length) break
        counts[sequence[start]]--
        counts[sequence[start + total]]++
      }
    }), { numRuns: 300 })
  })

  /*
   * Smoothness. After m picks, with T = Σw and p_i(m) the picks of upstream i, nginx's current
   * weight is c_i = m·w_i − T·p_i(m), so the deviation from the ideal share is
   * p_i(m) − m·w_i/T = −c_i/T.
   *
   * Over-picking is bounded by 1 − 1/n, and this is tight. Proof: the winner has the largest
   * current weight after the increments, and those sum to T (the currents sum to 0 before a pick,
   * an invariant), so it is at least T/n; after subtracting T it is at least −T(1 − 1/n), and a
   * current weight only grows until the next win. Equal weights reach it at the first pick.
   * Consequence: after T picks every c_i = T(w_i − p_i) > −T forces p_i ≤ w_i, and Σp_i = T forces
   * p_i = w_i: all currents are back at 0, the sequence is periodic with period T, and so every
   * window of T consecutive picks is a rotation of one period (the property above).
   *
   * Under-picking is NOT bounded by 1, and grows slowly with n. Exhaustive search over weight
   * vectors made of up to four distinct values plus hill-climbing found the worst case in this
   * test's domain (n ≤ 12, weights ≤ 20) at n = 12: weights [1×6, 3×3, 19×3] leave an upstream
   * 101/72 ≈ 1.403 picks behind (pinned below). The worst found grows like log n: 0.82 (n = 3),
   * 1.06 (5), 1.28 (8), 1.40 (12), 1.51 (20), 1.65 (40), 1.71 (60), with [a × 1, b × H] families.
   * The only proof we have is the weak −c_i = Σ_{j≠i} c_j ≥ −(n − 1)(1 − 1/n)T, so the bound
   * asserted here, 1.5 for this domain, rests on that search: it sits above the worst case found
   * by the margin a 13th upstream would add, not by a blanket loosening.
   */
  it('keeps every prefix within 1 − 1/n picks above and 1.5 picks below the ideal share', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 12 }), (weights) => {
      const n = weights.length
      const total = weights.reduce((sum, weight) => sum + weight, 0)
      const balancer = new SmoothWeightedBalancer()
      balancer.setUpstreams(withIds(weights))
      const counts = weights.map(() => 0)
      for (let m = 1; m <= 2 * total; m++) {
        counts[Number((balancer.pick({}) as string).slice(1))]++
        for (let i = 0; i < n; i++) {
          const ahead = total * counts[i] - m * weights[i] // T · (p_i − m·w_i/T), exact in integers
          if (n * ahead > (n - 1) * total) assert.fail(`upstream ${i} ahead by ${ahead}/${total} after ${m} picks, weights ${weights}`)
          if (-2 * ahead >= 3 * total) assert.fail(`upstream ${i} behind by ${-ahead}/${total} after ${m} picks, weights ${weights}`)
        }
      }
    }), { numRuns: 300 })
  })

  it('reaches both bounds\' witnesses: 1 − 1/n ahead with equal weights, 101/72 behind with [1×6, 3×3, 19×3]', () => {
    const equal = new SmoothWeightedBalancer()
    equal.setUpstreams(withIds([4, 4, 4]))
    equal.pick({})
    assert.deepEqual(equal.currentWeights(), [4 - 12, 4, 4]) // u0 ahead by 8/12 = 2/3 = 1 − 1/3
    const weights = [1, 1, 1, 1, 1, 1, 3, 3, 3, 19, 19, 19]
    const worst = new SmoothWeightedBalancer()
    worst.setUpstreams(withIds(weights))
    let behind = 0
    for (let m = 0; m < 72; m++) {
      worst.pick({})
      behind = Math.max(behind, ...worst.currentWeights())
    }
    assert.equal(behind, 101)
  })

  it('resets current weights only when the set or a weight changes, and skips avoided upstreams', () => {
    const balancer = new SmoothWeightedBalancer()
    balancer.setUpstreams(upstreamsOf({ a: 5, b: 1, c: 1 }))
    assert.deepEqual(picks(balancer, 3), ['a', 'a', 'b'])
    balancer.setUpstreams(upstreamsOf({ a: 5, b: 1, c: 1 }))
    assert.deepEqual(picks(balancer, 4), ['a', 'c', 'a', 'a'])
    balancer.setUpstreams(upstreamsOf({ a: 5, b: 1, c: 2 }))
    assert.deepEqual(balancer.currentWeights(), [0, 0, 0])
    assert.equal(balancer.pick({}, new Set(['a'])), 'c')
    assert.equal(balancer.pick({}, new Set(['a', 'b', 'c'])), null)
    balancer.setUpstreams([])
    assert.equal(balancer.pick({}), null)
  })
})

describe('round robin', () => {
  it('cycles in configuration order, ignoring weights, and skips avoided upstreams', () => {
    const balancer = createBalancer('round-robin', { random: createPrng(1) })
    balancer.setUpstreams(upstreamsOf({ a: 5, b: 1, c: 1 }))
    assert.deepEqual(picks(balancer, 7), ['a', 'b', 'c', 'a', 'b', 'c', 'a'])
    assert.deepEqual(picks(balancer, 4, new Set(['c'])), ['b', 'a', 'b', 'a'])
    assert.equal(balancer.pick({}, new Set(['a', 'b', 'c'])), null)
    assert.equal(balancer.pick({}), 'b')
  })

  it('keeps its place when the set changes instead of restarting at the first upstream', () => {
    const balancer = new RoundRobinBalancer()
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1, c: 1, d: 1 }))
    assert.deepEqual(picks(balancer, 2), ['a', 'b'])
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1, c: 1, d: 1, e: 1 })) // e joins; b is still there
    assert.equal(balancer.pick({}), 'c')
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1, d: 1, e: 1 })) // c, picked last, leaves
    assert.equal(balancer.pick({}), 'd')
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1, c: 1 })) // d and e, which followed, leave
    assert.equal(balancer.pick({}), 'a')
    balancer.setUpstreams([])
    assert.equal(balancer.pick({}), null)
  })

  it('gives every upstream the same number of picks, whatever the set changes', () => {
    fc.assert(fc.property(fc.array(listArb, { minLength: 1, maxLength: 5 }), (lists) => {
      const balancer = new RoundRobinBalancer()
      for (const list of lists) {
        balancer.setUpstreams(list)
        const seen = new Map<string, number>()
        for (const id of picks(balancer, list.length * 3)) seen.set(id as string, (seen.get(id as string) ?? 0) + 1)
        assert.deepEqual([...seen.values()].filter((count) => count !== 3), [])
        assert.equal(seen.size, list.length)
      }
    }), { numRuns: 200 })
  })
})

describe('least connections', () => {
  it('picks the fewest in flight, rotates ties by last pick, and follows started/finished', () => {
    const balancer = createBalancer('least-connections', { random: createPrng(1) })
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 9, c: 1 }))
    assert.deepEqual(picks(balancer, 6), ['a', 'b', 'c', 'a', 'b', 'c']) // idle: take turns, weights ignored
    balancer.started('a')
    balancer.started('a')
    balancer.started('b')
    assert.equal(balancer.pick({}), 'c')
    assert.equal(balancer.pick({}), 'c')
    balancer.started('c')
    balancer.started('c')
    assert.equal(balancer.pick({}), 'b')
    assert.equal(balancer.pick({}, new Set(['b'])), 'a') // a and c both at 2; a was picked longer ago
    balancer.finished('a')
    balancer.finished('a')
    balancer.finished('a') // never below 0
    assert.equal(balancer.inFlight('a'), 0)
    assert.equal(balancer.pick({}), 'a')
    assert.equal(balancer.pick({}, new Set(['a', 'b', 'c'])), null)
  })

  it('keeps counts across eligible sets, and counts down ids that are not eligible', () => {
    const balancer = new LeastConnectionsBalancer(false)
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1 }))
    balancer.started('a')
    balancer.started('a')
    balancer.setUpstreams(upstreamsOf({ b: 1 }))
    balancer.finished('a')
    assert.equal(balancer.inFlight('a'), 1)
    balancer.started('b')
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1 }))
    assert.equal(balancer.pick({}), 'a') // 1 against 1; a never picked
    balancer.started('a')
    assert.equal(balancer.pick({}), 'b')
  })

  it('weighs by (inFlight + 1) / weight when weighted', () => {
    const balancer = createBalancer('weighted-least-connections', { random: createPrng(1) })
    balancer.setUpstreams(upstreamsOf({ a: 3, b: 1 }))
    assert.equal(balancer.pick({}), 'a') // 1/3 < 1/1
    balancer.started('a')
    balancer.started('a')
    assert.equal(balancer.pick({}), 'b') // 3/3 = 1/1: tie, b picked less recently
    assert.equal(balancer.pick({}), 'a') // tie again, a is now the older pick
    balancer.started('a')
    assert.equal(balancer.pick({}), 'b') // 4/3 > 1/1
    balancer.started('b')
    assert.equal(balancer.pick({}), 'a') // 4/3 < 2/1
  })

  for (const weighted of [false, true]) {
    it(`matches an O(n) scan over random picks, starts, finishes and sets (${weighted ? 'weighted' : 'plain'})`, () => {
      type Step = { kind: 'pick', avoid: string[] } | { kind: 'started' | 'finished', id: string } | { kind: 'set', list: BalancerUpstream[] }
      const stepArb: fc.Arbitrary<Step> = fc.oneof(
        { arbitrary: avoidArb.map((avoid) => ({ kind: 'pick' as const, avoid })), weight: 8 },
        { arbitrary: fc.constantFrom(...UNIVERSE).map((id) => ({ kind: 'started' as const, id })), weight: 6 },
        { arbitrary: fc.constantFrom(...UNIVERSE).map((id) => ({ kind: 'finished' as const, id })), weight: 5 },
        { arbitrary: listArb.map((list) => ({ kind: 'set' as const, list })), weight: 1 })
      fc.assert(fc.property(listArb, fc.array(stepArb, { maxLength: 300 }), (initial, steps) => {
        const fast = new LeastConnectionsBalancer(weighted)
        const naive = new NaiveLeastConnections(weighted)
        fast.setUpstreams(initial)
        naive.setUpstreams(initial)
        for (const step of steps) {
          if (step.kind === 'pick') {
            const avoid = new Set(step.avoid)
            assert.equal(fast.pick({}, avoid), naive.pick(avoid))
          } else if (step.kind === 'set') {
            fast.setUpstreams(step.list)
            naive.setUpstreams(step.list)
          } else {
            fast[step.kind](step.id)
            naive[step.kind](step.id)
            assert.equal(fast.inFlight(step.id), naive.inFlight(step.id))
          }
        }
      }), { numRuns: 300 })
    })
  }
})

describe('power of two choices', () => {
  it('with two upstreams always picks the less loaded one (both are always the candidates)', () => {
    const balancer = createBalancer('p2c', { random: createPrng(11) })
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1 }))
    for (let request = 0; request < 5; request++) balancer.started('a')
    assert.deepEqual(new Set(picks(balancer, 500)), new Set(['b']))
    for (let request = 0; request < 10; request++) balancer.started('b')
    assert.deepEqual(new Set(picks(balancer, 500)), new Set(['a']))
  })

  it('never picks the most loaded of several upstreams, and picks the least loaded most often', () => {
    const balancer = new P2cBalancer({ random: createPrng(12) })
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1, c: 1, d: 1, e: 1 }))
    const loads = { a: 3, b: 0, c: 8, d: 1, e: 5 }
    for (const [id, load] of Object.entries(loads)) for (let request = 0; request < load; request++) balancer.started(id)
    const seen = new Map<string, number>()
    for (const id of picks(balancer, 10_000)) seen.set(id as string, (seen.get(id as string) ?? 0) + 1)
    assert.equal(seen.get('c'), undefined)
    // The least loaded wins whenever drawn: 1 − P(not among two distinct uniform draws) = 2/5.
    const bCount = seen.get('b') ?? 0
    assert.ok(Math.abs(bCount - 4_000) < 5 * Math.sqrt(10_000 * 0.4 * 0.6), `b picked ${bCount} times`)
    // And the second most loaded only against the most loaded: P = 2 / (5·4) = 1/10.
    const eCount = seen.get('e') ?? 0
    assert.ok(Math.abs(eCount - 1_000) < 5 * Math.sqrt(10_000 * 0.1 * 0.9), `e picked ${eCount} times`)
  })

  it('draws the first candidate in proportion to weight (3:1 → 3/4, within 5 standard deviations)', () => {
    const balancer = new P2cBalancer({ random: createPrng(13), load: () => 0 }) // equal loads: the first drawn wins
    balancer.setUpstreams(upstreamsOf({ a: 3, b: 1 }))
    const trials = 20_000
    const aCount = picks(balancer, trials).filter((id) => id === 'a').length
    assert.ok(Math.abs(aCount - trials * 0.75) < 5 * Math.sqrt(trials * 0.75 * 0.25), `a first drawn ${aCount} of ${trials}`)
  })

  it('builds an alias table that draws each index in proportion to its weight', () => {
    const weights = [1, 2, 3, 4, 0.5]
    const total = weights.reduce((sum, weight) => sum + weight, 0)
    const table = new AliasTable(weights)
    const random = createPrng(14)
    const counts = weights.map(() => 0)
    const trials = 50_000
    for (let draw = 0; draw < trials; draw++) counts[table.draw(random)]++
    for (const [index, weight] of weights.entries()) {
      const p = weight / total
      assert.ok(Math.abs(counts[index] - trials * p) < 5 * Math.sqrt(trials * p * (1 - p)), `index ${index}: ${counts[index]} draws`)
    }
  })

  it('respects avoid, down to one upstream or none', () => {
    const balancer = new P2cBalancer({ random: createPrng(15) })
    balancer.setUpstreams(upstreamsOf({ a: 100, b: 1, c: 1, d: 1 }))
    assert.ok(picks(balancer, 2_000, new Set(['a'])).every((id) => id !== 'a'))
    assert.ok(picks(balancer, 200, new Set(['b', 'c'])).every((id) => id === 'a' || id === 'd'))
    assert.deepEqual(new Set(picks(balancer, 50, new Set(['a', 'b', 'c']))), new Set(['d']))
    assert.equal(balancer.pick({}, new Set(['a', 'b', 'c', 'd'])), null)
    balancer.setUpstreams([])
    assert.equal(balancer.pick({}), null)
    balancer.setUpstreams(upstreamsOf({ z: 1 }))
    assert.equal(balancer.pick({}), 'z')
  })

  it('uses the load hook, weighted, and still finds a second candidate when one upstream holds nearly all the weight', () => {
    const latency: Record<string, number> = { a: 100, b: 10 }
    const asked: Array<[string, number]> = []
    const balancer = new P2cBalancer({ random: createPrng(16), load: (id, inFlight) => { asked.push([id, inFlight]); return latency[id] } })
    balancer.setUpstreams(upstreamsOf({ a: 1_000_000, b: 1 }))
    balancer.started('b')
    // a: 100 / 1e6 beats b: 10 / 1 — the load is divided by the weight.
    assert.deepEqual(new Set(picks(balancer, 100)), new Set(['a']))
    assert.ok(asked.some(([id, inFlight]) => id === 'b' && inFlight === 1))
    balancer.setUpstreams(upstreamsOf({ a: 1, b: 1_000_000 }))
    assert.deepEqual(new Set(picks(balancer, 100)), new Set(['b'])) // b drawn first; a comes from the fallback, and loses
  })
})

describe('key affinity', () => {
  const replicas: Record<string, string[]> = { k1: ['n1', 'n2', 'n3'], k2: ['n3', 'n1', 'n2'] }
  const ring: PreferenceRing = { preferenceList: (key) => replicas[key] ?? ['n9'] }
  const upstreamOf = (nodeId: string): string | undefined => nodeId === 'n9' ? undefined : `up-${nodeId}`
  const three = upstreamsOf({ 'up-n1': 1, 'up-n2': 1, 'up-n3': 1 })

  it('sends a key to the first replica whose upstream is eligible and not avoided', () => {
    const balancer = createBalancer('key-affinity', { random: createPrng(1), ring: () => ring, upstreamOf })
    balancer.setUpstreams(three)
    assert.equal(balancer.pick({ key: 'k1' }), 'up-n1')
    assert.equal(balancer.pick({ key: 'k2' }), 'up-n3')
    assert.equal(balancer.pick({ key: 'k1' }, new Set(['up-n1'])), 'up-n2')
    balancer.setUpstreams(upstreamsOf({ 'up-n2': 1, 'up-n3': 1 }))
    assert.equal(balancer.pick({ key: 'k1' }), 'up-n2')
    assert.equal(balancer.pick({ key: 'k2' }, new Set(['up-n3'])), 'up-n2')
    assert.equal(balancer.pick({ key: 'k1' }, new Set(['up-n2', 'up-n3'])), null)
  })

  it('falls back to Maglev over the eligible upstreams without a ring, or when no replica is usable', () => {
    let current: PreferenceRing | null = null
    const balancer = new KeyAffinityBalancer({ random: createPrng(1), ring: () => current, upstreamOf, maglevTableSize: 10_007 })
    const eligible = upstreamsOf({ x: 2, y: 1, z: 1, 'up-n1': 1 })
    balancer.setUpstreams(eligible)
    const table = new MaglevTable(eligible, 10_007)
    const keys = Array.from({ length: 200 }, (_, index) => `key-${index}`)
    for (const key of keys) assert.equal(balancer.pick({ key }), table.lookup(key))
    current = ring
    assert.equal(balancer.pick({ key: 'k1' }), 'up-n1')
    assert.equal(balancer.pick({ key: 'k1' }, new Set(['up-n1'])), nextOwner(table, 'k1', new Set(['up-n1'])))
    assert.equal(balancer.pick({ key: 'k9' }), table.lookup('k9')) // its one replica has no upstream
    // Without a ring, a retry takes the next table slot's owner that is not avoided: stable, and never avoided.
    current = null
    for (const key of keys) {
      const avoid = new Set([table.lookup(key) as string])
      const second = balancer.pick({ key }, avoid)
      assert.equal(second, nextOwner(table, key, avoid))
      assert.equal(balancer.pick({ key }, avoid), second)
    }
    assert.equal(balancer.pick({ key: 'k1' }, new Set(['x', 'y', 'z', 'up-n1'])), null)
  })

  it('sends requests without a key to power of two choices, over the shared in-flight counts', () => {
    const balancer = new KeyAffinityBalancer({ random: createPrng(2), ring: () => ring, upstreamOf })
    balancer.setUpstreams(upstreamsOf({ 'up-n1': 1, 'up-n2': 1 }))
    for (let request = 0; request < 3; request++) balancer.started(balancer.pick({ key: 'k1' }) as string)
    assert.equal(balancer.inFlight('up-n1'), 3)
    assert.deepEqual(new Set(picks(balancer, 200)), new Set(['up-n2'])) // p2c with two: the less loaded
    assert.equal(balancer.pick({ key: 'k1' }), 'up-n1') // the key still goes to its replica
    balancer.finished('up-n1')
    assert.equal(balancer.inFlight('up-n1'), 2)
  })
})

/** The owner of the first slot at or after the key's whose owner is not avoided. */
function nextOwner (table: MaglevTable, key: string, avoid: ReadonlySet<string>): string | null {
  const slot = table.slotOf(key)
  for (let probe = 0; probe < table.size; probe++) {
    const owner = table.at(slot + probe)
    if (owner !== null && !avoid.has(owner)) return owner
  }
  return null
}

describe('every strategy', () => {
  it('refuses bad weights and repeated ids, keeps in-flight counts, and never returns an avoided id', () => {
    for (const name of STRATEGY_NAMES) {
      const balancer = createBalancer(name, { random: createPrng(3), maglevTableSize: 1_009 })
      assert.equal(balancer.strategy, name)
      for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.throws(() => { balancer.setUpstreams([{ id: 'a', weight }]) }, RangeError)
      }
      assert.throws(() => { balancer.setUpstreams([{ id: 'a', weight: 1 }, { id: 'a', weight: 2 }]) }, RangeError)
      assert.equal(balancer.pick({}), null)
      assert.equal(balancer.pick({ key: 'k' }), null)
      balancer.setUpstreams(upstreamsOf({ a: 1, b: 2.5, c: 0.1 }))
      const prng = createPrng(4)
      for (let request = 0; request < 300; request++) {
        const avoid = new Set(['a', 'b', 'c'].filter(() => prng.chance(0.4)))
        const id = balancer.pick(prng.chance(0.5) ? { key: `k${request}` } : {}, avoid)
        if (avoid.size === 3) assert.equal(id, null)
        else assert.ok(id !== null && ['a', 'b', 'c'].includes(id) && !avoid.has(id), `${name} picked ${id}`)
      }
      balancer.started('a')
      balancer.started('a')
      balancer.setUpstreams(upstreamsOf({ b: 1 }))
      balancer.finished('a')
      balancer.setUpstreams(upstreamsOf({ a: 1, b: 1 }))
      assert.equal(balancer.inFlight('a'), 1)
      balancer.finished('a')
      balancer.finished('a')
      assert.equal(balancer.inFlight('a'), 0)
    }
  })
})
