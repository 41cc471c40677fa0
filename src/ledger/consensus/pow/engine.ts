/**
 * Proof of Work as a Synod consensus engine, on Bitcoin's rules: the seal is the 80-byte work
 * header's variable part (time in seconds, bits, nonce) plus the extra nonce; the header commits
 * to the block's sealing hash and extra nonce; bits follow the retarget rule every
 * `retargetIntervalBlocks` toward `targetBlockSpacingMs`; a block's time must exceed the median of
 * the previous 11 and not run ahead of the clock by more than `futureTimeLimitMs`; the heaviest
 * chain (most expected work) wins.
 */
import { z } from 'zod'
import { fromHex } from '../../../core/index.js'
import { sealingHash, type BlockHeader } from '../../block.js'
import { ancestorOf, type ConsensusEngine, type HeaderLookup } from '../../engine.js'
import { LedgerError } from '../../errors.js'
import { decodeCompact, encodeCompact } from './compact.js'
import { encodeWorkHeader, meetsTarget, workCommitment, workHash, displayHash } from './header.js'
import { MEDIAN_TIME_SPAN_BLOCKS, RETARGET_CLAMP_FACTOR, medianTimePast, nextBits, targetOf, workOf, type RetargetRules } from './work.js'

export const POW_SEAL_VERSION = 1

export const powSealSchema = z.strictObject({
  version: z.literal(POW_SEAL_VERSION),
  /** The header time in seconds, as the 80-byte header carries it: floor(timeMs / 1000). */
  time: z.number().int().min(0).max(0xffffffff),
  bits: z.number().int().min(0).max(0xffffffff),
  nonce: z.number().int().min(0).max(0xffffffff),
  extraNonce: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
})
export type PowSeal = z.infer<typeof powSealSchema>

export interface PowParams {
  retargetIntervalBlocks: number
  targetBlockSpacingMs: number
  /**
   * The easiest target, as compact bits. It must leave room for Bitcoin's 256-bit retarget
   * arithmetic: limit x 4 x (retarget span in seconds) < 2^256.
   */
  powLimitBits: number
  /** Bits of the first block. */
  initialBits: number
  blockReward: bigint
  /** The reward halves every this many blocks (0: never). */
  halvingIntervalBlocks: number
  futureTimeLimitMs: number
}

export const defaultPowParams: Readonly<PowParams> = Object.freeze({
  retargetIntervalBlocks: 20,
  targetBlockSpacingMs: 2_000,
  powLimitBits: 0x2000ffff,
  /** About a million hashes a block: quick for a local cluster; retargets raise it to the spacing. */
  initialBits: 0x1e0fffff,
  blockReward: 50_000n,
  halvingIntervalBlocks: 0,
  futureTimeLimitMs: 2 * 60 * 60 * 1000
})

export class PowEngine implements ConsensusEngine {
  readonly name = 'pow'
  readonly powLimit: bigint
  private readonly rules: RetargetRules

  constructor (readonly params: PowParams = defaultPowParams) {
    const limit = decodeCompact(params.powLimitBits)
    if (limit.negative || limit.overflow || limit.target === 0n) throw new LedgerError('LEDGER_CONFIG_INVALID', 'powLimitBits is not a usable target')
    this.powLimit = limit.target
    if (!Number.isInteger(params.retargetIntervalBlocks) || params.retargetIntervalBlocks < 2) throw new LedgerError('LEDGER_CONFIG_INVALID', 'retargetIntervalBlocks must be at least 2')
    if ('reason' in targetOf(params.initialBits, this.powLimit)) throw new LedgerError('LEDGER_CONFIG_INVALID', 'initialBits is not a usable target under the limit')
    // Retargets work in the header's whole seconds, as Bitcoin's do.
    const timespanMs = params.retargetIntervalBlocks * params.targetBlockSpacingMs
    if (!Number.isInteger(timespanMs / 1000) || timespanMs < 1000) {
      throw new LedgerError('LEDGER_CONFIG_INVALID', `retargetIntervalBlocks x targetBlockSpacingMs (${timespanMs} ms) must be a whole number of seconds`)
    }
    const targetTimespan = timespanMs / 1000
    // Bitcoin multiplies the target by the span in 256 bits: the limit must leave room for x4.
    if (this.powLimit * BigInt(targetTimespan * RETARGET_CLAMP_FACTOR) >= 1n << 256n) {
      throw new LedgerError('LEDGER_CONFIG_INVALID', `powLimitBits ${params.powLimitBits.toString(16)} is too easy for a ${targetTimespan} s retarget span: target x ${targetTimespan * RETARGET_CLAMP_FACTOR} would overflow 256 bits`)
    }
    this.rules = { retargetIntervalBlocks: params.retargetIntervalBlocks, targetTimespan, powLimit: this.powLimit }
  }

