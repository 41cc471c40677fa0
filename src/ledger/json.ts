/**
 * The JSON forms of transactions, blocks and accounts, for the HTTP API and the CLI: bytes as
 * lowercase hex, amounts as decimal strings (they can pass 2^53).
 */
import { fromHex, toHex } from '../core/index.js'
import type { Account } from './account-tree.js'
import type { Block } from './block.js'
import { LedgerError } from './errors.js'
import { parseTxShape, txHash, type SignedTx } from './tx.js'

/** Fields that carry amounts (decimal strings in JSON) and bytes (hex in JSON), wherever they sit in a body. */
const AMOUNT_FIELDS = new Set(['fee', 'amount'])
const BYTES_FIELDS = new Set(['publicKey', 'signature'])

/** Bigints become decimal strings and bytes lowercase hex, all the way down. */
export function toJsonValue (value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return toHex(value)
  if (Array.isArray(value)) return value.map(toJsonValue)
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, toJsonValue(field)]))
  return value
}

/** The reverse of `toJsonValue` for the named fields; what does not convert is left for the schema to refuse. */
function fromJsonValue (value: unknown, key: string | null): unknown {
  if (typeof value === 'string' && key !== null) {
    if (AMOUNT_FIELDS.has(key) && /^\d{1,20}$/.test(value)) return BigInt(value)
    if (BYTES_FIELDS.has(key) && /^(?:[0-9a-f]{2})*$/.test(value)) return fromHex(value)
    return value
  }
  if (Array.isArray(value)) return value.map((item) => fromJsonValue(item, null))
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([field, inner]) => [field, fromJsonValue(inner, field)]))
  return value
}

export type TxJson = Record<string, unknown> & { hash: string }

/** A transaction from its JSON form (amounts as decimal strings, bytes as hex); throws LEDGER_MALFORMED naming the field. */
export function txFromJson (json: unknown): SignedTx {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new LedgerError('LEDGER_MALFORMED', 'a transaction is a JSON object')
  const { hash: _hash, ...rest } = json as Record<string, unknown>
  return parseTxShape(fromJsonValue(rest, null))
}

export function txToJson (tx: SignedTx): TxJson {
  return { hash: txHash(tx), ...(toJsonValue(tx) as Record<string, unknown>) }
}

export function blockToJson (block: Block, hash: string): object {
  return { hash, header: block.header, txs: block.txs.map(txToJson) }
}

export const accountToJson = (account: Account): { balance: string, nonce: number } => ({ balance: account.balance.toString(), nonce: account.nonce })
