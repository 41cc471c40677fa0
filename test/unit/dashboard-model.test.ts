/**
 * The dashboard's arithmetic (src/gateway/dashboard-model.ts): Prometheus-style histogram
 * quantiles (hand-computed cases and a port of Prometheus' `bucketQuantile` as an oracle), store
 * samples read from prom-client's JSON, rates, transactions per second and merged overlay links;
 * and the admin body checks of src/gateway/dashboard.ts (`parseGroups`, `parseLinkQuality`).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Counter, Histogram, Registry } from 'prom-client'
import { createPrng } from '../../src/core/index.js'
import {
  addStoreSample, counterRate, emptyStoreSample, histogramQuantile, mergeLinks, metricValue, storeFigures, transactionsPerSecond,
  type LevelSample, type MetricFamilyJson, type StoreSample
} from '../../src/gateway/dashboard-model.js'
import { parseGroups, parseLinkQuality } from '../../src/gateway/dashboard.js'

/** The buckets the node's API declares for `synod_store_request_seconds` (src/node/store-api.ts). */
const STORE_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]

function closeTo (actual: number | null, expected: number, message?: string): void {
  assert.ok(actual !== null, message ?? `expected ${expected}, got null`)
  assert.ok(Math.abs(actual - expected) < 1e-9, message ?? `expected ${expected}, got ${actual}`)
}

/** One node's metrics registry with the store histogram, as the node registers it. */
function storeRegistry (): { registry: Registry, histogram: Histogram<'op' | 'level' | 'outcome'> } {
  const registry = new Registry()
  const histogram = new Histogram({ name: 'synod_store_request_seconds', help: 'store requests', labelNames: ['op', 'level', 'outcome'], buckets: STORE_BUCKETS, registers: [registry] })
  return { registry, histogram }
}

async function metricsJson (registry: Registry): Promise<MetricFamilyJson[]> {
  return await registry.getMetricsAsJSON() as unknown as MetricFamilyJson[]
}

function observe (histogram: Histogram<'op' | 'level' | 'outcome'>, labels: { op: string, level: string, outcome: string }, seconds: number, times = 1): void {
  for (let i = 0; i < times; i++) histogram.observe(labels, seconds)
}

/** Cumulative buckets over STORE_BUCKETS and +Inf from the counts at each bound. */
function cumulative (counts: readonly number[]): Array<[number, number]> {
  return [...STORE_BUCKETS, Infinity].map((le, i) => [le, counts[i] as number])
}

/**
 * Prometheus' `bucketQuantile` (promql/quantile.go) for monotonic buckets ending in +Inf, written
 * out independently as an oracle.
 */
function prometheusBucketQuantile (q: number, buckets: ReadonlyArray<[number, number]>): number | null {
  const observations = (buckets[buckets.length - 1] as [number, number])[1]
  if (observations === 0) return null
  let rank = q * observations
  let b = buckets.length - 1
  for (let i = 0; i < buckets.length - 1; i++) {
    if ((buckets[i] as [number, number])[1] >= rank) { b = i; break }
  }
  if (b === buckets.length - 1) return (buckets[buckets.length - 2] as [number, number])[0]
  const [bucketEnd, bucketCount] = buckets[b] as [number, number]
  let bucketStart = 0
  let count = bucketCount
  if (b > 0) {
    const [previousEnd, previousCount] = buckets[b - 1] as [number, number]
    bucketStart = previousEnd
    count -= previousCount
    rank -= previousCount
  }
  return bucketStart + (bucketEnd - bucketStart) * (rank / count)
}

