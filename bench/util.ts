import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs'
import { delimiter, join } from 'node:path'
export { freePort } from '../test/support/ports.js'

export interface BenchResult {
  name: string
  title: string
  header: string[]
  rows: string[][]
  verdict: string
  data: Record<string, unknown>
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}


export function formatTable (header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)).join('  ')
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n')
}

// CPU accounting from /proc, shared by the benches that run clusters of processes.

/** CPU seconds (user + system) a process used so far, from /proc (Linux); 0 elsewhere. */
export function cpuSeconds (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** The parent process id, from /proc (Linux); 0 elsewhere. */
export function parentPid (pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] ?? 0)
  } catch {
    return 0
  }
}

/** The ids of the processes whose parent is `pid`, from /proc (Linux); none elsewhere. */
export function childPids (pid: number): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  return entries.filter((entry) => /^\d+$/.test(entry)).map(Number).filter((candidate) => parentPid(candidate) === pid)
}

const warnedEnv = new Set<string>()

/**
 * Seconds from environment variable `name`: null when unset, or when not a number >= `min` (a bad
 * value is ignored with a warning, once per variable however many benches read it).
 */
export function envSeconds (name: string, min: number): number | null {
  const text = process.env[name]
  if (text === undefined) return null
  const value = Number(text)
  if (text.trim() !== '' && Number.isFinite(value) && value >= min) return value
  if (!warnedEnv.has(name)) process.emitWarning(`${name}=${text} is not a number of seconds >= ${min}: ignored`)
  warnedEnv.add(name)
  return null
}

/** The machine's CPU seconds so far, from /proc/stat's first line (zeros elsewhere). */
export interface MachineCpu {
  /** Run by processes (user, nice, system). */
  processes: number
  /**
   * Interrupts and softirqs: on loopback, mostly the TCP stack carrying the systems' own traffic.
   * With tick-based accounting (CONFIG_IRQ_TIME_ACCOUNTING off, as on this machine) a softirq
   * tick is charged to this column and also to the task it interrupted, so compare
   * `processes + interrupts` with the processes' own CPU (`otherProcessesSeconds`).
   */
  interrupts: number
  /** Taken by the hypervisor from this VM while it had work (steal): the host, not this machine. */
  steal: number
}

export function machineCpu (): MachineCpu {
  try {
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
    return { processes: (user + nice + system) / 100, interrupts: (irq + softirq) / 100, steal: steal / 100 }
  } catch {
    return { processes: 0, interrupts: 0, steal: 0 }
  }
}

/**
 * CPU seconds of the machine that no process of `ownSeconds` (the bench's processes' own CPU) ran:
 * processes and interrupts less those, never below 0. It may include softirqs that ran while a
 * core was idle; it never includes steal, which is the host's, not this machine's.
 */
export function otherProcessesSeconds (before: MachineCpu, after: MachineCpu, ownSeconds: number): number {
  return Math.max(0, (after.processes + after.interrupts) - (before.processes + before.interrupts) - ownSeconds)
}

/** CPU seconds the whole machine spent busy (processes, interrupts and steal: all but idle and iowait). */
export function machineBusySeconds (): number {
  const cpu = machineCpu()
  return cpu.processes + cpu.interrupts + cpu.steal
}

// ---------------------------------------------------------------------------------------------
// External programs: finding them, running them, installing them from Debian's packages.

/** The last `lines` lines of `text`. */
export const tail = (text: string, lines = 15): string => text.trimEnd().split('\n').slice(-lines).join('\n')

/** An executable named `name`: on PATH, else in the usual bin and sbin folders; null when none. */
export function findOnPath (name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin', '/usr/sbin', '/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

/**
 * How a bench keeps track of the commands it runs: `children` holds each one while it runs (so a
 * signal handler can stop it), and nothing starts once `interrupted()` says so.
 */
export interface CommandTracking {
  children?: Set<ChildProcess>
  interrupted?: () => boolean
}

/** Runs a command to its end: its exit code (null when killed) and its output (stdout and stderr). */
export async function runCommand (command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env, tracking: CommandTracking = {}): Promise<{ code: number | null, output: string }> {
  if (tracking.interrupted?.() === true) return { code: null, output: 'interrupted' }
  return await new Promise((resolve) => {
    let output = ''
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    tracking.children?.add(child)
    const timer = setTimeout(() => { output += `\n(timed out after ${timeoutMs} ms)`; child.kill('SIGKILL') }, timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('error', (error) => { output += `\n${error.message}` })
    child.once('close', (code) => { clearTimeout(timer); tracking.children?.delete(child); resolve({ code, output }) })
  })
}

/** How long one apt-get command may take. */
export const INSTALL_TIMEOUT_MS = 300_000

/**
 * The executable `binary`: found on PATH (or in /usr/sbin and the like), or installed with
 * `apt-get install -y debianPackage` (after an `apt-get update` when the first try fails) when
 * the bench runs as root; else the reason it cannot be had.
 */
export async function findOrInstallDebian (binary: string, debianPackage: string, progress: (line: string) => void, tracking: CommandTracking = {}): Promise<{ path: string } | { reason: string }> {
  const found = findOnPath(binary)
  if (found !== null) return { path: found }
  if (process.getuid?.() !== 0) return { reason: `${binary} is not on PATH, and the bench is not running as root to apt-get install ${debianPackage}` }
  if (findOnPath('apt-get') === null) return { reason: `${binary} is not on PATH and there is no apt-get to install ${debianPackage} with` }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  progress(`${binary}: not on PATH; apt-get install -y ${debianPackage}`)
  let install = await runCommand('apt-get', ['install', '-y', debianPackage], INSTALL_TIMEOUT_MS, env, tracking)
  if (install.code !== 0) {
    progress(`${binary}: install failed; apt-get update, then again`)
    const update = await runCommand('apt-get', ['update'], INSTALL_TIMEOUT_MS, env, tracking)
    if (update.code !== 0) return { reason: `apt-get update failed (exit ${update.code ?? 'killed'}): ${tail(update.output, 5)}` }
    install = await runCommand('apt-get', ['install', '-y', debianPackage], INSTALL_TIMEOUT_MS, env, tracking)
  }
  if (install.code !== 0) return { reason: `apt-get install -y ${debianPackage} failed (exit ${install.code ?? 'killed'}): ${tail(install.output, 5)}` }
  const installed = findOnPath(binary)
  return installed === null ? { reason: `apt-get installed ${debianPackage}, but there is still no ${binary} on PATH` } : { path: installed }
}

/** What a bench that starts processes needs to clean up on success, failure, Ctrl-C or exit. */
export interface BenchCleanup {
  /** Marks the run interrupted (nothing new starts). */
  interrupt: () => void
  /** Stops everything politely, then by force. */
  stopAll: () => Promise<void>
  /** At process exit, synchronously: kill what is left and remove temporary files. */
  killNow: () => void
}

/**
 * Runs `work` with the bench's processes cleaned up however it ends: stopped afterwards, stopped
 * on SIGINT or SIGTERM (then exit 130), killed if the process exits first.
 */
export async function withBenchCleanup<T> (cleanup: BenchCleanup, work: () => Promise<T>): Promise<T> {
  const onSignal = (): void => { cleanup.interrupt(); void cleanup.stopAll().finally(() => process.exit(130)) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', cleanup.killNow)
  try {
    return await work()
  } finally {
    await cleanup.stopAll()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', cleanup.killNow)
  }
}
