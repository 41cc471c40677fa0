/** The chain store with the PoW engine: extension, fork choice, reorganisation, invalid blocks, restart. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { CoreError } from '../../src/core/index.js'
import { LedgerError, blockHash, meetsTarget, sealOf, workHash, workHeaderOf, type Block } from '../../src/ledger/index.js'
import { simPowParams } from '../support/ledger-sim.js'
import { MemoryDisk } from '../support/memory-disk.js'
import { extend, newChain, produce, testAddresses, testPowParams, transfer } from '../support/pow-chain.js'

const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code

/** A memory disk that records how many entries each range read returned, and whose `get` can miss chosen keys (a damaged disk). */
class PagedDisk extends MemoryDisk {
  pages: number[] = []
  readonly unreadable = new Set<string>()
  override get (key: string): Uint8Array | undefined {
    return this.unreadable.has(key) ? undefined : super.get(key)
  }

  override entries (prefix: string, limit?: number, after?: string): Array<[string, Uint8Array]> {
    const page = super.entries(prefix, limit, after)
    this.pages.push(page.length)
    return page
  }
}

describe('chain store (PoW)', () => {
  it('extends the head, executes transactions, and restarts from disk to the same head and state', () => {
    const { chain, engine, disk } = newChain()
    const first = produce(chain, engine, { txs: [transfer(0, 0, 1, 500n)] })
    assert.equal(chain.add(first, first.header.timeMs).status, 'head')
    extend(chain, engine, 5)
    assert.equal(chain.head().header.height, 6)
    assert.equal(chain.state().get(testAddresses[1] as string).balance, 10_500n)
    assert.equal(chain.add(first, first.header.timeMs).status, 'known')
    const restarted = newChain(testPowParams, disk).chain
    const progress: number[] = []
    const replayed: number[] = []
    assert.equal(restarted.load((count) => { progress.push(count) }, 2, (block) => { replayed.push(block.header.height) }), 6)
    assert.deepEqual(progress, [2, 4, 6])
    assert.deepEqual(replayed, [1, 2, 3, 4, 5, 6], 'each replayed block is handed over once, in order')
    assert.equal(restarted.head().hash, chain.head().hash)
    assert.equal(restarted.state().root(), chain.state().root())
    // Proof of work has no final height: every block a reorganisation may revert keeps its undo record.
    assert.equal(chain.undoRecords(), 6)
    assert.equal(restarted.undoRecords(), 6)
  })

  it('restarts a long chain reading its stored blocks a page at a time, side branches kept', () => {
    // The simulator's parameters: a retarget every 10 blocks keeps 160 blocks easy to seal.
    const disk = new PagedDisk()
    const main = newChain(simPowParams, disk)
    const side = newChain(simPowParams)
    for (const block of extend(main.chain, main.engine, 100)) side.chain.add(block, block.header.timeMs)
    const sideBlocks = extend(side.chain, side.engine, 2, { proposer: testAddresses[3] })
    extend(main.chain, main.engine, 60, { txs: [transfer(0, 0, 1, 5n)] })
    for (const block of sideBlocks) assert.equal(main.chain.add(block, block.header.timeMs + 1).status, 'side')
    disk.pages = []
    const restarted = newChain(simPowParams, disk).chain
    assert.equal(restarted.load(), 160)
    assert.equal(restarted.head().hash, main.chain.head().hash)
    assert.equal(restarted.state().root(), main.chain.state().root())
    for (const block of sideBlocks) assert.ok(restarted.stored(blockHash(block.header)) !== undefined, 'a side block is known again')
    // 162 stored blocks: never all at once.
    assert.ok(disk.pages.length >= 3 && disk.pages.every((size) => size <= 64), `read ${disk.pages.join(', ')} blocks a page`)
  })

  it('refuses to start on a main chain whose stored block cannot be read (CORE_DISK_CORRUPT)', () => {
    const disk = new PagedDisk()
    const { chain, engine } = newChain(testPowParams, disk)
    extend(chain, engine, 3)
    disk.unreadable.add(`ledger/block/${chain.hashAt(2) as string}`)
    assert.throws(() => newChain(testPowParams, disk).chain.load(), (error) => error instanceof CoreError && error.code === 'CORE_DISK_CORRUPT')
  })

  it('keeps its chain when a heavier branch\'s stored block cannot be read, and marks that branch invalid', () => {
    const disk = new PagedDisk()
    const a = newChain(testPowParams, disk)
    const b = newChain()
    for (const block of extend(a.chain, a.engine, 2)) b.chain.add(block, block.header.timeMs)
    extend(a.chain, a.engine, 1)
    const head = a.chain.head().hash
    const root = a.chain.state().root()
    const branch = extend(b.chain, b.engine, 2, { proposer: testAddresses[3] })
    const [first, second] = branch as [Block, Block]
    assert.equal(a.chain.add(first, first.header.timeMs + 1).status, 'side')
    disk.unreadable.add(`ledger/block/${blockHash(first.header)}`)
    assert.throws(() => a.chain.add(second, second.header.timeMs + 1), isCode('LEDGER_BAD_BLOCK'))
    assert.deepEqual([a.chain.head().hash, a.chain.state().root()], [head, root], 'the old chain and its state are back')
    assert.equal(a.chain.isOnMainChain(blockHash(first.header)), false)
  })

  it('follows the heaviest branch: reorganises, and hands back the abandoned and adopted blocks', () => {
    const a = newChain()
    const b = newChain()
    const shared = extend(a.chain, a.engine, 2)
    for (const block of shared) b.chain.add(block, block.header.timeMs)
    const spend = transfer(0, 0, 2, 1_000n)
    const aBlocks = extend(a.chain, a.engine, 2, { txs: [spend] })
    const bBlocks = extend(b.chain, b.engine, 3, { txs: [transfer(0, 0, 3, 7_000n)], proposer: testAddresses[3] })
    let last
    for (const block of bBlocks) last = a.chain.add(block, block.header.timeMs + 1)
    assert.equal(last?.status, 'head')
    assert.equal(a.chain.head().hash, b.chain.head().hash)
    assert.equal(a.chain.state().root(), b.chain.state().root(), 'state equals a replay of the winning chain')
    assert.deepEqual(last?.status === 'head' ? last.reverted.map((block) => blockHash(block.header)) : [], aBlocks.map((block) => blockHash(block.header)))
    assert.equal(a.chain.state().get(testAddresses[2] as string).balance, 10_000n, 'the abandoned spend is undone')
    assert.equal(a.chain.isOnMainChain(blockHash((aBlocks[0] as Block).header)), false)
  })

  it('adds a checked block from its check, only that very block on that head, and a reorganisation still undoes it', () => {
    const a = newChain()
    const b = newChain()
    const shared = extend(a.chain, a.engine, 1)
    for (const block of shared) b.chain.add(block, block.header.timeMs)
    const checked = produce(a.chain, a.engine, { txs: [transfer(0, 0, 2, 1_000n)] })
    const other = produce(a.chain, a.engine, { txs: [transfer(1, 0, 2, 5n)], timeMs: checked.header.timeMs + 1 })
    a.chain.check(checked, checked.header.timeMs)
    a.chain.check(other, other.header.timeMs)
    // The same block in another object (as a peer's copy would be) is checked and executed again.
    assert.equal(a.chain.add({ header: { ...checked.header }, txs: [...checked.txs] }, checked.header.timeMs).status, 'head')
    assert.equal(a.chain.counters.checkedReused, 0)
    const a2 = newChain()
    for (const block of shared) a2.chain.add(block, block.header.timeMs)
    a2.chain.check(other, other.header.timeMs)
    a2.chain.check(checked, checked.header.timeMs)
    assert.equal(a2.chain.add(checked, checked.header.timeMs).status, 'head')
    assert.equal(a2.chain.counters.checkedReused, 1)
    assert.equal(a2.chain.state().root(), checked.header.stateRoot)
    assert.equal(a2.chain.state().root(), a.chain.state().root())
    // `other` was checked on the head before: that head is gone, and the block goes to a side branch, unexecuted.
    assert.equal(a2.chain.add(other, other.header.timeMs).status, 'side')
    assert.equal(a2.chain.counters.checkedReused, 1)
    // A heavier branch without the reused block: the reorganisation undoes it, to the state of a replay of that branch.
    const bBlocks = extend(b.chain, b.engine, 2, { txs: [transfer(0, 0, 3, 7_000n)], proposer: testAddresses[3] })
    let last
    for (const block of bBlocks) last = a2.chain.add(block, block.header.timeMs + 1)
    assert.equal(last?.status, 'head')
    assert.equal(a2.chain.state().root(), b.chain.state().root())
    assert.equal(a2.chain.state().get(testAddresses[2] as string).balance, 10_000n, 'the reused block\'s spend is undone')
  })

  it('reports a reorganisation that completes through waiting orphans (the tip arrived first)', () => {
    const a = newChain()
    const b = newChain()
    const aBlocks = extend(a.chain, a.engine, 2)
    const bBlocks = extend(b.chain, b.engine, 3, { proposer: testAddresses[2] })
    for (const block of [...bBlocks].reverse().slice(0, 2)) assert.equal(a.chain.add(block, Number.MAX_SAFE_INTEGER).status, 'orphan')
    const outcome = a.chain.add(bBlocks[0] as Block, Number.MAX_SAFE_INTEGER)
    assert.equal(outcome.status, 'head', 'the first block alone is a side branch, but its orphans make the branch heaviest')
    assert.equal(a.chain.head().hash, b.chain.head().hash)
    if (outcome.status !== 'head') return
    assert.deepEqual(outcome.reverted.map((block) => blockHash(block.header)), aBlocks.map((block) => blockHash(block.header)))
    assert.deepEqual(outcome.applied.map((block) => blockHash(block.header)), bBlocks.map((block) => blockHash(block.header)))
  })

  it('keeps a lighter or equal branch on the side, first seen wins a tie', () => {
    const a = newChain()
    const b = newChain()
    extend(a.chain, a.engine, 2)
    const rival = extend(b.chain, b.engine, 2, { proposer: testAddresses[2] })
    const head = a.chain.head().hash
    for (const block of rival) assert.equal(a.chain.add(block, block.header.timeMs + 1).status, 'side')
    assert.equal(a.chain.head().hash, head)
  })

  it('refuses bad work, bad bits, bad times and a wrong state root, and the head stays', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 3)
    const head = chain.head().hash
    const good = produce(chain, engine)
    const goodSeal = sealOf(good.header)
    // The test limit lets about half of all nonces through: take the first that does not.
    let nonce = 0
    while (meetsTarget(workHash(workHeaderOf(good.header, { ...goodSeal, nonce })), engine.targetOf(goodSeal.bits))) nonce++
    assert.throws(() => chain.add({ ...good, header: { ...good.header, seal: { ...goodSeal, nonce } } }, good.header.timeMs), isCode('LEDGER_BAD_WORK'))
    assert.throws(() => chain.add(produce(chain, engine, { bits: 0x1f7fffff }), good.header.timeMs), isCode('LEDGER_BAD_BITS'))
    assert.throws(() => chain.add(produce(chain, engine, { timeMs: chain.head().header.timeMs - 5_000 }), good.header.timeMs), isCode('LEDGER_BAD_TIME'))
    const future = produce(chain, engine, { timeMs: good.header.timeMs + 10 * 60_000 })
    assert.throws(() => chain.add(future, good.header.timeMs), isCode('LEDGER_BAD_TIME'))
    assert.throws(() => chain.add(produce(chain, engine, { stateRoot: 'ab'.repeat(32) }), good.header.timeMs), isCode('LEDGER_BAD_BLOCK'))
    assert.throws(() => chain.add(produce(chain, engine, { txs: [transfer(1, 0, 2, 20_000n)] }), good.header.timeMs), (error) => isCode('LEDGER_BAD_BLOCK')(error) && /spends/.test((error as Error).message))
    assert.equal(chain.head().hash, head)
    assert.equal(chain.add(good, good.header.timeMs).status, 'head')
  })

  it('marks a heavier branch with an invalid block invalid and stays on the valid chain', () => {
    const a = newChain()
    const b = newChain()
    extend(a.chain, a.engine, 1)
    const valid = extend(b.chain, b.engine, 1, { proposer: testAddresses[2] })
    // b's second block claims a wrong state root; its third builds on it.
    const badBlock = produce(b.chain, b.engine, { stateRoot: 'cd'.repeat(32) })
    const head = a.chain.head().hash
    const root = a.chain.state().root()
    assert.equal(a.chain.add(valid[0] as Block, Number.MAX_SAFE_INTEGER).status, 'side')
    assert.throws(() => a.chain.add(badBlock, Number.MAX_SAFE_INTEGER), isCode('LEDGER_BAD_BLOCK'))
    assert.equal(a.chain.head().hash, head)
    assert.equal(a.chain.state().root(), root, 'the old chain is restored')
    assert.equal(a.chain.stored(blockHash(badBlock.header))?.invalid, true)
  })

  it('holds blocks whose parent is missing and connects them when it arrives', () => {
    const source = newChain()
    const blocks = extend(source.chain, source.engine, 4)
    const { chain } = newChain()
    for (const block of [...blocks].reverse().slice(0, 3)) assert.equal(chain.add(block, Number.MAX_SAFE_INTEGER).status, 'orphan')
    assert.equal(chain.orphanCount(), 3)
    const outcome = chain.add(blocks[0] as Block, Number.MAX_SAFE_INTEGER)
    assert.equal(outcome.status, 'head')
    assert.equal(chain.head().hash, source.chain.head().hash)
    assert.equal(outcome.status === 'head' ? outcome.applied.length : 0, 4)
    assert.equal(chain.orphanCount(), 0)
  })

  it('retargets every interval toward the spacing with Bitcoin\'s arithmetic', () => {
    const { chain, engine } = newChain()
    // Blocks far faster than the 1 s target (all within one second): at height 4 the clamp makes it x4 harder.
    for (let index = 0; index < 3; index++) extend(chain, engine, 1, { timeMs: chain.head().header.timeMs + 100 })
    const expected = engine.expectedBits(chain.head().header, chain)
    const limit = engine.targetOf(0x200fffff)
    assert.ok(engine.targetOf(expected) <= limit / 4n && engine.targetOf(expected) > limit / 5n, `bits ${expected.toString(16)}: the x4 clamp, to compact precision`)
    const next = produce(chain, engine, { timeMs: chain.head().header.timeMs + 100 })
    assert.equal((next.header.seal as { bits: number }).bits, expected)
    assert.equal(chain.add(next, next.header.timeMs).status, 'head')
    assert.throws(() => chain.add(produce(chain, engine, { bits: 0x200fffff, timeMs: chain.head().header.timeMs + 100 }), Number.MAX_SAFE_INTEGER), isCode('LEDGER_BAD_BITS'))
  })

  it('refuses PoW parameters whose retarget arithmetic would overflow 256 bits', () => {
    assert.throws(() => newChain({ ...testPowParams, powLimitBits: 0x207fffff, initialBits: 0x207fffff }), (error) => isCode('LEDGER_CONFIG_INVALID')(error) && /overflow 256 bits/.test((error as Error).message))
    assert.throws(() => newChain({ ...testPowParams, targetBlockSpacingMs: 1_250, retargetIntervalBlocks: 3 }), isCode('LEDGER_CONFIG_INVALID'))
  })
})
