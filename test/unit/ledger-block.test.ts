/** A block's direct encoding against cborg's general encoder, byte for byte, on generated blocks. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeCanonical } from '../../src/core/index.js'
import { encodeBlock, encodeBlockGeneric, encodeBlockRecord, encodeTx, txRootOf, type Block, type SignedTx } from '../../src/ledger/index.js'
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
