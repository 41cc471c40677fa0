/**
 * Cluster tests whose nodes run on separate "hosts": one Linux network namespace per node, each
 * wired by a veth pair to one bridge in the root namespace, so a test can cut the network between
 * groups of hosts (a real partition of real TCP connections) and heal it. Needs root and
 * iproute2; `netnsAvailable()` says whether this machine can, and why not.
 *
 * Layout for a cluster with subnet 10.77.X.0/24 (X drawn from the pid, skipping subnets in use):
 *
 *   root namespace: bridge `sy-<pid in base 36>-<k>-b` with 10.77.X.254, the test process talks to the APIs
 *   host i:         namespace `synod-<pid>-<k>-h<i>`, `lo` up, `eth0` with 10.77.X.(i+1)/24,
 *                   whose other end `sy-<pid>-<k>-h<i>` is a port of the bridge
 *
 * How a partition is made: in host A's namespace, `ip rule add from <ip of B> iif eth0 blackhole`
 * for every B across the cut (and the same in B's namespace for A). Every packet still leaves its
 * sender and is silently discarded on arrival, which is what a real partition looks like to TCP:
 * an established connection retransmits with back-off and reports no error, and a new connect()
 * hangs until its own timeout. An egress `ip route add blackhole|unreachable|prohibit <ip>/32`
 * is not as faithful: the sender's own kernel refuses the packet, so connect() fails at once
 * (EINVAL, EHOSTUNREACH or EACCES) and a stalled connection resumes at once on the heal instead of
 * after its retransmission back-off; for an established connection the three route types are
 * indistinguishable. `blackhole` rather than `unreachable` or `prohibit` for the ingress rule
 * because it is the one type documented never to answer (the other two exist to send an ICMP
 * error; on this kernel a connect() across such a cut still hung, but nothing depends on that). For the ingress rules to see packets addressed to
 * the host itself, each namespace's `local` table rule moves from priority 0 to
 * `LOCAL_RULE_PRIORITY`, behind the partition rules.
 *
 * Cleanup: `close()` kills the nodes and removes namespaces, veths and the bridge; a process
 * 'exit' hook does the same for clusters a crashed test did not close; and creating a cluster
 * first removes what a SIGKILLed earlier run (a pid no longer alive) left behind.
 */
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { InitResult } from '../../src/cli/init.js'
import { networkConfigSchema, readJsonFile } from '../../src/node/index.js'
import { SYNOD_MAIN, TestCluster } from './cluster.js'
import { waitUntil } from './ports.js'

const execFileAsync = promisify(execFile)

const NAMESPACE_PREFIX = 'synod-'
const LINK_PREFIX = 'sy-'
const DIRECTORY_PREFIX = 'synod-netns-'
const SUBNET_PREFIX = '10.77'
const BRIDGE_HOST_OCTET = 254
const HOSTS_MAX = 64
/** Priority of the partition rules; below `LOCAL_RULE_PRIORITY` so they see local traffic too. */
const PARTITION_RULE_PRIORITY = 100
const LOCAL_RULE_PRIORITY = 1_000
/** Ports inside a namespace are the host's own, so every cluster can use the documented ones. */
const BASE_PORT = 7100
const IP_COMMAND_TIMEOUT_MS = 10_000

/** Runs `ip ARGS`; a failure names the command and carries its stderr. */
async function ip (...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('ip', args, { timeout: IP_COMMAND_TIMEOUT_MS })
    return stdout
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? ''
    throw new Error(`ip ${args.join(' ')}: ${stderr !== '' ? stderr : error instanceof Error ? error.message : String(error)}`)
  }
}

/** `ip ARGS`, synchronously and ignoring failure: for cleanup, also from a process 'exit' hook. */
function ipQuietly (...args: string[]): string {
  try {
    return execFileSync('ip', args, { timeout: IP_COMMAND_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'ignore'] }).toString()
  } catch {
    return ''
  }
}

/** Namespace names from `ip netns list` (each line is `NAME` or `NAME (id: N)`). */
function namespaceNames (listing: string): string[] {
  return listing.split('\n').map((line) => line.trim().split(' ')[0] ?? '').filter((name) => name !== '')
}

/** Link names from `ip -o link show` (`N: NAME@PEER: <FLAGS> ...`). */
function linkNames (listing: string): string[] {
  return listing.split('\n').map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '').filter((name) => name !== '')
}

function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Kills every process still inside a namespace (a namespace with processes outlives `ip netns del`). */
function killNamespaceProcesses (namespace: string): void {
  for (const pid of ipQuietly('netns', 'pids', namespace).split('\n').map(Number).filter((pid) => Number.isInteger(pid) && pid > 0)) {
    try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
  }
}

