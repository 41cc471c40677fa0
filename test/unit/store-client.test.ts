/**
 * The client SDK's retry policy and answer handling, against a tiny local `node:http` server that
 * answers from a script: what is retried (a get after anything transient; any operation after a
 * definite failure), what is surfaced (a write after an indefinite failure, with definite false),
 * and where ring-aware requests go.
 */
import { describe, it, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { SynodClient, SynodClientError, backoffDelayMs, isRetryable, isDefiniteAnswer, keyPath, type SynodClientOptions } from '../../src/client/index.js'
import { HashRing } from '../../src/store/index.js'
import { freePort } from '../support/ports.js'

interface SeenRequest { method: string, url: string, body: Buffer }
type Step = (response: ServerResponse, request: SeenRequest) => void

const json = (status: number, body: unknown): Step => (response) => {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}
const storeError = (status: number, code: string, details: Record<string, unknown> = {}): Step => json(status, { code, message: `scripted ${code}`, details })
const value = (bytes: string, version: number): Step => (response) => {
  response.writeHead(200, { 'content-type': 'application/octet-stream', 'synod-version': String(version) }).end(bytes)
}
/** Reads the request, then drops the connection without answering: the request was sent. */
const hangUp: Step = (response) => { response.socket?.destroy() }
/** Never answers. */
const silence: Step = () => {}

/** A server that answers its n-th request with script[n] (the last step repeats) and records every request. */
class ScriptedServer {
  readonly seen: SeenRequest[] = []
  private readonly server: Server
  private readonly open = new Set<ServerResponse>()

  private constructor (private readonly script: Step[], readonly url: string, server: Server) {
    this.server = server
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const seen = { method: request.method ?? '', url: request.url ?? '', body: Buffer.concat(chunks) }
        this.seen.push(seen)
        this.open.add(response)
        response.on('close', () => this.open.delete(response))
        const step = this.script[Math.min(this.seen.length - 1, this.script.length - 1)]
        step(response, seen)
      })
    })
  }

  static async start (script: Step[]): Promise<ScriptedServer> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    return new ScriptedServer(script, `http://127.0.0.1:${port}`, server)
  }

  async stop (): Promise<void> {
    for (const response of this.open) response.socket?.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

const FAST_RETRIES = { attempts: 3, backoffMsMin: 1, backoffMsMax: 5 }
const servers: ScriptedServer[] = []
const clients: SynodClient[] = []

async function serve (script: Step[]): Promise<ScriptedServer> {
  const server = await ScriptedServer.start(script)
  servers.push(server)
  return server
}

function clientOf (endpoints: string[], options: Partial<SynodClientOptions> = {}): SynodClient {
  const client = new SynodClient({ endpoints, ringAware: false, retries: FAST_RETRIES, ...options })
  clients.push(client)
  return client
}

async function failure (promise: Promise<unknown>): Promise<SynodClientError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof SynodClientError, `expected a SynodClientError, got ${String(error)}`)
    return error
  }
  assert.fail('expected the operation to fail')
}

/** A loopback port with nothing listening: connections are refused. */
async function refusedUrl (): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map(async (client) => { await client.close() }))
  await Promise.all(servers.splice(0).map(async (server) => { await server.stop() }))
})

