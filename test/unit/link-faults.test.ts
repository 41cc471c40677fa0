/**
 * Injected link faults (src/core/link-faults.ts): `FaultyTransport` over a fake inner transport
 * and hand-advanced timers (partition cuts, latency, loss, cancelling on stop), and
 * `parseLinkFaults` on valid and invalid input.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  CoreError, createPrng, emptyTransportStats, FaultyTransport, LINK_FAULT_LATENCY_MS_MAX, noLinkFaults, parseLinkFaults,
  type Clock, type LinkFaults, type LinkInfo, type LinkState, type Message, type NodeId, type PeerRefusal, type Prng,
  type Timers, type Transport, type TransportHandlers, type TransportStats
} from '../../src/core/index.js'

const SELF = 'node-a'
const B = 'node-b'
const C = 'node-c'
const MEMBERS = [SELF, B, C]

interface Frame extends Message { readonly type: 'test/frame', readonly n: number }
const frame = (n: number): Frame => ({ type: 'test/frame', n })

/** Timers and a clock that move only when the test advances them; equal due times fire in the order set. */
class ManualTimers implements Timers, Clock {
  private nowMs = 0
  private nextId = 1
  private readonly due = new Map<number, { atMs: number, fire: () => void }>()
  readonly cleared: number[] = []

  now (): number { return this.nowMs }

  setTimer (afterMs: number, fire: () => void): number {
    const id = this.nextId++
    this.due.set(id, { atMs: this.nowMs + afterMs, fire })
    return id
  }

  clearTimer (id: number): void {
    this.cleared.push(id)
    this.due.delete(id)
  }

  get pendingCount (): number { return this.due.size }

  /** Moves time forward by `ms`, firing every timer due on the way, in due order. */
  advance (ms: number): void {
    const target = this.nowMs + ms
    for (;;) {
      let next: [number, { atMs: number, fire: () => void }] | undefined
      for (const entry of this.due) if (entry[1].atMs <= target && (next === undefined || entry[1].atMs < next[1].atMs)) next = entry
      if (next === undefined) break
      this.due.delete(next[0])
      this.nowMs = next[1].atMs
      next[1].fire()
    }
    this.nowMs = target
  }
}

/** An inner transport the test drives: records sends, reports the links it is told, and delivers to whoever started it. */
class FakeTransport implements Transport {
  readonly self = SELF
  readonly sent: Array<{ to: NodeId, message: Message }> = []
  handlers: TransportHandlers | null = null
  stopped = false
  readonly refused: PeerRefusal[] = []
  private readonly linkStates = new Map<NodeId, LinkState>()

  constructor (connected: readonly NodeId[] = [B, C]) {
    for (const peer of connected) this.linkStates.set(peer, 'connected')
  }

  async start (handlers: TransportHandlers): Promise<void> { this.handlers = handlers }
  async stop (): Promise<void> { this.stopped = true }
  send<M extends Message> (to: NodeId, message: M): void { this.sent.push({ to, message }) }
  links (): LinkInfo[] {
    return [...this.linkStates].map(([peer, state]) => ({ peer, state, sinceMs: 0, framesSent: 0, framesReceived: 0 }))
  }

  stats (): TransportStats { return { ...emptyTransportStats(), framesSent: this.sent.length } }
  refuse (peer: NodeId, untilMs: number): void { this.refused.push({ peer, untilMs }) }
  refusals (): PeerRefusal[] { return this.refused }

  /** A frame arriving from `from`. */
  deliver (from: NodeId, message: Message): void {
    assert.ok(this.handlers !== null, 'the fake transport was not started')
    this.handlers.onMessage(from, message)
  }

  /** The real link to `peer` changing state. */
  setLink (peer: NodeId, state: LinkState): void {
    assert.ok(this.handlers !== null, 'the fake transport was not started')
    this.linkStates.set(peer, state)
    this.handlers.onLinkChange(peer, state)
  }
}

/** What the services above the faulty transport heard. */
class Recorder implements TransportHandlers {
  readonly messages: Array<{ from: NodeId, n: number }> = []
  readonly linkChanges: Array<[NodeId, LinkState]> = []
  onMessage (from: NodeId, message: Message): void { this.messages.push({ from, n: (message as Frame).n }) }
  onLinkChange (peer: NodeId, state: LinkState): void { this.linkChanges.push([peer, state]) }
}

