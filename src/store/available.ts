/**
 * The store's available levels, `causal` and `eventual`: they answer on both sides of a
 * partition, as long as the client reaches a replica (docs/store.md, "Levels").
 *
 * Every key's replicas (the same preference list as the strong level's) hold a multi-value state
 * with dotted version vectors (`versioned.ts`); replicas join states, so they converge whatever
 * order the network delivers them in. Writes are stamped with a hybrid logical clock; the last
 * writer by stamp (then node id) is what a plain read returns.
 *
 * - eventual (Dynamo, DeCandia et al. 2007): a write goes to the key's first N live nodes on the
 *   ring (a substitute for a down replica keeps a hint and hands it off when the replica is back)
 *   and is acknowledged once W of them hold it durably; a read merges R replicas' states and
 *   repairs the ones that were behind; `siblings` mode returns concurrent values with their
 *   context so the client merges them and writes back.
 * - causal (causal+, Lloyd et al. 2011, with the dependency check at read time as in Bailis et
 *   al., "Bolt-on Causal Consistency", 2013): a write is durable at one replica before it is
 *   acknowledged and carries the session's dependencies; a read at a replica that lacks a write
 *   the session depends on fetches it from the other replicas, or refuses with
 *   STORE_DEPENDENCY_UNAVAILABLE. The session (the client's token) records, per key, the least
 *   stamp it must see; a read adds the dependencies of the value it returns.
 * - anti-entropy: every `antiEntropyIntervalMs` a replica compares a Merkle tree of the keys it
 *   shares with one peer (`digest-tree.ts`); in sync, one root digest goes over the wire.
 */
import type { Env, LinkState, Message, NodeId, Service, TimerId } from '../core/index.js'
import { HybridLogicalClock, bytesEqual, decodeCanonical, encodeCanonical, sha256 } from '../core/index.js'
import {
  ANTI_ENTROPY_KEYS_WIRE_MAX, ANTI_ENTROPY_NODES_WIRE_MAX, KV_BATCH_MESSAGES_MAX, kvMessages,
  type AvailableRequest, type AvailableResult, type KvAeLeaves, type KvAeNodes, type KvAePull, type KvBatch, type KvForward,
  type KvForwardReply, type KvMessage, type KvRead, type KvReadReply, type KvWrite, type KvWriteAck
} from './available-messages.js'
import { DigestTree, descend, diffEntries, digestTreeDepth, type TreeEntry, type TreeNodeRef } from './digest-tree.js'
import { StoreError } from './errors.js'
import { PeerOutbox, type StoreNet } from './outbox.js'
import { keyPosition, utf8ByteLength, type HashRing } from './ring.js'
import {
  EMPTY_VERSIONED_STATE, STATE_DIGEST_BYTES, applyWrite, compareStamps, decodeVersionedState, encodeVersionedState, lastWriter, mergeStates,
  stateDigest, statesEqual, type Dependencies, type Dot, type Stamp, type VersionVector, type VersionedState
} from './versioned.js'

export interface AvailableStoreLimits {
  /** The longest key, in UTF-8 bytes. */
  keyBytesMax: number
  /** The largest value, in bytes. */
  valueBytesMax: number
  /** How long a coordinator waits for W acknowledgements or R states before it answers STORE_TIMEOUT. */
  requestTimeoutMs: number
  /** Concurrent values one key keeps at most; beyond it the oldest by stamp are dropped. */
  siblingsMax: number
  /** Keys a causal session's token (and a causal write's dependencies) names at most; older ones fold into the token's floor stamp. */
  sessionDependenciesMax: number
  /** How long a causal read waits for the replicas it asks for a missing dependency. */
  causalFetchTimeoutMs: number
  /** Hinted writes a substitute keeps at most; more are refused (not acknowledged). */
  hintsMax: number
  /** How often a substitute tries to hand its hints off to replicas that are back. */
  hintedHandoffIntervalMs: number
  /** Hints handed off per interval at most. */
  hintsPerRoundMax: number
  /** How often a replica starts an anti-entropy exchange with one peer. */
  antiEntropyIntervalMs: number
  /** Anti-entropy bytes (digests and repaired states) a replica sends per second at most. */
  antiEntropyBytesPerSecondMax: number
  /** Keys one anti-entropy exchange repairs at most (the rest wait for the next one). */
  antiEntropyKeysPerExchangeMax: number
  /** Share of single-replica eventual reads that also ask the other replicas, to repair them. */
  readRepairChance: number
  /** A peer's write stamped further ahead of this node's clock than this is refused. */
  clockDriftMsMax: number
  /** Operations one coordinator runs at once; more are refused with STORE_OVERLOADED. */
  operationsInFlightMax: number
  /** Write counters reserved on disk at a time: a restarted node never reuses a dot. */
  dotReserveBlock: number
  /** A peer's queued messages go out at once when they reach this many bytes (about). */
  batchBytesMax: number
  /**
   * How long a replica write nobody waits for (past W, or any causal one) may wait to share a
   * batch with later ones; 0 sends each turn's writes at the end of the turn.
   */
  replicationLingerMs: number
  /** Decoded key states kept in memory for the hot path. */
  stateCacheKeysMax: number
  /** The largest encoded state of one key (all its siblings), in bytes: it must fit one message. */
  stateBytesMax: number
}

export const defaultAvailableStoreLimits: Readonly<AvailableStoreLimits> = Object.freeze({
  keyBytesMax: 1_024,
  valueBytesMax: 512 * 1_024,
  requestTimeoutMs: 3_000,
  siblingsMax: 16,
  sessionDependenciesMax: 8,
  causalFetchTimeoutMs: 1_000,
  hintsMax: 100_000,
  hintedHandoffIntervalMs: 1_000,
  hintsPerRoundMax: 256,
  antiEntropyIntervalMs: 5_000,
  antiEntropyBytesPerSecondMax: 1_048_576,
  antiEntropyKeysPerExchangeMax: 1_024,
  readRepairChance: 0.1,
  clockDriftMsMax: 60_000,
  operationsInFlightMax: 10_000,
  dotReserveBlock: 1_000_000,
  batchBytesMax: 256 * 1_024,
  replicationLingerMs: 5,
  stateCacheKeysMax: 100_000,
  stateBytesMax: 768 * 1_024
})

export interface AvailableStoreInit {
  net: StoreNet
  /** The ring (shared with the strong level), once the store has started. */
  ring: () => HashRing
  /** Whether a member is alive as far as this node knows (membership); default: everyone is. */
  isLive?: (member: NodeId) => boolean
  limits?: Partial<AvailableStoreLimits>
}

