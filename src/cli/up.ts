/**
 * `synod up`: a local cluster of node processes. Initialises the data directory on first use,
 * starts one `synod node` child per node config, waits until every node is healthy and linked to
 * all others (showing progress), prints the addresses, and stops them all cleanly on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, loadNodeConfig, type LoadedConfig } from '../node/index.js'
import { Gateway, parseGatewayConfig, type LocalClusterControl } from '../gateway/index.js'
import { newAdminToken } from '../core/index.js'
import { initNetwork } from './init.js'
import { defaultSpecFor, type TopologyName } from '../net/index.js'
import { CliError } from './errors.js'
import type { ConsensusChoice } from './options.js'

export interface UpOptions {
  nodes: number
  /** Topology name for a new network (ignored, with a note, when the data directory exists). */
  topology?: TopologyName
  dataDir: string
  basePort: number
  /** Milliseconds to wait for the cluster to become healthy. */
  readyTimeoutMs: number
  /** A ledger with this engine for a new network: PoS when not given. */
  consensus?: ConsensusChoice
  /** Miner threads per node; by default the cores shared out among the nodes (at least 1). */
  minerThreads?: number
  /** The gateway's port on 127.0.0.1; 0 picks a free one. */
  gatewayPort: number
  print: (line: string) => void
}

const MAIN_SCRIPT = fileURLToPath(new URL('./main.js', import.meta.url))
/** The built dashboard (`npm run build` puts Vite's output there). */
export const DASHBOARD_ASSETS_DIR = fileURLToPath(new URL('../../web/', import.meta.url))
/** How long a node gets to stop after SIGTERM before it is killed. */
export const STOP_GRACE_MS = 10_000
const POLL_INTERVAL_MS = 250

interface Child { config: LoadedConfig, process: ChildProcess, exited: Promise<number | null> }

function nodeConfigFiles (dir: string): string[] {
  return readdirSync(dir).filter((name) => /^node-\d+\.json$/.test(name))
    .sort((a, b) => Number(a.slice(5, -5)) - Number(b.slice(5, -5)))
    .map((name) => join(dir, name))
}

/**
 * V8 flags for node processes that share this machine's cores. By default V8 marks and sweeps the
 * heap on background threads while JavaScript runs, and scavenges with several threads at once:
 * with cores to spare that shortens a node's pauses. When the nodes are at least as many as the
 * cores, no core is spare under load: a node's collector threads take the CPU from the other
 * nodes' main threads, and the concurrency's own costs (write barriers, hand-offs between
 * threads) buy nothing. So each node then collects on its own thread (`--single-threaded-gc`),
 * as the JVM picks its serial collector on a machine with fewer than two processors. What the
 * consensus bench measured of it (a gain within this host's noise): docs/consensus.md. Flags in
 * SYNOD_NODE_EXEC_ARGV come after these: `--no-single-threaded-gc` there undoes it.
 */
export function colocatedNodeFlags (nodes: number, cores: number): string[] {
  return nodes >= cores ? ['--single-threaded-gc'] : []
}

/** Whether node flags leave V8's single-threaded collector on (the last of the flag and its `--no-` form wins). */
export function singleThreadedGc (flags: readonly string[]): boolean {
  return flags.lastIndexOf('--single-threaded-gc') > flags.lastIndexOf('--no-single-threaded-gc')
}

function startChild (configFile: string, logDir: string, extraArgs: string[], adminToken: string, execArgv: string[]): Child {
  const config = loadNodeConfig(configFile)
  const log = createWriteStream(join(logDir, `${config.node.nodeId}.log`), { flags: 'a' })
  const child = spawn(process.execPath, [...execArgv, MAIN_SCRIPT, 'node', '--config', configFile, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SYNOD_ADMIN_TOKEN: adminToken } })
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const exited = new Promise<number | null>((resolveExit) => { child.once('exit', (code) => { resolveExit(code) }) })
  return { config, process: child, exited }
}

interface StatusBody { peers?: Array<{ state?: string }> }

/** Whether every overlay link of the node is up; null while the node does not answer. */
async function allLinksUp (apiUrl: string): Promise<boolean | null> {
  try {
    const response = await fetch(`${apiUrl}/v1/status`, { signal: AbortSignal.timeout(1_000) })
    if (!response.ok) return null
    const peers = (await response.json() as StatusBody).peers ?? []
    return peers.every((peer) => peer.state === 'connected')
  } catch {
    return null
  }
}

