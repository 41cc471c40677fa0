/**
 * Merkle digest trees for anti-entropy between two replicas (Dynamo, Cassandra): the replicas
 * compare the keys they both hold by descending from the root only into subtrees whose hashes
 * differ. In sync, one root digest settles it whatever the number of keys; with d differing keys
 * among n the descent exchanges at most 1 + 2·d·depth digests, depth ≈ log2(n / 8).
 *
 * The tree is over ring positions, not over keys in order: at level L a node covers the ring
 * positions whose top L bits (of 48) are its prefix, so the two replicas of a key range put every
 * key in the same leaf without agreeing on anything but the depth. Each side builds its tree on
 * demand from its (key, position, state digest) entries; trees of different depth are not
 * comparable (the same entries give different roots), so the responder builds at the depth the
 * initiator announces (`digestTreeDepth` of the larger side's count, as the initiator estimates it).
 *
 * The exchange (`descend`): A sends [root]; B answers with its children of every mismatched inner
 * node; A answers B's children with its own children of the mismatched ones; and so on,
 * alternating, until no inner node mismatches. The mismatched leaves, found by either side, are
 * then settled by exchanging the (key, digest) pairs under them (`entriesUnder`, `diffEntries`).
 */
import { assert, bytesEqual, sha256 } from '../core/index.js'
import { RING_POSITION_BITS, RING_POSITIONS } from './ring.js'
import { StoreError } from './errors.js'

export interface TreeEntry {
  readonly key: string
  /** The key's 48-bit ring position (`keyPosition`), 0 <= position < 2**48. */
  readonly position: number
  /** DIGEST_TREE_HASH_BYTES bytes: a digest of the key's state. */
  readonly digest: Uint8Array
}

/** A node of the tree: `level` 0 is the root (prefix 0); at level L the prefix is the top L bits of the 48-bit position. */
export interface TreeNodeRef {
  readonly level: number
  readonly prefix: number
}

export interface TreeNodeHash extends TreeNodeRef {
  readonly hash: Uint8Array
}

/** Bytes of a node hash (truncated SHA-256) and of an entry's state digest. */
export const DIGEST_TREE_HASH_BYTES = 16
/** The deepest tree: 2**24 leaves, about 8 entries a leaf at 128 M keys; bounds the per-level maps. */
export const DIGEST_TREE_DEPTH_MAX = 24
/** Entries a leaf should hold by default: a mismatched leaf costs that many (key, digest) pairs to settle. */
export const DIGEST_TREE_LEAF_ENTRIES_TARGET = 8
export const DIGEST_TREE_ROOT: TreeNodeRef = Object.freeze({ level: 0, prefix: 0 })

/** Domain separation: a leaf's hash input can never be read as an inner node's, nor the reverse. */
const LEAF_TAG = 0x00
const INNER_TAG = 0x01
const KEY_LENGTH_BYTES = 4

const utf8 = new TextEncoder()

/**
 * Depth for about `leafEntriesTarget` entries a leaf given the larger side's entry count:
 * ceil(log2(entryCount / leafEntriesTarget)), clamped to [0, DIGEST_TREE_DEPTH_MAX]. Integer
 * arithmetic, so exact powers of two land where they should.
 */
export function digestTreeDepth (entryCount: number, leafEntriesTarget: number = DIGEST_TREE_LEAF_ENTRIES_TARGET): number {
  assert(Number.isSafeInteger(entryCount) && entryCount >= 0, `entryCount must be a non-negative integer, got ${entryCount}`)
  assert(Number.isSafeInteger(leafEntriesTarget) && leafEntriesTarget >= 1, `leafEntriesTarget must be a positive integer, got ${leafEntriesTarget}`)
  let depth = 0
  while (depth < DIGEST_TREE_DEPTH_MAX && leafEntriesTarget * 2 ** depth < entryCount) depth++
  return depth
}

