/** The store's typed errors (DESIGN.md "Errors"). The HTTP API maps each code to a status. */
import { SynodError } from '../core/index.js'

export type StoreErrorCode =
  /** Too few replicas answered to make the quorum the request's consistency needs (or this side of a partition is the minority). */
  | 'STORE_NO_QUORUM'
  /** The replicas did not answer within the request's deadline; the outcome of a write is unknown. */
  | 'STORE_TIMEOUT'
  /** The coordinator already runs its limit of operations (`operationsInFlightMax`); retry later. */
  | 'STORE_OVERLOADED'
  /** No value is stored under the key. */
  | 'STORE_NOT_FOUND'
  /** A compare-and-set whose expected version or value is not the current one. */
  | 'STORE_CAS_MISMATCH'
  /** A key longer than the store's key limit. */
  | 'STORE_KEY_TOO_LARGE'
  /** A value longer than the store's value limit. */
  | 'STORE_VALUE_TOO_LARGE'
  /** A request that is malformed or fails its schema. */
  | 'STORE_BAD_REQUEST'
  /** A consistency level this store or this operation does not offer. */
  | 'STORE_UNSUPPORTED_CONSISTENCY'
  /** A ring definition that cannot place keys: no members, duplicate ids, bad weights, or a bad replication factor. */
  | 'STORE_RING_INVALID'
  /** A causal read whose session has seen a write of the key that no reachable replica holds yet (definite: nothing changed). */
  | 'STORE_DEPENDENCY_UNAVAILABLE'
  /** A causal session token over `sessionDependenciesMax` keys, or one that does not decode; start a new session. */
  | 'STORE_SESSION_INVALID'

export class StoreError extends SynodError<StoreErrorCode> {}
