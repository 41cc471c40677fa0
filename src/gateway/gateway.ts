/**
 * The gateway: an HTTP reverse proxy in front of the nodes' APIs. It picks an upstream with the
 * configured balancer over the upstreams that serve (`UpstreamSet`: active checks, outlier
 * ejection, membership, slow start, panic mode), forwards the request over a keep-alive pool
 * (undici), and passes the upstream's answer through unchanged. What goes wrong between the
 * client and the upstream is a typed `GatewayError`.
 *
 * Retries: only idempotent methods (GET, HEAD, OPTIONS), only when the upstream could not be
 * reached or reset the connection before answering, at most `retriesMax` times, each on an
 * upstream not tried yet, and only within the retry budget. A write is never retried: the
 * gateway cannot know whether a reset write was applied.
 *
 * Own routes: `GET /v1/gateway/status`, `GET /v1/gateway/health`, `GET /metrics`; everything else
 * is proxied.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomUUID, randomInt } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import { createPrng, errorMessage, type Logger } from '../core/index.js'
import { HashRing, type RingDescription } from '../store/index.js'
import {
  createBalancer, UpstreamSet, RetryBudget, PeakEwma, DEFAULT_HEALTH_POLICY,
  type Balancer, type HealthPolicy, type MembershipState, type ResultKind, type UpstreamEvent, type UpstreamStatus
} from './balancers/index.js'
import { splitListen, upstreamId, type GatewayConfig } from './config.js'
import { GatewayError, gatewayStatusFor } from './errors.js'
import { GatewayMetrics } from './metrics.js'
import { Dashboard, adminPath, notServedAdmin, type DashboardOptions } from './dashboard.js'
import type { MetricFamilyJson } from './dashboard-model.js'

const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** Not forwarded: hop-by-hop (RFC 9110 7.6.1), `host` (undici names the upstream), `expect` (node's server answers 100-continue itself and the body is read whole before forwarding). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate', 'host', 'expect'])
/** Errors undici raises before sending anything, for a request it will not send: the gateway's fault or the client's, not the upstream's. */
const REFUSED_LOCALLY_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED'])
const CONNECT_FAILURE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNABORTED'])
const REQUEST_ID_HEADER = 'x-request-id'
const REQUEST_ID_BYTES_MAX = 200
/** Health checks use their own connection, so they do not queue behind traffic. */
const HEALTH_CHECK_CONNECTIONS = 1

interface Upstream {
  id: string
  url: string
  weight: number
  pool: Pool
  checks: Pool
  checkTimer: NodeJS.Timeout | null
  lastCheck: { passed: boolean, atMs: number, detail: string } | null
}

export interface GatewayStatus {
  strategy: string
  address: string
  panicking: boolean
  inFlight: number
  retryBudgetAvailable: number
  ring: { version: number, members: number } | null
  upstreams: Array<UpstreamStatus & { url: string, inFlight: number, latencyEstimateMs: number | null, lastCheck: Upstream['lastCheck'] }>
}

export interface GatewayOptions {
  log: Logger
  /** Milliseconds; `Date.now` by default. */
  now?: () => number
  /** Serves the web dashboard and its APIs (and, for a local cluster, the admin routes). */
  dashboard?: DashboardOptions
}

export class Gateway {
  readonly metrics: GatewayMetrics
  private readonly upstreams = new Map<string, Upstream>()
  private readonly set: UpstreamSet
  private readonly balancer: Balancer
  private readonly budget: RetryBudget
  /** Latency estimates for p2c's load; null when p2c weighs in-flight requests alone. */
  private readonly latency: PeakEwma | null
  private readonly now: () => number
  private readonly log: Logger
  private server: Server | null = null
  private generation = -1
  private ring: HashRing | null = null
  private readonly upstreamByNode = new Map<string, string>()
  private clusterTimer: NodeJS.Timeout | null = null
  private clusterCursor = 0
  private inFlightTotal = 0
  private stopped = false
  private readonly dashboard: Dashboard | null