describe('histogramQuantile', () => {
  const layout: Array<[number, number]> = [[0.1, 10], [0.2, 30], [0.5, 40], [Infinity, 40]]

  it('interpolates linearly inside the bucket the rank falls in', () => {
    closeTo(histogramQuantile(0.1, [], layout), 0.04) // rank 4 in (0, 0.1]: 0.1 * 4/10
    closeTo(histogramQuantile(0.25, [], layout), 0.1) // rank 10: the top of the first bucket
    closeTo(histogramQuantile(0.5, [], layout), 0.15) // rank 20 in (0.1, 0.2]: 0.1 + 0.1 * 10/20
    closeTo(histogramQuantile(0.9, [], layout), 0.38) // rank 36 in (0.2, 0.5]: 0.2 + 0.3 * 6/10
    closeTo(histogramQuantile(1, [], layout), 0.5) // rank 40: the highest bucket holding an observation
  })

  it('skips empty buckets and interpolates from the previous bound', () => {
    const sparse: Array<[number, number]> = [[1, 0], [2, 0], [4, 8], [Infinity, 8]]
    closeTo(histogramQuantile(0.5, [], sparse), 3) // rank 4 in (2, 4]: 2 + 2 * 4/8
    closeTo(histogramQuantile(0.125, [], sparse), 2.25)
  })

  it('answers the highest finite bound when the rank falls in +Inf', () => {
    const tail: Array<[number, number]> = [[1, 5], [2, 5], [Infinity, 10]]
    assert.equal(histogramQuantile(0.99, [], tail), 2)
    assert.equal(histogramQuantile(0.51, [], tail), 2)
    closeTo(histogramQuantile(0.5, [], tail), 1) // rank 5: top of the first bucket
    assert.equal(histogramQuantile(0.5, [], [[Infinity, 3]]), 0, 'with only +Inf the lower bound 0 is all there is')
  })

  it('works on the difference between the two cumulative lists', () => {
    const before: Array<[number, number]> = [[0.1, 100], [0.2, 100], [Infinity, 100]]
    const after: Array<[number, number]> = [[0.1, 100], [0.2, 110], [Infinity, 120]]
    // Deltas: 0 in (0, 0.1], 10 in (0.1, 0.2], 10 above; 20 in all.
    closeTo(histogramQuantile(0.25, before, after), 0.15) // rank 5 in (0.1, 0.2]: 0.1 + 0.1 * 5/10
    assert.equal(histogramQuantile(0.75, before, after), 0.2) // rank 15 in +Inf
    // Without the deltas the answer would be 0.1 * 30/120 = 0.025: make sure it is not.
    closeTo(histogramQuantile(0.25, [], after), 0.03)
  })

  it('treats a bound missing from the earlier list as zero and clamps negative deltas', () => {
    closeTo(histogramQuantile(0.5, [[0.1, 4]], [[0.1, 4], [0.2, 8], [Infinity, 8]]), 0.15) // deltas 0, 8: rank 4 -> 0.1 + 0.1 * 4/8
    assert.equal(histogramQuantile(0.5, [[0.1, 9], [Infinity, 9]], [[0.1, 2], [Infinity, 2]]), null, 'a counter reset leaves nothing to measure')
  })

  it('returns null when nothing was observed', () => {
    assert.equal(histogramQuantile(0.5, [], []), null)
    assert.equal(histogramQuantile(0.5, [], [[0.1, 0], [Infinity, 0]]), null)
    assert.equal(histogramQuantile(0.99, layout, layout), null)
  })

  it('agrees with Prometheus bucketQuantile on random histograms', () => {
    const prng = createPrng(4242)
    for (let round = 0; round < 500; round++) {
      const bounds = [...new Set(Array.from({ length: prng.int(1, 8) }, () => prng.int(1, 1_000) / 100))].sort((x, y) => x - y)
      let running = 0
      const after: Array<[number, number]> = [...bounds, Infinity].map((le) => { running += prng.int(0, 20); return [le, running] })
      if (running === 0) continue
      const q = prng.pick([0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 1, prng.float() || 0.5])
      const expected = prometheusBucketQuantile(q, after)
      const actual = histogramQuantile(q, [], after)
      assert.ok(expected !== null)
      closeTo(actual, expected, `q=${q} buckets=${JSON.stringify(after)}: got ${actual}, Prometheus ${expected}`)
    }
  })
})

