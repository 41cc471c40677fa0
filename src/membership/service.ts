/**
 * Membership: SWIM failure detection with Lifeguard's refinements, quorum and partition
 * awareness, and peer scores. See docs/membership.md for the guarantees and their bounds.
 *
 * Each protocol period this node probes one member (a shuffled round robin), directly and, when
 * the direct probe times out, through `indirectProbes` helpers. A member that answers neither is
 * suspected; a suspicion that nobody refutes within the (Lifeguard, confirmation-shortened)
 * timeout becomes a death. A member refutes a suspicion about itself by raising its incarnation.
 * Every message carries a few membership updates; fresh updates are also pushed at once to
 * `gossipFanout` random members, so a change reaches everyone in a few network hops while the
 * steady load stays at one probe and one ack per node per period, whatever the cluster size.
 *
 * Lifeguard's local health awareness: a node that misses acks it should have had (no nacks from
 * helpers), has to refute suspicions about itself, or finds its own timers firing late (it was
 * paused) raises its awareness score, which stretches its probe interval and timeout, and a
 * probe whose timers fired late is ignored rather than turned into an accusation.
 */
import type { Env, LinkState, Message, NodeId, Service, SynodError, TimerId } from '../core/index.js'
import { MembershipError } from './errors.js'
import {
  membershipMessages, UPDATES_PER_MESSAGE_MAX,
  type MemberAck, type MemberGossip, type MemberNack, type MemberPing, type MemberPingReq, type MemberState, type MemberSync, type MemberUpdate
} from './messages.js'
import { PeerScores, defaultScoreLimits, type Offence, type ScoreLimits } from './scores.js'
import { retransmitLimit, suspicionTimeoutMs } from './suspicion.js'
import { UpdateQueue } from './updates.js'

export interface MembershipLimits extends ScoreLimits {
  /** One member is probed per protocol period (times the awareness multiplier). */
  probeIntervalMs: number
  /** Wait for a direct ack before asking helpers (times the awareness multiplier). */
  probeTimeoutMs: number
  /** Helpers asked to probe a member that did not answer directly. */
  indirectProbes: number
  /** Suspicion timeout once `suspicionConfirmationsExpected` other members confirm it. */
  suspicionTimeoutMsMin: number
  /** Suspicion timeout with no confirmation. */
  suspicionTimeoutMsMax: number
  suspicionConfirmationsExpected: number
  /** Interval of the gossip timer that re-sends pending updates. */
  gossipIntervalMs: number
  /** Members each gossip round (and each fresh update) is sent to. */
  gossipFanout: number
  /** Each update is passed on `retransmitMultiplier * ceil(log10(n + 1))` times by each node. */
  retransmitMultiplier: number
  /** Updates carried by one message. */
  updatesPerMessageMax: number
  /** Upper bound of the local health (awareness) score; intervals stretch by (1 + score). */
  awarenessMax: number
  /** A timer firing this much later than due means this node itself was stalled. */
  stallToleranceMs: number
  /** Indirect probes this node runs for others at once. */
  helperProbesMax: number
  /** After `leave`, gossip continues this long before the caller should stop the node. */
  leavePropagationMs: number
  /** Interval of the full-view exchange with one random member (anti-entropy). */
  syncIntervalMs: number
}

export const defaultMembershipLimits: Readonly<MembershipLimits> = Object.freeze({
  ...defaultScoreLimits,
  probeIntervalMs: 1_000,
  probeTimeoutMs: 400,
  indirectProbes: 3,
  suspicionTimeoutMsMin: 2_000,
  suspicionTimeoutMsMax: 6_000,
  suspicionConfirmationsExpected: 3,
  gossipIntervalMs: 200,
  gossipFanout: 3,
  retransmitMultiplier: 4,
  updatesPerMessageMax: 16,
  awarenessMax: 8,
  stallToleranceMs: 250,
  helperProbesMax: 256,
  leavePropagationMs: 500,
  syncIntervalMs: 10_000
})

/** What membership needs from the overlay: routed sends to any member and handlers by type. */
export interface MembershipNet {
  /** Sends to any member; throws when there is no live path now. */
  send (to: NodeId, message: Message): void
  onRouted (type: string, handler: (message: Message, delivery: { origin: NodeId, hops: number }) => void): void
}

export interface MembershipInit {
  net: MembershipNet
  limits?: Partial<MembershipLimits>
}

export interface MemberView {
  id: NodeId
  state: MemberState
  incarnation: number
  /** Clock time this node last received a message from the member, or null. */
  lastHeardMs: number | null
  /** Clock time the member entered its current state in this node's view. */
  stateSinceMs: number
  /** Clock time at which an unrefuted suspicion makes the member dead, or null. */
  suspicionDeadlineMs: number | null
  suspicionConfirmations: number
  /** Whether this node counts the member as reachable now (alive and not banned). */
  reachable: boolean
  score: number
  bannedUntilMs: number | null
}

export interface MembershipView {
  self: NodeId
  incarnation: number
  hasQuorum: boolean
  /** Members this node can reach, itself included. */
  reachable: NodeId[]
  /** Members needed for a quorum: a strict majority of the configured members. */
  quorumSize: number
  awareness: number
  members: MemberView[]
}

