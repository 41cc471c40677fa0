/**
 * Account state and the deterministic state transition. Applying a block executes its
 * transactions in order (each must carry its sender's next nonce and be affordable), pays the
 * fees and the block reward to the proposer, and returns an undo record, so that a
 * reorganisation can roll the state back block by block and forward along the new branch.
 */
import { encodeCanonical, sha256, sha256Hex, toHex } from '../core/index.js'
import { addressFromPublicKey } from './address.js'
import { AccountTree, type Account, type TreeSnapshot } from './account-tree.js'
import type { Block, GenesisSpec } from './block.js'
import { LedgerError } from './errors.js'
import { txCost } from './mempool.js'
import { EMPTY_STAKE, SLASHES_PER_CANDIDATE_MAX, UNBONDINGS_PER_ACCOUNT_MAX, electValidators, isStakeEmpty, stakeRecordBytes, type ProducerSchedule, type StakeRecord, type StakingParams, type ValidatorEntry, type ValidatorSets } from './staking.js'
import { offenceKey, statementSigner } from './statement.js'
import { AMOUNT_MAX, senderOf, type Address, type SignedTx } from './tx.js'

/** What a block changed, with the values before it (null: the record did not exist). */
export interface BlockUndo {
  height: number
  previous: Array<[Address, Account | null]>
  previousStakes: Array<[Address, StakeRecord | null]>
  previousSets: ValidatorSets | null
  /** The state just before the block: restored whole by `revert` while nothing else changed it. */
  before?: StateVersion
  /** The version the block made (`apply`, or `redo`). */
  afterVersion?: number
  /** The state just after the block, recorded when `revert` undid it: what `redo` puts back. */
  after?: StateVersion & { accounts: Array<[Address, Account | null]>, stakes: Array<[Address, StakeRecord | null]> }
}

/**
 * The state's trees and validator sets at one version. A version names the state's contents: it
 * is new with each `apply` (and each `revert` that could not restore a recorded version), and
 * comes back only when a `revert` or `redo` brings back exactly the contents it named.
 */
interface StateVersion {
  version: number
  tree: TreeSnapshot
  stakeTree: TreeSnapshot<StakeRecord>
  sets: ValidatorSets | null
  setsHash: Uint8Array | null
}

/** What the consensus engine tells the state about a block besides its transactions. */
export interface BlockContext {
  /** New units paid to the proposer besides the fees. */
  reward: bigint
  /** PoS: the validators whose precommits for the parent this block carries (downtime counts the others). */
  signersOfParent?: ReadonlySet<Address> | null
  /** DPoS: the schedule of the block's round, held in the state from its first block on. */
  schedule?: ProducerSchedule | null
}

const STATE_ROOT_TAG = 0x02

const EMPTY_ACCOUNT: Readonly<Account> = Object.freeze({ balance: 0n, nonce: 0 })

export class LedgerState {
  private readonly accounts = new Map<Address, Account>()
  private readonly tree = new AccountTree()
  private readonly stakes = new Map<Address, StakeRecord>()
  private readonly stakeTree = new AccountTree<StakeRecord>(stakeRecordBytes)
  /**
   * Addresses written since the trees were last brought up to date: a block's many writes to one
   * account cost one tree update, when the root is next asked for.
   */
  private readonly dirtyAccounts = new Set<Address>()
  private readonly dirtyStakes = new Set<Address>()
  private sets: ValidatorSets | null = null
  private setsHash: Uint8Array | null = null
  /** The version of the contents (see `StateVersion`); `versions` counts the versions made. */
  private version = 0
  private versions = 0
  /** Null on a chain without staking (PoW): staking transactions are refused. */
  readonly staking: StakingParams | null

  private constructor (staking: StakingParams | null) {
    this.staking = staking
  }

