/**
 * SynodClient: the key-value store from a program, over the nodes' HTTP API
 * (src/node/store-api.ts, docs/store.md "Client SDK and CLI").
 *
 * Routing. With `ringAware` (the default) the client fetches the ring (`GET /v1/cluster/ring`)
 * from any endpoint on first use, builds the same HashRing every node builds, and sends each
 * request straight to the key's coordinator: the first replica in the key's preference list
 * whose API address the ring names. The node would otherwise forward it there, one hop more.
 * When that replica cannot be reached the request falls back to the key's other replicas, then
 * to the configured endpoints, any of which forwards it to the right place. Without `ringAware`
 * requests go to the configured endpoints, round robin, the others as fallbacks. A node that
 * refused a connection goes to the back of every list for `unreachableCooldownMs`.
 *
 * The ring is cached. Once older than `ringRefreshIntervalMs` the next request refreshes it in
 * the background (the request itself uses the cached one); `ring({ refresh: true })` refreshes
 * it now. When the ring cannot be fetched, requests go to the configured endpoints.
 *
 * Retries (src/client/retry.ts): a `get` is retried after any failure another attempt may cure;
 * a `put`, `delete` or `cas` only after a definite one (connection refused before sending,
 * STORE_NO_QUORUM, STORE_OVERLOADED), never after an indefinite one (STORE_TIMEOUT, a timeout or
 * a broken connection after sending), which reaches the caller as a SynodClientError with
 * `definite: false`. Each retry goes to the next target in the list, after a jittered
 * exponential backoff (none when moving on from a node that refused the connection).
 */
import { Agent } from 'undici'
import { z } from 'zod'
import { HashRing, type RingDescription } from '../store/index.js'
import { SynodClientError, isDefiniteAnswer } from './errors.js'
import { CausalSession, EventualStore, type EventualOptions } from './levels.js'
import { backoffDelayMs, isRetryable, retryPolicyOf, type OperationKind, type RetryPolicy } from './retry.js'

/** How long one attempt may take, from sending to the last byte of the answer, in milliseconds. Above the store's own deadline (requestTimeoutMs, 3 s by default), so the node's definite answer normally arrives first. */
export const DEFAULT_TIMEOUT_MS = 10_000
/** How long opening a connection may take; a connection that never opened sent nothing, so this failure is definite. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000
/** The age after which the cached ring is refreshed (in the background, on the next request). */
export const DEFAULT_RING_REFRESH_INTERVAL_MS = 60_000
/** After a failed ring fetch, requests use the endpoints and no new fetch starts for this long. */
export const RING_FETCH_RETRY_MS = 1_000
/** How long a node that refused a connection is tried last. */
export const DEFAULT_UNREACHABLE_COOLDOWN_MS = 5_000
/** Idle keep-alive connections are closed after this long (sooner if the node says so). */
export const KEEP_ALIVE_TIMEOUT_MS = 30_000
/** Open connections per node, at most; further requests queue in the client. */
export const DEFAULT_CONNECTIONS_PER_NODE = 32
/** Characters of an unreadable answer quoted in the error message. */
const ANSWER_SNIPPET_CHARS = 200
/** The level of SynodClient's own methods; `session()` and `eventual()` give the others. */
const STRONG_QUERY = '?consistency=strong'

export interface SynodClientOptions {
  /** Node API base URLs (`http://127.0.0.1:7200`); at least one. */
  endpoints: readonly string[]
  /** Send each key to its coordinator, from the ring (default true). */
  ringAware?: boolean
  /** Per attempt, sending to last byte received; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number
  /** Per connection attempt; default DEFAULT_CONNECT_TIMEOUT_MS (capped at timeoutMs). */
  connectTimeoutMs?: number
  /** Attempts in all and the backoff between them; default DEFAULT_RETRY_POLICY (3 attempts, 50 to 1000 ms). */
  retries?: Partial<RetryPolicy>
  /** Default DEFAULT_RING_REFRESH_INTERVAL_MS. */
  ringRefreshIntervalMs?: number
  /** Default DEFAULT_UNREACHABLE_COOLDOWN_MS. */
  unreachableCooldownMs?: number
  /** Default DEFAULT_CONNECTIONS_PER_NODE. */
  connectionsPerNode?: number
}