/** Key order of leaves and of every list here: JavaScript string order (UTF-16 code units), the same on every replica. */
function compareKeys (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function byKey (a: TreeEntry, b: TreeEntry): number {
  return compareKeys(a.key, b.key)
}

function byPosition (a: TreeEntry, b: TreeEntry): number {
  return a.position - b.position || compareKeys(a.key, b.key)
}

/** The prefix of `position` at `level`: its top `level` bits. Division by a power of two is exact in a double, unlike 32-bit bit operators. */
function prefixAt (position: number, level: number): number {
  return Math.floor(position / 2 ** (RING_POSITION_BITS - level))
}

function zeroHash (): Uint8Array {
  return new Uint8Array(DIGEST_TREE_HASH_BYTES)
}

function truncatedSha256 (data: Uint8Array): Uint8Array {
  return sha256(data).slice(0, DIGEST_TREE_HASH_BYTES)
}

/** tag, then per entry in key order: key length (u32 big-endian), key UTF-8 bytes, digest. */
function leafHash (entries: readonly TreeEntry[]): Uint8Array {
  const keys = entries.map((entry) => utf8.encode(entry.key))
  let length = 1
  for (const key of keys) length += KEY_LENGTH_BYTES + key.length + DIGEST_TREE_HASH_BYTES
  const input = new Uint8Array(length)
  const view = new DataView(input.buffer)
  input[0] = LEAF_TAG
  let offset = 1
  for (let index = 0; index < entries.length; index++) {
    view.setUint32(offset, keys[index].length)
    offset += KEY_LENGTH_BYTES
    input.set(keys[index], offset)
    offset += keys[index].length
    input.set(entries[index].digest, offset)
    offset += DIGEST_TREE_HASH_BYTES
  }
  return truncatedSha256(input)
}

function innerHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(1 + 2 * DIGEST_TREE_HASH_BYTES)
  input[0] = INNER_TAG
  input.set(left, 1)
  input.set(right, 1 + DIGEST_TREE_HASH_BYTES)
  return truncatedSha256(input)
}

function checkEntry (entry: TreeEntry): void {
  assert(Number.isInteger(entry.position) && entry.position >= 0 && entry.position < RING_POSITIONS,
    `a ring position is an integer in [0, 2**48), got ${entry.position} for key ${entry.key}`)
  assert(entry.digest.length === DIGEST_TREE_HASH_BYTES,
    `a state digest is ${DIGEST_TREE_HASH_BYTES} bytes, got ${entry.digest.length} for key ${entry.key}`)
}

function checkDepth (depth: number): void {
  if (!Number.isInteger(depth) || depth < 0 || depth > DIGEST_TREE_DEPTH_MAX) {
    throw new StoreError('STORE_BAD_REQUEST', `a digest tree depth is an integer in [0, ${DIGEST_TREE_DEPTH_MAX}]`, { depth })
  }
}

/**
 * A sparse Merkle tree over ring positions. Only non-empty nodes are stored (one map a level,
 * keyed by prefix); an empty subtree has the all-zero hash, so a subtree one side lacks compares
 * equal only to emptiness. Build is O(n log n) (one sort, then at most n nodes a level); `hash`
 * and `children` are O(1). Returned hashes are the tree's own: read them, do not write them.
 */
export class DigestTree {
  readonly depth: number
  readonly size: number
  /** levels[L]: prefix -> hash of every non-empty node at level L. */
  private readonly levels: ReadonlyArray<Map<number, Uint8Array>>
  /** Leaf prefix -> its entries sorted by key. */
  private readonly leafEntries: Map<number, TreeEntry[]>
  /** All entries by (position, key), built on the first `entriesUnder` of an inner node. */
  private entriesByPosition: TreeEntry[] | undefined

  private constructor (depth: number, size: number, levels: Array<Map<number, Uint8Array>>, leafEntries: Map<number, TreeEntry[]>) {
    this.depth = depth
    this.size = size
    this.levels = levels
    this.leafEntries = leafEntries
  }

  /** Entries must have distinct keys, 48-bit positions and 16-byte digests (assertions: they come from the local store). */
  static build (entries: Iterable<TreeEntry>, depth: number): DigestTree {
    checkDepth(depth)
    const sorted = [...entries].sort(byKey)
    const leafEntries = new Map<number, TreeEntry[]>()
    for (let index = 0; index < sorted.length; index++) {
      const entry = sorted[index]
      checkEntry(entry)
      assert(index === 0 || sorted[index - 1].key !== entry.key, `duplicate key in a digest tree: ${entry.key}`)
      const prefix = prefixAt(entry.position, depth)
      const leaf = leafEntries.get(prefix)
      if (leaf === undefined) leafEntries.set(prefix, [entry])
      else leaf.push(entry)
    }
    const levels: Array<Map<number, Uint8Array>> = new Array(depth + 1)
    const leaves = new Map<number, Uint8Array>()
    for (const [prefix, leaf] of leafEntries) leaves.set(prefix, leafHash(leaf))
    levels[depth] = leaves
    for (let level = depth - 1; level >= 0; level--) {
      const below = levels[level + 1]
      const here = new Map<number, Uint8Array>()
      for (const childPrefix of below.keys()) {
        const prefix = Math.floor(childPrefix / 2)
        if (here.has(prefix)) continue
        here.set(prefix, innerHash(below.get(2 * prefix) ?? zeroHash(), below.get(2 * prefix + 1) ?? zeroHash()))
      }
      levels[level] = here
    }
    return new DigestTree(depth, sorted.length, levels, leafEntries)
  }

  /** A node's hash; the all-zero hash for an empty subtree. Throws STORE_BAD_REQUEST for a node outside this tree. */
  hash (node: TreeNodeRef): Uint8Array {
    this.checkNode(node)
    return this.levels[node.level].get(node.prefix) ?? zeroHash()
  }

