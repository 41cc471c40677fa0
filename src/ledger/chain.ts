/**
 * The chain store and fork choice. Every valid block is kept (blocks and their fork-choice
 * weight on disk, headers in memory); the head is the block with the greatest total weight, the
 * first one seen among equals. A block on top of the head is executed at once and must produce
 * its header's state root. A block on a side branch gets the header checks only, and is executed
 * when its branch becomes the heaviest: the store then rolls the state back to the fork point and
 * forward along the new branch (a reorganisation); if a block of that branch turns out invalid,
 * the branch is marked invalid and the old chain restored.
 *
 * Account state is derived: on start the store replays the main chain from genesis (with
 * progress), so only blocks and the head pointer need to be durable. A block whose parent is not
 * stored waits in a bounded orphan pool until the parent arrives.
 */
import { CoreError, decodeCanonical, sha256Hex, type Disk } from '../core/index.js'
import { ZERO_ADDRESS, ZERO_HASH, blockHash, blockHeaderSchema, encodeBlockRecord, txRootOf, type Block, type BlockHeader, type GenesisSpec } from './block.js'
import { blockContext, type ConsensusEngine, type HeaderLookup } from './engine.js'
import { LedgerError } from './errors.js'
import { LedgerState, type BlockUndo } from './state.js'
import { checkTx } from './tx.js'

export interface ChainLimits {
  /** The deepest reorganisation the store performs; a heavier branch forking deeper is refused. */
  reorgDepthBlocksMax: number
  /** Blocks waiting for their parent. */
  orphanBlocksMax: number
}

export const defaultChainLimits: Readonly<ChainLimits> = Object.freeze({ reorgDepthBlocksMax: 1_000, orphanBlocksMax: 256 })

export interface StoredHeader {
  hash: string
  header: BlockHeader
  /** Total fork-choice weight of the branch up to and including this block. */
  weight: bigint
  /** Known invalid (or built on an invalid block): never chosen. */
  invalid: boolean
}

export type AddOutcome =
  | { status: 'known', hash: string }
  | { status: 'orphan', hash: string, missingParent: string }
  | { status: 'side', hash: string }
  | { status: 'head', hash: string, reverted: Block[], applied: Block[] }

export interface ChainInit {
  genesis: GenesisSpec
  engine: ConsensusEngine
  disk: Disk
  limits?: Partial<ChainLimits>
}

const BLOCK_KEY = 'ledger/block/'
const HEAD_KEY = 'ledger/head'
/** Stored blocks read per page while a start loads their headers. */
const LOAD_PAGE_BLOCKS = 64
/**
 * Blocks `check` passed on the head whose result is kept until the head moves, for `add` to use
 * (a PoS validator checks each round's proposal: one per round that reaches it at one height).
 */
export const PREPARED_BLOCKS_MAX = 4

export class ChainStore implements HeaderLookup {
  readonly engine: ConsensusEngine
  readonly genesisHash: string
  private readonly limits: ChainLimits
  private readonly disk: Disk
  private readonly headers = new Map<string, StoredHeader>()
  private readonly children = new Map<string, string[]>()
  private readonly orphans = new Map<string, Block>()
  /** Main chain hashes by height. */
  private readonly mainChain: string[] = []
  private readonly undos = new Map<string, BlockUndo>()
  /** Results of `check`, by block hash: the block object, the head it was checked on, its undo record with its result. */
  private readonly prepared = new Map<string, { block: Block, parent: string, undo: BlockUndo }>()
  private undosPrunedBelow = 1
  /** The last computed final height, and the head it was computed at. */
  private finality: { head: string, height: number } | null = null
  private syncInFlight = false
  private syncAgain = false
  private ledger: LedgerState
  private readonly genesis: GenesisSpec

  constructor (init: ChainInit) {
    this.engine = init.engine
    this.disk = init.disk
    this.genesis = init.genesis
    this.limits = { ...defaultChainLimits, ...init.limits }
    this.ledger = LedgerState.fromGenesis(init.genesis)
    const header = genesisHeader(init.genesis, this.ledger.root())
    this.genesisHash = blockHash(header)
    this.remember({ hash: this.genesisHash, header, weight: 0n, invalid: false })
    this.mainChain.push(this.genesisHash)
  }