  constructor (private readonly config: GatewayConfig, options: GatewayOptions) {
    this.now = options.now ?? Date.now
    this.log = options.log
    this.metrics = new GatewayMetrics(() => this.statusOfUpstreams())
    this.dashboard = options.dashboard === undefined
      ? null
      : new Dashboard({
        log: this.log.child({ component: 'dashboard' }),
        now: this.now,
        upstreams: () => this.statusOfUpstreams().map((upstream) => ({ id: upstream.id, url: upstream.url, serving: upstream.serving, ejected: upstream.ejected, membership: upstream.membership, inFlight: upstream.inFlight, latencyEstimateMs: upstream.latencyEstimateMs })),
        strategy: config.strategy,
        address: () => this.address(),
        ring: () => this.ring,
        gatewayMetrics: async () => await this.metrics.registry.getMetricsAsJSON() as unknown as MetricFamilyJson[],
        registry: this.metrics.registry
      }, options.dashboard)
    const policy: HealthPolicy = {
      ...DEFAULT_HEALTH_POLICY,
      unhealthyThreshold: config.healthCheck.unhealthyThreshold,
      healthyThreshold: config.healthCheck.healthyThreshold,
      consecutive5xx: config.outlier.consecutive5xx,
      consecutiveConnectFailures: config.outlier.consecutiveConnectFailures,
      baseEjectionMs: config.outlier.baseEjectionMs,
      ejectionMsMax: config.outlier.ejectionMsMax,
      ejectionPercentMax: config.outlier.ejectionPercentMax,
      slowStartWindowMs: config.slowStart.windowMs,
      slowStartMinWeightPercent: config.slowStart.minWeightPercent,
      slowStartAggression: config.slowStart.aggression,
      panicThresholdPercent: config.panicThresholdPercent
    }
    this.set = new UpstreamSet(policy, (event) => { this.onUpstreamEvent(event) })
    const latency = config.p2c.load === 'peak-ewma' ? new PeakEwma({ decayMs: config.p2c.decayMs, defaultRttMs: config.p2c.defaultRttMs, errorPenaltyMs: config.p2c.errorPenaltyMs }) : null
    this.latency = latency
    this.balancer = createBalancer(config.strategy, {
      random: createPrng(config.seed ?? randomInt(0, 0xffff_ffff)),
      ...(latency === null ? {} : { load: (id: string, inFlight: number) => latency.load(id, inFlight, this.now()) }),
      ring: () => this.ring,
      upstreamOf: (nodeId: string) => this.upstreamByNode.get(nodeId)
    })
    this.budget = new RetryBudget({ retryPercentMax: config.proxy.retryPercentMax, retriesPerSecondMin: config.proxy.retriesPerSecondMin, tokensMax: 100 }, this.now())
    for (const spec of config.upstreams) this.addUpstream(upstreamId(spec), spec.url, spec.weight)
    this.set.setUpstreams([...this.upstreams.values()].map((upstream) => ({ id: upstream.id, weight: upstream.weight })), this.now())
  }

  /** Starts listening, health checks and (with `cluster.follow`) the membership and ring refresh. */
  async start (): Promise<void> {
    const [host, port] = splitListen(this.config.listen)
    const server = createServer({ keepAliveTimeout: 65_000 }, (request, response) => { this.handle(request, response) })
    server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      // A client closing its connection (wrk at the end of a run, a browser tab) is not an error.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || !socket.writable) { socket.destroy(); return }
      this.metrics.gatewayErrors.inc({ code: 'GATEWAY_BAD_REQUEST' })
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      this.log.debug({ reason: errorMessage(error) }, 'malformed client request')
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
    this.server = server
    for (const upstream of this.upstreams.values()) this.scheduleCheck(upstream, randomInt(0, Math.max(1, this.config.healthCheck.intervalMs)))
    if (this.config.cluster?.follow === true) {
      await this.refreshCluster()
      this.scheduleClusterRefresh()
    }
    this.log.info({ address: this.address(), strategy: this.config.strategy, upstreams: [...this.upstreams.keys()] }, 'gateway listening')
  }

