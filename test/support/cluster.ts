/**
 * Real node processes on loopback for cluster tests: `synod init` into a temporary directory,
 * one `synod node` child process per node, each logging to its own file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { initNetwork, API_PORT_OFFSET, type InitResult } from '../../src/cli/init.js'
import type { TopologySpecInput } from '../../src/net/index.js'
import { waitUntil } from './ports.js'

export const SYNOD_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

async function portFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

/**
 * A base port such that base..base+count and the API ports above them are all free. Drawn below
 * Linux's ephemeral range (32768 and up), so an outgoing connection cannot take a port between
 * this check and the node binding it.
 */
export async function freeBasePort (count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (32_000 - 20_000 - API_PORT_OFFSET - count))
    const ports = Array.from({ length: count }, (_, i) => [base + i, base + API_PORT_OFFSET + i]).flat()
    const free = await Promise.all(ports.map(portFree))
    if (free.every(Boolean)) return base
  }
  throw new Error('no free port range found')
}

/** How long a starting node may take to answer `/v1/health`. */
/** GETs a JSON body; null when the node does not answer or answers with an error. */
export async function getJson<T> (url: string): Promise<T | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) })
    return response.ok ? await response.json() as T : null
  } catch {
    return null
  }
}

export const HEALTHY_TIMEOUT_MS = 20_000

export interface PeerLinkStatus { peer: string, state: string }
export interface NodeStatusBody {
  nodeId: string
  /** The node's process id. */
  pid: number
  peers: PeerLinkStatus[]
  transport: { refusedPeers: number, badFrames: number, reconnects: number }
  services: { hello?: { boots: number, bootDurable: boolean, reachable: string[] } }
}

export class TestCluster {
  readonly dir: string
  readonly init: InitResult
  private readonly children = new Map<number, ChildProcess>()
  /** Environment variables added for the node processes started from now on (SYNOD_ADMIN_TOKEN, say). */
  extraEnv: Record<string, string> = {}

  protected constructor (dir: string, init: InitResult) {
    this.dir = dir
    this.init = init
  }

