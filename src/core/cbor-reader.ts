/**
 * A direct reader for the CBOR that Synod's messages are made of: unsigned integers, byte strings,
 * ASCII text, arrays, maps with text keys, booleans and null, all of definite length. It gives
 * exactly the value cborg's strict decode gives (`decodeCanonical`), without cborg's token per
 * item, or null when the input is anything else: another kind of item (a negative integer, a
 * float, a tag, non-ASCII text), an integer or length not in its shortest form, a duplicate map
 * key, trailing bytes, a truncated item. Then cborg decides, error and all. So the reader never
 * accepts what cborg refuses, and never gives another value; `test/unit/cbor-reader.test.ts`
 * holds it to that on generated values and on damaged bytes.
 */

/** Nesting the reader follows; deeper input goes to cborg. */
const DEPTH_MAX = 64

const MAJOR_UINT = 0
const MAJOR_BYTES = 2
const MAJOR_TEXT = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const SIMPLE_FALSE = 0xf4
const SIMPLE_TRUE = 0xf5
const SIMPLE_NULL = 0xf6

/** Text up to this many bytes is looked up in `shortTexts` (and built there on a miss); longer text goes through TextDecoder. */
const SHORT_TEXT_BYTES_MAX = 32
const UTF8 = new TextDecoder()

/**
 * Short text read before, in a slot chosen by a hash of its bytes (FNV-1a). Map keys, message
 * types and node ids repeat in every message; without this each read built its string anew (a
 * string per character, profiled as 15% of a store node's allocation). A hit is checked
 * character by character against the bytes, so a slot shared by two strings only costs a miss.
 */
const SHORT_TEXT_SLOTS = 4_096
const shortTexts: Array<string | undefined> = new Array<string | undefined>(SHORT_TEXT_SLOTS).fill(undefined)

/** Thrown inside the reader when the input leaves the subset; never escapes `readCbor`. */
const OUTSIDE = Symbol('outside the subset')

class Reader {
  position = 0

  constructor (private readonly bytes: Uint8Array) {}

  /** The argument of an item whose initial byte was just read, checked to be in its shortest form. */
  argument (info: number): number | bigint {
    const bytes = this.bytes
    if (info < 24) return info
    let value: number
    switch (info) {
      case 24:
        if (this.position + 1 > bytes.length) throw OUTSIDE
        value = bytes[this.position++] as number
        if (value < 24) throw OUTSIDE
        return value
      case 25:
        if (this.position + 2 > bytes.length) throw OUTSIDE
        value = ((bytes[this.position] as number) << 8) | (bytes[this.position + 1] as number)
        this.position += 2
        if (value < 0x100) throw OUTSIDE
        return value
      case 26:
        if (this.position + 4 > bytes.length) throw OUTSIDE
        value = this.uint32(this.position)
        this.position += 4
        if (value < 0x10000) throw OUTSIDE
        return value
      case 27: {
        if (this.position + 8 > bytes.length) throw OUTSIDE
        const high = this.uint32(this.position)
        const low = this.uint32(this.position + 4)
        this.position += 8
        if (high === 0) throw OUTSIDE
        // As cborg: a number while it is exact, a bigint above.
        if (high < 0x200000) return high * 0x100000000 + low
        return (BigInt(high) << 32n) | BigInt(low)
      }
      default:
        throw OUTSIDE
    }
  }

  /** A length or count: an argument that indexes into the input, or the input is outside the subset. */
  length (info: number): number {
    const value = this.argument(info)
    if (typeof value !== 'number' || value > this.bytes.length) throw OUTSIDE
    return value
  }

  item (depth: number): unknown {
    const bytes = this.bytes
    if (this.position >= bytes.length || depth > DEPTH_MAX) throw OUTSIDE
    const initial = bytes[this.position++] as number
    const major = initial >>> 5
    const info = initial & 0x1f
    switch (major) {
      case MAJOR_UINT:
        return this.argument(info)
      case MAJOR_BYTES: {
        const length = this.length(info)
        if (this.position + length > bytes.length) throw OUTSIDE
        // A copy into a plain Uint8Array (never a Buffer view), as cborg gives: the value must not pin or alias the input.
        const value = new Uint8Array(bytes.subarray(this.position, this.position + length))
        this.position += length
        return value
      }
      case MAJOR_TEXT:
        return this.text(info)
      case MAJOR_ARRAY: {
        const count = this.length(info)
        const value: unknown[] = []
        for (let index = 0; index < count; index++) value.push(this.item(depth + 1))
        return value
      }
      case MAJOR_MAP: {
        const count = this.length(info)
        const value: Record<string, unknown> = {}
        for (let index = 0; index < count; index++) {
          if (this.position >= bytes.length) throw OUTSIDE
          const keyInitial = bytes[this.position++] as number
          if (keyInitial >>> 5 !== MAJOR_TEXT) throw OUTSIDE
          const key = this.text(keyInitial & 0x1f)
          // A duplicate is cborg's to refuse; __proto__ cannot be assigned as a plain key.
          if (key === '__proto__' || Object.hasOwn(value, key)) throw OUTSIDE
          value[key] = this.item(depth + 1)
        }
        return value
      }
      default:
        if (initial === SIMPLE_FALSE) return false
        if (initial === SIMPLE_TRUE) return true
        if (initial === SIMPLE_NULL) return null
        throw OUTSIDE
    }
  }

  /** ASCII text; any other byte leaves the subset (cborg's UTF-8 decoding decides then). */
  private text (info: number): string {
    const bytes = this.bytes
    const length = this.length(info)
    const start = this.position
    const end = start + length
    if (end > bytes.length) throw OUTSIDE
    this.position = end
    if (length > SHORT_TEXT_BYTES_MAX) {
      for (let index = start; index < end; index++) if ((bytes[index] as number) > 0x7f) throw OUTSIDE
      // Longer ASCII text is decoded in one call (for ASCII, UTF-8 is the identity).
      return UTF8.decode(bytes.subarray(start, end))
    }
    let hash = 0x811c9dc5
    for (let index = start; index < end; index++) {
      const code = bytes[index] as number
      if (code > 0x7f) throw OUTSIDE
      hash = Math.imul(hash ^ code, 0x01000193)
    }
    const slot = (hash >>> 0) % SHORT_TEXT_SLOTS
    const cached = shortTexts[slot]
    if (cached !== undefined && cached.length === length && sameText(cached, bytes, start)) return cached
    let text = ''
    for (let index = start; index < end; index++) text += String.fromCharCode(bytes[index] as number)
    shortTexts[slot] = text
    return text
  }

  private uint32 (at: number): number {
    const bytes = this.bytes
    return (((bytes[at] as number) << 24) >>> 0) + ((bytes[at + 1] as number) << 16) + ((bytes[at + 2] as number) << 8) + (bytes[at + 3] as number)
  }
}

/** Whether `text` has the character codes of `bytes` from `start` on, for its whole length. */
function sameText (text: string, bytes: Uint8Array, start: number): boolean {
  for (let index = 0; index < text.length; index++) {
    if (text.charCodeAt(index) !== bytes[start + index]) return false
  }
  return true
}

/** The value of one CBOR item filling `bytes`, as cborg's strict decode gives it; null when the input is outside the subset. */
export function readCbor (bytes: Uint8Array): { value: unknown } | null {
  const reader = new Reader(bytes)
  try {
    const value = reader.item(0)
    return reader.position === bytes.length ? { value } : null
  } catch (error) {
    if (error === OUTSIDE) return null
    throw error
  }
}