describe('SynodClient retry policy', () => {
  it('retries a put after 503 STORE_NO_QUORUM (definite) and succeeds', async () => {
    const server = await serve([storeError(503, 'STORE_NO_QUORUM'), json(200, { version: 7 })])
    const client = clientOf([server.url])
    assert.deepEqual(await client.put('k', 'v'), { version: 7 })
    assert.equal(server.seen.length, 2)
    assert.ok(server.seen.every((request) => request.method === 'PUT' && request.body.toString() === 'v'))
    assert.equal(client.stats().retries, 1)
  })

  it('retries a cas after 429 STORE_OVERLOADED and a delete after 503 STORE_NO_QUORUM', async () => {
    const casServer = await serve([storeError(429, 'STORE_OVERLOADED'), json(200, { version: 2 })])
    assert.deepEqual(await clientOf([casServer.url]).cas('k', 'a', 'b'), { applied: true, version: 2 })
    assert.equal(casServer.seen.length, 2)
    const deleteServer = await serve([storeError(503, 'STORE_NO_QUORUM'), json(200, { deleted: true, version: 3 })])
    assert.deepEqual(await clientOf([deleteServer.url]).delete('k'), { deleted: true, version: 3 })
    assert.equal(deleteServer.seen.length, 2)
  })

  it('does not retry a put after 504 STORE_TIMEOUT: the error is indefinite', async () => {
    const server = await serve([storeError(504, 'STORE_TIMEOUT'), json(200, { version: 1 })])
    const error = await failure(clientOf([server.url]).put('k', 'v'))
    assert.equal(error.code, 'STORE_TIMEOUT')
    assert.equal(error.definite, false)
    assert.equal(error.status, 504)
    assert.equal(error.attempts, 1)
    assert.equal(server.seen.length, 1, 'the put was sent once')
  })

  it('does not retry a delete or a cas after 504 STORE_TIMEOUT', async () => {
    for (const run of [async (client: SynodClient) => await client.delete('k'), async (client: SynodClient) => await client.cas('k', null, 'v')]) {
      const server = await serve([storeError(504, 'STORE_TIMEOUT'), json(200, { version: 1, deleted: true })])
      const error = await failure(run(clientOf([server.url])))
      assert.equal(error.code, 'STORE_TIMEOUT')
      assert.equal(error.definite, false)
      assert.equal(server.seen.length, 1)
    }
  })

  it('retries a get after 504 STORE_TIMEOUT', async () => {
    const server = await serve([storeError(504, 'STORE_TIMEOUT'), value('hello', 4)])
    const client = clientOf([server.url])
    const found = await client.get('k')
    assert.ok(found !== null)
    assert.equal(Buffer.from(found.value).toString(), 'hello')
    assert.equal(found.version, 4)
    assert.equal(server.seen.length, 2)
  })

  it('retries a put after a refused connection, on the next endpoint, without sending it twice', async () => {
    const server = await serve([json(200, { version: 1 })])
    const client = clientOf([await refusedUrl(), server.url])
    assert.deepEqual(await client.put('k', 'v'), { version: 1 })
    assert.equal(server.seen.length, 1)
    assert.equal(client.stats().unreachable, 1)
    assert.equal(client.stats().retries, 1)
  })

  it('reports CLIENT_UNREACHABLE, definite, when no endpoint accepts a connection', async () => {
    const client = clientOf([await refusedUrl()])
    const error = await failure(client.put('k', 'v'))
    assert.equal(error.code, 'CLIENT_UNREACHABLE')
    assert.equal(error.definite, true)
    assert.equal(error.attempts, 3, 'a definite failure is retried up to the attempt limit')
  })

  it('surfaces a connection lost after sending a put as indefinite, without retrying; a get is retried', async () => {
    const putServer = await serve([hangUp, json(200, { version: 1 })])
    const error = await failure(clientOf([putServer.url]).put('k', 'v'))
    assert.equal(error.code, 'CLIENT_UNREACHABLE')
    assert.equal(error.definite, false)
    assert.equal(putServer.seen.length, 1)
    const getServer = await serve([hangUp, value('v', 1)])
    assert.equal((await clientOf([getServer.url]).getString('k'))?.value, 'v')
    assert.equal(getServer.seen.length, 2)
  })

  it('times out a put as CLIENT_TIMEOUT, indefinite, once; a get that times out is retried', async () => {
    const putServer = await serve([silence, json(200, { version: 1 })])
    const error = await failure(clientOf([putServer.url], { timeoutMs: 200 }).put('k', 'v'))
    assert.equal(error.code, 'CLIENT_TIMEOUT')
    assert.equal(error.definite, false)
    assert.equal(putServer.seen.length, 1)
    const getServer = await serve([silence, value('late', 2)])
    assert.deepEqual(await clientOf([getServer.url], { timeoutMs: 200 }).getString('k'), { value: 'late', version: 2 })
    assert.equal(getServer.seen.length, 2)
  })

  it('does not retry a 4xx: the request itself is wrong, definitely not applied', async () => {
    for (const run of [async (client: SynodClient) => await client.put('k', 'v'), async (client: SynodClient) => await client.get('k')]) {
      const server = await serve([storeError(400, 'STORE_KEY_TOO_LARGE'), json(200, { version: 1 })])
      const error = await failure(run(clientOf([server.url])))
      assert.equal(error.code, 'STORE_KEY_TOO_LARGE')
      assert.equal(error.definite, true)
      assert.equal(error.status, 400)
      assert.equal(server.seen.length, 1)
    }
  })

  it('gives up after the configured attempts and says how many it made', async () => {
    const server = await serve([storeError(503, 'STORE_NO_QUORUM')])
    const error = await failure(clientOf([server.url], { retries: { attempts: 4, backoffMsMin: 1, backoffMsMax: 2 } }).put('k', 'v'))
    assert.equal(error.code, 'STORE_NO_QUORUM')
    assert.equal(error.definite, true)
    assert.equal(error.attempts, 4)
    assert.equal(server.seen.length, 4)
  })

  it('reads a non-JSON 5xx as CLIENT_BAD_RESPONSE, indefinite', async () => {
    const server = await serve([(response) => { response.writeHead(502).end('bad gateway') }])
    const error = await failure(clientOf([server.url]).put('k', 'v'))
    assert.equal(error.code, 'CLIENT_BAD_RESPONSE')
    assert.equal(error.definite, false)
    assert.match(error.message, /502/)
    assert.equal(server.seen.length, 1)
  })
})