async function setup (options: { connected?: readonly NodeId[], random?: Prng } = {}): Promise<{ faulty: FaultyTransport, inner: FakeTransport, timers: ManualTimers, up: Recorder }> {
  const inner = new FakeTransport(options.connected)
  const timers = new ManualTimers()
  const faulty = new FaultyTransport({ inner, clock: timers, timers, random: options.random ?? createPrng(1) })
  const up = new Recorder()
  await faulty.start(up)
  return { faulty, inner, timers, up }
}

const faults = (partial: Partial<LinkFaults>): LinkFaults => ({ ...noLinkFaults, ...partial })
const sentNumbers = (inner: FakeTransport, to?: NodeId): number[] => inner.sent.filter((entry) => to === undefined || entry.to === to).map((entry) => (entry.message as Frame).n)
const stateOf = (links: LinkInfo[], peer: NodeId): LinkState | undefined => links.find((link) => link.peer === peer)?.state

describe('FaultyTransport without faults', () => {
  it('passes sends and receives straight through, synchronously, and takes self from the inner transport', async () => {
    const { faulty, inner, timers, up } = await setup()
    assert.equal(faulty.self, SELF)
    assert.deepEqual(faulty.current(), noLinkFaults)
    faulty.send(B, frame(1))
    faulty.send(C, frame(2))
    assert.deepEqual(inner.sent, [{ to: B, message: frame(1) }, { to: C, message: frame(2) }])
    inner.deliver(B, frame(3))
    assert.deepEqual(up.messages, [{ from: B, n: 3 }])
    assert.equal(timers.pendingCount, 0, 'no timer is set when there is no latency')
    assert.deepEqual(faulty.faultStats(), { framesDroppedIsolated: 0, framesDroppedLoss: 0, framesDelayed: 0, deliveryErrors: 0 })
  })

  it('passes link changes up and forwards links, stats, refuse and refusals to the inner transport', async () => {
    const { faulty, inner, up } = await setup()
    inner.setLink(B, 'disconnected')
    inner.setLink(B, 'connected')
    assert.deepEqual(up.linkChanges, [[B, 'disconnected'], [B, 'connected']])
    assert.deepEqual(faulty.links(), inner.links())
    faulty.send(B, frame(1))
    assert.equal(faulty.stats().framesSent, 1)
    faulty.refuse(C, 5_000)
    assert.deepEqual(faulty.refusals(), [{ peer: C, untilMs: 5_000 }])
  })

  it('passes onPeerMisbehaved through only when the services define it', async () => {
    const inner = new FakeTransport()
    const timers = new ManualTimers()
    const faulty = new FaultyTransport({ inner, clock: timers, timers, random: createPrng(1) })
    const misbehaved: NodeId[] = []
    await faulty.start({ onMessage () {}, onLinkChange () {}, onPeerMisbehaved (peer) { misbehaved.push(peer) } })
    inner.handlers?.onPeerMisbehaved?.(B, new CoreError('CORE_DECODE_FAILED', 'garbage'))
    assert.deepEqual(misbehaved, [B])

    const plain = new FakeTransport()
    await new FaultyTransport({ inner: plain, clock: timers, timers, random: createPrng(1) }).start(new Recorder())
    assert.equal(plain.handlers?.onPeerMisbehaved, undefined)
  })
})