  address (): string {
    const address = this.server?.address() as AddressInfo | null | undefined
    if (address == null) throw new Error('gateway not started')
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.clusterTimer !== null) clearTimeout(this.clusterTimer)
    this.dashboard?.stop()
    for (const upstream of this.upstreams.values()) if (upstream.checkTimer !== null) clearTimeout(upstream.checkTimer)
    const server = this.server
    if (server !== null) {
      server.closeIdleConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) ; setTimeout(() => { server.closeAllConnections() }, 2_000).unref() })
    }
    await Promise.all([...this.upstreams.values()].flatMap((upstream) => [upstream.pool.close(), upstream.checks.close()]))
  }

  status (): GatewayStatus {
    const nowMs = this.now()
    const eligible = this.set.eligible(nowMs)
    return {
      strategy: this.config.strategy,
      address: this.server === null ? '' : this.address(),
      panicking: eligible.panicking,
      inFlight: this.inFlightTotal,
      retryBudgetAvailable: this.budget.available(nowMs),
      ring: this.ring === null ? null : { version: this.ring.version, members: this.ring.members().length },
      upstreams: this.statusOfUpstreams()
    }
  }

  private statusOfUpstreams (): GatewayStatus['upstreams'] {
    return this.set.status(this.now()).map((status) => {
      const upstream = this.upstreams.get(status.id) as Upstream
      return { ...status, url: upstream.url, inFlight: this.balancer.inFlight(status.id), latencyEstimateMs: this.latency === null ? null : Math.round(this.latency.estimateMs(status.id, this.now()) * 1_000) / 1_000, lastCheck: upstream.lastCheck }
    })
  }

  // --- request path -----------------------------------------------------------------------------

  private handle (request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '/'
    if (url.startsWith('/v1/gateway/') || url === '/metrics') { this.serveOwn(request, response, url); return }
    if (this.dashboard?.handle(request, response, url) === true) return
    // Admin routes are the local cluster's only: never passed on to a node.
    const admin = this.dashboard === null ? adminPath(url.split('?')[0] as string) : null
    if (admin !== null) {
      request.resume()
      const body = JSON.stringify(notServedAdmin(request, admin))
      response.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      response.end(body)
      return
    }
    const incoming = request.headers[REQUEST_ID_HEADER]
    const requestId = typeof incoming === 'string' && incoming.length > 0 && incoming.length <= REQUEST_ID_BYTES_MAX ? incoming : randomUUID()
    if (!url.startsWith('/')) { this.fail(response, new GatewayError('GATEWAY_BAD_REQUEST', 'the request target must be a path'), requestId); return }
    const declared = Number(request.headers['content-length'] ?? 0)
    const bodyMax = this.config.proxy.requestBodyBytesMax
    if (declared > bodyMax) {
      this.fail(response, new GatewayError('GATEWAY_BODY_TOO_LARGE', `the body is over requestBodyBytesMax (${bodyMax} bytes)`, { bytesMax: bodyMax }), requestId)
      request.resume()
      return
    }
    const method = request.method ?? 'GET'
    const bodiless = (declared === 0 && request.headers['transfer-encoding'] === undefined)
    if ((method === 'GET' || method === 'HEAD') && bodiless) {
      // Bodiless in practice: proxy without waiting for the request's end (node's server
      // discards an unread body once the response ends).
      this.forward(request, response, method, url, requestId, null)
      return
    }
    const chunks: Buffer[] = []
    let bytes = 0
    let refused = false
    request.on('data', (chunk: Buffer) => {
      if (refused) return
      bytes += chunk.length
      if (bytes > bodyMax) {
        refused = true
        this.fail(response, new GatewayError('GATEWAY_BODY_TOO_LARGE', `the body is over requestBodyBytesMax (${bodyMax} bytes)`, { bytesMax: bodyMax }), requestId)
        return
      }
      chunks.push(chunk)
    })
    request.on('end', () => { if (!refused) this.forward(request, response, method, url, requestId, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)) })
    request.on('error', () => { refused = true })
  }

  private forward (request: IncomingMessage, response: ServerResponse, method: string, url: string, requestId: string, body: Buffer | null): void {
    // Headers as undici takes them, a flat [name, value, ...] list: the client's raw headers less
    // the hop-by-hop ones, plus the request id and the x-forwarded-* set.
    const raw = request.rawHeaders
    const headers: string[] = []
    let forwardedFor = ''
    let host = ''
    const named = connectionNamed(request.headers.connection)
    for (let index = 0; index < raw.length; index += 2) {
      const name = raw[index].toLowerCase()
      if (HOP_BY_HOP.has(name)) { if (name === 'host') host = raw[index + 1]; continue }
      if (name === REQUEST_ID_HEADER || named?.has(name) === true) continue
      if (name === 'x-forwarded-for') { forwardedFor = forwardedFor.length > 0 ? `${forwardedFor}, ${raw[index + 1]}` : raw[index + 1]; continue }
      headers.push(name, raw[index + 1])
    }
    const peer = peerAddress(request.socket)
    headers.push(REQUEST_ID_HEADER, requestId, 'x-forwarded-for', forwardedFor.length > 0 ? `${forwardedFor}, ${peer}` : peer, 'x-forwarded-proto', 'http')
    if (host.length > 0) headers.push('x-forwarded-host', host)
    this.budget.deposit()
    this.inFlightTotal++
    new Exchange(this, response, method, url, headers, body, requestId, kvKeyOf(method, url)).attempt()
  }

  /** Chooses the upstream for an attempt; null when none is left. Called by `Exchange`. */
  choose (key: string | undefined, tried: ReadonlySet<string>): Upstream | null {
    const id = this.pick(key, tried)
    if (id === null) return null
    this.balancer.started(id)
    this.latency?.sent(id, this.now())
    return this.upstreams.get(id) as Upstream
  }

  /** An attempt ended, one way or another. Called by `Exchange`. */
  released (id: string): void {
    this.balancer.finished(id)
  }

  /** The exchange ended (answered, failed, or the client went away). Called by `Exchange`. */
  ended (): void {
    this.inFlightTotal--
  }

  /** Whether an idempotent request may be tried again after `tried` attempts; spends budget. */
  mayRetry (tried: number): boolean {
    if (tried > this.config.proxy.retriesMax) return false
    if (this.budget.tryWithdraw(this.now())) { this.metrics.retries.inc(); return true }
    this.metrics.retriesRefused.inc()
    return false
  }

  recordResult (id: string, kind: ResultKind): void {
    this.set.recordResult(id, kind, this.now())
  }

  /** An attempt's latency (to the answer's end, or to its failure) for p2c's estimates. */
  observeLatency (id: string, ms: number, failed: boolean): void {
    this.latency?.observe(id, ms, failed, this.now())
  }

  get requestTimeoutMs (): number { return this.config.proxy.requestTimeoutMs }

  private pick (key: string | undefined, tried: ReadonlySet<string>): string | null {
    const eligible = this.set.eligible(this.now())
    if (eligible.generation !== this.generation) {
      this.generation = eligible.generation
      this.balancer.setUpstreams(eligible.upstreams)
    }
    return this.balancer.pick(key === undefined ? {} : { key }, tried)
  }

  fail (response: ServerResponse, error: GatewayError, requestId?: string): void {
    this.metrics.gatewayErrors.inc({ code: error.code })
    if (response.headersSent) { response.destroy(); return }
    const body = JSON.stringify(error.toJSON())
    response.writeHead(gatewayStatusFor(error.code), {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      // After a refused body the rest of it would still have to be read: close instead.
      ...(error.code === 'GATEWAY_BODY_TOO_LARGE' ? { connection: 'close' } : {}),
      ...(requestId === undefined ? {} : { [REQUEST_ID_HEADER]: requestId })
    })
    response.end(body)
  }

  private serveOwn (request: IncomingMessage, response: ServerResponse, url: string): void {
    request.resume()
    const path = url.split('?')[0]
    const json = (status: number, value: unknown): void => {
      const body = JSON.stringify(value)
      response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      response.end(body)
    }
    if (request.method !== 'GET') { json(405, { code: 'HTTP_METHOD_NOT_ALLOWED', message: `${request.method ?? ''} ${path}: only GET`, details: {} }); return }
    if (path === '/v1/gateway/health') { json(200, { status: 'ok' }); return }
    if (path === '/v1/gateway/status') { json(200, this.status()); return }
    if (path === '/metrics') {
      this.metrics.registry.metrics().then((text) => {
        response.writeHead(200, { 'content-type': this.metrics.registry.contentType })
        response.end(text)
      }, (error: unknown) => { json(500, { code: 'HTTP_INTERNAL', message: errorMessage(error), details: {} }) })
      return
    }
    json(404, { code: 'HTTP_NOT_FOUND', message: `no route GET ${path}`, details: {} })
  }

  // --- upstreams, health, cluster ---------------------------------------------------------------

  private addUpstream (id: string, url: string, weight: number): Upstream {
    const origin = new URL(url).origin
    const upstream: Upstream = {
      id,
      url,
      weight,
      pool: new Pool(origin, { connections: this.config.proxy.connectionsPerUpstreamMax, connectTimeout: this.config.proxy.connectTimeoutMs, keepAliveTimeout: 30_000 }),
      checks: new Pool(origin, { connections: HEALTH_CHECK_CONNECTIONS, connectTimeout: this.config.healthCheck.timeoutMs }),
      checkTimer: null,
      lastCheck: null
    }
    this.upstreams.set(id, upstream)
    this.metrics.ensureUpstream(id)
    return upstream
  }

  private scheduleCheck (upstream: Upstream, afterMs: number): void {
    const interval = this.config.healthCheck.intervalMs
    if (interval <= 0 || this.stopped) return
    upstream.checkTimer = setTimeout(() => {
      upstream.checkTimer = null
      void this.check(upstream).finally(() => {
        // ±10% jitter keeps the checks of many gateways from lining up.
        if (this.upstreams.get(upstream.id) === upstream) this.scheduleCheck(upstream, interval * (0.9 + Math.random() * 0.2))
      })
    }, afterMs)
    upstream.checkTimer.unref()
  }

  private async check (upstream: Upstream): Promise<void> {
    const timeoutMs = this.config.healthCheck.timeoutMs
    let passed = false
    let detail: string
    try {
      const answer = await upstream.checks.request({ method: 'GET', path: this.config.healthCheck.path, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) })
      await answer.body.dump()
      passed = answer.statusCode === 200
      detail = `HTTP ${answer.statusCode}`
    } catch (error) {
      detail = errorMessage(error)
    }
    if (this.stopped) return
    upstream.lastCheck = { passed, atMs: this.now(), detail }
    this.metrics.healthChecks.inc({ upstream: upstream.id, result: passed ? 'passed' : 'failed' })
    this.set.recordCheck(upstream.id, passed, this.now())
  }

  private scheduleClusterRefresh (): void {
    const cluster = this.config.cluster
    if (cluster === undefined || this.stopped) return
    this.clusterTimer = setTimeout(() => {
      void this.refreshCluster().finally(() => { this.scheduleClusterRefresh() })
    }, cluster.refreshIntervalMs)
    this.clusterTimer.unref()
  }

  /**
   * Reads the ring and the membership view from one serving upstream (a different one each time,
   * so one node's stale view does not stick): nodes the view holds dead or left stop serving,
   * ring members not yet upstreams are added, and key affinity uses the ring.
   */
  private async refreshCluster (): Promise<void> {
    const serving = this.set.eligible(this.now()).upstreams
    if (serving.length === 0) return
    const source = this.upstreams.get(serving[this.clusterCursor++ % serving.length].id) as Upstream
    try {
      const ringAnswer = await source.checks.request({ method: 'GET', path: '/v1/cluster/ring', headersTimeout: this.config.healthCheck.timeoutMs, bodyTimeout: this.config.healthCheck.timeoutMs })
      const membersAnswer = ringAnswer.statusCode === 200
        ? await source.checks.request({ method: 'GET', path: '/v1/cluster/members', headersTimeout: this.config.healthCheck.timeoutMs, bodyTimeout: this.config.healthCheck.timeoutMs })
        : null
      if (ringAnswer.statusCode !== 200 || membersAnswer === null || membersAnswer.statusCode !== 200) {
        await ringAnswer.body.dump()
        await membersAnswer?.body.dump()
        return
      }
      const description = await ringAnswer.body.json() as RingDescription
      const members = (await membersAnswer.body.json() as { members: Array<{ id: string, state: MembershipState, api: string | null }> }).members
      this.applyCluster(description, members)
    } catch (error) {
      this.metrics.clusterRefreshFailures.inc()
      this.log.debug({ source: source.id, reason: errorMessage(error) }, 'cluster view refresh failed')
    }
  }

  private applyCluster (description: RingDescription, members: Array<{ id: string, state: MembershipState, api: string | null }>): void {
    const byOrigin = new Map([...this.upstreams.values()].map((upstream) => [new URL(upstream.url).origin, upstream.id]))
    let added = false
    for (const member of description.members) {
      if (member.api === undefined || member.api === null) continue
      const origin = new URL(member.api).origin
      // An upstream named after the node (as `synod up` names them) is that node, whatever its
      // URL's spelling; else one at the same origin; else the node is new.
      let id = this.upstreams.has(member.id) ? member.id : byOrigin.get(origin)
      if (id === undefined) {
        id = member.id
        const upstream = this.addUpstream(id, member.api, member.weight)
        byOrigin.set(origin, id)
        added = true
        this.scheduleCheck(upstream, 0)
        this.log.info({ upstream: id, url: member.api }, 'upstream added from the cluster view')
      }
      this.upstreamByNode.set(member.id, id)
    }
    if (added) this.set.setUpstreams([...this.upstreams.values()].map((upstream) => ({ id: upstream.id, weight: upstream.weight })), this.now())
    const nowMs = this.now()
    for (const member of members) {
      const id = this.upstreamByNode.get(member.id)
      if (id !== undefined) this.set.setMembership(id, member.state, nowMs)
    }
    if (this.ring === null || this.ring.version !== description.version) {
      this.ring = new HashRing({ members: description.members, replicationFactor: description.replicationFactor, vnodesPerWeight: description.vnodesPerWeight, version: description.version })
    }
  }

  private onUpstreamEvent (event: UpstreamEvent): void {
    if (event.kind === 'ejected') this.metrics.ejections.inc({ upstream: event.id })
    const level = event.kind === 'ejected' || event.kind === 'unhealthy' || (event.kind === 'panic' && event.panicking) ? 'warn' : 'info'
    this.log[level]({ ...event }, `upstream event: ${event.kind}`)
  }
}

