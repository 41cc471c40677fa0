/**
 * The store's `causal` and `eventual` levels in the simulator: the production overlay, membership
 * and store services under the nemesis (partitions, crashes that lose unsynced writes, pauses,
 * lossy, duplicating and reordering links), ten clients on a few hot keys. Every causal history
 * must pass the causal checker, and at both levels every replica must hold the same state of each
 * key once the cluster has healed and gone quiet, with no acknowledged write lost (the convergence
 * checker). Focused cases pin down what seeds only sample: hinted handoff, anti-entropy after a
 * disk lost unsynced writes, anti-entropy's cost, and the CAP choice per request.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkCausal, checkConvergence } from '../../src/check/index.js'
import { encodeCanonical } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import {
  AvailableStoreService, StoreError, StoreService, defaultAvailableStoreLimits, encodeVersionedState, statesEqual,
  type AvailableRequest, type AvailableResult, type AvailableStoreLimits, type KvOperation, type KvResult
} from '../../src/store/index.js'
import { collectReplicaStates, describeKvSimulation, runKvSimulation, type KvSimulationResult } from '../../src/sim/index.js'
import { makeOverlayCluster, runKernelUntil } from '../support/overlay-cluster.js'

const LONG = process.env.SYNOD_LONG === '1'
/** Seeds per level in `npm test`, and in `npm run test:long` (SYNOD_KV_SEEDS overrides both). */
const SEEDS = Number(process.env.SYNOD_KV_SEEDS ?? (LONG ? 10_000 : 200))
const SEED_FIRST = Number(process.env.SYNOD_KV_SEED_FIRST ?? 1)
const SEEDS_PER_CHUNK = 1_000
/** Operations that must succeed in the healed phase of every seed. */
const HEALED_OPERATIONS_MIN = 10

function assertConverged (result: KvSimulationResult): void {
  const report = checkConvergence({ replicas: result.replicas, history: result.history })
  assert.equal(report.verdict, 'converged', `seed ${result.seed} (${result.consistency}): ${JSON.stringify(report.violations[0] ?? {}).slice(0, 2_000)}\n${describeKvSimulation(result)}`)
}

function assertCausal (result: KvSimulationResult): void {
  const report = checkCausal(result.history)
  assert.equal(report.verdict, 'causal', `seed ${result.seed}: ${JSON.stringify(report.violations[0] ?? {}).slice(0, 2_000)}\n${describeKvSimulation(result)}`)
}

for (const consistency of ['causal', 'eventual'] as const) {
  describe(`${consistency} store in the simulator`, () => {
    it('a calm cluster: every operation succeeds, and the replicas converge', () => {
      const result = runKvSimulation({ seed: 7, faults: false, consistency, durationMs: 5_000, livenessMs: 1_000 })
      if (consistency === 'causal') assertCausal(result)
      assertConverged(result)
      assert.equal(result.safety.indefinite + result.liveness.indefinite, 0)
      const failed = Object.values(result.safety.failed).reduce((sum, count) => sum + count, 0)
      assert.ok(failed <= 20, `failures in a calm run: ${JSON.stringify(result.safety.failed)}`)
      assert.ok(result.history.length > 1_000, `only ${result.history.length} operations`)
      assert.ok(result.replicas.length > 0)
    })

    for (let first = SEED_FIRST; first < SEED_FIRST + SEEDS; first += SEEDS_PER_CHUNK) {
      const last = Math.min(SEED_FIRST + SEEDS - 1, first + SEEDS_PER_CHUNK - 1)
      it(`seeds ${first}..${last} under the nemesis: ${consistency === 'causal' ? 'causal histories, ' : ''}replicas converge after healing, nothing acknowledged is lost`, async () => {
        let operations = 0
        let minoritySideWrites = 0
        for (let seed = first; seed <= last; seed++) {
          await new Promise((resolve) => setImmediate(resolve))
          // Odd seeds keep causal tokens at 2 named keys of the 5: the floor stamp then carries the rest.
          const result = runKvSimulation({ seed, consistency, durationMs: 6_000, livenessMs: 6_000, ...(seed % 2 === 1 ? { availableLimits: { sessionDependenciesMax: 2 } } : {}) })
          if (consistency === 'causal') assertCausal(result)
          assertConverged(result)
          assert.ok(result.liveness.ok >= HEALED_OPERATIONS_MIN, `seed ${seed}: only ${result.liveness.ok} operations succeeded after healing\n${describeKvSimulation(result)}`)
          operations += result.history.length
          minoritySideWrites += result.availableStats.reduce((sum, stats) => sum + (stats?.hintsStored ?? 0), 0)
        }
        const seeds = last - first + 1
        assert.ok(operations > seeds * 100, `${operations} operations over ${seeds} seeds`)
        // Faults took replicas away often enough that substitutes kept hints.
        if (seeds >= 20) assert.ok(minoritySideWrites > 0)
      })
    }
  })
}