function removeNamespaces (namespaces: string[]): void {
  for (const namespace of namespaces) killNamespaceProcesses(namespace)
  for (const namespace of namespaces) ipQuietly('netns', 'del', namespace)
}

/** Namespaces, links and directories left by runs of this harness whose process is gone (killed before any cleanup could run). */
function removeStaleLeftovers (): void {
  const ownerOf = (prefix: string) => (name: string): number | null => {
    const match = new RegExp(`^${prefix}(\\d+)-`).exec(name)
    return match === null ? null : Number(match[1])
  }
  const ownerOfNamespace = ownerOf(NAMESPACE_PREFIX)
  const ownerOfDirectory = ownerOf(DIRECTORY_PREFIX)
  const ownerOfLink = (name: string): number | null => {
    const match = new RegExp(`^${LINK_PREFIX}([0-9a-z]+)-`).exec(name)
    return match === null ? null : parseInt(match[1] ?? '', 36)
  }
  const stale = (owner: number | null): boolean => owner !== null && owner !== process.pid && !processAlive(owner)
  removeNamespaces(namespaceNames(ipQuietly('netns', 'list')).filter((name) => stale(ownerOfNamespace(name))))
  for (const link of linkNames(ipQuietly('-o', 'link', 'show')).filter((name) => stale(ownerOfLink(name)))) ipQuietly('link', 'del', link)
  for (const name of readdirSync(tmpdir()).filter((entry) => stale(ownerOfDirectory(entry)))) rmSync(join(tmpdir(), name), { recursive: true, force: true })
}

let clustersCreated = 0
/** Names unique to this process and cluster; link names stay within Linux's 15 characters. */
function uniqueNames (): { namespace: string, link: string } {
  const instance = clustersCreated++
  return { namespace: `${NAMESPACE_PREFIX}${process.pid}-${instance}`, link: `${LINK_PREFIX}${process.pid.toString(36)}-${instance.toString(36)}` }
}

/** A 10.77.X.0/24 subnet no interface in the root namespace uses, starting from one the pid picks. */
async function freeSubnet (): Promise<string> {
  const inUse = await ip('-4', '-o', 'addr', 'show') + await ip('-4', 'route', 'show')
  for (let attempt = 0; attempt < 250; attempt++) {
    const subnet = `${SUBNET_PREFIX}.${(process.pid + clustersCreated * 37 + attempt) % 250 + 1}`
    if (!inUse.includes(`${subnet}.`)) return subnet
  }
  throw new Error(`no free ${SUBNET_PREFIX}.X.0/24 subnet`)
}

export type NetnsAvailability = { ok: true } | { ok: false, reason: string }

/**
 * Whether this machine can run `NetnsCluster`: it really creates a throwaway namespace with a veth
 * pair, moves one end in, brings both up, adds a policy rule in it, and removes them.
 */
export async function netnsAvailable (): Promise<NetnsAvailability> {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux, this is ${process.platform}` }
  const { namespace, link } = uniqueNames()
  const probe = `${namespace}-probe`
  try {
    await ip('netns', 'add', probe)
    await ip('link', 'add', `${link}-p`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', probe)
    await ip('link', 'set', `${link}-p`, 'up')
    await ip('-n', probe, 'link', 'set', 'eth0', 'up')
    await ip('-n', probe, 'rule', 'add', 'pref', String(LOCAL_RULE_PRIORITY), 'lookup', 'local')
    return { ok: true }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    return { ok: false, reason: /ENOENT/.test(reason) ? `iproute2's ip command not found (${reason})` : reason }
  } finally {
    ipQuietly('link', 'del', `${link}-p`)
    removeNamespaces([probe])
  }
}

interface Host { namespace: string, address: string, bridgePort: string }

const liveClusters = new Set<NetnsCluster>()
let exitHookInstalled = false
function closeOnExit (cluster: NetnsCluster): void {
  liveClusters.add(cluster)
  if (exitHookInstalled) return
  exitHookInstalled = true
  // An 'exit' listener may only do synchronous work, which is what `teardownNow` does.
  process.on('exit', () => { for (const live of liveClusters) live.teardownNow() })
}

/**
 * Nodes on separate hosts (network namespaces) that a test can partition and heal. Everything a
 * `TestCluster` offers works the same (`api`, `status`, `connectedPeers`, `kill`, `restart`,
 * `logs`); each node runs as `ip netns exec <namespace> node main.js node --config ...`.
 */
export class NetnsCluster extends TestCluster {
  readonly subnet: string
  readonly bridge: string
  readonly hosts: readonly Host[]
  private readonly names: { namespace: string, link: string }
  private cut: Array<{ host: number, from: number }> = []
  private closed = false

