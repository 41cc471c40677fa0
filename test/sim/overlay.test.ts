/**
 * The overlay in the simulator, over many seeds: routed sends and broadcasts deliver everything
 * with no faults; broadcast repairs 5% message loss; routing goes around failed nodes while the
 * overlay stays connected and reports unreachable when it does not. Failing seeds are printed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { NetError, bfsDistances, type NetRouted, type TopologySpecInput } from '../../src/net/index.js'
import { liveComponent, makeOverlaySim, note, type OverlaySim } from '../support/overlay-sim.js'

const SEEDS = Array.from({ length: process.env.SYNOD_LONG === '1' ? 60 : 8 }, (_, i) => 1_000 + i)
const SETTLE_MS = 15_000

function settle (sim: OverlaySim, seed: number): void {
  assert.equal(sim.kernel.runUntil(() => sim.routesSettled(), SETTLE_MS), true, `seed ${seed}: routes did not settle`)
}

function broadcastFromEach (sim: OverlaySim, origins: string[], firstSeq: number, gapMs = 50): number[] {
  const seqs: number[] = []
  origins.forEach((origin, index) => {
    const seq = firstSeq + index
    sim.overlay(origin)?.broadcast('notes', note(seq))
    seqs.push(seq)
    sim.kernel.runFor(gapMs)
  })
  return seqs
}

/** For each seq: the set of nodes that delivered it, and whether any node delivered it twice. */
function deliveries (sim: OverlaySim, seqs: number[]): { missing: string[], twice: string[] } {
  const missing: string[] = []
  const twice: string[] = []
  for (const seq of seqs) {
    const at = sim.broadcasts.filter((entry) => entry.seq === seq).map((entry) => entry.at)
    if (new Set(at).size !== at.length) twice.push(`seq ${seq}`)
    for (const id of sim.members) if (sim.cluster.isUp(id) && !at.includes(id)) missing.push(`seq ${seq} at ${id}`)
  }
  return { missing, twice }
}

const topologies: Array<[string, TopologySpecInput, number]> = [
  ['ring', { kind: 'ring' }, 9],
  ['random 4-regular', { kind: 'random-regular', degree: 4 }, 24],
  ['small world', { kind: 'small-world', neighbours: 4 }, 20],
  ['tree', { kind: 'tree', fanout: 3 }, 13]
]

describe('overlay without faults', () => {
  for (const [name, topology, nodes] of topologies) {
    it(`${name}: every routed send arrives over a shortest path, every broadcast reaches every node once`, () => {
      for (const seed of SEEDS) {
        const sim = makeOverlaySim({ nodes, topology: { ...topology, ...('seed' in topology || topology.kind === 'random-regular' || topology.kind === 'small-world' ? { seed } : {}) }, seed })
        settle(sim, seed)
        const [from, ...rest] = sim.members
        const source = sim.members.indexOf(from as string)
        const distances = bfsDistances(sim.graph, source)
        rest.forEach((to, index) => { sim.overlay(from as string)?.send(to, note(index)) })
        sim.kernel.runFor(2_000)
        assert.equal(sim.routed.length, rest.length, `seed ${seed}: ${sim.routed.length}/${rest.length} routed messages arrived`)
        for (const entry of sim.routed) assert.equal(entry.hops, distances[sim.members.indexOf(entry.at)], `seed ${seed}: hops to ${entry.at}`)
        const seqs = broadcastFromEach(sim, sim.members.slice(0, 5), 100)
        sim.kernel.runFor(3_000)
        const { missing, twice } = deliveries(sim, seqs)
        assert.deepEqual(missing, [], `seed ${seed}: broadcasts missing`)
        assert.deepEqual(twice, [], `seed ${seed}: broadcasts delivered twice`)
      }
    })
  }

  it('steady state: after the tree forms, duplicates per node per broadcast stay near zero', () => {
    for (const seed of SEEDS) {
      const sim = makeOverlaySim({ nodes: 40, topology: { kind: 'random-regular', degree: 6, seed }, seed })
      settle(sim, seed)
      // Warm-up: the first broadcasts (and the link-state announcements) prune the eager links into a tree.
      broadcastFromEach(sim, sim.members.slice(0, 20), 1_000, 500)
      sim.kernel.runFor(3_000)
      const duplicatesBefore = sim.members.reduce((sum, id) => sum + (sim.overlay(id)?.stats().broadcast.duplicates ?? 0), 0)
      // Steady state: one broadcast at a time, each done before the next (about a second apart).
      const seqs = broadcastFromEach(sim, sim.members.slice(0, 20), 2_000, 1_000)
      sim.kernel.runFor(3_000)
      const duplicates = sim.members.reduce((sum, id) => sum + (sim.overlay(id)?.stats().broadcast.duplicates ?? 0), 0) - duplicatesBefore
      assert.deepEqual(deliveries(sim, seqs).missing, [], `seed ${seed}`)
      const perNodePerBroadcast = duplicates / (sim.members.length * seqs.length)
      assert.ok(perNodePerBroadcast <= 0.2, `seed ${seed}: ${perNodePerBroadcast.toFixed(3)} duplicates per node per broadcast`)
    }
  })
})

