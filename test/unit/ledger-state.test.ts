/** Blocks and the state transition: execution, rejection without side effects, undo. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { keyPairFromSeed, sha256, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  LedgerError, LedgerState, ZERO_HASH, addressFromPublicKey, checkBlockBody, defaultBlockLimits, encodeTx, signTx, txRootOf,
  type Block, type SignedTx
} from '../../src/ledger/index.js'

const CHAIN = 'synod-test'
const keys: Ed25519KeyPair[] = Array.from({ length: 4 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(index + 10))))
const addresses = keys.map((key) => addressFromPublicKey(key.publicKey))
const proposer = 'f'.repeat(40)
const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code

const transfer = (from: number, nonce: number, to: number, amount: bigint, fee = 1n): SignedTx =>
  signTx({ chainId: CHAIN, publicKey: (keys[from] as Ed25519KeyPair).publicKey, nonce, fee, body: { kind: 'transfer', to: addresses[to] as string, amount } }, keys[from] as Ed25519KeyPair)

const block = (height: number, txs: SignedTx[]): Block => ({
  header: { chainId: CHAIN, height, parent: ZERO_HASH, timeMs: height * 1000, txRoot: txRootOf(txs), stateRoot: ZERO_HASH, proposer, seal: null },
  txs
})

const genesis = (): LedgerState => LedgerState.fromGenesis({ chainId: CHAIN, timeMs: 0, allocations: addresses.map((address) => ({ address, balance: 1_000n })) })

describe('state transition', () => {
  it('moves amounts, charges fees, pays fees and reward to the proposer, and bumps nonces', () => {
    const state = genesis()
    state.apply(block(1, [transfer(0, 0, 1, 100n, 2n), transfer(0, 1, 2, 50n, 3n), transfer(1, 0, 1, 10n, 1n)]), 7n)
    assert.deepEqual(state.get(addresses[0] as string), { balance: 1_000n - 155n, nonce: 2 })
    assert.deepEqual(state.get(addresses[1] as string), { balance: 1_000n + 100n - 1n, nonce: 1 }, 'a transfer to oneself costs only the fee')
    assert.deepEqual(state.get(addresses[2] as string), { balance: 1_050n, nonce: 0 })
    assert.deepEqual(state.get(proposer), { balance: 6n + 7n, nonce: 0 })
  })

  it('rejects a double spend, a replay and an overspend, and leaves the state as it was', () => {
    const state = genesis()
    const root = state.root()
    assert.throws(() => state.apply(block(1, [transfer(0, 0, 1, 10n), transfer(0, 0, 2, 10n)]), 5n), (error) => isCode('LEDGER_BAD_BLOCK')(error) && /nonce 0, the account expects 1/.test((error as Error).message))
    assert.equal(state.root(), root)
    state.apply(block(1, [transfer(0, 0, 1, 10n)]), 5n)
    const after = state.root()
    assert.throws(() => state.apply(block(2, [transfer(0, 0, 1, 10n)]), 5n), isCode('LEDGER_BAD_BLOCK'), 'a replay of an included transaction')
    assert.throws(() => state.apply(block(2, [transfer(2, 0, 1, 1_000n)]), 5n), (error) => isCode('LEDGER_BAD_BLOCK')(error) && /spends 1001 from a balance of 1000/.test((error as Error).message))
    assert.equal(state.root(), after)
    assert.equal(state.has(proposer), true)
  })

  it('conserves value and undoes any sequence of blocks back to genesis', () => {
    fc.assert(fc.property(fc.array(fc.array(fc.tuple(fc.nat(3), fc.nat(3), fc.bigInt({ min: 0n, max: 300n })), { maxLength: 5 }), { maxLength: 6 }), (plan) => {
      const state = genesis()
      const start = state.root()
      const nonces = [0, 0, 0, 0]
      const undos = []
      for (const [index, transfers] of plan.entries()) {
        const txs = transfers.map(([from, to, amount]) => transfer(from, nonces[from]++, to, amount))
        try {
          undos.push(state.apply(block(index + 1, txs), 3n))
        } catch (error) {
          assert.ok(isCode('LEDGER_BAD_BLOCK')(error))
          for (const tx of txs) nonces[keys.findIndex((key) => key.publicKey === tx.publicKey)]--
        }
      }
      const total = state.entries().reduce((sum, [, account]) => sum + account.balance, 0n)
      assert.equal(total, 4_000n + 3n * BigInt(undos.length), 'fees move, nothing is created but the reward')
      for (const undo of undos.reverse()) state.revert(undo)
      assert.equal(state.root(), start)
      assert.equal(state.has(proposer), false)
    }), { numRuns: 100 })
  })
})

describe('block bodies', () => {
  it('checks chain, transaction root, signatures and limits', () => {
    const good = block(1, [transfer(0, 0, 1, 10n)])
    const raw = { header: good.header, txs: good.txs }
    assert.equal(checkBlockBody(raw, CHAIN, defaultBlockLimits, (tx) => tx).txs.length, 1)
    assert.throws(() => checkBlockBody(raw, 'other', defaultBlockLimits, (tx) => tx), isCode('LEDGER_WRONG_CHAIN'))
    assert.throws(() => checkBlockBody({ header: { ...good.header, txRoot: ZERO_HASH }, txs: good.txs }, CHAIN, defaultBlockLimits, (tx) => tx), isCode('LEDGER_BAD_BLOCK'))
    assert.throws(() => checkBlockBody({ header: good.header, txs: [{ ...good.txs[0], fee: 2n }] }, CHAIN, defaultBlockLimits, (tx) => tx), isCode('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => checkBlockBody(raw, CHAIN, { blockTxsMax: 0, blockBytesMax: 1 << 20 }, (tx) => tx), isCode('LEDGER_BAD_BLOCK'))
    assert.throws(() => checkBlockBody(raw, CHAIN, { blockTxsMax: 10, blockBytesMax: encodeTx(good.txs[0] as SignedTx).length }, (tx) => tx), isCode('LEDGER_BAD_BLOCK'))
    assert.throws(() => checkBlockBody({ header: { ...good.header, height: -1 }, txs: [] }, CHAIN, defaultBlockLimits, (tx) => tx), isCode('LEDGER_MALFORMED'))
  })
})
