/**
 * The store service: the key-value store's request path and its `strong` level on every node.
 *
 * Keys are placed on the consistent-hash ring (`ring.ts`); each key's replicas are its preference
 * list. A request may arrive at any node: the node coordinates it when it is the first live
 * replica of the key, and otherwise forwards it there (one hop at most). The coordinator runs
 * CASPaxos (Rystsov 2018) over the key's replicas with majority quorums: a prepare round learns
 * the newest accepted register, the operation's change function makes the next one, and an
 * accept round makes a majority hold it. A coordinator that just won a key keeps its ballot and
 * skips the prepare next time (one round trip), until someone else's ballot gets in between.
 *
 * Outcomes are exact about what may have happened (docs/store.md, "Errors"):
 * - `STORE_NO_QUORUM`: the operation certainly did not apply (no accept of a change was sent),
 *   and may be retried;
 * - `STORE_TIMEOUT`: an accept of the change went out and no majority confirmed it: it may apply
 *   later (a later coordinator can complete it), or never. Jepsen calls this an "info" outcome.
 */
import { decodeCanonical, encodeCanonical, type Env, type LinkState, type Message, type NodeId, type Service, type TimerId } from '../core/index.js'
import { Acceptor, type AcceptorLimits, type AcceptorStats } from './acceptor.js'
import { StoreError, type StoreErrorCode } from './errors.js'
import {
  STORE_BATCH_MESSAGES_MAX, compareBallots, storeMessages, successorBallot,
  type StoreBatch, type StoreMessage,
  type Ballot, type KvOperation, type KvResult, type Register, type StoreAccept, type StoreAccepted, type StoreErase, type StoreForward,
  type StoreForwardReply, type StoreGcCheck, type StoreGcState, type StorePrepare, type StorePromise
} from './messages.js'
import { PeerOutbox, type StoreNet } from './outbox.js'
import { ABSENT, applyOperation } from './register.js'
import { HashRing, utf8ByteLength, type RingMember } from './ring.js'

export interface StoreLimits extends AcceptorLimits {
  /** The longest key, in UTF-8 bytes. */
  keyBytesMax: number
  /** The largest value, in bytes (a register must fit one message with its envelope). */
  valueBytesMax: number
  /** How long a coordinator tries before it answers STORE_NO_QUORUM or STORE_TIMEOUT. */
  requestTimeoutMs: number
  /** How long a round waits for a quorum of answers before it is retried. */
  roundTimeoutMs: number
  /** An accept round re-sends to the silent replicas this many times before the coordinator re-prepares. */
  acceptResendsMax: number
  /** Back-off after a refused round: random up to this, doubling per retry (to `retryBackoffMsMax`). */
  retryBackoffMsMin: number
  retryBackoffMsMax: number
  /** Operations one coordinator runs at once; more are refused with STORE_OVERLOADED. */
  operationsInFlightMax: number
  /** Keys whose winning ballot a coordinator remembers for the one-round-trip path. */
  ballotCacheKeysMax: number
  /** A deleted key's tombstone is erased (when every replica holds it) after this long. */
  tombstoneGcDelayMs: number
  /** Ballot counters reserved on disk at a time: a restarted coordinator starts above them. */
  ballotReserveBlock: number
  /** Operations on one key that go in one consensus round at most. */
  batchOperationsMax: number
  /** A peer's queued messages go out at once when they reach this many bytes (about). */
  batchBytesMax: number
}

export const defaultStoreLimits: Readonly<StoreLimits> = Object.freeze({
  keyBytesMax: 1_024,
  valueBytesMax: 512 * 1_024,
  requestTimeoutMs: 3_000,
  roundTimeoutMs: 500,
  acceptResendsMax: 2,
  retryBackoffMsMin: 5,
  retryBackoffMsMax: 200,
  operationsInFlightMax: 10_000,
  ballotCacheKeysMax: 100_000,
  acceptorRecordsCachedMax: 100_000,
  tombstoneGcDelayMs: 10_000,
  ballotReserveBlock: 1_000_000,
  batchOperationsMax: 128,
  batchBytesMax: 256 * 1_024
})

export interface StoreInit {
  net: StoreNet
  /** The ring members (the network's members, with their capacity weights); default: env.members, weight 1. */
  members?: readonly RingMember[]
  replicationFactor?: number
  vnodesPerWeight?: number
  /** Whether a member is alive as far as this node knows (membership); default: everyone is. */
  isLive?: (member: NodeId) => boolean
  limits?: Partial<StoreLimits>
}

export interface StoreStats {
  operations: Record<KvOperation['kind'], number>
  /** Completed operations by outcome: ok, or an error code. */
  outcomes: Record<string, number>
  forwarded: number
  forwardedIn: number
  /** Forwarded requests delivered twice and dropped. */
  forwardDuplicates: number
  prepareRounds: number
  acceptRounds: number
  /** Operations that skipped the prepare round. */
  oneRoundTrip: number
  /** Rounds refused by a higher ballot (contention, or a stale ballot after a restart). */
  roundsRefused: number
  roundsTimedOut: number
  tombstonesScheduled: number
  acceptor: AcceptorStats
}

