/**
 * Faults (local clusters only, behind the admin token `synod up` printed): kill and restart a
 * node, partition the cluster into two groups, heal, add latency or loss to a node's links; and
 * the guided "CAP in one minute" scenario.
 */
import { LEVELS, admin, adminToken, getJson, nodeState, setAdminToken, shortId, type Answer, type RingView, type Snapshot, type StoreLevel } from '../api.js'
import { badge, fill, h, table } from '../dom.js'
import type { View } from '../main.js'
import { STATE_KIND, faultText } from './overview.js'

/** How long a scenario step waits for the cluster to show the expected state, in milliseconds. */
const STEP_TIMEOUT_MS = 30_000
const CONVERGENCE_TIMEOUT_MS = 45_000

type Side = 'minority' | 'majority'
interface Plan { minority: string[], majority: string[], keys: Record<StoreLevel, { key: string, minorityNode: string, majorityNode: string, replicas: string[] }> }

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function outcome (answer: Answer): { ok: boolean, text: string } {
  if (answer.status >= 200 && answer.status < 300) return { ok: true, text: `ok (${answer.status})` }
  const code = (answer.json as { code?: string } | null)?.code
  return { ok: false, text: `refused: ${code ?? answer.status}` }
}

export class FaultsView implements View {
  private root: HTMLElement | null = null
  private nodesBox: HTMLElement | null = null
  private partitionBox: HTMLElement | null = null
  private scenarioBox: HTMLElement | null = null
  private message: HTMLElement | null = null
  private latest: Snapshot | null = null
  /** Which group each node goes to in the next partition. */
  private readonly groupOf = new Map<string, 'A' | 'B'>()
  private running = false
  private steps: Array<{ text: string, state: 'running' | 'done' | 'failed' }> = []
  private results: Record<string, string> = {}

  mount (container: HTMLElement): void {
    this.nodesBox = h('div')
    this.partitionBox = h('div')
    this.scenarioBox = h('div', { 'data-testid': 'cap-scenario' })
    this.message = h('p', { className: 'muted', 'data-testid': 'faults-message' })
    this.root = h('div', { className: 'view', 'data-testid': 'view-faults' }, this.message, this.nodesBox, this.partitionBox, this.scenarioBox)
    container.append(this.root)
    this.renderScenario()
  }

