/**
 * The gateway against nginx, and both against no proxy at all, under the same load in one run.
 *
 * Upstreams: three `bench/gateway-upstream.ts` processes (Node.js `node:http`, keep-alive, a fixed
 * ~100-byte JSON answer), standing in for Synod nodes' APIs. Targets, each fresh-started:
 * - direct: three wrk processes at once, one per upstream, WRK_CONNECTIONS / 3 connections each;
 *   req/s summed, p50 and p99 the worst of the three;
 * - nginx (Debian's package, found or installed with apt-get as root; started and stopped by the
 *   bench): one worker process, round-robin over the three upstreams with keep-alive connections
 *   to them (`keepalive 128`, HTTP/1.1), as the gateway does;
 * - `synod gateway --strategy round-robin` and `--strategy p2c` (the default), one Node.js process.
 * nginx runs one worker because the gateway is one Node.js process: one process each.
 *
 * Load: wrk (Debian's package, found or installed likewise), WRK_THREADS thread(s),
 * WRK_CONNECTIONS keep-alive connections, GET /v1/bench; a WARMUP_S run whose figures are
 * discarded, then a MEASURE_S run. A Lua script counts answers outside 2xx and prints wrk's
 * summary as one JSON line; p50 and p99 are wrk's own, which it corrects for coordinated
 * omission (see `WrkFigures.correctionIntervalUs`). Around the measured run the bench reads from
 * /proc the CPU the proxy process used (the gateway's, or nginx's master and workers), for its CPU
 * per request, and asks each upstream how many requests it served, for the share each one got.
 *
 * Scenarios: (a) three healthy upstreams; (b) the third upstream answers after 50 ms.
 * Targets: (a) gateway (p2c) req/s >= 0.60 x nginx's; (b) gateway p2c p99 <= 1/5 of nginx
 * round-robin's p99. When wrk or nginx cannot be had, the rest still runs and the verdict says why.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  childPids, cpuSeconds, findOrInstallDebian, freePort, machineBusySeconds, runCommand, tail, withBenchCleanup,
  type BenchResult, type CommandTracking
} from './util.js'

export const WRK_THREADS = 1
export const WRK_CONNECTIONS = 64
/** A wrk run before each measured one, whose figures are discarded. */
export const WARMUP_S = 2
export const MEASURE_S = 10
/** wrk counts a request without an answer after this long as a timeout. */
const WRK_TIMEOUT_S = 5
const UPSTREAMS = 3
/** Scenario (b): how late the third upstream answers. */
const SLOW_DELAY_MS = 50
const HEALTH_INTERVAL_MS = 1_000
const GATEWAY_SEED = 1
/** The path wrk asks for; the upstreams answer it with their fixed body. */
const REQUEST_PATH = '/v1/bench'
const NGINX_WORKER_CONNECTIONS = 4_096
/** nginx's idle keep-alive connections to the upstreams, per worker. */
const NGINX_UPSTREAM_KEEPALIVE = 128
const READY_TIMEOUT_MS = 20_000
/** How long a process gets to stop after its polite signal before it is killed. */
const STOP_GRACE_MS = 5_000
const PROBE_TIMEOUT_MS = 2_000
/** Output kept per process, for error messages. */
const OUTPUT_BYTES_MAX = 64 * 1024
const TARGET_THROUGHPUT_RATIO_MIN = 0.6
const TARGET_P99_RATIO_MAX = 0.2

const DIRECT_CONNECTIONS = Math.max(1, Math.round(WRK_CONNECTIONS / UPSTREAMS))
const UPSTREAM_SCRIPT = fileURLToPath(new URL('./gateway-upstream.js', import.meta.url))
const BARE_PROXY_SCRIPT = fileURLToPath(new URL('./bare-proxy.js', import.meta.url))
const SYNOD_MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
const describeError = (error: unknown): string => error instanceof Error ? error.message : String(error)
const fixed = (value: number, digits: number): string => Number.isFinite(value) ? value.toFixed(digits) : '-'
/** The line of a process's output that says what went wrong (an Error, nginx's [emerg]), as ` (line)`; '' when none does. */
function keyLine (output: string): string {
  const line = output.split('\n').map((text) => text.trim()).find((text) => /\b\w*Error\b|\[(emerg|alert|crit)\]/.test(text))
  return line === undefined ? '' : ` (${line.slice(0, 300)})`
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything the bench starts, so that a signal, a failure or an exit stops it.

const liveChildren = new Set<ChildProcess>()
/** Processes the bench did not spawn itself but must stop: nginx's workers. */
const extraPids = new Set<number>()
const tempDirs = new Set<string>()
/** Set by SIGINT/SIGTERM: start nothing more. */
let interrupted = false
const tracking: CommandTracking = { children: liveChildren, interrupted: () => interrupted }

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function killPids (pids: Iterable<number>): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch {}
    extraPids.delete(pid)
  }
}

/** Exited, or never started (a failed spawn has no pid and may never emit 'exit'). */
const hasExited = (child: ChildProcess): boolean => child.pid === undefined || child.exitCode !== null || child.signalCode !== null

/** `signal`, then SIGKILL after `graceMs` (to `child` and to `alsoKill`'s processes); resolves once it has exited. */
async function stopChild (child: ChildProcess, signal: NodeJS.Signals, graceMs: number, alsoKill: number[] = []): Promise<void> {
  if (!hasExited(child)) {
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
    child.kill(signal)
    const timer = setTimeout(() => { child.kill('SIGKILL'); killPids(alsoKill) }, graceMs)
    await exited
    clearTimeout(timer)
  }
  liveChildren.delete(child)
  // A master gone leaves no worker behind, normally; make sure.
  killPids(alsoKill.filter(isAlive))
  for (const pid of alsoKill) extraPids.delete(pid)
}

