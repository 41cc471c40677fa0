/**
 * The key-value workload in the simulator: a cluster running the production overlay, membership
 * and store services, clients issuing random operations to random nodes, and the nemesis loose
 * for the safety phase (partitions, crashes that lose unsynced writes, pauses, and a world whose
 * links lose, duplicate and reorder messages as the seed decides). Then everything heals and the
 * clients go on for the liveness phase.
 *
 * Every operation goes into the history in the checker's format (docs/store-history.md): an
 * answer, an indefinite outcome (STORE_TIMEOUT, or no answer before the client's deadline: the
 * return stays null and the client continues under a new name, as Jepsen does), and definite
 * failures left out (they did not happen).
 */
import { createPrng, type Prng } from '../core/index.js'
import type { KvHistoryOperation } from '../check/index.js'
import { MembershipService } from '../membership/index.js'
import { OverlayService, buildTopology, overlayNeighbours } from '../net/index.js'
import {
  AvailableStoreService, StoreError, StoreService, formatStamp,
  type AvailableStoreLimits, type AvailableRequest, type AvailableResult, type AvailableStoreStats, type Dependencies, type KvOperation, type KvResult, type StoreLimits, type StoreStats
} from '../store/index.js'
import { SimCluster } from './cluster.js'
import { SimKernel } from './kernel.js'
import { Nemesis, describeProfile, drawFaultProfile, type FaultProfile, type InjectedFault } from './nemesis.js'
import { SimNetwork } from './network.js'
import type { LinkPacket } from './transport.js'

/** One operation of a history, in the format `synod check linearizable` reads (docs/store-history.md). */
export type HistoryOperation = KvHistoryOperation

export interface KvSimulationOptions {
  seed: number
  /** 5 by default. */
  nodes?: number
  /** Virtual length of the safety phase (faults on). */
  durationMs?: number
  /** Virtual length of the liveness phase (all healed). */
  livenessMs?: number
  clients?: number
  /** Distinct keys the clients use: few keys make contention. */
  keys?: number
  /** Pause between a client's operations, random up to this. */
  thinkMsMax?: number
  /** False: no nemesis (a calm run). */
  faults?: boolean
  storeLimits?: Partial<StoreLimits>
  /** The level the clients use: strong (the default), causal or eventual. */
  consistency?: 'strong' | 'causal' | 'eventual'
  availableLimits?: Partial<AvailableStoreLimits>
  /** After the clients stop, how long the cluster runs on with no faults before replicas are compared (available levels). */
  quiescenceMs?: number
}

/** One replica's final state of one key, in the convergence checker's format (docs/store-history.md). */
export interface ReplicaKeyState {
  node: string
  key: string
  values: Array<{ value: string | null, version: string }>
}

export interface KvOutcomeCounts {
  ok: number
  /** Definite failures (left out of the history), by code. */
  failed: Record<string, number>
  /** Indefinite outcomes (return null in the history). */
  indefinite: number
}

export interface KvSimulationResult {
  /** Each node's store counters at the end (null for a node that is down). */
  storeStats: Array<StoreStats | null>
  availableStats: Array<AvailableStoreStats | null>
  consistency: 'strong' | 'causal' | 'eventual'
  /** Available levels: every replica's state of every key after quiescence (empty for strong). */
  replicas: ReplicaKeyState[]
  seed: number
  nodes: number
  profile: FaultProfile
  faults: InjectedFault[]
  history: HistoryOperation[]
  /** Outcomes in the safety phase and in the liveness phase. */
  safety: KvOutcomeCounts
  liveness: KvOutcomeCounts
  endMs: number
}

const CLIENT_MARGIN_MS = 1_000

