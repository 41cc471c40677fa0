/**
 * Delegated Proof of Stake as a Synod consensus engine.
 *
 * - Time is cut into slots of `blockIntervalMs` from genesis; a round is `producersMax x
 *   blocksPerTurn` slots. The producers of a round are the top `producersMax` candidates by
 *   approval votes (all of them if fewer) in the state after the last block before the round,
 *   in an order shuffled with a seed of that block's hash; the state keeps the schedule from the
 *   round's first block on, so every block of the round on that branch is checked against it.
 * - Each producer holds `blocksPerTurn` consecutive slots; a missed slot is skipped.
 * - A block's seal is its slot and the producer's signature over a `block` statement (chain,
 *   height, slot, the sealing hash): two blocks signed for one slot are slashing evidence.
 * - Fork choice: the longest chain (every block weighs 1) that contains the last irreversible
 *   block: the highest block that floor(2K/3) + 1 distinct producers built on (K: the schedule's
 *   producers). The chain store never reorganises below it.
 */
import { z } from 'zod'
import { encodeCanonical, sha256, toHex, verify } from '../../../core/index.js'
import type { Address } from '../../address.js'
import { sealingHash, type BlockHeader } from '../../block.js'
import type { ConsensusEngine, HeaderLookup } from '../../engine.js'
import { LedgerError } from '../../errors.js'
import type { ProducerSchedule, StakeRecord, ValidatorEntry } from '../../staking.js'
import type { LedgerState } from '../../state.js'
import { statementBytes } from '../../statement.js'
import { DEFAULT_PRODUCERS, electProducers, irreversibilityThreshold, shuffleSchedule } from './schedule.js'

const bytes = (length: number): z.ZodType<Uint8Array> => z.instanceof(Uint8Array).refine((value) => value.length === length, `must be ${length} bytes`)

export const dposSealSchema = z.strictObject({
  slot: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** The producer's signature over the block statement (`blockStatement`). */
  signature: bytes(64)
})
export type DposSeal = z.infer<typeof dposSealSchema>

export interface DposParams {
  /** K: the producers of a round. */
  producersMax: number
  blocksPerTurn: number
  blockIntervalMs: number
  blockReward: bigint
  futureTimeLimitMs: number
  genesisTimeMs: number
}

export const defaultDposParams: Readonly<Omit<DposParams, 'genesisTimeMs'>> = Object.freeze({
  producersMax: DEFAULT_PRODUCERS,
  blocksPerTurn: 1,
  blockIntervalMs: 500,
  blockReward: 1_000n,
  futureTimeLimitMs: 2_000
})

/** Blocks the last-irreversible search walks back from the head at most (a stalled LIB costs no more). */
export const LIB_SEARCH_BLOCKS_MAX = 4_096

/** The statement a producer signs for a block: the slot is the round, the value the sealing hash. */
export function blockStatement (header: BlockHeader, slot: number): Parameters<typeof statementBytes>[0] {
  return { chainId: header.chainId, height: header.height, round: slot, step: 'block', value: toHex(sealingHash(header)) }
}

/** Candidates a DPoS round may elect: registered, not jailed. */
function dposCandidates (state: LedgerState): Array<{ address: Address, votes: bigint, record: StakeRecord }> {
  return state.stakeEntries()
    .filter(([, record]) => record.candidate !== null && !record.candidate.tombstoned && record.candidate.jailedUntil === 0)
    .map(([address, record]) => ({ address, votes: record.votesReceived, record }))
}

export class DposEngine implements ConsensusEngine {
  readonly name = 'dpos'
  constructor (readonly params: DposParams) {
    for (const field of ['producersMax', 'blocksPerTurn', 'blockIntervalMs'] as const) {
      if (!Number.isInteger(params[field]) || params[field] < 1) throw new LedgerError('LEDGER_CONFIG_INVALID', `dpos ${field} must be a whole number of at least 1`)
    }
  }

  get roundSlots (): number {
    return this.params.producersMax * this.params.blocksPerTurn
  }

  slotAt (timeMs: number): number {
    return Math.floor((timeMs - this.params.genesisTimeMs) / this.params.blockIntervalMs)
  }

  slotStartMs (slot: number): number {
    return this.params.genesisTimeMs + slot * this.params.blockIntervalMs
  }

  roundOf (slot: number): number {
    return Math.floor(slot / this.roundSlots)
  }