export type KvCallback = (outcome: KvResult | StoreError) => void

interface Queued {
  readonly operation: KvOperation
  readonly done: KvCallback
  readonly deadlineMs: number
  /** Computed when the batch's change is made (reported if the change is found in place). */
  result: KvResult | null
}

/**
 * The operations on one key that one coordinator runs together. A coordinator runs one batch per
 * key at a time (two rounds of its own on one key would only refuse each other); operations that
 * arrive meanwhile wait and go together in the next batch, their change functions applied in
 * order to the register the prepare learnt: one consensus round for many operations.
 */
interface Operation {
  readonly key: string
  readonly operations: Queued[]
  readonly deadlineMs: number
  readonly writeId: string
  readonly replicas: readonly NodeId[]
  readonly quorum: number
  retries: number
  /** An accept of a change went out: from now on a failure is indefinite. */
  changeSent: boolean
  /** Re-preparing after an accept round that may have half succeeded: look for our own write. */
  recovering: boolean
  round: Round | null
  timer: TimerId | null
}

interface Round {
  readonly requestId: number
  readonly phase: 'prepare' | 'accept'
  readonly ballot: Ballot
  readonly register: Register | null
  readonly granted: Map<NodeId, StorePromise['accepted']>
  readonly refused: Set<NodeId>
  highestRefusal: Ballot | null
  resends: number
}

const BALLOT_RESERVE_KEY = 'store/ballot-reserve'
const FORWARD_MARGIN_MS = 500
/** Forwarded request ids a coordinator remembers to drop duplicates: far more than one request timeout's worth. */
const FORWARDS_REMEMBERED_MAX = 100_000
/** Keys whose replicas a node remembers (a few MB at most). */
const REPLICA_CACHE_KEYS_MAX = 65_536
/** Rounds of tombstone collection for one delete before the tombstone is left in place. */
const TOMBSTONE_GC_ATTEMPTS_MAX = 3

/** About how many bytes a message takes on the wire: its keys and values, plus a fixed share. */
function approximateBytes (message: StoreMessage): number {
  const MESSAGE_OVERHEAD_BYTES = 64
  switch (message.type) {
    case 'store.accept': return MESSAGE_OVERHEAD_BYTES + message.key.length + (message.register.value?.length ?? 0)
    case 'store.promise': return MESSAGE_OVERHEAD_BYTES + message.key.length + (message.accepted?.register.value?.length ?? 0)
    case 'store.forward': return MESSAGE_OVERHEAD_BYTES + message.operation.key.length + (message.operation.kind === 'put' || message.operation.kind === 'cas' ? message.operation.value.length : 0)
    case 'store.forward-reply': return MESSAGE_OVERHEAD_BYTES + (message.result?.kind === 'get' ? message.result.value?.length ?? 0 : 0)
    default: return MESSAGE_OVERHEAD_BYTES + ('key' in message ? message.key.length : 0)
  }
}

/** Whether an operation with this result wrote (a put or delete of a present key, an applied cas). */
function changes (operation: KvOperation, result: KvResult): boolean {
  switch (result.kind) {
    case 'get': return false
    case 'put': return true
    case 'delete': return result.found
    case 'cas': return result.applied
  }
  return operation.kind !== 'get'
}


export class StoreService implements Service {
  readonly name = 'store'
  readonly messages = storeMessages
  private env: Env | null = null
  private ringValue: HashRing | null = null
  private acceptorValue: Acceptor | null = null
  private readonly limits: StoreLimits
  /** Batches this node coordinates, one per key at most, and the one open round of each by request id. */
  private readonly active = new Map<string, Operation>()
  /** Operations waiting for their key's running batch to finish. */
  private readonly waiting = new Map<string, Queued[]>()
  private queuedCount = 0
  private readonly rounds = new Map<number, Operation>()
  private readonly forwards = new Map<number, { done: KvCallback, timer: TimerId, target: NodeId, operation: KvOperation }>()
  /** Peers whose direct link went down and has not come back: not coordinators now, whatever membership still thinks. */
  private readonly lostLinks = new Set<NodeId>()
  private readonly gcChecks = new Map<number, { key: string, ballot: Ballot, replicas: readonly NodeId[], erasable: Set<NodeId>, timer: TimerId }>()
  /** Winning ballot and register per key, for the one-round-trip path. */
  private readonly ballots = new Map<string, { ballot: Ballot, register: Register }>()
  private readonly outbox: PeerOutbox<StoreMessage>
  private readonly replicaCache = new Map<string, readonly NodeId[]>()
  /** Forwarded requests seen lately, by origin and forward id (the oldest are forgotten first). */
  private readonly forwardsSeen = new Set<string>()
  private nextRequestId = 1
  private counter = 0
  private counterReserved = 0
  private reserving: Array<() => void> | null = null
  private writeIdPrefix = ''
  private writeSequence = 0
  private readonly counters: Omit<StoreStats, 'acceptor'> = {
    operations: { get: 0, put: 0, delete: 0, cas: 0 },
    outcomes: {},
    forwarded: 0,
    forwardedIn: 0,
    forwardDuplicates: 0,
    prepareRounds: 0,
    acceptRounds: 0,
    oneRoundTrip: 0,
    roundsRefused: 0,
    roundsTimedOut: 0,
    tombstonesScheduled: 0
  }

