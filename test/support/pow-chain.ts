/**
 * Producing proof-of-work blocks in tests: a block on a chain store's head, its state root
 * computed by executing it, sealed by searching nonces with the WebAssembly kernel (test chains
 * use an easy limit, so this takes a few hashes).
 */
import { fromHex, keyPairFromSeed, sha256, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  ChainStore, PowEngine, PowScanner, addressFromPublicKey, sealingHash, signTx, txRootOf, workCommitment, encodeWorkHeader,
  type Block, type BlockHeader, type GenesisSpec, type PowParams, type PowSeal, type SignedTx
} from '../../src/ledger/index.js'
import { MemoryDisk } from './memory-disk.js'

export const TEST_CHAIN = 'synod-pow-test'
export const testKeys: Ed25519KeyPair[] = Array.from({ length: 4 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(0x50 + index))))
export const testAddresses = testKeys.map((key) => addressFromPublicKey(key.publicKey))

export const testPowParams: PowParams = {
  retargetIntervalBlocks: 4,
  targetBlockSpacingMs: 1_000,
  powLimitBits: 0x200fffff,
  initialBits: 0x200fffff,
  blockReward: 100n,
  halvingIntervalBlocks: 0,
  futureTimeLimitMs: 60_000
}

export const testGenesis: GenesisSpec = { chainId: TEST_CHAIN, timeMs: 1_700_000_000_000, allocations: testAddresses.map((address) => ({ address, balance: 10_000n })) }

export function newChain (params: PowParams = testPowParams, disk = new MemoryDisk()): { chain: ChainStore, engine: PowEngine, disk: MemoryDisk } {
  const engine = new PowEngine(params)
  return { chain: new ChainStore({ genesis: testGenesis, engine, disk }), engine, disk }
}

const scanner = new PowScanner()

/** Seals a header: finds a nonce whose work hash meets its bits. */
export function seal (header: BlockHeader, engine: PowEngine, bits: number): BlockHeader {
  const unsealed = { ...header, seal: null }
  const partial: PowSeal = { version: 1, time: Math.floor(header.timeMs / 1000), bits, nonce: 0, extraNonce: 0 }
  const template = encodeWorkHeader({ version: partial.version, parent: fromHex(header.parent), commitment: workCommitment(sealingHash(unsealed), 0), time: partial.time, bits, nonce: 0 })
  scanner.setTemplate(template, engine.targetOf(bits))
  const nonce = scanner.scan(0, 1 << 20)
  if (nonce === null) throw new Error('no nonce in 2^20: the test bits are too hard')
  return { ...unsealed, seal: { ...partial, nonce } }
}

export interface ProduceOptions { txs?: SignedTx[], timeMs?: number, proposer?: string, stateRoot?: string, bits?: number }

/** A sealed block on top of `chain`'s head (not added). */
export function produce (chain: ChainStore, engine: PowEngine, options: ProduceOptions = {}): Block {
  const head = chain.head()
  const txs = options.txs ?? []
  const header: BlockHeader = {
    chainId: TEST_CHAIN,
    height: head.header.height + 1,
    parent: head.hash,
    timeMs: options.timeMs ?? head.header.timeMs + 1_000,
    txRoot: txRootOf(txs),
    stateRoot: '',
    proposer: options.proposer ?? testAddresses[0] as string,
    seal: null
  }
  const block: Block = { header, txs }
  const undo = chain.state().apply(block, engine.rewardAt(header.height))
  header.stateRoot = options.stateRoot ?? chain.state().root()
  chain.state().revert(undo)
  return { header: seal(header, engine, options.bits ?? engine.expectedBits(head.header, chain)), txs }
}

/** Produces and adds `count` blocks; returns them. */
export function extend (chain: ChainStore, engine: PowEngine, count: number, options: ProduceOptions = {}): Block[] {
  const blocks: Block[] = []
  for (let index = 0; index < count; index++) {
    const block = produce(chain, engine, index === 0 ? options : { proposer: options.proposer })
    chain.add(block, block.header.timeMs)
    blocks.push(block)
  }
  return blocks
}

export function transfer (from: number, nonce: number, to: number, amount: bigint, fee = 1n): SignedTx {
  return signTx({ chainId: TEST_CHAIN, publicKey: (testKeys[from] as Ed25519KeyPair).publicKey, nonce, fee, body: { kind: 'transfer', to: testAddresses[to] as string, amount } }, testKeys[from] as Ed25519KeyPair)
}
