import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Libp2pTransport } from '../../src/node/index.js'
import { transportComplianceSuite, type TestPing } from '../support/transport-compliance.js'
import { Libp2pWorld } from '../support/libp2p-world.js'

transportComplianceSuite('libp2p (TCP + Noise + Yamux on loopback)', () => new Libp2pWorld())

/** Write syscalls this process has made (Linux `/proc/self/io`). */
function writeSyscalls (): number {
  const match = /^syscw: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))
  if (match === null) throw new Error('no syscw line in /proc/self/io')
  return Number(match[1])
}

describe('libp2p transport: the Noise tunings (src/node/libp2p-tuning.ts)', () => {
  const world = new Libp2pWorld()
  after(async () => { await world.close() })

  it('sends each frame of its own turn as one write, and tunes every connection', async () => {
    await world.createNodes(2)
    const [sender, receiver] = [world.transport(0), world.transport(1)]
    const [from, to] = [world.nodeId(0), world.nodeId(1)]
    const received = (): number => world.recorder(1).received.filter((entry) => entry.from === from).length
    await world.waitFor(() => sender.links().some((link) => link.peer === to && link.state === 'connected'), 10_000, 'the link up')
    // Warm the link (stream opening, identify) before counting.
    sender.send(to, { type: 'test.ping', seq: 0, body: new Uint8Array(16) } satisfies TestPing)
    await world.waitFor(() => received() === 1, 10_000, 'the first frame')
    await new Promise((resolve) => setTimeout(resolve, 200))

    const frames = 300
    const before = writeSyscalls()
    for (let seq = 1; seq <= frames; seq++) {
      sender.send(to, { type: 'test.ping', seq, body: new Uint8Array(64).fill(seq & 0xff) } satisfies TestPing)
      // The transport flushes once per turn: wait for the frame to arrive, so each is its own send.
      while (received() < seq + 1) await nextTurn()
    }
    const writes = writeSyscalls() - before
    // A frame is a Yamux header and body under Noise: four buffers or more. Untuned, each was its
    // own write (about 4 per frame); corked, the list is one writev. The receiver writes nothing back
    // for so few bytes (Yamux's window update comes after half its 4 MiB window).
    assert.ok(writes <= frames * 1.25, `${writes} write syscalls for ${frames} frames sent one per turn`)
    assert.ok(writes >= frames, `${writes} write syscalls for ${frames} frames: fewer than one each means the count is not of this path`)
    for (const transport of [sender, receiver]) {
      assert.ok(transport instanceof Libp2pTransport)
      assert.equal(transport.untunedConnections(), 0)
    }
  })
})
