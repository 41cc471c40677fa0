/**
 * The simulated cluster runs the production NodeHost and HelloService: nodes find each other,
 * a crash loses what was not synced and resets links, a restart keeps identity and durable
 * state, a pause freezes a node, and logs land in the trace.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng } from '../../src/core/index.js'
import { SimCluster, SimKernel, SimNetwork, isConverged, type LinkPacket } from '../../src/sim/index.js'

function makeCluster (nodeCount: number, seed = 5): { kernel: SimKernel, network: SimNetwork<LinkPacket>, cluster: SimCluster } {
  const kernel = new SimKernel()
  const random = createPrng(seed)
  const network = new SimNetwork<LinkPacket>(kernel, random.fork('network'))
  const cluster = new SimCluster({ kernel, network, random: random.fork('cluster'), nodeCount })
  cluster.start()
  return { kernel, network, cluster }
}

describe('SimCluster', () => {
  it('builds the same identities from the same seed, and converges', () => {
    const first = makeCluster(4)
    assert.deepEqual(makeCluster(4).cluster.members, first.cluster.members)
    assert.notDeepEqual(makeCluster(4, 6).cluster.members, first.cluster.members)
    assert.equal(first.kernel.runUntil(() => isConverged(first.cluster), 10_000), true)
    first.kernel.runFor(100)
    for (const id of first.cluster.members) assert.equal(first.cluster.hello(id)?.status().bootDurable, true)
  })

  it('crash resets links and restart keeps the identity and the durable boot count', () => {
    const { kernel, cluster } = makeCluster(3)
    kernel.runFor(5_000)
    const [victim, witness] = cluster.members as [string, string]
    cluster.crash(victim)
    assert.equal(cluster.isUp(victim), false)
    assert.equal(cluster.hello(victim), undefined)
    const linkedToVictim = (): boolean => cluster.node(witness).transport?.links().some((link) => link.peer === victim && link.state === 'connected') ?? false
    assert.equal(kernel.runUntil(() => !linkedToVictim(), 100), true, 'the witness sees the reset within a latency or two')
    kernel.runFor(3_000)
    cluster.restart(victim)
    assert.equal(cluster.node(victim).boots, 2)
    assert.equal(cluster.hello(victim)?.status().boots, 2, 'the first boot count was synced, so it survived')
    assert.equal(kernel.runUntil(() => kernel.now() > 10_000 && isConverged(cluster), 10_000), true)
  })

  it('a crash before the boot record is synced loses it', () => {
    const { kernel, cluster } = makeCluster(2)
    const [victim] = cluster.members as [string]
    cluster.crash(victim)
    assert.equal(cluster.node(victim).disk.stats().writesLostAtCrash, 1)
    cluster.restart(victim)
    assert.equal(cluster.hello(victim)?.status().boots, 1, 'boot 1 never became durable')
    kernel.runFor(1_000)
  })

  it('a pause freezes a node: it sends and hears nothing, then catches up on what arrived meanwhile', () => {
    const { kernel, cluster } = makeCluster(2)
    kernel.runFor(3_000)
    const [sleeper, peer] = cluster.members as [string, string]
    const status = () => cluster.hello(sleeper)?.status()
    const heardFromPeer = (): number => status()?.peers.find((view) => view.peer === peer)?.greetsReceived ?? 0
    const greetsBefore = status()?.greetsSent ?? 0
    const heardBefore = heardFromPeer()
    const peerSentBefore = cluster.hello(peer)?.status().greetsSent ?? 0
    cluster.pause(sleeper, 1_500)
    kernel.runFor(1_400)
    assert.equal(status()?.greetsSent, greetsBefore, 'no greeting while paused')
    assert.equal(heardFromPeer(), heardBefore, 'nothing heard while paused')
    const peerSentDuringPause = (cluster.hello(peer)?.status().greetsSent ?? 0) - peerSentBefore
    assert.ok(peerSentDuringPause >= 2, 'the peer kept greeting')
    kernel.runFor(100)
    assert.equal(cluster.isPaused(sleeper), false)
    assert.ok(heardFromPeer() - heardBefore >= peerSentDuringPause, 'every greeting sent during the pause arrived at its end')
    kernel.runFor(2_000)
    assert.ok((status()?.greetsSent ?? 0) > greetsBefore)
  })

  it('writes node logs into the trace', () => {
    const { kernel } = makeCluster(2)
    kernel.runFor(1_000)
    const counts = kernel.traceCounts()
    assert.ok((counts['log.info'] ?? 0) > 0, 'link changes and durable boots are logged')
  })
})
