/**
 * The store's HTTP API: `/v1/kv/{key}` (PUT, GET, DELETE), `/v1/kv/{key}/cas` (POST) and
 * `/v1/cluster/ring`. Values are raw bytes in and out; a key is the URL-decoded path after
 * `/v1/kv/` (clients encode `/` in keys as `%2F`). `?consistency=strong|causal|eventual` picks the
 * level per request (strong by default); see docs/store.md.
 *
 * - causal: the session token travels in the `Synod-Session` header, both ways;
 * - eventual: `?w=` and `?r=` (1 by default), `?conflicts=siblings` to read every concurrent value
 *   (300 with a JSON body when there is more than one) and write back with the `Synod-Context`
 *   the read returned.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Histogram, type Registry } from 'prom-client'
import { z } from 'zod'
import { encodeCanonical, decodeCanonical } from '../core/index.js'
import {
  KEY_BYTES_WIRE_MAX, StoreError, dependenciesSchema, formatStamp, versionVectorSchema,
  type AvailableRequest, type AvailableResult, type AvailableStoreService, type Dependencies, type KvOperation, type KvResult, type StoreService, type VersionVector
} from '../store/index.js'
import { collectedCounter, collectedGauge } from './metrics.js'

const consistencyLevels = ['strong', 'causal', 'eventual'] as const
type ConsistencyLevel = typeof consistencyLevels[number]

/** The longest session or context header accepted, in bytes (a token over it is refused, not truncated). */
export const SESSION_HEADER_BYTES_MAX = 64 * 1_024

const querySchema = z.object({
  consistency: z.enum(consistencyLevels).optional(),
  w: z.coerce.number().int().min(1).max(64).optional(),
  r: z.coerce.number().int().min(1).max(64).optional(),
  conflicts: z.enum(['lww', 'siblings']).optional()
})

/** Extra body bytes accepted beyond `valueBytesMax`, so a slightly large value gets the store's own 413. */
const BODY_SLACK_BYTES = 64 * 1_024

const casBodySchema = z.strictObject({ expected: z.string().nullable(), value: z.string() })

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function keyOf (request: FastifyRequest, suffix = ''): string {
  const raw = (request.params as { '*': string })['*']
  const key = suffix !== '' && raw.endsWith(suffix) ? raw.slice(0, -suffix.length) : raw
  if (key.length === 0) throw new StoreError('STORE_BAD_REQUEST', 'the key is empty: use /v1/kv/{key}')
  return key
}

interface LevelOptions { level: ConsistencyLevel, w: number, r: number, siblings: boolean }

function levelOptions (request: FastifyRequest): LevelOptions {
  const query = request.query as Record<string, unknown>
  const level = query.consistency
  if (level !== undefined && !(consistencyLevels as readonly unknown[]).includes(level)) {
    throw new StoreError('STORE_UNSUPPORTED_CONSISTENCY', `unknown consistency ${JSON.stringify(level)}; use ${consistencyLevels.join(', ')}`, { level: String(level) })
  }
  const parsed = querySchema.safeParse(query)
  if (!parsed.success) throw new StoreError('STORE_BAD_REQUEST', `bad query: ${parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; ')}`)
  const options = { level: parsed.data.consistency ?? 'strong', w: parsed.data.w ?? 1, r: parsed.data.r ?? 1, siblings: parsed.data.conflicts === 'siblings' }
  if (options.level !== 'eventual' && (parsed.data.w !== undefined || parsed.data.r !== undefined || parsed.data.conflicts !== undefined)) {
    throw new StoreError('STORE_BAD_REQUEST', 'w, r and conflicts are options of consistency=eventual', { level: options.level })
  }
  return options
}

/** A token header (session or context): base64url of canonical CBOR, checked against its schema. */
function readToken<T> (request: FastifyRequest, header: string, schema: z.ZodType<T>, empty: T): T {
  const raw = request.headers[header]
  if (raw === undefined || raw === '') return empty
  const text = Array.isArray(raw) ? raw.join('') : raw
  if (text.length > SESSION_HEADER_BYTES_MAX) throw new StoreError('STORE_SESSION_INVALID', `a ${header} header over ${SESSION_HEADER_BYTES_MAX} bytes`)
  try {
    const parsed = schema.safeParse(decodeCanonical(Buffer.from(text, 'base64url')))
    if (parsed.success) return parsed.data
  } catch {}
  throw new StoreError('STORE_SESSION_INVALID', `the ${header} header is not a token this store issued; drop it to start a new session`)
}

