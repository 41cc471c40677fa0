/**
 * Strongly consistent key-value store benchmark: Synod against etcd, same load, same run.
 *
 * - (a) Synod: a 3-node local cluster (`synod up --nodes 3 --consensus none`), its store API
 *   `PUT /v1/kv/{key}?consistency=strong` (raw value bytes) and `GET /v1/kv/{key}?consistency=strong`.
 *   Each request goes to its key's coordinator, the first member of its preference list (the
 *   client knows the ring, as the SDK does), so nothing is forwarded.
 * - (b) etcd: a 3-member local cluster on loopback (Debian's `etcd-server`, installed with apt-get
 *   when it is not on PATH and the bench runs as root), through its JSON gateway:
 *   `POST /v3/kv/put` and `POST /v3/kv/range` (linearizable, etcd's default), again round-robin
 *   over the three members. The gateway prefix (/v3, /v3beta, /v3alpha) is probed first.
 *
 * Both clusters stay up through the put rounds, which alternate the order (`runRounds`): the
 * host's speed drifts by 10% and more within minutes, and a comparison of one Synod phase with one
 * etcd phase minutes later measured that drift as much as the systems. While one system is
 * measured the other is paused (SIGSTOP, then SIGCONT and a re-warm before its next phase), so
 * neither takes CPU from the other: an idle Synod cluster used about 0.15 cores, etcd 0.03. The
 * rounds are pooled (operations and time summed, latencies together) for the targets; each round's
 * ratio is shown.
 *
 * One load generator for both (a per-system adapter builds each request and judges each answer):
 * 64 closed-loop workers (`SYNOD_BENCH_CLIENTS`) over undici keep-alive pools (one per target, a connection per worker), keys
 * drawn uniformly from a fixed space of 10 000 keys with 100-byte values (fixed per key, so a get
 * checks the bytes it reads). A put phase, then a get phase over the keys the put phase wrote;
 * each phase has a warm-up (`warmedUp`), then a measured window (10 s, `SYNOD_BENCH_SECONDS`): successful
 * ops/s, latency p50/p99 of the successful operations, errors by code (or HTTP status, or network
 * error), the server processes' CPU per operation and the bench client's (from /proc), and the
 * CPU other processes on the machine used meanwhile (both clusters and the load generator share
 * its cores: a busy machine skews the figures and the verdict says so).
 *
 * Targets: Synod strong puts >= 1x etcd puts at equal concurrency, and Synod put p99 <= etcd put p99.
 * When Synod's store API is not there (404 on a probe put), the Synod half says so and the etcd half
 * still runs; when etcd cannot be found or installed, the reverse.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { freeBasePort, getJson, runSynodUp, stopAllUpRuns, type UpRun } from '../test/support/cluster.js'
import {
  childPids, cpuSeconds, envSeconds, findOrInstallDebian, machineCpu, otherProcessesSeconds, parentPid, percentile, runCommand as runTrackedCommand, tail, withBenchCleanup,
  type BenchResult, type CommandTracking, type MachineCpu
} from './util.js'
import { HashRing, type RingDescription } from '../src/store/index.js'

const NODES = 3
/** Closed-loop clients: 64, as issue 7 asks; `SYNOD_BENCH_CLIENTS` changes it (to see the latency-bound regime, say). */
export const CLIENTS = (() => {
  const clients = Number(process.env.SYNOD_BENCH_CLIENTS ?? 64)
  return Number.isInteger(clients) && clients > 0 ? clients : 64
})()
export const KEYS = 10_000
export const VALUE_BYTES = 100
/**
 * Warm-up, per phase: the load runs in windows of WARMUP_WINDOW_MS until a window's rate is at most
 * WARMUP_RISE_MIN above the window before it (`warmedUp`), for at most WARMUP_MAX_MS
 * (`SYNOD_BENCH_WARMUP_MAX_SECONDS`); `SYNOD_BENCH_WARMUP_SECONDS` fixes its length instead.
 * A JIT-compiled server (Synod, on V8) runs its first seconds in the interpreter and in baseline
 * code while its optimizing compiler takes CPU from it, and a strong key's first operation at its
 * coordinator pays a prepare round: on this 2-core machine Synod's strong puts rose from 400-650
 * to 2 400-3 000/s over the first 20-50 s of load, so the fixed 2 s warm-up measured that start,
 * not the steady state a long-running node serves. The same rule applies to etcd.
 */
const MEASURE_SECONDS = Number(process.env.SYNOD_BENCH_SECONDS ?? 10)
export const MEASURE_MS = (Number.isFinite(MEASURE_SECONDS) && MEASURE_SECONDS > 0 ? MEASURE_SECONDS : 10) * 1000
export const WARMUP_WINDOW_MS = 10_000
/** A window this much (a share) above the one before it means the rate is still rising. */
export const WARMUP_RISE_MIN = 0.05
export const WARMUP_MAX_MS = (envSeconds('SYNOD_BENCH_WARMUP_MAX_SECONDS', 1) ?? 90) * 1000
const warmupFixedSeconds = envSeconds('SYNOD_BENCH_WARMUP_SECONDS', 0)
/** A fixed warm-up instead of the rule (0: none, the measured window starts at once). */
export const WARMUP_FIXED_MS = warmupFixedSeconds === null ? null : warmupFixedSeconds * 1000
/** A timer may fire a few milliseconds before performance.now() says it is due. */
const TIMER_SLACK_MS = 5
/** The warm-up rule, as figures for the JSON. */
export const WARMUP_SETTINGS = { rule: WARMUP_FIXED_MS === null ? 'rising' : 'fixed', windowMs: WARMUP_WINDOW_MS, riseMin: WARMUP_RISE_MIN, maxMs: WARMUP_MAX_MS, fixedMs: WARMUP_FIXED_MS }
/** The warm-up rule, in words, for the bench's titles. */
export const WARMUP_RULE = WARMUP_FIXED_MS !== null
  ? `${WARMUP_FIXED_MS / 1000} s warm-up`
  : `warm-up in ${WARMUP_WINDOW_MS / 1000} s windows until one is at most ${(1 + WARMUP_RISE_MIN).toFixed(2)}x the one before (at most ${WARMUP_MAX_MS / 1000} s)`

/**
 * Whether the warm-up is over after windows with the successful ops/s `rates`, `elapsedMs` into
 * it: its fixed length when one is set; else when the last window is at most (1 + WARMUP_RISE_MIN)
 * x the one before it, or at WARMUP_MAX_MS.
 */
