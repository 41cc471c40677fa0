/**
 * `writeCbor`'s scratch writer: one buffer reused between calls must never let one call's bytes
 * into another's, whether calls nest, give up (return false) or throw.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CBOR_MAJOR, encodeCanonical, writeCbor, type CborWriter } from '../../src/core/index.js'

/** Writes `[text, bytes]`, as encodeCanonical would. */
const pair = (text: string, bytes: Uint8Array) => (out: CborWriter): boolean => {
  out.head(CBOR_MAJOR.array, 2)
  if (!out.text(text)) return false
  out.byteString(bytes)
  return true
}

describe('writeCbor', () => {
  it('gives encodeCanonical\'s bytes, call after call, for values of any size', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 3_000 })), { minLength: 1, maxLength: 8 }), (values) => {
      for (const [text, bytes] of values) assert.deepStrictEqual(writeCbor(pair(text, bytes)), encodeCanonical([text, bytes]))
    }), { numRuns: 300 })
    // A value past the kept size (1 MiB) is written whole, and the next small one is still exact.
    const big = new Uint8Array(3 * 1_048_576).fill(7)
    assert.deepStrictEqual(writeCbor(pair('big', big)), encodeCanonical(['big', big]))
    assert.deepStrictEqual(writeCbor(pair('a', Uint8Array.of(1))), encodeCanonical(['a', Uint8Array.of(1)]))
  })

  it('keeps nested calls apart: the inner call gets its own writer', () => {
    let inner: Uint8Array | null = null
    const outer = writeCbor((out) => {
      out.head(CBOR_MAJOR.array, 2)
      out.text('outer')
      inner = writeCbor(pair('inner', Uint8Array.of(1, 2, 3)))
      out.byteString(inner ?? new Uint8Array())
      return true
    })
    assert.deepStrictEqual(inner, encodeCanonical(['inner', Uint8Array.of(1, 2, 3)]))
    assert.deepStrictEqual(outer, encodeCanonical(['outer', encodeCanonical(['inner', Uint8Array.of(1, 2, 3)])]))
  })

  it('forgets a call that gave up or threw', () => {
    assert.equal(writeCbor((out) => { out.text('half written'); return false }), null)
    assert.deepStrictEqual(writeCbor(pair('next', Uint8Array.of(9))), encodeCanonical(['next', Uint8Array.of(9)]))
    assert.throws(() => writeCbor((out) => { out.text('then a throw'); throw new Error('boom') }), /boom/)
    assert.deepStrictEqual(writeCbor(pair('after', Uint8Array.of(8))), encodeCanonical(['after', Uint8Array.of(8)]))
  })

  it('gives results that later calls do not overwrite', () => {
    const first = writeCbor(pair('first', Uint8Array.of(1, 1, 1)))
    const copy = first === null ? null : Uint8Array.from(first)
    writeCbor(pair('second, longer than the first', new Uint8Array(100).fill(2)))
    assert.deepStrictEqual(first, copy)
  })
})
