/**
 * The gateway end to end over real HTTP, against real local upstream servers that can be
 * healthy, slow, failing, holding requests, or gone: each strategy's choices as seen in the
 * `synod-upstream` answer header, retries of reads only (never of a write), outlier ejection
 * and return, active checks, panic mode, timeouts, limits, and pass-through of answers.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Gateway, parseGatewayConfig, type GatewayConfigInput, type GatewayStatus } from '../../src/gateway/index.js'
import { createLogger } from '../../src/node/index.js'
import { waitUntil } from '../support/ports.js'

interface Behaviour {
  /** Delay before answering, ms. */
  delayMs: number
  /** Status of ordinary answers. */
  status: number
  /** Status of /v1/health. */
  healthStatus: number
  /** Destroy the socket on a POST instead of answering. */
  resetOnPost: boolean
  /** Hold requests to /hold until released. */
  held: Array<() => void>
}

interface Upstream {
  name: string
  url: string
  behaviour: Behaviour
  requests: Array<{ method: string, url: string, headers: IncomingMessage['headers'] }>
  server: Server
  close: () => Promise<void>
}

const upstreams: Upstream[] = []
const gateways: Gateway[] = []
/** Enough requests that the first few, sent before any upstream is measured, weigh little. */
const REQUESTS_FOR_SHARES = 600
/** Requests sent before the p2c shares are counted (see the p2c test). */
const WARM_UP_REQUESTS = 100
const silent = createLogger({ component: 'gateway-test' }, 'silent')

async function upstream (name: string, behaviour: Partial<Behaviour> = {}): Promise<Upstream> {
  const made: Upstream = {
    name,
    url: '',
    behaviour: { delayMs: 0, status: 200, healthStatus: 200, resetOnPost: false, held: [], ...behaviour },
    requests: [],
    server: createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const url = request.url ?? '/'
        if (url === '/v1/health') {
          response.writeHead(made.behaviour.healthStatus, { 'content-type': 'application/json' })
          response.end(JSON.stringify({ status: 'ok', name }))
          return
        }
        made.requests.push({ method: request.method ?? '', url, headers: request.headers })
        if (request.method === 'POST' && made.behaviour.resetOnPost) { request.socket.destroy(); return }
        const answer = (): void => {
          const body = JSON.stringify({ name, method: request.method, url, body: Buffer.concat(chunks).toString() })
          response.writeHead(made.behaviour.status, { 'content-type': 'application/json', 'x-upstream-own': name })
          response.end(body)
        }
        if (url.startsWith('/hold')) { made.behaviour.held.push(answer); return }
        if (url.startsWith('/trickle')) {
          // A byte every 100 ms for 2 s: each gap is short, the whole is long.
          response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20' })
          let sent = 0
          const timer = setInterval(() => { response.write('x'); if (++sent === 20) { clearInterval(timer); response.end() } }, 100)
          response.once('close', () => { clearInterval(timer) })
          return
        }
        if (made.behaviour.delayMs > 0) setTimeout(answer, made.behaviour.delayMs)
        else answer()
      })
    }),
    close: async () => {
      made.server.closeAllConnections()
      await new Promise<void>((resolve) => { made.server.close(() => { resolve() }) })
    }
  }
  await new Promise<void>((resolve) => { made.server.listen(0, '127.0.0.1', () => { resolve() }) })
  made.url = `http://127.0.0.1:${(made.server.address() as AddressInfo).port}`
  upstreams.push(made)
  return made
}

async function gatewayOver (list: Array<{ upstream: Upstream, weight?: number }>, config: Partial<GatewayConfigInput> = {}): Promise<Gateway> {
  const gateway = new Gateway(parseGatewayConfig({
    listen: '127.0.0.1:0',
    seed: 7,
    healthCheck: { intervalMs: 0 },
    slowStart: { windowMs: 0 },
    ...config,
    upstreams: list.map(({ upstream: made, weight }) => ({ url: made.url, id: made.name, ...(weight === undefined ? {} : { weight }) }))
  }, 'test'), { log: silent })
  await gateway.start()
  gateways.push(gateway)
  return gateway
}

