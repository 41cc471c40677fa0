/**
 * The direct CBOR reader against cborg's strict decode, the reference it stands in for: on every
 * input it reads, it must give the value cborg gives; on every input cborg refuses, it must step
 * aside (null), so `decodeCanonical` still refuses it with cborg's error.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decode as cborDecode } from 'cborg'
import { CoreError, decodeCanonical, encodeCanonical, readCbor, toHex } from '../../src/core/index.js'

/** decodeCanonical's options, spelled out: the reference is cborg itself, not the function under test. */
const strict = { strict: true, rejectDuplicateMapKeys: true, allowUndefined: false, allowIndefinite: false, allowInfinity: false, allowNaN: false, useMaps: false }

function reference (bytes: Uint8Array): { value: unknown } | { error: true } {
  try {
    return { value: cborDecode(bytes, strict) }
  } catch {
    return { error: true }
  }
}

/** Values of every kind the encoder writes: in the reader's subset and outside it. */
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' },
    fc.nat(), fc.constantFrom(0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.integer({ min: -1_000, max: -1 }), fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ minLength: 30, maxLength: 80 }),
    fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.constant(null),
    fc.array(tie('node'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'type', 'é')), tie('node'), { maxKeys: 5 }))
})).node

function same (bytes: Uint8Array): void {
  const expected = reference(bytes)
  const direct = readCbor(bytes)
  if ('error' in expected) {
    assert.equal(direct, null, `cborg refuses ${toHex(bytes)}, the reader read ${String(direct?.value)}`)
    assert.throws(() => decodeCanonical(bytes), (error: unknown) => error instanceof CoreError && error.code === 'CORE_DECODE_FAILED')
    return
  }
  if (direct !== null) assert.deepStrictEqual(direct.value, expected.value, toHex(bytes))
  assert.deepStrictEqual(decodeCanonical(bytes), expected.value)
}

describe('the direct CBOR reader', () => {
  it('reads what the encoder writes exactly as cborg does, and most messages without cborg', () => {
    let direct = 0
    const runs = 3_000
    fc.assert(fc.property(value, (input) => {
      let bytes: Uint8Array
      try {
        bytes = encodeCanonical(input)
      } catch {
        return
      }
      same(bytes)
      // Frames arrive as Buffers: a byte string read from one is still a plain Uint8Array, as cborg gives.
      same(Buffer.from(bytes))
      if (readCbor(bytes) !== null) direct++
    }), { numRuns: runs })
    assert.ok(direct > runs / 4, `the reader reads a good share itself (${direct} of ${runs})`)
  })

  it('never accepts what cborg refuses, nor gives another value, on damaged and random bytes', () => {
    fc.assert(fc.property(value, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }), fc.nat(8), (input, flips, cut) => {
      let bytes: Uint8Array
      try {
        bytes = encodeCanonical(input)
      } catch {
        return
      }
      const damaged = new Uint8Array(bytes)
      for (const [at, byte] of flips) damaged[at % damaged.length] = byte
      same(damaged)
      same(bytes.subarray(0, Math.max(0, bytes.length - cut)))
      same(Uint8Array.from([...bytes, cut]))
    }), { numRuns: 3_000 })
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => { same(bytes) }), { numRuns: 3_000 })
  })

  it('steps aside for what cborg refuses: long forms, duplicate keys, trailing bytes, truncation', () => {
    const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/ /g, ''), 'hex'))
    for (const refused of [
      '18 17', // 23 in two bytes
      '19 00ff', // 255 in three bytes
      '1a 0000ffff',
      '1b 00000000ffffffff',
      '78 01 61', // a one-byte text with a long length
      'a2 6161 01 6161 02', // a duplicate key
      '01 02', // trailing bytes
      '82 01', // an array cut short
      '43 0102', // bytes cut short
      'a1 01 01', // a key that is not text
      'f7', // undefined
      '9f ff' // indefinite length
    ]) {
      assert.equal(readCbor(hex(refused)), null, refused)
      assert.throws(() => decodeCanonical(hex(refused)), (error: unknown) => error instanceof CoreError && error.code === 'CORE_DECODE_FAILED', refused)
    }
    // Read directly: the subset.
    assert.deepStrictEqual(readCbor(hex('a3 6161 f5 6162 f6 6163 82 18 18 43 010203')), { value: { a: true, b: null, c: [24, Uint8Array.from([1, 2, 3])] } })
    assert.deepStrictEqual(readCbor(hex('1b 001fffffffffffff')), { value: Number.MAX_SAFE_INTEGER })
    assert.deepStrictEqual(readCbor(hex('1b 0020000000000000')), { value: 2n ** 53n }, 'above 2^53 - 1, a bigint, as cborg gives')
  })

  it('reads long heads and deep nesting as cborg does, or steps aside', () => {
    // 2-, 4-byte lengths (text of 300 and 70 000 bytes, bytes of 70 000), long arrays and maps.
    for (const input of [
      'a'.repeat(300), 'b'.repeat(70_000), new Uint8Array(70_000).fill(5), Array.from({ length: 300 }, (_, index) => index),
      Object.fromEntries(Array.from({ length: 300 }, (_, index) => [`k${index}`, index])), 'é'.repeat(40) + 'a'.repeat(300)
    ]) same(encodeCanonical(input))
    assert.ok(readCbor(encodeCanonical('a'.repeat(70_000))) !== null, 'long ASCII text is read directly')
    // Nesting beyond the reader's depth goes to cborg, and either way the value is cborg's.
    let deep: unknown = 1
    for (let level = 0; level < 100; level++) deep = level % 2 === 0 ? [deep] : { a: deep }
    same(encodeCanonical(deep))
    assert.equal(readCbor(encodeCanonical(deep)), null)
    let shallow: unknown = 1
    for (let level = 0; level < 30; level++) shallow = [shallow]
    assert.ok(readCbor(encodeCanonical(shallow)) !== null)
  })

  it('gives byte strings as copies: a value never aliases the input', () => {
    const bytes = encodeCanonical({ value: Uint8Array.from([1, 2, 3]) })
    const read = readCbor(bytes)?.value as { value: Uint8Array }
    bytes[bytes.length - 1] = 9
    assert.deepStrictEqual(read.value, Uint8Array.from([1, 2, 3]))
  })

  it('gives each short text its own value when texts share a slot of the short-text cache', () => {
    // 20 000 distinct short keys and values over 4 096 slots: many share one. Each is read twice, in
    // an order that interleaves texts of one slot, and each read must give that text, not a neighbour.
    const texts = Array.from({ length: 20_000 }, (_, index) => `k${index.toString(36)}`)
    const encoded = texts.map((text) => encodeCanonical({ [text]: text }))
    for (const round of [0, 1]) {
      for (let index = 0; index < texts.length; index++) {
        const at = round === 0 ? index : (index * 7_919) % texts.length
        const text = texts[at] as string
        assert.deepStrictEqual(readCbor(encoded[at] as Uint8Array)?.value, { [text]: text })
      }
    }
    // Equal bytes give one string (a hit), from a Uint8Array or a Buffer alike.
    const first = readCbor(encodeCanonical('message.type'))?.value
    assert.equal(first, 'message.type')
    assert.equal(readCbor(Buffer.from(encodeCanonical('message.type')))?.value, 'message.type')
  })
})
