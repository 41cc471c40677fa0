/** The node HTTP API: routes, JSON errors with codes, and Prometheus metrics. */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { CoreError, emptyTransportStats, silentLogger, type LinkInfo, type Transport } from '../../src/core/index.js'
import { createApiServer, createMetrics } from '../../src/node/index.js'

const stats = { ...emptyTransportStats(), framesSent: 12, badFrames: 2, refusedPeers: 1 }
const links: LinkInfo[] = [{ peer: 'aa', state: 'connected', sinceMs: 1, framesSent: 12, framesReceived: 3 }, { peer: 'bb', state: 'disconnected', sinceMs: 2, framesSent: 0, framesReceived: 0 }]
const transport: Transport = {
  self: 'me',
  start: async () => {},
  stop: async () => {},
  send: () => {},
  links: () => links,
  stats: () => ({ ...stats }),
  refuse: () => {},
  refusals: () => []
}

describe('node HTTP API', () => {
  const app = createApiServer({
    health: () => ({ status: 'ok', nodeId: 'me' }),
    status: () => { throw new CoreError('CORE_CONFIG_INVALID', 'broken on purpose', { field: 'x' }) }
  }, createMetrics(transport), silentLogger)
  after(async () => { await app.close() })

  it('answers /v1/health', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/health' })
    assert.equal(response.statusCode, 200)
    assert.deepEqual(response.json(), { status: 'ok', nodeId: 'me' })
  })

  it('maps a typed error to its status and a {code, message, details} body', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/status' })
    assert.equal(response.statusCode, 400)
    assert.deepEqual(response.json(), { code: 'CORE_CONFIG_INVALID', message: 'broken on purpose', details: { field: 'x' } })
  })

  it('answers an unknown route with a typed 404', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/nope' })
    assert.equal(response.statusCode, 404)
    assert.equal(response.json<{ code: string }>().code, 'HTTP_NOT_FOUND')
  })

  it('exports transport counters and link gauges for Prometheus', async () => {
    const response = await app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(response.statusCode, 200)
    assert.match(String(response.headers['content-type']), /text\/plain/)
    assert.match(response.body, /^synod_transport_frames_sent_total 12$/m)
    assert.match(response.body, /^synod_transport_bad_frames_total 2$/m)
    assert.match(response.body, /^synod_transport_refused_peers_total 1$/m)
    assert.match(response.body, /^synod_transport_links_connected 1$/m)
    assert.match(response.body, /^synod_process_resident_memory_bytes /m)
  })
})
