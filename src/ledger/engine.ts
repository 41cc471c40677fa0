/**
 * The consensus engine interface: what the chain store asks of PoW, PoS and DPoS alike. An
 * engine checks the seal and its own header rules, weighs blocks for fork choice, and says what
 * a block at a height pays its proposer. Producing blocks differs too much between engines
 * (mining, voting rounds, slots) to share a method; each engine's service does it and hands
 * sealed blocks to the chain store. Every engine passes one compliance suite
 * (test/support/engine-compliance.ts).
 */
import type { Address } from './address.js'
import type { BlockHeader } from './block.js'
import type { ProducerSchedule } from './staking.js'
import type { BlockContext, LedgerState } from './state.js'

/** Stored headers by hash, for rules that look further back than the parent. */
export interface HeaderLookup {
  header (hash: string): BlockHeader | undefined
  /** The state after the block `hash`, when the lookup holds it (the chain store: its head only). */
  stateAfter?: (hash: string) => LedgerState | undefined
  /** The state at the head, when the lookup holds it. */
  headState?: () => LedgerState
}

export interface ConsensusEngine {
  readonly name: string
  /**
   * Checks the seal and the engine's rules for `header` on top of `parent` (height and parent
   * hash are the chain store's checks); throws a LedgerError saying which rule failed.
   */
  verifyHeader (header: BlockHeader, parent: BlockHeader, ancestors: HeaderLookup, nowMs: number): void
  /** What this block adds to its branch's fork-choice weight (PoW: the expected work of its target). */
  weightOf (header: BlockHeader): bigint
  /** The new units a block at `height` pays its proposer, besides the fees. */
  rewardAt (height: number): bigint
  /**
   * Engines with finality: the height up to which the chain can no longer change (PoS: the head,
   * every block is final; DPoS: the last irreversible block). Absent: no finality (PoW).
   */
  finalizedHeight?: (chain: HeaderLookup & { headHeader: () => BlockHeader, headHash: () => string }) => number
  /**
   * Checks the rules that need the state before the block (DPoS: the slot's producer), when the
   * block executes: for a block on the head at once, for a side branch's block when a
   * reorganisation executes it. Throws a LedgerError.
   */
  verifyInState?: (header: BlockHeader, stateBefore: LedgerState) => void
  /** DPoS: the schedule of the block's round, which the state keeps. */
  scheduleFor?: (header: BlockHeader, stateBefore: LedgerState) => ProducerSchedule | null
  /** PoS: the validators whose signatures for the parent this header carries, for downtime. */
  signersOfParent?: (header: BlockHeader) => ReadonlySet<Address> | null
}

/** What the state needs from the engine to apply `header`'s block on `stateBefore`. */
export function blockContext (engine: ConsensusEngine, header: BlockHeader, stateBefore: LedgerState): BlockContext {
  return { reward: engine.rewardAt(header.height), signersOfParent: engine.signersOfParent?.(header) ?? null, schedule: engine.scheduleFor?.(header, stateBefore) ?? null }
}

/** Walks back `steps` parents from `from` (0 = `from` itself); undefined where the chain is not stored. */
export function ancestorOf (from: BlockHeader, steps: number, lookup: HeaderLookup): BlockHeader | undefined {
  let at: BlockHeader | undefined = from
  for (let step = 0; step < steps && at !== undefined; step++) at = lookup.header(at.parent)
  return at
}