export interface AvailableStoreStats {
  /** Requests accepted from clients, by level and kind (`causal.get`, `eventual.put`, ...). */
  operations: Record<string, number>
  /** Completed requests by outcome: ok, or an error code. */
  outcomes: Record<string, number>
  forwarded: number
  forwardDuplicates: number
  /** Write acknowledgements this node gave as a replica or hint holder. */
  replicaWrites: number
  hintsStored: number
  hintsDelivered: number
  hintsRefused: number
  /** Replicas brought up to date by a read. */
  readRepairs: number
  /** Causal reads that had to fetch a dependency from other replicas. */
  dependencyFetches: number
  antiEntropyExchanges: number
  /** Tree digests and key digests sent in anti-entropy (a root compare counts 1). */
  antiEntropyDigestsSent: number
  /** Key states sent to a peer by anti-entropy. */
  antiEntropyKeysSent: number
  /** Anti-entropy rounds skipped because the bandwidth budget was spent. */
  antiEntropyThrottled: number
  /** Peer writes refused because their stamps ran ahead of this node's clock by over clockDriftMsMax. */
  clockDriftRefused: number
  /** Peer messages that passed their schema but failed the protocol's checks, dropped. */
  badMessages: number
}

export type AvailableCallback = (outcome: AvailableResult | StoreError) => void

/** A write's target: a replica, or a substitute keeping a hint for the down replica it names. */
interface Target { readonly node: NodeId, readonly hintFor: NodeId | null }

interface PendingWrite {
  readonly key: string
  readonly acks: Set<NodeId>
  readonly needed: number
  readonly result: AvailableResult
  readonly done: AvailableCallback
  readonly timer: TimerId
}

interface PendingRead {
  readonly key: string
  readonly request: AvailableRequest
  /** States gathered so far, by replica. */
  readonly states: Map<NodeId, VersionedState>
  readonly asked: readonly NodeId[]
  /** Answers that let the read reply (R for eventual; for causal, the first state that holds the dependency). */
  readonly needed: number
  done: AvailableCallback | null
  readonly timer: TimerId
}

interface Exchange { readonly peer: NodeId, readonly tree: DigestTree, readonly startedMs: number }

const STATE_PREFIX = 'kv/s/'
const HINT_PREFIX = 'kv/h/'
const DOT_RESERVE_KEY = 'kv/dot-reserve'
const FORWARD_MARGIN_MS = 500
const FORWARDS_REMEMBERED_MAX = 100_000
/** How long a replica keeps the tree of an anti-entropy exchange it answers. */
const EXCHANGE_TTL_MS = 30_000
const EXCHANGES_MAX = 64
/** An anti-entropy message's size, about, at most: well inside a transport frame. */
const ANTI_ENTROPY_MESSAGE_BYTES_MAX = 256 * 1_024

function approximateBytes (message: KvMessage): number {
  const MESSAGE_OVERHEAD_BYTES = 64
  switch (message.type) {
    case 'kv.write': return MESSAGE_OVERHEAD_BYTES + message.key.length + message.state.length
    case 'kv.read-reply': return MESSAGE_OVERHEAD_BYTES + message.key.length + message.state.length
    case 'kv.forward': return MESSAGE_OVERHEAD_BYTES + message.request.key.length + (message.request.value?.length ?? 0)
    case 'kv.forward-reply': return MESSAGE_OVERHEAD_BYTES + (message.result?.value?.length ?? 0) + (message.result?.siblings.reduce((sum, sibling) => sum + (sibling.value?.length ?? 0), 0) ?? 0)
    case 'kv.ae-nodes': return MESSAGE_OVERHEAD_BYTES + message.nodes.length * 32
    case 'kv.ae-leaves': return MESSAGE_OVERHEAD_BYTES + message.leaves.length * 16 + message.entries.reduce((sum, entry) => sum + entry.key.length + 24, 0)
    case 'kv.ae-pull': return MESSAGE_OVERHEAD_BYTES + message.keys.reduce((sum, key) => sum + key.length + 4, 0)
    default: return MESSAGE_OVERHEAD_BYTES + ('key' in message ? message.key.length : 0)
  }
}

/** The key of a dependency set's floor entry (no real key is empty). */
export const DEPENDENCY_FLOOR_KEY = ''

/**
 * Dependency sets joined, and bounded to `keysMax` named keys: per key the greatest stamp; the
 * entries with the oldest stamps beyond the bound go into the floor (the least stamp a reader must
 * see of any key not named), and a named entry at or below the floor is dropped (the floor covers
 * it). So a session's token stays small however many keys it touches; what it costs is that a
 * read of a key below the floor may have to ask the key's other replicas (`requiredStamp`).
 */
export function joinDependencies (keysMax: number, ...sets: Dependencies[]): Dependencies {
  const byKey = new Map<string, Stamp>()
  for (const set of sets) {
    for (const [key, stamp] of set) {
      const known = byKey.get(key)
      if (known === undefined || compareStamps(stamp, known) > 0) byKey.set(key, stamp)
    }
  }
  let floor = byKey.get(DEPENDENCY_FLOOR_KEY) ?? null
  byKey.delete(DEPENDENCY_FLOOR_KEY)
  let named = [...byKey].sort((a, b) => compareStamps(a[1], b[1]))
  if (named.length > keysMax) {
    const evicted = named.slice(0, named.length - keysMax)
    named = named.slice(named.length - keysMax)
    const highest = (evicted.at(-1) as [string, Stamp])[1]
    if (floor === null || compareStamps(highest, floor) > 0) floor = highest
  }
  const kept: Array<readonly [string, Stamp]> = floor === null ? [] : [[DEPENDENCY_FLOOR_KEY, floor]]
  for (const entry of named) if (floor === null || compareStamps(entry[1], floor) > 0) kept.push(entry)
  return kept.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
}

/** The least stamp of `key` a session with these dependencies must see: its own entry, else the floor. */
export function requiredStamp (dependencies: Dependencies, key: string): Stamp | null {
  let floor: Stamp | null = null
  for (const [name, stamp] of dependencies) {
    if (name === key) return stamp
    if (name === DEPENDENCY_FLOOR_KEY) floor = stamp
  }
  return floor
}

export class AvailableStoreService implements Service {
  readonly name = 'store-available'
  readonly messages = kvMessages
  private env: Env | null = null
  private clock: HybridLogicalClock | null = null
  private readonly limits: AvailableStoreLimits
  private readonly outbox: PeerOutbox<KvMessage>
  private readonly lostLinks = new Set<NodeId>()
  private readonly writes = new Map<number, PendingWrite>()
  private readonly reads = new Map<number, PendingRead>()
  private readonly forwards = new Map<number, { done: AvailableCallback, timer: TimerId, request: AvailableRequest }>()
  private readonly forwardsSeen = new Set<string>()
  /** Per key this replica holds: its ring position and state digest, for anti-entropy trees. */
  private readonly digests = new Map<string, { position: number, digest: Uint8Array }>()
  /** Decoded states of the keys used lately (`stateCacheKeysMax`). */
  private readonly stateCache = new Map<string, VersionedState>()
  /** Bumped on every change of a held state: a cached tree older than this is rebuilt. */
  private statesVersion = 0
  private readonly trees = new Map<NodeId, { tree: DigestTree, version: number }>()
  private readonly exchanges = new Map<string, Exchange>()
  /** Hinted keys by the replica they wait for. */
  private readonly hints = new Map<NodeId, Set<string>>()
  private hintCount = 0
  private readonly handoffsInFlight = new Set<string>()
  private antiEntropyPeerIndex = 0
  private antiEntropyBudgetBytes = 0
  private antiEntropyRefilledMs = 0
  private timers: TimerId[] = []
  private inFlight = 0
  private nextRequestId = 1
  private forwardPrefix = ''
  private dotCounter = 0
  private dotReserved = 0
  private reserving: Array<() => void> | null = null
  private readonly counters: AvailableStoreStats = {
    operations: {},
    outcomes: {},
    forwarded: 0,
    forwardDuplicates: 0,
    replicaWrites: 0,
    hintsStored: 0,
    hintsDelivered: 0,
    hintsRefused: 0,
    readRepairs: 0,
    dependencyFetches: 0,
    antiEntropyExchanges: 0,
    antiEntropyDigestsSent: 0,
    antiEntropyKeysSent: 0,
    antiEntropyThrottled: 0,
    clockDriftRefused: 0,
    badMessages: 0
  }

