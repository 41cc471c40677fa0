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

describe('reverting and redoing a block whole', () => {
  const signed = new Map<string, SignedTx>()
  const cachedTransfer = (from: number, nonce: number, to: number, amount: bigint): SignedTx => {
    const key = `${from}/${nonce}/${to}/${amount}`
    let tx = signed.get(key)
    if (tx === undefined) signed.set(key, tx = transfer(from, nonce, to, amount))
    return tx
  }
  const replay = (blocks: Block[]): LedgerState => {
    const state = genesis()
    for (const applied of blocks) state.apply(applied, 3n)
    return state
  }
  const sorted = (state: LedgerState): Array<[string, unknown]> => state.entries().sort(([a], [b]) => a.localeCompare(b))

  it('redoes a checked block from its result while the state is where it was checked, and only then', () => {
    const state = genesis()
    const a = block(1, [transfer(0, 0, 1, 10n)])
    const b = block(1, [transfer(1, 0, 2, 20n)])
    const start = state.root()
    // Two proposals checked on one head (apply, root, revert), as a PoS validator checks two rounds' proposals.
    const undoA = state.apply(a, 3n)
    const rootA = state.root()
    state.revert(undoA)
    const undoB = state.apply(b, 3n)
    state.root()
    state.revert(undoB)
    assert.equal(state.root(), start)
    assert.equal(state.redo(undoA), true)
    assert.equal(state.root(), rootA)
    assert.deepEqual(sorted(state), sorted(replay([a])))
    assert.equal(state.redo(undoB), false, 'B was checked on the state before A, which is gone')
    assert.equal(state.root(), rootA)
    // Reverting the redone block restores the start whole; it can be redone again.
    state.revert(undoA)
    assert.equal(state.root(), start)
    assert.equal(state.redo(undoA), true)
    // A block applied and reverted the long way (a settled record) makes a new version: nothing recorded before it is redone.
    state.revert(LedgerState.settle(undoA))
    assert.equal(state.root(), start)
    assert.equal(state.redo(undoB), false)
    assert.equal(state.root(), start)
    assert.deepEqual(sorted(state), sorted(genesis()))
  })

  it('matches a replay from genesis after any sequence of applies, reverts, redos and settles', () => {
    type Op =
      | { kind: 'apply', transfers: Array<[number, number, bigint, number]>, readRoot: boolean }
      | { kind: 'check', transfers: Array<[number, number, bigint, number]>, readRoot: boolean }
      | { kind: 'revert', readRoot: boolean }
      | { kind: 'redo', pick: number, readRoot: boolean }
      | { kind: 'settle', pick: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('apply' as const), transfers: fc.array(fc.tuple(fc.nat(3), fc.nat(3), fc.bigInt({ min: 0n, max: 400n }), fc.constantFrom(0, 0, 0, 0, 1)), { maxLength: 4 }), readRoot: fc.boolean() }) },
      // What a chain store's `check` does: apply, read the root, revert.
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('check' as const), transfers: fc.array(fc.tuple(fc.nat(3), fc.nat(3), fc.bigInt({ min: 0n, max: 400n }), fc.constantFrom(0, 0, 0, 0, 1)), { maxLength: 4 }), readRoot: fc.boolean() }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('revert' as const), readRoot: fc.boolean() }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('redo' as const), pick: fc.nat(), readRoot: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat() }) }
    )
    let redone = 0
    fc.assert(fc.property(fc.array(op, { maxLength: 20 }), fc.boolean(), (ops, rootFirst) => {
      const state = genesis()
      // A chain store reads the genesis root first; a bare state may not have.
      if (rootFirst) state.root()
      let nextId = 0
      const stack: Array<{ id: number, block: Block, undo: ReturnType<LedgerState['apply']> }> = []
      const reverted: Array<{ entry: (typeof stack)[number], below: string }> = []
      const ids = (): string => stack.map((entry) => entry.id).join(',')
      const check = (): void => {
        const reference = replay(stack.map((entry) => entry.block))
        assert.equal(state.root(), reference.root())
        assert.deepEqual(sorted(state), sorted(reference))
      }
      for (const step of ops) {
        if (step.kind === 'apply' || step.kind === 'check') {
          const nonces = [0, 1, 2, 3].map((sender) => stack.reduce((sum, entry) => sum + entry.block.txs.filter((tx) => tx.publicKey === keys[sender]?.publicKey).length, 0))
          const txs = step.transfers.map(([from, to, amount, skip]) => cachedTransfer(from, (nonces[from] as number)++ + skip, to, amount))
          const next = block(stack.length + 1, txs)
          try {
            const entry = { id: nextId++, block: next, undo: state.apply(next, 3n) }
            if (step.kind === 'apply') stack.push(entry)
            else {
              state.root()
              state.revert(entry.undo)
              reverted.push({ entry, below: ids() })
            }
          } catch (error) {
            assert.ok(isCode('LEDGER_BAD_BLOCK')(error))
          }
        } else if (step.kind === 'revert') {
          const top = stack.pop()
          if (top !== undefined) {
            state.revert(top.undo)
            reverted.push({ entry: top, below: ids() })
          }
        } else if (step.kind === 'redo') {
          // Mostly the last one reverted, the one a redo can still take; now and then an older one.
          const chosen = reverted[reverted.length - 1 - (step.pick % 4 === 3 ? 1 + (step.pick % 3) : 0)]
          if (chosen !== undefined && state.redo(chosen.entry.undo)) {
            // Only on exactly the state it was applied to.
            assert.equal(ids(), chosen.below)
            stack.push(chosen.entry)
            redone++
          }
        } else {
          const chosen = stack[step.pick % Math.max(1, stack.length)]
          if (chosen !== undefined) LedgerState.settle(chosen.undo)
        }
        if (step.kind !== 'settle' && step.readRoot) check()
      }
      check()
      // Back to genesis whatever the records held.
      for (const entry of [...stack].reverse()) state.revert(entry.undo)
      assert.equal(state.root(), genesis().root())
    }), { numRuns: 300 })
    assert.ok(redone > 15, `only ${redone} redos happened: the property did not exercise them`)
  })
})