  /** The bits a block on top of `parent` must carry. */
  expectedBits (parent: BlockHeader, ancestors: HeaderLookup): number {
    const height = parent.height + 1
    if (parent.height === 0) return this.params.initialBits
    const parentBits = sealOf(parent).bits
    if (height % this.params.retargetIntervalBlocks !== 0) return parentBits
    // Bitcoin's span: from the period's first block to its last, interval - 1 intervals.
    const first = ancestorOf(parent, this.params.retargetIntervalBlocks - 1, ancestors)
    if (first === undefined) throw new LedgerError('LEDGER_BAD_BITS', `the ancestors of block ${height} needed for its retarget are not stored`)
    return nextBits(parentBits, timeSecondsOf(first), timeSecondsOf(parent), this.rules)
  }

  verifyHeader (header: BlockHeader, parent: BlockHeader, ancestors: HeaderLookup, nowMs: number): void {
    const seal = sealOf(header)
    if (seal.time !== Math.floor(header.timeMs / 1000)) throw new LedgerError('LEDGER_BAD_TIME', `seal time ${seal.time} s does not match the header time ${header.timeMs} ms`)
    const expected = this.expectedBits(parent, ancestors)
    if (seal.bits !== expected) throw new LedgerError('LEDGER_BAD_BITS', `bits ${hex(seal.bits)} at height ${header.height}, expected ${hex(expected)}`)
    const target = targetOf(seal.bits, this.powLimit)
    if ('reason' in target) throw new LedgerError('LEDGER_BAD_BITS', target.reason)
    const hash = workHash(workHeaderOf(header, seal))
    if (!meetsTarget(hash, target.target)) throw new LedgerError('LEDGER_BAD_WORK', `work hash ${displayHash(hash)} is above the target of bits ${hex(seal.bits)}`)
    const times: number[] = []
    for (let at: BlockHeader | undefined = parent; at !== undefined && times.length < MEDIAN_TIME_SPAN_BLOCKS; at = at.height === 0 ? undefined : ancestors.header(at.parent)) times.push(at.timeMs)
    const median = medianTimePast(times)
    if (header.timeMs <= median) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is not above the median time past ${median}`)
    if (header.timeMs > nowMs + this.params.futureTimeLimitMs) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is more than ${this.params.futureTimeLimitMs} ms ahead of this node's clock`)
  }

  weightOf (header: BlockHeader): bigint {
    if (header.height === 0) return 0n
    const target = targetOf(sealOf(header).bits, this.powLimit)
    return 'reason' in target ? 0n : workOf(target.target)
  }

  rewardAt (height: number): bigint {
    if (height === 0) return 0n
    const halvings = this.params.halvingIntervalBlocks > 0 ? Math.floor(height / this.params.halvingIntervalBlocks) : 0
    return halvings >= 64 ? 0n : this.params.blockReward >> BigInt(halvings)
  }

  /** The target of bits, for a miner. */
  targetOf (bits: number): bigint {
    const target = targetOf(bits, this.powLimit)
    if ('reason' in target) throw new LedgerError('LEDGER_BAD_BITS', target.reason)
    return target.target
  }
}

/** A block's time in the header's seconds (genesis carries no seal). */
function timeSecondsOf (header: BlockHeader): number {
  return header.height === 0 ? Math.floor(header.timeMs / 1000) : sealOf(header).time
}

export function sealOf (header: BlockHeader): PowSeal {
  const parsed = powSealSchema.safeParse(header.seal)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a proof-of-work seal: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  return parsed.data
}

/** The 80-byte work header a sealed block's proof of work is computed over. */
export function workHeaderOf (header: BlockHeader, seal: PowSeal): Uint8Array {
  return encodeWorkHeader({ version: seal.version, parent: fromHex(header.parent), commitment: workCommitment(sealingHash(header), seal.extraNonce), time: seal.time, bits: seal.bits, nonce: seal.nonce })
}

/** The compact form of a target, for configs. */
export const bitsOf = (target: bigint): number => encodeCompact(target)

const hex = (bits: number): string => bits.toString(16).padStart(8, '0')
