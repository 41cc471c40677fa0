/**
 * The ledger service: the chain store, the mempool, proof-of-work block production and the
 * network protocol around them. Transactions and blocks spread by broadcast over the overlay; a
 * node that is behind (it started late, restarted, was partitioned, or got a block whose parent
 * it lacks) asks a peer for the blocks after its locator and verifies each before applying it.
 * A peer that sends an invalid block or transaction is reported (`penalize`) so membership
 * scores it down. Mining runs outside the protocol (`Sealer`: worker threads in a real node,
 * a timed model in the simulator), restarts on every new head, and its blocks go through the
 * same checks as everyone else's.
 */
import { bytesEqual, decodeCanonical, fromHex, sha256Hex, type Ed25519KeyPair, type Env, type Message, type NodeId, type Service, type TimerId } from '../core/index.js'
import type { Account } from './account-tree.js'
import { TX_HASH_BYTES, blockHash, checkBlockBody, checkBlockHeader, checkCompactBlock, defaultBlockLimits, encodeBlock, packTxHashes, readCompactBlock, unpackTxHashes, sealingHash, txRootOf, type Block, type BlockHeader, type BlockLimits, type CompactBlock, type GenesisSpec } from './block.js'
import { ChainStore, defaultChainLimits, type AddOutcome, type ChainLimits } from './chain.js'
import { blockContext, type ConsensusEngine } from './engine.js'
import { PowEngine, type PowSeal } from './consensus/pow/engine.js'
import { encodeWorkHeader, workCommitment } from './consensus/pow/header.js'
import { MEDIAN_TIME_SPAN_BLOCKS, medianTimePast } from './consensus/pow/work.js'
import { LedgerError } from './errors.js'
import { Mempool, defaultMempoolLimits, type MempoolCheck, type MempoolLimits } from './mempool.js'
import { LOCATOR_HASHES_MAX, SYNC_BLOCKS_PER_REPLY_MAX, TX_BATCH_TXS_MAX, TX_FETCH_TXS_MAX, ledgerMessages, type LedgerBlockMessage, type LedgerBlocks, type LedgerGetBlocks, type LedgerGetTxs, type LedgerTxsFound, type LedgerTxsMessage } from './messages.js'
import { addressFromPublicKey } from './address.js'
import type { SignedStatement } from './statement.js'
import { encodeTx, parseTx, senderOf, signTx, txHash, verifyTxSignatures, type Address, type SignedTx } from './tx.js'

/** Canonical CBOR from a peer or a client, or LEDGER_MALFORMED: bad bytes are the ledger's typed error. */
export function decodeLedgerBytes (bytes: Uint8Array, what: string): unknown {
  try {
    return decodeCanonical(bytes)
  } catch (error) {
    throw new LedgerError('LEDGER_MALFORMED', `${what} bytes: ${(error as Error).message}`)
  }
}

export const TX_TOPIC = 'ledger/tx'
export const BLOCK_TOPIC = 'ledger/block'

/** What the ledger needs from the overlay. */
export interface LedgerNet {
  send<M extends Message> (to: NodeId, message: M): void
  broadcast<M extends Message> (topic: string, message: M): string
  subscribe (topic: string, handler: (message: Message, delivery: { origin: NodeId, hops: number }) => void): void
  onRouted (type: string, handler: (message: Message, delivery: { origin: NodeId, hops: number }) => void): void
}

/** Who a message came from: its origin and how many overlay hops it travelled. */
export interface Delivery { origin: NodeId, hops: number }

export interface SealJob {
  /** The 80-byte work header; the sealer fills in commitment (from the extra nonce) and nonce. */
  header: Uint8Array
  commitmentBase: Uint8Array
  target: bigint
}

/** Finds proof of work: asynchronously, off the protocol's thread in a real node. */
export interface Sealer {
  /** Called when the ledger starts: a sealer that runs on protocol time (the simulator's) takes the env here. */
  start?: (env: Env) => void
  /** Starts on `job`, replacing any job in progress; `done` gets the seal, or null if cancelled. */
  mine (job: SealJob, done: (seal: { nonce: number, extraNonce: number } | null) => void): void
  cancel (): void
}

export interface LedgerLimits extends BlockLimits, ChainLimits, MempoolLimits {
  /** Interval of the sync check with a random peer. */
  syncIntervalMs: number
  /** Blocks asked for per sync request. */
  syncBlocksPerRequest: number
  /** A mining template is rebuilt this often when new transactions arrived. */
  templateRefreshMs: number
  /** Submitted transactions wait at most this long to be gossiped in one batch. */
  txBatchMs: number
  /** A gossip batch goes out at once when it holds this many transactions (at most TX_BATCH_TXS_MAX)... */
  txBatchTxsMax: number
  /** ...or this many bytes. */
  txBatchBytesMax: number
  /**
   * Transactions gossiped by peers wait in the intake queue for their checks, at most this many:
   * one more is dropped and counted (a peer's gossip carries no promise; the client that sent it
   * was answered by the node it reached)...
   */
  intakeQueueTxsMax: number
  /**
   * ...and are checked this many at a time: between two slices the event loop serves the network,
   * so a proposal or a vote never waits behind a backlog of signature checks (consensus messages
   * go first, as CometBFT's channel priorities put them).
   */
  intakeSliceTxs: number
  /**
   * Included transactions the index behind `txStatus` (`GET /v1/tx/{hash}`) keeps, the most
   * recent blocks' (whole blocks, the oldest forgotten first): older ones answer `unknown`, as
   * geth's `txlookuplimit` bounds its index. About 150 bytes of memory each.
   */
  txIndexTxsMax: number
  /**
   * A compact block (a PoS proposal) whose missing transactions the peer that sent it has not
   * supplied within this long is given up (the proposal then counts as not received).
   */
  txFetchTimeoutMs: number
}

export const defaultLedgerLimits: Readonly<LedgerLimits> = Object.freeze({
  ...defaultBlockLimits,
  ...defaultChainLimits,
  ...defaultMempoolLimits,
  /** A block with its gossip envelope must fit one message (`messageBytesMax`, 1 MiB). */
  blockBytesMax: 512 * 1024,
  syncIntervalMs: 5_000,
  syncBlocksPerRequest: 64,
  templateRefreshMs: 1_000,
  txBatchMs: 20,
  txBatchTxsMax: 256,
  txBatchBytesMax: 128 * 1024,
  intakeQueueTxsMax: 20_000,
  intakeSliceTxs: 32,
  txIndexTxsMax: 1_000_000,
  txFetchTimeoutMs: 1_000
})