export type MembershipEvent =
  | { kind: 'state', member: NodeId, from: MemberState, to: MemberState, incarnation: number, atMs: number }
  | { kind: 'quorum', hasQuorum: boolean, reachable: number, atMs: number }
  | { kind: 'ban', member: NodeId, untilMs: number, offence: Offence, atMs: number }

export type MembershipListener = (event: MembershipEvent) => void

export interface MembershipStats {
  messagesSent: Record<string, number>
  messagesReceived: Record<string, number>
  probes: number
  probesFailed: number
  /** Probes whose timers fired late because this node stalled: no verdict was taken. */
  probesInconclusive: number
  indirectProbesSent: number
  /** Probes started out of turn because the link to the member dropped. */
  probesOnLinkLoss: number
  suspicionsRaised: number
  refutations: number
  /** Outdated accusations answered with what this node knows. */
  corrections: number
  /** Outdated accusations of this node answered with its current record. */
  reannouncements: number
  declaredDead: number
  /** Sends that found no route to the member. */
  sendsUnroutable: number
  /** Messages from banned peers, ignored. */
  ignoredFromBanned: number
  violations: number
  /** Violations in messages that crossed other nodes, so their sender cannot be proven. */
  violationsUnattributed: number
  penalties: number
  bans: number
}

interface MemberRecord {
  id: NodeId
  state: MemberState
  incarnation: number
  lastHeardMs: number | null
  stateSinceMs: number
  /** Who made the claim this record holds (for `left`, the member itself). */
  claimedBy: NodeId
  suspicion: Suspicion | null
}

interface Suspicion {
  incarnation: number
  startedMs: number
  confirmations: Set<NodeId>
  timer: TimerId | null
  deadlineMs: number
  /** The expiry already fired late once and was given a grace period. */
  graced: boolean
  /** This node has told the others it suspects the member too. */
  accused: boolean
}

interface Probe {
  seq: number
  target: NodeId
  acked: boolean
  helpers: Set<NodeId>
  nacks: number
  /** A timer of this probe fired late: this node stalled, so no verdict. */
  stalled: boolean
  timers: TimerId[]
}

interface HelperProbe { requester: NodeId, requesterSeq: number, target: NodeId, nacked: boolean, timers: TimerId[] }

const INCARNATION_KEY = 'membership/incarnation'
/** Helpers send a nack at this share of the probe timeout (Lifeguard). */
const NACK_TIMEOUT_SHARE = 0.8

export class MembershipService implements Service {
  readonly name = 'membership'
  readonly messages = membershipMessages
  private env: Env | null = null
  private readonly limits: MembershipLimits
  private readonly scores: PeerScores
  private readonly records = new Map<NodeId, MemberRecord>()
  private readonly probes = new Map<number, Probe>()
  private readonly helperProbes = new Map<number, HelperProbe>()
  private readonly listeners: MembershipListener[] = []
  private queue: UpdateQueue | null = null
  private incarnation = 0
  private awareness = 0
  private seq = 0
  private roundRobin: NodeId[] = []
  private probeTimer: TimerId | null = null
  private gossipTimer: TimerId | null = null
  private syncTimer: TimerId | null = null
  private leaving = false
  private quorum = false
  private gossipFlushPending = false
  /** While a message is read: the corrections its sender will get in one reply. */
  private corrections: { to: NodeId, updates: MemberUpdate[] } | null = null
  private lastSoonFlushMs = Number.NEGATIVE_INFINITY
  private startedMs = 0
  private readonly counters: MembershipStats = {
    messagesSent: {}, messagesReceived: {}, probes: 0, probesFailed: 0, probesInconclusive: 0, indirectProbesSent: 0,
    probesOnLinkLoss: 0, suspicionsRaised: 0, refutations: 0, corrections: 0, reannouncements: 0, declaredDead: 0, sendsUnroutable: 0, ignoredFromBanned: 0,
    violations: 0, violationsUnattributed: 0, penalties: 0, bans: 0
  }

  constructor (private readonly init: MembershipInit) {
    this.limits = { ...defaultMembershipLimits, ...init.limits }
    if (this.limits.updatesPerMessageMax > UPDATES_PER_MESSAGE_MAX) {
      throw new MembershipError('MEMBERSHIP_CONFIG_INVALID', `updatesPerMessageMax ${this.limits.updatesPerMessageMax} is over the wire limit ${UPDATES_PER_MESSAGE_MAX}`)
    }
    if (this.limits.suspicionTimeoutMsMin > this.limits.suspicionTimeoutMsMax) {
      throw new MembershipError('MEMBERSHIP_CONFIG_INVALID', `suspicionTimeoutMsMin ${this.limits.suspicionTimeoutMsMin} exceeds suspicionTimeoutMsMax ${this.limits.suspicionTimeoutMsMax}`)
    }
    this.scores = new PeerScores(this.limits)
    for (const type of membershipMessages.map((schema) => schema.type)) {
      init.net.onRouted(type, (message, delivery) => { this.receive(message, delivery.origin, delivery.hops) })
    }
  }

