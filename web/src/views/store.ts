/**
 * Store: the ring (each member's virtual nodes around the circle, a key's preference list on
 * search), throughput and latency per consistency level as live charts, and the repair traffic
 * (hinted handoffs, read repairs, anti-entropy). "Send traffic" writes and reads through the
 * gateway at every level, so there is something to watch.
 */
import { LEVELS, getJson, request, shortId, type RingView, type Snapshot, type StoreLevel } from '../api.js'
import { LiveChart } from '../charts.js'
import { card, colourOf, fill, fmt, h, table } from '../dom.js'
import type { View } from '../main.js'

const LEVEL_COLOURS: Record<StoreLevel, string> = { strong: '#e15759', causal: '#4e79a7', eventual: '#59a14f' }
const SVG = 'http://www.w3.org/2000/svg'
/** Requests per level per tick of the traffic generator (a tick is 200 ms). */
const TRAFFIC_REQUESTS_PER_TICK = 2
const TRAFFIC_TICK_MS = 200
/** Keys per level the traffic generator cycles through. */
const TRAFFIC_KEYS = 50

function svg<K extends keyof SVGElementTagNameMap> (tag: K, attributes: Record<string, string | number>): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  return element
}

export class StoreView implements View {
  private throughput: LiveChart | null = null
  private latency: LiveChart | null = null
  private ringBox: HTMLElement | null = null
  private ringLegend: HTMLElement | null = null
  private counters: HTMLElement | null = null
  private keyInput: HTMLInputElement | null = null
  private keyResult: HTMLElement | null = null
  private ringVersion = -1
  private ring: RingView | null = null
  private traffic: number | null = null
  private trafficButton: HTMLButtonElement | null = null
  private sent = 0
  private readonly written = new Set<string>()

  mount (container: HTMLElement, history: readonly Snapshot[]): void {
    this.ringBox = h('div', { className: 'ring', 'data-testid': 'store-ring' })
    this.ringLegend = h('div', { className: 'legend' })
    this.counters = h('div', { className: 'cards' })
    this.keyInput = h('input', { type: 'text', placeholder: 'a key, e.g. greeting', 'data-testid': 'ring-key' })
    this.keyInput.addEventListener('keydown', (event) => { if (event.key === 'Enter') void this.lookUp() })
    this.keyResult = h('div', { className: 'muted', 'data-testid': 'ring-key-result' })
    this.trafficButton = h('button', { onclick: () => { this.toggleTraffic() }, 'data-testid': 'store-traffic' }, 'Send traffic')
    const charts = h('div', { className: 'charts' })
    container.append(h('div', { className: 'view', 'data-testid': 'view-store' },
      h('div', { className: 'toolbar' }, this.trafficButton, h('span', { className: 'muted' }, ` writes and reads through the gateway at every level, ${TRAFFIC_REQUESTS_PER_TICK * 1_000 / TRAFFIC_TICK_MS} per second each`)),
      this.counters,
      charts,
      h('h2', {}, 'Ring'),
      h('div', { className: 'ring-row' }, this.ringBox, h('div', {},
        h('div', { className: 'toolbar' }, this.keyInput, ' ', h('button', { onclick: () => { void this.lookUp() }, 'data-testid': 'ring-key-lookup' }, 'Preference list')),
        this.keyResult, this.ringLegend))))
    const series = LEVELS.map((level) => ({ label: level, colour: LEVEL_COLOURS[level] }))
    this.throughput = new LiveChart(charts, 'Operations per second', 'ops/s', series)
    this.latency = new LiveChart(charts, 'Latency p99', 'ms', series)
    for (const snapshot of history) this.plot(snapshot)
  }

  update (snapshot: Snapshot): void {
    this.plot(snapshot)
    if (this.counters !== null) {
      const store = snapshot.store
      fill(this.counters,
        ...LEVELS.map((level) => card(level, h('span', { 'data-testid': `store-ops-${level}` }, `${fmt(store.levels[level].opsPerSec, 1)} ops/s`), `p50 ${fmt(store.levels[level].p50Ms, 1)} · p99 ${fmt(store.levels[level].p99Ms, 1)} ms`)),
        card('Hinted handoff', `${store.hintsHeld} held`, `${fmt(store.hintsDeliveredPerSec, 1)} delivered/s`),
        card('Read repairs', `${fmt(store.readRepairsPerSec, 1)}/s`),
        card('Anti-entropy', `${fmt(store.antiEntropyExchangesPerSec, 1)} exchanges/s`, `${fmt(store.antiEntropyKeysSentPerSec, 1)} keys repaired/s`))
    }
    const version = snapshot.store.ring?.version ?? -1
    if (version !== this.ringVersion) {
      this.ringVersion = version
      void this.loadRing()
    }
  }

