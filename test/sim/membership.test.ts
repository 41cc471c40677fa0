/**
 * Membership in the simulator, over many seeds: crash detection within the documented bound,
 * restart with a higher incarnation, no false deaths under a pause and message loss, quorum on
 * each side of a partition and convergence after it heals.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Env, NodeId, Service } from '../../src/core/index.js'
import type { OverlayService } from '../../src/net/index.js'
import { forSeeds, makeMembershipSim, percentile, type MembershipSim } from '../support/membership-sim.js'

const LONG = process.env.SYNOD_LONG === '1'
const seeds = (count: number, from = 1): number[] => Array.from({ length: LONG ? count * 5 : count }, (_, index) => from + index)
/** The documented bound (docs/membership.md) for a crashed process at the default settings. */
const DETECTION_BOUND_MS = 5_000
const WARMUP_MS_MAX = 15_000

function warmUp (sim: MembershipSim): void {
  assert.ok(sim.runUntil(() => sim.allAlive(), WARMUP_MS_MAX), `not every node saw every other alive within ${WARMUP_MS_MAX} ms: ${sim.views().join(' | ')}`)
}

/** Virtual ms from `sinceMs` until each up node declared `member` dead. */
function detectionTimes (sim: MembershipSim, member: NodeId, sinceMs: number): number[] {
  const times: number[] = []
  for (const id of sim.members) {
    if (id === member || !sim.cluster.isUp(id)) continue
    const event = sim.events.find((entry) => entry.at === id && entry.event.kind === 'state' && entry.event.member === member && entry.event.to === 'dead' && entry.event.atMs >= sinceMs)
    assert.ok(event !== undefined && event.event.kind === 'state', `${id} never declared ${member} dead`)
    times.push(event.event.atMs - sinceMs)
  }
  return times
}

describe('membership in the simulator', () => {
  it('declares a crashed node dead at every other node within the bound', () => {
    const all: number[] = []
    forSeeds(seeds(20), (seed) => {
      const sim = makeMembershipSim({ nodes: 5, seed })
      warmUp(sim)
      sim.kernel.runFor(sim.cluster.members.length * 137 % 1000)
      const victim = sim.members[seed % 5] as NodeId
      const crashedMs = sim.kernel.now()
      sim.cluster.crash(victim)
      assert.ok(sim.runUntil(() => sim.allSee(victim, 'dead'), 20_000), `not declared dead: ${sim.views().join(' | ')}`)
      const times = detectionTimes(sim, victim, crashedMs)
      all.push(...times)
      for (const time of times) assert.ok(time <= DETECTION_BOUND_MS, `detection took ${time} ms, over the ${DETECTION_BOUND_MS} ms bound`)
    })
    all.sort((a, b) => a - b)
    console.log(`detection over ${all.length} observations: p50 ${percentile(all, 0.5)} ms, p99 ${percentile(all, 0.99)} ms, max ${all[all.length - 1]} ms`)
  })
  it('brings a restarted node back alive with a higher incarnation', () => {
    forSeeds(seeds(8, 100), (seed) => {
      const sim = makeMembershipSim({ nodes: 5, seed })
      warmUp(sim)
      const victim = sim.members[seed % 5] as NodeId
      const before = sim.membership(victim)?.view().incarnation as number
      sim.cluster.crash(victim)
      assert.ok(sim.runUntil(() => sim.allSee(victim, 'dead'), 20_000), 'crashed node declared dead')
      const deadAt = sim.membership(sim.members.find((id) => id !== victim) as NodeId)?.view().members.find((member) => member.id === victim)?.incarnation as number
      sim.cluster.restart(victim)
      assert.ok(sim.runUntil(() => sim.allAlive(), 10_000), `restarted node not alive everywhere: ${sim.views().join(' | ')}`)
      for (const id of sim.members) {
        const seen = sim.membership(id)?.view().members.find((member) => member.id === victim)
        assert.ok(seen !== undefined && seen.state === 'alive' && seen.incarnation > before && seen.incarnation > deadAt, `${id} holds ${victim} at ${seen?.state}@${seen?.incarnation}, needs alive above ${Math.max(before, deadAt)}`)
      }
    })
  })

  it('declares no healthy node dead under 5% message loss and a 2 s pause', () => {
    let suspicions = 0
    forSeeds(seeds(6, 200), (seed) => {
      const sim = makeMembershipSim({ nodes: 5, seed, messageLossRate: 0.05 })
      warmUp(sim)
      const startMs = sim.kernel.now()
      for (let round = 0; round < 10; round++) {
        sim.kernel.runFor(1_000 + (seed * 7919 + round * 104_729) % 3_000)
        sim.cluster.pause(sim.members[(seed + round) % 5] as NodeId, 2_000)
        sim.kernel.runFor(4_000)
      }
      sim.kernel.runFor(10_000)
      const deaths = sim.events.filter((entry) => entry.event.kind === 'state' && entry.event.to === 'dead' && entry.event.atMs >= startMs)
      assert.deepEqual(deaths.map((entry) => entry.event), [], 'no healthy node is declared dead')
      // Loss goes on, so a fresh suspicion may be open at any instant: the views must return to all alive.
      assert.ok(sim.runUntil(() => sim.allAlive(), 10_000), `every node alive again after the pauses: ${sim.views().join(' | ')}`)
      suspicions += sim.events.filter((entry) => entry.event.kind === 'state' && entry.event.to === 'suspect' && entry.event.atMs >= startMs).length
    })
    console.log(`suspicions raised and refuted: ${suspicions}`)
  })

  it('gives quorum to the majority side of a partition only, and converges after healing', () => {
    forSeeds(seeds(6, 300), (seed) => {
      const sim = makeMembershipSim({ nodes: 5, seed })
      warmUp(sim)
      const minority = sim.members.slice(0, 2)
      const majority = sim.members.slice(2)
      const quorumOf = (id: NodeId): boolean | undefined => sim.membership(id)?.hasQuorum()
      assert.ok(sim.members.every((id) => quorumOf(id) === true), 'everyone has quorum before the partition')
      sim.network.partition([minority, majority])
      const split = (): boolean => minority.every((id) => quorumOf(id) === false) && majority.every((id) => quorumOf(id) === true)
      assert.ok(sim.runUntil(split, 15_000), `quorum per side: ${sim.members.map((id) => `${id.slice(0, 4)}=${String(quorumOf(id))}`).join(' ')}`)
      // The answer holds for the whole partition, not just a moment of it.
      for (let check = 0; check < 20; check++) {
        sim.kernel.runFor(500)
        assert.ok(split(), `quorum answers changed during the partition at ${sim.kernel.now()} ms`)
      }
      for (const id of minority) {
        assert.throws(() => sim.membership(id)?.requireQuorum('a strong write'), (error: Error & { code?: string }) => error.code === 'MEMBERSHIP_NO_QUORUM')
        assert.deepEqual(sim.membership(id)?.reachable(), [...minority].sort(), 'the minority names the members it reaches')
      }
      sim.network.heal()
      assert.ok(sim.runUntil(() => sim.allAlive() && new Set(sim.views()).size === 1, 20_000), `views did not converge: ${sim.views().join(' | ')}`)
      assert.ok(sim.members.every((id) => quorumOf(id) === true), 'everyone has quorum after healing')
    })
  })
})