  start (env: Env): void {
    this.env = env
    this.startedMs = env.now()
    this.queue = new UpdateQueue(() => retransmitLimit(this.limits.retransmitMultiplier, env.members.length))
    // Each boot takes a higher incarnation than any before it, so the cluster takes its word over
    // what it remembers of the previous boot.
    const stored = env.disk.get(INCARNATION_KEY)
    this.incarnation = (stored === undefined ? 0 : decodeCount(stored)) + 1
    env.disk.put(INCARNATION_KEY, encodeCount(this.incarnation))
    env.disk.sync(() => {})
    for (const member of env.members) {
      if (member === env.self) continue
      // Not yet heard from: suspected locally (not gossiped), dead if nothing is heard in time.
      const record: MemberRecord = { id: member, state: 'suspect', incarnation: 0, lastHeardMs: null, stateSinceMs: env.now(), claimedBy: env.self, suspicion: null }
      this.records.set(member, record)
      this.startSuspicion(record, 0, this.limits.suspicionTimeoutMsMax)
    }
    this.queue.enqueue({ member: env.self, state: 'alive', incarnation: this.incarnation, from: env.self })
    this.quorum = this.computeQuorum()
    this.scheduleProbe(env.random.int(0, this.limits.probeIntervalMs))
    this.gossipTimer = env.setTimer(this.limits.gossipIntervalMs, () => { this.gossipTick() })
    // A (re)started node compares views early, then at a jittered interval.
    this.scheduleSync(this.limits.probeIntervalMs + env.random.int(0, this.limits.probeIntervalMs))
    env.log.info({ incarnation: this.incarnation, members: env.members.length }, 'membership started')
  }

  stop (): void {
    const env = this.env
    if (env === null) return
    if (this.probeTimer !== null) env.clearTimer(this.probeTimer)
    if (this.gossipTimer !== null) env.clearTimer(this.gossipTimer)
    if (this.syncTimer !== null) env.clearTimer(this.syncTimer)
    this.syncTimer = null
    for (const probe of this.probes.values()) for (const timer of probe.timers) env.clearTimer(timer)
    for (const helper of this.helperProbes.values()) for (const timer of helper.timers) env.clearTimer(timer)
    for (const record of this.records.values()) this.clearSuspicion(record)
    this.probes.clear()
    this.helperProbes.clear()
    this.probeTimer = null
    this.gossipTimer = null
    this.env = null
  }

  /** Subscribes to state, quorum and ban events; returns the unsubscribe function. */
  onChange (listener: MembershipListener): () => void {
    this.listeners.push(listener)
    return () => {
      const index = this.listeners.indexOf(listener)
      if (index >= 0) this.listeners.splice(index, 1)
    }
  }

  /** True when this node reaches a strict majority of the configured members, itself included. */
  hasQuorum (): boolean {
    return this.quorum
  }

  /** Throws `MEMBERSHIP_NO_QUORUM` unless this node has a quorum; for services that need one. */
  requireQuorum (operation: string): void {
    if (this.quorum) return
    const env = this.requireEnv()
    const reachable = this.reachable()
    throw new MembershipError('MEMBERSHIP_NO_QUORUM', `${operation} needs a quorum: this node reaches ${reachable.length} of ${env.members.length} members, ${quorumSize(env.members.length)} needed`, {
      reachable, members: env.members.length, quorumSize: quorumSize(env.members.length)
    })
  }

  /** Members this node can reach now, itself included, sorted. */
  reachable (): NodeId[] {
    const env = this.env
    if (env === null) return []
    return env.members.filter((member) => member === env.self || this.isReachable(member))
  }

  stateOf (member: NodeId): MemberState | undefined {
    if (member === this.env?.self) return this.leaving ? 'left' : 'alive'
    return this.records.get(member)?.state
  }

  isBanned (peer: NodeId): boolean {
    return this.env !== null && this.scores.isBanned(peer, this.env.now())
  }

  view (): MembershipView {
    const env = this.requireEnv()
    const now = env.now()
    const members: MemberView[] = env.members.map((id) => {
      const score = this.scores.view(id, now)
      if (id === env.self) {
        return { id, state: this.leaving ? 'left' : 'alive', incarnation: this.incarnation, lastHeardMs: now, stateSinceMs: this.startedMs, suspicionDeadlineMs: null, suspicionConfirmations: 0, reachable: true, score: score.score, bannedUntilMs: null }
      }
      const record = this.records.get(id) as MemberRecord
      return {
        id,
        state: record.state,
        incarnation: record.incarnation,
        lastHeardMs: record.lastHeardMs,
        stateSinceMs: record.stateSinceMs,
        suspicionDeadlineMs: record.suspicion?.deadlineMs ?? null,
        suspicionConfirmations: record.suspicion?.confirmations.size ?? 0,
        reachable: this.isReachable(id),
        score: score.score,
        bannedUntilMs: score.bannedUntilMs
      }
    })
    return { self: env.self, incarnation: this.incarnation, hasQuorum: this.quorum, reachable: this.reachable(), quorumSize: quorumSize(env.members.length), awareness: this.awareness, members }
  }