export function warmedUp (rates: readonly number[], elapsedMs: number, fixedMs: number | null = WARMUP_FIXED_MS): boolean {
  if (fixedMs !== null) return elapsedMs >= fixedMs - TIMER_SLACK_MS
  if (elapsedMs >= WARMUP_MAX_MS - TIMER_SLACK_MS) return true
  const last = rates[rates.length - 1]
  const before = rates[rates.length - 2]
  // At most (not under): two windows without a single success are as warm as they will get.
  return last !== undefined && before !== undefined && last <= before * (1 + WARMUP_RISE_MIN)
}

/** Interleaved put rounds per system (`SYNOD_BENCH_ROUNDS`, default 3). */
export const ROUNDS = (() => {
  const text = process.env.SYNOD_BENCH_ROUNDS
  if (text === undefined) return 3
  const rounds = Number(text)
  if (Number.isInteger(rounds) && rounds > 0) return rounds
  process.emitWarning(`SYNOD_BENCH_ROUNDS=${text} is not a whole number >= 1: 3 rounds`)
  return 3
})()
/** The re-warm before a system's later rounds, after it sat idle through the other system's phase (never longer than a fixed warm-up). */
export const REWARM_MS = WARMUP_FIXED_MS === null ? 10_000 : Math.min(10_000, WARMUP_FIXED_MS)

/** A request that has no answer by then counts as a network error. */
const REQUEST_TIMEOUT_MS = 10_000
const READY_TIMEOUT_MS = 60_000
/** How long an etcd member gets to stop after SIGTERM before it is killed. */
const ETCD_STOP_GRACE_MS = 5_000
/** Other processes' CPU, in cores, above which a phase is flagged as measured on a busy machine. */
export const FOREIGN_CORES_MAX = 0.15
/** Steal (CPU the hypervisor gave to other VMs), in cores, above which a phase is flagged. */
export const STEAL_CORES_MAX = 0.15

type Op = 'put' | 'get'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

const KEY_NAMES = Array.from({ length: KEYS }, (_, index) => `bench-${String(index).padStart(5, '0')}`)
const VALUES = Array.from({ length: KEYS }, () => randomBytes(VALUE_BYTES))

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything the bench starts, so that a signal or an exit can stop it.

const liveChildren = new Set<ChildProcess>()
const tempDirs = new Set<string>()
/** Set by SIGINT/SIGTERM: start nothing more. */
let interrupted = false
/** Commands run to their end (apt-get, etcd --version) are stopped with the rest. */
const tracking: CommandTracking = { children: liveChildren, interrupted: () => interrupted }

function removeTempDirs (): void {
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
    tempDirs.delete(dir)
  }
}

function makeTempDir (prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
async function stopChild (child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) { liveChildren.delete(child); return }
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await exited
  clearTimeout(timer)
  liveChildren.delete(child)
}

/** Processes of the idle system, paused (SIGSTOP) while the other one is measured. */
const pausedPids = new Set<number>()

function signalAll (pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try { process.kill(pid, signal) } catch {}
  }
}

/** Pauses `pids` (SIGSTOP): they take no CPU until `resume`. */
function pause (pids: readonly number[]): void {
  signalAll(pids, 'SIGSTOP')
  for (const pid of pids) pausedPids.add(pid)
}

/** Resumes paused processes (SIGCONT), before they are used or stopped (a stopped process does not act on SIGTERM). */
function resume (pids: Iterable<number> = [...pausedPids]): void {
  const list = [...pids]
  signalAll(list, 'SIGCONT')
  for (const pid of list) pausedPids.delete(pid)
}

async function stopEverything (): Promise<void> {
  resume()
  await Promise.all([...[...liveChildren].map(async (child) => { await stopChild(child, ETCD_STOP_GRACE_MS) }), stopAllUpRuns()])
  removeTempDirs()
}

// ---------------------------------------------------------------------------------------------
// CPU accounting, from /proc (Linux; zeros elsewhere).


const ownCpuSeconds = (): number => { const usage = process.cpuUsage(); return (usage.user + usage.system) / 1e6 }

// ---------------------------------------------------------------------------------------------
// The load generator, shared by both systems.

interface RequestSpec { path: string, method: 'GET' | 'PUT' | 'POST', headers: Record<string, string>, body?: Buffer | string }

interface Adapter {
  system: string
  /** HTTP base URLs, one per node or member; requests go to them round-robin. */
  origins: string[]
  /** The server processes, for their CPU. */
  serverPids: number[]
  /** Other processes the bench started that are not servers (`synod up`): not "foreign" CPU. */
  helperPids: number[]
  /** The origin (index) a key's requests go to; round-robin when absent. */
  route?: (key: number) => number
  /** `worker` is the closed-loop worker's index (a causal worker is one session). */
  request: (op: Op, key: number, worker: number) => RequestSpec
  /** null when the answer is a success, else a label for the error. */
  outcome: (op: Op, key: number, status: number, body: Buffer, headers: Record<string, string | string[] | undefined>, worker: number) => string | null
}

export interface PhaseFigures {
  /** The store level measured (Synod), or the system's only one. */
  level?: string
  system: string
  op: Op
  /** Successful operations completed in the measured window. */
  ops: number
  windowMs: number
  opsPerSecond: number
  p50: number
  p99: number
  mean: number
  max: number
  errors: number
  /** Errors in the measured window, by code (or `HTTP <status>`, or `network <code>`). */
  errorsBy: Record<string, number>
  warmupErrorsBy: Record<string, number>
  /** How long the warm-up ran, and the successful ops/s of each of its windows. */
  warmupMs: number
  warmupRates: number[]
  serverCpuUsPerOp: number
  /** Server processes' CPU in cores during the window. */
  serverCores: number
  clientCpuUsPerOp: number
  foreignCores: number
  /** The machine's interrupts and softirqs (on loopback mostly the TCP stack carrying the systems' traffic), in cores. */
  interruptCores: number
  /** CPU the hypervisor took from this VM (steal), in cores: the host's neighbours, not this machine's processes. */
  stealCores: number
  /** CPU of the other system's processes during the window, in cores: paused (SIGSTOP) in the interleaved rounds, so about 0. */
  otherSystemCores: number
  /** The interleaved round (1, 2, ...) of a put phase in the kv-strong bench. */
  round?: number
}

export interface PhaseOptions {
  /** A fixed warm-up (ms) instead of the bench's warm-up setting (`WARMUP_FIXED_MS`, or the rule when null). */
  warmupFixedMs?: number | null
  /** The other system's processes, idle during this phase: their CPU is reported apart, not as foreign. */
  otherPids?: readonly number[]
  /** Receives the latency (ms) of every successful operation of the measured window. */
  latencySink?: number[]
}

