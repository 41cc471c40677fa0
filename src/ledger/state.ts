/**
 * Account state and the deterministic state transition. Applying a block executes its
 * transactions in order (each must carry its sender's next nonce and be affordable), pays the
 * fees and the block reward to the proposer, and returns an undo record, so that a
 * reorganisation can roll the state back block by block and forward along the new branch.
 */
import { toHex } from '../core/index.js'
import { AccountTree, type Account } from './account-tree.js'
import type { Block, GenesisSpec } from './block.js'
import { LedgerError } from './errors.js'
import { txCost } from './mempool.js'
import { AMOUNT_MAX, senderOf, type Address, type SignedTx } from './tx.js'

/** The accounts a block changed, with their values before it (null: the account did not exist). */
export interface BlockUndo {
  height: number
  previous: Array<[Address, Account | null]>
}

const EMPTY_ACCOUNT: Readonly<Account> = Object.freeze({ balance: 0n, nonce: 0 })

export class LedgerState {
  private readonly accounts = new Map<Address, Account>()
  private readonly tree = new AccountTree()

  static fromGenesis (genesis: GenesisSpec): LedgerState {
    const state = new LedgerState()
    for (const allocation of genesis.allocations) {
      if (allocation.balance < 0n || allocation.balance > AMOUNT_MAX) throw new LedgerError('LEDGER_CONFIG_INVALID', `allocation to ${allocation.address} out of range`)
      const held = state.get(allocation.address)
      state.write(allocation.address, { balance: held.balance + allocation.balance, nonce: 0 })
    }
    return state
  }

  get (address: Address): Account {
    const account = this.accounts.get(address)
    return account === undefined ? EMPTY_ACCOUNT : { ...account }
  }

  has (address: Address): boolean {
    return this.accounts.has(address)
  }

  get size (): number { return this.accounts.size }

  root (): string {
    return toHex(this.tree.rootHash())
  }

  proofOf (address: Address): ReturnType<AccountTree['prove']> {
    return this.tree.prove(address)
  }

  entries (): Array<[Address, Account]> {
    return [...this.accounts].map(([address, account]) => [address, { ...account }])
  }

  /**
   * Executes a block's transactions and pays `reward` plus the fees to the proposer. On any
   * invalid transaction nothing changes and `LEDGER_BAD_BLOCK` names it.
   */
  apply (block: Block, reward: bigint): BlockUndo {
    const undo: BlockUndo = { height: block.header.height, previous: [] }
    const touched = new Set<Address>()
    const remember = (address: Address): void => {
      if (touched.has(address)) return
      touched.add(address)
      undo.previous.push([address, this.accounts.has(address) ? this.get(address) : null])
    }
    try {
      let fees = 0n
      for (const [index, tx] of block.txs.entries()) {
        const sender = senderOf(tx)
        remember(sender)
        this.execute(tx, index)
        if (tx.body.kind === 'transfer') remember(tx.body.to)
        this.credit(tx, sender)
        fees += tx.fee
      }
      remember(block.header.proposer)
      const proposer = this.get(block.header.proposer)
      const paid = proposer.balance + fees + reward
      if (paid > AMOUNT_MAX) throw new LedgerError('LEDGER_BAD_BLOCK', 'the proposer\'s balance would overflow')
      this.write(block.header.proposer, { ...proposer, balance: paid })
    } catch (error) {
      this.revert(undo)
      throw error
    }
    return undo
  }

  /** Restores the accounts a block changed (the newest block first, when reverting several). */
  revert (undo: BlockUndo): void {
    for (const [address, account] of [...undo.previous].reverse()) this.write(address, account)
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
    if (account === null) this.accounts.delete(address)
    else this.accounts.set(address, { ...account })
    this.tree.set(address, account)
  }
}