  constructor (private readonly init: AvailableStoreInit) {
    this.limits = { ...defaultAvailableStoreLimits, ...init.limits }
    this.outbox = new PeerOutbox<KvMessage>({
      net: init.net,
      batchType: 'kv.batch',
      batchMessagesMax: KV_BATCH_MESSAGES_MAX,
      batchBytesMax: this.limits.batchBytesMax,
      approximateBytes,
      deliverLocal: (message) => { this.receive(message, this.requireEnv().self) }
    })
    for (const definition of kvMessages) {
      init.net.onRouted(definition.type, (message, delivery) => { this.receive(message as KvMessage | KvBatch, delivery.origin) })
    }
  }

  start (env: Env): void {
    this.env = env
    this.clock = new HybridLogicalClock(() => env.now(), { driftMsMax: this.limits.clockDriftMsMax })
    this.lostLinks.clear()
    this.outbox.start(env)
    const stored = env.disk.get(DOT_RESERVE_KEY)
    const reserved = stored === undefined ? 0 : decodeCanonical(stored)
    this.dotReserved = typeof reserved === 'number' && Number.isSafeInteger(reserved) && reserved >= 0 ? reserved : 0
    this.dotCounter = this.dotReserved
    this.forwardPrefix = `${env.self}.${env.random.int(0, 0x7fffffff).toString(36)}.`
    this.nextRequestId = env.random.int(1, 2 ** 40)
    this.loadIndexes(env)
    this.antiEntropyRefilledMs = env.now()
    this.antiEntropyBudgetBytes = this.limits.antiEntropyBytesPerSecondMax
    this.antiEntropyPeerIndex = env.random.int(0, Math.max(0, env.members.length - 1))
    this.every(this.limits.hintedHandoffIntervalMs, () => { this.handOffHints() })
    this.every(this.limits.antiEntropyIntervalMs, () => { this.runAntiEntropy() })
  }

  stop (): void {
    const env = this.env
    if (env === null) return
    for (const timer of this.timers) env.clearTimer(timer)
    for (const write of this.writes.values()) env.clearTimer(write.timer)
    for (const read of this.reads.values()) env.clearTimer(read.timer)
    for (const forward of this.forwards.values()) env.clearTimer(forward.timer)
    this.timers = []
    this.writes.clear()
    this.reads.clear()
    this.forwards.clear()
    this.exchanges.clear()
    this.trees.clear()
    this.stateCache.clear()
    this.handoffsInFlight.clear()
    this.outbox.stop()
    this.inFlight = 0
    this.env = null
  }

  onMessage (from: NodeId, message: Message): void {
    if (message.type.startsWith('kv.')) this.receive(message as KvMessage | KvBatch, from)
  }

  onLinkChange (peer: NodeId, state: LinkState): void {
    this.outbox.linkChanged(peer, state === 'connected')
    if (state === 'connected') this.lostLinks.delete(peer)
    else this.lostLinks.add(peer)
  }

  stats (): AvailableStoreStats {
    return { ...this.counters, operations: { ...this.counters.operations }, outcomes: { ...this.counters.outcomes } }
  }

  status (): object {
    return { keysHeld: this.digests.size, hints: this.hintCount, inFlight: this.inFlight, stats: this.env === null ? null : this.stats() }
  }

  /** Keys this replica holds a state for (tombstones included). */
  keysHeld (): number {
    return this.digests.size
  }

  /** Hinted writes this node keeps for down replicas. */
  hintsHeld (): number {
    return this.hintCount
  }

  /** This replica's own state of a key (no network): for tests, the convergence checker and the dashboard. */
  localState (key: string): VersionedState {
    const cached = this.stateCache.get(key)
    if (cached !== undefined) return cached
    const bytes = this.requireEnv().disk.get(STATE_PREFIX + key)
    const state = bytes === undefined ? EMPTY_VERSIONED_STATE : decodeVersionedState(bytes)
    this.cacheState(key, state)
    return state
  }

  /** Keeps a decoded state for the hot path (the disk holds the truth; the oldest entries go first). */
  private cacheState (key: string, state: VersionedState): void {
    if (this.stateCache.size >= this.limits.stateCacheKeysMax && !this.stateCache.has(key)) {
      this.stateCache.delete(this.stateCache.keys().next().value as string)
    }
    this.stateCache.set(key, state)
  }

  /** The key's replicas: its preference list on the ring. */
  replicasOf (key: string): NodeId[] {
    return this.init.ring().preferenceList(key)
  }

  /** Every key this replica holds, sorted. */
  heldKeys (): string[] {
    return [...this.digests.keys()].sort()
  }

  /**
   * Runs one client request at the causal or eventual level; `done` gets the result or a
   * StoreError (never throws for an operating error).
   */
  execute (request: AvailableRequest, done: AvailableCallback): void {
    this.requireEnv()
    const invalid = this.validate(request)
    if (invalid !== null) { this.finish(done, invalid); return }
    const name = `${request.level}.${request.kind}`
    this.counters.operations[name] = (this.counters.operations[name] ?? 0) + 1
    this.route(request, this.requireEnv().now() + this.limits.requestTimeoutMs, done, false)
  }

  // --- routing ----------------------------------------------------------------------------------

  private route (request: AvailableRequest, deadlineMs: number, done: AvailableCallback, forwarded: boolean): void {
    const env = this.requireEnv()
    const replicas = this.init.ring().preferenceList(request.key)
    const live = replicas.filter((member) => this.isLive(member))
    if (request.kind === 'get') {
      const needed = request.level === 'eventual' ? request.readQuorum : 1
      if (live.length < needed) {
        this.finish(done, new StoreError('STORE_NO_QUORUM', `${live.length} of the key's ${replicas.length} replicas are reachable, the read needs ${needed}`, { replicas: replicas.length, reachable: live.length, needed }))
        return
      }
      if (live.includes(env.self)) { this.coordinateRead(request, replicas, live, deadlineMs, done); return }
      this.forwardOrRefuse(request, live, forwarded, done)
      return
    }
    const targets = this.writeTargets(request.key, replicas)
    const needed = request.level === 'eventual' ? request.writeQuorum : 1
    if (targets.length < needed || live.length === 0) {
      this.finish(done, new StoreError('STORE_NO_QUORUM', live.length === 0
        ? `none of the key's ${replicas.length} replicas is reachable (a write is coordinated by one of them)`
        : `${targets.length} nodes can take the write, it needs ${needed}`, { reachable: targets.length, replicasReachable: live.length, needed }))
      return
    }
    // The coordinator is a replica: its dots then always describe its own copy's history (a
    // substitute's hint copy starts empty and would issue dots that seem to supersede writes it never saw).
    if (live.includes(env.self)) { this.coordinateWrite(request, targets, needed, deadlineMs, done); return }
    this.forwardOrRefuse(request, live, forwarded, done)
  }

