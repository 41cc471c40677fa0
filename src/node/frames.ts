/**
 * Frames on a libp2p stream: an unsigned LEB128 (varint) length, then that many payload bytes.
 * This is it-length-prefixed's wire format (the libp2p convention), read synchronously from
 * stream 'message' events rather than through an async iterator per frame, which dominated the
 * cost of small messages. A length over `frameBytesMax` is refused before its payload is read.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { encode as encodeVarint, encodingLength } from 'uint8-varint'
import { TransportError } from '../core/index.js'

/** A varint longer than this cannot encode a length below 2^35 and is refused as garbage. */
const LENGTH_PREFIX_BYTES_MAX = 5

export function encodeFrame (payload: Uint8Array): Uint8Array {
  const prefixBytes = encodingLength(payload.length)
  const frame = new Uint8Array(prefixBytes + payload.length)
  encodeVarint(payload.length, frame, 0)
  frame.set(payload, prefixBytes)
  return frame
}

export class FrameReader {
  private readonly buffer = new Uint8ArrayList()

  constructor (private readonly frameBytesMax: number) {}

  /** Appends bytes and returns every complete payload; throws a `TransportError` on a bad prefix. */
  push (chunk: Uint8Array | Uint8ArrayList): Uint8Array[] {
    this.buffer.append(chunk)
    const payloads: Uint8Array[] = []
    for (;;) {
      const prefix = this.readLength()
      if (prefix === null) break
      const [length, prefixBytes] = prefix
      if (this.buffer.byteLength < prefixBytes + length) break
      payloads.push(this.buffer.subarray(prefixBytes, prefixBytes + length))
      this.buffer.consume(prefixBytes + length)
    }
    return payloads
  }

  /** The next frame's [length, prefix bytes], or null while the prefix is incomplete. */
  private readLength (): [number, number] | null {
    let length = 0
    for (let index = 0; index < LENGTH_PREFIX_BYTES_MAX; index++) {
      if (index >= this.buffer.byteLength) return null
      const byte = this.buffer.get(index)
      length += (byte & 0x7f) * 2 ** (7 * index)
      if (length > this.frameBytesMax) {
        throw new TransportError('TRANSPORT_FRAME_TOO_LARGE', `frame of ${length}+ bytes is over messageBytesMax ${this.frameBytesMax}`, { messageBytesMax: this.frameBytesMax })
      }
      if ((byte & 0x80) === 0) return [length, index + 1]
    }
    throw new TransportError('TRANSPORT_BAD_FRAME', `length prefix longer than ${LENGTH_PREFIX_BYTES_MAX} bytes`)
  }
}
