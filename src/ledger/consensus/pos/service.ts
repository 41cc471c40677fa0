/**
 * Tendermint consensus for the PoS engine (Buchman, Kwon and Milosevic, "The latest gossip on BFT
 * consensus", 2018, Algorithm 1): for each height, rounds of propose, prevote and precommit.
 *
 * - The proposer of (height, round) is drawn in proportion to power from a seed of the chain
 *   (`ProposerSelector`). It proposes its valid block if it has one, else a new block.
 * - A validator prevotes a proposal it finds valid unless it is locked on another block (a
 *   proposal re-proposed with prevotes from a round at or after the lock may unlock it); else nil.
 * - Prevotes for a block from more than 2/3 of the power lock the validator on it and make it
 *   precommit it; prevotes for nil from more than 2/3 make it precommit nil.
 * - Precommits for a block from more than 2/3 decide it: the block, with those precommits as its
 *   commit certificate, joins the chain and is final.
 * - Timeouts grow by `roundDeltaMs` a round; messages from more than 1/3 of the power for a
 *   later round move a validator to it.
 *
 * A validator persists what it is about to sign (height, round, step, value, and its lock)
 * before it signs, and never signs a different value at or below that point, so a restart cannot
 * make it equivocate. Conflicting statements it sees from others become evidence transactions.
 * A node behind (it sees messages for a later height) catches up by syncing blocks with their
 * certificates, which it checks against the validator set before adding them.
 */
import { z } from 'zod'
import {
  VerifiedSignatures, bytesField, decodeCanonical, defineMessage, encodeCanonical, nodeIdFromPublicKey, sign, toHex,
  type Ed25519KeyPair, type Env, type Message, type MessageOf, type NodeId, type Service, type TimerId
} from '../../../core/index.js'
import { addressFromPublicKey, type Address } from '../../address.js'
import { blockHash, encodeBlock, encodeCompactBlock, sealingHash, type Block } from '../../block.js'
import { LedgerError } from '../../errors.js'
import type { FinalityProofs, LedgerNet, LedgerService } from '../../service.js'
import type { ValidatorEntry } from '../../staking.js'
import { STEP_ORDER, checkStatement, signStatement, statementBytes, statementSigner, type SignedStatement, type Statement, type StatementStep } from '../../statement.js'
import { PosEngine, STATEMENT_SIGNATURES_KEPT_MAX, checkCommitCertificate, isOneThird, isSupermajority, verifyCommit, type CommitCertificate } from './engine.js'
import { ProposerSelector, proposerSeed } from './proposer.js'

export const CONSENSUS_TOPIC = 'ledger/consensus'

/**
 * A proposal: the signed statement, and the block in its compact form (`encodeCompactBlock`: the
 * header and the transactions' hashes; each peer puts it together from its pool, fetching what it
 * lacks from the sender, `LedgerService.assembleBlock`).
 */
export const posProposal = defineMessage('pos.proposal', { proposal: bytesField(), block: bytesField() })
export const posVote = defineMessage('pos.vote', { vote: bytesField() })
export type PosProposalMessage = MessageOf<typeof posProposal>
export type PosVoteMessage = MessageOf<typeof posVote>

export interface PosTimeouts {
  /** How long a validator waits for the round's proposal (round 0). */
  proposeMs: number
  /** How long it waits for more prevotes once it has prevotes from 2/3 for different values. */
  prevoteMs: number
  /** How long it waits for more precommits once it has precommits from 2/3 for different values. */
  precommitMs: number
  /** Each of the three grows by this much a round. */
  roundDeltaMs: number
  /** The pause after a commit before the next height starts: time for transactions to arrive. */
  commitWaitMs: number
  /** A validator re-sends its messages of the current round this often, for peers that lost them. */
  rebroadcastMs: number
}

export const defaultPosTimeouts: Readonly<PosTimeouts> = Object.freeze({ proposeMs: 1_000, prevoteMs: 500, precommitMs: 500, roundDeltaMs: 500, commitWaitMs: 250, rebroadcastMs: 1_000 })

/** Messages for the next height kept until this node gets there. */
export const FUTURE_MESSAGES_MAX = 4_096
/** Statements sent to this node alone that it relays to all, per height. */
export const RELAYED_PER_HEIGHT_MAX = 4_096
/** Different votes kept per validator and step of a round (an equivocator's; the rest are dropped). */
export const VOTES_PER_VALIDATOR_STEP_MAX = 4
/** Rounds of one height a node keeps votes for (a Byzantine flood of far rounds cannot grow memory). */
export const ROUNDS_KEPT_MAX = 64

