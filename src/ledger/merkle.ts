/**
 * The Merkle tree of RFC 6962 (Certificate Transparency) for the transactions of a block: leaves
 * and inner nodes hashed under different prefixes (so no inner node passes for a leaf, and no
 * leaf can be duplicated to fake a tree, as in Bitcoin's CVE-2012-2459), an unbalanced tree split
 * at the largest power of two below the size. Checked against the RFC's reference data.
 */
import { sha256, toHex } from '../core/index.js'

export function merkleLeafHash (data: Uint8Array): Uint8Array {
  const input = new Uint8Array(data.length + 1)
  input.set(data, 1)
  return sha256(input)
}

function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  const input = new Uint8Array(65)
  input[0] = 1
  input.set(left, 1)
  input.set(right, 33)
  return sha256(input)
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
  if (leafHashes.length === 1) return leafHashes[0] as Uint8Array
  const k = splitPoint(leafHashes.length)
  return nodeHash(merkleRoot(leafHashes.slice(0, k)), merkleRoot(leafHashes.slice(k)))
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