  /**
   * The nodes a write goes to (a sloppy quorum): the key's live replicas, and for each replica
   * that is down the next live member clockwise past the preference list, which keeps the write
   * as a hint for it.
   */
  private writeTargets (key: string, replicas: readonly NodeId[]): Target[] {
    const ring = this.init.ring()
    const targets: Target[] = []
    const down: NodeId[] = []
    for (const replica of replicas) {
      if (this.isLive(replica)) targets.push({ node: replica, hintFor: null })
      else down.push(replica)
    }
    if (down.length === 0) return targets
    const walk = ring.preferenceList(key, ring.members().length)
    for (const candidate of walk.slice(replicas.length)) {
      if (down.length === 0) break
      if (!this.isLive(candidate)) continue
      targets.push({ node: candidate, hintFor: down.shift() as NodeId })
    }
    return targets
  }

  private forwardOrRefuse (request: AvailableRequest, candidates: readonly NodeId[], forwarded: boolean, done: AvailableCallback): void {
    if (forwarded) {
      // Views differ (the forwarder thought this node a replica): one hop only, so no loops.
      this.finish(done, new StoreError('STORE_NO_QUORUM', 'the request reached a node that is not among the key\'s live replicas; retry', { key: request.key }))
      return
    }
    const env = this.requireEnv()
    for (const target of candidates) {
      const requestId = this.nextRequestId++
      const message: KvForward = { type: 'kv.forward', requestId, forwardId: `${this.forwardPrefix}${requestId}`, request, deadlineInMs: this.limits.requestTimeoutMs }
      if (!this.outbox.transmit(target, message)) continue
      this.counters.forwarded++
      const timer = env.setTimer(this.limits.requestTimeoutMs + FORWARD_MARGIN_MS, () => {
        this.forwards.delete(requestId)
        this.finish(done, request.kind === 'get'
          ? new StoreError('STORE_NO_QUORUM', `the coordinator ${target} did not answer in time`, { coordinator: target })
          : new StoreError('STORE_TIMEOUT', `the coordinator ${target} did not answer in time: the write may or may not have applied`, { coordinator: target }))
      })
      this.forwards.set(requestId, { done, timer, request })
      return
    }
    this.finish(done, new StoreError('STORE_NO_QUORUM', 'no live path to any replica of the key'))
  }

  private onForward (message: KvForward, origin: NodeId): void {
    const env = this.requireEnv()
    const seen = `${origin}/${message.forwardId}`
    if (this.forwardsSeen.has(seen)) { this.counters.forwardDuplicates++; return }
    this.forwardsSeen.add(seen)
    if (this.forwardsSeen.size > FORWARDS_REMEMBERED_MAX) this.forwardsSeen.delete(this.forwardsSeen.values().next().value as string)
    const invalid = this.validate(message.request)
    const reply = (outcome: AvailableResult | StoreError): void => {
      const answer: KvForwardReply = outcome instanceof StoreError
        ? { type: 'kv.forward-reply', requestId: message.requestId, result: null, error: { code: outcome.code, message: outcome.message } }
        : { type: 'kv.forward-reply', requestId: message.requestId, result: outcome, error: null }
      this.outbox.send(origin, answer)
    }
    if (invalid !== null) { reply(invalid); return }
    this.route(message.request, env.now() + Math.min(message.deadlineInMs, this.limits.requestTimeoutMs), reply, true)
  }

  private onForwardReply (message: KvForwardReply): void {
    const forward = this.forwards.get(message.requestId)
    if (forward === undefined) return
    this.forwards.delete(message.requestId)
    this.requireEnv().clearTimer(forward.timer)
    if (message.result !== null) { this.finish(forward.done, message.result); return }
    const code = (message.error?.code ?? 'STORE_TIMEOUT') as StoreError['code']
    this.finish(forward.done, new StoreError(code, message.error?.message ?? 'the coordinator failed'))
  }

  // --- writes -----------------------------------------------------------------------------------

  private coordinateWrite (request: AvailableRequest, targets: readonly Target[], needed: number, deadlineMs: number, done: AvailableCallback): void {
    const env = this.requireEnv()
    if (this.inFlight >= this.limits.operationsInFlightMax) {
      this.finish(done, new StoreError('STORE_OVERLOADED', `this coordinator runs ${this.inFlight} operations (operationsInFlightMax ${this.limits.operationsInFlightMax}); the write did not apply`))
      return
    }
    const keysMax = this.limits.sessionDependenciesMax
    const dependencies = request.level === 'causal' ? joinDependencies(keysMax, request.dependencies.filter(([key]) => key !== request.key)) : []
    // The write's stamp must exceed every stamp its session depends on: causal order agrees with last-writer order.
    const clock = this.hlc()
    for (const [, stamp] of request.dependencies) {
      if (!clock.observe([stamp[0], stamp[1]])) {
        this.finish(done, new StoreError('STORE_SESSION_INVALID', `the session depends on a write stamped over clockDriftMsMax ${this.limits.clockDriftMsMax} ms ahead of this node's clock`))
        return
      }
    }
    this.inFlight++
    this.withDot((counter) => {
      if (this.env !== env) return
      const base = this.localState(request.key)
      // The new write supersedes what this copy holds: its stamp must exceed theirs (last-writer
      // order agrees with what the writer saw), whatever this node's clock said since its restart.
      const superseded = lastWriter(base)
      if (superseded !== null) clock.observe([superseded.stamp[0], superseded.stamp[1]])
      const [physicalMs, logical] = clock.now()
      const stamp: Stamp = [physicalMs, logical, env.self]
      // A client's context is only trusted as far as this copy has seen: a context naming more
      // (made up, or read from a replica ahead of this one) would supersede writes never read.
      const context = request.siblings ? meetVectors(request.context ?? {}, base.context) : base.context
      // A counter above every dot of this node the copy has seen, even if the reservation on disk was lost.
      const dot: Dot = [env.self, Math.max(counter, (base.context[env.self] ?? 0) + 1)]
      const state = applyWrite(base, { dot, stamp, value: request.kind === 'put' ? request.value : null, context, dependencies }, this.limits.siblingsMax)
      const encoded = encodeVersionedState(state)
      const stateBytes = encoded.length
      if (stateBytes > this.limits.stateBytesMax) {
        this.inFlight--
        this.finish(done, new StoreError('STORE_VALUE_TOO_LARGE', `the key's state would be ${stateBytes} bytes with this write (its concurrent values included), over stateBytesMax ${this.limits.stateBytesMax}; resolve its siblings or write a smaller value`, { stateBytes, stateBytesMax: this.limits.stateBytesMax }))
        return
      }
      const result: AvailableResult = {
        kind: request.kind,
        stamp,
        value: null,
        siblings: [],
        context: state.context,
        dependencies: request.level === 'causal' ? joinDependencies(keysMax, dependencies, [[request.key, stamp]]) : []
      }
      const requestId = this.nextRequestId++
      const timer = env.setTimer(Math.max(0, deadlineMs - env.now()), () => {
        const pending = this.writes.get(requestId)
        if (pending === undefined) return
        this.writes.delete(requestId)
        this.inFlight--
        this.finish(done, new StoreError('STORE_TIMEOUT', `${pending.acks.size} of the ${needed} acknowledgements the write needs arrived in time: it is stored at some replicas and may or may not survive`, { acknowledged: pending.acks.size, needed }))
      })
      this.writes.set(requestId, { key: request.key, acks: new Set(), needed, result, done, timer })
      this.putState(request.key, state, encoded)
      env.disk.sync(() => { if (this.env === env) this.onWriteAck({ type: 'kv.write-ack', requestId, key: request.key }, env.self) })
      // With W = 1 the coordinator's own copy is the acknowledgement: the others take the write
      // without answering and make it durable with their next sync (anti-entropy covers a loss).
      const replicaRequestId = needed > 1 ? requestId : 0
      const lingerMs = replicaRequestId === 0 ? this.limits.replicationLingerMs : 0
      for (const target of targets) {
        if (target.node === env.self) continue
        this.outbox.send(target.node, { type: 'kv.write', requestId: replicaRequestId, key: request.key, state: encoded, hintFor: target.hintFor }, lingerMs)
      }
    })
  }

