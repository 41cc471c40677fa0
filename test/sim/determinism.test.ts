/**
 * The simulator's guarantees: a seed replays to the byte (same trace hash, same faults, same
 * report), different seeds explore different runs, and the hello cluster converges once the
 * nemesis heals everything, for every seed tried. A failure names its seed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CoreError } from '../../src/core/index.js'
import { faultKinds, formatReport, runSimulation, type FaultKind } from '../../src/sim/index.js'

const NODES = 5
const DURATION_MS = 60_000
/** `npm run test:long` (SYNOD_LONG=1) sweeps many more seeds than the default run. */
const SEED_COUNT = process.env.SYNOD_LONG === '1' ? 500 : 20
const SEEDS = Array.from({ length: SEED_COUNT }, (_, index) => 1_000 + index * 7_919)

describe('simulation determinism', () => {
  it('replays a seed exactly: same trace hash, same faults, same report', () => {
    const first = runSimulation({ seed: 424_242, nodes: NODES, durationMs: DURATION_MS })
    const second = runSimulation({ seed: 424_242, nodes: NODES, durationMs: DURATION_MS })
    assert.equal(second.traceHash, first.traceHash)
    assert.deepEqual(second.faults, first.faults)
    assert.equal(second.events, first.events)
    assert.equal(formatReport(second), formatReport(first))
    assert.ok(first.faults.length > 0, 'the nemesis injected something')
  })

  it('different seeds give different runs', () => {
    const hashes = [1, 2, 3, 4].map((seed) => runSimulation({ seed, nodes: NODES, durationMs: 10_000 }).traceHash)
    assert.equal(new Set(hashes).size, hashes.length)
  })

  it('rejects bad options with a typed error', () => {
    assert.throws(() => runSimulation({ seed: -1, nodes: NODES, durationMs: 1 }), (error: unknown) => error instanceof CoreError && error.code === 'CORE_CONFIG_INVALID')
    assert.throws(() => runSimulation({ seed: 1, nodes: 0, durationMs: 1 }), (error: unknown) => error instanceof CoreError)
    assert.throws(() => runSimulation({ seed: 1, nodes: NODES, durationMs: 1.5 }), (error: unknown) => error instanceof CoreError)
  })
})

describe(`hello cluster convergence over ${SEEDS.length} seeds (${NODES} nodes, ${DURATION_MS} ms of faults each)`, () => {
  const kindsSeen = new Set<FaultKind>()

  for (const seed of SEEDS) {
    it(`seed ${seed} converges after the liveness phase`, () => {
      const result = runSimulation({ seed, nodes: NODES, durationMs: DURATION_MS })
      for (const fault of result.faults) kindsSeen.add(fault.kind)
      const report = `\n--- replay with seed ${seed} ---\n${formatReport(result)}`
      assert.ok(result.summary.converged, `seed ${seed} did not converge${report}`)
      assert.deepEqual(result.summary.startFailures, [], `seed ${seed}: a node failed to start${report}`)
      for (const node of result.summary.nodes) {
        assert.equal(node.reachable.length, NODES - 1, `seed ${seed}: n${node.index} reaches ${node.reachable.length}${report}`)
        assert.ok(node.boots >= 1 && node.boots <= node.incarnations, `seed ${seed}: n${node.index} counts ${node.boots} boots over ${node.incarnations} incarnations${report}`)
      }
    })
  }

  it('the seeds between them exercised every fault kind', () => {
    assert.deepEqual(faultKinds.filter((kind) => !kindsSeen.has(kind)), [])
  })
})
