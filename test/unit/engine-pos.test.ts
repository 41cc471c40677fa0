/**
 * PoS behind the chain store: the compliance suite, then commit certificates (more than 2/3 of
 * the power, distinct validators, the right block and round), the header rules (the parent's
 * certificate, a validator proposer and its signature, time), finality (only the head is
 * extended), `ChainStore.check`, and downtime counted from the certificates blocks carry.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { keyPairFromSeed, sha256, sign, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  ChainStore, LedgerError, PosEngine, ZERO_HASH, addressFromPublicKey, blockContext, blockHash, posSealSchema, sealingHash, signStatement, signTx, txRootOf, verifyCommit,
  type Address, type Block, type BlockHeader, type CommitCertificate, type GenesisSpec, type PosSeal, type SignedTx, type StakingParams, type TxBody, type ValidatorEntry
} from '../../src/ledger/index.js'
import { engineCompliance } from '../support/engine-compliance.js'
import { MemoryDisk } from '../support/memory-disk.js'

const CHAIN = 'synod-pos-unit'
/** Four genesis validators and one outsider. */
const keys: Ed25519KeyPair[] = Array.from({ length: 5 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(0x70 + index))))
const addresses: Address[] = keys.map((key) => addressFromPublicKey(key.publicKey))
const OUTSIDER = 4
const addr = (who: number): Address => addresses[who] as Address
const key = (who: number): Ed25519KeyPair => keys[who] as Ed25519KeyPair
const keyOf = (address: Address): Ed25519KeyPair => key(addresses.indexOf(address))

const stakingParams: StakingParams = {
  epochBlocks: 100,
  validatorsMax: 10,
  validatorStakeMin: 100n,
  unbondingBlocks: 50,
  slashPerMille: 100,
  jailBlocks: 3,
  downtimeWindowBlocks: 10,
  downtimeMissedMax: 2
}

function genesis (stakes: bigint[] = [1_000n, 1_000n, 1_000n, 1_000n], overrides: Partial<StakingParams> = {}): GenesisSpec {
  return {
    chainId: CHAIN,
    timeMs: 1_700_000_000_000,
    allocations: addresses.map((address) => ({ address, balance: 100_000n })),
    staking: { params: { ...stakingParams, ...overrides }, validators: stakes.map((stake, index) => ({ publicKey: key(index).publicKey, stake })) }
  }
}

function newChain (stakes?: bigint[], overrides?: Partial<StakingParams>): { chain: ChainStore, engine: PosEngine } {
  const engine = new PosEngine({ blockReward: 10n, futureTimeLimitMs: 30_000 })
  return { chain: new ChainStore({ genesis: genesis(stakes, overrides), engine, disk: new MemoryDisk() }), engine }
}

/** Precommits for `block` at (height, round) by `signers`. */
function certificate (height: number, block: string, signers: readonly Ed25519KeyPair[], round = 0): CommitCertificate {
  const statement = { chainId: CHAIN, height, round, step: 'precommit' as const, value: block }
  return {
    height,
    round,
    block,
    precommits: signers.map((signer) => {
      const signed = signStatement(statement, signer)
      return { publicKey: signed.publicKey, signature: signed.signature }
    })
  }
}

interface ProduceOptions {
  txs?: SignedTx[]
  afterMs?: number
  /** Validators whose precommits for the parent the block leaves out. */
  leaveOut?: Address[]
  /** Replaces the parent's certificate. */
  lastCommit?: CommitCertificate | null
  proposer?: Address
  /** Signs the seal (default: the proposer's key). */
  signer?: Ed25519KeyPair
  stateRoot?: string
}

/**
 * A sealed block on the chain's head: the parent's certificate signed by every validator that
 * signed it (but `leaveOut`), the state root from executing the block, the proposer's signature.
 */
