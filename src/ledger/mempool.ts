/**
 * The mempool: signed transactions waiting for a block. Bounded by count and bytes; each
 * sender's transactions kept in nonce order; blocks take the best fee per byte among the
 * senders' next executable transactions (so nonce order is never broken); when full, the
 * cheapest sender tail (a highest-nonce transaction, so no gap opens) makes room for a better
 * one, and a gapped tail (one that waits for a missing nonce) for any that can run; a
 * transaction with the same sender and nonce replaces the held one only with a fee at least
 * `replaceFeeBumpPercentMin` higher; transactions expire after `txLifetimeMs`. Every
 * refusal is a `LedgerError` with its own code.
 *
 * Pure: the caller passes the time and a view of the accounts at the current head.
 */
import { Heap } from '../core/index.js'
import { LedgerError, type LedgerErrorCode } from './errors.js'
import type { Account } from './account-tree.js'
import { senderOf, txHash, type Address, type SignedTx } from './tx.js'

export interface MempoolLimits {
  mempoolTxsMax: number
  mempoolBytesMax: number
  /** Pending transactions one sender may hold. */
  senderTxsMax: number
  /** How far past the account's nonce a transaction may be queued. */
  nonceGapMax: number
  /** A replacement (same sender and nonce) must pay at least this much more, in percent. */
  replaceFeeBumpPercentMin: number
  /** Transactions older than this leave the pool (with the sender's later ones). */
  txLifetimeMs: number
  /** The smallest fee accepted. */
  feeMin: bigint
  txBytesMax: number
}

export const defaultMempoolLimits: Readonly<MempoolLimits> = Object.freeze({
  mempoolTxsMax: 10_000,
  mempoolBytesMax: 32 * 1024 * 1024,
  senderTxsMax: 64,
  nonceGapMax: 64,
  replaceFeeBumpPercentMin: 10,
  txLifetimeMs: 3 * 60 * 60 * 1000,
  feeMin: 1n,
  txBytesMax: 16 * 1024
})

export interface PendingTx {
  tx: SignedTx
  hash: string
  sender: Address
  bytes: number
  /** Amount moved plus fee: what the sender's balance must cover. */
  cost: bigint
  addedMs: number
}

export type AccountView = (address: Address) => Account

/**
 * What `Mempool.check` found: `add` takes it instead of checking again while the pool is unchanged
 * (its version says so). The accounts must not have moved either: the caller hands it to `add` in
 * the same turn of the event loop, as the ledger service does around a signature verification.
 */
export interface MempoolCheck {
  readonly pending: PendingTx
  readonly held: PendingTx | undefined
  /** The pool's version when checked. */
  readonly version: number
}

export interface MempoolStats {
  size: number
  bytes: number
  senders: number
  added: number
  replaced: number
  evicted: number
  expired: number
  rejected: Partial<Record<LedgerErrorCode, number>>
}

/** What a transaction costs its sender's balance: its amount (transfers and bonds) plus its fee. */
export function txCost (tx: SignedTx): bigint {
  switch (tx.body.kind) {
    case 'transfer': return tx.body.amount + tx.fee
    case 'bond': return tx.body.amount + tx.fee
    default: return tx.fee
  }
}

/** a pays a better fee per byte than b. */
const betterRate = (a: PendingTx, b: PendingTx): boolean => a.tx.fee * BigInt(b.bytes) > b.tx.fee * BigInt(a.bytes)

/**
 * A copy of `pending` added at `nowMs`, built field by field in the order `evaluate` builds one: a
 * spread (`{ ...pending }`) gives the object another hidden class, and V8's optimized code over
 * the pool's entries then deoptimizes on it ("wrong map").
 */
const pendingAt = (pending: PendingTx, nowMs: number): PendingTx => ({ tx: pending.tx, hash: pending.hash, sender: pending.sender, bytes: pending.bytes, cost: pending.cost, addedMs: nowMs })