function emptyCounts (): KvOutcomeCounts {
  return { ok: 0, failed: {}, indefinite: 0 }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function runKvSimulation (options: KvSimulationOptions): KvSimulationResult {
  const nodeCount = options.nodes ?? 5
  const durationMs = options.durationMs ?? 10_000
  const livenessMs = options.livenessMs ?? 5_000
  const clientCount = options.clients ?? 10
  const keyCount = options.keys ?? 5
  const thinkMsMax = options.thinkMsMax ?? 20
  const consistency = options.consistency ?? 'strong'
  const root = createPrng(options.seed)
  const kernel = new SimKernel({ traceLinesKeptMax: 0 })
  const network = new SimNetwork<LinkPacket>(kernel, root.fork('network'))
  const graph = buildTopology({ kind: 'full-mesh' }, nodeCount)
  const cluster = new SimCluster({
    kernel,
    network,
    random: root.fork('cluster'),
    nodeCount,
    linkPeers: (id, members) => overlayNeighbours(graph.adjacency, members, id),
    services: (context) => {
      const overlay = new OverlayService({ neighbours: overlayNeighbours(graph.adjacency, context.members, context.id) })
      const membership = new MembershipService({ net: overlay })
      const isLive = (member: string): boolean => membership.stateOf(member) === 'alive'
      const store = new StoreService({ net: overlay, isLive, limits: options.storeLimits })
      if (consistency === 'strong') return [overlay, membership, store]
      return [overlay, membership, store, new AvailableStoreService({ net: overlay, ring: () => store.ring(), isLive, limits: { ...availableSimLimits, ...options.availableLimits } })]
    }
  })
  const profile = drawFaultProfile(root.fork('profile'), nodeCount)
  const nemesis = new Nemesis({ kernel, network, cluster, random: root.fork('nemesis'), profile })
  const history: HistoryOperation[] = []
  const safety = emptyCounts()
  const liveness = emptyCounts()
  let phase: 'safety' | 'liveness' | 'done' = 'safety'
  const keys = Array.from({ length: keyCount }, (_, index) => `k${index}`)
  const random = root.fork('clients')
  const clientDeadlineMs = (options.storeLimits?.requestTimeoutMs ?? 3_000) + CLIENT_MARGIN_MS

  const runClient = (index: number, clientRandom: Prng): void => {
    if (consistency !== 'strong') { runAvailableClient(index, clientRandom); return }
    let generation = 0
    let sequence = 0
    const lastSeen = new Map<string, string | null>()
    const next = (): void => {
      if (phase === 'done') return
      kernel.schedule(clientRandom.int(0, thinkMsMax), issue)
    }
    const issue = (): void => {
      if (phase === 'done') return
      const up = cluster.members.filter((id) => cluster.isUp(id) && !cluster.isPaused(id))
      if (up.length === 0) { next(); return }
      const target = clientRandom.pick(up)
      const store = cluster.service(target, StoreService)
      if (store === undefined) { next(); return }
      const key = clientRandom.pick(keys)
      const value = `c${index}.${generation}.${++sequence}`
      const roll = clientRandom.float()
      const operation: KvOperation = roll < 0.4
        ? { kind: 'get', key }
        : roll < 0.7
          ? { kind: 'put', key, value: encoder.encode(value) }
          : roll < 0.8
            ? { kind: 'delete', key }
            : { kind: 'cas', key, expected: expectedFor(lastSeen.get(key), clientRandom), value: encoder.encode(value) }
      const entry: HistoryOperation = {
        client: `${index}.${generation}`,
        op: operation.kind,
        key,
        ...(operation.kind === 'put' ? { value } : {}),
        ...(operation.kind === 'cas' ? { expected: operation.expected === null ? null : decoder.decode(operation.expected), value } : {}),
        call_ns: kernel.now() * 1e6,
        return_ns: null
      }
      const counts = phase === 'safety' ? safety : liveness
      let settled = false
      const timeout = kernel.schedule(clientDeadlineMs, () => {
        if (settled) return
        settled = true
        // No answer: the operation stays open in the history, and this client goes on as a new one.
        counts.indefinite++
        if (operation.kind !== 'get') history.push(entry)
        generation++
        next()
      })
      store.execute(operation, (outcome) => {
        if (settled) return
        settled = true
        kernel.cancel(timeout)
        recordOutcome(entry, operation, outcome, counts, history, kernel.now() * 1e6, lastSeen)
        if (outcome instanceof StoreError && outcome.code === 'STORE_TIMEOUT') generation++
        next()
      })
    }
    next()
  }

  /**
   * A client at the causal or eventual level: gets, puts and deletes (no cas at these levels),
   * each recorded with the version the store gave; a causal client carries its session's
   * dependencies from answer to request, and starts a new session (a new client name) after an
   * operation without an answer.
   */
  const runAvailableClient = (index: number, clientRandom: Prng): void => {
    let generation = 0
    let sequence = 0
    let dependencies: Dependencies = []
    const next = (): void => {
      if (phase === 'done') return
      kernel.schedule(clientRandom.int(0, thinkMsMax), issue)
    }
    const newSession = (): void => { generation++; dependencies = [] }
    const issue = (): void => {
      if (phase === 'done') return
      const up = cluster.members.filter((id) => cluster.isUp(id) && !cluster.isPaused(id))
      if (up.length === 0) { next(); return }
      const store = cluster.service(clientRandom.pick(up), AvailableStoreService)
      if (store === undefined) { next(); return }
      const roll = clientRandom.float()
      const kind: AvailableRequest['kind'] = roll < 0.45 ? 'get' : roll < 0.9 ? 'put' : 'delete'
      // After healing, clients use the first half of the keys only: the other half's replicas can
      // only converge through hinted handoff and anti-entropy, not by being overwritten or read.
      const key = clientRandom.pick(phase === 'liveness' ? keys.slice(0, Math.ceil(keys.length / 2)) : keys)
      const value = `c${index}.${generation}.${++sequence}`
      const request: AvailableRequest = {
        level: consistency === 'causal' ? 'causal' : 'eventual',
        kind,
        key,
        value: kind === 'put' ? encoder.encode(value) : null,
        writeQuorum: consistency === 'eventual' ? clientRandom.int(1, 2) : 1,
        readQuorum: consistency === 'eventual' ? clientRandom.int(1, 2) : 1,
        siblings: false,
        context: null,
        dependencies
      }
      const entry: HistoryOperation = {
        client: `${index}.${generation}`,
        op: kind,
        key,
        ...(kind === 'put' ? { value } : {}),
        call_ns: kernel.now() * 1e6,
        return_ns: null
      }
      const counts = phase === 'safety' ? safety : liveness
      let settled = false
      const timeout = kernel.schedule(clientDeadlineMs, () => {
        if (settled) return
        settled = true
        counts.indefinite++
        if (kind !== 'get') history.push(entry)
        newSession()
        next()
      })
      store.execute(request, (outcome: AvailableResult | StoreError) => {
        if (settled) return
        settled = true
        kernel.cancel(timeout)
        if (outcome instanceof StoreError) {
          if (outcome.code === 'STORE_TIMEOUT') {
            counts.indefinite++
            if (kind !== 'get') history.push(entry)
            newSession()
          } else {
            counts.failed[outcome.code] = (counts.failed[outcome.code] ?? 0) + 1
          }
          next()
          return
        }
        counts.ok++
        entry.return_ns = kernel.now() * 1e6
        entry.version = outcome.stamp === null ? null : formatStamp(outcome.stamp)
        if (kind === 'get') entry.output = outcome.value === null ? null : decoder.decode(outcome.value)
        if (consistency === 'causal') dependencies = outcome.dependencies
        history.push(entry)
        next()
      })
    }
    next()
  }

  const faults = options.faults !== false
  if (faults) nemesis.startSafetyPhase()
  cluster.start()
  for (let index = 0; index < clientCount; index++) runClient(index, random.fork(`client-${index}`))
  kernel.runFor(durationMs)
  if (faults) nemesis.startLivenessPhase()
  phase = 'liveness'
  kernel.runFor(livenessMs)
  phase = 'done'
  // Let what is in flight finish, so the history ends with answers where there are any.
  kernel.runFor(clientDeadlineMs)
  const replicas: ReplicaKeyState[] = []
  if (consistency !== 'strong') {
    kernel.runFor(options.quiescenceMs ?? 4 * (options.availableLimits?.antiEntropyIntervalMs ?? availableSimLimits.antiEntropyIntervalMs))
    replicas.push(...collectReplicaStates(cluster, keys))
  }
  const storeStats = cluster.members.map((id) => cluster.service(id, StoreService)?.stats() ?? null)
  const availableStats = cluster.members.map((id) => cluster.service(id, AvailableStoreService)?.stats() ?? null)
  return { storeStats, availableStats, consistency, replicas, seed: options.seed, nodes: nodeCount, profile, faults: faults ? nemesis.faults() : [], history, safety, liveness, endMs: kernel.now() }
}

/** Anti-entropy and handoff every few hundred milliseconds of virtual time: runs stay short. */
const availableSimLimits = { antiEntropyIntervalMs: 500, hintedHandoffIntervalMs: 200, requestTimeoutMs: 3_000 }

/** Every replica's state of every key (a down node's copy is read from its durable disk as it would restart). */
export function collectReplicaStates (cluster: SimCluster, keys: readonly string[]): ReplicaKeyState[] {
  const states: ReplicaKeyState[] = []
  for (const key of keys) {
    for (const node of cluster.members) {
      const store = cluster.service(node, AvailableStoreService)
      if (store === undefined || !store.replicasOf(key).includes(node)) continue
      const values = store.localState(key).siblings.map((sibling) => ({ value: sibling.value === null ? null : decoder.decode(sibling.value), version: formatStamp(sibling.stamp) }))
      states.push({ node, key, values })
    }
  }
  return states
}

function expectedFor (seen: string | null | undefined, random: Prng): Uint8Array | null {
  if (seen === undefined || seen === null) return random.chance(0.8) ? null : encoder.encode('never-written')
  return encoder.encode(seen)
}

function recordOutcome (entry: HistoryOperation, operation: KvOperation, outcome: KvResult | StoreError, counts: KvOutcomeCounts, history: HistoryOperation[], nowNs: number, lastSeen: Map<string, string | null>): void {
  if (outcome instanceof StoreError) {
    if (outcome.code === 'STORE_TIMEOUT') {
      counts.indefinite++
      if (operation.kind !== 'get') history.push(entry)
      return
    }
    counts.failed[outcome.code] = (counts.failed[outcome.code] ?? 0) + 1
    return
  }
  counts.ok++
  entry.return_ns = nowNs
  switch (outcome.kind) {
    case 'get': {
      const value = outcome.value === null ? null : decoder.decode(outcome.value)
      entry.output = value
      lastSeen.set(entry.key, value)
      break
    }
    case 'cas':
      entry.output = outcome.applied
      lastSeen.set(entry.key, outcome.current === null ? null : decoder.decode(outcome.current))
      break
    case 'put':
      lastSeen.set(entry.key, entry.value ?? null)
      break
    case 'delete':
      lastSeen.set(entry.key, null)
      break
  }
  history.push(entry)
}

export function describeKvSimulation (result: KvSimulationResult): string {
  const line = (name: string, counts: KvOutcomeCounts): string => `${name}: ${counts.ok} ok, ${counts.indefinite} indefinite, failed ${JSON.stringify(counts.failed)}`
  return [
    `seed ${result.seed}, ${result.nodes} nodes, ${result.history.length} operations in the history`,
    `profile: ${describeProfile(result.profile)}`,
    `faults: ${result.faults.map((fault) => `${fault.kind}@${fault.atMs}`).join(', ')}`,
    line('safety phase', result.safety),
    line('liveness phase', result.liveness)
  ].join('\n')
}