  constructor (private readonly init: StoreInit) {
    this.limits = { ...defaultStoreLimits, ...init.limits }
    this.outbox = new PeerOutbox<StoreMessage>({
      net: init.net,
      batchType: 'store.batch',
      batchMessagesMax: STORE_BATCH_MESSAGES_MAX,
      batchBytesMax: this.limits.batchBytesMax,
      approximateBytes,
      deliverLocal: (message) => { this.receive(message, this.requireEnv().self) }
    })
    for (const definition of storeMessages) {
      init.net.onRouted(definition.type, (message, delivery) => { this.receive(message as StoreMessage | StoreBatch, delivery.origin) })
    }
  }

  start (env: Env): void {
    this.env = env
    this.lostLinks.clear()
    this.outbox.start(env)
    this.ringValue = new HashRing({
      members: this.init.members ?? env.members.map((id) => ({ id, weight: 1 })),
      ...(this.init.replicationFactor === undefined ? {} : { replicationFactor: this.init.replicationFactor }),
      ...(this.init.vnodesPerWeight === undefined ? {} : { vnodesPerWeight: this.init.vnodesPerWeight })
    })
    this.acceptorValue = new Acceptor(env.disk, this.limits)
    const stored = env.disk.get(BALLOT_RESERVE_KEY)
    const reserved = stored === undefined ? 0 : decodeCanonical(stored)
    this.counterReserved = typeof reserved === 'number' && Number.isSafeInteger(reserved) && reserved >= 0 ? reserved : 0
    this.counter = this.counterReserved
    this.writeIdPrefix = `${env.self}.${env.random.int(0, 0x7fffffff).toString(36)}.`
    // Request ids start anywhere: a late answer to the previous incarnation's round must not match a new one
    // (answers are matched by ballot too, and ballots never repeat).
    this.nextRequestId = env.random.int(1, 2 ** 40)
  }

  stop (): void {
    const env = this.env
    if (env === null) return
    for (const operation of this.active.values()) if (operation.timer !== null) env.clearTimer(operation.timer)
    for (const forward of this.forwards.values()) env.clearTimer(forward.timer)
    for (const check of this.gcChecks.values()) env.clearTimer(check.timer)
    this.outbox.stop()
    this.active.clear()
    this.waiting.clear()
    this.queuedCount = 0
    this.rounds.clear()
    this.forwards.clear()
    this.gcChecks.clear()
    this.env = null
  }

  /** A message over a direct link (the peer is authenticated by the transport). */
  onMessage (from: NodeId, message: Message): void {
    if (message.type.startsWith('store.')) this.receive(message as StoreMessage | StoreBatch, from)
  }

  /**
   * A link that goes down takes its peer out of the coordinators at once (membership takes
   * seconds to declare it dead), and ends the requests forwarded to it: a read is sent to the
   * next replica, a write answers STORE_TIMEOUT now rather than after the full timeout (it may
   * have been applied before the link went).
   */
  onLinkChange (peer: NodeId, state: LinkState): void {
    if (state === 'connected') {
      this.outbox.linkChanged(peer, true)
      this.lostLinks.delete(peer)
      return
    }
    this.outbox.linkChanged(peer, false)
    this.lostLinks.add(peer)
    for (const [requestId, forward] of this.forwards) {
      if (forward.target !== peer) continue
      this.forwards.delete(requestId)
      this.env?.clearTimer(forward.timer)
      if (forward.operation.kind === 'get') this.route(forward.operation, forward.done)
      else this.finish(forward.done, new StoreError('STORE_TIMEOUT', `the link to the coordinator ${peer} went down before it answered: the operation may or may not have applied`, { coordinator: peer }))
    }
  }

  ring (): HashRing {
    if (this.ringValue === null) throw new Error('store used before start')
    return this.ringValue
  }

  stats (): StoreStats {
    return { ...this.counters, operations: { ...this.counters.operations }, outcomes: { ...this.counters.outcomes }, acceptor: { ...this.acceptor().stats } }
  }