/** Block order: the better fee per byte first; among equals, by sender, so every run picks alike. */
const comesFirst = (a: PendingTx, b: PendingTx): boolean => betterRate(a, b) || (!betterRate(b, a) && a.sender < b.sender)

/**
 * A sender's highest-nonce pending transaction, and whether it is gapped: a nonce between the
 * account's and it is missing from the pool, so it cannot run until that one arrives.
 */
interface Tail { pending: PendingTx, gapped: boolean }

/**
 * Whether `incoming` may displace `victim` from a full pool: a transaction that can run is worth
 * more than any that cannot yet (a sender that lost a transaction to a full pool and went on
 * would otherwise fill the pool with ones that never run), and among equals the better fee per byte.
 */
const displaces = (incoming: Tail, victim: Tail): boolean => incoming.gapped === victim.gapped ? betterRate(incoming.pending, victim.pending) : victim.gapped

/** `a` is a better victim than `b`: gapped first, then the lower fee per byte. */
const cheaper = (a: Tail, b: Tail): boolean => a.gapped === b.gapped ? betterRate(b.pending, a.pending) : a.gapped

/** Whether a transaction of `nonce` would wait for a missing one: some nonce from the account's up to it is not in the sender's `queue`. */
function isGapped (nonce: number, accountNonce: number, queue: ReadonlyMap<number, PendingTx> | undefined): boolean {
  for (let missing = accountNonce; missing < nonce; missing++) if (queue?.has(missing) !== true) return true
  return false
}

function poolFull (size: number, bytes: number): LedgerError {
  return new LedgerError('LEDGER_TX_POOL_FULL', 'the mempool is full and this transaction is worth no more than the cheapest it could replace (one that can run outranks one that waits for a missing nonce; then the fee per byte decides)', { size, bytes })
}

/**
 * One sender's pending transactions by nonce, with their total cost and highest nonce kept as
 * they change: the affordability check of a transaction appended after the others, or replacing
 * one, is then O(1) instead of a sum over the queue for every transaction.
 */
class SenderQueue extends Map<number, PendingTx> {
  /** The sum of the pending transactions' costs. */
  totalCost = 0n
  /** The highest pending nonce; -1 when empty. */
  maxNonce = -1

  override set (nonce: number, pending: PendingTx): this {
    const replaced = super.get(nonce)
    if (replaced !== undefined) this.totalCost -= replaced.cost
    this.totalCost += pending.cost
    if (nonce > this.maxNonce) this.maxNonce = nonce
    return super.set(nonce, pending)
  }

  override delete (nonce: number): boolean {
    const removed = super.get(nonce)
    if (removed === undefined) return false
    super.delete(nonce)
    this.totalCost -= removed.cost
    if (nonce === this.maxNonce) {
      this.maxNonce = -1
      for (const held of super.keys()) if (held > this.maxNonce) this.maxNonce = held
    }
    return true
  }
}

export class Mempool {
  private readonly limits: MempoolLimits
  /** sender -> nonce -> pending */
  private readonly bySender = new Map<Address, SenderQueue>()
  private readonly byHash = new Map<string, PendingTx>()
  private totalBytes = 0
  /** Bumped by every change of the pool: the cached cheapest tails below hold while it stands. */
  private version = 0
  private tails: { version: number, cheapest: Tail | undefined, cheapestOfOthers: Tail | undefined } | null = null
  private readonly counters = { added: 0, replaced: 0, evicted: 0, expired: 0, rejected: {} as Partial<Record<LedgerErrorCode, number>> }

  constructor (limits: Partial<MempoolLimits> = {}) {
    this.limits = { ...defaultMempoolLimits, ...limits }
  }

  get size (): number { return this.byHash.size }

  has (hash: string): boolean { return this.byHash.has(hash) }

  get (hash: string): PendingTx | undefined { return this.byHash.get(hash) }