  private constructor (dir: string, init: InitResult, names: { namespace: string, link: string }, subnet: string, hostCount: number) {
    super(dir, init)
    this.names = names
    this.subnet = subnet
    this.bridge = `${names.link}-b`
    this.hosts = Array.from({ length: hostCount }, (_, index) => ({
      namespace: `${names.namespace}-h${index}`, address: `${subnet}.${index + 1}`, bridgePort: `${names.link}-h${index}`
    }))
  }

  /**
   * Creates the hosts and the bridge and runs `synod init --hosts` for them, one node per host.
   * Nodes are not started yet: call `startAllHealthy()`. On failure everything made is removed.
   */
  static override async create (hostCount: number): Promise<NetnsCluster> {
    if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > HOSTS_MAX) throw new Error(`hosts: expected 1..${HOSTS_MAX}, got ${hostCount}`)
    removeStaleLeftovers()
    const names = uniqueNames()
    const subnet = await freeSubnet()
    const dir = mkdtempSync(join(tmpdir(), `${DIRECTORY_PREFIX}${process.pid}-`))
    const addresses = Array.from({ length: hostCount }, (_, index) => `${subnet}.${index + 1}`)
    let init: InitResult
    try {
      init = await synodInit(dir, addresses)
    } catch (error) {
      rmSync(dir, { recursive: true, force: true })
      throw error
    }
    const cluster = new NetnsCluster(dir, init, names, subnet, hostCount)
    closeOnExit(cluster)
    try {
      await cluster.buildNetwork()
    } catch (error) {
      await cluster.close()
      throw error
    }
    return cluster
  }

  /**
   * Cuts the network between every pair of hosts in different groups, both directions, replacing
   * any earlier partition. Hosts in no group keep reaching everyone. The test process (root
   * namespace, over the bridge) still reaches every node's API.
   */
  async partition (groups: number[][]): Promise<void> {
    const groupOf = new Map<number, number>()
    groups.forEach((group, groupIndex) => {
      for (const host of group) {
        if (this.hosts[host] === undefined) throw new Error(`partition: no host ${host} (hosts are 0..${this.hosts.length - 1})`)
        if (groupOf.has(host)) throw new Error(`partition: host ${host} is in two groups`)
        groupOf.set(host, groupIndex)
      }
    })
    await this.heal()
    const cut: Array<{ host: number, from: number }> = []
    for (const [host, group] of groupOf) {
      for (const [from, otherGroup] of groupOf) if (otherGroup !== group) cut.push({ host, from })
    }
    this.cut = cut
    await this.changeRules('add', cut)
  }

  /** Removes the partition: every host reaches every other again. */
  async heal (): Promise<void> {
    const cut = this.cut
    this.cut = []
    await this.changeRules('del', cut)
  }

  /** Kills the nodes and removes the namespaces, veths, bridge and the cluster directory. Safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    try {
      await super.destroy()
    } finally {
      this.teardownNow()
    }
  }

  override async destroy (): Promise<void> {
    await this.close()
  }

  /**
   * Synchronous teardown, also run from the process 'exit' hook: kills whatever still runs in the
   * namespaces, then removes them, the veths, the bridge and the cluster directory.
   */
  teardownNow (): void {
    if (this.closed) return
    this.closed = true
    liveClusters.delete(this)
    removeNamespaces(this.hosts.map((host) => host.namespace))
    // Deleting one end of a veth pair deletes both; the namespace end may outlive a busy namespace.
    for (const host of this.hosts) ipQuietly('link', 'del', host.bridgePort)
    ipQuietly('link', 'del', this.bridge)
    rmSync(this.dir, { recursive: true, force: true })
  }

  protected override nodeCommand (index: number, plain: string[]): string[] {
    return ['ip', 'netns', 'exec', this.namespaceOf(index), ...plain]
  }

  private async buildNetwork (): Promise<void> {
    await ip('link', 'add', this.bridge, 'type', 'bridge')
    await ip('addr', 'add', `${this.subnet}.${BRIDGE_HOST_OCTET}/24`, 'dev', this.bridge)
    await ip('link', 'set', this.bridge, 'up')
    for (const host of this.hosts) {
      await ip('netns', 'add', host.namespace)
      await ip('link', 'add', host.bridgePort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.namespace)
      await ip('link', 'set', host.bridgePort, 'master', this.bridge, 'up')
      await ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
      await ip('-n', host.namespace, 'link', 'set', 'eth0', 'up')
      await ip('-n', host.namespace, 'link', 'set', 'lo', 'up')
      // Partition rules must come before the `local` table, or packets addressed to this host skip them.
      await ip('-n', host.namespace, 'rule', 'add', 'pref', String(LOCAL_RULE_PRIORITY), 'lookup', 'local')
      await ip('-n', host.namespace, 'rule', 'del', 'pref', '0', 'lookup', 'local')
    }
  }

  /**
   * Adds or deletes the rules of a cut: in host `host`'s namespace, drop every packet arriving from
   * host `from`. All hosts at once, so a cut or a heal lands everywhere at about the same moment.
   */
  private async changeRules (action: 'add' | 'del', cut: Array<{ host: number, from: number }>): Promise<void> {
    await Promise.all(this.hosts.map(async (host, index) => {
      for (const { from } of cut.filter((rule) => rule.host === index)) {
        await ip('-n', host.namespace, 'rule', action, 'pref', String(PARTITION_RULE_PRIORITY), 'from', this.hosts[from]?.address ?? '', 'iif', 'eth0', 'blackhole')
      }
    }))
  }

  private namespaceOf (index: number): string {
    const host = this.hosts[index]
    if (host === undefined) throw new Error(`no host ${index}`)
    return host.namespace
  }
}