/** A Byzantine node: sends membership messages bare on its links and forges a leave for another member. */
class Misbehaver implements Service {
  readonly name = 'misbehaver'
  readonly messages = []
  private env: Env | null = null
  constructor (private readonly overlay: OverlayService) {}
  start (env: Env): void {
    this.env = env
    const victim = env.members.find((member) => member !== env.self) as NodeId
    const tick = (): void => {
      for (const link of env.links()) {
        if (link.state !== 'connected') continue
        env.send(link.peer, { type: 'member.ping', seq: 1, target: link.peer, incarnation: 1, updates: [] })
        try {
          this.overlay.send(link.peer, { type: 'member.gossip', incarnation: 1, updates: [{ member: victim, state: 'left', incarnation: 99, from: env.self }] })
        } catch {}
      }
      env.setTimer(200, tick)
    }
    env.setTimer(2_000, tick)
  }
  onMessage (): void {}
  stop (): void { this.env = null }
}

describe('misbehaving peers in the simulator', () => {
  it('scores down, disconnects and refuses a peer that sends invalid messages, and leaves honest peers alone', () => {
    forSeeds(seeds(4, 400), (seed) => {
      let byzantine: NodeId | null = null
      const sim = makeMembershipSim({
        nodes: 5,
        seed,
        extraServices: (context, overlay) => {
          if (context.index !== seed % 5) return []
          byzantine = context.id
          return [new Misbehaver(overlay)]
        }
      })
      const bad = byzantine as unknown as NodeId
      const honest = sim.members.filter((id) => id !== bad)
      assert.ok(sim.runUntil(() => honest.every((id) => sim.membership(id)?.isBanned(bad) === true), 20_000), 'every honest node bans the misbehaving peer')
      sim.kernel.runFor(5_000)
      for (const id of honest) {
        const view = sim.membership(id)?.view()
        const held = view?.members.find((member) => member.id === bad)
        assert.ok(held !== undefined && held.bannedUntilMs !== null && held.bannedUntilMs > sim.kernel.now() && !held.reachable, `${id} holds the misbehaving peer banned and unreachable`)
        const link = sim.cluster.node(id).transport?.links().find((entry) => entry.peer === bad)
        assert.equal(link?.state, 'disconnected', `${id} has no link to the banned peer`)
        for (const other of honest) {
          const peer = view?.members.find((member) => member.id === other)
          assert.ok(peer !== undefined && peer.state === 'alive' && peer.score === 0 && peer.bannedUntilMs === null, `${id} keeps honest ${other} alive with a clean score`)
        }
        assert.ok(sim.events.some((entry) => entry.at === id && entry.event.kind === 'ban' && entry.event.member === bad), `${id} emitted a ban event`)
        // The forged leave never took: only a member may announce its own leave.
        assert.ok(honest.every((other) => sim.membership(id)?.stateOf(other) === 'alive'))
        assert.equal(sim.membership(id)?.hasQuorum(), true)
      }
    })
  })
})
