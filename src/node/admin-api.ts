/**
 * The node's admin routes, served only when the node was started with an admin token (`synod up`
 * hands one to the nodes of a local cluster; a production node has none, and then these routes do
 * not exist). Every request must carry `Authorization: Bearer <token>`.
 *
 * - `GET /v1/admin/faults`: the link faults in force and what they dropped or delayed.
 * - `PUT /v1/admin/faults` with `{isolatedFrom?, latencyMs?, lossPercent?}`: replaces them (an
 *   empty object heals the node).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Registry } from 'prom-client'
import { bearerTokenMatches, parseLinkFaults, SynodError, type FaultyTransport, type NodeId } from '../core/index.js'
import { collectedCounter, collectedGauge } from './metrics.js'

export class AdminError extends SynodError<'ADMIN_UNAUTHORIZED'> {}

export function requireAdminToken (request: FastifyRequest, token: string): void {
  if (!bearerTokenMatches(request.headers.authorization, token)) {
    throw new AdminError('ADMIN_UNAUTHORIZED', 'admin routes need the header Authorization: Bearer <token> with the token `synod up` printed')
  }
}

export function registerAdminRoutes (api: FastifyInstance, faults: FaultyTransport, token: string, members: readonly NodeId[], onChange: (description: string) => void): void {
  const describe = (): object => ({ nodeId: faults.self, faults: faults.current(), stats: faults.faultStats() })
  api.get('/v1/admin/faults', async (request) => {
    requireAdminToken(request, token)
    return describe()
  })
  api.put('/v1/admin/faults', async (request) => {
    requireAdminToken(request, token)
    const next = parseLinkFaults(request.body === undefined ? {} : request.body, members, faults.self)
    faults.set(next)
    onChange(`isolated from [${next.isolatedFrom.join(', ')}], latency ${next.latencyMs} ms, loss ${next.lossPercent}%`)
    return describe()
  })
}

export function registerFaultMetrics (registry: Registry, faults: FaultyTransport): void {
  collectedCounter(registry, 'synod_fault_frames_dropped_total', 'Frames dropped by injected faults, by cause (isolated, loss).', () => {
    const stats = faults.faultStats()
    return { isolated: stats.framesDroppedIsolated, loss: stats.framesDroppedLoss }
  }, 'cause')
  collectedCounter(registry, 'synod_fault_frames_delayed_total', 'Frames delayed by injected latency.', () => faults.faultStats().framesDelayed)
  collectedGauge(registry, { name: 'synod_fault_isolated_peers', help: 'Peers this node is cut off from by an injected partition.', read: () => faults.current().isolatedFrom.length })
  collectedGauge(registry, { name: 'synod_fault_latency_ms', help: 'Milliseconds of injected latency per direction on every link.', read: () => faults.current().latencyMs })
  collectedGauge(registry, { name: 'synod_fault_loss_percent', help: 'Percentage of frames dropped by injected loss, per direction.', read: () => faults.current().lossPercent })
}