function networkLabel (error: unknown): string {
  const code = (error as { code?: unknown }).code
  return `network ${typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)}`
}

/**
 * One phase: CLIENTS closed-loop workers issue `op` on keys from `pickKey` for the warm-up, then the
 * measured window; `onSuccess` hears of every successful operation (warm-up included).
 */
async function runPhase (adapter: Adapter, pools: Pool[], op: Op, pickKey: () => number, onSuccess: (key: number) => void, options: PhaseOptions = {}): Promise<PhaseFigures> {
  const latencies: number[] = []
  const fixedWarmupMs = options.warmupFixedMs === undefined ? WARMUP_FIXED_MS : options.warmupFixedMs
  const otherPids = options.otherPids ?? []
  const errorsBy: Record<string, number> = {}
  const warmupErrorsBy: Record<string, number> = {}
  let measuring = false
  let stopped = false
  let next = 0
  const serversCpu = (): number => adapter.serverPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const otherCpu = (): number => otherPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const benchCpu = (): number => serversCpu() + adapter.helperPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) + ownCpuSeconds() + otherCpu()
  interface Mark { at: number, servers: number, client: number, other: number, bench: number, machine: MachineCpu }
  const mark = (): Mark => ({ at: performance.now(), servers: serversCpu(), client: ownCpuSeconds(), other: otherCpu(), bench: benchCpu(), machine: machineCpu() })
  let startMark: Mark | undefined
  let endMark: Mark | undefined
  // One timer at a time: the next warm-up window's end, then the measured window's.
  let timer: NodeJS.Timeout | undefined
  const warmupStart = performance.now()
  const warmupRates: number[] = []
  let warmupMs = 0
  let windowSuccesses = 0
  let windowStart = warmupStart
  /** The next window: WARMUP_WINDOW_MS, or what is left of a fixed warm-up or of WARMUP_MAX_MS. */
  const nextWindowMs = (elapsedMs: number): number => Math.max(0, Math.min(WARMUP_WINDOW_MS, (fixedWarmupMs ?? WARMUP_MAX_MS) - elapsedMs))
  const endWindow = (): void => {
    const now = performance.now()
    // A window shorter than this (the end of a fixed warm-up, or none) has no meaningful rate.
    if (now - windowStart >= 100) warmupRates.push(windowSuccesses * 1000 / (now - windowStart))
    windowSuccesses = 0
    windowStart = now
    if (!warmedUp(warmupRates, now - warmupStart, fixedWarmupMs)) {
      timer = setTimeout(endWindow, nextWindowMs(now - warmupStart))
      return
    }
    warmupMs = now - warmupStart
    startMark = mark()
    measuring = true
    timer = setTimeout(() => { measuring = false; stopped = true; endMark = mark() }, MEASURE_MS)
  }
  timer = setTimeout(endWindow, nextWindowMs(0))

  const worker = async (_: unknown, workerIndex: number): Promise<void> => {
    while (!stopped) {
      const key = pickKey()
      const pool = pools[adapter.route?.(key) ?? next++ % pools.length] as Pool
      const spec = adapter.request(op, key, workerIndex)
      const at = performance.now()
      let label: string | null
      try {
        const response = await pool.request(spec)
        label = adapter.outcome(op, key, response.statusCode, Buffer.from(await response.body.arrayBuffer()), response.headers, workerIndex)
      } catch (error) {
        label = networkLabel(error)
      }
      const done = performance.now()
      if (label === null) {
        onSuccess(key)
        if (measuring) latencies.push(done - at)
        else if (startMark === undefined) windowSuccesses++
      } else {
        const into = measuring ? errorsBy : startMark === undefined ? warmupErrorsBy : null
        if (into !== null) into[label] = (into[label] ?? 0) + 1
        // A refused connection answers at once: do not spin on a node that is down.
        if (label.startsWith('network')) await sleep(10)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: CLIENTS }, worker))
  } finally {
    // Also when a worker threw: the others stop at their next operation.
    stopped = true
    clearTimeout(timer)
  }
  const begin = startMark as Mark
  const end = endMark as Mark
  const windowMs = end.at - begin.at
  const seconds = windowMs / 1000
  const ops = latencies.length
  const errors = Object.values(errorsBy).reduce((sum, value) => sum + value, 0)
  const foreignCores = otherProcessesSeconds(begin.machine, end.machine, end.bench - begin.bench) / seconds
  if (options.latencySink !== undefined) for (const latency of latencies) options.latencySink.push(latency)
  return {
    system: adapter.system,
    op,
    ops,
    windowMs,
    opsPerSecond: ops / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    mean: ops === 0 ? Number.NaN : latencies.reduce((sum, value) => sum + value, 0) / ops,
    max: ops === 0 ? Number.NaN : latencies.reduce((max, value) => Math.max(max, value), 0),
    errors,
    errorsBy,
    warmupErrorsBy,
    warmupMs,
    warmupRates,
    serverCpuUsPerOp: ops === 0 ? Number.NaN : (end.servers - begin.servers) * 1e6 / ops,
    serverCores: (end.servers - begin.servers) / seconds,
    clientCpuUsPerOp: ops === 0 ? Number.NaN : (end.client - begin.client) * 1e6 / ops,
    foreignCores,
    interruptCores: (end.machine.interrupts - begin.machine.interrupts) / seconds,
    stealCores: (end.machine.steal - begin.machine.steal) / seconds,
    otherSystemCores: (end.other - begin.other) / seconds
  }
}

export interface SystemRun {
  system: string
  available: boolean
  /** Why the system was not measured (or a phase was skipped). */
  reason?: string
  info: Record<string, unknown>
  phases: PhaseFigures[]
}

/** One keep-alive pool per origin, a connection per closed-loop client. */
function openPools (adapter: Adapter): Pool[] {
  return adapter.origins.map((origin) => new Pool(origin, {
    connections: CLIENTS,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS
  }))
}

/** The keys a system's put phases wrote, for its get phase. */
class WrittenKeys {
  private readonly flags = new Uint8Array(KEYS)
  readonly keys: number[] = []
  readonly add = (key: number): void => {
    if (this.flags[key] === 0) { this.flags[key] = 1; this.keys.push(key) }
  }
}

const uniformKey = (): number => Math.floor(Math.random() * KEYS)

async function putPhase (adapter: Adapter, pools: Pool[], written: WrittenKeys, options?: PhaseOptions): Promise<PhaseFigures> {
  return await runPhase(adapter, pools, 'put', uniformKey, written.add, options)
}

