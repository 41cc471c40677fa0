/** The simulator's message loss can be changed while a cluster runs (a bench settles, then loses messages). */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { makeMembershipSim } from '../support/membership-sim.js'

it('setMessageLossRate turns loss on and off at every node', () => {
  const sim = makeMembershipSim({ nodes: 3, seed: 11 })
  assert.ok(sim.runUntil(() => sim.allAlive(), 10_000))
  sim.cluster.setMessageLossRate(1)
  const [a, b] = sim.members as [string, string]
  assert.ok(sim.runUntil(() => sim.membership(a)?.stateOf(b) === 'dead', 20_000), 'with every message lost, members die')
  assert.throws(() => { sim.cluster.setMessageLossRate(1.5) }, /a loss rate is in 0..1/)
  sim.cluster.setMessageLossRate(0)
  assert.ok(sim.runUntil(() => sim.allAlive(), 30_000), 'with loss off again, the cluster heals')
})
