/**
 * Topology: the overlay as a graph. Nodes coloured by how the cluster sees them; links by state
 * (up, down, cut by a partition) with their RTT; the broadcast tree's eager links drawn thick.
 * "Trace a route" sends a routed echo between two nodes and highlights the paths it took.
 */
import cytoscape from 'cytoscape'
import { nodeState, shortId, type Snapshot } from '../api.js'
import { fill, h } from '../dom.js'
import type { View } from '../main.js'

const NODE_COLOURS: Record<string, string> = { alive: '#59a14f', suspect: '#edc948', partitioned: '#f28e2b', dead: '#e15759', killed: '#7f7f7f', unreachable: '#e15759' }

interface EchoAnswer { requestPath?: string[], replyPath?: string[], rttMs?: number, code?: string, message?: string }

export class TopologyView implements View {
  private graph: cytoscape.Core | null = null
  private legend: HTMLElement | null = null
  private routeResult: HTMLElement | null = null
  private from: HTMLSelectElement | null = null
  private to: HTMLSelectElement | null = null
  private highlighted: string[] = []

  mount (container: HTMLElement): void {
    const canvas = h('div', { className: 'graph', 'data-testid': 'topology-graph' })
    this.legend = h('div', { className: 'legend', 'data-testid': 'topology-legend' })
    this.from = h('select', { 'data-testid': 'route-from' })
    this.to = h('select', { 'data-testid': 'route-to' })
    this.routeResult = h('span', { className: 'muted', 'data-testid': 'route-result' })
    const trace = h('button', { onclick: () => { void this.trace() }, 'data-testid': 'route-trace' }, 'Trace a route')
    container.append(h('div', { className: 'view', 'data-testid': 'view-topology' },
      h('div', { className: 'toolbar' }, 'from ', this.from, ' to ', this.to, ' ', trace, ' ', this.routeResult),
      canvas, this.legend))
    this.graph = cytoscape({
      container: canvas,
      autoungrabify: false,
      style: [
        { selector: 'node', style: { label: 'data(label)', 'background-color': 'data(colour)', color: '#e8e8e8', 'font-size': 12, 'text-valign': 'bottom', 'text-margin-y': 6, width: 34, height: 34 } },
        { selector: 'edge', style: { width: 2, 'line-color': '#8a8f98', label: 'data(label)', 'font-size': 10, color: '#b8bcc4', 'text-background-color': '#1c1f24', 'text-background-opacity': 1, 'curve-style': 'bezier' } },
        { selector: 'edge[broadcast = "eager"]', style: { width: 4 } },
        { selector: 'edge[state = "down"]', style: { 'line-color': '#e15759', 'line-style': 'dashed' } },
        { selector: 'edge[state = "cut"]', style: { 'line-color': '#f28e2b', 'line-style': 'dotted', width: 3 } },
        { selector: '.route', style: { 'line-color': '#76b7b2', width: 6, 'z-index': 10 } }
      ]
    })
  }

  update (snapshot: Snapshot): void {
    const graph = this.graph
    if (graph === null) return
    const ids = snapshot.nodes.map((node) => node.id)
    let added = false
    graph.batch(() => {
      for (const node of snapshot.nodes) {
        const state = nodeState(snapshot, node)
        const data = { id: node.id, label: `${shortId(node.id)} · ${state}`, colour: NODE_COLOURS[state] ?? '#888', state }
        const existing = graph.getElementById(node.id)
        if (existing.empty()) { graph.add({ group: 'nodes', data }); added = true } else existing.data(data)
      }
      const wanted = new Set<string>()
      for (const link of snapshot.overlay.links) {
        // A link to a member the gateway does not list (it fronts only some) has no node to draw.
        if (!ids.includes(link.a) || !ids.includes(link.b)) continue
        const id = `${link.a}|${link.b}`
        wanted.add(id)
        const data = { id, source: link.a, target: link.b, state: link.state, broadcast: link.broadcast ?? 'none', label: link.state === 'up' ? (link.rttMs === null ? '' : `${link.rttMs.toFixed(1)} ms`) : link.state }
        const existing = graph.getElementById(id)
        if (existing.empty()) graph.add({ group: 'edges', data })
        else existing.data(data)
      }
      graph.edges().forEach((edge) => { if (!wanted.has(edge.id())) edge.remove() })
      graph.nodes().forEach((node) => { if (!ids.includes(node.id())) node.remove() })
    })
    if (added) graph.layout({ name: 'circle', padding: 40 }).run()
    for (const select of [this.from, this.to]) {
      if (select === null || select.options.length === ids.length) continue
      fill(select, ...ids.map((id) => h('option', { value: id }, shortId(id))))
    }
    if (this.to !== null && this.to.selectedIndex === 0 && ids.length > 1) this.to.selectedIndex = ids.length - 1
    if (this.legend !== null) {
      const counts = { up: 0, down: 0, cut: 0 }
      for (const link of snapshot.overlay.links) counts[link.state]++
      const eager = snapshot.overlay.links.filter((link) => link.broadcast === 'eager').length
      fill(this.legend, h('span', { 'data-testid': 'link-counts' }, `${counts.up} links up, ${counts.down} down, ${counts.cut} cut by a partition`),
        ` · ${eager} eager (broadcast tree) links drawn thick · dotted orange = cut, dashed red = down`)
    }
  }

  private async trace (): Promise<void> {
    const graph = this.graph
    if (graph === null || this.from === null || this.to === null || this.routeResult === null) return
    const from = this.from.value
    const to = this.to.value
    this.routeResult.textContent = 'tracing…'
    graph.elements().removeClass('route')
    try {
      const answer = await fetch(`/v1/dashboard/route?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, { method: 'POST' })
      const body = await answer.json() as EchoAnswer
      if (!answer.ok || body.requestPath === undefined) { this.routeResult.textContent = `no route: ${body.code ?? answer.status} ${body.message ?? ''}`; return }
      const hops = (path: string[]): string[] => path.slice(1).map((node, index) => [path[index] as string, node].sort().join('|'))
      this.highlighted = [...hops(body.requestPath), ...hops(body.replyPath ?? [])]
      for (const id of this.highlighted) graph.getElementById(id).addClass('route')
      this.routeResult.textContent = `request ${body.requestPath.map(shortId).join(' → ')}; reply ${(body.replyPath ?? []).map(shortId).join(' → ')}${body.rttMs === undefined ? '' : `; ${body.rttMs.toFixed(1)} ms`}`
    } catch (error) {
      this.routeResult.textContent = `failed: ${String(error)}`
    }
  }

  unmount (): void {
    this.graph?.destroy()
    this.graph = null
  }
}
