/** The chain-safety checker finds conflicts, reversals and regressions, and ignores named Byzantine nodes. */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { checkChainSafety, type FinalizedEvent } from '../../src/check/index.js'

it('accepts agreeing histories in any interleaving', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 30 }), fc.infiniteStream(fc.nat(5)), (nodes, heights, picks) => {
    // Every node finalizes the same chain, at its own pace; the interleaving is arbitrary.
    const progress = new Array<number>(nodes).fill(0)
    const events: FinalizedEvent[] = []
    const iterator = picks[Symbol.iterator]()
    while (progress.some((height) => height < heights)) {
      const node = (iterator.next().value as number) % nodes
      if ((progress[node] as number) >= heights) continue
      progress[node]++
      events.push({ node: `n${node}`, height: progress[node] as number, hash: `h${progress[node]}` })
    }
    const report = checkChainSafety(events)
    assert.equal(report.ok, true)
    assert.equal(report.heights, heights)
    assert.equal(report.commonFinalizedHeight, heights)
  }), { numRuns: 100 })
})

it('reports two honest nodes finalizing different blocks at one height, unless one is named Byzantine', () => {
  const events: FinalizedEvent[] = [
    { node: 'a', height: 1, hash: 'x' }, { node: 'b', height: 1, hash: 'x' },
    { node: 'a', height: 2, hash: 'y' }, { node: 'b', height: 2, hash: 'z' }
  ]
  const report = checkChainSafety(events)
  assert.equal(report.ok, false)
  assert.deepEqual(report.violations, [{ kind: 'conflict', height: 2, blocks: [{ hash: 'y', nodes: ['a'] }, { hash: 'z', nodes: ['b'] }] }])
  assert.equal(checkChainSafety(events, new Set(['a'])).ok, true)
})

it('reports a node that goes back on a final block or on a final height', () => {
  const report = checkChainSafety([
    { node: 'a', height: 1, hash: 'x' }, { node: 'a', height: 2, hash: 'y' }, { node: 'a', height: 1, hash: 'w' }
  ])
  assert.deepEqual(report.violations.map((violation) => violation.kind).sort(), ['conflict', 'regressed', 'reverted'])
})