const LAST_SIGNED_KEY = 'pos/last-signed'
const COMMIT_KEY = 'pos/commit/'

/** What a validator persists before it signs. */
interface SignedRecord {
  height: number
  round: number
  step: StatementStep
  value: string | null
  lockedRound: number
  /** The block it is locked on, encoded; null when not locked. */
  lockedBlock: Uint8Array | null
}

const signedRecordSchema = z.strictObject({
  height: z.number().int().min(0),
  round: z.number().int().min(0),
  step: z.enum(['proposal', 'prevote', 'precommit', 'block']),
  value: z.string().nullable(),
  lockedRound: z.number().int().min(-1),
  lockedBlock: z.instanceof(Uint8Array).nullable()
})

/**
 * A proposal as received (`signed` is null for a lock restored from disk); `bytes`, the block's
 * whole encoding, is made when the block is locked (the last-signed record keeps it).
 */
interface Proposal { block: Block, hash: string, polRound: number, signed: SignedStatement | null, bytes: Uint8Array | null }

interface RoundVotes {
  proposal: Proposal | null
  /**
   * Each validator's votes of the round: one, or several different ones from an equivocator.
   * A validator counts once towards "2/3 of any votes", and towards each value it voted for:
   * quorum intersection makes that safe (two quorums share an honest validator), and it keeps an
   * equivocator's two votes from leaving honest nodes with views that can never agree.
   */
  prevotes: Map<Address, SignedStatement[]>
  precommits: Map<Address, SignedStatement[]>
  prevoteWaitSet: boolean
  precommitWaitSet: boolean
  /** Rule "2/3 prevotes for the proposal, step >= prevote, first time" has fired. */
  polSeen: boolean
}

export type PosStep = 'propose' | 'prevote' | 'precommit' | 'waiting'

export interface PosStats {
  height: number
  round: number
  step: PosStep
  proposalsMade: number
  votesSigned: number
  commits: number
  /** Rounds after the first, over all heights: a measure of failed rounds. */
  extraRounds: number
  signRefusals: number
  invalidProposals: number
  invalidMessages: number
  equivocationsSeen: number
  evidenceSubmitted: number
  /** Validator signatures (votes, proposals, seals, certificates) this node verified... */
  statementSignaturesVerified: number
  /** ...and those it had verified before, met again (a copy, a replayed message, a vote inside the next block's certificate), not verified twice. */
  statementSignaturesRemembered: number
}

export interface PosInit {
  ledger: LedgerService
  net: LedgerNet
  /** This node's validator key; null for a node that follows the chain without voting. */
  key: Ed25519KeyPair | null
  timeouts?: Partial<PosTimeouts>
  penalize?: (peer: NodeId, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string) => void
}

export class PosService implements Service {
  readonly name = 'pos'
  readonly messages = [posProposal, posVote]
  protected env: Env | null = null
  protected readonly timeouts: PosTimeouts
  protected readonly ledger: LedgerService
  readonly address: Address | null
  protected height = 0
  protected round = 0
  protected step: PosStep = 'waiting'
  private lockedRound = -1
  private lockedBlock: Proposal | null = null
  private validRound = -1
  private validBlock: Proposal | null = null
  private rounds = new Map<number, RoundVotes>()
  private validators: readonly ValidatorEntry[] = []
  private powerOf = new Map<Address, bigint>()
  private total = 0n
  private selector: ProposerSelector | null = null
  private readonly validity = new Map<string, boolean>()
  private future: Array<{ message: Message, origin: NodeId, hops: number, relay: boolean }> = []
  /** The certificate of the block this node committed last, which late precommits still join. */
  private lastCommitted: { height: number, certificate: CommitCertificate } | null = null
  /** Signatures of the statements this node relayed at this height. */
  private relayed = new Set<string>()
  /** Proposed blocks (by hash) being put together at this height, waiting for transactions. */
  private assembling = new Set<string>()
  private lastSigned: SignedRecord | null = null
  /** This node's signed messages of the current height, re-sent every `rebroadcastMs`. */
  private own: Message[] = []
  private readonly reported = new Set<string>()
  private timers: TimerId[] = []
  private rebroadcastTimer: TimerId | null = null
  private readonly counters = { proposalsMade: 0, votesSigned: 0, commits: 0, extraRounds: 0, signRefusals: 0, invalidProposals: 0, invalidMessages: 0, equivocationsSeen: 0, evidenceSubmitted: 0 }

  /** Validator signatures verified here: the engine's, so the header checks share them. */
  private readonly signatures: VerifiedSignatures