async function stopEverything (): Promise<void> {
  await Promise.all([...liveChildren].map(async (child) => { await stopChild(child, 'SIGTERM', STOP_GRACE_MS) }))
  killPids([...extraPids].filter(isAlive))
  removeTempDirs()
}

function removeTempDirs (): void {
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
    tempDirs.delete(dir)
  }
}

async function withCleanup<T> (work: () => Promise<T>): Promise<T> {
  return await withBenchCleanup({
    interrupt: () => { interrupted = true },
    stopAll: stopEverything,
    killNow: () => {
      for (const child of liveChildren) child.kill('SIGKILL')
      killPids([...extraPids])
      removeTempDirs()
    }
  }, work)
}

/** A long-running process the bench started: its output so far, whether it is gone, how to stop it. */
interface Service {
  name: string
  child: ChildProcess
  pid: number
  output: () => string
  /** Why it is gone ("exited 1", "killed by SIGSEGV"), or null while it runs. */
  gone: () => string | null
  stop: () => Promise<void>
}

/** Spawns `command` and resolves once its stdout matches `ready` (rejects if it exits first or takes too long). */
async function startService (name: string, command: string, args: string[], ready: RegExp | null, stopSignal: NodeJS.Signals = 'SIGTERM'): Promise<Service> {
  if (interrupted) throw new Error('interrupted')
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  liveChildren.add(child)
  let output = ''
  let stdout = ''
  let spawnError: string | null = null
  const keep = (chunk: Buffer): void => {
    output += chunk.toString()
    if (output.length > OUTPUT_BYTES_MAX) output = output.slice(-OUTPUT_BYTES_MAX)
  }
  child.stdout?.on('data', (chunk: Buffer) => {
    keep(chunk)
    if (stdout.length < OUTPUT_BYTES_MAX) stdout += chunk.toString()
  })
  child.stderr?.on('data', keep)
  child.once('error', (error) => { spawnError = error.message })
  const service: Service = {
    name,
    child,
    pid: child.pid ?? 0,
    output: () => output,
    gone: () => spawnError !== null ? `could not start: ${spawnError}` : child.exitCode !== null ? `exited ${child.exitCode}` : child.signalCode !== null ? `killed by ${child.signalCode}` : null,
    stop: async () => { await stopChild(child, stopSignal, STOP_GRACE_MS) }
  }
  if (ready === null) return service
  const deadline = Date.now() + READY_TIMEOUT_MS
  try {
    for (;;) {
      if (ready.test(stdout)) return service
      const gone = service.gone()
      if (gone !== null) throw new Error(`${name} ${gone} before it was ready${keyLine(output)}:\n${tail(output, 10)}`)
      if (interrupted) throw new Error('interrupted')
      if (Date.now() > deadline) throw new Error(`${name} not ready within ${READY_TIMEOUT_MS} ms:\n${tail(output, 10)}`)
      await sleep(20)
    }
  } catch (error) {
    await service.stop()
    throw error
  }
}

/** One GET on a fresh connection (none left open to skew a proxy's connection count). */
async function httpGet (url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'GET', agent: false, headers: { connection: 'close' }, timeout: timeoutMs }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.once('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
      response.once('error', reject)
    })
    request.once('timeout', () => { request.destroy(new Error(`no answer within ${timeoutMs} ms`)) })
    request.once('error', reject)
    request.end()
  })
}

/** Polls `url` until it answers 200 with a body `accept` likes; throws when `service` dies or time runs out. */
async function waitForAnswer (url: string, service: Service, accept: (body: string) => boolean = () => true): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last = 'no answer yet'
  for (;;) {
    const gone = service.gone()
    if (gone !== null) throw new Error(`${service.name} ${gone}${keyLine(service.output())}:\n${tail(service.output(), 10)}`)
    if (interrupted) throw new Error('interrupted')
    try {
      const answer = await httpGet(url)
      if (answer.status === 200 && accept(answer.body)) return answer.body
      last = `HTTP ${answer.status} ${answer.body.slice(0, 200)}`
    } catch (error) {
      last = describeError(error)
    }
    if (Date.now() > deadline) throw new Error(`${service.name}: GET ${url} not answered as expected within ${READY_TIMEOUT_MS} ms (last: ${last}):\n${tail(service.output(), 10)}`)
    await sleep(100)
  }
}

// ---------------------------------------------------------------------------------------------
// wrk.

/** Counts answers outside 2xx (wrk itself counts only >= 400) and prints the summary as one JSON line. */
const WRK_SCRIPT = `-- Written by Synod's gateway bench (bench/gateway.ts).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local outside = 0
  for _, thread in ipairs(threads) do
    outside = outside + (thread:get("non2xx") or 0)
  end
  local mean = latency.mean
  if mean ~= mean then mean = 0 end
  local e = summary.errors
  io.write(string.format(
    'SYNOD_WRK {"requests":%d,"durationUs":%d,"bytes":%d,"non2xx":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, outside,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, mean))
end
`

interface WrkErrors { connect: number, read: number, write: number, status: number, timeout: number }

interface WrkFigures {
  url: string
  connections: number
  requests: number
  durationUs: number
  bytes: number
  /** Answers outside 2xx (a superset of wrk's `status` errors, which are those >= 400). */
  non2xx: number
  errors: WrkErrors
  /** wrk's percentiles, after its coordinated-omission correction (see `correctionIntervalUs`). */
  latencyUs: { p50: number, p90: number, p99: number, max: number, mean: number }
  /**
   * wrk 4 corrects its latency histogram for coordinated omission once the run is over: every
   * answer that took n us, n >= 2 x this interval (the run's duration / (answers / connections),
   * i.e. the mean time between requests on one connection), adds synthetic samples at n - interval,
   * n - 2 x interval, ... as long as they stay above the interval. Its percentiles are those of
   * the corrected histogram.
   */
  correctionIntervalUs: number
}

