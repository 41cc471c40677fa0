/**
 * The dashboard's server side, inside the gateway (see docs/dashboard.md):
 *
 * - the built web app (`web/`, built by Vite into `dist/web`) under `/dashboard/`, and `/`
 *   redirected there;
 * - `GET /v1/dashboard/events`: Server-Sent Events, one `snapshot` event per poll interval with
 *   the whole cluster as the gateway sees it (`DashboardSnapshot`); `GET /v1/dashboard/snapshot`
 *   answers the latest one;
 * - `GET /v1/dashboard/ring?key=K`: the ring's virtual nodes and a key's preference list;
 * - `POST /v1/dashboard/route?from=A&to=B`: a routed echo from A to B over the overlay, with the
 *   paths it took;
 * - admin routes under `/v1/admin/`, only when the gateway fronts a local cluster (`synod up`),
 *   each needing `Authorization: Bearer <token>`: kill and restart a node, partition, heal, link
 *   latency and loss, and store requests sent to one chosen node (for the CAP scenario). Without a
 *   local cluster these routes are not served at all (404).
 *
 * The observer polls every node only while someone watches (an open event stream, or a snapshot
 * asked for), so an idle gateway adds no load to the cluster.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { readFile, stat } from 'node:fs/promises'
import { extname, resolve, sep } from 'node:path'
import { Counter, Gauge, type Registry } from 'prom-client'
import { bearerTokenMatches, errorMessage, parseLinkFaults, type Logger } from '../core/index.js'
import { HashRing, type RingDescription } from '../store/index.js'
import {
  addStoreSample, counterRate, emptyStoreSample, mergeLinks, metricValue, storeFigures, transactionsPerSecond,
  type LevelFigures, type LinkView, type MetricFamilyJson, type StoreLevel, type StoreSample
} from './dashboard-model.js'

/** Poll interval of the observer, in milliseconds. */
export const DASHBOARD_POLL_INTERVAL_MS = 1_000
/** How long one poll waits for a node, in milliseconds. */
export const DASHBOARD_NODE_TIMEOUT_MS = 800
/** Open event streams at most; more are refused with 503. */
export const DASHBOARD_SUBSCRIBERS_MAX = 64
/** Bytes an event stream may have queued unread before the gateway drops it (a stalled page). */
export const DASHBOARD_STREAM_BUFFER_BYTES_MAX = 1_048_576
/** Recent blocks kept for the chain view. */
export const DASHBOARD_BLOCKS_KEPT = 30
/** Blocks fetched per poll when catching up with the head. */
export const DASHBOARD_BLOCKS_PER_POLL_MAX = 10
/** Window of the transactions-per-second figure, in milliseconds. */
export const DASHBOARD_TPS_WINDOW_MS = 10_000
/** Largest admin request body, in bytes. */
export const DASHBOARD_ADMIN_BODY_BYTES_MAX = 65_536
/** Validators are re-read every this many polls. */
const VALIDATORS_EVERY_POLLS = 3

/** A node of a local cluster, as the process owner (`synod up`) knows it. */
export interface LocalClusterNode { id: string, api: string, pid: number | null, running: boolean }

/** Process control over a local cluster, provided by `synod up`. */
export interface LocalClusterControl {
  nodes (): LocalClusterNode[]
  /** SIGKILL: no clean leave, as a crash. */
  kill (id: string): Promise<void>
  /** Starts a killed node again on its data directory. */
  restart (id: string): Promise<void>
}

export interface DashboardOptions {
  /** Directory of the built web app (holding index.html); null serves the APIs only. */
  assetsDir: string | null
  /** Present only when the gateway fronts a local cluster: enables the admin routes. */
  local?: { control: LocalClusterControl, adminToken: string }
  pollIntervalMs?: number
}

/** What the dashboard needs from its gateway. */
export interface DashboardSource {
  log: Logger
  now: () => number
  /** The upstreams (node APIs) the gateway knows, with the gateway's view of each. */
  upstreams: () => Array<{ id: string, url: string, serving: boolean, ejected: boolean, membership: string | null, inFlight: number, latencyEstimateMs: number | null }>
  strategy: string
  address: () => string
  ring: () => HashRing | null
  gatewayMetrics: () => Promise<MetricFamilyJson[]>
  /** Where the dashboard registers its own metrics (the gateway's registry). */
  registry: Registry
}

export interface NodeView {
  id: string
  api: string
  reachable: boolean
  error: string | null
  process: { pid: number | null, running: boolean } | null
  uptimeMs: number | null
  hasQuorum: boolean | null
  /** How this node sees each member. */
  members: Record<string, string>
  role: string | null
  /** Its validator or producer account, when it has one. */
  address: string | null
  height: number | null
  finalizedHeight: number | null
  faults: { isolatedFrom: string[], latencyMs: number, lossPercent: number } | null
  storeOpsPerSec: number
  hintsHeld: number
}

