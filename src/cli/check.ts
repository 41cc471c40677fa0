/**
 * `synod check ...`: run a history checker over a recorded file (docs/store-history.md).
 * `linearizable FILE` checks a store history at the `strong` level; `causal FILE` checks a
 * `causal` or `eventual` history (with versions) for causal consistency; `convergence FILE`
 * checks the replicas' final states after healing against the history that led to them.
 *
 * Exit codes: 0 the history passes, 1 it does not, 2 the checker could not decide (a search limit)
 * or the file is unusable.
 */
import { readFileSync, statSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Command } from 'commander'
import { errorMessage } from '../core/index.js'
import {
  CheckError, checkCausal, checkConvergence, checkLinearizable, defaultLinearizabilityLimits, describeOperation, describeVersionedOperation, parseConvergenceInput, parseHistory,
  type CausalReport, type CausalViolation, type ConvergenceReport, type ConvergenceViolation, type LinearizabilityFailure, type LinearizabilityReport
} from '../check/index.js'
import { CliError } from './errors.js'
import { integerOption as integer } from './options.js'

/** History files larger than this are refused before they are read. */
export const HISTORY_FILE_BYTES_MAX = 1024 * 1024 * 1024

/** Failing keys printed in full; the rest are counted (`--json` has them all). */
export const FAILURES_PRINTED_MAX = 20

const EXIT_FAILED = 1
const EXIT_UNDECIDED = 2

export function checkCommands (program: Command, print: (line: string) => void): void {
  const check = program.command('check').description('check a recorded history: linearizable, causal, convergence')
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
  check.command('causal')
    .description('check that a causal or eventual key-value store history with versions (JSON array or JSON Lines, see docs/store-history.md) is causally consistent; exits 0 if it is, 1 if not, 2 if the file is unusable')
    .argument('<file>', 'history file')
    .option('--json', 'print the whole report as JSON')
    .action((file: string, options: { json?: boolean }) => {
      const started = performance.now()
      const history = readHistory(file)
      const report = usable(file, 'a causal store history', () => checkCausal(history))
      const elapsedMs = performance.now() - started
      print(options.json === true ? JSON.stringify({ file, elapsedMs: Math.round(elapsedMs), ...report }, null, 2) : formatCausalReport(file, report, elapsedMs))
      if (!report.ok) process.exitCode = EXIT_FAILED
    })
  check.command('convergence')
    .description('check that replicas converged and kept every acknowledged write (a JSON object of final replica states and the history, see docs/store-history.md); exits 0 if so, 1 if not, 2 if the file is unusable')
    .argument('<file>', 'convergence file')
    .option('--json', 'print the whole report as JSON')
    .action((file: string, options: { json?: boolean }) => {
      const started = performance.now()
      const text = readText(file)
      const report = usable(file, 'a convergence input', () => checkConvergence(parseConvergenceInput(text)))
      const elapsedMs = performance.now() - started
      print(options.json === true ? JSON.stringify({ file, elapsedMs: Math.round(elapsedMs), ...report }, null, 2) : formatConvergenceReport(file, report, elapsedMs))
      if (!report.ok) process.exitCode = EXIT_FAILED
    })
}

/** Runs `work`, turning a `CheckError` (the file does not fit the format) into CLI_BAD_INPUT. */
function usable<T> (file: string, what: string, work: () => T): T {
  try {
    return work()
  } catch (error) {
    if (error instanceof CheckError) throw new CliError('CLI_BAD_INPUT', `${file} is not ${what}: ${error.message}`, { file, ...error.details })
    throw error
  }
}

function readHistory (file: string): ReturnType<typeof parseHistory> {
  const text = readText(file)
  return usable(file, 'a store history', () => parseHistory(text))
}

function readText (file: string): string {
  try {
    const bytes = statSync(file).size
    if (bytes > HISTORY_FILE_BYTES_MAX) throw new CliError('CLI_BAD_INPUT', `${file} is over ${HISTORY_FILE_BYTES_MAX} bytes`)
    return readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError('CLI_BAD_INPUT', `cannot read ${file}: ${errorMessage(error)}`)
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

export function formatCausalReport (file: string, report: CausalReport, elapsedMs: number): string {
  const lines = [
    `history      ${file}`,
    `operations   ${report.operations}`,
    `sessions     ${report.sessions}`,
    `keys         ${report.keys}`,
    `verdict      ${report.verdict}`,
    `time         ${Math.round(elapsedMs)} ms`
  ]
  for (const violation of report.violations.slice(0, FAILURES_PRINTED_MAX)) lines.push('', ...formatCausalViolation(violation))
  if (report.violations.length > FAILURES_PRINTED_MAX) lines.push('', `... and ${report.violations.length - FAILURES_PRINTED_MAX} more violations (--json lists them all)`)
  return lines.join('\n')
}

function formatCausalViolation (violation: CausalViolation): string[] {
  const about = [violation.key === null ? null : `key ${JSON.stringify(violation.key)}`, violation.guarantee].filter((part) => part !== null)
  return [
    `${violation.kind}${about.length === 0 ? '' : ` (${about.join(', ')})`}`,
    `  ${violation.reason}`,
    '  operations involved:',
    ...violation.operations.map((operation) => `    ${describeVersionedOperation(operation, operation.index)}`)
  ]
}

export function formatConvergenceReport (file: string, report: ConvergenceReport, elapsedMs: number): string {
  const lines = [
    `input        ${file}`,
    `replicas     ${report.replicas}`,
    `keys         ${report.keys}`,
    `writes       ${report.writes} acknowledged`,
    `verdict      ${report.verdict}`,
    `time         ${Math.round(elapsedMs)} ms`
  ]
  for (const violation of report.violations.slice(0, FAILURES_PRINTED_MAX)) lines.push('', ...formatConvergenceViolation(violation))
  if (report.violations.length > FAILURES_PRINTED_MAX) lines.push('', `... and ${report.violations.length - FAILURES_PRINTED_MAX} more violations (--json lists them all)`)
  return lines.join('\n')
}

function formatConvergenceViolation (violation: ConvergenceViolation): string[] {
  return [
    `${violation.kind} (key ${JSON.stringify(violation.key)})`,
    `  ${violation.reason}`,
    ...(violation.operations.length === 0 ? [] : ['  operations involved:', ...violation.operations.map((operation) => `    ${describeVersionedOperation(operation, operation.index)}`)]),
    ...(violation.replicas.length === 0 ? [] : ['  replicas:']),
    ...violation.replicas.map((replica) => `    ${replica.node}: ${replica.values.length === 0 ? 'nothing' : replica.values.map(({ value, version }) => `${value === null ? 'tombstone' : JSON.stringify(value)}@${version}`).join(', ')}`)
  ]
}
