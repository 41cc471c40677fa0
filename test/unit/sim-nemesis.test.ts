import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng, type NodeId } from '../../src/core/index.js'
import {
  Nemesis, SimCluster, SimKernel, SimNetwork, drawFaultProfile, faultKinds,
  type FaultKind, type FaultProfile, type LinkPacket
} from '../../src/sim/index.js'

const NODES = 5

interface World { kernel: SimKernel, network: SimNetwork<LinkPacket>, cluster: SimCluster, nemesis: Nemesis, profile: FaultProfile }

/** A cluster under a nemesis whose profile is the seed's, with some fields overridden. */
function world (seed: number, override: Partial<FaultProfile> = {}): World {
  const kernel = new SimKernel()
  const root = createPrng(seed)
  const network = new SimNetwork<LinkPacket>(kernel, root.fork('network'))
  const cluster = new SimCluster({ kernel, network, random: root.fork('cluster'), nodeCount: NODES })
  const profile = { ...drawFaultProfile(root.fork('profile'), NODES), ...override }
  const nemesis = new Nemesis({ kernel, network, cluster, random: root.fork('nemesis'), profile })
  nemesis.startSafetyPhase()
  cluster.start()
  return { kernel, network, cluster, nemesis, profile }
}

const onlyKinds = (...kinds: FaultKind[]): Record<FaultKind, number> =>
  Object.fromEntries(faultKinds.map((kind) => [kind, kinds.includes(kind) ? 1 : 0])) as Record<FaultKind, number>

function unavailable (cluster: SimCluster): NodeId[] {
  return cluster.members.filter((id) => !cluster.isUp(id) || cluster.isPaused(id))
}

function burstActive ({ network, cluster, profile }: World): boolean {
  return cluster.members.some((from) => cluster.members.some((to) => from !== to && network.conditionsFor(from, to).lossProbability !== profile.baseline.lossProbability))
}

describe('fault profile', () => {
  it('is a function of the seed, within the documented ranges', () => {
    const profiles = Array.from({ length: 300 }, (_, seed) => drawFaultProfile(createPrng(seed), NODES))
    assert.deepEqual(drawFaultProfile(createPrng(17), NODES), profiles[17])
    assert.equal(new Set(profiles.map((profile) => JSON.stringify(profile))).size, profiles.length, 'every seed its own world')
    for (const profile of profiles) {
      const { baseline } = profile
      assert.ok(baseline.lossProbability >= 0 && baseline.lossProbability <= 0.2)
      assert.ok(baseline.duplicateProbability >= 0 && baseline.duplicateProbability <= 0.1)
      assert.ok(baseline.reorderProbability >= 0 && baseline.reorderProbability <= 0.3)
      assert.ok(profile.faultGapMsMean >= 300 && profile.faultGapMsMean <= 5_000)
      assert.ok(profile.faultDurationMsMin === 200 && profile.faultDurationMsMax >= 1_000 && profile.faultDurationMsMax <= 10_000)
      assert.ok(faultKinds.every((kind) => profile.kindWeights[kind] >= 0 && profile.kindWeights[kind] <= 4))
      assert.ok(faultKinds.some((kind) => profile.kindWeights[kind] > 0), 'at least one kind in play')
      assert.ok(profile.burstLossProbability >= 0.2 && profile.burstLossProbability <= 0.6)
      assert.ok(profile.burstLatencyFactor >= 2 && profile.burstLatencyFactor <= 10)
      assert.equal(profile.nodesDownMax, 2, 'a minority of five')
    }
    const reordering = profiles.filter((profile) => profile.baseline.reorderProbability > 0).length
    assert.ok(reordering > 100 && reordering < 200, `about half the seeds reorder (${reordering} of 300)`)
    assert.ok(faultKinds.every((kind) => profiles.some((profile) => profile.kindWeights[kind] === 0)), 'every kind is left out by some seed')
  })

  it('keeps nodesDownMax a minority, with one node for clusters of one or two', () => {
    const random = createPrng(1)
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((nodes) => drawFaultProfile(random, nodes).nodesDownMax), [1, 1, 1, 1, 2, 2, 3])
  })
})

describe('Nemesis', () => {
  it('never has more than nodesDownMax nodes crashed or paused at once', () => {
    let limitReached = 0
    let faultsSkipped = 0
    for (const seed of [1, 2, 3]) {
      const w = world(seed, { kindWeights: onlyKinds('crash-restart', 'pause'), faultGapMsMean: 300 })
      const broken = w.kernel.runUntil(() => {
        const count = unavailable(w.cluster).length
        if (count === w.profile.nodesDownMax) limitReached++
        return count > w.profile.nodesDownMax
      }, 60_000)
      assert.equal(broken, false, `seed ${seed}: ${unavailable(w.cluster).length} nodes unavailable at ${w.kernel.now()} ms, limit ${w.profile.nodesDownMax}`)
      faultsSkipped += w.kernel.traceCounts()['nemesis.skip'] ?? 0
      assert.ok(w.nemesis.faults().some((fault) => fault.kind === 'pause') && w.nemesis.faults().some((fault) => fault.kind === 'crash-restart'), 'both kinds struck')
    }
    assert.ok(limitReached > 0, 'the limit was reached, so the check was not vacuous')
    assert.ok(faultsSkipped > 0, 'faults were skipped at the limit')
  })

  it('draws the same faults from the same seed', () => {
    const faults = (seed: number): string => {
      const w = world(seed)
      w.kernel.runFor(30_000)
      return JSON.stringify(w.nemesis.faults())
    }
    assert.equal(faults(9), faults(9))
    assert.notEqual(faults(9), faults(10))
  })

  it('the liveness phase heals everything at once and injects nothing more', () => {
    const w = world(4, { kindWeights: { ...onlyKinds(...faultKinds), 'network-burst': 2 }, faultGapMsMean: 300, faultDurationMsMax: 10_000 })
    const { kernel, network, cluster, nemesis, profile } = w
    const everythingBroken = (): boolean => network.activePartitions().length > 0 &&
      cluster.members.some((id) => !cluster.isUp(id)) && cluster.members.some((id) => cluster.isPaused(id)) && burstActive(w)
    assert.equal(kernel.runUntil(everythingBroken, 120_000), true, 'a moment with a partition, a crash, a pause and a burst at once')
    nemesis.startLivenessPhase()
    assert.deepEqual(network.activePartitions(), [])
    assert.deepEqual(unavailable(cluster), [])
    for (const from of cluster.members) {
      for (const to of cluster.members) if (from !== to) assert.deepEqual(network.conditionsFor(from, to), profile.baseline)
    }
    const faultsAtHeal = nemesis.faults().length
    const faultLinesAtHeal = kernel.traceCounts()['nemesis.fault'] ?? 0
    kernel.runFor(30_000)
    assert.equal(nemesis.faults().length, faultsAtHeal, 'no fault after the heal')
    assert.equal(kernel.traceCounts()['nemesis.fault'] ?? 0, faultLinesAtHeal)
    assert.deepEqual(network.activePartitions(), [])
    assert.deepEqual(unavailable(cluster), [])
    assert.equal(burstActive(w), false)
  })
})
