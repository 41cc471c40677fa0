/**
 * Checks a set of proof-of-work headers against a network's consensus rules (`synod pow
 * verify-headers`): each header's bits and proof of work, and wherever the needed predecessors
 * are in the set, its link to its parent, its time against the median time past, and its bits
 * against the retarget rule. Heights may have gaps; a check whose inputs are missing is skipped,
 * never guessed. Pure: the verifier's clock comes in as an argument.
 */
import { fromHex, toHex } from '../../../core/index.js'
import { LedgerError, type LedgerErrorCode } from '../../errors.js'
import { WORK_HEADER_BYTES, decodeWorkHeader, displayHash, meetsTarget, workHash, type WorkHeader } from './header.js'
import type { PowNetwork } from './params.js'
import { MEDIAN_TIME_SPAN_BLOCKS, isRetargetHeight, medianTimePast, nextBits, targetOf, workOf } from './work.js'

export interface HeaderInput { height: number, hex: string }

export interface HeaderProblem { height: number, code: LedgerErrorCode, reason: string }

export interface VerifySummary {
  network: string
  checked: number
  valid: number
  invalid: HeaderProblem[]
  /** Checks run, by kind: a gap in the heights skips the checks that need the missing headers. */
  checks: { work: number, parent: number, medianTime: number, retarget: number, bitsUnchanged: number }
  /** Total work of the longest run of consecutive, linked, valid headers, as 64 hex digits (as Core's `chainwork`). */
  chainWork: string
  chainWorkRun: { fromHeight: number, toHeight: number } | null
}

interface Entry { height: number, header: WorkHeader, hash: Uint8Array, target: bigint | null }

/** Headers per verification, so a file cannot exhaust memory. */
export const VERIFY_HEADERS_MAX = 1_000_000

export function verifyHeaders (network: PowNetwork, inputs: readonly HeaderInput[], nowSeconds: number): VerifySummary {
  if (inputs.length > VERIFY_HEADERS_MAX) throw new LedgerError('LEDGER_MALFORMED', `at most ${VERIFY_HEADERS_MAX} headers per run, got ${inputs.length}`)
  const problems: HeaderProblem[] = []
  const entries = new Map<number, Entry>()
  for (const input of inputs) {
    const parsed = parseInput(input)
    if ('reason' in parsed) {
      problems.push({ height: Number.isInteger(input.height) ? input.height : -1, code: 'LEDGER_MALFORMED', reason: parsed.reason })
      continue
    }
    if (entries.has(input.height)) {
      problems.push({ height: input.height, code: 'LEDGER_MALFORMED', reason: 'height given twice' })
      continue
    }
    entries.set(input.height, parsed)
  }
  const checks = { work: 0, parent: 0, medianTime: 0, retarget: 0, bitsUnchanged: 0 }
  const heights = [...entries.keys()].sort((a, b) => a - b)
  for (const height of heights) {
    const entry = entries.get(height) as Entry
    const found: Array<Omit<HeaderProblem, 'height'>> = []
    const target = targetOf(entry.header.bits, network.powLimit)
    if ('reason' in target) found.push({ code: 'LEDGER_BAD_BITS', reason: target.reason })
    else {
      entry.target = target.target
      checks.work++
      if (!meetsTarget(entry.hash, target.target)) found.push({ code: 'LEDGER_BAD_WORK', reason: `hash ${displayHash(entry.hash)} is above the target of bits ${hexBits(entry.header.bits)}` })
    }
    const parent = entries.get(height - 1)
    if (parent !== undefined) {
      checks.parent++
      if (toHex(entry.header.parent) !== toHex(parent.hash)) found.push({ code: 'LEDGER_BAD_PARENT', reason: `parent ${displayHash(entry.header.parent)} is not block ${height - 1} (${displayHash(parent.hash)})` })
      found.push(...checkBits(network, entries, entry, parent, checks))
    }
    const times = previousTimes(entries, height)
    if (times !== null) {
      checks.medianTime++
      const median = medianTimePast(times)
      if (entry.header.time <= median) found.push({ code: 'LEDGER_BAD_TIME', reason: `time ${entry.header.time} is not above the median time past ${median}` })
    }
    if (entry.header.time > nowSeconds + network.futureTimeLimitS) {
      found.push({ code: 'LEDGER_BAD_TIME', reason: `time ${entry.header.time} is more than ${network.futureTimeLimitS} s ahead of the clock (${nowSeconds})` })
    }
    for (const problem of found) problems.push({ height, ...problem })
  }
  const badHeights = new Set(problems.map((problem) => problem.height))
  const run = heaviestRun(entries, heights, badHeights)
  return {
    network: network.name,
    checked: inputs.length,
    valid: inputs.length - new Set(problems.map((problem) => problem.height)).size,
    invalid: problems,
    checks,
    chainWork: run.work.toString(16).padStart(64, '0'),
    chainWorkRun: run.fromHeight === null ? null : { fromHeight: run.fromHeight, toHeight: run.toHeight as number }
  }
}