export interface LedgerInit {
  net: LedgerNet
  genesis: GenesisSpec
  engine: ConsensusEngine
  /** Null: this node does not mine (always null for engines other than PoW). */
  sealer: Sealer | null
  /**
   * Engines with finality (PoS): the proof that makes a block final, sent beside it in sync
   * replies, and the check a synced block must pass with it before it is added.
   */
  finality?: FinalityProofs
  /** Where this node's block rewards and fees go. */
  coinbase: Address
  /** Reports a peer that sent something invalid (membership lowers its score). */
  penalize?: (peer: NodeId, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string) => void
  limits?: Partial<LedgerLimits>
}

export interface FinalityProofs {
  /** The proof for a main-chain block (PoS: its commit certificate), if this node has it. */
  proofOf (hash: string): Uint8Array | undefined
  /** Checks a block from a peer with its proof; throws a LedgerError. Called before the block is added. */
  admit (block: Block, proof: Uint8Array | undefined): void
}

export interface LedgerStats {
  blocksMined: number
  blocksAccepted: number
  blocksRejected: number
  reorgs: number
  deepestReorg: number
  txsAccepted: number
  txsRejected: number
  syncRequests: number
  syncBlocksReceived: number
  /** Invalid blocks or transactions relayed by others, whose origin cannot be proven: not penalized. */
  invalidUnattributed: number
  /** Block transactions whose signatures were not checked again: verified when the pool admitted them. */
  signaturesSkipped: number
  /**
   * Transaction signatures this node verified: a transaction's bytes are verified once, by
   * whichever path meets them first (the pool's intake, or a block), and the other skips them.
   */
  signaturesVerified: number
  /** Gossiped transactions dropped because the intake queue held `intakeQueueTxsMax`. */
  intakeDropped: number
  /** Compact blocks (PoS proposals) put together from this node's own transactions and those it fetched. */
  compactBlocksAssembled: number
  /** Transactions a compact block named that still waited in the intake queue, checked out of turn for it. */
  compactTxsFromIntake: number
  /** Transactions a compact block named that this node lacked and fetched from the peer that sent it. */
  compactTxsFetched: number
  /** Compact blocks given up: their missing transactions did not come (in time, or at all). */
  compactBlocksUnavailable: number
}

/**
 * A gossiped transaction waiting in the intake queue. `hash` (of its bytes) is computed when a
 * compact block looks for a transaction there; `checked` marks one checked out of turn for it.
 */
interface IntakeItem { bytes: Uint8Array, from: Delivery, hash: string | null, checked: boolean }

/** Fetches of a compact block's missing transactions in flight at once; a compact block past them is given up. */
export const TX_FETCHES_MAX = 16
/** ...of which at most this many from one peer: one peer's compact blocks cannot take every slot. */
export const TX_FETCHES_PER_PEER_MAX = 4
/** Stored blocks one `ledger.get-txs` answer reads transactions from (those not in the pool). */
export const TX_FETCH_BLOCK_READS_MAX = 4

/** A compact block waiting for the transactions it names that this node lacked. */
interface TxFetch {
  compact: CompactBlock
  /** Each named transaction found so far, by hash. */
  found: Map<string, SignedTx>
  /** The hashes asked for. */
  wanted: Set<string>
  from: NodeId
  done: (result: Block | LedgerError) => void
  timer: TimerId
}

/** Transactions whose verified signatures are remembered (the oldest are forgotten first). */
export const VERIFIED_TXS_KEPT_MAX = 200_000

/** A set that forgets its oldest entries beyond `capacity`. */
class BoundedSet<T> {
  private readonly items = new Set<T>()
  constructor (private readonly capacity: number) {}
  has (item: T): boolean { return this.items.has(item) }
  add (item: T): void {
    if (this.items.has(item)) return
    this.items.add(item)
    if (this.items.size > this.capacity) this.items.delete(this.items.values().next().value as T)
  }
}

/** A block's entry in the transaction index. */
interface IndexedBlock { readonly block: string, txs: string[] }

export type TxStatus =
  | { status: 'pending' }
  | { status: 'included', height: number, block: string, confirmations: number }
  | { status: 'unknown' }

export class LedgerService implements Service {
  readonly name = 'ledger'
  readonly messages = ledgerMessages
  private env: Env | null = null
  private chainStore: ChainStore | null = null
  private readonly mempool: Mempool
  private readonly limits: LedgerLimits
  private readonly counters: LedgerStats = { blocksMined: 0, blocksAccepted: 0, blocksRejected: 0, reorgs: 0, deepestReorg: 0, txsAccepted: 0, txsRejected: 0, syncRequests: 0, syncBlocksReceived: 0, invalidUnattributed: 0, signaturesSkipped: 0, signaturesVerified: 0, intakeDropped: 0, compactBlocksAssembled: 0, compactTxsFromIntake: 0, compactTxsFetched: 0, compactBlocksUnavailable: 0 }
  private syncTimer: TimerId | null = null
  private refreshTimer: TimerId | null = null
  private mining = false
  private templateStale = false
  private syncing = false

  /**
   * Hashes of transaction bytes whose signatures this node verified, in its pool's intake or in a
   * block it decoded: a block carrying them, or the same transaction gossiped later, skips them.
   */
  private readonly verified = new BoundedSet<string>(VERIFIED_TXS_KEPT_MAX)
  private txBatch: Uint8Array[] = []
  private txBatchBytes = 0
  private txBatchTimer: TimerId | null = null
  /** Gossiped transactions waiting for their checks, oldest first; `intakeHead` indexes the next. */
  private intake: IntakeItem[] = []
  private intakeHead = 0
  /** Items past `intakeHead` already checked out of turn (for a compact block): not waiting any more. */
  private intakeCheckedAhead = 0
  private intakeTimer: TimerId | null = null
  /** Where each recently included main-chain transaction is: tx hash -> block hash (`txIndexTxsMax` of them). */
  private readonly included = new Map<string, IndexedBlock>()
  /** The indexed blocks, oldest first, with their transactions' hashes: the order they are forgotten in. */
  private indexedBlocks: IndexedBlock[] = []
  private indexedHead = 0
  private indexedTxs = 0
  private readonly fetches = new Map<number, TxFetch>()
  private readonly headListeners: Array<(outcome: AddOutcome & { status: 'head' }) => void> = []
  private readonly blockListeners: Array<(block: Block) => void> = []