export interface BlockView { height: number, hash: string, proposer: string, proposerNode: string | null, timeMs: number, txCount: number, finalized: boolean | null }

export interface DashboardSnapshot {
  atMs: number
  pollIntervalMs: number
  admin: { enabled: boolean, partition: string[][] | null, linkFaults: Record<string, { latencyMs: number, lossPercent: number }> }
  gateway: { address: string, strategy: string, upstreams: Array<{ id: string, url: string, serving: boolean, ejected: boolean, membership: string | null, inFlight: number, latencyEstimateMs: number | null, requestsPerSec: number, errorsPerSec: number }> }
  nodes: NodeView[]
  overlay: { kind: string | null, links: LinkView[] }
  chain: {
    engine: string
    headHeight: number
    finalizedHeight: number | null
    txPerSec: number
    mempoolTxs: number
    reorgs: number
    deepestReorgBlocks: number
    blocks: BlockView[]
    validators: unknown[]
  } | null
  store: {
    ring: RingDescription | null
    levels: Record<StoreLevel, LevelFigures>
    hintsHeld: number
    hintsDeliveredPerSec: number
    readRepairsPerSec: number
    antiEntropyExchangesPerSec: number
    antiEntropyKeysSentPerSec: number
  }
}

interface NodePoll {
  id: string
  api: string
  status: { nodeId?: string, uptimeMs?: number, faults?: NodeView['faults'], services?: unknown } | null
  members: { hasQuorum?: boolean, members?: Array<{ id: string, state: string }> } | null
  topology: { topology?: { kind?: string }, links?: Array<{ peer: string, state: string, rttMs: number | null, mode: string | null }> } | null
  chain: { engine?: string, head?: { height: number, hash: string }, finalizedHeight?: number | null, mempool?: { size: number }, consensus?: { validator?: string, producer?: string } } | null
  metrics: MetricFamilyJson[] | null
  error: string | null
}

interface Sample { atMs: number, store: StoreSample, counters: Map<string, number> }

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8'
}

class HttpFailure extends Error {
  constructor (readonly status: number, readonly code: string, message: string) { super(message) }
}

function sendJson (response: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value)
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers })
  response.end(body)
}