describe('addStoreSample', () => {
  it('sums counts, counts non-ok outcomes as errors and merges buckets across two nodes', async () => {
    const node1 = storeRegistry()
    observe(node1.histogram, { op: 'get', level: 'strong', outcome: 'ok' }, 0.0015, 3)
    observe(node1.histogram, { op: 'put', level: 'strong', outcome: 'ok' }, 0.03)
    observe(node1.histogram, { op: 'get', level: 'strong', outcome: 'STORE_TIMEOUT' }, 0.7)
    observe(node1.histogram, { op: 'get', level: 'causal', outcome: 'ok' }, 0.004, 2)
    const node2 = storeRegistry()
    observe(node2.histogram, { op: 'put', level: 'strong', outcome: 'ok' }, 0.0005, 2)
    observe(node2.histogram, { op: 'get', level: 'eventual', outcome: 'error' }, 0.002)
    observe(node2.histogram, { op: 'get', level: 'bogus', outcome: 'ok' }, 0.001, 5)
    new Counter({ name: 'synod_other_total', help: 'unrelated', registers: [node2.registry] }).inc(9)

    const into = emptyStoreSample()
    const returned = addStoreSample(into, await metricsJson(node1.registry))
    assert.equal(returned, into, 'adds into the sample it is given')
    addStoreSample(into, await metricsJson(node2.registry))

    assert.deepEqual(into.strong, {
      count: 7,
      errors: 1,
      //                 .001 .002 .005 .01 .02 .05 .1 .2 .5  1  2  5 +Inf
      buckets: cumulative([2, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7])
    })
    assert.deepEqual(into.causal, { count: 2, errors: 0, buckets: cumulative([0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]) })
    assert.deepEqual(into.eventual, { count: 1, errors: 1, buckets: cumulative([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]) })
  })

  it('leaves the sample alone when the node has no store histogram', () => {
    const sample = emptyStoreSample()
    addStoreSample(sample, [{ name: 'synod_other_total', type: 'counter', values: [{ labels: {}, value: 3 }] }])
    assert.deepEqual(sample, emptyStoreSample())
  })

  it('reads hand-written JSON with string bounds, skipping bad bounds and unknown levels', () => {
    const sample = addStoreSample(emptyStoreSample(), [{
      name: 'synod_store_request_seconds',
      type: 'histogram',
      values: [
        { metricName: 'synod_store_request_seconds_bucket', labels: { op: 'get', level: 'strong', outcome: 'ok', le: '0.5' }, value: 1 },
        { metricName: 'synod_store_request_seconds_bucket', labels: { op: 'get', level: 'strong', outcome: 'ok', le: 'nope' }, value: 50 },
        { metricName: 'synod_store_request_seconds_bucket', labels: { op: 'get', level: 'strong', outcome: 'ok', le: '+Inf' }, value: 2 },
        { metricName: 'synod_store_request_seconds_bucket', labels: { op: 'get', level: 'strong', outcome: 'ok', le: 0.1 }, value: 0 },
        { metricName: 'synod_store_request_seconds_sum', labels: { op: 'get', level: 'strong', outcome: 'ok' }, value: 0.9 },
        { metricName: 'synod_store_request_seconds_count', labels: { op: 'get', level: 'strong', outcome: 'ok' }, value: 2 },
        { metricName: 'synod_store_request_seconds_count', labels: { op: 'get', level: 'linearizable', outcome: 'ok' }, value: 40 }
      ]
    }])
    assert.deepEqual(sample.strong, { count: 2, errors: 0, buckets: [[0.1, 0], [0.5, 1], [Infinity, 2]] })
    assert.deepEqual(sample.causal, { count: 0, errors: 0, buckets: [] })
  })
})