describe('FaultyTransport isolation', () => {
  it('drops frames to and from an isolated peer, counts them, and still talks to the others', async () => {
    const { faulty, inner, up } = await setup()
    faulty.set(faults({ isolatedFrom: [B] }))
    faulty.send(B, frame(1))
    faulty.send(C, frame(2))
    faulty.send(B, frame(3))
    assert.deepEqual(inner.sent, [{ to: C, message: frame(2) }])
    inner.deliver(B, frame(4))
    inner.deliver(C, frame(5))
    assert.deepEqual(up.messages, [{ from: C, n: 5 }])
    assert.deepEqual(faulty.faultStats(), { framesDroppedIsolated: 3, framesDroppedLoss: 0, framesDelayed: 0, deliveryErrors: 0 })
  })

  it('reports the isolated peer disconnected in links() while the inner link is up, other links unchanged', async () => {
    const { faulty, inner } = await setup()
    faulty.set(faults({ isolatedFrom: [B] }))
    assert.equal(stateOf(inner.links(), B), 'connected')
    assert.equal(stateOf(faulty.links(), B), 'disconnected')
    assert.equal(stateOf(faulty.links(), C), 'connected')
    faulty.set(noLinkFaults)
    assert.equal(stateOf(faulty.links(), B), 'connected')
  })

  it('tells the services the link went down once when the cut begins and up when it is lifted', async () => {
    const { faulty, up } = await setup()
    faulty.set(faults({ isolatedFrom: [B] }))
    assert.deepEqual(up.linkChanges, [[B, 'disconnected']])
    faulty.set(faults({ isolatedFrom: [B], latencyMs: 5 }))
    assert.deepEqual(up.linkChanges, [[B, 'disconnected']], 'a cut kept in force is not reported again')
    faulty.set(noLinkFaults)
    assert.deepEqual(up.linkChanges, [[B, 'disconnected'], [B, 'connected']])
  })

  it('reports changes for each peer a new fault set cuts or restores', async () => {
    const { faulty, up } = await setup()
    faulty.set(faults({ isolatedFrom: [B] }))
    faulty.set(faults({ isolatedFrom: [C] }))
    assert.deepEqual(up.linkChanges, [[B, 'disconnected'], [C, 'disconnected'], [B, 'connected']])
  })

  it('reports nothing for a cut of a peer whose inner link is down, nor on lifting it while the link stays down', async () => {
    const { faulty, up } = await setup({ connected: [C] })
    faulty.set(faults({ isolatedFrom: [B] }))
    faulty.set(noLinkFaults)
    assert.deepEqual(up.linkChanges, [])
  })

  it('hides inner link changes of an isolated peer, and on lifting reports connected only if the inner link is up', async () => {
    const { faulty, inner, up } = await setup()
    faulty.set(faults({ isolatedFrom: [B] }))
    inner.setLink(B, 'disconnected')
    inner.setLink(B, 'connected')
    inner.setLink(B, 'disconnected')
    inner.setLink(C, 'disconnected')
    assert.deepEqual(up.linkChanges, [[B, 'disconnected'], [C, 'disconnected']])
    faulty.set(noLinkFaults)
    assert.deepEqual(up.linkChanges, [[B, 'disconnected'], [C, 'disconnected']], 'B is still down underneath: no connected')
    inner.setLink(B, 'connected')
    assert.deepEqual(up.linkChanges.at(-1), [B, 'connected'])

    faulty.set(faults({ isolatedFrom: [B] }))
    inner.setLink(B, 'disconnected')
    inner.setLink(B, 'connected')
    up.linkChanges.length = 0
    faulty.set(noLinkFaults)
    assert.deepEqual(up.linkChanges, [[B, 'connected']], 'B came back underneath during the cut')
  })

  it('applies a cut set before start without reporting link changes', async () => {
    const inner = new FakeTransport()
    const timers = new ManualTimers()
    const faulty = new FaultyTransport({ inner, clock: timers, timers, random: createPrng(1) })
    faulty.set(faults({ isolatedFrom: [B] }))
    const up = new Recorder()
    await faulty.start(up)
    faulty.send(B, frame(1))
    inner.deliver(B, frame(2))
    assert.deepEqual(inner.sent, [])
    assert.deepEqual(up.messages, [])
    assert.deepEqual(up.linkChanges, [])
    assert.equal(faulty.faultStats().framesDroppedIsolated, 2)
  })
})

