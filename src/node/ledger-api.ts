/**
 * The ledger's HTTP routes and Prometheus metrics:
 * `POST /v1/tx`, `POST /v1/txs` (a batch), `GET /v1/tx/:hash`, `GET /v1/blocks/:heightOrHash`, `GET /v1/chain`,
 * `GET /v1/accounts/:address[?proof=true]`, `GET /v1/validators` (PoS and DPoS).
 */
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { SynodError, toHex } from '../core/index.js'
import {
  ADDRESS_PATTERN, HASH_HEX_PATTERN, LedgerError, accountToJson, blockToJson, decodeLedgerBytes, toJsonValue, txFromJson,
  type Block, type ChainStore, type DposService, type LedgerService, type LedgerStats, type PosService, type PosStats, type StakeRecord, type StoredHeader
} from '../ledger/index.js'
import type { MinerPool } from './miner.js'
import { collectedCounter, collectedGauge } from './metrics.js'

class LedgerNotFound extends SynodError<'LEDGER_NOT_FOUND'> {}

/** The content type of a transaction, or a batch of them, as canonical CBOR bytes. */
export const CBOR_CONTENT_TYPE = 'application/cbor'

/** Transactions one `POST /v1/txs` may carry (the body limit of 1 MiB holds about 2 500 transfers). */
export const TXS_PER_REQUEST_MAX = 1_000

/**
 * The block `hash` names, with its transactions in full, or (`hashes`) with only their hashes,
 * read from the stored bytes; undefined when no such block is stored.
 */
function blockInForm (chain: ChainStore, hash: string, stored: StoredHeader | undefined, form: 'full' | 'hashes'): { block: Block, txHashes?: string[] } | undefined {
  if (form === 'full') {
    const block = chain.block(hash)
    return block === undefined ? undefined : { block }
  }
  const txHashes = chain.blockTxHashes(hash)
  return stored === undefined || txHashes === undefined ? undefined : { block: { header: stored.header, txs: [] }, txHashes }
}

/** A candidate's standing: in the active set, waiting (registered, not elected), jailed, or jailed for good. */
function candidateStatus (record: StakeRecord, active: boolean): 'active' | 'candidate' | 'jailed' | 'tombstoned' {
  const candidate = record.candidate as NonNullable<StakeRecord['candidate']>
  if (candidate.tombstoned) return 'tombstoned'
  if (candidate.jailedUntil !== 0) return 'jailed'
  return active ? 'active' : 'candidate'
}

export function validatorsToJson (ledger: LedgerService): object {
  const chain = ledger.chain()
  const state = chain.state()
  const schedule = state.producerSchedule()
  // PoS: the validator set; DPoS: the producers of the current round.
  const active = chain.engine.name === 'dpos' ? (schedule?.producers ?? []) : state.validators()
  const powerOf = new Map(active.map((validator) => [validator.address, validator.power]))
  const total = active.reduce((sum, validator) => sum + validator.power, 0n)
  const candidates = state.stakeEntries()
    .filter(([, record]) => record.candidate !== null)
    .map(([address, record]) => {
      const candidate = record.candidate as NonNullable<StakeRecord['candidate']>
      return {
        address,
        publicKey: toHex(candidate.publicKey),
        status: candidateStatus(record, powerOf.has(address)),
        stake: record.bonded.toString(),
        unbonding: record.unbonding.map((entry) => ({ amount: entry.amount.toString(), releaseHeight: entry.releaseHeight })),
        power: (powerOf.get(address) ?? 0n).toString(),
        votes: record.votesReceived.toString(),
        jailedUntil: candidate.jailedUntil === 0 ? null : candidate.jailedUntil,
        missedInWindow: candidate.missed,
        slashes: candidate.slashes.map((slash) => ({ ...slash, amount: slash.amount.toString() }))
      }
    })
    .sort((a, b) => (BigInt(b.stake) > BigInt(a.stake) ? 1 : BigInt(b.stake) < BigInt(a.stake) ? -1 : a.address < b.address ? -1 : 1))
  return {
    engine: chain.engine.name,
    height: chain.head().header.height,
    finalizedHeight: chain.finalizedHeight(),
    totalPower: total.toString(),
    active: active.length,
    ...(schedule === null ? {} : { round: schedule.round, schedule: schedule.producers.map((producer) => producer.address) }),
    validators: candidates
  }
}

