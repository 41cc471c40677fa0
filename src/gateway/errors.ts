/**
 * The gateway's own errors. Answers from upstreams pass through untouched (a 409 from a node
 * stays that 409); these are for what went wrong between the client and an upstream, as JSON
 * `{code, message, details}` like every Synod API, with the status below.
 */
import { SynodError } from '../core/index.js'

export type GatewayErrorCode =
  /** No upstream to send to: none configured, or every one tried already (503). */
  | 'GATEWAY_NO_UPSTREAM'
  /** The chosen upstream refused or could not be reached, and no retry was allowed (502). */
  | 'GATEWAY_UPSTREAM_UNREACHABLE'
  /** The upstream closed the connection before it answered in full (502). */
  | 'GATEWAY_UPSTREAM_RESET'
  /** No answer within `requestTimeoutMs` (504). */
  | 'GATEWAY_UPSTREAM_TIMEOUT'
  /** The request body is larger than `requestBodyBytesMax` (413). */
  | 'GATEWAY_BODY_TOO_LARGE'
  /** A request the gateway cannot forward (a malformed path, say) (400). */
  | 'GATEWAY_BAD_REQUEST'
  /** A bad gateway config file or flag. */
  | 'GATEWAY_CONFIG_INVALID'

export class GatewayError extends SynodError<GatewayErrorCode> {}

const statusByCode: Record<GatewayErrorCode, number> = {
  GATEWAY_NO_UPSTREAM: 503,
  GATEWAY_UPSTREAM_UNREACHABLE: 502,
  GATEWAY_UPSTREAM_RESET: 502,
  GATEWAY_UPSTREAM_TIMEOUT: 504,
  GATEWAY_BODY_TOO_LARGE: 413,
  GATEWAY_BAD_REQUEST: 400,
  GATEWAY_CONFIG_INVALID: 400
}

export function gatewayStatusFor (code: GatewayErrorCode): number {
  return statusByCode[code]
}
