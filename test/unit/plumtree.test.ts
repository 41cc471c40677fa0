/** Plumtree's rules, one event at a time: prune on duplicate, graft on a missing message, repair by digest. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PlumtreeBroadcast, defaultBroadcastLimits, type BroadcastPort, type NetGossip } from '../../src/net/index.js'
import { manualClock } from '../support/manual-clock.js'

interface Sent { kind: string, to: string, detail: string }

function harness (mode: 'plumtree' | 'flood' = 'plumtree'): { tree: PlumtreeBroadcast, sent: Sent[], delivered: string[], advance: (ms: number) => void } {
  const clock = manualClock()
  const sent: Sent[] = []
  const delivered: string[] = []
  const port: BroadcastPort = {
    now: clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    pick: (peers) => peers[0] as string,
    sendGossip: (to, gossip) => { sent.push({ kind: gossip.repair ? 'repair' : 'gossip', to, detail: gossip.id }) },
    sendIHave: (to, message) => { sent.push({ kind: 'ihave', to, detail: message.ids.join(',') }) },
    sendGraft: (to, message) => { sent.push({ kind: 'graft', to, detail: message.ids.join(',') }) },
    sendPrune: (to) => { sent.push({ kind: 'prune', to, detail: '' }) },
    sendDigest: (to, message) => { sent.push({ kind: 'digest', to, detail: message.ids.join(',') }) },
    deliver: (gossip) => { delivered.push(gossip.id) }
  }
  const tree = new PlumtreeBroadcast('self', port, { ...defaultBroadcastLimits, repairIntervalMs: 1_000_000 }, mode)
  return { tree, sent, delivered, advance: clock.advance }
}

const gossip = (id: string, origin = 'x'): NetGossip => ({ type: 'net.gossip', id, origin, topic: 't', hops: 0, payload: new Uint8Array(), repair: false })

describe('Plumtree', () => {
  it('delivers once, pushes to eager peers and announces to lazy ones', () => {
    const { tree, sent, delivered, advance } = harness()
    for (const peer of ['p', 'q', 'r']) tree.linkUp(peer)
    tree.onPrune('r')
    tree.onGossip('p', gossip('m1'))
    tree.onGossip('q', gossip('m1'))
    assert.deepEqual(delivered, ['m1'])
    assert.deepEqual(sent.filter((s) => s.kind === 'gossip').map((s) => s.to), ['q'])
    assert.deepEqual(sent.filter((s) => s.kind === 'prune').map((s) => s.to), ['q'], 'the duplicate sender is pruned')
    assert.equal(tree.mode('q'), 'lazy')
    advance(defaultBroadcastLimits.lazyPushIntervalMs)
    assert.deepEqual(sent.filter((s) => s.kind === 'ihave').map((s) => [s.to, s.detail]), [['r', 'm1']])
    assert.equal(tree.stats.duplicates, 1)
  })

  it('grafts the announcer when an announced message does not arrive, then the next announcer', () => {
    const { tree, sent, delivered, advance } = harness()
    tree.linkUp('p'); tree.linkUp('q')
    tree.onPrune('p'); tree.onPrune('q')
    tree.onIHave('p', { type: 'net.ihave', ids: ['m2'] })
    tree.onIHave('q', { type: 'net.ihave', ids: ['m2'] })
    advance(defaultBroadcastLimits.graftTimeoutMs - 1)
    assert.equal(sent.filter((s) => s.kind === 'graft').length, 0)
    advance(1)
    assert.deepEqual(sent.filter((s) => s.kind === 'graft').map((s) => s.to), ['p'])
    assert.equal(tree.mode('p'), 'eager')
    advance(defaultBroadcastLimits.graftRetryMs)
    assert.deepEqual(sent.filter((s) => s.kind === 'graft').map((s) => s.to), ['p', 'q'])
    tree.onGossip('q', { ...gossip('m2'), repair: true })
    advance(10_000)
    assert.deepEqual(delivered, ['m2'])
    assert.equal(sent.filter((s) => s.kind === 'graft').length, 2, 'no graft once the message is here')
  })

  it('answers a graft from its cache and makes the grafter eager', () => {
    const { tree, sent } = harness()
    tree.linkUp('p'); tree.linkUp('q')
    tree.onPrune('q')
    tree.originate(gossip('m3', 'self'))
    tree.onGraft('q', { type: 'net.graft', ids: ['m3', 'unknown'] })
    assert.deepEqual(sent.filter((s) => s.kind === 'repair').map((s) => [s.to, s.detail]), [['q', 'm3']])
    assert.equal(tree.mode('q'), 'eager')
  })

  it('repairs by digest: sends what the peer lacks and grafts what it lacks itself', () => {
    const { tree, sent, advance } = harness()
    tree.linkUp('p')
    tree.onGossip('p', gossip('a'))
    tree.onGossip('p', gossip('b'))
    tree.onDigest('p', { type: 'net.digest', ids: ['a'], complete: true })
    assert.deepEqual(sent.filter((s) => s.kind === 'repair'), [], 'a message still travelling down the tree is left to the tree')
    advance(defaultBroadcastLimits.repairMinAgeMs)
    tree.onDigest('p', { type: 'net.digest', ids: ['a', 'c'], complete: true })
    assert.deepEqual(sent.filter((s) => s.kind === 'repair').map((s) => s.detail), ['b'])
    assert.deepEqual(sent.filter((s) => s.kind === 'graft').map((s) => s.detail), ['c'])
    sent.length = 0
    tree.onDigest('p', { type: 'net.digest', ids: ['a'], complete: false })
    assert.deepEqual(sent.filter((s) => s.kind === 'repair'), [], 'an incomplete digest cannot tell what the peer lacks')
  })

  it('a repaired copy never prunes, and a repair duplicate is counted apart', () => {
    const { tree, sent } = harness()
    tree.linkUp('p')
    tree.onGossip('p', gossip('d'))
    tree.onGossip('p', { ...gossip('d'), repair: true })
    assert.equal(sent.filter((s) => s.kind === 'prune').length, 0)
    assert.equal(tree.stats.repairDuplicates, 1)
    assert.equal(tree.stats.duplicates, 0)
  })

  it('floods without pruning in flood mode', () => {
    const { tree, sent } = harness('flood')
    tree.linkUp('p'); tree.linkUp('q')
    tree.onGossip('p', gossip('e'))
    tree.onGossip('q', gossip('e'))
    assert.equal(sent.filter((s) => s.kind === 'prune').length, 0)
    assert.equal(tree.mode('q'), 'eager')
    assert.equal(tree.stats.duplicates, 1)
  })
})