async function getPhase (adapter: Adapter, pools: Pool[], written: WrittenKeys, options?: PhaseOptions): Promise<PhaseFigures> {
  return await runPhase(adapter, pools, 'get', () => written.keys[Math.floor(Math.random() * written.keys.length)] as number, () => {}, options)
}

/** The put phase over the whole key space, then the get phase over the keys it wrote. */
async function runLoad (adapter: Adapter, progress: (line: string) => void): Promise<{ phases: PhaseFigures[], reason?: string }> {
  const pools = openPools(adapter)
  const phases: PhaseFigures[] = []
  try {
    const written = new WrittenKeys()
    progress(`${adapter.system}: put, ${CLIENTS} clients, ${WARMUP_RULE} + ${MEASURE_MS / 1000} s over ${adapter.origins.length} targets`)
    const put = await putPhase(adapter, pools, written)
    phases.push(put)
    progress(describePhase(put) + `; ${written.keys.length} distinct keys written`)
    if (written.keys.length === 0) return { phases, reason: `${adapter.system}: no put succeeded, so no get phase` }
    progress(`${adapter.system}: get over the ${written.keys.length} keys written`)
    const get = await getPhase(adapter, pools, written)
    phases.push(get)
    progress(describePhase(get))
    return { phases }
  } finally {
    await Promise.all(pools.map(async (pool) => { await pool.close() }))
  }
}

export function describeErrors (errorsBy: Record<string, number>): string {
  return Object.entries(errorsBy).sort((a, b) => b[1] - a[1]).map(([label, count]) => `${label} ${count}`).join(', ')
}

function describePhase (phase: PhaseFigures): string {
  const errors = describeErrors(phase.errorsBy)
  const warmup = phase.warmupRates.length === 0 ? 'no warm-up' : `warm after ${(phase.warmupMs / 1000).toFixed(0)} s (windows: ${phase.warmupRates.map((rate) => rate.toFixed(0)).join(', ')} ops/s)`
  return `${phase.system} ${phase.op}: ${warmup}; ${phase.opsPerSecond.toFixed(0)} ops/s, p50 ${fixed(phase.p50, 2)} ms, p99 ${fixed(phase.p99, 2)} ms (max ${fixed(phase.max, 1)}); ` +
    `${phase.errors} errors${errors === '' ? '' : ` (${errors})`}; servers ${fixed(phase.serverCpuUsPerOp, 0)} us CPU/op (${phase.serverCores.toFixed(2)} cores), ` +
    `client ${fixed(phase.clientCpuUsPerOp, 0)} us/op; ${phase.otherSystemCores > 0 ? `the other system, paused, ${phase.otherSystemCores.toFixed(2)} cores; ` : ''}other processes ${phase.foreignCores.toFixed(2)} cores${phase.foreignCores > FOREIGN_CORES_MAX ? ' (BUSY MACHINE: figures skewed)' : ''}; ` +
    `interrupts ${phase.interruptCores.toFixed(2)} cores; steal ${phase.stealCores.toFixed(2)} cores${phase.stealCores > STEAL_CORES_MAX ? ' (THE HOST TOOK CPU: figures skewed)' : ''}`
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: no answer within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** A figure with `digits` decimals, or `-` when there is none (no successful operation). */
export const fixed = (value: number, digits: number): string => Number.isFinite(value) ? value.toFixed(digits) : '-'

const describeError = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** An error body's `code` (Synod) or message (etcd's gateway), else `HTTP <status>`. */
function errorLabel (status: number, body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { code?: unknown, message?: unknown, error?: unknown }
    if (typeof parsed.code === 'string') return parsed.code
    const message = typeof parsed.message === 'string' ? parsed.message : typeof parsed.error === 'string' ? parsed.error : undefined
    if (message !== undefined) return `HTTP ${status} ${message.slice(0, 60)}`
  } catch {}
  return `HTTP ${status}`
}

interface Answer { status: number, text: string }

async function call (url: string, init: { method: string, headers?: Record<string, string>, body?: Buffer | string }): Promise<Answer> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  return { status: response.status, text: await response.text() }
}

// ---------------------------------------------------------------------------------------------
// (a) Synod.

/**
 * Synod's clients know the ring (the SDK and the gateway do): each key goes to its coordinator,
 * the first member of its preference list, as etcd's clients reach any member and etcd forwards
 * to its leader internally.
 */
export type SynodLevel = 'strong' | 'causal' | 'eventual'

function synodAdapter (origins: string[], serverPids: number[], helperPids: number[], ring: RingDescription | null, level: SynodLevel): Adapter {
  let route: ((key: number) => number) | undefined
  if (ring !== null) {
    const hashRing = new HashRing({ members: ring.members, replicationFactor: ring.replicationFactor, vnodesPerWeight: ring.vnodesPerWeight })
    const owners = KEY_NAMES.map((name) => origins.indexOf(ring.members.find((member) => member.id === hashRing.owner(name))?.api ?? ''))
    if (owners.every((index) => index >= 0)) route = (key) => owners[key] as number
  }
  const paths = KEY_NAMES.map((name) => `/v1/kv/${encodeURIComponent(name)}?consistency=${level}`)
  // Causal: each worker is one session, carrying its token from answer to request.
  const sessions: Array<string | undefined> = []
  const headersFor = (worker: number, base: Record<string, string>): Record<string, string> => {
    const token = sessions[worker]
    return token === undefined ? base : { ...base, 'synod-session': token }
  }
  return {
    system: level === 'strong' ? 'synod' : `synod ${level}`,
    origins,
    ...(route === undefined ? {} : { route }),
    serverPids,
    helperPids,
    request: (op, key, worker) => op === 'put'
      ? { path: paths[key] as string, method: 'PUT', headers: headersFor(worker, { 'content-type': 'application/octet-stream' }), body: VALUES[key] as Buffer }
      : { path: paths[key] as string, method: 'GET', headers: headersFor(worker, {}) },
    outcome: (op, key, status, body, headers, worker) => {
      const token = headers['synod-session']
      if (level === 'causal' && typeof token === 'string') sessions[worker] = token
      if (status !== 200) return errorLabel(status, body)
      if (op === 'get' && !body.equals(VALUES[key] as Buffer)) return 'wrong value'
      return null
    }
  }
}

/** A system's cluster, up: what the load needs, and how to take it down. */
interface StartedSystem {
  run: SystemRun
  /** The adapter for a Synod level (etcd has one level: its own). Absent when the system is not available. */
  adapter?: (level: SynodLevel) => Adapter
  /**
   * The cluster's processes alive now (servers and helpers), to pause and to account for while the
   * other system is measured: read at each use, so a process that exited (and a pid reused since)
   * is never signalled, and a node `synod up` restarted is.
   */
  pids: () => number[]
  stop: () => Promise<void>
}

