/**
 * The dashboard: five views over one live feed. The gateway pushes a snapshot of the whole cluster
 * every poll interval over Server-Sent Events (`/v1/dashboard/events`); each view renders it.
 * Views are picked by the address' hash (`#/overview`, `#/topology`, …).
 */
import './style.css'
import { adoptTokenFromUrl, type Snapshot } from './api.js'
import { fill, h } from './dom.js'
import { OverviewView } from './views/overview.js'
import { TopologyView } from './views/topology.js'
import { ChainView } from './views/chain.js'
import { StoreView } from './views/store.js'
import { FaultsView } from './views/faults.js'

export interface View {
  mount (container: HTMLElement, history: readonly Snapshot[]): void
  update (snapshot: Snapshot): void
  unmount (): void
}

/** Snapshots kept for charts that open later: the last CHART window. */
const HISTORY_MAX = 120

const routes: Array<{ path: string, label: string, create: () => View }> = [
  { path: 'overview', label: 'Overview', create: () => new OverviewView() },
  { path: 'topology', label: 'Topology', create: () => new TopologyView() },
  { path: 'chain', label: 'Chain', create: () => new ChainView() },
  { path: 'store', label: 'Store', create: () => new StoreView() },
  { path: 'faults', label: 'Faults', create: () => new FaultsView() }
]

const history: Snapshot[] = []
let current: { path: string, view: View } | null = null
const container = document.getElementById('view') as HTMLElement
const nav = document.getElementById('nav') as HTMLElement
const live = document.getElementById('live') as HTMLElement

function routeOf (): string {
  const path = location.hash.replace(/^#\/?/, '')
  return routes.some((route) => route.path === path) ? path : 'overview'
}

function show (): void {
  const path = routeOf()
  if (current?.path === path) return
  current?.view.unmount()
  const route = routes.find((candidate) => candidate.path === path) ?? (routes[0] as typeof routes[number])
  fill(nav, ...routes.map((entry) => h('a', { href: `#/${entry.path}`, className: entry.path === path ? 'active' : '', 'data-testid': `nav-${entry.path}` }, entry.label)))
  container.replaceChildren()
  const view = route.create()
  current = { path, view }
  view.mount(container, history)
  const latest = history[history.length - 1]
  if (latest !== undefined) view.update(latest)
}

function connect (): void {
  const source = new EventSource('/v1/dashboard/events')
  source.addEventListener('open', () => { live.dataset.state = 'live'; live.textContent = 'live' })
  source.addEventListener('error', () => { live.dataset.state = 'reconnecting'; live.textContent = 'reconnecting…' })
  source.addEventListener('snapshot', (event) => {
    const snapshot = JSON.parse((event as MessageEvent<string>).data) as Snapshot
    history.push(snapshot)
    if (history.length > HISTORY_MAX) history.shift()
    live.dataset.state = 'live'
    live.textContent = `live · ${new Date(snapshot.atMs).toLocaleTimeString()}`
    document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots ?? '0') + 1)
    current?.view.update(snapshot)
  })
}

adoptTokenFromUrl()
window.addEventListener('hashchange', show)
show()
connect()