  status (): object {
    const ring = this.ringValue
    return { ringVersion: ring?.version ?? null, replicationFactor: ring?.replicationFactor ?? null, inFlight: this.queuedCount, forwardsInFlight: this.forwards.size, stats: this.env === null ? null : this.stats() }
  }

  /** Operations this coordinator is running now. */
  inFlight (): number {
    return this.queuedCount + this.forwards.size
  }

  /**
   * Runs one client operation, `strong` consistency; `done` gets the result or a StoreError
   * (never throws for an operating error). Checks the limits first.
   */
  execute (operation: KvOperation, done: KvCallback): void {
    this.requireEnv()
    const invalid = this.validate(operation)
    if (invalid !== null) { this.finish(done, invalid); return }
    this.counters.operations[operation.kind]++
    this.route(operation, done)
  }

  /** Coordinates here when this node is the key's first live replica, else forwards; refuses without a live quorum. */
  private route (operation: KvOperation, done: KvCallback): void {
    const env = this.requireEnv()
    const replicas = this.replicasOf(operation.key)
    const live = replicas.filter((member) => this.isLive(member))
    const quorum = Math.floor(replicas.length / 2) + 1
    if (live.length < quorum) {
      this.finish(done, new StoreError('STORE_NO_QUORUM', `${live.length} of the key's ${replicas.length} replicas are reachable, a quorum is ${quorum}`, { replicas: replicas.length, reachable: live.length, quorum }))
      return
    }
    if (live[0] === env.self) {
      this.coordinate(operation, env.now() + this.limits.requestTimeoutMs, done)
      return
    }
    this.forward(operation, live, done)
  }

  // --- coordinator ------------------------------------------------------------------------------

  private coordinate (operation: KvOperation, deadlineMs: number, done: KvCallback): void {
    if (this.queuedCount >= this.limits.operationsInFlightMax) {
      this.finish(done, new StoreError('STORE_OVERLOADED', `this coordinator holds ${this.queuedCount} operations (operationsInFlightMax ${this.limits.operationsInFlightMax}); the operation did not apply`))
      return
    }
    this.queuedCount++
    const queued: Queued = { operation, done, deadlineMs, result: null }
    if (this.active.has(operation.key)) {
      const waiting = this.waiting.get(operation.key)
      if (waiting === undefined) this.waiting.set(operation.key, [queued])
      else waiting.push(queued)
      return
    }
    this.startBatch(operation.key, [queued])
  }

  private startBatch (key: string, operations: Queued[]): void {
    const replicas = this.replicasOf(key)
    const state: Operation = {
      key,
      operations,
      deadlineMs: Math.min(...operations.map((queued) => queued.deadlineMs)),
      writeId: `${this.writeIdPrefix}${(++this.writeSequence).toString(36)}`,
      replicas,
      quorum: Math.floor(replicas.length / 2) + 1,
      retries: 0,
      changeSent: false,
      recovering: false,
      round: null,
      timer: null
    }
    this.active.set(key, state)
    const cached = this.ballots.get(key)
    if (cached !== undefined) {
      this.counters.oneRoundTrip++
      this.startAccept(state, successorBallot(cached.ballot), cached.register)
    } else {
      this.startPrepare(state)
    }
  }

  /** The next batch of a key: what waited, up to `batchOperationsMax`; operations past their deadline never started and fail. */
  private nextBatch (key: string): void {
    const waiting = this.waiting.get(key)
    if (waiting === undefined) return
    const now = this.requireEnv().now()
    const batch: Queued[] = []
    while (waiting.length > 0 && batch.length < this.limits.batchOperationsMax) {
      const queued = waiting.shift() as Queued
      if (queued.deadlineMs <= now) {
        this.queuedCount--
        this.finish(queued.done, new StoreError('STORE_OVERLOADED', 'the operation waited past its deadline behind earlier ones on the key; it did not apply', { key }))
        continue
      }
      batch.push(queued)
    }
    if (waiting.length === 0) this.waiting.delete(key)
    if (batch.length > 0) this.startBatch(key, batch)
    else if (waiting.length > 0) this.nextBatch(key)
  }

  private startPrepare (state: Operation): void {
    this.withBallot((ballot) => {
      if (this.env === null) return
      this.counters.prepareRounds++
      const round = this.openRound(state, 'prepare', ballot, null)
      for (const replica of state.replicas) this.sendTo(replica, { type: 'store.prepare', requestId: round.requestId, key: state.key, ballot } satisfies StorePrepare)
    })
  }

