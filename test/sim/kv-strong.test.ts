/**
 * The store's `strong` level in the simulator: the production overlay, membership and store
 * services under the nemesis (partitions of every shape, crashes that lose unsynced writes,
 * pauses, and links that lose, duplicate and reorder messages as each seed decides), with ten
 * clients on a few hot keys. Every history must be linearizable (the Wing-Gong/Lowe checker in
 * src/check), and the cluster must serve again once healed. Focused cases pin down what the seeds
 * only sample: the majority side of a partition stays available and the minority refuses at once,
 * acknowledged writes survive crashes that lose unsynced data, and tombstones are collected.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkLinearizable } from '../../src/check/index.js'
import { MembershipService } from '../../src/membership/index.js'
import { StoreError, StoreService, type KvOperation, type KvResult } from '../../src/store/index.js'
import { describeKvSimulation, runKvSimulation, type KvSimulationResult } from '../../src/sim/index.js'
import { makeOverlayCluster, runKernelUntil } from '../support/overlay-cluster.js'

const LONG = process.env.SYNOD_LONG === '1'
/** Seeds in `npm test`, and in `npm run test:long` (SYNOD_KV_SEEDS overrides both). */
const SEEDS = Number(process.env.SYNOD_KV_SEEDS ?? (LONG ? 10_000 : 200))
/** The first seed (SYNOD_KV_SEED_FIRST), so a long run can be split over processes. */
const SEED_FIRST = Number(process.env.SYNOD_KV_SEED_FIRST ?? 1)
/** Operations that must succeed in the healed phase of every seed: the cluster serves again. */
const HEALED_OPERATIONS_MIN = 10

function assertLinearizable (result: KvSimulationResult): void {
  const report = checkLinearizable(result.history)
  assert.ok(report.ok, `seed ${result.seed} is ${report.verdict}: ${JSON.stringify(report.failures[0] ?? {}).slice(0, 2_000)}\n${describeKvSimulation(result)}`)
}

describe('strong store in the simulator', () => {
  it('a calm cluster: every operation succeeds, mostly in one round trip, and the history is linearizable', () => {
    const result = runKvSimulation({ seed: 7, faults: false, durationMs: 5_000, livenessMs: 1_000 })
    assertLinearizable(result)
    assert.equal(result.safety.indefinite + result.liveness.indefinite, 0)
    // Only the first moments, before membership has seen everyone alive, may refuse.
    const failed = Object.values(result.safety.failed).reduce((sum, count) => sum + count, 0)
    assert.ok(failed <= 20, `failures in a calm run: ${JSON.stringify(result.safety.failed)}`)
    assert.ok(result.history.length > 1_000, `only ${result.history.length} operations`)
    const stats = result.storeStats.filter((entry) => entry !== null)
    const oneRoundTrip = stats.reduce((sum, entry) => sum + entry.oneRoundTrip, 0)
    const prepares = stats.reduce((sum, entry) => sum + entry.prepareRounds, 0)
    assert.ok(oneRoundTrip > 5 * prepares, `one-round-trip batches ${oneRoundTrip}, prepare rounds ${prepares}`)
  })

  // Seeds that once failed, each for a bug now fixed: 604 and 1143, a forwarded request the network
  // delivered twice ran twice (one copy applied, the other answered STORE_OVERLOADED, "did not apply").
  it('regression seeds 604, 1143: linearizable', () => {
    for (const seed of [604, 1143]) assertLinearizable(runKvSimulation({ seed, durationMs: 6_000, livenessMs: 8_000 }))
  })

  // Chunks of seeds, each its own test: a long run stays within the per-test timeout and shows progress.
  const SEEDS_PER_CHUNK = 1_000
  for (let first = SEED_FIRST; first < SEED_FIRST + SEEDS; first += SEEDS_PER_CHUNK) {
    const last = Math.min(SEED_FIRST + SEEDS - 1, first + SEEDS_PER_CHUNK - 1)
    it(`seeds ${first}..${last} under the nemesis: every history is linearizable and the healed cluster serves`, async () => {
      let operations = 0
      let indefinite = 0
      for (let seed = first; seed <= last; seed++) {
        // A run is synchronous; yielding lets the promise jobs its nodes queued (their async starts) run, so its memory goes.
        await new Promise((resolve) => setImmediate(resolve))
        const result = runKvSimulation({ seed, durationMs: 6_000, livenessMs: 8_000 })
        assertLinearizable(result)
        assert.ok(result.liveness.ok >= HEALED_OPERATIONS_MIN, `seed ${seed}: only ${result.liveness.ok} operations succeeded after healing\n${describeKvSimulation(result)}`)
        operations += result.history.length
        indefinite += result.safety.indefinite + result.liveness.indefinite
      }
      const seeds = last - first + 1
      assert.ok(operations > seeds * 100, `${operations} operations over ${seeds} seeds`)
      // Faults make some outcomes indefinite; the checker must have had such operations to weigh.
      if (seeds >= 20) assert.ok(indefinite > 0)
    })
  }
})

