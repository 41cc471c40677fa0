/**
 * The store's available levels from a program (docs/store.md "Levels"):
 *
 * - `CausalSession` (`client.session()`): every answer carries the session token (the
 *   `Synod-Session` header) and the session sends it back, so the session reads its own writes,
 *   never reads older than it read before, and its writes follow what it read, on whichever
 *   node serves it. `token` can be saved and a session resumed with `client.session(token)`.
 * - `EventualStore` (`client.eventual({ w, r })`): Dynamo-style writes to W and reads from R of a
 *   key's N replicas; last writer wins, or `siblings()` returns every concurrent value with the
 *   context to resolve them, and `merge()` does the read, the caller's merge and the write back.
 *
 * Retries follow the strong level's rule (retry.ts): a read after any failure another attempt
 * may cure (STORE_DEPENDENCY_UNAVAILABLE included: another replica may hold the dependency), a
 * write only after a definite one.
 */
import { z } from 'zod'
import { SynodClientError } from './errors.js'
import { keyPath, type HttpAnswer, type SynodClient } from './client.js'

/** A version at the available levels: `<physical ms>.<logical>.<node>` (an HLC stamp and the coordinator). */
export type StampVersion = string

export interface LevelGetResult { value: Uint8Array, version: StampVersion }
export interface LevelPutResult { version: StampVersion }
export interface Sibling { value: Uint8Array | null, version: StampVersion }
export interface SiblingsResult {
  /** Every concurrent value (null: a delete), oldest first; empty when the key holds nothing. */
  values: Sibling[]
  /** What to send back with a write that resolves them (opaque). */
  context: string
}

export interface EventualOptions {
  /** Replicas that must hold a write before it is acknowledged (1 by default, at most N). */
  w?: number
  /** Replicas whose states a read merges (1 by default, at most N). */
  r?: number
}

const stampVersionSchema = z.string().regex(/^\d+\.\d+\.[0-9A-Za-z_-]+$/)
const levelWriteSchema = z.looseObject({ version: stampVersionSchema.nullable() })
const siblingsBodySchema = z.looseObject({
  siblings: z.array(z.looseObject({ value: z.string().nullable(), version: stampVersionSchema })),
  context: z.string()
})

const utf8 = new TextEncoder()

function header (answer: HttpAnswer, name: string): string | null {
  const value = answer.headers[name]
  if (Array.isArray(value)) return value[0] ?? null
  return value ?? null
}

function bodyOf (value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? utf8.encode(value) : value
}

/**
 * A causal session: one client's thread of operations at `consistency=causal`. Issue a session's
 * operations one at a time (await each): each answer's token replaces the last, so two at once
 * would keep only one answer's dependencies. Use one session per concurrent thread of work.
 */
export class CausalSession {
  private tokenValue: string | null

  constructor (private readonly client: SynodClient, token?: string) {
    this.tokenValue = token === undefined || token === '' ? null : token
  }

  /** The session token (null before the first answer): save it to resume the session elsewhere. */
  get token (): string | null {
    return this.tokenValue
  }

  async put (key: string, value: string | Uint8Array): Promise<LevelPutResult> {
    return await this.client.run('put', key, { method: 'PUT', path: keyPath(key, '', '?consistency=causal'), headers: this.headers({ 'content-type': 'application/octet-stream' }), body: bodyOf(value) }, (answer) => {
      this.adopt(answer)
      if (answer.status !== 200) return null
      return { version: this.client.readBody(answer, levelWriteSchema).version ?? '' }
    })
  }

  /** The value the session may see (never older than what it saw or wrote), or null. */
  async get (key: string): Promise<LevelGetResult | null> {
    return await this.client.run('get', key, { method: 'GET', path: keyPath(key, '', '?consistency=causal'), headers: this.headers({}) }, (answer) => {
      this.adopt(answer)
      if (answer.status === 404 && this.client.errorCode(answer) === 'STORE_NOT_FOUND') return { found: null }
      if (answer.status !== 200) return null
      return { found: { value: answer.body, version: versionOf(answer) } }
    }).then((outcome) => outcome.found)
  }

  async delete (key: string): Promise<LevelPutResult> {
    return await this.client.run('delete', key, { method: 'DELETE', path: keyPath(key, '', '?consistency=causal'), headers: this.headers({}) }, (answer) => {
      this.adopt(answer)
      if (answer.status !== 200) return null
      return { version: this.client.readBody(answer, levelWriteSchema).version ?? '' }
    })
  }

  private headers (base: Record<string, string>): Record<string, string> {
    return this.tokenValue === null ? base : { ...base, 'synod-session': this.tokenValue }
  }