function parseInput (input: HeaderInput): Entry | { reason: string } {
  if (!Number.isInteger(input.height) || input.height < 0) return { reason: `height ${String(input.height)} is not a non-negative integer` }
  if (typeof input.hex !== 'string' || input.hex.length !== WORK_HEADER_BYTES * 2) return { reason: `a header is ${WORK_HEADER_BYTES * 2} hex digits` }
  let bytes: Uint8Array
  try {
    bytes = fromHex(input.hex)
  } catch {
    return { reason: 'not hex' }
  }
  return { height: input.height, header: decodeWorkHeader(bytes), hash: workHash(bytes), target: null }
}

/** At a retarget height the bits must be the retarget's result; elsewhere the parent's. */
function checkBits (network: PowNetwork, entries: ReadonlyMap<number, Entry>, entry: Entry, parent: Entry, checks: VerifySummary['checks']): Array<Omit<HeaderProblem, 'height'>> {
  if (!isRetargetHeight(entry.height, network)) {
    checks.bitsUnchanged++
    if (entry.header.bits === parent.header.bits) return []
    return [{ code: 'LEDGER_BAD_BITS', reason: `bits ${hexBits(entry.header.bits)} changed from ${hexBits(parent.header.bits)} outside a retarget height` }]
  }
  const first = entries.get(entry.height - network.retargetIntervalBlocks)
  if (first === undefined) return []
  checks.retarget++
  const expected = nextBits(parent.header.bits, first.header.time, parent.header.time, network)
  if (entry.header.bits === expected) return []
  return [{ code: 'LEDGER_BAD_BITS', reason: `bits ${hexBits(entry.header.bits)} at retarget height ${entry.height}, expected ${hexBits(expected)}` }]
}

/** Times of the previous up-to-11 blocks, or null when any of them is missing. */
function previousTimes (entries: ReadonlyMap<number, Entry>, height: number): number[] | null {
  if (height === 0) return null
  const times: number[] = []
  for (let previous = height - 1; previous >= Math.max(0, height - MEDIAN_TIME_SPAN_BLOCKS); previous--) {
    const entry = entries.get(previous)
    if (entry === undefined) return null
    times.push(entry.header.time)
  }
  return times
}

/** The run of consecutive, valid, linked headers with the most work. */
function heaviestRun (entries: ReadonlyMap<number, Entry>, heights: readonly number[], bad: ReadonlySet<number>): { work: bigint, fromHeight: number | null, toHeight: number | null } {
  let best = { work: 0n, fromHeight: null as number | null, toHeight: null as number | null }
  let current = { work: 0n, fromHeight: null as number | null, toHeight: null as number | null }
  for (const height of heights) {
    const entry = entries.get(height) as Entry
    if (bad.has(height) || entry.target === null) {
      current = { work: 0n, fromHeight: null, toHeight: null }
      continue
    }
    const continues = current.toHeight === height - 1
    current = continues
      ? { work: current.work + workOf(entry.target), fromHeight: current.fromHeight, toHeight: height }
      : { work: workOf(entry.target), fromHeight: height, toHeight: height }
    if (current.work > best.work) best = { ...current }
  }
  return best
}

function hexBits (bits: number): string {
  return bits.toString(16).padStart(8, '0')
}