  private startAccept (state: Operation, ballot: Ballot, current: Register): void {
    let register: Register
    if (state.recovering) {
      // Our change may be in place: if the newest register is ours, finish making it chosen.
      if (current.writeId !== state.writeId) {
        this.complete(state, new StoreError('STORE_TIMEOUT', 'an accept of this change went out without a quorum confirming it, and a newer value is in place: it may or may not have applied', { key: state.key }))
        return
      }
      register = current
    } else {
      register = current
      for (const queued of state.operations) {
        const change = applyOperation(queued.operation, register, state.writeId)
        register = change.register
        queued.result = change.result
      }
      if (register !== current) state.changeSent = true
    }
    this.counters.acceptRounds++
    const round = this.openRound(state, 'accept', ballot, register)
    for (const replica of state.replicas) this.sendTo(replica, { type: 'store.accept', requestId: round.requestId, key: state.key, ballot, register } satisfies StoreAccept)
  }

  private openRound (state: Operation, phase: Round['phase'], ballot: Ballot, register: Register | null): Round {
    const env = this.requireEnv()
    if (state.round !== null) this.rounds.delete(state.round.requestId)
    const round: Round = { requestId: this.nextRequestId++, phase, ballot, register, granted: new Map(), refused: new Set(), highestRefusal: null, resends: 0 }
    state.round = round
    this.rounds.set(round.requestId, state)
    this.armTimer(state, Math.min(this.limits.roundTimeoutMs, Math.max(0, state.deadlineMs - env.now())))
    return round
  }

  private armTimer (state: Operation, afterMs: number): void {
    const env = this.requireEnv()
    if (state.timer !== null) env.clearTimer(state.timer)
    state.timer = env.setTimer(afterMs, () => { state.timer = null; this.onRoundTimeout(state) })
  }

  private onRoundTimeout (state: Operation): void {
    const round = state.round
    if (round === null) return
    this.counters.roundsTimedOut++
    const env = this.requireEnv()
    if (round.phase === 'accept' && round.resends < this.limits.acceptResendsMax && env.now() < state.deadlineMs) {
      // Lost messages are the usual cause: ask the silent replicas again, same ballot (accepting it twice is harmless).
      round.resends++
      for (const replica of state.replicas) {
        if (!round.granted.has(replica) && !round.refused.has(replica)) this.sendTo(replica, { type: 'store.accept', requestId: round.requestId, key: state.key, ballot: round.ballot, register: round.register as Register } satisfies StoreAccept)
      }
      this.armTimer(state, Math.min(this.limits.roundTimeoutMs, Math.max(0, state.deadlineMs - env.now())))
      return
    }
    this.roundFailed(state, round)
  }

  private onPromise (message: StorePromise, origin: NodeId): void {
    const state = this.rounds.get(message.requestId)
    const round = state?.round
    if (state === undefined || round == null || round.phase !== 'prepare' || !state.replicas.includes(origin) || compareBallots(message.ballot, round.ballot) !== 0) return
    if (round.granted.has(origin) || round.refused.has(origin)) return
    if (message.ok) {
      round.granted.set(origin, message.accepted)
      if (round.granted.size < state.quorum) return
      // The newest register a quorum knows of; nothing accepted anywhere yet means absent.
      let newest: { ballot: Ballot, register: Register } | null = null
      for (const accepted of round.granted.values()) if (accepted !== null && (newest === null || compareBallots(accepted.ballot, newest.ballot) > 0)) newest = accepted
      this.startAccept(state, round.ballot, newest?.register ?? ABSENT)
      return
    }
    this.refusedBy(state, round, origin, message.promised)
  }

  private onAccepted (message: StoreAccepted, origin: NodeId): void {
    const state = this.rounds.get(message.requestId)
    const round = state?.round
    if (state === undefined || round == null || round.phase !== 'accept' || !state.replicas.includes(origin) || compareBallots(message.ballot, round.ballot) !== 0) return
    if (round.granted.has(origin) || round.refused.has(origin)) return
    if (!message.ok) { this.refusedBy(state, round, origin, message.promised); return }
    round.granted.set(origin, null)
    if (round.granted.size < state.quorum) return
    const register = round.register as Register
    this.rememberBallot(state.key, round.ballot, register)
    this.counter = Math.max(this.counter, round.ballot[0] + 1)
    if (register.value === null && register.writeId === state.writeId) this.scheduleGc(state.key, round.ballot, state.replicas)
    this.complete(state, null)
  }

  private refusedBy (state: Operation, round: Round, origin: NodeId, promised: Ballot): void {
    round.refused.add(origin)
    if (round.highestRefusal === null || compareBallots(promised, round.highestRefusal) > 0) round.highestRefusal = promised
    // Still possible: wait for the others.
    if (state.replicas.length - round.refused.size >= state.quorum) return
    this.counters.roundsRefused++
    this.roundFailed(state, round)
  }

