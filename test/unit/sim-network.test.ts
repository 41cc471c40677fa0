import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng } from '../../src/core/index.js'
import { SimKernel, SimNetwork, drawLatencyMs, type LatencyDistribution, type LinkConditions } from '../../src/sim/index.js'

interface Numbered { label: string, seq: number }

const NODES = ['a', 'b', 'c', 'd', 'e']

function setup (conditions: Partial<LinkConditions> = {}, seed = 1): { kernel: SimKernel, network: SimNetwork<Numbered>, inbox: Map<string, Array<{ from: string, seq: number }>> } {
  const kernel = new SimKernel()
  const network = new SimNetwork<Numbered>(kernel, createPrng(seed), conditions)
  const inbox = new Map<string, Array<{ from: string, seq: number }>>()
  for (const node of NODES) {
    inbox.set(node, [])
    network.attach(node, (from, payload) => { inbox.get(node)?.push({ from, seq: payload.seq }) })
  }
  return { kernel, network, inbox }
}

/** The directed pairs that can reach each other, as "ab" strings, sorted. */
function reachablePairs (network: SimNetwork<Numbered>): string[] {
  const pairs: string[] = []
  for (const from of NODES) for (const to of NODES) if (from !== to && network.canReach(from, to)) pairs.push(from + to)
  return pairs.sort()
}

function allPairsExcept (blocked: string[]): string[] {
  const pairs: string[] = []
  for (const from of NODES) for (const to of NODES) if (from !== to && !blocked.includes(from + to)) pairs.push(from + to)
  return pairs.sort()
}

describe('SimNetwork partitions', () => {
  it('a symmetric split blocks every pair across groups, both ways, and nothing else', () => {
    const { network } = setup()
    network.partition([['a', 'b'], ['c'], ['d', 'e']])
    const blocked = ['ac', 'ca', 'ad', 'da', 'ae', 'ea', 'bc', 'cb', 'bd', 'db', 'be', 'eb', 'cd', 'dc', 'ce', 'ec']
    assert.deepEqual(reachablePairs(network), allPairsExcept(blocked))
  })

  it('an asymmetric partition blocks sources -> targets only', () => {
    const { network } = setup()
    network.partitionOneWay(['a'], ['b', 'c'])
    assert.deepEqual(reachablePairs(network), allPairsExcept(['ab', 'ac']))
    assert.equal(network.canReach('b', 'a'), true)
  })

  it('majority/minority cuts the minority off and rejects a non-majority', () => {
    const { network } = setup()
    network.partitionMajorityMinority(['a', 'b', 'c'], ['d', 'e'])
    const blocked = ['ad', 'da', 'ae', 'ea', 'bd', 'db', 'be', 'eb', 'cd', 'dc', 'ce', 'ec']
    assert.deepEqual(reachablePairs(network), allPairsExcept(blocked))
    assert.throws(() => network.partitionMajorityMinority(['a', 'b'], ['c', 'd']))
  })

  it('a bridge node reaches both sides, which cannot reach each other', () => {
    const { network } = setup()
    network.partitionBridge(['a', 'b'], ['d', 'e'], 'c')
    const blocked = ['ad', 'da', 'ae', 'ea', 'bd', 'db', 'be', 'eb']
    assert.deepEqual(reachablePairs(network), allPairsExcept(blocked))
    for (const side of ['a', 'b', 'd', 'e']) assert.ok(network.canReach('c', side) && network.canReach(side, 'c'))
  })

  it('acts at send time: a packet already on the wire when a partition starts still arrives', () => {
    const { kernel, network, inbox } = setup({ latency: { kind: 'constant', ms: 10 } })
    assert.equal(network.send('a', 'b', { label: 'x', seq: 1 }), 'sent')
    network.partition([['a'], ['b']])
    assert.equal(network.send('a', 'b', { label: 'x', seq: 2 }), 'blocked')
    assert.equal(network.send('b', 'a', { label: 'x', seq: 3 }), 'blocked')
    kernel.runFor(100)
    assert.deepEqual(inbox.get('b'), [{ from: 'a', seq: 1 }])
    assert.deepEqual(inbox.get('a'), [])
    assert.deepEqual(network.activePartitions().map((partition) => partition.kind), ['symmetric'])
  })

  it('heal(id) removes one partition, heal() all; blocked packets are dropped and counted', () => {
    const { kernel, network, inbox } = setup()
    const first = network.partitionOneWay(['a'], ['b'])
    network.partitionOneWay(['c'], ['d'])
    assert.equal(network.send('a', 'b', { label: 'x', seq: 1 }), 'blocked')
    network.heal(first)
    assert.equal(network.canReach('a', 'b'), true)
    assert.equal(network.canReach('c', 'd'), false)
    network.heal()
    assert.deepEqual(reachablePairs(network), allPairsExcept([]))
    assert.equal(network.send('a', 'b', { label: 'y', seq: 2 }), 'sent')
    kernel.runFor(100)
    assert.deepEqual(inbox.get('b'), [{ from: 'a', seq: 2 }])
    assert.equal(network.stats().blocked, 1)
  })
})

