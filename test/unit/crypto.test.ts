/** Crypto against published vectors: RFC 8032 (Ed25519), FIPS 180-2 (SHA-256), real Bitcoin headers. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { bytesEqual, bytesKey, CoreError, doubleSha256, fromHex, keyPairFromSeed, nodeIdFromPublicKey, sha256, sha256Hex, sign, toHex, verify, VerifiedSignatures } from '../../src/core/index.js'

// RFC 8032 section 7.1, tests 1-3.
const rfc8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'
  },
  {
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'
  }
]

describe('Ed25519 (RFC 8032 vectors)', () => {
  for (const [index, vector] of rfc8032.entries()) {
    it(`test ${index + 1}: derives the public key, signs, and verifies`, () => {
      const keyPair = keyPairFromSeed(fromHex(vector.seed))
      assert.equal(toHex(keyPair.publicKey), vector.publicKey)
      const message = fromHex(vector.message)
      assert.equal(toHex(sign(keyPair, message)), vector.signature)
      assert.equal(verify(keyPair.publicKey, message, fromHex(vector.signature)), true)
    })
  }

  it('rejects a tampered message, a tampered signature and a short signature', () => {
    const vector = rfc8032[1]!
    const publicKey = fromHex(vector.publicKey)
    const signature = fromHex(vector.signature)
    assert.equal(verify(publicKey, fromHex('73'), signature), false)
    const flipped = new Uint8Array(signature)
    flipped[0] = (flipped[0] ?? 0) ^ 1
    assert.equal(verify(publicKey, fromHex(vector.message), flipped), false)
    assert.equal(verify(publicKey, fromHex(vector.message), signature.subarray(0, 63)), false)
  })

  it('refuses malformed keys with a typed error', () => {
    assert.throws(() => keyPairFromSeed(new Uint8Array(31)), (error: unknown) => error instanceof CoreError && error.code === 'CORE_BAD_KEY')
    assert.throws(() => verify(new Uint8Array(5), new Uint8Array(0), new Uint8Array(64)), (error: unknown) => error instanceof CoreError && error.code === 'CORE_BAD_KEY')
  })

  it('derives node ids from public keys: 20 hex digits of SHA-256, distinct per key', () => {
    const ids = rfc8032.map((vector) => nodeIdFromPublicKey(fromHex(vector.publicKey)))
    for (const id of ids) assert.match(id, /^[0-9a-f]{20}$/)
    assert.equal(new Set(ids).size, ids.length)
    assert.equal(ids[0], toHex(sha256(fromHex(rfc8032[0]!.publicKey))).slice(0, 20))
  })
})

describe('VerifiedSignatures', () => {
  it('answers from memory only for the exact key, message and signature that verified, and forgets the oldest past its capacity', () => {
    const vectors = rfc8032.map((vector) => ({ publicKey: fromHex(vector.publicKey), message: fromHex(vector.message), signature: fromHex(vector.signature) }))
    const signatures = new VerifiedSignatures(2)
    const first = vectors[0]!
    assert.equal(signatures.verify(first.publicKey, first.message, first.signature), true)
    assert.equal(signatures.verify(first.publicKey, first.message, new Uint8Array(first.signature)), true)
    assert.deepEqual(signatures.counts, { verified: 1, remembered: 1 })
    // Another message, another key or a changed signature is verified, and fails.
    assert.equal(signatures.verify(first.publicKey, Uint8Array.of(1), first.signature), false)
    assert.equal(signatures.verify(vectors[1]!.publicKey, first.message, first.signature), false)
    const flipped = new Uint8Array(first.signature)
    flipped[63] = (flipped[63] ?? 0) ^ 1
    assert.equal(signatures.verify(first.publicKey, first.message, flipped), false)
    assert.equal(signatures.verify(first.publicKey, first.message, flipped), false, 'a failure is not remembered as a success')
    assert.deepEqual(signatures.counts, { verified: 5, remembered: 1 })
    // Two more fill the capacity of 2: the first is forgotten and verified again.
    for (const vector of vectors.slice(1, 3)) assert.equal(signatures.verify(vector.publicKey, vector.message, vector.signature), true)
    assert.equal(signatures.verify(first.publicKey, first.message, first.signature), true)
    assert.deepEqual(signatures.counts, { verified: 8, remembered: 1 })
    // The same bytes cut at other places (a 63-byte signature, a 33-byte key) are not the remembered triple: verified, and refused.
    const shiftedSignature = first.signature.subarray(0, 63)
    const shiftedKey = Uint8Array.of(first.signature[63] ?? 0, ...first.publicKey.subarray(0, 31))
    const shiftedMessage = Uint8Array.of(first.publicKey[31] ?? 0, ...first.message)
    assert.equal(signatures.verify(first.publicKey, first.message, first.signature), true)
    assert.equal(signatures.verify(shiftedKey, shiftedMessage, shiftedSignature), false)
    assert.equal(signatures.verify(first.publicKey, first.message, shiftedSignature), false)
    assert.deepEqual(signatures.counts, { verified: 8, remembered: 2 })
    // A signature made here is remembered without a verification.
    const own = keyPairFromSeed(sha256(Uint8Array.of(9)))
    const message = Uint8Array.of(1, 2, 3)
    const signature = sign(own, message)
    signatures.rememberOwn(own, message, signature)
    assert.equal(signatures.verify(own.publicKey, message, signature), true)
    assert.deepEqual(signatures.counts, { verified: 8, remembered: 3 })
  })
})

describe('bytesEqual', () => {
  it('compares length and bytes', () => {
    assert.ok(bytesEqual(new Uint8Array(0), new Uint8Array(0)))
    assert.ok(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)))
    assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)))
    assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0)))
    assert.ok(bytesEqual(Uint8Array.of(0, 5, 6).subarray(1), Uint8Array.of(5, 6)), 'a view and a copy')
  })
})

describe('bytesKey', () => {
  it('gives one key per byte string, the same for a view and a copy of it', () => {
    const all = new Uint8Array(256).map((_, index) => index)
    const keys = new Set<string>()
    const hexes = new Set<string>()
    for (let length = 0; length <= 3; length++) {
      for (let start = 0; start + length <= 256; start += 37) {
        keys.add(bytesKey(all.subarray(start, start + length)))
        hexes.add(toHex(all.subarray(start, start + length)))
      }
    }
    assert.equal(keys.size, hexes.size, 'distinct byte strings, distinct keys')
    const view = all.subarray(100, 132)
    assert.equal(bytesKey(view), bytesKey(view.slice()))
    assert.notEqual(bytesKey(Uint8Array.of(0, 1)), bytesKey(Uint8Array.of(1, 0)))
    assert.equal(bytesKey(Uint8Array.of(0xff, 0x80)).length, 2, 'one character per byte')
  })
})

describe('SHA-256 (FIPS 180-2 vectors) and double SHA-256 (Bitcoin headers)', () => {
  it('hashes the FIPS vectors', () => {
    const text = (value: string): Uint8Array => new TextEncoder().encode(value)
    assert.equal(toHex(sha256(text(''))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(toHex(sha256(text('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    assert.equal(toHex(sha256(text('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1')
  })

  it('gives the same hex in one call (sha256Hex) as toHex(sha256), for views into larger arrays too', () => {
    const text = (value: string): Uint8Array => new TextEncoder().encode(value)
    assert.equal(sha256Hex(text('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    assert.equal(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    const backing = Uint8Array.from({ length: 300 }, (_, index) => index & 0xff)
    for (const [start, end] of [[0, 300], [1, 151], [77, 78], [200, 200]] as const) {
      const view = backing.subarray(start, end)
      assert.equal(sha256Hex(view), toHex(sha256(view)), `bytes ${start}..${end}`)
      assert.equal(sha256Hex(view), toHex(sha256(backing.slice(start, end))), `bytes ${start}..${end}, copied`)
    }
  })

  it('reproduces the hash of every real mainnet header in the fixture', () => {
    const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/bitcoin-mainnet-headers.json', import.meta.url), 'utf8')) as { headers: Array<{ height: number, hex: string, hash: string }> }
    assert.ok(fixture.headers.length > 200)
    for (const header of fixture.headers) {
      const bytes = fromHex(header.hex)
      assert.equal(bytes.length, 80, `header ${header.height} is 80 bytes`)
      const displayed = toHex(doubleSha256(bytes).reverse())
      assert.equal(displayed, header.hash, `header ${header.height}`)
    }
  })
})
