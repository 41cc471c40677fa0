/**
 * Proof of Stake as a Synod consensus engine. Blocks are decided by Tendermint rounds
 * (`tendermint.ts`) and are final: the chain store only ever extends its head, every block
 * weighs 1, and a block that does not extend the head is refused. A block's seal is its
 * proposer's signature over the block (with the seal left out) and the commit certificate of its
 * parent: precommits from validators holding more than 2/3 of the parent's voting power. The
 * certificate of the newest block travels beside it until the next block carries it.
 *
 * `verifyCommit` checks a certificate against a validator set alone, as a light client does.
 */
import { z } from 'zod'
import { VerifiedSignatures, toHex, verifyWith } from '../../../core/index.js'
import { addressFromPublicKey, type Address } from '../../address.js'
import { sealingHash, type BlockHeader } from '../../block.js'
import type { ConsensusEngine, HeaderLookup } from '../../engine.js'
import { LedgerError } from '../../errors.js'
import type { ValidatorEntry } from '../../staking.js'
import { statementBytes } from '../../statement.js'

const bytes = (length: number): z.ZodType<Uint8Array> => z.instanceof(Uint8Array).refine((value) => value.length === length, `must be ${length} bytes`)

/** Precommits one certificate may carry. */
export const CERTIFICATE_SIGNATURES_MAX = 1_000

export const commitCertificateSchema = z.strictObject({
  height: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  round: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** The committed block's hash. */
  block: z.string().regex(/^[0-9a-f]{64}$/),
  precommits: z.array(z.strictObject({ publicKey: bytes(32), signature: bytes(64) })).min(1).max(CERTIFICATE_SIGNATURES_MAX)
})
export type CommitCertificate = z.infer<typeof commitCertificateSchema>

export const posSealSchema = z.strictObject({
  /** The parent's commit certificate; null in the first block. */
  lastCommit: commitCertificateSchema.nullable(),
  /** The proposer's signature over the sealing hash. */
  signature: bytes(64)
})
export type PosSeal = z.infer<typeof posSealSchema>

export interface PosParams {
  blockReward: bigint
  futureTimeLimitMs: number
}

export const defaultPosParams: Readonly<PosParams> = Object.freeze({ blockReward: 1_000n, futureTimeLimitMs: 30_000 })

/** More than 2/3 of `total`: the quorum of BFT consensus. */
export function isSupermajority (power: bigint, total: bigint): boolean {
  return power * 3n > total * 2n
}

/** More than 1/3 of `total`: at least one honest validator among them. */
export function isOneThird (power: bigint, total: bigint): boolean {
  return power * 3n > total
}

/**
 * Validator signatures (votes, proposals, seals) a PoS node remembers as verified: a few heights'
 * worth with a hundred validators. About 250 bytes each.
 */
export const STATEMENT_SIGNATURES_KEPT_MAX = 4_096

/**
 * Checks a commit certificate against the validator set that signed its height: every precommit
 * by a distinct member, a valid signature, and together more than 2/3 of the power. Returns the
 * signers' addresses; throws LEDGER_BAD_BLOCK or LEDGER_BAD_SIGNATURE. With `signatures`, a
 * precommit verified there before (as a vote, say) is not verified again.
 */
export function verifyCommit (certificate: CommitCertificate, validators: readonly ValidatorEntry[], chainId: string, signatures?: VerifiedSignatures): Set<Address> {
  const byKey = new Map(validators.map((validator) => [toHex(validator.publicKey), validator]))
  let total = 0n
  for (const validator of validators) total += validator.power
  const statement = statementBytes({ chainId, height: certificate.height, round: certificate.round, step: 'precommit', value: certificate.block })
  const signers = new Set<Address>()
  let power = 0n
  for (const precommit of certificate.precommits) {
    const validator = byKey.get(toHex(precommit.publicKey))
    if (validator === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', `a precommit by ${addressFromPublicKey(precommit.publicKey)}, who is not a validator at height ${certificate.height}`, { reason: 'commit' })
    if (signers.has(validator.address)) throw new LedgerError('LEDGER_BAD_BLOCK', `two precommits by ${validator.address}`, { reason: 'commit' })
    if (!verifyWith(signatures, precommit.publicKey, statement, precommit.signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', `the precommit of ${validator.address} does not verify`)
    signers.add(validator.address)
    power += validator.power
  }
  if (!isSupermajority(power, total)) throw new LedgerError('LEDGER_BAD_BLOCK', `precommits for ${power} of ${total} voting power, not more than 2/3`, { reason: 'commit' })
  return signers
}

export function checkCommitCertificate (candidate: unknown): CommitCertificate {
  const parsed = commitCertificateSchema.safeParse(candidate)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a commit certificate: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  return parsed.data
}

export class PosEngine implements ConsensusEngine {
  readonly name = 'pos'
  /**
   * Validator signatures verified on this node, shared by the header checks and the consensus
   * service: a precommit verified as a vote is not verified again in the next block's
   * certificate, nor a proposer's own seal when it checks its own proposal.
   */
  readonly signatures = new VerifiedSignatures(STATEMENT_SIGNATURES_KEPT_MAX)

  constructor (readonly params: PosParams = defaultPosParams) {}

  verifyHeader (header: BlockHeader, parent: BlockHeader, ancestors: HeaderLookup, nowMs: number): void {
    const parsed = posSealSchema.safeParse(header.seal)
    if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a PoS seal: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
    const seal = parsed.data
    if (header.timeMs <= parent.timeMs) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is not after the parent's ${parent.timeMs}`)
    if (header.timeMs > nowMs + this.params.futureTimeLimitMs) throw new LedgerError('LEDGER_BAD_TIME', `time ${header.timeMs} is more than ${this.params.futureTimeLimitMs} ms ahead of this node's clock`)
    const state = ancestors.stateAfter?.(header.parent)
    if (state === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${header.height} does not extend the finalized head`, { reason: 'not_final_head' })
    const proposer = state.validators().find((validator) => validator.address === header.proposer)
    if (proposer === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', `proposer ${header.proposer} is not a validator at height ${header.height}`, { reason: 'proposer' })
    if (!this.signatures.verify(proposer.publicKey, sealingHash(header), seal.signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', `the proposer's signature over block ${header.height} does not verify`)
    if (header.height === 1) {
      if (seal.lastCommit !== null) throw new LedgerError('LEDGER_BAD_BLOCK', 'the first block carries no commit', { reason: 'commit' })
      return
    }
    if (seal.lastCommit === null) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${header.height} lacks its parent's commit certificate`, { reason: 'commit' })
    if (seal.lastCommit.height !== parent.height || seal.lastCommit.block !== header.parent) throw new LedgerError('LEDGER_BAD_BLOCK', 'the commit certificate is not for the parent', { reason: 'commit' })
    verifyCommit(seal.lastCommit, state.validatorsAt(parent.height), header.chainId, this.signatures)
  }

  /** Every block the chain store holds on its main chain was committed: the head is final. */
  finalizedHeight (chain: { headHeader: () => BlockHeader }): number {
    return chain.headHeader().height
  }

  weightOf (_header: BlockHeader): bigint {
    return 1n
  }

  rewardAt (height: number): bigint {
    return height === 0 ? 0n : this.params.blockReward
  }

  signersOfParent (header: BlockHeader): ReadonlySet<Address> | null {
    const parsed = posSealSchema.safeParse(header.seal)
    if (!parsed.success || parsed.data.lastCommit === null) return null
    return new Set(parsed.data.lastCommit.precommits.map((precommit) => addressFromPublicKey(precommit.publicKey)))
  }
}