  constructor (private readonly init: LedgerInit) {
    if (init.sealer !== null && !(init.engine instanceof PowEngine)) throw new LedgerError('LEDGER_CONFIG_INVALID', `a sealer mines proof of work; engine ${init.engine.name} has none`)
    this.limits = { ...defaultLedgerLimits, ...init.limits }
    this.mempool = new Mempool(this.limits)
    init.net.subscribe(TX_TOPIC, (message, delivery) => { this.onTxMessage(message, delivery) })
    init.net.subscribe(BLOCK_TOPIC, (message, delivery) => { this.onBlockMessage(message, delivery) })
    init.net.onRouted('ledger.get-blocks', (message, delivery) => { this.onGetBlocks(message as LedgerGetBlocks, delivery.origin) })
    init.net.onRouted('ledger.blocks', (message, delivery) => { this.onBlocks(message as LedgerBlocks, delivery) })
    init.net.onRouted('ledger.get-txs', (message, delivery) => { this.onGetTxs(message as LedgerGetTxs, delivery) })
    init.net.onRouted('ledger.txs-found', (message, delivery) => { this.onTxsFound(message as LedgerTxsFound, delivery) })
  }

  start (env: Env): void {
    this.env = env
    const chain = new ChainStore({ genesis: this.init.genesis, engine: this.init.engine, disk: env.disk, limits: this.limits })
    const height = chain.load((replayed, total) => { env.log.info({ replayed, total }, 'replaying the chain') }, undefined, (block, hash) => { this.indexBlock(block, hash) })
    this.chainStore = chain
    env.log.info({ height, head: chain.head().hash, engine: this.init.engine.name, mining: this.init.sealer !== null }, 'ledger started')
    this.scheduleSync(env.random.int(0, this.limits.syncIntervalMs))
    if (this.init.sealer !== null) {
      this.init.sealer.start?.(env)
      this.mining = true
      this.mineOnHead()
      this.refreshTimer = env.setTimer(this.limits.templateRefreshMs, () => { this.refreshTemplate() })
    }
  }

  stop (): void {
    this.mining = false
    this.init.sealer?.cancel()
    if (this.syncTimer !== null) this.env?.clearTimer(this.syncTimer)
    if (this.refreshTimer !== null) this.env?.clearTimer(this.refreshTimer)
    if (this.txBatchTimer !== null) this.env?.clearTimer(this.txBatchTimer)
    this.txBatchTimer = null
    this.txBatch = []
    this.txBatchBytes = 0
    for (const fetch of this.fetches.values()) this.env?.clearTimer(fetch.timer)
    this.fetches.clear()
    if (this.intakeTimer !== null) this.env?.clearTimer(this.intakeTimer)
    this.intakeTimer = null
    this.intake = []
    this.intakeHead = 0
    this.intakeCheckedAhead = 0
    this.syncTimer = null
    this.refreshTimer = null
    this.env = null
  }

  onMessage (from: NodeId, message: Message): void {
    this.init.penalize?.(from, 'protocol_violation', `bare ${message.type} outside the overlay`)
  }

  /** Hears of every valid new block this node stores, its own and its peers', on any branch. */
  onBlockAdded (listener: (block: Block) => void): void {
    this.blockListeners.push(listener)
  }

