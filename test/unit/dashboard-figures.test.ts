/**
 * The dashboard's arithmetic (src/gateway/dashboard-model.ts) and its admin body checks: quantiles
 * from histogram buckets as Prometheus interpolates them, rates and counter resets, histograms
 * summed over nodes from prom-client's own JSON, merged link views, and partition bodies.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Histogram, Registry } from 'prom-client'
import {
  addStoreSample, counterRate, emptyStoreSample, histogramQuantile, mergeLinks, metricValue, parseGroups, parseLinkQuality,
  storeFigures, transactionsPerSecond, type MetricFamilyJson
} from '../../src/gateway/index.js'

/** A node's metrics as prom-client serves them at /v1/metrics, with the given store observations (seconds). */
async function nodeMetrics (observations: Array<{ level: string, outcome: string, seconds: number }>): Promise<MetricFamilyJson[]> {
  const registry = new Registry()
  const histogram = new Histogram({ name: 'synod_store_request_seconds', help: 'h', labelNames: ['op', 'level', 'outcome'], buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1], registers: [registry] })
  for (const entry of observations) histogram.observe({ op: 'put', level: entry.level, outcome: entry.outcome }, entry.seconds)
  return await registry.getMetricsAsJSON() as unknown as MetricFamilyJson[]
}

function thrown (run: () => unknown): { status: number, code: string } {
  try {
    run()
  } catch (error) {
    return error as { status: number, code: string }
  }
  assert.fail('expected a refusal')
}

describe('histogramQuantile', () => {
  it('interpolates linearly inside the bucket the rank falls in', () => {
    // 10 observations: 4 in (0, 1], 4 in (1, 2], 2 in (2, 4].
    const after: Array<[number, number]> = [[1, 4], [2, 8], [4, 10], [Infinity, 10]]
    assert.equal(histogramQuantile(0.5, [], after), 1.25) // rank 5: one of the 4 in (1, 2]
    assert.equal(histogramQuantile(0.4, [], after), 1) // rank 4: the top of the first bucket
    assert.equal(histogramQuantile(0.9, [], after), 3) // rank 9: half-way through (2, 4]
    assert.equal(histogramQuantile(0.2, [], after), 0.5)
  })

  it('uses only the observations between the two samples', () => {
    const before: Array<[number, number]> = [[1, 100], [2, 100], [Infinity, 100]]
    const after: Array<[number, number]> = [[1, 100], [2, 110], [Infinity, 110]]
    // Only 10 new observations, all in (1, 2].
    assert.equal(histogramQuantile(0.5, before, after), 1.5)
  })

  it('answers null with nothing observed, and the highest finite bound for the +Inf bucket', () => {
    assert.equal(histogramQuantile(0.5, [[1, 3], [Infinity, 3]], [[1, 3], [Infinity, 3]]), null)
    assert.equal(histogramQuantile(0.99, [], []), null)
    assert.equal(histogramQuantile(0.99, [], [[1, 1], [2, 1], [Infinity, 10]]), 2)
  })
})

describe('store samples from the nodes\' metrics', () => {
  it('sums counts, errors and buckets per level over outcomes and nodes', async () => {
    const first = await nodeMetrics([
      { level: 'strong', outcome: 'ok', seconds: 0.0015 },
      { level: 'strong', outcome: 'ok', seconds: 0.0015 },
      { level: 'strong', outcome: 'STORE_NO_QUORUM', seconds: 0.0004 },
      { level: 'eventual', outcome: 'ok', seconds: 0.03 }
    ])
    const second = await nodeMetrics([{ level: 'strong', outcome: 'ok', seconds: 0.004 }])
    const sample = addStoreSample(addStoreSample(emptyStoreSample(), first), second)
    assert.equal(sample.strong.count, 4)
    assert.equal(sample.strong.errors, 1)
    assert.equal(sample.eventual.count, 1)
    assert.equal(sample.causal.count, 0)
    const buckets = new Map(sample.strong.buckets)
    assert.equal(buckets.get(0.001), 1) // the refused one
    assert.equal(buckets.get(0.002), 3)
    assert.equal(buckets.get(0.005), 4)
    assert.equal(buckets.get(Infinity), 4)
    assert.deepEqual(sample.strong.buckets.map(([le]) => le), [...sample.strong.buckets.map(([le]) => le)].sort((a, b) => a - b))
  })

  it('turns two samples into ops/s, errors/s and p50/p99 in milliseconds', async () => {
    const before = addStoreSample(emptyStoreSample(), await nodeMetrics([{ level: 'causal', outcome: 'ok', seconds: 0.05 }]))
    const later = Array.from({ length: 20 }, (_, index) => ({ level: 'causal', outcome: index < 2 ? 'STORE_TIMEOUT' : 'ok', seconds: 0.0015 }))
    const after = addStoreSample(emptyStoreSample(), await nodeMetrics([{ level: 'causal', outcome: 'ok', seconds: 0.05 }, ...later]))
    const figures = storeFigures(before, after, 2)
    assert.equal(figures.causal.opsPerSec, 10)
    assert.equal(figures.causal.errorsPerSec, 1)
    // All 20 new ones in (1, 2] ms: p50 at rank 10 of 20 is 1.5 ms, p99 at rank 19.8 is 1.99 ms.
    assert.equal(figures.causal.p50Ms, 1.5)
    assert.equal(figures.causal.p99Ms, 1.99)
    assert.deepEqual(figures.strong, { opsPerSec: 0, errorsPerSec: 0, p50Ms: null, p99Ms: null })
  })

  it('reads counters and gauges, summing the label values that match', () => {
    const families: MetricFamilyJson[] = [{ name: 'x_total', type: 'counter', values: [{ labels: { cause: 'a' }, value: 2 }, { labels: { cause: 'b' }, value: 5 }] }]
    assert.equal(metricValue(families, 'x_total'), 7)
    assert.equal(metricValue(families, 'x_total', { cause: 'b' }), 5)
    assert.equal(metricValue(families, 'missing_total'), 0)
  })
})