interface Wrk { path: string, version: string, script: string }

async function runWrk (wrk: Wrk, url: string, connections: number, seconds: number): Promise<WrkFigures> {
  const args = ['-t', String(Math.min(WRK_THREADS, connections)), '-c', String(connections), '-d', `${seconds}s`, '--timeout', `${WRK_TIMEOUT_S}s`, '-s', wrk.script, url]
  const run = await runCommand(wrk.path, args, (seconds + 30) * 1000, process.env, tracking)
  const line = run.output.split('\n').find((text) => text.startsWith('SYNOD_WRK '))
  if (run.code !== 0 || line === undefined) throw new Error(`wrk ${args.join(' ')} exited ${run.code ?? 'killed'} without its summary:\n${tail(run.output, 10)}`)
  const parsed = JSON.parse(line.slice('SYNOD_WRK '.length)) as Omit<WrkFigures, 'url' | 'connections' | 'correctionIntervalUs'>
  const perConnection = Math.floor(parsed.requests / connections)
  return { url, connections, ...parsed, correctionIntervalUs: perConnection > 0 ? Math.floor(parsed.durationUs / perConnection) : Number.NaN }
}

// ---------------------------------------------------------------------------------------------
// One measured run: a warm-up, then the measured wrk run(s), with the proxy's CPU around it.

type ScenarioId = 'a' | 'b'
type TargetName = 'direct' | 'nginx' | 'gateway' | 'bare node proxy'

interface ErrorCounts extends Omit<WrkErrors, 'status'> { non2xx: number }

interface Run {
  scenario: ScenarioId
  target: TargetName
  strategy: string
  measured: boolean
  /** Why it was not measured. */
  reason?: string
  /** 2xx answers per second (summed over the wrk processes). */
  reqPerS: number
  p50Ms: number
  p99Ms: number
  /** Every completed answer, 2xx or not. */
  requests: number
  errors: ErrorCounts
  errorsTotal: number
  proxyPids: number[]
  proxyCpuS: number
  proxyCpuUsPerReq: number
  /** The proxy's CPU during the measured run, in cores. */
  proxyCores: number
  upstreamCpuS: number
  /** The whole machine's busy CPU during the measured run, in cores (of `cpus().length`). */
  machineBusyCores: number
  /** Requests each upstream served during the measured run, by upstream name. */
  upstreamRequests: Record<string, number>
  wrk: WrkFigures[]
  warmup: WrkFigures[]
  /** The gateway's status and its nonzero error and retry counters after the run. */
  gateway?: { status: unknown, counters: string[] }
}

interface Upstream { name: string, url: string, delayMs: number, service: Service }

function notMeasured (scenario: ScenarioId, target: TargetName, strategy: string, reason: string): Run {
  return {
    scenario, target, strategy, measured: false, reason,
    reqPerS: Number.NaN, p50Ms: Number.NaN, p99Ms: Number.NaN, requests: 0,
    errors: { connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0 }, errorsTotal: 0,
    proxyPids: [], proxyCpuS: Number.NaN, proxyCpuUsPerReq: Number.NaN, proxyCores: Number.NaN,
    upstreamCpuS: Number.NaN, machineBusyCores: Number.NaN, upstreamRequests: {}, wrk: [], warmup: []
  }
}

async function upstreamCounts (upstreams: Upstream[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const upstream of upstreams) {
    try {
      counts[upstream.name] = (JSON.parse((await httpGet(`${upstream.url}/v1/upstream/stats`)).body) as { requests: number }).requests
    } catch {
      counts[upstream.name] = Number.NaN
    }
  }
  return counts
}

function checkUpstreams (upstreams: Upstream[]): void {
  for (const upstream of upstreams) {
    const gone = upstream.service.gone()
    if (gone !== null) throw new Error(`upstream ${upstream.name} ${gone}${keyLine(upstream.service.output())}:\n${tail(upstream.service.output(), 10)}`)
  }
}

