/**
 * The overlay's typed errors (DESIGN.md "Errors"): one class over a union of codes, so callers
 * and the HTTP API can tell a bad topology from an unreachable destination.
 */
import { SynodError } from '../core/index.js'

export type NetErrorCode =
  | 'NET_TOPOLOGY_INVALID'
  | 'NET_UNREACHABLE'
  | 'NET_HOP_LIMIT'
  | 'NET_NOT_A_NEIGHBOUR'
  | 'NET_NOT_A_MEMBER'
  | 'NET_BAD_REQUEST'

export class NetError extends SynodError<NetErrorCode> {}
