/** The state root: a compact sparse Merkle tree over accounts, and its proofs. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encodeCanonical, fromHex, sha256, toHex } from '../../src/core/index.js'
import { AccountTree, EMPTY_HASH, accountBytes, accountLeafHash, verifyAccountProof, type Account } from '../../src/ledger/index.js'

/** The definition, computed from scratch: empty is zero, one account is its leaf, more split by bit. */
function referenceRoot (accounts: Map<string, Account>): string {
  const bit = (address: string, depth: number): number => ((fromHex(address)[depth >> 3] as number) >> (7 - (depth & 7))) & 1
  const node = (entries: Array<[string, Account]>, depth: number): Uint8Array => {
    if (entries.length === 0) return EMPTY_HASH
    if (entries.length === 1) return accountLeafHash(...(entries[0] as [string, Account]))
    const left = node(entries.filter(([address]) => bit(address, depth) === 0), depth + 1)
    const right = node(entries.filter(([address]) => bit(address, depth) === 1), depth + 1)
    return sha256(Uint8Array.from([1, ...left, ...right]))
  }
  return toHex(node([...accounts], 0))
}

const hexAddress = fc.uint8Array({ minLength: 20, maxLength: 20 }).map(toHex)
/** Addresses that share long prefixes, so paths split deep in the tree. */
const nearAddress = fc.tuple(fc.integer({ min: 100, max: 159 }), fc.boolean()).map(([bitIndex, flip]) => {
  const bytes = new Uint8Array(20).fill(0xab)
  if (flip) bytes[bitIndex >> 3] = (bytes[bitIndex >> 3] as number) ^ (1 << (7 - (bitIndex & 7)))
  return toHex(bytes)
})
const account = fc.record({ balance: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), nonce: fc.nat() })
const operation = fc.tuple(fc.oneof(hexAddress, nearAddress), fc.option(account, { freq: 4 }))

describe('account tree', () => {
  it('has the empty hash when empty and the leaf itself for one account', () => {
    const tree = new AccountTree()
    assert.equal(toHex(tree.rootHash()), toHex(EMPTY_HASH))
    const address = 'ab'.repeat(20)
    tree.set(address, { balance: 5n, nonce: 1 })
    const leaf = sha256(Uint8Array.from([0, ...fromHex(address), ...encodeCanonical({ balance: 5n, nonce: 1 })]))
    assert.equal(toHex(tree.rootHash()), toHex(leaf))
  })

  it('equals the from-scratch definition after any sequence of writes and deletes, in any order', () => {
    // The root is also read at random points between writes: a branch's hash is computed when first
    // read and kept, so a read must never leave a stale hash behind for later writes.
    fc.assert(fc.property(fc.array(fc.tuple(operation, fc.boolean()), { maxLength: 60 }), (operations) => {
      const tree = new AccountTree()
      const model = new Map<string, Account>()
      for (const [[address, value], read] of operations) {
        tree.set(address, value)
        if (value === null) model.delete(address)
        else model.set(address, value)
        if (read) assert.equal(toHex(tree.rootHash()), referenceRoot(model))
      }
      assert.equal(toHex(tree.rootHash()), referenceRoot(model))
      assert.equal(tree.size, model.size)
      const shuffled = new AccountTree()
      for (const [address, value] of [...model].reverse()) shuffled.set(address, value)
      assert.equal(toHex(shuffled.rootHash()), toHex(tree.rootHash()), 'the root depends on the set, not the order')
    }), { numRuns: 200 })
  })

  it('writes an account\'s bytes exactly as the canonical encoder does', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), (balance, nonce) => {
      assert.deepEqual(accountBytes({ balance, nonce }), encodeCanonical({ balance, nonce }))
    }), { numRuns: 2_000 })
    // Out of the writer's range: whatever the canonical encoder makes of it, bytes or an error.
    const outcome = (encode: () => Uint8Array): Uint8Array | string => { try { return encode() } catch (error) { return String(error) } }
    for (const odd of [{ balance: 1n << 64n, nonce: 0 }, { balance: -1n, nonce: 1 }, { balance: 1n, nonce: 1.5 }]) {
      assert.deepEqual(outcome(() => accountBytes(odd)), outcome(() => encodeCanonical(odd)))
    }
  })

  it('proves present accounts and absent ones, and every proof fails against a changed claim', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.oneof(hexAddress, nearAddress), { minLength: 1, maxLength: 40 }), hexAddress, account, (addresses, absent, value) => {
      const tree = new AccountTree()
      for (const [index, address] of addresses.entries()) tree.set(address, { balance: BigInt(index) * 10n, nonce: index })
      const root = tree.rootHash()
      for (const [index, address] of addresses.entries()) {
        const proof = tree.prove(address)
        assert.deepEqual(proof.account, { balance: String(index * 10), nonce: index })
        assert.ok(verifyAccountProof(root, proof))
        assert.equal(verifyAccountProof(root, { ...proof, account: { balance: String(index * 10 + 1), nonce: index } }), false, 'a changed balance fails')
        assert.equal(verifyAccountProof(root, { ...proof, account: null, terminal: { kind: 'empty' } }), false, 'a present account cannot be shown absent')
      }
      if (!addresses.includes(absent)) {
        const proof = tree.prove(absent)
        assert.equal(proof.account, null)
        assert.ok(verifyAccountProof(root, proof))
        assert.equal(verifyAccountProof(root, { ...proof, account: { balance: value.balance.toString(), nonce: value.nonce }, terminal: null }), false, 'an absent account cannot be shown present')
      }
    }), { numRuns: 100 })
  })

  it('refuses an absence proof that stops at a branch, or names a leaf off the path', () => {
    const tree = new AccountTree()
    const addresses = Array.from({ length: 16 }, (_, index) => toHex(sha256(Uint8Array.of(index)).subarray(0, 20)))
    for (const address of addresses) tree.set(address, { balance: 1n, nonce: 0 })
    const root = tree.rootHash()
    const target = addresses[3] as string
    const proof = tree.prove(target)
    // Cut the path short and claim the subtree there is empty: its real hash is a branch's.
    assert.equal(verifyAccountProof(root, { address: target, account: null, siblings: proof.siblings.slice(0, 1), terminal: { kind: 'empty' } }), false)
    const offPath = addresses.find((address) => address !== target && (fromHex(address)[0] as number) >> 7 !== (fromHex(target)[0] as number) >> 7) as string
    assert.equal(verifyAccountProof(root, { address: target, account: null, siblings: proof.siblings, terminal: { kind: 'leaf', address: offPath, account: { balance: '1', nonce: 0 } } }), false)
    assert.equal(verifyAccountProof(root, { ...proof, address: 'not hex' }), false)
  })
})
