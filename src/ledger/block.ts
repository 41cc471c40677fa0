/**
 * Blocks: a header (chain id, height, parent, time, transaction root, state root after the
 * block, proposer, and the engine's seal) and the transactions. A block's hash is SHA-256 of its
 * header's canonical CBOR; the engine seals the header's hash with the seal left out
 * (`sealingHash`), so a seal can never cover itself.
 */
import { z } from 'zod'
import { CBOR_MAJOR, CBOR_UINT_MAX, cborText, encodeCanonical, fromHex, sha256, sha256Hex, toHex, writeCbor } from '../core/index.js'
import { LedgerError } from './errors.js'
import { merkleLeafHash, merkleRoot } from './merkle.js'
import type { StakingParams } from './staking.js'
import { ADDRESS_PATTERN, checkTx, encodeTx, txHash, type Address, type SignedTx } from './tx.js'

export const HASH_HEX_PATTERN = /^[0-9a-f]{64}$/
export const ZERO_HASH = '0'.repeat(64)
export const ZERO_ADDRESS = '0'.repeat(40)

const hashHex = z.string().regex(HASH_HEX_PATTERN)

export const blockHeaderSchema = z.strictObject({
  chainId: z.string().min(1).max(64),
  height: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  parent: hashHex,
  timeMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  txRoot: hashHex,
  stateRoot: hashHex,
  proposer: z.string().regex(ADDRESS_PATTERN),
  /** Engine-specific; each engine checks its own shape. Null in genesis and while sealing. */
  seal: z.unknown()
})
export type BlockHeader = z.infer<typeof blockHeaderSchema>

export interface Block {
  header: BlockHeader
  txs: SignedTx[]
}

export interface BlockLimits {
  blockTxsMax: number
  blockBytesMax: number
}

export const defaultBlockLimits: Readonly<BlockLimits> = Object.freeze({ blockTxsMax: 2_000, blockBytesMax: 1024 * 1024 })

export function blockHash (header: BlockHeader): string {
  return sha256Hex(encodeCanonical(header))
}

/** What a seal commits to: the header with the seal left out. */
export function sealingHash (header: BlockHeader): Uint8Array {
  return sha256(encodeCanonical({ ...header, seal: null }))
}

const txRoots = new WeakMap<readonly SignedTx[], string>()

/** The RFC 6962 root over the transactions' bytes (computed once per list object: a block is checked more than once). */
export function txRootOf (txs: readonly SignedTx[]): string {
  let root = txRoots.get(txs)
  if (root === undefined) {
    root = toHex(merkleRoot(txs.map((tx) => merkleLeafHash(encodeTx(tx)))))
    txRoots.set(txs, root)
  }
  return root
}

/** Map keys as encoded, in RFC 8949 order (shorter first, then by byte): txs, header, weight. */
const BLOCK_KEY = Object.freeze({ txs: cborText('txs'), header: cborText('header'), weight: cborText('weight') })

/**
 * A block's canonical bytes: the map of its header and its transactions' canonical bytes, as
 * blocks travel. The transactions are copied in as they are instead of going through cborg's
 * general encoder, a token each (a block is encoded once to broadcast and once to store, on every
 * node); `encodeBlockGeneric` is the reference it must match byte for byte
 * (test/unit/ledger-block.test.ts).
 */
export function encodeBlock (block: Block): Uint8Array {
  return writeBlock(block, undefined)
}

/** A block as the chain store keeps it: `encodeBlock`'s map with the branch's `weight` beside header and transactions (the chain store reads it back). */
export function encodeBlockRecord (block: Block, weight: bigint): Uint8Array {
  return writeBlock(block, weight)
}

function writeBlock (block: Block, weight: bigint | undefined): Uint8Array {
  const header = encodeCanonical(block.header)
  const txs = block.txs.map(encodeTx)
  let bytes = header.length + 32
  for (const tx of txs) bytes += tx.length + 5
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, weight === undefined ? 2 : 3)
    out.raw(BLOCK_KEY.txs)
    out.head(CBOR_MAJOR.array, txs.length)
    for (const tx of txs) out.byteString(tx)
    out.raw(BLOCK_KEY.header)
    out.raw(header)
    if (weight === undefined) return true
    out.raw(BLOCK_KEY.weight)
    // Past CBOR's integers (proof of work at Bitcoin's difficulty passes 2^64), decimal text.
    return weight <= CBOR_UINT_MAX ? out.bigUint(weight) : out.text(weight.toString())
  }, bytes) ?? encodeBlockGeneric(block, weight)
}