export function writeToken (value: Dependencies | VersionVector): string {
  return Buffer.from(encodeCanonical(value)).toString('base64url')
}

export async function runAvailable (store: AvailableStoreService, request: AvailableRequest): Promise<AvailableResult> {
  return await new Promise((resolve, reject) => {
    store.execute(request, (outcome) => { if (outcome instanceof StoreError) reject(outcome); else resolve(outcome) })
  })
}

export async function runOperation (store: StoreService, operation: KvOperation): Promise<KvResult> {
  return await new Promise((resolve, reject) => {
    store.execute(operation, (outcome) => { if (outcome instanceof StoreError) reject(outcome); else resolve(outcome) })
  })
}

export function registerStoreRoutes (api: FastifyInstance, store: StoreService, available: AvailableStoreService, metrics: Registry, valueBytesMax: number): void {
  const latency = new Histogram({
    name: 'synod_store_request_seconds',
    help: 'Store requests served by this node\'s API, from arrival to answer, by operation and outcome (ok or error code).',
    labelNames: ['op', 'level', 'outcome'],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [metrics]
  })
  const timed = async <T>(op: KvOperation['kind'], level: ConsistencyLevel, run: () => Promise<T>): Promise<T> => {
    const stop = latency.startTimer({ op, level })
    try {
      const result = await run()
      stop({ outcome: 'ok' })
      return result
    } catch (error) {
      stop({ outcome: error instanceof StoreError ? error.code : 'error' })
      throw error
    }
  }

  api.get('/v1/cluster/ring', async () => store.ring().describe())

  // This node's own copy of a key at the causal and eventual levels, as it is now (no quorum, no
  // repair): for operators comparing replicas, the convergence checks and the dashboard.
  api.get('/v1/store/replica/*', async (request) => {
    const key = (request.params as { '*': string })['*']
    if (key.length === 0) throw new StoreError('STORE_BAD_REQUEST', 'the key is empty: use /v1/store/replica/{key}')
    if (Buffer.byteLength(key) > KEY_BYTES_WIRE_MAX) throw new StoreError('STORE_KEY_TOO_LARGE', `a key over ${KEY_BYTES_WIRE_MAX} bytes`)
    const state = available.localState(key)
    return {
      key,
      replicas: available.replicasOf(key),
      values: state.siblings.map((sibling) => ({ value: sibling.value === null ? null : Buffer.from(sibling.value).toString('base64'), version: formatStamp(sibling.stamp) })),
      context: state.context
    }
  })

  /** A causal or eventual request from the HTTP request's query and headers. */
  const availableRequest = (request: FastifyRequest, options: LevelOptions, kind: AvailableRequest['kind'], key: string, value: Uint8Array | null): AvailableRequest => ({
    level: options.level === 'causal' ? 'causal' : 'eventual',
    kind,
    key,
    value,
    writeQuorum: options.w,
    readQuorum: options.r,
    siblings: options.siblings,
    context: options.siblings ? readToken<VersionVector | null>(request, 'synod-context', versionVectorSchema, null) : null,
    dependencies: options.level === 'causal' ? readToken<Dependencies>(request, 'synod-session', dependenciesSchema, []) : []
  })
  const availableHeaders = (reply: FastifyReply, options: LevelOptions, result: AvailableResult): void => {
    if (result.stamp !== null) void reply.header('synod-version', formatStamp(result.stamp))
    if (options.level === 'causal') void reply.header('synod-session', writeToken(result.dependencies))
    if (result.kind === 'get') void reply.header('synod-context', writeToken(result.context))
  }

  api.get('/v1/kv/*', async (request, reply) => {
    const options = levelOptions(request)
    const key = keyOf(request)
    if (options.level !== 'strong') {
      const result = await timed('get', options.level, async () => await runAvailable(available, availableRequest(request, options, 'get', key, null)))
      availableHeaders(reply, options, result)
      if (options.siblings && result.siblings.length > 1) {
        return await reply.code(300).send({
          siblings: result.siblings.map((sibling) => ({ value: sibling.value === null ? null : Buffer.from(sibling.value).toString('base64'), version: formatStamp(sibling.stamp) })),
          context: writeToken(result.context)
        })
      }
      if (result.value === null) {
        const notFound = new StoreError('STORE_NOT_FOUND', 'no value under this key', { key, version: result.stamp === null ? null : formatStamp(result.stamp) })
        return await reply.code(404).send(notFound.toJSON())
      }
      return await sendValue(reply, result.value, result.stamp === null ? '' : formatStamp(result.stamp))
    }
    const result = await timed('get', 'strong', async () => await runOperation(store, { kind: 'get', key }))
    if (result.kind !== 'get' || !result.found || result.value === null) {
      throw new StoreError('STORE_NOT_FOUND', 'no value under this key', { key, version: result.kind === 'get' ? result.version : 0 })
    }
    return await sendValue(reply, result.value, String(result.version))
  })

  api.delete('/v1/kv/*', async (request, reply) => {
    const options = levelOptions(request)
    const key = keyOf(request)
    if (options.level !== 'strong') {
      const result = await timed('delete', options.level, async () => await runAvailable(available, availableRequest(request, options, 'delete', key, null)))
      availableHeaders(reply, options, result)
      return { version: result.stamp === null ? null : formatStamp(result.stamp) }
    }
    const result = await timed('delete', 'strong', async () => await runOperation(store, { kind: 'delete', key }))
    return result.kind === 'delete' ? { deleted: result.found, version: result.version } : {}
  })

  api.post('/v1/kv/*', async (request, reply) => {
    const options = levelOptions(request)
    if (options.level !== 'strong') throw new StoreError('STORE_UNSUPPORTED_CONSISTENCY', `compare-and-set needs consistency=strong (a ${options.level} write cannot compare atomically)`, { level: options.level })
    const raw = (request.params as { '*': string })['*']
    if (!raw.endsWith('/cas')) throw new StoreError('STORE_BAD_REQUEST', 'POST is for compare-and-set: POST /v1/kv/{key}/cas')
    const key = keyOf(request, '/cas')
    const body = casBodySchema.safeParse(request.body)
    if (!body.success) throw new StoreError('STORE_BAD_REQUEST', `a cas body is {"expected": string | null, "value": string}: ${body.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; ')}`)
    const operation: KvOperation = { kind: 'cas', key, expected: body.data.expected === null ? null : encoder.encode(body.data.expected), value: encoder.encode(body.data.value) }
    const result = await timed('cas', 'strong', async () => await runOperation(store, operation))
    if (result.kind !== 'cas') return {}
    if (!result.applied) {
      throw new StoreError('STORE_CAS_MISMATCH', 'the current value is not the expected one', { current: result.current === null ? null : decoder.decode(result.current), version: result.version })
    }
    void reply.header('synod-version', String(result.version))
    return { version: result.version }
  })

  // Values are raw bytes of any content type: a scope of its own, with one parser that keeps them as they are.
  void api.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    // A body over the route's limit is a value too large, in the store's own words.
    scope.setErrorHandler(async (error) => {
      if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        throw new StoreError('STORE_VALUE_TOO_LARGE', `a value over valueBytesMax ${valueBytesMax} bytes`, { valueBytesMax })
      }
      throw error
    })
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: valueBytesMax + BODY_SLACK_BYTES }, (_request, body, done) => { done(null, body) })
    scope.put('/v1/kv/*', { bodyLimit: valueBytesMax + BODY_SLACK_BYTES }, async (request, reply) => {
      const options = levelOptions(request)
      const key = keyOf(request)
      const body = request.body
      const value = body instanceof Uint8Array ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : new Uint8Array(0)
      if (options.level !== 'strong') {
        const result = await timed('put', options.level, async () => await runAvailable(available, availableRequest(request, options, 'put', key, value)))
        availableHeaders(reply, options, result)
        return { version: result.stamp === null ? null : formatStamp(result.stamp) }
      }
      const result = await timed('put', 'strong', async () => await runOperation(store, { kind: 'put', key, value }))
      return result.kind === 'put' ? { version: result.version } : {}
    })
  })

  const stats = (): ReturnType<StoreService['stats']> => store.stats()
  collectedCounter(metrics, 'synod_store_operations_total', 'Store operations this node accepted from clients, by kind.', () => stats().operations, 'op')
  collectedCounter(metrics, 'synod_store_outcomes_total', 'Store operations finished here (as coordinator or forwarder), by outcome: ok or an error code.', () => stats().outcomes, 'outcome')
  collectedCounter(metrics, 'synod_store_forwarded_total', 'Operations forwarded to the key\'s coordinator.', () => stats().forwarded)
  collectedCounter(metrics, 'synod_store_forward_duplicates_total', 'Forwarded requests the network delivered twice, dropped (a request runs once).', () => stats().forwardDuplicates)
  collectedCounter(metrics, 'synod_store_prepare_rounds_total', 'CASPaxos prepare rounds this node ran as coordinator.', () => stats().prepareRounds)
  collectedCounter(metrics, 'synod_store_accept_rounds_total', 'CASPaxos accept rounds this node ran as coordinator.', () => stats().acceptRounds)
  collectedCounter(metrics, 'synod_store_one_round_trip_total', 'Batches that skipped the prepare round (the coordinator kept its ballot).', () => stats().oneRoundTrip)
  collectedCounter(metrics, 'synod_store_rounds_refused_total', 'Rounds refused by a higher ballot: contention, or a ballot gone stale.', () => stats().roundsRefused)
  collectedCounter(metrics, 'synod_store_rounds_timed_out_total', 'Rounds without a quorum of answers in roundTimeoutMs.', () => stats().roundsTimedOut)
  collectedCounter(metrics, 'synod_store_tombstones_erased_total', 'Tombstones this replica erased once every replica held them.', () => stats().acceptor.tombstonesErased)
  collectedCounter(metrics, 'synod_store_acceptor_refusals_total', 'Prepares and accepts this replica refused.', () => stats().acceptor.promisesRefused + stats().acceptor.acceptsRefused)
  const availableStats = (): ReturnType<AvailableStoreService['stats']> => available.stats()
  collectedCounter(metrics, 'synod_store_available_operations_total', 'Causal and eventual requests this node accepted, by level.kind.', () => availableStats().operations, 'op')
  collectedCounter(metrics, 'synod_store_available_outcomes_total', 'Causal and eventual requests finished here, by outcome: ok or an error code.', () => availableStats().outcomes, 'outcome')
  collectedCounter(metrics, 'synod_store_hints_stored_total', 'Writes this node kept as a hint for a down replica (sloppy quorum).', () => availableStats().hintsStored)
  collectedCounter(metrics, 'synod_store_hints_delivered_total', 'Hints handed off to their replica once it was back.', () => availableStats().hintsDelivered)
  collectedCounter(metrics, 'synod_store_hints_refused_total', 'Hinted writes refused at hintsMax.', () => availableStats().hintsRefused)
  collectedCounter(metrics, 'synod_store_read_repairs_total', 'Replicas brought up to date by a read.', () => availableStats().readRepairs)
  collectedCounter(metrics, 'synod_store_dependency_fetches_total', 'Causal reads that fetched a dependency from other replicas.', () => availableStats().dependencyFetches)
  collectedCounter(metrics, 'synod_store_anti_entropy_exchanges_total', 'Anti-entropy exchanges this replica started.', () => availableStats().antiEntropyExchanges)
  collectedCounter(metrics, 'synod_store_anti_entropy_digests_sent_total', 'Merkle digests this replica sent in anti-entropy (an exchange in sync sends one).', () => availableStats().antiEntropyDigestsSent)
  collectedCounter(metrics, 'synod_store_anti_entropy_keys_sent_total', 'Key states this replica sent to repair a peer.', () => availableStats().antiEntropyKeysSent)
  collectedCounter(metrics, 'synod_store_anti_entropy_throttled_total', 'Anti-entropy rounds skipped for the bandwidth limit.', () => availableStats().antiEntropyThrottled)
  collectedCounter(metrics, 'synod_store_clock_drift_refused_total', 'Peer states refused: stamped too far ahead of this node\'s clock.', () => availableStats().clockDriftRefused)
  collectedCounter(metrics, 'synod_store_bad_messages_total', 'Peer store messages that passed their schema but failed the protocol\'s checks, dropped.', () => availableStats().badMessages)
  collectedGauge(metrics, { name: 'synod_store_hints_held', help: 'Hinted writes this node keeps for down replicas.', read: () => available.hintsHeld() })
  collectedGauge(metrics, { name: 'synod_store_keys_held', help: 'Keys this replica holds at the causal and eventual levels.', read: () => available.keysHeld() })
  collectedGauge(metrics, { name: 'synod_store_operations_in_flight', help: 'Operations this node coordinates or forwarded, not yet answered.', read: () => store.inFlight() })
}

async function sendValue (reply: FastifyReply, value: Uint8Array, version: string): Promise<FastifyReply> {
  // A reply is thenable (it resolves once sent): set headers without awaiting it.
  void reply.header('content-type', 'application/octet-stream').header('synod-version', version)
  return await reply.send(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
}
