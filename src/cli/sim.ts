/** `synod sim`: run the simulated cluster for a seed and print what happened. */
import { randomInt } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { InvalidArgumentError, type Command } from 'commander'
import { SEED_MAX } from '../core/index.js'
import { checkLinearizable } from '../check/index.js'
import { describeKvSimulation, formatReport, runKvSimulation, runSimulation, simulationDurationMsMax, simulationNodesMax } from '../sim/index.js'
import { integerOption as integer } from './options.js'

const workloads = ['none', 'kv'] as const
const consistencyLevels = ['strong'] as const

function choice<T extends string> (flag: string, allowed: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag} is one of ${allowed.join(', ')}`)
    return value as T
  }
}

interface SimOptions {
  seed?: number
  nodes: number
  durationMs: number
  json?: boolean
  workload: typeof workloads[number]
  consistency: typeof consistencyLevels[number]
  history?: string
  clients: number
  keys: number
}

export function simCommand (program: Command, print: (line: string) => void): void {
  program.command('sim')
    .description('run a simulated cluster under seeded faults and print the seed, the faults and a summary')
    .option('--seed <n>', `seed in 0..${SEED_MAX}; random (and printed) if omitted`, integer('--seed', 0, SEED_MAX))
    .option('--nodes <n>', 'number of nodes', integer('--nodes', 1, simulationNodesMax), 5)
    .option('--duration-ms <ms>', 'virtual length of the fault phase; a liveness phase follows', integer('--duration-ms', 0, simulationDurationMsMax), 60_000)
    .option('--workload <name>', `what the cluster runs: ${workloads.join(', ')} (none: nodes greet each other)`, choice('--workload', workloads), 'none')
    .option('--consistency <level>', `the store level the kv workload uses: ${consistencyLevels.join(', ')}`, choice('--consistency', consistencyLevels), 'strong')
    .option('--clients <n>', 'kv workload: concurrent clients', integer('--clients', 1, 1_000), 10)
    .option('--keys <n>', 'kv workload: distinct keys (few keys, more contention)', integer('--keys', 1, 1_000_000), 5)
    .option('--history <file>', 'kv workload: write the history there, for `synod check linearizable`')
    .option('--json', 'print the whole result as JSON')
    .action((options: SimOptions) => {
      const seed = options.seed ?? randomInt(0, SEED_MAX + 1)
      if (options.workload === 'kv') {
        const result = runKvSimulation({ seed, nodes: options.nodes, durationMs: options.durationMs, clients: options.clients, keys: options.keys })
        if (options.history !== undefined) writeFileSync(options.history, result.history.map((operation) => JSON.stringify(operation)).join('\n') + '\n')
        const report = checkLinearizable(result.history)
        if (options.json === true) {
          print(JSON.stringify({ ...result, history: options.history === undefined ? result.history : options.history, linearizability: report }, null, 2))
        } else {
          print(describeKvSimulation(result))
          print(`consistency ${options.consistency}: ${report.verdict} (${report.operations} operations over ${report.keys} keys)${options.history === undefined ? '' : `; history in ${options.history}`}`)
          for (const failure of report.failures.slice(0, 3)) print(`  key ${failure.key}: ${failure.reason}`)
        }
        if (!report.ok) process.exitCode = 1
        return
      }
      const result = runSimulation({ seed, nodes: options.nodes, durationMs: options.durationMs })
      print(options.json === true ? JSON.stringify(result, null, 2) : formatReport(result))
      if (!result.summary.converged) process.exitCode = 3
    })
}