  /** A round that cannot reach a quorum (refused, or timed out): retry with a fresh ballot, or give up. */
  private roundFailed (state: Operation, round: Round): void {
    const env = this.requireEnv()
    this.ballots.delete(state.key)
    if (round.highestRefusal !== null) this.counter = Math.max(this.counter, round.highestRefusal[0])
    // Once an accept of a change went out, the change may be in place even if every replica said
    // no: a replica may have accepted it (its answer lost) and then accepted a higher ballot, and
    // refuse a re-sent or duplicated copy. So the batch looks for its own write from now on.
    if (round.phase === 'accept' && state.changeSent) state.recovering = true
    if (state.timer !== null) { env.clearTimer(state.timer); state.timer = null }
    this.rounds.delete(round.requestId)
    state.round = null
    const backoffMs = env.random.int(this.limits.retryBackoffMsMin, Math.min(this.limits.retryBackoffMsMax, this.limits.retryBackoffMsMin * 2 ** state.retries))
    if (env.now() + backoffMs >= state.deadlineMs) {
      this.complete(state, state.recovering
        ? new StoreError('STORE_TIMEOUT', `no quorum of the key's replicas confirmed the change within ${this.limits.requestTimeoutMs} ms: it may or may not have applied`, { key: state.key })
        : new StoreError('STORE_NO_QUORUM', `no quorum of the key's ${state.replicas.length} replicas answered within ${this.limits.requestTimeoutMs} ms; the operation did not apply`, { key: state.key, replicas: state.replicas.length }))
      return
    }
    state.retries++
    state.timer = env.setTimer(backoffMs, () => {
      state.timer = null
      if (this.env !== null) this.startPrepare(state)
    })
  }

  /**
   * Ends a batch: null = its change is chosen, each operation gets its result; or an error. An
   * indefinite error (STORE_TIMEOUT) goes to the operations that changed something; one that
   * only read learns nothing and gets STORE_NO_QUORUM (it did not happen). Then the key's next
   * batch starts.
   */
  private complete (state: Operation, error: StoreError | null): void {
    const env = this.env
    if (state.timer !== null) env?.clearTimer(state.timer)
    state.timer = null
    if (state.round !== null) this.rounds.delete(state.round.requestId)
    state.round = null
    this.active.delete(state.key)
    this.queuedCount -= state.operations.length
    for (const queued of state.operations) {
      if (error === null) { this.finish(queued.done, queued.result as KvResult); continue }
      const changed = error.code === 'STORE_TIMEOUT' && queued.result !== null && changes(queued.operation, queued.result)
      this.finish(queued.done, error.code !== 'STORE_TIMEOUT' || changed ? error : new StoreError('STORE_NO_QUORUM', `the read did not complete: ${error.message}`, { key: state.key }))
    }
    if (env !== null && this.env === env) this.nextBatch(state.key)
  }

  private finish (done: KvCallback, outcome: KvResult | StoreError): void {
    const label = outcome instanceof StoreError ? outcome.code : 'ok'
    this.counters.outcomes[label] = (this.counters.outcomes[label] ?? 0) + 1
    done(outcome)
  }

  private rememberBallot (key: string, ballot: Ballot, register: Register): void {
    this.ballots.delete(key)
    this.ballots.set(key, { ballot, register })
    if (this.ballots.size > this.limits.ballotCacheKeysMax) this.ballots.delete(this.ballots.keys().next().value as string)
  }

  /** A fresh ballot above every one this node used, even before a restart (counters are reserved on disk in blocks). */
  private withBallot (use: (ballot: Ballot) => void): void {
    const env = this.requireEnv()
    if (this.counter + 1 <= this.counterReserved) {
      this.counter++
      use([this.counter, env.self])
      return
    }
    if (this.reserving !== null) { this.reserving.push(() => { this.withBallot(use) }); return }
    this.reserving = [() => { this.withBallot(use) }]
    const reserved = this.counter + this.limits.ballotReserveBlock
    env.disk.put(BALLOT_RESERVE_KEY, encodeCanonical(reserved))
    env.disk.sync(() => {
      this.counterReserved = Math.max(this.counterReserved, reserved)
      const waiting = this.reserving ?? []
      this.reserving = null
      if (this.env !== null) for (const next of waiting) next()
    })
  }

  // --- acceptor ---------------------------------------------------------------------------------

  private onPrepare (message: StorePrepare, origin: NodeId): void {
    if (!this.isReplica(message.key)) return
    const answer = this.acceptor().prepare(message.key, message.ballot)
    const reply: StorePromise = { type: 'store.promise', requestId: message.requestId, key: message.key, ballot: message.ballot, ok: answer.ok, promised: answer.promised, accepted: answer.accepted }
    this.afterDurable(answer.ok, () => { this.sendTo(origin, reply) })
  }

  private onAccept (message: StoreAccept, origin: NodeId): void {
    if (!this.isReplica(message.key)) return
    const answer = this.acceptor().accept(message.key, message.ballot, message.register)
    const reply: StoreAccepted = { type: 'store.accepted', requestId: message.requestId, key: message.key, ballot: message.ballot, ok: answer.ok, promised: answer.promised }
    this.afterDurable(answer.ok, () => { this.sendTo(origin, reply) })
  }

