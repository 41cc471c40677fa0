/**
 * The simulator's guarantees: a seed replays to the byte (same trace hash, same faults, same
 * report), different seeds explore different runs, and the hello cluster converges once the
 * nemesis heals everything, for every seed tried. A failure names its seed.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { CoreError } from '../../src/core/index.js'
import { faultKinds, formatReport, runSimulation, type FaultKind } from '../../src/sim/index.js'

const NODES = 5
const DURATION_MS = 60_000
/** `npm run test:long` (SYNOD_LONG=1) sweeps many more seeds than the default run. */
const SEED_COUNT = process.env.SYNOD_LONG === '1' ? 500 : 20
const SEEDS = Array.from({ length: SEED_COUNT }, (_, index) => 1_000 + index * 7_919)

describe('simulation determinism', () => {
  it('replays a seed exactly: same trace hash, same faults, same report, whatever ran before', () => {
    const first = runSimulation({ seed: 424_242, nodes: NODES, durationMs: DURATION_MS })
    runSimulation({ seed: 7, nodes: 3, durationMs: 5_000 })
    const second = runSimulation({ seed: 424_242, nodes: NODES, durationMs: DURATION_MS })
    assert.equal(second.traceHash, first.traceHash)
    assert.deepEqual(second.faults, first.faults)
    assert.equal(second.events, first.events)
    assert.deepEqual(second, first, 'the whole result, summary included')
    assert.equal(formatReport(second), formatReport(first))
    assert.ok(first.faults.length > 0, 'the nemesis injected something')
  })

  it('replays a seed exactly in another process', () => {
    const options = { seed: 31_337, nodes: NODES, durationMs: 20_000 }
    const here = runSimulation(options)
    const simulator = new URL('../../src/sim/index.js', import.meta.url).href
    const compat = new URL('../../src/compat/promise-with-resolvers.js', import.meta.url).href
    const script = `import { runSimulation } from ${JSON.stringify(simulator)}
const result = runSimulation(${JSON.stringify(options)})
process.stdout.write(JSON.stringify({ traceHash: result.traceHash, events: result.events, faults: result.faults }))`
    const there = JSON.parse(execFileSync(process.execPath, ['--import', compat, '--input-type=module', '--eval', script], { encoding: 'utf8' })) as unknown
    assert.deepEqual(there, { traceHash: here.traceHash, events: here.events, faults: here.faults })
  })

  it('different seeds give different runs: other identities, worlds and fault schedules, not just another first line', () => {
    const results = [1, 2, 3, 4].map((seed) => runSimulation({ seed, nodes: NODES, durationMs: 10_000 }))
    const distinct = (values: unknown[]): number => new Set(values.map((value) => JSON.stringify(value))).size
    assert.equal(distinct(results.map((result) => result.traceHash)), results.length)
    assert.equal(distinct(results.map((result) => result.summary.nodes.map((node) => node.id))), results.length, 'node identities')
    assert.equal(distinct(results.map((result) => result.summary.profile)), results.length, 'fault profiles')
    assert.equal(distinct(results.map((result) => result.faults)), results.length, 'fault schedules')
    assert.equal(distinct(results.map((result) => result.summary.network)), results.length, 'packet fates')
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
