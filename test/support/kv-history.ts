/**
 * A key-value client for cluster tests that records what it sees as a store history in the
 * checker's format (docs/store-history.md), classifying every outcome the way the checker needs:
 *
 * - an answer (200; 404 STORE_NOT_FOUND for a get; 409 STORE_CAS_MISMATCH for a cas) goes in
 *   with its output and return time;
 * - a definite failure (503 STORE_NO_QUORUM, 429 STORE_OVERLOADED, or a connection refused before
 *   anything was sent) did not happen and is left out;
 * - everything else is indefinite (504 STORE_TIMEOUT, a connection lost after the request went
 *   out, the client's own timeout, an answer this client does not expect): it goes in with
 *   `return_ns: null`, since it may or may not take effect. Calling a definite failure indefinite
 *   only gives the checker more freedom, never less, so unknown cases land here.
 */
import { Agent, request } from 'undici'
import type { KvHistoryOperation } from '../../src/check/index.js'

export type KvCall =
  | { op: 'get', key: string }
  | { op: 'put', key: string, value: string }
  | { op: 'delete', key: string }
  | { op: 'cas', key: string, expected: string | null, value: string }

export type KvAnswer =
  /** get: the value (null: absent); cas: whether it applied, and on a mismatch the value the store holds. */
  | { outcome: 'ok', output?: string | null | boolean, current?: string | null }
  /** Certainly did not apply: left out of the history. */
  | { outcome: 'failed', code: string }
  /** May or may not apply: in the history with no return. `unexpected` marks an answer outside the contract. */
  | { outcome: 'indefinite', code: string, unexpected?: boolean }

/** Status and error code pairs that mean "did not apply" (src/node/store-api.ts, docs/store.md). */
const DEFINITE_FAILURES = new Set(['503 STORE_NO_QUORUM', '429 STORE_OVERLOADED'])

