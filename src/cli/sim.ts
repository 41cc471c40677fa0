/** `synod sim`: run the simulated cluster for a seed and print what happened. */
import { randomInt } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import type { Command } from 'commander'
import { SEED_MAX } from '../core/index.js'
import { checkCausal, checkConvergence, checkLinearizable } from '../check/index.js'
import { describeKvSimulation, formatReport, runKvSimulation, runSimulation, simulationDurationMsMax, simulationNodesMax } from '../sim/index.js'
import { CliError } from './errors.js'
import { choiceOption as choice, integerOption as integer } from './options.js'

const workloads = ['none', 'kv'] as const
const consistencyLevels = ['strong', 'causal', 'eventual'] as const

interface SimOptions {
  seed?: number
  nodes: number
  durationMs: number
  json?: boolean
  workload: typeof workloads[number]
  consistency: typeof consistencyLevels[number]
  history?: string
  convergence?: string
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
    .option('--history <file>', 'kv workload: write the history there (JSON Lines), for `synod check linearizable|causal`')
    .option('--convergence <file>', 'kv workload, causal or eventual: write the replicas\' final states and the history there, for `synod check convergence`')
    .option('--json', 'print the whole result as JSON')
    .action((options: SimOptions) => {
      const seed = options.seed ?? randomInt(0, SEED_MAX + 1)
      if (options.workload === 'kv') {
        if (options.convergence !== undefined && options.consistency === 'strong') throw new CliError('CLI_BAD_INPUT', '--convergence is for --consistency causal or eventual')
        const result = runKvSimulation({ seed, nodes: options.nodes, durationMs: options.durationMs, clients: options.clients, keys: options.keys, consistency: options.consistency })
        if (options.history !== undefined) writeFileSync(options.history, result.history.map((operation) => JSON.stringify(operation)).join('\n') + '\n')
        if (options.convergence !== undefined) writeFileSync(options.convergence, JSON.stringify({ replicas: result.replicas, history: result.history }) + '\n')
        const verdicts: Array<{ checker: string, ok: boolean, verdict: string, detail: string[] }> = []
        if (options.consistency === 'strong') {
          const report = checkLinearizable(result.history)
          verdicts.push({ checker: 'linearizable', ok: report.ok, verdict: `${report.verdict} (${report.operations} operations over ${report.keys} keys)`, detail: report.failures.slice(0, 3).map((failure) => `key ${failure.key}: ${failure.reason}`) })
        } else {
          if (options.consistency === 'causal') {
            const report = checkCausal(result.history)
            verdicts.push({ checker: 'causal', ok: report.ok, verdict: `${report.verdict} (${report.operations} operations, ${report.sessions} sessions)`, detail: report.violations.slice(0, 3).map((violation) => violation.reason) })
          }
          const report = checkConvergence({ replicas: result.replicas, history: result.history })
          verdicts.push({ checker: 'convergence', ok: report.ok, verdict: `${report.verdict} (${report.keys} keys, ${report.writes} acknowledged writes)`, detail: report.violations.slice(0, 3).map((violation) => violation.reason) })
        }
        if (options.json === true) {
          print(JSON.stringify({ ...result, history: options.history === undefined ? result.history : options.history, checks: verdicts }, null, 2))
        } else {
          print(describeKvSimulation(result))
          for (const check of verdicts) {
            print(`consistency ${options.consistency}, ${check.checker}: ${check.verdict}${options.history === undefined ? '' : `; history in ${options.history}`}`)
            for (const line of check.detail) print(`  ${line}`)
          }
        }
        if (verdicts.some((check) => !check.ok)) process.exitCode = 1
        return
      }
      const result = runSimulation({ seed, nodes: options.nodes, durationMs: options.durationMs })
      print(options.json === true ? JSON.stringify(result, null, 2) : formatReport(result))
      if (!result.summary.converged) process.exitCode = 3
    })
}
