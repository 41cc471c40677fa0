/**
 * Byzantine DPoS producers for the simulator: the production service with one behaviour
 * changed. `double-sign` signs two different blocks for each of its slots (one with a
 * transaction of its own, one without) and broadcasts both.
 */
import { DposService, addressFromPublicKey, signTx, type Block, type DposInit } from '../ledger/index.js'

export type DposByzantineBehaviour = 'double-sign'

class ByzantineDpos extends DposService {
  constructor (init: DposInit, readonly behaviour: DposByzantineBehaviour) {
    super(init)
  }

  /** Signs at once, twice, with no last-signed guard. */
  protected override produce (slot: number): void {
    const first = this.build(slot)
    const key = this.init.key
    if (key === null) return
    const ledger = this.init.ledger
    const self = addressFromPublicKey(key.publicKey)
    // A second block for the slot: the same one plus a transfer to itself, so its content differs.
    const tx = signTx({ chainId: ledger.genesis.chainId, publicKey: key.publicKey, nonce: ledger.chain().state().get(self).nonce, fee: 1n, body: { kind: 'transfer', to: self, amount: 1n, memo: `slot ${slot}` } }, key)
    let second: Block | null = null
    try {
      ledger.submit(tx)
      second = this.build(slot)
    } catch {
      // The pool refused it (a nonce in use): this slot gets one block.
    }
    ledger.publishBlock(first)
    if (second !== null && second.txs.length !== first.txs.length) {
      try { ledger.publishBlock(second) } catch { /* the second one may lose to the first here */ }
    }
  }
}

export function byzantineDpos (init: DposInit, behaviour: DposByzantineBehaviour): DposService {
  return new ByzantineDpos(init, behaviour)
}
