/** Node keys on disk: a 32-byte Ed25519 seed drawn from the OS, in a file only its owner reads. */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { keyPairFromSeed, nodeIdFromPublicKey, toHex, fromHex, type Ed25519KeyPair } from '../core/index.js'
import type { KeyFile } from './config.js'

export function generateKeyFile (): KeyFile {
  const keyPair = keyPairFromSeed(new Uint8Array(randomBytes(32)))
  return { type: 'ed25519', id: nodeIdFromPublicKey(keyPair.publicKey), publicKey: toHex(keyPair.publicKey), seed: toHex(keyPair.seed) }
}

export function writeKeyFile (path: string, key: KeyFile): void {
  writeFileSync(path, JSON.stringify(key, null, 2) + '\n', { mode: 0o600 })
}

export function keyPairOf (key: KeyFile): Ed25519KeyPair {
  return keyPairFromSeed(fromHex(key.seed))
}