  /** Answers after the disk made every earlier write durable (a refusal changes nothing and goes at once). */
  private afterDurable (wrote: boolean, send: () => void): void {
    const env = this.requireEnv()
    if (!wrote) { send(); return }
    env.disk.sync(() => { if (this.env === env) send() })
  }

  // --- forwarding -------------------------------------------------------------------------------

  private forward (operation: KvOperation, live: readonly NodeId[], done: KvCallback): void {
    const env = this.requireEnv()
    for (const target of live) {
      const requestId = this.nextRequestId++
      if (!this.outbox.transmit(target, { type: 'store.forward', requestId, forwardId: `${this.writeIdPrefix}${requestId}`, operation, deadlineInMs: this.limits.requestTimeoutMs } satisfies StoreForward)) continue
      this.counters.forwarded++
      const timer = env.setTimer(this.limits.requestTimeoutMs + FORWARD_MARGIN_MS, () => {
        this.forwards.delete(requestId)
        this.finish(done, operation.kind === 'get'
          ? new StoreError('STORE_NO_QUORUM', `the coordinator ${target} did not answer within ${this.limits.requestTimeoutMs + FORWARD_MARGIN_MS} ms`, { coordinator: target })
          : new StoreError('STORE_TIMEOUT', `the coordinator ${target} did not answer within ${this.limits.requestTimeoutMs + FORWARD_MARGIN_MS} ms: the operation may or may not have applied`, { coordinator: target }))
      })
      this.forwards.set(requestId, { done, timer, target, operation })
      return
    }
    this.finish(done, new StoreError('STORE_NO_QUORUM', 'no live path to any replica of the key', { replicas: live.length }))
  }

  private onForward (message: StoreForward, origin: NodeId): void {
    const env = this.requireEnv()
    // A duplicate (the network may deliver a message twice) must not run the operation again.
    const forwardKey = `${origin}/${message.forwardId}`
    if (this.forwardsSeen.has(forwardKey)) { this.counters.forwardDuplicates++; return }
    this.forwardsSeen.add(forwardKey)
    if (this.forwardsSeen.size > FORWARDS_REMEMBERED_MAX) this.forwardsSeen.delete(this.forwardsSeen.values().next().value as string)
    this.counters.forwardedIn++
    const reply = (outcome: KvResult | StoreError): void => {
      const answer: StoreForwardReply = outcome instanceof StoreError
        ? { type: 'store.forward-reply', requestId: message.requestId, result: null, error: { code: outcome.code, message: outcome.message } }
        : { type: 'store.forward-reply', requestId: message.requestId, result: outcome, error: null }
      this.sendTo(origin, answer)
    }
    const invalid = this.validate(message.operation)
    if (invalid !== null) { reply(invalid); return }
    // Coordinate here even if this node thinks another replica comes first: a request is forwarded once.
    this.coordinate(message.operation, env.now() + Math.min(message.deadlineInMs, this.limits.requestTimeoutMs), reply)
  }

  private onForwardReply (message: StoreForwardReply): void {
    const forward = this.forwards.get(message.requestId)
    if (forward === undefined) return
    this.forwards.delete(message.requestId)
    this.env?.clearTimer(forward.timer)
    if (message.result !== null) { this.finish(forward.done, message.result); return }
    const code = (message.error?.code ?? 'STORE_TIMEOUT') as StoreErrorCode
    this.finish(forward.done, new StoreError(code, message.error?.message ?? 'the coordinator failed'))
  }

  // --- tombstones -------------------------------------------------------------------------------

  /**
   * Erases a tombstone once every replica holds it with nothing newer promised. A replica that
   * missed it (it was outside the accept quorum, or down) gets it from a read with a full prepare
   * round, which makes every live replica accept the tombstone again; then the check is repeated,
   * at most `TOMBSTONE_GC_ATTEMPTS_MAX` times.
   */
  private scheduleGc (key: string, ballot: Ballot, replicas: readonly NodeId[], attempt = 1): void {
    const env = this.requireEnv()
    if (attempt === 1) this.counters.tombstonesScheduled++
    env.setTimer(this.limits.tombstoneGcDelayMs, () => {
      if (this.env !== env) return
      const requestId = this.nextRequestId++
      const timer = env.setTimer(this.limits.roundTimeoutMs, () => {
        this.gcChecks.delete(requestId)
        if (this.env !== env || attempt >= TOMBSTONE_GC_ATTEMPTS_MAX) return
        this.ballots.delete(key)
        this.coordinate({ kind: 'get', key }, env.now() + this.limits.requestTimeoutMs, (outcome) => {
          const cached = this.ballots.get(key)
          if (outcome instanceof StoreError || outcome.kind !== 'get' || outcome.found || cached === undefined || cached.register.value !== null) return
          this.scheduleGc(key, cached.ballot, replicas, attempt + 1)
        })
      })
      this.gcChecks.set(requestId, { key, ballot, replicas, erasable: new Set(), timer })
      for (const replica of replicas) this.sendTo(replica, { type: 'store.gc-check', requestId, key, ballot } satisfies StoreGcCheck)
    })
  }