  /**
   * Admits a transaction already checked for shape, chain and signature (`checkTx`); `bytes` is
   * its encoded size. Returns the pending entry; throws a LedgerError saying why not.
   */
  add (tx: SignedTx, bytes: number, nowMs: number, accounts: AccountView, checked?: MempoolCheck): PendingTx {
    try {
      return this.admit(tx, bytes, nowMs, accounts, checked)
    } catch (error) {
      if (error instanceof LedgerError) this.counters.rejected[error.code] = (this.counters.rejected[error.code] ?? 0) + 1
      throw error
    }
  }

  /**
   * Every check `add` makes, without changing the pool: a node runs it before it verifies a
   * transaction's signatures, so a transaction the pool would refuse (a duplicate, a used or
   * distant nonce, a full pool it cannot displace from) costs no verification. O(1) for a full pool
   * of equal fees, however many are refused. Throws the same counted LedgerError `add` would.
   * The result, passed to `add` before the pool changes, spares `add` the same checks.
   */
  check (tx: SignedTx, bytes: number, accounts: AccountView): MempoolCheck {
    try {
      return { ...this.evaluate(tx, bytes, 0, accounts), version: this.version }
    } catch (error) {
      if (error instanceof LedgerError) this.counters.rejected[error.code] = (this.counters.rejected[error.code] ?? 0) + 1
      throw error
    }
  }

  /**
   * Up to `countMax` transactions (and `bytesMax` bytes) for a block, best fee per byte first,
   * each sender's in nonce order from its account nonce.
   */
  select (countMax: number, bytesMax: number, accounts: AccountView): SignedTx[] {
    // One candidate per sender (its next executable transaction) in a heap: O(log senders) a pick.
    const heads = new Heap<PendingTx>(comesFirst)
    for (const [sender, queue] of this.bySender) {
      const head = queue.get(accounts(sender).nonce)
      if (head !== undefined) heads.push(head)
    }
    const chosen: SignedTx[] = []
    let bytes = 0
    for (let best = heads.pop(); best !== undefined && chosen.length < countMax; best = heads.pop()) {
      if (bytes + best.bytes > bytesMax) continue
      chosen.push(best.tx)
      bytes += best.bytes
      const next = this.bySender.get(best.sender)?.get(best.tx.nonce + 1)
      if (next !== undefined) heads.push(next)
    }
    return chosen
  }

  /** After a new head: drops transactions whose nonce is used, and expired ones. */
  update (nowMs: number, accounts: AccountView): void {
    // A new head moves account nonces: which transactions are gapped may change with no removal.
    this.version++
    for (const [sender, queue] of [...this.bySender]) {
      const accountNonce = accounts(sender).nonce
      for (const pending of [...queue.values()]) if (pending.tx.nonce < accountNonce) this.remove(pending)
    }
    this.expire(nowMs)
  }

  /** Removes transactions older than the lifetime, with the sender's later ones (they could not run). */
  expire (nowMs: number): void {
    for (const queue of [...this.bySender.values()]) {
      const sorted = [...queue.values()].sort((a, b) => a.tx.nonce - b.tx.nonce)
      const firstExpired = sorted.findIndex((pending) => nowMs - pending.addedMs >= this.limits.txLifetimeMs)
      if (firstExpired < 0) continue
      for (const pending of sorted.slice(firstExpired)) {
        this.remove(pending)
        this.counters.expired++
      }
    }
  }

  /** Removes one transaction (it was included, or its block's rival won). */
  remove (pending: PendingTx): void {
    const queue = this.bySender.get(pending.sender)
    if (queue?.get(pending.tx.nonce) !== pending) return
    queue.delete(pending.tx.nonce)
    if (queue.size === 0) this.bySender.delete(pending.sender)
    this.byHash.delete(pending.hash)
    this.totalBytes -= pending.bytes
    this.version++
  }

  pending (): PendingTx[] {
    return [...this.byHash.values()]
  }

  stats (): MempoolStats {
    return { size: this.byHash.size, bytes: this.totalBytes, senders: this.bySender.size, added: this.counters.added, replaced: this.counters.replaced, evicted: this.counters.evicted, expired: this.counters.expired, rejected: { ...this.counters.rejected } }
  }

