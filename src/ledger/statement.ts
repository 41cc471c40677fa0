/**
 * Consensus statements: what a validator or producer signs. A PoS proposal, prevote or
 * precommit, and a DPoS block, are each a statement (chain, height, round, step, value) under a
 * domain tag, so one rule finds equivocation in every engine: two statements signed by one key
 * for the same (chain, height, round, step) with different values. Such a pair is slashing
 * evidence that any node can check with nothing but the two signed statements.
 */
import { z } from 'zod'
import { encodeCanonical, sign, toHex, verifyWith, type Ed25519KeyPair, type VerifiedSignatures } from '../core/index.js'
import { LedgerError } from './errors.js'
import { addressFromPublicKey, type Address } from './address.js'

const STATEMENT_DOMAIN = 'synod/consensus/v1'

export const STATEMENT_STEPS = ['proposal', 'prevote', 'precommit', 'block'] as const
export type StatementStep = typeof STATEMENT_STEPS[number]
/** The order of steps within a round, for "never sign at or below what was signed last". */
export const STEP_ORDER: Readonly<Record<StatementStep, number>> = { proposal: 0, prevote: 1, precommit: 2, block: 3 }

const bytes = (length: number): z.ZodType<Uint8Array> => z.instanceof(Uint8Array).refine((value) => value.length === length, `must be ${length} bytes`)

export const statementSchema = z.strictObject({
  chainId: z.string().min(1).max(64),
  height: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** PoS: the round; DPoS: the slot. */
  round: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  step: z.enum(STATEMENT_STEPS),
  /** A block hash (hex), or null for a vote for no block. */
  value: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  /** Proposals only: the round of the prevotes that justify re-proposing a block, or -1. */
  polRound: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).optional()
})
export type Statement = z.infer<typeof statementSchema>

export const signedStatementSchema = z.strictObject({
  statement: statementSchema,
  publicKey: bytes(32),
  signature: bytes(64)
})
export type SignedStatement = z.infer<typeof signedStatementSchema>

export function statementBytes (statement: Statement): Uint8Array {
  return encodeCanonical({ domain: STATEMENT_DOMAIN, statement })
}

export function signStatement (statement: Statement, keyPair: Ed25519KeyPair): SignedStatement {
  return { statement, publicKey: keyPair.publicKey, signature: sign(keyPair, statementBytes(statement)) }
}

export function statementSigner (signed: SignedStatement): Address {
  return addressFromPublicKey(signed.publicKey)
}

/**
 * Checks shape and signature; throws LEDGER_MALFORMED or LEDGER_BAD_SIGNATURE. With `signatures`,
 * a signature verified there before is not verified again.
 */
export function checkStatement (candidate: unknown, signatures?: VerifiedSignatures): SignedStatement {
  const parsed = signedStatementSchema.safeParse(candidate)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a signed statement: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  const message = statementBytes(parsed.data.statement)
  if (!verifyWith(signatures, parsed.data.publicKey, message, parsed.data.signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', 'the statement signature does not verify')
  return parsed.data
}

/**
 * Same signer, chain, round and step (and height, but for DPoS blocks, where the round is the
 * slot: two blocks for one slot conflict at any heights), different values: equivocation.
 */
export function conflicting (first: SignedStatement, second: SignedStatement): boolean {
  const a = first.statement
  const b = second.statement
  const sameHeight = a.step === 'block' || a.height === b.height
  return toHex(first.publicKey) === toHex(second.publicKey) && a.chainId === b.chainId && sameHeight && a.round === b.round && a.step === b.step && a.value !== b.value
}

/** The key one offence is recorded under, so the same evidence cannot slash twice. */
export function offenceKey (statement: Statement): string {
  return statement.step === 'block' ? `slot ${statement.round}/block` : `${statement.height}/${statement.round}/${statement.step}`
}
