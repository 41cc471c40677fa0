/** Membership's HTTP route (`GET /v1/cluster/members`) and Prometheus metrics. */
import type { FastifyInstance } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import { memberStates, type MembershipService, type MembershipStats } from '../membership/index.js'
import type { LoadedConfig } from './config.js'
import { collectedCounter, collectedGauge } from './metrics.js'

export function registerMembershipRoutes (api: FastifyInstance, membership: MembershipService, config: LoadedConfig, now: () => number): void {
  const apiOf = new Map(config.network.members.map((member) => [member.id, member.api]))
  api.get('/v1/cluster/members', async () => {
    const view = membership.view()
    const nowMs = now()
    return {
      ...view,
      members: view.members.map((member) => ({
        ...member,
        lastHeardAgoMs: member.lastHeardMs === null ? null : Math.max(0, Math.round(nowMs - member.lastHeardMs)),
        api: apiOf.get(member.id) ?? null
      }))
    }
  })
}

type CounterField = Exclude<keyof MembershipStats, 'messagesSent' | 'messagesReceived'>

const counters: Array<[CounterField, string, string]> = [
  ['probes', 'synod_membership_probes_total', 'Probes this node started.'],
  ['probesFailed', 'synod_membership_probes_failed_total', 'Probes answered neither directly nor through helpers.'],
  ['probesInconclusive', 'synod_membership_probes_inconclusive_total', 'Probes ignored because this node stalled while they ran.'],
  ['indirectProbesSent', 'synod_membership_indirect_probes_total', 'Indirect probe requests sent to helpers.'],
  ['probesOnLinkLoss', 'synod_membership_probes_on_link_loss_total', 'Probes started out of turn because a link dropped.'],
  ['suspicionsRaised', 'synod_membership_suspicions_total', 'Members this node came to suspect.'],
  ['refutations', 'synod_membership_refutations_total', 'Claims against this node it refuted with a higher incarnation.'],
  ['corrections', 'synod_membership_corrections_total', 'Outdated accusations answered with what this node knows.'],
  ['reannouncements', 'synod_membership_reannouncements_total', 'Outdated accusations of this node answered with its current record.'],
  ['declaredDead', 'synod_membership_declared_dead_total', 'Members this node declared dead when a suspicion expired.'],
  ['sendsUnroutable', 'synod_membership_sends_unroutable_total', 'Membership messages with no route to their member.'],
  ['ignoredFromBanned', 'synod_membership_ignored_from_banned_total', 'Messages from banned peers, ignored.'],
  ['violations', 'synod_membership_violations_total', 'Membership protocol violations received.'],
  ['penalties', 'synod_membership_penalties_total', 'Score penalties given to peers.'],
  ['bans', 'synod_membership_bans_total', 'Peers banned: disconnected and refused for a back-off period.']
]

export function registerMembershipMetrics (registry: Registry, membership: MembershipService): void {
  for (const [field, name, help] of counters) collectedCounter(registry, name, help, () => membership.stats()[field])
  collectedCounter(registry, 'synod_membership_messages_sent_total', 'Membership messages sent, by type.', () => membership.stats().messagesSent, 'type')
  collectedCounter(registry, 'synod_membership_messages_received_total', 'Membership messages received, by type.', () => membership.stats().messagesReceived, 'type')
  collectedGauge(registry, { name: 'synod_membership_has_quorum', help: '1 when this node reaches a strict majority of the configured members.', read: () => membership.hasQuorum() ? 1 : 0 })
  collectedGauge(registry, { name: 'synod_membership_reachable_members', help: 'Members this node reaches, itself included.', read: () => membership.reachable().length })
  collectedGauge(registry, { name: 'synod_membership_awareness', help: 'Lifeguard local health score: 0 is healthy; probe intervals stretch by 1 + score.', read: () => membership.view().awareness })
  collectedGauge(registry, { name: 'synod_membership_updates_queued', help: 'Membership updates waiting to be gossiped on; zero in a quiet cluster.', read: () => membership.updatesQueued() })
  collectedGauge(registry, { name: 'synod_membership_incarnation', help: "This node's incarnation number.", read: () => membership.view().incarnation })
  new Gauge({
    name: 'synod_membership_members', help: 'Members by the state this node holds them in.', registers: [registry], labelNames: ['state'],
    collect () {
      const members = membership.view().members
      for (const state of memberStates) this.set({ state }, members.filter((member) => member.state === state).length)
    }
  })
}