  /** The checks of `add`, up to whether the pool has (or can make) room; changes nothing. */
  private evaluate (tx: SignedTx, bytes: number, nowMs: number, accounts: AccountView): { pending: PendingTx, held: PendingTx | undefined } {
    const limits = this.limits
    const hash = txHash(tx)
    if (this.byHash.has(hash)) throw new LedgerError('LEDGER_TX_DUPLICATE', 'this transaction is already pending', { hash })
    if (bytes > limits.txBytesMax) throw new LedgerError('LEDGER_TX_TOO_LARGE', `transaction of ${bytes} bytes, limit ${limits.txBytesMax}`, { bytes, txBytesMax: limits.txBytesMax })
    if (tx.fee < limits.feeMin) throw new LedgerError('LEDGER_TX_FEE_TOO_LOW', `fee ${tx.fee} is below the minimum ${limits.feeMin}`, { fee: tx.fee.toString(), feeMin: limits.feeMin.toString() })
    const sender = senderOf(tx)
    const account = accounts(sender)
    if (tx.nonce < account.nonce) throw new LedgerError('LEDGER_TX_NONCE_TOO_LOW', `nonce ${tx.nonce} is used; the account is at ${account.nonce}`, { nonce: tx.nonce, accountNonce: account.nonce })
    if (tx.nonce > account.nonce + limits.nonceGapMax) throw new LedgerError('LEDGER_TX_NONCE_GAP', `nonce ${tx.nonce} is more than ${limits.nonceGapMax} ahead of the account's ${account.nonce}`, { nonce: tx.nonce, accountNonce: account.nonce })
    const queue = this.bySender.get(sender)
    const held = queue?.get(tx.nonce)
    const pending: PendingTx = { tx, hash, sender, bytes, cost: txCost(tx), addedMs: nowMs }
    if (held !== undefined) {
      const needed = held.tx.fee + (held.tx.fee * BigInt(limits.replaceFeeBumpPercentMin) + 99n) / 100n
      if (tx.fee < needed) throw new LedgerError('LEDGER_TX_UNDERPRICED', `replacing nonce ${tx.nonce} needs a fee of at least ${needed} (held: ${held.tx.fee})`, { feeNeeded: needed.toString(), heldHash: held.hash })
    } else if ((queue?.size ?? 0) >= limits.senderTxsMax) {
      throw new LedgerError('LEDGER_TX_SENDER_LIMIT', `the sender already has ${limits.senderTxsMax} pending transactions`, { sender })
    }
    // Every pending transaction of the sender up to this nonce must be affordable together; a
    // replacement must also leave the ones after it affordable.
    // That is every other one for a replacement, and all of them for a transaction after the last.
    let committed = pending.cost
    if (queue !== undefined) {
      if (held !== undefined) committed += queue.totalCost - held.cost
      else if (tx.nonce > queue.maxNonce) committed += queue.totalCost
      else for (const other of queue.values()) if (other.tx.nonce < tx.nonce) committed += other.cost
    }
    if (committed > account.balance) throw new LedgerError('LEDGER_TX_INSUFFICIENT_FUNDS', `the sender's pending transactions up to nonce ${tx.nonce} cost ${committed}, the balance is ${account.balance}`, { cost: committed.toString(), balance: account.balance.toString() })
    const freed = held === undefined ? { count: 0, bytes: 0 } : { count: 1, bytes: held.bytes }
    if (!this.fits(pending, freed)) {
      const cheapest = this.cheapestTailOfOthers(sender, accounts)
      if (cheapest === undefined || !displaces({ pending, gapped: isGapped(tx.nonce, account.nonce, queue) }, cheapest)) throw poolFull(this.byHash.size, this.totalBytes)
    }
    return { pending, held }
  }

