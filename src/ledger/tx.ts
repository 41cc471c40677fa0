/**
 * Accounts and transactions. An address is the first 20 bytes of SHA-256 of an Ed25519 public
 * key, in hex. A transaction names its chain (no replay across networks), the sender's next
 * nonce (no replay within one), a fee and a typed body; the sender signs the canonical CBOR of
 * everything but the signature, under a domain tag. The staking and voting bodies of the next
 * engines join the `body` union; validation and application dispatch on `body.kind`.
 */
import { z } from 'zod'
import { bytesKey, CBOR_MAJOR, cborText, type CborWriter, encodeCanonical, sha256Hex, sign, toHex, verify, writeCbor, type Ed25519KeyPair } from '../core/index.js'
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
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, 2)
    out.raw(KEY.tx)
    if (!writeTx(out, tx)) return false
    out.raw(KEY.domain)
    out.raw(SIGNING_DOMAIN_TEXT)
    return true
  }) ?? txSigningBytesGeneric(tx)
}

/**
 * `txSigningBytes` of a signed transaction, its signature left out as it is written, without the
 * unsigned copy (every node makes these bytes for every transaction it verifies).
 */
export function signedTxSigningBytes (tx: SignedTx): Uint8Array {
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, 2)
    out.raw(KEY.tx)
    if (!writeTx(out, tx, true)) return false
    out.raw(KEY.domain)
    out.raw(SIGNING_DOMAIN_TEXT)
    return true
  }) ?? txSigningBytesGeneric(withoutSignature(tx))
}

function withoutSignature (tx: SignedTx): UnsignedTx {
  const { signature: _signature, ...unsigned } = tx
  return unsigned
}

/** txSigningBytes through cborg's general encoder: the reference the direct writer must match. */
export function txSigningBytesGeneric (tx: UnsignedTx): Uint8Array {
  return encodeCanonical({ domain: SIGNING_DOMAIN, tx })
}

/** Map keys as encoded; a writer puts them in RFC 8949 order (shorter first, then by character). */
const KEY = Object.freeze({
  tx: cborText('tx'),
  domain: cborText('domain'),
  fee: cborText('fee'),
  body: cborText('body'),
  nonce: cborText('nonce'),
  chainId: cborText('chainId'),
  publicKey: cborText('publicKey'),
  signature: cborText('signature'),
  to: cborText('to'),
  kind: cborText('kind'),
  memo: cborText('memo'),
  amount: cborText('amount'),
  producers: cborText('producers')
})
const SIGNING_DOMAIN_TEXT = cborText(SIGNING_DOMAIN)
/** The kinds of body that are only their kind. */
type KindOnly = 'withdraw' | 'register' | 'unjail'
const KIND_ONLY: ReadonlySet<unknown> = new Set<KindOnly>(['withdraw', 'register', 'unjail'])
const isKindOnly = (kind: unknown): kind is KindOnly => KIND_ONLY.has(kind)

/** An amount as CBOR: a bigint, or a number as the schema's input allows; false for anything else. */
function writeAmount (out: CborWriter, value: unknown): boolean {
  return typeof value === 'bigint' ? out.bigUint(value) : typeof value === 'number' && out.uint(value)
}

/**
 * Writes a transaction (with its signature when it has one, unless `omitSignature`) as
 * `encodeCanonical` would, for the bodies of everyday traffic; false for anything else (an evidence
 * body, an unexpected field), which the caller hands to the general encoder. Every transaction is encoded for its hash and for its
 * signing bytes by every node that receives it: through cborg, the two were about 7% of a PoS
 * node's CPU under load (perf, 1 000 tx/s), now a fifth of that.
 */
function writeTx (out: CborWriter, tx: UnsignedTx | SignedTx, omitSignature = false): boolean {
  const signature = (tx as Partial<SignedTx>).signature
  if (Object.keys(tx).length !== (signature === undefined ? 5 : 6) || !(tx.publicKey instanceof Uint8Array)) return false
  const withSignature = signature !== undefined && !omitSignature
  out.head(CBOR_MAJOR.map, withSignature ? 6 : 5)
  out.raw(KEY.fee)
  if (!writeAmount(out, tx.fee)) return false
  out.raw(KEY.body)
  if (!writeBody(out, tx.body)) return false
  out.raw(KEY.nonce)
  if (!out.uint(tx.nonce)) return false
  out.raw(KEY.chainId)
  if (typeof tx.chainId !== 'string' || !out.text(tx.chainId)) return false
  out.raw(KEY.publicKey)
  out.byteString(tx.publicKey)
  if (withSignature) {
    if (!(signature instanceof Uint8Array)) return false
    out.raw(KEY.signature)
    out.byteString(signature)
  }
  return true
}