describe('rates', () => {
  it('counts a counter that went backwards (a restarted node) as zero', () => {
    assert.equal(counterRate(10, 30, 2), 10)
    assert.equal(counterRate(30, 4, 2), 0)
    assert.equal(counterRate(1, 5, 0), 0)
  })

  it('counts the transactions of the blocks inside the window only', () => {
    const blocks = [{ timeMs: 1_000, txCount: 50 }, { timeMs: 9_500, txCount: 10 }, { timeMs: 19_000, txCount: 30 }, { timeMs: 21_000, txCount: 99 }]
    // Window (10 000, 20 000]: only the block at 19 000; the one at 21 000 is in the future.
    assert.equal(transactionsPerSecond(blocks, 20_000, 10_000), 3)
    assert.equal(transactionsPerSecond(blocks, 20_000, 20_000), 4.5) // (0, 20 000]: 90 txs in 20 s
  })
})

describe('mergeLinks', () => {
  it('gives one edge per pair: up if either end is connected, the smaller RTT, eager over lazy', () => {
    const links = mergeLinks([
      { node: 'a', isolatedFrom: [], links: [{ peer: 'b', state: 'connected', rttMs: 3.14159, mode: 'lazy' }, { peer: 'c', state: 'disconnected', rttMs: null, mode: null }] },
      { node: 'b', isolatedFrom: [], links: [{ peer: 'a', state: 'disconnected', rttMs: 2, mode: 'eager' }] },
      { node: 'c', isolatedFrom: [], links: [{ peer: 'a', state: 'disconnected', rttMs: null, mode: null }] }
    ])
    assert.deepEqual(links, [
      { a: 'a', b: 'b', state: 'up', rttMs: 2, broadcast: 'eager' },
      { a: 'a', b: 'c', state: 'down', rttMs: null, broadcast: null }
    ])
  })

  it('marks a pair cut when either end isolates the other, even while a link reads connected', () => {
    const links = mergeLinks([
      { node: 'b', isolatedFrom: ['a'], links: [{ peer: 'a', state: 'disconnected', rttMs: 1, mode: null }] },
      { node: 'a', isolatedFrom: [], links: [{ peer: 'b', state: 'connected', rttMs: 1, mode: null }] }
    ])
    assert.equal(links.length, 1)
    assert.equal(links[0]?.state, 'cut')
  })
})

describe('admin bodies', () => {
  const ids = ['n1', 'n2', 'n3', 'n4']

  it('accepts two disjoint groups that hold every node, sorted', () => {
    assert.deepEqual(parseGroups({ groups: [['n3', 'n1'], ['n4', 'n2']] }, ids), [['n1', 'n3'], ['n2', 'n4']])
  })

  it('refuses a partition that is not two or more disjoint, complete, known groups', () => {
    for (const body of [
      null, {}, { groups: 'n1' }, { groups: [['n1', 'n2', 'n3', 'n4']] }, { groups: [['n1'], []] },
      { groups: [['n1'], ['n2', 'n3', 'nobody', 'n4']] }, { groups: [['n1', 'n2'], ['n2', 'n3', 'n4']] },
      { groups: [['n1'], ['n2', 'n3']] }, { groups: [['n1'], ['n2', 'n3', 4]] }
    ]) {
      const refusal = thrown(() => parseGroups(body, ids))
      assert.equal(refusal.status, 400, JSON.stringify(body))
      assert.equal(refusal.code, 'DASHBOARD_BAD_REQUEST')
    }
  })

  it('checks link faults as the node does', () => {
    assert.deepEqual(parseLinkQuality({ latencyMs: 100, lossPercent: 5 }), { latencyMs: 100, lossPercent: 5 })
    assert.deepEqual(parseLinkQuality({}), { latencyMs: 0, lossPercent: 0 })
    for (const body of [{ latencyMs: -1 }, { latencyMs: 1.5 }, { latencyMs: 10_001 }, { lossPercent: 101 }, { lossPercent: 'x' }]) {
      const refusal = thrown(() => parseLinkQuality(body))
      assert.equal(refusal.status, 400, JSON.stringify(body))
    }
  })
})