  private onWriteAck (message: KvWriteAck, origin: NodeId): void {
    const pending = this.writes.get(message.requestId)
    if (pending === undefined || pending.key !== message.key) return
    pending.acks.add(origin)
    if (pending.acks.size < pending.needed) return
    this.writes.delete(message.requestId)
    this.requireEnv().clearTimer(pending.timer)
    this.inFlight--
    this.finish(pending.done, pending.result)
  }

  private onWrite (message: KvWrite, state: VersionedState, origin: NodeId): void {
    if (!this.stampsAcceptable(state)) return
    const env = this.requireEnv()
    const hintFor = message.hintFor === env.self ? null : message.hintFor
    if (hintFor !== null && (this.init.ring().member(hintFor) === undefined || !this.replicasOf(message.key).includes(hintFor))) {
      this.counters.badMessages++
      return
    }
    if (hintFor !== null && !this.hints.get(hintFor)?.has(message.key) && this.hintCount >= this.limits.hintsMax) {
      this.counters.hintsRefused++
      return
    }
    if (message.requestId === 0) {
      // A write past W, a read repair or an anti-entropy push: no answer; durable with the next sync.
      this.mergeLocally(message.key, state, hintFor)
      return
    }
    this.storeAndAck(message.key, state, hintFor, () => {
      this.counters.replicaWrites++
      this.outbox.send(origin, { type: 'kv.write-ack', requestId: message.requestId, key: message.key })
    })
  }

  /** Merges a state into this node's copy (or its hint), then calls `acknowledge` once the disk holds it. */
  private storeAndAck (key: string, state: VersionedState, hintFor: NodeId | null, acknowledge: () => void): void {
    const env = this.requireEnv()
    this.mergeLocally(key, state, hintFor)
    env.disk.sync(() => { if (this.env === env) acknowledge() })
  }

  private mergeLocally (key: string, incoming: VersionedState, hintFor: NodeId | null): VersionedState {
    if (hintFor !== null) return this.mergeHint(hintFor, key, incoming)
    const current = this.localState(key)
    const merged = mergeStates(current, incoming, this.limits.siblingsMax)
    if (!statesEqual(current, merged)) this.putState(key, merged)
    return merged
  }

  private putState (key: string, state: VersionedState, encoded?: Uint8Array): void {
    const bytes = encoded ?? encodeVersionedState(state)
    this.requireEnv().disk.put(STATE_PREFIX + key, bytes)
    this.cacheState(key, state)
    // The digest is stateDigest(state), taken from the bytes already encoded.
    this.digests.set(key, { position: this.digests.get(key)?.position ?? keyPosition(key), digest: sha256(bytes).subarray(0, STATE_DIGEST_BYTES) })
    this.statesVersion++
  }

  /** A peer's state whose stamps run ahead of this node's clock is refused (it would win every later race). */
  private stampsAcceptable (state: VersionedState): boolean {
    const clock = this.hlc()
    for (const sibling of state.siblings) {
      if (!clock.observe([sibling.stamp[0], sibling.stamp[1]])) {
        this.counters.clockDriftRefused++
        return false
      }
    }
    return true
  }

  // --- hints ------------------------------------------------------------------------------------

  private hintState (intended: NodeId, key: string): VersionedState {
    const bytes = this.requireEnv().disk.get(`${HINT_PREFIX}${intended}/${key}`)
    return bytes === undefined ? EMPTY_VERSIONED_STATE : decodeVersionedState(bytes)
  }

  private mergeHint (intended: NodeId, key: string, incoming: VersionedState): VersionedState {
    const env = this.requireEnv()
    const current = this.hintState(intended, key)
    const merged = mergeStates(current, incoming, this.limits.siblingsMax)
    let keys = this.hints.get(intended)
    if (keys === undefined) { keys = new Set(); this.hints.set(intended, keys) }
    if (!keys.has(key)) {
      keys.add(key)
      this.hintCount++
      this.counters.hintsStored++
    }
    env.disk.put(`${HINT_PREFIX}${intended}/${key}`, encodeVersionedState(merged))
    return merged
  }

  /** Hands hints to their replicas that are live again; a hint is deleted once its replica acknowledges it unchanged. */
  private handOffHints (): void {
    const env = this.requireEnv()
    let sent = 0
    for (const [intended, keys] of this.hints) {
      if (!this.isLive(intended) || intended === env.self) continue
      for (const key of keys) {
        if (sent >= this.limits.hintsPerRoundMax) return
        const handoff = `${intended}/${key}`
        if (this.handoffsInFlight.has(handoff)) continue
        const state = this.hintState(intended, key)
        const digest = stateDigest(state)
        const requestId = this.nextRequestId++
        this.handoffsInFlight.add(handoff)
        sent++
        const timer = env.setTimer(this.limits.requestTimeoutMs, () => {
          this.writes.delete(requestId)
          this.handoffsInFlight.delete(handoff)
        })
        this.writes.set(requestId, {
          key,
          acks: new Set(),
          needed: 1,
          result: { kind: 'put', stamp: null, value: null, siblings: [], context: {}, dependencies: [] },
          done: () => {
            this.handoffsInFlight.delete(handoff)
            this.inFlight++ // onWriteAck counts the write out; a handoff never counted in
            if (this.env !== env) return
            const current = this.hintState(intended, key)
            if (!statesEqual(current, state) && !bytesEqual(stateDigest(current), digest)) return
            env.disk.delete(`${HINT_PREFIX}${intended}/${key}`)
            keys.delete(key)
            if (keys.size === 0) this.hints.delete(intended)
            this.hintCount--
            this.counters.hintsDelivered++
          },
          timer
        })
        this.outbox.send(intended, { type: 'kv.write', requestId, key, state: encodeVersionedState(state), hintFor: null })
      }
    }
  }