interface StoreCluster {
  cluster: ReturnType<typeof makeOverlayCluster>['cluster']
  kernel: ReturnType<typeof makeOverlayCluster>['kernel']
  network: ReturnType<typeof makeOverlayCluster>['network']
  store: (index: number) => StoreService
  run: (index: number, operation: KvOperation, maxMs?: number) => KvResult | StoreError | null
}

function makeStoreCluster (nodes: number, seed: number, tombstoneGcDelayMs = 10_000, replicationFactor = 3): StoreCluster {
  const { cluster, kernel, network } = makeOverlayCluster({
    nodes,
    seed,
    services: (_context, overlay) => {
      const membership = new MembershipService({ net: overlay })
      return [membership, new StoreService({ net: overlay, replicationFactor, isLive: (member) => membership.stateOf(member) === 'alive', limits: { tombstoneGcDelayMs } })]
    }
  })
  const idOf = (index: number): string => (cluster.nodes[index] as { id: string }).id
  const store = (index: number): StoreService => cluster.service(idOf(index), StoreService) as StoreService
  const run = (index: number, operation: KvOperation, maxMs = 10_000): KvResult | StoreError | null => {
    let outcome: KvResult | StoreError | null = null
    store(index).execute(operation, (result) => { outcome = result })
    runKernelUntil(kernel, () => outcome !== null, maxMs, 5)
    return outcome
  }
  // Everyone sees everyone alive before the tests start.
  runKernelUntil(kernel, () => cluster.members.every((id) => cluster.members.every((peer) => peer === id || cluster.service(id, MembershipService)?.stateOf(peer) === 'alive')), 30_000, 50)
  return { cluster, kernel, network, store, run }
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | null): string | null => value === null ? null : new TextDecoder().decode(value)

