/**
 * Bitcoin's compact target encoding ("nBits"), exactly as `arith_uint256::SetCompact` and
 * `GetCompact` in Bitcoin Core: a one-byte size (in bytes) and a 23-bit mantissa with a sign
 * bit. A compact value can be negative (the sign bit with a non-zero mantissa) or overflow
 * (a value that does not fit in 256 bits); consensus treats both as invalid, so the decoder
 * reports them instead of guessing.
 */

export interface DecodedCompact {
  /** The magnitude: the target when neither flag is set. */
  target: bigint
  negative: boolean
  overflow: boolean
}

const MANTISSA_MASK = 0x007fffff
const SIGN_BIT = 0x00800000
const UINT256_BITS = 256n

export function decodeCompact (compact: number): DecodedCompact {
  const size = compact >>> 24
  let word = compact & MANTISSA_MASK
  let target: bigint
  if (size <= 3) {
    word >>>= 8 * (3 - size)
    target = BigInt(word)
  } else {
    target = BigInt(word) << BigInt(8 * (size - 3))
  }
  const negative = word !== 0 && (compact & SIGN_BIT) !== 0
  const overflow = word !== 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32))
  // Core's arith_uint256 silently keeps the low 256 bits of an overflowing value.
  if (overflow) target &= (1n << UINT256_BITS) - 1n
  return { target, negative, overflow }
}

/** The compact form of a non-negative target below 2^256 (with the sign bit when `negative`). */
export function encodeCompact (target: bigint, negative = false): number {
  if (target < 0n || target >= 1n << UINT256_BITS) throw new RangeError(`target out of range: ${target}`)
  let size = byteLength(target)
  let mantissa = size <= 3 ? Number(target << BigInt(8 * (3 - size))) : Number(target >> BigInt(8 * (size - 3)))
  // The 0x00800000 bit is the sign: a mantissa that would set it moves one byte down.
  if ((mantissa & SIGN_BIT) !== 0) {
    mantissa >>>= 8
    size++
  }
  let compact = mantissa | (size << 24)
  if (negative && (mantissa & MANTISSA_MASK) !== 0) compact |= SIGN_BIT
  return compact >>> 0
}

function byteLength (value: bigint): number {
  let bytes = 0
  for (let rest = value; rest > 0n; rest >>= 8n) bytes++
  return bytes
}