  // --- reads ------------------------------------------------------------------------------------

  private coordinateRead (request: AvailableRequest, replicas: readonly NodeId[], live: readonly NodeId[], deadlineMs: number, done: AvailableCallback): void {
    const env = this.requireEnv()
    const local = this.localState(request.key)
    if (request.level === 'causal') {
      const required = requiredStamp(request.dependencies, request.key)
      if (satisfies(local, required)) { this.answerRead(request, local, done); return }
      this.counters.dependencyFetches++
      const others = live.filter((member) => member !== env.self)
      if (others.length === 0) {
        // This node is the only replica there is (then nothing newer exists anywhere), or the only one reachable.
        if (replicas.length <= 1) this.answerRead(request, local, done)
        else this.finish(done, dependencyUnavailable(request.key, replicas.length, 1))
        return
      }
      this.startRead(request, others, 1, Math.min(deadlineMs, env.now() + this.limits.causalFetchTimeoutMs), done, local)
      return
    }
    const others = live.filter((member) => member !== env.self)
    if (request.readQuorum <= 1) {
      this.answerRead(request, local, done)
      if (others.length > 0 && env.random.chance(this.limits.readRepairChance)) this.startRead(request, others, others.length, deadlineMs, null, local)
      return
    }
    this.startRead(request, others, request.readQuorum - 1, deadlineMs, done, local)
  }

  /** Asks `asked` for their states; answers once `needed` of them arrived (causal: once one holds the dependency). */
  private startRead (request: AvailableRequest, asked: readonly NodeId[], needed: number, deadlineMs: number, done: AvailableCallback | null, local: VersionedState): void {
    const env = this.requireEnv()
    if (done !== null) this.inFlight++
    const requestId = this.nextRequestId++
    const states = new Map<NodeId, VersionedState>([[env.self, local]])
    const timer = env.setTimer(Math.max(0, deadlineMs - env.now()), () => {
      const read = this.reads.get(requestId)
      if (read === undefined) return
      this.reads.delete(requestId)
      this.repair(read)
      if (read.done === null) return
      this.inFlight--
      const callback = read.done
      read.done = null
      if (request.level === 'causal') this.finish(callback, dependencyUnavailable(request.key, asked.length + 1, read.states.size))
      else this.finish(callback, new StoreError('STORE_TIMEOUT', `${read.states.size} of the ${needed + 1} replicas the read needs answered in time`, { answered: read.states.size, needed: needed + 1 }))
    })
    this.reads.set(requestId, { key: request.key, request, states, asked, needed, done, timer })
    for (const peer of asked) this.outbox.send(peer, { type: 'kv.read', requestId, key: request.key })
  }

  private onRead (message: KvRead, origin: NodeId): void {
    this.outbox.send(origin, { type: 'kv.read-reply', requestId: message.requestId, key: message.key, state: encodeVersionedState(this.localState(message.key)) })
  }

  private onReadReply (message: KvReadReply, state: VersionedState, origin: NodeId): void {
    const read = this.reads.get(message.requestId)
    if (read === undefined || read.key !== message.key || !read.asked.includes(origin)) return
    if (!this.stampsAcceptable(state)) return
    read.states.set(origin, state)
    const answered = read.states.size - 1
    if (read.done !== null) {
      const merged = mergeAll(read.states.values(), this.limits.siblingsMax)
      // Causal: the state shows the dependency; or, for a key the session names only through its
      // floor (the floor is a bound, not a write of this key), every replica answered: none holds more.
      const ready = read.request.level === 'causal'
        ? satisfies(merged, requiredStamp(read.request.dependencies, read.key)) || (!namesKey(read.request.dependencies, read.key) && read.states.size >= read.asked.length + 1 && read.asked.length + 1 >= this.replicasOf(read.key).length)
        : answered >= read.needed
      if (ready) {
        const callback = read.done
        read.done = null
        this.inFlight--
        if (read.request.level === 'causal') this.mergeLocally(read.key, merged, null)
        this.answerRead(read.request, merged, callback)
      }
    }
    if (answered >= read.asked.length) {
      this.reads.delete(message.requestId)
      this.requireEnv().clearTimer(read.timer)
      this.repair(read)
    }
  }

  /** Read repair: every replica that answered with less than the merged state gets it (no ack). */
  private repair (read: PendingRead): void {
    const env = this.requireEnv()
    if (read.states.size < 2) return
    const merged = mergeAll(read.states.values(), this.limits.siblingsMax)
    for (const [replica, state] of read.states) {
      if (statesEqual(state, merged)) continue
      this.counters.readRepairs++
      if (replica === env.self) this.mergeLocally(read.key, merged, null)
      else this.outbox.send(replica, { type: 'kv.write', requestId: 0, key: read.key, state: encodeVersionedState(merged), hintFor: null })
    }
  }

  private answerRead (request: AvailableRequest, state: VersionedState, done: AvailableCallback): void {
    if (request.level === 'causal') {
      // A session must never depend on a write a crash could still take back: answer once the
      // disk holds what this copy shows (writes merged in are durable only with a sync).
      const env = this.requireEnv()
      env.disk.sync(() => { if (this.env === env) this.finishRead(request, state, done) })
      return
    }
    this.finishRead(request, state, done)
  }

  private finishRead (request: AvailableRequest, state: VersionedState, done: AvailableCallback): void {
    const winner = lastWriter(state)
    const dependencies = request.level === 'causal'
      ? joinDependencies(this.limits.sessionDependenciesMax, request.dependencies, ...(winner === null ? [] : [winner.dependencies, [[request.key, winner.stamp] as const]]))
      : []
    this.finish(done, {
      kind: 'get',
      stamp: winner?.stamp ?? null,
      value: winner?.value ?? null,
      siblings: request.siblings ? state.siblings.map((sibling) => ({ value: sibling.value, stamp: sibling.stamp })) : [],
      context: state.context,
      dependencies
    })
  }

  // --- anti-entropy -----------------------------------------------------------------------------

  /** Starts one anti-entropy exchange with `peerWanted`, or the next live peer in turn, if the bandwidth budget allows (a timer calls it every antiEntropyIntervalMs). */
  runAntiEntropy (peerWanted?: NodeId): void {
    const env = this.requireEnv()
    this.refillBudget()
    if (this.antiEntropyBudgetBytes <= 0) { this.counters.antiEntropyThrottled++; return }
    const peers = this.init.ring().members().map((member) => member.id).filter((id) => id !== env.self && this.isLive(id))
    if (peers.length === 0) return
    const peer = peerWanted ?? peers[this.antiEntropyPeerIndex++ % peers.length] as NodeId
    const entries = this.treeEntries(peer)
    const depth = digestTreeDepth(entries.length)
    const tree = this.treeFor(peer, depth, entries)
    const exchangeId = `${env.self.slice(0, 8)}.${(this.nextRequestId++).toString(36)}`
    this.rememberExchange(exchangeId, { peer, tree, startedMs: env.now() })
    this.counters.antiEntropyExchanges++
    this.sendAntiEntropy(peer, { type: 'kv.ae-nodes', exchangeId, depth, nodes: [{ level: 0, prefix: 0, hash: tree.hash({ level: 0, prefix: 0 }) }] })
  }

