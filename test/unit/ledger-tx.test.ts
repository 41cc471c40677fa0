/** Transactions and the mempool. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeCanonical, encodeCanonical, keyPairFromSeed, sha256, toHex, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  LedgerError, Mempool, addressFromPublicKey, checkTx, encodeTx, everydayTx, senderOf, signTx, signedTxSchema, signedTxSigningBytes, txHash, txSigningBytes, txSigningBytesGeneric,
  type Account, type MempoolLimits, type SignedTx, type TxBody
} from '../../src/ledger/index.js'
import { mutate, mutations } from '../support/mutations.js'

const CHAIN = 'synod-test'
const key = (index: number): Ed25519KeyPair => keyPairFromSeed(sha256(Uint8Array.of(index)))
const alice = key(1)
const bob = key(2)
const carol = key(3)
const dave = key(4)
const keys = [alice, bob, carol, dave, key(5), key(6)]

function transfer (from: Ed25519KeyPair, nonce: number, fee: bigint, amount = 10n, to = addressFromPublicKey(bob.publicKey)): SignedTx {
  return signTx({ chainId: CHAIN, publicKey: from.publicKey, nonce, fee, body: { kind: 'transfer', to, amount } }, from)
}

const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code

describe('transactions', () => {
  it('round-trip through canonical CBOR and verify; the hash covers the signature', () => {
    const tx = transfer(alice, 0, 5n)
    const decoded = checkTx(decodeCanonical(encodeTx(tx)), CHAIN)
    assert.equal(decoded.fee, 5n)
    assert.equal(txHash(decoded), txHash(tx))
    const big = transfer(alice, 1, (1n << 64n) - 1n, (1n << 63n) + 5n)
    assert.equal(checkTx(decodeCanonical(encodeTx(big)), CHAIN).fee, (1n << 64n) - 1n, 'amounts above 2^53 survive as bigints')
  })

  it('refuses another chain, a changed field, a foreign signature and malformed shapes', () => {
    const tx = transfer(alice, 0, 5n)
    assert.throws(() => checkTx(tx, 'other-chain'), isCode('LEDGER_WRONG_CHAIN'))
    assert.throws(() => checkTx({ ...tx, fee: 6n }, CHAIN), isCode('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => checkTx({ ...tx, publicKey: bob.publicKey }, CHAIN), isCode('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => checkTx({ ...tx, body: { kind: 'mint', amount: 5n } }, CHAIN), isCode('LEDGER_MALFORMED'))
    assert.throws(() => checkTx({ ...tx, fee: -1n }, CHAIN), isCode('LEDGER_MALFORMED'))
    assert.throws(() => checkTx({ ...tx, fee: 1n << 64n }, CHAIN), isCode('LEDGER_MALFORMED'))
    assert.throws(() => checkTx('junk', CHAIN), isCode('LEDGER_MALFORMED'))
  })

  it('writes the bytes and signing bytes cborg\'s canonical encoder gives, for every body (property)', () => {
    fc.assert(fc.property(txArbitrary, (tx) => {
      assert.equal(toHex(encodeTx(tx)), toHex(encodeCanonical(tx)))
      const { signature: _signature, ...unsigned } = tx
      assert.equal(toHex(txSigningBytes(unsigned)), toHex(txSigningBytesGeneric(unsigned)))
      assert.equal(toHex(signedTxSigningBytes(tx)), toHex(txSigningBytesGeneric(unsigned)), 'the signing bytes of the signed transaction, its signature left out')
      const feeAsNumber = { ...unsigned, fee: unsigned.fee > BigInt(Number.MAX_SAFE_INTEGER) ? unsigned.fee : Number(unsigned.fee) } as unknown as typeof unsigned
      assert.equal(toHex(txSigningBytes(feeAsNumber)), toHex(txSigningBytesGeneric(unsigned)), 'a fee given as a number encodes as the same integer')
    }), { numRuns: 1_000 })
  })

  it('parses the everyday shapes exactly as signedTxSchema does, for valid and mutated transactions (property)', () => {
    let accepted = 0
    let deferred = 0
    fc.assert(fc.property(txArbitrary, fc.array(txMutation, { maxLength: 3 }), (tx, changes) => {
      const value = decodeCanonical(encodeTx(tx))
      for (const change of changes) mutate(value, change)
      const byZod = signedTxSchema.safeParse(value)
      const direct = everydayTx(value)
      if (direct === null) {
        deferred++
        return
      }
      assert.ok(byZod.success, `zod refuses what the direct parse accepts: ${byZod.error?.message ?? ''}`)
      assert.deepEqual(direct, byZod.data)
      accepted++
    }), { numRuns: 3_000 })
    assert.ok(accepted > 500 && deferred > 500, `both outcomes are exercised (${accepted} parsed directly, ${deferred} left to zod)`)
    // What the direct parse leaves to zod still gets zod's verdict through checkTx.
    const vote = signTx({ chainId: CHAIN, publicKey: alice.publicKey, nonce: 0, fee: 1n, body: { kind: 'vote', producers: [addressFromPublicKey(bob.publicKey)] } }, alice)
    assert.equal(everydayTx(decodeCanonical(encodeTx(vote))), null)
    assert.deepEqual(checkTx(decodeCanonical(encodeTx(vote)), CHAIN), vote)
  })
})

const amountArbitrary = fc.oneof(fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
const addressArbitrary = fc.integer({ min: 0, max: keys.length - 1 }).map((index) => addressFromPublicKey((keys[index] as Ed25519KeyPair).publicKey))
const bodyArbitrary: fc.Arbitrary<TxBody> = fc.oneof(
  fc.record({ kind: fc.constant('transfer' as const), to: addressArbitrary, amount: amountArbitrary }),
  fc.record({ kind: fc.constant('transfer' as const), to: addressArbitrary, amount: amountArbitrary, memo: fc.string({ maxLength: 40, unit: 'binary' }) }),
  fc.record({ kind: fc.constantFrom('bond' as const, 'unbond' as const), amount: amountArbitrary.map((amount) => amount + (amount === 0n ? 1n : 0n)) }),
  fc.record({ kind: fc.constantFrom('withdraw' as const, 'register' as const, 'unjail' as const) }),
  fc.record({ kind: fc.constant('vote' as const), producers: fc.uniqueArray(addressArbitrary, { maxLength: 4 }) })
)
/** Signed transactions of every everyday body; the signature is any 64 bytes (encoding and parsing do not verify it). */
const txArbitrary: fc.Arbitrary<SignedTx> = fc.record({
  chainId: fc.constantFrom(CHAIN, 'c', 'x'.repeat(64)),
  publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  nonce: fc.oneof(fc.nat(1_000), fc.constant(Number.MAX_SAFE_INTEGER)),
  fee: amountArbitrary,
  body: bodyArbitrary,
  signature: fc.uint8Array({ minLength: 64, maxLength: 64 })
})
const txMutation = mutations(fc.oneof(
  fc.constantFrom(-1, -0, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 0, 1, '', 'transfer', 'bond', 'vote', 'evidence', 'x'.repeat(65), 'x'.repeat(257),
    addressFromPublicKey(carol.publicKey), addressFromPublicKey(carol.publicKey).toUpperCase(), null, true, 0n, 7n, -1n, 1n << 64n, [], {},
    new Uint8Array(32), new Uint8Array(64), new Uint8Array(2)),
  fc.string({ maxLength: 5 }), fc.integer({ min: -3, max: 40 })
), ['extra', 'memo', 'amount', 'kind', 'signature'])

