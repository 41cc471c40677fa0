/**
 * The gateway's dashboard API as the page sees it: the snapshot the event stream carries (the
 * contract is `DashboardSnapshot` in src/gateway/dashboard.ts; the page talks to the gateway over
 * HTTP only, so the shape is restated here), and helpers for the admin routes.
 */
export type StoreLevel = 'strong' | 'causal' | 'eventual'
export const LEVELS: readonly StoreLevel[] = ['strong', 'causal', 'eventual']

export interface LevelFigures { opsPerSec: number, errorsPerSec: number, p50Ms: number | null, p99Ms: number | null }

export interface NodeView {
  id: string
  api: string
  reachable: boolean
  error: string | null
  process: { pid: number | null, running: boolean } | null
  uptimeMs: number | null
  hasQuorum: boolean | null
  members: Record<string, string>
  role: string | null
  address: string | null
  height: number | null
  finalizedHeight: number | null
  faults: { isolatedFrom: string[], latencyMs: number, lossPercent: number } | null
  storeOpsPerSec: number
  hintsHeld: number
}

export interface LinkView { a: string, b: string, state: 'up' | 'down' | 'cut', rttMs: number | null, broadcast: 'eager' | 'lazy' | null }

export interface BlockView { height: number, hash: string, proposer: string, proposerNode: string | null, timeMs: number, txCount: number, finalized: boolean | null }

export interface ValidatorView {
  address: string
  status: string
  stake: string
  power: string
  votes: string
  jailedUntil: number | null
  missedInWindow: number
  slashes: Array<{ height?: number, reason?: string, amount: string }>
}

export interface RingMember { id: string, weight: number, vnodes: number, share: number }

export interface Snapshot {
  atMs: number
  pollIntervalMs: number
  admin: { enabled: boolean, partition: string[][] | null, linkFaults: Record<string, { latencyMs: number, lossPercent: number }> }
  gateway: { address: string, strategy: string, upstreams: Array<{ id: string, url: string, serving: boolean, ejected: boolean, membership: string | null, inFlight: number, latencyEstimateMs: number | null, requestsPerSec: number, errorsPerSec: number }> }
  nodes: NodeView[]
  overlay: { kind: string | null, links: LinkView[] }
  chain: {
    engine: string
    headHeight: number
    finalizedHeight: number | null
    txPerSec: number
    mempoolTxs: number
    reorgs: number
    deepestReorgBlocks: number
    blocks: BlockView[]
    validators: ValidatorView[]
  } | null
  store: {
    ring: { version: number, replicationFactor: number, vnodesPerWeight: number, members: RingMember[] } | null
    levels: Record<StoreLevel, LevelFigures>
    hintsHeld: number
    hintsDeliveredPerSec: number
    readRepairsPerSec: number
    antiEntropyExchangesPerSec: number
    antiEntropyKeysSentPerSec: number
  }
}

export interface RingView {
  version: number
  replicationFactor: number
  members: RingMember[]
  tokens: Array<{ position: number, member: string }>
  key?: { key: string, position: number, preferenceList: string[] }
}

const TOKEN_KEY = 'synod-admin-token'

/** Takes `#token=…` from the address (what `synod up` prints) into session storage, off the address bar. */
export function adoptTokenFromUrl (): void {
  const match = /^#token=([A-Za-z0-9_-]+)/.exec(location.hash)
  if (match !== null) {
    sessionStorage.setItem(TOKEN_KEY, match[1] as string)
    history.replaceState(null, '', `${location.pathname}#/overview`)
  }
}

export function adminToken (): string | null {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function setAdminToken (token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim())
}

export interface Answer { status: number, body: string, json: unknown }

async function answerOf (response: Response): Promise<Answer> {
  const body = await response.text()
  let json: unknown = null
  try { json = JSON.parse(body) } catch { json = null }
  return { status: response.status, body, json }
}

/** An admin request with the token; the answer whatever its status. */
export async function admin (method: string, path: string, body?: unknown, raw = false): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${adminToken() ?? ''}` }
  if (body !== undefined) headers['content-type'] = raw ? 'text/plain' : 'application/json'
  const response = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: raw ? String(body) : JSON.stringify(body) }) })
  return await answerOf(response)
}

export async function getJson<T> (path: string): Promise<T> {
  const response = await fetch(path)
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`)
  return await response.json() as T
}

export async function request (method: string, path: string, body?: string): Promise<Answer> {
  const response = await fetch(path, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'text/plain' } }) })
  return await answerOf(response)
}

/**
 * How the cluster sees a node: `dead` or `suspect` when most of its reachable peers hold it so
 * (a killed process shows `killed` only until failure detection catches up), `partitioned` when a
 * fault cuts it off, `unreachable` when the gateway cannot reach it either.
 */
export function nodeState (snapshot: Snapshot, node: NodeView): 'alive' | 'suspect' | 'dead' | 'killed' | 'partitioned' | 'unreachable' {
  const views = snapshot.nodes.filter((other) => other.id !== node.id && other.reachable).map((other) => other.members[node.id]).filter((state): state is string => state !== undefined)
  const dead = views.filter((state) => state === 'dead' || state === 'left').length
  const suspect = views.filter((state) => state === 'suspect').length
  if (views.length > 0 && dead * 2 > views.length) return 'dead'
  if (node.process !== null && !node.process.running) return 'killed'
  if (!node.reachable) return 'unreachable'
  if ((node.faults?.isolatedFrom.length ?? 0) > 0) return 'partitioned'
  if (views.length > 0 && (dead + suspect) * 2 > views.length) return 'suspect'
  return 'alive'
}

export const shortId = (id: string): string => id.slice(0, 8)