async function measure (
  label: string, wrk: Wrk, load: Array<{ url: string, connections: number }>, proxyPids: number[], upstreams: Upstream[],
  base: Pick<Run, 'scenario' | 'target' | 'strategy'>, progress: (line: string) => void
): Promise<Run> {
  checkUpstreams(upstreams)
  progress(`${label}: warm-up ${WARMUP_S} s (figures discarded)`)
  const warmup = await Promise.all(load.map(async (target) => await runWrk(wrk, target.url, target.connections, WARMUP_S)))
  checkUpstreams(upstreams)
  progress(`${label}: measuring ${MEASURE_S} s, ${load.map((target) => `${target.connections} connections to ${target.url}`).join(', ')}`)
  const proxyCpu = (): number => proxyPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  const upstreamCpu = (): number => upstreams.reduce((sum, upstream) => sum + cpuSeconds(upstream.service.pid), 0)
  const countsBefore = await upstreamCounts(upstreams)
  const before = { at: performance.now(), proxy: proxyCpu(), upstream: upstreamCpu(), machine: machineBusySeconds() }
  const figures = await Promise.all(load.map(async (target) => await runWrk(wrk, target.url, target.connections, MEASURE_S)))
  const after = { at: performance.now(), proxy: proxyCpu(), upstream: upstreamCpu(), machine: machineBusySeconds() }
  const countsAfter = await upstreamCounts(upstreams)
  const seconds = (after.at - before.at) / 1000
  const requests = figures.reduce((sum, run) => sum + run.requests, 0)
  const errors: ErrorCounts = { connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0 }
  for (const run of figures) {
    errors.connect += run.errors.connect
    errors.read += run.errors.read
    errors.write += run.errors.write
    errors.timeout += run.errors.timeout
    errors.non2xx += run.non2xx
  }
  const proxyCpuS = after.proxy - before.proxy
  const result: Run = {
    ...base,
    measured: true,
    reqPerS: figures.reduce((sum, run) => sum + (run.requests - run.non2xx) / (run.durationUs / 1e6), 0),
    p50Ms: Math.max(...figures.map((run) => run.latencyUs.p50)) / 1000,
    p99Ms: Math.max(...figures.map((run) => run.latencyUs.p99)) / 1000,
    requests,
    errors,
    errorsTotal: errors.connect + errors.read + errors.write + errors.timeout + errors.non2xx,
    proxyPids,
    proxyCpuS: proxyPids.length === 0 ? Number.NaN : proxyCpuS,
    proxyCpuUsPerReq: proxyPids.length === 0 || requests === 0 ? Number.NaN : proxyCpuS * 1e6 / requests,
    proxyCores: proxyPids.length === 0 ? Number.NaN : proxyCpuS / seconds,
    upstreamCpuS: after.upstream - before.upstream,
    machineBusyCores: (after.machine - before.machine) / seconds,
    upstreamRequests: Object.fromEntries(upstreams.map((upstream) => [upstream.name, (countsAfter[upstream.name] ?? Number.NaN) - (countsBefore[upstream.name] ?? Number.NaN)])),
    wrk: figures,
    warmup
  }
  progress(`${label}: ${describeRun(result)}`)
  return result
}

function describeErrors (errors: ErrorCounts): string {
  return Object.entries(errors).filter(([, count]) => count > 0).map(([kind, count]) => `${kind === 'non2xx' ? 'non-2xx' : kind} ${count}`).join(', ')
}

function describeRun (run: Run): string {
  const total = Object.values(run.upstreamRequests).reduce((sum, count) => sum + count, 0)
  const shares = Object.entries(run.upstreamRequests).map(([name, count]) => `${name} ${total > 0 ? (100 * count / total).toFixed(1) : '-'}%`).join(' ')
  return `${run.reqPerS.toFixed(0)} req/s, p50 ${fixed(run.p50Ms, 2)} ms, p99 ${fixed(run.p99Ms, 2)} ms, ${run.errorsTotal} errors${run.errorsTotal > 0 ? ` (${describeErrors(run.errors)})` : ''}` +
    `${Number.isFinite(run.proxyCpuUsPerReq) ? `, proxy ${run.proxyCpuUsPerReq.toFixed(1)} us CPU/req (${run.proxyCores.toFixed(2)} cores)` : ''}` +
    `, upstreams served ${shares}, machine ${run.machineBusyCores.toFixed(2)} of ${cpus().length} cores busy`
}

// ---------------------------------------------------------------------------------------------
// The targets.

async function measureDirect (wrk: Wrk, upstreams: Upstream[], scenario: ScenarioId, progress: (line: string) => void): Promise<Run> {
  const base = { scenario, target: 'direct' as const, strategy: '-' }
  try {
    return await measure(`(${scenario}) direct`, wrk, upstreams.map((upstream) => ({ url: `${upstream.url}${REQUEST_PATH}`, connections: DIRECT_CONNECTIONS })), [], upstreams, base, progress)
  } catch (error) {
    return notMeasured(scenario, 'direct', '-', describeError(error))
  }
}

interface Nginx { path: string, version: string, /** Whether `-e` (the startup error log) is there: nginx >= 1.19.5. */ hasErrorLogFlag: boolean, modulesMissing: string[] }

function nginxConfig (dir: string, port: number, upstreams: Upstream[], nginx: Nginx): string {
  const tempPaths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .filter((kind) => !nginx.modulesMissing.includes(kind))
    .map((kind) => `  ${kind}_temp_path ${join(dir, `${kind}_temp`)};`)
  return [
    '# Written by Synod\'s gateway bench (bench/gateway.ts): one worker, round-robin, keep-alive to the upstreams.',
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    `worker_rlimit_nofile ${NGINX_WORKER_CONNECTIONS * 2};`,
    'user root;',
    `error_log ${join(dir, 'error.log')} warn;`,
    `pid ${join(dir, 'nginx.pid')};`,
    `events { worker_connections ${NGINX_WORKER_CONNECTIONS}; }`,
    'http {',
    '  access_log off;',
    ...tempPaths,
    '  upstream backends {',
    ...upstreams.map((upstream) => `    server ${new URL(upstream.url).host};`),
    `    keepalive ${NGINX_UPSTREAM_KEEPALIVE};`,
    '  }',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    location / {',
    '      proxy_pass http://backends;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n')
}

async function measureNginx (wrk: Wrk, nginx: Nginx, upstreams: Upstream[], scenario: ScenarioId, progress: (line: string) => void, configs: string[]): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-bench-nginx-'))
  tempDirs.add(dir)
  let service: Service | undefined
  let workers: number[] = []
  try {
    const port = await freePort()
    const config = nginxConfig(dir, port, upstreams, nginx)
    configs.push(config)
    const file = join(dir, 'nginx.conf')
    writeFileSync(file, config)
    const args = ['-c', file, '-p', `${dir}/`, ...(nginx.hasErrorLogFlag ? ['-e', join(dir, 'error.log')] : [])]
    const test = await runCommand(nginx.path, ['-t', ...args], 10_000, process.env, tracking)
    if (test.code !== 0) throw new Error(`nginx -t rejects the config (exit ${test.code ?? 'killed'}): ${tail(test.output, 5)}`)
    progress(`(${scenario}) nginx: starting ${nginx.path} -c ${file} (1 worker process, round-robin over ${upstreams.length} upstreams) on 127.0.0.1:${port}`)
    service = await startService('nginx', nginx.path, args, null, 'SIGQUIT')
    const errorLog = (): string => { try { return tail(readFileSync(join(dir, 'error.log'), 'utf8'), 10) } catch { return '' } }
    try {
      await waitForAnswer(`http://127.0.0.1:${port}${REQUEST_PATH}`, service, (body) => body.includes('"upstream"'))
    } catch (error) {
      const log = errorLog()
      throw new Error(`${describeError(error)}${keyLine(log)}\n${log}`)
    }
    workers = childPids(service.pid)
    for (const pid of workers) extraPids.add(pid)
    if (workers.length === 0) progress(`(${scenario}) nginx: warning: no worker process found under master ${service.pid}; CPU counts the master only`)
    const run = await measure(`(${scenario}) nginx round-robin`, wrk, [{ url: `http://127.0.0.1:${port}${REQUEST_PATH}`, connections: WRK_CONNECTIONS }], [service.pid, ...workers], upstreams,
      { scenario, target: 'nginx', strategy: 'round-robin' }, progress)
    const gone = service.gone()
    if (gone !== null) throw new Error(`nginx ${gone} during the run${keyLine(errorLog())}:\n${errorLog()}`)
    return run
  } catch (error) {
    return notMeasured(scenario, 'nginx', 'round-robin', describeError(error))
  } finally {
    if (service !== undefined) await stopChild(service.child, 'SIGQUIT', STOP_GRACE_MS, workers)
    rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  }
}

