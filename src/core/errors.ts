/**
 * Typed errors: one class per subsystem over a union of codes. The HTTP API maps a code to a
 * status and a JSON body `{code, message, details}`. Assertions are for programmer errors only.
 */
export type ErrorDetails = Record<string, unknown>

export class SynodError<Code extends string = string> extends Error {
  readonly code: Code
  readonly details: ErrorDetails

  constructor (code: Code, message: string, details: ErrorDetails = {}) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.details = details
  }

  toJSON (): { code: Code, message: string, details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details }
  }
}

export type CoreErrorCode =
  | 'CORE_DECODE_FAILED'
  | 'CORE_SCHEMA_MISMATCH'
  | 'CORE_UNKNOWN_MESSAGE_TYPE'
  | 'CORE_ENCODE_FAILED'
  | 'CORE_CONFIG_INVALID'
  | 'CORE_BAD_KEY'
  | 'CORE_BAD_LINK_FAULTS'
  /** The node's write-ahead log or LMDB holds bytes that do not check out: it refuses to start. */
  | 'CORE_DISK_CORRUPT'
  | 'CORE_DISK_CLOSED'
  | 'CORE_DISK_KEY_TOO_LARGE'
  /** A value whose record would not fit a write-ahead log frame (a 32-bit length). */
  | 'CORE_DISK_VALUE_TOO_LARGE'

export class CoreError extends SynodError<CoreErrorCode> {}

export type TransportErrorCode =
  | 'TRANSPORT_FRAME_TOO_LARGE'
  | 'TRANSPORT_BAD_FRAME'
  | 'TRANSPORT_UNKNOWN_PEER'
  | 'TRANSPORT_NOT_CONNECTED'
  | 'TRANSPORT_STOPPED'

export class TransportError extends SynodError<TransportErrorCode> {}

export function errorMessage (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** Programmer errors: a broken invariant, never bad input. */
export function assert (condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}