  /** Takes the token of a successful answer (a 404 is one: the read still happened). */
  private adopt (answer: HttpAnswer): void {
    if (answer.status !== 200 && answer.status !== 404) return
    const token = header(answer, 'synod-session')
    if (token !== null && token !== '') this.tokenValue = token
  }
}

/** The eventual level with fixed W and R. */
export class EventualStore {
  readonly w: number
  readonly r: number

  constructor (private readonly client: SynodClient, options: EventualOptions) {
    this.w = quorumOption('w', options.w)
    this.r = quorumOption('r', options.r)
  }

  async put (key: string, value: string | Uint8Array): Promise<LevelPutResult> {
    return await this.write(key, value, null)
  }

  /** The last writer's value, or null when the key holds nothing (or a delete won). */
  async get (key: string): Promise<LevelGetResult | null> {
    return await this.client.run('get', key, { method: 'GET', path: keyPath(key, '', `?consistency=eventual&r=${this.r}`) }, (answer) => {
      if (answer.status === 404 && this.client.errorCode(answer) === 'STORE_NOT_FOUND') return { found: null }
      if (answer.status !== 200) return null
      return { found: { value: answer.body, version: versionOf(answer) } }
    }).then((outcome) => outcome.found)
  }

  async delete (key: string): Promise<LevelPutResult> {
    return await this.client.run('delete', key, { method: 'DELETE', path: keyPath(key, '', `?consistency=eventual&w=${this.w}`) }, (answer) => {
      if (answer.status !== 200) return null
      return { version: this.client.readBody(answer, levelWriteSchema).version ?? '' }
    })
  }

  /** Every concurrent value of the key and the context that resolves them. */
  async siblings (key: string): Promise<SiblingsResult> {
    return await this.client.run('get', key, { method: 'GET', path: keyPath(key, '', `?consistency=eventual&conflicts=siblings&r=${this.r}`) }, (answer): SiblingsResult | null => {
      const context = header(answer, 'synod-context') ?? ''
      if (answer.status === 404 && this.client.errorCode(answer) === 'STORE_NOT_FOUND') {
        const version = header(answer, 'synod-version')
        return { values: version === null || version === '' ? [] : [{ value: null, version }], context }
      }
      if (answer.status === 200) return { values: [{ value: answer.body, version: versionOf(answer) }], context }
      if (answer.status !== 300) return null
      const body = this.client.readBody(answer, siblingsBodySchema)
      return { values: body.siblings.map((sibling) => ({ value: sibling.value === null ? null : Uint8Array.from(Buffer.from(sibling.value, 'base64')), version: sibling.version })), context: body.context }
    })
  }

  /** Writes `value` as the resolution of everything `context` (from `siblings()`) covers. */
  async resolve (key: string, value: string | Uint8Array, context: string): Promise<LevelPutResult> {
    return await this.write(key, value, context)
  }

  /**
   * Reads the siblings; when there are several, writes back `merge(values)` with their context
   * and returns it; with one value returns it unchanged; with none returns null.
   */
  async merge (key: string, merge: (values: Sibling[]) => string | Uint8Array): Promise<Uint8Array | null> {
    const { values, context } = await this.siblings(key)
    if (values.length === 0) return null
    if (values.length === 1) return values[0]?.value ?? null
    const merged = bodyOf(merge(values))
    await this.resolve(key, merged, context)
    return merged
  }

  private async write (key: string, value: string | Uint8Array, context: string | null): Promise<LevelPutResult> {
    const query = context === null ? `?consistency=eventual&w=${this.w}` : `?consistency=eventual&conflicts=siblings&w=${this.w}`
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', ...(context === null ? {} : { 'synod-context': context }) }
    return await this.client.run('put', key, { method: 'PUT', path: keyPath(key, '', query), headers, body: bodyOf(value) }, (answer) => {
      if (answer.status !== 200) return null
      return { version: this.client.readBody(answer, levelWriteSchema).version ?? '' }
    })
  }
}

function versionOf (answer: HttpAnswer): StampVersion {
  const version = header(answer, 'synod-version')
  if (version === null || !stampVersionSchema.safeParse(version).success) {
    throw new SynodClientError('CLIENT_BAD_RESPONSE', `${answer.endpoint} answered a read without a valid synod-version header (${String(version)})`, { definite: false, status: answer.status, endpoint: answer.endpoint })
  }
  return version
}

/** W or R: a whole number from 1 (the node checks the upper bound: the key's replica count). */
function quorumOption (name: string, value: number | undefined): number {
  const chosen = value ?? 1
  if (!Number.isInteger(chosen) || chosen < 1 || chosen > 64) throw new RangeError(`${name} must be an integer in 1..64, not ${chosen}`)
  return chosen
}
