/**
 * The gateway's Prometheus metrics, per upstream: requests by status class, errors by kind,
 * latency, ejections, in-flight, serving and effective weight; and for the gateway: retries,
 * retries the budget refused, its own typed errors, panic mode.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { UpstreamStatus } from './balancers/index.js'

type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx'
const CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx']

interface Bound { requests: Record<StatusClass, Counter.Internal>, latency: Histogram.Internal<'upstream'> }

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'upstream' | 'class'>
  readonly upstreamErrors: Counter<'upstream' | 'kind'>
  readonly latency: Histogram<'upstream'>
  readonly ejections: Counter<'upstream'>
  readonly healthChecks: Counter<'upstream' | 'result'>
  readonly retries: Counter
  readonly retriesRefused: Counter
  readonly gatewayErrors: Counter<'code'>
  readonly clusterRefreshFailures: Counter
  /** Label children bound once per upstream: the request path does no label hashing. */
  private readonly bound = new Map<string, Bound>()

  constructor (upstreams: () => ReadonlyArray<UpstreamStatus & { inFlight: number }>) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'synod_gateway_process_' })
    this.requests = new Counter({ name: 'synod_gateway_requests_total', help: 'Requests answered by each upstream, by status class.', labelNames: ['upstream', 'class'], registers })
    this.upstreamErrors = new Counter({ name: 'synod_gateway_upstream_errors_total', help: 'Requests to an upstream that got no full answer: connect-failure, timeout or reset.', labelNames: ['upstream', 'kind'], registers })
    this.latency = new Histogram({
      name: 'synod_gateway_request_duration_seconds',
      help: 'From sending to the upstream to the end of its answer.',
      labelNames: ['upstream'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers
    })
    this.ejections = new Counter({ name: 'synod_gateway_ejections_total', help: 'Times outlier detection ejected an upstream.', labelNames: ['upstream'], registers })
    this.healthChecks = new Counter({ name: 'synod_gateway_health_checks_total', help: 'Active health checks, by result.', labelNames: ['upstream', 'result'], registers })
    this.retries = new Counter({ name: 'synod_gateway_retries_total', help: 'Idempotent requests sent again to another upstream after a connect failure or reset.', registers })
    this.retriesRefused = new Counter({ name: 'synod_gateway_retries_refused_total', help: 'Retries the retry budget refused.', registers })
    this.gatewayErrors = new Counter({ name: 'synod_gateway_errors_total', help: "The gateway's own error answers, by code.", labelNames: ['code'], registers })
    this.clusterRefreshFailures = new Counter({ name: 'synod_gateway_cluster_refresh_failures_total', help: 'Reads of the cluster view (ring, members) that failed.', registers })
    const perUpstream = (name: string, help: string, read: (status: UpstreamStatus & { inFlight: number }) => number): void => {
      new Gauge({ name, help, labelNames: ['upstream'], registers, collect () { for (const status of upstreams()) this.set({ upstream: status.id }, read(status)) } })
    }
    perUpstream('synod_gateway_upstream_in_flight', 'Requests sent to the upstream and not yet answered.', (status) => status.inFlight)
    perUpstream('synod_gateway_upstream_serving', '1 when the upstream is in the balancing set (healthy, not ejected, not dead).', (status) => status.serving ? 1 : 0)
    perUpstream('synod_gateway_upstream_weight', 'The effective weight (slow start lowers it for a while).', (status) => status.effectiveWeight)
    perUpstream('synod_gateway_upstream_ejected', '1 while outlier detection holds the upstream out.', (status) => status.ejected ? 1 : 0)
  }

  ensureUpstream (id: string): void {
    if (this.bound.has(id)) return
    const requests = Object.fromEntries(CLASSES.map((statusClass) => [statusClass, this.requests.labels({ upstream: id, class: statusClass })])) as Record<StatusClass, Counter.Internal>
    this.bound.set(id, { requests, latency: this.latency.labels({ upstream: id }) })
    for (const kind of ['connect-failure', 'timeout', 'reset']) this.upstreamErrors.labels({ upstream: id, kind })
    this.ejections.labels({ upstream: id })
  }

  observe (id: string, statusCode: number, seconds: number): void {
    const bound = this.bound.get(id)
    if (bound === undefined) return
    bound.requests[CLASSES[Math.min(4, Math.max(0, Math.floor(statusCode / 100) - 1))]].inc()
    bound.latency.observe(seconds)
  }

  upstreamError (id: string, kind: 'connect-failure' | 'timeout' | 'reset'): void {
    this.upstreamErrors.inc({ upstream: id, kind })
  }
}
