/** The overlay's HTTP routes (`/v1/topology`, `/v1/net/echo/:nodeId`) and Prometheus metrics. */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { NetError, type EchoResult, type OverlayService, type OverlayStats } from '../net/index.js'
import type { LoadedConfig } from './config.js'
import { collectedCounter, collectedGauge } from './metrics.js'

/** Longest an echo may wait for its reply. */
export const ECHO_TIMEOUT_MS_MAX = 30_000
const ECHO_TIMEOUT_MS_DEFAULT = 2_000

export function registerOverlayRoutes (api: FastifyInstance, overlay: OverlayService, config: LoadedConfig): void {
  const members = new Map(config.network.members.map((member) => [member.id, member]))
  api.get('/v1/topology', async () => ({
    self: config.node.nodeId,
    topology: config.network.topology ?? { kind: 'full-mesh' },
    routeMetric: config.network.routeMetric ?? 'hops',
    members: [...members.values()].map((member) => ({ id: member.id, api: member.api })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    links: overlay.neighbourViews(),
    routes: overlay.routes(),
    linkStates: overlay.linkStates()
  }))
  api.post<{ Params: { nodeId: string }, Querystring: { timeoutMs?: string } }>('/v1/net/echo/:nodeId', async (request) => {
    const target = request.params.nodeId
    if (!members.has(target)) throw new NetError('NET_NOT_A_MEMBER', `${target} is not a member of ${config.network.networkId}`, { target })
    const timeoutMs = request.query.timeoutMs === undefined ? ECHO_TIMEOUT_MS_DEFAULT : Number(request.query.timeoutMs)
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > ECHO_TIMEOUT_MS_MAX) {
      throw new NetError('NET_BAD_REQUEST', `timeoutMs: expected an integer in 1..${ECHO_TIMEOUT_MS_MAX}`, { field: 'timeoutMs' })
    }
    const result = await new Promise<EchoResult>((resolve, reject) => {
      overlay.echo(target, timeoutMs, (outcome) => {
        if (outcome instanceof NetError) reject(outcome)
        else resolve(outcome)
      })
    })
    return { ...result, requestHops: result.requestPath.length - 1, replyHops: result.replyPath.length - 1 }
  })
}

type CounterField = Exclude<keyof OverlayStats, 'routedHops' | 'broadcastHops' | 'dropped' | 'broadcast'>

const plainCounters: Array<[CounterField, string, string]> = [
  ['routedSent', 'synod_net_routed_sent_total', 'Routed messages this node originated.'],
  ['routedForwarded', 'synod_net_routed_forwarded_total', 'Routed messages this node passed on towards their destination.'],
  ['routedDelivered', 'synod_net_routed_delivered_total', 'Routed messages delivered to this node.'],
  ['linkStatesAnnounced', 'synod_net_link_states_announced_total', 'Link-state announcements this node broadcast.']
]

const broadcastCounters: Array<[keyof OverlayStats['broadcast'], string, string]> = [
  ['originated', 'synod_net_broadcast_originated_total', 'Broadcasts this node originated.'],
  ['delivered', 'synod_net_broadcast_delivered_total', 'Broadcasts delivered to this node (each once).'],
  ['duplicates', 'synod_net_broadcast_duplicates_total', 'Copies of an already delivered broadcast that arrived along the tree.'],
  ['repairDuplicates', 'synod_net_broadcast_repair_duplicates_total', 'Copies of an already delivered broadcast that arrived as repair.'],
  ['repaired', 'synod_net_broadcast_repaired_total', 'Broadcasts first received through graft or digest repair.'],
  ['grafts', 'synod_net_broadcast_grafts_total', 'Links grafted into the broadcast tree after a missing message.'],
  ['prunes', 'synod_net_broadcast_prunes_total', 'Prunes sent after a duplicate.']
]

export function registerOverlayMetrics (registry: Registry, overlay: OverlayService): void {
  for (const [field, name, help] of plainCounters) collectedCounter(registry, name, help, () => overlay.stats()[field])
  for (const [field, name, help] of broadcastCounters) collectedCounter(registry, name, help, () => overlay.stats().broadcast[field])
  collectedCounter(registry, 'synod_net_dropped_total', 'Routed messages dropped, by cause.', () => overlay.stats().dropped, 'cause')
  collectedCounter(registry, 'synod_net_routed_delivered_by_hops_total', 'Routed messages delivered here, by hops taken.', () => overlay.stats().routedHops, 'hops')
  collectedCounter(registry, 'synod_net_broadcast_delivered_by_hops_total', 'Broadcasts delivered here, by hops from their origin.', () => overlay.stats().broadcastHops, 'hops')
  collectedGauge(registry, { name: 'synod_net_routes', help: 'Members this node has a route to.', read: () => overlay.routes().length })
}
