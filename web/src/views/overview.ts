/** Overview: the nodes with health, role and quorum; consensus; store and gateway traffic. */
import { LEVELS, nodeState, shortId, type Snapshot } from '../api.js'
import { badge, card, duration, fill, fmt, h, table } from '../dom.js'
import type { View } from '../main.js'

export const STATE_KIND: Record<string, string> = { alive: 'ok', suspect: 'warn', partitioned: 'warn', dead: 'bad', killed: 'bad', unreachable: 'bad' }

export class OverviewView implements View {
  private root: HTMLElement | null = null

  mount (container: HTMLElement): void {
    this.root = h('div', { className: 'view', 'data-testid': 'view-overview' }, h('p', { className: 'muted' }, 'waiting for the first snapshot…'))
    container.append(this.root)
  }

  update (snapshot: Snapshot): void {
    if (this.root === null) return
    const states = snapshot.nodes.map((node) => nodeState(snapshot, node))
    const alive = states.filter((state) => state === 'alive').length
    const chain = snapshot.chain
    const cards = h('div', { className: 'cards' },
      card('Nodes alive', `${alive} / ${snapshot.nodes.length}`, snapshot.overlay.kind === null ? null : `overlay: ${snapshot.overlay.kind}`, 'card-nodes'),
      card('Consensus', chain === null ? 'no ledger' : chain.engine.toUpperCase(), chain === null ? null : `${chain.mempoolTxs} txs in the mempool`, 'card-consensus'),
      card('Head / finalized', chain === null ? '–' : h('span', { 'data-testid': 'head-height' }, String(chain.headHeight)), chain === null ? null : `finalized ${chain.finalizedHeight ?? 'n/a (no finality)'}`, 'card-head'),
      card('Transactions / s', chain === null ? '–' : fmt(chain.txPerSec, 1), 'committed, last 10 s', 'card-tps'),
      ...LEVELS.map((level) => {
        const figures = snapshot.store.levels[level]
        return card(`Store ${level}`, `${fmt(figures.opsPerSec, 1)} ops/s`, `p50 ${fmt(figures.p50Ms, 1)} ms · p99 ${fmt(figures.p99Ms, 1)} ms${figures.errorsPerSec > 0 ? ` · ${fmt(figures.errorsPerSec, 1)} err/s` : ''}`, `card-store-${level}`)
      }))
    const nodes = table(['node', 'state', 'role', 'quorum', 'height', 'finalized', 'store ops/s', 'faults', 'uptime'], snapshot.nodes.map((node, index) => {
      const state = states[index] as string
      return [
        h('code', { title: node.id }, shortId(node.id)),
        h('span', { 'data-testid': `node-state-${node.id}` }, badge(state, STATE_KIND[state] ?? 'warn')),
        node.role ?? '–',
        node.hasQuorum === null ? '–' : node.hasQuorum ? badge('quorum', 'ok') : badge('no quorum', 'bad'),
        node.height ?? '–',
        node.finalizedHeight ?? '–',
        fmt(node.storeOpsPerSec, 1),
        faultText(node.faults),
        duration(node.uptimeMs)
      ]
    }), 'nodes-table')
    const gateway = table(['upstream', 'url', 'serving', 'membership', 'req/s', 'errors/s', 'in flight', 'latency est.'], snapshot.gateway.upstreams.map((upstream) => [
      h('code', { title: upstream.id }, shortId(upstream.id)),
      upstream.url,
      upstream.serving ? badge('serving', 'ok') : badge(upstream.ejected ? 'ejected' : 'out', 'bad'),
      upstream.membership ?? '–',
      fmt(upstream.requestsPerSec, 1),
      fmt(upstream.errorsPerSec, 1),
      upstream.inFlight,
      upstream.latencyEstimateMs === null ? '–' : `${fmt(upstream.latencyEstimateMs, 2)} ms`
    ]), 'gateway-table')
    fill(this.root, cards,
      h('h2', {}, 'Nodes'), nodes,
      h('h2', {}, `Gateway (${snapshot.gateway.strategy}) at ${snapshot.gateway.address}`), gateway)
  }

  unmount (): void {
    this.root = null
  }
}

export function faultText (faults: Snapshot['nodes'][number]['faults']): string {
  if (faults === null) return '–'
  const parts: string[] = []
  if (faults.isolatedFrom.length > 0) parts.push(`cut from ${faults.isolatedFrom.map(shortId).join(', ')}`)
  if (faults.latencyMs > 0) parts.push(`+${faults.latencyMs} ms`)
  if (faults.lossPercent > 0) parts.push(`${faults.lossPercent}% loss`)
  return parts.length === 0 ? 'none' : parts.join('; ')
}