  /** Adds a block this node produced and broadcasts it; throws a LedgerError if it is invalid. */
  publishBlock (block: Block): AddOutcome {
    const outcome = this.addBlock(block)
    this.init.net.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: encodeBlock(block) } satisfies LedgerBlockMessage)
    return outcome
  }

  /** Hears of every change of head (after the pool is updated). */
  onHead (listener: (outcome: AddOutcome & { status: 'head' }) => void): void {
    this.headListeners.push(listener)
  }

  get genesis (): GenesisSpec {
    return this.init.genesis
  }

  get engine (): ConsensusEngine {
    return this.init.engine
  }

  chain (): ChainStore {
    if (this.chainStore === null) throw new Error('ledger used before start')
    return this.chainStore
  }

  pool (): Mempool {
    return this.mempool
  }

  stats (): LedgerStats {
    return { ...this.counters }
  }

  /** Accepts a transaction from a client: checked, pooled, broadcast. Throws a LedgerError. */
  submit (candidate: unknown): { hash: string } {
    return this.accept({ value: candidate })
  }

  /**
   * Accepts a transaction as its canonical bytes (what gossip and blocks carry; a wallet's raw
   * transaction): decoded and then checked as `submit` checks it. Throws a LedgerError
   * (LEDGER_MALFORMED for bytes that are not a transaction).
   */
  submitBytes (bytes: Uint8Array): { hash: string } {
    return this.accept({ bytes })
  }

  private accept (source: { bytes: Uint8Array } | { value: unknown }): { hash: string } {
    const env = this.requireEnv()
    const tx = this.receiveTx(source)
    const pending = txHash(tx)
    env.log.debug({ hash: pending }, 'transaction submitted')
    this.gossipTx(tx)
    return { hash: pending }
  }

  /**
   * Queues a transaction for gossip: a batch goes out every `txBatchMs`, or at once when it holds
   * `txBatchTxsMax` transactions or `txBatchBytesMax` bytes (one message instead of one per
   * transaction: fewer frames, headers and syscalls for every node).
   */
  private gossipTx (tx: SignedTx): void {
    const env = this.requireEnv()
    const bytes = encodeTx(tx)
    this.txBatch.push(bytes)
    this.txBatchBytes += bytes.length
    if (this.txBatch.length >= Math.min(this.limits.txBatchTxsMax, TX_BATCH_TXS_MAX) || this.txBatchBytes >= this.limits.txBatchBytesMax) {
      this.flushTxs()
      return
    }
    this.txBatchTimer ??= env.setTimer(this.limits.txBatchMs, () => {
      this.txBatchTimer = null
      this.flushTxs()
    })
  }

  /**
   * Sends the transactions waiting for the next gossip batch now: a proposer calls it before its
   * compact proposal goes out, so that the transactions it names travel ahead of it.
   */
  flushTxGossip (): void {
    this.flushTxs()
  }

  private flushTxs (): void {
    if (this.txBatchTimer !== null) this.env?.clearTimer(this.txBatchTimer)
    this.txBatchTimer = null
    if (this.txBatch.length === 0) return
    const txs = this.txBatch
    this.txBatch = []
    this.txBatchBytes = 0
    this.init.net.broadcast(TX_TOPIC, { type: 'ledger.txs', txs } satisfies LedgerTxsMessage)
  }

  /**
   * Signs with `signer` an evidence transaction against the author of two conflicting statements
   * (its next nonce counts the sender's pending transactions) and submits it; false when the pool
   * refuses it (logged).
   */
  submitEvidence (signer: Ed25519KeyPair, first: SignedStatement, second: SignedStatement): boolean {
    const env = this.requireEnv()
    const sender = addressFromPublicKey(signer.publicKey)
    const pending = this.mempool.pending().filter((entry) => entry.sender === sender).length
    try {
      this.submit(signTx({ chainId: this.init.genesis.chainId, publicKey: signer.publicKey, nonce: this.chain().state().get(sender).nonce + pending, fee: this.limits.feeMin, body: { kind: 'evidence', first, second } }, signer))
      return true
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      env.log.warn({ code: error.code, reason: error.message }, 'could not submit evidence')
      return false
    }
  }

  txStatus (hash: string): TxStatus {
    const chain = this.chain()
    const blockHashOf = this.included.get(hash)?.block
    if (blockHashOf !== undefined) {
      const stored = chain.stored(blockHashOf)
      if (stored !== undefined && chain.isOnMainChain(blockHashOf)) {
        return { status: 'included', height: stored.header.height, block: blockHashOf, confirmations: chain.head().header.height - stored.header.height + 1 }
      }
    }
    return this.mempool.has(hash) ? { status: 'pending' } : { status: 'unknown' }
  }

  /** Adds a block (ours or a peer's); returns the outcome, or throws a LedgerError. */
  addBlock (block: Block): AddOutcome {
    const env = this.requireEnv()
    const chain = this.chain()
    const before = chain.head().hash
    const outcome = chain.add(block, env.now())
    if (outcome.status === 'head' || outcome.status === 'side') for (const listener of this.blockListeners) listener(block)
    if (outcome.status === 'head') this.onNewHead(outcome, before)
    return outcome
  }

  // --- network ----------------------------------------------------------------------------------

  private onTxMessage (message: Message, from: Delivery): void {
    const env = this.env
    if (env === null || from.origin === env.self) return
    for (const bytes of (message as LedgerTxsMessage).txs) {
      if (this.intakeQueued() >= this.limits.intakeQueueTxsMax) {
        this.counters.intakeDropped++
        continue
      }
      this.intake.push({ bytes, from, hash: null, checked: false })
    }
    this.scheduleIntake()
  }

  /** Gossiped transactions waiting in the intake queue. */
  intakeQueued (): number {
    return this.intake.length - this.intakeHead - this.intakeCheckedAhead
  }

  private scheduleIntake (): void {
    if (this.intakeTimer !== null || this.intakeHead >= this.intake.length || this.env === null) return
    this.intakeTimer = this.env.setTimer(0, () => {
      this.intakeTimer = null
      this.checkIntakeSlice()
    })
  }

  /** Checks the next `intakeSliceTxs` queued transactions, and schedules the rest for after the network is served. */
  private checkIntakeSlice (): void {
    try {
      this.checkIntakeItems(Math.min(this.intake.length, this.intakeHead + Math.max(1, this.limits.intakeSliceTxs)))
    } finally {
      // Even after an unexpected error (a bug, not a bad transaction) the rest of the queue goes on.
      this.compactIntake()
      this.scheduleIntake()
    }
  }

  private checkIntakeItems (end: number): void {
    while (this.intakeHead < end && this.env !== null) {
      const item = this.intake[this.intakeHead++] as IntakeItem
      if (item.checked) this.intakeCheckedAhead--
      else this.checkIntakeItem(item)
    }
  }

  /** Checks one gossiped transaction and pools it; returns it, or null when it was refused. */
  private checkIntakeItem (item: IntakeItem): SignedTx | null {
    item.checked = true
    const { bytes, from } = item
    try {
      return this.receiveTx({ bytes })
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      // A bad signature or shape is the sender's fault; a pool refusal (duplicate, nonce used) is not.
      if (error.code === 'LEDGER_BAD_SIGNATURE') this.report(from, 'invalid_signature', error.message)
      else if (error.code === 'LEDGER_MALFORMED' || error.code === 'LEDGER_WRONG_CHAIN') this.report(from, 'malformed_message', error.message)
      return null
    }
  }

  private compactIntake (): void {
    if (this.intakeHead === this.intake.length) {
      this.intake = []
      this.intakeHead = 0
    } else if (this.intakeHead >= 4_096 && this.intakeHead * 2 >= this.intake.length) {
      // Drop the checked prefix now and then, so the array does not grow with a long backlog.
      this.intake = this.intake.slice(this.intakeHead)
      this.intakeHead = 0
    }
  }

  private onBlockMessage (message: Message, from: Delivery): void {
    const env = this.env
    if (env === null || from.origin === env.self) return
    this.receiveBlock((message as LedgerBlockMessage).block, from)
  }

  /**
   * Reports an invalid block or transaction to membership, against its origin, but only when it
   * came straight over an authenticated link: an origin named in a message relayed by others
   * could be forged to get an honest node banned.
   */
  private report (from: Delivery, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string): void {
    if (from.hops > 1) {
      this.counters.invalidUnattributed++
      return
    }
    this.init.penalize?.(from.origin, offence, reason)
  }

  /** Decodes, checks and adds a block from `from`; false when it was invalid. */
  private receiveBlock (bytes: Uint8Array, from: Delivery, proof?: Uint8Array): boolean {
    let block: Block
    try {
      block = this.decodeBlock(bytes)
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      this.refuseBlock(error, from)
      return false
    }
    return this.acceptBlock(block, from, proof)
  }

  /** Adds a block from `from` whose body is checked (with its finality proof, for engines that have one); false when it was invalid. */
  private acceptBlock (block: Block, from: Delivery, proof?: Uint8Array): boolean {
    try {
      if (this.init.finality !== undefined) {
        if (this.chain().stored(blockHash(block.header)) !== undefined) return true
        this.init.finality.admit(block, proof)
      }
      const outcome = this.addBlock(block)
      if (outcome.status === 'orphan') this.requestBlocks(from.origin)
      return true
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      this.refuseBlock(error, from)
      return false
    }
  }

  private refuseBlock (error: LedgerError, from: Delivery): void {
    this.counters.blocksRejected++
    this.env?.log.warn({ from: from.origin, code: error.code, reason: error.message }, 'invalid block refused')
    this.report(from, error.code === 'LEDGER_BAD_SIGNATURE' ? 'invalid_signature' : error.code === 'LEDGER_MALFORMED' ? 'malformed_message' : 'protocol_violation', `${error.code}: ${error.message}`)
  }

  /** A block from a peer's bytes, with its body checked (`checkBlockBody`); throws a LedgerError. */
  decodeBlockBytes (bytes: Uint8Array): Block {
    return this.decodeBlock(bytes)
  }

  private decodeBlock (bytes: Uint8Array): Block {
    const raw = decodeLedgerBytes(bytes, 'block')
    if (typeof raw !== 'object' || raw === null) throw new LedgerError('LEDGER_MALFORMED', 'a block is a map')
    const candidate = raw as { header?: unknown, txs?: unknown }
    // Most of a block's transactions are in this node's pool, checked: those are looked up by the
    // hash of their bytes (the transaction hash) instead of being decoded and checked again.
    const hashes = new Map<unknown, string>()
    const hashOf = (tx: Uint8Array): string => {
      let hash = hashes.get(tx)
      if (hash === undefined) hashes.set(tx, hash = sha256Hex(tx))
      return hash
    }
    const verifiedHere: Uint8Array[] = []
    const block = checkBlockBody({ header: candidate.header, txs: candidate.txs }, this.init.genesis.chainId, this.limits, (tx) => {
      if (!(tx instanceof Uint8Array)) throw new LedgerError('LEDGER_MALFORMED', 'a block transaction is bytes')
      return decodeLedgerBytes(tx, 'block transaction')
    }, {
      known: (tx) => {
        if (!(tx instanceof Uint8Array)) return undefined
        const pending = this.mempool.get(hashOf(tx))
        if (pending !== undefined) this.counters.signaturesSkipped++
        return pending?.tx
      },
      signatureVerified: (tx) => {
        if (!(tx instanceof Uint8Array)) return false
        if (!this.verified.has(hashOf(tx))) {
          verifiedHere.push(tx)
          return false
        }
        this.counters.signaturesSkipped++
        return true
      },
      bytes: bytes.length
    })
    // Every signature in the body holds now: the same bytes gossiped later (still in the intake
    // queue, say) are not verified again.
    for (const tx of verifiedHere) this.verified.add(hashOf(tx))
    this.counters.signaturesVerified += verifiedHere.length
    return block
  }

  /**
   * Puts a block together from its compact form (`encodeCompactBlock`: a PoS proposal's): each
   * transaction it names from this node's pool, after the gossip waiting in the intake queue is
   * checked as far as it holds named ones (a fresh proposal names what was gossiped just before
   * it); the rest are asked of `from`, the peer the compact block came from, which holds them.
   * `done` gets the block, checked as `decodeBlockBytes` checks a whole one, or the LedgerError
   * that refuses it (LEDGER_TXS_UNAVAILABLE when the peer does not supply the missing ones within
   * `txFetchTimeoutMs`): at once when nothing is missing, else when the peer answers.
   */
  assembleBlock (bytes: Uint8Array, from: NodeId, done: (result: Block | LedgerError) => void): void {
    const env = this.requireEnv()
    let compact: CompactBlock
    let hash: string
    try {
      compact = readCompactBlock(decodeLedgerBytes(bytes, 'compact block'), this.limits)
      // The header's shape and chain before anything is looked up or fetched for it.
      hash = blockHash(checkBlockHeader(compact.header, this.init.genesis.chainId))
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      done(error)
      return
    }
    // A block this node stores (it came by sync, say) is taken from its store: its transactions
    // left the pool when it joined the chain.
    const stored = this.chain().stored(hash) === undefined ? undefined : this.chain().block(hash)
    if (stored !== undefined) {
      done(stored)
      return
    }
    const found = new Map<string, SignedTx>()
    const missing = new Set<string>()
    for (const hash of compact.txHashes) {
      const pending = this.mempool.get(hash)
      if (pending === undefined) missing.add(hash)
      else {
        // Verified when the pool admitted it: not checked again.
        found.set(hash, pending.tx)
        this.counters.signaturesSkipped++
      }
    }
    // Gossip that arrived before the block may still wait for its checks: the named transactions
    // found there are checked now, out of turn (each queued one is hashed once for that), and the
    // rest of the queue keeps its turn.
    for (let index = this.intakeHead; missing.size > 0 && index < this.intake.length && this.env !== null; index++) {
      const item = this.intake[index] as IntakeItem
      if (item.checked) continue
      item.hash ??= sha256Hex(item.bytes)
      if (!missing.has(item.hash)) continue
      this.intakeCheckedAhead++
      const admitted = this.checkIntakeItem(item)
      if (admitted !== null && missing.delete(txHash(admitted))) {
        found.set(txHash(admitted), admitted)
        this.counters.compactTxsFromIntake++
      }
    }
    if (missing.size === 0) {
      this.finishAssembly(compact, found, done)
      return
    }
    let fromPeer = 0
    for (const fetch of this.fetches.values()) if (fetch.from === from) fromPeer++
    if (this.fetches.size >= TX_FETCHES_MAX || fromPeer >= TX_FETCHES_PER_PEER_MAX) {
      this.giveUp(done, `${missing.size} transactions are missing and ${fromPeer >= TX_FETCHES_PER_PEER_MAX ? `${TX_FETCHES_PER_PEER_MAX} fetches from ${from}` : `${TX_FETCHES_MAX} fetches`} are in flight`, missing.size)
      return
    }
    // Not guessable: an answer must name a fetch this node made.
    let id = env.random.int(0, 0x7fffffff)
    while (this.fetches.has(id)) id = env.random.int(0, 0x7fffffff)
    const hashes = packTxHashes(missing, missing.size)
    const timer = env.setTimer(this.limits.txFetchTimeoutMs, () => {
      if (this.fetches.delete(id)) this.giveUp(done, `${from} did not send the ${missing.size} missing transactions within ${this.limits.txFetchTimeoutMs} ms`, missing.size)
    })
    this.fetches.set(id, { compact, found, wanted: missing, from, done, timer })
    try {
      this.init.net.send(from, { type: 'ledger.get-txs', id, hashes } satisfies LedgerGetTxs)
    } catch {
      this.fetches.delete(id)
      env.clearTimer(timer)
      this.giveUp(done, `no route to ${from} to fetch the missing transactions`, missing.size)
    }
  }

  private giveUp (done: (result: Block | LedgerError) => void, reason: string, missing: number): void {
    this.counters.compactBlocksUnavailable++
    done(new LedgerError('LEDGER_TXS_UNAVAILABLE', reason, { missing }))
  }

  private finishAssembly (compact: CompactBlock, found: Map<string, SignedTx>, done: (result: Block | LedgerError) => void): void {
    let block: Block
    try {
      block = checkCompactBlock(compact, compact.txHashes.map((hash) => found.get(hash) as SignedTx), this.init.genesis.chainId, this.limits)
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      done(error)
      return
    }
    this.counters.compactBlocksAssembled++
    done(block)
  }

  /** Serves a peer's fetch for a compact block's transactions: those in the pool, or in a recent block. */
  private onGetTxs (request: LedgerGetTxs, from: Delivery): void {
    if (this.chainStore === null) return
    const count = request.hashes.length / TX_HASH_BYTES
    if (!Number.isInteger(count) || count > TX_FETCH_TXS_MAX) {
      this.report(from, 'malformed_message', `a fetch of ${request.hashes.length} bytes of hashes`)
      return
    }
    const txs: Uint8Array[] = []
    const blocks = new Map<string, Map<string, SignedTx>>()
    let bytes = 0
    for (const hash of unpackTxHashes(request.hashes)) {
      const tx = this.mempool.get(hash)?.tx ?? this.includedTx(hash, blocks)
      if (tx === undefined) continue
      const encoded = encodeTx(tx)
      // A reply carries at most a block's worth of bytes (one fits a message).
      if (bytes + encoded.length > this.limits.blockBytesMax) break
      bytes += encoded.length
      txs.push(encoded)
    }
    try {
      this.init.net.send(from.origin, { type: 'ledger.txs-found', id: request.id, txs } satisfies LedgerTxsFound)
    } catch { /* no route now: the asker gives up after its timeout */ }
  }

  /**
   * An included transaction by hash, read from its block (`blocks` keeps each block read for the
   * rest of one request, and at most TX_FETCH_BLOCK_READS_MAX are read: an answer is for a recent
   * block's few missing transactions, not a way to make a node decode its chain).
   */
  private includedTx (hash: string, blocks: Map<string, Map<string, SignedTx>>): SignedTx | undefined {
    const blockHashOf = this.included.get(hash)?.block
    if (blockHashOf === undefined) return undefined
    let txs = blocks.get(blockHashOf)
    if (txs === undefined) {
      if (blocks.size >= TX_FETCH_BLOCK_READS_MAX) return undefined
      txs = new Map((this.chain().block(blockHashOf)?.txs ?? []).map((tx) => [txHash(tx), tx]))
      blocks.set(blockHashOf, txs)
    }
    return txs.get(hash)
  }

  /** A peer's answer to a fetch: each transaction checked (its signatures verified, unless verified here before), then the block put together. */
  private onTxsFound (reply: LedgerTxsFound, delivery: Delivery): void {
    const fetch = this.fetches.get(reply.id)
    // Late (given up), or not from the peer asked: nothing waits for it.
    if (fetch === undefined || delivery.origin !== fetch.from) return
    for (const bytes of reply.txs) {
      try {
        const tx = this.parseTxBytes(bytes)
        const hash = txHash(tx)
        if (!fetch.wanted.has(hash)) throw new LedgerError('LEDGER_MALFORMED', 'a fetched transaction that was not asked for')
        if (fetch.found.has(hash)) continue
        this.verifyOnce(tx)
        fetch.found.set(hash, tx)
        this.counters.compactTxsFetched++
        this.poolFetched(tx)
      } catch (error) {
        if (!(error instanceof LedgerError)) throw error
        // An answer relayed by others names an origin that could be forged: it ends nothing.
        if (delivery.hops > 1) {
          this.counters.invalidUnattributed++
          return
        }
        this.endFetch(reply.id, fetch)
        this.report(delivery, error.code === 'LEDGER_BAD_SIGNATURE' ? 'invalid_signature' : 'malformed_message', `fetched transaction: ${error.message}`)
        this.giveUp(fetch.done, `${fetch.from} sent a bad transaction: ${error.message}`, fetch.wanted.size)
        return
      }
    }
    const stillMissing = [...fetch.wanted].filter((hash) => !fetch.found.has(hash)).length
    if (stillMissing > 0) {
      // The peer lacks some. A relayed answer could be forged to cut the fetch short: only the
      // timeout ends that one.
      if (delivery.hops > 1) return
      this.endFetch(reply.id, fetch)
      this.giveUp(fetch.done, `${fetch.from} lacks ${stillMissing} of the missing transactions`, stillMissing)
      return
    }
    this.endFetch(reply.id, fetch)
    this.finishAssembly(fetch.compact, fetch.found, fetch.done)
  }

  private endFetch (id: number, fetch: TxFetch): void {
    this.fetches.delete(id)
    this.env?.clearTimer(fetch.timer)
  }

  /**
   * A fetched transaction joins the pool when the pool takes it: a later proposal naming it (the
   * same block re-proposed, by this node too) finds it there, and this node can supply it.
   */
  private poolFetched (tx: SignedTx): void {
    const env = this.env
    if (env === null || this.mempool.has(txHash(tx))) return
    const chain = this.chain()
    try {
      this.mempool.add(tx, encodeTx(tx).length, env.now(), (address) => chain.state().get(address))
      this.templateStale = true
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
    }
  }

  private onGetBlocks (request: LedgerGetBlocks, origin: NodeId): void {
    const chain = this.chainStore
    if (chain === null) return
    const from = request.locator.map((hash) => chain.stored(hash)).find((stored) => stored !== undefined && chain.isOnMainChain(stored.hash))
    const start = (from?.header.height ?? 0) + 1
    const blocks: Uint8Array[] = []
    const proofs: Uint8Array[] = []
    let bytes = 0
    for (let height = start; height <= chain.head().header.height && blocks.length < request.countMax; height++) {
      const hash = chain.hashAt(height) as string
      const encoded = encodeBlock(chain.block(hash) as Block)
      const proof = this.init.finality?.proofOf(hash)
      if (this.init.finality !== undefined && proof === undefined) break
      const size = encoded.length + (proof?.length ?? 0)
      if (bytes + size > this.limits.blockBytesMax && blocks.length > 0) break
      blocks.push(encoded)
      if (proof !== undefined) proofs.push(proof)
      bytes += size
    }
    this.trySend(origin, { type: 'ledger.blocks', blocks, ...(this.init.finality === undefined ? {} : { proofs }), headHeight: chain.head().header.height } satisfies LedgerBlocks)
  }

  private onBlocks (reply: LedgerBlocks, from: Delivery): void {
    const chain = this.chainStore
    if (chain === null) return
    this.syncing = false
    this.counters.syncBlocksReceived += reply.blocks.length
    if (this.init.finality !== undefined && reply.proofs?.length !== reply.blocks.length) {
      this.report(from, 'protocol_violation', 'blocks without their finality proofs')
      return
    }
    for (const [index, bytes] of reply.blocks.entries()) if (!this.receiveBlock(bytes, from, reply.proofs?.[index])) return
    // More to fetch: ask again at once.
    if (reply.blocks.length > 0 && reply.headHeight > chain.head().header.height) this.requestBlocks(from.origin)
  }

  /** Asks `peer` for the blocks after this node's head (at most one request in flight). */
  catchUp (peer: NodeId): void {
    this.requestBlocks(peer)
  }

  private requestBlocks (peer: NodeId): void {
    if (this.syncing) return
    this.syncing = true
    this.counters.syncRequests++
    const env = this.requireEnv()
    if (!this.trySend(peer, { type: 'ledger.get-blocks', locator: this.locator(), countMax: Math.min(this.limits.syncBlocksPerRequest, SYNC_BLOCKS_PER_REPLY_MAX) } satisfies LedgerGetBlocks)) this.syncing = false
    // An unanswered request must not block the next one forever.
    env.setTimer(this.limits.syncIntervalMs, () => { this.syncing = false })
  }

  /** Main-chain hashes from the head back: the last 10 one by one, then doubling steps, then genesis. */
  private locator (): string[] {
    const chain = this.chain()
    const hashes: string[] = []
    let step = 1
    for (let height = chain.head().header.height; height > 0 && hashes.length < LOCATOR_HASHES_MAX - 1; height -= step) {
      hashes.push(chain.hashAt(height) as string)
      if (hashes.length >= 10) step *= 2
    }
    hashes.push(chain.genesisHash)
    return hashes
  }

  private scheduleSync (afterMs: number): void {
    const env = this.requireEnv()
    this.syncTimer = env.setTimer(afterMs, () => {
      this.syncTimer = null
      const peers = env.members.filter((member) => member !== env.self)
      if (peers.length > 0) this.requestBlocks(env.random.pick(peers))
      this.scheduleSync(Math.round(this.limits.syncIntervalMs * (0.5 + env.random.float())))
    })
  }

  private trySend<M extends Message> (to: NodeId, message: M): boolean {
    try {
      this.init.net.send(to, message)
      return true
    } catch {
      return false
    }
  }

  // --- chain and mempool --------------------------------------------------------------------------

  /**
   * Checks a transaction from a client or a peer and admits it to the pool, cheapest checks first:
   * the shape and the chain, then everything the pool would refuse it for (a duplicate, a used or
   * distant nonce, no room), and only then the signatures, the costliest part: under a flood the
   * refused do not cost a verification each. Counts and throws a LedgerError.
   */
  private receiveTx (source: { bytes: Uint8Array } | { value: unknown }): SignedTx {
    const chainId = this.init.genesis.chainId
    const chain = this.chain()
    try {
      const tx = 'bytes' in source ? this.parseTxBytes(source.bytes) : parseTx(source.value, chainId)
      const checked = this.mempool.check(tx, encodeTx(tx).length, (address) => chain.state().get(address))
      this.verifyOnce(tx)
      this.admit(tx, checked)
      return tx
    } catch (error) {
      if (error instanceof LedgerError) this.counters.txsRejected++
      throw error
    }
  }

  /**
   * Verifies a transaction's signatures unless this node verified those very bytes before (the
   * hash is of the canonical bytes: one in the set names this very transaction, and it is the key
   * a block's bytes are looked up by); throws LEDGER_BAD_SIGNATURE. Counts either way, and
   * remembers it.
   */
  private verifyOnce (tx: SignedTx): void {
    const hash = txHash(tx)
    if (this.verified.has(hash)) {
      this.counters.signaturesSkipped++
      return
    }
    verifyTxSignatures(tx, this.init.genesis.chainId)
    this.counters.signaturesVerified++
    this.verified.add(hash)
  }

  /** A transaction from its bytes: decoded, its shape and chain checked, and the bytes its canonical form; throws a LedgerError. */
  private parseTxBytes (bytes: Uint8Array): SignedTx {
    const tx = parseTx(decodeLedgerBytes(bytes, 'transaction'), this.init.genesis.chainId)
    // Bytes are a transaction only in their canonical form: the decoder takes map keys in any
    // order, and the same transaction in other bytes would hash to another name than its own.
    if (!bytesEqual(encodeTx(tx), bytes)) throw new LedgerError('LEDGER_MALFORMED', 'transaction bytes not in canonical CBOR (RFC 8949 deterministic encoding)')
    return tx
  }

  private admit (tx: SignedTx, checked: MempoolCheck): void {
    const env = this.requireEnv()
    const chain = this.chain()
    const bytes = encodeTx(tx)
    this.mempool.add(tx, bytes.length, env.now(), (address) => chain.state().get(address), checked)
    this.counters.txsAccepted++
    this.templateStale = true
  }

  private onNewHead (outcome: AddOutcome & { status: 'head' }, previousHead: string): void {
    const env = this.requireEnv()
    const chain = this.chain()
    this.counters.blocksAccepted += outcome.applied.length
    if (outcome.reverted.length > 0) {
      this.counters.reorgs++
      this.counters.deepestReorg = Math.max(this.counters.deepestReorg, outcome.reverted.length)
      env.log.warn({ from: previousHead, to: outcome.hash, reverted: outcome.reverted.length, applied: outcome.applied.length }, 'chain reorganised')
    }
    for (const block of outcome.reverted) this.unindexBlock(block)
    for (const block of outcome.applied) this.indexBlock(block)
    const accounts = (address: Address): Account => chain.state().get(address)
    // Transactions of abandoned blocks go back to the pool, unless the new branch has them (the
    // blocks below the fork point cannot: each nonce runs once).
    const reincluded = new Set<string>()
    if (outcome.reverted.length > 0) for (const block of outcome.applied) for (const tx of block.txs) reincluded.add(txHash(tx))
    for (const block of outcome.reverted) {
      for (const tx of block.txs) {
        if (reincluded.has(txHash(tx))) continue
        try { this.mempool.add(tx, encodeTx(tx).length, env.now(), accounts) } catch { /* nonce used or unaffordable on the new chain */ }
      }
    }
    this.mempool.update(env.now(), accounts)
    if (this.mining) this.mineOnHead()
    for (const listener of this.headListeners) listener(outcome)
  }

  /**
   * The index behind `txStatus`: an included transaction's hash -> its main-chain block, for the
   * most recent `txIndexTxsMax` transactions (whole blocks; the oldest block's entries go first),
   * so memory stays bounded however long the node runs (it grew by about 150 bytes a transaction
   * before: half a GiB an hour at 1 000 a second). Rebuilt from the chain's replay at start.
   */
  private indexBlock (block: Block, hash = blockHash(block.header)): void {
    if (block.txs.length === 0) return
    // Each indexing of a block is an entry of its own: a block reverted and applied again is
    // forgotten by its latest entry, not by the first.
    const entry: IndexedBlock = { block: hash, txs: block.txs.map(txHash) }
    for (const tx of entry.txs) this.included.set(tx, entry)
    this.indexedBlocks.push(entry)
    this.indexedTxs += entry.txs.length
    while (this.indexedTxs > this.limits.txIndexTxsMax && this.indexedHead < this.indexedBlocks.length - 1) {
      this.forget(this.indexedBlocks[this.indexedHead++] as IndexedBlock)
    }
    if (this.indexedHead >= 1_024 && this.indexedHead * 2 >= this.indexedBlocks.length) {
      this.indexedBlocks = this.indexedBlocks.slice(this.indexedHead)
      this.indexedHead = 0
    }
  }

  /** A reverted block leaves the index and its count (it is no longer a recent one). */
  private unindexBlock (block: Block): void {
    const first = block.txs[0]
    const entry = first === undefined ? undefined : this.included.get(txHash(first))
    if (entry?.block === blockHash(block.header)) this.forget(entry)
  }

  /** Drops an entry's transactions from the index, releasing its hashes at once. */
  private forget (entry: IndexedBlock): void {
    for (const tx of entry.txs) if (this.included.get(tx) === entry) this.included.delete(tx)
    this.indexedTxs -= entry.txs.length
    entry.txs = []
  }

  // --- mining -------------------------------------------------------------------------------------

  private refreshTemplate (): void {
    const env = this.env
    if (env === null) return
    if (this.mining && this.templateStale) this.mineOnHead()
    this.refreshTimer = env.setTimer(this.limits.templateRefreshMs, () => { this.refreshTemplate() })
  }

  /** Builds a block on the head from the pool and hands it to the sealer. */
  private mineOnHead (): void {
    const env = this.requireEnv()
    const sealer = this.init.sealer
    if (sealer === null) return
    const chain = this.chain()
    const engine = this.init.engine as PowEngine
    const parent = chain.head()
    const header = this.template(parent.header, parent.hash, this.init.coinbase)
    const bits = engine.expectedBits(parent.header, chain)
    const time = Math.floor(header.header.timeMs / 1000)
    const job: SealJob = {
      header: encodeWorkHeader({ version: 1, parent: fromHex(parent.hash), commitment: workCommitment(sealingHash(header.header), 0), time, bits, nonce: 0 }),
      commitmentBase: sealingHash(header.header),
      target: engine.targetOf(bits)
    }
    this.templateStale = false
    sealer.mine(job, (found) => {
      if (found === null || this.env === null || chain.head().hash !== parent.hash) return
      const seal: PowSeal = { version: 1, time, bits, nonce: found.nonce, extraNonce: found.extraNonce }
      const block: Block = { header: { ...header.header, seal }, txs: header.txs }
      try {
        this.addBlock(block)
        this.counters.blocksMined++
        env.log.info({ height: block.header.height, hash: blockHash(block.header), txs: block.txs.length }, 'block mined')
        this.init.net.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: encodeBlock(block) } satisfies LedgerBlockMessage)
      } catch (error) {
        env.log.error({ reason: (error as Error).message }, 'a mined block was refused')
        if (this.mining) this.mineOnHead()
      }
    })
  }

  /**
   * A block on `parent` (the head) paying `proposer`, with the best pending transactions that
   * execute, and `provisionalSeal` as its seal (the caller seals it after).
   */
  template (parent: BlockHeader, parentHash: string, proposer: Address, provisionalSeal: unknown = null): { header: BlockHeader, txs: SignedTx[] } {
    const env = this.requireEnv()
    const chain = this.chain()
    const state = chain.state()
    const times: number[] = []
    for (let at: BlockHeader | undefined = parent; at !== undefined && times.length < MEDIAN_TIME_SPAN_BLOCKS; at = at.height === 0 ? undefined : chain.header(at.parent)) times.push(at.timeMs)
    // Header times are whole milliseconds; the real clock has fractions.
    const timeMs = Math.max(Math.floor(env.now()), medianTimePast(times) + 1, this.init.engine instanceof PowEngine ? 0 : parent.timeMs + 1)
    let txs = this.mempool.select(this.limits.blockTxsMax, this.limits.blockBytesMax - 4_096, (address) => state.get(address))
    const height = parent.height + 1
    for (;;) {
      // The seal is in place while the block executes: an engine may draw state changes from it (PoS: downtime from the parent's commit).
      const header: BlockHeader = { chainId: this.init.genesis.chainId, height, parent: parentHash, timeMs, txRoot: txRootOf(txs), stateRoot: '', proposer, seal: provisionalSeal }
      try {
        const undo = state.apply({ header, txs }, blockContext(this.init.engine, header, state))
        header.stateRoot = state.root()
        state.revert(undo)
        return { header, txs }
      } catch (error) {
        // A transaction that no longer executes leaves the pool, and the template is rebuilt.
        const index = error instanceof LedgerError ? (error.details as { index?: number }).index : undefined
        if (index === undefined) throw error
        // It leaves with the sender's later ones, which could not run without it.
        const dropped = txs[index] as SignedTx
        const sender = senderOf(dropped)
        for (const pending of this.mempool.pending()) if (pending.sender === sender && pending.tx.nonce >= dropped.nonce) this.mempool.remove(pending)
        txs = txs.filter((tx) => senderOf(tx) !== sender || tx.nonce < dropped.nonce)
      }
    }
  }

  private requireEnv (): Env {
    if (this.env === null) throw new Error('ledger used before start')
    return this.env
  }
}