  static fromGenesis (genesis: GenesisSpec): LedgerState {
    const state = new LedgerState(genesis.staking?.params ?? null)
    for (const allocation of genesis.allocations) {
      if (allocation.balance < 0n || allocation.balance > AMOUNT_MAX) throw new LedgerError('LEDGER_CONFIG_INVALID', `allocation to ${allocation.address} out of range`)
      const held = state.get(allocation.address)
      state.write(allocation.address, { balance: held.balance + allocation.balance, nonce: 0 })
    }
    if (genesis.staking !== undefined) {
      for (const validator of genesis.staking.validators) {
        const address = addressFromPublicKey(validator.publicKey)
        if (state.stakes.has(address)) throw new LedgerError('LEDGER_CONFIG_INVALID', `genesis validator ${address} listed twice`)
        if (validator.stake <= 0n || validator.stake > AMOUNT_MAX) throw new LedgerError('LEDGER_CONFIG_INVALID', `genesis validator ${address}: stake out of range`)
        // A genesis validator backs itself with its stake: its DPoS votes, until holders vote.
        state.writeStake(address, { ...EMPTY_STAKE, bonded: validator.stake, votes: [address], votesReceived: validator.stake, candidate: { publicKey: validator.publicKey, jailedUntil: 0, tombstoned: false, missed: 0, slashes: [] } })
      }
      const elected = electValidators(state.stakes, genesis.staking.params)
      state.setSets({ current: elected, previous: elected, changedAt: 0 })
    }
    return state
  }

  /** A stake holder's record (empty when it has none). */
  stakeOf (address: Address): StakeRecord {
    return this.stakes.get(address) ?? EMPTY_STAKE
  }

  stakeEntries (): Array<[Address, StakeRecord]> {
    return [...this.stakes]
  }

  /** The validators that sign the next block (empty on a chain without staking). */
  validators (): readonly ValidatorEntry[] {
    return this.sets?.current ?? []
  }

  /** DPoS: the schedule of the head block's round (null before the first block). */
  producerSchedule (): ProducerSchedule | null {
    return this.sets?.schedule ?? null
  }

  /** The validators that signed the block at `height`: the head or the one before the next. */
  validatorsAt (height: number): readonly ValidatorEntry[] {
    if (this.sets === null) return []
    return height > this.sets.changedAt ? this.sets.current : this.sets.previous
  }

  get (address: Address): Account {
    const account = this.accounts.get(address)
    return account === undefined ? EMPTY_ACCOUNT : { ...account }
  }

  has (address: Address): boolean {
    return this.accounts.has(address)
  }

  get size (): number { return this.accounts.size }

  /** The accounts root; on a staking chain, the hash of it with the staking records' root and the validator sets. */
  root (): string {
    this.flushTrees()
    if (this.staking === null) return toHex(this.tree.rootHash())
    this.setsHash ??= sha256(encodeCanonical(this.sets))
    const input = new Uint8Array(1 + 32 * 3)
    input[0] = STATE_ROOT_TAG
    input.set(this.tree.rootHash(), 1)
    input.set(this.stakeTree.rootHash(), 33)
    input.set(this.setsHash, 65)
    return sha256Hex(input)
  }

  private flushTrees (): void {
    for (const address of this.dirtyAccounts) {
      const account = this.accounts.get(address)
      this.tree.set(address, account === undefined ? null : { ...account })
    }
    this.dirtyAccounts.clear()
    for (const address of this.dirtyStakes) this.stakeTree.set(address, this.stakes.get(address) ?? null)
    this.dirtyStakes.clear()
  }

  /** The root of the staking records alone. */
  stakeRoot (): string {
    this.flushTrees()
    return toHex(this.stakeTree.rootHash())
  }

  proofOf (address: Address): ReturnType<AccountTree['prove']> {
    this.flushTrees()
    return this.tree.prove(address)
  }

  entries (): Array<[Address, Account]> {
    return [...this.accounts].map(([address, account]) => [address, { ...account }])
  }