  private onAeNodes (message: KvAeNodes, origin: NodeId): void {
    const exchange = this.exchangeFor(message.exchangeId, origin, message.depth)
    const { next, leaves } = descend(exchange.tree, message.nodes)
    for (const nodes of chunks(next, ANTI_ENTROPY_NODES_WIRE_MAX, () => 32)) {
      this.sendAntiEntropy(origin, { type: 'kv.ae-nodes', exchangeId: message.exchangeId, depth: message.depth, nodes })
    }
    // Each message names leaves and carries the entries under them, within the wire's limits (a
    // leaf with more entries than one message holds goes in parts; the other side then pushes a
    // few keys it need not, which merging makes harmless).
    const parts: Array<{ leaves: TreeNodeRef[], entries: Array<{ key: string, digest: Uint8Array }> }> = []
    for (const leaf of leaves) {
      const entries = exchange.tree.entriesUnder(leaf).map((entry) => ({ key: entry.key, digest: entry.digest }))
      const pieces = entries.length === 0 ? [[]] : chunks(entries, ANTI_ENTROPY_KEYS_WIRE_MAX, (entry) => entry.key.length * 3 + 24)
      for (const piece of pieces) {
        const last = parts.at(-1)
        if (last !== undefined && last.leaves.length < ANTI_ENTROPY_NODES_WIRE_MAX && last.entries.length + piece.length <= ANTI_ENTROPY_KEYS_WIRE_MAX &&
          entriesBytes(last.entries) + entriesBytes(piece) <= ANTI_ENTROPY_MESSAGE_BYTES_MAX) {
          last.leaves.push(leaf)
          last.entries.push(...piece)
        } else {
          parts.push({ leaves: [leaf], entries: [...piece] })
        }
      }
    }
    for (const part of parts) this.sendAntiEntropy(origin, { type: 'kv.ae-leaves', exchangeId: message.exchangeId, depth: message.depth, leaves: part.leaves, entries: part.entries })
  }

  private onAeLeaves (message: KvAeLeaves, origin: NodeId): void {
    const exchange = this.exchangeFor(message.exchangeId, origin, message.depth)
    const mine = message.leaves.flatMap((leaf) => exchange.tree.entriesUnder(leaf))
    const { send, request } = diffEntries(mine, message.entries)
    const budget = this.limits.antiEntropyKeysPerExchangeMax
    for (const key of send.slice(0, budget)) {
      this.counters.antiEntropyKeysSent++
      this.sendAntiEntropy(origin, { type: 'kv.write', requestId: 0, key, state: encodeVersionedState(this.localState(key)), hintFor: null })
    }
    for (const keys of chunks(request.slice(0, budget), ANTI_ENTROPY_KEYS_WIRE_MAX, (key) => key.length * 3 + 8)) {
      this.sendAntiEntropy(origin, { type: 'kv.ae-pull', exchangeId: message.exchangeId, keys })
    }
  }

  /** Pulls are answered only within an exchange this node takes part in with that peer. */
  private onAePull (message: KvAePull, origin: NodeId): void {
    if (this.exchanges.get(message.exchangeId)?.peer !== origin) { this.counters.badMessages++; return }
    this.refillBudget()
    for (const key of message.keys.slice(0, this.limits.antiEntropyKeysPerExchangeMax)) {
      if (this.antiEntropyBudgetBytes <= 0) { this.counters.antiEntropyThrottled++; return }
      if (!this.digests.has(key)) continue
      this.counters.antiEntropyKeysSent++
      this.sendAntiEntropy(origin, { type: 'kv.write', requestId: 0, key, state: encodeVersionedState(this.localState(key)), hintFor: null })
    }
  }

  private sendAntiEntropy (peer: NodeId, message: KvMessage): void {
    if (message.type === 'kv.ae-nodes') this.counters.antiEntropyDigestsSent += message.nodes.length
    if (message.type === 'kv.ae-leaves') this.counters.antiEntropyDigestsSent += message.entries.length
    this.antiEntropyBudgetBytes -= approximateBytes(message)
    this.outbox.send(peer, message)
  }

  private refillBudget (): void {
    const now = this.requireEnv().now()
    const rate = this.limits.antiEntropyBytesPerSecondMax
    this.antiEntropyBudgetBytes = Math.min(rate, this.antiEntropyBudgetBytes + (now - this.antiEntropyRefilledMs) * rate / 1_000)
    this.antiEntropyRefilledMs = now
  }

  /** The exchange's tree on this side: the initiator's, or one built now at the initiator's depth. */
  private exchangeFor (exchangeId: string, peer: NodeId, depth: number): Exchange {
    const known = this.exchanges.get(exchangeId)
    if (known !== undefined && known.peer === peer && known.tree.depth === depth) return known
    const exchange = { peer, tree: this.treeFor(peer, depth, this.treeEntries(peer)), startedMs: this.requireEnv().now() }
    this.rememberExchange(exchangeId, exchange)
    return exchange
  }

  private rememberExchange (exchangeId: string, exchange: Exchange): void {
    const now = this.requireEnv().now()
    for (const [id, old] of this.exchanges) if (now - old.startedMs > EXCHANGE_TTL_MS) this.exchanges.delete(id)
    if (this.exchanges.size >= EXCHANGES_MAX) this.exchanges.delete(this.exchanges.keys().next().value as string)
    this.exchanges.set(exchangeId, exchange)
  }

  /** The keys this replica holds that `peer` replicates too. */
  private treeEntries (peer: NodeId): TreeEntry[] {
    const ring = this.init.ring()
    const entries: TreeEntry[] = []
    for (const [key, { position, digest }] of this.digests) {
      if (ring.preferenceList(key).includes(peer)) entries.push({ key, position, digest })
    }
    return entries
  }

  private treeFor (peer: NodeId, depth: number, entries: readonly TreeEntry[]): DigestTree {
    const cached = this.trees.get(peer)
    if (cached !== undefined && cached.version === this.statesVersion && cached.tree.depth === depth) return cached.tree
    const tree = DigestTree.build(entries, depth)
    this.trees.set(peer, { tree, version: this.statesVersion })
    return tree
  }

  // --- plumbing ---------------------------------------------------------------------------------

  private receive (message: KvMessage | KvBatch, origin: NodeId): void {
    if (this.env === null) return
    if (message.type === 'kv.batch') {
      for (const inner of message.messages) this.receive(inner, origin)
      return
    }
    try {
      this.handle(message, origin)
    } catch (error) {
      // A message that passed its schema but not the protocol's checks (a tree node deeper than
      // the tree, a state over the limits): counted and dropped, the rest of its batch still runs.
      this.counters.badMessages++
      this.env.log.warn({ peer: origin, type: message.type, reason: error instanceof Error ? error.message : String(error) }, 'store message refused')
    }
  }

