/**
 * Ed25519 and SHA-256 over node:crypto (native, fast). The only protocol-side module allowed to
 * import node:crypto; it is pure computation, no IO and no ambient randomness: key material comes
 * in as a 32-byte seed chosen by the caller (the real node draws it from the OS, the simulator
 * from its seeded generator).
 */
import * as nodeCrypto from 'node:crypto'
import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject, type Hash } from 'node:crypto'
import { CoreError } from './errors.js'

export type NodeId = string

const ED25519_SEED_BYTES = 32
const ED25519_PUBLIC_KEY_BYTES = 32
const ED25519_SIGNATURE_BYTES = 64
/** DER prefix of a PKCS#8 Ed25519 private key (RFC 8410), followed by the 32-byte seed. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
/** DER prefix of an SPKI Ed25519 public key (RFC 8410), followed by the 32-byte key. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/** Bytes of SHA-256(public key) that make a node id (80 bits, hex). */
const NODE_ID_BYTES = 10

export interface Ed25519KeyPair {
  readonly seed: Uint8Array
  readonly publicKey: Uint8Array
  readonly privateKeyObject: KeyObject
}

export function keyPairFromSeed (seed: Uint8Array): Ed25519KeyPair {
  if (seed.length !== ED25519_SEED_BYTES) {
    throw new CoreError('CORE_BAD_KEY', `an Ed25519 seed is ${ED25519_SEED_BYTES} bytes, got ${seed.length}`)
  }
  const privateKeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const spki = createPublicKey(privateKeyObject).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(spki.length - ED25519_PUBLIC_KEY_BYTES))
  return { seed: new Uint8Array(seed), publicKey, privateKeyObject }
}

const publicKeyCache = new Map<string, KeyObject>()
const PUBLIC_KEY_CACHE_ENTRIES_MAX = 4096

/** Whether two byte strings are equal: the same length and the same bytes (not constant-time). */
export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false
  return true
}

/** A compact map key for a byte string, one character per byte (no copy, no hex). */
export function bytesKey (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
}

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new CoreError('CORE_BAD_KEY', `an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${publicKey.length}`)
  }
  const cacheKey = bytesKey(publicKey)
  let key = publicKeyCache.get(cacheKey)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' })
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_ENTRIES_MAX) publicKeyCache.clear()
    publicKeyCache.set(cacheKey, key)
  }
  return key
}

export function sign (keyPair: Ed25519KeyPair, message: Uint8Array): Uint8Array {
  return new Uint8Array(edSign(null, message, keyPair.privateKeyObject))
}

/** False for a bad signature; throws `CORE_BAD_KEY` only for a malformed public key. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false
  return edVerify(null, message, publicKeyObject(publicKey), signature)
}

/**
 * Signatures verified here, each remembered with its public key and message: the same signed
 * statement met again (a copy of a message, one replayed after the node caught up, a vote met
 * again inside a commit certificate) is not verified a second time. Only exact (key, message,
 * signature) triples that verified are kept, so an answer from memory is the answer `verify`
 * gives. Bounded: beyond `capacity` the oldest are forgotten.
 */
export class VerifiedSignatures {
  private readonly seen = new Set<string>()
  /** Verifications done, and answers given from memory instead. */
  readonly counts = { verified: 0, remembered: 0 }

  constructor (readonly capacity: number) {}

  verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    // Another length is refused (or thrown on) by `verify`; it never reaches the memory, whose keys rely on these lengths.
    if (publicKey.length !== ED25519_PUBLIC_KEY_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return verify(publicKey, message, signature)
    const key = tripleKey(publicKey, message, signature)
    if (this.seen.has(key)) {
      this.counts.remembered++
      return true
    }
    this.counts.verified++
    if (!verify(publicKey, message, signature)) return false
    this.keep(key)
    return true
  }

  /** A signature this node made with its own key (`sign`'s result): met again, it is not verified. */
  rememberOwn (keyPair: Ed25519KeyPair, message: Uint8Array, signature: Uint8Array): void {
    if (keyPair.publicKey.length !== ED25519_PUBLIC_KEY_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return
    this.keep(tripleKey(keyPair.publicKey, message, signature))
  }

  private keep (key: string): void {
    this.seen.delete(key)
    this.seen.add(key)
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value as string)
  }
}

/** A verified triple's key: the signature and the key have fixed lengths (64 and 32 bytes; others are never kept), so the concatenation is unambiguous. */
function tripleKey (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string {
  return bytesKey(signature) + bytesKey(publicKey) + bytesKey(message)
}

/** `verify`, through `signatures` when there is one (a triple verified there before is not verified again). */
export function verifyWith (signatures: VerifiedSignatures | undefined, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return signatures === undefined ? verify(publicKey, message, signature) : signatures.verify(publicKey, message, signature)
}

/** The one-shot `crypto.hash` (Node 20.12 and later) costs about 2/3 of a `createHash` object for small inputs. */
const oneShotHash = (nodeCrypto as { hash?: { (algorithm: string, data: Uint8Array, encoding: 'buffer'): Buffer, (algorithm: string, data: Uint8Array, encoding: 'hex'): string } }).hash

export function sha256 (data: Uint8Array): Uint8Array {
  if (oneShotHash === undefined) return new Uint8Array(createHash('sha256').update(data).digest())
  const digest = oneShotHash('sha256', data, 'buffer')
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.length)
}

/** SHA-256 as lowercase hex (`toHex(sha256(data))`), in one call: no digest array to build and read again. */
export function sha256Hex (data: Uint8Array): string {
  if (oneShotHash === undefined) return createHash('sha256').update(data).digest('hex')
  return oneShotHash('sha256', data, 'hex')
}

/** Bitcoin's hash: SHA-256 applied twice. */
export function doubleSha256 (data: Uint8Array): Uint8Array {
  return sha256(sha256(data))
}

/** An incremental SHA-256, for hashing long streams such as a simulation trace. */
export interface Hasher {
  update (data: Uint8Array | string): Hasher
  digestHex (): string
}

export function createHasher (): Hasher {
  const hash: Hash = createHash('sha256')
  const hasher: Hasher = {
    update (data) { hash.update(data); return hasher },
    digestHex () { return hash.digest('hex') }
  }
  return hasher
}

export function nodeIdFromPublicKey (publicKey: Uint8Array): NodeId {
  return toHex(sha256(publicKey).subarray(0, NODE_ID_BYTES))
}

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex (hex: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new CoreError('CORE_DECODE_FAILED', 'not a hex string', { length: hex.length })
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** A fresh secret for an admin API: 32 random bytes, base64url (43 characters). */
export function newAdminToken (): string {
  return nodeCrypto.randomBytes(32).toString('base64url')
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`, compared in constant time (digests
 * of equal length, so neither the token's length nor its prefix leaks through timing).
 */
export function bearerTokenMatches (header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false
  const offered = nodeCrypto.createHash('sha256').update(header.slice('Bearer '.length).trim()).digest()
  const expected = nodeCrypto.createHash('sha256').update(token).digest()
  return nodeCrypto.timingSafeEqual(offered, expected)
}