function keyPath (key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`
}

function errorCode (body: string): string {
  try {
    const parsed = JSON.parse(body) as { code?: unknown }
    return typeof parsed.code === 'string' ? parsed.code : 'NO_CODE'
  } catch {
    return 'NOT_JSON'
  }
}

/** The code of a transport error: undici's own (`UND_ERR_*`), the socket's (`ECONNRESET`), or the abort's name. */
function transportCode (error: unknown): string {
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  const name = (error as { name?: unknown }).name
  return typeof name === 'string' ? name : 'ERROR'
}

/** HTTP with keep-alive and a deadline per request. */
export class KvHttpClient {
  private readonly agent: Agent

  constructor (private readonly requestTimeoutMs = 5_000) {
    this.agent = new Agent({
      keepAliveTimeout: 10_000,
      connections: 32,
      connect: { timeout: requestTimeoutMs },
      headersTimeout: requestTimeoutMs + 1_000,
      bodyTimeout: requestTimeoutMs + 1_000
    })
  }

  async run (api: string, call: KvCall): Promise<KvAnswer> {
    const url = `${api}${keyPath(call.key)}`
    let status: number
    let body: string
    try {
      const response = await request(call.op === 'cas' ? `${url}/cas` : url, {
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.requestTimeoutMs),
        ...(call.op === 'get'
          ? { method: 'GET' }
          : call.op === 'put'
            ? { method: 'PUT', body: call.value, headers: { 'content-type': 'application/octet-stream' } }
            : call.op === 'delete'
              ? { method: 'DELETE' }
              : { method: 'POST', body: JSON.stringify({ expected: call.expected, value: call.value }), headers: { 'content-type': 'application/json' } })
      })
      status = response.statusCode
      body = await response.body.text()
    } catch (error) {
      const code = transportCode(error)
      // Refused at connect: not a byte of the request left this process.
      return code === 'ECONNREFUSED' ? { outcome: 'failed', code } : { outcome: 'indefinite', code }
    }
    return classify(call, status, body)
  }

  async close (): Promise<void> {
    await this.agent.close()
  }
}

function classify (call: KvCall, status: number, body: string): KvAnswer {
  if (status === 200) {
    if (call.op === 'get') return { outcome: 'ok', output: body }
    if (call.op === 'cas') return { outcome: 'ok', output: true }
    return { outcome: 'ok' }
  }
  const code = errorCode(body)
  if (call.op === 'get' && status === 404 && code === 'STORE_NOT_FOUND') return { outcome: 'ok', output: null }
  if (call.op === 'cas' && status === 409 && code === 'STORE_CAS_MISMATCH') {
    const current = (JSON.parse(body) as { details?: { current?: unknown } }).details?.current
    return { outcome: 'ok', output: false, current: typeof current === 'string' ? current : null }
  }
  if (DEFINITE_FAILURES.has(`${status} ${code}`)) return { outcome: 'failed', code }
  if (status === 504 && code === 'STORE_TIMEOUT') return { outcome: 'indefinite', code }
  return { outcome: 'indefinite', code: `HTTP ${status} ${code}: ${body.slice(0, 200)}`, unexpected: true }
}

export interface KvOutcomeTally {
  ok: number
  /** Definite failures by code (left out of the history). */
  failed: Record<string, number>
  /** Indefinite outcomes by code (no return in the history). */
  indefinite: Record<string, number>
  /** Answers outside the HTTP contract (also counted as indefinite). */
  unexpected: string[]
}

/**
 * A history entry with two annotations for whoever reads a failing history: the node whose API
 * was called, and why an indefinite operation has no return. The checker ignores both.
 */
export type RecordedKvOperation = KvHistoryOperation & { node?: number, indefinite?: string }

/** Records operations with `process.hrtime.bigint()` times, in ns since the recorder was made. */
export class KvHistoryRecorder {
  readonly operations: RecordedKvOperation[] = []
  readonly tally: KvOutcomeTally = { ok: 0, failed: {}, indefinite: {}, unexpected: [] }
  /** Operations called and not yet answered. */
  inFlight = 0
  private readonly originNs = process.hrtime.bigint()

  nowNs (): number {
    return Number(process.hrtime.bigint() - this.originNs)
  }

  /** Runs `call` through `run` against node `node` and records it under `client` as its outcome says. */
  async record (client: string, node: number, call: KvCall, run: (call: KvCall) => Promise<KvAnswer>): Promise<KvAnswer> {
    this.inFlight++
    const callNs = this.nowNs()
    let answer: KvAnswer
    try {
      answer = await run(call)
    } finally {
      this.inFlight--
    }
    const returnNs = this.nowNs()
    const entry: RecordedKvOperation = { client, op: call.op, key: call.key, call_ns: callNs, return_ns: null }
    if (call.op === 'put' || call.op === 'cas') entry.value = call.value
    if (call.op === 'cas') entry.expected = call.expected
    switch (answer.outcome) {
      case 'ok':
        this.tally.ok++
        entry.return_ns = returnNs
        if (answer.output !== undefined) entry.output = answer.output
        this.operations.push({ ...entry, node })
        break
      case 'failed':
        this.tally.failed[answer.code] = (this.tally.failed[answer.code] ?? 0) + 1
        break
      case 'indefinite': {
        const label = answer.unexpected === true ? 'unexpected' : answer.code
        this.tally.indefinite[label] = (this.tally.indefinite[label] ?? 0) + 1
        if (answer.unexpected === true) this.tally.unexpected.push(`${call.op} ${call.key}: ${answer.code}`)
        this.operations.push({ ...entry, node, indefinite: answer.code })
        break
      }
    }
    return answer
  }

  indefiniteCount (): number {
    return Object.values(this.tally.indefinite).reduce((sum, count) => sum + count, 0)
  }
}

/** A history as a JSON array, one operation a line (both the checker and a reader can take it). */
export function historyJson (history: readonly KvHistoryOperation[]): string {
  return `[\n${history.map((operation) => JSON.stringify(operation)).join(',\n')}\n]\n`
}
