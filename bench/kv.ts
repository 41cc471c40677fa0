/**
 * The store's three levels on one cluster, in one run: `strong`, `causal` and `eventual` puts and
 * gets on a 3-node local cluster (`synod up --nodes 3 --consensus none`), with the load generator
 * of the kv-strong bench (64 closed-loop clients by default, 10 000 keys, 100-byte values, each key sent to
 * its coordinator, a warm-up then a measured window per phase). A causal client is one session,
 * carrying its token from answer to request; eventual requests use the defaults w = 1, r = 1.
 *
 * Targets, as ratios within the same run: eventual puts >= 3x strong puts; causal puts >= 2x
 * strong puts.
 */
import type { BenchResult } from './util.js'
import {
  CLIENTS, FOREIGN_CORES_MAX, KEYS, MEASURE_MS, VALUE_BYTES, WARMUP_RULE, WARMUP_SETTINGS,
  describeErrors, fixed, runSynod, withCleanup, type SynodLevel
} from './kv-strong.js'

const ALL_LEVELS: readonly SynodLevel[] = ['strong', 'causal', 'eventual']
/** `SYNOD_BENCH_LEVELS=eventual,strong` measures only those (for profiling one path). */
const LEVELS: readonly SynodLevel[] = process.env.SYNOD_BENCH_LEVELS === undefined
  ? ALL_LEVELS
  : ALL_LEVELS.filter((level) => (process.env.SYNOD_BENCH_LEVELS ?? '').split(',').includes(level))
const TARGETS = { eventual: 3, causal: 2 } as const

export async function kvBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const synod = await withCleanup(async () => await runSynod(progress, LEVELS))
  const rows: string[][] = synod.phases.map((phase) => {
    const errors = describeErrors(phase.errorsBy)
    return [
      phase.level ?? '-', phase.op, phase.opsPerSecond.toFixed(0), fixed(phase.p50, 2), fixed(phase.p99, 2),
      errors === '' ? '0' : `${phase.errors} (${errors})`, fixed(phase.serverCpuUsPerOp, 0), phase.foreignCores.toFixed(2)
    ]
  })
  const putOf = (level: SynodLevel): number | null => synod.phases.find((phase) => phase.level === level && phase.op === 'put')?.opsPerSecond ?? null
  const strong = putOf('strong')
  const targets: Record<string, { ratio: number | null, target: number, pass: boolean | null }> = {}
  const lines: string[] = []
  for (const level of ['eventual', 'causal'] as const) {
    const puts = putOf(level)
    const ratio = strong === null || puts === null || strong === 0 ? null : puts / strong
    targets[level] = { ratio, target: TARGETS[level], pass: ratio === null ? null : ratio >= TARGETS[level] }
    lines.push(`${level} puts >= ${TARGETS[level]}x strong puts: ${ratio === null ? 'not judged (a level was not measured)' : `${ratio >= TARGETS[level] ? 'pass' : 'FAIL'} (${puts?.toFixed(0) ?? '-'} vs ${strong?.toFixed(0) ?? '-'} ops/s, ${ratio.toFixed(2)}x)`}`)
  }
  if (synod.reason !== undefined) lines.push(synod.reason.split('\n')[0] as string)
  const busy = synod.phases.filter((phase) => phase.foreignCores > FOREIGN_CORES_MAX)
  if (busy.length > 0) lines.push(`WARNING: other processes used ${busy.map((phase) => `${phase.foreignCores.toFixed(2)} cores during ${phase.level ?? ''} ${phase.op}`).join(', ')}: rerun on an idle machine`)
  return {
    name: 'kv',
    title: `the store's levels on one 3-node cluster (synod up --consensus none), ${CLIENTS} closed-loop clients (each key to its coordinator; causal: one session per client; eventual: w = 1, r = 1), ` +
      `${KEYS} keys, ${VALUE_BYTES}-byte values, ${WARMUP_RULE} + ${MEASURE_MS / 1000} s measured per phase; ops/s and latency of successful operations, servers' CPU per op`,
    header: ['level', 'op', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU us/op', 'other cores'],
    rows,
    verdict: lines.join('\n'),
    data: { clients: CLIENTS, keys: KEYS, valueBytes: VALUE_BYTES, warmup: WARMUP_SETTINGS, measureMs: MEASURE_MS, targets, synod }
  }
}
