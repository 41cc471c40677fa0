/** The miner pool: real worker threads running the WebAssembly kernel. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { doubleSha256, sha256, toHex } from '../../src/core/index.js'
import { decodeWorkHeader, encodeWorkHeader, hashToNumber, workCommitment } from '../../src/ledger/index.js'
import { MinerPool } from '../../src/node/index.js'

const template = (): Uint8Array => encodeWorkHeader({ version: 1, parent: sha256(new Uint8Array([1])), commitment: new Uint8Array(32), time: 1_700_000_000, bits: 0x207fffff, nonce: 0 })
const base = sha256(new TextEncoder().encode('block body'))

/** Checks a seal the way a verifier does: node:crypto, the commitment, the target. */
function assertSeal (header: Uint8Array, extraNonce: number, nonce: number, target: bigint): void {
  const decoded = decodeWorkHeader(header)
  assert.equal(decoded.nonce, nonce)
  assert.equal(toHex(decoded.commitment), toHex(workCommitment(base, extraNonce)))
  assert.equal(toHex(decoded.parent), toHex(template().subarray(4, 36)))
  assert.ok(hashToNumber(doubleSha256(header)) <= target)
}

/** Waits (polling) until `predicate` holds; fails after 20 s. */
async function until (predicate: () => boolean): Promise<void> {
  for (const started = Date.now(); !predicate(); await new Promise((resolve) => setTimeout(resolve, 10))) {
    if (Date.now() - started > 20_000) throw new Error('condition not reached in 20 s')
  }
}

describe('miner pool', () => {
  it('finds a seal a verifier accepts, on two threads', async () => {
    const pool = new MinerPool({ threads: 2 })
    try {
      const target = 1n << 244n // about one in 4096 hashes
      const seal = await pool.mine({ header: template(), commitmentBase: base, target })
      assert.ok(seal !== null)
      assertSeal(seal.header, seal.extraNonce, seal.nonce, target)
      assert.ok(seal.hashes >= 1 && pool.stats().found === 1)
    } finally {
      await pool.close()
    }
  })

  it('rolls the extra nonce when the nonces run out, each thread on its own extra nonces', async () => {
    const pool = new MinerPool({ threads: 2, noncesPerExtraNonce: 64, chunkNonces: 16 })
    try {
      const target = 1n << 246n // about one in 1024 hashes: many extra nonces of 64 nonces each
      const seal = await pool.mine({ header: template(), commitmentBase: base, target })
      assert.ok(seal !== null)
      assert.ok(seal.nonce < 64)
      assert.ok(seal.extraNonce >= 2, `extra nonce ${seal.extraNonce}`)
      assertSeal(seal.header, seal.extraNonce, seal.nonce, target)
    } finally {
      await pool.close()
    }
  })

  it('stops on cancel and on a new job, resolving the old one with null', async () => {
    const pool = new MinerPool({ threads: 2, chunkNonces: 1 << 14 })
    try {
      const impossible = pool.mine({ header: template(), commitmentBase: base, target: 0n })
      await until(() => pool.stats().hashes > 0)
      const replaced = pool.mine({ header: template(), commitmentBase: base, target: 0n })
      assert.equal(await impossible, null)
      const atReplace = pool.stats().hashes
      await until(() => pool.stats().hashes > atReplace + 4 * (1 << 14))
      pool.cancel()
      assert.equal(await replaced, null)
      const before = pool.stats().hashes
      assert.ok(before > 0)
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.ok(pool.stats().hashes - before <= 2 * 2 * (1 << 14), 'threads stop within a chunk')
      const seal = await pool.mine({ header: template(), commitmentBase: base, target: 1n << 250n })
      assert.ok(seal !== null, 'the pool mines again after a cancel')
    } finally {
      await pool.close()
    }
  })

  it('refuses a bad thread count with a typed error', () => {
    assert.throws(() => new MinerPool({ threads: 0 }), /LEDGER_CONFIG_INVALID|miner threads/)
  })
})