/** Starts a 3-node Synod cluster and probes its store API; `run.available` says whether it can be measured. */
async function startSynod (progress: (line: string) => void): Promise<StartedSystem> {
  const run: SystemRun = { system: 'synod', available: false, info: {}, phases: [] }
  const dataDir = makeTempDir('synod-bench-kv-')
  let up: UpRun | undefined
  const stop = async (): Promise<void> => {
    if (up !== undefined) await up.stop()
    up = undefined
    rmSync(dataDir, { recursive: true, force: true })
    tempDirs.delete(dataDir)
  }
  try {
    const basePort = await freeBasePort(NODES)
    progress(`synod: starting ${NODES} nodes (synod up --nodes ${NODES} --consensus none --base-port ${basePort})`)
    up = runSynodUp(dataDir, basePort, ['--nodes', String(NODES), '--gateway-port', '0', '--consensus', 'none'])
    await withTimeout(up.ready, READY_TIMEOUT_MS, 'synod up')
    // `synod up` prints "node ID  api URL  p2p ADDR" per node once the cluster is ready.
    const printed = [...up.output().matchAll(/^\s*node \S+\s+api (http:\/\/\S+)/gm)].map((match) => match[1] as string)
    const origins = printed.length === NODES ? printed : Array.from({ length: NODES }, (_, index) => `http://127.0.0.1:${basePort + 100 + index}`)
    const serverPids = (await Promise.all(origins.map(async (api) => (await getJson<{ pid?: number }>(`${api}/v1/status`))?.pid ?? 0))).filter((pid) => pid > 0)
    const upPid = parentPid(serverPids[0] ?? 0)
    const helperPids = upPid > 1 ? [upPid] : []
    // Without every pid the CPU figures miss a node, and kv-strong could not pause it.
    if (serverPids.length < NODES) progress(`synod: warning: ${serverPids.length} of ${NODES} nodes reported their pid; CPU figures leave the others out`)
    run.info = { origins, serverPids, upPid }

    // Is there a store API? A probe put and get on node 0 decide.
    const probeKey = 'bench-probe'
    const probeValue = randomBytes(VALUE_BYTES)
    const probeUrl = `${origins[0] as string}/v1/kv/${probeKey}?consistency=strong`
    let put: Answer
    try {
      put = await call(probeUrl, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: probeValue })
    } catch (error) {
      run.reason = `Synod store API not available: PUT ${probeUrl} failed: ${describeError(error)}`
      return { run, pids: () => [], stop }
    }
    if (put.status !== 200) {
      run.reason = `Synod store API not available: PUT ${probeUrl} answered ${put.status} ${put.text.slice(0, 200)}`
      return { run, pids: () => [], stop }
    }
    const get = await fetch(probeUrl, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).then(async (response) => ({ status: response.status, body: Buffer.from(await response.arrayBuffer()), version: response.headers.get('synod-version') }), (error: unknown) => ({ status: 0, body: Buffer.from(describeError(error)), version: null }))
    // A get that fails here still gets its phase: its errors then show in the table.
    const getProblem = get.status === 0
      ? `failed: ${get.body.toString('utf8')}`
      : get.status !== 200 ? `answered ${get.status} ${get.body.toString('utf8').slice(0, 200)}` : get.body.equals(probeValue) ? null : `answered ${get.body.length} bytes, not the ${VALUE_BYTES} put`
    if (getProblem !== null) {
      run.info.getProbe = `GET ${probeUrl} after a successful put ${getProblem}`
      progress(`synod: warning: the probe GET ${probeUrl} after a successful put ${getProblem}`)
    }
    const ring = await getJson<RingDescription>(`${origins[0] as string}/v1/cluster/ring`)
    run.info.ring = ring === null ? 'GET /v1/cluster/ring: no answer' : { version: ring.version, replicationFactor: ring.replicationFactor, members: ring.members.map((member) => member.id), routing: 'each key to its coordinator' }
    if (ring?.replicationFactor !== undefined && ring.replicationFactor < NODES) {
      progress(`synod: note: replication factor ${ring.replicationFactor} < ${NODES} nodes, so some requests are forwarded`)
    }
    progress(`synod: store API answers (probe put ${put.text.slice(0, 60)}${getProblem === null ? `, get version ${get.version ?? 'none'}` : ''}); nodes ${origins.join(' ')}`)
    run.available = true
    // `synod up` and its children while it is still this bench's child (and so not a pid reused since).
    const livePids = (): number[] => upPid > 1 && parentPid(upPid) === process.pid ? [upPid, ...childPids(upPid)] : []
    return { run, adapter: (level) => synodAdapter(origins, serverPids, helperPids, ring, level), pids: livePids, stop }
  } catch (error) {
    run.available = false
    run.reason = `Synod cluster not measured: ${describeError(error)}${up === undefined ? '' : `\n${tail(up.output())}`}`
    return { run, pids: () => [], stop }
  }
}

