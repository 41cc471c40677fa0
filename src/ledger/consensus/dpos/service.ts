/**
 * DPoS block production: at the start of each slot, the producer the schedule names for it (on
 * top of this node's head) builds, signs and broadcasts a block; a missed slot is skipped. Every
 * stored block's signed slot is remembered for a while: a producer seen signing two blocks for one
 * slot is reported with an evidence transaction, which slashes it and keeps it out of later rounds.
 */
import { sign, type Ed25519KeyPair, type Env, type Message, type NodeId, type Service, type TimerId } from '../../../core/index.js'
import { addressFromPublicKey, type Address } from '../../address.js'
import { blockHash, type Block } from '../../block.js'
import type { LedgerService } from '../../service.js'
import { statementBytes, type SignedStatement } from '../../statement.js'
import { blockStatement, dposSealSchema, type DposEngine } from './engine.js'

const LAST_SLOT_KEY = 'dpos/last-signed-slot'

/** Slots whose signed blocks are remembered for double-sign detection. */
export const SIGNED_SLOTS_KEPT_MAX = 4_096

export interface DposStats {
  slot: number
  blocksProduced: number
  slotsMissedByThisNode: number
  /** Slots not signed because this node had signed them (or later ones) before a restart. */
  signRefusals: number
  doubleSignsSeen: number
  evidenceSubmitted: number
}

export interface DposInit {
  ledger: LedgerService
  engine: DposEngine
  /** This node's producer key; null for a node that only follows. */
  key: Ed25519KeyPair | null
}

export class DposService implements Service {
  readonly name = 'dpos'
  readonly messages = []
  protected env: Env | null = null
  readonly address: Address | null
  private timer: TimerId | null = null
  private slot = -1
  /** Signed block statements by slot (the first seen per producer and slot). */
  private readonly signedSlots = new Map<number, Map<Address, SignedStatement>>()
  private readonly reported = new Set<string>()
  private readonly counters = { blocksProduced: 0, slotsMissedByThisNode: 0, signRefusals: 0, doubleSignsSeen: 0, evidenceSubmitted: 0 }

  constructor (protected readonly init: DposInit) {
    this.address = init.key === null ? null : addressFromPublicKey(init.key.publicKey)
    init.ledger.onBlockAdded((block) => { this.watch(block) })
  }

  start (env: Env): void {
    this.env = env
    this.scheduleNextSlot()
  }

  stop (): void {
    if (this.timer !== null) this.env?.clearTimer(this.timer)
    this.timer = null
    this.env = null
  }

  onMessage (_from: NodeId, _message: Message): void {}

  stats (): DposStats {
    return { slot: this.slot, ...this.counters }
  }

  status (): object {
    return { ...this.stats(), producer: this.address }
  }

  private scheduleNextSlot (): void {
    const env = this.env
    if (env === null) return
    const engine = this.init.engine
    const next = engine.slotAt(env.now()) + 1
    this.timer = env.setTimer(Math.max(0, engine.slotStartMs(next) - env.now()), () => {
      this.timer = null
      this.onSlot(next)
      this.scheduleNextSlot()
    })
  }

  private onSlot (slot: number): void {
    this.slot = slot
    const chain = this.init.ledger.chain()
    const head = chain.head()
    if (head.header.height > 0 && (dposSealSchema.safeParse(head.header.seal).data?.slot ?? -1) >= slot) return
    const producer = this.init.engine.producerAt(chain.state(), head.hash, slot)
    if (producer === null || producer.address !== this.address) return
    this.produce(slot)
  }

  /** Builds and signs the block of `slot` on the head, with `extraTxs` first; not added. */
  protected build (slot: number): Block {
    const key = this.init.key as Ed25519KeyPair
    const chain = this.init.ledger.chain()
    const head = chain.head()
    const template = this.init.ledger.template(head.header, head.hash, this.address as Address, { slot, signature: new Uint8Array(64) })
    const header = { ...template.header, timeMs: this.init.engine.slotStartMs(slot), seal: null }
    const signature = sign(key, statementBytes(blockStatement(header, slot)))
    return { header: { ...header, seal: { slot, signature } }, txs: template.txs }
  }

  /**
   * Persists the slot as the last one signed, waits until that is durable, then builds, signs and
   * publishes the slot's block: a producer restarted within its slot never signs a second block
   * for it (which would be slashed).
   */
  protected produce (slot: number): void {
    const env = this.env
    if (env === null) return
    if (slot <= this.lastSignedSlot(env)) {
      this.counters.signRefusals++
      return
    }
    env.disk.put(LAST_SLOT_KEY, new TextEncoder().encode(String(slot)))
    env.disk.sync(() => {
      if (this.env === null) return
      const head = this.init.ledger.chain().head()
      if (head.header.height > 0 && (dposSealSchema.safeParse(head.header.seal).data?.slot ?? -1) >= slot) return
      try {
        this.init.ledger.publishBlock(this.build(slot))
        this.counters.blocksProduced++
      } catch (error) {
        this.counters.slotsMissedByThisNode++
        this.env.log.error({ slot, reason: (error as Error).message }, 'could not produce a block')
      }
    })
  }

  private lastSignedSlot (env: Env): number {
    const bytes = env.disk.get(LAST_SLOT_KEY)
    const slot = bytes === undefined ? -1 : Number(new TextDecoder().decode(bytes))
    return Number.isSafeInteger(slot) ? slot : Number.MAX_SAFE_INTEGER
  }

  /** Remembers a stored block's signed slot; a second block signed for the slot by its producer is evidence. */
  private watch (block: Block): void {
    const seal = dposSealSchema.safeParse(block.header.seal)
    if (!seal.success) return
    const chain = this.init.ledger.chain()
    const candidate = chain.state().stakeOf(block.header.proposer).candidate
    if (candidate === null) return
    const slot = seal.data.slot
    const signed: SignedStatement = { statement: blockStatement(block.header, slot), publicKey: candidate.publicKey, signature: seal.data.signature }
    let bySlot = this.signedSlots.get(slot)
    if (bySlot === undefined) {
      this.signedSlots.set(slot, bySlot = new Map())
      if (this.signedSlots.size > SIGNED_SLOTS_KEPT_MAX) this.signedSlots.delete(this.signedSlots.keys().next().value as number)
    }
    const held = bySlot.get(block.header.proposer)
    if (held === undefined) {
      bySlot.set(block.header.proposer, signed)
      return
    }
    if (held.statement.value === signed.statement.value) return
    this.doubleSign(held, signed, blockHash(block.header))
  }

  private doubleSign (first: SignedStatement, second: SignedStatement, hash: string): void {
    const offender = addressFromPublicKey(first.publicKey)
    const key = `${offender}/${first.statement.round}`
    if (this.reported.has(key)) return
    this.reported.add(key)
    this.counters.doubleSignsSeen++
    this.env?.log.warn({ offender, slot: first.statement.round, block: hash }, 'a producer signed two blocks for one slot')
    const signer = this.init.key
    if (signer !== null && this.init.ledger.submitEvidence(signer, first, second)) this.counters.evidenceSubmitted++
  }
}