describe('mempool', () => {
  const rich: Account = { balance: 1_000_000n, nonce: 0 }
  const make = (limits: Partial<MempoolLimits> = {}, accounts: Record<string, Account> = {}) => {
    const pool = new Mempool(limits)
    const view = (address: string): Account => accounts[address] ?? rich
    const add = (tx: SignedTx, nowMs = 0) => pool.add(tx, encodeTx(tx).length, nowMs, view)
    return { pool, view, add }
  }

  it('selects the best fee per byte first, never breaking a sender\'s nonce order', () => {
    const { pool, view, add } = make()
    add(transfer(alice, 1, 100n))
    add(transfer(alice, 0, 1n))
    add(transfer(bob, 0, 50n))
    add(transfer(carol, 0, 20n))
    const order = pool.select(10, 1 << 20, view).map((tx) => [addressFromPublicKey(tx.publicKey), tx.nonce])
    assert.deepEqual(order, [
      [addressFromPublicKey(bob.publicKey), 0], [addressFromPublicKey(carol.publicKey), 0],
      [addressFromPublicKey(alice.publicKey), 0], [addressFromPublicKey(alice.publicKey), 1]
    ], 'alice 1 pays most but waits for alice 0')
    assert.equal(pool.select(2, 1 << 20, view).length, 2)
  })

  it('refuses duplicates, used nonces, gaps, low fees, oversize and unaffordable transactions, each with its code', () => {
    const { add } = make({ nonceGapMax: 3, feeMin: 2n, txBytesMax: 400 }, { [addressFromPublicKey(carol.publicKey)]: { balance: 25n, nonce: 0 }, [addressFromPublicKey(bob.publicKey)]: { balance: 1000n, nonce: 5 } })
    const tx = transfer(alice, 0, 5n)
    add(tx)
    assert.throws(() => add(tx), isCode('LEDGER_TX_DUPLICATE'))
    assert.throws(() => add(transfer(bob, 4, 5n)), isCode('LEDGER_TX_NONCE_TOO_LOW'))
    assert.throws(() => add(transfer(alice, 4, 5n)), isCode('LEDGER_TX_NONCE_GAP'))
    assert.throws(() => add(transfer(alice, 1, 1n)), isCode('LEDGER_TX_FEE_TOO_LOW'))
    assert.throws(() => add(signTx({ chainId: CHAIN, publicKey: alice.publicKey, nonce: 1, fee: 5n, body: { kind: 'transfer', to: addressFromPublicKey(bob.publicKey), amount: 1n, memo: 'x'.repeat(256) } }, alice)), isCode('LEDGER_TX_TOO_LARGE'))
    add(transfer(carol, 0, 5n, 10n))
    assert.throws(() => add(transfer(carol, 1, 5n, 10n)), isCode('LEDGER_TX_INSUFFICIENT_FUNDS'), '15 + 15 > 25: the pending one counts')
  })

  it('replaces by fee only with the minimum bump', () => {
    const { pool, add } = make({ replaceFeeBumpPercentMin: 10 })
    const first = add(transfer(alice, 0, 100n))
    assert.throws(() => add(transfer(alice, 0, 109n, 11n)), isCode('LEDGER_TX_UNDERPRICED'))
    const second = add(transfer(alice, 0, 110n, 12n))
    assert.equal(pool.size, 1)
    assert.equal(pool.has(first.hash), false)
    assert.equal(pool.has(second.hash), true)
    assert.equal(pool.stats().replaced, 1)
  })

  it('refuses a replacement that would leave the sender\'s later transactions unaffordable', () => {
    const { add } = make({}, { [addressFromPublicKey(alice.publicKey)]: { balance: 100n, nonce: 0 } })
    add(transfer(alice, 0, 5n, 5n))
    add(transfer(alice, 1, 5n, 75n))
    assert.throws(() => add(transfer(alice, 0, 20n, 70n)), isCode('LEDGER_TX_INSUFFICIENT_FUNDS'), '90 + 80 > 100')
  })

  it('when full, evicts the cheapest sender tail for a better transaction, and refuses a worse one', () => {
    const { pool, add } = make({ mempoolTxsMax: 3 })
    add(transfer(alice, 0, 10n))
    add(transfer(alice, 1, 5n))
    add(transfer(bob, 0, 8n))
    assert.throws(() => add(transfer(carol, 0, 4n)), isCode('LEDGER_TX_POOL_FULL'))
    const carols = add(transfer(carol, 0, 6n))
    assert.equal(pool.size, 3)
    assert.ok(pool.has(carols.hash))
    assert.deepEqual(pool.pending().map((entry) => [entry.tx.nonce, entry.tx.fee]).sort(), [[0, 10n], [0, 6n], [0, 8n]].sort(), 'alice 1 (the cheapest tail) went; alice 0 stayed')
    assert.equal(pool.stats().evicted, 1)
    assert.equal(pool.stats().rejected.LEDGER_TX_POOL_FULL, 1)
  })

  it('check refuses what add would, without changing the pool, and counts the refusal', () => {
    const { pool, view, add } = make({ mempoolTxsMax: 2, nonceGapMax: 3 })
    const held = transfer(alice, 0, 5n)
    add(held)
    add(transfer(bob, 0, 5n))
    const check = (tx: SignedTx): void => { pool.check(tx, encodeTx(tx).length, view) }
    assert.throws(() => { check(held) }, isCode('LEDGER_TX_DUPLICATE'))
    assert.throws(() => { check(transfer(alice, 5, 5n)) }, isCode('LEDGER_TX_NONCE_GAP'))
    assert.throws(() => { check(transfer(carol, 0, 5n)) }, isCode('LEDGER_TX_POOL_FULL'), 'full, and no better than the cheapest tail')
    check(transfer(carol, 0, 6n))
    assert.equal(pool.size, 2, 'a check that passes evicts nothing')
    assert.deepEqual(pool.stats().rejected, { LEDGER_TX_DUPLICATE: 1, LEDGER_TX_NONCE_GAP: 1, LEDGER_TX_POOL_FULL: 1 })
    assert.equal(pool.stats().added, 2)
  })

  it('add takes a check made on the unchanged pool, and checks again once the pool has changed', () => {
    const { pool, view } = make({ mempoolTxsMax: 3 })
    const first = transfer(alice, 0, 5n)
    const checked = pool.check(first, encodeTx(first).length, view)
    assert.equal(pool.add(first, encodeTx(first).length, 42, view, checked).addedMs, 42, 'the check\'s entry, stamped with the time of adding')
    assert.equal(pool.size, 1)
    const second = transfer(bob, 0, 5n)
    const stale = pool.check(second, encodeTx(second).length, view)
    pool.add(second, encodeTx(second).length, 0, view)
    assert.throws(() => pool.add(second, encodeTx(second).length, 0, view, stale), isCode('LEDGER_TX_DUPLICATE'), 'a check from before the pool changed is not trusted')
    const third = transfer(carol, 0, 5n)
    const fourth = transfer(dave, 0, 5n)
    const forThird = pool.check(third, encodeTx(third).length, view)
    assert.equal(pool.add(fourth, encodeTx(fourth).length, 0, view, forThird).tx, fourth, 'a check of another transaction is not taken for this one')
    assert.equal(pool.has(txHash(third)), false)
    assert.equal(pool.size, 3)
  })

  it('a full pool picks its victim among the other senders, and notices every change since the last pick', () => {
    const { pool, view, add } = make({ mempoolTxsMax: 3 })
    add(transfer(alice, 0, 3n))
    add(transfer(bob, 0, 5n))
    add(transfer(bob, 1, 7n))
    // Alice's tail is the cheapest, but alice cannot displace her own: bob's tail (7) is hers to beat.
    assert.throws(() => add(transfer(alice, 1, 6n)), isCode('LEDGER_TX_POOL_FULL'))
    assert.throws(() => add(transfer(carol, 0, 3n)), isCode('LEDGER_TX_POOL_FULL'), 'no better than alice 0')
    const alices = pool.pending().find((entry) => entry.sender === addressFromPublicKey(alice.publicKey))
    pool.remove(alices as NonNullable<typeof alices>)
    add(transfer(carol, 0, 3n))
    assert.throws(() => add(transfer(dave, 0, 3n)), isCode('LEDGER_TX_POOL_FULL'), 'carol 0 is now the cheapest tail')
    add(transfer(dave, 0, 4n))
    assert.deepEqual(pool.pending().map((entry) => entry.tx.fee).sort(), [4n, 5n, 7n], 'carol 0 went')
    pool.update(0, (address) => address === addressFromPublicKey(bob.publicKey) ? { balance: 1_000_000n, nonce: 2 } : view(address))
    add(transfer(carol, 0, 1n))
    add(transfer(carol, 1, 1n))
    assert.equal(pool.size, 3, 'room again after a block took bob\'s two')
  })

  it('a full pool gives a transaction that can run the place of one that waits for a missing nonce, whatever their fees', () => {
    const { pool, add } = make({ mempoolTxsMax: 3 })
    const gapped = add(transfer(alice, 2, 50n)) // alice 0 and 1 never came (refused, or lost)
    add(transfer(bob, 0, 5n))
    add(transfer(bob, 1, 5n))
    const carols = add(transfer(carol, 0, 1n))
    assert.equal(pool.has(gapped.hash), false, 'alice 2 could not run: it went, though it paid 50')
    assert.ok(pool.has(carols.hash))
    assert.throws(() => add(transfer(dave, 1, 99n)), isCode('LEDGER_TX_POOL_FULL'), 'a gapped one cannot displace one that can run')
    assert.equal(pool.stats().evicted, 1)
  })

  it('evicts exactly the victims a full scan would pick, over random pools (property)', () => {
    fc.assert(fc.property(fc.array(fc.record({ sender: fc.integer({ min: 0, max: 5 }), fee: fc.integer({ min: 1, max: 6 }), drop: fc.boolean() }), { minLength: 1, maxLength: 40 }), (steps) => {
      const { pool, add } = make({ mempoolTxsMax: 6 })
      const nonces = new Map<number, number>()
      for (const step of steps) {
        const sender = keys[step.sender] as Ed25519KeyPair
        const nonce = nonces.get(step.sender) ?? 0
        const tx = transfer(sender, nonce, BigInt(step.fee))
        // The reference: the cheapest tail (highest nonce) of any other sender, gapped ones (a
        // nonce below them missing; every account is at nonce 0 here) first, then by fee per byte.
        const full = pool.size >= 6
        const held = new Map<string, SignedTx[]>()
        for (const entry of pool.pending()) held.set(entry.sender, [...(held.get(entry.sender) ?? []), entry.tx])
        const rate = (candidate: SignedTx): number => Number(candidate.fee) / encodeTx(candidate).length
        const senderAddress = addressFromPublicKey(sender.publicKey)
        const others = [...held].filter(([address]) => address !== senderAddress).map(([, txs]) => {
          const tail = txs.reduce((a, b) => (b.nonce > a.nonce ? b : a))
          return { tail, gapped: tail.nonce + 1 > txs.length }
        })
        const worth = (gapped: boolean, candidate: SignedTx): number => (gapped ? 0 : 1_000) + rate(candidate)
        const cheapestWorth = Math.min(...others.map((other) => worth(other.gapped, other.tail)))
        const incomingGapped = nonce > (held.get(senderAddress)?.length ?? 0)
        let outcome: string
        try {
          add(tx)
          outcome = 'added'
          nonces.set(step.sender, nonce + 1)
        } catch (error) {
          outcome = (error as LedgerError).code
        }
        if (full) {
          const expected = others.length > 0 && worth(incomingGapped, tx) > cheapestWorth ? 'added' : 'LEDGER_TX_POOL_FULL'
          assert.equal(outcome, expected)
          if (outcome === 'added') assert.equal(pool.size, 6)
          if (outcome === 'added') assert.ok(others.filter((other) => !pool.has(txHash(other.tail))).every((gone) => worth(gone.gapped, gone.tail) === cheapestWorth), 'the victim was a cheapest tail')
        } else {
          assert.equal(outcome, 'added')
        }
        if (step.drop && pool.size > 0) pool.remove(pool.pending()[0] as NonNullable<ReturnType<typeof pool.pending>[number]>)
      }
    }), { numRuns: 200 })
  })

  it('refuses for funds exactly when a sum over the sender\'s pending transactions says so, through adds, replacements, removals and expiry (property)', () => {
    const balance = 40n
    const step = fc.record({ sender: fc.integer({ min: 0, max: 2 }), nonce: fc.integer({ min: 0, max: 5 }), amount: fc.integer({ min: 0, max: 15 }), fee: fc.integer({ min: 1, max: 9 }), then: fc.constantFrom('keep', 'remove', 'expire') })
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
      const { pool, view } = make({ txLifetimeMs: 1_000 }, Object.fromEntries(keys.map((each) => [addressFromPublicKey(each.publicKey), { balance, nonce: 0 }])))
      for (const [index, { sender, nonce, amount, fee, then }] of steps.entries()) {
        const tx = transfer(keys[sender] as Ed25519KeyPair, nonce, BigInt(fee), BigInt(amount))
        const cost = BigInt(amount) + BigInt(fee)
        // The reference: the sender's other pending transactions below this nonce, and for a replacement those above it too.
        const mine = pool.pending().filter((entry) => entry.sender === senderOf(tx))
        const replaces = mine.some((entry) => entry.tx.nonce === nonce)
        const committed = mine.filter((entry) => entry.tx.nonce < nonce || (replaces && entry.tx.nonce > nonce)).reduce((sum, entry) => sum + entry.cost, cost)
        let code = 'added'
        try { pool.add(tx, encodeTx(tx).length, index * 100, view) } catch (error) { code = (error as LedgerError).code }
        if (committed > balance) assert.notEqual(code, 'added', `pending ${committed} over the balance, yet added`)
        else assert.notEqual(code, 'LEDGER_TX_INSUFFICIENT_FUNDS', `pending ${committed} within the balance, yet refused for funds`)
        const any = pool.pending()[index % Math.max(1, pool.size)]
        if (then === 'remove' && any !== undefined) pool.remove(any)
        if (then === 'expire') pool.expire(index * 100 + 500)
      }
    }), { numRuns: 500 })
  })

  it('drops transactions whose nonce a block used, and expired ones with the sender\'s later ones', () => {
    const { pool, add } = make({ txLifetimeMs: 1_000 })
    add(transfer(alice, 0, 5n), 0)
    add(transfer(alice, 1, 5n), 500)
    add(transfer(alice, 2, 5n), 900)
    add(transfer(bob, 0, 5n), 900)
    const aliceAddress = addressFromPublicKey(alice.publicKey)
    pool.update(950, (address) => address === aliceAddress ? { balance: 1000n, nonce: 1 } : rich)
    assert.equal(pool.size, 3, 'alice 0 was included')
    pool.expire(1_500)
    assert.deepEqual(pool.pending().map((entry) => entry.sender), [addressFromPublicKey(bob.publicKey)], 'alice 1 expired and took alice 2 with it')
    assert.equal(pool.stats().expired, 2)
  })
})