  /** The schedule of `round` for a block whose parent is `parentHash` with the state after it. */
  schedule (state: LedgerState, parentHash: string, round: number): ProducerSchedule {
    const held = state.producerSchedule()
    if (held !== null && held.round === round) return held
    const candidates = dposCandidates(state)
    const elected = electProducers(candidates, this.params.producersMax)
    const byAddress = new Map(candidates.map((candidate) => [candidate.address, candidate]))
    const order = shuffleSchedule(elected, sha256(encodeCanonical({ domain: 'synod/dpos/round/v1', parent: parentHash, round })))
    const producers: ValidatorEntry[] = order.map((address) => {
      const candidate = byAddress.get(address) as { votes: bigint, record: StakeRecord }
      return { address, publicKey: (candidate.record.candidate as NonNullable<StakeRecord['candidate']>).publicKey, power: candidate.votes }
    })
    return { round, producers }
  }

  /** The producer scheduled for `slot` on top of `parentHash` (null when there are no candidates). */
  producerAt (state: LedgerState, parentHash: string, slot: number): ValidatorEntry | null {
    const schedule = this.schedule(state, parentHash, this.roundOf(slot))
    if (schedule.producers.length === 0) return null
    const turn = Math.floor((slot - schedule.round * this.roundSlots) / this.params.blocksPerTurn)
    return schedule.producers[turn % schedule.producers.length] as ValidatorEntry
  }

  private seal (header: BlockHeader): DposSeal {
    const parsed = dposSealSchema.safeParse(header.seal)
    if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a DPoS seal: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
    return parsed.data
  }

  verifyHeader (header: BlockHeader, parent: BlockHeader, ancestors: HeaderLookup, nowMs: number): void {
    const seal = this.seal(header)
    if (seal.slot !== this.slotAt(header.timeMs) || header.timeMs !== this.slotStartMs(seal.slot)) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is not the start of slot ${seal.slot}`)
    if (parent.height > 0 && seal.slot <= this.seal(parent).slot) throw new LedgerError('LEDGER_BAD_TIME', `slot ${seal.slot} is not after the parent's`)
    if (header.timeMs <= parent.timeMs) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is not after the parent's ${parent.timeMs}`)
    if (header.timeMs > nowMs + this.params.futureTimeLimitMs) throw new LedgerError('LEDGER_BAD_TIME', `slot ${seal.slot} starts more than ${this.params.futureTimeLimitMs} ms ahead of this node's clock`)
    // The producer's key: from the state after the parent when it is the head, else from the head's
    // (keys never change); the schedule itself is checked when the block executes.
    const state = ancestors.stateAfter?.(header.parent) ?? ancestors.headState?.()
    const candidate = state?.stakeOf(header.proposer).candidate
    if (candidate == null) throw new LedgerError('LEDGER_BAD_BLOCK', `producer ${header.proposer} is not a candidate`, { reason: 'producer' })
    if (!verify(candidate.publicKey, statementBytes(blockStatement(header, seal.slot)), seal.signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', `the producer's signature over block ${header.height} does not verify`)
  }

  verifyInState (header: BlockHeader, stateBefore: LedgerState): void {
    const seal = this.seal(header)
    const producer = this.producerAt(stateBefore, header.parent, seal.slot)
    if (producer === null || producer.address !== header.proposer) throw new LedgerError('LEDGER_BAD_BLOCK', `slot ${seal.slot} belongs to ${producer?.address ?? 'nobody'}, not ${header.proposer}`, { reason: 'producer' })
  }

  scheduleFor (header: BlockHeader, stateBefore: LedgerState): ProducerSchedule | null {
    return this.schedule(stateBefore, header.parent, this.roundOf(this.seal(header).slot))
  }

  weightOf (_header: BlockHeader): bigint {
    return 1n
  }

  rewardAt (height: number): bigint {
    return height === 0 ? 0n : this.params.blockReward
  }

  /**
   * The last irreversible block: walking down from the head, the first block by which
   * floor(2K/3) + 1 distinct producers have built (0 when none is yet). The chain store keeps it
   * from going back (`ChainStore.finalizedHeight`).
   */
  finalizedHeight (chain: HeaderLookup & { headHeader: () => BlockHeader }): number {
    const producers = chain.headState?.().producerSchedule()?.producers.length ?? 0
    if (producers === 0) return 0
    const threshold = irreversibilityThreshold(producers)
    const seen = new Set<Address>()
    let at: BlockHeader | undefined = chain.headHeader()
    for (let walked = 0; at !== undefined && at.height > 0 && walked < LIB_SEARCH_BLOCKS_MAX; walked++) {
      seen.add(at.proposer)
      if (seen.size >= threshold) return at.height
      at = chain.header(at.parent)
    }
    return 0
  }
}
