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
  | 'LEDGER_CONFIG_INVALID'

export class LedgerError extends SynodError<LedgerErrorCode> {}