  constructor (protected readonly init: PosInit) {
    this.ledger = init.ledger
    this.signatures = init.ledger.engine instanceof PosEngine ? init.ledger.engine.signatures : new VerifiedSignatures(STATEMENT_SIGNATURES_KEPT_MAX)
    this.timeouts = { ...defaultPosTimeouts, ...init.timeouts }
    this.address = init.key === null ? null : addressFromPublicKey(init.key.publicKey)
    init.net.subscribe(CONSENSUS_TOPIC, (message, delivery) => { this.receive(message, delivery.origin, delivery.hops, false) })
    // A statement sent to this node alone is relayed to all: what one validator told only some
    // peers (an equivocator's second value) reaches everyone, who can then prove the equivocation.
    const routed = (message: Message, delivery: { origin: NodeId, hops: number }): void => { this.receive(message, delivery.origin, delivery.hops, true) }
    init.net.onRouted('pos.proposal', routed)
    init.net.onRouted('pos.vote', routed)
    init.ledger.onHead(() => { this.onHead() })
  }

  /** The finality hooks the ledger service needs for sync: commit certificates beside blocks. */
  static finality (getService: () => PosService | null): FinalityProofs {
    return {
      proofOf: (hash) => getService()?.certificateBytes(hash),
      admit: (block, proof) => {
        const service = getService()
        if (service === null) throw new LedgerError('LEDGER_BAD_BLOCK', 'consensus is not running')
        service.admitSynced(block, proof)
      }
    }
  }

  start (env: Env): void {
    this.env = env
    const stored = env.disk.get(LAST_SIGNED_KEY)
    if (stored !== undefined) {
      const parsed = signedRecordSchema.safeParse(decodeCanonical(stored))
      if (parsed.success) this.lastSigned = parsed.data
      else env.log.error({ reason: parsed.error.message }, 'the last-signed record does not decode; signing nothing at or below the head height + 1 round 0 would be unsafe, refusing to sign')
      if (!parsed.success) this.lastSigned = { height: Number.MAX_SAFE_INTEGER, round: 0, step: 'precommit', value: null, lockedRound: -1, lockedBlock: null }
    }
    this.enterHeight()
    this.rebroadcastTimer = env.setTimer(this.timeouts.rebroadcastMs, () => { this.rebroadcast() })
  }

  stop (): void {
    for (const timer of this.timers) this.env?.clearTimer(timer)
    if (this.rebroadcastTimer !== null) this.env?.clearTimer(this.rebroadcastTimer)
    this.timers = []
    this.env = null
  }

  onMessage (from: NodeId, message: Message): void {
    this.init.penalize?.(from, 'protocol_violation', `bare ${message.type} outside the overlay`)
  }

  stats (): PosStats {
    return { height: this.height, round: this.round, step: this.step, ...this.counters, statementSignaturesVerified: this.signatures.counts.verified, statementSignaturesRemembered: this.signatures.counts.remembered }
  }

  status (): object {
    return { ...this.stats(), validator: this.address, validators: this.validators.length }
  }

  /** The stored commit certificate of a block, encoded. */
  certificateBytes (hash: string): Uint8Array | undefined {
    return this.env?.disk.get(COMMIT_KEY + hash)
  }

  certificate (hash: string): CommitCertificate | undefined {
    const bytes = this.certificateBytes(hash)
    return bytes === undefined ? undefined : checkCommitCertificate(decodeCanonical(bytes))
  }

  /** Checks a synced block's certificate against the validators of its height (the next one), and keeps it. */
  admitSynced (block: Block, proof: Uint8Array | undefined): void {
    const env = this.requireEnv()
    const chain = this.ledger.chain()
    if (proof === undefined) throw new LedgerError('LEDGER_BAD_BLOCK', 'a PoS block comes with its commit certificate', { reason: 'commit' })
    let certificate: CommitCertificate
    try {
      certificate = checkCommitCertificate(decodeCanonical(proof))
    } catch (error) {
      if (error instanceof LedgerError) throw error
      throw new LedgerError('LEDGER_MALFORMED', `commit certificate bytes: ${(error as Error).message}`)
    }
    const hash = blockHash(block.header)
    if (block.header.height !== chain.head().header.height + 1) throw new LedgerError('LEDGER_BAD_BLOCK', `block ${block.header.height} is not the next one (head ${chain.head().header.height})`, { reason: 'not_head' })
    if (certificate.block !== hash || certificate.height !== block.header.height) throw new LedgerError('LEDGER_BAD_BLOCK', 'the certificate is for another block', { reason: 'commit' })
    verifyCommit(certificate, chain.state().validators(), this.ledger.genesis.chainId, this.signatures)
    env.disk.put(COMMIT_KEY + hash, proof)
  }

