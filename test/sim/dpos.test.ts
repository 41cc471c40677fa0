/**
 * Delegated Proof of Stake in the simulator: 21 producers on the production services. With 5
 * offline, blocks go on and the last irreversible block advances; with 8 offline (13 left, below
 * floor(2 x 21 / 3) + 1 = 15) it stops, and it resumes when they return; across a partition the
 * chain-safety checker finds no two nodes with different irreversible blocks at one height and no
 * node that went back on one; a producer that signs two blocks for one slot is slashed and leaves
 * the schedule.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkChainSafety } from '../../src/check/index.js'
import { addressFromPublicKey } from '../../src/ledger/index.js'
import { makePosSim, type PosSim } from '../support/stake-sim.js'

const LONG = process.env.SYNOD_LONG === '1'
const SEEDS = LONG ? 20 : 3
const PRODUCERS = 21
/** A round: 21 producers x 1 block per turn (the default) x 500 ms slots. */
const ROUND_MS = 21 * 1 * 500

function assertSafe (sim: PosSim, label: string): void {
  const report = checkChainSafety(sim.events, sim.honest)
  assert.ok(report.ok, `${label}: ${JSON.stringify(report.violations.slice(0, 3))}`)
}

const minOf = (values: number[]): number => Math.min(...values)

describe('DPoS simulation: 21 producers', () => {
  it('with 5 offline, blocks go on and the irreversible block advances', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = makePosSim({ engine: 'dpos', nodes: PRODUCERS, seed })
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= 5, 60_000), `seed ${seed}: no irreversible block with all producers`)
      for (let index = 0; index < 5; index++) sim.cluster.crash(sim.idOf(index))
      const [height, final] = [minOf(sim.heights()), minOf(sim.finalHeights())]
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= final + 20, 120_000), `seed ${seed}: the irreversible block stopped with 16 producers (${final} -> ${minOf(sim.finalHeights())})`)
      assert.ok(minOf(sim.heights()) >= height + 20)
      assertSafe(sim, `seed ${seed}`)
    }
  })

  it('with 8 offline the irreversible block stops (blocks go on), and resumes when they return', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = makePosSim({ engine: 'dpos', nodes: PRODUCERS, seed })
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= 5, 60_000))
      const offline = Array.from({ length: 8 }, (_, index) => sim.idOf(index))
      for (const id of offline) sim.cluster.crash(id)
      // Blocks from before the crash may still become irreversible as each of the 13 builds on
      // them (within a round); after that, nothing more.
      sim.kernel.runFor(3 * ROUND_MS)
      const [height, stalled] = [minOf(sim.heights()), Math.max(...sim.finalHeights())]
      sim.kernel.runFor(30_000)
      assert.equal(Math.max(...sim.finalHeights()), stalled, `seed ${seed}: 13 of 21 producers made a block irreversible`)
      assert.ok(minOf(sim.heights()) >= height + 20, `seed ${seed}: blocks stopped with 13 producers`)
      for (const id of offline) sim.cluster.restart(id)
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= stalled + 20, 120_000), `seed ${seed}: the irreversible block did not resume (${stalled} -> ${minOf(sim.finalHeights())})`)
      assertSafe(sim, `seed ${seed}`)
    }
  })

  it('a partition of 8 and 13 never makes nodes disagree on an irreversible block, nor go back on one', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = makePosSim({ engine: 'dpos', nodes: PRODUCERS, seed })
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= 5, 60_000))
      const minority = sim.members.filter((_, index) => (index + seed) % 21 < 8)
      const majority = sim.members.filter((id) => !minority.includes(id))
      sim.network.partition([minority, majority])
      sim.kernel.runFor(30_000)
      sim.network.heal()
      assert.ok(sim.runUntil(() => new Set(sim.members.map((id) => sim.ledger(id).chain().hashAt(minOf(sim.heights()) - 4))).size === 1, 60_000), `seed ${seed}: the sides did not converge`)
      const final = minOf(sim.finalHeights())
      assert.ok(sim.runUntil(() => minOf(sim.finalHeights()) >= final + 20, 120_000), `seed ${seed}: no progress after healing`)
      assertSafe(sim, `seed ${seed}`)
    }
  })

  it('a producer that signs two blocks for one slot is slashed and leaves the schedule', () => {
    const sim = makePosSim({ engine: 'dpos', nodes: PRODUCERS, seed: 7, byzantineProducers: { 0: 'double-sign' } })
    const offender = addressFromPublicKey((sim.keys[0] as { publicKey: Uint8Array }).publicKey)
    const observer = sim.idOf(1)
    const slashed = (): boolean => sim.ledger(observer).chain().state().stakeOf(offender).candidate?.tombstoned === true
    assert.ok(sim.runUntil(slashed, 120_000), 'the double signer was not slashed')
    const record = sim.ledger(observer).chain().state().stakeOf(offender)
    assert.equal(record.candidate?.slashes.length, 1)
    assert.ok((record.candidate?.slashes[0]?.amount ?? 0n) > 0n)
    // Within two rounds it is out of the schedule.
    sim.kernel.runFor(2 * ROUND_MS)
    const schedule = sim.ledger(observer).chain().state().producerSchedule()
    assert.ok(schedule !== null && schedule.producers.every((producer) => producer.address !== offender), 'still scheduled')
    assert.equal(schedule?.producers.length, 20)
    assert.ok(sim.members.some((id) => sim.dpos(id).stats().doubleSignsSeen > 0))
    assertSafe(sim, 'double sign')
  })
})
