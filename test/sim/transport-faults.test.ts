/**
 * How the simulated transport behaves under the faults the nemesis injects, beyond the shared
 * compliance suite: one link per pair, idle links dying under partitions and coming back after
 * a heal, prompt resets after a crash, pauses, and asymmetric partitions.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { defaultSimTransportLimits } from '../../src/sim/index.js'
import { SimWorld } from '../support/sim-world.js'

const { linkIdleTimeoutMs, keepaliveIntervalMs } = defaultSimTransportLimits
/** The calm network's worst one-way latency. */
const LATENCY_MS_MAX = 5

function connected (world: SimWorld, from: number, to: number): boolean {
  return world.transport(from).links().some((link) => link.peer === world.nodeId(to) && link.state === 'connected')
}

async function connectedWorld (count: number): Promise<SimWorld> {
  const world = new SimWorld({ seed: 11 })
  await world.createNodes(count)
  const all = (): boolean => {
    for (let i = 0; i < count; i++) for (let j = 0; j < count; j++) if (i !== j && !connected(world, i, j)) return false
    return true
  }
  await world.waitFor(all, 10_000, 'all connected')
  return world
}

describe('SimTransport under faults', () => {
  it('settles simultaneous dials into exactly one link per pair', async () => {
    const world = await connectedWorld(4)
    world.kernel.runFor(5_000)
    for (let i = 0; i < 4; i++) {
      const events = world.recorder(i).linkEvents
      assert.equal(events.filter((event) => event.state === 'connected').length, 3, `node ${i} saw each peer connect once`)
      assert.equal(events.filter((event) => event.state === 'disconnected').length, 0)
      assert.equal(world.transport(i).stats().reconnects, 0)
    }
  })

  it('keeps a quiet link alive with keepalives', async () => {
    const world = await connectedWorld(2)
    world.kernel.runFor(linkIdleTimeoutMs * 5)
    assert.ok(connected(world, 0, 1) && connected(world, 1, 0))
    assert.equal(world.transport(0).stats().framesSent, 0, 'keepalives are not counted as frames')
  })

  it('under a partition, links die after linkIdleTimeoutMs (not before) and return after the heal', async () => {
    const world = await connectedWorld(3)
    const startMs = world.kernel.now()
    world.network.partition([[world.nodeId(0)], [world.nodeId(1), world.nodeId(2)]])
    // The idle clock runs from the last packet heard, at most one keepalive interval (plus a latency) before the partition.
    const earliestDeathMs = linkIdleTimeoutMs - keepaliveIntervalMs - LATENCY_MS_MAX
    world.kernel.runFor(earliestDeathMs)
    assert.ok(connected(world, 0, 1) && connected(world, 1, 0), 'still up before the idle timeout')
    await world.waitFor(() => !connected(world, 0, 1) && !connected(world, 1, 0), linkIdleTimeoutMs, 'links to die')
    assert.ok(world.kernel.now() - startMs <= linkIdleTimeoutMs + keepaliveIntervalMs, 'promptly after the idle timeout')
    assert.ok(connected(world, 1, 2), 'links inside a side stay up')
    world.network.heal()
    await world.waitFor(() => connected(world, 0, 1) && connected(world, 1, 0) && connected(world, 0, 2), 10_000, 'links back after the heal')
    assert.ok(world.transport(0).stats().reconnects >= 2)
  })

  it('a crashed peer\'s links drop after about one latency, not after the idle timeout', async () => {
    const world = await connectedWorld(3)
    const startMs = world.kernel.now()
    await world.stopNode(2)
    await world.waitFor(() => !connected(world, 0, 2) && !connected(world, 1, 2), linkIdleTimeoutMs, 'peers see the crash')
    assert.ok(world.kernel.now() - startMs < 50, `took ${world.kernel.now() - startMs} ms`)
  })

  it('a pause longer than the idle timeout drops the links; they return after it ends', async () => {
    const world = await connectedWorld(2)
    world.kernel.pause(world.nodeId(1), linkIdleTimeoutMs * 2)
    await world.waitFor(() => !connected(world, 0, 1), linkIdleTimeoutMs * 2, 'the paused peer\'s link dies')
    await world.waitFor(() => connected(world, 0, 1) && connected(world, 1, 0), linkIdleTimeoutMs * 3, 'the link returns after the pause')
  })

  it('refuses an outsider for good: no link and no message, however long it keeps trying', async () => {
    const world = await connectedWorld(2)
    const outsider = await world.startOutsider(0)
    await world.waitFor(() => world.transport(0).stats().refusedPeers > 0, 1_000, 'outsider refused')
    world.kernel.runFor(20_000)
    outsider.transport.send(world.nodeId(0), { type: 'test.ping', seq: 9, body: new Uint8Array(1) })
    world.kernel.runFor(1_000)
    assert.ok(world.transport(0).stats().refusedPeers > 1, 'it kept redialling and kept being refused')
    assert.ok(!outsider.transport.links().some((link) => link.state === 'connected'), 'the outsider never links')
    assert.ok(!world.transport(0).links().some((link) => link.peer === outsider.id), 'the member does not list the outsider')
    assert.ok(!world.recorder(0).received.some((entry) => entry.from === outsider.id), 'nothing delivered from the outsider')
    assert.equal(outsider.recorder.linkEvents.length, 0)
    assert.ok(connected(world, 0, 1) && connected(world, 1, 0), 'members unaffected')
  })

  it('an asymmetric partition keeps the pair from linking until healed', async () => {
    const world = await connectedWorld(2)
    world.network.partitionOneWay([world.nodeId(0)], [world.nodeId(1)])
    await world.waitFor(() => !connected(world, 0, 1) && !connected(world, 1, 0), linkIdleTimeoutMs * 2, 'links die')
    // Node 1's SYNs reach node 0, which may accept them and count itself linked for a while, but
    // nothing node 0 sends gets back, so node 1's side never comes up.
    const deliveredBefore = world.recorder(1).received.length
    let targetEverLinked = false
    world.kernel.runUntil(() => { targetEverLinked ||= connected(world, 1, 0); return false }, 20_000)
    assert.equal(targetEverLinked, false, 'the target never links to a source it cannot hear')
    assert.equal(world.recorder(1).received.length, deliveredBefore, 'nothing crosses from source to target')
    const droppedBefore = world.transport(1).stats().droppedFrames
    world.transport(1).send(world.nodeId(0), { type: 'test.ping', seq: 1, body: new Uint8Array(1) })
    assert.equal(world.transport(1).stats().droppedFrames, droppedBefore + 1, 'a send with no link is dropped and counted')
    world.network.heal()
    await world.waitFor(() => connected(world, 0, 1) && connected(world, 1, 0), 10_000, 'links back after the heal')
  })
})