describe('storeFigures', () => {
  const level = (count: number, errors: number, buckets: Array<[number, number]>): LevelSample => ({ count, errors, buckets })

  it('gives ops/s, errors/s, p50 and p99 in ms between two samples', () => {
    const before: StoreSample = { ...emptyStoreSample(), strong: level(10, 1, [[0.001, 2], [0.01, 8], [0.1, 10], [Infinity, 10]]) }
    const after: StoreSample = { ...emptyStoreSample(), strong: level(30, 5, [[0.001, 2], [0.01, 22], [0.1, 30], [Infinity, 30]]) }
    const figures = storeFigures(before, after, 2)
    // Deltas 0, 14, 6 over 20: p50 rank 10 -> 0.001 + 0.009 * 10/14; p99 rank 19.8 -> 0.01 + 0.09 * 5.8/6.
    assert.deepEqual(figures.strong, { opsPerSec: 10, errorsPerSec: 2, p50Ms: 7.43, p99Ms: 97 })
    assert.deepEqual(figures.causal, { opsPerSec: 0, errorsPerSec: 0, p50Ms: null, p99Ms: null })
    assert.deepEqual(figures.eventual, { opsPerSec: 0, errorsPerSec: 0, p50Ms: null, p99Ms: null })
  })

  it('measures what a real registry observed between two readings', async () => {
    const node = storeRegistry()
    observe(node.histogram, { op: 'get', level: 'causal', outcome: 'ok' }, 0.4, 50)
    const before = addStoreSample(emptyStoreSample(), await metricsJson(node.registry))
    observe(node.histogram, { op: 'get', level: 'causal', outcome: 'ok' }, 0.003, 10)
    observe(node.histogram, { op: 'put', level: 'causal', outcome: 'ok' }, 0.015, 10)
    const after = addStoreSample(emptyStoreSample(), await metricsJson(node.registry))
    // 20 new: 10 in (0.002, 0.005], 10 in (0.01, 0.02]. p50 rank 10 -> 5 ms; p99 rank 19.8 -> 0.01 + 0.01 * 9.8/10.
    assert.deepEqual(storeFigures(before, after, 4).causal, { opsPerSec: 5, errorsPerSec: 0, p50Ms: 5, p99Ms: 19.8 })
  })

  it('answers zero rates across a counter reset and for a zero-length interval', () => {
    const before: StoreSample = { ...emptyStoreSample(), strong: level(100, 10, [[0.01, 100], [Infinity, 100]]) }
    const after: StoreSample = { ...emptyStoreSample(), strong: level(5, 1, [[0.01, 5], [Infinity, 5]]) }
    assert.deepEqual(storeFigures(before, after, 1).strong, { opsPerSec: 0, errorsPerSec: 0, p50Ms: null, p99Ms: null })
    assert.equal(storeFigures(emptyStoreSample(), before, 0).strong.opsPerSec, 0)
  })

  it('rounds rates to two decimals', () => {
    const after: StoreSample = { ...emptyStoreSample(), eventual: level(10, 1, [[0.01, 10], [Infinity, 10]]) }
    const figures = storeFigures(emptyStoreSample(), after, 3)
    assert.equal(figures.eventual.opsPerSec, 3.33)
    assert.equal(figures.eventual.errorsPerSec, 0.33)
  })
})

describe('metricValue and counterRate', () => {
  const families: MetricFamilyJson[] = [{
    name: 'synod_frames_total',
    type: 'counter',
    values: [
      { labels: { direction: 'sent', kind: 'a' }, value: 5 },
      { labels: { direction: 'received', kind: 'a' }, value: 7 },
      { labels: { direction: 'sent', kind: 'b' }, value: 1 },
      { labels: { shard: 3 }, value: 2 }
    ]
  }]

  it('sums the values whose labels match, all of them without labels, 0 when absent', () => {
    assert.equal(metricValue(families, 'synod_frames_total'), 15)
    assert.equal(metricValue(families, 'synod_frames_total', { direction: 'sent' }), 6)
    assert.equal(metricValue(families, 'synod_frames_total', { direction: 'sent', kind: 'b' }), 1)
    assert.equal(metricValue(families, 'synod_frames_total', { shard: '3' }), 2, 'numeric label values compare as strings')
    assert.equal(metricValue(families, 'synod_frames_total', { direction: 'lost' }), 0)
    assert.equal(metricValue(families, 'synod_missing_total'), 0)
  })

  it('reads a prom-client counter', async () => {
    const registry = new Registry()
    const counter = new Counter({ name: 'synod_blocks_total', help: 'blocks', labelNames: ['engine'], registers: [registry] })
    counter.inc({ engine: 'pow' }, 4)
    counter.inc({ engine: 'pos' }, 6)
    const json = await metricsJson(registry)
    assert.equal(metricValue(json, 'synod_blocks_total'), 10)
    assert.equal(metricValue(json, 'synod_blocks_total', { engine: 'pos' }), 6)
  })

  it('gives the per-second rate, 0 across a reset or a zero interval', () => {
    assert.equal(counterRate(100, 130, 2), 15)
    assert.equal(counterRate(100, 110, 3), 3.33)
    assert.equal(counterRate(100, 100, 1), 0)
    assert.equal(counterRate(100, 50, 1), 0)
    assert.equal(counterRate(100, 200, 0), 0)
  })
})