describe('FaultyTransport latency', () => {
  it('holds a send back until latencyMs has passed, then passes it on', async () => {
    const { faulty, inner, timers } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    faulty.send(B, frame(1))
    assert.deepEqual(inner.sent, [])
    timers.advance(99)
    assert.deepEqual(inner.sent, [])
    timers.advance(1)
    assert.deepEqual(inner.sent, [{ to: B, message: frame(1) }])
    assert.equal(faulty.faultStats().framesDelayed, 1)
  })

  it('keeps the order of several frames sent to one peer, interleaved in time', async () => {
    const { faulty, inner, timers } = await setup()
    faulty.set(faults({ latencyMs: 50 }))
    for (let n = 1; n <= 5; n++) {
      faulty.send(B, frame(n))
      faulty.send(C, frame(100 + n))
      timers.advance(10)
    }
    // Sent at t = 0, 10, 20, 30, 40; now t = 50: only the first is due.
    assert.deepEqual(sentNumbers(inner, B), [1])
    timers.advance(40)
    assert.deepEqual(sentNumbers(inner, B), [1, 2, 3, 4, 5])
    assert.deepEqual(sentNumbers(inner, C), [101, 102, 103, 104, 105])
    assert.equal(faulty.faultStats().framesDelayed, 10)
  })

  it('delays received frames likewise, in order', async () => {
    const { faulty, inner, timers, up } = await setup()
    faulty.set(faults({ latencyMs: 30 }))
    inner.deliver(B, frame(1))
    inner.deliver(B, frame(2))
    timers.advance(10)
    inner.deliver(B, frame(3))
    timers.advance(19)
    assert.equal(up.messages.length, 0)
    timers.advance(1)
    assert.deepEqual(up.messages, [{ from: B, n: 1 }, { from: B, n: 2 }])
    timers.advance(10)
    assert.deepEqual(up.messages.map((m) => m.n), [1, 2, 3])
  })

  it('drops a received frame still in flight when its sender is isolated before delivery', async () => {
    const { faulty, inner, timers, up } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    inner.deliver(B, frame(1))
    inner.deliver(C, frame(2))
    timers.advance(50)
    faulty.set(faults({ latencyMs: 100, isolatedFrom: [B] }))
    timers.advance(50)
    assert.deepEqual(up.messages, [{ from: C, n: 2 }])
    assert.equal(faulty.faultStats().framesDroppedIsolated, 1)
  })

  it('delivers a frame in flight when a cut begins and is lifted again before it lands', async () => {
    const { faulty, inner, timers, up } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    inner.deliver(B, frame(1))
    faulty.set(faults({ latencyMs: 100, isolatedFrom: [B] }))
    faulty.set(faults({ latencyMs: 100 }))
    timers.advance(100)
    assert.deepEqual(up.messages, [{ from: B, n: 1 }])
  })

  it('stop() cancels every delayed frame and stops the inner transport', async () => {
    const { faulty, inner, timers, up } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    faulty.send(B, frame(1))
    faulty.send(C, frame(2))
    inner.deliver(B, frame(3))
    assert.equal(timers.pendingCount, 3)
    await faulty.stop()
    assert.equal(inner.stopped, true)
    assert.equal(timers.pendingCount, 0)
    assert.equal(timers.cleared.length, 3)
    timers.advance(1_000)
    assert.deepEqual(inner.sent, [])
    assert.deepEqual(up.messages, [])
  })

  it('stop() does not clear timers that already fired', async () => {
    const { faulty, timers } = await setup()
    faulty.set(faults({ latencyMs: 10 }))
    faulty.send(B, frame(1))
    timers.advance(10)
    faulty.send(B, frame(2))
    await faulty.stop()
    assert.equal(timers.cleared.length, 1, 'only the frame still pending is cancelled')
  })

  // A frame queued before a partition must not cross it (this once slipped through on the send side).
  it('drops a sent frame still in flight when its destination is isolated before it is due', async () => {
    const { faulty, inner, timers } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    faulty.send(B, frame(1))
    faulty.set(faults({ latencyMs: 100, isolatedFrom: [B] }))
    timers.advance(100)
    assert.deepEqual(inner.sent, [])
  })

  // Lowering the latency must not let a later frame overtake an earlier one: the transport
  // promises in-order delivery on a link (this once broke).
  it('keeps the order of frames to one peer when the latency is lowered while frames are in flight', async () => {
    const { faulty, inner, timers } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    faulty.send(B, frame(1))
    faulty.set(faults({ latencyMs: 0 }))
    faulty.send(B, frame(2))
    timers.advance(100)
    assert.deepEqual(sentNumbers(inner, B), [1, 2])
  })

  it('holds a frame back behind an earlier one only on its own lane (peer and direction), and not once the lane drains', async () => {
    const { faulty, inner, timers, up } = await setup()
    faulty.set(faults({ latencyMs: 100 }))
    faulty.send(B, frame(1))
    timers.advance(10)
    faulty.set(faults({ latencyMs: 50 }))
    faulty.send(B, frame(2)) // would be due at 60, before frame 1: held until 100
    faulty.send(C, frame(3)) // another peer: due at 60
    inner.deliver(B, frame(4)) // the other direction: due at 60
    timers.advance(50)
    assert.deepEqual(sentNumbers(inner), [3])
    assert.deepEqual(up.messages, [{ from: B, n: 4 }])
    timers.advance(40)
    assert.deepEqual(sentNumbers(inner), [3, 1, 2])
    faulty.set(faults({ latencyMs: 0 }))
    faulty.send(B, frame(5))
    assert.deepEqual(sentNumbers(inner), [3, 1, 2, 5], 'a drained lane passes frames straight through again')
    assert.equal(faulty.faultStats().framesDelayed, 4)
    assert.equal(timers.pendingCount, 0)
  })
})

