/** The ledger's HTTP routes over a one-node simulated PoW chain: answers, typed refusals, proofs a client checks. */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { encode as cborEncode } from 'cborg'
import { decodeCanonical, encodeCanonical, fromHex, silentLogger, emptyTransportStats, type Transport } from '../../src/core/index.js'
import { addressFromPublicKey, encodeTx, txHash, txToJson, verifyAccountProof, type AccountProof, type SignedTx } from '../../src/ledger/index.js'
import { createApiServer, createMetrics } from '../../src/node/index.js'
import { CBOR_CONTENT_TYPE, registerLedgerMetrics, registerLedgerRoutes } from '../../src/node/ledger-api.js'
import { makeLedgerSim } from '../support/ledger-sim.js'
import { testKeys, transfer } from '../support/pow-chain.js'

const transport: Transport = { self: 'me', start: async () => {}, stop: async () => {}, send: () => {}, links: () => [], stats: () => emptyTransportStats(), refuse: () => {}, refusals: () => [] }

describe('ledger HTTP API', () => {
  const sim = makeLedgerSim({ nodes: 1, seed: 3 })
  sim.kernel.runFor(5_000)
  const ledger = sim.ledger(sim.members[0] as string)
  const metrics = createMetrics(transport)
  const app = createApiServer({ health: () => ({ status: 'ok', nodeId: 'me' }), status: () => ({}) }, metrics, silentLogger)
  registerLedgerRoutes(app, ledger)
  registerLedgerMetrics(metrics, ledger, null)
  after(async () => { await app.close() })
  const body = (tx: ReturnType<typeof transfer>): object => { const { hash, ...rest } = txToJson(tx); void hash; return rest }

  it('shows the chain, blocks by height and hash, and refuses bad block names', async () => {
    const chain = (await app.inject({ method: 'GET', url: '/v1/chain' })).json<{ engine: string, head: { height: number, hash: string }, finalizedHeight: null, work: string }>()
    assert.equal(chain.engine, 'pow')
    assert.ok(chain.head.height > 0 && BigInt(chain.work) > 0n)
    assert.equal(chain.finalizedHeight, null)
    const byHeight = (await app.inject({ method: 'GET', url: `/v1/blocks/${chain.head.height}` })).json<{ hash: string, mainChain: boolean, confirmations: number }>()
    assert.deepEqual([byHeight.hash, byHeight.mainChain, byHeight.confirmations], [chain.head.hash, true, 1])
    assert.equal((await app.inject({ method: 'GET', url: `/v1/blocks/${chain.head.hash}` })).json<{ hash: string }>().hash, chain.head.hash)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/blocks/999999' })).statusCode, 404)
    const bad = await app.inject({ method: 'GET', url: '/v1/blocks/xyz' })
    assert.deepEqual([bad.statusCode, bad.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
  })

  it('proves accounts present and absent against the head\'s state root', async () => {
    const address = addressFromPublicKey((testKeys[0] as { publicKey: Uint8Array }).publicKey)
    for (const target of [address, '12'.repeat(20)]) {
      const answer = (await app.inject({ method: 'GET', url: `/v1/accounts/${target}?proof=true` })).json<{ exists: boolean, balance: string, stateRoot: string, proof: AccountProof }>()
      assert.equal(answer.exists, target === address)
      assert.ok(verifyAccountProof(fromHex(answer.stateRoot), answer.proof), `the proof for ${target} checks against the root alone`)
    }
    assert.equal((await app.inject({ method: 'GET', url: '/v1/accounts/nothex' })).statusCode, 400)
  })

  it('accepts a transaction, reports it pending then included, and refuses bad ones with their codes', async () => {
    const tx = transfer(0, 0, 1, 100n, 2n)
    const posted = await app.inject({ method: 'POST', url: '/v1/tx', payload: body(tx) })
    assert.equal(posted.statusCode, 202)
    const { hash } = posted.json<{ hash: string }>()
    assert.equal((await app.inject({ method: 'GET', url: `/v1/tx/${hash}` })).json<{ status: string }>().status, 'pending')
    assert.equal((await app.inject({ method: 'POST', url: '/v1/tx', payload: body(tx) })).json<{ code: string }>().code, 'LEDGER_TX_DUPLICATE')
    sim.kernel.runFor(5_000)
    const included = (await app.inject({ method: 'GET', url: `/v1/tx/${hash}` })).json<{ status: string, confirmations: number, block: string }>()
    assert.equal(included.status, 'included')
    assert.ok(included.confirmations >= 1)
    // The block in full, and with its transactions' hashes only: the same block, the same hashes.
    const full = (await app.inject({ method: 'GET', url: `/v1/blocks/${included.block}` })).json<{ hash: string, header: object, txs: Array<{ hash: string }>, confirmations: number }>()
    const hashesOnly = (await app.inject({ method: 'GET', url: `/v1/blocks/${included.block}?txs=hashes` })).json<{ hash: string, header: object, txs: string[], confirmations: number }>()
    assert.ok(full.txs.some((entry) => entry.hash === hash))
    assert.deepEqual(hashesOnly, { ...full, txs: full.txs.map((entry) => entry.hash) })
    const badForm = await app.inject({ method: 'GET', url: `/v1/blocks/${included.block}?txs=some` })
    assert.deepEqual([badForm.statusCode, badForm.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    assert.equal((await app.inject({ method: 'GET', url: `/v1/blocks/${'ab'.repeat(32)}?txs=hashes` })).statusCode, 404)
    const replay = await app.inject({ method: 'POST', url: '/v1/tx', payload: body(transfer(0, 0, 2, 1n)) })
    assert.deepEqual([replay.statusCode, replay.json<{ code: string }>().code], [409, 'LEDGER_TX_NONCE_TOO_LOW'])
    // The pool's checks come before the signature's: a forged copy with a used nonce is refused for the nonce, unverified.
    const forgedReplay = await app.inject({ method: 'POST', url: '/v1/tx', payload: { ...body(transfer(0, 0, 2, 1n)), fee: '99' } })
    assert.deepEqual([forgedReplay.statusCode, forgedReplay.json<{ code: string }>().code], [409, 'LEDGER_TX_NONCE_TOO_LOW'])
    const forged = await app.inject({ method: 'POST', url: '/v1/tx', payload: { ...body(transfer(0, 1, 2, 1n)), fee: '99' } })
    assert.deepEqual([forged.statusCode, forged.json<{ code: string }>().code], [400, 'LEDGER_BAD_SIGNATURE'])
    const broke = await app.inject({ method: 'POST', url: '/v1/tx', payload: body(transfer(2, 0, 1, 50_000n)) })
    assert.deepEqual([broke.statusCode, broke.json<{ code: string }>().code], [422, 'LEDGER_TX_INSUFFICIENT_FUNDS'])
    const junk = await app.inject({ method: 'POST', url: '/v1/tx', payload: { hello: 'world' } })
    assert.deepEqual([junk.statusCode, junk.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    assert.equal((await app.inject({ method: 'GET', url: `/v1/tx/${'0'.repeat(64)}` })).statusCode, 404)
  })

  it('accepts a batch, answering each transaction in order with its hash or its refusal', async () => {
    const good = [transfer(1, 0, 3, 5n, 2n), transfer(1, 1, 3, 5n, 2n)]
    const forged = { ...body(transfer(3, 0, 1, 1n)), fee: '77' }
    const answer = await app.inject({ method: 'POST', url: '/v1/txs', payload: [body(good[0] as ReturnType<typeof transfer>), forged, body(good[1] as ReturnType<typeof transfer>), { hello: 'world' }] })
    assert.equal(answer.statusCode, 202)
    const { results, accepted } = answer.json<{ results: Array<{ status: string, hash?: string, code?: string }>, accepted: number }>()
    assert.equal(accepted, 2)
    assert.deepEqual(results.map((result) => result.status === 'pending' ? result.hash : result.code), [txToJson(good[0] as ReturnType<typeof transfer>).hash, 'LEDGER_BAD_SIGNATURE', txToJson(good[1] as ReturnType<typeof transfer>).hash, 'LEDGER_MALFORMED'])
    for (const payload of [[], { not: 'a list' }, Array.from({ length: 1_001 }, () => ({}))]) {
      const refused = await app.inject({ method: 'POST', url: '/v1/txs', payload })
      assert.deepEqual([refused.statusCode, refused.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    }
  })

  it('accepts transactions as canonical CBOR bytes, alone or in a batch, and refuses bad bytes with their codes', async () => {
    const cbor = { 'content-type': CBOR_CONTENT_TYPE }
    const single = transfer(3, 0, 1, 7n, 2n)
    const posted = await app.inject({ method: 'POST', url: '/v1/tx', headers: cbor, payload: Buffer.from(encodeTx(single)) })
    assert.deepEqual([posted.statusCode, posted.json<{ hash: string }>().hash], [202, txHash(single)])
    assert.equal((await app.inject({ method: 'GET', url: `/v1/tx/${txHash(single)}` })).json<{ status: string }>().status, 'pending')
    const again = await app.inject({ method: 'POST', url: '/v1/tx', headers: cbor, payload: Buffer.from(encodeTx(single)) })
    assert.deepEqual([again.statusCode, again.json<{ code: string }>().code], [409, 'LEDGER_TX_DUPLICATE'])
    const good = [transfer(3, 1, 1, 7n, 2n), transfer(3, 2, 1, 7n, 2n)]
    const forged = encodeTx({ ...transfer(2, 0, 1, 1n), fee: 77n })
    const batch = encodeCanonical([encodeTx(good[0] as SignedTx), forged, 'not bytes', encodeTx(good[1] as SignedTx), Uint8Array.of(0xff, 0x00)])
    const answer = await app.inject({ method: 'POST', url: '/v1/txs', headers: cbor, payload: Buffer.from(batch) })
    assert.equal(answer.statusCode, 202)
    const { results, accepted } = answer.json<{ results: Array<{ status: string, hash?: string, code?: string }>, accepted: number }>()
    assert.equal(accepted, 2)
    assert.deepEqual(results.map((result) => result.status === 'pending' ? result.hash : result.code), [txHash(good[0] as SignedTx), 'LEDGER_BAD_SIGNATURE', 'LEDGER_MALFORMED', txHash(good[1] as SignedTx), 'LEDGER_MALFORMED'])
    // Not CBOR, not an array, empty, over the limit: the whole request is refused.
    for (const payload of [Uint8Array.of(0xff, 0x00), encodeCanonical({ txs: [] }), encodeCanonical([]), encodeCanonical(Array.from({ length: 1_001 }, () => forged))]) {
      const refused = await app.inject({ method: 'POST', url: '/v1/txs', headers: cbor, payload: Buffer.from(payload) })
      assert.deepEqual([refused.statusCode, refused.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    }
    const junk = await app.inject({ method: 'POST', url: '/v1/tx', headers: cbor, payload: Buffer.from([0x01, 0x02]) })
    assert.deepEqual([junk.statusCode, junk.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    // The same transaction with its map keys out of RFC 8949 order: not its canonical bytes, refused
    // (it would be named by a hash of other bytes than these).
    const next = transfer(3, 3, 1, 7n, 2n)
    const reordered = cborEncode({ signature: next.signature, body: next.body, chainId: next.chainId, fee: next.fee, nonce: next.nonce, publicKey: next.publicKey }, { mapSorter: () => 0 })
    assert.notDeepEqual(reordered, encodeTx(next))
    assert.deepEqual(decodeCanonical(reordered), decodeCanonical(encodeTx(next)), 'the same transaction')
    const unordered = await app.inject({ method: 'POST', url: '/v1/tx', headers: cbor, payload: Buffer.from(reordered) })
    assert.deepEqual([unordered.statusCode, unordered.json<{ code: string }>().code], [400, 'LEDGER_MALFORMED'])
    // A parameter on the content type is still CBOR.
    const withCharset = await app.inject({ method: 'POST', url: '/v1/tx', headers: { 'content-type': `${CBOR_CONTENT_TYPE}; charset=binary` }, payload: Buffer.from(encodeTx(next)) })
    assert.deepEqual([withCharset.statusCode, withCharset.json<{ hash: string }>().hash], [202, txHash(next)])
  })

  it('exports the ledger metrics', async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(text, /^synod_ledger_height [1-9]\d*$/m)
    assert.match(text, /^synod_ledger_txs_rejected_total [1-9]\d*$/m)
    assert.match(text, /^synod_ledger_invalid_unattributed_total 0$/m)
  })
})
