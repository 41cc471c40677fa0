/**
 * `npm run bench [-- NAME...]`: runs the named benchmarks (all by default), prints a table for
 * each and writes its figures to bench/results/NAME.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { broadcastBenchmark } from './broadcast.js'
import { consensusBenchmark } from './consensus.js'
import { gatewayBenchmark } from './gateway.js'
import { kvBenchmark } from './kv.js'
import { kvStrongBenchmark } from './kv-strong.js'
import { ledgerBenchmark } from './ledger.js'
import { membershipBenchmark } from './membership.js'
import { powBenchmark } from './pow.js'
import { ringBenchmark } from './ring.js'
import { storeCodecBenchmark } from './store-codec.js'
import { transportBenchmark } from './transport.js'
import { formatTable, type BenchResult } from './util.js'

const benchmarks: Record<string, (progress: (line: string) => void) => Promise<BenchResult>> = {
  transport: transportBenchmark,
  broadcast: broadcastBenchmark,
  membership: membershipBenchmark,
  pow: powBenchmark,
  ledger: ledgerBenchmark,
  consensus: consensusBenchmark,
  'kv-strong': kvStrongBenchmark,
  kv: kvBenchmark,
  ring: ringBenchmark,
  'store-codec': storeCodecBenchmark,
  gateway: gatewayBenchmark
}

const requested = process.argv.slice(2)
const names = requested.length > 0 ? requested : Object.keys(benchmarks)
const unknown = names.filter((name) => !(name in benchmarks))
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benchmarks).join(', ')}\n`)
  process.exit(2)
}
const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url))
mkdirSync(resultsDir, { recursive: true })
for (const name of names) {
  const run = benchmarks[name]!
  const result = await run((line) => { process.stderr.write(`  ${line}\n`) })
  process.stdout.write(`\n${result.name}: ${result.title}\n${formatTable(result.header, result.rows)}\n${result.verdict}\n`)
  const file = `${resultsDir}${name}.json`
  writeFileSync(file, JSON.stringify({ ...result, node: process.version, at: new Date().toISOString() }, null, 2) + '\n')
  process.stdout.write(`wrote ${file}\n`)
}
process.exit(0)
