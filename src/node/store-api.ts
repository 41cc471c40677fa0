/**
 * The store's HTTP API: `/v1/kv/{key}` (PUT, GET, DELETE), `/v1/kv/{key}/cas` (POST) and
 * `/v1/cluster/ring`. Values are raw bytes in and out; a key is the URL-decoded path after
 * `/v1/kv/` (clients encode `/` in keys as `%2F`). `consistency=strong` is the default and, until
 * the causal and eventual levels land, the only level; see docs/store.md.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Histogram, type Registry } from 'prom-client'
import { z } from 'zod'
import { StoreError, type KvOperation, type KvResult, type StoreService } from '../store/index.js'
import { collectedCounter, collectedGauge } from './metrics.js'

const consistencyLevels = ['strong'] as const
const plannedLevels = ['causal', 'eventual']

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

function checkConsistency (request: FastifyRequest): void {
  const level = (request.query as { consistency?: unknown }).consistency
  if (level === undefined || (consistencyLevels as readonly unknown[]).includes(level)) return
  const planned = typeof level === 'string' && plannedLevels.includes(level)
  throw new StoreError('STORE_UNSUPPORTED_CONSISTENCY', planned
    ? `consistency=${level} is not available yet; this store offers ${consistencyLevels.join(', ')}`
    : `unknown consistency ${JSON.stringify(level)}; use ${consistencyLevels.join(', ')}`, { level: String(level) })
}

export async function runOperation (store: StoreService, operation: KvOperation): Promise<KvResult> {
  return await new Promise((resolve, reject) => {
    store.execute(operation, (outcome) => { if (outcome instanceof StoreError) reject(outcome); else resolve(outcome) })
  })
}

export function registerStoreRoutes (api: FastifyInstance, store: StoreService, metrics: Registry, valueBytesMax: number): void {
  const latency = new Histogram({
    name: 'synod_store_request_seconds',
    help: 'Store requests served by this node\'s API, from arrival to answer, by operation and outcome (ok or error code).',
    labelNames: ['op', 'outcome'],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [metrics]
  })
  const timed = async <T>(op: KvOperation['kind'], run: () => Promise<T>): Promise<T> => {
    const stop = latency.startTimer({ op })
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

  api.get('/v1/kv/*', async (request, reply) => {
    checkConsistency(request)
    const key = keyOf(request)
    const result = await timed('get', async () => await runOperation(store, { kind: 'get', key }))
    if (result.kind !== 'get' || !result.found || result.value === null) {
      throw new StoreError('STORE_NOT_FOUND', 'no value under this key', { key, version: result.kind === 'get' ? result.version : 0 })
    }
    return await sendValue(reply, result.value, result.version)
  })

  api.delete('/v1/kv/*', async (request) => {
    checkConsistency(request)
    const key = keyOf(request)
    const result = await timed('delete', async () => await runOperation(store, { kind: 'delete', key }))
    return result.kind === 'delete' ? { deleted: result.found, version: result.version } : {}
  })

  api.post('/v1/kv/*', async (request, reply) => {
    checkConsistency(request)
    const raw = (request.params as { '*': string })['*']
    if (!raw.endsWith('/cas')) throw new StoreError('STORE_BAD_REQUEST', 'POST is for compare-and-set: POST /v1/kv/{key}/cas')
    const key = keyOf(request, '/cas')
    const body = casBodySchema.safeParse(request.body)
    if (!body.success) throw new StoreError('STORE_BAD_REQUEST', `a cas body is {"expected": string | null, "value": string}: ${body.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; ')}`)
    const operation: KvOperation = { kind: 'cas', key, expected: body.data.expected === null ? null : encoder.encode(body.data.expected), value: encoder.encode(body.data.value) }
    const result = await timed('cas', async () => await runOperation(store, operation))
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
    scope.put('/v1/kv/*', { bodyLimit: valueBytesMax + BODY_SLACK_BYTES }, async (request) => {
      checkConsistency(request)
      const key = keyOf(request)
      const body = request.body
      const value = body instanceof Uint8Array ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : new Uint8Array(0)
      const result = await timed('put', async () => await runOperation(store, { kind: 'put', key, value }))
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
  collectedGauge(metrics, { name: 'synod_store_operations_in_flight', help: 'Operations this node coordinates or forwarded, not yet answered.', read: () => store.inFlight() })
}

async function sendValue (reply: FastifyReply, value: Uint8Array, version: number): Promise<FastifyReply> {
  // A reply is thenable (it resolves once sent): set headers without awaiting it.
  void reply.header('content-type', 'application/octet-stream').header('synod-version', String(version))
  return await reply.send(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
}
