/** The libp2p frame format against the reference implementation, it-length-prefixed. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as lengthPrefixed from 'it-length-prefixed'
import { TransportError } from '../../src/core/index.js'
import { FrameReader, encodeFrame } from '../../src/node/frames.js'

const isCode = (code: string) => (error: unknown): boolean => error instanceof TransportError && error.code === code

describe('libp2p frames', () => {
  it('encodes exactly as it-length-prefixed does', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 70_000 }), (payload) => {
      assert.deepEqual(encodeFrame(payload), lengthPrefixed.encode.single(payload).subarray())
    }), { numRuns: 200 })
  })

  it('reads any split of a stream of frames back into the same payloads', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (payloads, cuts) => {
      const stream = Buffer.concat(payloads.map((payload) => lengthPrefixed.encode.single(payload).subarray()))
      const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b)
      const reader = new FrameReader(1_024)
      const out: Uint8Array[] = []
      let from = 0
      for (const point of [...points, stream.length]) {
        out.push(...reader.push(stream.subarray(from, point)))
        from = point
      }
      assert.deepEqual(out.map((payload) => Buffer.from(payload).toString('hex')), payloads.map((payload) => Buffer.from(payload).toString('hex')))
    }), { numRuns: 300 })
  })

  it('refuses a length over the limit before its payload arrives', () => {
    const reader = new FrameReader(100)
    assert.throws(() => reader.push(lengthPrefixed.encode.single(new Uint8Array(101)).subarray().subarray(0, 2)), isCode('TRANSPORT_FRAME_TOO_LARGE'))
    assert.deepEqual(new FrameReader(100).push(encodeFrame(new Uint8Array(100))).map((payload) => payload.length), [100])
  })

  it('refuses an over-long length prefix as garbage', () => {
    assert.throws(() => new FrameReader(2 ** 40).push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), isCode('TRANSPORT_BAD_FRAME'))
  })

  it('waits for the rest of an incomplete prefix or payload', () => {
    const reader = new FrameReader(1_000)
    const frame = encodeFrame(new Uint8Array(300).fill(7))
    assert.deepEqual(reader.push(frame.subarray(0, 1)), [])
    assert.deepEqual(reader.push(frame.subarray(1, 200)), [])
    const done = reader.push(frame.subarray(200))
    assert.equal(done.length, 1)
    assert.equal(done[0]?.length, 300)
  })
})