  update (snapshot: Snapshot): void {
    this.latest = snapshot
    if (this.root === null || this.nodesBox === null || this.partitionBox === null || this.message === null) return
    if (!snapshot.admin.enabled) {
      fill(this.root, h('p', { 'data-testid': 'faults-disabled' }, 'Fault injection exists only for a local cluster started by synod up; this gateway fronts other nodes, so its admin routes are not served.'))
      return
    }
    // Someone typing in a field: leave the form alone until they are done.
    const focused = document.activeElement
    if ((focused instanceof HTMLInputElement || focused instanceof HTMLSelectElement) && this.root.contains(focused)) return
    if (adminToken() === null) {
      const input = h('input', { type: 'password', placeholder: 'admin token', 'data-testid': 'token-input' })
      fill(this.message, 'Paste the admin token that synod up printed: ', input, ' ', h('button', { onclick: () => { setAdminToken(input.value); this.update(snapshot) } }, 'Use token'))
    }
    const ids = snapshot.nodes.map((node) => node.id)
    const minoritySize = Math.floor((ids.length - 1) / 2)
    ids.forEach((id, index) => { if (!this.groupOf.has(id)) this.groupOf.set(id, index < minoritySize ? 'A' : 'B') })
    fill(this.nodesBox, h('h2', {}, 'Nodes'), table(['node', 'state', 'pid', 'quorum', 'faults', 'process', 'latency ms', 'loss %', ''], snapshot.nodes.map((node) => {
      const state = nodeState(snapshot, node)
      const running = node.process?.running ?? true
      const link = snapshot.admin.linkFaults[node.id] ?? { latencyMs: 0, lossPercent: 0 }
      const latency = h('input', { type: 'number', min: 0, max: 10000, step: 10, value: link.latencyMs, className: 'narrow', 'data-testid': `latency-${node.id}` })
      const loss = h('input', { type: 'number', min: 0, max: 100, step: 1, value: link.lossPercent, className: 'narrow', 'data-testid': `loss-${node.id}` })
      return [
        h('code', { title: node.id }, shortId(node.id)),
        h('span', { 'data-testid': `fault-node-state-${node.id}` }, badge(state, STATE_KIND[state] ?? 'warn')),
        node.process?.pid ?? '–',
        node.hasQuorum === null ? '–' : node.hasQuorum ? badge('quorum', 'ok') : badge('no quorum', 'bad'),
        faultText(node.faults),
        running
          ? h('button', { className: 'danger', onclick: () => { void this.act(`kill ${shortId(node.id)}`, async () => await admin('POST', `/v1/admin/nodes/${node.id}/kill`)) }, 'data-testid': `kill-${node.id}` }, 'Kill')
          : h('button', { onclick: () => { void this.act(`restart ${shortId(node.id)}`, async () => await admin('POST', `/v1/admin/nodes/${node.id}/restart`)) }, 'data-testid': `restart-${node.id}` }, 'Restart'),
        latency,
        loss,
        h('button', { onclick: () => { void this.act(`link faults on ${shortId(node.id)}`, async () => await admin('PUT', `/v1/admin/nodes/${node.id}/link-faults`, { latencyMs: Number(latency.value), lossPercent: Number(loss.value) })) } }, 'Apply')
      ]
    }), 'faults-nodes'))
    const active = snapshot.admin.partition
    fill(this.partitionBox, h('h2', {}, 'Partition'),
      h('p', { className: 'muted' }, active === null ? 'No partition. Put each node in group A or B, then cut the links between the groups.' : `Partitioned: ${active.map((group) => `{${group.map(shortId).join(', ')}}`).join(' | ')}`),
      h('div', { className: 'toolbar' }, ...ids.map((id) => {
        const select = h('select', { 'data-testid': `group-${id}` }, h('option', { value: 'A' }, 'A'), h('option', { value: 'B' }, 'B'))
        select.value = this.groupOf.get(id) ?? 'B'
        select.addEventListener('change', () => { this.groupOf.set(id, select.value as 'A' | 'B') })
        return h('label', { className: 'group' }, shortId(id), ' ', select)
      })),
      h('div', { className: 'toolbar' },
        h('button', { className: 'danger', 'data-testid': 'partition', onclick: () => { void this.partition() } }, 'Partition A | B'), ' ',
        h('button', { 'data-testid': 'heal', onclick: () => { void this.act('heal', async () => await admin('POST', '/v1/admin/heal')) } }, 'Heal everything')))
  }

  unmount (): void {
    this.root = null
  }

  private async partition (): Promise<void> {
    const ids = this.latest?.nodes.map((node) => node.id) ?? []
    const groups = [ids.filter((id) => this.groupOf.get(id) === 'A'), ids.filter((id) => this.groupOf.get(id) !== 'A')]
    await this.act('partition', async () => await admin('POST', '/v1/admin/partition', { groups }))
  }

  private async act (what: string, run: () => Promise<Answer>): Promise<Answer | null> {
    if (this.message !== null) this.message.textContent = `${what}…`
    try {
      const answer = await run()
      if (this.message !== null) this.message.textContent = answer.status < 300 ? `${what}: done` : `${what}: ${answer.status} ${answer.body}`
      return answer
    } catch (error) {
      if (this.message !== null) this.message.textContent = `${what}: ${String(error)}`
      return null
    }
  }

  // --- CAP in one minute --------------------------------------------------------------------------