  // --- heights and rounds --------------------------------------------------------------------

  private onHead (): void {
    const env = this.env
    if (env === null) return
    const head = this.ledger.chain().head().header.height
    if (head + 1 <= this.height && this.step !== 'waiting') return
    if (this.step === 'waiting' && this.height === head + 1) return
    this.clearTimers()
    this.step = 'waiting'
    this.height = head + 1
    this.timers.push(env.setTimer(this.timeouts.commitWaitMs, () => { this.enterHeight() }))
  }

  private enterHeight (): void {
    const chain = this.ledger.chain()
    const head = chain.head()
    this.clearTimers()
    this.height = head.header.height + 1
    this.validators = chain.state().validators()
    this.powerOf = new Map(this.validators.map((validator) => [validator.address, validator.power]))
    this.total = [...this.powerOf.values()].reduce((sum, power) => sum + power, 0n)
    this.selector = this.validators.length === 0 ? null : new ProposerSelector(this.validators)
    this.rounds = new Map()
    this.validity.clear()
    this.own = []
    this.relayed = new Set()
    this.assembling = new Set()
    this.lockedRound = -1
    this.lockedBlock = null
    this.validRound = -1
    this.validBlock = null
    let round = 0
    // A restarted validator takes back its lock, and starts at the round it last signed in.
    const last = this.lastSigned
    if (last !== null && last.height === this.height) {
      round = last.round
      if (last.lockedBlock !== null && last.lockedRound >= 0) {
        try {
          const block = this.ledger.decodeBlockBytes(last.lockedBlock)
          this.lockedRound = last.lockedRound
          this.lockedBlock = { block, hash: blockHash(block.header), polRound: -1, signed: null, bytes: last.lockedBlock }
        } catch {
          // A lock that does not decode cannot be kept; the last-signed guard still holds.
        }
      }
    }
    const buffered = this.future
    this.future = []
    this.round = 0
    this.startRound(round)
    for (const entry of buffered) this.receive(entry.message, entry.origin, entry.hops, entry.relay)
  }

  private startRound (round: number): void {
    if (round > this.round) this.counters.extraRounds += round - this.round
    this.round = round
    this.step = 'propose'
    this.polProof = []
    if (this.selector === null) return
    if (this.address !== null && this.proposerOf(round) === this.address) this.propose()
    const height = this.height
    this.schedule(this.timeouts.proposeMs + round * this.timeouts.roundDeltaMs, () => {
      if (this.height === height && this.round === round && this.step === 'propose') this.castVote('prevote', null)
    })
    this.evaluate()
  }

  protected proposerOf (round: number): Address {
    const head = this.ledger.chain().head()
    return (this.selector as ProposerSelector).proposer(proposerSeed(head.hash, this.height, round))
  }

  // --- proposing ---------------------------------------------------------------------------------

  /** Builds, seals and signs a new block on the head. */
  protected buildBlock (): Block {
    const chain = this.ledger.chain()
    const head = chain.head()
    const key = this.init.key as Ed25519KeyPair
    const lastCommit = head.header.height === 0 ? null : (this.certificate(head.hash) ?? null)
    const template = this.ledger.template(head.header, head.hash, this.address as Address, { lastCommit, signature: new Uint8Array(64) })
    const header = { ...template.header, seal: null }
    const sealing = sealingHash(header)
    const signature = sign(key, sealing)
    // Its own seal: when the proposal is checked here, it is not verified.
    this.signatures.rememberOwn(key, sealing, signature)
    return { header: { ...header, seal: { lastCommit, signature } }, txs: template.txs }
  }

  /** Proposes the valid block if there is one, else a new block. */
  protected propose (): void {
    const reuse = this.validBlock
    let block: Block
    let polRound = -1
    if (reuse !== null) {
      block = reuse.block
      polRound = this.validRound
    } else {
      try {
        block = this.buildBlock()
      } catch (error) {
        this.env?.log.error({ height: this.height, reason: (error as Error).message }, 'could not build a proposal')
        return
      }
    }
    this.sendProposal(block, polRound)
  }

