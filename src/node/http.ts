/**
 * The per-node HTTP API (fastify). Errors are JSON `{code, message, details}`; a `SynodError`'s
 * code picks the status, anything unexpected is a 500 with code `HTTP_INTERNAL` and is logged.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { SynodError, type Logger } from '../core/index.js'

export interface StatusSource {
  health (): { status: 'ok', nodeId: string }
  status (): object
}

const statusByCode: Record<string, number> = {
  CORE_CONFIG_INVALID: 400,
  CORE_DECODE_FAILED: 400,
  CORE_SCHEMA_MISMATCH: 400,
  CORE_BAD_LINK_FAULTS: 400,
  CORE_DISK_CORRUPT: 500,
  CORE_DISK_CLOSED: 503,
  CORE_DISK_KEY_TOO_LARGE: 400,
  CORE_DISK_VALUE_TOO_LARGE: 400,
  ADMIN_UNAUTHORIZED: 401,
  TRANSPORT_NOT_CONNECTED: 503,
  NET_UNREACHABLE: 503,
  NET_BAD_REQUEST: 400,
  NET_NOT_A_MEMBER: 404,
  NET_TOPOLOGY_INVALID: 400,
  MEMBERSHIP_NO_QUORUM: 503,
  MEMBERSHIP_UNKNOWN_MEMBER: 404,
  LEDGER_MALFORMED: 400,
  LEDGER_BAD_SIGNATURE: 400,
  LEDGER_WRONG_CHAIN: 400,
  LEDGER_TX_FEE_TOO_LOW: 400,
  LEDGER_TX_TOO_LARGE: 413,
  LEDGER_TX_DUPLICATE: 409,
  LEDGER_TX_NONCE_TOO_LOW: 409,
  LEDGER_TX_UNDERPRICED: 409,
  LEDGER_TX_NONCE_GAP: 422,
  LEDGER_TX_INSUFFICIENT_FUNDS: 422,
  LEDGER_TX_SENDER_LIMIT: 429,
  LEDGER_TX_POOL_FULL: 503,
  STORE_NO_QUORUM: 503,
  STORE_TIMEOUT: 504,
  STORE_OVERLOADED: 429,
  STORE_CAS_MISMATCH: 409,
  STORE_KEY_TOO_LARGE: 400,
  STORE_VALUE_TOO_LARGE: 413,
  STORE_BAD_REQUEST: 400,
  STORE_UNSUPPORTED_CONSISTENCY: 400,
  STORE_DEPENDENCY_UNAVAILABLE: 503,
  STORE_SESSION_INVALID: 400
}

export function httpStatusFor (code: string): number {
  return statusByCode[code] ?? (code.endsWith('_NOT_FOUND') ? 404 : 500)
}

export function createApiServer (source: StatusSource, metrics: Registry, log: Logger): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1_048_576 })
  app.get('/v1/health', async () => source.health())
  app.get('/v1/status', async () => source.status())
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.contentType)
    return await metrics.metrics()
  })
  // The same metrics as JSON (prom-client's own form), for the dashboard: no text parsing needed.
  app.get('/v1/metrics', async () => await metrics.getMetricsAsJSON())
  app.setNotFoundHandler(async (request, reply) => {
    await reply.code(404).send({ code: 'HTTP_NOT_FOUND', message: `no route ${request.method} ${request.url}`, details: {} })
  })
  app.setErrorHandler(async (error, request, reply) => {
    if (error instanceof SynodError) {
      await reply.code(httpStatusFor(error.code)).send(error.toJSON())
      return
    }
    const statusCode = typeof (error as { statusCode?: unknown }).statusCode === 'number' ? (error as { statusCode: number }).statusCode : 500
    if (statusCode >= 500) log.error({ url: request.url, reason: (error as Error).message }, 'request failed')
    const code = statusCode >= 500 ? 'HTTP_INTERNAL' : statusCode === 413 ? 'HTTP_BODY_TOO_LARGE' : 'HTTP_BAD_REQUEST'
    await reply.code(statusCode).send({ code, message: (error as Error).message, details: {} })
  })
  return app
}
