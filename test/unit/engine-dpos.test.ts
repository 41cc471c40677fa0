/**
 * DPoS behind the chain store: the compliance suite, then the schedule (top K by votes, a shuffle
 * that is the same everywhere, kept for the round), the producer check, slots and times, the last
 * irreversible block against `lastIrreversibleHeight`, fork choice that never goes below it,
 * double-sign evidence, and a restart from disk.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { keyPairFromSeed, sha256, sign, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  ChainStore, DposEngine, LedgerError, ZERO_HASH, addressFromPublicKey, blockContext, blockHash, blockStatement, conflicting, defaultStakingParams,
  lastIrreversibleHeight, signTx, statementBytes, txRootOf,
  type Address, type Block, type BlockHeader, type DposSeal, type GenesisSpec, type SignedStatement, type SignedTx
} from '../../src/ledger/index.js'
import { engineCompliance } from '../support/engine-compliance.js'
import { MemoryDisk } from '../support/memory-disk.js'

const CHAIN = 'synod-dpos-unit'
const GENESIS_MS = 1_700_000_000_000
const keys: Ed25519KeyPair[] = Array.from({ length: 6 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(0x90 + index))))
const addresses: Address[] = keys.map((key) => addressFromPublicKey(key.publicKey))
const keyOf = (address: Address): Ed25519KeyPair => keys[addresses.indexOf(address)] as Ed25519KeyPair

function genesis (stakes: bigint[]): GenesisSpec {
  return {
    chainId: CHAIN,
    timeMs: GENESIS_MS,
    allocations: addresses.map((address) => ({ address, balance: 100_000n })),
    staking: { params: { ...defaultStakingParams, validatorStakeMin: 1n }, validators: stakes.map((stake, index) => ({ publicKey: (keys[index] as Ed25519KeyPair).publicKey, stake })) }
  }
}

function newChain (stakes: bigint[] = [400n, 300n, 200n, 100n], producersMax = 4, disk = new MemoryDisk()): { chain: ChainStore, engine: DposEngine, disk: MemoryDisk } {
  const engine = new DposEngine({ producersMax, blocksPerTurn: 2, blockIntervalMs: 500, blockReward: 10n, futureTimeLimitMs: 2_000, genesisTimeMs: GENESIS_MS })
  return { chain: new ChainStore({ genesis: genesis(stakes), engine, disk }), engine, disk }
}

const slotOf = (header: BlockHeader): number => (header.seal as DposSeal).slot

interface ProduceOptions { slot?: number, txs?: SignedTx[], proposer?: Address, signer?: Ed25519KeyPair }

/** A signed block on the head for the next slot after the head's (or `slot`), by its scheduled producer unless told. */
function produce (chain: ChainStore, engine: DposEngine, options: ProduceOptions = {}): Block {
  const head = chain.head()
  const slot = options.slot ?? (head.header.height === 0 ? engine.slotAt(GENESIS_MS) + 2 : slotOf(head.header) + 1)
  const producer = options.proposer ?? (engine.producerAt(chain.state(), head.hash, slot)?.address as Address)
  const txs = options.txs ?? []
  const header: BlockHeader = { chainId: CHAIN, height: head.header.height + 1, parent: head.hash, timeMs: engine.slotStartMs(slot), txRoot: txRootOf(txs), stateRoot: ZERO_HASH, proposer: producer, seal: { slot, signature: new Uint8Array(64) } }
  const state = chain.state()
  const undo = state.apply({ header, txs }, blockContext(engine, header, state))
  header.stateRoot = state.root()
  state.revert(undo)
  const unsealed = { ...header, seal: null }
  const signature = sign(options.signer ?? keyOf(producer), statementBytes(blockStatement(unsealed, slot)))
  return { header: { ...unsealed, seal: { slot, signature } }, txs }
}

function extend (chain: ChainStore, engine: DposEngine, count: number): Block[] {
  const blocks: Block[] = []
  for (let index = 0; index < count; index++) {
    const block = produce(chain, engine)
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    blocks.push(block)
  }
  return blocks
}

