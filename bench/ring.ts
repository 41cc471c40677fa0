/**
 * Ring lookup benchmark: preferenceList (the store's per-request placement: one SHA-256, one
 * binary search over the tokens, a short clockwise walk) with 5 and 100 members, against
 * keyPosition alone (the hash, the floor under any lookup) and Lamping-Veach jump hash on
 * pre-hashed 64-bit keys (no tokens at all) in the same run. No target: the figures show where
 * a lookup's time goes and that it is small next to a network round trip.
 */
import { HashRing, jumpConsistentHash, keyPosition, type RingMember } from '../src/store/index.js'
import type { BenchResult } from './util.js'

const MEASURE_MS = 500
const WARMUP_MS = 300
/** Each case is measured this many times, interleaved with the others, and its best round kept: the machine may be shared. */
const ROUNDS = 5
const KEY_COUNT = 4_096

const keys = Array.from({ length: KEY_COUNT }, (_, index) => `user:${index * 7919}:profile`)
/** 64-bit jump keys derived without hashing, so jump hash is measured alone. */
const jumpKeys = keys.map((_, index) => BigInt.asUintN(64, BigInt(index + 1) * 0x9e3779b97f4a7c15n))

function members (count: number): RingMember[] {
  return Array.from({ length: count }, (_, index) => ({ id: `node-${String(index).padStart(3, '0')}`, weight: 1 }))
}

/** Calls per second of lookup(i) over the keys, after a warm-up; `sink` keeps the results alive. */
function rate (lookup: (index: number) => unknown, durationMs: number): number {
  let calls = 0
  let sink = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    for (let index = 0; index < KEY_COUNT; index++) if (lookup(index) !== undefined) sink++
    calls += KEY_COUNT
  }
  if (sink !== calls) throw new Error('a lookup returned nothing')
  return calls / ((performance.now() - started) / 1_000)
}


export async function ringBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const cases: Array<{ name: string, tokens: string, lookup: (index: number) => unknown }> = []
  for (const memberCount of [5, 100]) {
    const ring = new HashRing({ members: members(memberCount) })
    const tokens = String(ring.describe().members.reduce((sum, member) => sum + member.vnodes, 0))
    cases.push({ name: `preferenceList, ${memberCount} members, RF 3`, tokens, lookup: (index) => ring.preferenceList(keys[index]) })
    cases.push({ name: `owner, ${memberCount} members`, tokens, lookup: (index) => ring.owner(keys[index]) })
  }
  cases.push({ name: 'keyPosition alone (SHA-256 of the key)', tokens: '-', lookup: (index) => keyPosition(keys[index]) })
  for (const buckets of [5, 100]) {
    cases.push({ name: `jumpConsistentHash, ${buckets} buckets, pre-hashed key`, tokens: '-', lookup: (index) => jumpConsistentHash(jumpKeys[index], buckets) })
  }
  const rates: Record<string, number> = {}
  for (const benchCase of cases) rate(benchCase.lookup, WARMUP_MS)
  for (let round = 1; round <= ROUNDS; round++) {
    for (const benchCase of cases) rates[benchCase.name] = Math.max(rates[benchCase.name] ?? 0, rate(benchCase.lookup, MEASURE_MS))
    progress(`round ${round} of ${ROUNDS} done`)
  }
  const rows = cases.map((benchCase) => [
    benchCase.name,
    benchCase.tokens,
    Math.round(rates[benchCase.name]).toLocaleString('en'),
    (1e9 / rates[benchCase.name]).toFixed(0)
  ])
  const slowest = Math.min(rates['preferenceList, 5 members, RF 3'], rates['preferenceList, 100 members, RF 3'])
  return {
    name: 'ring',
    title: 'consistent-hash ring lookups per second (one thread)',
    header: ['lookup', 'tokens', 'lookups/s', 'ns/lookup'],
    rows,
    verdict: `preferenceList costs at most ${(1e6 / slowest).toFixed(2)} us a request; most of it is the key's SHA-256`,
    data: { rates, keyCount: KEY_COUNT, measureMs: MEASURE_MS, rounds: ROUNDS }
  }
}