/** `encodeBlock` (and, with a weight, `encodeBlockRecord`) through cborg's general encoder: the reference. */
export function encodeBlockGeneric (block: Block, weight?: bigint): Uint8Array {
  return encodeCanonical({ header: block.header, txs: block.txs.map(encodeTx), ...(weight === undefined ? {} : { weight: weight <= CBOR_UINT_MAX ? weight : weight.toString() }) })
}

/** What a caller already knows of a block it checks with `checkBlockBody`. */
export interface BlockBodyKnowledge {
  /** True for a transaction's bytes whose signatures were verified here before: they are not verified again. */
  signatureVerified?: (raw: unknown) => boolean
  /**
   * The transaction these bytes encode, when the caller holds it already checked (its mempool
   * admitted it): it is not decoded, parsed or verified again.
   */
  known?: (raw: unknown) => SignedTx | undefined
  /** The block's encoded size, when the caller has its bytes: it is not encoded again to measure it. */
  bytes?: number
}

/**
 * Checks a block's shape, limits, transaction signatures (but those of the transactions the
 * caller vouches for, `knowledge`) and transaction root (what can be checked without the parent's
 * state); throws `LEDGER_MALFORMED`, `LEDGER_BAD_SIGNATURE`, `LEDGER_WRONG_CHAIN` or
 * `LEDGER_BAD_BLOCK`.
 */
export function checkBlockBody (candidate: { header: unknown, txs: unknown }, chainId: string, limits: BlockLimits, decodeTx: (bytes: unknown) => unknown, knowledge: BlockBodyKnowledge = {}): Block {
  const header = checkBlockHeader(candidate.header, chainId)
  if (!Array.isArray(candidate.txs)) throw new LedgerError('LEDGER_MALFORMED', 'block transactions are not a list')
  if (candidate.txs.length > limits.blockTxsMax) throw new LedgerError('LEDGER_BAD_BLOCK', `${candidate.txs.length} transactions, limit ${limits.blockTxsMax}`)
  const txs = candidate.txs.map((raw) => knowledge.known?.(raw) ?? checkTx(decodeTx(raw), chainId, { signatureVerified: knowledge.signatureVerified?.(raw) ?? false }))
  return checkBlockSize({ header, txs }, limits, knowledge.bytes)
}