/** A Synod cluster measured at each of `levels` in turn (one put phase and one get phase per level). */
export async function runSynod (progress: (line: string) => void, levels: readonly SynodLevel[] = ['strong']): Promise<SystemRun> {
  const started = await startSynod(progress)
  const { run } = started
  try {
    for (const level of levels) {
      if (interrupted || started.adapter === undefined) break
      const load = await runLoad(started.adapter(level), progress)
      run.phases.push(...load.phases.map((phase) => ({ ...phase, level })))
      if (load.reason !== undefined) run.reason = load.reason
    }
    return run
  } catch (error) {
    run.reason = `Synod cluster not measured: ${describeError(error)}`
    return run
  } finally {
    await started.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// (b) etcd.

/** Runs a command to its end (stopped with the rest on a signal): its exit code (null when killed) and its output. */
async function runCommand (command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null, output: string }> {
  return await runTrackedCommand(command, args, timeoutMs, env, tracking)
}

/** The etcd binary: from PATH, or installed with `apt-get install -y etcd-server` when running as root. */
async function findOrInstallEtcd (progress: (line: string) => void): Promise<{ path: string } | { reason: string }> {
  return await findOrInstallDebian('etcd', 'etcd-server', progress, tracking)
}

interface EtcdMember { name: string, client: string, peer: string, dataDir: string, log: string, process: ChildProcess }

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64')

function etcdAdapter (origins: string[], prefix: string, serverPids: number[]): Adapter {
  const putPath = `${prefix}/kv/put`
  const rangePath = `${prefix}/kv/range`
  const headers = { 'content-type': 'application/json' }
  const putBodies = KEY_NAMES.map((name, index) => JSON.stringify({ key: b64(name), value: b64(VALUES[index] as Buffer) }))
  const rangeBodies = KEY_NAMES.map((name) => JSON.stringify({ key: b64(name) }))
  const expected = VALUES.map((value) => `"value":"${b64(value)}"`)
  return {
    system: 'etcd',
    origins,
    serverPids,
    helperPids: [],
    request: (op, key) => op === 'put'
      ? { path: putPath, method: 'POST', headers, body: putBodies[key] as string }
      : { path: rangePath, method: 'POST', headers, body: rangeBodies[key] as string },
    outcome: (op, key, status, body) => {
      if (status !== 200) return errorLabel(status, body)
      if (op === 'get') {
        const text = body.toString('utf8')
        if (!text.includes('"kvs"')) return 'not found'
        if (!text.includes(expected[key] as string)) return 'wrong value'
      }
      return null
    }
  }
}

/** Starts a 3-member etcd cluster (installing etcd when missing) and finds its JSON gateway; `run.available` says whether it can be measured. */
async function startEtcd (progress: (line: string) => void): Promise<StartedSystem> {
  const run: SystemRun = { system: 'etcd', available: false, info: {}, phases: [] }
  const members: EtcdMember[] = []
  let dir: string | null = null
  const stop = async (): Promise<void> => {
    await Promise.all(members.map(async (member) => { await stopChild(member.process, ETCD_STOP_GRACE_MS) }))
    if (dir !== null) {
      rmSync(dir, { recursive: true, force: true })
      tempDirs.delete(dir)
    }
  }
  if (interrupted) return { run: { ...run, reason: 'etcd not measured: interrupted' }, pids: () => [], stop }
  const binary = await findOrInstallEtcd(progress)
  if ('reason' in binary) {
    run.reason = `etcd not available: ${binary.reason}`
    return { run, pids: () => [], stop }
  }
  const version = await runCommand(binary.path, ['--version'], 10_000)
  const versionText = /etcd Version:\s*(\S+)/.exec(version.output)?.[1] ?? version.output.trim().split('\n')[0] ?? 'unknown'
  run.info = { binary: binary.path, version: versionText }
  const clusterDir = makeTempDir('synod-bench-etcd-')
  dir = clusterDir
  try {
    // Peer ports base..base+2, client ports base+100..base+102, below the ephemeral range.
    const basePort = await freeBasePort(NODES)
    const specs = Array.from({ length: NODES }, (_, index) => ({
      name: `m${index}`,
      client: `http://127.0.0.1:${basePort + 100 + index}`,
      peer: `http://127.0.0.1:${basePort + index}`,
      dataDir: join(clusterDir, `m${index}`),
      log: join(clusterDir, `m${index}.log`)
    }))
    const initialCluster = specs.map((spec) => `${spec.name}=${spec.peer}`).join(',')
    const token = `synod-bench-${randomBytes(4).toString('hex')}`
    progress(`etcd ${versionText}: starting ${NODES} members (clients ${specs.map((spec) => spec.client).join(' ')}; data and logs in ${clusterDir})`)
    for (const spec of specs) {
      if (interrupted) throw new Error('interrupted')
      const child = spawn(binary.path, [
        '--name', spec.name,
        '--data-dir', spec.dataDir,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--listen-client-urls', spec.client,
        '--advertise-client-urls', spec.client,
        '--listen-peer-urls', spec.peer,
        '--initial-advertise-peer-urls', spec.peer
      ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(process.arch === 'arm64' ? { ETCD_UNSUPPORTED_ARCH: 'arm64' } : {}) } })
      liveChildren.add(child)
      const log = createWriteStream(spec.log, { flags: 'a' })
      child.stdout?.pipe(log)
      child.stderr?.pipe(log)
      child.once('error', (error) => { log.write(`\nspawn failed: ${error.message}\n`) })
      members.push({ ...spec, process: child })
    }
    const logTail = (member: EtcdMember): string => { try { return tail(readFileSync(member.log, 'utf8'), 10) } catch { return '' } }

    // Healthy: every member answers GET /health with {"health":"true"}.
    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      const gone = members.find((member) => member.process.exitCode !== null || member.process.signalCode !== null)
      if (gone !== undefined) throw new Error(`member ${gone.name} exited (${gone.process.exitCode ?? gone.process.signalCode}) while starting:\n${logTail(gone)}`)
      const healthy = await Promise.all(members.map(async (member) => (await getJson<{ health?: string }>(`${member.client}/health`))?.health === 'true'))
      if (healthy.every(Boolean)) break
      if (Date.now() > deadline) throw new Error(`the cluster was not healthy within ${READY_TIMEOUT_MS} ms:\n${members.map((member) => `--- ${member.name}\n${logTail(member)}`).join('\n')}`)
      await sleep(200)
    }

    // The JSON gateway's prefix: /v3 from etcd 3.4, /v3beta in 3.3, /v3alpha before.
    let prefix: string | undefined
    const probes: string[] = []
    for (const candidate of ['/v3', '/v3beta', '/v3alpha']) {
      const answer = await call(`${members[0]?.client as string}${candidate}/kv/range`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: b64('bench-probe') }) }).catch((error: unknown) => ({ status: 0, text: describeError(error) }))
      probes.push(`${candidate}: ${answer.status}`)
      if (answer.status === 200) { prefix = candidate; break }
    }
    if (prefix === undefined) throw new Error(`no JSON gateway found (POST <prefix>/kv/range answered ${probes.join(', ')})`)
    const pids = members.map((member) => member.process.pid ?? 0).filter((pid) => pid > 0)
    run.info = { ...run.info, gatewayPrefix: prefix, clients: members.map((member) => member.client), pids }
    progress(`etcd: healthy; JSON gateway at ${prefix}/`)
    run.available = true
    const adapter = etcdAdapter(members.map((member) => member.client), prefix, pids)
    const livePids = (): number[] => members.filter((member) => member.process.exitCode === null && member.process.signalCode === null).map((member) => member.process.pid ?? 0).filter((pid) => pid > 0)
    return { run, adapter: () => adapter, pids: livePids, stop }
  } catch (error) {
    run.reason = `etcd not available: ${describeError(error)}`
    return { run, pids: () => [], stop }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Runs `work` with the bench's processes stopped on Ctrl-C or a timeout (their processes would
 * otherwise outlive the bench) and, as a last resort, killed on any exit; stops them all after.
 */
