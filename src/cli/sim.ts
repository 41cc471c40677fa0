/** `synod sim`: run the simulated cluster for a seed and print what happened. */
import type { Command } from 'commander'
import { integerOption as integer } from './options.js'

export function simCommand (program: Command, print: (line: string) => void): void {
  program.command('sim')
    .description('run a simulated cluster under seeded faults and print the seed, the faults and a summary')
    .option('--seed <n>', 'seed (0..4294967295); random if omitted', integer('--seed', 0, 0xffff_ffff))
    .option('--nodes <n>', 'number of nodes', integer('--nodes', 1, 64), 5)
    .option('--duration-ms <ms>', 'virtual duration of the fault phase', integer('--duration-ms', 1_000, 86_400_000), 60_000)
    .action(async (options: { seed?: number, nodes: number, durationMs: number }) => {
      print(`sim not wired yet: seed ${options.seed ?? 0}`)
    })
}
