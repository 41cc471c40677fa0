/** A block's direct encoding against cborg's general encoder, byte for byte, on generated blocks; compact blocks and their checks. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeCanonical, encodeCanonical } from '../../src/core/index.js'
import { LedgerError, checkCompactBlock, encodeBlock, encodeBlockGeneric, encodeBlockRecord, encodeCompactBlock, encodeTx, packTxHashes, readCompactBlock, txHash, txRootOf, type Block, type SignedTx } from '../../src/ledger/index.js'
import { TEST_CHAIN, transfer } from '../support/pow-chain.js'

const hex = (bytes: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((value) => Buffer.from(value).toString('hex'))
/** Transactions signed once, drawn from. */
const signed: SignedTx[] = Array.from({ length: 24 }, (_, index) => transfer(index % 4, index, (index + 1) % 4, BigInt(index * 1_000_003), BigInt(1 + index)))
const seal = fc.oneof(
  fc.constant(null),
  fc.record({ slot: fc.nat(), signature: fc.uint8Array({ minLength: 64, maxLength: 64 }) }),
  fc.record({ version: fc.constant(1), time: fc.nat(), bits: fc.nat(), nonce: fc.nat(), extraNonce: fc.nat() }),
  fc.record({ round: fc.nat(), certificate: fc.uint8Array({ maxLength: 300 }), note: fc.string() })
)
const block: fc.Arbitrary<Block> = fc.record({
  header: fc.record({
    chainId: fc.oneof(fc.constant(TEST_CHAIN), fc.string({ minLength: 1, maxLength: 64 })),
    height: fc.nat(),
    parent: hex(32),
    timeMs: fc.nat(),
    txRoot: hex(32),
    stateRoot: hex(32),
    proposer: hex(20),
    seal
  }),
  txs: fc.array(fc.constantFrom(...signed), { maxLength: 40 })
})
/** Weights in each of CBOR's integer widths, and past 2^64 (stored as decimal text). */
const weight = fc.oneof(fc.bigInt({ min: 0n, max: 23n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 1n << 64n, max: 1n << 200n }))

describe('block encoding', () => {
  it('writes exactly the bytes of the general encoder, with and without the stored weight', () => {
    fc.assert(fc.property(block, weight, (value, stored) => {
      assert.deepEqual(encodeBlock(value), encodeBlockGeneric(value))
      assert.deepEqual(encodeBlockRecord(value, stored), encodeBlockGeneric(value, stored))
    }), { numRuns: 400 })
  })

  it('gives back the header, the transactions\' bytes and any weight when decoded', () => {
    const txs = signed.slice(0, 5)
    const value: Block = { header: { chainId: TEST_CHAIN, height: 7, parent: 'ab'.repeat(32), timeMs: 1, txRoot: txRootOf(txs), stateRoot: 'cd'.repeat(32), proposer: 'ef'.repeat(20), seal: null }, txs }
    for (const weight of [12_345n, (1n << 64n) - 1n, 1n << 64n, 3n ** 70n]) {
      const decoded = decodeCanonical(encodeBlockRecord(value, weight)) as { header: unknown, txs: Uint8Array[], weight: number | bigint | string }
      assert.deepEqual(decoded.header, value.header)
      assert.deepEqual(decoded.txs, txs.map(encodeTx))
      assert.equal(BigInt(decoded.weight), weight)
    }
  })
})

describe('compact blocks', () => {
  const limits = { blockTxsMax: 2_000, blockBytesMax: 1024 * 1024 }
  const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code
  const txs = signed.slice(0, 6)
  const value: Block = { header: { chainId: TEST_CHAIN, height: 3, parent: 'ab'.repeat(32), timeMs: 1, txRoot: txRootOf(txs), stateRoot: 'cd'.repeat(32), proposer: 'ef'.repeat(20), seal: null }, txs }

  it('writes exactly what the general encoder writes, and reads back the header and the hashes in order', () => {
    fc.assert(fc.property(block, (generated) => {
      const packed = encodeCompactBlock(generated)
      assert.deepEqual(packed, encodeCanonical({ header: generated.header, txHashes: packTxHashes(generated.txs.map(txHash), generated.txs.length) }))
      const read = readCompactBlock(decodeCanonical(packed), limits)
      // The same header (fast-check's records have no prototype, decoded maps do: compared as canonical bytes).
      assert.deepEqual(encodeCanonical(read.header), encodeCanonical(generated.header))
      assert.deepEqual(read.txHashes, generated.txs.map(txHash))
    }), { numRuns: 200 })
  })

  it('puts a block together only from the transactions it names, in order, under its root', () => {
    const compact = readCompactBlock(decodeCanonical(encodeCompactBlock(value)), limits)
    assert.deepEqual(checkCompactBlock(compact, txs, TEST_CHAIN, limits), value)
    assert.throws(() => checkCompactBlock(compact, [...txs].reverse(), TEST_CHAIN, limits), isCode('LEDGER_BAD_BLOCK'), 'another order')
    assert.throws(() => checkCompactBlock(compact, txs.slice(1), TEST_CHAIN, limits), isCode('LEDGER_BAD_BLOCK'), 'one missing')
    assert.throws(() => checkCompactBlock(compact, [...txs.slice(0, 5), signed[9] as SignedTx], TEST_CHAIN, limits), isCode('LEDGER_BAD_BLOCK'), 'another transaction')
    assert.throws(() => checkCompactBlock(compact, txs, 'another-chain', limits), isCode('LEDGER_WRONG_CHAIN'))
    // Hashes that name the transactions, under a header whose root commits to others.
    const lying = readCompactBlock(decodeCanonical(encodeCompactBlock({ ...value, header: { ...value.header, txRoot: txRootOf(txs.slice(1)) } })), limits)
    assert.throws(() => checkCompactBlock(lying, txs, TEST_CHAIN, limits), isCode('LEDGER_BAD_BLOCK'), 'a root over other transactions')
    assert.throws(() => checkCompactBlock(compact, txs, TEST_CHAIN, { ...limits, blockBytesMax: 200 }), isCode('LEDGER_BAD_BLOCK'), 'past blockBytesMax')
  })

  it('refuses what is not a compact block, with a typed error', () => {
    const hashes = packTxHashes(txs.map(txHash), txs.length)
    const cases: Array<[string, unknown, string]> = [
      ['not a map', [value.header, hashes], 'LEDGER_MALFORMED'],
      ['null', null, 'LEDGER_MALFORMED'],
      ['no hashes', { header: value.header }, 'LEDGER_MALFORMED'],
      ['hashes as a list', { header: value.header, txHashes: txs.map(txHash) }, 'LEDGER_MALFORMED'],
      ['a field more', { header: value.header, txHashes: hashes, txs: [] }, 'LEDGER_MALFORMED'],
      ['a cut hash', { header: value.header, txHashes: hashes.subarray(0, 33) }, 'LEDGER_MALFORMED'],
      ['more than blockTxsMax', { header: value.header, txHashes: new Uint8Array(32 * 2_001) }, 'LEDGER_BAD_BLOCK']
    ]
    for (const [what, raw, code] of cases) assert.throws(() => readCompactBlock(raw, limits), isCode(code), what)
    const badHeader = readCompactBlock({ header: { ...value.header, height: -1 }, txHashes: hashes }, limits)
    assert.throws(() => checkCompactBlock(badHeader, txs, TEST_CHAIN, limits), isCode('LEDGER_MALFORMED'), 'a header out of shape')
  })
})
