/**
 * Peer scores for misbehaviour (the Byzantine side of membership). Each offence lowers a peer's
 * score by its penalty; the score decays back toward zero with a half-life, so a rare mistake is
 * forgiven and a stream of them is not. At or below the ban threshold the peer is disconnected
 * and refused for a back-off period that doubles with every ban, up to a cap.
 */
import type { NodeId } from '../core/index.js'

export const offences = ['bad_frame', 'malformed_message', 'invalid_signature', 'protocol_violation', 'equivocation'] as const
export type Offence = typeof offences[number]

export interface ScoreLimits {
  /** Penalty of each offence, in score points. */
  penalties: Readonly<Record<Offence, number>>
  /** At or below this score a peer is banned. */
  scoreBanThreshold: number
  /** A score halves toward zero in this time. */
  scoreHalfLifeMs: number
  /** The first ban lasts this long; each further ban twice as long as the one before. */
  banDurationMsMin: number
  banDurationMsMax: number
}

export const defaultScoreLimits: Readonly<ScoreLimits> = Object.freeze({
  penalties: Object.freeze({ bad_frame: 20, malformed_message: 20, invalid_signature: 50, protocol_violation: 10, equivocation: 100 }),
  scoreBanThreshold: -100,
  scoreHalfLifeMs: 60_000,
  banDurationMsMin: 60_000,
  banDurationMsMax: 3_600_000
})

interface PeerRecord {
  score: number
  scoredMs: number
  bans: number
  bannedUntilMs: number
  offences: Partial<Record<Offence, number>>
}

export interface PenaltyResult {
  score: number
  /** Set when this offence started a ban: the clock time it ends. */
  bannedUntilMs: number | null
}

export interface PeerScoreView {
  score: number
  bannedUntilMs: number | null
  bans: number
  offences: Partial<Record<Offence, number>>
}

export class PeerScores {
  private readonly peers = new Map<NodeId, PeerRecord>()

  constructor (private readonly limits: ScoreLimits) {}

  penalize (peer: NodeId, offence: Offence, nowMs: number): PenaltyResult {
    const record = this.record(peer, nowMs)
    record.offences[offence] = (record.offences[offence] ?? 0) + 1
    if (record.bannedUntilMs > nowMs) return { score: record.score, bannedUntilMs: null }
    record.score -= this.limits.penalties[offence]
    if (record.score > this.limits.scoreBanThreshold) return { score: record.score, bannedUntilMs: null }
    const durationMs = Math.min(this.limits.banDurationMsMax, this.limits.banDurationMsMin * 2 ** record.bans)
    record.bans++
    record.bannedUntilMs = nowMs + durationMs
    // A ban served wipes the slate: the peer starts again at zero when it ends.
    record.score = 0
    return { score: this.limits.scoreBanThreshold, bannedUntilMs: record.bannedUntilMs }
  }

  isBanned (peer: NodeId, nowMs: number): boolean {
    return (this.peers.get(peer)?.bannedUntilMs ?? 0) > nowMs
  }

  view (peer: NodeId, nowMs: number): PeerScoreView {
    const record = this.peers.get(peer)
    if (record === undefined) return { score: 0, bannedUntilMs: null, bans: 0, offences: {} }
    this.decay(record, nowMs)
    const banned = record.bannedUntilMs > nowMs
    return { score: banned ? this.limits.scoreBanThreshold : round(record.score), bannedUntilMs: banned ? record.bannedUntilMs : null, bans: record.bans, offences: { ...record.offences } }
  }

  private record (peer: NodeId, nowMs: number): PeerRecord {
    let record = this.peers.get(peer)
    if (record === undefined) {
      record = { score: 0, scoredMs: nowMs, bans: 0, bannedUntilMs: 0, offences: {} }
      this.peers.set(peer, record)
    }
    this.decay(record, nowMs)
    return record
  }

  private decay (record: PeerRecord, nowMs: number): void {
    const elapsedMs = nowMs - record.scoredMs
    if (elapsedMs > 0) record.score *= 0.5 ** (elapsedMs / this.limits.scoreHalfLifeMs)
    record.scoredMs = Math.max(record.scoredMs, nowMs)
  }
}

function round (score: number): number {
  return Math.round(score * 100) / 100
}