function writeBody (out: CborWriter, body: TxBody): boolean {
  const fields = Object.keys(body).length
  switch (body.kind) {
    case 'transfer': {
      const memo = (body as { memo?: unknown }).memo
      if (fields !== (memo === undefined ? 3 : 4) || typeof body.to !== 'string') return false
      out.head(CBOR_MAJOR.map, fields)
      out.raw(KEY.to)
      if (!out.text(body.to)) return false
      out.raw(KEY.kind)
      out.text(body.kind)
      if (memo !== undefined) {
        out.raw(KEY.memo)
        if (typeof memo !== 'string' || !out.text(memo)) return false
      }
      out.raw(KEY.amount)
      return writeAmount(out, body.amount)
    }
    case 'bond':
    case 'unbond':
      if (fields !== 2) return false
      out.head(CBOR_MAJOR.map, 2)
      out.raw(KEY.kind)
      out.text(body.kind)
      out.raw(KEY.amount)
      return writeAmount(out, body.amount)
    case 'vote':
      if (fields !== 2 || !Array.isArray(body.producers)) return false
      out.head(CBOR_MAJOR.map, 2)
      out.raw(KEY.kind)
      out.text(body.kind)
      out.raw(KEY.producers)
      out.head(CBOR_MAJOR.array, body.producers.length)
      return body.producers.every((producer) => typeof producer === 'string' && out.text(producer))
    default:
      if (fields !== 1 || !isKindOnly(body.kind)) return false
      out.head(CBOR_MAJOR.map, 1)
      out.raw(KEY.kind)
      return out.text(body.kind)
  }
}

export function signTx (tx: UnsignedTx, keyPair: Ed25519KeyPair): SignedTx {
  if (toHex(tx.publicKey) !== toHex(keyPair.publicKey)) throw new LedgerError('LEDGER_BAD_SIGNATURE', 'the key pair does not match the transaction public key')
  return { ...tx, signature: sign(keyPair, txSigningBytes(tx)) }
}

/**
 * What is derived from a transaction object, computed once each: a transaction is encoded for its
 * size, its hash, gossip, the transaction root and every block that carries it, and its sender is
 * asked for at every check. Transaction objects are never changed after signing (a change makes a
 * new object), so the cache holds. One weak entry per transaction, not one per derived value: each
 * is an ephemeron the garbage collector must trace specially. Every field is there from the start,
 * in one order: objects that gain their fields in different orders have different hidden classes,
 * and V8's optimized readers of them deoptimize ("wrong map").
 */
class Derived {
  bytes: Uint8Array | undefined = undefined
  hash: string | undefined = undefined
  sender: Address | undefined = undefined
}
const derived = new WeakMap<UnsignedTx, Derived>()

function derivedOf (tx: UnsignedTx): Derived {
  let values = derived.get(tx)
  if (values === undefined) derived.set(tx, values = new Derived())
  return values
}

/** The canonical bytes of a signed transaction: what blocks carry and hashes cover. */
export function encodeTx (tx: SignedTx): Uint8Array {
  const values = derivedOf(tx)
  if (values.bytes === undefined) {
    values.bytes = writeCbor((out) => writeTx(out, tx)) ?? encodeCanonical(tx)
  }
  return values.bytes
}

export function txHash (tx: SignedTx): string {
  const values = derivedOf(tx)
  values.hash ??= sha256Hex(encodeTx(tx))
  return values.hash
}

/** Addresses of recent public keys: the same senders sign transaction after transaction, and each address is a SHA-256. */
const addressesByKey = new Map<string, Address>()
/** Public keys whose addresses are kept; the map starts over when full. */
const ADDRESS_CACHE_ENTRIES_MAX = 65_536

