/**
 * Proof of Stake proposer selection: the proposer of (height, round) is drawn in proportion to
 * voting power from a seed every honest node derives from the chain (never a local random
 * generator), in O(log n): validators in a canonical order with cumulative power, the seed
 * reduced modulo the total, a binary search. The seed is 256 bits and the total below 2^64 x n,
 * so the modulo bias is below 2^-180.
 */
import { encodeCanonical, sha256 } from '../../../core/index.js'
import { LedgerError } from '../../errors.js'
import type { Address } from '../../tx.js'

export interface WeightedValidator {
  address: Address
  /** Voting power (bonded stake); zero or less never proposes. */
  power: bigint
}

const PROPOSER_DOMAIN = 'synod/pos/proposer/v1'

/** The seed of (height, round) on top of `parentHash`: the same at every honest node. */
export function proposerSeed (parentHash: string, height: number, round: number): Uint8Array {
  return sha256(encodeCanonical({ domain: PROPOSER_DOMAIN, parent: parentHash, height, round }))
}

export class ProposerSelector {
  /** By address, with power above zero. */
  readonly validators: readonly WeightedValidator[]
  /** cumulative[i] = sum of the powers of validators 0..i. */
  private readonly cumulative: bigint[]
  readonly totalPower: bigint

  constructor (validators: readonly WeightedValidator[]) {
    const seen = new Set<Address>()
    for (const validator of validators) {
      if (seen.has(validator.address)) throw new LedgerError('LEDGER_CONFIG_INVALID', `validator ${validator.address} listed twice`)
      seen.add(validator.address)
    }
    this.validators = validators.filter((validator) => validator.power > 0n).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
    if (this.validators.length === 0) throw new LedgerError('LEDGER_CONFIG_INVALID', 'no validator has voting power')
    let sum = 0n
    this.cumulative = this.validators.map((validator) => (sum += validator.power))
    this.totalPower = sum
  }

  /** The proposer for a seed (see `proposerSeed`). */
  proposer (seed: Uint8Array): Address {
    const draw = seedNumber(seed) % this.totalPower
    // The first validator whose cumulative power exceeds the draw.
    let low = 0
    let high = this.cumulative.length - 1
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((this.cumulative[middle] as bigint) > draw) high = middle
      else low = middle + 1
    }
    return (this.validators[low] as WeightedValidator).address
  }
}

function seedNumber (seed: Uint8Array): bigint {
  let value = 0n
  for (const byte of seed) value = (value << 8n) | BigInt(byte)
  return value
}
