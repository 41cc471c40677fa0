/**
 * A DPoS chain for unit tests: a ChainStore over a MemoryDisk with a DposEngine (two slots a
 * turn, 500 ms slots) and a staking genesis whose validators back themselves with their stake
 * (so the stakes are the producers' votes), and a producer that builds, executes and signs the
 * block of a slot the way a DPoS node does.
 */
import { keyPairFromSeed, sha256, sign, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  ChainStore, DposEngine, ZERO_HASH, addressFromPublicKey, blockContext, blockStatement, defaultStakingParams, statementBytes, txRootOf,
  type Address, type Block, type BlockHeader, type DposSeal, type GenesisSpec, type SignedStatement, type SignedTx, type StakingParams
} from '../../src/ledger/index.js'
import { MemoryDisk } from './memory-disk.js'

export const DPOS_CHAIN = 'synod-dpos-unit'
export const DPOS_GENESIS_MS = 1_700_000_000_000

/** Six keys: genesis candidates take them in order, the rest are plain accounts. */
export const dposKeys: readonly Ed25519KeyPair[] = Array.from({ length: 6 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(0x90 + index))))
export const dposAddresses: readonly Address[] = dposKeys.map((key) => addressFromPublicKey(key.publicKey))

export function dposKeyOf (address: Address): Ed25519KeyPair {
  const index = dposAddresses.indexOf(address)
  if (index < 0) throw new Error(`no test key for ${address}`)
  return dposKeys[index] as Ed25519KeyPair
}

export interface DposChainOptions {
  /** The genesis candidates' stakes (self-votes), one per key from the first. */
  stakes?: readonly bigint[]
  producersMax?: number
  blocksPerTurn?: number
  staking?: Partial<StakingParams>
  disk?: MemoryDisk
}

export interface DposChain { chain: ChainStore, engine: DposEngine, disk: MemoryDisk }

export function dposGenesis (stakes: readonly bigint[], staking: Partial<StakingParams> = {}): GenesisSpec {
  return {
    chainId: DPOS_CHAIN,
    timeMs: DPOS_GENESIS_MS,
    allocations: dposAddresses.map((address) => ({ address, balance: 100_000n })),
    staking: {
      params: { ...defaultStakingParams, validatorStakeMin: 1n, ...staking },
      validators: stakes.map((stake, index) => ({ publicKey: (dposKeys[index] as Ed25519KeyPair).publicKey, stake }))
    }
  }
}

export function newDposChain (options: DposChainOptions = {}): DposChain {
  const engine = new DposEngine({
    producersMax: options.producersMax ?? 4,
    blocksPerTurn: options.blocksPerTurn ?? 2,
    blockIntervalMs: 500,
    blockReward: 10n,
    futureTimeLimitMs: 2_000,
    genesisTimeMs: DPOS_GENESIS_MS
  })
  const disk = options.disk ?? new MemoryDisk()
  const chain = new ChainStore({ genesis: dposGenesis(options.stakes ?? [400n, 300n, 200n, 100n], options.staking), engine, disk })
  return { chain, engine, disk }
}

export const slotOf = (header: BlockHeader): number => (header.seal as DposSeal).slot

export interface DposProduceOptions {
  /** Default: the slot after the head's (slot 1 on genesis: slot 0 starts at the genesis time). */
  slot?: number
  txs?: SignedTx[]
  /** Default: the producer the schedule names for the slot. */
  proposer?: Address
  /** Default: the proposer's key. */
  signer?: Ed25519KeyPair
  /** Default: the slot's start. */
  timeMs?: number
  /** False: leave the block unexecuted, with a zero state root (for a block the state must refuse). */
  execute?: boolean
}

/**
 * A signed block on the head: executed (and reverted) on the head state for its state root
 * (unless told not to), then signed over its block statement by `signer`.
 */
export function produceDpos (chain: ChainStore, engine: DposEngine, options: DposProduceOptions = {}): Block {
  const head = chain.head()
  const slot = options.slot ?? (head.header.height === 0 ? 1 : slotOf(head.header) + 1)
  const state = chain.state()
  const proposer = options.proposer ?? engine.producerAt(state, head.hash, slot)?.address
  if (proposer === undefined) throw new Error(`no producer for slot ${slot}`)
  const txs = options.txs ?? []
  const header: BlockHeader = {
    chainId: DPOS_CHAIN,
    height: head.header.height + 1,
    parent: head.hash,
    timeMs: options.timeMs ?? engine.slotStartMs(slot),
    txRoot: txRootOf(txs),
    stateRoot: ZERO_HASH,
    proposer,
    seal: { slot, signature: new Uint8Array(64) } satisfies DposSeal
  }
  if (options.execute !== false) {
    const undo = state.apply({ header, txs }, blockContext(engine, header, state))
    header.stateRoot = state.root()
    state.revert(undo)
  }
  const unsealed: BlockHeader = { ...header, seal: null }
  const signature = sign(options.signer ?? dposKeyOf(proposer), statementBytes(blockStatement(unsealed, slot)))
  return { header: { ...unsealed, seal: { slot, signature } satisfies DposSeal }, txs }
}

/** Produces and adds `count` blocks on the head, each in the slot after the last; throws unless each becomes the head. */
export function extendDpos (chain: ChainStore, engine: DposEngine, count: number): Block[] {
  const blocks: Block[] = []
  for (let index = 0; index < count; index++) {
    const block = produceDpos(chain, engine)
    const outcome = chain.add(block, block.header.timeMs)
    if (outcome.status !== 'head') throw new Error(`block ${block.header.height} went to ${outcome.status}`)
    blocks.push(block)
  }
  return blocks
}

/** The signed `block` statement a DPoS block carries: what double-sign evidence is made of. */
export function blockSignedStatement (block: Block): SignedStatement {
  return {
    statement: blockStatement({ ...block.header, seal: null }, slotOf(block.header)),
    publicKey: dposKeyOf(block.header.proposer).publicKey,
    signature: (block.header.seal as DposSeal).signature
  }
}

/** Copies main-chain blocks 1..`toHeight` of `from` into `to` (a store from the same genesis). */
export function copyPrefix (from: ChainStore, to: ChainStore, toHeight: number): void {
  for (let height = 1; height <= toHeight; height++) {
    const block = from.block(from.hashAt(height) as string) as Block
    to.add(block, block.header.timeMs)
  }
}

/** The main chain as (height, producer) from the head down, as `lastIrreversibleHeight` takes it. */
export function producersFromHead (chain: ChainStore): Array<{ height: number, producer: Address }> {
  const list: Array<{ height: number, producer: Address }> = []
  for (let height = chain.head().header.height; height >= 1; height--) list.push({ height, producer: (chain.header(chain.hashAt(height) as string) as BlockHeader).proposer })
  return list
}
