export { MembershipService, defaultMembershipLimits, quorumSize } from './service.js'
export type {
  MembershipInit, MembershipLimits, MembershipNet, MembershipView, MemberView, MembershipEvent, MembershipListener, MembershipStats
} from './service.js'
export { MembershipError } from './errors.js'
export type { MembershipErrorCode } from './errors.js'
export { PeerScores, defaultScoreLimits, offences } from './scores.js'
export type { Offence, ScoreLimits, PeerScoreView, PenaltyResult } from './scores.js'
export { suspicionTimeoutMs, retransmitLimit } from './suspicion.js'
export { UpdateQueue } from './updates.js'
export * from './messages.js'