export interface PutResult { version: number }
export interface GetResult { value: Uint8Array, version: number }
export interface GetStringResult { value: string, version: number }
export interface DeleteResult { deleted: boolean, version: number }
export type CasResult =
  | { applied: true, version: number }
  /** The value was not `expected`: `current` is what it is (null: absent), at `version`. */
  | { applied: false, current: string | null, version: number }

export interface ClientStats {
  /** Requests sent (every attempt, ring fetches included). */
  attempts: number
  /** Attempts that repeated an operation after a failure. */
  retries: number
  /** Connections refused or not opened in time. */
  unreachable: number
  /** Successful ring fetches. */
  ringFetches: number
}

interface Endpoint {
  /** The normalized base URL: origin and path prefix, no trailing slash. */
  url: string
  origin: string
  basePath: string
}

/** One HTTP request of the store's API (for the level views in levels.ts). */
export interface HttpRequest {
  method: 'GET' | 'PUT' | 'DELETE' | 'POST'
  path: string
  headers?: Record<string, string>
  body?: Uint8Array | string
}

/** A node's answer to an HttpRequest. */
export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Uint8Array
  endpoint: string
}

interface CachedRing {
  description: RingDescription
  ring: HashRing
  apiById: ReadonlyMap<string, Endpoint>
  fetchedAtMs: number
}

const ringSchema = z.looseObject({
  version: z.number().int().min(0),
  replicationFactor: z.number().int().min(1),
  vnodesPerWeight: z.number().positive(),
  members: z.array(z.looseObject({
    id: z.string().min(1),
    weight: z.number().positive(),
    vnodes: z.number().int().min(0),
    share: z.number(),
    api: z.string().optional()
  })).min(1)
})
const errorBodySchema = z.looseObject({ code: z.string().min(1), message: z.string(), details: z.record(z.string(), z.unknown()).optional() })
const versionBodySchema = z.looseObject({ version: z.number().int().min(0) })
const deleteBodySchema = z.looseObject({ deleted: z.boolean(), version: z.number().int().min(0) })
const casMismatchSchema = z.looseObject({ current: z.string().nullable(), version: z.number().int().min(0) })

/** Failures to open a connection: nothing was sent. */
const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'])
const READ_TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()

/** The path of a key's resource: the key is one URL path segment, so `/` travels as %2F. */
export function keyPath (key: string, suffix = '', query = STRONG_QUERY): string {
  return `/v1/kv/${encodeURIComponent(key)}${suffix}${query}`
}