  /**
   * Lowers a peer's score for an offence another service found (an invalid signature, an
   * equivocation); bans it when the score falls to the threshold.
   */
  penalize (peer: NodeId, offence: Offence, reason: string): void {
    const env = this.requireEnv()
    if (peer === env.self || !env.members.includes(peer)) return
    const result = this.scores.penalize(peer, offence, env.now())
    this.counters.penalties++
    env.log.warn({ peer, offence, reason, score: result.score }, 'peer penalized')
    if (result.bannedUntilMs === null) return
    this.counters.bans++
    env.refusePeer(peer, result.bannedUntilMs)
    env.log.warn({ peer, offence, untilMs: result.bannedUntilMs, forMs: result.bannedUntilMs - env.now() }, 'peer banned: disconnected and refused')
    this.emit({ kind: 'ban', member: peer, untilMs: result.bannedUntilMs, offence, atMs: env.now() })
    this.checkQuorum()
    env.setTimer(result.bannedUntilMs - env.now(), () => { this.checkQuorum() })
  }

  /**
   * Announces a graceful leave: the other members mark this node `left` instead of suspecting
   * it. `done` is called once the announcement has had `leavePropagationMs` to spread.
   */
  leave (done: () => void): void {
    const env = this.requireEnv()
    this.leaving = true
    const update: MemberUpdate = { member: env.self, state: 'left', incarnation: this.incarnation, from: env.self }
    this.queue?.enqueue(update)
    this.gossipNow()
    env.log.info({ incarnation: this.incarnation }, 'leaving the cluster')
    env.setTimer(this.limits.leavePropagationMs, done)
  }

  onMessage (from: NodeId, message: Message): void {
    // Membership messages travel routed; one that arrives bare on a link is a protocol violation.
    this.violation(from, 1, `bare ${message.type} outside a routed envelope`)
  }

  onLinkChange (peer: NodeId, state: LinkState): void {
    const record = this.records.get(peer)
    if (record === undefined || this.env === null || this.leaving) return
    // A dropped connection is a hint, never a verdict: probe now instead of waiting for the turn.
    // A connection that comes back to a member we hold dead lets it hear so and refute.
    if ((state === 'disconnected' && record.state === 'alive') || (state === 'connected' && record.state !== 'alive')) {
      if (state === 'disconnected') this.counters.probesOnLinkLoss++
      this.probe(record)
    }
  }

  onPeerMisbehaved (peer: NodeId, error: SynodError): void {
    if (this.env === null) return
    this.penalize(peer, 'bad_frame', `${error.code}: ${error.message}`)
  }

  stats (): MembershipStats {
    return { ...this.counters, messagesSent: { ...this.counters.messagesSent }, messagesReceived: { ...this.counters.messagesReceived } }
  }

  /** Updates still waiting to be passed on: zero once news has spread and the cluster is quiet. */
  updatesQueued (): number {
    return this.queue?.size ?? 0
  }

  status (): object {
    if (this.env === null) return {}
    const view = this.view()
    return { incarnation: view.incarnation, hasQuorum: view.hasQuorum, reachable: view.reachable.length, awareness: view.awareness, updatesQueued: this.updatesQueued(), states: countStates(view.members), stats: this.stats() }
  }

  // --- probing -------------------------------------------------------------------------------

  private scheduleProbe (afterMs: number): void {
    const env = this.requireEnv()
    this.probeTimer = env.setTimer(afterMs, () => {
      this.probeTimer = null
      if (this.leaving) return
      const target = this.nextTarget()
      if (target !== undefined) this.probe(target)
      this.scheduleProbe(this.limits.probeIntervalMs * (1 + this.awareness))
    })
  }

  /** The next member in a shuffled round robin; left and banned members are skipped. */
  private nextTarget (): MemberRecord | undefined {
    const env = this.requireEnv()
    for (let tries = 0; tries <= this.records.size; tries++) {
      if (this.roundRobin.length === 0) this.roundRobin = env.random.shuffle([...this.records.keys()])
      const next = this.records.get(this.roundRobin.pop() as NodeId)
      if (next !== undefined && next.state !== 'left' && !this.isBanned(next.id)) return next
    }
    return undefined
  }

  private probe (target: MemberRecord): void {
    for (const running of this.probes.values()) if (running.target === target.id) return
    const scale = 1 + this.awareness
    const probe: Probe = { seq: ++this.seq, target: target.id, acked: false, helpers: new Set(), nacks: 0, stalled: false, timers: [] }
    this.probes.set(probe.seq, probe)
    this.counters.probes++
    const sent = this.send(target.id, { type: 'member.ping', seq: probe.seq, target: target.id, incarnation: this.incarnation, updates: this.updatesFor(target.id) })
    // Only a member we hold alive or suspect is worth asking others about.
    const indirect = target.state === 'alive' || target.state === 'suspect'
    if (indirect) {
      probe.timers.push(this.timer(sent ? this.limits.probeTimeoutMs * scale : 0, (lateMs) => {
        if (lateMs > this.limits.stallToleranceMs) probe.stalled = true
        if (!probe.acked) this.askHelpers(probe)
      }))
    }
    probe.timers.push(this.timer(this.limits.probeIntervalMs * scale, (lateMs) => {
      if (lateMs > this.limits.stallToleranceMs) probe.stalled = true
      this.finishProbe(probe)
    }))
  }

