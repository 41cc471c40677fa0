/**
 * Delegated Proof of Stake scheduling: the producers are the top K candidates by approval votes
 * (ties by address), a round's order is a deterministic shuffle seeded by the chain, each
 * producer holds `blocksPerTurn` consecutive slots of `blockIntervalMs`, and the last
 * irreversible block is the highest one confirmed by floor(2K/3) + 1 distinct producers (it and
 * the blocks built on it).
 */
import { encodeCanonical, sha256 } from '../../../core/index.js'
import { LedgerError } from '../../errors.js'
import type { Address } from '../../tx.js'

export interface Candidate { address: Address, votes: bigint }

export const DEFAULT_PRODUCERS = 21
const SHUFFLE_DOMAIN = 'synod/dpos/shuffle/v1'

/** The top `count` candidates by votes, highest first, ties broken by address; all if fewer. */
export function electProducers (candidates: readonly Candidate[], count = DEFAULT_PRODUCERS): Address[] {
  if (!Number.isInteger(count) || count < 1) throw new LedgerError('LEDGER_CONFIG_INVALID', `producer count must be at least 1, got ${count}`)
  return [...candidates]
    .sort((a, b) => (a.votes > b.votes ? -1 : a.votes < b.votes ? 1 : a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    .slice(0, count)
    .map((candidate) => candidate.address)
}

/** A Fisher-Yates shuffle of `producers` whose every draw comes from SHA-256 of the seed: the same at every node. */
export function shuffleSchedule (producers: readonly Address[], seed: Uint8Array): Address[] {
  const order = [...producers]
  for (let index = order.length - 1; index > 0; index--) {
    const digest = sha256(encodeCanonical({ domain: SHUFFLE_DOMAIN, seed, index }))
    const draw = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0) % BigInt(index + 1)
    const other = Number(draw)
    const held = order[index] as Address
    order[index] = order[other] as Address
    order[other] = held
  }
  return order
}

/** Which slot a time falls in, counting from genesis. */
export function slotAt (timeMs: number, genesisTimeMs: number, blockIntervalMs: number): number {
  return Math.floor((timeMs - genesisTimeMs) / blockIntervalMs)
}

/** The producer of a slot within a round that starts at `roundFirstSlot`. */
export function producerOfSlot (schedule: readonly Address[], slot: number, roundFirstSlot: number, blocksPerTurn: number): Address {
  if (schedule.length === 0) throw new LedgerError('LEDGER_CONFIG_INVALID', 'an empty schedule')
  const turn = Math.floor((slot - roundFirstSlot) / blocksPerTurn)
  return schedule[((turn % schedule.length) + schedule.length) % schedule.length] as Address
}

/** Distinct producers that must confirm a block for it to be irreversible. */
export function irreversibilityThreshold (producerCount: number): number {
  return Math.floor((2 * producerCount) / 3) + 1
}

/**
 * The height of the last irreversible block of a chain given as (height, producer) from the
 * head downwards: the highest block such that it and the blocks above it were produced by at
 * least the threshold of distinct producers. Null when no block is confirmed that widely yet.
 */
export function lastIrreversibleHeight (fromHead: ReadonlyArray<{ height: number, producer: Address }>, producerCount: number): number | null {
  const threshold = irreversibilityThreshold(producerCount)
  const confirmers = new Set<Address>()
  for (const block of fromHead) {
    confirmers.add(block.producer)
    if (confirmers.size >= threshold) return block.height
  }
  return null
}