describe('transactionsPerSecond', () => {
  it('counts only the blocks in the window (now - window, now]', () => {
    const blocks = [
      { timeMs: 90_000, txCount: 100 },
      { timeMs: 90_001, txCount: 3 },
      { timeMs: 95_000, txCount: 4 },
      { timeMs: 100_000, txCount: 5 },
      { timeMs: 100_001, txCount: 1_000 }
    ]
    assert.equal(transactionsPerSecond(blocks, 100_000, 10_000), 1.2)
    assert.equal(transactionsPerSecond(blocks, 100_000, 5_000), 1) // 5 over 5 s: the block at 95_000 is on the open end
  })

  it('answers 0 with no blocks and rounds to two decimals', () => {
    assert.equal(transactionsPerSecond([], 1_000, 10_000), 0)
    assert.equal(transactionsPerSecond([{ timeMs: 1_000, txCount: 1 }], 1_000, 3_000), 0.33)
  })
})

describe('mergeLinks', () => {
  type Report = Parameters<typeof mergeLinks>[0][number]
  const reports: Report[] = [
    { node: 'n1', isolatedFrom: [], links: [{ peer: 'n2', state: 'connected', rttMs: 12.345, mode: 'eager' }, { peer: 'n3', state: 'disconnected', rttMs: null, mode: null }] },
    { node: 'n2', isolatedFrom: [], links: [{ peer: 'n1', state: 'disconnected', rttMs: 10, mode: 'lazy' }, { peer: 'n3', state: 'connected', rttMs: 5, mode: 'lazy' }] },
    { node: 'n3', isolatedFrom: ['n1'], links: [{ peer: 'n1', state: 'connected', rttMs: 1, mode: 'eager' }, { peer: 'n2', state: 'connected', rttMs: null, mode: null }] }
  ]
  const expected = [
    { a: 'n1', b: 'n2', state: 'up', rttMs: 10, broadcast: 'eager' },
    { a: 'n1', b: 'n3', state: 'cut', rttMs: 1, broadcast: 'eager' },
    { a: 'n2', b: 'n3', state: 'up', rttMs: 5, broadcast: 'lazy' }
  ]

  it('gives one edge per pair: up if either end is connected, cut overriding up, min RTT, eager over lazy', () => {
    assert.deepEqual(mergeLinks(reports), expected)
  })

  it('does not depend on the order of the reports', () => {
    assert.deepEqual(mergeLinks([...reports].reverse()), expected)
    assert.deepEqual(mergeLinks([reports[2] as Report, reports[0] as Report, reports[1] as Report]), expected)
  })

  it('marks a pair down when neither end is connected, with no RTT or mode when none is reported', () => {
    assert.deepEqual(mergeLinks([
      { node: 'b', isolatedFrom: [], links: [{ peer: 'a', state: 'disconnected', rttMs: null, mode: null }] },
      { node: 'a', isolatedFrom: [], links: [{ peer: 'b', state: 'disconnected', rttMs: null, mode: null }] }
    ]), [{ a: 'a', b: 'b', state: 'down', rttMs: null, broadcast: null }])
  })

  it('marks a pair cut when only one end reports the link and the other end made the cut', () => {
    assert.deepEqual(mergeLinks([
      { node: 'a', isolatedFrom: [], links: [{ peer: 'b', state: 'connected', rttMs: 3.14159, mode: 'lazy' }] },
      { node: 'b', isolatedFrom: ['a'], links: [] }
    ]), [{ a: 'a', b: 'b', state: 'cut', rttMs: 3.14, broadcast: 'lazy' }])
  })

  it('answers no edges for no links', () => {
    assert.deepEqual(mergeLinks([]), [])
    assert.deepEqual(mergeLinks([{ node: 'a', isolatedFrom: ['b'], links: [] }]), [])
  })
})

