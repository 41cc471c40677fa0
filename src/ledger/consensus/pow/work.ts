/**
 * Proof-of-work arithmetic with Bitcoin's rules: block work, difficulty retargeting and the
 * median time past. Pure functions on bigints, so the same code checks real Bitcoin headers and
 * runs Synod's own chains (with their own interval and spacing).
 */
import { decodeCompact, encodeCompact } from './compact.js'

export interface RetargetRules {
  /** Blocks per difficulty period (Bitcoin: 2016). */
  retargetIntervalBlocks: number
  /** The time a period should take, in the unit of the header times (Bitcoin: 1 209 600 s). */
  targetTimespan: number
  /** The easiest target allowed (Bitcoin mainnet: 2^224 - 1, compact 0x1d00ffff). */
  powLimit: bigint
}

const TWO_TO_256 = 1n << 256n
const UINT256_MASK = TWO_TO_256 - 1n
/** Retargets never move the target by more than this factor either way. */
export const RETARGET_CLAMP_FACTOR = 4
/** Blocks whose median time a new block's time must exceed. */
export const MEDIAN_TIME_SPAN_BLOCKS = 11

/** Expected hashes to find a block at `target`: floor(2^256 / (target + 1)) (Core's GetBlockProof). */
export function workOf (target: bigint): bigint {
  if (target < 0n) throw new RangeError('negative target')
  return TWO_TO_256 / (target + 1n)
}

/** Whether a block with these bits may start a new period here: only at multiples of the interval. */
export function isRetargetHeight (height: number, rules: RetargetRules): boolean {
  return height > 0 && height % rules.retargetIntervalBlocks === 0
}

/**
 * The bits of the first block of a new period (Core's CalculateNextWorkRequired). `firstTime` is
 * the time of the period's first block and `lastTime` of its last, so the span covers
 * `interval - 1` block intervals: Bitcoin's off-by-one, kept because it is consensus.
 */
export function nextBits (lastBits: number, firstTime: number, lastTime: number, rules: RetargetRules): number {
  const timespan = rules.targetTimespan
  const actual = Math.min(Math.max(lastTime - firstTime, Math.floor(timespan / RETARGET_CLAMP_FACTOR)), timespan * RETARGET_CLAMP_FACTOR)
  // arith_uint256 arithmetic: the product wraps at 2^256, then integer division.
  let target = (decodeCompact(lastBits).target * BigInt(actual)) & UINT256_MASK
  target /= BigInt(timespan)
  if (target > rules.powLimit) target = rules.powLimit
  return encodeCompact(target)
}

/** Median of the given block times (the previous up-to-11 blocks): a new block's time must exceed it. */
export function medianTimePast (times: readonly number[]): number {
  if (times.length === 0) throw new RangeError('median of no times')
  const sorted = [...times].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

/** The target a compact value encodes, or why it is not a usable target. */
export function targetOf (bits: number, powLimit: bigint): { target: bigint } | { reason: string } {
  const decoded = decodeCompact(bits)
  if (decoded.negative) return { reason: 'bits encode a negative target' }
  if (decoded.overflow) return { reason: 'bits overflow 256 bits' }
  if (decoded.target === 0n) return { reason: 'bits encode a zero target' }
  if (decoded.target > powLimit) return { reason: 'target above the proof-of-work limit' }
  return { target: decoded.target }
}
