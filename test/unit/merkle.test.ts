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