interface AvailableCluster {
  cluster: ReturnType<typeof makeOverlayCluster>['cluster']
  kernel: ReturnType<typeof makeOverlayCluster>['kernel']
  network: ReturnType<typeof makeOverlayCluster>['network']
  ids: readonly string[]
  available: (index: number) => AvailableStoreService
  run: (index: number, request: Partial<AvailableRequest> & Pick<AvailableRequest, 'kind' | 'key'>, maxMs?: number) => AvailableResult | StoreError | null
  runStrong: (index: number, operation: KvOperation, maxMs?: number) => KvResult | StoreError | null
}

function makeAvailableCluster (nodes: number, seed: number, limits: Partial<AvailableStoreLimits> = {}): AvailableCluster {
  const { cluster, kernel, network } = makeOverlayCluster({
    nodes,
    seed,
    services: (_context, overlay) => {
      const membership = new MembershipService({ net: overlay })
      const isLive = (member: string): boolean => membership.stateOf(member) === 'alive'
      const store = new StoreService({ net: overlay, isLive })
      return [membership, store, new AvailableStoreService({ net: overlay, ring: () => store.ring(), isLive, limits: { antiEntropyIntervalMs: 500, hintedHandoffIntervalMs: 200, ...limits } })]
    }
  })
  const ids = cluster.members
  const available = (index: number): AvailableStoreService => cluster.service(ids[index] as string, AvailableStoreService) as AvailableStoreService
  const run: AvailableCluster['run'] = (index, partial, maxMs = 10_000) => {
    const request: AvailableRequest = { level: 'eventual', value: null, writeQuorum: 1, readQuorum: 1, siblings: false, context: null, dependencies: [], ...partial }
    let outcome: AvailableResult | StoreError | null = null
    available(index).execute(request, (result) => { outcome = result })
    runKernelUntil(kernel, () => outcome !== null, maxMs, 5)
    return outcome
  }
  const runStrong: AvailableCluster['runStrong'] = (index, operation, maxMs = 10_000) => {
    let outcome: KvResult | StoreError | null = null
    ;(cluster.service(ids[index] as string, StoreService) as StoreService).execute(operation, (result) => { outcome = result })
    runKernelUntil(kernel, () => outcome !== null, maxMs, 5)
    return outcome
  }
  runKernelUntil(kernel, () => ids.every((id) => ids.every((peer) => peer === id || cluster.service(id, MembershipService)?.stateOf(peer) === 'alive')), 30_000, 50)
  return { cluster, kernel, network, ids, available, run, runStrong }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | null): string | null => value === null ? null : new TextDecoder().decode(value)
const ok = <T>(outcome: T | StoreError | null, what: string): T => {
  assert.ok(outcome !== null && !(outcome instanceof StoreError), `${what}: ${outcome instanceof StoreError ? `${outcome.code} ${outcome.message}` : 'no answer'}`)
  return outcome
}

