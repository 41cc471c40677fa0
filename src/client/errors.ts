/**
 * The client's typed error (DESIGN.md "Errors"): the server's code when a node answered with
 * one, or a CLIENT_* code when no usable answer came back, and always whether the operation
 * certainly did not apply (`definite`), which is what decides if it may be retried.
 */
import { SynodError, type ErrorDetails } from '../core/index.js'
import type { StoreErrorCode } from '../store/index.js'

export type ClientOnlyErrorCode =
  /**
   * No answer from the node. With `definite` true the connection was never made (refused, no
   * route, connect timeout), so nothing was sent; with `definite` false the connection broke
   * after the request went out (reset, closed), so a write may or may not have applied.
   */
  | 'CLIENT_UNREACHABLE'
  /** The client's own deadline (`timeoutMs`) passed after the request was sent: the outcome is unknown. */
  | 'CLIENT_TIMEOUT'
  /** The node answered something this client cannot read (not the JSON or headers the API promises). */
  | 'CLIENT_BAD_RESPONSE'
  /** The client was closed before or while the operation ran. */
  | 'CLIENT_CLOSED'

/**
 * A store code (`STORE_NO_QUORUM`, ...), a client code, or any other code a node's HTTP layer
 * answers with (`HTTP_BAD_REQUEST`, `HTTP_INTERNAL`, ...).
 */
export type SynodClientErrorCode = ClientOnlyErrorCode | StoreErrorCode | (string & Record<never, never>)

export interface SynodClientErrorInit {
  /** True when the operation certainly did not apply. */
  definite: boolean
  /** The HTTP status of the answer; null when no answer came. */
  status?: number | null
  /** The node API base URL the failed attempt went to. */
  endpoint?: string | null
  /** How many attempts the operation made, this one included. */
  attempts?: number
  details?: ErrorDetails
}

export class SynodClientError extends SynodError<SynodClientErrorCode> {
  /**
   * True when the operation certainly did not apply (STORE_NO_QUORUM, STORE_OVERLOADED, any 4xx,
   * a connection refused before anything was sent). False when it may or may not have applied
   * (STORE_TIMEOUT, a client timeout or a broken connection after sending, a 5xx other than
   * STORE_NO_QUORUM): read the key before deciding what to do next.
   */
  readonly definite: boolean
  readonly status: number | null
  readonly endpoint: string | null
  readonly attempts: number

  constructor (code: SynodClientErrorCode, message: string, init: SynodClientErrorInit) {
    super(code, message, init.details ?? {})
    this.definite = init.definite
    this.status = init.status ?? null
    this.endpoint = init.endpoint ?? null
    this.attempts = init.attempts ?? 1
  }

  /** The same error, noting how many attempts the operation made in all. */
  withAttempts (attempts: number): SynodClientError {
    if (attempts === this.attempts) return this
    return new SynodClientError(this.code, this.message, { definite: this.definite, status: this.status, endpoint: this.endpoint, attempts, details: this.details })
  }

  override toJSON (): { code: SynodClientErrorCode, message: string, details: ErrorDetails, definite: boolean, status: number | null, endpoint: string | null, attempts: number } {
    return { ...super.toJSON(), definite: this.definite, status: this.status, endpoint: this.endpoint, attempts: this.attempts }
  }
}

/** Codes that say the operation did not apply whatever the HTTP status. */
const DEFINITE_SERVER_CODES: ReadonlySet<string> = new Set(['STORE_NO_QUORUM', 'STORE_OVERLOADED', 'STORE_DEPENDENCY_UNAVAILABLE'])
/** Codes that say the outcome is unknown whatever the HTTP status. */
const INDEFINITE_SERVER_CODES: ReadonlySet<string> = new Set(['STORE_TIMEOUT'])

/**
 * Whether a node's error answer means the operation certainly did not apply: the store's
 * definite codes, and any 4xx (the request was refused before it ran). Any other 5xx
 * (STORE_TIMEOUT, HTTP_INTERNAL, a proxy's 502) leaves the outcome unknown.
 */
export function isDefiniteAnswer (status: number, code: string): boolean {
  if (DEFINITE_SERVER_CODES.has(code)) return true
  if (INDEFINITE_SERVER_CODES.has(code)) return false
  return status >= 400 && status < 500
}
