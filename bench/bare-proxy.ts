/**
 * The floor for a reverse proxy on Node.js, for the gateway bench: node's `http` server in,
 * undici dispatch to keep-alive pools out, round-robin, answers sent whole; no health, no
 * metrics, no retries, no request ids, no limits. Not a product: a yardstick that tells how
 * much of the gap to nginx is the runtime and how much is the gateway's own work.
 *
 *   node dist/bench/bare-proxy.js --port P --upstream URL [--upstream URL ...]
 *
 * Prints `listening` once it accepts connections; stops on SIGTERM or SIGINT.
 */
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'
import { Pool, type Dispatcher } from 'undici'

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string', multiple: true } }, strict: true })
const port = Number(values.port)
const pools = (values.upstream ?? []).map((url) => new Pool(url, { connections: 256 }))
if (!Number.isInteger(port) || pools.length === 0) {
  process.stderr.write('usage: bare-proxy --port P --upstream URL [--upstream URL ...]\n')
  process.exit(2)
}
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding'])
let next = 0

const server = createServer((request, response) => {
  const pool = pools[next++ % pools.length] as Pool
  let status = 0
  let headers: string[] = []
  const chunks: Buffer[] = []
  pool.dispatch({ method: (request.method ?? 'GET') as Dispatcher.HttpMethod, path: request.url ?? '/', headers: request.rawHeaders }, {
    onConnect () {},
    onError () { response.writeHead(502); response.end() },
    onHeaders (statusCode: number, raw: Buffer[]) {
      status = statusCode
      headers = []
      for (let index = 0; index < raw.length; index += 2) {
        const name = (raw[index] as Buffer).toString('latin1')
        if (!HOP_BY_HOP.has(name.toLowerCase())) headers.push(name, (raw[index + 1] as Buffer).toString('latin1'))
      }
      return true
    },
    onData (chunk: Buffer) { chunks.push(chunk); return true },
    onComplete () {
      response.writeHead(status, headers)
      response.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
    }
  })
})
server.listen(port, '127.0.0.1', () => { process.stdout.write('listening\n') })
const stop = (): void => { server.close(); void Promise.all(pools.map(async (pool) => { await pool.close() })).then(() => process.exit(0)) }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