function produce (chain: ChainStore, engine: PosEngine, options: ProduceOptions = {}): Block {
  const head = chain.head()
  const state = chain.state()
  const height = head.header.height + 1
  const leaveOut = new Set(options.leaveOut ?? [])
  const lastCommit = options.lastCommit !== undefined
    ? options.lastCommit
    : height === 1 ? null : certificate(head.header.height, head.hash, state.validatorsAt(head.header.height).filter((validator) => !leaveOut.has(validator.address)).map((validator) => keyOf(validator.address)))
  const proposer = options.proposer ?? (state.validators().find((validator) => !leaveOut.has(validator.address)) as ValidatorEntry).address
  const txs = options.txs ?? []
  const header: BlockHeader = {
    chainId: CHAIN,
    height,
    parent: head.hash,
    timeMs: head.header.timeMs + (options.afterMs ?? 1_000),
    txRoot: txRootOf(txs),
    stateRoot: ZERO_HASH,
    proposer,
    seal: { lastCommit, signature: new Uint8Array(64) } satisfies PosSeal
  }
  const undo = state.apply({ header, txs }, blockContext(engine, header, state))
  header.stateRoot = options.stateRoot ?? state.root()
  state.revert(undo)
  header.seal = { lastCommit, signature: sign(options.signer ?? keyOf(proposer), sealingHash({ ...header, seal: null })) } satisfies PosSeal
  return { header, txs }
}

/** Produces and adds `count` blocks. */
function extend (chain: ChainStore, engine: PosEngine, count: number, options: ProduceOptions = {}): Block[] {
  return Array.from({ length: count }, () => {
    const block = produce(chain, engine, options)
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    return block
  })
}

const tx = (chain: ChainStore, who: number, body: TxBody, nonceOffset = 0): SignedTx =>
  signTx({ chainId: CHAIN, publicKey: key(who).publicKey, nonce: chain.state().get(addr(who)).nonce + nonceOffset, fee: 1n, body }, key(who))