/** A block header's shape and chain (what can be checked without its parent); throws LEDGER_MALFORMED or LEDGER_WRONG_CHAIN. */
export function checkBlockHeader (candidate: unknown, chainId: string): BlockHeader {
  const header = blockHeaderSchema.safeParse(candidate)
  if (!header.success) throw new LedgerError('LEDGER_MALFORMED', `not a block header: ${header.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
  if (header.data.chainId !== chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `block for chain ${header.data.chainId}, this is ${chainId}`)
  return header.data
}

/** The size and transaction-root checks of `checkBlockBody`, for a block whose header and transactions are checked. */
function checkBlockSize (block: Block, limits: BlockLimits, knownBytes?: number): Block {
  const bytes = knownBytes ?? encodeBlock(block).length
  if (bytes > limits.blockBytesMax) throw new LedgerError('LEDGER_BAD_BLOCK', `block of ${bytes} bytes, limit ${limits.blockBytesMax}`)
  if (txRootOf(block.txs) !== block.header.txRoot) throw new LedgerError('LEDGER_BAD_BLOCK', 'the transaction root does not match the transactions')
  return block
}

/** Map keys of a compact block as encoded, in RFC 8949 order: header, txHashes. */
const COMPACT_KEY = Object.freeze({ header: cborText('header'), txHashes: cborText('txHashes') })
/** Bytes of a transaction hash in a hash list (`packTxHashes`). */
export const TX_HASH_BYTES = 32

/** Transaction hashes (hex) as one byte string of 32-byte hashes, in order: how compact blocks and fetches carry them. */
export function packTxHashes (hashes: Iterable<string>, count: number): Uint8Array {
  const packed = new Uint8Array(TX_HASH_BYTES * count)
  let at = 0
  for (const hash of hashes) {
    packed.set(fromHex(hash), at)
    at += TX_HASH_BYTES
  }
  return packed
}

/** The hashes (hex) of a byte string of 32-byte hashes (`packTxHashes`); its length must be a multiple of 32. */
export function unpackTxHashes (packed: Uint8Array): string[] {
  const hashes: string[] = []
  for (let at = 0; at < packed.length; at += TX_HASH_BYTES) hashes.push(toHex(packed.subarray(at, at + TX_HASH_BYTES)))
  return hashes
}

/**
 * A block as a PoS proposal carries it: the header and its transactions' hashes (32 bytes each,
 * concatenated in block order), not their bytes. Peers hold nearly all of them already (gossip
 * brought them before the proposer could include them), so a proposal costs a peer a lookup per
 * transaction instead of the bytes, their decoding and their hashing, as Bitcoin's compact blocks
 * (BIP 152) do. The header's transaction root still commits to the bytes: a block put together
 * from other transactions than the proposer's fails `checkCompactBlock`.
 */
export function encodeCompactBlock (block: Block): Uint8Array {
  const header = encodeCanonical(block.header)
  const hashes = packTxHashes(block.txs.map(txHash), block.txs.length)
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, 2)
    out.raw(COMPACT_KEY.header)
    out.raw(header)
    out.raw(COMPACT_KEY.txHashes)
    out.byteString(hashes)
    return true
  }, header.length + hashes.length + 32) ?? encodeCanonical({ header: block.header, txHashes: hashes })
}

/** A compact block as decoded: the header (unchecked) and the transactions' hashes (hex), in block order. */
export interface CompactBlock {
  header: unknown
  txHashes: string[]
}

/** The parts of a compact block's decoded CBOR (`encodeCompactBlock`); throws LEDGER_MALFORMED, or LEDGER_BAD_BLOCK past `blockTxsMax`. */
export function readCompactBlock (raw: unknown, limits: BlockLimits): CompactBlock {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new LedgerError('LEDGER_MALFORMED', 'a compact block is a map')
  const { header, txHashes } = raw as { header?: unknown, txHashes?: unknown }
  if (Object.keys(raw).length !== 2 || header === undefined || !(txHashes instanceof Uint8Array)) throw new LedgerError('LEDGER_MALFORMED', 'a compact block is a map of header and txHashes (bytes)')
  if (txHashes.length % TX_HASH_BYTES !== 0) throw new LedgerError('LEDGER_MALFORMED', `txHashes of ${txHashes.length} bytes is not a list of ${TX_HASH_BYTES}-byte hashes`)
  const count = txHashes.length / TX_HASH_BYTES
  if (count > limits.blockTxsMax) throw new LedgerError('LEDGER_BAD_BLOCK', `${count} transactions, limit ${limits.blockTxsMax}`)
  return { header, txHashes: unpackTxHashes(txHashes) }
}

/**
 * Checks a block put together from a compact block: `txs` are checked transactions (shape, chain,
 * signatures), one for each of `compact.txHashes` in order; the header's shape and chain, the
 * limits and the transaction root are checked here, as `checkBlockBody` checks them. Throws
 * LEDGER_MALFORMED, LEDGER_WRONG_CHAIN or LEDGER_BAD_BLOCK.
 */
export function checkCompactBlock (compact: CompactBlock, txs: SignedTx[], chainId: string, limits: BlockLimits): Block {
  const header = checkBlockHeader(compact.header, chainId)
  if (txs.length !== compact.txHashes.length || txs.some((tx, index) => txHash(tx) !== compact.txHashes[index])) throw new LedgerError('LEDGER_BAD_BLOCK', 'the transactions are not the ones the compact block names')
  return checkBlockSize({ header, txs }, limits)
}

export interface GenesisSpec {
  chainId: string
  timeMs: number
  allocations: Array<{ address: Address, balance: bigint }>
  /** PoS and DPoS chains: the staking rules and the validators (or producer candidates) at genesis, with their bonded stake. */
  staking?: { params: StakingParams, validators: Array<{ publicKey: Uint8Array, stake: bigint }> }
}
