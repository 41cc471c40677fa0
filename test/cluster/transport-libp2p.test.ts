import { describe, it, before, after } from 'node:test'
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

describe('libp2p transport: the tunings of the stack below (src/node/libp2p-tuning.ts)', () => {
  const world = new Libp2pWorld()
  before(async () => { await world.createNodes(2) })
  after(async () => { await world.close() })

  it('sends each frame of its own turn as one write, and tunes every connection', async () => {
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
      const deadline = Date.now() + 5_000
      while (received() < seq + 1) {
        if (Date.now() > deadline) assert.fail(`frame ${seq} did not arrive within 5 s`)
        await nextTurn()
      }
    }
    const writes = writeSyscalls() - before
    // A frame under Noise is a list of two buffers or more (length prefix, ciphertext and tag).
    // Untuned, each was its own write (2 per frame here), and each data frame received was answered
    // with a window update (another); tuned, the list is one writev, and the receiver owes too few
    // bytes (under 128 KiB) to send an update.
    assert.ok(writes <= frames * 1.25, `${writes} write syscalls for ${frames} frames sent one per turn`)
    assert.ok(writes >= frames, `${writes} write syscalls for ${frames} frames: fewer than one each means the count is not of this path`)
    for (const transport of [sender, receiver]) {
      assert.ok(transport instanceof Libp2pTransport)
      assert.equal(transport.untunedConnections(), 0)
    }
  })
  it('keeps a link moving past its window: 16 MiB, four windows, arrive in order', async () => {
    const [sender, from, to] = [world.transport(0), world.nodeId(0), world.nodeId(1)]
    await world.waitFor(() => sender.links().some((link) => link.peer === to && link.state === 'connected'), 10_000, 'the link up')
    const recorder = world.recorder(1)
    const start = recorder.received.length
    // Frames of 3 KiB, 1 MiB a step: were window updates never sent, the sender would stop after
    // its 4 MiB window and the fifth step would never arrive.
    const bodyBytes = 3_072
    const framesPerStep = Math.ceil(1_048_576 / bodyBytes)
    const steps = 16
    for (let step = 0; step < steps; step++) {
      for (let index = 0; index < framesPerStep; index++) {
        const seq = 1_000_000 + step * framesPerStep + index
        sender.send(to, { type: 'test.ping', seq, body: new Uint8Array(bodyBytes).fill(seq & 0xff) } satisfies TestPing)
      }
      const expected = start + (step + 1) * framesPerStep
      await world.waitFor(() => recorder.received.length >= expected, 10_000, `step ${step + 1} of ${steps} (${(step + 1)} MiB) delivered`)
    }
    const seqs = recorder.received.slice(start).filter((entry) => entry.from === from).map((entry) => (entry.message as TestPing).seq)
    assert.equal(seqs.length, steps * framesPerStep)
    assert.ok(seqs.every((seq, index) => seq === 1_000_000 + index), 'in order, none lost')
    assert.equal(sender.stats().droppedFrames, 0)
    for (const transport of [world.transport(0), world.transport(1)]) {
      assert.ok(transport instanceof Libp2pTransport)
      assert.equal(transport.untunedConnections(), 0)
    }
  })
})
