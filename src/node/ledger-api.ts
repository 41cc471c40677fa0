/**
 * The ledger's HTTP routes and Prometheus metrics:
 * `POST /v1/tx`, `GET /v1/tx/:hash`, `GET /v1/blocks/:heightOrHash`, `GET /v1/chain`,
 * `GET /v1/accounts/:address[?proof=true]`.
 */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { SynodError } from '../core/index.js'
import {
  ADDRESS_PATTERN, HASH_HEX_PATTERN, LedgerError, accountToJson, blockToJson, txFromJson,
  type LedgerService, type LedgerStats
} from '../ledger/index.js'
import type { MinerPool } from './miner.js'
import { collectedCounter, collectedGauge } from './metrics.js'

class LedgerNotFound extends SynodError<'LEDGER_NOT_FOUND'> {}

export function registerLedgerRoutes (api: FastifyInstance, ledger: LedgerService): void {
  api.post('/v1/tx', async (request, reply) => {
    const result = ledger.submit(txFromJson(request.body))
    await reply.code(202).send({ hash: result.hash, status: 'pending' })
  })

  api.get<{ Params: { hash: string } }>('/v1/tx/:hash', async (request) => {
    const { hash } = request.params
    if (!HASH_HEX_PATTERN.test(hash)) throw new LedgerError('LEDGER_MALFORMED', 'a transaction hash is 64 lowercase hex digits')
    const status = ledger.txStatus(hash)
    if (status.status === 'unknown') throw new LedgerNotFound('LEDGER_NOT_FOUND', `no pending or included transaction ${hash}`)
    return { hash, ...status, finalized: null }
  })

  api.get<{ Params: { id: string } }>('/v1/blocks/:id', async (request) => {
    const chain = ledger.chain()
    const { id } = request.params
    const hash = /^\d{1,15}$/.test(id) ? chain.hashAt(Number(id)) : HASH_HEX_PATTERN.test(id) ? id : undefined
    if (hash === undefined && !HASH_HEX_PATTERN.test(id) && !/^\d{1,15}$/.test(id)) throw new LedgerError('LEDGER_MALFORMED', 'a block is named by its height or its 64-hex-digit hash')
    const block = hash === undefined ? undefined : chain.block(hash)
    if (hash === undefined || block === undefined) throw new LedgerNotFound('LEDGER_NOT_FOUND', `no block ${id}`)
    const stored = chain.stored(hash)
    return { ...blockToJson(block, hash), mainChain: chain.isOnMainChain(hash), confirmations: chain.isOnMainChain(hash) ? chain.head().header.height - block.header.height + 1 : 0, weight: stored?.weight.toString() ?? null }
  })

  api.get('/v1/chain', async () => {
    const chain = ledger.chain()
    const head = chain.head()
    const pool = ledger.pool().stats()
    return {
      chainId: head.header.chainId,
      engine: chain.engine.name,
      genesis: chain.genesisHash,
      head: { hash: head.hash, height: head.header.height, timeMs: head.header.timeMs, stateRoot: head.header.stateRoot },
      work: head.weight.toString(),
      /** Proof of work has no finality: a block is only ever more and more confirmed. */
      finalizedHeight: null,
      mempool: { size: pool.size, bytes: pool.bytes },
      stats: ledger.stats()
    }
  })

  api.get<{ Params: { address: string }, Querystring: { proof?: string } }>('/v1/accounts/:address', async (request) => {
    const { address } = request.params
    if (!ADDRESS_PATTERN.test(address)) throw new LedgerError('LEDGER_MALFORMED', 'an address is 40 lowercase hex digits')
    const chain = ledger.chain()
    const state = chain.state()
    const head = chain.head()
    const body = { address, ...accountToJson(state.get(address)), exists: state.has(address), height: head.header.height, block: head.hash, stateRoot: head.header.stateRoot }
    return request.query.proof === 'true' ? { ...body, proof: state.proofOf(address) } : body
  })
}

type CounterField = Exclude<keyof LedgerStats, 'deepestReorg'>

export function registerLedgerMetrics (metrics: Registry, ledger: LedgerService, miner: MinerPool | null): void {
  const counters: Array<[CounterField, string, string]> = [
    ['blocksMined', 'synod_ledger_blocks_mined_total', 'Blocks this node mined that joined its chain.'],
    ['blocksAccepted', 'synod_ledger_blocks_accepted_total', 'Blocks that joined the main chain here.'],
    ['blocksRejected', 'synod_ledger_blocks_rejected_total', 'Invalid blocks refused (their sender is scored down).'],
    ['reorgs', 'synod_ledger_reorgs_total', 'Reorganisations to a heavier branch.'],
    ['txsAccepted', 'synod_ledger_txs_accepted_total', 'Transactions admitted to the mempool.'],
    ['txsRejected', 'synod_ledger_txs_rejected_total', 'Transactions refused (see the mempool codes).'],
    ['syncRequests', 'synod_ledger_sync_requests_total', 'Block requests sent to peers to catch up.'],
    ['syncBlocksReceived', 'synod_ledger_sync_blocks_received_total', 'Blocks received in answer to sync requests.'],
    ['invalidUnattributed', 'synod_ledger_invalid_unattributed_total', 'Invalid blocks or transactions relayed by others: counted, their origin not penalized.']
  ]
  const stats = (): LedgerStats => ledger.stats()
  for (const [field, name, help] of counters) collectedCounter(metrics, name, help, () => stats()[field])
  collectedGauge(metrics, { name: 'synod_ledger_height', help: 'Height of the head block.', read: () => ledger.chain().head().header.height })
  collectedGauge(metrics, { name: 'synod_ledger_deepest_reorg_blocks', help: 'Blocks reverted by the deepest reorganisation so far.', read: () => stats().deepestReorg })
  collectedGauge(metrics, { name: 'synod_ledger_mempool_txs', help: 'Transactions waiting in the mempool.', read: () => ledger.pool().stats().size })
  collectedGauge(metrics, { name: 'synod_ledger_mempool_bytes', help: 'Bytes of the transactions in the mempool.', read: () => ledger.pool().stats().bytes })
  collectedGauge(metrics, { name: 'synod_ledger_orphan_blocks', help: 'Blocks waiting for their parent.', read: () => ledger.chain().orphanCount() })
  if (miner !== null) {
    collectedCounter(metrics, 'synod_miner_hashes_total', 'Proof-of-work hashes tried, all miner threads together.', () => miner.stats().hashes)
    collectedGauge(metrics, { name: 'synod_miner_threads', help: 'Miner worker threads.', read: () => miner.threads })
  }
}
