/**
 * The Merkle tree of RFC 6962 (Certificate Transparency) for the transactions of a block: leaves
 * and inner nodes hashed under different prefixes (so no inner node passes for a leaf, and no
 * leaf can be duplicated to fake a tree, as in Bitcoin's CVE-2012-2459), an unbalanced tree split
 * at the largest power of two below the size. Checked against the RFC's reference data.
 */
import { sha256, toHex } from '../core/index.js'

/**
 * Where a leaf's or inner node's prefixed input is put together before it is hashed: one buffer,
 * grown to the largest leaf met, instead of a new array per leaf and per node (a block's root
 * hashes every transaction once on every node, and a copy of more than 64 bytes is a malloc).
 * Hashing is synchronous and keeps nothing of its input, so the buffer is free again at once.
 */
let scratch = new Uint8Array(1_024)

function prefixedHash (prefix: number, first: Uint8Array, second?: Uint8Array): Uint8Array {
  const length = 1 + first.length + (second?.length ?? 0)
  if (length > scratch.length) scratch = new Uint8Array(2 ** Math.ceil(Math.log2(length)))
  scratch[0] = prefix
  scratch.set(first, 1)
  if (second !== undefined) scratch.set(second, 1 + first.length)
  return sha256(scratch.subarray(0, length))
}

export function merkleLeafHash (data: Uint8Array): Uint8Array {
  return prefixedHash(0, data)
}

function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  return prefixedHash(1, left, right)
}

/** The largest power of two strictly below n (n >= 2). */
function splitPoint (n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/** MTH of RFC 6962 over leaf hashes; SHA-256 of nothing for no leaves. */
export function merkleRoot (leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return sha256(new Uint8Array(0))
  return rangeRoot(leafHashes, 0, leafHashes.length)
}

/** MTH of the leaves from `start` to `end` (at least one), without copying the list at each split. */
function rangeRoot (leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  if (end - start === 1) return leafHashes[start] as Uint8Array
  const middle = start + splitPoint(end - start)
  return nodeHash(rangeRoot(leafHashes, start, middle), rangeRoot(leafHashes, middle, end))
}

/** The audit path of leaf `index` (RFC 6962 PATH), bottom up. */
export function merkleInclusionPath (leafHashes: readonly Uint8Array[], index: number): Uint8Array[] {
  if (!Number.isInteger(index) || index < 0 || index >= leafHashes.length) throw new RangeError(`leaf ${index} of ${leafHashes.length}`)
  if (leafHashes.length === 1) return []
  const k = splitPoint(leafHashes.length)
  return index < k
    ? [...merkleInclusionPath(leafHashes.slice(0, k), index), merkleRoot(leafHashes.slice(k))]
    : [...merkleInclusionPath(leafHashes.slice(k), index - k), merkleRoot(leafHashes.slice(0, k))]
}

/** Checks an audit path (RFC 9162's verification algorithm). */
export function verifyMerkleInclusion (leafHash: Uint8Array, index: number, size: number, path: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return false
  let fn = index
  let sn = size - 1
  let hash = leafHash
  for (const sibling of path) {
    if (sibling.length !== 32 || sn === 0) return false
    if ((fn & 1) === 1 || fn === sn) {
      hash = nodeHash(sibling, hash)
      if ((fn & 1) === 0) while ((fn & 1) === 0 && fn !== 0) { fn >>>= 1; sn >>>= 1 }
    } else {
      hash = nodeHash(hash, sibling)
    }
    fn >>>= 1
    sn >>>= 1
  }
  return sn === 0 && toHex(hash) === toHex(root)
}
