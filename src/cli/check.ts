/**
 * `synod check ...`: run a history checker over a recorded history file. `linearizable FILE`
 * checks a key-value store history (docs/store-history.md). Each checker is a subcommand of
 * `check`, so causal order and convergence join here as `check causal` and `check convergence`.
 *
 * Exit codes: 0 the history passes, 1 it does not, 2 the checker could not decide (a search limit)
 * or the file is unusable.
 */
import { readFileSync, statSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Command } from 'commander'
import { errorMessage } from '../core/index.js'
import { CheckError, checkLinearizable, defaultLinearizabilityLimits, describeOperation, parseHistory, type LinearizabilityFailure, type LinearizabilityReport } from '../check/index.js'
import { CliError } from './errors.js'
import { integerOption as integer } from './options.js'

/** History files larger than this are refused before they are read. */
export const HISTORY_FILE_BYTES_MAX = 1024 * 1024 * 1024

/** Failing keys printed in full; the rest are counted (`--json` has them all). */
export const FAILURES_PRINTED_MAX = 20

const EXIT_FAILED = 1
const EXIT_UNDECIDED = 2

export function checkCommands (program: Command, print: (line: string) => void): void {
  const check = program.command('check').description('check a recorded history: linearizable')
  check.command('linearizable')
    .description('check that a key-value store history (JSON array or JSON Lines, see docs/store-history.md) is linearizable; exits 0 if it is, 1 if not, 2 if undecided or the file is unusable')
    .argument('<file>', 'history file')
    .option('--search-steps-max <n>', 'search steps allowed per key before the key is reported unknown', integer('--search-steps-max', 1, Number.MAX_SAFE_INTEGER), defaultLinearizabilityLimits.searchStepsMax)
    .option('--json', 'print the whole report as JSON')
    .action((file: string, options: { searchStepsMax: number, json?: boolean }) => {
      const started = performance.now()
      const history = readHistory(file)
      const report = checkLinearizable(history, { searchStepsMax: options.searchStepsMax })
      const elapsedMs = performance.now() - started
      print(options.json === true ? JSON.stringify({ file, elapsedMs: Math.round(elapsedMs), ...report }, null, 2) : formatLinearizabilityReport(file, report, elapsedMs))
      if (report.verdict === 'not-linearizable') process.exitCode = EXIT_FAILED
      else if (report.verdict === 'unknown') process.exitCode = EXIT_UNDECIDED
    })
}

function readHistory (file: string): ReturnType<typeof parseHistory> {
  let text: string
  try {
    const bytes = statSync(file).size
    if (bytes > HISTORY_FILE_BYTES_MAX) throw new CliError('CLI_BAD_INPUT', `${file} is over ${HISTORY_FILE_BYTES_MAX} bytes`)
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError('CLI_BAD_INPUT', `cannot read ${file}: ${errorMessage(error)}`)
  }
  try {
    return parseHistory(text)
  } catch (error) {
    if (error instanceof CheckError) throw new CliError('CLI_BAD_INPUT', `${file} is not a store history: ${error.message}`, { file, ...error.details })
    throw error
  }
}

export function formatLinearizabilityReport (file: string, report: LinearizabilityReport, elapsedMs: number): string {
  const lines = [
    `history      ${file}`,
    `operations   ${report.operations}`,
    `keys         ${report.keys}`,
    `verdict      ${report.verdict}`,
    `time         ${Math.round(elapsedMs)} ms (${report.searchSteps} search steps)`
  ]
  for (const failure of report.failures.slice(0, FAILURES_PRINTED_MAX)) lines.push('', ...formatFailure(failure))
  if (report.failures.length > FAILURES_PRINTED_MAX) lines.push('', `... and ${report.failures.length - FAILURES_PRINTED_MAX} more failing keys (--json lists them all)`)
  return lines.join('\n')
}

function formatFailure (failure: LinearizabilityFailure): string[] {
  const searched = failure.kind === 'no-linearization' || failure.kind === 'search-limit'
  return [
    `key ${JSON.stringify(failure.key)}: ${failure.verdict}, ${failure.kind} (${failure.operations} operations)`,
    `  ${failure.reason}`,
    ...(failure.prefixTail.length === 0 ? [] : ['  end of the longest linearizable prefix:', ...failure.prefixTail.map((operation) => `    ${describeOperation(operation, operation.index)}`)]),
    ...(failure.stuck.length === 0 ? [] : [searched ? '  operations that could come next:' : '  operations involved:', ...failure.stuck.map((operation) => `    ${describeOperation(operation, operation.index)}`)])
  ]
}