  /** The two children of an inner node (level + 1) with their hashes. Throws STORE_BAD_REQUEST for a leaf or a node outside this tree. */
  children (node: TreeNodeRef): TreeNodeHash[] {
    this.checkNode(node)
    if (node.level === this.depth) {
      throw new StoreError('STORE_BAD_REQUEST', 'a leaf of a digest tree has no children', { level: node.level, depth: this.depth })
    }
    const level = node.level + 1
    const below = this.levels[level]
    const left = 2 * node.prefix
    const right = left + 1
    return [
      { level, prefix: left, hash: below.get(left) ?? zeroHash() },
      { level, prefix: right, hash: below.get(right) ?? zeroHash() }
    ]
  }

  /** Entries under a node, sorted by key. O(1) plus the output for a leaf; O(log n + k log k) for an inner node. */
  entriesUnder (node: TreeNodeRef): TreeEntry[] {
    this.checkNode(node)
    if (node.level === this.depth) return [...(this.leafEntries.get(node.prefix) ?? [])]
    this.entriesByPosition ??= [...this.leafEntries.values()].flat().sort(byPosition)
    const span = 2 ** (RING_POSITION_BITS - node.level)
    const first = firstAtOrAfter(this.entriesByPosition, node.prefix * span)
    const end = firstAtOrAfter(this.entriesByPosition, (node.prefix + 1) * span)
    return this.entriesByPosition.slice(first, end).sort(byKey)
  }

  /** Of the given nodes (the other side's hashes), those whose hash differs from this tree's. Throws STORE_BAD_REQUEST for a node outside this tree. */
  mismatched (theirs: readonly TreeNodeHash[]): TreeNodeRef[] {
    const result: TreeNodeRef[] = []
    for (const node of theirs) {
      if (!bytesEqual(this.hash(node), node.hash)) result.push({ level: node.level, prefix: node.prefix })
    }
    return result
  }

  private checkNode (node: TreeNodeRef): void {
    const { level, prefix } = node
    if (!Number.isInteger(level) || level < 0 || level > this.depth || !Number.isInteger(prefix) || prefix < 0 || prefix >= 2 ** level) {
      throw new StoreError('STORE_BAD_REQUEST', 'not a node of this digest tree', { level, prefix, depth: this.depth })
    }
  }
}

/** The index of the first entry at or after `position` in entries sorted by position. */
function firstAtOrAfter (entries: readonly TreeEntry[], position: number): number {
  let low = 0
  let high = entries.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (entries[middle].position < position) low = middle + 1
    else high = middle
  }
  return low
}

/**
 * One step of a descent: given the other side's node hashes, this side answers with the children
 * of the mismatched inner nodes (its own hashes), and lists the mismatched leaves. The exchange
 * ends when a step's `next` is empty; the leaves of every step, from both sides, are the ones to
 * settle with `entriesUnder` and `diffEntries`.
 */
export function descend (tree: DigestTree, theirs: readonly TreeNodeHash[]): { next: TreeNodeHash[], leaves: TreeNodeRef[] } {
  const next: TreeNodeHash[] = []
  const leaves: TreeNodeRef[] = []
  for (const node of tree.mismatched(theirs)) {
    if (node.level === tree.depth) leaves.push(node)
    else next.push(...tree.children(node))
  }
  return { next, leaves }
}

/**
 * For leaves that differ: which keys this side should send (it holds them with a digest the other
 * lacks or differs) and which it should ask for (the other holds them, this side lacks them or
 * differs). A differing digest appears in both lists: both sides then merge. Both lists are
 * sorted by key, without duplicates.
 */
export function diffEntries (
  mine: readonly TreeEntry[],
  theirs: ReadonlyArray<{ key: string, digest: Uint8Array }>
): { send: string[], request: string[] } {
  const mineByKey = new Map<string, Uint8Array>()
  for (const entry of mine) mineByKey.set(entry.key, entry.digest)
  const theirsByKey = new Map<string, Uint8Array>()
  for (const entry of theirs) theirsByKey.set(entry.key, entry.digest)
  return { send: keysNotMatchedIn(mineByKey, theirsByKey), request: keysNotMatchedIn(theirsByKey, mineByKey) }
}

/** Keys of `from` that `other` lacks or holds with another digest, sorted. */
function keysNotMatchedIn (from: ReadonlyMap<string, Uint8Array>, other: ReadonlyMap<string, Uint8Array>): string[] {
  const keys: string[] = []
  for (const [key, digest] of from) {
    const otherDigest = other.get(key)
    if (otherDigest === undefined || !bytesEqual(digest, otherDigest)) keys.push(key)
  }
  return keys.sort(compareKeys)
}
