/** The canonical codec and the schema check every message passes before a protocol sees it. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encode as cborEncode, rfc8949EncodeOptions } from 'cborg'
import { z } from 'zod'
import { CoreError, MessageRegistry, decodeCanonical, defineMessage, encodeCanonical, toHex } from '../../src/core/index.js'

const sample = defineMessage('sample.put', { key: z.string().max(64), value: z.instanceof(Uint8Array), version: z.number().int().nonnegative() })
const registry = new MessageRegistry([sample])
const isCode = (code: string) => (error: unknown): boolean => error instanceof CoreError && error.code === code

describe('canonical CBOR', () => {
  it('encodes maps with sorted keys, so key order never changes the bytes (RFC 8949 4.2.1)', () => {
    assert.equal(toHex(encodeCanonical({ b: 1, a: 2 })), toHex(encodeCanonical({ a: 2, b: 1 })))
    assert.equal(toHex(encodeCanonical({ a: 1, b: [true, null] })), 'a2616101616282f5f6')
  })

  it('round-trips any JSON-like value, and equal values give equal bytes', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => {
      const bytes = encodeCanonical(value)
      const again = encodeCanonical(decodeCanonical(bytes))
      assert.equal(toHex(again), toHex(bytes))
    }), { numRuns: 300 })
  })

  it('orders map keys exactly as cborg\'s RFC 8949 sorter does (the ASCII fast path included)', () => {
    // Keys of every kind: ASCII of equal and unequal length, non-ASCII, astral characters.
    const key = fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 4 }), fc.constantFrom('', 'a', 'b', 'aa', 'é', '\u{1F600}', '\uE000', 'z'.repeat(30)))
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, fc.integer(), fc.string(), fc.dictionary(key, tie('node'), { maxKeys: 8 }), fc.array(tie('node'), { maxLength: 3 }))
    })).node
    fc.assert(fc.property(value, (input) => {
      assert.equal(toHex(encodeCanonical(input)), toHex(cborEncode(input, rfc8949EncodeOptions)))
    }), { numRuns: 500 })
    assert.equal(toHex(encodeCanonical({ bb: 1, c: 2, a: 3 })), 'a3616103616302626262' + '01', 'shorter keys first, then bytewise')
  })

  it('refuses undefined at encode time with a typed error', () => {
    assert.throws(() => encodeCanonical({ a: undefined }), isCode('CORE_ENCODE_FAILED'))
  })

  it('refuses non-canonical and malformed input', () => {
    assert.throws(() => decodeCanonical(new Uint8Array([0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02])), isCode('CORE_DECODE_FAILED'), 'duplicate map key')
    assert.throws(() => decodeCanonical(new Uint8Array([0x18, 0x01])), isCode('CORE_DECODE_FAILED'), 'integer not in its shortest form')
    assert.throws(() => decodeCanonical(new Uint8Array([0x01, 0x02])), isCode('CORE_DECODE_FAILED'), 'trailing bytes')
    assert.throws(() => decodeCanonical(new Uint8Array([0x9f, 0x01, 0xff])), isCode('CORE_DECODE_FAILED'), 'indefinite length')
    assert.throws(() => decodeCanonical(new Uint8Array([0xff])), isCode('CORE_DECODE_FAILED'), 'lone break')
  })
})

describe('message registry', () => {
  const good = { type: 'sample.put', key: 'k', value: new Uint8Array([1, 2, 3]), version: 3 }

  it('round-trips a valid message', () => {
    assert.deepEqual(registry.decode(registry.encode(good)), good)
  })

  it('refuses unknown types on both ends', () => {
    assert.throws(() => registry.encode({ type: 'nope' }), isCode('CORE_UNKNOWN_MESSAGE_TYPE'))
    assert.throws(() => registry.decode(encodeCanonical({ type: 'nope' })), isCode('CORE_UNKNOWN_MESSAGE_TYPE'))
  })

  it('refuses messages that do not match their schema', () => {
    const cases: unknown[] = [
      [1, 2],
      'text',
      { key: 'k' },
      { ...good, version: -1 },
      { ...good, version: 1.5 },
      { ...good, key: 'x'.repeat(65) },
      { ...good, value: 'not bytes' },
      { ...good, extra: true }
    ]
    for (const value of cases) assert.throws(() => registry.decode(encodeCanonical(value)), isCode('CORE_SCHEMA_MISMATCH'), JSON.stringify(value))
  })

  it('refuses with a CoreError a byte string where a read-only list belongs (zod itself throws a TypeError there)', () => {
    const listed = new MessageRegistry([defineMessage('sample.list', { items: z.array(z.number()).readonly() })])
    assert.deepEqual(listed.decode(encodeCanonical({ type: 'sample.list', items: [1] })), { type: 'sample.list', items: [1] })
    assert.throws(() => listed.decode(encodeCanonical({ type: 'sample.list', items: new Uint8Array([1, 2]) })), isCode('CORE_SCHEMA_MISMATCH'))
  })

  it('uses a message\'s own check and writer, and refuses with a CoreError when the check throws', () => {
    const checked = new MessageRegistry([{
      ...sample,
      write: () => Uint8Array.of(0xa0),
      check: (value) => value.key === 'boom' ? (() => { throw new TypeError('boom') })() : value.key === 'bad' ? { problem: 'key: not bad' } : { message: value as unknown as typeof good }
    }])
    assert.deepEqual([...checked.encode(good)], [0xa0], 'the writer\'s bytes')
    assert.equal(checked.decode(encodeCanonical(good)).type, 'sample.put')
    assert.throws(() => checked.decode(encodeCanonical({ ...good, key: 'bad' })), (error: unknown) => isCode('CORE_SCHEMA_MISMATCH')(error) && /key: not bad/.test((error as Error).message))
    assert.throws(() => checked.decode(encodeCanonical({ ...good, key: 'boom' })), isCode('CORE_SCHEMA_MISMATCH'))
  })

  it('never throws anything but a CoreError on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      try {
        registry.decode(bytes)
      } catch (error) {
        assert.ok(error instanceof CoreError, String(error))
      }
    }), { numRuns: 2_000 })
  })
})