  private askHelpers (probe: Probe): void {
    const env = this.requireEnv()
    const candidates = [...this.records.values()].filter((record) => record.id !== probe.target && this.isReachable(record.id)).map((record) => record.id)
    for (const helper of env.random.shuffle(candidates).slice(0, this.limits.indirectProbes)) {
      if (this.send(helper, { type: 'member.ping-req', seq: probe.seq, target: probe.target, incarnation: this.incarnation, updates: this.updatesFor(helper) })) {
        probe.helpers.add(helper)
        this.counters.indirectProbesSent++
      }
    }
  }

  private finishProbe (probe: Probe): void {
    const env = this.requireEnv()
    this.probes.delete(probe.seq)
    for (const timer of probe.timers) env.clearTimer(timer)
    if (probe.acked) {
      this.adjustAwareness(-1)
      return
    }
    if (probe.stalled) {
      // This node was paused while the probe ran; the silence says nothing about the target.
      this.counters.probesInconclusive++
      this.adjustAwareness(1)
      env.log.info({ target: probe.target }, 'probe inconclusive: this node stalled while it ran')
      return
    }
    const record = this.records.get(probe.target)
    if (record === undefined || (record.state !== 'alive' && record.state !== 'suspect')) return
    this.counters.probesFailed++
    // No ack: if helpers did not even send nacks, the fault may be this node's own (Lifeguard).
    this.adjustAwareness(probe.helpers.size > 0 ? probe.helpers.size - probe.nacks : 1)
    this.apply({ member: record.id, state: 'suspect', incarnation: record.incarnation, from: env.self }, env.self)
  }

  private adjustAwareness (delta: number): void {
    this.awareness = Math.max(0, Math.min(this.limits.awarenessMax, this.awareness + delta))
  }

  // --- receiving -----------------------------------------------------------------------------

  private receive (message: Message, origin: NodeId, hops: number): void {
    const env = this.env
    if (env === null) return
    this.counters.messagesReceived[message.type] = (this.counters.messagesReceived[message.type] ?? 0) + 1
    const record = this.records.get(origin)
    if (record === undefined) {
      if (origin !== env.self) this.violation(origin, hops, `${message.type} from a node that is not a member`)
      return
    }
    if (this.isBanned(origin)) {
      this.counters.ignoredFromBanned++
      return
    }
    record.lastHeardMs = env.now()
    const typed = message as MemberPing | MemberAck | MemberPingReq | MemberNack | MemberGossip | MemberSync
    // Hearing from a member is news of it being alive at the incarnation it states.
    this.corrections = { to: origin, updates: [] }
    try {
      this.apply({ member: origin, state: 'alive', incarnation: typed.incarnation, from: origin }, origin, hops)
      if ('updates' in typed) for (const update of typed.updates) this.apply(update, origin, hops)
    } finally {
      const corrections = this.corrections
      this.corrections = null
      if (corrections.updates.length > 0) this.send(origin, { type: 'member.gossip', incarnation: this.incarnation, updates: corrections.updates.slice(0, UPDATES_PER_MESSAGE_MAX) })
    }
    switch (typed.type) {
      case 'member.ping': this.onPing(typed, origin, hops); break
      case 'member.ack': this.onAck(typed, origin); break
      case 'member.ping-req': this.onPingReq(typed, origin); break
      case 'member.nack': this.onNack(typed, origin); break
      case 'member.gossip': break
      case 'member.sync': if (typed.reply) this.send(origin, this.syncMessage(false)); break
    }
  }

  private onPing (ping: MemberPing, origin: NodeId, hops: number): void {
    const env = this.requireEnv()
    if (ping.target !== env.self) {
      this.violation(origin, hops, `ping meant for ${ping.target} delivered here`)
      return
    }
    this.send(origin, { type: 'member.ack', seq: ping.seq, target: env.self, incarnation: this.incarnation, updates: this.updatesFor(origin) })
  }

  private onAck (ack: MemberAck, origin: NodeId): void {
    const probe = this.probes.get(ack.seq)
    if (probe !== undefined) {
      if (probe.target !== ack.target || (origin !== probe.target && !probe.helpers.has(origin))) return
      probe.acked = true
      this.finishProbe(probe)
      return
    }
    const helping = this.helperProbes.get(ack.seq)
    if (helping === undefined || helping.target !== origin) return
    this.endHelperProbe(ack.seq, helping)
    this.send(helping.requester, { type: 'member.ack', seq: helping.requesterSeq, target: helping.target, incarnation: this.incarnation, updates: this.updatesFor(helping.requester) })
  }

  private onPingReq (request: MemberPingReq, origin: NodeId): void {
    const env = this.requireEnv()
    if (request.target === env.self) {
      this.send(origin, { type: 'member.ack', seq: request.seq, target: env.self, incarnation: this.incarnation, updates: this.updatesFor(origin) })
      return
    }
    if (!this.records.has(request.target) || this.helperProbes.size >= this.limits.helperProbesMax) return
    const seq = ++this.seq
    const helping: HelperProbe = { requester: origin, requesterSeq: request.seq, target: request.target, nacked: false, timers: [] }
    this.helperProbes.set(seq, helping)
    const nack = (): void => {
      if (helping.nacked) return
      helping.nacked = true
      this.send(origin, { type: 'member.nack', seq: request.seq, target: request.target, incarnation: this.incarnation })
    }
    if (!this.send(request.target, { type: 'member.ping', seq, target: request.target, incarnation: this.incarnation, updates: this.updatesFor(request.target) })) {
      nack()
      this.endHelperProbe(seq, helping)
      return
    }
    helping.timers.push(this.timer(this.limits.probeTimeoutMs * NACK_TIMEOUT_SHARE, nack))
    helping.timers.push(this.timer(this.limits.probeIntervalMs, () => { this.endHelperProbe(seq, helping) }))
  }