  /**
   * Executes a block's transactions and pays `reward` plus the fees to the proposer. On any
   * invalid transaction nothing changes and `LEDGER_BAD_BLOCK` names it.
   */
  apply (block: Block, context: BlockContext | bigint): BlockUndo {
    const { reward, signersOfParent, schedule } = typeof context === 'bigint' ? { reward: context, signersOfParent: null, schedule: null } : context
    // The version before is recorded when its trees are up to date (no write waits to reach them,
    // as after every block a node checks or adds, whose root it read): `revert` can then restore
    // it whole. A replay that reads no root between blocks records none, and hashes nothing more.
    const undo: BlockUndo = { height: block.header.height, previous: [], previousStakes: [], previousSets: this.sets }
    if (this.dirtyAccounts.size === 0 && this.dirtyStakes.size === 0) undo.before = this.versionNow()
    this.undo = undo
    // The set that signed the parent, taken before this block's transactions can change the sets.
    const parentSigners = this.validatorsAt(block.header.height - 1)
    if (schedule != null && this.sets !== null && this.sets.schedule?.round !== schedule.round) this.setSets({ ...this.sets, schedule })
    this.touched.clear()
    this.touchedStakes.clear()
    const remember = (address: Address): void => { this.remember(address) }
    try {
      let fees = 0n
      for (const [index, tx] of block.txs.entries()) {
        const sender = senderOf(tx)
        remember(sender)
        this.execute(tx, index)
        if (tx.body.kind === 'transfer') remember(tx.body.to)
        this.credit(tx, sender)
        if (tx.body.kind !== 'transfer') this.stake(tx, sender, index, block.header.height)
        fees += tx.fee
      }
      if (this.staking !== null) this.endBlock(block.header.height, signersOfParent ?? null, parentSigners)
      remember(block.header.proposer)
      const proposer = this.get(block.header.proposer)
      const paid = proposer.balance + fees + reward
      if (paid > AMOUNT_MAX) throw new LedgerError('LEDGER_BAD_BLOCK', 'the proposer\'s balance would overflow')
      this.write(block.header.proposer, { ...proposer, balance: paid })
    } catch (error) {
      this.undo = null
      if (undo.before !== undefined) this.restoreBefore(undo)
      else this.writeBack(undo)
      throw error
    } finally {
      this.undo = null
    }
    undo.afterVersion = this.version = ++this.versions
    return undo
  }

  /**
   * Restores what a block changed (the newest block first, when reverting several). When nothing
   * else changed the state since the block was applied (or redone), the trees as they were before
   * it come back with the hashes they held, and the block's own result is recorded for `redo`.
   */
  revert (undo: BlockUndo): void {
    if (undo.before !== undefined && undo.afterVersion === this.version) {
      // The result is kept only when every write reached the trees (the root was read, as a check
      // reads it): recording it must never cost tree updates that nothing asked for.
      if (this.dirtyAccounts.size === 0 && this.dirtyStakes.size === 0) {
        undo.after = {
          ...this.versionNow(),
          accounts: undo.previous.map(([address]) => [address, this.accounts.get(address) ?? null]),
          stakes: undo.previousStakes.map(([address]) => [address, this.stakes.get(address) ?? null])
        }
      }
      this.restoreBefore(undo)
      return
    }
    this.writeBack(undo)
  }

  /** Writes back the records a block changed (the trees are updated when the root is next read): a new version. */
  private writeBack (undo: BlockUndo): void {
    for (const [address, account] of [...undo.previous].reverse()) this.write(address, account)
    for (const [address, record] of [...undo.previousStakes].reverse()) this.writeStake(address, record)
    if (this.sets !== undo.previousSets) this.setSets(undo.previousSets)
    this.version = ++this.versions
  }

  /**
   * Applies again a block that was applied here and reverted, from its recorded result: no
   * transaction runs and no tree is updated (the trees come back with the hashes they held). It
   * does so only when the state is exactly as it was
   * before that block (the same version), so the result is the one `apply` would give; false
   * otherwise, and the caller applies the block.
   */
  redo (undo: BlockUndo): boolean {
    const { before, after } = undo
    if (before === undefined || after === undefined || undo.afterVersion === undefined || before.version !== this.version) return false
    this.putRecords(after.accounts, after.stakes)
    this.restoreVersion(after)
    this.version = undo.afterVersion
    return true
  }

  /**
   * Drops from an undo record the trees it holds to restore versions whole (kept for long, they
   * would keep every replaced tree node in memory): it still reverts, by writing its records back.
   */
  static settle (undo: BlockUndo): BlockUndo {
    delete undo.before
    delete undo.after
    return undo
  }