  /**
   * Loads stored blocks and replays the main chain up to the stored head. `progress` hears of
   * every `progressEveryBlocks` blocks replayed; `onReplayed` gets each replayed block, so the
   * caller can index it without reading it again. Returns the head height.
   *
   * Memory is the headers', the undo records a reorganisation may use and one page of blocks at a
   * time, however long the chain: a first pass pages through the stored blocks
   * (`LOAD_PAGE_BLOCKS` a read) keeping only header and weight, and the replay then reads the
   * main chain's blocks one by one.
   */
  load (progress: (replayed: number, total: number) => void = () => {}, progressEveryBlocks = 1_000, onReplayed: (block: Block, hash: string) => void = () => {}): number {
    const headers: Array<{ hash: string, header: BlockHeader, weight: bigint }> = []
    for (let page = this.disk.entries(BLOCK_KEY, LOAD_PAGE_BLOCKS); page.length > 0; page = this.disk.entries(BLOCK_KEY, LOAD_PAGE_BLOCKS, (page[page.length - 1] as [string, Uint8Array])[0])) {
      for (const [, bytes] of page) {
        const { header, weight } = decodeStoredHeader(bytes)
        headers.push({ hash: blockHash(header), header, weight })
      }
    }
    // Index every stored block, parents before children.
    headers.sort((a, b) => a.header.height - b.header.height)
    for (const { hash, header, weight } of headers) {
      if (this.headers.has(header.parent)) this.remember({ hash, header, weight, invalid: false })
    }
    const headBytes = this.disk.get(HEAD_KEY)
    const headHash = headBytes === undefined ? this.genesisHash : new TextDecoder().decode(headBytes)
    const path: string[] = []
    for (let at = this.headers.get(headHash); at !== undefined && at.hash !== this.genesisHash; at = this.headers.get(at.header.parent)) path.push(at.hash)
    path.reverse()
    for (const [index, hash] of path.entries()) {
      const block = this.block(hash)
      if (block === undefined) throw new CoreError('CORE_DISK_CORRUPT', `the main chain's block ${hash} is not stored under its hash`, { hash })
      this.keepUndo(hash, this.ledger.apply(block, blockContext(this.engine, block.header, this.ledger)))
      this.mainChain.push(hash)
      // Only the undo records a reorganisation may use are kept, during the replay as after it.
      this.pruneUndos()
      onReplayed(block, hash)
      if ((index + 1) % progressEveryBlocks === 0 || index + 1 === path.length) progress(index + 1, path.length)
    }
    return this.mainChain.length - 1
  }

  head (): StoredHeader {
    return this.headers.get(this.mainChain[this.mainChain.length - 1] as string) as StoredHeader
  }

  headHeader (): BlockHeader {
    return this.head().header
  }

  headHash (): string {
    return this.head().hash
  }

  headState (): LedgerState {
    return this.ledger
  }

  /**
   * The height up to which the main chain is final, or null for an engine without finality (PoW).
   * It never goes back: the store refuses to reorganise below it.
   */
  finalizedHeight (): number | null {
    const head = this.head().hash
    if (this.finality !== null && this.finality.head === head) return this.finality.height
    const computed = this.engine.finalizedHeight?.(this)
    if (computed === undefined) return null
    const height = Math.min(Math.max(computed, this.finality?.height ?? 0), this.head().header.height)
    this.finality = { head, height }
    return height
  }

  /** Account state at the head. */
  state (): LedgerState {
    return this.ledger
  }

  header (hash: string): BlockHeader | undefined {
    return this.headers.get(hash)?.header
  }

  /** The state after `hash`: known for the head only (the store keeps one state). */
  stateAfter (hash: string): LedgerState | undefined {
    return hash === this.head().hash ? this.ledger : undefined
  }

  stored (hash: string): StoredHeader | undefined {
    return this.headers.get(hash)
  }

  /** The main-chain block hash at `height`, or undefined above the head. */
  hashAt (height: number): string | undefined {
    return this.mainChain[height]
  }

  isOnMainChain (hash: string): boolean {
    const stored = this.headers.get(hash)
    return stored !== undefined && this.mainChain[stored.header.height] === hash
  }

  block (hash: string): Block | undefined {
    if (hash === this.genesisHash) return { header: (this.headers.get(hash) as StoredHeader).header, txs: [] }
    const bytes = this.disk.get(BLOCK_KEY + hash)
    return bytes === undefined ? undefined : decodeStored(bytes).block
  }

  /**
   * The hashes of a stored block's transactions, from their stored bytes: nothing decoded or
   * checked (a watcher of the chain that needs only the hashes pays a hash a transaction).
   */
  blockTxHashes (hash: string): string[] | undefined {
    if (hash === this.genesisHash) return []
    const bytes = this.disk.get(BLOCK_KEY + hash)
    if (bytes === undefined) return undefined
    const record = decodeCanonical(bytes) as { txs: Uint8Array[] }
    return record.txs.map((tx) => sha256Hex(tx))
  }

