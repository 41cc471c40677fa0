/**
 * The state root: a compact sparse Merkle tree over all accounts, keyed by the 160 bits of the
 * address. A subtree that holds one account is that account's leaf, placed where its path first
 * becomes unique (no chain of single-child nodes), so the tree has about 2n nodes and a proof
 * about log2(n) siblings. The root depends only on the set of accounts, never on the order they
 * were written in. A write replaces the nodes on its path with unhashed ones, and the root is hashed
 * when it is read: each changed node once, however many of the accounts under it changed (a block
 * that touches k accounts hashes the union of their paths, not k whole paths).
 *
 * A proof shows an account present (its leaf) or absent (an empty subtree, or another account's
 * leaf, where its path ends), and a client checks it against a block header's `stateRoot` alone
 * (`verifyAccountProof`).
 */
import { bytesEqual, CBOR_MAJOR, cborText, encodeCanonical, fromHex, sha256, toHex, writeCbor } from '../core/index.js'
import { ADDRESS_BYTES, ADDRESS_PATTERN, type Address } from './tx.js'

export interface Account {
  balance: bigint
  /** The nonce the account's next transaction must carry. */
  nonce: number
}

const ADDRESS_BITS = ADDRESS_BYTES * 8
const LEAF_TAG = 0x00
const NODE_TAG = 0x01
/** The hash of an empty subtree. */
export const EMPTY_HASH = new Uint8Array(32)

type TreeNode<V = Account> =
  | { kind: 'leaf', address: Address, key: Uint8Array, account: V, hash: Uint8Array }
  /** `hash` is null until the branch's hash is first read; its children never change after. */
  | { kind: 'branch', left: TreeNode<V> | null, right: TreeNode<V> | null, hash: Uint8Array | null }

export function accountLeafHash (address: Address, account: Account): Uint8Array {
  return leafHashOf(fromHex(address), accountBytes(account))
}

const NONCE_KEY = cborText('nonce')
const BALANCE_KEY = cborText('balance')

/**
 * An account's canonical CBOR, `{balance, nonce}`: written directly (the shorter key first), as
 * `encodeCanonical` writes it; a value out of range goes to `encodeCanonical`, which decides.
 */
export function accountBytes (account: Account): Uint8Array {
  return writeCbor((writer) => {
    writer.head(CBOR_MAJOR.map, 2)
    writer.raw(NONCE_KEY)
    if (!writer.uint(account.nonce)) return false
    writer.raw(BALANCE_KEY)
    return writer.bigUint(account.balance)
  }, 32) ?? encodeCanonical({ balance: account.balance, nonce: account.nonce })
}

function leafHashOf (key: Uint8Array, valueHashInput: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + key.length + valueHashInput.length)
  input[0] = LEAF_TAG
  input.set(key, 1)
  input.set(valueHashInput, 1 + key.length)
  return sha256(input)
}

function branchHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(65)
  input[0] = NODE_TAG
  input.set(left, 1)
  input.set(right, 33)
  return sha256(input)
}

const shownAccount = (account: Account): { balance: string, nonce: number } => ({ balance: account.balance.toString(), nonce: account.nonce })

function parseShownAccount (shown: { balance: string, nonce: number }): Account {
  if (!/^\d{1,20}$/.test(shown.balance) || !Number.isSafeInteger(shown.nonce) || shown.nonce < 0) throw new RangeError('not an account')
  return { balance: BigInt(shown.balance), nonce: shown.nonce }
}

const bitAt = (key: Uint8Array, depth: number): number => ((key[depth >> 3] as number) >> (7 - (depth & 7))) & 1

/** A node's hash, computing (and keeping) the hashes of the branches written since the last read. */
function hashOf<V> (node: TreeNode<V> | null): Uint8Array {
  if (node === null) return EMPTY_HASH
  if (node.kind === 'branch' && node.hash === null) node.hash = branchHash(hashOf(node.left), hashOf(node.right))
  return node.hash as Uint8Array
}

export interface AccountProof {
  address: Address
  /** The account, or null for a proof of absence. */
  account: { balance: string, nonce: number } | null
  /** Sibling hashes from the root down to where the path ends, hex. */
  siblings: string[]
  /**
   * For absence: where the path ends, an empty subtree, or another account (whole, so the client
   * hashes the leaf itself: a branch's hash cannot pass for a leaf).
   */
  terminal: { kind: 'empty' } | { kind: 'leaf', address: Address, account: { balance: string, nonce: number } } | null
}

/** A tree's contents at one moment (`AccountTree.snapshot`); opaque to its holder. */
export interface TreeSnapshot<V = Account> {
  readonly root: unknown
  readonly count: number
  /** Only a tree of records of type V restores it. */
  readonly __value?: V
}

/**
 * The tree over accounts; `valueBytes` lets the same tree hold other records keyed by address
 * (the staking records), each leaf hashing its record's canonical bytes.
 */
export class AccountTree<V = Account> {
  private root: TreeNode<V> | null = null
  private count = 0

  constructor (private readonly valueBytes: (value: V) => Uint8Array = accountBytes as unknown as (value: V) => Uint8Array) {}

  get size (): number { return this.count }