async function readBody (request: IncomingMessage, bytesMax: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of request) {
    length += (chunk as Buffer).length
    if (length > bytesMax) throw new HttpFailure(413, 'DASHBOARD_BODY_TOO_LARGE', `the body is over ${bytesMax} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

async function readJson (request: IncomingMessage): Promise<unknown> {
  const body = await readBody(request, DASHBOARD_ADMIN_BODY_BYTES_MAX)
  if (body.length === 0) return {}
  try {
    return JSON.parse(body.toString('utf8')) as unknown
  } catch {
    throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', 'the body is not JSON')
  }
}

async function getJson<T> (url: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(DASHBOARD_NODE_TIMEOUT_MS) })
  const text = await response.text()
  if (!response.ok) throw new Error(`${response.status} ${text.slice(0, 200)}`)
  return JSON.parse(text) as T
}

async function optional<T> (read: Promise<T>): Promise<T | null> {
  try { return await read } catch { return null }
}

export class Dashboard {
  private readonly subscribers = new Set<ServerResponse>()
  private snapshot: DashboardSnapshot | null = null
  private previous: Sample | null = null
  private timer: NodeJS.Timeout | null = null
  private polling: Promise<DashboardSnapshot> | null = null
  private readonly blocks = new Map<number, BlockView>()
  private validators: unknown[] = []
  private polls = 0
  private partition: string[][] | null = null
  private readonly linkFaults = new Map<string, { latencyMs: number, lossPercent: number }>()
  private readonly fileCache = new Map<string, Buffer>()
  private stopped = false
  private readonly pollIntervalMs: number
  private readonly metrics: { polls: Counter, errors: Counter<'code'>, actions: Counter<'action'> }

  constructor (private readonly source: DashboardSource, private readonly options: DashboardOptions) {
    this.pollIntervalMs = options.pollIntervalMs ?? DASHBOARD_POLL_INTERVAL_MS
    const registers = [source.registry]
    this.metrics = {
      polls: new Counter({ name: 'synod_gateway_dashboard_polls_total', help: 'Rounds of polling every node for a dashboard snapshot.', registers }),
      errors: new Counter({ name: 'synod_gateway_dashboard_errors_total', help: 'Dashboard and admin requests refused or failed, by code (ADMIN_UNAUTHORIZED, DASHBOARD_BAD_REQUEST, ...).', labelNames: ['code'], registers }),
      actions: new Counter({ name: 'synod_gateway_admin_actions_total', help: 'Admin actions carried out on the local cluster, by action.', labelNames: ['action'], registers })
    }
    const subscribers = this.subscribers
    new Gauge({ name: 'synod_gateway_dashboard_subscribers', help: 'Open dashboard event streams.', registers, collect () { this.set(subscribers.size) } })
  }

  /** Whether this request is the dashboard's; if so it is answered. */
  handle (request: IncomingMessage, response: ServerResponse, url: string): boolean {
    const path = url.split('?')[0] as string
    if (path === '/' || path === '/dashboard' || path.startsWith('/dashboard/')) {
      if (this.options.assetsDir === null) return false
      this.guard(response, this.serveAsset(request, response, path))
      return true
    }
    if (path.startsWith('/v1/dashboard/')) {
      this.guard(response, this.serveApi(request, response, path, new URL(url, 'http://gateway').searchParams))
      return true
    }
    const admin = adminPath(path)
    if (admin !== null) {
      if (this.options.local === undefined) { request.resume(); sendJson(response, 404, notServedAdmin(request, admin)); return true }
      this.guard(response, this.serveAdmin(request, response, admin, this.options.local))
      return true
    }
    return false
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    for (const subscriber of this.subscribers) subscriber.end()
    this.subscribers.clear()
  }

  private guard (response: ServerResponse, work: Promise<void>): void {
    work.catch((error: unknown) => {
      this.metrics.errors.inc({ code: error instanceof HttpFailure ? error.code : 'DASHBOARD_UPSTREAM_FAILED' })
      if (response.headersSent) { response.destroy(); return }
      if (error instanceof HttpFailure) { sendJson(response, error.status, { code: error.code, message: error.message, details: {} }); return }
      this.source.log.warn({ reason: errorMessage(error) }, 'dashboard request failed')
      sendJson(response, 502, { code: 'DASHBOARD_UPSTREAM_FAILED', message: errorMessage(error), details: {} })
    })
  }

  // --- static files -----------------------------------------------------------------------------

  private async serveAsset (request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    request.resume()
    if (path === '/' || path === '/dashboard') { response.writeHead(302, { location: '/dashboard/' }); response.end(); return }
    const dir = this.options.assetsDir as string
    const relative = path === '/dashboard/' ? 'index.html' : decodePath(path.slice('/dashboard/'.length))
    const root = resolve(dir)
    const file = resolve(root, relative)
    if (!file.startsWith(root + sep)) { sendJson(response, 404, { code: 'HTTP_NOT_FOUND', message: `no file ${path}`, details: {} }); return }
    // Vite names built assets by content hash, so they never change and are kept in memory;
    // index.html changes with every build, so it is read each time.
    const immutable = relative.startsWith('assets/')
    let body = this.fileCache.get(file)
    if (body === undefined) {
      const found = await stat(file).catch(() => null)
      if (found === null || !found.isFile()) {
        if (relative === 'index.html') {
          sendJson(response, 503, { code: 'DASHBOARD_NOT_BUILT', message: `the dashboard is not built (no ${file}); run npm run build`, details: {} })
          return
        }
        sendJson(response, 404, { code: 'HTTP_NOT_FOUND', message: `no file ${path}`, details: {} })
        return
      }
      body = await readFile(file)
      if (immutable) this.fileCache.set(file, body)
    }
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff'
    })
    response.end(request.method === 'HEAD' ? undefined : body)
  }

  // --- read-only API ----------------------------------------------------------------------------

  private async serveApi (request: IncomingMessage, response: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    if (path === '/v1/dashboard/events' && request.method === 'GET') { this.subscribe(request, response); return }
    if (path === '/v1/dashboard/snapshot' && request.method === 'GET') {
      request.resume()
      sendJson(response, 200, await this.current())
      return
    }
    if (path === '/v1/dashboard/ring' && request.method === 'GET') {
      request.resume()
      sendJson(response, 200, await this.ringView(query.get('key')))
      return
    }
    if (path === '/v1/dashboard/route' && request.method === 'POST') {
      request.resume()
      const from = query.get('from') ?? ''
      const to = query.get('to') ?? ''
      const node = this.nodeApi(from)
      if (this.nodeApi(to) === undefined || node === undefined) throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', 'from and to must name known nodes')
      const answer = await fetch(`${node}/v1/net/echo/${encodeURIComponent(to)}?timeoutMs=2000`, { method: 'POST', signal: AbortSignal.timeout(3_000) })
      sendJson(response, answer.status, await answer.json())
      return
    }
    request.resume()
    throw new HttpFailure(404, 'HTTP_NOT_FOUND', `no route ${request.method ?? ''} ${path}`)
  }

  private subscribe (request: IncomingMessage, response: ServerResponse): void {
    if (this.subscribers.size >= DASHBOARD_SUBSCRIBERS_MAX) throw new HttpFailure(503, 'DASHBOARD_TOO_MANY_SUBSCRIBERS', `${DASHBOARD_SUBSCRIBERS_MAX} event streams are open already`)
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    response.write('retry: 2000\n\n')
    this.subscribers.add(response)
    const drop = (): void => { this.subscribers.delete(response) }
    request.on('close', drop)
    response.on('error', drop)
    if (this.snapshot !== null) this.push(response, this.snapshot)
    this.schedule(0)
  }

  private push (subscriber: ServerResponse, snapshot: DashboardSnapshot): void {
    // A page that stopped reading would make the gateway queue every snapshot: drop it instead
    // (an EventSource reconnects by itself, and starts again from the latest snapshot).
    if (subscriber.writableLength > DASHBOARD_STREAM_BUFFER_BYTES_MAX) {
      this.subscribers.delete(subscriber)
      this.metrics.errors.inc({ code: 'DASHBOARD_STREAM_STALLED' })
      subscriber.destroy()
      return
    }
    subscriber.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`)
  }

  private schedule (afterMs: number): void {
    if (this.timer !== null || this.stopped) return
    this.timer = setTimeout(() => {
      this.timer = null
      void this.current(true)
        .catch((error: unknown) => { this.source.log.warn({ reason: errorMessage(error) }, 'dashboard poll failed') })
        .finally(() => { if (this.subscribers.size > 0) this.schedule(this.pollIntervalMs) })
    }, afterMs)
    this.timer.unref()
  }

  /** The latest snapshot, polling for a new one when it is older than one interval (or `fresh`). */
  private async current (fresh = false): Promise<DashboardSnapshot> {
    const snapshot = this.snapshot
    if (!fresh && snapshot !== null && this.source.now() - snapshot.atMs < this.pollIntervalMs) return snapshot
    if (this.polling === null) {
      this.polling = this.poll().finally(() => { this.polling = null })
    }
    const next = await this.polling
    return next
  }

  private async ringView (key: string | null): Promise<object> {
    let ring = this.source.ring()
    if (ring === null) {
      const first = this.nodes()[0]
      if (first === undefined) throw new HttpFailure(503, 'DASHBOARD_NO_NODES', 'no node to read the ring from')
      const description = await getJson<RingDescription>(`${first.api}/v1/cluster/ring`)
      ring = new HashRing({ members: description.members.map((member) => ({ id: member.id, weight: member.weight })), replicationFactor: description.replicationFactor, vnodesPerWeight: description.vnodesPerWeight, version: description.version })
    }
    const base = { ...ring.describe(), tokens: ring.tokens() }
    if (key === null || key === '') return base
    return { ...base, key: { key, position: HashRing.keyFraction(key), preferenceList: ring.preferenceList(key) } }
  }

  // --- polling ----------------------------------------------------------------------------------

  /** The nodes to watch: the local cluster's own list, or the gateway's upstreams. */
  private nodes (): Array<{ id: string, api: string }> {
    const local = this.options.local?.control.nodes()
    if (local !== undefined) return local.map((node) => ({ id: node.id, api: node.api }))
    return this.source.upstreams().map((upstream) => ({ id: upstream.id, api: upstream.url }))
  }

  private nodeApi (id: string): string | undefined {
    return this.nodes().find((node) => node.id === id)?.api
  }

  private async pollNode (node: { id: string, api: string }): Promise<NodePoll> {
    const status = await optional(getJson<NonNullable<NodePoll['status']>>(`${node.api}/v1/status`))
    if (status === null) return { ...node, status: null, members: null, topology: null, chain: null, metrics: null, error: 'no answer' }
    const [members, topology, chain, metrics] = await Promise.all([
      optional(getJson<NonNullable<NodePoll['members']>>(`${node.api}/v1/cluster/members`)),
      optional(getJson<NonNullable<NodePoll['topology']>>(`${node.api}/v1/topology`)),
      optional(getJson<NonNullable<NodePoll['chain']>>(`${node.api}/v1/chain`)),
      optional(getJson<MetricFamilyJson[]>(`${node.api}/v1/metrics`))
    ])
    return { id: status.nodeId ?? node.id, api: node.api, status, members, topology, chain, metrics, error: null }
  }

  private async poll (): Promise<DashboardSnapshot> {
    const nowMs = this.source.now()
    const watched = this.nodes()
    const polls = await Promise.all(watched.map(async (node) => await this.pollNode(node)))
    if (this.options.local !== undefined) await this.reconcileFaults(polls, this.options.local.adminToken)
    this.polls++
    this.metrics.polls.inc()

    // Rates from the difference with the previous sample.
    const store = emptyStoreSample()
    const counters = new Map<string, number>()
    const add = (key: string, value: number): void => { counters.set(key, (counters.get(key) ?? 0) + value) }
    for (const poll of polls) {
      if (poll.metrics === null) continue
      addStoreSample(store, poll.metrics)
      add('hintsDelivered', metricValue(poll.metrics, 'synod_store_hints_delivered_total'))
      add('readRepairs', metricValue(poll.metrics, 'synod_store_read_repairs_total'))
      add('antiEntropyExchanges', metricValue(poll.metrics, 'synod_store_anti_entropy_exchanges_total'))
      add('antiEntropyKeysSent', metricValue(poll.metrics, 'synod_store_anti_entropy_keys_sent_total'))
      add(`node:${poll.id}`, storeRequests(poll.metrics))
    }
    const gatewayFamilies = await this.source.gatewayMetrics()
    const upstreams = this.source.upstreams()
    for (const upstream of upstreams) {
      add(`gw:${upstream.id}`, metricValue(gatewayFamilies, 'synod_gateway_requests_total', { upstream: upstream.id }))
      add(`gwerr:${upstream.id}`, metricValue(gatewayFamilies, 'synod_gateway_requests_total', { upstream: upstream.id, class: '5xx' }) + metricValue(gatewayFamilies, 'synod_gateway_upstream_errors_total', { upstream: upstream.id }))
    }
    const sample: Sample = { atMs: nowMs, store, counters }
    const previous = this.previous ?? sample
    const seconds = (sample.atMs - previous.atMs) / 1_000
    const rate = (key: string): number => counterRate(previous.counters.get(key) ?? counters.get(key) ?? 0, counters.get(key) ?? 0, seconds)
    this.previous = sample

    await this.pollChain(polls)
    const localNodes = new Map((this.options.local?.control.nodes() ?? []).map((node) => [node.id, node]))
    const addressToNode = new Map<string, string>()
    for (const poll of polls) {
      const address = poll.chain?.consensus?.validator ?? poll.chain?.consensus?.producer
      if (address !== undefined) addressToNode.set(address, poll.id)
    }
    const nodes: NodeView[] = polls.map((poll) => {
      const local = localNodes.get(poll.id)
      const consensus = poll.chain?.consensus
      return {
        id: poll.id,
        api: poll.api,
        reachable: poll.status !== null,
        error: poll.error,
        process: local === undefined ? null : { pid: local.pid, running: local.running },
        uptimeMs: poll.status?.uptimeMs ?? null,
        hasQuorum: poll.members?.hasQuorum ?? null,
        members: Object.fromEntries((poll.members?.members ?? []).map((member) => [member.id, member.state])),
        role: poll.chain === null ? null : consensus?.validator !== undefined ? 'validator' : consensus?.producer !== undefined ? 'producer' : poll.chain.engine === 'pow' ? 'miner' : 'full node',
        address: consensus?.validator ?? consensus?.producer ?? null,
        height: poll.chain?.head?.height ?? null,
        finalizedHeight: poll.chain?.finalizedHeight ?? null,
        faults: poll.status?.faults ?? null,
        storeOpsPerSec: rate(`node:${poll.id}`),
        hintsHeld: poll.metrics === null ? 0 : metricValue(poll.metrics, 'synod_store_hints_held')
      }
    }).sort((a, b) => (a.id < b.id ? -1 : 1))

    const best = bestChainPoll(polls)
    const blocks = [...this.blocks.values()].sort((a, b) => b.height - a.height)
    const finalizedHeight = best?.chain?.finalizedHeight ?? null
    for (const block of blocks) {
      block.proposerNode = addressToNode.get(block.proposer) ?? null
      block.finalized = finalizedHeight === null ? null : block.height <= finalizedHeight
    }
    const ringSource = this.source.ring()
    let ring = ringSource?.describe() ?? null
    if (ring === null) {
      const first = polls.find((poll) => poll.status !== null)
      ring = first === undefined ? null : await optional(getJson<RingDescription>(`${first.api}/v1/cluster/ring`))
    }
    const reachableMetrics = polls.flatMap((poll) => (poll.metrics === null ? [] : [poll.metrics]))
    const snapshot: DashboardSnapshot = {
      atMs: nowMs,
      pollIntervalMs: this.pollIntervalMs,
      admin: { enabled: this.options.local !== undefined, partition: this.partition, linkFaults: Object.fromEntries(this.linkFaults) },
      gateway: {
        address: this.source.address(),
        strategy: this.source.strategy,
        upstreams: upstreams.map((upstream) => ({ ...upstream, requestsPerSec: rate(`gw:${upstream.id}`), errorsPerSec: rate(`gwerr:${upstream.id}`) }))
      },
      nodes,
      overlay: {
        kind: polls.find((poll) => poll.topology !== null)?.topology?.topology?.kind ?? null,
        links: mergeLinks(polls.filter((poll) => poll.topology !== null).map((poll) => ({ node: poll.id, isolatedFrom: poll.status?.faults?.isolatedFrom ?? [], links: poll.topology?.links ?? [] })))
      },
      chain: best?.chain?.head === undefined
        ? null
        : {
            engine: best.chain.engine ?? 'unknown',
            headHeight: best.chain.head.height,
            finalizedHeight,
            txPerSec: transactionsPerSecond(blocks, nowMs, DASHBOARD_TPS_WINDOW_MS),
            mempoolTxs: best.chain.mempool?.size ?? 0,
            reorgs: Math.max(0, ...reachableMetrics.map((families) => metricValue(families, 'synod_ledger_reorgs_total'))),
            deepestReorgBlocks: Math.max(0, ...reachableMetrics.map((families) => metricValue(families, 'synod_ledger_deepest_reorg_blocks'))),
            blocks,
            validators: this.validators
          },
      store: {
        ring,
        levels: storeFigures(previous.store, store, seconds),
        hintsHeld: nodes.reduce((sum, node) => sum + node.hintsHeld, 0),
        hintsDeliveredPerSec: rate('hintsDelivered'),
        readRepairsPerSec: rate('readRepairs'),
        antiEntropyExchangesPerSec: rate('antiEntropyExchanges'),
        antiEntropyKeysSentPerSec: rate('antiEntropyKeysSent')
      }
    }
    this.snapshot = snapshot
    for (const subscriber of this.subscribers) this.push(subscriber, snapshot)
    return snapshot
  }

  /** Keeps the last blocks of the best-known chain, fetching the new ones from the node that has them. */
  private async pollChain (polls: NodePoll[]): Promise<void> {
    const best = bestChainPoll(polls)
    if (best?.chain?.head === undefined) return
    const head = best.chain.head.height
    // A reorganisation replaces blocks: re-read any height whose hash may have changed near the head.
    const known = this.blocks.get(head)
    if (known !== undefined && known.hash !== best.chain.head.hash) for (const height of [...this.blocks.keys()]) if (height >= head - DASHBOARD_BLOCKS_PER_POLL_MAX) this.blocks.delete(height)
    const wanted: number[] = []
    for (let height = head; height >= Math.max(0, head - DASHBOARD_BLOCKS_KEPT + 1) && wanted.length < DASHBOARD_BLOCKS_PER_POLL_MAX; height--) {
      if (!this.blocks.has(height)) wanted.push(height)
    }
    const fetched = await Promise.all(wanted.map(async (height) => await optional(getJson<{ hash: string, header: { height: number, proposer: string, timeMs: number }, txs: unknown[] }>(`${best.api}/v1/blocks/${height}`))))
    for (const block of fetched) {
      if (block === null) continue
      this.blocks.set(block.header.height, { height: block.header.height, hash: block.hash, proposer: block.header.proposer, proposerNode: null, timeMs: block.header.timeMs, txCount: block.txs.length, finalized: null })
    }
    for (const height of [...this.blocks.keys()]) if (height <= head - DASHBOARD_BLOCKS_KEPT) this.blocks.delete(height)
    if (this.polls % VALIDATORS_EVERY_POLLS === 1 || this.validators.length === 0) {
      const body = await optional(getJson<{ validators?: unknown[] }>(`${best.api}/v1/validators`))
      if (body?.validators !== undefined) this.validators = body.validators
    }
  }

  // --- admin ------------------------------------------------------------------------------------

  /** The faults each node should have: its side of the partition, and its own latency and loss. */
  private desiredFaults (id: string): { isolatedFrom: string[], latencyMs: number, lossPercent: number } {
    const side = this.partition?.find((group) => group.includes(id))
    const isolatedFrom = this.partition === null || side === undefined ? [] : this.partition.filter((group) => group !== side).flat().sort()
    const link = this.linkFaults.get(id) ?? { latencyMs: 0, lossPercent: 0 }
    return { isolatedFrom, ...link }
  }

  /** Brings each reachable node's faults to what is desired: a restarted node forgets them. */
  private async reconcileFaults (polls: NodePoll[], token: string): Promise<void> {
    await Promise.all(polls.map(async (poll) => {
      if (poll.status === null || poll.status.faults === undefined || poll.status.faults === null) return
      const desired = this.desiredFaults(poll.id)
      const actual = poll.status.faults
      if (JSON.stringify([...actual.isolatedFrom].sort()) === JSON.stringify(desired.isolatedFrom) && actual.latencyMs === desired.latencyMs && actual.lossPercent === desired.lossPercent) return
      const applied = await optional(this.applyFaults(poll.api, token, desired))
      if (applied !== null) poll.status.faults = desired
    }))
  }

  private async applyFaults (api: string, token: string, faults: object): Promise<void> {
    await getJson(`${api}/v1/admin/faults`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(faults) })
  }

  /** Applies the desired faults on every running node now; names the nodes that did not take them. */
  private async applyAll (local: NonNullable<DashboardOptions['local']>): Promise<string[]> {
    const running = local.control.nodes().filter((node) => node.running)
    const failed = await Promise.all(running.map(async (node) => ((await optional(this.applyFaults(node.api, local.adminToken, this.desiredFaults(node.id)))) === null ? node.id : null)))
    this.snapshot = null
    return failed.filter((id): id is string => id !== null)
  }

  private async serveAdmin (request: IncomingMessage, response: ServerResponse, path: string, local: NonNullable<DashboardOptions['local']>): Promise<void> {
    if (!bearerTokenMatches(request.headers.authorization, local.adminToken)) {
      request.resume()
      throw new HttpFailure(401, 'ADMIN_UNAUTHORIZED', 'admin routes need the header Authorization: Bearer <token> with the token `synod up` printed')
    }
    const method = request.method ?? 'GET'
    const ids = local.control.nodes().map((node) => node.id)
    const known = (id: string): string => {
      if (!ids.includes(id)) throw new HttpFailure(404, 'ADMIN_UNKNOWN_NODE', `no node ${id} in this cluster (${ids.join(', ')})`)
      return id
    }
    const parts = path.slice('/v1/admin/'.length).split('/')
    if (method === 'GET' && path === '/v1/admin/cluster') {
      request.resume()
      sendJson(response, 200, { nodes: local.control.nodes(), partition: this.partition, linkFaults: Object.fromEntries(this.linkFaults) })
      return
    }
    if (method === 'POST' && path === '/v1/admin/partition') {
      const groups = parseGroups(await readJson(request), ids)
      this.partition = groups
      this.metrics.actions.inc({ action: 'partition' })
      this.source.log.warn({ groups }, 'admin: partition')
      sendJson(response, 200, { partition: groups, notApplied: await this.applyAll(local) })
      return
    }
    if (method === 'POST' && path === '/v1/admin/heal') {
      request.resume()
      this.partition = null
      this.linkFaults.clear()
      this.metrics.actions.inc({ action: 'heal' })
      this.source.log.warn({}, 'admin: heal')
      sendJson(response, 200, { partition: null, notApplied: await this.applyAll(local) })
      return
    }
    if (parts[0] === 'nodes' && parts.length >= 3) {
      const id = known(decodePath(parts[1] as string))
      const action = parts[2]
      if (method === 'POST' && parts.length === 3 && (action === 'kill' || action === 'restart')) {
        request.resume()
        this.metrics.actions.inc({ action })
        this.source.log.warn({ node: id }, `admin: ${action}`)
        if (action === 'kill') await local.control.kill(id)
        else await local.control.restart(id)
        this.snapshot = null
        sendJson(response, 200, { node: local.control.nodes().find((node) => node.id === id) })
        return
      }
      if (method === 'PUT' && parts.length === 3 && action === 'link-faults') {
        const faults = parseLinkQuality(await readJson(request))
        if (faults.latencyMs === 0 && faults.lossPercent === 0) this.linkFaults.delete(id)
        else this.linkFaults.set(id, faults)
        this.metrics.actions.inc({ action: 'link-faults' })
        this.source.log.warn({ node: id, ...faults }, 'admin: link faults')
        sendJson(response, 200, { node: id, ...faults, notApplied: await this.applyAll(local) })
        return
      }
      if ((action === 'kv' || action === 'replica') && parts.length >= 4) {
        await this.forwardStore(request, response, local, id, action, path, method)
        return
      }
    }
    request.resume()
    throw new HttpFailure(404, 'HTTP_NOT_FOUND', `no admin route ${method} ${path}`)
  }

  /** A store request sent to one chosen node (`kv`), or a read of its own replica (`replica`). */
  private async forwardStore (request: IncomingMessage, response: ServerResponse, local: NonNullable<DashboardOptions['local']>, id: string, action: string, path: string, method: string): Promise<void> {
    const node = local.control.nodes().find((candidate) => candidate.id === id) as LocalClusterNode
    const prefix = `/v1/admin/nodes/${encodeURIComponent(id)}/${action}/`
    const rest = path.startsWith(prefix) ? path.slice(prefix.length) : path.split('/').slice(6).join('/')
    const search = (request.url ?? '').includes('?') ? (request.url ?? '').slice((request.url ?? '').indexOf('?')) : ''
    const target = action === 'kv' ? `${node.api}/v1/kv/${rest}${search}` : `${node.api}/v1/store/replica/${rest}`
    if (action === 'replica' && method !== 'GET') throw new HttpFailure(405, 'HTTP_METHOD_NOT_ALLOWED', 'a replica is only read')
    const body = method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : await readBody(request, DASHBOARD_ADMIN_BODY_BYTES_MAX)
    if (body === undefined) request.resume()
    const headers: Record<string, string> = {}
    for (const name of ['content-type', 'synod-session']) {
      const value = request.headers[name]
      if (typeof value === 'string') headers[name] = value
    }
    let answer: Response
    try {
      answer = await fetch(target, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(10_000) })
    } catch (error) {
      throw new HttpFailure(502, 'DASHBOARD_NODE_UNREACHABLE', `node ${id} did not answer: ${errorMessage(error)}`)
    }
    const text = Buffer.from(await answer.arrayBuffer())
    const passed: Record<string, string> = { 'content-type': answer.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(text.length), 'synod-node': id }
    for (const name of ['synod-version', 'synod-session']) {
      const value = answer.headers.get(name)
      if (value !== null) passed[name] = value
    }
    response.writeHead(answer.status, passed)
    response.end(text)
  }
}