export function registerLedgerRoutes (api: FastifyInstance, ledger: LedgerService, pos: PosService | null = null, dpos: DposService | null = null): void {
  const consensus = pos ?? dpos
  api.get('/v1/validators', async () => {
    if (ledger.chain().state().staking === null) throw new LedgerNotFound('LEDGER_NOT_FOUND', `the ${ledger.chain().engine.name} engine has no validators`)
    return validatorsToJson(ledger)
  })

  // Transactions come as JSON (amounts as decimal strings, bytes as hex) or, with
  // `Content-Type: application/cbor`, as their canonical bytes: what a wallet signs, gossip and
  // blocks carry (a raw transaction, as Ethereum's eth_sendRawTransaction or CometBFT's
  // broadcast_tx take one). A batch in CBOR is an array of those byte strings.
  const submitJson = (candidate: unknown): { hash: string } => ledger.submit(txFromJson(candidate))
  const submitCbor = (candidate: unknown): { hash: string } => {
    if (!(candidate instanceof Uint8Array)) throw new LedgerError('LEDGER_MALFORMED', 'a CBOR batch holds byte strings, each a transaction\'s canonical bytes')
    return ledger.submitBytes(candidate)
  }
  void api.register(async (scope) => {
    scope.addContentTypeParser(CBOR_CONTENT_TYPE, { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

    scope.post('/v1/tx', async (request, reply) => {
      const body = request.body
      const result = (body instanceof Uint8Array ? submitCbor : submitJson)(body)
      await reply.code(202).send({ hash: result.hash, status: 'pending' })
    })

    // A batch of transactions in one request (as JSON-RPC batches): each is checked and pooled on
    // its own; the answer lists, in order, each one's hash or its refusal.
    scope.post('/v1/txs', async (request, reply) => {
      const body = request.body
      const batch = body instanceof Uint8Array ? decodeLedgerBytes(body, 'a CBOR batch\'s') : body
      const submitOne = body instanceof Uint8Array ? submitCbor : submitJson
      if (!Array.isArray(batch) || batch.length === 0) throw new LedgerError('LEDGER_MALFORMED', 'a batch is a non-empty array of transactions (JSON objects, or CBOR byte strings)')
      if (batch.length > TXS_PER_REQUEST_MAX) throw new LedgerError('LEDGER_MALFORMED', `a batch of ${batch.length} transactions, limit ${TXS_PER_REQUEST_MAX}`)
      const results = batch.map((candidate: unknown) => {
        try {
          return { hash: submitOne(candidate).hash, status: 'pending' }
        } catch (error) {
          if (!(error instanceof SynodError)) throw error
          return { status: 'refused', code: error.code, message: error.message }
        }
      })
      await reply.code(202).send({ results, accepted: results.filter((result) => result.status === 'pending').length })
    })
  })

  api.get<{ Params: { hash: string } }>('/v1/tx/:hash', async (request) => {
    const { hash } = request.params
    if (!HASH_HEX_PATTERN.test(hash)) throw new LedgerError('LEDGER_MALFORMED', 'a transaction hash is 64 lowercase hex digits')
    const status = ledger.txStatus(hash)
    if (status.status === 'unknown') throw new LedgerNotFound('LEDGER_NOT_FOUND', `no pending or included transaction ${hash}`)
    const finalizedHeight = ledger.chain().finalizedHeight()
    return { hash, ...status, finalized: finalizedHeight === null ? null : status.status === 'included' && status.height <= finalizedHeight }
  })

  api.get<{ Params: { id: string }, Querystring: { txs?: string } }>('/v1/blocks/:id', async (request) => {
    const chain = ledger.chain()
    const { id } = request.params
    // ?txs=hashes: the transactions' hashes only (as Ethereum's getBlockByNumber without full
    // transactions): what a watcher of the chain needs, at a hash a transaction instead of a decode.
    const txsForm = request.query.txs ?? 'full'
    if (txsForm !== 'full' && txsForm !== 'hashes') throw new LedgerError('LEDGER_MALFORMED', `txs is full or hashes, not ${txsForm}`)
    const byHeight = /^\d{1,15}$/.test(id)
    if (!byHeight && !HASH_HEX_PATTERN.test(id)) throw new LedgerError('LEDGER_MALFORMED', 'a block is named by its height or its 64-hex-digit hash')
    const hash = byHeight ? chain.hashAt(Number(id)) : id
    const stored = hash === undefined ? undefined : chain.stored(hash)
    const found = hash === undefined ? undefined : blockInForm(chain, hash, stored, txsForm)
    if (hash === undefined || found === undefined) throw new LedgerNotFound('LEDGER_NOT_FOUND', `no block ${id}`)
    const { block, txHashes } = found
    const finalizedHeight = chain.finalizedHeight()
    const certificate = pos?.certificate(hash)
    return {
      ...blockToJson(block, hash),
      ...(txHashes === undefined ? {} : { txs: txHashes }),
      mainChain: chain.isOnMainChain(hash),
      confirmations: chain.isOnMainChain(hash) ? chain.head().header.height - block.header.height + 1 : 0,
      weight: stored?.weight.toString() ?? null,
      finalized: finalizedHeight === null ? null : chain.isOnMainChain(hash) && block.header.height <= finalizedHeight,
      ...(certificate === undefined ? {} : { commit: toJsonValue(certificate) })
    }
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
      /** Null for proof of work, which has no finality: a block is only ever more and more confirmed. */
      finalizedHeight: chain.finalizedHeight(),
      mempool: { size: pool.size, bytes: pool.bytes },
      stats: ledger.stats(),
      ...(consensus === null ? {} : { consensus: consensus.status() })
    }
  })

  api.get<{ Params: { address: string }, Querystring: { proof?: string } }>('/v1/accounts/:address', async (request) => {
    const { address } = request.params
    if (!ADDRESS_PATTERN.test(address)) throw new LedgerError('LEDGER_MALFORMED', 'an address is 40 lowercase hex digits')
    const chain = ledger.chain()
    const state = chain.state()
    const head = chain.head()
    const stake = state.stakeOf(address)
    const staking = state.staking === null ? {} : { stake: { bonded: stake.bonded.toString(), unbonding: stake.unbonding.map((entry) => ({ amount: entry.amount.toString(), releaseHeight: entry.releaseHeight })), votes: stake.votes, candidate: stake.candidate !== null } }
    const body = { address, ...accountToJson(state.get(address)), ...staking, exists: state.has(address), height: head.header.height, block: head.hash, stateRoot: head.header.stateRoot }
    return request.query.proof === 'true' ? { ...body, proof: state.proofOf(address) } : body
  })
}

type CounterField = Exclude<keyof LedgerStats, 'deepestReorg'>


export function registerLedgerMetrics (metrics: Registry, ledger: LedgerService, miner: MinerPool | null, pos: PosService | null = null, dpos: DposService | null = null): void {
  const counters: Array<[CounterField, string, string]> = [
    ['blocksMined', 'synod_ledger_blocks_mined_total', 'Blocks this node mined that joined its chain.'],
    ['blocksAccepted', 'synod_ledger_blocks_accepted_total', 'Blocks that joined the main chain here.'],
    ['blocksRejected', 'synod_ledger_blocks_rejected_total', 'Invalid blocks refused (their sender is scored down).'],
    ['reorgs', 'synod_ledger_reorgs_total', 'Reorganisations to a heavier branch.'],
    ['txsAccepted', 'synod_ledger_txs_accepted_total', 'Transactions admitted to the mempool.'],
    ['txsRejected', 'synod_ledger_txs_rejected_total', 'Transactions refused (see the mempool codes).'],
    ['syncRequests', 'synod_ledger_sync_requests_total', 'Block requests sent to peers to catch up.'],
    ['syncBlocksReceived', 'synod_ledger_sync_blocks_received_total', 'Blocks received in answer to sync requests.'],
    ['invalidUnattributed', 'synod_ledger_invalid_unattributed_total', 'Invalid blocks or transactions relayed by others: counted, their origin not penalized.'],
    ['signaturesSkipped', 'synod_ledger_signatures_skipped_total', 'Transactions whose signatures were not verified again (the same bytes verified before, in the pool\'s intake or a block).'],
    ['signaturesVerified', 'synod_ledger_signatures_verified_total', 'Transaction signatures verified (once per transaction\'s bytes, by the intake or a block, whichever meets them first).'],
    ['intakeDropped', 'synod_ledger_intake_dropped_total', 'Gossiped transactions dropped because the intake queue was full (intakeQueueTxsMax).'],
    ['compactBlocksAssembled', 'synod_ledger_compact_blocks_assembled_total', 'Compact blocks (PoS proposals: header and transaction hashes) put together from the pool and fetched transactions.'],
    ['compactTxsFromIntake', 'synod_ledger_compact_txs_from_intake_total', 'Transactions a compact block named that still waited in the intake queue, checked out of turn for it.'],
    ['compactTxsFetched', 'synod_ledger_compact_txs_fetched_total', 'Transactions a compact block named that this node lacked, fetched from the peer that sent it.'],
    ['compactBlocksUnavailable', 'synod_ledger_compact_blocks_unavailable_total', 'Compact blocks given up because the missing transactions did not come (in time, or at all).']
  ]
  const stats = (): LedgerStats => ledger.stats()
  for (const [field, name, help] of counters) collectedCounter(metrics, name, help, () => stats()[field])
  collectedGauge(metrics, { name: 'synod_ledger_height', help: 'Height of the head block.', read: () => ledger.chain().head().header.height })
  collectedGauge(metrics, { name: 'synod_ledger_deepest_reorg_blocks', help: 'Blocks reverted by the deepest reorganisation so far.', read: () => stats().deepestReorg })
  collectedGauge(metrics, { name: 'synod_ledger_mempool_txs', help: 'Transactions waiting in the mempool.', read: () => ledger.pool().stats().size })
  collectedGauge(metrics, { name: 'synod_ledger_mempool_bytes', help: 'Bytes of the transactions in the mempool.', read: () => ledger.pool().stats().bytes })
  collectedGauge(metrics, { name: 'synod_ledger_intake_queue_txs', help: 'Gossiped transactions waiting for their checks.', read: () => ledger.intakeQueued() })
  collectedGauge(metrics, { name: 'synod_ledger_orphan_blocks', help: 'Blocks waiting for their parent.', read: () => ledger.chain().orphanCount() })
  collectedGauge(metrics, { name: 'synod_ledger_undo_records', help: 'Main-chain blocks whose undo records are kept for reorganisations (none at or below the final height).', read: () => ledger.chain().undoRecords() })
  collectedGauge(metrics, { name: 'synod_ledger_finalized_height', help: 'Height up to which the chain is final (-1 for an engine without finality).', read: () => ledger.chain().finalizedHeight() ?? -1 })
  if (pos !== null) {
    const posCounters: Array<[keyof PosStats & ('proposalsMade' | 'votesSigned' | 'commits' | 'extraRounds' | 'signRefusals' | 'invalidProposals' | 'invalidMessages' | 'equivocationsSeen' | 'evidenceSubmitted' | 'statementSignaturesVerified' | 'statementSignaturesRemembered'), string, string]> = [
      ['proposalsMade', 'synod_pos_proposals_total', 'Proposals this validator signed.'],
      ['votesSigned', 'synod_pos_votes_signed_total', 'Prevotes and precommits this validator signed.'],
      ['commits', 'synod_pos_commits_total', 'Blocks this node committed from its own view of the votes.'],
      ['extraRounds', 'synod_pos_extra_rounds_total', 'Rounds after the first of a height: failed rounds.'],
      ['signRefusals', 'synod_pos_sign_refusals_total', 'Signatures refused because they would go back on the last signed step.'],
      ['invalidProposals', 'synod_pos_invalid_proposals_total', 'Proposals that failed validation (their proposer is scored down).'],
      ['invalidMessages', 'synod_pos_invalid_messages_total', 'Consensus messages refused: bad bytes, bad signature, not a validator, wrong proposer.'],
      ['equivocationsSeen', 'synod_pos_equivocations_total', 'Validators seen signing two values for one step.'],
      ['evidenceSubmitted', 'synod_pos_evidence_submitted_total', 'Evidence transactions this node submitted.'],
      ['statementSignaturesVerified', 'synod_pos_signatures_verified_total', 'Validator signatures (votes, proposals, seals, certificates) this node verified.'],
      ['statementSignaturesRemembered', 'synod_pos_signatures_remembered_total', 'Validator signatures met again after this node verified them (a copy, a replayed message, a vote inside a certificate): not verified twice.']
    ]
    for (const [field, name, help] of posCounters) collectedCounter(metrics, name, help, () => pos.stats()[field])
    collectedGauge(metrics, { name: 'synod_pos_round', help: 'The round of the height in progress.', read: () => pos.stats().round })
  }
  if (dpos !== null) {
    collectedCounter(metrics, 'synod_dpos_blocks_produced_total', 'Blocks this producer made in its slots.', () => dpos.stats().blocksProduced)
    collectedCounter(metrics, 'synod_dpos_double_signs_total', 'Producers seen signing two blocks for one slot.', () => dpos.stats().doubleSignsSeen)
    collectedCounter(metrics, 'synod_dpos_evidence_submitted_total', 'Evidence transactions this node submitted.', () => dpos.stats().evidenceSubmitted)
  }
  collectedCounter(metrics, 'synod_ledger_below_final_refused_total', 'Heavier branches not taken because they fork below the final height.', () => ledger.chain().counters.belowFinalRefused)
  collectedCounter(metrics, 'synod_ledger_checked_blocks_reused_total', 'Blocks added to the head from the result of their check (PoS: the proposal a validator voted on), not checked and executed again.', () => ledger.chain().counters.checkedReused)
  if (miner !== null) {
    collectedCounter(metrics, 'synod_miner_hashes_total', 'Proof-of-work hashes tried, all miner threads together.', () => miner.stats().hashes)
    collectedGauge(metrics, { name: 'synod_miner_threads', help: 'Miner worker threads.', read: () => miner.threads })
  }
}
