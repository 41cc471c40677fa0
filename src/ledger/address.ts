/** Account addresses: the first 20 bytes of SHA-256 of an Ed25519 public key, in hex. */
import { sha256, toHex } from '../core/index.js'

export type Address = string

export const ADDRESS_BYTES = 20
export const ADDRESS_PATTERN = /^[0-9a-f]{40}$/

export function addressFromPublicKey (publicKey: Uint8Array): Address {
  return toHex(sha256(publicKey).subarray(0, ADDRESS_BYTES))
}