/**
 * The admin path a request names, decoded as a node's router decodes it (so `/v1/%61dmin/...`, which
 * a node routes to its admin routes, is one too), or null when it names none.
 */
export function adminPath (path: string): string | null {
  let decoded = path
  try { decoded = decodeURI(path) } catch { /* a bad escape: the raw path, which no router decodes either */ }
  return decoded === '/v1/admin' || decoded.startsWith('/v1/admin/') ? decoded : null
}

/** The answer to an admin route on a gateway that fronts no local cluster: no such route, and nothing is passed on to a node. */
export function notServedAdmin (request: IncomingMessage, path: string): object {
  return { code: 'HTTP_NOT_FOUND', message: `no route ${request.method ?? ''} ${path}: admin routes exist only on the gateway of a local cluster (synod up)`, details: {} }
}

/** The poll of the node with the highest head: the chain view follows it. */
function bestChainPoll (polls: readonly NodePoll[]): NodePoll | undefined {
  return polls.filter((poll) => poll.chain?.head !== undefined).sort((a, b) => (b.chain?.head?.height ?? 0) - (a.chain?.head?.height ?? 0))[0]
}

/** Store requests a node's API answered, over every operation, level and outcome. */
function storeRequests (families: readonly MetricFamilyJson[]): number {
  const family = families.find((candidate) => candidate.name === 'synod_store_request_seconds')
  return (family?.values ?? []).filter((entry) => entry.metricName === 'synod_store_request_seconds_count').reduce((sum, entry) => sum + entry.value, 0)
}