  readonly counters = {
    /** Heavier branches not taken because they fork below the final height. */
    belowFinalRefused: 0,
    /** Blocks added to the head from the result of their `check`, not checked and executed again. */
    checkedReused: 0
  }

  /** Main-chain blocks whose undo records are kept, for reorganisations. */
  undoRecords (): number {
    return this.undos.size
  }

  orphanCount (): number {
    return this.orphans.size
  }

  /**
   * Adds a block whose body was checked (`checkBlockBody`: shape, signatures, transaction root).
   * Throws a LedgerError when the block breaks a rule; the caller scores its sender down.
   */
  add (block: Block, nowMs: number): AddOutcome {
    const hash = blockHash(block.header)
    if (this.headers.has(hash)) return { status: 'known', hash }
    const parent = this.headers.get(block.header.parent)
    if (parent === undefined) {
      if (!this.orphans.has(hash)) {
        if (this.orphans.size >= this.limits.orphanBlocksMax) this.orphans.delete(this.orphans.keys().next().value as string)
        this.orphans.set(hash, block)
      }
      return { status: 'orphan', hash, missingParent: block.header.parent }
    }
    let outcome = this.connect(block, hash, parent, nowMs)
    // Blocks that were waiting for this one; one of them may move the head even when this block
    // went to a side branch, and the caller must hear of every block that left or joined the chain.
    const waiting = [...this.orphans].filter(([, orphan]) => orphan.header.parent === hash)
    for (const [orphanHash, orphan] of waiting) {
      this.orphans.delete(orphanHash)
      try {
        const next = this.add(orphan, nowMs)
        if (next.status !== 'head') continue
        outcome = outcome.status === 'head' ? mergeHeadOutcomes(outcome, next) : next
      } catch {
        // An invalid orphan is dropped; its sender is long gone.
      }
    }
    return outcome
  }

