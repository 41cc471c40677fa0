/**
 * The arithmetic behind the dashboard's figures, kept apart from the polling so it is unit-tested:
 * reading counters and histograms out of the nodes' metrics (prom-client's JSON form, served at
 * `GET /v1/metrics`), rates from two samples, and quantiles from histogram buckets the way
 * Prometheus' `histogram_quantile` interpolates them.
 */

/** One metric family as prom-client's `getMetricsAsJSON` gives it. */
export interface MetricFamilyJson {
  name: string
  type: string
  values: Array<{ labels: Record<string, string | number>, value: number, metricName?: string }>
}

export const STORE_LEVELS = ['strong', 'causal', 'eventual'] as const
export type StoreLevel = typeof STORE_LEVELS[number]

/** Cumulative histogram counts of one store level, summed over operations and nodes. */
export interface LevelSample {
  count: number
  errors: number
  /** Upper bound in seconds (Infinity for +Inf) to cumulative count, ascending. */
  buckets: Array<[number, number]>
}

export type StoreSample = Record<StoreLevel, LevelSample>

export interface LevelFigures {
  opsPerSec: number
  errorsPerSec: number
  /** Null when no request finished in the interval. */
  p50Ms: number | null
  p99Ms: number | null
}

const STORE_HISTOGRAM = 'synod_store_request_seconds'

function emptyLevel (): LevelSample {
  return { count: 0, errors: 0, buckets: [] }
}

export function emptyStoreSample (): StoreSample {
  return { strong: emptyLevel(), causal: emptyLevel(), eventual: emptyLevel() }
}

function isLevel (value: unknown): value is StoreLevel {
  return typeof value === 'string' && (STORE_LEVELS as readonly string[]).includes(value)
}

/** Adds one node's store histogram into `into` (sums over operations, outcomes and nodes). */
export function addStoreSample (into: StoreSample, families: readonly MetricFamilyJson[]): StoreSample {
  const family = families.find((candidate) => candidate.name === STORE_HISTOGRAM)
  if (family === undefined) return into
  const bucketMaps = new Map<StoreLevel, Map<number, number>>()
  for (const level of STORE_LEVELS) bucketMaps.set(level, new Map(into[level].buckets))
  for (const entry of family.values) {
    const level = entry.labels.level
    if (!isLevel(level)) continue
    const target = into[level]
    if (entry.metricName === `${STORE_HISTOGRAM}_count`) {
      target.count += entry.value
      if (entry.labels.outcome !== 'ok') target.errors += entry.value
    } else if (entry.metricName === `${STORE_HISTOGRAM}_bucket`) {
      const le = entry.labels.le === '+Inf' ? Infinity : Number(entry.labels.le)
      if (Number.isNaN(le)) continue
      const buckets = bucketMaps.get(level) as Map<number, number>
      buckets.set(le, (buckets.get(le) ?? 0) + entry.value)
    }
  }
  for (const level of STORE_LEVELS) into[level].buckets = [...(bucketMaps.get(level) as Map<number, number>)].sort((a, b) => a[0] - b[0])
  return into
}

/**
 * The q-quantile (0..1) of the observations between two cumulative bucket lists, in seconds,
 * interpolated linearly inside the bucket it falls in (as Prometheus does); a quantile in the +Inf
 * bucket answers the highest finite bound. Null when nothing was observed.
 */
export function histogramQuantile (q: number, before: ReadonlyArray<[number, number]>, after: ReadonlyArray<[number, number]>): number | null {
  const earlier = new Map(before)
  const delta = after.map(([le, count]) => [le, Math.max(0, count - (earlier.get(le) ?? 0))] as [number, number])
  const total = delta.length === 0 ? 0 : (delta[delta.length - 1] as [number, number])[1]
  if (total <= 0) return null
  const rank = q * total
  let lowerBound = 0
  let lowerCount = 0
  for (const [le, cumulative] of delta) {
    if (cumulative >= rank) {
      if (le === Infinity) return lowerBound
      const inBucket = cumulative - lowerCount
      return inBucket <= 0 ? le : lowerBound + (le - lowerBound) * ((rank - lowerCount) / inBucket)
    }
    lowerBound = le
    lowerCount = cumulative
  }
  return lowerBound
}

