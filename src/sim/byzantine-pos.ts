/**
 * Byzantine PoS validators for the simulator: the production Tendermint service with one
 * behaviour changed, to test that honest validators stay safe and get the offender slashed.
 *
 * - `equivocate-proposals`: as proposer, signs two different blocks for the round and sends one
 *   to each half of the peers.
 * - `double-vote`: signs every prevote and precommit twice, for its value and for another, and
 *   sends one to each half of the peers.
 * - `withhold`: never proposes nor votes.
 * - `invalid-blocks`: as proposer, signs blocks whose state root is wrong.
 * - `withhold-txs`: as proposer, includes a transfer of its own that it never gossips and keeps
 *   out of its pool, so it cannot supply it: peers cannot put the compact proposal together.
 */
import { encodeCanonical, sign, type NodeId } from '../core/index.js'
import {
  PosService, addressFromPublicKey, blockHash, encodeCompactBlock, encodeTx, sealingHash, signStatement, signTx,
  type Block, type PosInit, type PosProposalMessage, type PosVoteMessage, type Statement
} from '../ledger/index.js'

export type ByzantineBehaviour = 'equivocate-proposals' | 'double-vote' | 'withhold' | 'invalid-blocks' | 'withhold-txs'
export const byzantineBehaviours: readonly ByzantineBehaviour[] = ['equivocate-proposals', 'double-vote', 'withhold', 'invalid-blocks', 'withhold-txs']

class ByzantinePos extends PosService {
  constructor (init: PosInit, readonly behaviour: ByzantineBehaviour) {
    super(init)
  }

  /** The other members split in two halves (by sorted id). */
  private halves (): [NodeId[], NodeId[]] {
    const env = this.requireEnv()
    const peers = env.members.filter((member) => member !== env.self)
    const cut = Math.ceil(peers.length / 2)
    return [peers.slice(0, cut), peers.slice(cut)]
  }

  private signFree (statement: Statement): ReturnType<typeof signStatement> | null {
    return this.init.key === null ? null : signStatement(statement, this.init.key)
  }

  protected override propose (): void {
    switch (this.behaviour) {
      case 'withhold': return
      case 'invalid-blocks': {
        const block = this.buildBlock()
        const header = { ...block.header, stateRoot: 'f'.repeat(64), seal: null }
        const key = this.init.key
        if (key === null) return
        this.sendProposal({ header: { ...header, seal: { ...(block.header.seal as object), signature: sign(key, sealingHash(header)) } }, txs: block.txs }, -1)
        return
      }
      case 'equivocate-proposals': {
        const first = this.buildBlock()
        const key = this.init.key
        if (key === null) return
        const header = { ...first.header, timeMs: first.header.timeMs + 1, seal: null }
        const second: Block = { header: { ...header, seal: { ...(first.header.seal as object), signature: sign(key, sealingHash(header)) } }, txs: first.txs }
        const [left, right] = this.halves()
        for (const [block, peers] of [[first, left], [second, right]] as const) {
          const hash = blockHash(block.header)
          const signed = this.signFree({ chainId: this.ledger.genesis.chainId, height: this.height, round: this.round, step: 'proposal', value: hash, polRound: -1 })
          if (signed === null) return
          const message: PosProposalMessage = { type: 'pos.proposal', proposal: encodeCanonical(signed), block: encodeCompactBlock(block) }
          this.emit(message, peers)
          if (block === first) this.acceptProposal(signed, block, hash)
        }
        return
      }
      case 'withhold-txs': {
        const key = this.init.key
        if (key === null) { super.propose(); return }
        const chain = this.ledger.chain()
        const pool = this.ledger.pool()
        const sender = addressFromPublicKey(key.publicKey)
        const nonce = chain.state().get(sender).nonce + pool.pending().filter((pending) => pending.sender === sender).length
        const tx = signTx({ chainId: this.ledger.genesis.chainId, publicKey: key.publicKey, nonce, fee: 1_000n, body: { kind: 'transfer', to: sender, amount: 1n } }, key)
        let pending
        try {
          pending = pool.add(tx, encodeTx(tx).length, this.requireEnv().now(), (address) => chain.state().get(address))
        } catch {
          super.propose()
          return
        }
        // In the pool only while the block is built: a peer's fetch finds it nowhere.
        let block: Block
        try {
          block = this.buildBlock()
        } finally {
          pool.remove(pending)
        }
        this.sendProposal(block, -1)
        return
      }
      default: super.propose()
    }
  }

  protected override castVote (step: 'prevote' | 'precommit', value: string | null): void {
    switch (this.behaviour) {
      case 'withhold':
        this.step = step
        return
      case 'double-vote': {
        this.step = step
        const other = value === null ? this.someOtherValue() : null
        const [left, right] = this.halves()
        for (const [choice, peers] of [[value, left], [other, right]] as const) {
          const signed = this.signFree({ chainId: this.ledger.genesis.chainId, height: this.height, round: this.round, step, value: choice })
          if (signed === null) return
          const message: PosVoteMessage = { type: 'pos.vote', vote: encodeCanonical(signed) }
          this.emit(message, peers)
          if (choice === value) this.acceptVote(signed)
        }
        return
      }
      default: super.castVote(step, value)
    }
  }

  /** A value to vote for when the honest vote is nil: a hash of nothing real. */
  private someOtherValue (): string {
    return blockHash({ chainId: this.ledger.genesis.chainId, height: this.height, parent: '0'.repeat(64), timeMs: this.round, txRoot: '0'.repeat(64), stateRoot: '0'.repeat(64), proposer: '0'.repeat(40), seal: null })
  }
}

/** A PoS service with a Byzantine behaviour. */
export function byzantinePos (init: PosInit, behaviour: ByzantineBehaviour): PosService {
  return new ByzantinePos(init, behaviour)
}
