/** Link-state routing: the two-way check, shortest paths by hops or RTT, loop-free next hops. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { RoutingTable } from '../../src/net/index.js'

const links = (...peers: Array<string | [string, number]>): Array<{ peer: string, rttMs: number }> =>
  peers.map((peer) => (typeof peer === 'string' ? { peer, rttMs: 1 } : { peer: peer[0], rttMs: peer[1] }))

/** A ring a-b-c-d-e-a seen from a. */
function ring (metric: 'hops' | 'rtt' = 'hops'): RoutingTable {
  const table = new RoutingTable('a', metric)
  table.setOwnLinks(new Map([['b', 1], ['e', 1]]))
  table.accept('b', 1, links('a', 'c'), 0)
  table.accept('c', 1, links('b', 'd'), 0)
  table.accept('d', 1, links('c', 'e'), 0)
  table.accept('e', 1, links('d', 'a'), 0)
  return table
}

describe('routing table', () => {
  it('computes hop-count shortest paths and next hops', () => {
    const table = ring()
    assert.deepEqual(table.allRoutes().map((route) => [route.destination, route.nextHop, route.hops]), [['b', 'b', 1], ['c', 'b', 2], ['d', 'e', 2], ['e', 'e', 1]])
  })

  it('ignores a link only one end announces (a crashed node keeps its stale announcement)', () => {
    const table = ring()
    // c crashes: b and d stop listing it, c's old announcement still lists them.
    table.accept('b', 2, links('a'), 1)
    table.accept('d', 2, links('e'), 1)
    assert.equal(table.route('c'), undefined)
    assert.equal(table.route('d')?.nextHop, 'e')
  })

  it('keeps only the newest announcement per origin', () => {
    const table = ring()
    assert.equal(table.accept('c', 1, links('b'), 5), false, 'same sequence is not newer')
    assert.equal(table.accept('c', 0, links('b'), 5), false, 'older is ignored')
    assert.equal(table.accept('c', 3, links('b'), 5), true)
    assert.equal(table.route('d')?.hops, 2)
    assert.equal(table.route('c')?.hops, 2)
  })

  it('routes around a lost own link', () => {
    const table = ring()
    table.setOwnLinks(new Map([['e', 1]]))
    assert.equal(table.route('b')?.nextHop, 'e')
    assert.equal(table.route('b')?.hops, 4, 'b only via the other side; b still lists a but a no longer lists b')
  })

  it('never picks a next hop the message already visited', () => {
    const table = ring()
    assert.equal(table.nextHopAvoiding('c', new Set(['a'])), 'b')
    assert.equal(table.nextHopAvoiding('c', new Set(['a', 'b'])), 'e', 'goes the long way when b was visited')
    assert.equal(table.nextHopAvoiding('c', new Set(['a', 'b', 'e'])), undefined)
  })

  it('weights by RTT when asked', () => {
    // a-b is slow (100 ms), a-c-d-b is fast (5 + 5 + 1 ms).
    const diamond = (metric: 'hops' | 'rtt'): RoutingTable => {
      const table = new RoutingTable('a', metric)
      table.setOwnLinks(new Map([['b', 100], ['c', 5]]))
      table.accept('b', 1, links(['a', 100], ['d', 1]), 0)
      table.accept('c', 1, links(['a', 5], ['d', 5]), 0)
      table.accept('d', 1, links(['b', 1], ['c', 5]), 0)
      return table
    }
    const byRtt = diamond('rtt')
    assert.equal(byRtt.route('d')?.nextHop, 'c')
    assert.equal(byRtt.route('d')?.cost, 10)
    assert.equal(byRtt.route('b')?.nextHop, 'c', 'three cheap hops beat one expensive hop')
    assert.equal(diamond('hops').route('b')?.nextHop, 'b')
  })
  it('recomputes routes only when an input that matters to the metric changed', () => {
    const table = ring()
    const before = table.route('c')
    table.setOwnLinks(new Map([['b', 7], ['e', 9]]))
    table.accept('c', 2, links('b', 'd'), 1)
    assert.equal(table.route('c'), before, 'a fresh RTT sample and a refresh repeating the same links keep the table under hop routing')
    table.accept('c', 3, links('b'), 2)
    assert.notEqual(table.route('c'), before, 'a changed announcement recomputes')
    assert.equal(table.route('d')?.nextHop, 'e')

    const weighted = new RoutingTable('a', 'rtt')
    weighted.setOwnLinks(new Map([['b', 100], ['c', 5]]))
    weighted.accept('b', 1, links(['a', 100], ['c', 1]), 0)
    weighted.accept('c', 1, links(['a', 5], ['b', 1]), 0)
    assert.equal(weighted.route('b')?.nextHop, 'c')
    weighted.setOwnLinks(new Map([['b', 2], ['c', 5]]))
    assert.equal(weighted.route('b')?.nextHop, 'b', 'under RTT routing a new RTT sample re-routes')
  })
})