/** A percent-decoded path segment; bad escapes are the client's error (400), not a crash. */
function decodePath (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', `a malformed percent-escape in ${text.slice(0, 100)}`)
  }
}

/** `{groups: [[ids], [ids], ...]}`: at least two non-empty, disjoint groups that together hold every node. */
export function parseGroups (body: unknown, ids: readonly string[]): string[][] {
  const groups = (body as { groups?: unknown } | null)?.groups
  if (!Array.isArray(groups) || groups.length < 2 || groups.some((group) => !Array.isArray(group) || group.length === 0 || group.some((id) => typeof id !== 'string'))) {
    throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', 'groups: expected at least two non-empty lists of node ids')
  }
  const all = (groups as string[][]).flat()
  const unknown = all.filter((id) => !ids.includes(id))
  if (unknown.length > 0) throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', `groups: no node ${unknown.join(', ')}`)
  if (new Set(all).size !== all.length) throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', 'groups: a node is in two groups')
  const missing = ids.filter((id) => !all.includes(id))
  if (missing.length > 0) throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', `groups: every node must be in a group; missing ${missing.join(', ')}`)
  return (groups as string[][]).map((group) => [...group].sort())
}

/** `{latencyMs, lossPercent}` for one node's links, checked as the node checks them. */
export function parseLinkQuality (body: unknown): { latencyMs: number, lossPercent: number } {
  try {
    // The node's own check: a non-object body or an unknown field (a typo such as `latency`) is
    // refused, never read as "no faults"; with no members, any isolatedFrom entry is refused too.
    const faults = parseLinkFaults(body === undefined ? {} : body, [], '')
    return { latencyMs: faults.latencyMs, lossPercent: faults.lossPercent }
  } catch (error) {
    throw new HttpFailure(400, 'DASHBOARD_BAD_REQUEST', errorMessage(error))
  }
}