  /**
   * The tree as it is now. Nodes are never changed once made (a write replaces the nodes on its
   * path), so a snapshot stays valid whatever is written after it, and `restore` brings the tree
   * back to it with every hash it had computed (branch hashes are computed when first read).
   */
  snapshot (): TreeSnapshot<V> {
    return { root: this.root, count: this.count }
  }

  restore (snapshot: TreeSnapshot<V>): void {
    this.root = snapshot.root as TreeNode<V> | null
    this.count = snapshot.count
  }

  rootHash (): Uint8Array {
    return hashOf(this.root)
  }

  /** Sets an account's leaf; null removes the account. */
  set (address: Address, account: V | null): void {
    const key = fromHex(address)
    const leaf: TreeNode<V> | null = account === null ? null : { kind: 'leaf', address, key, account, hash: leafHashOf(key, this.valueBytes(account)) }
    this.root = this.place(this.root, key, leaf, 0)
  }

  /** A proof of `address`'s account, or of its absence. */
  prove (this: AccountTree<Account>, address: Address): AccountProof {
    const key = fromHex(address)
    const siblings: string[] = []
    let node = this.root
    for (let depth = 0; node !== null && node.kind === 'branch'; depth++) {
      const right = bitAt(key, depth) === 1
      siblings.push(toHex(hashOf(right ? node.left : node.right)))
      node = right ? node.right : node.left
    }
    if (node !== null && node.address === address) return { address, account: shownAccount(node.account), siblings, terminal: null }
    const terminal: AccountProof['terminal'] = node === null ? { kind: 'empty' } : { kind: 'leaf', address: node.address, account: shownAccount(node.account) }
    return { address, account: null, siblings, terminal }
  }

  private place (node: TreeNode<V> | null, key: Uint8Array, leaf: TreeNode<V> | null, depth: number): TreeNode<V> | null {
    if (node === null) {
      if (leaf !== null) this.count++
      return leaf
    }
    if (node.kind === 'leaf') {
      if (bytesEqual(node.key, key)) {
        if (leaf === null) this.count--
        return leaf
      }
      if (leaf === null) return node
      this.count++
      return this.split(node, leaf as TreeNode<V> & { kind: 'leaf' }, depth)
    }
    const right = bitAt(key, depth) === 1
    const left = right ? node.left : this.place(node.left, key, leaf, depth + 1)
    const rightChild = right ? this.place(node.right, key, leaf, depth + 1) : node.right
    return this.branch(left, rightChild)
  }

  /** Two leaves that share a path down to `depth`: branches until their bits differ. */
  private split (existing: TreeNode<V> & { kind: 'leaf' }, added: TreeNode<V> & { kind: 'leaf' }, depth: number): TreeNode<V> {
    if (depth >= ADDRESS_BITS) throw new Error('two leaves with one key')
    const existingBit = bitAt(existing.key, depth)
    if (existingBit !== bitAt(added.key, depth)) {
      return (existingBit === 0 ? this.branch(existing, added) : this.branch(added, existing)) as TreeNode<V>
    }
    // Both go the same way: a branch with one empty side (it holds two leaves, so it stays).
    const below = this.split(existing, added, depth + 1)
    return (existingBit === 0 ? this.branch(below, null) : this.branch(null, below)) as TreeNode<V>
  }

  /** A branch, collapsed to its only leaf when one side is empty and the other a leaf. */
  private branch (left: TreeNode<V> | null, right: TreeNode<V> | null): TreeNode<V> | null {
    if (left === null && right === null) return null
    if (left === null && right?.kind === 'leaf') return right
    if (right === null && left?.kind === 'leaf') return left
    return { kind: 'branch', left, right, hash: null }
  }
}

/**
 * Checks a proof against a state root, as a light client does with nothing but a block header.
 * True when the proof shows exactly what it claims: the account present with that balance and
 * nonce, or absent.
 */
export function verifyAccountProof (stateRoot: Uint8Array, proof: AccountProof): boolean {
  if (!ADDRESS_PATTERN.test(proof.address) || proof.siblings.length > ADDRESS_BITS) return false
  const key = fromHex(proof.address)
  let hash: Uint8Array
  try {
    if (proof.account !== null) {
      if (proof.terminal !== null) return false
      hash = accountLeafHash(proof.address, parseShownAccount(proof.account))
    } else if (proof.terminal?.kind === 'empty') {
      hash = EMPTY_HASH
    } else if (proof.terminal?.kind === 'leaf') {
      // Another account ends the path: it must share the path so far and be a different account.
      if (!ADDRESS_PATTERN.test(proof.terminal.address) || proof.terminal.address === proof.address) return false
      const other = fromHex(proof.terminal.address)
      for (let depth = 0; depth < proof.siblings.length; depth++) if (bitAt(other, depth) !== bitAt(key, depth)) return false
      hash = accountLeafHash(proof.terminal.address, parseShownAccount(proof.terminal.account))
    } else {
      return false
    }
    for (let depth = proof.siblings.length - 1; depth >= 0; depth--) {
      const sibling = fromHex(proof.siblings[depth] as string)
      if (sibling.length !== 32) return false
      hash = bitAt(key, depth) === 1 ? branchHash(sibling, hash) : branchHash(hash, sibling)
    }
  } catch {
    return false
  }
  return toHex(hash) === toHex(stateRoot)
}