describe('SynodClient answers', () => {
  it('returns null for a get of an absent key, and the current value on a cas mismatch', async () => {
    const server = await serve([
      storeError(404, 'STORE_NOT_FOUND', { key: 'k', version: 0 }),
      storeError(409, 'STORE_CAS_MISMATCH', { current: 'now', version: 5 }),
      storeError(409, 'STORE_CAS_MISMATCH', { current: null, version: 6 })
    ])
    const client = clientOf([server.url])
    assert.equal(await client.get('k'), null)
    assert.deepEqual(await client.cas('k', 'then', 'next'), { applied: false, current: 'now', version: 5 })
    assert.deepEqual(await client.cas('k', 'then', 'next'), { applied: false, current: null, version: 6 })
    assert.equal(server.seen.length, 3, 'a not-found and a mismatch are answers, not retried failures')
    assert.deepEqual(JSON.parse(server.seen[1].body.toString()), { expected: 'then', value: 'next' })
  })

  it('encodes a key as one path segment and asks for strong consistency', async () => {
    const server = await serve([json(200, { version: 1 })])
    const client = clientOf([server.url + '/'])
    await client.put('a/b c?é', new Uint8Array([0, 255]))
    await client.cas('x/cas', null, 'v')
    assert.equal(server.seen[0].url, '/v1/kv/a%2Fb%20c%3F%C3%A9?consistency=strong')
    assert.deepEqual([...server.seen[0].body], [0, 255])
    assert.equal(server.seen[1].url, '/v1/kv/x%2Fcas/cas?consistency=strong')
    assert.equal(keyPath('a/b'), '/v1/kv/a%2Fb?consistency=strong')
  })

  it('refuses to work once closed', async () => {
    const server = await serve([json(200, { version: 1 })])
    const client = clientOf([server.url])
    await client.close()
    const error = await failure(client.put('k', 'v'))
    assert.equal(error.code, 'CLIENT_CLOSED')
    assert.equal(server.seen.length, 0)
  })
})

describe('SynodClient ring-aware routing', () => {
  /** Three scripted "nodes", one serving the ring that names all three. */
  async function ringCluster (): Promise<{ nodes: ScriptedServer[], ring: HashRing, ids: string[] }> {
    const ids = ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)]
    const ok: Step = (response, request) => {
      if (request.url === '/v1/cluster/ring') json(200, ring.describe())(response, request)
      else json(200, { version: 1 })(response, request)
    }
    const nodes = [await serve([ok]), await serve([ok]), await serve([ok])]
    const ring = new HashRing({ members: ids.map((id, index) => ({ id, weight: 1, api: nodes[index].url })) })
    return { nodes, ring, ids }
  }

  it('sends each key to the first replica of its preference list', async () => {
    const { nodes, ring, ids } = await ringCluster()
    const client = clientOf([nodes[0].url], { ringAware: true })
    const keys = Array.from({ length: 30 }, (_, index) => `key-${index}`)
    for (const key of keys) await client.put(key, 'v')
    for (const key of keys) {
      const owner = ids.indexOf(ring.preferenceList(key)[0])
      assert.ok(nodes[owner].seen.some((request) => request.url === keyPath(key)), `${key} went to node ${owner}`)
    }
    assert.equal(nodes[0].seen.filter((request) => request.url === '/v1/cluster/ring').length, 1, 'the ring is fetched once and cached')
    assert.deepEqual((await client.ring()).members.map((member) => member.id), ids)
  })

  it('falls back to the next replica when the first refuses connections', async () => {
    const { nodes, ring, ids } = await ringCluster()
    const client = clientOf([nodes[0].url], { ringAware: true })
    await client.ring()
    const key = Array.from({ length: 100 }, (_, index) => `k${index}`).find((candidate) => ring.preferenceList(candidate)[0] === ids[2]) ?? 'k'
    await nodes[2].stop()
    servers.splice(servers.indexOf(nodes[2]), 1)
    assert.deepEqual(await client.put(key, 'v'), { version: 1 })
    const second = ids.indexOf(ring.preferenceList(key)[1])
    assert.ok(nodes[second].seen.some((request) => request.url === keyPath(key)), 'the second replica served it')
  })

  it('falls back to the endpoints when the ring cannot be fetched', async () => {
    const server = await serve([(response, request) => {
      if (request.url === '/v1/cluster/ring') storeError(500, 'HTTP_INTERNAL')(response, request)
      else json(200, { version: 9 })(response, request)
    }])
    const client = clientOf([server.url], { ringAware: true })
    assert.deepEqual(await client.put('k', 'v'), { version: 9 })
    const error = await failure(client.ring())
    assert.equal(error.code, 'HTTP_INTERNAL')
  })
})