/** The sender's address (computed once per transaction object, and once per public key while it is cached). */
export function senderOf (tx: UnsignedTx): Address {
  const values = derivedOf(tx)
  if (values.sender === undefined) {
    const key = bytesKey(tx.publicKey)
    let sender = addressesByKey.get(key)
    if (sender === undefined) {
      sender = addressFromPublicKey(tx.publicKey)
      if (addressesByKey.size >= ADDRESS_CACHE_ENTRIES_MAX) addressesByKey.clear()
      addressesByKey.set(key, sender)
    }
    values.sender = sender
  }
  return values.sender
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
  const tx = parseTxShape(candidate)
  if (tx.chainId !== chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `transaction for chain ${tx.chainId}, this is ${chainId}`)
  return tx
}

/** A transaction's shape: the everyday shapes without zod's general walk, the rest through zod (which names what is wrong); LEDGER_MALFORMED. */
export function parseTxShape (candidate: unknown): SignedTx {
  const tx = everydayTx(candidate)
  if (tx !== null) return tx
  const parsed = signedTxSchema.safeParse(candidate)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a transaction: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  return parsed.data
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype
const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && !Object.is(value, -0)
const isBytes = (value: unknown, length: number): value is Uint8Array => value instanceof Uint8Array && value.length === length

/** `amount`'s parse for the values it accepts as they are: a bigint or a whole number in range, as a bigint; null for the rest. */
function amountValue (value: unknown): bigint | null {
  const amount = typeof value === 'bigint' ? value : isCount(value) ? BigInt(value) : null
  return amount !== null && amount >= 0n && amount <= AMOUNT_MAX ? amount : null
}

function hasOnlyKeys (value: Record<string, unknown>, count: number): boolean {
  return Object.keys(value).length === count
}

/**
 * `signedTxSchema`'s parse, written out for the everyday shapes (a transfer, bond, unbond, withdraw,
 * register or unjail): the same object zod gives, or null for anything else, which then goes to
 * zod (and gets zod's error message when it is bad). Every node parses every transaction it
 * receives, and zod's general walk was a tenth of that work. test/unit/ledger-tx.test.ts checks it
 * against zod on valid and mutated transactions.
 */
export function everydayTx (candidate: unknown): SignedTx | null {
  if (!isPlainObject(candidate) || !hasOnlyKeys(candidate, 6)) return null
  const { chainId, publicKey, nonce, signature } = candidate
  if (typeof chainId !== 'string' || chainId.length < 1 || chainId.length > 64) return null
  if (!isBytes(publicKey, 32) || !isCount(nonce) || !isBytes(signature, 64)) return null
  const fee = amountValue(candidate.fee)
  const body = everydayBody(candidate.body)
  if (fee === null || body === null) return null
  return { chainId, publicKey, nonce, fee, body, signature }
}

function everydayBody (value: unknown): TxBody | null {
  if (!isPlainObject(value)) return null
  const kind = value.kind
  if (kind === 'transfer') {
    const { to, memo } = value
    if (!hasOnlyKeys(value, memo === undefined ? 3 : 4)) return null
    if (typeof to !== 'string' || !ADDRESS_PATTERN.test(to)) return null
    if (memo !== undefined && (typeof memo !== 'string' || memo.length > MEMO_BYTES_MAX)) return null
    const amount = amountValue(value.amount)
    if (amount === null) return null
    return memo === undefined ? { kind, to, amount } : { kind, to, amount, memo }
  }
  if (kind === 'bond' || kind === 'unbond') {
    const amount = amountValue(value.amount)
    return hasOnlyKeys(value, 2) && amount !== null && amount >= 1n ? { kind, amount } : null
  }
  if (isKindOnly(kind)) return hasOnlyKeys(value, 1) ? { kind } : null
  return null
}

/** The signature checks of `checkTx`: the sender's, and an evidence transaction's two statements. */
export function verifyTxSignatures (tx: SignedTx, chainId: string): void {
  if (!verify(tx.publicKey, signedTxSigningBytes(tx), tx.signature)) throw new LedgerError('LEDGER_BAD_SIGNATURE', 'the signature does not match the transaction')
  if (tx.body.kind === 'evidence') {
    // Evidence is checked whole without the state: both signatures, and that the two conflict.
    checkStatement(tx.body.first)
    checkStatement(tx.body.second)
    if (!conflicting(tx.body.first, tx.body.second)) throw new LedgerError('LEDGER_MALFORMED', 'evidence statements that do not conflict')
    if (tx.body.first.statement.chainId !== chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `evidence for chain ${tx.body.first.statement.chainId}`)
  }
}
