/**
 * The gateway's config file (JSON), checked field by field: a bad file is a
 * `GATEWAY_CONFIG_INVALID` error naming the file and the field. Every limit is named with its
 * unit. See docs/gateway.md for each setting.
 */
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { errorMessage } from '../core/index.js'
import { STRATEGY_NAMES } from './balancers/index.js'
import { GatewayError } from './errors.js'

/** Node's timers take at most 2^31 - 1 ms; a larger value would fire after 1 ms. */
const TIMER_MS_MAX = 2_147_483_647
const positiveMs = z.number().int().positive().max(TIMER_MS_MAX)
const percent = z.number().min(0).max(100)

const upstreamSchema = z.object({
  /** Base URL of the upstream's HTTP API, `http://host:port`. */
  url: z.url({ protocol: /^https?$/ }),
  weight: z.number().positive().max(1_000_000).default(1),
  /** A name for status and metrics; the URL's host:port by default. */
  id: z.string().min(1).max(128).optional()
}).strict()

const healthCheckSchema = z.object({
  /** 0 turns active checks off. */
  intervalMs: z.number().int().min(0).max(TIMER_MS_MAX).default(2_000),
  timeoutMs: positiveMs.default(1_000),
  path: z.string().startsWith('/').default('/v1/health'),
  unhealthyThreshold: z.number().int().min(1).max(100).default(2),
  healthyThreshold: z.number().int().min(1).max(100).default(2)
}).strict()

const outlierSchema = z.object({
  consecutive5xx: z.number().int().min(0).default(5),
  consecutiveConnectFailures: z.number().int().min(0).default(3),
  baseEjectionMs: positiveMs.default(10_000),
  ejectionMsMax: positiveMs.default(300_000),
  ejectionPercentMax: percent.default(50)
}).strict()

const slowStartSchema = z.object({
  /** 0 turns slow start off. */
  windowMs: z.number().int().min(0).max(TIMER_MS_MAX).default(5_000),
  minWeightPercent: z.number().min(1).max(100).default(10),
  aggression: z.number().positive().max(100).default(1)
}).strict()

const proxySchema = z.object({
  /** From sending the request to the end of the answer. */
  requestTimeoutMs: positiveMs.default(30_000),
  connectTimeoutMs: positiveMs.default(2_000),
  /** Keep-alive connections per upstream. */
  connectionsPerUpstreamMax: z.number().int().min(1).max(10_000).default(256),
  requestBodyBytesMax: z.number().int().min(0).default(8 * 1_048_576),
  /** Attempts after the first, for idempotent requests whose upstream could not be reached. */
  retriesMax: z.number().int().min(0).max(10).default(2),
  retryPercentMax: percent.default(20),
  retriesPerSecondMin: z.number().min(0).default(10)
}).strict()

const p2cSchema = z.object({
  /**
   * `peak-ewma` (default): in-flight + 1 times a peak EWMA latency estimate, as Finagle and
   * Linkerd; `in-flight`: in-flight + 1 alone, exactly Envoy's least-request. Both over weight.
   */
  load: z.enum(['peak-ewma', 'in-flight']).default('peak-ewma'),
  decayMs: positiveMs.default(10_000),
  defaultRttMs: z.number().min(0).default(1),
  errorPenaltyMs: z.number().min(0).default(1_000)
}).strict()

const clusterSchema = z.object({
  /** Follow the membership view and the store ring of the upstream nodes. */
  follow: z.boolean().default(true),
  refreshIntervalMs: positiveMs.default(1_000)
}).strict()

export const gatewayConfigSchema = z.object({
  /** host:port to listen on; port 0 picks a free one. */
  listen: z.string().regex(/^[^:\s]+:\d{1,5}$/, 'host:port').default('127.0.0.1:8080'),
  strategy: z.enum(STRATEGY_NAMES).default('p2c'),
  upstreams: z.array(upstreamSchema).min(1).max(1_000),
  healthCheck: healthCheckSchema.default(() => healthCheckSchema.parse({})),
  outlier: outlierSchema.default(() => outlierSchema.parse({})),
  slowStart: slowStartSchema.default(() => slowStartSchema.parse({})),
  panicThresholdPercent: percent.default(50),
  /** How p2c (and key affinity's keyless requests) weigh an upstream's load. */
  p2c: p2cSchema.default(() => p2cSchema.parse({})),
  proxy: proxySchema.default(() => proxySchema.parse({})),
  cluster: clusterSchema.optional(),
  /** Serve the read-only dashboard and its feed (`/dashboard/`, `/v1/dashboard/*`); see docs/dashboard.md. */
  dashboard: z.boolean().default(true),
  /** Seeds the balancers' random choices (p2c); a random seed when absent. */
  seed: z.number().int().min(0).max(0xffff_ffff).optional()
}).strict()

export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>
export type GatewayConfig = z.output<typeof gatewayConfigSchema>

/** Checks a config object; `source` names it in errors (a file name, or "flags"). */
export function parseGatewayConfig (value: unknown, source: string): GatewayConfig {
  const parsed = gatewayConfigSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.')
    throw new GatewayError('GATEWAY_CONFIG_INVALID', `${source}: field "${field}": ${issue?.message ?? 'invalid'}`, { source, field })
  }
  const ids = new Set<string>()
  for (const [index, upstream] of parsed.data.upstreams.entries()) {
    const url = new URL(upstream.url)
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      throw new GatewayError('GATEWAY_CONFIG_INVALID', `${source}: field "upstreams.${index}.url": an origin (scheme, host, port) only; the gateway forwards each request's own path`, { source, field: `upstreams.${index}.url` })
    }
    const id = upstreamId(upstream)
    if (ids.has(id)) throw new GatewayError('GATEWAY_CONFIG_INVALID', `${source}: field "upstreams.${index}": upstream ${id} appears twice`, { source, field: `upstreams.${index}` })
    ids.add(id)
  }
  const [host, port] = splitListen(parsed.data.listen)
  if (host.length === 0 || port > 65_535) throw new GatewayError('GATEWAY_CONFIG_INVALID', `${source}: field "listen": host:port with a port in 0..65535`, { source, field: 'listen' })
  return parsed.data
}

export function loadGatewayConfig (file: string): GatewayConfig {
  let value: unknown
  try {
    value = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new GatewayError('GATEWAY_CONFIG_INVALID', `${file}: cannot read as JSON: ${errorMessage(error)}`, { source: file })
  }
  return parseGatewayConfig(value, file)
}

export function upstreamId (upstream: { url: string, id?: string }): string {
  return upstream.id ?? new URL(upstream.url).host
}

export function splitListen (listen: string): [string, number] {
  const colon = listen.lastIndexOf(':')
  return [listen.slice(0, colon), Number(listen.slice(colon + 1))]
}