describe('available store: focused cases', () => {
  it('hinted handoff: writes taken while a replica was down reach it when it is back, through the substitute', () => {
    // Anti-entropy and read repair off: only the hint can bring the write to the replica.
    const sim = makeAvailableCluster(5, 11, { antiEntropyIntervalMs: 3_600_000, readRepairChance: 0 })
    const key = 'handoff'
    const replicas = sim.available(0).replicasOf(key)
    const down = replicas[1] as string
    const downIndex = sim.ids.indexOf(down)
    const coordinatorIndex = sim.ids.indexOf(replicas[0] as string)
    sim.cluster.crash(down)
    runKernelUntil(sim.kernel, () => sim.cluster.service(replicas[0] as string, MembershipService)?.stateOf(down) !== 'alive', 30_000, 50)
    // w = 3 with a replica down: only a sloppy quorum (a substitute) can take the third copy.
    ok(sim.run(coordinatorIndex, { kind: 'put', key, value: bytes('while-down'), writeQuorum: 3 }), 'put with a replica down')
    const holders = sim.ids.filter((id) => !replicas.includes(id) && (sim.cluster.service(id, AvailableStoreService)?.hintsHeld() ?? 0) > 0)
    assert.equal(holders.length, 1, 'one substitute keeps the hint')
    sim.cluster.restart(down)
    runKernelUntil(sim.kernel, () => text(sim.available(downIndex).localState(key).siblings.at(-1)?.value ?? null) === 'while-down', 30_000, 50)
    assert.equal(text(sim.available(downIndex).localState(key).siblings.at(-1)?.value ?? null), 'while-down')
    const holder = sim.cluster.service(holders[0] as string, AvailableStoreService) as AvailableStoreService
    runKernelUntil(sim.kernel, () => holder.hintsHeld() === 0, 10_000, 50)
    assert.equal(holder.hintsHeld(), 0)
    assert.ok(holder.stats().hintsDelivered >= 1)
  })

  it('anti-entropy repairs a replica whose disk lost unsynced writes in a crash', () => {
    const sim = makeAvailableCluster(3, 13, { readRepairChance: 0, hintedHandoffIntervalMs: 3_600_000, antiEntropyIntervalMs: 3_600_000 })
    const victim = sim.ids[2] as string
    // Writes coordinated at node 0 with w = 1; the victim crashes while its copies wait for their
    // sync. (A first write makes node 0 reserve its dot counters, so the burst goes out at once.)
    ok(sim.run(0, { kind: 'put', key: 'warm-up', value: bytes('x') }), 'first write')
    let acknowledged = 0
    for (let key = 0; key < 200; key++) {
      sim.available(0).execute({ level: 'eventual', kind: 'put', key: `k${key}`, value: bytes(`v${key}`), writeQuorum: 1, readQuorum: 1, siblings: false, context: null, dependencies: [] }, (outcome) => { if (!(outcome instanceof StoreError)) acknowledged++ })
    }
    // The replica copies linger for a batch (replicationLingerMs), then arrive; crash just after.
    sim.kernel.runFor(defaultAvailableStoreLimits.replicationLingerMs + 1)
    sim.cluster.crash(victim)
    runKernelUntil(sim.kernel, () => acknowledged === 200, 10_000, 5)
    assert.equal(acknowledged, 200)
    assert.ok(sim.cluster.node(victim).disk.stats().writesLostAtCrash > 0, 'the crash lost unsynced writes')
    sim.cluster.restart(victim)
    sim.kernel.runFor(5_000)
    const victimIndex = sim.ids.indexOf(victim)
    const missing = (): number => Array.from({ length: 200 }, (_, key) => `k${key}`).filter((key) => sim.available(victimIndex).localState(key).siblings.length === 0).length
    assert.ok(missing() > 0, 'the victim lacks some keys before anti-entropy')
    // Anti-entropy on now (the same limits, but started by hand on the schedule a replica keeps).
    for (let round = 0; round < 10 && missing() > 0; round++) {
      for (let index = 0; index < 3; index++) sim.available(index).runAntiEntropy()
      sim.kernel.runFor(500)
    }
    assert.equal(missing(), 0)
    for (let key = 0; key < 200; key++) {
      const states = [0, 1, 2].map((index) => sim.available(index).localState(`k${key}`))
      assert.ok(statesEqual(states[0]!, states[1]!) && statesEqual(states[1]!, states[2]!), `k${key} differs between replicas`)
    }
  })

  it('anti-entropy between replicas in sync exchanges one root digest; d differing keys cost O(d log n) digests', () => {
    const sim = makeAvailableCluster(3, 17, { readRepairChance: 0, hintedHandoffIntervalMs: 3_600_000, antiEntropyIntervalMs: 3_600_000 })
    const keys = 2_000
    for (let key = 0; key < keys; key++) sim.available(key % 3).execute({ level: 'eventual', kind: 'put', key: `k${key}`, value: bytes(`v${key}`), writeQuorum: 3, readQuorum: 1, siblings: false, context: null, dependencies: [] }, () => {})
    sim.kernel.runFor(5_000)
    const digestsSent = (): number => [0, 1, 2].reduce((sum, index) => sum + sim.available(index).stats().antiEntropyDigestsSent, 0)
    const before = digestsSent()
    sim.available(0).runAntiEntropy(sim.ids[1])
    sim.kernel.runFor(1_000)
    assert.equal(digestsSent() - before, 1, 'in sync: the root digest only')
    // Make d keys differ at node 1 only: writes at w = 1 while it is cut off long enough for its links to drop.
    for (const differing of [1, 10, 50]) {
      sim.network.partition([[sim.ids[1] as string], [sim.ids[0] as string, sim.ids[2] as string]])
      sim.kernel.runFor(15_000)
      for (let key = 0; key < differing; key++) ok(sim.run(1, { kind: 'put', key: `k${key * 37 % keys}`, value: bytes(`d${differing}.${key}`) }), 'put at node 1')
      sim.network.heal()
      sim.kernel.runFor(15_000)
      const start = digestsSent()
      sim.available(0).runAntiEntropy(sim.ids[1])
      sim.kernel.runFor(2_000)
      const spent = digestsSent() - start
      const depth = Math.ceil(Math.log2(keys / 8))
      assert.ok(spent <= 2 * differing * (depth + 1) + 1 + 2 * differing * 8, `${differing} differing keys cost ${spent} digests`)
      assert.ok(spent > 1)
      // The exchange repaired them: a second one is back to the root digest.
      const again = digestsSent()
      sim.available(0).runAntiEntropy(sim.ids[1])
      sim.kernel.runFor(2_000)
      assert.equal(digestsSent() - again, 1)
      console.log(`# anti-entropy: ${keys} keys, ${differing} differing: ${spent} digests`)
    }
  })

  it('peer messages that pass their schema but not the protocol\'s checks are counted and dropped, never thrown', () => {
    const sim = makeAvailableCluster(3, 23)
    const peer = sim.ids[1] as string
    const service = sim.available(0)
    // A tree node deeper than the tree, a hint for a node that is no member, a pull outside any exchange.
    service.onMessage(peer, { type: 'kv.ae-nodes', exchangeId: 'x', depth: 2, nodes: [{ level: 5, prefix: 0, hash: new Uint8Array(16) }] } as never)
    service.onMessage(peer, { type: 'kv.write', requestId: 7, key: 'k', state: encodeVersionedState({ context: {}, siblings: [] }), hintFor: 'not-a-member' } as never)
    service.onMessage(peer, { type: 'kv.ae-pull', exchangeId: 'unknown', keys: ['k'] } as never)
    // State bytes that are not a state: a sibling its context does not cover, and bytes that are no CBOR.
    const uncovered = encodeCanonical({ context: {}, siblings: [{ dot: ['a', 1], stamp: [1, 0, 'a'], value: null, dependencies: [] }] })
    service.onMessage(peer, { type: 'kv.write', requestId: 0, key: 'k', state: uncovered, hintFor: null } as never)
    service.onMessage(peer, { type: 'kv.read-reply', requestId: 1, key: 'k', state: Uint8Array.of(0xff, 0x00) } as never)
    assert.equal(service.stats().badMessages, 5)
    assert.equal(service.localState('k').siblings.length, 0, 'nothing of the bad states was kept')
    ok(sim.run(0, { kind: 'put', key: 'after', value: bytes('still serving') }), 'the node still serves')
  })

  it('CAP per request: in a 3 | 2 partition strong writes on the minority side refuse with STORE_NO_QUORUM while causal and eventual writes succeed on both sides; after healing the replicas converge', () => {
    const sim = makeAvailableCluster(5, 19)
    const majority = sim.ids.slice(0, 3)
    const minority = sim.ids.slice(3)
    sim.network.partition([majority, minority])
    sim.kernel.runFor(15_000)
    const history: KvSimulationResult['history'] = []
    const record = (client: string, op: 'put' | 'get', key: string, value: string | undefined, outcome: AvailableResult): void => {
      history.push({ client, op, key, ...(value === undefined ? {} : { value }), ...(op === 'get' ? { output: text(outcome.value) } : {}), version: outcome.stamp === null ? null : `${outcome.stamp[0]}.${outcome.stamp[1]}.${outcome.stamp[2]}`, call_ns: sim.kernel.now() * 1e6, return_ns: sim.kernel.now() * 1e6 })
    }
    // A key with a majority of its replicas on the majority side, written from the minority side.
    const key = Array.from({ length: 100 }, (_, index) => `cap-${index}`).find((name) => sim.available(0).replicasOf(name).filter((replica) => majority.includes(replica)).length >= 2 && sim.available(0).replicasOf(name).some((replica) => minority.includes(replica))) as string
    const minorityIndex = sim.ids.indexOf(minority.find((id) => sim.available(0).replicasOf(key).includes(id)) as string)
    const majorityIndex = sim.ids.indexOf(majority.find((id) => sim.available(0).replicasOf(key).includes(id)) as string)
    const strong = sim.runStrong(minorityIndex, { kind: 'put', key, value: bytes('strong-minority') })
    assert.ok(strong instanceof StoreError && strong.code === 'STORE_NO_QUORUM', `strong on the minority: ${strong instanceof StoreError ? strong.code : 'applied'}`)
    ok(sim.runStrong(majorityIndex, { kind: 'put', key, value: bytes('strong-majority') }), 'strong on the majority')
    for (const level of ['causal', 'eventual'] as const) {
      for (const [side, index] of [['minority', minorityIndex], ['majority', majorityIndex]] as const) {
        const value = `${level}-${side}`
        const put = ok(sim.run(index, { level, kind: 'put', key, value: bytes(value) }), `${level} put on the ${side} side`)
        record(`${level}-${side}`, 'put', key, value, put)
        const get = ok(sim.run(index, { level, kind: 'get', key, dependencies: put.dependencies }), `${level} get on the ${side} side`)
        assert.equal(text(get.value), value, 'each side reads its own write')
        record(`${level}-${side}`, 'get', key, undefined, get)
      }
    }
    sim.network.heal()
    sim.kernel.runFor(20_000)
    const replicas = collectReplicaStates(sim.cluster, [key])
    assert.equal(checkConvergence({ replicas, history }).verdict, 'converged')
    assert.equal(checkCausal(history).verdict, 'causal')
    // The later of the two sides' eventual writes wins everywhere.
    const reads = sim.ids.map((_, index) => text(ok(sim.run(index, { kind: 'get', key, readQuorum: 3 }), 'read after healing').value))
    assert.equal(new Set(reads).size, 1)
    assert.equal(reads[0], 'eventual-majority')
  })
})