/** Checks the dashboard's internal HttpFailure by its properties. */
function httpFailure (status: number, code: string, message?: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof Error, `expected an Error, got ${String(error)}`)
    const failure = error as Error & { status?: unknown, code?: unknown }
    assert.equal(failure.status, status)
    assert.equal(failure.code, code)
    if (message !== undefined) assert.match(failure.message, message)
    return true
  }
}

describe('parseGroups', () => {
  const ids = ['n1', 'n2', 'n3']
  const bad = (body: unknown, message?: RegExp): void => {
    assert.throws(() => parseGroups(body, ids), httpFailure(400, 'DASHBOARD_BAD_REQUEST', message), JSON.stringify(body))
  }

  it('returns the groups with each sorted', () => {
    assert.deepEqual(parseGroups({ groups: [['n3', 'n1'], ['n2']] }, ids), [['n1', 'n3'], ['n2']])
    assert.deepEqual(parseGroups({ groups: [['n2'], ['n3'], ['n1']] }, ids), [['n2'], ['n3'], ['n1']])
  })

  it('refuses a body without at least two groups', () => {
    bad({ groups: [['n1', 'n2', 'n3']] }, /at least two/)
    bad({ groups: [] })
    bad({})
    bad(null)
    bad('n1,n2')
    bad({ groups: 'n1' })
  })

  it('refuses empty groups and ids that are not strings', () => {
    bad({ groups: [['n1', 'n2', 'n3'], []] }, /non-empty/)
    bad({ groups: [['n1', 'n2'], [3]] })
    bad({ groups: [['n1', 'n2'], 'n3'] })
  })

  it('refuses unknown ids, a node in two groups and nodes missing from every group', () => {
    bad({ groups: [['n1', 'n9'], ['n2', 'n3']] }, /no node n9/)
    bad({ groups: [['n1', 'n2'], ['n2', 'n3']] }, /two groups/)
    bad({ groups: [['n1'], ['n2']] }, /missing n3/)
  })
})

describe('parseLinkQuality', () => {
  it('accepts latency and loss, and defaults both to 0', () => {
    assert.deepEqual(parseLinkQuality({ latencyMs: 100, lossPercent: 5 }), { latencyMs: 100, lossPercent: 5 })
    assert.deepEqual(parseLinkQuality({ latencyMs: 250 }), { latencyMs: 250, lossPercent: 0 })
    assert.deepEqual(parseLinkQuality({}), { latencyMs: 0, lossPercent: 0 })
    assert.deepEqual(parseLinkQuality(undefined), { latencyMs: 0, lossPercent: 0 })
  })

  it('refuses bad values with a 400 naming the field', () => {
    const bad = (body: unknown, field: RegExp): void => {
      assert.throws(() => parseLinkQuality(body), httpFailure(400, 'DASHBOARD_BAD_REQUEST', field), JSON.stringify(body))
    }
    bad({ latencyMs: -1 }, /latencyMs/)
    bad({ latencyMs: 1.5 }, /latencyMs/)
    bad({ latencyMs: 10_001 }, /latencyMs/)
    bad({ latencyMs: '100' }, /latencyMs/)
    bad({ lossPercent: 101 }, /lossPercent/)
    bad({ lossPercent: -1 }, /lossPercent/)
    bad({ lossPercent: Number.NaN }, /lossPercent/)
  })

  // A typo such as `latency` must be refused, not read as 0/0 (which would clear the node's faults).
  it('refuses unknown fields and non-object bodies as the node does', () => {
    assert.throws(() => parseLinkQuality({ latency: 100 }), httpFailure(400, 'DASHBOARD_BAD_REQUEST'))
    assert.throws(() => parseLinkQuality('100'), httpFailure(400, 'DASHBOARD_BAD_REQUEST'))
    assert.throws(() => parseLinkQuality([]), httpFailure(400, 'DASHBOARD_BAD_REQUEST'))
    // A JSON null is not an empty body: it must not read as "no faults" and heal the node.
    assert.throws(() => parseLinkQuality(null), httpFailure(400, 'DASHBOARD_BAD_REQUEST'))
  })
})
