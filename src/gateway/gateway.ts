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
import type { AddressInfo } from 'node:net'
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import { createPrng, errorMessage, type Logger } from '../core/index.js'
import { HashRing, type RingDescription } from '../store/index.js'
import {
  createBalancer, UpstreamSet, RetryBudget, DEFAULT_HEALTH_POLICY,
  type Balancer, type HealthPolicy, type MembershipState, type UpstreamEvent, type UpstreamStatus
} from './balancers/index.js'
import { splitListen, upstreamId, type GatewayConfig } from './config.js'
import { GatewayError, gatewayStatusFor } from './errors.js'
import { GatewayMetrics } from './metrics.js'

const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate', 'host'])
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
  upstreams: Array<UpstreamStatus & { url: string, inFlight: number, lastCheck: Upstream['lastCheck'] }>
}

export interface GatewayOptions {
  log: Logger
  /** Milliseconds; `Date.now` by default. */
  now?: () => number
}

export class Gateway {
  readonly metrics: GatewayMetrics
  private readonly upstreams = new Map<string, Upstream>()
  private readonly set: UpstreamSet
  private readonly balancer: Balancer
  private readonly budget: RetryBudget
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

  constructor (private readonly config: GatewayConfig, options: GatewayOptions) {
    this.now = options.now ?? Date.now
    this.log = options.log
    this.metrics = new GatewayMetrics(() => this.statusOfUpstreams())
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
    this.balancer = createBalancer(config.strategy, {
      random: createPrng(config.seed ?? randomInt(0, 0xffff_ffff)),
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
    server.on('clientError', (error, socket) => {
      this.metrics.gatewayErrors.inc({ code: 'GATEWAY_BAD_REQUEST' })
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
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
      return { ...status, url: upstream.url, inFlight: this.balancer.inFlight(status.id), lastCheck: upstream.lastCheck }
    })
  }

  // --- request path -----------------------------------------------------------------------------

  private handle (request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '/'
    if (url.startsWith('/v1/gateway/') || url === '/metrics') { this.serveOwn(request, response, url); return }
    const incoming = request.headers[REQUEST_ID_HEADER]
    const requestId = typeof incoming === 'string' && incoming.length > 0 && incoming.length <= REQUEST_ID_BYTES_MAX ? incoming : randomUUID()
    response.setHeader(REQUEST_ID_HEADER, requestId)
    if (!url.startsWith('/')) { this.fail(response, new GatewayError('GATEWAY_BAD_REQUEST', 'the request target must be a path')); return }
    const declared = Number(request.headers['content-length'] ?? 0)
    const bodyMax = this.config.proxy.requestBodyBytesMax
    if (declared > bodyMax) {
      this.fail(response, new GatewayError('GATEWAY_BODY_TOO_LARGE', `the body is over requestBodyBytesMax (${bodyMax} bytes)`, { bytesMax: bodyMax }))
      request.resume()
      return
    }
    const method = request.method ?? 'GET'
    if (method === 'GET' || method === 'HEAD') {
      // Bodiless in practice: proxy without waiting for the request's end.
      request.resume()
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
        this.fail(response, new GatewayError('GATEWAY_BODY_TOO_LARGE', `the body is over requestBodyBytesMax (${bodyMax} bytes)`, { bytesMax: bodyMax }))
        return
      }
      chunks.push(chunk)
    })
    request.on('end', () => { if (!refused) this.forward(request, response, method, url, requestId, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)) })
    request.on('error', () => { refused = true })
  }

  private forward (request: IncomingMessage, response: ServerResponse, method: string, url: string, requestId: string, body: Buffer | null): void {
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue
      headers[name] = value
    }
    headers[REQUEST_ID_HEADER] = requestId
    const peer = request.socket.remoteAddress ?? ''
    const forwardedFor = request.headers['x-forwarded-for']
    headers['x-forwarded-for'] = typeof forwardedFor === 'string' && forwardedFor.length > 0 ? `${forwardedFor}, ${peer}` : peer
    if (request.headers.host !== undefined) headers['x-forwarded-host'] = request.headers.host
    headers['x-forwarded-proto'] = 'http'
    const key = kvKeyOf(method, url)
    const tried = new Set<string>()
    const aborter = new AbortController()
    response.once('close', () => { if (!response.writableFinished) aborter.abort() })
    this.budget.deposit()
    this.inFlightTotal++
    const attempt = (): void => {
      const id = this.pick(key, tried)
      if (id === null) {
        this.inFlightTotal--
        this.fail(response, new GatewayError('GATEWAY_NO_UPSTREAM', tried.size === 0 ? 'no upstream serves' : `no upstream left to try after ${tried.size}`, { tried: [...tried] }))
        return
      }
      tried.add(id)
      const upstream = this.upstreams.get(id) as Upstream
      const started = performance.now()
      this.balancer.started(id)
      const done = (): void => { this.balancer.finished(id) }
      upstream.pool.request({
        method: method as Dispatcher.HttpMethod,
        path: url,
        headers,
        body,
        signal: aborter.signal,
        headersTimeout: this.config.proxy.requestTimeoutMs,
        bodyTimeout: this.config.proxy.requestTimeoutMs
      }).then(({ statusCode, headers: upstreamHeaders, body: upstreamBody }) => {
        this.set.recordResult(id, statusCode >= 500 ? '5xx' : 'success', this.now())
        const out: Record<string, string | string[]> = {}
        for (const [name, value] of Object.entries(upstreamHeaders)) {
          if (value === undefined || HOP_BY_HOP.has(name)) continue
          out[name] = value
        }
        out['synod-upstream'] = id
        out[REQUEST_ID_HEADER] = requestId
        response.writeHead(statusCode, out)
        upstreamBody.on('data', (chunk: Buffer) => { if (!response.write(chunk)) { upstreamBody.pause(); response.once('drain', () => upstreamBody.resume()) } })
        upstreamBody.once('end', () => {
          response.end()
          done()
          this.inFlightTotal--
          this.metrics.observe(id, statusCode, (performance.now() - started) / 1_000)
        })
        upstreamBody.once('error', (error: Error) => {
          done()
          this.inFlightTotal--
          const kind = isTimeout(error) ? 'timeout' : 'reset'
          this.metrics.upstreamError(id, kind)
          if (kind === 'timeout') this.set.recordResult(id, 'timeout', this.now())
          response.destroy(error)
        })
      }, (error: unknown) => {
        done()
        if (aborter.signal.aborted) { this.inFlightTotal--; return }
        const kind = classify(error)
        this.metrics.upstreamError(id, kind)
        this.set.recordResult(id, kind === 'reset' ? 'connect-failure' : kind, this.now())
        this.log.debug({ upstream: id, requestId, kind, reason: errorMessage(error) }, 'upstream request failed')
        if (kind !== 'timeout' && RETRYABLE_METHODS.has(method) && tried.size <= this.config.proxy.retriesMax) {
          if (this.budget.tryWithdraw(this.now())) {
            this.metrics.retries.inc()
            attempt()
            return
          }
          this.metrics.retriesRefused.inc()
        }
        this.inFlightTotal--
        this.fail(response, kind === 'timeout'
          ? new GatewayError('GATEWAY_UPSTREAM_TIMEOUT', `upstream ${id} did not answer within ${this.config.proxy.requestTimeoutMs} ms`, { upstream: id })
          : kind === 'reset'
            ? new GatewayError('GATEWAY_UPSTREAM_RESET', `upstream ${id} closed the connection before it answered${RETRYABLE_METHODS.has(method) ? '' : '; a write is not retried, it may or may not have been applied'}`, { upstream: id })
            : new GatewayError('GATEWAY_UPSTREAM_UNREACHABLE', `upstream ${id} could not be reached: ${errorMessage(error)}`, { upstream: id, tried: [...tried] }))
      })
    }
    attempt()
  }

  private pick (key: string | undefined, tried: ReadonlySet<string>): string | null {
    const eligible = this.set.eligible(this.now())
    if (eligible.generation !== this.generation) {
      this.generation = eligible.generation
      this.balancer.setUpstreams(eligible.upstreams)
    }
    return this.balancer.pick(key === undefined ? {} : { key }, tried)
  }

  private fail (response: ServerResponse, error: GatewayError): void {
    this.metrics.gatewayErrors.inc({ code: error.code })
    if (response.headersSent) { response.destroy(); return }
    const body = JSON.stringify(error.toJSON())
    response.writeHead(gatewayStatusFor(error.code), { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
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
      let id = byOrigin.get(origin)
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