  protected sendProposal (block: Block, polRound: number, to?: readonly NodeId[]): void {
    const hash = blockHash(block.header)
    const bytes = encodeCompactBlock(block)
    this.signThen({ chainId: this.ledger.genesis.chainId, height: this.height, round: this.round, step: 'proposal', value: hash, polRound }, (signed) => {
      this.counters.proposalsMade++
      // The transactions it names that still wait for a gossip batch go out ahead of it.
      this.ledger.flushTxGossip()
      const message: PosProposalMessage = { type: 'pos.proposal', proposal: encodeCanonical(signed), block: bytes }
      this.remember(message)
      this.emit(message, to)
      // A re-proposal comes with the prevotes that justify it (its proof of lock): peers that
      // missed them (a partition, a restart) could not accept it otherwise.
      this.polProof = polRound < 0
        ? []
        : [...this.roundOf(polRound).prevotes.values()].flat().filter((vote) => vote.statement.value === hash).map((vote): PosVoteMessage => ({ type: 'pos.vote', vote: encodeCanonical(vote) }))
      for (const vote of this.polProof) this.emit(vote, to)
      this.acceptProposal(signed, block, hash)
    })
  }

  /** Sends to everyone (broadcast), or to the given peers only (the simulator's Byzantine validators). */
  protected emit (message: PosProposalMessage | PosVoteMessage, to?: readonly NodeId[]): void {
    if (to === undefined) {
      this.init.net.broadcast(CONSENSUS_TOPIC, message)
      return
    }
    for (const peer of to) {
      try { this.init.net.send(peer, message) } catch { /* no route now */ }
    }
  }

  // --- voting ------------------------------------------------------------------------------------

  protected castVote (step: 'prevote' | 'precommit', value: string | null): void {
    this.step = step
    const statement: Statement = { chainId: this.ledger.genesis.chainId, height: this.height, round: this.round, step, value }
    this.signThen(statement, (signed) => {
      this.counters.votesSigned++
      const message: PosVoteMessage = { type: 'pos.vote', vote: encodeCanonical(signed) }
      this.remember(message)
      this.emit(message)
      this.acceptVote(signed)
    })
  }

  /**
   * Persists the statement (and the lock) as the last signed, waits for it to be durable, then
   * signs; refuses anything at or below the last signed point with another value.
   */
  protected signThen (statement: Statement, then: (signed: SignedStatement) => void): void {
    const env = this.requireEnv()
    const key = this.init.key
    if (key === null || this.address === null || !this.powerOf.has(this.address)) return
    if (!this.maySign(statement)) {
      this.counters.signRefusals++
      env.log.warn({ height: statement.height, round: statement.round, step: statement.step }, 'refused to sign: at or below the last signed step')
      return
    }
    this.lastSigned = {
      height: statement.height,
      round: statement.round,
      step: statement.step,
      value: statement.value,
      lockedRound: this.lockedRound,
      lockedBlock: this.lockedBlock === null ? null : (this.lockedBlock.bytes ??= encodeBlock(this.lockedBlock.block))
    }
    env.disk.put(LAST_SIGNED_KEY, encodeCanonical(this.lastSigned))
    env.disk.sync(() => {
      if (this.env === null || statement.height !== this.height) return
      const signed = signStatement(statement, key)
      // Its own vote, met again in the next block's certificate, is not verified there.
      this.signatures.rememberOwn(key, statementBytes(statement), signed.signature)
      then(signed)
    })
  }

  private maySign (statement: Statement): boolean {
    const last = this.lastSigned
    if (last === null) return true
    const order = (height: number, round: number, step: StatementStep): [number, number, number] => [height, round, STEP_ORDER[step]]
    const [h1, r1, s1] = order(statement.height, statement.round, statement.step)
    const [h0, r0, s0] = order(last.height, last.round, last.step)
    if (h1 !== h0) return h1 > h0
    if (r1 !== r0) return r1 > r0
    if (s1 !== s0) return s1 > s0
    return statement.value === last.value
  }

  // --- receiving ---------------------------------------------------------------------------------

