/**
 * A stand-in for a Synod node's HTTP API, for the gateway bench: the same runtime (Node.js
 * `node:http`, keep-alive), none of the work, so the figures measure the proxies in front of it.
 *
 *   node dist/bench/gateway-upstream.js --port P --name N [--delay-ms D]
 *
 * `GET /v1/health` answers 200 with a small JSON body at once (health checks never wait); any
 * other request answers 200 with a fixed JSON body of about 100 bytes naming this upstream,
 * after D ms when `--delay-ms` is given (a slow node). `GET /v1/upstream/stats` answers
 * `{"upstream":N,"requests":COUNT}`, COUNT being the answers of the second kind so far: the bench
 * asks each upstream directly, before and after a measured run, to see how a proxy spread its
 * requests. Prints `listening` once it accepts connections; stops on SIGTERM or SIGINT.
 */
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

/** The size the answer body is padded to. */
const BODY_BYTES = 100

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    name: { type: 'string' },
    'delay-ms': { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' }
  },
  strict: true
})

const port = Number(values.port)
const name = values.name ?? ''
const delayMs = Number(values['delay-ms'])
if (!Number.isInteger(port) || port <= 0 || port > 65_535 || name === '' || !Number.isFinite(delayMs) || delayMs < 0) {
  process.stderr.write('usage: gateway-upstream --port P --name N [--delay-ms D] [--host H]\n')
  process.exit(2)
}

function jsonBody (value: Record<string, unknown>, bytes: number): Buffer {
  const text = JSON.stringify({ ...value, pad: '' })
  return Buffer.from(JSON.stringify({ ...value, pad: 'x'.repeat(Math.max(0, bytes - text.length)) }))
}

const answer = jsonBody({ upstream: name, delayMs, ok: true }, BODY_BYTES)
const health = Buffer.from(JSON.stringify({ status: 'ok', upstream: name }))
const headersFor = (body: Buffer): Record<string, string | number> => ({ 'content-type': 'application/json', 'content-length': body.length })
const answerHeaders = headersFor(answer)
const healthHeaders = headersFor(health)

// Proxies keep their connections open for long: never time them out mid-benchmark.
let served = 0

const server = createServer({ keepAliveTimeout: 120_000, headersTimeout: 0, requestTimeout: 0 }, (request, response) => {
  request.resume()
  if (request.url === '/v1/health') {
    response.writeHead(200, healthHeaders)
    response.end(health)
    return
  }
  if (request.url === '/v1/upstream/stats') {
    const stats = Buffer.from(JSON.stringify({ upstream: name, requests: served }))
    response.writeHead(200, headersFor(stats))
    response.end(stats)
    return
  }
  served++
  if (delayMs > 0) {
    setTimeout(() => {
      response.writeHead(200, answerHeaders)
      response.end(answer)
    }, delayMs)
    return
  }
  response.writeHead(200, answerHeaders)
  response.end(answer)
})
server.listen(port, values.host, () => { process.stdout.write(`listening on http://${values.host ?? ''}:${port} as ${name}${delayMs > 0 ? ` (delay ${delayMs} ms)` : ''}\n`) })
server.on('error', (error) => {
  process.stderr.write(`gateway-upstream ${name}: ${error.message}\n`)
  process.exit(1)
})

const stop = (): void => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
  setTimeout(() => process.exit(0), 1_000).unref()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
