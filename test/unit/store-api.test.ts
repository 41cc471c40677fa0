/**
 * The store's HTTP routes over a 3-node simulated cluster (the production store service, the
 * simulator's network and disk): answers, headers, the typed refusals and their statuses, keys
 * with `/` and unicode, the value-size limit at its edge, and the ring.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { emptyTransportStats, silentLogger, type Transport } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { createApiServer, createMetrics } from '../../src/node/index.js'
import { registerStoreRoutes } from '../../src/node/store-api.js'
import { AvailableStoreService, StoreService, defaultStoreLimits } from '../../src/store/index.js'
import { makeOverlayCluster, runKernelUntil } from '../support/overlay-cluster.js'

const transport: Transport = { self: 'me', start: async () => {}, stop: async () => {}, send: () => {}, links: () => [], stats: () => emptyTransportStats(), refuse: () => {}, refusals: () => [] }

describe('store HTTP API', () => {
  const { cluster, kernel } = makeOverlayCluster({
    nodes: 3,
    seed: 4,
    services: (_context, overlay) => {
      const membership = new MembershipService({ net: overlay })
      const isLive = (member: string): boolean => membership.stateOf(member) === 'alive'
      const store = new StoreService({ net: overlay, isLive })
      return [membership, store, new AvailableStoreService({ net: overlay, ring: () => store.ring(), isLive })]
    }
  })
  runKernelUntil(kernel, () => cluster.members.every((id) => cluster.members.every((peer) => peer === id || cluster.service(id, MembershipService)?.stateOf(peer) === 'alive')), 30_000, 50)
  const store = cluster.service(cluster.members[0] as string, StoreService) as StoreService
  const metrics = createMetrics(transport)
  const app = createApiServer({ health: () => ({ status: 'ok', nodeId: 'me' }), status: () => ({}) }, metrics, silentLogger)
  const available = cluster.service(cluster.members[0] as string, AvailableStoreService) as AvailableStoreService
  registerStoreRoutes(app, store, available, metrics, defaultStoreLimits.valueBytesMax)
  after(async () => { await app.close() })

  /** Sends a request and runs the simulated cluster until it is answered. */
  const call = async (options: InjectOptions): Promise<LightMyRequestResponse> => {
    let settled = false
    const answer = app.inject(options).finally(() => { settled = true })
    for (let step = 0; step < 10_000 && !settled; step++) {
      await new Promise((resolve) => setImmediate(resolve))
      kernel.runFor(5)
    }
    return await answer
  }

  it('put, get with Synod-Version, delete, then 404 STORE_NOT_FOUND', async () => {
    const put = await call({ method: 'PUT', url: '/v1/kv/greeting', payload: Buffer.from('hello'), headers: { 'content-type': 'application/octet-stream' } })
    assert.deepEqual([put.statusCode, put.json()], [200, { version: 1 }])
    const get = await call({ method: 'GET', url: '/v1/kv/greeting?consistency=strong' })
    assert.equal(get.statusCode, 200)
    assert.equal(get.body, 'hello')
    assert.equal(get.headers['synod-version'], '1')
    assert.equal(get.headers['content-type'], 'application/octet-stream')
    const deleted = await call({ method: 'DELETE', url: '/v1/kv/greeting' })
    assert.deepEqual(deleted.json(), { deleted: true, version: 2 })
    const again = await call({ method: 'DELETE', url: '/v1/kv/greeting' })
    assert.deepEqual(again.json(), { deleted: false, version: 2 })
    const missing = await call({ method: 'GET', url: '/v1/kv/greeting' })
    assert.deepEqual([missing.statusCode, missing.json<{ code: string }>().code], [404, 'STORE_NOT_FOUND'])
  })

  it('any content type is a value, kept byte for byte; keys with / and unicode round-trip', async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 10, 13])
    for (const key of ['a/b/c', 'clé-😀', 'with space']) {
      const url = `/v1/kv/${encodeURIComponent(key)}`
      assert.equal((await call({ method: 'PUT', url, payload: bytes, headers: { 'content-type': 'text/plain' } })).statusCode, 200)
      const get = await call({ method: 'GET', url })
      assert.deepEqual(get.rawPayload, bytes, key)
    }
    const json = await call({ method: 'PUT', url: '/v1/kv/json', payload: '{"a":1}', headers: { 'content-type': 'application/json' } })
    assert.equal(json.statusCode, 200)
    assert.equal((await call({ method: 'GET', url: '/v1/kv/json' })).body, '{"a":1}')
  })

  it('cas: expected null means absent; a mismatch is 409 with the current value and version', async () => {
    const create = await call({ method: 'POST', url: '/v1/kv/lock/cas', payload: { expected: null, value: 'owner-1' } })
    assert.deepEqual([create.statusCode, create.json()], [200, { version: 1 }])
    const lost = await call({ method: 'POST', url: '/v1/kv/lock/cas', payload: { expected: null, value: 'owner-2' } })
    assert.equal(lost.statusCode, 409)
    assert.deepEqual(lost.json<{ code: string, details: object }>().code, 'STORE_CAS_MISMATCH')
    assert.deepEqual(lost.json<{ details: object }>().details, { current: 'owner-1', version: 1 })
    const swap = await call({ method: 'POST', url: '/v1/kv/lock/cas', payload: { expected: 'owner-1', value: 'owner-2' } })
    assert.deepEqual([swap.statusCode, swap.json()], [200, { version: 2 }])
  })

  it('refuses bad requests with typed codes: limits at their edge, bad cas bodies, unknown or planned levels', async () => {
    const limit = defaultStoreLimits.valueBytesMax
    const fits = await call({ method: 'PUT', url: '/v1/kv/big', payload: Buffer.alloc(limit), headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(fits.statusCode, 200)
    assert.equal((await call({ method: 'GET', url: '/v1/kv/big' })).rawPayload.length, limit)
    for (const size of [limit + 1, limit + 200_000]) {
      const big = await call({ method: 'PUT', url: '/v1/kv/big', payload: Buffer.alloc(size), headers: { 'content-type': 'application/octet-stream' } })
      assert.deepEqual([big.statusCode, big.json<{ code: string }>().code], [413, 'STORE_VALUE_TOO_LARGE'], `${size} bytes`)
    }
    const longKey = await call({ method: 'PUT', url: `/v1/kv/${'k'.repeat(defaultStoreLimits.keyBytesMax + 1)}`, payload: 'x' })
    assert.deepEqual([longKey.statusCode, longKey.json<{ code: string }>().code], [400, 'STORE_KEY_TOO_LARGE'])
    for (const payload of [{ expected: 1, value: 'x' }, { value: 'x' }, { expected: null, value: 'x', extra: true }]) {
      const bad = await call({ method: 'POST', url: '/v1/kv/lock/cas', payload })
      assert.deepEqual([bad.statusCode, bad.json<{ code: string }>().code], [400, 'STORE_BAD_REQUEST'], JSON.stringify(payload))
    }
    const notCas = await call({ method: 'POST', url: '/v1/kv/lock', payload: {} })
    assert.deepEqual([notCas.statusCode, notCas.json<{ code: string }>().code], [400, 'STORE_BAD_REQUEST'])
    const unknown = await call({ method: 'GET', url: '/v1/kv/lock?consistency=bogus' })
    assert.deepEqual([unknown.statusCode, unknown.json<{ code: string }>().code], [400, 'STORE_UNSUPPORTED_CONSISTENCY'])
    for (const level of ['causal', 'eventual']) {
      const cas = await call({ method: 'POST', url: `/v1/kv/lock/cas?consistency=${level}`, payload: { expected: null, value: 'x' } })
      assert.deepEqual([cas.statusCode, cas.json<{ code: string }>().code], [400, 'STORE_UNSUPPORTED_CONSISTENCY'], `cas at ${level}`)
    }
    for (const query of ['consistency=eventual&w=4', 'consistency=eventual&r=0', 'consistency=eventual&w=two', 'consistency=strong&w=2', 'consistency=causal&r=2', 'consistency=eventual&conflicts=merge']) {
      const bad = await call({ method: 'GET', url: `/v1/kv/lock?${query}` })
      assert.deepEqual([bad.statusCode, bad.json<{ code: string }>().code], [400, 'STORE_BAD_REQUEST'], query)
    }
    for (const token of ['not-a-token', Buffer.from('garbage').toString('base64url'), 'x'.repeat(70_000)]) {
      const bad = await call({ method: 'GET', url: '/v1/kv/lock?consistency=causal', headers: { 'synod-session': token } })
      assert.deepEqual([bad.statusCode, bad.json<{ code: string }>().code], [400, 'STORE_SESSION_INVALID'], token.slice(0, 20))
    }
  })

  it('causal: the session token comes back with each answer and carries read-your-writes across nodes', async () => {
    const put = await call({ method: 'PUT', url: '/v1/kv/profile?consistency=causal', payload: 'v1', headers: { 'content-type': 'text/plain' } })
    assert.equal(put.statusCode, 200, put.body)
    const session = put.headers['synod-session'] as string
    assert.ok(typeof session === 'string' && session.length > 0)
    const version = put.json<{ version: string }>().version
    assert.match(version, /^\d+\.\d+\.[0-9a-zA-Z_-]+$/)
    const get = await call({ method: 'GET', url: '/v1/kv/profile?consistency=causal', headers: { 'synod-session': session } })
    assert.equal(get.statusCode, 200)
    assert.equal(get.body, 'v1')
    assert.equal(get.headers['synod-version'], version)
    assert.ok(typeof get.headers['synod-session'] === 'string')
    const missing = await call({ method: 'GET', url: '/v1/kv/never-written?consistency=causal', headers: { 'synod-session': session } })
    assert.deepEqual([missing.statusCode, missing.json<{ code: string }>().code], [404, 'STORE_NOT_FOUND'])
    assert.ok(typeof missing.headers['synod-session'] === 'string', 'a 404 still carries the session')
    const deleted = await call({ method: 'DELETE', url: '/v1/kv/profile?consistency=causal', headers: { 'synod-session': session } })
    assert.equal(deleted.statusCode, 200)
    const gone = await call({ method: 'GET', url: '/v1/kv/profile?consistency=causal', headers: { 'synod-session': deleted.headers['synod-session'] as string } })
    assert.equal(gone.statusCode, 404)
  })

  it('eventual: w and r per request; siblings mode returns concurrent values with a context, and a write with that context resolves them', async () => {
    const put = await call({ method: 'PUT', url: '/v1/kv/cart?consistency=eventual&w=3', payload: 'apple', headers: { 'content-type': 'text/plain' } })
    assert.equal(put.statusCode, 200, put.body)
    const read = await call({ method: 'GET', url: '/v1/kv/cart?consistency=eventual&r=3' })
    assert.deepEqual([read.statusCode, read.body], [200, 'apple'])
    const context = read.headers['synod-context'] as string
    // Two writers that both read `apple` and write without seeing each other: siblings.
    for (const fruit of ['pear', 'plum']) {
      const write = await call({ method: 'PUT', url: '/v1/kv/cart?consistency=eventual&conflicts=siblings&w=3', payload: fruit, headers: { 'content-type': 'text/plain', 'synod-context': context } })
      assert.equal(write.statusCode, 200, write.body)
    }
    const siblings = await call({ method: 'GET', url: '/v1/kv/cart?consistency=eventual&conflicts=siblings&r=3' })
    assert.equal(siblings.statusCode, 300, siblings.body)
    const body = siblings.json<{ siblings: Array<{ value: string, version: string }>, context: string }>()
    assert.deepEqual(body.siblings.map((sibling) => Buffer.from(sibling.value, 'base64').toString()).sort(), ['pear', 'plum'])
    // Without siblings mode a read gets the last writer.
    const lww = await call({ method: 'GET', url: '/v1/kv/cart?consistency=eventual&r=3' })
    assert.equal(lww.body, Buffer.from((body.siblings.at(-1) as { value: string }).value, 'base64').toString())
    const merged = await call({ method: 'PUT', url: '/v1/kv/cart?consistency=eventual&conflicts=siblings&w=3', payload: 'pear+plum', headers: { 'content-type': 'text/plain', 'synod-context': body.context } })
    assert.equal(merged.statusCode, 200)
    const resolved = await call({ method: 'GET', url: '/v1/kv/cart?consistency=eventual&conflicts=siblings&r=3' })
    assert.deepEqual([resolved.statusCode, resolved.body], [200, 'pear+plum'])
  })

  it('shows the ring, and counts requests by operation and outcome', async () => {
    const ring = (await call({ method: 'GET', url: '/v1/cluster/ring' })).json<{ version: number, replicationFactor: number, members: Array<{ id: string, share: number }> }>()
    assert.equal(ring.replicationFactor, 3)
    assert.deepEqual(ring.members.map((member) => member.id).sort(), [...cluster.members].sort())
    assert.ok(Math.abs(ring.members.reduce((sum, member) => sum + member.share, 0) - 1) < 1e-9)
    const text = await metrics.metrics()
    assert.match(text, /synod_store_request_seconds_count\{op="put",level="strong",outcome="ok"\} \d+/)
    assert.match(text, /synod_store_request_seconds_count\{op="get",level="strong",outcome="ok"\} \d+/)
    assert.match(text, /synod_store_request_seconds_count\{op="put",level="causal",outcome="ok"\} \d+/)
    assert.match(text, /synod_store_request_seconds_count\{op="get",level="eventual",outcome="ok"\} \d+/)
    assert.match(text, /synod_store_available_operations_total\{op="eventual.put"\} [1-9]/)
    assert.match(text, /synod_store_outcomes_total\{outcome="STORE_KEY_TOO_LARGE"\} 1/)
    assert.match(text, /synod_store_operations_total\{op="cas"\} [1-9]/)
  })
})
