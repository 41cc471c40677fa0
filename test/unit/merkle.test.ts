/** The transaction Merkle tree against RFC 6962's reference data, and its audit paths. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fromHex, sha256, toHex } from '../../src/core/index.js'
import { merkleInclusionPath, merkleLeafHash, merkleRoot, verifyMerkleInclusion } from '../../src/ledger/index.js'

const vectors = JSON.parse(readFileSync(new URL('../../../test/fixtures/rfc6962-vectors.json', import.meta.url), 'utf8')) as {
  leaves: string[], roots: string[], inclusion: Array<{ index: number, size: number, path: string[] }>
}
const leaves = vectors.leaves.map((leaf) => merkleLeafHash(fromHex(leaf)))

describe('Merkle tree (RFC 6962)', () => {
  it('gives the reference tree head for every size 0..8', () => {
    for (let size = 0; size <= 8; size++) assert.equal(toHex(merkleRoot(leaves.slice(0, size))), vectors.roots[size], `size ${size}`)
  })

  it('gives the reference audit paths, and they verify', () => {
    for (const vector of vectors.inclusion) {
      const path = merkleInclusionPath(leaves.slice(0, vector.size), vector.index)
      assert.deepEqual(path.map(toHex), vector.path)
      assert.ok(verifyMerkleInclusion(leaves[vector.index] as Uint8Array, vector.index, vector.size, path, fromHex(vectors.roots[vector.size] as string)))
    }
  })

  it('hashes leaves and inner nodes as RFC 6962 defines them, for any leaf length and any size (one buffer reused for the inputs)', () => {
    const concat = (...parts: Uint8Array[]): Uint8Array => {
      const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
      let at = 0
      for (const part of parts) { out.set(part, at); at += part.length }
      return out
    }
    // The definition, written out: MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])), leaves SHA-256(0x00 || d).
    const reference = (hashes: Uint8Array[]): Uint8Array => {
      if (hashes.length === 1) return hashes[0] as Uint8Array
      let k = 1
      while (k * 2 < hashes.length) k *= 2
      return sha256(concat(Uint8Array.of(1), reference(hashes.slice(0, k)), reference(hashes.slice(k))))
    }
    // Long leaves grow the input buffer; the short ones after must not hash its stale tail.
    for (const length of [0, 1, 63, 64, 65, 1_023, 1_024, 5_000, 3, 2_049, 0]) {
      const data = Uint8Array.from({ length }, (_, index) => (index * 31 + length) & 0xff)
      assert.equal(toHex(merkleLeafHash(data)), toHex(sha256(concat(Uint8Array.of(0), data))), `a leaf of ${length} bytes`)
      assert.equal(toHex(merkleLeafHash(data.subarray(Math.min(1, length)))), toHex(sha256(concat(Uint8Array.of(0), data.subarray(Math.min(1, length))))), `a view into a leaf of ${length} bytes`)
    }
    for (let size = 1; size <= 70; size++) {
      const hashes = Array.from({ length: size }, (_, index) => merkleLeafHash(Uint8Array.of(index, size, 7)))
      assert.equal(toHex(merkleRoot(hashes)), toHex(reference(hashes)), `size ${size}`)
    }
  })

  it('verifies every leaf of every size up to 40, and nothing else', () => {
    for (let size = 1; size <= 40; size++) {
      const hashes = Array.from({ length: size }, (_, index) => merkleLeafHash(Uint8Array.of(index, size)))
      const root = merkleRoot(hashes)
      for (let index = 0; index < size; index++) {
        const path = merkleInclusionPath(hashes, index)
        assert.ok(verifyMerkleInclusion(hashes[index] as Uint8Array, index, size, path, root), `${index} of ${size}`)
        assert.equal(verifyMerkleInclusion(sha256(Uint8Array.of(1)), index, size, path, root), false)
        if (size > 1) assert.equal(verifyMerkleInclusion(hashes[index] as Uint8Array, (index + 1) % size, size, path, root), false, 'wrong index')
        assert.equal(verifyMerkleInclusion(hashes[index] as Uint8Array, index, size, [...path, root], root), false, 'a longer path')
      }
    }
  })
})
