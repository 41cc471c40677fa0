/**
 * The composition root for the real world: one Synod node process. It loads the config, opens
 * LMDB, starts libp2p and the services on a `NodeHost`, and serves the HTTP API and metrics.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { createPrng, FaultyTransport, fromHex, NodeHost, registryFor, type Logger, type Service, type TimerId, type Timers } from '../core/index.js'
import { HelloService, OverlayService, overlayNeighbours } from '../net/index.js'
import { MembershipService } from '../membership/index.js'
import type { LedgerService } from '../ledger/index.js'
import { loadNodeConfig, topologyOf, type LoadedConfig } from './config.js'
import { LmdbDisk } from './lmdb-disk.js'
import { Libp2pTransport } from './libp2p-transport.js'
import { createLogger } from './logger.js'
import { createMetrics, registerDiskMetrics } from './metrics.js'
import { registerOverlayMetrics, registerOverlayRoutes } from './overlay-api.js'
import { registerMembershipMetrics, registerMembershipRoutes } from './membership-api.js'
import { createApiServer } from './http.js'
import { createLedger } from './ledger-node.js'
import { registerLedgerMetrics, registerLedgerRoutes } from './ledger-api.js'
import { AvailableStoreService, StoreService, defaultStoreLimits } from '../store/index.js'
import { registerStoreRoutes } from './store-api.js'
import { SYNOD_VERSION } from './version.js'
import { registerAdminRoutes, registerFaultMetrics } from './admin-api.js'

export interface RunningNode {
  readonly config: LoadedConfig
  readonly transport: Libp2pTransport
  readonly host: NodeHost
  readonly disk: LmdbDisk
  readonly api: FastifyInstance
  readonly apiUrl: string
  readonly log: Logger
  readonly overlay: OverlayService
  readonly membership: MembershipService
  /** The ledger, when the network config has one. */
  readonly ledger: LedgerService | null
  /** The key-value store (every node of a network runs it, unless `services` replaced the defaults). */
  readonly store: StoreService | null
  /** The store's causal and eventual levels (alongside `store`). */
  readonly availableStore: AvailableStoreService | null
  /** Announces a graceful leave to the cluster, then stops. */
  stop (): Promise<void>
}

export interface StartNodeOptions {
  /** Services to run; the overlay, membership and hello services by default (and the ledger when the network has one). */
  services?: Service[]
  log?: Logger
  /** Overrides the node config's `minerThreads`. */
  minerThreads?: number
  /**
   * Serves the admin routes (link faults, `docs/dashboard.md`) to requests carrying this bearer
   * token. Only `synod up` sets it, for the nodes of a local cluster; without it the routes and the
   * fault layer do not exist.
   */
  adminToken?: string
}

/** Real timers: `setTimeout`, unref'd so a stopping process is never held open by a protocol. */
export function createRealTimers (): Timers & { clearAll: () => void } {
  const live = new Map<TimerId, NodeJS.Timeout>()
  let next = 1
  return {
    setTimer (afterMs, fire) {
      const id = next++
      const handle = setTimeout(() => { live.delete(id); fire() }, Math.max(0, afterMs))
      handle.unref()
      live.set(id, handle)
      return id
    },
    clearTimer (id) {
      const handle = live.get(id)
      if (handle !== undefined) clearTimeout(handle)
      live.delete(id)
    },
    clearAll () {
      for (const handle of live.values()) clearTimeout(handle)
      live.clear()
    }
  }
}

export const wallClock = { now: (): number => performance.timeOrigin + performance.now() }

