/**
 * A direct writer of deterministic CBOR (RFC 8949 core deterministic encoding), for the few hot
 * values whose shape is fixed: a caller writes the items in canonical order itself (map keys
 * sorted by their encoded bytes: for ASCII text keys, the shorter first, then by character) and
 * gets exactly the bytes `encodeCanonical` would give, without cborg's token tree and key sorting.
 * Each user keeps `encodeCanonical` as the reference and a property test that both agree; a value
 * outside the shape a writer knows goes to `encodeCanonical`.
 */

/** RFC 8949 major types, shifted into the initial byte. */
export const CBOR_MAJOR = Object.freeze({ uint: 0x00, bytes: 0x40, text: 0x60, array: 0x80, map: 0xa0 })
export const CBOR_NULL = 0xf6
export const CBOR_FALSE = 0xf4
export const CBOR_TRUE = 0xf5
const TEXT_ENCODER = new TextEncoder()
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
/** CBOR's largest unsigned integer (2^64 - 1). */
export const CBOR_UINT_MAX = (1n << 64n) - 1n

/** The encoded bytes of a text string: a map key written once, copied on every use. */
export function cborText (text: string): Uint8Array {
  const bytes = TEXT_ENCODER.encode(text)
  const writer = new CborWriter(bytes.length + 9)
  writer.head(CBOR_MAJOR.text, bytes.length)
  writer.raw(bytes)
  return writer.finish()
}

/** A scratch writer's buffer is kept between uses up to this size; a larger one (a big value) is dropped after its use. */
const SCRATCH_BYTES_KEPT_MAX = 1_048_576
const SCRATCH_BYTES_INITIAL = 4_096
/** The writer kept between calls; null while a call holds it, so a nested call makes its own. */
let scratch: CborWriter | null = null

/**
 * Runs `write` on a writer and gives the bytes written, or null when `write` returns false (the
 * value is outside its shape). The writer is one scratch buffer kept for the next call, so a
 * message costs one allocation, its result, instead of a working buffer too (above 64 bytes each
 * is an ArrayBuffer outside V8's heap, about 0.8 us to make). A call inside `write` (nesting) gets
 * a writer of its own; a call that gives up or throws leaves nothing for the next.
 */
export function writeCbor (write: (out: CborWriter) => boolean, capacityBytes = 256): Uint8Array | null {
  const out = scratch ?? new CborWriter(Math.max(SCRATCH_BYTES_INITIAL, capacityBytes))
  scratch = null
  try {
    out.reset()
    return write(out) ? out.finish() : null
  } finally {
    if (out.capacityBytes() <= SCRATCH_BYTES_KEPT_MAX) scratch = out
  }
}

export class CborWriter {
  private bytes: Uint8Array
  private length = 0

  constructor (capacityBytes = 256) {
    this.bytes = new Uint8Array(capacityBytes)
  }

  /** Forgets what was written, keeping the buffer. */
  reset (): void {
    this.length = 0
  }

  capacityBytes (): number {
    return this.bytes.length
  }

  /** The bytes written, copied out. */
  finish (): Uint8Array {
    return this.bytes.slice(0, this.length)
  }

  /** An item's initial byte and argument (0 <= argument <= 2^53 - 1), in the fewest bytes. */
  head (major: number, argument: number): void {
    this.reserve(9)
    if (argument < 24) this.bytes[this.length++] = major | argument
    else if (argument < 0x100) {
      this.bytes[this.length++] = major | 24
      this.bytes[this.length++] = argument
    } else if (argument < 0x10000) {
      this.bytes[this.length++] = major | 25
      this.bytes[this.length++] = argument >>> 8
      this.bytes[this.length++] = argument & 0xff
    } else if (argument < 0x100000000) {
      this.bytes[this.length++] = major | 26
      this.uint32(argument)
    } else {
      this.bytes[this.length++] = major | 27
      this.uint32(Math.floor(argument / 0x100000000))
      this.uint32(argument >>> 0)
    }
  }

  /** An unsigned integer given as a number: false unless it is a safe integer >= 0. */
  uint (value: number): boolean {
    if (!Number.isSafeInteger(value) || value < 0) return false
    this.head(CBOR_MAJOR.uint, value)
    return true
  }

  /** An unsigned integer given as a bigint: false unless 0 <= value < 2^64 (cborg writes it as an integer then). */
  bigUint (value: bigint): boolean {
    if (value < 0n || value > CBOR_UINT_MAX) return false
    if (value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      this.head(CBOR_MAJOR.uint, Number(value))
      return true
    }
    this.reserve(9)
    this.bytes[this.length++] = CBOR_MAJOR.uint | 27
    this.uint32(Number(value >> 32n))
    this.uint32(Number(value & 0xffffffffn))
    return true
  }

  /** A text string as UTF-8; false for one with a lone surrogate (UTF-8 cannot hold it: the general encoder decides). */
  text (text: string): boolean {
    // ASCII, the usual case, is written as it is read; at the first other character the writer rewinds.
    const start = this.length
    this.head(CBOR_MAJOR.text, text.length)
    this.reserve(text.length)
    let index = 0
    for (; index < text.length; index++) {
      const code = text.charCodeAt(index)
      if (code > 0x7f) break
      this.bytes[this.length++] = code
    }
    if (index === text.length) return true
    this.length = start
    if (LONE_SURROGATE.test(text)) return false
    const utf8 = TEXT_ENCODER.encode(text)
    this.head(CBOR_MAJOR.text, utf8.length)
    this.raw(utf8)
    return true
  }

  /** A byte string. */
  byteString (bytes: Uint8Array): void {
    this.head(CBOR_MAJOR.bytes, bytes.length)
    this.raw(bytes)
  }

  /** Bytes already encoded (a key from `cborText`, a nested item). */
  raw (bytes: Uint8Array): void {
    this.reserve(bytes.length)
    this.bytes.set(bytes, this.length)
    this.length += bytes.length
  }

  byte (value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  /** Big-endian, as CBOR's arguments are. */
  private uint32 (value: number): void {
    this.bytes[this.length++] = value >>> 24
    this.bytes[this.length++] = (value >>> 16) & 0xff
    this.bytes[this.length++] = (value >>> 8) & 0xff
    this.bytes[this.length++] = value & 0xff
  }

  private reserve (count: number): void {
    if (this.length + count <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + count))
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }
}
