/** The ledger's typed errors (DESIGN.md "Errors"). */
import { SynodError } from '../core/index.js'

export type LedgerErrorCode =
  /** Bytes that are not a well-formed header, block or transaction. */
  | 'LEDGER_MALFORMED'
  /** A proof-of-work header whose hash is above its target. */
  | 'LEDGER_BAD_WORK'
  /** Compact target bits that are negative, overflow, zero, above the limit, or not the expected ones. */
  | 'LEDGER_BAD_BITS'
  /** A header whose parent is not the block before it. */
  | 'LEDGER_BAD_PARENT'
  /** A timestamp not above the median of the previous blocks, or too far in the future. */
  | 'LEDGER_BAD_TIME'
  /** A signature that does not verify against the signer's key. */
  | 'LEDGER_BAD_SIGNATURE'
  /** A transaction or block for another chain. */
  | 'LEDGER_WRONG_CHAIN'
  /** A block that breaks a rule: limits, transaction root, a transaction that cannot execute, state root. */
  | 'LEDGER_BAD_BLOCK'
  /** Mempool refusals, one code per reason. */
  | 'LEDGER_TX_DUPLICATE'
  | 'LEDGER_TX_TOO_LARGE'
  | 'LEDGER_TX_FEE_TOO_LOW'
  /** The nonce was used by an earlier transaction of the sender. */
  | 'LEDGER_TX_NONCE_TOO_LOW'
  /** The nonce is too far ahead of the sender's account nonce. */
  | 'LEDGER_TX_NONCE_GAP'
  /** A replacement whose fee does not beat the held transaction by the minimum bump. */
  | 'LEDGER_TX_UNDERPRICED'
  | 'LEDGER_TX_SENDER_LIMIT'
  | 'LEDGER_TX_INSUFFICIENT_FUNDS'
  /** The pool is full and the transaction is worth no more than what it could evict (see `Mempool`). */
  | 'LEDGER_TX_POOL_FULL'
  | 'LEDGER_CONFIG_INVALID'
  /** A compact block names transactions this node lacks, and the peer that sent it did not supply them (in time, or at all). */
  | 'LEDGER_TXS_UNAVAILABLE'

export class LedgerError extends SynodError<LedgerErrorCode> {}