  private receive (message: Message, origin: NodeId, hops: number, relay: boolean): void {
    const env = this.env
    if (env === null) return
    let signed: SignedStatement
    /** The signer's address, from its key as received (the key the checked statement holds). */
    let signerAddress: Address | null = null
    try {
      const bytes = message.type === 'pos.proposal' ? (message as PosProposalMessage).proposal : (message as PosVoteMessage).vote
      let raw: unknown
      try { raw = decodeCanonical(bytes) } catch (error) { throw new LedgerError('LEDGER_MALFORMED', `statement bytes: ${(error as Error).message}`) }
      // Only validators' signatures are remembered: anyone can sign statements with a key of their
      // own, and those must not push the validators' out of the bounded memory.
      const key = (raw as { publicKey?: unknown } | null)?.publicKey
      if (key instanceof Uint8Array) signerAddress = addressFromPublicKey(key)
      signed = checkStatement(raw, signerAddress !== null && this.powerOf.has(signerAddress) ? this.signatures : undefined)
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      this.counters.invalidMessages++
      if (hops <= 1) this.init.penalize?.(origin, error.code === 'LEDGER_BAD_SIGNATURE' ? 'invalid_signature' : 'malformed_message', error.message)
      return
    }
    const statement = signed.statement
    if (statement.chainId !== this.ledger.genesis.chainId) return
    if (statement.height > this.height || (statement.height === this.height && this.step === 'waiting')) {
      if (statement.height === this.height + (this.step === 'waiting' ? 0 : 1) && this.future.length < FUTURE_MESSAGES_MAX) this.future.push({ message, origin, hops, relay })
      if (statement.height > this.height) this.ledger.catchUp(origin)
      return
    }
    if (statement.height < this.height) {
      this.lateForLastCommit(signed)
      return
    }
    if (statement.round > this.round + ROUNDS_KEPT_MAX) return
    const signer = signerAddress ?? statementSigner(signed)
    if (!this.powerOf.has(signer)) {
      this.counters.invalidMessages++
      return
    }
    if (relay && this.relayed.size < RELAYED_PER_HEIGHT_MAX) {
      const id = toHex(signed.signature)
      if (!this.relayed.has(id)) {
        this.relayed.add(id)
        this.init.net.broadcast(CONSENSUS_TOPIC, message)
      }
    }
    if (message.type === 'pos.proposal') {
      if (statement.step !== 'proposal' || statement.value === null) { this.counters.invalidMessages++; return }
      if (signer !== this.proposerOf(statement.round)) { this.counters.invalidMessages++; return }
      // A copy of the proposal this node holds (re-sent, relayed): nothing to put together again.
      if (this.rounds.get(statement.round)?.proposal?.hash === statement.value) return
      const value = statement.value
      // The same block proposed in an earlier round of this height (a re-proposal of the valid block): the one held.
      const held = this.heldBlock(value)
      if (held !== undefined) {
        this.acceptProposal(signed, held, value)
        return
      }
      // A copy of a proposal still being put together (waiting for transactions): that one will do.
      if (this.assembling.has(value)) return
      this.assembling.add(value)
      const height = this.height
      // The block from its compact form: at once from the pool, or once the node it came from (the
      // proposer, or a validator that relayed it, having put it together) supplied the transactions
      // this node lacked (by then the height may have moved on).
      this.ledger.assembleBlock((message as PosProposalMessage).block, origin, (block) => {
        if (this.env === null || height !== this.height) return
        this.assembling.delete(value)
        if (block instanceof LedgerError && block.code === 'LEDGER_TXS_UNAVAILABLE') return
        if (block instanceof LedgerError || blockHash(block.header) !== value) {
          this.counters.invalidMessages++
          return
        }
        // A commit that failed leaves the node waiting at this height: the proposal waits with the
        // messages of the next height, as it would have had it come then.
        if (this.step === 'waiting') {
          if (this.future.length < FUTURE_MESSAGES_MAX) this.future.push({ message, origin, hops, relay })
          return
        }
        if (this.rounds.get(statement.round)?.proposal?.hash === value) return
        this.acceptProposal(signed, block, value)
      })
    } else {
      if (statement.step !== 'prevote' && statement.step !== 'precommit') { this.counters.invalidMessages++; return }
      this.acceptVote(signed)
    }
  }

  private roundOf (round: number): RoundVotes {
    let votes = this.rounds.get(round)
    if (votes === undefined) {
      votes = { proposal: null, prevotes: new Map(), precommits: new Map(), prevoteWaitSet: false, precommitWaitSet: false, polSeen: false }
      this.rounds.set(round, votes)
    }
    return votes
  }

  /** A block of this height held already (proposed in some round, or the lock or valid block). */
  private heldBlock (hash: string): Block | undefined {
    for (const votes of this.rounds.values()) if (votes.proposal?.hash === hash) return votes.proposal.block
    if (this.lockedBlock?.hash === hash) return this.lockedBlock.block
    if (this.validBlock?.hash === hash) return this.validBlock.block
    return undefined
  }

  protected acceptProposal (signed: SignedStatement, block: Block, hash: string): void {
    const votes = this.roundOf(signed.statement.round)
    const held = votes.proposal
    if (held !== null) {
      if (held.hash !== hash && held.signed !== null) this.equivocation(held.signed, signed)
      return
    }
    votes.proposal = { block, hash, polRound: signed.statement.polRound ?? -1, signed, bytes: null }
    this.evaluate()
  }