  private plot (snapshot: Snapshot): void {
    this.throughput?.push(snapshot.atMs, LEVELS.map((level) => snapshot.store.levels[level].opsPerSec))
    this.latency?.push(snapshot.atMs, LEVELS.map((level) => snapshot.store.levels[level].p99Ms))
  }

  private async loadRing (key?: string): Promise<void> {
    const ring = await getJson<RingView>(`/v1/dashboard/ring${key === undefined ? '' : `?key=${encodeURIComponent(key)}`}`)
    this.ring = ring
    this.drawRing(ring)
  }

  private drawRing (ring: RingView): void {
    if (this.ringBox === null || this.ringLegend === null) return
    const ids = ring.members.map((member) => member.id)
    const size = 320
    const centre = size / 2
    const radius = 130
    const picture = svg('svg', { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: 'img', 'aria-label': 'hash ring' })
    picture.append(svg('circle', { cx: centre, cy: centre, r: radius, fill: 'none', stroke: '#444', 'stroke-width': 14 }))
    const at = (position: number, r: number): [number, number] => [centre + r * Math.sin(position * 2 * Math.PI), centre - r * Math.cos(position * 2 * Math.PI)]
    for (const token of ring.tokens) {
      const [x1, y1] = at(token.position, radius - 7)
      const [x2, y2] = at(token.position, radius + 7)
      picture.append(svg('line', { x1, y1, x2, y2, stroke: colourOf(ids, token.member), 'stroke-width': 1.5 }))
    }
    if (ring.key !== undefined) {
      const [x, y] = at(ring.key.position, radius)
      const [lx, ly] = at(ring.key.position, radius - 30)
      picture.append(svg('line', { x1: centre, y1: centre, x2: x, y2: y, stroke: '#fff', 'stroke-width': 1, 'stroke-dasharray': '3 3' }))
      picture.append(svg('circle', { cx: x, cy: y, r: 6, fill: '#fff' }))
      const label = svg('text', { x: lx, y: ly, fill: '#fff', 'font-size': 11, 'text-anchor': 'middle' })
      label.textContent = ring.key.key
      picture.append(label)
    }
    this.ringBox.replaceChildren(picture)
    fill(this.ringLegend, h('p', {}, `version ${ring.version} · replication factor ${ring.replicationFactor} · ${ring.tokens.length} virtual nodes`),
      table(['member', 'virtual nodes', 'primary share'], ring.members.map((member) => [
        h('span', {}, h('span', { className: 'swatch', style: `background:${colourOf(ids, member.id)}` }), ' ', shortId(member.id)),
        member.vnodes,
        `${(member.share * 100).toFixed(1)}%`
      ])))
  }

  private async lookUp (): Promise<void> {
    const key = this.keyInput?.value.trim() ?? ''
    if (key === '' || this.keyResult === null) return
    await this.loadRing(key)
    const list = this.ring?.key?.preferenceList ?? []
    this.keyResult.textContent = `${key} → replicas ${list.map(shortId).join(', ')} (first: the coordinator the gateway picks)`
  }

  private toggleTraffic (): void {
    if (this.traffic !== null) { this.stopTraffic(); return }
    this.traffic = window.setInterval(() => {
      for (const level of LEVELS) {
        for (let index = 0; index < TRAFFIC_REQUESTS_PER_TICK; index++) {
          const key = `demo-${level}-${(this.sent++) % TRAFFIC_KEYS}`
          const path = `/v1/kv/${encodeURIComponent(key)}?consistency=${level}`
          // Reads only of keys already written, so a read finds its key.
          if (index % 2 === 1 && this.written.has(key)) { void request('GET', path).catch(() => {}); continue }
          void request('PUT', path, `value ${this.sent}`).then((answer) => { if (answer.status === 200) this.written.add(key) }, () => {})
        }
      }
    }, TRAFFIC_TICK_MS)
    if (this.trafficButton !== null) this.trafficButton.textContent = 'Stop traffic'
  }

  private stopTraffic (): void {
    if (this.traffic !== null) window.clearInterval(this.traffic)
    this.traffic = null
    if (this.trafficButton !== null) this.trafficButton.textContent = 'Send traffic'
  }

  unmount (): void {
    this.stopTraffic()
    this.throughput?.destroy()
    this.latency?.destroy()
    this.throughput = null
    this.latency = null
  }
}
