/**
 * Accounts and transactions. An address is the first 20 bytes of SHA-256 of an Ed25519 public
 * key, in hex. A transaction names its chain (no replay across networks), the sender's next
 * nonce (no replay within one), a fee and a typed body; the sender signs the canonical CBOR of
 * everything but the signature, under a domain tag. The staking and voting bodies of the next
 * engines join the `body` union; validation and application dispatch on `body.kind`.
 */
import { z } from 'zod'
import { encodeCanonical, sha256, sign, toHex, verify, type Ed25519KeyPair } from '../core/index.js'
import { ADDRESS_PATTERN, addressFromPublicKey, type Address } from './address.js'
import { LedgerError } from './errors.js'
import { checkStatement, conflicting, signedStatementSchema } from './statement.js'

export { ADDRESS_BYTES, ADDRESS_PATTERN, addressFromPublicKey, type Address } from './address.js'
/** Amounts, fees and balances are whole units below 2^64, carried as bigint. */
export const AMOUNT_MAX = (1n << 64n) - 1n
/** The longest memo a transfer may carry, in bytes. */
export const MEMO_BYTES_MAX = 256
const SIGNING_DOMAIN = 'synod/tx/v1'

/** CBOR decodes integers up to 2^53 as numbers and larger ones as bigints: both become bigint. */
const amount = z.union([z.bigint(), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]).transform((value) => BigInt(value)).pipe(z.bigint().min(0n).max(AMOUNT_MAX))
const address = z.string().regex(ADDRESS_PATTERN)
const bytes = (length: number): z.ZodType<Uint8Array> => z.instanceof(Uint8Array).refine((value) => value.length === length, `must be ${length} bytes`)

export const transferBodySchema = z.strictObject({
  kind: z.literal('transfer'),
  to: address,
  amount,
  memo: z.string().max(MEMO_BYTES_MAX).optional()
})
/** The most producers one stake holder may vote for (approval voting, DPoS). */
export const VOTES_PER_VOTER_MAX = 30

const amountAbove0 = amount.pipe(z.bigint().min(1n))
export const stakingBodySchemas = [
  /** Moves `amount` from the balance into bonded stake (voting power, and the weight of votes). */
  z.strictObject({ kind: z.literal('bond'), amount: amountAbove0 }),
  /** Starts unbonding `amount`: it leaves the power at once, stays slashable until released. */
  z.strictObject({ kind: z.literal('unbond'), amount: amountAbove0 }),
  /** Returns released unbonded stake to the balance. */
  z.strictObject({ kind: z.literal('withdraw') }),
  /** Registers the sender (its public key) as a validator (PoS) or a producer candidate (DPoS). */
  z.strictObject({ kind: z.literal('register') }),
  /** Ends a downtime jailing once its term has passed. */
  z.strictObject({ kind: z.literal('unjail') }),
  /** Sets the sender's approval votes (DPoS), replacing earlier ones; an empty list withdraws them. */
  z.strictObject({ kind: z.literal('vote'), producers: z.array(address).max(VOTES_PER_VOTER_MAX).refine((list) => new Set(list).size === list.length, 'a producer listed twice') }),
  /** Two conflicting statements signed by one key: slashes and jails the signer. */
  z.strictObject({ kind: z.literal('evidence'), first: signedStatementSchema, second: signedStatementSchema })
] as const
export const txBodySchema = z.discriminatedUnion('kind', [transferBodySchema, ...stakingBodySchemas])
export type TxBody = z.infer<typeof txBodySchema>

export const unsignedTxSchema = z.strictObject({
  chainId: z.string().min(1).max(64),
  /** The sender's Ed25519 public key; the sender's address derives from it. */
  publicKey: bytes(32),
  nonce: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  fee: amount,
  body: txBodySchema
})
export const signedTxSchema = unsignedTxSchema.extend({ signature: bytes(64) })

export type UnsignedTx = z.infer<typeof unsignedTxSchema>
export type SignedTx = z.infer<typeof signedTxSchema>

/** The bytes a transaction's signature covers: the domain tag and the transaction without its signature. */
export function txSigningBytes (tx: UnsignedTx): Uint8Array {
  return encodeCanonical({ domain: SIGNING_DOMAIN, tx })
}

export function signTx (tx: UnsignedTx, keyPair: Ed25519KeyPair): SignedTx {
  if (toHex(tx.publicKey) !== toHex(keyPair.publicKey)) throw new LedgerError('LEDGER_BAD_SIGNATURE', 'the key pair does not match the transaction public key')
  return { ...tx, signature: sign(keyPair, txSigningBytes(tx)) }
}

/**
 * Encodings and hashes of transaction objects, computed once each: a transaction is encoded for
 * its size, its hash, gossip, the transaction root and every block that carries it. Transaction
 * objects are never changed after signing (a change makes a new object), so the cache holds.
 */
const encoded = new WeakMap<SignedTx, Uint8Array>()
const hashes = new WeakMap<SignedTx, string>()

/** The canonical bytes of a signed transaction: what blocks carry and hashes cover. */
export function encodeTx (tx: SignedTx): Uint8Array {
  let bytes = encoded.get(tx)
  if (bytes === undefined) {
    bytes = encodeCanonical(tx)
    encoded.set(tx, bytes)
  }
  return bytes
}

export function txHash (tx: SignedTx): string {
  let hash = hashes.get(tx)
  if (hash === undefined) {
    hash = toHex(sha256(encodeTx(tx)))
    hashes.set(tx, hash)
  }
  return hash
}

const senders = new WeakMap<UnsignedTx, Address>()

/** The sender's address (computed once per transaction object). */
export function senderOf (tx: UnsignedTx): Address {
  let sender = senders.get(tx)
  if (sender === undefined) {
    sender = addressFromPublicKey(tx.publicKey)
    senders.set(tx, sender)
  }
  return sender
}

/**
 * Checks shape and signature; throws LEDGER_MALFORMED or LEDGER_BAD_SIGNATURE. `signatureVerified`
 * skips the signatures, for the exact bytes of a transaction whose signatures were verified here
 * before (a block's transactions that the mempool admitted).
 */
export function checkTx (candidate: unknown, chainId: string, options: { signatureVerified?: boolean } = {}): SignedTx {
  const tx = parseTx(candidate, chainId)
  if (options.signatureVerified !== true) verifyTxSignatures(tx, chainId)
  return tx
}

/**
 * The checks of `checkTx` that need no signature verification: the shape and the chain. A node
 * runs them, and the mempool's own cheap checks, before it pays for the signatures.
 */
export function parseTx (candidate: unknown, chainId: string): SignedTx {
  const parsed = signedTxSchema.safeParse(candidate)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a transaction: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  const tx = parsed.data
  if (tx.chainId !== chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `transaction for chain ${tx.chainId}, this is ${chainId}`)
  return tx
}

/** The signature checks of `checkTx`: the sender's, and an evidence transaction's two statements. */
export function verifyTxSignatures (tx: SignedTx, chainId: string): void {
  const { signature, ...unsigned } = tx
  if (!verify(tx.publicKey, txSigningBytes(unsigned), signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', 'the signature does not match the transaction')
  if (tx.body.kind === 'evidence') {
    // Evidence is checked whole without the state: both signatures, and that the two conflict.
    checkStatement(tx.body.first)
    checkStatement(tx.body.second)
    if (!conflicting(tx.body.first, tx.body.second)) throw new LedgerError('LEDGER_MALFORMED', 'evidence statements that do not conflict')
    if (tx.body.first.statement.chainId !== chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `evidence for chain ${tx.body.first.statement.chainId}`)
  }
}