describe('FaultyTransport loss', () => {
  it('drops every frame both ways at lossPercent 100, counted as loss', async () => {
    const { faulty, inner, up } = await setup()
    faulty.set(faults({ lossPercent: 100 }))
    for (let n = 0; n < 50; n++) faulty.send(B, frame(n))
    for (let n = 0; n < 50; n++) inner.deliver(C, frame(n))
    assert.deepEqual(inner.sent, [])
    assert.deepEqual(up.messages, [])
    assert.deepEqual(faulty.faultStats(), { framesDroppedIsolated: 0, framesDroppedLoss: 100, framesDelayed: 0, deliveryErrors: 0 })
  })

  it('drops nothing at lossPercent 0', async () => {
    const { faulty, inner, up } = await setup()
    faulty.set(faults({ lossPercent: 0 }))
    for (let n = 0; n < 200; n++) faulty.send(B, frame(n))
    for (let n = 0; n < 200; n++) inner.deliver(C, frame(n))
    assert.equal(inner.sent.length, 200)
    assert.equal(up.messages.length, 200)
    assert.equal(faulty.faultStats().framesDroppedLoss, 0)
  })

  it('drops about lossPercent of the frames sent and of the frames received', async () => {
    const { faulty, inner, up } = await setup({ random: createPrng(20_240_601) })
    faulty.set(faults({ lossPercent: 30 }))
    const frames = 10_000
    for (let n = 0; n < frames; n++) faulty.send(B, frame(n))
    const droppedSent = frames - inner.sent.length
    assert.equal(faulty.faultStats().framesDroppedLoss, droppedSent)
    assert.ok(droppedSent >= 2_700 && droppedSent <= 3_300, `dropped ${droppedSent} of ${frames} sent`)
    // The frames that got through kept their order.
    const passed = sentNumbers(inner)
    assert.ok(passed.every((n, i) => i === 0 || n > (passed[i - 1] as number)))

    for (let n = 0; n < frames; n++) inner.deliver(C, frame(n))
    const droppedReceived = frames - up.messages.length
    assert.ok(droppedReceived >= 2_700 && droppedReceived <= 3_300, `dropped ${droppedReceived} of ${frames} received`)
    assert.equal(faulty.faultStats().framesDroppedLoss, droppedSent + droppedReceived)
  })

  it('is deterministic for a given seed', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const { faulty, inner } = await setup({ random: createPrng(seed) })
      faulty.set(faults({ lossPercent: 50 }))
      for (let n = 0; n < 100; n++) faulty.send(B, frame(n))
      return sentNumbers(inner)
    }
    assert.deepEqual(await run(7), await run(7))
    assert.notDeepEqual(await run(7), await run(8))
  })

  it('checks the cut before the loss: a frame to an isolated peer counts as isolated, not lost', async () => {
    const { faulty } = await setup()
    faulty.set(faults({ isolatedFrom: [B], lossPercent: 100 }))
    faulty.send(B, frame(1))
    faulty.send(C, frame(2))
    assert.deepEqual(faulty.faultStats(), { framesDroppedIsolated: 1, framesDroppedLoss: 1, framesDelayed: 0, deliveryErrors: 0 })
  })

  it('returns a copy of its counters', async () => {
    const { faulty } = await setup()
    const stats = faulty.faultStats()
    stats.framesDroppedLoss = 99
    assert.equal(faulty.faultStats().framesDroppedLoss, 0)
  })
})