  protected acceptVote (signed: SignedStatement): void {
    const statement = signed.statement
    const votes = this.roundOf(statement.round)
    const table = statement.step === 'prevote' ? votes.prevotes : votes.precommits
    const signer = statementSigner(signed)
    const held = table.get(signer)
    if (held === undefined) {
      table.set(signer, [signed])
    } else {
      if (held.some((vote) => vote.statement.value === statement.value)) return
      this.equivocation(held[0] as SignedStatement, signed)
      if (held.length >= VOTES_PER_VALIDATOR_STEP_MAX) return
      held.push(signed)
    }
    this.evaluate()
  }

  // --- the rules -----------------------------------------------------------------------------------

  /** The power of the validators with a vote for `value` in `table` (undefined: any vote). */
  private power (table: Map<Address, SignedStatement[]>, value: string | null | undefined): bigint {
    let sum = 0n
    for (const [address, votes] of table) if (value === undefined || votes.some((vote) => vote.statement.value === value)) sum += this.powerOf.get(address) ?? 0n
    return sum
  }

  private valid (proposal: Proposal): boolean {
    const known = this.validity.get(proposal.hash)
    if (known !== undefined) return known
    let valid = true
    try {
      this.ledger.chain().check(proposal.block, this.requireEnv().now())
    } catch (error) {
      if (!(error instanceof LedgerError)) throw error
      valid = false
      this.counters.invalidProposals++
      if (proposal.signed !== null) {
        const proposer = nodeIdFromPublicKey(proposal.signed.publicKey)
        this.env?.log.warn({ height: this.height, proposer, code: error.code, reason: error.message }, 'invalid proposal')
        // The proposer signed it: it is to blame however many hops it came.
        this.init.penalize?.(proposer, 'protocol_violation', `invalid proposal: ${error.message}`)
      }
    }
    this.validity.set(proposal.hash, valid)
    return valid
  }

  /** Applies every rule of Algorithm 1 that holds, until none does. */
  private evaluate (): void {
    for (let guard = 0; guard < 16 && this.env !== null; guard++) {
      if (!this.applyOneRule()) return
    }
  }

  private applyOneRule (): boolean {
    const supermajority = (power: bigint): boolean => isSupermajority(power, this.total)
    const current = this.roundOf(this.round)
    const proposal = current.proposal
    // Decide: a proposal of any round with precommits from 2/3 for it.
    for (const [round, votes] of this.rounds) {
      const candidate = votes.proposal
      if (candidate !== null && supermajority(this.power(votes.precommits, candidate.hash)) && this.valid(candidate)) {
        this.commit(round, candidate, votes)
        return false
      }
    }
    // Round skip: messages from more than 1/3 of the power at a later round.
    for (const [round, votes] of this.rounds) {
      if (round <= this.round) continue
      const senders = new Set([...votes.prevotes.keys(), ...votes.precommits.keys()])
      if (votes.proposal?.signed != null) senders.add(statementSigner(votes.proposal.signed))
      let power = 0n
      for (const sender of senders) power += this.powerOf.get(sender) ?? 0n
      if (isOneThird(power, this.total)) {
        this.clearTimers()
        this.startRound(round)
        return true
      }
    }
    if (this.step === 'propose' && proposal !== null) {
      if (proposal.polRound === -1) {
        const accept = this.valid(proposal) && (this.lockedRound === -1 || this.lockedBlock?.hash === proposal.hash)
        this.castVote('prevote', accept ? proposal.hash : null)
        return true
      }
      if (proposal.polRound >= 0 && proposal.polRound < this.round && supermajority(this.power(this.roundOf(proposal.polRound).prevotes, proposal.hash))) {
        const accept = this.valid(proposal) && (this.lockedRound <= proposal.polRound || this.lockedBlock?.hash === proposal.hash)
        this.castVote('prevote', accept ? proposal.hash : null)
        return true
      }
    }
    if (this.step === 'prevote' && !current.prevoteWaitSet && supermajority(this.power(current.prevotes, undefined))) {
      current.prevoteWaitSet = true
      const { height, round } = this
      this.schedule(this.timeouts.prevoteMs + round * this.timeouts.roundDeltaMs, () => {
        if (this.height === height && this.round === round && this.step === 'prevote') this.castVote('precommit', null)
      })
    }
    if ((this.step === 'prevote' || this.step === 'precommit') && proposal !== null && !current.polSeen && supermajority(this.power(current.prevotes, proposal.hash)) && this.valid(proposal)) {
      current.polSeen = true
      if (this.step === 'prevote') {
        this.lockedRound = this.round
        this.lockedBlock = proposal
        this.castVote('precommit', proposal.hash)
      }
      this.validRound = this.round
      this.validBlock = proposal
      return true
    }
    if (this.step === 'prevote' && supermajority(this.power(current.prevotes, null))) {
      this.castVote('precommit', null)
      return true
    }
    if (!current.precommitWaitSet && supermajority(this.power(current.precommits, undefined))) {
      current.precommitWaitSet = true
      const { height, round } = this
      this.schedule(this.timeouts.precommitMs + round * this.timeouts.roundDeltaMs, () => {
        if (this.height === height && this.round === round) this.startRound(round + 1)
      })
    }
    return false
  }