const isCode = (code: string, reason?: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code && (reason === undefined || (error.details as { reason?: string }).reason === reason)

engineCompliance('dpos', {
  newChain: () => newChain(),
  produce: (chain, engine) => produce(chain, engine as DposEngine)
})

describe('DPoS: the schedule', () => {
  it('elects the top producersMax by votes, all candidates if fewer, in one shuffled order per round that every node computes alike', () => {
    const { chain, engine } = newChain([400n, 300n, 200n, 100n, 50n], 3)
    const schedule = engine.schedule(chain.state(), chain.head().hash, 0)
    assert.deepEqual(new Set(schedule.producers.map((producer) => producer.address)), new Set(addresses.slice(0, 3)))
    assert.deepEqual(engine.schedule(newChain([400n, 300n, 200n, 100n, 50n], 3).chain.state(), chain.head().hash, 0), schedule, 'the same everywhere')
    const everyone = newChain([400n, 300n], 21)
    assert.equal(everyone.engine.schedule(everyone.chain.state(), everyone.chain.head().hash, 0).producers.length, 2)
    const orders = new Set(Array.from({ length: 12 }, (_, round) => engine.schedule(chain.state(), chain.head().hash, round).producers.map((producer) => producer.address).join()))
    assert.ok(orders.size > 1, 'rounds are shuffled differently')
  })

  it('gives each producer blocksPerTurn consecutive slots, keeps the schedule for the round, and skips a missed slot', () => {
    const { chain, engine } = newChain()
    const blocks = extend(chain, engine, 6)
    const producers = blocks.map((block) => block.header.proposer)
    assert.equal(producers[0], producers[1])
    assert.equal(producers[2], producers[3])
    assert.notEqual(producers[1], producers[2])
    const held = chain.state().producerSchedule()
    assert.equal(held?.round, 0)
    // A missed slot: the next block comes two slots later, by that slot's producer.
    const slot = slotOf(chain.head().header) + 2
    const block = produce(chain, engine, { slot })
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    // A new round re-elects: the state then holds round 1's schedule.
    const round = engine.roundOf(slotOf(chain.head().header))
    const first = produce(chain, engine, { slot: (round + 1) * engine.roundSlots })
    chain.add(first, first.header.timeMs)
    assert.equal(chain.state().producerSchedule()?.round, round + 1)
  })
})

describe('DPoS: header rules', () => {
  it('refuses the wrong producer for the slot, a bad signature, a time off the slot start, a slot not after the parent, one from the future and a non-candidate', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 1)
    const good = produce(chain, engine)
    const scheduled = good.header.proposer
    const other = addresses.find((address, index) => index < 4 && address !== scheduled) as Address
    const wrong = produce(chain, engine, { proposer: other })
    assert.throws(() => chain.add(wrong, wrong.header.timeMs), isCode('LEDGER_BAD_BLOCK', 'producer'))
    assert.throws(() => chain.check(wrong, wrong.header.timeMs), isCode('LEDGER_BAD_BLOCK', 'producer'))
    const forged = produce(chain, engine, { signer: keyOf(other) })
    assert.throws(() => chain.add(forged, forged.header.timeMs), isCode('LEDGER_BAD_SIGNATURE'))
    const offSlot = { ...good, header: { ...good.header, timeMs: good.header.timeMs + 1 } }
    assert.throws(() => engine.verifyHeader(offSlot.header, chain.head().header, chain, offSlot.header.timeMs), isCode('LEDGER_BAD_TIME'))
    const same = produce(chain, engine, { slot: slotOf(chain.head().header) })
    assert.throws(() => chain.add(same, same.header.timeMs), isCode('LEDGER_BAD_TIME'))
    assert.throws(() => chain.add(good, good.header.timeMs - 10_000), isCode('LEDGER_BAD_TIME'), 'ahead of the clock')
    const outsider = produce(chain, engine, { proposer: addresses[5] as Address })
    assert.throws(() => chain.add(outsider, outsider.header.timeMs), isCode('LEDGER_BAD_BLOCK', 'producer'))
    assert.equal(chain.add(good, good.header.timeMs).status, 'head', 'the good block still goes in')
  })
})