interface Answer { status: number, upstream: string | null, headers: Headers, body: string }
async function send (gateway: Gateway, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${gateway.address()}${path}`, init)
  return { status: response.status, upstream: response.headers.get('synod-upstream'), headers: response.headers, body: await response.text() }
}
const statusOf = async (gateway: Gateway): Promise<GatewayStatus> => JSON.parse((await send(gateway, '/v1/gateway/status')).body) as GatewayStatus
const metricValue = async (gateway: Gateway, line: RegExp): Promise<number> => {
  const text = (await send(gateway, '/metrics')).body
  const match = line.exec(text)
  return match === null ? 0 : Number(match[1])
}

after(async () => {
  await Promise.all(gateways.map(async (gateway) => { await gateway.stop() }))
  await Promise.all(upstreams.map(async (made) => { await made.close() }))
})

describe('the gateway over real HTTP', () => {
  it('round-robin: cycles the upstreams in order', async () => {
    const list = [await upstream('rr-a'), await upstream('rr-b'), await upstream('rr-c')]
    const gateway = await gatewayOver(list.map((made) => ({ upstream: made })), { strategy: 'round-robin' })
    const seen: Array<string | null> = []
    for (let i = 0; i < 9; i++) seen.push((await send(gateway, `/v1/anything/${i}`)).upstream)
    assert.deepEqual(seen, ['rr-a', 'rr-b', 'rr-c', 'rr-a', 'rr-b', 'rr-c', 'rr-a', 'rr-b', 'rr-c'])
    assert.deepEqual(list.map((made) => made.requests.length), [3, 3, 3])
  })

  it('weighted-round-robin: weights 5, 1, 1 give nginx\'s smooth sequence', async () => {
    const list = [await upstream('w-a'), await upstream('w-b'), await upstream('w-c')]
    const gateway = await gatewayOver([{ upstream: list[0], weight: 5 }, { upstream: list[1], weight: 1 }, { upstream: list[2], weight: 1 }], { strategy: 'weighted-round-robin' })
    const seen: Array<string | null> = []
    for (let i = 0; i < 14; i++) seen.push((await send(gateway, '/x')).upstream)
    const period = ['w-a', 'w-a', 'w-b', 'w-a', 'w-c', 'w-a', 'w-a']
    assert.deepEqual(seen, [...period, ...period])
  })

  it('least-connections spreads held requests evenly; the weighted variant in proportion to weight', async () => {
    const list = [await upstream('lc-a'), await upstream('lc-b'), await upstream('lc-c')]
    for (const [strategy, weights, expected] of [
      ['least-connections', [1, 1, 1], [2, 2, 2]],
      ['weighted-least-connections', [2, 1, 1], [4, 2, 2]]
    ] as const) {
      const gateway = await gatewayOver(list.map((made, index) => ({ upstream: made, weight: weights[index] })), { strategy })
      const pending: Array<Promise<Answer>> = []
      const total = expected.reduce((sum, count) => sum + count, 0)
      for (let i = 0; i < total; i++) {
        pending.push(send(gateway, `/hold/${i}`))
        // One at a time, so each pick sees the in-flight counts of the ones before.
        await waitUntil(async () => list.reduce((sum, made) => sum + made.behaviour.held.length, 0) === i + 1, 5_000, 'the request reached an upstream', 5)
      }
      const inFlight = (await statusOf(gateway)).upstreams.map((entry) => entry.inFlight)
      assert.deepEqual(inFlight, expected, `${strategy}: in flight per upstream`)
      assert.deepEqual(list.map((made) => made.behaviour.held.length), expected)
      for (const made of list) for (const release of made.behaviour.held.splice(0)) release()
      assert.ok((await Promise.all(pending)).every((answer) => answer.status === 200))
    }
  })

  it('p2c sends a slow upstream far less than round-robin does, and with its latency-weighted load (the default) almost nothing', async () => {
    const list = [await upstream('p-fast-1'), await upstream('p-fast-2'), await upstream('p-slow', { delayMs: 150 })]
    const shareOfSlow = async (config: Partial<GatewayConfigInput>): Promise<number> => {
      const gateway = await gatewayOver(list.map((made) => ({ upstream: made })), config)
      let slow = 0
      let sent = 0
      let counted = 0
      const worker = async (): Promise<void> => {
        while (sent < WARM_UP_REQUESTS + REQUESTS_FOR_SHARES) {
          // The share is the steady state's: the first requests, sent before the slow upstream's
          // first answer has told the balancer it is slow, are a burst whose size depends on how
          // fast the machine answers, not on the strategy's choices afterwards.
          const inWindow = sent++ >= WARM_UP_REQUESTS
          const upstreamName = (await send(gateway, '/p')).upstream
          if (!inWindow) continue
          counted++
          if (upstreamName === 'p-slow') slow++
        }
      }
      await Promise.all(Array.from({ length: 8 }, worker))
      return slow / counted
    }
    const roundRobin = await shareOfSlow({ strategy: 'round-robin' })
    const inFlight = await shareOfSlow({ strategy: 'p2c', p2c: { load: 'in-flight' } })
    const peakEwma = await shareOfSlow({ strategy: 'p2c' })
    assert.ok(Math.abs(roundRobin - 1 / 3) < 0.02, `round-robin gives the slow upstream a third (${roundRobin})`)
    assert.ok(inFlight < roundRobin / 3, `p2c on in-flight alone gives the slow upstream ${inFlight}, round-robin ${roundRobin}`)
    assert.ok(peakEwma < inFlight / 2 && peakEwma <= 0.02, `p2c on in-flight times latency gives the slow upstream ${peakEwma}, on in-flight alone ${inFlight}`)
  })

  it('key-affinity without a ring: a key always lands on the same upstream, and keys spread', async () => {
    const list = [await upstream('k-a'), await upstream('k-b'), await upstream('k-c')]
    const gateway = await gatewayOver(list.map((made) => ({ upstream: made })), { strategy: 'key-affinity' })
    const homes = new Map<string, string | null>()
    for (let i = 0; i < 30; i++) homes.set(`key-${i}`, (await send(gateway, `/v1/kv/key-${i}`)).upstream)
    for (let i = 0; i < 30; i++) assert.equal((await send(gateway, `/v1/kv/key-${i}?consistency=eventual`)).upstream, homes.get(`key-${i}`))
    assert.equal((await send(gateway, '/v1/kv/key-3/cas', { method: 'POST', body: '{}' })).upstream, homes.get('key-3'), 'cas goes with its key')
    assert.equal(new Set(homes.values()).size, 3, 'thirty keys use all three upstreams')
  })

  it('retries a read on another upstream when one is down, within the retry budget', async () => {
    const down = await upstream('r-down')
    const up = await upstream('r-up')
    await down.close()
    const gateway = await gatewayOver([{ upstream: down }, { upstream: up }], { strategy: 'round-robin', outlier: { consecutiveConnectFailures: 0 } })
    const before = await metricValue(gateway, /^synod_gateway_retries_total (\d+)$/m)
    for (let i = 0; i < 4; i++) {
      const answer = await send(gateway, `/read/${i}`)
      assert.equal(answer.status, 200)
      assert.equal(answer.upstream, 'r-up')
    }
    const retried = await metricValue(gateway, /^synod_gateway_retries_total (\d+)$/m) - before
    const refused = await metricValue(gateway, /^synod_gateway_upstream_errors_total\{upstream="r-down",kind="connect-failure"\} (\d+)$/m)
    assert.ok(refused >= 1, 'round-robin sent reads to the dead upstream')
    assert.equal(retried, refused, 'each read refused by the dead upstream was retried once')
  })

  it('never retries a write: a POST to an unreachable upstream fails with a typed 502, and no other upstream sees it', async () => {
    const down = await upstream('nw-down')
    const up = await upstream('nw-up')
    await down.close()
    const gateway = await gatewayOver([{ upstream: down }, { upstream: up }], { strategy: 'round-robin', outlier: { consecutiveConnectFailures: 0 } })
    const answer = await send(gateway, '/v1/kv/x', { method: 'PUT', body: 'value' })
    assert.equal(answer.status, 502)
    assert.equal(JSON.parse(answer.body).code, 'GATEWAY_UPSTREAM_UNREACHABLE')
    assert.equal(up.requests.length, 0, 'the write was not sent anywhere else')
    const reset = await upstream('nw-reset', { resetOnPost: true })
    const other = await upstream('nw-other')
    const second = await gatewayOver([{ upstream: reset }, { upstream: other }], { strategy: 'round-robin', outlier: { consecutiveConnectFailures: 0 } })
    const resetAnswer = await send(second, '/v1/kv/y/cas', { method: 'POST', body: '{"expected":null,"value":"v"}' })
    assert.equal(resetAnswer.status, 502)
    assert.equal(JSON.parse(resetAnswer.body).code, 'GATEWAY_UPSTREAM_RESET')
    assert.equal(reset.requests.length, 1, 'the upstream got the write, then reset')
    assert.equal(other.requests.length, 0, 'and it was not retried elsewhere: it may have been applied')
  })

  it('ejects an upstream after consecutive 5xx, then brings it back with slow start', async () => {
    const failing = await upstream('e-failing', { status: 500 })
    const good = [await upstream('e-good-1'), await upstream('e-good-2')]
    const gateway = await gatewayOver([{ upstream: failing }, ...good.map((made) => ({ upstream: made }))], {
      strategy: 'round-robin',
      outlier: { consecutive5xx: 3, baseEjectionMs: 400, ejectionPercentMax: 34 },
      slowStart: { windowMs: 10_000, minWeightPercent: 10 }
    })
    const answers: Answer[] = []
    for (let i = 0; i < 12; i++) answers.push(await send(gateway, '/e'))
    assert.equal(answers.filter((answer) => answer.upstream === 'e-failing').length, 3, 'three 500s passed through, then the ejection')
    assert.ok(answers.filter((answer) => answer.upstream === 'e-failing').every((answer) => answer.status === 500), 'a 5xx from an upstream passes through unchanged')
    const ejected = (await statusOf(gateway)).upstreams.find((entry) => entry.id === 'e-failing')
    assert.equal(ejected?.ejected, true)
    assert.equal(ejected?.ejections, 1)
    assert.equal(await metricValue(gateway, /^synod_gateway_ejections_total\{upstream="e-failing"\} (\d+)$/m), 1)
    failing.behaviour.status = 200
    await new Promise((resolve) => setTimeout(resolve, 450))
    const back = (await statusOf(gateway)).upstreams.find((entry) => entry.id === 'e-failing')
    assert.equal(back?.ejected, false)
    assert.equal(back?.serving, true)
    assert.ok(back !== undefined && back.effectiveWeight < back.weight, `slow start: effective weight ${back?.effectiveWeight} below ${back?.weight}`)
  })

  it('active checks take out an upstream whose health fails and panic mode balances over all when too few remain', async () => {
    const list = [await upstream('h-a'), await upstream('h-b'), await upstream('h-c')]
    const gateway = await gatewayOver(list.map((made) => ({ upstream: made })), {
      strategy: 'round-robin',
      healthCheck: { intervalMs: 50, timeoutMs: 500, unhealthyThreshold: 2, healthyThreshold: 2 },
      panicThresholdPercent: 50
    })
    list[0].behaviour.healthStatus = 503
    await waitUntil(async () => (await statusOf(gateway)).upstreams[0].activeHealthy === false, 5_000, 'h-a marked unhealthy', 20)
    const served = new Set<string | null>()
    for (let i = 0; i < 6; i++) served.add((await send(gateway, '/h')).upstream)
    assert.deepEqual([...served].sort(), ['h-b', 'h-c'])
    list[1].behaviour.healthStatus = 503
    await waitUntil(async () => (await statusOf(gateway)).panicking, 5_000, 'panic with 1 of 3 healthy', 20)
    const panicServed = new Set<string | null>()
    for (let i = 0; i < 6; i++) panicServed.add((await send(gateway, '/h')).upstream)
    assert.deepEqual([...panicServed].sort(), ['h-a', 'h-b', 'h-c'], 'panic mode balances over all of them')
    list[0].behaviour.healthStatus = 200
    list[1].behaviour.healthStatus = 200
    await waitUntil(async () => (await statusOf(gateway)).upstreams.every((entry) => entry.serving) && !(await statusOf(gateway)).panicking, 5_000, 'all healthy again', 20)
  })

  it('passes client errors through, propagates request ids, and answers its own errors typed', async () => {
    const made = await upstream('pt', { status: 409 })
    const gateway = await gatewayOver([{ upstream: made }], { proxy: { requestTimeoutMs: 200, requestBodyBytesMax: 1_024 } })
    const conflict = await send(gateway, '/v1/kv/a/cas', { method: 'POST', body: 'the body', headers: { 'x-request-id': 'req-42' } })
    assert.equal(conflict.status, 409)
    assert.equal(conflict.headers.get('x-upstream-own'), 'pt', 'upstream headers pass through')
    assert.equal(JSON.parse(conflict.body).body, 'the body', 'the body reached the upstream')
    assert.equal(conflict.headers.get('x-request-id'), 'req-42')
    assert.equal(made.requests.at(-1)?.headers['x-request-id'], 'req-42', 'the upstream saw the request id')
    assert.ok((made.requests.at(-1)?.headers['x-forwarded-for'] ?? '').includes('127.0.0.1'))
    const generated = await send(gateway, '/g')
    assert.match(generated.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
    assert.equal(made.requests.at(-1)?.headers['x-request-id'], generated.headers.get('x-request-id'))
    const tooLarge = await send(gateway, '/v1/kv/big', { method: 'PUT', body: 'x'.repeat(2_000) })
    assert.equal(tooLarge.status, 413)
    assert.equal(JSON.parse(tooLarge.body).code, 'GATEWAY_BODY_TOO_LARGE')
    made.behaviour.delayMs = 1_000
    const late = await send(gateway, '/late')
    assert.equal(late.status, 504)
    assert.equal(JSON.parse(late.body).code, 'GATEWAY_UPSTREAM_TIMEOUT')
    assert.ok(await metricValue(gateway, /^synod_gateway_errors_total\{code="GATEWAY_UPSTREAM_TIMEOUT"\} (\d+)$/m) >= 1)
  })

  it('forwards the body of a GET that has one (and does not leave the upstream waiting for it)', async () => {
    const made = await upstream('get-body')
    const gateway = await gatewayOver([{ upstream: made }], { proxy: { requestTimeoutMs: 2_000 } })
    const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const request = httpRequest(`${gateway.address()}/with-body`, { method: 'GET', headers: { 'content-type': 'text/plain', 'content-length': '5' } }, (response) => {
        let body = ''
        response.on('data', (chunk: Buffer) => { body += chunk.toString() })
        response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
      })
      request.on('error', reject)
      request.end('hello')
    })
    assert.equal(answer.status, 200)
    assert.equal(JSON.parse(answer.body).body, 'hello')
  })

  it('handles Expect: 100-continue itself, drops headers the Connection header names, and keeps every x-forwarded-for', async () => {
    const made = await upstream('hdr')
    const gateway = await gatewayOver([{ upstream: made }], { outlier: { consecutiveConnectFailures: 1 } })
    const raw = async (method: string, headers: Record<string, string | string[]>, body: string, waitForContinue: boolean): Promise<{ status: number, body: string }> =>
      await new Promise((resolve, reject) => {
        const request = httpRequest(`${gateway.address()}/h`, { method, headers }, (response) => {
          let text = ''
          response.on('data', (chunk: Buffer) => { text += chunk.toString() })
          response.on('end', () => { resolve({ status: response.statusCode ?? 0, body: text }) })
        })
        request.on('error', reject)
        if (waitForContinue) request.on('continue', () => { request.end(body) })
        else request.end(body)
      })
    for (let i = 0; i < 3; i++) {
      const answer = await raw('PUT', { expect: '100-continue', 'content-length': '5' }, 'hello', true)
      assert.equal(answer.status, 200, 'the upload went through')
      assert.equal(JSON.parse(answer.body).body, 'hello')
    }
    assert.equal(made.requests.at(-1)?.headers.expect, undefined, 'the upstream is not asked to continue')
    assert.equal((await statusOf(gateway)).upstreams[0].ejected, false, 'and nothing counted against it')
    await raw('GET', { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'x-forwarded-for': ['1.1.1.1', '2.2.2.2'] }, '', false)
    const seen = made.requests.at(-1)?.headers
    assert.equal(seen?.['x-hop'], undefined, 'a header the Connection header names stays on this hop')
    assert.equal(seen?.['x-forwarded-for'], '1.1.1.1, 2.2.2.2, 127.0.0.1')
  })

  it('bounds the whole exchange by requestTimeoutMs, however steadily the upstream trickles', async () => {
    const made = await upstream('trickle')
    const gateway = await gatewayOver([{ upstream: made }], { proxy: { requestTimeoutMs: 500 } })
    const started = Date.now()
    const answer = await send(gateway, '/trickle')
    assert.equal(answer.status, 504)
    assert.equal(JSON.parse(answer.body).code, 'GATEWAY_UPSTREAM_TIMEOUT')
    assert.ok(Date.now() - started < 1_500, `answered after ${Date.now() - started} ms, not after the 2 s trickle`)
    await waitUntil(async () => (await statusOf(gateway)).inFlight === 0, 2_000, 'nothing left in flight', 20)
  })

  it('answers 503 GATEWAY_NO_UPSTREAM when nothing serves and panic mode is off', async () => {
    const made = await upstream('none', { healthStatus: 500 })
    const gateway = await gatewayOver([{ upstream: made }], { healthCheck: { intervalMs: 30, unhealthyThreshold: 1 }, panicThresholdPercent: 0 })
    await waitUntil(async () => !(await statusOf(gateway)).upstreams[0].serving, 5_000, 'the only upstream is out', 20)
    const answer = await send(gateway, '/n')
    assert.equal(answer.status, 503)
    assert.equal(JSON.parse(answer.body).code, 'GATEWAY_NO_UPSTREAM')
  })
})