describe('SimNetwork delivery', () => {
  const spread: LatencyDistribution = { kind: 'normal', meanMs: 50, stdDevMs: 40 }

  it('is FIFO per directed link without reordering, even with a wide latency spread', () => {
    const { kernel, network, inbox } = setup({ latency: spread })
    for (let seq = 0; seq < 1_000; seq++) {
      network.send('a', 'b', { label: 'p', seq })
      if (seq % 10 === 0) kernel.runFor(1)
    }
    kernel.runFor(10_000)
    assert.deepEqual(inbox.get('b')?.map((entry) => entry.seq), Array.from({ length: 1_000 }, (_, seq) => seq))
  })

  it('stays FIFO per directed link with duplication on and reordering off: a copy never arrives after a later packet', () => {
    const { kernel, network, inbox } = setup({ latency: spread, duplicateProbability: 0.3 })
    for (let seq = 0; seq < 1_000; seq++) {
      network.send('a', 'b', { label: 'p', seq })
      if (seq % 10 === 0) kernel.runFor(1)
    }
    kernel.runFor(10_000)
    const seqs = inbox.get('b')?.map((entry) => entry.seq) ?? []
    const duplicated = network.stats().duplicated
    assert.ok(duplicated > 200, `duplicates happened (${duplicated})`)
    assert.equal(seqs.length, 1_000 + duplicated)
    const firstOutOfOrder = seqs.findIndex((seq, i) => i > 0 && seq < (seqs[i - 1] as number))
    assert.equal(firstOutOfOrder, -1, `out of order at index ${firstOutOfOrder}: ${seqs.slice(Math.max(0, firstOutOfOrder - 3), firstOutOfOrder + 2).join(',')}`)
  })

  it('lets some packets be overtaken when reordering is on', () => {
    const { kernel, network, inbox } = setup({ latency: { kind: 'constant', ms: 5 }, reorderProbability: 0.2, reorderDelayMsMax: 50 })
    for (let seq = 0; seq < 1_000; seq++) {
      network.send('a', 'b', { label: 'p', seq })
      kernel.runFor(1)
    }
    kernel.runFor(1_000)
    const seqs = inbox.get('b')?.map((entry) => entry.seq) ?? []
    assert.equal(seqs.length, 1_000)
    const inversions = seqs.filter((seq, i) => i > 0 && seq < (seqs[i - 1] as number)).length
    assert.ok(inversions > 50, `expected overtaking, saw ${inversions} inversions`)
    assert.deepEqual([...seqs].sort((x, y) => x - y), Array.from({ length: 1_000 }, (_, seq) => seq))
  })

  it('loses, duplicates and reorders close to the configured rates (fixed seed)', () => {
    const { kernel, network, inbox } = setup({ lossProbability: 0.1, duplicateProbability: 0.05, reorderProbability: 0.2 }, 42)
    const count = 20_000
    for (let seq = 0; seq < count; seq++) network.send('a', 'b', { label: 'p', seq })
    kernel.runFor(10_000)
    const stats = network.stats()
    const lossRate = stats.lost / count
    const duplicateRate = stats.duplicated / (count - stats.lost)
    assert.ok(Math.abs(lossRate - 0.1) < 0.01, `loss rate ${lossRate}`)
    assert.ok(Math.abs(duplicateRate - 0.05) < 0.01, `duplicate rate ${duplicateRate}`)
    const reorderRate = stats.reordered / stats.sent
    assert.equal(stats.sent, count - stats.lost)
    assert.ok(Math.abs(reorderRate - 0.2) < 0.015, `reorder rate ${reorderRate}`)
    assert.equal(inbox.get('b')?.length, count - stats.lost + stats.duplicated)
    assert.equal(stats.delivered, count - stats.lost + stats.duplicated)
  })

  it('uses per-link overrides over the defaults', () => {
    const { kernel, network, inbox } = setup({ latency: { kind: 'constant', ms: 10 } })
    network.setLinkConditions('a', 'b', { lossProbability: 1 })
    assert.equal(network.send('a', 'b', { label: 'p', seq: 1 }), 'lost')
    assert.equal(network.send('b', 'a', { label: 'p', seq: 2 }), 'sent')
    kernel.runFor(9)
    assert.equal(inbox.get('a')?.length, 0, 'not before the latency')
    kernel.runFor(1)
    assert.equal(inbox.get('a')?.length, 1)
    network.setLinkConditions('a', 'b', null)
    assert.equal(network.send('a', 'b', { label: 'p', seq: 3 }), 'sent')
  })

  it('drops deliveries to a crashed incarnation and to nodes nobody listens on', () => {
    const kernel = new SimKernel()
    const network = new SimNetwork<Numbered>(kernel, createPrng(1))
    kernel.addNode('x')
    const got: number[] = []
    network.attach('x', (_from, payload) => { got.push(payload.seq) })
    network.send('y', 'x', { label: 'p', seq: 1 })
    kernel.crash('x')
    kernel.restart('x')
    network.send('y', 'x', { label: 'p', seq: 2 })
    network.send('x', 'nobody', { label: 'p', seq: 3 })
    kernel.runFor(100)
    assert.deepEqual(got, [2])
    assert.equal(network.stats().undeliverable, 1)
  })

  it('draws each latency distribution in its shape', () => {
    const random = createPrng(9)
    const draws = (distribution: LatencyDistribution): number[] => Array.from({ length: 5_000 }, () => drawLatencyMs(distribution, random))
    const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length
    const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] as number
    assert.ok(draws({ kind: 'constant', ms: 7 }).every((value) => value === 7))
    const uniform = draws({ kind: 'uniform', minMs: 10, maxMs: 20 })
    assert.ok(uniform.every((value) => value >= 10 && value <= 20))
    assert.ok(Math.abs(mean(uniform) - 15) < 0.5)
    const normal = draws({ kind: 'normal', meanMs: 5, stdDevMs: 10 })
    assert.ok(normal.every((value) => value >= 0), 'normal is clipped at zero')
    assert.ok(normal.filter((value) => value === 0).length > 1_000, 'a good share clipped')
    const logNormal = draws({ kind: 'logNormal', medianMs: 20, sigma: 0.5 })
    assert.ok(Math.abs(median(logNormal) - 20) <= 1, `log-normal median ${median(logNormal)}`)
    assert.ok(Math.max(...logNormal) > 60, 'a long right tail')
  })
})