export async function withCleanup<T> (work: () => Promise<T>): Promise<T> {
  return await withBenchCleanup({
    interrupt: () => { interrupted = true },
    stopAll: stopEverything,
    killNow: () => {
      resume()
      for (const child of liveChildren) child.kill('SIGKILL')
      removeTempDirs()
    }
  }, work)
}

/** A system in the interleaved rounds: its cluster, its load, and what was measured. */
interface Contender {
  started: StartedSystem
  adapter: Adapter
  /** The Synod level measured, for the JSON (etcd has none). */
  level?: SynodLevel
  /** Set when a phase threw: the system sits out the later phases. */
  failed: boolean
  pools: Pool[]
  written: WrittenKeys
  /** Every measured put latency, all rounds. */
  putLatencies: number[]
}

/** The put phases measured so far, one per round. */
const putsOf = (contender: Contender): PhaseFigures[] => contender.started.run.phases.filter((phase) => phase.op === 'put')

/** A phase's name in the table and the warnings: `put r2`, or `get`. */
const phaseLabel = (phase: PhaseFigures): string => phase.round === undefined ? phase.op : `${phase.op} r${phase.round}`

/** A system's put rounds taken together: operations and time summed, latencies pooled. */
export interface PooledPuts {
  system: string
  rounds: number
  ops: number
  opsPerSecond: number
  p50: number
  p99: number
  serverCpuUsPerOp: number
  clientCpuUsPerOp: number
  /** Other processes and steal, in cores, over the rounds' windows (time-weighted). */
  foreignCores: number
  stealCores: number
}

function poolPuts (contender: Contender): PooledPuts {
  const puts = putsOf(contender)
  const ops = puts.reduce((sum, phase) => sum + phase.ops, 0)
  const seconds = puts.reduce((sum, phase) => sum + phase.windowMs, 0) / 1000
  const perOp = (field: 'serverCpuUsPerOp' | 'clientCpuUsPerOp'): number => ops === 0 ? Number.NaN : puts.reduce((sum, phase) => sum + (phase.ops === 0 ? 0 : phase[field] * phase.ops), 0) / ops
  const perSecond = (field: 'foreignCores' | 'stealCores'): number => seconds === 0 ? 0 : puts.reduce((sum, phase) => sum + phase[field] * phase.windowMs / 1000, 0) / seconds
  return {
    system: contender.adapter.system,
    rounds: puts.length,
    ops,
    opsPerSecond: seconds === 0 ? 0 : ops / seconds,
    p50: percentile(contender.putLatencies, 50),
    p99: percentile(contender.putLatencies, 99),
    serverCpuUsPerOp: perOp('serverCpuUsPerOp'),
    clientCpuUsPerOp: perOp('clientCpuUsPerOp'),
    foreignCores: perSecond('foreignCores'),
    stealCores: perSecond('stealCores')
  }
}

/**
 * The put rounds, both clusters up: round 1 runs Synod then etcd, round 2 etcd then Synod, and so
 * on, so a drift in the host's speed (this machine's rates moved 10-60% within an hour) weighs on
 * both systems alike instead of on whichever ran second. The system not measured is paused. A
 * system's first round has the full warm-up; its later ones a re-warm (REWARM_MS) after the pause,
 * in which its timers catch up (an etcd election, say). Then one get phase each.
 */
async function runRounds (contenders: Contender[], progress: (line: string) => void): Promise<void> {
  /** One phase of `contender` with every other system paused; a phase that throws takes the system out of the later ones. */
  const phase = async (contender: Contender, label: string, run: (otherPids: number[]) => Promise<PhaseFigures>): Promise<void> => {
    const otherPids = contenders.filter((other) => other !== contender).flatMap((other) => other.started.pids())
    resume(contender.started.pids())
    pause(otherPids)
    try {
      const figures = await run(otherPids)
      if (contender.level !== undefined) figures.level = contender.level
      contender.started.run.phases.push(figures)
      progress(describePhase(figures) + (figures.op === 'put' ? `; ${contender.written.keys.length} distinct keys written so far` : ''))
    } catch (error) {
      contender.failed = true
      contender.started.run.reason = `${contender.adapter.system}: ${label} failed: ${describeError(error)}`
      progress(contender.started.run.reason)
    }
  }
  for (let round = 1; round <= ROUNDS && !interrupted; round++) {
    const order = round % 2 === 1 ? contenders : [...contenders].reverse()
    for (const contender of order) {
      if (interrupted) break
      if (contender.failed) continue
      const first = putsOf(contender).length === 0
      progress(`${contender.adapter.system}: put, round ${round} of ${ROUNDS}, ${CLIENTS} clients, ${first ? WARMUP_RULE : `${REWARM_MS / 1000} s re-warm`} + ${MEASURE_MS / 1000} s`)
      await phase(contender, `the put phase of round ${round}`, async (otherPids) => {
        const put = await putPhase(contender.adapter, contender.pools, contender.written, { otherPids, latencySink: contender.putLatencies, ...(first ? {} : { warmupFixedMs: REWARM_MS }) })
        put.round = round
        return put
      })
    }
  }
  for (const contender of contenders) {
    if (interrupted) break
    if (contender.failed) continue
    if (contender.written.keys.length === 0) {
      contender.started.run.reason = `${contender.adapter.system}: no put succeeded, so no get phase`
      continue
    }
    progress(`${contender.adapter.system}: get over the ${contender.written.keys.length} keys written`)
    await phase(contender, 'the get phase', async (otherPids) => await getPhase(contender.adapter, contender.pools, contender.written, { otherPids }))
  }
}

