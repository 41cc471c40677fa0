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

export interface PeerLinkStatus { peer: string, state: string }
export interface NodeStatusBody {
  nodeId: string
  peers: PeerLinkStatus[]
  transport: { refusedPeers: number, badFrames: number, reconnects: number }
  services: { hello?: { boots: number, bootDurable: boolean, reachable: string[] } }
}

export class TestCluster {
  readonly dir: string
  readonly init: InitResult
  private readonly children = new Map<number, ChildProcess>()

  private constructor (dir: string, init: InitResult) {
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
    const child = spawn(process.execPath, [SYNOD_MAIN, 'node', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.pipe(log)
    child.stderr?.pipe(log)
    this.children.set(index, child)
    return child
  }

  startAll (): void {
    for (let index = 0; index < this.size; index++) this.start(index)
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
    try {
      const response = await fetch(`${api}/v1/status`, { signal: AbortSignal.timeout(2_000) })
      return response.ok ? await response.json() as NodeStatusBody : null
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
    return [...this.children.keys()].map((index) => `--- node ${index}\n${this.log(index).split('\n').slice(-15).join('\n')}`).join('\n')
  }

  log (index: number): string {
    try { return readFileSync(join(this.dir, `node-${index}.log`), 'utf8') } catch { return '' }
  }

  async destroy (): Promise<void> {
    await Promise.all([...this.children.keys()].map(async (index) => { await this.kill(index) }))
    rmSync(this.dir, { recursive: true, force: true })
  }

  private member (index: number): InitResult['members'][number] {
    const member = this.init.members[index]
    if (member === undefined) throw new Error(`no node ${index}`)
    return member
  }
}