/** The gateway's error, retry and upstream-error counters that are not zero, from its /metrics. */
async function gatewayCounters (origin: string): Promise<string[]> {
  try {
    const text = (await httpGet(`${origin}/metrics`)).body
    return text.split('\n').filter((line) => /^synod_gateway_(errors_total|retries_total|retries_refused_total|upstream_errors_total|ejections_total)\b/.test(line) && !/ 0$/.test(line))
  } catch (error) {
    return [`GET /metrics failed: ${describeError(error)}`]
  }
}

/** The gateway configurations measured: `p2c` is the default (peak EWMA load); `p2c in-flight` is Envoy's least-request exactly. */
type GatewayStrategy = 'round-robin' | 'p2c' | 'p2c in-flight'

async function measureGateway (wrk: Wrk, strategy: GatewayStrategy, upstreams: Upstream[], scenario: ScenarioId, progress: (line: string) => void): Promise<Run> {
  let service: Service | undefined
  try {
    const port = await freePort()
    const origin = `http://127.0.0.1:${port}`
    const args = [
      SYNOD_MAIN, 'gateway', '--listen', `127.0.0.1:${port}`,
      ...upstreams.flatMap((upstream) => ['--upstream', upstream.url]),
      '--strategy', strategy === 'round-robin' ? 'round-robin' : 'p2c', ...(strategy === 'p2c in-flight' ? ['--p2c-load', 'in-flight'] : []), '--health-interval-ms', String(HEALTH_INTERVAL_MS), '--seed', String(GATEWAY_SEED)
    ]
    progress(`(${scenario}) gateway ${strategy}: starting synod gateway on ${origin} (one Node.js process)`)
    service = await startService('gateway', process.execPath, args, /gateway listening on /)
    // Every upstream serving (the first set starts at full weight, with no slow start).
    await waitForAnswer(`${origin}/v1/gateway/status`, service, (body) => {
      const status = JSON.parse(body) as { upstreams?: Array<{ serving?: boolean }> }
      return status.upstreams?.length === upstreams.length && status.upstreams.every((upstream) => upstream.serving === true)
    })
    await waitForAnswer(`${origin}${REQUEST_PATH}`, service, (body) => body.includes('"upstream"'))
    const run = await measure(`(${scenario}) gateway ${strategy}`, wrk, [{ url: `${origin}${REQUEST_PATH}`, connections: WRK_CONNECTIONS }], [service.pid], upstreams,
      { scenario, target: 'gateway', strategy }, progress)
    const gone = service.gone()
    if (gone !== null) throw new Error(`the gateway ${gone} during the run${keyLine(service.output())}:\n${tail(service.output(), 10)}`)
    let status: unknown
    try {
      status = JSON.parse((await httpGet(`${origin}/v1/gateway/status`)).body)
    } catch (error) {
      status = `GET /v1/gateway/status failed: ${describeError(error)}`
    }
    run.gateway = { status, counters: await gatewayCounters(origin) }
    if (run.gateway.counters.length > 0) progress(`(${scenario}) gateway ${strategy}: counters: ${run.gateway.counters.join('; ')}`)
    return run
  } catch (error) {
    return notMeasured(scenario, 'gateway', strategy, describeError(error))
  } finally {
    if (service !== undefined) await service.stop()
  }
}