  /**
   * Checks every rule `add` applies to a block on the head, executing it and rolling it back,
   * without storing it: what a PoS validator does to a proposal before it votes for it.
   */
  check (block: Block, nowMs: number): void {
    const head = this.head()
    if (block.header.parent !== head.hash) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${block.header.height} does not extend the head`, { reason: 'not_head' })
    const hash = blockHash(block.header)
    this.checkHeader(block, hash, head, nowMs)
    const undo = this.execute(block)
    this.ledger.revert(undo)
    // Kept for `add`: a PoS validator commits the very proposal it checked, on the same head.
    this.prepared.delete(hash)
    if (this.prepared.size >= PREPARED_BLOCKS_MAX) this.prepared.delete(this.prepared.keys().next().value as string)
    this.prepared.set(hash, { block, parent: head.hash, undo })
  }

  /**
   * The result of `check` for this very block object on the current head, applied to the state
   * (`LedgerState.redo`): undefined when there is none, or the state moved since. Its header was
   * checked against the same parent at an earlier time (the only rule that depends on the clock
   * bounds how far ahead of it a block may be, which a later time only relaxes, unless the
   * clock is set back meanwhile), its
   * transactions against its transaction root, and its execution produced its state root.
   */
  private redoChecked (block: Block, hash: string): BlockUndo | undefined {
    const entry = this.prepared.get(hash)
    if (entry === undefined || entry.block !== block || entry.parent !== this.head().hash) return undefined
    this.prepared.delete(hash)
    if (!this.ledger.redo(entry.undo)) return undefined
    this.counters.checkedReused++
    return entry.undo
  }

  private checkHeader (block: Block, hash: string, parent: StoredHeader, nowMs: number): void {
    const header = block.header
    // The same shape check a peer's block gets, for blocks made here too.
    const shape = blockHeaderSchema.safeParse(header)
    if (!shape.success) throw new LedgerError('LEDGER_MALFORMED', `not a block header: ${shape.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).slice(0, 3).join('; ')}`)
    if (parent.invalid) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${hash} builds on an invalid block`)
    if (header.height !== parent.header.height + 1) throw new LedgerError('LEDGER_BAD_BLOCK', `height ${header.height} on a parent at height ${parent.header.height}`)
    if (header.chainId !== this.genesis.chainId) throw new LedgerError('LEDGER_WRONG_CHAIN', `block for chain ${header.chainId}`)
    if (txRootOf(block.txs) !== header.txRoot) throw new LedgerError('LEDGER_BAD_BLOCK', 'the transaction root does not match the transactions')
    this.engine.verifyHeader(header, parent.header, this, nowMs)
  }

  private connect (block: Block, hash: string, parent: StoredHeader, nowMs: number): AddOutcome {
    const header = block.header
    const head = this.head()
    const redone = parent.hash === head.hash ? this.redoChecked(block, hash) : undefined
    if (redone === undefined) this.checkHeader(block, hash, parent, nowMs)
    const stored: StoredHeader = { hash, header, weight: parent.weight + this.engine.weightOf(header), invalid: false }
    if (parent.hash === head.hash) {
      // Extends the head: execute now, so an invalid block is refused before it is stored.
      const undo = redone ?? this.execute(block)
      this.persist(block, stored)
      this.remember(stored)
      this.keepUndo(hash, undo)
      this.mainChain.push(hash)
      this.setHead(hash)
      this.pruneUndos()
      return { status: 'head', hash, reverted: [], applied: [block] }
    }
    this.persist(block, stored)
    this.remember(stored)
    this.requestSync()
    if (stored.weight <= head.weight) return { status: 'side', hash }
    return this.reorganise(stored)
  }

  /** Executes a block on the head state; throws (with the state untouched) unless it yields its state root. */
  private execute (block: Block): BlockUndo {
    this.engine.verifyInState?.(block.header, this.ledger)
    const undo = this.ledger.apply(block, blockContext(this.engine, block.header, this.ledger))
    if (this.ledger.root() !== block.header.stateRoot) {
      this.ledger.revert(undo)
      throw new LedgerError('LEDGER_BAD_BLOCK', `block ${block.header.height}: state root ${block.header.stateRoot} does not match the executed state`, { reason: 'state_root' })
    }
    return undo
  }

  private reorganise (tip: StoredHeader): AddOutcome {
    // The new branch, back to the main chain.
    const branch: StoredHeader[] = []
    let at: StoredHeader | undefined = tip
    while (at !== undefined && !this.isOnMainChain(at.hash)) {
      branch.push(at)
      at = this.headers.get(at.header.parent)
    }
    const fork = at as StoredHeader
    branch.reverse()
    // The longest chain that keeps the final blocks: a branch forking below them never wins.
    const final = this.finalizedHeight()
    if (final !== null && fork.header.height < final) {
      this.counters.belowFinalRefused++
      return { status: 'side', hash: tip.hash }
    }
    const depth = this.mainChain.length - 1 - fork.header.height
    if (depth > this.limits.reorgDepthBlocksMax) {
      throw new LedgerError('LEDGER_BAD_BLOCK', `a heavier branch forks ${depth} blocks back, deeper than reorgDepthBlocksMax ${this.limits.reorgDepthBlocksMax}`, { reason: 'reorg_too_deep' })
    }
    // Every block to roll back must still have its undo record: check before touching the state.
    for (let height = fork.header.height + 1; height < this.mainChain.length; height++) {
      if (!this.undos.has(this.mainChain[height] as string)) {
        throw new LedgerError('LEDGER_BAD_BLOCK', `a heavier branch forks at height ${fork.header.height}, below the blocks this node can still undo`, { reason: 'reorg_too_deep' })
      }
    }
    const reverted = this.rollBackTo(fork.header.height)
    const applied: Block[] = []
    for (const entry of branch) {
      let block: Block | undefined
      try {
        // Read inside the guard: a stored block that no longer decodes is invalid like one that
        // does not execute, and the old chain comes back.
        block = this.block(entry.hash)
        if (block === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${entry.hash} is not on disk`, { reason: 'missing' })
        this.keepUndo(entry.hash, this.execute(block))
      } catch (error) {
        this.markInvalid(entry.hash)
        this.rollBackTo(fork.header.height)
        for (const old of [...reverted].reverse()) {
          this.keepUndo(blockHash(old.header), this.ledger.apply(old, blockContext(this.engine, old.header, this.ledger)))
          this.mainChain.push(blockHash(old.header))
        }
        throw error
      }
      this.mainChain.push(entry.hash)
      applied.push(block)
    }
    this.setHead(tip.hash)
    this.pruneUndos()
    return { status: 'head', hash: tip.hash, reverted: reverted.reverse(), applied }
  }

  /** Reverts main-chain blocks above `height`; returns them, highest first. */
  private rollBackTo (height: number): Block[] {
    const reverted: Block[] = []
    while (this.mainChain.length - 1 > height) {
      const hash = this.mainChain.pop() as string
      const undo = this.undos.get(hash)
      if (undo === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', `no undo record for block ${hash}: deeper than reorgDepthBlocksMax`)
      this.ledger.revert(undo)
      this.undos.delete(hash)
      reverted.push(this.block(hash) as Block)
    }
    return reverted
  }

  private markInvalid (hash: string): void {
    const stored = this.headers.get(hash)
    if (stored === undefined || stored.invalid) return
    stored.invalid = true
    for (const child of this.children.get(hash) ?? []) this.markInvalid(child)
  }

  private remember (stored: StoredHeader): void {
    this.headers.set(stored.hash, stored)
    if (stored.hash === this.genesisHash) return
    const siblings = this.children.get(stored.header.parent)
    if (siblings === undefined) this.children.set(stored.header.parent, [stored.hash])
    else siblings.push(stored.hash)
  }

  private persist (block: Block, stored: StoredHeader): void {
    this.disk.put(BLOCK_KEY + stored.hash, encodeBlockRecord(block, stored.weight))
  }

  /** An undo record kept for reorganisations, without the trees it could restore whole (they would stay in memory with it). */
  private keepUndo (hash: string, undo: BlockUndo): void {
    this.undos.set(hash, LedgerState.settle(undo))
  }

  private setHead (hash: string): void {
    // Checked blocks wait for the head they were checked on, which is gone.
    this.prepared.clear()
    this.disk.put(HEAD_KEY, new TextEncoder().encode(hash))
    this.requestSync()
  }

  /**
   * Makes what was written durable, one sync in flight at a time (the next one covers every write
   * since). Blocks are safe to lose in a crash, since peers have them; losing them costs a re-sync.
   */
  private requestSync (): void {
    if (this.syncInFlight) {
      this.syncAgain = true
      return
    }
    this.syncInFlight = true
    this.disk.sync(() => {
      this.syncInFlight = false
      if (this.syncAgain) {
        this.syncAgain = false
        this.requestSync()
      }
    })
  }

  /**
   * Undo records are kept for the last `reorgDepthBlocksMax` blocks, and only above the final
   * height: a final block is never reverted (a branch forking below it never wins), so its record
   * would only hold memory. With PoS every block on the chain is final and none is kept; with DPoS,
   * those above the last irreversible block.
   */
  private pruneUndos (): void {
    const final = this.finalizedHeight()
    const keepFrom = Math.max(this.mainChain.length - 1 - this.limits.reorgDepthBlocksMax, final === null ? 0 : final + 1)
    for (; this.undosPrunedBelow < keepFrom; this.undosPrunedBelow++) {
      const hash = this.mainChain[this.undosPrunedBelow]
      if (hash !== undefined) this.undos.delete(hash)
    }
  }
}

/**
 * Two head changes in a row as one: blocks the first applied and the second reverted were never
 * on the chain as far as the caller is concerned.
 */
function mergeHeadOutcomes (first: AddOutcome & { status: 'head' }, second: AddOutcome & { status: 'head' }): AddOutcome & { status: 'head' } {
  const undone = new Set(second.reverted.map((block) => blockHash(block.header)))
  const firstApplied = first.applied.filter((block) => !undone.has(blockHash(block.header)))
  const firstAppliedHashes = new Set(first.applied.map((block) => blockHash(block.header)))
  return {
    status: 'head',
    hash: second.hash,
    reverted: [...first.reverted, ...second.reverted.filter((block) => !firstAppliedHashes.has(blockHash(block.header)))],
    applied: [...firstApplied, ...second.applied]
  }
}

export function genesisHeader (genesis: GenesisSpec, stateRoot: string): BlockHeader {
  return { chainId: genesis.chainId, height: 0, parent: ZERO_HASH, timeMs: genesis.timeMs, txRoot: txRootOf([]), stateRoot, proposer: ZERO_ADDRESS, seal: null }
}

/** A stored block's header and weight (its transactions are not parsed, and not kept). */
function decodeStoredHeader (bytes: Uint8Array): { header: BlockHeader, weight: bigint } {
  const record = decodeCanonical(bytes) as { header: BlockHeader, weight: bigint | number | string }
  return { header: record.header, weight: BigInt(record.weight) }
}

function decodeStored (bytes: Uint8Array): { block: Block, weight: bigint } {
  const record = decodeCanonical(bytes) as { header: BlockHeader, txs: Uint8Array[], weight: bigint | number | string }
  // Stored blocks were checked, signatures included, before they were stored: their shape is
  // checked again, their signatures are not (a restart or a served block costs no verification).
  const txs = record.txs.map((tx) => checkTx(decodeCanonical(tx), record.header.chainId, { signatureVerified: true }))
  return { block: { header: record.header, txs }, weight: BigInt(record.weight) }
}