  /** The trees and sets now (`apply` and `revert` take it only when every write reached the trees). */
  private versionNow (): StateVersion {
    return { version: this.version, tree: this.tree.snapshot(), stakeTree: this.stakeTree.snapshot(), sets: this.sets, setsHash: this.setsHash }
  }

  /** Puts back every record a block (applied since `undo.before`, and nothing else) changed, and the trees as they were. */
  private restoreBefore (undo: BlockUndo): void {
    this.putRecords(undo.previous, undo.previousStakes)
    this.restoreVersion(undo.before as StateVersion)
  }

  /** Sets records in the maps as recorded (null: absent), leaving the trees to `restoreVersion`. */
  private putRecords (accounts: Array<[Address, Account | null]>, stakes: Array<[Address, StakeRecord | null]>): void {
    for (const [address, account] of accounts) {
      if (account === null) this.accounts.delete(address)
      else this.accounts.set(address, account)
    }
    for (const [address, record] of stakes) {
      if (record === null) this.stakes.delete(address)
      else this.stakes.set(address, record)
    }
  }

  /**
   * The trees and sets of a recorded version, whose records the maps now hold: the trees match
   * the maps, so nothing is left to write into them.
   */
  private restoreVersion (recorded: StateVersion): void {
    this.tree.restore(recorded.tree)
    this.stakeTree.restore(recorded.stakeTree)
    this.sets = recorded.sets
    this.setsHash = recorded.setsHash
    this.dirtyAccounts.clear()
    this.dirtyStakes.clear()
    this.version = recorded.version
  }

  // --- undo bookkeeping, during `apply` ---

  private undo: BlockUndo | null = null
  private readonly touched = new Set<Address>()
  private readonly touchedStakes = new Set<Address>()

  private remember (address: Address): void {
    if (this.undo === null || this.touched.has(address)) return
    this.touched.add(address)
    this.undo.previous.push([address, this.accounts.has(address) ? this.get(address) : null])
  }

  private rememberStake (address: Address): void {
    if (this.undo === null || this.touchedStakes.has(address)) return
    this.touchedStakes.add(address)
    this.undo.previousStakes.push([address, this.stakes.get(address) ?? null])
  }

  private setStake (address: Address, record: StakeRecord): void {
    this.rememberStake(address)
    this.writeStake(address, isStakeEmpty(record) ? null : record)
  }

  private writeStake (address: Address, record: StakeRecord | null): void {
    if (record === null) this.stakes.delete(address)
    else this.stakes.set(address, record)
    this.dirtyStakes.add(address)
  }

  private setSets (sets: ValidatorSets | null): void {
    this.sets = sets
    this.setsHash = null
  }

  // --- staking --------------------------------------------------------------------------------