const round = (value: number, digits: number): number => Math.round(value * 10 ** digits) / 10 ** digits

/** Rates and latency of each level between two samples taken `seconds` apart. */
export function storeFigures (before: StoreSample, after: StoreSample, seconds: number): Record<StoreLevel, LevelFigures> {
  const figures = {} as Record<StoreLevel, LevelFigures>
  for (const level of STORE_LEVELS) {
    const a = before[level]
    const b = after[level]
    const perSecond = (value: number): number => (seconds > 0 ? round(Math.max(0, value) / seconds, 2) : 0)
    const p50 = histogramQuantile(0.5, a.buckets, b.buckets)
    const p99 = histogramQuantile(0.99, a.buckets, b.buckets)
    figures[level] = {
      opsPerSec: perSecond(b.count - a.count),
      errorsPerSec: perSecond(b.errors - a.errors),
      p50Ms: p50 === null ? null : round(p50 * 1_000, 2),
      p99Ms: p99 === null ? null : round(p99 * 1_000, 2)
    }
  }
  return figures
}

/** The value of a counter or gauge summed over the label values that match `labels` (all when empty); 0 when absent. */
export function metricValue (families: readonly MetricFamilyJson[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((candidate) => candidate.name === name)
  if (family === undefined) return 0
  let sum = 0
  for (const entry of family.values) {
    if (Object.entries(labels).every(([label, value]) => String(entry.labels[label]) === value)) sum += entry.value
  }
  return sum
}

/** Per-second rate between two counter readings, 0 across a counter reset (a restarted node). */
export function counterRate (before: number, after: number, seconds: number): number {
  if (seconds <= 0 || after < before) return 0
  return round((after - before) / seconds, 2)
}

/** Transactions per second over the blocks whose time falls in the last `windowMs` before `nowMs`. */
export function transactionsPerSecond (blocks: ReadonlyArray<{ timeMs: number, txCount: number }>, nowMs: number, windowMs: number): number {
  let txs = 0
  for (const block of blocks) if (block.timeMs > nowMs - windowMs && block.timeMs <= nowMs) txs += block.txCount
  return round(txs / (windowMs / 1_000), 2)
}

/** An undirected link between two nodes as each end reports it; `cut` when a fault isolates one end from the other. */
export interface LinkView { a: string, b: string, state: 'up' | 'down' | 'cut', rttMs: number | null, broadcast: 'eager' | 'lazy' | null }

/**
 * Merges each node's view of its overlay links into one edge per pair: up when either end sees it
 * connected (and neither cut it), cut when either end isolates the other, down otherwise. The RTT
 * is the smaller report, the broadcast mode the eager one if either end pushes eagerly.
 */
export function mergeLinks (reports: ReadonlyArray<{ node: string, isolatedFrom: readonly string[], links: ReadonlyArray<{ peer: string, state: string, rttMs: number | null, mode: string | null }> }>): LinkView[] {
  const cut = new Set<string>()
  const pairKey = (x: string, y: string): string => (x < y ? `${x}\u0000${y}` : `${y}\u0000${x}`)
  for (const report of reports) for (const peer of report.isolatedFrom) cut.add(pairKey(report.node, peer))
  const merged = new Map<string, LinkView>()
  for (const report of reports) {
    for (const link of report.links) {
      const key = pairKey(report.node, link.peer)
      const [a, b] = report.node < link.peer ? [report.node, link.peer] : [link.peer, report.node]
      const previous = merged.get(key) ?? { a, b, state: 'down', rttMs: null, broadcast: null }
      const state: LinkView['state'] = cut.has(key) ? 'cut' : (previous.state === 'up' || link.state === 'connected') ? 'up' : 'down'
      const rttMs = link.rttMs === null ? previous.rttMs : previous.rttMs === null ? link.rttMs : Math.min(previous.rttMs, link.rttMs)
      const mode = link.mode === 'eager' || previous.broadcast === 'eager' ? 'eager' : (link.mode === 'lazy' || previous.broadcast === 'lazy') ? 'lazy' : null
      merged.set(key, { a, b, state, rttMs: rttMs === null ? null : round(rttMs, 2), broadcast: mode })
    }
  }
  return [...merged.values()].sort((x, y) => (x.a === y.a ? (x.b < y.b ? -1 : 1) : x.a < y.a ? -1 : 1))
}