/** Polls until every node has all its overlay links up; stops early when `failure()` names a reason. */
export async function waitForCluster (apis: string[], timeoutMs: number, progress: (healthy: number, linked: number) => void, failure: () => string | null = () => null): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const reason = failure()
    if (reason !== null) throw new CliError('CLI_NODE_EXITED', reason)
    const views = await Promise.all(apis.map(allLinksUp))
    const healthy = views.filter((view) => view !== null).length
    const linked = views.filter((view) => view === true).length
    const line = `${healthy}/${linked}`
    if (line !== last) { progress(healthy, linked); last = line }
    if (linked === apis.length) return true
    await new Promise((resolveWait) => setTimeout(resolveWait, POLL_INTERVAL_MS))
  }
  return false
}

export async function stopChildren (children: Child[]): Promise<void> {
  for (const child of children) if (child.process.exitCode === null) child.process.kill('SIGTERM')
  await Promise.all(children.map(async (child) => {
    const timer = setTimeout(() => { child.process.kill('SIGKILL') }, STOP_GRACE_MS)
    await child.exited
    clearTimeout(timer)
  }))
}

export async function up (options: UpOptions): Promise<void> {
  const dir = resolve(options.dataDir)
  const { print } = options
  if (!existsSync(join(dir, 'network.json'))) {
    print(`initialising a ${options.nodes}-node network in ${dir}`)
    initNetwork({ nodes: options.nodes, out: dir, basePort: options.basePort, networkId: 'synod-local', topology: defaultSpecFor(options.topology ?? 'full-mesh'), consensus: options.consensus ?? 'pos' })
  }
  const files = nodeConfigFiles(dir)
  if (files.length !== options.nodes) {
    throw new CliError('CLI_DATA_DIR_MISMATCH', `${dir} holds a ${files.length}-node network, not ${options.nodes}; pass --nodes ${files.length} or another --data-dir`, { dir })
  }
  const network = loadNodeConfig(files[0] as string).network
  const existing = network.topology?.kind ?? 'full-mesh'
  if (options.topology !== undefined && options.topology !== existing) {
    print(`note: ${dir} already holds a ${existing} network; --topology ${options.topology} applies only to a new data directory`)
  }
  print(`topology: ${existing}`)
  const consensus = network.ledger?.consensus
  if (options.consensus !== undefined && options.consensus !== (consensus ?? 'none')) {
    print(`note: ${dir} already holds a network with ${consensus ?? 'no ledger'}; --consensus ${options.consensus} applies only to a new data directory`)
  }
  const cores = availableParallelism()
  const minerThreads = options.minerThreads ?? Math.max(1, Math.floor(cores / files.length))
  const extraArgs = consensus === 'pow' ? ['--miner-threads', String(minerThreads)] : []
  print(consensus === undefined
    ? 'ledger: none (start a new data directory with --consensus pos, dpos or pow for one)'
    : `ledger: ${consensus}, chain ${network.ledger?.chainId ?? ''}${consensus === 'pow' ? `, ${minerThreads} miner thread(s) per node` : `, ${network.ledger?.validators?.length ?? 0} ${consensus === 'dpos' ? 'producer candidates' : 'validators'}`}`)
  // SYNOD_NODE_EXEC_ARGV: Node.js flags for the node processes (profiling, say: `--cpu-prof`), after ours.
  const nodeFlags = [...colocatedNodeFlags(files.length, cores), ...(process.env.SYNOD_NODE_EXEC_ARGV ?? '').split(' ').filter((flag) => flag.length > 0)]
  if (singleThreadedGc(nodeFlags)) print(`V8: single-threaded garbage collection in each node (${files.length} nodes share ${cores} cores)`)
  const logDir = join(dir, 'logs')
  mkdirSync(logDir, { recursive: true })
  // The admin token guards fault injection (the dashboard's Faults view, /v1/admin/*) on this
  // local cluster only: a fresh one per run, handed to the nodes and printed for the user.
  const adminToken = newAdminToken()
  const children = files.map((file) => startChild(file, logDir, extraArgs, adminToken, nodeFlags))
  const killed = new Set<string>()
  let stopping = false
  let gateway: Gateway | null = null
  const stopAll = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    if (gateway !== null) {
      print('stopping the gateway...')
      await gateway.stop()
    }
    print('stopping nodes...')
    await stopChildren(children)
    print('all nodes stopped')
  }
  const onSignal = (): void => { void stopAll().then(() => process.exit(0)) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const reportExit = (child: Child): void => {
    void child.exited.then((code) => {
      const id = child.config.node.nodeId
      if (stopping) return
      if (killed.has(id)) print(`node ${id} killed (SIGKILL) from the dashboard`)
      else print(`node ${id} exited with code ${code ?? 'signal'}; see ${join(logDir, id + '.log')}`)
    })
  }
  for (const child of children) reportExit(child)
  const running = (child: Child): boolean => child.process.exitCode === null && child.process.signalCode === null
  const childOf = (id: string): { child: Child, index: number } => {
    const index = children.findIndex((child) => child.config.node.nodeId === id)
    if (index === -1) throw new CliError('CLI_BAD_INPUT', `no node ${id}`, { id })
    return { child: children[index] as Child, index }
  }
  const control: LocalClusterControl = {
    nodes: () => children.map((child) => ({ id: child.config.node.nodeId, api: child.config.self.api, pid: running(child) ? (child.process.pid ?? null) : null, running: running(child) })),
    kill: async (id) => {
      const { child } = childOf(id)
      if (!running(child)) return
      killed.add(id)
      child.process.kill('SIGKILL')
      await child.exited
    },
    restart: async (id) => {
      const { child, index } = childOf(id)
      if (running(child)) return
      killed.delete(id)
      const next = startChild(files[index] as string, logDir, extraArgs, adminToken, nodeFlags)
      children[index] = next
      reportExit(next)
      print(`node ${id} restarted from the dashboard`)
    }
  }
  const apis = children.map((child) => child.config.self.api)
  print(`starting ${children.length} nodes (logs in ${logDir})`)
  const exitedEarly = (): string | null => {
    const gone = children.find((child) => child.process.exitCode !== null || child.process.signalCode !== null)
    return gone === undefined ? null : `node ${gone.config.node.nodeId} exited while starting; see ${join(logDir, gone.config.node.nodeId + '.log')}`
  }
  let ready: boolean
  try {
    ready = await waitForCluster(apis, options.readyTimeoutMs, (healthy, linked) => {
      print(`  ${healthy}/${children.length} nodes healthy, ${linked}/${children.length} with all overlay links up`)
    }, exitedEarly)
  } catch (error) {
    await stopAll()
    throw error
  }
  if (!ready) {
    await stopAll()
    throw new CliError('CLI_CLUSTER_NOT_READY', `the cluster did not become ready within ${options.readyTimeoutMs} ms; see the logs in ${logDir}`, { logDir })
  }
  print('')
  print('cluster ready:')
  for (const child of children) print(`  node ${child.config.node.nodeId}  api ${child.config.self.api}  p2p ${child.config.self.p2p}`)
  try {
    gateway = new Gateway(parseGatewayConfig({
      listen: `127.0.0.1:${options.gatewayPort}`,
      strategy: 'key-affinity',
      upstreams: children.map((child) => ({ url: child.config.self.api, id: child.config.node.nodeId })),
      cluster: { follow: true }
    }, 'synod up'), {
      log: createLogger({ component: 'gateway' }, 'info', createWriteStream(join(logDir, 'gateway.log'), { flags: 'a' })),
      dashboard: { assetsDir: DASHBOARD_ASSETS_DIR, local: { control, adminToken } }
    })
    await gateway.start()
  } catch (error) {
    await stopAll()
    throw error
  }
  const front = gateway.address()
  print(`  gateway ${front}  (key-affinity over the nodes; status ${front}/v1/gateway/status)`)
  print('')
  print(`store: curl -X PUT --data-binary hello ${front}/v1/kv/greeting; curl ${front}/v1/kv/greeting  (or synod kv put|get --api ${front})`)
  print(`dashboard: ${front}/dashboard/#token=${adminToken}`)
  print(`admin token (fault injection, /v1/admin/*): ${adminToken}`)
  print('press Ctrl-C to stop the cluster; data is kept in ' + dir + ' for the next start')
  await new Promise<void>(() => {})
}