  /** Executes a staking transaction's effect (its fee and bonded amount already left the balance). */
  private stake (tx: SignedTx, sender: Address, index: number, height: number): void {
    const params = this.staking
    const refuse = (reason: string, message: string): never => { throw new LedgerError('LEDGER_BAD_BLOCK', `transaction ${index}: ${message}`, { index, reason }) }
    if (params === null) return refuse('no_staking', `${tx.body.kind} on a chain without staking`)
    const record = this.stakeOf(sender)
    switch (tx.body.kind) {
      case 'bond': {
        if (record.bonded + tx.body.amount > AMOUNT_MAX) refuse('overflow', 'bonded stake would overflow')
        this.setStake(sender, { ...record, bonded: record.bonded + tx.body.amount })
        this.shiftVotes(record.votes, tx.body.amount)
        return
      }
      case 'unbond': {
        if (tx.body.amount > record.bonded) refuse('overspend', `unbonds ${tx.body.amount} of ${record.bonded} bonded`)
        if (record.unbonding.length >= UNBONDINGS_PER_ACCOUNT_MAX) refuse('limit', `already ${record.unbonding.length} unbonding entries, limit ${UNBONDINGS_PER_ACCOUNT_MAX}`)
        this.setStake(sender, { ...record, bonded: record.bonded - tx.body.amount, unbonding: [...record.unbonding, { amount: tx.body.amount, releaseHeight: height + params.unbondingBlocks }] })
        this.shiftVotes(record.votes, -tx.body.amount)
        return
      }
      case 'withdraw': {
        const released = record.unbonding.filter((entry) => entry.releaseHeight <= height)
        if (released.length === 0) refuse('nothing_released', 'no unbonded stake is released yet')
        const account = this.get(sender)
        const total = released.reduce((sum, entry) => sum + entry.amount, 0n)
        if (account.balance + total > AMOUNT_MAX) refuse('overflow', 'the balance would overflow')
        this.write(sender, { ...account, balance: account.balance + total })
        this.setStake(sender, { ...record, unbonding: record.unbonding.filter((entry) => entry.releaseHeight > height) })
        return
      }
      case 'register': {
        if (record.candidate !== null) refuse('registered', 'already registered')
        this.setStake(sender, { ...record, candidate: { publicKey: tx.publicKey, jailedUntil: 0, tombstoned: false, missed: 0, slashes: [] } })
        return
      }
      case 'unjail': {
        const candidate = record.candidate
        if (candidate === null || candidate.jailedUntil === 0) return refuse('not_jailed', 'not jailed')
        if (candidate.tombstoned) refuse('tombstoned', 'jailed for good (equivocation)')
        if (candidate.jailedUntil > height) refuse('jailed', `jailed until height ${candidate.jailedUntil}`)
        this.setStake(sender, { ...record, candidate: { ...candidate, jailedUntil: 0, missed: 0 } })
        return
      }
      case 'vote': {
        for (const producer of tx.body.producers) {
          const candidate = this.stakeOf(producer).candidate
          if (candidate === null || candidate.tombstoned) refuse('not_candidate', `${producer} is not a candidate`)
        }
        this.shiftVotes(record.votes, -record.bonded)
        this.setStake(sender, { ...this.stakeOf(sender), votes: [...tx.body.producers] })
        this.shiftVotes(tx.body.producers, record.bonded)
        return
      }
      case 'evidence': {
        const { first } = tx.body
        const offender = statementSigner(first)
        const offended = this.stakeOf(offender)
        const candidate = offended.candidate
        if (candidate === null || toHex(candidate.publicKey) !== toHex(first.publicKey)) return refuse('not_candidate', `evidence against ${offender}, who is not a candidate`)
        if (first.statement.height + params.unbondingBlocks < height) refuse('too_old', `evidence from height ${first.statement.height} is older than the unbonding period`)
        if (first.statement.height > height + 1) refuse('too_new', `evidence from height ${first.statement.height}, above the chain`)
        const at = offenceKey(first.statement)
        if (candidate.slashes.some((slash) => slash.offence === 'equivocation' && slash.at === at)) refuse('duplicate', `already slashed for ${at}`)
        // One equivocation ends a validator for good; further evidence has nothing left to punish.
        if (candidate.tombstoned) refuse('tombstoned', `${offender} is already jailed for good`)
        this.slash(offender, height, at)
        return
      }
      case 'transfer': return
    }
  }

  /** Burns `slashPerMille` of the offender's slashable stake (bonded first, then unbonding), jails it for good and drops it from the set. */
  private slash (offender: Address, height: number, at: string): void {
    const params = this.staking as StakingParams
    const record = this.stakeOf(offender)
    const candidate = record.candidate as NonNullable<StakeRecord['candidate']>
    const slashable = record.bonded + record.unbonding.reduce((sum, entry) => sum + (entry.releaseHeight > height ? entry.amount : 0n), 0n)
    let cut = (slashable * BigInt(params.slashPerMille)) / 1000n
    const amount = cut
    const fromBonded = cut < record.bonded ? cut : record.bonded
    cut -= fromBonded
    const unbonding = record.unbonding.map((entry) => {
      if (cut === 0n || entry.releaseHeight <= height) return entry
      const taken = cut < entry.amount ? cut : entry.amount
      cut -= taken
      return { ...entry, amount: entry.amount - taken }
    }).filter((entry) => entry.amount > 0n)
    const slashes = [...candidate.slashes, { height, offence: 'equivocation' as const, at, amount }].slice(-SLASHES_PER_CANDIDATE_MAX)
    this.setStake(offender, { ...record, bonded: record.bonded - fromBonded, unbonding, candidate: { ...candidate, tombstoned: true, jailedUntil: height, slashes } })
    this.shiftVotes(record.votes, -fromBonded)
    this.dropFromSet(offender, height)
  }