const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code
const isRefusal = (reason: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === 'LEDGER_BAD_BLOCK' && error.details.reason === reason

/** Adding `block` throws as `matches` says, and the head and state stay. */
function refused (chain: ChainStore, block: Block, matches: (error: unknown) => boolean, message?: string): void {
  const head = chain.head().hash
  const root = chain.state().root()
  assert.throws(() => chain.add(block, block.header.timeMs), matches, message)
  assert.equal(chain.head().hash, head)
  assert.equal(chain.state().root(), root)
}

engineCompliance('pos', {
  newChain: () => newChain(),
  produce: (chain, engine, afterMs = 1_000) => produce(chain, engine as PosEngine, { afterMs })
})

describe('PoS commit certificates (verifyCommit)', () => {
  const block = 'c'.repeat(64)
  const entries = (powers: bigint[]): ValidatorEntry[] => powers.map((power, index) => ({ address: addr(index), publicKey: key(index).publicKey, power }))
  const equal = entries([10n, 10n, 10n, 10n])

  it('accepts more than 2/3 of the power and returns the signers', () => {
    const signers = verifyCommit(certificate(7, block, [key(0), key(2), key(3)]), equal, CHAIN)
    assert.deepEqual([...signers].sort(), [addr(0), addr(2), addr(3)].sort())
    assert.equal(verifyCommit(certificate(7, block, keys.slice(0, 4)), equal, CHAIN).size, 4)
    assert.throws(() => verifyCommit(certificate(7, block, [key(0), key(1)]), equal, CHAIN), isRefusal('commit'), '2 of 4')
    const three = entries([5n, 5n, 5n])
    assert.throws(() => verifyCommit(certificate(7, block, [key(0), key(1)]), three, CHAIN), isRefusal('commit'), 'exactly 2/3 is not more than 2/3')
    assert.equal(verifyCommit(certificate(7, block, [key(0), key(1), key(2)]), three, CHAIN).size, 3)
  })

  it('weighs power, not the count of signers', () => {
    const unequal = entries([70n, 10n, 10n, 10n])
    assert.equal(verifyCommit(certificate(7, block, [key(0)]), unequal, CHAIN).size, 1, '70 of 100 from one validator')
    assert.throws(() => verifyCommit(certificate(7, block, [key(1), key(2), key(3)]), unequal, CHAIN), isRefusal('commit'), '30 of 100 from three validators')
    const edge = entries([2n, 1n, 1n, 1n, 1n]) // total 6: more than 2/3 is 5
    assert.throws(() => verifyCommit(certificate(7, block, [key(0), key(1), key(2)]), edge, CHAIN), isRefusal('commit'), '4 of 6')
    assert.equal(verifyCommit(certificate(7, block, [key(0), key(1), key(2), key(3)]), edge, CHAIN).size, 4, '5 of 6')
    assert.throws(() => verifyCommit(certificate(7, block, [key(1), key(2), key(3), key(4)]), edge, CHAIN), isRefusal('commit'), '4 of 6 from four validators')
  })

  it('refuses a duplicate signer, even when the rest would be short', () => {
    const twice = certificate(7, block, [key(0), key(1), key(1)])
    assert.throws(() => verifyCommit(twice, equal, CHAIN), (error) => isRefusal('commit')(error) && /two precommits/.test((error as Error).message))
    const padded = certificate(7, block, [key(0), key(1), key(2), key(2)])
    assert.throws(() => verifyCommit(padded, equal, CHAIN), isRefusal('commit'), 'a duplicate among enough signers is still refused')
  })

  it('refuses a non-validator\'s precommit', () => {
    assert.throws(() => verifyCommit(certificate(7, block, [key(0), key(1), key(2), key(OUTSIDER)]), equal, CHAIN), (error) => isRefusal('commit')(error) && /not a validator/.test((error as Error).message))
  })

  it('refuses precommits signed for another block, round, height or chain', () => {
    const good = certificate(7, block, [key(0), key(1), key(2)])
    const cases: Array<[string, CommitCertificate]> = [
      ['another block', { ...good, block: 'd'.repeat(64) }],
      ['another round', { ...good, round: 1 }],
      ['another height', { ...good, height: 8 }]
    ]
    for (const [what, bad] of cases) assert.throws(() => verifyCommit(bad, equal, CHAIN), isCode('LEDGER_BAD_SIGNATURE'), what)
    assert.throws(() => verifyCommit(good, equal, 'another-chain'), isCode('LEDGER_BAD_SIGNATURE'), 'another chain')
    const mixed = { ...good, precommits: [...good.precommits.slice(0, 2), ...certificate(7, block, [key(2)], 1).precommits] }
    assert.throws(() => verifyCommit(mixed, equal, CHAIN), isCode('LEDGER_BAD_SIGNATURE'), 'one precommit from another round')
    assert.equal(verifyCommit(certificate(7, block, [key(0), key(1), key(2)], 3), equal, CHAIN).size, 3, 'any one round, signed as such')
  })

  it('refuses a certificate against an empty set', () => {
    assert.throws(() => verifyCommit(certificate(7, block, [key(0)]), [], CHAIN), isRefusal('commit'))
  })
})

describe('PoS block headers', () => {
  it('seals with the schema the engine checks, and counts the parent\'s signers', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 1)
    const block = produce(chain, engine, { leaveOut: [addr(3)] })
    assert.equal(posSealSchema.safeParse(block.header.seal).success, true)
    assert.deepEqual([...(engine.signersOfParent(block.header) ?? [])].sort(), [addr(0), addr(1), addr(2)].sort())
    assert.equal(engine.signersOfParent(chain.head().header), null, 'the first block carries no certificate')
    assert.equal(engine.weightOf(block.header), 1n)
    assert.equal(engine.rewardAt(1), 10n)
  })

  it('refuses a lastCommit that certifies another block, another height, too little power, or is missing', () => {
    const { chain, engine } = newChain()
    const [first] = extend(chain, engine, 1) as [Block]
    const validators = keys.slice(0, 4)
    refused(chain, produce(chain, engine, { lastCommit: certificate(1, 'e'.repeat(64), validators) }), isRefusal('commit'), 'another block, well signed')
    refused(chain, produce(chain, engine, { lastCommit: certificate(2, blockHash(first.header), validators) }), isRefusal('commit'), 'another height')
    refused(chain, produce(chain, engine, { lastCommit: certificate(1, blockHash(first.header), validators.slice(0, 2)) }), isRefusal('commit'), '2 of 4')
    refused(chain, produce(chain, engine, { lastCommit: null }), isRefusal('commit'), 'missing')
    refused(chain, produce(chain, engine, { lastCommit: certificate(1, blockHash(first.header), [...validators.slice(0, 2), key(OUTSIDER)]) }), isRefusal('commit'), 'with an outsider')
    assert.equal(chain.add(produce(chain, engine, { leaveOut: [addr(0)] }), chain.head().header.timeMs + 1_000).status, 'head', '3 of 4 is enough')
  })

  it('refuses a certificate in the first block', () => {
    const { chain, engine } = newChain()
    refused(chain, produce(chain, engine, { lastCommit: certificate(1, chain.genesisHash, keys.slice(0, 4)) }), isRefusal('commit'))
    assert.equal(chain.head().hash, chain.genesisHash)
  })

  it('refuses a proposer that is not a validator, and a proposer signature by another key', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 2)
    refused(chain, produce(chain, engine, { proposer: addr(OUTSIDER) }), isRefusal('proposer'), 'an outsider signing its own block')
    refused(chain, produce(chain, engine, { proposer: addr(0), signer: key(1) }), isCode('LEDGER_BAD_SIGNATURE'), 'another validator\'s signature')
    const good = produce(chain, engine, { proposer: addr(2) })
    const seal = good.header.seal as PosSeal
    const flipped = seal.signature.slice()
    flipped[0] = (flipped[0] as number) ^ 1
    refused(chain, { ...good, header: { ...good.header, seal: { ...seal, signature: flipped } } }, isCode('LEDGER_BAD_SIGNATURE'), 'a flipped bit')
    assert.equal(chain.add(good, good.header.timeMs).status, 'head', 'any validator may propose')
  })

  it('refuses a time not after the parent\'s, or too far ahead of the clock', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 1)
    for (const afterMs of [0, -1]) refused(chain, produce(chain, engine, { afterMs }), isCode('LEDGER_BAD_TIME'), `${afterMs} ms after the parent`)
    const ahead = produce(chain, engine, { afterMs: 1_000 })
    assert.throws(() => chain.add(ahead, ahead.header.timeMs - 30_001), isCode('LEDGER_BAD_TIME'))
    assert.equal(chain.add(ahead, ahead.header.timeMs - 30_000).status, 'head', 'within the future limit')
  })

  it('refuses a block that does not extend the head: blocks are final', () => {
    const { chain, engine } = newChain()
    const first = produce(chain, engine, { afterMs: 1_000 })
    const sibling = produce(chain, engine, { afterMs: 2_000, proposer: addr(1) })
    assert.equal(chain.add(first, first.header.timeMs).status, 'head')
    refused(chain, sibling, isRefusal('not_final_head'))
    extend(chain, engine, 2)
    const stale = produce(chain, engine, { afterMs: 1_500 })
    extend(chain, engine, 1)
    refused(chain, stale, isRefusal('not_final_head'), 'a block on an older head')
    assert.equal(chain.head().header.height, 4)
  })
})