  private handle (message: KvMessage, origin: NodeId): void {
    switch (message.type) {
      case 'kv.write': this.onWrite(message, decodeVersionedState(message.state), origin); break
      case 'kv.write-ack': this.onWriteAck(message, origin); break
      case 'kv.read': this.onRead(message, origin); break
      case 'kv.read-reply': this.onReadReply(message, decodeVersionedState(message.state), origin); break
      case 'kv.forward': this.onForward(message, origin); break
      case 'kv.forward-reply': this.onForwardReply(message); break
      case 'kv.ae-nodes': this.onAeNodes(message, origin); break
      case 'kv.ae-leaves': this.onAeLeaves(message, origin); break
      case 'kv.ae-pull': this.onAePull(message, origin); break
    }
  }

  private loadIndexes (env: Env): void {
    this.stateCache.clear()
    this.digests.clear()
    this.hints.clear()
    this.hintCount = 0
    for (const [diskKey, bytes] of env.disk.entries(STATE_PREFIX)) {
      const key = diskKey.slice(STATE_PREFIX.length)
      // States are stored canonically encoded, so the stored bytes give the digest without a decode.
      this.digests.set(key, { position: keyPosition(key), digest: sha256(bytes).subarray(0, STATE_DIGEST_BYTES) })
    }
    for (const [diskKey] of env.disk.entries(HINT_PREFIX)) {
      const rest = diskKey.slice(HINT_PREFIX.length)
      const slash = rest.indexOf('/')
      if (slash <= 0) continue
      const intended = rest.slice(0, slash)
      let keys = this.hints.get(intended)
      if (keys === undefined) { keys = new Set(); this.hints.set(intended, keys) }
      keys.add(rest.slice(slash + 1))
      this.hintCount++
    }
    this.statesVersion++
  }

  /** A dot counter this node never used, reserved on disk first (a restart starts above every reserved block). */
  private withDot (use: (counter: number) => void): void {
    const env = this.requireEnv()
    // Only counters below a reservation the disk already holds: a crash can never hand one out twice.
    if (this.reserving === null && this.dotCounter < this.dotReserved) { use(++this.dotCounter); return }
    if (this.reserving !== null) { this.reserving.push(() => { this.withDot(use) }); return }
    this.reserving = [() => { this.withDot(use) }]
    const reserved = Math.max(this.dotCounter, this.dotReserved) + this.limits.dotReserveBlock
    env.disk.put(DOT_RESERVE_KEY, encodeCanonical(reserved))
    env.disk.sync(() => {
      if (this.env !== env) return
      this.dotReserved = reserved
      const waiting = this.reserving ?? []
      this.reserving = null
      for (const next of waiting) next()
    })
  }

  private every (intervalMs: number, run: () => void): void {
    const env = this.requireEnv()
    const schedule = (): void => {
      const timer = env.setTimer(intervalMs, () => {
        this.timers = this.timers.filter((id) => id !== timer)
        if (this.env !== env) return
        try {
          run()
        } catch (error) {
          env.log.error({ reason: error instanceof Error ? error.message : String(error) }, 'store background task failed')
        }
        schedule()
      })
      this.timers.push(timer)
    }
    schedule()
  }

  private validate (request: AvailableRequest): StoreError | null {
    if (request.key.length === 0) return new StoreError('STORE_BAD_REQUEST', 'a key is at least one byte')
    const bytes = utf8ByteLength(request.key)
    if (bytes > this.limits.keyBytesMax) return new StoreError('STORE_KEY_TOO_LARGE', `a key of ${bytes} bytes, limit keyBytesMax ${this.limits.keyBytesMax}`, { bytes, keyBytesMax: this.limits.keyBytesMax })
    if (request.value !== null && request.value.length > this.limits.valueBytesMax) return new StoreError('STORE_VALUE_TOO_LARGE', `a value of ${request.value.length} bytes, limit valueBytesMax ${this.limits.valueBytesMax}`, { bytes: request.value.length, valueBytesMax: this.limits.valueBytesMax })
    if (request.kind === 'put' && request.value === null) return new StoreError('STORE_BAD_REQUEST', 'a put carries a value')
    const replicationFactor = this.init.ring().replicationFactor
    for (const [name, quorum] of [['w', request.writeQuorum], ['r', request.readQuorum]] as const) {
      if (quorum > replicationFactor) return new StoreError('STORE_BAD_REQUEST', `${name}=${quorum} is more than the ${replicationFactor} replicas a key has`, { [name]: quorum, replicationFactor })
    }
    return null
  }

  private finish (done: AvailableCallback, outcome: AvailableResult | StoreError): void {
    const label = outcome instanceof StoreError ? outcome.code : 'ok'
    this.counters.outcomes[label] = (this.counters.outcomes[label] ?? 0) + 1
    done(outcome)
  }

  private isLive (member: NodeId): boolean {
    return member === this.env?.self || (!this.lostLinks.has(member) && (this.init.isLive?.(member) ?? true))
  }

  private hlc (): HybridLogicalClock {
    if (this.clock === null) throw new Error('store used before start')
    return this.clock
  }

  private requireEnv (): Env {
    if (this.env === null) throw new Error('store used before start')
    return this.env
  }
}

/** Whether the session names the key itself (not only through its floor). */
function namesKey (dependencies: Dependencies, key: string): boolean {
  return dependencies.some(([name]) => name === key)
}

/** Whether a state shows the session's dependency on its key: its last writer is at least that stamp. */
function satisfies (state: VersionedState, required: Stamp | null): boolean {
  if (required === null) return true
  const winner = lastWriter(state)
  return winner !== null && compareStamps(winner.stamp, required) >= 0
}

/** Per node the smaller counter, of the nodes both name. */
function meetVectors (a: VersionVector, b: VersionVector): VersionVector {
  const meet: Record<string, number> = {}
  for (const [node, counter] of Object.entries(a)) {
    const other = Object.hasOwn(b, node) ? b[node] : undefined
    if (other !== undefined) meet[node] = Math.min(counter, other)
  }
  return meet
}

/** Splits items into runs of at most `countMax` and about ANTI_ENTROPY_MESSAGE_BYTES_MAX bytes each. */
function chunks<T> (items: readonly T[], countMax: number, bytesOf: (item: T) => number): T[][] {
  const runs: T[][] = []
  let run: T[] = []
  let bytes = 0
  for (const item of items) {
    const size = bytesOf(item)
    if (run.length > 0 && (run.length >= countMax || bytes + size > ANTI_ENTROPY_MESSAGE_BYTES_MAX)) {
      runs.push(run)
      run = []
      bytes = 0
    }
    run.push(item)
    bytes += size
  }
  if (run.length > 0) runs.push(run)
  return runs
}

function entriesBytes (entries: ReadonlyArray<{ key: string }>): number {
  return entries.reduce((sum, entry) => sum + entry.key.length * 3 + 24, 0)
}

function mergeAll (states: Iterable<VersionedState>, siblingsMax: number): VersionedState {
  let merged = EMPTY_VERSIONED_STATE
  for (const state of states) merged = mergeStates(merged, state, siblingsMax)
  return merged
}

function dependencyUnavailable (key: string, replicas: number, answered: number): StoreError {
  return new StoreError('STORE_DEPENDENCY_UNAVAILABLE', 'the session has seen a write of this key that no reachable replica holds yet; retry, or reach the side of the partition that has it', { key, replicas, answered })
}
