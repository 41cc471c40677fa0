/**
 * What the client may retry, and how long it waits in between. The rule is the one a caller
 * would apply by hand: repeat an operation only when repeating it cannot apply it twice.
 *
 * - A `get` changes nothing, so it is retried after any failure that another attempt may cure
 *   (no quorum, overloaded, timeouts, broken connections, a 5xx), though not after a 4xx that
 *   says the request itself is wrong.
 * - A `put`, `delete` or `cas` is retried only after a definite, transient failure: the
 *   connection was refused before anything was sent (CLIENT_UNREACHABLE with `definite`),
 *   STORE_NO_QUORUM or STORE_OVERLOADED. The operation certainly did not apply, so trying again
 *   cannot apply it twice.
 * - A write is never retried after an indefinite failure (STORE_TIMEOUT, a client timeout or a
 *   connection lost after sending, a 5xx other than STORE_NO_QUORUM): it may have applied, and
 *   a blind retry could apply it twice (a put over a newer write, a cas that already won). The
 *   error reaches the caller with `definite: false`.
 */
import type { SynodClientError } from './errors.js'

export type OperationKind = 'get' | 'put' | 'delete' | 'cas'

export interface RetryPolicy {
  /** Attempts in all, the first one included (1: never retry). */
  attempts: number
  /** The shortest wait before a retry, in milliseconds. */
  backoffMsMin: number
  /** The longest wait before a retry, in milliseconds. */
  backoffMsMax: number
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({ attempts: 3, backoffMsMin: 50, backoffMsMax: 1_000 })
/** A bound on `attempts`, so a misconfigured client cannot spin for minutes. */
export const RETRY_ATTEMPTS_MAX = 20

/** Definite failures worth another attempt: the operation did not apply and may succeed later or elsewhere. */
const TRANSIENT_DEFINITE_CODES: ReadonlySet<string> = new Set(['CLIENT_UNREACHABLE', 'STORE_NO_QUORUM', 'STORE_OVERLOADED', 'STORE_DEPENDENCY_UNAVAILABLE'])

/** Whether an operation of this kind may be attempted again after this failure. */
export function isRetryable (kind: OperationKind, error: SynodClientError): boolean {
  if (error.code === 'CLIENT_CLOSED') return false
  if (error.definite) return TRANSIENT_DEFINITE_CODES.has(error.code)
  return kind === 'get'
}

/**
 * The wait before retry number `retry` (1 for the first retry): exponential growth from
 * backoffMsMin, capped at backoffMsMax, drawn uniformly between backoffMsMin and that cap so
 * that clients failing together do not retry together.
 */
export function backoffDelayMs (retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.backoffMsMax, policy.backoffMsMin * 2 ** Math.max(0, retry - 1))
  return Math.round(policy.backoffMsMin + random() * Math.max(0, cap - policy.backoffMsMin))
}

/** Checks a policy a caller supplied, filling in defaults for what it left out. */
export function retryPolicyOf (given: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy = { ...DEFAULT_RETRY_POLICY, ...given }
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1 || policy.attempts > RETRY_ATTEMPTS_MAX) {
    throw new RangeError(`retries.attempts must be an integer in 1..${RETRY_ATTEMPTS_MAX}, not ${policy.attempts}`)
  }
  if (!(policy.backoffMsMin >= 0) || !(policy.backoffMsMax >= policy.backoffMsMin) || !Number.isFinite(policy.backoffMsMax)) {
    throw new RangeError(`retries needs 0 <= backoffMsMin <= backoffMsMax, finite; got ${policy.backoffMsMin} and ${policy.backoffMsMax}`)
  }
  return policy
}