  private onGcCheck (message: StoreGcCheck, origin: NodeId): void {
    if (!this.isReplica(message.key)) return
    const erasable = this.acceptor().erasable(message.key, message.ballot)
    this.afterDurable(true, () => { this.sendTo(origin, { type: 'store.gc-state', requestId: message.requestId, key: message.key, erasable } satisfies StoreGcState) })
  }

  private onGcState (message: StoreGcState, origin: NodeId): void {
    const check = this.gcChecks.get(message.requestId)
    if (check === undefined || !message.erasable || !check.replicas.includes(origin)) return
    check.erasable.add(origin)
    if (check.erasable.size < check.replicas.length) return
    // Every replica holds the tombstone and nothing newer: erase it everywhere (each checks again).
    this.gcChecks.delete(message.requestId)
    this.env?.clearTimer(check.timer)
    const cached = this.ballots.get(check.key)
    if (cached !== undefined && compareBallots(cached.ballot, check.ballot) === 0) this.ballots.delete(check.key)
    for (const replica of check.replicas) this.sendTo(replica, { type: 'store.erase', key: check.key, ballot: check.ballot } satisfies StoreErase)
  }

  // --- messages ---------------------------------------------------------------------------------

  private receive (message: StoreMessage | StoreBatch, origin: NodeId): void {
    if (this.env === null) return
    switch (message.type) {
      case 'store.batch': for (const inner of message.messages) this.receive(inner, origin); break
      case 'store.prepare': this.onPrepare(message, origin); break
      case 'store.promise': this.onPromise(message, origin); break
      case 'store.accept': this.onAccept(message, origin); break
      case 'store.accepted': this.onAccepted(message, origin); break
      case 'store.forward': this.onForward(message, origin); break
      case 'store.forward-reply': this.onForwardReply(message); break
      case 'store.gc-check': this.onGcCheck(message, origin); break
      case 'store.gc-state': this.onGcState(message, origin); break
      case 'store.erase': this.acceptor().erase(message.key, message.ballot); break
    }
  }

  private sendTo (to: NodeId, message: StoreMessage): void {
    this.outbox.send(to, message)
  }

  // --- helpers ----------------------------------------------------------------------------------

  private validate (operation: KvOperation): StoreError | null {
    if (operation.key.length === 0) return new StoreError('STORE_BAD_REQUEST', 'a key is at least one byte')
    const bytes = utf8ByteLength(operation.key)
    if (bytes > this.limits.keyBytesMax) return new StoreError('STORE_KEY_TOO_LARGE', `a key of ${bytes} bytes, limit keyBytesMax ${this.limits.keyBytesMax}`, { bytes, keyBytesMax: this.limits.keyBytesMax })
    const value = operation.kind === 'put' || operation.kind === 'cas' ? operation.value : null
    if (value !== null && value.length > this.limits.valueBytesMax) return new StoreError('STORE_VALUE_TOO_LARGE', `a value of ${value.length} bytes, limit valueBytesMax ${this.limits.valueBytesMax}`, { bytes: value.length, valueBytesMax: this.limits.valueBytesMax })
    if (operation.kind === 'cas' && operation.expected !== null && operation.expected.length > this.limits.valueBytesMax) return new StoreError('STORE_VALUE_TOO_LARGE', `an expected value of ${operation.expected.length} bytes, limit valueBytesMax ${this.limits.valueBytesMax}`)
    return null
  }

  /**
   * The key's replicas, remembered for the keys used lately: every request and every message
   * needs them, and a lookup hashes the key (the ring never changes while the node runs).
   */
  private replicasOf (key: string): readonly NodeId[] {
    let replicas = this.replicaCache.get(key)
    if (replicas === undefined) {
      replicas = this.ring().preferenceList(key)
      if (this.replicaCache.size >= REPLICA_CACHE_KEYS_MAX) this.replicaCache.delete(this.replicaCache.keys().next().value as string)
      this.replicaCache.set(key, replicas)
    }
    return replicas
  }

  private isReplica (key: string): boolean {
    return this.replicasOf(key).includes(this.requireEnv().self)
  }

  private isLive (member: NodeId): boolean {
    return member === this.env?.self || (!this.lostLinks.has(member) && (this.init.isLive?.(member) ?? true))
  }

  private acceptor (): Acceptor {
    if (this.acceptorValue === null) throw new Error('store used before start')
    return this.acceptorValue
  }

  private requireEnv (): Env {
    if (this.env === null) throw new Error('store used before start')
    return this.env
  }
}