  private onNack (nack: MemberNack, origin: NodeId): void {
    const probe = this.probes.get(nack.seq)
    if (probe !== undefined && probe.target === nack.target && probe.helpers.has(origin)) probe.nacks++
  }

  private endHelperProbe (seq: number, helping: HelperProbe): void {
    this.helperProbes.delete(seq)
    for (const timer of helping.timers) this.env?.clearTimer(timer)
  }

  // --- updates -------------------------------------------------------------------------------

  /**
   * Applies one claim under SWIM's precedence: a higher incarnation wins; at equal incarnation
   * dead and left beat suspect, which beats alive. Only a member may raise its own incarnation
   * past a suspicion (refute) or announce its own leave.
   */
  private apply (update: MemberUpdate, sender: NodeId, hops = 0): void {
    const env = this.requireEnv()
    if (update.member === env.self) {
      this.applyToSelf(update)
      return
    }
    const record = this.records.get(update.member)
    if (record === undefined) {
      this.violation(sender, hops, `update about ${update.member}, which is not a member`)
      return
    }
    if (update.incarnation < record.incarnation && update.state !== 'alive' && sender !== env.self) {
      // The sender holds an outdated accusation: tell it what this node knows (a correction). The
      // corrections a message calls for go back in one reply, sent once the message is read.
      this.counters.corrections++
      const correction: MemberUpdate = { member: record.id, state: record.state, incarnation: record.incarnation, from: record.claimedBy }
      if (this.corrections !== null && this.corrections.to === sender) {
        if (!this.corrections.updates.some((held) => held.member === record.id)) this.corrections.updates.push(correction)
      } else {
        this.send(sender, { type: 'member.gossip', incarnation: this.incarnation, updates: [correction] })
      }
      return
    }
    switch (update.state) {
      case 'alive':
        if (update.incarnation > record.incarnation) this.transition(record, 'alive', update.incarnation, update)
        return
      case 'suspect':
        if (update.incarnation < record.incarnation || record.state === 'dead' || record.state === 'left') return
        if (record.state === 'suspect' && update.incarnation === record.incarnation && record.suspicion !== null && record.suspicion.incarnation === update.incarnation) {
          this.confirm(record, update)
          return
        }
        this.transition(record, 'suspect', update.incarnation, update)
        return
      case 'dead':
        if (update.incarnation < record.incarnation || ((record.state === 'dead' || record.state === 'left') && update.incarnation === record.incarnation)) return
        this.transition(record, 'dead', update.incarnation, update)
        return
      case 'left':
        if (update.from !== update.member) {
          this.violation(sender, hops, `leave of ${update.member} announced by ${update.from}`)
          return
        }
        if (update.incarnation < record.incarnation || (record.state === 'left' && update.incarnation === record.incarnation)) return
        this.transition(record, 'left', update.incarnation, update)
    }
  }

  private applyToSelf (update: MemberUpdate): void {
    const env = this.requireEnv()
    if (update.incarnation < this.incarnation) {
      // A stale accusation: its holder missed this node's current incarnation. Say it again.
      if (update.state !== 'alive' && update.from !== env.self) {
        this.counters.reannouncements++
        this.reannounce(update.from)
      }
      return
    }
    if (update.state === 'alive' && update.incarnation === this.incarnation) return
    if (update.state === 'left' && this.leaving) return
    // A claim that this node is suspect, dead or gone, or an incarnation it never took: refute it
    // with a higher incarnation, and take it as a sign this node may be the slow one.
    this.incarnation = update.incarnation + 1
    env.disk.put(INCARNATION_KEY, encodeCount(this.incarnation))
    this.counters.refutations++
    this.adjustAwareness(1)
    env.log.info({ claim: update.state, by: update.from, incarnation: this.incarnation }, 'refuting a claim about this node')
    this.reannounce(update.from)
  }

  /** Spreads this node's alive record again, telling `accuser` (who holds the oldest timer) first. */
  private reannounce (accuser: NodeId): void {
    const env = this.requireEnv()
    this.queue?.enqueue({ member: env.self, state: 'alive', incarnation: this.incarnation, from: env.self })
    if (accuser !== env.self) this.send(accuser, this.gossipMessage([accuser]))
    this.gossipSoon()
  }