describe('overlay under faults', () => {
  it('with 5% message loss, broadcast still reaches every node, through repair', () => {
    for (const seed of SEEDS) {
      const sim = makeOverlaySim({ nodes: 30, topology: { kind: 'random-regular', degree: 4, seed }, seed, messageLossRate: 0.05 })
      settle(sim, seed)
      const seqs = broadcastFromEach(sim, sim.members.slice(0, 10), 3_000)
      sim.kernel.runFor(10_000)
      const { missing, twice } = deliveries(sim, seqs)
      assert.deepEqual(missing, [], `seed ${seed}: missing after repair`)
      assert.deepEqual(twice, [], `seed ${seed}: delivered twice`)
      const repaired = sim.members.reduce((sum, id) => sum + (sim.overlay(id)?.stats().broadcast.repaired ?? 0), 0)
      assert.ok(repaired > 0, `seed ${seed}: loss was repaired (repaired ${repaired})`)
    }
  })

  it('routes around crashed nodes while the overlay stays connected, and reports unreachable when it does not', () => {
    for (const seed of SEEDS) {
      const sim = makeOverlaySim({ nodes: 8, topology: { kind: 'ring' }, seed })
      settle(sim, seed)
      const ring = sim.members
      const [a, b, c] = [ring[0] as string, ring[1] as string, ring[2] as string]
      sim.overlay(a)?.send(c, note(1))
      sim.kernel.runFor(500)
      assert.equal(sim.routed.find((entry) => entry.seq === 1)?.hops, 2, `seed ${seed}: two hops the short way`)
      sim.cluster.crash(b)
      assert.equal(sim.kernel.runUntil(() => sim.routesSettled(), SETTLE_MS), true, `seed ${seed}: routes after crash`)
      sim.overlay(a)?.send(c, note(2))
      sim.kernel.runFor(1_000)
      assert.equal(sim.routed.find((entry) => entry.seq === 2)?.hops, ring.length - 2, `seed ${seed}: the long way round`)
      const far = ring[5] as string
      sim.cluster.crash(far)
      assert.equal(sim.kernel.runUntil(() => sim.routesSettled(), SETTLE_MS), true, `seed ${seed}: routes after second crash`)
      const up = new Set(ring.map((_, index) => index).filter((index) => sim.cluster.isUp(ring[index] as string)))
      assert.equal(liveComponent(sim.graph, 0, up).has(2), false, 'the ring is now cut between a and c')
      assert.throws(() => sim.overlay(a)?.send(c, note(3)), (error: unknown) => error instanceof NetError && error.code === 'NET_UNREACHABLE', `seed ${seed}`)
      sim.cluster.restart(b)
      assert.equal(sim.kernel.runUntil(() => sim.routesSettled() && sim.overlay(a)?.route(c) !== undefined, SETTLE_MS), true, `seed ${seed}: routes after restart`)
      sim.overlay(a)?.send(c, note(4))
      sim.kernel.runFor(1_000)
      assert.equal(sim.routed.find((entry) => entry.seq === 4)?.hops, 2, `seed ${seed}: short way again after restart`)
    }
  })

  it('a routed message is dropped, not looped, when its hop limit runs out', () => {
    const sim = makeOverlaySim({ nodes: 10, topology: { kind: 'ring' }, seed: 7, limits: { hopLimit: 3 } })
    settle(sim, 7)
    const [a] = sim.members
    const opposite = sim.members[5] as string
    sim.overlay(a as string)?.send(opposite, note(9))
    sim.kernel.runFor(1_000)
    assert.equal(sim.routed.some((entry) => entry.seq === 9), false)
    const drops = sim.members.reduce((sum, id) => sum + (sim.overlay(id)?.stats().dropped.hop_limit ?? 0), 0)
    assert.equal(drops, 1)
  })
})

describe('overlay input checks', () => {
  it('drops and counts envelopes with a forged path, a loop, or a payload that does not decode', () => {
    const sim = makeOverlaySim({ nodes: 5, topology: { kind: 'ring' }, seed: 11 })
    settle(sim, 11)
    const [a, b, c] = sim.members as [string, string, string]
    const overlayB = sim.overlay(b)
    assert.ok(overlayB !== undefined)
    const envelope: NetRouted = { type: 'net.routed', id: 'forged/1', src: a, dst: c, path: [a], hopsLeft: 8, payload: new Uint8Array([0xff]) }
    overlayB.onMessage(c, envelope)
    assert.equal(overlayB.stats().dropped.bad_path, 1, 'the path must end with the neighbour it came from')
    const looped: NetRouted = { ...envelope, path: [c, b, a] }
    overlayB.onMessage(a, looped)
    assert.equal(overlayB.stats().dropped.loop, 1, 'a path through this node is a loop')
    const garbled: NetRouted = { ...envelope, dst: b }
    overlayB.onMessage(a, garbled)
    assert.equal(overlayB.stats().dropped.bad_payload, 1, 'a payload that is not a message')
    assert.equal(sim.routed.length, 0, 'nothing reached the application')
    sim.kernel.runFor(1_000)
    assert.equal(sim.routesSettled(), true, 'the node keeps working')
  })
})