describe('parseLinkFaults', () => {
  const parse = (input: unknown): LinkFaults => parseLinkFaults(input, MEMBERS, SELF)
  const rejects = (input: unknown, field: string): void => {
    assert.throws(() => parse(input), (error: unknown) => {
      assert.ok(error instanceof CoreError, `expected a CoreError, got ${String(error)}`)
      assert.equal(error.code, 'CORE_BAD_LINK_FAULTS')
      assert.deepEqual(error.details, { field })
      assert.match(error.message, new RegExp(field.replace(/[()]/g, '\\$&')))
      return true
    }, `${JSON.stringify(input)} should be refused on ${field}`)
  }

  it('fills in the defaults for an empty body', () => {
    assert.deepEqual(parse({}), { isolatedFrom: [], latencyMs: 0, lossPercent: 0 })
    assert.deepEqual(parse({}), noLinkFaults)
  })

  it('accepts a full description, deduplicating and sorting isolatedFrom', () => {
    assert.deepEqual(parse({ isolatedFrom: [C, B, C], latencyMs: 250, lossPercent: 12.5 }), { isolatedFrom: [B, C], latencyMs: 250, lossPercent: 12.5 })
  })

  it('accepts the bounds', () => {
    assert.equal(parse({ latencyMs: LINK_FAULT_LATENCY_MS_MAX }).latencyMs, LINK_FAULT_LATENCY_MS_MAX)
    assert.equal(parse({ lossPercent: 100 }).lossPercent, 100)
    assert.equal(parse({ lossPercent: 0, latencyMs: 0 }).latencyMs, 0)
    assert.equal(LINK_FAULT_LATENCY_MS_MAX, 10_000)
  })

  it('refuses a body that is not an object', () => {
    for (const body of [null, undefined, 'faults', 3, true, [], [{ latencyMs: 1 }]]) rejects(body, '(body)')
  })

  it('refuses unknown fields', () => {
    rejects({ latency: 100 }, 'latency')
    rejects({ latencyMs: 100, isolated: [B] }, 'isolated')
  })

  it('refuses isolatedFrom naming self, a non-member or a non-string, or not being a list', () => {
    rejects({ isolatedFrom: [SELF] }, 'isolatedFrom')
    rejects({ isolatedFrom: [B, 'node-z'] }, 'isolatedFrom')
    rejects({ isolatedFrom: [B, 7] }, 'isolatedFrom')
    rejects({ isolatedFrom: [[B]] }, 'isolatedFrom')
    rejects({ isolatedFrom: B }, 'isolatedFrom')
    rejects({ isolatedFrom: { [B]: true } }, 'isolatedFrom')
  })

  it('refuses a latencyMs that is negative, fractional, over the max or not a number', () => {
    rejects({ latencyMs: -1 }, 'latencyMs')
    rejects({ latencyMs: 1.5 }, 'latencyMs')
    rejects({ latencyMs: LINK_FAULT_LATENCY_MS_MAX + 1 }, 'latencyMs')
    rejects({ latencyMs: Number.NaN }, 'latencyMs')
    rejects({ latencyMs: Infinity }, 'latencyMs')
    rejects({ latencyMs: '100' }, 'latencyMs')
  })

  it('refuses a lossPercent over 100, negative, NaN or not a number', () => {
    rejects({ lossPercent: 100.5 }, 'lossPercent')
    rejects({ lossPercent: -0.1 }, 'lossPercent')
    rejects({ lossPercent: Number.NaN }, 'lossPercent')
    rejects({ lossPercent: Infinity }, 'lossPercent')
    rejects({ lossPercent: '5' }, 'lossPercent')
  })
})