  private transition (record: MemberRecord, state: MemberState, incarnation: number, update: MemberUpdate): void {
    const env = this.requireEnv()
    const previous = record.state
    this.clearSuspicion(record)
    if (previous !== state) record.stateSinceMs = env.now()
    record.state = state
    record.incarnation = incarnation
    record.claimedBy = update.from
    if (state === 'suspect') {
      this.counters.suspicionsRaised++
      this.startSuspicion(record, update.from === env.self ? 0 : 1, null, update.from)
    }
    if (state === 'dead' && update.from === env.self) this.counters.declaredDead++
    this.queue?.enqueue({ member: record.id, state, incarnation, from: update.from })
    this.gossipSoon()
    if (previous !== state) {
      env.log.info({ member: record.id, from: previous, to: state, incarnation, by: update.from }, 'member state changed')
      this.emit({ kind: 'state', member: record.id, from: previous, to: state, incarnation, atMs: env.now() })
    }
    this.checkQuorum()
  }

  private startSuspicion (record: MemberRecord, confirmations: number, fixedTimeoutMs: number | null, confirmer?: NodeId): void {
    const env = this.requireEnv()
    const suspicion: Suspicion = { incarnation: record.incarnation, startedMs: env.now(), confirmations: new Set(), timer: null, deadlineMs: 0, graced: false, accused: confirmer === env.self }
    if (confirmations > 0 && confirmer !== undefined) suspicion.confirmations.add(confirmer)
    record.suspicion = suspicion
    this.armSuspicion(record, suspicion, fixedTimeoutMs)
  }

  private confirm (record: MemberRecord, update: MemberUpdate): void {
    const suspicion = record.suspicion
    const env = this.requireEnv()
    if (suspicion === null) return
    if (update.from === env.self) {
      // This node's own probe failed too: that is a confirmation for everyone else (not for itself).
      if (!suspicion.accused) {
        suspicion.accused = true
        this.queue?.enqueue({ ...update })
        this.gossipSoon()
      }
      return
    }
    if (suspicion.confirmations.has(update.from)) return
    suspicion.confirmations.add(update.from)
    // Pass the confirmation on, so every holder of the suspicion shortens it alike.
    this.queue?.enqueue({ ...update })
    this.gossipSoon()
    this.armSuspicion(record, suspicion, null)
  }

  private armSuspicion (record: MemberRecord, suspicion: Suspicion, fixedTimeoutMs: number | null): void {
    const env = this.requireEnv()
    const expected = Math.min(this.limits.suspicionConfirmationsExpected, Math.max(0, env.members.length - 2))
    const timeoutMs = fixedTimeoutMs ?? suspicionTimeoutMs(suspicion.confirmations.size, expected, this.limits.suspicionTimeoutMsMin, this.limits.suspicionTimeoutMsMax)
    suspicion.deadlineMs = suspicion.startedMs + timeoutMs
    if (suspicion.timer !== null) env.clearTimer(suspicion.timer)
    suspicion.timer = this.timer(Math.max(0, suspicion.deadlineMs - env.now()), (lateMs) => {
      suspicion.timer = null
      if (record.suspicion !== suspicion) return
      if (lateMs > this.limits.stallToleranceMs && !suspicion.graced) {
        // This node was stalled: a refutation may be waiting unread. Read first, then decide.
        suspicion.graced = true
        this.adjustAwareness(1)
        suspicion.timer = this.timer(this.limits.probeTimeoutMs, () => { suspicion.timer = null; this.expire(record, suspicion) })
        return
      }
      this.expire(record, suspicion)
    })
  }

  private expire (record: MemberRecord, suspicion: Suspicion): void {
    const env = this.env
    if (env === null || record.suspicion !== suspicion || record.state !== 'suspect') return
    this.apply({ member: record.id, state: 'dead', incarnation: suspicion.incarnation, from: env.self }, env.self)
  }

  private clearSuspicion (record: MemberRecord): void {
    if (record.suspicion?.timer != null) this.env?.clearTimer(record.suspicion.timer)
    record.suspicion = null
  }

  // --- dissemination -------------------------------------------------------------------------

  /**
   * Updates for a message to `recipient`. A recipient this node holds suspect or dead hears so
   * first, even once the news has left the queue, so it can refute at once (Lifeguard's buddy
   * system, which is also how the two sides of a healed partition find each other again).
   */
  private updatesFor (recipient: NodeId): MemberUpdate[] {
    const env = this.requireEnv()
    const updates = this.queue?.select(this.limits.updatesPerMessageMax, [recipient, env.self]) ?? []
    const record = this.records.get(recipient)
    if (record !== undefined && record.state !== 'alive' && !updates.some((update) => update.member === recipient)) {
      updates.unshift({ member: recipient, state: record.state, incarnation: record.incarnation, from: env.self })
      if (updates.length > this.limits.updatesPerMessageMax) updates.pop()
    }
    return updates
  }

  private gossipMessage (recipients: NodeId[]): MemberGossip {
    const env = this.requireEnv()
    const updates = this.queue?.select(this.limits.updatesPerMessageMax, [...recipients, env.self]) ?? []
    return { type: 'member.gossip', incarnation: this.incarnation, updates }
  }

  private gossipTick (): void {
    const env = this.env
    if (env === null) return
    this.gossipNow()
    this.gossipTimer = env.setTimer(this.limits.gossipIntervalMs, () => { this.gossipTick() })
  }

