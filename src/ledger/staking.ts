/**
 * Staking records and rules shared by the Proof of Stake and Delegated Proof of Stake engines.
 * Each stake holder has one record, keyed by address, in a second Merkle tree of the state: its
 * bonded stake, its unbonding entries (slashable until released), its candidacy (validator or
 * producer: public key, jail term, missed blocks, slashing history) and, for DPoS, its approval
 * votes and the votes it received. The active validator set is part of the state too, so every
 * node agrees on who may sign each height.
 */
import { z } from 'zod'
import { encodeCanonical } from '../core/index.js'
import type { Address } from './address.js'
import { LedgerError } from './errors.js'

export interface StakingParams {
  /** The PoS validator set is re-elected after every block whose height is a multiple of this. */
  epochBlocks: number
  /** The most validators in the PoS set: the top stakers. */
  validatorsMax: number
  /** The least bonded stake a candidate needs to be elected. */
  validatorStakeMin: bigint
  /** Blocks an unbonding entry stays slashable before it can be withdrawn; also the evidence age limit. */
  unbondingBlocks: number
  /** The share of an equivocator's stake (bonded and unbonding) that is burned, per mille. */
  slashPerMille: number
  /** Blocks a validator jailed for downtime stays out before it may unjail. */
  jailBlocks: number
  /** Downtime is counted per window of this many blocks. */
  downtimeWindowBlocks: number
  /** More missed blocks than this in one window jails the validator. */
  downtimeMissedMax: number
}

export const defaultStakingParams: Readonly<StakingParams> = Object.freeze({
  epochBlocks: 100,
  validatorsMax: 100,
  validatorStakeMin: 1_000n,
  unbondingBlocks: 1_000,
  slashPerMille: 50,
  jailBlocks: 100,
  downtimeWindowBlocks: 100,
  downtimeMissedMax: 50
})

/** Unbonding entries one stake holder may have at once. */
export const UNBONDINGS_PER_ACCOUNT_MAX = 16
/** Slashing records kept per candidate (the oldest go first). */
export const SLASHES_PER_CANDIDATE_MAX = 32

export interface Unbonding { amount: bigint, releaseHeight: number }

export interface SlashRecord {
  height: number
  /** `equivocation` or `downtime`. */
  offence: 'equivocation' | 'downtime'
  /** For equivocation: height/round/step of the conflicting statements. */
  at: string
  amount: bigint
}

export interface CandidateRecord {
  publicKey: Uint8Array
  /** 0 when not jailed; otherwise the first height at which an `unjail` is accepted. */
  jailedUntil: number
  /** Jailed for good (equivocation): never elected again. */
  tombstoned: boolean
  /** Missed blocks in the current downtime window. */
  missed: number
  slashes: SlashRecord[]
}

export interface StakeRecord {
  bonded: bigint
  unbonding: Unbonding[]
  candidate: CandidateRecord | null
  /** DPoS approval votes: the producers this holder's bonded stake backs. */
  votes: Address[]
  /** DPoS: the bonded stake of every holder that votes for this candidate. */
  votesReceived: bigint
}

export const EMPTY_STAKE: Readonly<StakeRecord> = Object.freeze({ bonded: 0n, unbonding: [], candidate: null, votes: [], votesReceived: 0n })

export interface ValidatorEntry {
  address: Address
  publicKey: Uint8Array
  power: bigint
}

/** DPoS: a round's producers in their shuffled order (power: the votes they were elected with). */
export interface ProducerSchedule {
  round: number
  producers: readonly ValidatorEntry[]
}

/** The validators for the next block, and the ones that signed the head, which the next block's commit certificate is checked against. */
export interface ValidatorSets {
  current: readonly ValidatorEntry[]
  previous: readonly ValidatorEntry[]
  /** The height after which `current` applies; blocks up to it were signed by `previous`. */
  changedAt: number
  /** DPoS: the schedule of the round of the head block. */
  schedule?: ProducerSchedule
}

export function stakeRecordBytes (record: StakeRecord): Uint8Array {
  return encodeCanonical(record)
}

export function isStakeEmpty (record: StakeRecord): boolean {
  return record.bonded === 0n && record.unbonding.length === 0 && record.candidate === null && record.votes.length === 0 && record.votesReceived === 0n
}

/** Whether a candidate may be elected: registered, not jailed (a jailed one must unjail first), enough stake. */
export function electable (record: StakeRecord, params: StakingParams): boolean {
  const candidate = record.candidate
  return candidate !== null && !candidate.tombstoned && candidate.jailedUntil === 0 && record.bonded >= params.validatorStakeMin
}

/** The PoS election: electable candidates by bonded stake (highest first, ties by address), at most `validatorsMax`. */
export function electValidators (records: Iterable<[Address, StakeRecord]>, params: StakingParams): ValidatorEntry[] {
  const eligible: ValidatorEntry[] = []
  for (const [address, record] of records) {
    if (electable(record, params)) eligible.push({ address, publicKey: (record.candidate as CandidateRecord).publicKey, power: record.bonded })
  }
  eligible.sort((a, b) => (a.power > b.power ? -1 : a.power < b.power ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
  return eligible.slice(0, params.validatorsMax)
}

export function totalPower (validators: readonly ValidatorEntry[]): bigint {
  let sum = 0n
  for (const validator of validators) sum += validator.power
  return sum
}

const amount = z.union([z.bigint(), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().regex(/^\d{1,20}$/)]).transform((value) => BigInt(value))
const count = (min: number): z.ZodNumber => z.number().int().min(min).max(Number.MAX_SAFE_INTEGER)

export const stakingParamsSchema = z.strictObject({
  epochBlocks: count(1),
  validatorsMax: count(1),
  validatorStakeMin: amount,
  unbondingBlocks: count(1),
  slashPerMille: z.number().int().min(0).max(1000),
  jailBlocks: count(1),
  downtimeWindowBlocks: count(1),
  downtimeMissedMax: count(0)
})

/** Checks staking parameters from a config; throws LEDGER_CONFIG_INVALID. */
export function checkStakingParams (candidate: unknown): StakingParams {
  const parsed = stakingParamsSchema.safeParse(candidate)
  if (!parsed.success) throw new LedgerError('LEDGER_CONFIG_INVALID', `staking parameters: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  if (parsed.data.downtimeMissedMax >= parsed.data.downtimeWindowBlocks) throw new LedgerError('LEDGER_CONFIG_INVALID', 'downtimeMissedMax must be below downtimeWindowBlocks')
  // Stake that left must stay slashable as long as it may still be signing: its epoch at least.
  if (parsed.data.unbondingBlocks <= parsed.data.epochBlocks) throw new LedgerError('LEDGER_CONFIG_INVALID', 'unbondingBlocks must be above epochBlocks: a validator keeps its power until the epoch ends, and must stay slashable that long')
  return parsed.data
}
