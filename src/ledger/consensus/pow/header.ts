/**
 * The 80-byte proof-of-work header, Bitcoin's layout: version, parent hash, a 32-byte commitment
 * (Bitcoin: the transaction Merkle root; Synod: the hash of the rest of its block header), time,
 * compact target bits and nonce, integers little-endian. Its hash is double SHA-256; hashes are
 * compared as little-endian 256-bit numbers and shown byte-reversed, as Bitcoin does.
 */
import { doubleSha256, sha256, toHex } from '../../../core/index.js'
import { LedgerError } from '../../errors.js'

export const WORK_HEADER_BYTES = 80
export const HASH_BYTES = 32
/** Where the nonce sits: the last 4 bytes, in the second SHA-256 block (bytes 64..79). */
export const NONCE_OFFSET = 76

export interface WorkHeader {
  version: number
  /** Parent hash in internal (hashed) byte order. */
  parent: Uint8Array
  /** Commitment to the rest of the block, internal byte order. */
  commitment: Uint8Array
  /** Seconds since the epoch (uint32). */
  time: number
  bits: number
  nonce: number
}

export function encodeWorkHeader (header: WorkHeader): Uint8Array {
  if (header.parent.length !== HASH_BYTES || header.commitment.length !== HASH_BYTES) {
    throw new LedgerError('LEDGER_MALFORMED', 'parent and commitment must be 32 bytes')
  }
  const bytes = new Uint8Array(WORK_HEADER_BYTES)
  const view = new DataView(bytes.buffer)
  view.setInt32(0, header.version, true)
  bytes.set(header.parent, 4)
  bytes.set(header.commitment, 36)
  view.setUint32(68, header.time, true)
  view.setUint32(72, header.bits, true)
  view.setUint32(NONCE_OFFSET, header.nonce, true)
  return bytes
}

export function decodeWorkHeader (bytes: Uint8Array): WorkHeader {
  if (bytes.length !== WORK_HEADER_BYTES) throw new LedgerError('LEDGER_MALFORMED', `a work header is ${WORK_HEADER_BYTES} bytes, not ${bytes.length}`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return {
    version: view.getInt32(0, true),
    parent: bytes.slice(4, 36),
    commitment: bytes.slice(36, 68),
    time: view.getUint32(68, true),
    bits: view.getUint32(72, true),
    nonce: view.getUint32(NONCE_OFFSET, true)
  }
}

/** Extra nonces are whole numbers below 2^53, written as 8 bytes big-endian. */
export const EXTRA_NONCE_BYTES = 8

/**
 * The commitment a work header carries: SHA-256 of the block's own commitment and an extra
 * nonce. A miner that has tried all 2^32 nonces rolls the extra nonce, which gives a fresh
 * header without rebuilding the block.
 */
export function workCommitment (base: Uint8Array, extraNonce: number): Uint8Array {
  if (!Number.isSafeInteger(extraNonce) || extraNonce < 0) throw new RangeError(`extra nonce ${extraNonce} is not a whole number below 2^53`)
  const input = new Uint8Array(base.length + EXTRA_NONCE_BYTES)
  input.set(base)
  new DataView(input.buffer).setBigUint64(base.length, BigInt(extraNonce), false)
  return sha256(input)
}

/** Double SHA-256 of the 80 bytes, internal byte order. */
export function workHash (bytes: Uint8Array): Uint8Array {
  return doubleSha256(bytes)
}

/** A hash read as Bitcoin reads it: a little-endian 256-bit number. */
export function hashToNumber (hash: Uint8Array): bigint {
  return BigInt('0x' + (toHex(reversed(hash)) || '0'))
}

/** Whether a hash meets a target (hash <= target). */
export function meetsTarget (hash: Uint8Array, target: bigint): boolean {
  return hashToNumber(hash) <= target
}

/** The display form of a hash: byte-reversed hex, as block explorers show it. */
export function displayHash (hash: Uint8Array): string {
  return toHex(reversed(hash))
}

function reversed (bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes).reverse()
}