/** `synod init --nodes N --hosts ...` through the CLI, as docs/deploy.md has an operator run it. */
async function synodInit (dir: string, addresses: string[]): Promise<InitResult> {
  const args = [SYNOD_MAIN, 'init', '--nodes', String(addresses.length), '--hosts', addresses.join(','), '--base-port', String(BASE_PORT), '--network-id', 'synod-netns-test', '--out', dir]
  try {
    await execFileAsync(process.execPath, args, { timeout: 30_000 })
  } catch (error) {
    throw new Error(`synod init failed: ${(error as { stderr?: string }).stderr ?? String(error)}`)
  }
  const networkFile = join(dir, 'network.json')
  const network = readJsonFile(networkFile, networkConfigSchema)
  const nodeFiles = addresses.map((_, index) => join(dir, `node-${index}.json`))
  for (const file of nodeFiles) {
    // --hosts makes every node listen on all interfaces, which is what lets the root namespace reach its API.
    const listen = (JSON.parse(readFileSync(file, 'utf8')) as { listen: { apiHost: string } }).listen
    if (listen.apiHost !== '0.0.0.0') throw new Error(`${file}: expected the API on 0.0.0.0, got ${listen.apiHost}`)
  }
  return { dir, networkFile, nodeFiles, members: network.members }
}

/** How long a wait for every node's links or views may take; how often it polls. */
const LINKS_TIMEOUT_MS = 30_000
const POLL_MS = 200

/** What `GET /v1/cluster/members` answers, as far as the quorum checks need it. */
export interface ClusterMembersBody { hasQuorum: boolean, members: Array<{ id: string, state: string, incarnation: number }> }

/** Node `index`'s membership view (`GET /v1/cluster/members`), or null while it does not answer. */
export async function clusterMembers (cluster: NetnsCluster, index: number): Promise<ClusterMembersBody | null> {
  return await cluster.getJson<ClusterMembersBody>(index, '/v1/cluster/members')
}

/** Waits until every node's membership view holds every member alive; returns the time it took. */
export async function waitForAllAlive (cluster: NetnsCluster, what = 'every node holds every member alive'): Promise<number> {
  return await waitForEveryNode(cluster, what, async (index) =>
    (await clusterMembers(cluster, index))?.members.every((member) => member.state === 'alive') === true)
}

/** The hosts node `index` should have live links to: the others on its side of `sides`. */
export function sameSide (sides: number[][], index: number): number[] {
  return (sides.find((side) => side.includes(index)) ?? []).filter((other) => other !== index)
}

/** Host indexes of node `index`'s connected peers, sorted. */
export async function linkedHosts (cluster: NetnsCluster, index: number): Promise<number[]> {
  const ids = cluster.init.members.map((member) => member.id)
  return (await cluster.connectedPeers(index)).map((peer) => ids.indexOf(peer)).sort((a, b) => a - b)
}

/**
 * Polls until `check(index)` holds for every node at once and returns how long that took; on
 * timeout the error shows every node's live links (as host indexes) and the end of every log.
 * Use it for any per-node condition, such as `(await clusterMembers(cluster, i))?.hasQuorum`.
 */
export async function waitForEveryNode (cluster: NetnsCluster, what: string, check: (index: number) => Promise<boolean>, timeoutMs = LINKS_TIMEOUT_MS): Promise<number> {
  const started = Date.now()
  const nodes = cluster.hosts.map((_, index) => index)
  try {
    await waitUntil(async () => (await Promise.all(nodes.map(check))).every(Boolean), timeoutMs, what, POLL_MS)
  } catch (error) {
    const views = await Promise.all(nodes.map(async (index) => `node ${index} linked to hosts [${(await linkedHosts(cluster, index)).join(', ')}]`))
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${views.join('\n')}\n${cluster.logs()}`)
  }
  return Date.now() - started
}