  private admit (tx: SignedTx, bytes: number, nowMs: number, accounts: AccountView, checked: MempoolCheck | undefined): PendingTx {
    // A check made on this very pool (nothing changed since) and this very transaction holds.
    const { pending, held } = checked !== undefined && checked.version === this.version && checked.pending.tx === tx && checked.pending.bytes === bytes
      ? { pending: pendingAt(checked.pending, nowMs), held: checked.held }
      : this.evaluate(tx, bytes, nowMs, accounts)
    const { hash, sender } = pending
    this.makeRoom(pending, held, accounts)
    if (held !== undefined) {
      this.remove(held)
      this.counters.replaced++
    }
    let senderQueue = this.bySender.get(sender)
    if (senderQueue === undefined) this.bySender.set(sender, senderQueue = new SenderQueue())
    senderQueue.set(tx.nonce, pending)
    this.byHash.set(hash, pending)
    this.totalBytes += bytes
    this.version++
    this.counters.added++
    return pending
  }

  private fits (incoming: PendingTx, freed: { count: number, bytes: number }): boolean {
    return this.byHash.size - freed.count < this.limits.mempoolTxsMax && this.totalBytes - freed.bytes + incoming.bytes <= this.limits.mempoolBytesMax
  }

  /** Evicts the cheapest sender tails until `incoming` fits; refuses it if it is not worth more than them. */
  private makeRoom (incoming: PendingTx, replacing: PendingTx | undefined, accounts: AccountView): void {
    const freed = replacing === undefined ? { count: 0, bytes: 0 } : { count: 1, bytes: replacing.bytes }
    const victims: PendingTx[] = []
    // `replacing` is the incoming sender's, which the search skips anyway.
    const excluded = new Set<PendingTx>()
    const incomingTail: Tail = { pending: incoming, gapped: isGapped(incoming.tx.nonce, accounts(incoming.sender).nonce, this.bySender.get(incoming.sender)) }
    while (!this.fits(incoming, freed)) {
      const cheapest = victims.length === 0 ? this.cheapestTailOfOthers(incoming.sender, accounts) : this.cheapestTail(excluded, incoming.sender, accounts)
      if (cheapest === undefined || !displaces(incomingTail, cheapest)) throw poolFull(this.byHash.size, this.totalBytes)
      victims.push(cheapest.pending)
      excluded.add(cheapest.pending)
      freed.count++
      freed.bytes += cheapest.pending.bytes
    }
    for (const victim of victims) {
      this.remove(victim)
      this.counters.evicted++
    }
  }

  /**
   * `cheapestTail` with nothing excluded, cached until the pool or the head changes: one scan finds
   * the cheapest tail and the cheapest of the other senders, which answers for every incoming sender.
   */
  private cheapestTailOfOthers (incomingSender: Address, accounts: AccountView): Tail | undefined {
    if (this.tails?.version !== this.version) {
      const cheapest = this.cheapestTail(new Set(), '', accounts)
      const cheapestOfOthers = cheapest === undefined ? undefined : this.cheapestTail(new Set(), cheapest.pending.sender, accounts)
      this.tails = { version: this.version, cheapest, cheapestOfOthers }
    }
    return this.tails.cheapest?.pending.sender === incomingSender ? this.tails.cheapestOfOthers : this.tails.cheapest
  }

  /** The cheapest highest-nonce transaction of any other sender (not counting `excluded` ones): gapped ones first. */
  private cheapestTail (excluded: ReadonlySet<PendingTx>, incomingSender: Address, accounts: AccountView): Tail | undefined {
    let cheapest: Tail | undefined
    for (const [sender, queue] of this.bySender) {
      if (sender === incomingSender) continue
      const accountNonce = accounts(sender).nonce
      let tail: PendingTx | undefined
      let runnable = 0
      for (const pending of queue.values()) {
        if (excluded.has(pending)) continue
        if (pending.tx.nonce >= accountNonce) runnable++
        if (tail === undefined || pending.tx.nonce > tail.tx.nonce) tail = pending
      }
      if (tail === undefined) continue
      const candidate: Tail = { pending: tail, gapped: tail.tx.nonce - accountNonce + 1 > runnable }
      if (cheapest === undefined || cheaper(candidate, cheapest)) cheapest = candidate
    }
    return cheapest
  }
}