  /**
   * Fresh news goes out at once rather than at the next tick, but at most one extra round per
   * `gossipIntervalMs`: a burst of news makes one round, and a cluster with many events (a large
   * one under loss) keeps each node at two rounds per interval at most, whatever its size.
   */
  private gossipSoon (): void {
    const env = this.env
    if (env === null || this.gossipFlushPending) return
    if (env.now() - this.lastSoonFlushMs < this.limits.gossipIntervalMs) return
    this.gossipFlushPending = true
    env.setTimer(0, () => {
      this.gossipFlushPending = false
      this.lastSoonFlushMs = env.now()
      this.gossipNow()
    })
  }

  /** Sends pending updates to `gossipFanout` random members this node holds alive or suspect. */
  private gossipNow (): void {
    const env = this.env
    const queue = this.queue
    if (env === null || queue === null || queue.size === 0) return
    const candidates = [...this.records.values()].filter((record) => (record.state === 'alive' || record.state === 'suspect') && !this.isBanned(record.id)).map((record) => record.id)
    for (const peer of env.random.shuffle(candidates).slice(0, this.limits.gossipFanout)) {
      if (queue.size === 0) return
      const message = this.gossipMessage([peer])
      if (message.updates.length > 0) this.send(peer, message)
    }
  }

  private scheduleSync (afterMs: number): void {
    const env = this.requireEnv()
    this.syncTimer = env.setTimer(afterMs, () => {
      this.syncTimer = null
      const peers = [...this.records.values()].filter((record) => record.state === 'alive' && !this.isBanned(record.id)).map((record) => record.id)
      if (peers.length > 0 && !this.leaving) this.send(env.random.pick(peers), this.syncMessage(true))
      this.scheduleSync(Math.round(this.limits.syncIntervalMs * (0.5 + env.random.float())))
    })
  }

  /** This node's whole view as claims, itself included. */
  private syncMessage (reply: boolean): MemberSync {
    const env = this.requireEnv()
    const updates: MemberUpdate[] = [{ member: env.self, state: this.leaving ? 'left' : 'alive', incarnation: this.incarnation, from: env.self }]
    for (const record of this.records.values()) {
      // A local guess about a member never heard from is not news.
      if (record.incarnation === 0 && record.state === 'suspect') continue
      updates.push({ member: record.id, state: record.state, incarnation: record.incarnation, from: record.claimedBy })
    }
    return { type: 'member.sync', incarnation: this.incarnation, reply, updates }
  }

  // --- plumbing ------------------------------------------------------------------------------

  /** Sends through the overlay; false when there is no route now. */
  private send (to: NodeId, message: MemberPing | MemberAck | MemberPingReq | MemberNack | MemberGossip | MemberSync): boolean {
    if (message.type === 'member.gossip' && message.updates.length === 0) return false
    try {
      this.init.net.send(to, message)
      this.counters.messagesSent[message.type] = (this.counters.messagesSent[message.type] ?? 0) + 1
      if ('updates' in message && message.type !== 'member.sync') this.queue?.sent(message.updates)
      return true
    } catch {
      this.counters.sendsUnroutable++
      return false
    }
  }

  /** A timer whose callback learns how late it fired: lateness is how a stalled node notices. */
  private timer (afterMs: number, fire: (lateMs: number) => void): TimerId {
    const env = this.requireEnv()
    const dueMs = env.now() + afterMs
    return env.setTimer(afterMs, () => { fire(Math.max(0, env.now() - dueMs)) })
  }

  private violation (peer: NodeId, hops: number, reason: string): void {
    this.counters.violations++
    // Only a message that came straight over an authenticated link proves who sent it.
    if (hops > 1 || this.env === null) {
      this.counters.violationsUnattributed++
      this.env?.log.warn({ peer, reason }, 'membership protocol violation by an unproven sender')
      return
    }
    this.penalize(peer, 'protocol_violation', reason)
  }

  private isReachable (member: NodeId): boolean {
    const record = this.records.get(member)
    return record !== undefined && record.state === 'alive' && !this.isBanned(member)
  }

  private computeQuorum (): boolean {
    const env = this.requireEnv()
    return this.reachable().length >= quorumSize(env.members.length)
  }

  private checkQuorum (): void {
    const env = this.env
    if (env === null) return
    const quorum = this.computeQuorum()
    if (quorum === this.quorum) return
    this.quorum = quorum
    const reachable = this.reachable().length
    env.log[quorum ? 'info' : 'warn']({ reachable, members: env.members.length }, quorum ? 'quorum regained' : 'quorum lost')
    this.emit({ kind: 'quorum', hasQuorum: quorum, reachable, atMs: env.now() })
  }

  private emit (event: MembershipEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event)
      } catch (error) {
        this.env?.log.error({ event: event.kind, reason: error instanceof Error ? error.message : String(error) }, 'membership listener threw')
      }
    }
  }

  private requireEnv (): Env {
    if (this.env === null) throw new Error('membership used before start')
    return this.env
  }
}

/** A strict majority of `memberCount`. */
export function quorumSize (memberCount: number): number {
  return Math.floor(memberCount / 2) + 1
}

function countStates (members: readonly MemberView[]): Record<MemberState, number> {
  const counts: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0, left: 0 }
  for (const member of members) counts[member.state]++
  return counts
}

function encodeCount (value: number): Uint8Array {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value))
  return bytes
}

function decodeCount (bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0))
}