  private renderScenario (): void {
    if (this.scenarioBox === null) return
    const cell = (level: StoreLevel, column: string): HTMLElement => {
      const text = this.results[`${level}:${column}`] ?? '–'
      const kind = text.startsWith('ok') || text.startsWith('converged') || text.startsWith('consistent') ? 'ok' : text.startsWith('refused') || text.startsWith('diverged') ? 'bad' : 'muted'
      return h('span', { className: `result result-${kind}`, 'data-testid': `cap-${level}-${column}` }, text)
    }
    fill(this.scenarioBox,
      h('h2', {}, 'CAP in one minute'),
      h('p', { className: 'muted' }, 'Partitions the cluster into a minority and a majority, writes one key per consistency level on each side, shows which writes succeed and which refuse, heals, and shows the replicas converge. Strong is CP: the minority refuses. Causal and eventual are AP: both sides accept, and the replicas agree again after healing (last writer wins).'),
      h('button', { 'data-testid': 'cap-run', onclick: () => { void this.runScenario() }, disabled: this.running }, this.running ? 'running…' : 'Run the scenario'),
      h('ol', { className: 'steps', 'data-testid': 'cap-steps' }, ...this.steps.map((step) => h('li', { className: `step-${step.state}` }, step.text))),
      table(['level', 'write on the minority side', 'write on the majority side', 'after healing'], LEVELS.map((level) => [
        h('strong', {}, level), cell(level, 'minority'), cell(level, 'majority'), cell(level, 'healed')
      ]), 'cap-results'))
  }

  private step (text: string): { done: (suffix?: string) => void, fail: (why: string) => void } {
    const entry = { text, state: 'running' as 'running' | 'done' | 'failed' }
    this.steps.push(entry)
    this.renderScenario()
    return {
      done: (suffix) => { entry.state = 'done'; if (suffix !== undefined) entry.text += ` ${suffix}`; this.renderScenario() },
      fail: (why) => { entry.state = 'failed'; entry.text += `: ${why}`; this.renderScenario() }
    }
  }