/** Header names a `Connection` header lists (hop-by-hop for this message), beyond the usual keep-alive and close; null when none. */
function connectionNamed (value: string | undefined): Set<string> | null {
  if (value === undefined) return null
  let named: Set<string> | null = null
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase()
    if (name.length === 0 || name === 'keep-alive' || name === 'close') continue
    named ??= new Set()
    named.add(name)
  }
  return named
}

/** The client address of a connection, read once per connection (the getter asks the kernel). */
const peerAddresses = new WeakMap<Socket, string>()
function peerAddress (socket: Socket): string {
  let address = peerAddresses.get(socket)
  if (address === undefined) {
    address = socket.remoteAddress ?? ''
    peerAddresses.set(socket, address)
  }
  return address
}

/** Responses up to this size are sent whole, headers and body in one write; larger ones stream. */
const RESPONSE_BUFFER_BYTES_MAX = 64 * 1_024

/**
 * One proxied request, as an undici dispatch handler: the upstream's answer goes straight to the
 * client's response (no intermediate stream objects), small answers in one write, large ones
 * streamed with backpressure both ways. A connect failure or a reset before the answer starts is
 * retried on another upstream for idempotent methods, within the budget.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private readonly tried = new Set<string>()
  private upstream: Upstream | null = null
  private startedMs = 0
  private statusCode = 0
  private responseHeaders: string[] | null = null
  private chunks: Buffer[] = []
  private bufferedBytes = 0
  private streaming = false
  private abort: ((error?: Error) => void) | null = null
  private finished = false
  /** Why the exchange was cut short from this side: the client went away, or the time ran out. */
  private cancelled: 'client' | 'timeout' | null = null
  /** The end-to-end limit: from the request to the answer's last byte, whatever the pace. */
  private readonly deadline: NodeJS.Timeout

  constructor (
    private readonly gateway: Gateway,
    private readonly response: ServerResponse,
    private readonly method: string,
    private readonly url: string,
    private readonly headers: string[],
    private readonly body: Buffer | null,
    private readonly requestId: string,
    private readonly key: string | undefined
  ) {
    response.once('close', () => { this.cancel('client') })
    this.deadline = setTimeout(() => { this.cancel('timeout') }, gateway.requestTimeoutMs)
  }

  private cancel (why: 'client' | 'timeout'): void {
    if (this.finished || this.cancelled !== null) return
    this.cancelled = why
    if (this.abort !== null) { this.abort(); return }
    // Still queued for a connection: answer now; onConnect aborts the request when its turn comes.
    if (why === 'timeout') this.fail(new GatewayError('GATEWAY_UPSTREAM_TIMEOUT', `no upstream connection within ${this.gateway.requestTimeoutMs} ms`, { upstream: this.upstream?.id ?? null }))
  }

  /** Ends the exchange with a gateway error, or cuts the answer short when it already started. */
  private fail (error: GatewayError): void {
    this.end()
    if (this.response.headersSent) { this.response.destroy(); return }
    this.gateway.fail(this.response, error, this.requestId)
  }

  attempt (): void {
    const upstream = this.gateway.choose(this.key, this.tried)
    if (upstream === null) {
      this.end()
      this.gateway.fail(this.response, new GatewayError('GATEWAY_NO_UPSTREAM', this.tried.size === 0 ? 'no upstream serves' : `no upstream left to try after ${this.tried.size}`, { tried: [...this.tried] }), this.requestId)
      return
    }
    this.tried.add(upstream.id)
    this.upstream = upstream
    this.startedMs = performance.now()
    this.statusCode = 0
    const timeoutMs = this.gateway.requestTimeoutMs
    upstream.pool.dispatch({
      method: this.method as Dispatcher.HttpMethod,
      path: this.url,
      headers: this.headers,
      body: this.body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs
    }, this)
  }

  onConnect (abort: (error?: Error) => void): void {
    this.abort = abort
    if (this.cancelled !== null) abort()
  }

  onHeaders (statusCode: number, raw: Buffer[], resume: () => void): boolean {
    // An informational answer (103 Early Hints, say) is not the answer.
    if (statusCode < 200) return true
    const upstream = this.upstream as Upstream
    this.statusCode = statusCode
    this.gateway.recordResult(upstream.id, statusCode >= 500 ? '5xx' : 'success')
    const headers: string[] = []
    for (let index = 0; index < raw.length; index += 2) {
      const name = raw[index].toString('latin1')
      const lower = name.toLowerCase()
      if (HOP_BY_HOP.has(lower) || lower === REQUEST_ID_HEADER) continue
      headers.push(name, raw[index + 1].toString('latin1'))
    }
    headers.push('synod-upstream', upstream.id, REQUEST_ID_HEADER, this.requestId)
    this.responseHeaders = headers
    this.resume = resume
    return true
  }

  private resume: (() => void) | null = null

  onData (chunk: Buffer): boolean {
    if (!this.streaming) {
      this.bufferedBytes += chunk.length
      this.chunks.push(chunk)
      if (this.bufferedBytes <= RESPONSE_BUFFER_BYTES_MAX) return true
      this.streaming = true
      this.response.writeHead(this.statusCode, this.responseHeaders as string[])
      let writable = true
      for (const buffered of this.chunks) writable = this.response.write(buffered)
      this.chunks = []
      return writable || this.waitForDrain()
    }
    return this.response.write(chunk) || this.waitForDrain()
  }

  private waitForDrain (): false {
    this.response.once('drain', () => { this.resume?.() })
    return false
  }

  onComplete (): void {
    const upstream = this.upstream as Upstream
    if (this.streaming) this.response.end()
    else {
      this.response.writeHead(this.statusCode, this.responseHeaders as string[])
      this.response.end(this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks))
    }
    const elapsedMs = performance.now() - this.startedMs
    this.gateway.metrics.observe(upstream.id, this.statusCode, elapsedMs / 1_000)
    this.gateway.observeLatency(upstream.id, elapsedMs, this.statusCode >= 500)
    this.gateway.released(upstream.id)
    this.end()
  }

  onError (error: Error): void {
    const upstream = this.upstream as Upstream
    this.gateway.released(upstream.id)
    this.chunks = []
    if (this.finished || this.cancelled === 'client') { this.end(); return }
    if (REFUSED_LOCALLY_CODES.has((error as { code?: string }).code ?? '')) {
      this.fail(new GatewayError('GATEWAY_BAD_REQUEST', `the request cannot be forwarded: ${errorMessage(error)}`, {}))
      return
    }
    this.gateway.observeLatency(upstream.id, performance.now() - this.startedMs, true)
    const kind = this.cancelled === 'timeout' ? 'timeout' : classify(error)
    this.gateway.metrics.upstreamError(upstream.id, kind)
    // A 5xx already counted when its headers came; a failure mid-body counts as well.
    this.gateway.recordResult(upstream.id, kind === 'reset' ? 'connect-failure' : kind)
    const answerStarted = this.statusCode !== 0
    if (!answerStarted && kind !== 'timeout' && RETRYABLE_METHODS.has(this.method) && this.gateway.mayRetry(this.tried.size)) {
      this.attempt()
      return
    }
    const timeoutMs = this.gateway.requestTimeoutMs
    this.fail(kind === 'timeout'
      ? new GatewayError('GATEWAY_UPSTREAM_TIMEOUT', `upstream ${upstream.id} did not answer within ${timeoutMs} ms`, { upstream: upstream.id })
      : kind === 'reset'
        ? new GatewayError('GATEWAY_UPSTREAM_RESET', `upstream ${upstream.id} closed the connection before it answered${RETRYABLE_METHODS.has(this.method) ? '' : '; a write is not retried, it may or may not have been applied'}`, { upstream: upstream.id })
        : new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `upstream ${upstream.id} could not be reached: ${errorMessage(error)}`, { upstream: upstream.id, tried: [...this.tried] }))
  }

  private end (): void {
    if (this.finished) return
    this.finished = true
    clearTimeout(this.deadline)
    this.gateway.ended()
  }
}

/** The store key of a `/v1/kv/{key}` request (`/v1/kv/{key}/cas` for cas), for key affinity. */
export function kvKeyOf (method: string, url: string): string | undefined {
  if (!url.startsWith('/v1/kv/')) return undefined
  const query = url.indexOf('?')
  let path = url.slice('/v1/kv/'.length, query === -1 ? undefined : query)
  if (method === 'POST' && path.endsWith('/cas')) path = path.slice(0, -'/cas'.length)
  if (path.length === 0) return undefined
  try {
    return decodeURIComponent(path)
  } catch {
    return undefined
  }
}

type FailureKind = 'connect-failure' | 'timeout' | 'reset'

function isTimeout (error: unknown): boolean {
  return error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError
}

function classify (error: unknown): FailureKind {
  if (isTimeout(error)) return 'timeout'
  const code = (error as { code?: unknown }).code
  if (error instanceof undiciErrors.ConnectTimeoutError || (typeof code === 'string' && CONNECT_FAILURE_CODES.has(code))) return 'connect-failure'
  return 'reset'
}