describe('DPoS: the last irreversible block and fork choice', () => {
  it('is the highest block that floor(2K/3) + 1 distinct producers built on, and never goes back', () => {
    const { chain, engine } = newChain()
    let last = 0
    for (let index = 0; index < 20; index++) {
      extend(chain, engine, 1)
      const fromHead: Array<{ height: number, producer: string }> = []
      for (let height = chain.head().header.height; height >= 1; height--) fromHead.push({ height, producer: chain.header(chain.hashAt(height) as string)?.proposer as string })
      const expected = lastIrreversibleHeight(fromHead, 4) ?? 0
      const final = chain.finalizedHeight() as number
      assert.equal(final, Math.max(expected, last))
      assert.ok(final >= last)
      last = final
    }
    assert.ok(last > 0)
  })

  it('refuses a longer branch that forks below the irreversible block, and takes one that forks above it', () => {
    const { chain, engine } = newChain()
    const common = extend(chain, engine, 2)
    // A rival store with the same two blocks, then its own longer branch (skipping a slot first).
    const rival = newChain()
    for (const block of common) rival.chain.add(block, block.header.timeMs)
    const skipped = produce(rival.chain, rival.engine, { slot: slotOf(chain.head().header) + 3 })
    rival.chain.add(skipped, skipped.header.timeMs)
    const rivalBlocks = [skipped, ...extend(rival.chain, rival.engine, 30)]
    extend(chain, engine, 20)
    const final = chain.finalizedHeight() as number
    assert.ok(final > 2, `final ${final}`)
    const head = chain.head().hash
    let last
    for (const block of rivalBlocks) last = chain.add(block, block.header.timeMs)
    assert.equal(last?.status, 'side')
    assert.equal(chain.head().hash, head, 'the irreversible chain stays')
    assert.ok(chain.counters.belowFinalRefused > 0)

    // A branch forking above the final height wins by length.
    const forkAt = chain.head().header
    const fork = newChain()
    for (let height = 1; height <= forkAt.height - 1; height++) {
      const block = chain.block(chain.hashAt(height) as string) as Block
      fork.chain.add(block, block.header.timeMs)
    }
    const longer = extend(fork.chain, fork.engine, 3)
    assert.ok(forkAt.height - 1 >= (chain.finalizedHeight() as number))
    let outcome
    for (const block of longer) outcome = chain.add(block, block.header.timeMs + 10_000)
    assert.equal(outcome?.status, 'head')
    assert.equal(chain.head().hash, blockHash((longer[2] as Block).header))
  })
})

describe('DPoS: double signing', () => {
  it('two blocks signed for one slot are evidence that slashes the producer and keeps it out of the next round', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 1)
    const first = produce(chain, engine)
    const producer = first.header.proposer
    const key = keyOf(producer)
    const self = producer
    const tx = signTx({ chainId: CHAIN, publicKey: key.publicKey, nonce: chain.state().get(self).nonce, fee: 1n, body: { kind: 'transfer', to: self, amount: 1n } }, key)
    const second = produce(chain, engine, { txs: [tx] })
    const statementOf = (block: Block): SignedStatement => ({ statement: blockStatement({ ...block.header, seal: null }, slotOf(block.header)), publicKey: key.publicKey, signature: (block.header.seal as DposSeal).signature })
    assert.ok(conflicting(statementOf(first), statementOf(second)))
    chain.add(first, first.header.timeMs)
    const reporter = addresses.find((address) => address !== producer) as Address
    const reporterKey = keyOf(reporter)
    const evidence = signTx({ chainId: CHAIN, publicKey: reporterKey.publicKey, nonce: chain.state().get(reporter).nonce, fee: 1n, body: { kind: 'evidence', first: statementOf(first), second: statementOf(second) } }, reporterKey)
    const withEvidence = produce(chain, engine, { txs: [evidence] })
    chain.add(withEvidence, withEvidence.header.timeMs)
    assert.equal(chain.state().stakeOf(producer).candidate?.tombstoned, true)
    const next = engine.schedule(chain.state(), chain.head().hash, 1)
    assert.ok(next.producers.every((entry) => entry.address !== producer))
    assert.equal(next.producers.length, 3)
  })
})

describe('DPoS: restart', () => {
  it('a store reloaded from its disk has the same head, state root and schedule', () => {
    const { chain, engine, disk } = newChain()
    extend(chain, engine, 12)
    const reloaded = newChain(undefined, undefined, disk)
    reloaded.chain.load()
    assert.equal(reloaded.chain.head().hash, chain.head().hash)
    assert.equal(reloaded.chain.state().root(), chain.state().root())
    assert.deepEqual(reloaded.chain.state().producerSchedule(), chain.state().producerSchedule())
    assert.equal(reloaded.chain.finalizedHeight(), chain.finalizedHeight())
  })
})