  private async waitFor (what: string, test: (snapshot: Snapshot) => boolean, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (this.latest !== null && test(this.latest)) return
      await sleep(250)
    }
    throw new Error(`${what} did not happen within ${timeoutMs / 1_000} s`)
  }

  /** Picks the sides and, per level, a key with a replica on the minority side and a majority of its replicas on the majority side. */
  private async plan (snapshot: Snapshot): Promise<Plan> {
    const ids = snapshot.nodes.map((node) => node.id)
    const minority = ids.slice(0, Math.max(1, Math.floor((ids.length - 1) / 2)))
    const majority = ids.filter((id) => !minority.includes(id))
    const keys = {} as Plan['keys']
    const stamp = Date.now().toString(36)
    for (const level of LEVELS) {
      for (let attempt = 0; attempt < 200; attempt++) {
        const key = `cap-${level}-${stamp}-${attempt}`
        const ring = await getJson<RingView>(`/v1/dashboard/ring?key=${encodeURIComponent(key)}`)
        const replicas = ring.key?.preferenceList ?? []
        const onMinority = replicas.filter((id) => minority.includes(id))
        const onMajority = replicas.filter((id) => majority.includes(id))
        if (onMinority.length >= 1 && onMajority.length * 2 > replicas.length) {
          keys[level] = { key, minorityNode: onMinority[0] as string, majorityNode: onMajority[0] as string, replicas }
          break
        }
      }
      if (keys[level] === undefined) throw new Error(`no key for ${level} with replicas on both sides`)
    }
    return { minority, majority, keys }
  }

  private async runScenario (): Promise<void> {
    if (this.running || this.latest === null) return
    this.running = true
    this.steps = []
    this.results = {}
    this.renderScenario()
    let current = this.step('Plan: pick the two sides and a key per level')
    let partitioned = false
    try {
      const plan = await this.plan(this.latest)
      current.done(`minority {${plan.minority.map(shortId).join(', ')}}, majority {${plan.majority.map(shortId).join(', ')}}`)

      current = this.step('Partition the cluster')
      partitioned = true
      const cut = await admin('POST', '/v1/admin/partition', { groups: [plan.minority, plan.majority] })
      if (cut.status !== 200) throw new Error(`partition: ${cut.status} ${cut.body}`)
      await this.waitFor('the minority losing its quorum', (snapshot) => snapshot.nodes.filter((node) => plan.minority.includes(node.id)).every((node) => node.hasQuorum === false))
      current.done('— the minority side has lost its quorum')

      for (const level of LEVELS) {
        const { key, minorityNode, majorityNode } = plan.keys[level]
        current = this.step(`Write ${key} at ${level} on both sides`)
        for (const [side, node] of [['minority', minorityNode], ['majority', majorityNode]] as Array<[Side, string]>) {
          const answer = await admin('PUT', `/v1/admin/nodes/${node}/kv/${encodeURIComponent(key)}?consistency=${level}`, `${level} written on the ${side} side`, true)
          this.results[`${level}:${side}`] = `${outcome(answer).text} via ${shortId(node)}`
        }
        current.done()
      }

      current = this.step('Heal the partition')
      const heal = await admin('POST', '/v1/admin/heal')
      if (heal.status !== 200) throw new Error(`heal: ${heal.status} ${heal.body}`)
      partitioned = false
      await this.waitFor('every node regaining its quorum', (snapshot) => snapshot.nodes.every((node) => node.hasQuorum === true))
      current.done()

      current = this.step('Wait for the replicas to converge')
      await Promise.all(LEVELS.map(async (level) => { await this.converge(level, plan.keys[level]) }))
      current.done()
      this.step('Done: strong refused on the minority side and stayed consistent; causal and eventual took writes on both sides and converged').done()
    } catch (error) {
      current.fail(error instanceof Error ? error.message : String(error))
      // Never leave the cluster cut in two because the scenario stopped half-way.
      if (partitioned) {
        const heal = await admin('POST', '/v1/admin/heal').catch(() => null)
        this.step(heal?.status === 200 ? 'Healed the partition after the failure' : 'Could not heal: use "Heal everything"').done()
      }
    } finally {
      this.running = false
      this.renderScenario()
    }
  }

  /** Strong: the majority's write is what a linearizable read returns. Others: every replica holds the same state. */
  private async converge (level: StoreLevel, entry: Plan['keys'][StoreLevel]): Promise<void> {
    const deadline = Date.now() + CONVERGENCE_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (level === 'strong') {
        const read = await admin('GET', `/v1/admin/nodes/${entry.minorityNode}/kv/${encodeURIComponent(entry.key)}?consistency=strong`)
        if (read.status === 200) {
          this.results[`${level}:healed`] = `consistent: the minority side now reads "${read.body}"`
          this.renderScenario()
          return
        }
      } else {
        const states = await Promise.all(entry.replicas.map(async (node) => await admin('GET', `/v1/admin/nodes/${node}/replica/${encodeURIComponent(entry.key)}`)))
        const values = states.map((state) => JSON.stringify((state.json as { values?: unknown } | null)?.values ?? null))
        if (states.every((state) => state.status === 200) && values.every((value) => value === values[0]) && values[0] !== 'null' && values[0] !== '[]') {
          // The replicas agree; a read at the level on either side now returns the same value.
          const reads = await Promise.all([entry.minorityNode, entry.majorityNode].map(async (node) => await admin('GET', `/v1/admin/nodes/${node}/kv/${encodeURIComponent(entry.key)}?consistency=${level}`)))
          if (reads.every((read) => read.status === 200) && reads[0]?.body === reads[1]?.body) {
            this.results[`${level}:healed`] = `converged: ${entry.replicas.length} replicas agree; both sides read "${reads[0]?.body ?? ''}"`
            this.renderScenario()
            return
          }
        }
      }
      await sleep(500)
    }
    this.results[`${level}:healed`] = 'diverged: the replicas did not agree in time'
    this.renderScenario()
    throw new Error(`${level}: replicas did not converge within ${CONVERGENCE_TIMEOUT_MS / 1_000} s`)
  }
}