  /** Adds `delta` (negative to remove) to the votes received by each producer in `producers`. */
  private shiftVotes (producers: readonly Address[], delta: bigint): void {
    if (delta === 0n) return
    for (const producer of producers) {
      const record = this.stakeOf(producer)
      const votesReceived = record.votesReceived + delta
      this.setStake(producer, { ...record, votesReceived: votesReceived < 0n ? 0n : votesReceived })
    }
  }

  /** A jailed validator leaves the set at once (never emptying it: a chain with no validator cannot go on). */
  private dropFromSet (address: Address, height: number): void {
    const sets = this.sets
    if (sets === null || !sets.current.some((entry) => entry.address === address)) return
    const current = sets.current.filter((entry) => entry.address !== address)
    if (current.length === 0) return
    // The DPoS schedule of the round stays: a change of the PoS set never reshuffles a round.
    this.setSets({ ...sets, current, previous: this.validatorsAt(height), changedAt: height })
  }

  /** Downtime counting and jailing, the downtime window, and the epoch election, after a block's transactions. */
  private endBlock (height: number, signersOfParent: ReadonlySet<Address> | null, parentSigners: readonly ValidatorEntry[]): void {
    const params = this.staking as StakingParams
    if (signersOfParent !== null && height >= 2) {
      for (const validator of parentSigners) {
        if (signersOfParent.has(validator.address)) continue
        const record = this.stakeOf(validator.address)
        const candidate = record.candidate
        if (candidate === null || candidate.jailedUntil !== 0) continue
        const missed = candidate.missed + 1
        if (missed > params.downtimeMissedMax) {
          const slashes = [...candidate.slashes, { height, offence: 'downtime' as const, at: `${height}`, amount: 0n }].slice(-SLASHES_PER_CANDIDATE_MAX)
          this.setStake(validator.address, { ...record, candidate: { ...candidate, missed: 0, jailedUntil: height + params.jailBlocks, slashes } })
          this.dropFromSet(validator.address, height)
        } else {
          this.setStake(validator.address, { ...record, candidate: { ...candidate, missed } })
        }
      }
    }
    if (height % params.downtimeWindowBlocks === 0) {
      // Every candidate starts the next window clean, in the set or not (one that left the set with misses too).
      for (const [address, record] of this.stakes) {
        if (record.candidate !== null && record.candidate.missed > 0) this.setStake(address, { ...record, candidate: { ...record.candidate, missed: 0 } })
      }
    }
    if (height % params.epochBlocks === 0) {
      const elected = electValidators(this.stakes, params)
      if (elected.length > 0 && this.sets !== null) this.setSets({ ...this.sets, current: elected, previous: this.validatorsAt(height), changedAt: height })
    }
  }

  private execute (tx: SignedTx, index: number): void {
    const sender = senderOf(tx)
    const account = this.get(sender)
    if (tx.nonce !== account.nonce) throw new LedgerError('LEDGER_BAD_BLOCK', `transaction ${index}: nonce ${tx.nonce}, the account expects ${account.nonce}`, { index, reason: 'nonce' })
    const cost = txCost(tx)
    if (cost > account.balance) throw new LedgerError('LEDGER_BAD_BLOCK', `transaction ${index}: spends ${cost} from a balance of ${account.balance}`, { index, reason: 'overspend' })
    this.write(sender, { balance: account.balance - cost, nonce: account.nonce + 1 })
  }

  private credit (tx: SignedTx, sender: Address): void {
    switch (tx.body.kind) {
      case 'transfer': {
        const to = this.get(tx.body.to)
        const balance = to.balance + tx.body.amount
        if (balance > AMOUNT_MAX) throw new LedgerError('LEDGER_BAD_BLOCK', `a transfer from ${sender} would overflow the balance of ${tx.body.to}`, { reason: 'overflow' })
        this.write(tx.body.to, { ...to, balance })
      }
    }
  }

  private write (address: Address, account: Account | null): void {
    this.remember(address)
    if (account === null) this.accounts.delete(address)
    else this.accounts.set(address, { ...account })
    this.dirtyAccounts.add(address)
  }
}