  private commit (round: number, proposal: Proposal, votes: RoundVotes): void {
    const env = this.requireEnv()
    const precommits = [...votes.precommits.values()].flat()
      .filter((vote) => vote.statement.value === proposal.hash)
      .map((vote) => ({ publicKey: vote.publicKey, signature: vote.signature }))
    const certificate: CommitCertificate = { height: this.height, round, block: proposal.hash, precommits }
    env.disk.put(COMMIT_KEY + proposal.hash, encodeCanonical(certificate))
    this.lastCommitted = { height: this.height, certificate }
    this.clearTimers()
    this.step = 'waiting'
    try {
      this.ledger.addBlock(proposal.block)
      this.counters.commits++
    } catch (error) {
      // Precommits from 2/3 of the power for a block this node finds invalid: more than 1/3 is faulty.
      env.log.error({ height: this.height, reason: (error as Error).message }, 'a committed block was refused')
      this.schedule(this.timeouts.commitWaitMs, () => { this.enterHeight() })
    }
  }

  /**
   * A precommit for the block this node committed last, arriving after the commit: it joins that
   * block's certificate, so the next block's `lastCommit` names every validator that took part
   * (downtime counts the ones it leaves out) and not just the first 2/3 to answer.
   */
  private lateForLastCommit (signed: SignedStatement): void {
    const last = this.lastCommitted
    const statement = signed.statement
    if (last === null || statement.step !== 'precommit' || statement.height !== last.height || statement.round !== last.certificate.round || statement.value !== last.certificate.block) return
    if (last.certificate.precommits.some((precommit) => toHex(precommit.publicKey) === toHex(signed.publicKey))) return
    const signer = statementSigner(signed)
    if (!this.ledger.chain().state().validatorsAt(last.height).some((validator) => validator.address === signer)) return
    last.certificate = { ...last.certificate, precommits: [...last.certificate.precommits, { publicKey: signed.publicKey, signature: signed.signature }] }
    this.env?.disk.put(COMMIT_KEY + last.certificate.block, encodeCanonical(last.certificate))
  }

  // --- evidence ------------------------------------------------------------------------------------

  private equivocation (first: SignedStatement, second: SignedStatement): void {
    const env = this.requireEnv()
    const offender = statementSigner(first)
    const key = `${offender}/${first.statement.height}/${first.statement.round}/${first.statement.step}`
    if (this.reported.has(key)) return
    this.reported.add(key)
    this.counters.equivocationsSeen++
    env.log.warn({ offender, height: first.statement.height, round: first.statement.round, step: first.statement.step }, 'equivocation seen')
    this.init.penalize?.(nodeIdFromPublicKey(first.publicKey), 'protocol_violation', `equivocation at ${first.statement.height}/${first.statement.round}/${first.statement.step}`)
    const signer = this.init.key
    if (signer !== null && this.ledger.submitEvidence(signer, first, second)) this.counters.evidenceSubmitted++
  }

  // --- timers --------------------------------------------------------------------------------------

  private schedule (afterMs: number, fire: () => void): void {
    const env = this.requireEnv()
    this.timers.push(env.setTimer(afterMs, fire))
  }

  private clearTimers (): void {
    for (const timer of this.timers) this.env?.clearTimer(timer)
    this.timers = []
  }

  /** The prevotes behind this node's re-proposal in the current round, re-sent with it. */
  private polProof: PosVoteMessage[] = []

  /** Own messages of this height to re-send: the newest few. */
  private remember (message: Message): void {
    this.own.push(message)
    if (this.own.length > 4) this.own.shift()
  }

  private rebroadcast (): void {
    const env = this.env
    if (env === null) return
    for (const message of this.own) this.init.net.broadcast(CONSENSUS_TOPIC, message)
    for (const message of this.polProof) this.init.net.broadcast(CONSENSUS_TOPIC, message)
    this.rebroadcastTimer = env.setTimer(this.timeouts.rebroadcastMs, () => { this.rebroadcast() })
  }

  protected requireEnv (): Env {
    if (this.env === null) throw new Error('consensus used before start')
    return this.env
  }
}
