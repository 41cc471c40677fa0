/** Membership's typed errors (DESIGN.md "Errors"). */
import { SynodError } from '../core/index.js'

export type MembershipErrorCode =
  /** This node cannot reach a strict majority of the configured members. */
  | 'MEMBERSHIP_NO_QUORUM'
  | 'MEMBERSHIP_UNKNOWN_MEMBER'
  | 'MEMBERSHIP_CONFIG_INVALID'

export class MembershipError extends SynodError<MembershipErrorCode> {}