describe('strong store: focused cases', () => {
  for (const replicationFactor of [5, 3]) {
    it(`in a 3 | 2 partition, replication factor ${replicationFactor}: a side serves exactly the keys with a majority of their replicas on it, and refuses the others with STORE_NO_QUORUM`, () => {
      const sim = makeStoreCluster(5, 3, 10_000, replicationFactor)
      const ids = sim.cluster.members
      const majority = ids.slice(0, 3)
      const minority = ids.slice(3)
      sim.network.partition([majority, minority])
      // Let membership on each side see the other side go.
      sim.kernel.runFor(15_000)
      const indexOf = (id: string): number => sim.cluster.nodes.findIndex((node) => node.id === id)
      const ring = sim.store(0).ring()
      let servedOnMajority = 0
      for (let key = 0; key < 30; key++) {
        const name = `key-${key}`
        const replicas = ring.preferenceList(name)
        const quorum = Math.floor(replicas.length / 2) + 1
        for (const [side, members] of [['majority', majority], ['minority', minority]] as const) {
          const available = replicas.filter((replica) => members.includes(replica)).length >= quorum
          const outcome = sim.run(indexOf(members[key % members.length] as string), { kind: 'put', key: name, value: bytes(`${side}-${key}`) }, available ? 10_000 : 100)
          if (available) {
            assert.ok(outcome !== null && !(outcome instanceof StoreError), `${side} put of ${name}: ${outcome instanceof StoreError ? outcome.code : 'no answer'}`)
            if (side === 'majority') servedOnMajority++
          } else {
            assert.ok(outcome instanceof StoreError && outcome.code === 'STORE_NO_QUORUM', `${side} put of ${name}: ${outcome instanceof StoreError ? outcome.code : JSON.stringify(outcome)}`)
          }
        }
      }
      // Every key has all its replicas on the majority side with 5, and most keys do with 3.
      if (replicationFactor === 5) assert.equal(servedOnMajority, 30)
      else assert.ok(servedOnMajority >= 10 && servedOnMajority < 30, `served ${servedOnMajority}`)
      sim.network.heal()
      sim.kernel.runFor(15_000)
      for (let key = 0; key < 30; key++) {
        const name = `key-${key}`
        const read = sim.run(indexOf(minority[0] as string), { kind: 'get', key: name })
        assert.ok(read !== null && !(read instanceof StoreError) && read.kind === 'get', `read after healing: ${read instanceof StoreError ? read.code : 'none'}`)
        const replicas = ring.preferenceList(name)
        const onMajority = replicas.filter((replica) => majority.includes(replica)).length >= Math.floor(replicas.length / 2) + 1
        assert.equal(text(read.value), onMajority ? `majority-${key}` : `minority-${key}`)
      }
    })
  }

  it('acknowledged writes survive crashes that lose unsynced writes: of a minority, repeatedly, and of every node at the moment of the acknowledgement', () => {
    const sim = makeStoreCluster(3, 5)
    const idOf = (index: number): string => (sim.cluster.nodes[index] as { id: string }).id
    const written = new Map<string, string>()
    for (let round = 0; round < 10; round++) {
      for (let key = 0; key < 5; key++) {
        const value = `r${round}k${key}`
        const put = sim.run(round % 3, { kind: 'put', key: `k${key}`, value: bytes(value) })
        if (put !== null && !(put instanceof StoreError)) written.set(`k${key}`, value)
      }
      // Crash one node (its unsynced writes are lost) and bring it back.
      const victim = idOf((round + 1) % 3)
      sim.cluster.crash(victim)
      sim.kernel.runFor(200)
      sim.cluster.restart(victim)
      sim.kernel.runFor(3_000)
    }
    assert.equal(written.size, 5)
    // The whole cluster crashes right after an acknowledgement: a quorum had made the write durable.
    for (let round = 0; round < 5; round++) {
      const value = `acknowledged-${round}`
      let acknowledged = false
      sim.store(round % 3).execute({ kind: 'put', key: 'k0', value: bytes(value) }, (outcome) => {
        if (outcome instanceof StoreError) return
        acknowledged = true
        sim.kernel.schedule(0, () => { for (let index = 0; index < 3; index++) sim.cluster.crash(idOf(index)) })
      })
      runKernelUntil(sim.kernel, () => acknowledged, 10_000, 1)
      assert.ok(acknowledged)
      sim.kernel.runFor(100)
      for (let index = 0; index < 3; index++) sim.cluster.restart(idOf(index))
      sim.kernel.runFor(5_000)
      written.set('k0', value)
    }
    for (const [key, value] of written) {
      for (let index = 0; index < 3; index++) {
        const read = sim.run(index, { kind: 'get', key })
        assert.ok(read !== null && !(read instanceof StoreError) && read.kind === 'get', `read ${key} at node ${index}`)
        assert.equal(text(read.value), value)
      }
    }
  })

  it('cas applies once among racing clients, deletes leave tombstones, and tombstones are erased once every replica holds them', () => {
    const sim = makeStoreCluster(3, 9, 1_000)
    assert.ok(!(sim.run(0, { kind: 'put', key: 'counter', value: bytes('0') }) instanceof StoreError))
    const outcomes: Array<KvResult | StoreError> = []
    for (let index = 0; index < 3; index++) sim.store(index).execute({ kind: 'cas', key: 'counter', expected: bytes('0'), value: bytes(`won-by-${index}`) }, (outcome) => { outcomes.push(outcome) })
    runKernelUntil(sim.kernel, () => outcomes.length === 3, 10_000, 5)
    const applied = outcomes.filter((outcome) => !(outcome instanceof StoreError) && outcome.kind === 'cas' && outcome.applied)
    assert.equal(applied.length, 1, JSON.stringify(outcomes))
    const deleted = sim.run(1, { kind: 'delete', key: 'counter' })
    assert.ok(deleted !== null && !(deleted instanceof StoreError) && deleted.kind === 'delete' && deleted.found)
    const absent = sim.run(2, { kind: 'get', key: 'counter' })
    assert.ok(absent !== null && !(absent instanceof StoreError) && absent.kind === 'get' && !absent.found)
    sim.kernel.runFor(5_000)
    const erased = [0, 1, 2].reduce((sum, index) => sum + sim.store(index).stats().acceptor.tombstonesErased, 0)
    assert.equal(erased, 3, 'every replica erased the tombstone')
    // The key starts over: a cas expecting it absent applies, and versions go on from the floor.
    const fresh = sim.run(0, { kind: 'cas', key: 'counter', expected: null, value: bytes('again') })
    assert.ok(fresh !== null && !(fresh instanceof StoreError) && fresh.kind === 'cas' && fresh.applied, JSON.stringify(fresh))
    const read = sim.run(2, { kind: 'get', key: 'counter' })
    assert.ok(read !== null && !(read instanceof StoreError) && read.kind === 'get')
    assert.equal(text(read.value), 'again')
  })

  it('limits: a key or a value over its limit is refused with its own code, and nothing is written', () => {
    const sim = makeStoreCluster(3, 2)
    const longKey = sim.run(0, { kind: 'put', key: 'k'.repeat(1_025), value: bytes('x') })
    assert.ok(longKey instanceof StoreError && longKey.code === 'STORE_KEY_TOO_LARGE')
    // The limit is in UTF-8 bytes: 256 four-byte characters fit exactly, one more byte does not.
    const wideKey = sim.run(0, { kind: 'put', key: '😀'.repeat(256), value: bytes('x') })
    assert.ok(wideKey !== null && !(wideKey instanceof StoreError), JSON.stringify(wideKey))
    const wideLongKey = sim.run(0, { kind: 'put', key: `${'😀'.repeat(256)}k`, value: bytes('x') })
    assert.ok(wideLongKey instanceof StoreError && wideLongKey.code === 'STORE_KEY_TOO_LARGE')
    const bigValue = sim.run(0, { kind: 'put', key: 'k', value: new Uint8Array(512 * 1_024 + 1) })
    assert.ok(bigValue instanceof StoreError && bigValue.code === 'STORE_VALUE_TOO_LARGE')
    const read = sim.run(1, { kind: 'get', key: 'k' })
    assert.ok(read !== null && !(read instanceof StoreError) && read.kind === 'get' && !read.found)
  })
})

describe('synod sim --workload kv', () => {
  it('runs a seed, writes the history, and the same seed gives the same history; synod check linearizable agrees', async () => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { SYNOD_MAIN } = await import('../support/cluster.js')
    const run = promisify(execFile)
    const dir = mkdtempSync(join(tmpdir(), 'synod-sim-kv-'))
    try {
      const files = [join(dir, 'a.jsonl'), join(dir, 'b.jsonl')]
      for (const file of files) {
        const { stdout } = await run(process.execPath, [SYNOD_MAIN, 'sim', '--workload', 'kv', '--consistency', 'strong', '--seed', '21', '--duration-ms', '4000', '--history', file])
        assert.match(stdout, /seed 21/)
        assert.match(stdout, /consistency strong, linearizable: linearizable/)
      }
      const [first, second] = files.map((file) => readFileSync(file, 'utf8'))
      assert.equal(first, second, 'one seed, one history')
      assert.ok((first ?? '').split('\n').length > 100)
      const { stdout } = await run(process.execPath, [SYNOD_MAIN, 'check', 'linearizable', files[0] as string])
      assert.match(stdout, /linearizable/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