function endpointOf (text: string): Endpoint {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new RangeError(`an endpoint is a base URL such as http://127.0.0.1:7200, not ${JSON.stringify(text)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`an endpoint must be http or https, not ${text}`)
  const basePath = url.pathname.replace(/\/+$/, '')
  return { url: url.origin + basePath, origin: url.origin, basePath }
}

function positiveOption (name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback
  if (!Number.isFinite(chosen) || chosen <= 0) throw new RangeError(`${name} must be a finite number above 0, not ${chosen}`)
  return chosen
}

function parseJson (bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Decoder.decode(bytes))
  } catch {
    return undefined
  }
}

function snippet (bytes: Uint8Array): string {
  const text = utf8Decoder.decode(bytes.subarray(0, ANSWER_SNIPPET_CHARS * 4))
  return text.length > ANSWER_SNIPPET_CHARS ? `${text.slice(0, ANSWER_SNIPPET_CHARS)}…` : text
}

/** Every error code on an error, its cause and (for an AggregateError from happy eyeballs) its parts. */
function errorCodes (error: unknown, depth = 0): string[] {
  if (typeof error !== 'object' || error === null || depth > 3) return []
  const own = (error as { code?: unknown }).code
  const codes = typeof own === 'string' ? [own] : []
  codes.push(...errorCodes((error as { cause?: unknown }).cause, depth + 1))
  const parts = (error as { errors?: unknown }).errors
  if (Array.isArray(parts)) for (const part of parts) codes.push(...errorCodes(part, depth + 1))
  return codes
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export class SynodClient {
  readonly ringAware: boolean
  readonly timeoutMs: number
  readonly retryPolicy: Readonly<RetryPolicy>
  readonly ringRefreshIntervalMs: number
  readonly unreachableCooldownMs: number
  private readonly endpoints: readonly Endpoint[]
  private readonly agent: Agent
  private readonly unreachableUntilMs = new Map<string, number>()
  private readonly counters: ClientStats = { attempts: 0, retries: 0, unreachable: 0, ringFetches: 0 }
  private cachedRing: CachedRing | null = null
  private ringFetch: Promise<CachedRing> | null = null
  private ringRetryAtMs = 0
  private nextEndpoint = 0
  private closed = false

  constructor (options: SynodClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError('a SynodClient needs at least one endpoint')
    const endpoints = options.endpoints.map(endpointOf)
    this.endpoints = endpoints.filter((endpoint, index) => endpoints.findIndex((other) => other.url === endpoint.url) === index)
    this.ringAware = options.ringAware ?? true
    this.timeoutMs = positiveOption('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS)
    this.retryPolicy = Object.freeze(retryPolicyOf(options.retries))
    this.ringRefreshIntervalMs = positiveOption('ringRefreshIntervalMs', options.ringRefreshIntervalMs, DEFAULT_RING_REFRESH_INTERVAL_MS)
    this.unreachableCooldownMs = positiveOption('unreachableCooldownMs', options.unreachableCooldownMs, DEFAULT_UNREACHABLE_COOLDOWN_MS)
    const connectTimeoutMs = Math.min(this.timeoutMs, positiveOption('connectTimeoutMs', options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS))
    this.agent = new Agent({
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connections: positiveOption('connectionsPerNode', options.connectionsPerNode, DEFAULT_CONNECTIONS_PER_NODE),
      connect: { timeout: connectTimeoutMs }
    })
  }

  /**
   * Stores `value` (bytes, or a string as UTF-8) under `key`; resolves to the new version.
   * Retried only after a definite failure; after an indefinite one (STORE_TIMEOUT, a timeout or
   * a lost connection after sending) it rejects with `definite: false` and may have applied.
   */
  async put (key: string, value: string | Uint8Array): Promise<PutResult> {
    const body = typeof value === 'string' ? utf8.encode(value) : value
    return await this.run('put', key, { method: 'PUT', path: keyPath(key), headers: { 'content-type': 'application/octet-stream' }, body }, (answer) => {
      if (answer.status !== 200) return null
      return { version: this.readBody(answer, versionBodySchema).version }
    })
  }

  /**
   * The value under `key` and its version, or null when nothing is stored there. A read changes
   * nothing, so it is retried after any failure but a 4xx.
   */
  async get (key: string): Promise<GetResult | null> {
    return await this.run('get', key, { method: 'GET', path: keyPath(key) }, (answer) => {
      if (answer.status === 404 && this.errorCode(answer) === 'STORE_NOT_FOUND') return { found: null }
      if (answer.status !== 200) return null
      const header = answer.headers['synod-version']
      const version = Number(Array.isArray(header) ? header[0] : header)
      if (!Number.isSafeInteger(version) || version < 0) {
        throw new SynodClientError('CLIENT_BAD_RESPONSE', `${answer.endpoint} answered a get without a valid synod-version header (${String(header)})`, { definite: false, status: answer.status, endpoint: answer.endpoint })
      }
      return { found: { value: answer.body, version } }
    }).then((outcome) => outcome.found)
  }

  /** get(), with the value decoded as UTF-8. */
  async getString (key: string): Promise<GetStringResult | null> {
    const found = await this.get(key)
    return found === null ? null : { value: utf8Decoder.decode(found.value), version: found.version }
  }

  /**
   * Deletes `key`; `deleted` says whether a value was there. Deleting an absent key succeeds.
   * Retried like put: only after a definite failure.
   */
  async delete (key: string): Promise<DeleteResult> {
    return await this.run('delete', key, { method: 'DELETE', path: keyPath(key) }, (answer) => {
      if (answer.status !== 200) return null
      const body = this.readBody(answer, deleteBodySchema)
      return { deleted: body.deleted, version: body.version }
    })
  }

  /**
   * Compare-and-set: stores `value` only if the current value is `expected` (null: only if the
   * key is absent). A mismatch is an answer, not an error: `{applied: false, current, version}`.
   * Retried like put: only after a definite failure, since a cas that timed out may have won.
   */
  async cas (key: string, expected: string | null, value: string): Promise<CasResult> {
    const body = JSON.stringify({ expected, value })
    return await this.run('cas', key, { method: 'POST', path: keyPath(key, '/cas'), headers: { 'content-type': 'application/json' }, body }, (answer): CasResult | null => {
      if (answer.status === 200) return { applied: true, version: this.readBody(answer, versionBodySchema).version }
      if (answer.status !== 409) return null
      const parsed = errorBodySchema.safeParse(parseJson(answer.body))
      if (!parsed.success || parsed.data.code !== 'STORE_CAS_MISMATCH') return null
      const details = casMismatchSchema.safeParse(parsed.data.details)
      if (!details.success) throw new SynodClientError('CLIENT_BAD_RESPONSE', `${answer.endpoint} answered a cas mismatch without the current value and version`, { definite: true, status: 409, endpoint: answer.endpoint })
      return { applied: false, current: details.data.current, version: details.data.version }
    })
  }

  /**
   * The ring (`GET /v1/cluster/ring`): the cached one while it is younger than
   * ringRefreshIntervalMs, otherwise fetched from the first endpoint that answers.
   * `refresh: true` fetches it now. Rejects with a SynodClientError when no endpoint answers.
   */
  async ring (options: { refresh?: boolean } = {}): Promise<RingDescription> {
    const cached = this.cachedRing
    if (options.refresh !== true && cached !== null && Date.now() - cached.fetchedAtMs < this.ringRefreshIntervalMs) return cached.description
    return (await this.startRingFetch()).description
  }

  /** Counters since the client was made. */
  stats (): ClientStats {
    return { ...this.counters }
  }

  /** Closes the connections once the requests under way have finished; later calls fail with CLIENT_CLOSED. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.agent.close()
  }

  /** A causal session (`consistency=causal`): read-your-writes, monotonic reads and writes, writes-follow-reads. `token` resumes a saved one. */
  session (token?: string): CausalSession {
    return new CausalSession(this, token)
  }

  /** The eventual level (`consistency=eventual`) with these W and R (1 and 1 by default). */
  eventual (options: EventualOptions = {}): EventualStore {
    return new EventualStore(this, options)
  }

  // --- one operation, with its attempts ------------------------------------------------------

  /**
   * Runs an operation: picks its targets, sends, and retries as the policy allows. `interpret`
   * turns an answer into the result, or returns null when the answer is an error (which is then
   * read as `{code, message, details}`). Public for the level views (levels.ts); the typed
   * methods are the API.
   */
  async run<T> (kind: OperationKind, key: string, request: HttpRequest, interpret: (answer: HttpAnswer) => T | null): Promise<T> {
    const targets = await this.targetsFor(key)
    const attempts = this.retryPolicy.attempts
    for (let attempt = 1; ; attempt++) {
      const target = targets[(attempt - 1) % targets.length]
      let failure: SynodClientError
      try {
        const answer = await this.send(target, request)
        const result = interpret(answer)
        if (result !== null) return result
        failure = this.answerError(answer)
      } catch (error) {
        if (!(error instanceof SynodClientError)) throw error
        failure = error
      }
      if (attempt >= attempts || !isRetryable(kind, failure)) throw failure.withAttempts(attempt)
      this.counters.retries++
      const next = targets[attempt % targets.length]
      const movingOnFromDeadNode = failure.code === 'CLIENT_UNREACHABLE' && failure.definite && next.url !== target.url
      if (!movingOnFromDeadNode) await sleep(backoffDelayMs(attempt, this.retryPolicy))
    }
  }

  /** Where to send a key's request, best first; nodes that recently refused a connection last. */
  private async targetsFor (key: string): Promise<Endpoint[]> {
    const ordered: Endpoint[] = []
    const seen = new Set<string>()
    const add = (endpoint: Endpoint): void => {
      if (seen.has(endpoint.url)) return
      seen.add(endpoint.url)
      ordered.push(endpoint)
    }
    const ring = this.ringAware ? await this.usableRing() : null
    if (ring !== null) {
      for (const id of ring.ring.preferenceList(key)) {
        const api = ring.apiById.get(id)
        if (api !== undefined) add(api)
      }
      for (const endpoint of this.endpoints) add(endpoint)
    } else {
      const start = this.nextEndpoint++ % this.endpoints.length
      for (let offset = 0; offset < this.endpoints.length; offset++) add(this.endpoints[(start + offset) % this.endpoints.length])
    }
    return this.reachableFirst(ordered)
  }

  private reachableFirst (endpoints: Endpoint[]): Endpoint[] {
    const now = Date.now()
    const cooling = (endpoint: Endpoint): boolean => (this.unreachableUntilMs.get(endpoint.url) ?? 0) > now
    return [...endpoints.filter((endpoint) => !cooling(endpoint)), ...endpoints.filter(cooling)]
  }

  // --- the ring -------------------------------------------------------------------------------

  /** The ring to route by: the cached one (refreshed in the background once stale), the first one fetched, or null. */
  private async usableRing (): Promise<CachedRing | null> {
    const cached = this.cachedRing
    const now = Date.now()
    if (cached !== null && now - cached.fetchedAtMs < this.ringRefreshIntervalMs) return cached
    const fetching = this.ringFetch ?? (now >= this.ringRetryAtMs ? this.startRingFetch() : null)
    if (cached !== null || fetching === null) return cached
    try {
      return await fetching
    } catch {
      return null
    }
  }

  /** Starts a ring fetch, or joins the one under way. */
  private startRingFetch (): Promise<CachedRing> {
    if (this.ringFetch !== null) return this.ringFetch
    const fetching = this.fetchRing().then((ring) => {
      this.cachedRing = ring
      this.counters.ringFetches++
      return ring
    }, (error: unknown) => {
      this.ringRetryAtMs = Date.now() + RING_FETCH_RETRY_MS
      throw error
    }).finally(() => { this.ringFetch = null })
    // A background refresh may fail with nobody waiting for it: that is not an unhandled rejection.
    fetching.catch(() => {})
    this.ringFetch = fetching
    return fetching
  }

  private async fetchRing (): Promise<CachedRing> {
    let lastFailure: SynodClientError | null = null
    for (const endpoint of this.reachableFirst([...this.endpoints])) {
      try {
        const answer = await this.send(endpoint, { method: 'GET', path: '/v1/cluster/ring' })
        if (answer.status !== 200) {
          lastFailure = this.answerError(answer)
          continue
        }
        const description = this.readBody(answer, ringSchema) as RingDescription
        const ring = new HashRing({
          members: description.members.map((member) => ({ id: member.id, weight: member.weight, ...(member.api === undefined ? {} : { api: member.api }) })),
          replicationFactor: description.replicationFactor,
          vnodesPerWeight: description.vnodesPerWeight,
          version: description.version
        })
        const apiById = new Map<string, Endpoint>()
        for (const member of description.members) {
          if (member.api === undefined) continue
          try { apiById.set(member.id, endpointOf(member.api)) } catch { /* a member without a usable address is reached through the others */ }
        }
        return { description, ring, apiById, fetchedAtMs: Date.now() }
      } catch (error) {
        if (error instanceof SynodClientError) { lastFailure = error; continue }
        if (error instanceof Error) { lastFailure = new SynodClientError('CLIENT_BAD_RESPONSE', `${endpoint.url} answered a ring this client cannot use: ${error.message}`, { definite: true, endpoint: endpoint.url }); continue }
        throw error
      }
    }
    throw lastFailure ?? new SynodClientError('CLIENT_UNREACHABLE', 'no endpoint answered GET /v1/cluster/ring', { definite: true })
  }

  // --- one attempt ----------------------------------------------------------------------------

  private async send (endpoint: Endpoint, request: HttpRequest): Promise<HttpAnswer> {
    if (this.closed) throw new SynodClientError('CLIENT_CLOSED', 'this SynodClient is closed', { definite: true, endpoint: endpoint.url })
    this.counters.attempts++
    const controller = new AbortController()
    const timer = setTimeout(() => { controller.abort() }, this.timeoutMs)
    try {
      const response = await this.agent.request({
        origin: endpoint.origin,
        path: endpoint.basePath + request.path,
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: controller.signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs
      })
      const body = new Uint8Array(await response.body.arrayBuffer())
      return { status: response.statusCode, headers: response.headers, body, endpoint: endpoint.url }
    } catch (error) {
      throw this.transportError(error, endpoint, controller.signal.aborted)
    } finally {
      clearTimeout(timer)
    }
  }

  /** What a failed attempt without an answer means: refused before sending (definite), or lost after (not). */
  private transportError (error: unknown, endpoint: Endpoint, timedOut: boolean): SynodClientError {
    const reason = error instanceof Error ? error.message || error.name : String(error)
    const codes = errorCodes(error)
    if (timedOut || codes.some((code) => READ_TIMEOUT_CODES.has(code))) {
      return new SynodClientError('CLIENT_TIMEOUT', `${endpoint.url} did not answer within ${this.timeoutMs} ms: the operation may or may not have applied`, { definite: false, endpoint: endpoint.url })
    }
    const connectCode = codes.find((code) => CONNECT_FAILURE_CODES.has(code))
    if (connectCode !== undefined) {
      this.counters.unreachable++
      this.unreachableUntilMs.set(endpoint.url, Date.now() + this.unreachableCooldownMs)
      return new SynodClientError('CLIENT_UNREACHABLE', `cannot connect to ${endpoint.url} (${connectCode}): nothing was sent`, { definite: true, endpoint: endpoint.url, details: { cause: connectCode } })
    }
    return new SynodClientError('CLIENT_UNREACHABLE', `the connection to ${endpoint.url} broke after the request was sent (${codes[0] ?? reason}): the operation may or may not have applied`, { definite: false, endpoint: endpoint.url, details: { cause: codes[0] ?? reason } })
  }

  errorCode (answer: HttpAnswer): string | null {
    const parsed = errorBodySchema.safeParse(parseJson(answer.body))
    return parsed.success ? parsed.data.code : null
  }

  /** A node's error answer as a SynodClientError: its code, message and details, and whether it is definite. */
  private answerError (answer: HttpAnswer): SynodClientError {
    const parsed = errorBodySchema.safeParse(parseJson(answer.body))
    if (!parsed.success) {
      return new SynodClientError('CLIENT_BAD_RESPONSE', `${answer.endpoint} answered HTTP ${answer.status} without a JSON error: ${snippet(answer.body)}`, {
        definite: answer.status >= 400 && answer.status < 500, status: answer.status, endpoint: answer.endpoint
      })
    }
    const { code, message, details } = parsed.data
    return new SynodClientError(code, message, { definite: isDefiniteAnswer(answer.status, code), status: answer.status, endpoint: answer.endpoint, details: details ?? {} })
  }

  /** A 200's JSON body, checked against its schema; an answer that does not fit may still have applied. */
  readBody<T> (answer: HttpAnswer, schema: z.ZodType<T>): T {
    const parsed = schema.safeParse(parseJson(answer.body))
    if (parsed.success) return parsed.data
    throw new SynodClientError('CLIENT_BAD_RESPONSE', `${answer.endpoint} answered HTTP ${answer.status} with a body this client cannot read: ${snippet(answer.body)}`, {
      definite: false, status: answer.status, endpoint: answer.endpoint
    })
  }
}
