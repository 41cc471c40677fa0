/**
 * The store's per-peer outbox (`src/store/outbox.ts`): a turn's messages to one peer go as one
 * batch at the end of the turn; a message sent with a linger waits up to that long for company,
 * and leaves sooner with the next batch the turn's urgent messages end.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Env, Message, NodeId, TimerId } from '../../src/core/index.js'
import { PeerOutbox } from '../../src/store/outbox.js'
import { manualClock } from '../support/manual-clock.js'

interface Note extends Message { readonly type: 'note', readonly n: number }
interface Sent { to: NodeId, at: number, notes: number[] }

/** A clock, timers and a wire: enough of an Env for the outbox. */
function harness (): { outbox: PeerOutbox<Note>, sent: Sent[], advance: (ms: number) => void, local: number[] } {
  const clock = manualClock()
  const sent: Sent[] = []
  const local: number[] = []
  const record = (to: NodeId, message: Message): void => {
    const batch = message as { type: string, messages?: Note[] }
    sent.push({ to, at: clock.now(), notes: batch.type === 'batch' ? (batch.messages ?? []).map((note) => note.n) : [(message as Note).n] })
  }
  const env = {
    self: 'me',
    members: ['me', 'p1', 'p2'],
    now: clock.now,
    send: record,
    setTimer: (afterMs: number, fire: () => void): TimerId => clock.setTimer(afterMs, fire) as unknown as TimerId,
    clearTimer: (id: TimerId) => { clock.clearTimer(id as unknown as number) },
    links: () => [{ peer: 'p1', state: 'connected' }, { peer: 'p2', state: 'connected' }]
  } as unknown as Env
  const outbox = new PeerOutbox<Note>({
    net: { send: record, onRouted: () => {} },
    batchType: 'batch',
    batchMessagesMax: 100,
    batchBytesMax: 10_000,
    approximateBytes: () => 10,
    deliverLocal: (note) => { local.push(note.n) }
  })
  outbox.start(env)
  return { outbox, sent, advance: clock.advance, local }
}

const note = (n: number): Note => ({ type: 'note', n })

describe('PeerOutbox', () => {
  it('sends a turn\'s messages to a peer as one batch at the end of the turn', () => {
    const { outbox, sent, advance, local } = harness()
    outbox.send('p1', note(1))
    outbox.send('p2', note(2))
    outbox.send('p1', note(3))
    outbox.send('me', note(4))
    assert.deepEqual(sent, [], 'nothing leaves during the turn')
    advance(0)
    assert.deepEqual(sent, [{ to: 'p1', at: 0, notes: [1, 3] }, { to: 'p2', at: 0, notes: [2] }])
    assert.deepEqual(local, [4])
  })

  it('holds lingering messages for up to their linger, gathering later ones into one batch', () => {
    const { outbox, sent, advance } = harness()
    outbox.send('p1', note(1), 5)
    advance(3)
    assert.deepEqual(sent, [], 'still lingering at 3 ms')
    outbox.send('p1', note(2), 5)
    outbox.send('p2', note(3), 5)
    advance(2)
    assert.deepEqual(sent, [{ to: 'p1', at: 5, notes: [1, 2] }, { to: 'p2', at: 5, notes: [3] }], 'all go at 5 ms, the first one\'s deadline')
    outbox.send('p1', note(4), 5)
    advance(4)
    assert.equal(sent.length, 2, 'a new linger period starts with the next message')
    advance(1)
    assert.deepEqual(sent[2], { to: 'p1', at: 10, notes: [4] })
  })

  it('lets lingering messages leave early with the end of a turn that has an urgent one', () => {
    const { outbox, sent, advance } = harness()
    outbox.send('p1', note(1), 50)
    outbox.send('p2', note(2), 50)
    advance(10)
    outbox.send('p1', note(3))
    advance(0)
    assert.deepEqual(sent, [{ to: 'p1', at: 10, notes: [1, 3] }, { to: 'p2', at: 10, notes: [2] }])
    advance(100)
    assert.equal(sent.length, 2, 'the linger timer finds nothing left to send')
  })

  it('sends a full batch at once, lingering or not', () => {
    const { outbox, sent } = harness()
    for (let n = 0; n < 100; n++) outbox.send('p1', note(n), 1_000)
    assert.equal(sent.length, 1)
    assert.equal(sent[0]?.notes.length, 100)
  })
})