  static async create (nodes: number, topology?: TopologySpecInput): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'synod-cluster-'))
    const init = initNetwork({ nodes, out: dir, basePort: await freeBasePort(nodes), networkId: 'synod-test', topology })
    return new TestCluster(dir, init)
  }

  get size (): number { return this.init.members.length }

  nodeId (index: number): string { return this.member(index).id }

  api (index: number): string { return this.member(index).api }

  start (index: number, configFile = this.init.nodeFiles[index]): ChildProcess {
    if (configFile === undefined) throw new Error(`no node ${index}`)
    const log = createWriteStream(join(this.dir, `node-${index}.log`), { flags: 'a' })
    const [command, ...args] = this.nodeCommand(index, [process.execPath, SYNOD_MAIN, 'node', '--config', configFile])
    const child = spawn(command ?? process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.extraEnv } })
    child.stdout?.pipe(log)
    child.stderr?.pipe(log)
    this.children.set(index, child)
    return child
  }

  startAll (): void {
    for (let index = 0; index < this.size; index++) this.start(index)
  }

  /** Starts every node and waits until each answers `/v1/health`. */
  async startAllHealthy (timeoutMs = HEALTHY_TIMEOUT_MS): Promise<void> {
    this.startAll()
    await Promise.all(Array.from({ length: this.size }, async (_, index) => { await this.waitHealthy(index, timeoutMs) }))
  }

  /** Stops a node (SIGTERM: a clean stop by default), starts it again and waits until it is healthy. */
  async restart (index: number, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = HEALTHY_TIMEOUT_MS): Promise<void> {
    await this.kill(index, signal)
    this.start(index)
    await this.waitHealthy(index, timeoutMs)
  }

  /**
   * Waits until node `index` answers `/v1/health`. Fails at once if its process exits, and on
   * failure names the node and shows the end of its log.
   */
  async waitHealthy (index: number, timeoutMs = HEALTHY_TIMEOUT_MS): Promise<void> {
    const child = this.children.get(index)
    const api = this.api(index)
    const exited = (): boolean => child === undefined || child.exitCode !== null || child.signalCode !== null
    try {
      await waitUntil(async () => {
        if (exited()) throw new Error(`its process exited (${child?.exitCode ?? child?.signalCode ?? 'not started'})`)
        try {
          return (await fetch(`${api}/v1/health`, { signal: AbortSignal.timeout(1_000) })).ok
        } catch {
          return false
        }
      }, timeoutMs, `${api}/v1/health`, 100)
    } catch (error) {
      throw new Error(`node ${index} (${this.nodeId(index)}) did not become healthy: ${error instanceof Error ? error.message : String(error)}\n` +
        `--- last lines of ${join(this.dir, `node-${index}.log`)}\n${this.logTail(index)}`)
    }
  }

  async kill (index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.children.get(index)
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
    this.children.delete(index)
  }

  async status (index: number, api = this.api(index)): Promise<NodeStatusBody | null> {
    return await this.getJson<NodeStatusBody>(index, '/v1/status', api)
  }

  /** `GET path` on node `index`'s API: the JSON body, or null on any error or non-2xx answer. */
  async getJson<T> (index: number, path: string, api = this.api(index)): Promise<T | null> {
    try {
      const response = await fetch(`${api}${path}`, { signal: AbortSignal.timeout(2_000) })
      return response.ok ? await response.json() as T : null
    } catch {
      return null
    }
  }

  async connectedPeers (index: number): Promise<string[]> {
    const status = await this.status(index)
    return (status?.peers ?? []).filter((peer) => peer.state === 'connected').map((peer) => peer.peer).sort()
  }

  /** Every node's log, for a failure message. */
  logs (): string {
    return [...this.children.keys()].map((index) => `--- node ${index}\n${this.logTail(index)}`).join('\n')
  }

  log (index: number): string {
    try { return readFileSync(join(this.dir, `node-${index}.log`), 'utf8') } catch { return '' }
  }

  logTail (index: number, lines = 15): string {
    return this.log(index).split('\n').slice(-lines).join('\n')
  }

  async destroy (): Promise<void> {
    await Promise.all([...this.children.keys()].map(async (index) => { await this.kill(index) }))
    rmSync(this.dir, { recursive: true, force: true })
  }

  /**
   * The command line that runs node `index`, given the plain one (`node main.js node --config
   * FILE`); a subclass may wrap it, for example to run the node in a network namespace.
   */
  protected nodeCommand (_index: number, plain: string[]): string[] {
    return plain
  }

  private member (index: number): InitResult['members'][number] {
    const member = this.init.members[index]
    if (member === undefined) throw new Error(`no node ${index}`)
    return member
  }
}

export interface UpRun { output: () => string, ready: Promise<void>, stop: () => Promise<number | null> }

const upRuns: UpRun[] = []

/** Runs `synod up` (3 nodes unless `args` say otherwise); `ready` resolves once it prints that the cluster is ready. */
export function runSynodUp (dataDir: string, basePort: number, args: string[] = ['--nodes', '3', '--gateway-port', '0']): UpRun {
  const child = spawn(process.execPath, [SYNOD_MAIN, 'up', '--data-dir', dataDir, '--base-port', String(basePort), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.includes('press Ctrl-C')) resolve()
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    void exited.then(() => { reject(new Error(`synod up exited early:\n${output}`)) })
  })
  const run: UpRun = {
    output: () => output,
    ready,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
      return await exited
    }
  }
  upRuns.push(run)
  return run
}

/** Stops every `synod up` a test started (for `finally` blocks). */
export async function stopAllUpRuns (): Promise<void> {
  await Promise.all(upRuns.map(async (run) => await run.stop()))
}