describe('retry policy, pure parts', () => {
  const error = (code: string, definite: boolean): SynodClientError => new SynodClientError(code, code, { definite })

  it('retries a get after any transient failure and a write only after a definite transient one', () => {
    const table: Array<[string, boolean, { get: boolean, write: boolean }]> = [
      ['STORE_NO_QUORUM', true, { get: true, write: true }],
      ['STORE_OVERLOADED', true, { get: true, write: true }],
      ['CLIENT_UNREACHABLE', true, { get: true, write: true }],
      ['CLIENT_UNREACHABLE', false, { get: true, write: false }],
      ['STORE_TIMEOUT', false, { get: true, write: false }],
      ['CLIENT_TIMEOUT', false, { get: true, write: false }],
      ['HTTP_INTERNAL', false, { get: true, write: false }],
      ['STORE_BAD_REQUEST', true, { get: false, write: false }],
      ['STORE_VALUE_TOO_LARGE', true, { get: false, write: false }],
      ['CLIENT_CLOSED', true, { get: false, write: false }]
    ]
    for (const [code, definite, expected] of table) {
      assert.equal(isRetryable('get', error(code, definite)), expected.get, `get after ${code}`)
      for (const kind of ['put', 'delete', 'cas'] as const) assert.equal(isRetryable(kind, error(code, definite)), expected.write, `${kind} after ${code}`)
    }
  })

  it('reads definiteness from the code first, then the status', () => {
    assert.equal(isDefiniteAnswer(503, 'STORE_NO_QUORUM'), true)
    assert.equal(isDefiniteAnswer(429, 'STORE_OVERLOADED'), true)
    assert.equal(isDefiniteAnswer(504, 'STORE_TIMEOUT'), false)
    assert.equal(isDefiniteAnswer(400, 'STORE_BAD_REQUEST'), true)
    assert.equal(isDefiniteAnswer(500, 'HTTP_INTERNAL'), false)
    assert.equal(isDefiniteAnswer(503, 'SOMETHING_ELSE'), false)
  })

  it('backs off exponentially between the bounds, with jitter', () => {
    const policy = { attempts: 10, backoffMsMin: 50, backoffMsMax: 1_000 }
    assert.equal(backoffDelayMs(1, policy, () => 0.99), 50)
    assert.equal(backoffDelayMs(3, policy, () => 0), 50)
    assert.equal(backoffDelayMs(3, policy, () => 1), 200)
    assert.equal(backoffDelayMs(10, policy, () => 1), 1_000)
    for (let retry = 1; retry < 12; retry++) {
      const delay = backoffDelayMs(retry, policy)
      assert.ok(delay >= 50 && delay <= 1_000, `retry ${retry}: ${delay} ms`)
    }
  })

  it('refuses a bad configuration', () => {
    assert.throws(() => new SynodClient({ endpoints: [] }), RangeError)
    assert.throws(() => new SynodClient({ endpoints: ['ftp://x'] }), RangeError)
    assert.throws(() => new SynodClient({ endpoints: ['http://x'], retries: { attempts: 0 } }), RangeError)
    assert.throws(() => new SynodClient({ endpoints: ['http://x'], retries: { backoffMsMin: 10, backoffMsMax: 5 } }), RangeError)
  })

  it('is importable as synod/client', async () => {
    const specifier = 'synod/client'
    const module = await import(specifier) as { SynodClient?: unknown, SynodClientError?: unknown }
    assert.equal(typeof module.SynodClient, 'function')
    assert.equal(typeof module.SynodClientError, 'function')
  })
})