export async function kvStrongBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const { synod, etcd, pooled } = await withCleanup(async () => {
    const started: StartedSystem[] = []
    const contenders: Contender[] = []
    try {
      for (const start of [startSynod, startEtcd]) {
        if (interrupted) break
        const system = await start(progress)
        started.push(system)
        if (system.run.reason !== undefined) progress(system.run.reason)
        if (system.run.available && system.adapter !== undefined) {
          const adapter = system.adapter('strong')
          contenders.push({ started: system, adapter, ...(system.run.system === 'synod' ? { level: 'strong' as const } : {}), failed: false, pools: openPools(adapter), written: new WrittenKeys(), putLatencies: [] })
        } else {
          // A system that cannot be measured must not take CPU from the other's phases.
          await system.stop()
        }
      }
      await runRounds(contenders, progress)
      const none = (system: string): SystemRun => ({ system, available: false, reason: `${system} not measured: interrupted`, info: {}, phases: [] })
      return {
        synod: started[0]?.run ?? none('synod'),
        etcd: started[1]?.run ?? none('etcd'),
        pooled: contenders.map(poolPuts)
      }
    } finally {
      resume()
      await Promise.all(contenders.flatMap((contender) => contender.pools.map(async (pool) => { await pool.close() })))
      await Promise.all(started.map(async (system) => { await system.stop() }))
    }
  })

  const rows: string[][] = []
  const row = (system: string, label: string, figures: { opsPerSecond: number, p50: number, p99: number, serverCpuUsPerOp: number, clientCpuUsPerOp: number }, errors: string, foreign: number, steal: number): string[] => [
    system, label, figures.opsPerSecond.toFixed(0), fixed(figures.p50, 2), fixed(figures.p99, 2), errors, fixed(figures.serverCpuUsPerOp, 0), fixed(figures.clientCpuUsPerOp, 0), foreign.toFixed(2), steal.toFixed(2)
  ]
  for (const run of [synod, etcd]) {
    if (run.phases.length === 0) {
      rows.push([run.system, 'put', '-', '-', '-', 'not measured', '-', '-', '-', '-'])
      continue
    }
    for (const phase of run.phases) {
      const errors = describeErrors(phase.errorsBy)
      rows.push(row(run.system, phaseLabel(phase), phase, errors === '' ? '0' : `${phase.errors} (${errors})`, phase.foreignCores, phase.stealCores))
    }
    const pool = pooled.find((figures) => figures.system === run.system)
    if (pool !== undefined && pool.rounds > 1) {
      const errors = run.phases.filter((phase) => phase.op === 'put').reduce((sum, phase) => sum + phase.errors, 0)
      rows.push(row(run.system, `put, ${pool.rounds} rounds`, pool, String(errors), pool.foreignCores, pool.stealCores))
    }
  }

  const synodPut = pooled.find((figures) => figures.system === 'synod')
  const etcdPut = pooled.find((figures) => figures.system === 'etcd')
  const mark = (ok: boolean): string => ok ? 'pass' : 'FAIL'
  const lines: string[] = []
  const targets: Record<string, boolean | null> = { putThroughput: null, putP99: null }
  let roundRatios: number[] = []
  if (synodPut !== undefined && etcdPut !== undefined && synodPut.ops > 0 && etcdPut.ops > 0) {
    targets.putThroughput = synodPut.opsPerSecond >= etcdPut.opsPerSecond
    targets.putP99 = synodPut.p99 <= etcdPut.p99
    const roundsOf = (run: SystemRun): Map<number, number> => new Map(run.phases.filter((phase) => phase.round !== undefined).map((phase) => [phase.round as number, phase.opsPerSecond]))
    const synodRounds = roundsOf(synod)
    const etcdRounds = roundsOf(etcd)
    roundRatios = [...synodRounds].filter(([round]) => etcdRounds.has(round)).map(([round, rate]) => rate / (etcdRounds.get(round) as number))
    lines.push(`targets at ${CLIENTS} clients, ${synodPut.rounds === 1 ? 'one round' : `${synodPut.rounds} interleaved rounds pooled`}: Synod strong puts >= 1x etcd puts: ${mark(targets.putThroughput)} (${synodPut.opsPerSecond.toFixed(0)} vs ${etcdPut.opsPerSecond.toFixed(0)} ops/s, ${(synodPut.opsPerSecond / etcdPut.opsPerSecond).toFixed(2)}x` +
      `${roundRatios.length > 1 ? `; by round ${roundRatios.map((ratio) => `${ratio.toFixed(2)}x`).join(', ')}` : ''}); ` +
      `Synod put p99 <= etcd put p99: ${mark(targets.putP99)} (${fixed(synodPut.p99, 2)} vs ${fixed(etcdPut.p99, 2)} ms)`)
  } else {
    lines.push(`targets (Synod strong puts >= 1x etcd puts, Synod put p99 <= etcd put p99): not judged, ${synodPut === undefined || synodPut.ops === 0 ? 'Synod' : 'etcd'} was not measured`)
  }
  if (synod.reason !== undefined) lines.push(synod.reason.split('\n')[0] as string)
  if (typeof synod.info.getProbe === 'string') lines.push(`Synod get probe: ${synod.info.getProbe}`)
  if (etcd.reason !== undefined) lines.push(etcd.reason.split('\n')[0] as string)
  const busy = [...synod.phases, ...etcd.phases].filter((phase) => phase.foreignCores > FOREIGN_CORES_MAX)
  if (busy.length > 0) lines.push(`WARNING: other processes used ${busy.map((phase) => `${phase.foreignCores.toFixed(2)} cores during ${phase.system} ${phaseLabel(phase)}`).join(', ')}: rerun on an idle machine`)
  const stolen = [...synod.phases, ...etcd.phases].filter((phase) => phase.stealCores > STEAL_CORES_MAX)
  if (stolen.length > 0) lines.push(`WARNING: the hypervisor took ${stolen.map((phase) => `${phase.stealCores.toFixed(2)} cores during ${phase.system} ${phaseLabel(phase)}`).join(', ')} (steal): the host was busy`)

  return {
    name: 'kv-strong',
    title: `strongly consistent put/get, Synod (3 nodes, synod up --consensus none) vs etcd ${String(etcd.info.version ?? '')} (3 members, JSON gateway), both up throughout, ` +
      `${CLIENTS} closed-loop clients (Synod: each key to its coordinator; etcd: round-robin over the members), ${KEYS} keys, ${VALUE_BYTES}-byte values; ` +
      `${ROUNDS} put rounds alternating the order (Synod first in odd rounds, etcd first in even ones), each ${MEASURE_MS / 1000} s measured after a ${WARMUP_RULE} in a system's first round and a ${REWARM_MS / 1000} s re-warm in its later ones, pooled; then a get phase each; ` +
      'the system not measured is paused (SIGSTOP); ops/s and latency of successful operations; CPU us per op of the servers and of the bench client; other cores = CPU of processes outside the bench; steal cores = CPU the hypervisor gave to other VMs (interrupts are in the JSON)',
    header: ['system', 'op', 'ops/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU us/op', 'client CPU us/op', 'other cores', 'steal cores'],
    rows,
    verdict: lines.join('\n'),
    data: {
      clients: CLIENTS,
      keys: KEYS,
      valueBytes: VALUE_BYTES,
      warmup: WARMUP_SETTINGS,
      rounds: ROUNDS,
      rewarmMs: REWARM_MS,
      measureMs: MEASURE_MS,
      targets,
      pooled,
      roundRatios,
      synod,
      etcd
    }
  }
}
