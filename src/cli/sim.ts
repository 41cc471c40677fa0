/** `synod sim`: run the simulated cluster for a seed and print what happened. */
import { randomInt } from 'node:crypto'
import type { Command } from 'commander'
import { SEED_MAX } from '../core/index.js'
import { formatReport, runSimulation, simulationDurationMsMax, simulationNodesMax } from '../sim/index.js'
import { integerOption as integer } from './options.js'

export function simCommand (program: Command, print: (line: string) => void): void {
  program.command('sim')
    .description('run a simulated cluster under seeded faults and print the seed, the faults and a summary')
    .option('--seed <n>', `seed in 0..${SEED_MAX}; random (and printed) if omitted`, integer('--seed', 0, SEED_MAX))
    .option('--nodes <n>', 'number of nodes', integer('--nodes', 1, simulationNodesMax), 5)
    .option('--duration-ms <ms>', 'virtual length of the fault phase; a liveness phase follows', integer('--duration-ms', 0, simulationDurationMsMax), 60_000)
    .option('--json', 'print the whole result as JSON')
    .action((options: { seed?: number, nodes: number, durationMs: number, json?: boolean }) => {
      const seed = options.seed ?? randomInt(0, SEED_MAX + 1)
      const result = runSimulation({ seed, nodes: options.nodes, durationMs: options.durationMs })
      print(options.json === true ? JSON.stringify(result, null, 2) : formatReport(result))
      if (!result.summary.converged) process.exitCode = 3
    })
}