/** The bare Node.js proxy (bench/bare-proxy.ts): the runtime's floor, for scale. */
async function measureBare (wrk: Wrk, upstreams: Upstream[], scenario: ScenarioId, progress: (line: string) => void): Promise<Run> {
  let service: Service | undefined
  try {
    const port = await freePort()
    const origin = `http://127.0.0.1:${port}`
    progress(`(${scenario}) bare node proxy: starting on ${origin} (one Node.js process, round-robin, no features)`)
    service = await startService('bare proxy', process.execPath, [BARE_PROXY_SCRIPT, '--port', String(port), ...upstreams.flatMap((upstream) => ['--upstream', upstream.url])], /listening/)
    await waitForAnswer(`${origin}${REQUEST_PATH}`, service, (body) => body.includes('"upstream"'))
    return await measure(`(${scenario}) bare node proxy`, wrk, [{ url: `${origin}${REQUEST_PATH}`, connections: WRK_CONNECTIONS }], [service.pid], upstreams,
      { scenario, target: 'bare node proxy', strategy: 'round-robin' }, progress)
  } catch (error) {
    return notMeasured(scenario, 'bare node proxy', 'round-robin', describeError(error))
  } finally {
    if (service !== undefined) await service.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

interface Scenario { id: ScenarioId, label: string, delays: number[] }

const SCENARIOS: Scenario[] = [
  { id: 'a', label: `(a) ${UPSTREAMS} healthy`, delays: Array.from({ length: UPSTREAMS }, () => 0) },
  { id: 'b', label: `(b) 1 slowed ${SLOW_DELAY_MS} ms`, delays: Array.from({ length: UPSTREAMS }, (_, index) => index === UPSTREAMS - 1 ? SLOW_DELAY_MS : 0) }
]

const TARGETS: Array<{ target: TargetName, strategy: string }> = [
  { target: 'direct', strategy: '-' },
  { target: 'nginx', strategy: 'round-robin' },
  { target: 'gateway', strategy: 'round-robin' },
  { target: 'gateway', strategy: 'p2c' },
  { target: 'gateway', strategy: 'p2c in-flight' },
  { target: 'bare node proxy', strategy: 'round-robin' }
]

async function runScenario (scenario: Scenario, wrk: Wrk, nginx: Nginx | { reason: string }, progress: (line: string) => void, configs: string[]): Promise<Run[]> {
  const upstreams: Upstream[] = []
  try {
    progress(`${scenario.label}: starting ${UPSTREAMS} upstreams (node:http${scenario.delays.some((delay) => delay > 0) ? `; delays ${scenario.delays.join(', ')} ms` : ''})`)
    for (const [index, delayMs] of scenario.delays.entries()) {
      const port = await freePort()
      const name = `u${index + 1}`
      const args = [UPSTREAM_SCRIPT, '--port', String(port), '--name', name, ...(delayMs > 0 ? ['--delay-ms', String(delayMs)] : [])]
      const service = await startService(`upstream ${name}`, process.execPath, args, /listening/)
      upstreams.push({ name, url: `http://127.0.0.1:${port}`, delayMs, service })
    }
  } catch (error) {
    await Promise.all(upstreams.map(async (upstream) => { await upstream.service.stop() }))
    return TARGETS.map(({ target, strategy }) => notMeasured(scenario.id, target, strategy, `${scenario.label}: upstreams did not start: ${describeError(error)}`))
  }
  const runs: Run[] = []
  try {
    for (const { target, strategy } of TARGETS) {
      if (interrupted) { runs.push(notMeasured(scenario.id, target, strategy, 'interrupted')); continue }
      if (target === 'direct') runs.push(await measureDirect(wrk, upstreams, scenario.id, progress))
      else if (target === 'nginx') runs.push('reason' in nginx ? notMeasured(scenario.id, 'nginx', strategy, `nginx not available: ${nginx.reason}`) : await measureNginx(wrk, nginx, upstreams, scenario.id, progress, configs))
      else if (target === 'bare node proxy') runs.push(await measureBare(wrk, upstreams, scenario.id, progress))
      else runs.push(await measureGateway(wrk, strategy as GatewayStrategy, upstreams, scenario.id, progress))
      const last = runs[runs.length - 1] as Run
      if (!last.measured) progress(`(${scenario.id}) ${target} ${strategy === '-' ? '' : `${strategy} `}not measured: ${last.reason ?? 'no reason given'}`)
    }
    return runs
  } finally {
    await Promise.all(upstreams.map(async (upstream) => { await upstream.service.stop() }))
  }
}

// ---------------------------------------------------------------------------------------------
// Tools.

async function findWrk (dir: string, progress: (line: string) => void): Promise<Wrk | { reason: string }> {
  const found = await findOrInstallDebian('wrk', 'wrk', progress, tracking)
  if ('reason' in found) return found
  // `wrk -v` prints its version line, then its usage, and exits 1.
  const version = (await runCommand(found.path, ['-v'], 10_000, process.env, tracking)).output.split('\n').find((line) => /^wrk /.test(line))?.trim() ?? 'unknown'
  const script = join(dir, 'report.lua')
  writeFileSync(script, WRK_SCRIPT)
  return { path: found.path, version, script }
}

async function findNginx (progress: (line: string) => void): Promise<Nginx | { reason: string }> {
  const found = await findOrInstallDebian('nginx', 'nginx', progress, tracking)
  if ('reason' in found) return found
  const version = (await runCommand(found.path, ['-v'], 10_000, process.env, tracking)).output.trim().split('\n')[0] ?? 'unknown'
  const built = (await runCommand(found.path, ['-V'], 10_000, process.env, tracking)).output
  if (built.includes('--without-http_proxy_module')) return { reason: `${found.path} was built without the proxy module` }
  const modulesMissing = ['fastcgi', 'uwsgi', 'scgi'].filter((kind) => built.includes(`--without-http_${kind}_module`))
  const [major, minor, patch] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(version)?.slice(1) ?? ['1', '99', '0']).map(Number) as [number, number, number]
  const hasErrorLogFlag = major > 1 || (major === 1 && (minor > 19 || (minor === 19 && patch >= 5)))
  return { path: found.path, version, hasErrorLogFlag, modulesMissing }
}

// ---------------------------------------------------------------------------------------------

export async function gatewayBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const configs: string[] = []
  const { wrk, nginx, runs } = await withCleanup(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-bench-gateway-'))
    tempDirs.add(dir)
    progress('wrk: looking for it (Debian package wrk)')
    const wrk = await findWrk(dir, progress)
    progress('reason' in wrk ? `wrk not available: ${wrk.reason}` : `wrk: ${wrk.path} (${wrk.version})`)
    progress('nginx: looking for it (Debian package nginx)')
    const nginx = await findNginx(progress)
    progress('reason' in nginx ? `nginx not available: ${nginx.reason}` : `nginx: ${nginx.path} (${nginx.version})`)
    const runs: Run[] = []
    for (const scenario of SCENARIOS) {
      if ('reason' in wrk) {
        runs.push(...TARGETS.map(({ target, strategy }) => notMeasured(scenario.id, target, strategy, `wrk not available: ${wrk.reason}`)))
        continue
      }
      runs.push(...await runScenario(scenario, wrk, nginx, progress, configs))
    }
    return { wrk, nginx, runs }
  })

  const labelOf = (id: ScenarioId): string => SCENARIOS.find((scenario) => scenario.id === id)?.label ?? id
  const rows = runs.map((run) => [
    labelOf(run.scenario), run.target, run.strategy,
    run.measured ? run.reqPerS.toFixed(0) : 'not measured',
    fixed(run.p50Ms, 2), fixed(run.p99Ms, 2),
    !run.measured ? '-' : run.errorsTotal === 0 ? '0' : `${run.errorsTotal} (${describeErrors(run.errors)})`,
    fixed(run.proxyCpuUsPerReq, 1)
  ])

  const find = (scenario: ScenarioId, target: TargetName, strategy: string): Run | undefined =>
    runs.find((run) => run.scenario === scenario && run.target === target && run.strategy === strategy && run.measured)
  const mark = (ok: boolean): string => ok ? 'PASS' : 'FAIL'
  const firstLine = (run: Run): string => (run.reason ?? 'no reason given').split('\n')[0] as string
  const nameOf = (run: Run): string => `(${run.scenario}) ${run.target}${run.strategy === '-' ? '' : ` ${run.strategy}`}`
  const whyMissing = (scenario: ScenarioId, pairs: Array<[TargetName, string]>): string => pairs
    .map(([target, strategy]) => runs.find((run) => run.scenario === scenario && run.target === target && run.strategy === strategy))
    .filter((run): run is Run => run !== undefined && !run.measured)
    .map((run) => `${nameOf(run)} not measured: ${firstLine(run)}`).join('; ')
  const lines: string[] = []
  const targets: Record<string, unknown> = {}

  const nginxA = find('a', 'nginx', 'round-robin')
  const p2cA = find('a', 'gateway', 'p2c')
  const rrA = find('a', 'gateway', 'round-robin')
  const bareA = find('a', 'bare node proxy', 'round-robin')
  if (nginxA !== undefined && p2cA !== undefined) {
    const ratio = p2cA.reqPerS / nginxA.reqPerS
    const rrRatio = rrA === undefined ? null : rrA.reqPerS / nginxA.reqPerS
    targets.throughput = { ratio, roundRobinRatio: rrRatio, min: TARGET_THROUGHPUT_RATIO_MIN, pass: ratio >= TARGET_THROUGHPUT_RATIO_MIN }
    lines.push(`(a) gateway (p2c) req/s / nginx req/s = ${ratio.toFixed(2)} (${p2cA.reqPerS.toFixed(0)} vs ${nginxA.reqPerS.toFixed(0)} req/s), target >= ${TARGET_THROUGHPUT_RATIO_MIN.toFixed(2)}: ${mark(ratio >= TARGET_THROUGHPUT_RATIO_MIN)}` +
      `; round-robin: ${rrA === undefined || rrRatio === null ? 'not measured' : `${rrRatio.toFixed(2)} (${rrA.reqPerS.toFixed(0)} req/s)`}` +
      (bareA === undefined ? '' : `; the bare Node.js proxy (the runtime's floor, no features): ${(bareA.reqPerS / nginxA.reqPerS).toFixed(2)} x nginx (${bareA.reqPerS.toFixed(0)} req/s, ${fixed(bareA.proxyCpuUsPerReq, 1)} us CPU/req), the gateway ${(p2cA.reqPerS / bareA.reqPerS).toFixed(2)} x the bare proxy`))
  } else {
    targets.throughput = { ratio: null, pass: null }
    lines.push(`(a) gateway (p2c) req/s >= ${TARGET_THROUGHPUT_RATIO_MIN.toFixed(2)} x nginx: not judged: ${whyMissing('a', [['nginx', 'round-robin'], ['gateway', 'p2c']])}`)
  }

  const nginxB = find('b', 'nginx', 'round-robin')
  const p2cB = find('b', 'gateway', 'p2c')
  const rrB = find('b', 'gateway', 'round-robin')
  const inFlightB = find('b', 'gateway', 'p2c in-flight')
  const slowName = `u${UPSTREAMS}`
  const slowShare = (run: Run | undefined): string => {
    if (run === undefined) return '-'
    const total = Object.values(run.upstreamRequests).reduce((sum, count) => sum + count, 0)
    return total > 0 ? `${(100 * (run.upstreamRequests[slowName] ?? 0) / total).toFixed(1)}%` : '-'
  }
  if (nginxB !== undefined && p2cB !== undefined) {
    const ratio = p2cB.p99Ms / nginxB.p99Ms
    targets.p99 = { ratio, max: TARGET_P99_RATIO_MAX, pass: ratio <= TARGET_P99_RATIO_MAX, roundRobinRatio: rrB === undefined ? null : rrB.p99Ms / nginxB.p99Ms }
    lines.push(`(b) gateway p2c p99 / nginx round-robin p99 = ${ratio.toFixed(2)} (${fixed(p2cB.p99Ms, 2)} vs ${fixed(nginxB.p99Ms, 2)} ms), target <= ${TARGET_P99_RATIO_MAX.toFixed(2)}: ${mark(ratio <= TARGET_P99_RATIO_MAX)}` +
      `; gateway round-robin p99 ${rrB === undefined ? 'not measured' : `${fixed(rrB.p99Ms, 2)} ms`}` +
      `; gateway p2c in-flight (Envoy's least-request) p99 ${inFlightB === undefined ? 'not measured' : `${fixed(inFlightB.p99Ms, 2)} ms`}` +
      `; share of requests the slowed upstream (${slowName}) served: nginx ${slowShare(nginxB)}, gateway round-robin ${slowShare(rrB)}, gateway p2c ${slowShare(p2cB)}, gateway p2c in-flight ${slowShare(inFlightB)}` +
      ' (a proxy that sends more than 1% of its requests there has a per-request p99 of at least the delay, whatever the load generator)')
  } else {
    targets.p99 = { ratio: null, pass: null }
    lines.push(`(b) gateway p2c p99 <= ${TARGET_P99_RATIO_MAX.toFixed(2)} x nginx round-robin p99: not judged: ${whyMissing('b', [['nginx', 'round-robin'], ['gateway', 'p2c']])}`)
  }

  for (const run of runs) {
    if (!run.measured) continue
    if (run.errorsTotal > 0) lines.push(`errors: ${nameOf(run)}: ${run.errorsTotal} (${describeErrors(run.errors)})`)
  }
  const counters = runs.filter((run) => (run.gateway?.counters.length ?? 0) > 0)
  if (counters.length > 0) {
    lines.push(`the gateway's own error/retry counters after its runs (warm-up included; the errors column is what wrk saw): ${counters.map((run) => `${nameOf(run)}: ${run.gateway?.counters.map((line) => line.replace(/^synod_gateway_/, '')).join(', ') ?? ''}`).join('; ')}`)
  }
  // Each reason once, with the runs it kept from being measured.
  const unmeasured = new Map<string, string[]>()
  for (const run of runs.filter((candidate) => !candidate.measured)) unmeasured.set(firstLine(run), [...(unmeasured.get(firstLine(run)) ?? []), nameOf(run)])
  for (const [reason, names] of unmeasured) lines.push(`not measured: ${names.join(', ')}: ${reason}`)
  lines.push(`notes: nginx and the gateway get one process each (nginx: worker_processes 1, plus its idle master; the gateway: one Node.js process), round-robin in nginx, keep-alive to the upstreams in both; ` +
    `direct = ${UPSTREAMS} wrk processes at once, one per upstream, ${DIRECT_CONNECTIONS} connections each: req/s summed, p50 and p99 the worst (max) of the three; ` +
    `req/s counts 2xx answers; errors = connect + read + write + timeout + non-2xx answers; proxy CPU = the proxy process(es)' CPU during the measured run / answers; ` +
    'p50/p99 are wrk\'s, which corrects for coordinated omission (each answer slower than twice the mean per-connection interval adds synthetic samples below it), so with mixed latencies, as in (b), p50 is not the median request\'s latency; ' +
    `wrk, the proxy and the ${UPSTREAMS} upstreams share this machine's ${cpus().length} cores`)

  return {
    name: 'gateway',
    title: `HTTP proxying: synod gateway (round-robin, p2c) vs nginx ${'reason' in nginx ? '(not available)' : nginx.version.replace(/^nginx version: /, '')} (1 worker, round-robin) vs direct, ` +
      `${UPSTREAMS} node:http upstreams (~100-byte JSON answers); wrk ${WRK_THREADS} thread, ${WRK_CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${MEASURE_S} s measured per target; ` +
      `(a) ${UPSTREAMS} healthy upstreams, (b) the third slowed by ${SLOW_DELAY_MS} ms; req/s of 2xx answers, wrk's latency percentiles, proxy CPU per request`,
    header: ['scenario', 'target', 'strategy', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'proxy CPU µs/req'],
    rows,
    verdict: lines.join('\n'),
    data: {
      settings: {
        wrkThreads: WRK_THREADS,
        wrkConnections: WRK_CONNECTIONS,
        directConnectionsPerUpstream: DIRECT_CONNECTIONS,
        warmupS: WARMUP_S,
        measureS: MEASURE_S,
        wrkTimeoutS: WRK_TIMEOUT_S,
        upstreams: UPSTREAMS,
        slowDelayMs: SLOW_DELAY_MS,
        requestPath: REQUEST_PATH,
        gateway: { healthIntervalMs: HEALTH_INTERVAL_MS, seed: GATEWAY_SEED },
        nginx: { workerProcesses: 1, workerConnections: NGINX_WORKER_CONNECTIONS, upstreamKeepalive: NGINX_UPSTREAM_KEEPALIVE },
        cores: cpus().length
      },
      versions: {
        node: process.version,
        wrk: 'reason' in wrk ? null : wrk.version,
        nginx: 'reason' in nginx ? null : nginx.version
      },
      tools: {
        wrk: 'reason' in wrk ? { reason: wrk.reason } : { path: wrk.path },
        nginx: 'reason' in nginx ? { reason: nginx.reason } : { path: nginx.path }
      },
      targets,
      nginxConfig: configs[0] ?? null,
      wrkScript: WRK_SCRIPT,
      runs
    }
  }
}