export async function startNode (configFile: string, options: StartNodeOptions = {}): Promise<RunningNode> {
  const config = loadNodeConfig(configFile)
  const log = options.log ?? createLogger({ node: config.node.nodeId }, config.node.logLevel)
  const startedMs = wallClock.now()
  mkdirSync(config.dataDir, { recursive: true })
  const disk = new LmdbDisk(join(config.dataDir, 'lmdb'), log.child({ component: 'disk' }), config.node.disk ?? {})
  const members = config.network.members.map((member) => member.id).sort()
  const neighbours = overlayNeighbours(topologyOf(config.networkFile, config.network).adjacency, members, config.node.nodeId)
  const overlay = new OverlayService({ neighbours, routeMetric: config.network.routeMetric })
  const membership = new MembershipService({ net: overlay, limits: config.network.limits?.membership ?? {} })
  const hello = new HelloService()
  const ledgerParts = config.network.ledger === undefined || options.services !== undefined
    ? null
    : createLedger(config.network.ledger, { overlay, membership, keySeed: config.key.seed, minerThreads: options.minerThreads ?? config.node.minerThreads, limits: config.node.ledger ?? {}, log: log.child({ component: 'ledger' }) })
  const storeConfig = config.network.store ?? {}
  const store = options.services !== undefined
    ? null
    : new StoreService({
      net: overlay,
      members: config.network.members.map((member) => ({ id: member.id, weight: member.weight ?? 1, api: member.api })),
      ...(storeConfig.replicationFactor === undefined ? {} : { replicationFactor: storeConfig.replicationFactor }),
      ...(storeConfig.vnodesPerWeight === undefined ? {} : { vnodesPerWeight: storeConfig.vnodesPerWeight }),
      isLive: (member) => membership.stateOf(member) === 'alive',
      limits: storeConfig
    })
  const availableStore = store === null
    ? null
    : new AvailableStoreService({ net: overlay, ring: () => store.ring(), isLive: (member) => membership.stateOf(member) === 'alive', limits: storeConfig })
  const services = options.services ?? [overlay, membership, hello, ...(store === null ? [] : [store]), ...(availableStore === null ? [] : [availableStore]), ...(ledgerParts === null ? [] : [ledgerParts.ledger]), ...(ledgerParts?.pos == null ? [] : [ledgerParts.pos]), ...(ledgerParts?.dpos == null ? [] : [ledgerParts.dpos])]
  const registry = registryFor(services)
  const transport = new Libp2pTransport({
    self: config.node.nodeId,
    seed: fromHex(config.key.seed),
    listen: config.node.listen.p2p,
    peers: config.network.members.map((member) => ({ id: member.id, publicKey: fromHex(member.publicKey), address: member.p2p })),
    linkPeers: neighbours,
    registry,
    log: log.child({ component: 'transport' }),
    limits: config.network.limits?.transport ?? {},
    now: wallClock.now
  })
  const timers = createRealTimers()
  const faults = options.adminToken === undefined
    ? null
    : new FaultyTransport({ inner: transport, clock: wallClock, timers, random: createPrng(randomBytes(4).readUInt32BE(0)) })
  const linkView = faults ?? transport
  const host = new NodeHost({
    self: config.node.nodeId,
    members: config.network.members.map((member) => member.id),
    clock: wallClock,
    timers,
    random: createPrng(randomBytes(4).readUInt32BE(0)),
    disk,
    log,
    transport: linkView,
    services
  })
  const apiOf = new Map(config.network.members.map((member) => [member.id, member]))
  const metrics = createMetrics(linkView, services.includes(hello)
    ? [{ name: 'synod_hello_peers_reachable', help: 'Peers the hello service heard from within peerTimeoutMs.', read: () => hello.reachable().length }]
    : [])
  registerOverlayMetrics(metrics, overlay)
  registerDiskMetrics(metrics, disk)
  const withMembership = services.includes(membership)
  if (withMembership) registerMembershipMetrics(metrics, membership)
  const api = createApiServer({
    health: () => ({ status: 'ok', nodeId: config.node.nodeId }),
    status: () => ({
      nodeId: config.node.nodeId,
      version: SYNOD_VERSION,
      pid: process.pid,
      networkId: config.network.networkId,
      uptimeMs: Math.round(wallClock.now() - startedMs),
      p2p: transport.addresses(),
      peers: linkView.links().map((link) => ({ ...link, api: apiOf.get(link.peer)?.api ?? null, p2p: apiOf.get(link.peer)?.p2p ?? null })),
      transport: transport.stats(),
      disk: { ...disk.stats, uncheckpointedKeys: disk.uncheckpointedKeys() },
      ...(faults === null ? {} : { faults: faults.current() }),
      services: host.status()
    })
  }, metrics, log.child({ component: 'http' }))
  registerOverlayRoutes(api, overlay, config)
  if (faults !== null && options.adminToken !== undefined) {
    registerAdminRoutes(api, faults, options.adminToken, members, (description) => { log.warn({ faults: faults.current() }, `link faults set: ${description}`) })
    registerFaultMetrics(metrics, faults)
  }
  if (withMembership) registerMembershipRoutes(api, membership, config, wallClock.now)
  if (store !== null && availableStore !== null) registerStoreRoutes(api, store, availableStore, metrics, storeConfig.valueBytesMax ?? defaultStoreLimits.valueBytesMax)
  if (ledgerParts !== null) {
    registerLedgerRoutes(api, ledgerParts.ledger, ledgerParts.pos, ledgerParts.dpos)
    registerLedgerMetrics(metrics, ledgerParts.ledger, ledgerParts.miner, ledgerParts.pos, ledgerParts.dpos)
  }

  try {
    await host.start()
    await api.listen({ host: config.node.listen.apiHost, port: config.node.listen.apiPort })
  } catch (error) {
    timers.clearAll()
    await host.stop().catch(() => {})
    await ledgerParts?.miner?.close().catch(() => {})
    await disk.close().catch(() => {})
    throw error
  }
  const address = api.server.address()
  const apiPort = typeof address === 'object' && address !== null ? address.port : config.node.listen.apiPort
  const apiHost = config.node.listen.apiHost === '0.0.0.0' ? '127.0.0.1' : config.node.listen.apiHost
  log.info({ api: `http://${apiHost}:${apiPort}`, p2p: transport.addresses() }, 'node started')

  let stopped = false
  return {
    config, transport, host, disk, api, log, overlay, membership, ledger: ledgerParts?.ledger ?? null, store, availableStore,
    apiUrl: `http://${apiHost}:${apiPort}`,
    async stop () {
      if (stopped) return
      stopped = true
      if (withMembership) await new Promise<void>((resolve) => { membership.leave(resolve) })
      await api.close()
      timers.clearAll()
      await host.stop()
      await ledgerParts?.miner?.close()
      await disk.close()
      log.info({}, 'node stopped')
    }
  }
}
