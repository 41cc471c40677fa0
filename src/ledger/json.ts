/**
 * The JSON forms of transactions, blocks and accounts, for the HTTP API and the CLI: bytes as
 * lowercase hex, amounts as decimal strings (they can pass 2^53).
 */
import { z } from 'zod'
import { fromHex, toHex } from '../core/index.js'
import type { Account } from './account-tree.js'
import type { Block } from './block.js'
import { LedgerError } from './errors.js'
import { AMOUNT_MAX, MEMO_BYTES_MAX, ADDRESS_PATTERN, txHash, type SignedTx } from './tx.js'

const amountText = z.string().regex(/^\d{1,20}$/, 'a whole number as a decimal string')
const hexOf = (bytes: number): z.ZodString => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `${bytes * 2} lowercase hex digits`)

export const txJsonSchema = z.strictObject({
  chainId: z.string().min(1).max(64),
  publicKey: hexOf(32),
  nonce: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  fee: amountText,
  body: z.discriminatedUnion('kind', [z.strictObject({ kind: z.literal('transfer'), to: z.string().regex(ADDRESS_PATTERN), amount: amountText, memo: z.string().max(MEMO_BYTES_MAX).optional() })]),
  signature: hexOf(64)
})
export type TxJson = z.infer<typeof txJsonSchema>

function amount (text: string, field: string): bigint {
  const value = BigInt(text)
  if (value > AMOUNT_MAX) throw new LedgerError('LEDGER_MALFORMED', `${field} is above 2^64 - 1`)
  return value
}

/** A transaction from its JSON form; throws LEDGER_MALFORMED naming the field. */
export function txFromJson (json: unknown): SignedTx {
  const parsed = txJsonSchema.safeParse(json)
  if (!parsed.success) throw new LedgerError('LEDGER_MALFORMED', `not a transaction: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  const tx = parsed.data
  return {
    chainId: tx.chainId,
    publicKey: fromHex(tx.publicKey),
    nonce: tx.nonce,
    fee: amount(tx.fee, 'fee'),
    body: { kind: 'transfer', to: tx.body.to, amount: amount(tx.body.amount, 'amount'), ...(tx.body.memo === undefined ? {} : { memo: tx.body.memo }) },
    signature: fromHex(tx.signature)
  }
}

export function txToJson (tx: SignedTx): TxJson & { hash: string } {
  return {
    hash: txHash(tx),
    chainId: tx.chainId,
    publicKey: toHex(tx.publicKey),
    nonce: tx.nonce,
    fee: tx.fee.toString(),
    body: { kind: 'transfer', to: tx.body.to, amount: tx.body.amount.toString(), ...(tx.body.memo === undefined ? {} : { memo: tx.body.memo }) },
    signature: toHex(tx.signature)
  }
}

export function blockToJson (block: Block, hash: string): object {
  return { hash, header: block.header, txs: block.txs.map(txToJson) }
}

export const accountToJson = (account: Account): { balance: string, nonce: number } => ({ balance: account.balance.toString(), nonce: account.nonce })