describe('PoS chain store', () => {
  it('check accepts a good block without moving the head or the state', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 2)
    const head = chain.head().hash
    const root = chain.state().root()
    const block = produce(chain, engine, { txs: [tx(chain, 0, { kind: 'transfer', to: addr(1), amount: 5n }), tx(chain, 1, { kind: 'bond', amount: 50n })] })
    chain.check(block, block.header.timeMs)
    assert.equal(chain.head().hash, head)
    assert.equal(chain.state().root(), root)
    assert.equal(chain.state().stakeOf(addr(1)).bonded, 1_000n)
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    assert.equal(chain.state().root(), block.header.stateRoot)
    assert.equal(chain.state().stakeOf(addr(1)).bonded, 1_050n)
  })

  it('check and add refuse a wrong state root, leaving the state root unchanged', () => {
    const { chain, engine } = newChain()
    extend(chain, engine, 1)
    const root = chain.state().root()
    const bad = produce(chain, engine, { txs: [tx(chain, 0, { kind: 'bond', amount: 10n })], stateRoot: 'e'.repeat(64) })
    assert.throws(() => { chain.check(bad, bad.header.timeMs) }, isRefusal('state_root'))
    assert.equal(chain.state().root(), root)
    refused(chain, bad, isRefusal('state_root'))
    assert.equal(chain.state().stakeOf(addr(0)).bonded, 1_000n)
  })

  it('check refuses a block that is not on the head, and a bad seal, like add', () => {
    const { chain, engine } = newChain()
    const early = produce(chain, engine)
    extend(chain, engine, 1)
    assert.throws(() => { chain.check(early, early.header.timeMs) }, isRefusal('not_head'))
    const block = produce(chain, engine)
    assert.throws(() => { chain.check({ ...block, header: { ...block.header, timeMs: block.header.timeMs + 1 } }, block.header.timeMs + 1) }, isCode('LEDGER_BAD_SIGNATURE'))
    assert.equal(chain.head().header.height, 1)
  })

  it('replays a stored PoS chain to the same state, downtime included', () => {
    const disk = new MemoryDisk()
    const engine = new PosEngine({ blockReward: 10n, futureTimeLimitMs: 30_000 })
    const chain = new ChainStore({ genesis: genesis(), engine, disk })
    extend(chain, engine, 2)
    extend(chain, engine, 2, { leaveOut: [addr(2)], txs: [] })
    extend(chain, engine, 1, { txs: [tx(chain, OUTSIDER, { kind: 'bond', amount: 70n })] })
    assert.equal(chain.state().stakeOf(addr(2)).candidate?.missed, 2)
    const replayed = new ChainStore({ genesis: genesis(), engine, disk })
    assert.equal(replayed.load(), 5)
    assert.equal(replayed.head().hash, chain.head().hash)
    assert.equal(replayed.state().root(), chain.state().root())
    assert.deepEqual(replayed.state().stakeEntries(), chain.state().stakeEntries())
  })

  it('counts downtime from the certificates: a validator left out misses blocks and is jailed', () => {
    const { chain, engine } = newChain()
    const absent = addr(3)
    extend(chain, engine, 1, { leaveOut: [absent] })
    assert.equal(chain.state().stakeOf(absent).candidate?.missed, 0)
    extend(chain, engine, 1, { leaveOut: [absent] })
    assert.equal(chain.state().stakeOf(absent).candidate?.missed, 1)
    assert.equal(chain.state().stakeOf(addr(0)).candidate?.missed, 0)
    extend(chain, engine, 1, { leaveOut: [absent] })
    assert.equal(chain.state().stakeOf(absent).candidate?.missed, 2)
    extend(chain, engine, 1, { leaveOut: [absent] }) // 4: the third miss
    assert.equal(chain.state().stakeOf(absent).candidate?.jailedUntil, 4 + stakingParams.jailBlocks)
    assert.deepEqual(chain.state().validators().map((validator) => validator.address).sort(), [addr(0), addr(1), addr(2)].sort())
    assert.equal(chain.state().validatorsAt(4).length, 4, 'block 4 was signed by the four')
    extend(chain, engine, 2, { leaveOut: [absent] }) // the jailed validator is no longer expected to sign
    assert.equal(chain.state().stakeOf(absent).candidate?.missed, 0)
    const short = produce(chain, engine, { leaveOut: [absent, addr(0)] })
    refused(chain, short, isRefusal('commit'), '2 of the 3 left is not enough')
    // After its term, it unjails; it is back in the set at the next election only.
    extend(chain, engine, 1, { txs: [tx(chain, 3, { kind: 'unjail' })] })
    assert.equal(chain.state().stakeOf(absent).candidate?.jailedUntil, 0)
    assert.equal(chain.state().validators().length, 3)
  })

  it('checks a certificate against the set that signed the parent across an election', () => {
    const { chain, engine } = newChain(undefined, { epochBlocks: 4 })
    const outsider = addr(OUTSIDER)
    extend(chain, engine, 1, { txs: [tx(chain, OUTSIDER, { kind: 'register' }), tx(chain, OUTSIDER, { kind: 'bond', amount: 2_000n }, 1)] })
    extend(chain, engine, 3) // 4: the outsider is elected
    assert.ok(chain.state().validators().some((validator) => validator.address === outsider))
    assert.ok(!chain.state().validatorsAt(4).some((validator) => validator.address === outsider))
    const four = blockHash(chain.head().header)
    const old = keys.slice(0, 4)
    refused(chain, produce(chain, engine, { lastCommit: certificate(4, four, [...old.slice(0, 2), key(OUTSIDER)]) }), isRefusal('commit'), 'the new validator did not sign block 4')
    extend(chain, engine, 1, { lastCommit: certificate(4, four, old.slice(0, 3)) }) // 5
    const five = blockHash(chain.head().header)
    // Now 6000 of power: the outsider's 2000 counts, and three old validators alone (3000) do not make it.
    refused(chain, produce(chain, engine, { lastCommit: certificate(5, five, old.slice(0, 3)) }), isRefusal('commit'), '3000 of 6000')
    refused(chain, produce(chain, engine, { lastCommit: certificate(5, five, [key(OUTSIDER), ...old.slice(0, 2)]) }), isRefusal('commit'), '4000 of 6000')
    extend(chain, engine, 1, { lastCommit: certificate(5, five, [key(OUTSIDER), ...old.slice(0, 3)]) })
    assert.equal(chain.head().header.height, 6)
    assert.equal(chain.state().stakeOf(addr(3)).candidate?.missed, 2, 'validator 3 signed neither block 4 nor block 5')
    assert.equal(chain.state().stakeOf(outsider).candidate?.missed, 0, 'the outsider was not expected to sign block 4')
  })
})
