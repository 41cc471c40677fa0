/**
 * Staking on the ledger state: bond, unbond and withdraw; candidacy and the epoch election; DPoS
 * approval votes; equivocation evidence and slashing; downtime jailing; and that every block of
 * staking transactions undoes exactly (the state root covers the staking records).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { keyPairFromSeed, sha256, toHex, type Ed25519KeyPair } from '../../src/core/index.js'
import {
  AccountTree, LedgerError, LedgerState, UNBONDINGS_PER_ACCOUNT_MAX, VOTES_PER_VOTER_MAX, ZERO_HASH, addressFromPublicKey, checkTx, signStatement, signTx, txRootOf,
  type Address, type Block, type BlockUndo, type GenesisSpec, type SignedStatement, type SignedTx, type StakingParams, type StatementStep, type TxBody
} from '../../src/ledger/index.js'

const CHAIN = 'synod-staking-test'
const keys: Ed25519KeyPair[] = Array.from({ length: 6 }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(0x30 + index))))
const addresses: Address[] = keys.map((key) => addressFromPublicKey(key.publicKey))
/** Four genesis validators and two plain accounts. */
const V0 = 0
const V1 = 1
const V2 = 2
const V3 = 3
const A = 4
const B = 5
const addr = (who: number): Address => addresses[who] as Address
const key = (who: number): Ed25519KeyPair => keys[who] as Ed25519KeyPair
const PROPOSER = 'f'.repeat(40)
const BALANCE = 10_000n
const GENESIS_STAKES = [1_000n, 900n, 800n, 700n]

const params: StakingParams = {
  epochBlocks: 5,
  validatorsMax: 3,
  validatorStakeMin: 100n,
  unbondingBlocks: 10,
  slashPerMille: 100,
  jailBlocks: 3,
  downtimeWindowBlocks: 10,
  downtimeMissedMax: 2
}

function stakingGenesis (overrides: Partial<StakingParams> = {}, stakes: bigint[] = GENESIS_STAKES): GenesisSpec {
  return {
    chainId: CHAIN,
    timeMs: 0,
    allocations: addresses.map((address) => ({ address, balance: BALANCE })),
    staking: { params: { ...params, ...overrides }, validators: stakes.map((stake, index) => ({ publicKey: key(index).publicKey, stake })) }
  }
}

const plainGenesis = (): GenesisSpec => ({ chainId: CHAIN, timeMs: 0, allocations: addresses.map((address) => ({ address, balance: BALANCE })) })

const bond = (amount: bigint): TxBody => ({ kind: 'bond', amount })
const unbond = (amount: bigint): TxBody => ({ kind: 'unbond', amount })
const withdraw: TxBody = { kind: 'withdraw' }
const register: TxBody = { kind: 'register' }
const unjail: TxBody = { kind: 'unjail' }
const vote = (...producers: Address[]): TxBody => ({ kind: 'vote', producers })

const X = 'a'.repeat(64)
const Y = 'b'.repeat(64)

function statement (who: number, height: number, value: string | null, round = 0, step: StatementStep = 'precommit', chainId = CHAIN): SignedStatement {
  return signStatement({ chainId, height, round, step, value }, key(who))
}

/** Two conflicting precommits by `who` at (height, round): slashing evidence. */
const equivocation = (who: number, height: number, round = 0): TxBody => ({ kind: 'evidence', first: statement(who, height, X, round), second: statement(who, height, Y, round) })

type Spec = [who: number, body: TxBody, fee?: bigint]

const isRefusal = (reason: string) => (error: unknown): boolean =>
  error instanceof LedgerError && error.code === 'LEDGER_BAD_BLOCK' && error.details.reason === reason

const isCode = (code: string) => (error: unknown): boolean => error instanceof LedgerError && error.code === code

/** Total value: balances, bonded stake and unbonding entries. */
function supply (state: LedgerState): bigint {
  let total = 0n
  for (const [, account] of state.entries()) total += account.balance
  for (const [, record] of state.stakeEntries()) {
    total += record.bonded
    for (const entry of record.unbonding) total += entry.amount
  }
  return total
}

/** What equivocation slashing burned, by the slash records. */
function burned (state: LedgerState): bigint {
  let total = 0n
  for (const [, record] of state.stakeEntries()) {
    for (const slash of record.candidate?.slashes ?? []) if (slash.offence === 'equivocation') total += slash.amount
  }
  return total
}

/** A ledger state driven block by block at consecutive heights, with nonces taken from the state. */
class Run {
  readonly state: LedgerState
  height = 0

  constructor (genesis: GenesisSpec = stakingGenesis()) {
    this.state = LedgerState.fromGenesis(genesis)
  }

  txs (specs: Spec[]): SignedTx[] {
    const nonces = new Map<number, number>()
    return specs.map(([who, body, fee = 1n]) => {
      const nonce = nonces.get(who) ?? this.state.get(addr(who)).nonce
      nonces.set(who, nonce + 1)
      return signTx({ chainId: CHAIN, publicKey: key(who).publicKey, nonce, fee, body }, key(who))
    })
  }

  block (txs: SignedTx[]): Block {
    const height = this.height + 1
    return { header: { chainId: CHAIN, height, parent: ZERO_HASH, timeMs: height * 1_000, txRoot: txRootOf(txs), stateRoot: ZERO_HASH, proposer: PROPOSER, seal: null }, txs }
  }

  /** Applies the next block; `signers` is the set of validators whose precommits for the parent it carries (null: not counted). */
  next (specs: Spec[] = [], signers: Address[] | null = null): BlockUndo {
    const undo = this.state.apply(this.block(this.txs(specs)), { reward: 0n, signersOfParent: signers === null ? null : new Set(signers) })
    this.height++
    return undo
  }

  /** The next block, with every validator that signed the head signing except `left`. */
  nextMissing (left: number[], specs: Spec[] = []): BlockUndo {
    const leftOut = new Set(left.map(addr))
    return this.next(specs, this.state.validatorsAt(this.height).map((validator) => validator.address).filter((address) => !leftOut.has(address)))
  }

  /** The next block is refused for `reason`, and the state does not change. */
  refused (specs: Spec[], reason: string, signers: Address[] | null = null): void {
    const root = this.state.root()
    const block = this.block(this.txs(specs))
    assert.throws(() => this.state.apply(block, { reward: 0n, signersOfParent: signers === null ? null : new Set(signers) }), isRefusal(reason), `refused at height ${block.header.height} for ${reason}`)
    assert.equal(this.state.root(), root, 'a refused block changes nothing')
  }

  /** Empty blocks until the head is at `height`. */
  until (height: number): void {
    while (this.height < height) this.next()
  }

  stake (who: number): ReturnType<LedgerState['stakeOf']> {
    return this.state.stakeOf(addr(who))
  }

  balance (who: number): bigint {
    return this.state.get(addr(who)).balance
  }

  /** The validators as (address, power), in the order the state keeps them. */
  set (of: readonly { address: Address, power: bigint }[] = this.state.validators()): Array<[Address, bigint]> {
    return of.map((validator) => [validator.address, validator.power])
  }
}

describe('staking: bond, unbond, withdraw', () => {
  it('bond moves amount plus fee from the balance into bonded stake', () => {
    const run = new Run()
    run.next([[A, bond(300n), 2n], [V0, bond(50n), 1n]])
    assert.deepEqual(run.state.get(addr(A)), { balance: BALANCE - 302n, nonce: 1 })
    assert.equal(run.stake(A).bonded, 300n)
    assert.equal(run.stake(A).candidate, null, 'bonding does not register')
    assert.equal(run.stake(V0).bonded, 1_050n)
    assert.equal(run.balance(V0), BALANCE - 51n)
    assert.equal(run.state.get(PROPOSER).balance, 3n, 'the proposer gets the fees, not the bonded amounts')
    run.refused([[B, bond(BALANCE)]], 'overspend')
    assert.throws(() => checkTx(run.txs([[B, bond(0n)]])[0], CHAIN), isCode('LEDGER_MALFORMED'), 'bonding nothing')
  })

  it('unbond moves stake into an entry released after unbondingBlocks; withdraw refuses before the release and credits after', () => {
    const run = new Run()
    run.next([[A, bond(300n)]])
    run.next([[A, unbond(100n)]])
    assert.equal(run.stake(A).bonded, 200n)
    assert.deepEqual(run.stake(A).unbonding, [{ amount: 100n, releaseHeight: 2 + params.unbondingBlocks }])
    assert.equal(run.balance(A), BALANCE - 302n, 'unbonding pays nothing back yet')
    run.refused([[A, withdraw]], 'nothing_released')
    run.until(10)
    run.refused([[A, withdraw]], 'nothing_released') // height 11, one short of the release
    run.next()
    run.next([[A, withdraw]]) // height 12
    assert.equal(run.balance(A), BALANCE - 302n + 100n - 1n)
    assert.deepEqual(run.stake(A).unbonding, [])
    assert.equal(run.stake(A).bonded, 200n)
    run.refused([[A, withdraw]], 'nothing_released')
  })

  it('withdraw takes only the released entries', () => {
    const run = new Run()
    run.next([[A, bond(500n)]])
    run.next([[A, unbond(100n)]]) // releases at 12
    run.until(3)
    run.next([[A, unbond(50n)]]) // height 4, releases at 14
    run.until(11)
    const before = run.balance(A)
    run.next([[A, withdraw]]) // 12
    assert.equal(run.balance(A), before + 100n - 1n)
    assert.deepEqual(run.stake(A).unbonding, [{ amount: 50n, releaseHeight: 14 }])
    run.refused([[A, withdraw]], 'nothing_released') // 13
    run.next()
    run.next([[A, withdraw]]) // 14
    assert.equal(run.balance(A), before + 150n - 2n)
    assert.deepEqual(run.stake(A), { bonded: 350n, unbonding: [], candidate: null, votes: [], votesReceived: 0n })
  })

  it('leaves no staking record behind once everything is withdrawn', () => {
    const run = new Run()
    const stakeRoot = run.state.stakeRoot()
    run.next([[A, bond(100n)]])
    run.next([[A, unbond(100n)]])
    assert.notEqual(run.state.stakeRoot(), stakeRoot)
    run.until(11)
    run.next([[A, withdraw]])
    assert.equal(run.state.stakeEntries().some(([address]) => address === addr(A)), false)
    assert.equal(run.state.stakeRoot(), stakeRoot)
    assert.equal(run.balance(A), BALANCE - 3n, 'three fees')
  })

  it('refuses to unbond more than is bonded', () => {
    const run = new Run()
    run.next([[A, bond(200n)]])
    assert.throws(() => run.state.apply(run.block(run.txs([[A, unbond(201n)]])), { reward: 0n }), (error) => isRefusal('overspend')(error) && /unbonds 201 of 200/.test((error as Error).message))
    run.refused([[B, unbond(1n)]], 'overspend')
    run.refused([[A, unbond(150n)], [A, unbond(51n)]], 'overspend')
    run.next([[A, unbond(200n)]])
    assert.equal(run.stake(A).bonded, 0n)
  })

  it(`refuses more than ${UNBONDINGS_PER_ACCOUNT_MAX} unbonding entries, and takes more once some are withdrawn`, () => {
    const run = new Run()
    run.next([[A, bond(1_000n)]])
    run.next(Array.from({ length: UNBONDINGS_PER_ACCOUNT_MAX }, (): Spec => [A, unbond(1n)]))
    assert.equal(run.stake(A).unbonding.length, UNBONDINGS_PER_ACCOUNT_MAX)
    run.refused([[A, unbond(1n)]], 'limit')
    run.until(11)
    run.next([[A, withdraw]])
    assert.equal(run.stake(A).unbonding.length, 0)
    run.next([[A, unbond(1n)]])
    assert.equal(run.stake(A).unbonding.length, 1)
    assert.equal(run.stake(A).bonded, 1_000n - BigInt(UNBONDINGS_PER_ACCOUNT_MAX) - 1n)
  })
})

describe('staking: candidates and the epoch election', () => {
  it('elects the top validatorsMax at genesis', () => {
    const run = new Run()
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V1), 900n], [addr(V2), 800n]], 'V3 is below the cut')
    assert.deepEqual(run.state.validators().map((validator) => toHex(validator.publicKey)), [V0, V1, V2].map((who) => toHex(key(who).publicKey)))
    assert.deepEqual(run.set(run.state.validatorsAt(0)), run.set())
    assert.deepEqual(run.set(run.state.validatorsAt(1)), run.set())
    assert.notEqual(run.stake(V3).candidate, null, 'an unelected genesis validator is still a candidate')
  })

  it('refuses a genesis validator listed twice or without stake', () => {
    const twice = stakingGenesis()
    twice.staking?.validators.push({ publicKey: key(V0).publicKey, stake: 5n })
    assert.throws(() => LedgerState.fromGenesis(twice), isCode('LEDGER_CONFIG_INVALID'))
    assert.throws(() => LedgerState.fromGenesis(stakingGenesis({}, [1_000n, 0n])), isCode('LEDGER_CONFIG_INVALID'))
  })

  it('register makes a candidate, once', () => {
    const run = new Run()
    run.next([[A, register]])
    assert.deepEqual(run.stake(A).candidate, { publicKey: key(A).publicKey, jailedUntil: 0, tombstoned: false, missed: 0, slashes: [] })
    assert.equal(run.stake(A).bonded, 0n)
    assert.equal(run.balance(A), BALANCE - 1n, 'registering costs the fee only')
    run.refused([[A, register]], 'registered')
    run.refused([[V0, register]], 'registered')
  })

  it('re-elects at each epoch boundary: top by bonded stake, at least the minimum; validatorsAt keeps the old set for the boundary block', () => {
    const run = new Run()
    const genesisSet = run.set()
    run.next([[A, register], [A, bond(950n)], [B, register], [B, bond(50n)]])
    run.until(4)
    assert.deepEqual(run.set(), genesisSet, 'no election inside an epoch')
    run.next() // 5: the boundary
    const elected: Array<[Address, bigint]> = [[addr(V0), 1_000n], [addr(A), 950n], [addr(V1), 900n]]
    assert.deepEqual(run.set(), elected)
    assert.deepEqual(run.set(run.state.validatorsAt(5)), genesisSet, 'the boundary block was signed by the old set')
    assert.deepEqual(run.set(run.state.validatorsAt(6)), elected)
    run.next([[V0, unbond(950n)]]) // 6: V0 falls below validatorStakeMin
    assert.deepEqual(run.set(), elected, 'unbonding leaves the set at the next epoch only')
    run.until(10)
    assert.deepEqual(run.set(), [[addr(A), 950n], [addr(V1), 900n], [addr(V2), 800n]])
    assert.deepEqual(run.set(run.state.validatorsAt(10)), elected)
    run.next()
    assert.deepEqual(run.set(run.state.validatorsAt(10)), elected, 'the head is still signed by the set before it')
    assert.deepEqual(run.set(run.state.validatorsAt(11)), run.set())
  })

  it('breaks ties at the cut by address', () => {
    const run = new Run()
    run.next([[A, register], [A, bond(800n)]])
    run.until(5)
    const [first, second] = addr(V2) < addr(A) ? [V2, A] : [A, V2]
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V1), 900n], [addr(first), 800n]], `${addr(second)} loses the tie`)
  })

  it('orders an uncut set by stake then address, and leaves out candidates below validatorStakeMin', () => {
    const run = new Run(stakingGenesis({ validatorsMax: 10 }, [1_000n, 700n, 700n, 900n]))
    const [low, high] = addr(V1) < addr(V2) ? [V1, V2] : [V2, V1]
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V3), 900n], [addr(low), 700n], [addr(high), 700n]])
    run.next([[A, register], [A, bond(100n)], [B, register], [B, bond(99n)]])
    run.until(5)
    assert.deepEqual(run.set().map(([address]) => address), [addr(V0), addr(V3), addr(low), addr(high), addr(A)], 'B, with 99 bonded, is below the minimum')
  })
})

describe('staking: approval votes', () => {
  it('weighs each voted producer by the voters\' bonded stake, and follows votes, bonds and unbonds', () => {
    const run = new Run()
    // Genesis validators back themselves with their own stake; the rest comes from voters.
    const [self0, self1, self2] = [run.stake(V0).votesReceived, run.stake(V1).votesReceived, run.stake(V2).votesReceived]
    assert.equal(self0, run.stake(V0).bonded, 'a genesis validator votes for itself')
    assert.deepEqual(run.stake(V0).votes, [addr(V0)])
    run.next([[A, bond(500n)], [B, bond(300n)], [A, vote(addr(V0), addr(V1))], [B, vote(addr(V1))]])
    assert.equal(run.stake(V0).votesReceived, self0 + 500n)
    assert.equal(run.stake(V1).votesReceived, self1 + 800n)
    assert.equal(run.stake(V2).votesReceived, self2)
    assert.deepEqual(run.stake(A).votes, [addr(V0), addr(V1)])
    run.next([[A, vote(addr(V2))]])
    assert.deepEqual([run.stake(V0).votesReceived, run.stake(V1).votesReceived, run.stake(V2).votesReceived], [self0, self1 + 300n, self2 + 500n], 'a new vote moves the weight')
    run.next([[A, bond(100n)]])
    assert.equal(run.stake(V2).votesReceived, self2 + 600n, 'bonding more adds to the voted producers')
    run.next([[A, unbond(200n)]])
    assert.equal(run.stake(V2).votesReceived, self2 + 400n, 'unbonding takes from them')
    run.next([[A, vote()]])
    assert.equal(run.stake(V2).votesReceived, self2, 'an empty list withdraws the votes')
    assert.deepEqual(run.stake(A).votes, [])
    assert.equal(run.stake(V1).votesReceived, self1 + 300n, 'other voters\' weight stays')
  })

  it('counts a bond made after a vote in the same block, and a self-vote', () => {
    const run = new Run()
    const [self0, self3] = [run.stake(V0).bonded, run.stake(V3).bonded]
    run.next([[V0, vote(addr(V0), addr(V3))], [B, vote(addr(V3))], [B, bond(70n)]])
    assert.equal(run.stake(V0).votesReceived, self0, 'V0 moved its self-vote to a list that still holds itself')
    assert.equal(run.stake(V3).votesReceived, self3 + self0 + 70n)
    run.next([[V0, bond(5n)]])
    assert.equal(run.stake(V0).votesReceived, self0 + 5n)
    assert.equal(run.stake(V3).votesReceived, self3 + self0 + 75n)
  })

  it('refuses a vote for a non-candidate', () => {
    const run = new Run()
    run.next([[A, bond(10n)]])
    run.refused([[B, vote(addr(V0), addr(A))]], 'not_candidate')
    run.refused([[B, vote('1'.repeat(40))]], 'not_candidate')
    run.next([[A, register]])
    run.next([[B, vote(addr(V0), addr(A))]])
    assert.deepEqual(run.stake(B).votes, [addr(V0), addr(A)])
  })

  it(`refuses more than ${VOTES_PER_VOTER_MAX} producers, or one listed twice, before the state (checkTx)`, () => {
    const run = new Run()
    const many = Array.from({ length: VOTES_PER_VOTER_MAX + 1 }, (_, index) => toHex(sha256(Uint8Array.of(index))).slice(0, 40))
    const [tooMany, enough, twice] = run.txs([[A, vote(...many)], [A, vote(...many.slice(0, VOTES_PER_VOTER_MAX))], [A, vote(addr(V0), addr(V0))]])
    assert.throws(() => checkTx(tooMany, CHAIN), isCode('LEDGER_MALFORMED'))
    assert.equal(checkTx(enough, CHAIN).body.kind, 'vote')
    assert.throws(() => checkTx(twice, CHAIN), isCode('LEDGER_MALFORMED'))
  })
})

describe('staking: equivocation evidence', () => {
  it('burns slashPerMille of bonded and unreleased unbonding stake, tombstones, and drops the validator from the set at once', () => {
    const run = new Run()
    run.next([[V1, unbond(100n)]])
    const genesisSet = run.set()
    const total = supply(run.state)
    const [evidence] = run.txs([[A, equivocation(V1, 2)]])
    assert.equal(checkTx(evidence, CHAIN).body.kind, 'evidence', 'the evidence checks alone')
    run.next([[A, equivocation(V1, 2)]])
    assert.equal(run.stake(V1).bonded, 800n - 90n, '10% of 800 bonded + 100 unbonding')
    assert.deepEqual(run.stake(V1).unbonding, [{ amount: 100n, releaseHeight: 11 }], 'bonded stake is cut first')
    assert.deepEqual(run.stake(V1).candidate?.slashes, [{ height: 2, offence: 'equivocation', at: '2/0/precommit', amount: 90n }])
    assert.equal(run.stake(V1).candidate?.tombstoned, true)
    assert.notEqual(run.stake(V1).candidate?.jailedUntil, 0)
    assert.equal(supply(run.state), total - 90n, 'the cut is burned')
    assert.equal(run.balance(A), BALANCE - 1n, 'the sender pays its fee and gains nothing')
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V2), 800n]], 'out of the set at once')
    assert.deepEqual(run.set(run.state.validatorsAt(2)), genesisSet, 'the block itself was signed by the old set')
    assert.deepEqual(run.set(run.state.validatorsAt(3)), run.set())
  })

  it('cuts into unbonding entries when bonded stake does not cover the slash, and spares released ones', () => {
    const run = new Run()
    run.next([[V2, unbond(750n)]]) // bonded 50, 750 unbonding until 11
    run.next([[B, equivocation(V2, 1)]])
    assert.equal(run.stake(V2).bonded, 0n)
    assert.deepEqual(run.stake(V2).unbonding, [{ amount: 750n - 30n, releaseHeight: 11 }], '80 slashed: 50 bonded, then 30 unbonding')

    const later = new Run()
    later.next([[V0, unbond(400n)]]) // releases at 11
    later.until(10)
    later.next([[B, equivocation(V0, 1)]]) // height 11: 1 + unbondingBlocks is not below 11
    assert.equal(later.stake(V0).bonded, 600n - 60n, 'the released entry is not slashable')
    assert.deepEqual(later.stake(V0).unbonding, [{ amount: 400n, releaseHeight: 11 }])
    const before = later.balance(V0)
    later.next([[V0, withdraw]])
    assert.equal(later.balance(V0), before + 400n - 1n)
  })

  it('refuses the same evidence twice, in either order', () => {
    const run = new Run()
    const first = statement(V1, 2, X)
    const second = statement(V1, 2, Y)
    run.next([[A, { kind: 'evidence', first, second }]])
    const bonded = run.stake(V1).bonded
    run.refused([[B, { kind: 'evidence', first, second }]], 'duplicate')
    run.refused([[B, { kind: 'evidence', first: second, second: first }]], 'duplicate')
    run.refused([[B, { kind: 'evidence', first, second: statement(V1, 2, null) }]], 'duplicate')
    run.refused([[B, equivocation(V1, 2, 1)]], 'tombstoned')
    assert.equal(run.stake(V1).bonded, bonded, 'a validator jailed for good is not slashed again for another offence')
  })

  it('refuses evidence older than unbondingBlocks, above the chain, or against a non-candidate', () => {
    const run = new Run()
    run.until(11)
    run.refused([[A, equivocation(V0, 1)]], 'too_old') // at 12, 1 + 10 < 12
    run.refused([[A, equivocation(V0, 14)]], 'too_new')
    run.refused([[A, equivocation(B, 5)]], 'not_candidate')
    run.next([[A, equivocation(V0, 13)]])
    assert.equal(run.stake(V0).candidate?.tombstoned, true)
  })

  it('checkTx refuses statements that do not conflict, signatures that do not verify, and another chain\'s statements', () => {
    const run = new Run()
    const evidence = (first: SignedStatement, second: SignedStatement): SignedTx => run.txs([[A, { kind: 'evidence', first, second }]])[0] as SignedTx
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), statement(V1, 2, X)), CHAIN), isCode('LEDGER_MALFORMED'), 'the same value')
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), statement(V1, 3, Y)), CHAIN), isCode('LEDGER_MALFORMED'), 'another height')
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), statement(V1, 2, Y, 1)), CHAIN), isCode('LEDGER_MALFORMED'), 'another round')
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), statement(V1, 2, Y, 0, 'prevote')), CHAIN), isCode('LEDGER_MALFORMED'), 'another step')
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), statement(V2, 2, Y)), CHAIN), isCode('LEDGER_MALFORMED'), 'another signer')
    const forged = { ...statement(V1, 2, Y), signature: statement(V1, 2, X).signature }
    assert.throws(() => checkTx(evidence(statement(V1, 2, X), forged), CHAIN), isCode('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => checkTx(evidence(statement(V1, 2, X, 0, 'precommit', 'other'), statement(V1, 2, Y, 0, 'precommit', 'other')), CHAIN), isCode('LEDGER_WRONG_CHAIN'))
    assert.equal(checkTx(evidence(statement(V1, 2, X), statement(V1, 2, null)), CHAIN).body.kind, 'evidence', 'a nil vote against a block conflicts')
  })

  it('a tombstoned validator cannot unjail, is never re-elected, and takes no new votes', () => {
    const run = new Run()
    run.next([[A, equivocation(V0, 1)]])
    run.refused([[V0, unjail]], 'tombstoned')
    run.next([[V0, bond(5_000n)]])
    run.until(5)
    assert.deepEqual(run.set().map(([address]) => address), [addr(V1), addr(V2), addr(V3)])
    run.refused([[B, vote(addr(V0))]], 'not_candidate')
    run.until(12)
    run.refused([[V0, unjail]], 'tombstoned')
  })
})

describe('staking: downtime', () => {
  it('jails a validator that misses more than downtimeMissedMax blocks of a window, until it unjails after jailBlocks', () => {
    const run = new Run()
    run.nextMissing([V2]) // 1: the first block carries no signatures, nothing is counted
    assert.equal(run.stake(V2).candidate?.missed, 0)
    run.nextMissing([V2])
    run.nextMissing([V2])
    assert.equal(run.stake(V2).candidate?.missed, 2)
    assert.equal(run.stake(V2).candidate?.jailedUntil, 0, 'at the limit, not above it')
    const setBefore = run.set()
    run.nextMissing([V2]) // 4: the third miss
    const candidate = run.stake(V2).candidate
    assert.equal(candidate?.jailedUntil, 4 + params.jailBlocks)
    assert.equal(candidate?.missed, 0)
    assert.equal(candidate?.tombstoned, false)
    assert.deepEqual(candidate?.slashes, [{ height: 4, offence: 'downtime', at: '4', amount: 0n }])
    assert.equal(run.stake(V2).bonded, 800n, 'downtime burns nothing')
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V1), 900n]])
    assert.deepEqual(run.set(run.state.validatorsAt(4)), setBefore)
    assert.equal(run.stake(V0).candidate?.missed, 0, 'the signers missed nothing')

    run.refused([[V2, unjail]], 'jailed') // 5
    run.next()
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V1), 900n], [addr(V3), 700n]], 'a jailed validator is not elected')
    run.refused([[V2, unjail]], 'jailed') // 6
    run.next()
    run.next([[V2, unjail]]) // 7 = jailedUntil
    assert.equal(run.stake(V2).candidate?.jailedUntil, 0)
    assert.equal(run.stake(V2).candidate?.missed, 0)
    run.refused([[V2, unjail]], 'not_jailed')
    run.refused([[V0, unjail]], 'not_jailed')
    run.refused([[B, unjail]], 'not_jailed')
    run.until(10)
    assert.deepEqual(run.set(), [[addr(V0), 1_000n], [addr(V1), 900n], [addr(V2), 800n]], 'back in at the next epoch')
  })

  it('counts misses per window, and not at all without signatures', () => {
    const run = new Run()
    run.next()
    run.next([], null)
    run.next([], null)
    run.next([], null)
    assert.equal(run.stake(V2).candidate?.missed, 0, 'no certificate, no downtime')
    run.until(7)
    run.nextMissing([V2]) // 8
    run.nextMissing([V2]) // 9
    assert.equal(run.stake(V2).candidate?.missed, 2)
    run.nextMissing([]) // 10: the window ends
    assert.equal(run.stake(V2).candidate?.missed, 0)
    run.nextMissing([V2]) // 11
    run.nextMissing([V2]) // 12
    assert.equal(run.stake(V2).candidate?.missed, 2)
    assert.equal(run.stake(V2).candidate?.jailedUntil, 0, 'two misses in each window: never above the limit in one')
    run.nextMissing([V2]) // 13
    assert.equal(run.stake(V2).candidate?.jailedUntil, 13 + params.jailBlocks)
  })

  it('a validator that leaves the set with misses starts the next window clean', () => {
    const run = new Run()
    run.next()
    run.nextMissing([V2]) // 2
    run.nextMissing([V2]) // 3: V2 has missed 2 in the window 1..10
    run.nextMissing([], [[V3, bond(200n)]]) // 4: V3 overtakes V2
    run.until(5)
    assert.ok(!run.set().some(([address]) => address === addr(V2)), 'V2 left the set at 5')
    run.until(10) // the window 1..10 ends
    run.next([[V3, unbond(200n)]]) // 11
    run.until(15) // V2 is re-elected
    assert.ok(run.set().some(([address]) => address === addr(V2)))
    run.nextMissing([]) // 16
    run.nextMissing([V2]) // 17: V2's first miss of the window 11..20
    assert.equal(run.stake(V2).candidate?.jailedUntil, 0, 'one miss in this window is not above downtimeMissedMax')
    assert.equal(run.stake(V2).candidate?.missed, 1)
  })

  it('counts downtime against the set that signed the parent when a validator is slashed just after an epoch', () => {
    const run = new Run()
    run.next([[A, register], [A, bond(2_000n)]])
    run.until(5) // A joins the set at 5; the old set [V0, V1, V2] signed block 5
    assert.deepEqual(run.set().map(([address]) => address), [addr(A), addr(V0), addr(V1)])
    // Block 6 carries every precommit of the old set, and evidence against V1.
    run.next([[B, equivocation(V1, 5)]], [addr(V0), addr(V1), addr(V2)])
    assert.equal(run.stake(A).candidate?.missed, 0, 'A was not in the set that signed block 5')
  })
})

describe('staking: the evidence record', () => {
  it('slashes an equivocator once: the same evidence again is a duplicate, other evidence finds it tombstoned', () => {
    const run = new Run()
    run.next([[A, equivocation(V0, 1, 0)]])
    assert.equal(run.stake(V0).candidate?.tombstoned, true)
    run.refused([[B, equivocation(V0, 1, 0)]], 'duplicate')
    run.refused([[B, equivocation(V0, 1, 1)]], 'tombstoned')
  })
})

describe('staking: undo and the state root', () => {
  type Op =
    | { kind: 'transfer', who: number, to: number, amount: bigint }
    | { kind: 'bond' | 'unbond', who: number, amount: bigint }
    | { kind: 'withdraw' | 'register' | 'unjail', who: number }
    | { kind: 'vote', who: number, producers: number[] }
    | { kind: 'evidence', who: number, offender: number, back: number, round: number }
  const who = fc.nat(5)
  const amount = fc.bigInt({ min: 1n, max: 600n })
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('transfer' as const), who, to: who, amount: fc.bigInt({ min: 0n, max: 500n }) }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('bond' as const), who, amount }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('unbond' as const), who, amount }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), who }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('register' as const), who }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('unjail' as const), who }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('vote' as const), who, producers: fc.subarray([0, 1, 2, 3, 4, 5]) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('evidence' as const), who, offender: who, back: fc.nat(12), round: fc.nat(2) }) }
  )
  const blockArb = fc.record({ ops: fc.array(opArb, { maxLength: 4 }), missing: fc.option(fc.subarray([0, 1, 2, 3, 4]), { nil: null }) })

  const bodyOf = (op: Op, height: number): TxBody => {
    switch (op.kind) {
      case 'transfer': return { kind: 'transfer', to: addr(op.to), amount: op.amount }
      case 'bond': return bond(op.amount)
      case 'unbond': return unbond(op.amount)
      case 'withdraw': return withdraw
      case 'register': return register
      case 'unjail': return unjail
      case 'vote': return vote(...op.producers.map(addr))
      case 'evidence': return equivocation(op.offender, Math.max(1, height - op.back), op.round)
    }
  }

  it('reverting any sequence of staking and transfer blocks, newest first, gives back every earlier root and the genesis state exactly', () => {
    let applied = 0
    let refused = 0
    const seen = { slash: 0, downtime: 0, epoch: 0, vote: 0 }
    fc.assert(fc.property(fc.array(blockArb, { minLength: 1, maxLength: 20 }), (plan) => {
      const run = new Run()
      const genesisRoot = run.state.root()
      const genesisStakes = run.state.stakeEntries()
      const genesisAccounts = run.state.entries()
      const genesisSet = run.set()
      const initialSupply = supply(run.state)
      const history: Array<{ undo: BlockUndo, rootBefore: string }> = []
      for (const { ops, missing } of plan) {
        const specs = ops.map((op): Spec => [op.who, bodyOf(op, run.height + 1)])
        const rootBefore = run.state.root()
        try {
          const undo = missing === null ? run.next(specs) : run.nextMissing(missing, specs)
          history.push({ undo, rootBefore })
          applied++
        } catch (error) {
          assert.ok(error instanceof LedgerError && error.code === 'LEDGER_BAD_BLOCK', String(error))
          assert.equal(run.state.root(), rootBefore, 'a refused block changes nothing')
          refused++
          // The chain goes on with an empty block, so the plan still reaches epochs and windows.
          history.push({ undo: missing === null ? run.next() : run.nextMissing(missing), rootBefore })
        }
        // Value is conserved but for what slashing burned.
        assert.equal(supply(run.state) + burned(run.state), initialSupply)
        // Votes received are the voters' bonded stake.
        const expected = new Map<Address, bigint>()
        for (const [, record] of run.state.stakeEntries()) for (const producer of record.votes) expected.set(producer, (expected.get(producer) ?? 0n) + record.bonded)
        for (const [address, record] of run.state.stakeEntries()) assert.equal(record.votesReceived, expected.get(address) ?? 0n, `votes received by ${address}`)
        // The set holds no jailed or tombstoned validator (unless it is the last one).
        const set = run.state.validators()
        assert.ok(set.length > 0)
        if (set.length > 1) for (const validator of set) assert.equal(run.state.stakeOf(validator.address).candidate?.jailedUntil, 0)
        if (burned(run.state) > 0n) seen.slash++
        if (run.state.stakeEntries().some(([, record]) => record.candidate?.slashes.some((slash) => slash.offence === 'downtime'))) seen.downtime++
        if (run.height % params.epochBlocks === 0) seen.epoch++
        if (expected.size > 0) seen.vote++
      }
      for (const { undo, rootBefore } of history.reverse()) {
        run.state.revert(undo)
        assert.equal(run.state.root(), rootBefore)
      }
      assert.equal(run.state.root(), genesisRoot)
      assert.deepEqual(run.state.stakeEntries(), genesisStakes)
      assert.deepEqual(run.state.entries(), genesisAccounts)
      assert.deepEqual(run.set(), genesisSet)
      assert.deepEqual(run.set(run.state.validatorsAt(1)), genesisSet)
    }), { numRuns: 80 })
    for (const [what, count] of Object.entries(seen)) assert.ok(count > 0, `the plans reach ${what}: ${JSON.stringify(seen)}, ${applied} applied, ${refused} refused`)
  })

  it('the root covers the staking records: states that differ only in bonded stake have different roots', () => {
    const first = new Run(stakingGenesis({}, [1_000n, 900n, 800n, 700n]))
    const second = new Run(stakingGenesis({}, [1_000n, 900n, 800n, 701n]))
    first.next()
    second.next()
    assert.deepEqual(first.state.entries(), second.state.entries(), 'the same accounts')
    assert.deepEqual(first.set(), second.set(), 'the same validator set (V3 is below the cut)')
    assert.notEqual(first.state.stakeRoot(), second.state.stakeRoot())
    assert.notEqual(first.state.root(), second.state.root())
    // And a bond changes the root beyond what the balance change does.
    const bonded = new Run()
    const sent = new Run()
    bonded.next([[A, bond(100n)]])
    sent.next([[A, { kind: 'transfer', to: PROPOSER, amount: 100n }]])
    assert.notEqual(bonded.state.root(), sent.state.root())
    // The validator set is in the root as well.
    const elected = new Run()
    elected.next([[A, register], [A, bond(50n)]])
    const before = elected.state.root()
    const stakeRootBefore = elected.state.stakeRoot()
    elected.until(5)
    assert.equal(elected.state.stakeRoot(), stakeRootBefore, 'empty blocks leave the staking records alone')
    assert.notEqual(elected.state.root(), before, 'a re-election changes the root')
  })
})

describe('a chain without staking', () => {
  it('refuses every staking transaction, and its root is the plain accounts-tree root', () => {
    const run = new Run(plainGenesis())
    assert.equal(run.state.staking, null)
    const tree = new AccountTree()
    for (const address of addresses) tree.set(address, { balance: BALANCE, nonce: 0 })
    assert.equal(run.state.root(), toHex(tree.rootHash()))
    assert.notEqual(new Run().state.root(), run.state.root(), 'a staking genesis has another root')
    for (const body of [bond(10n), unbond(10n), withdraw, register, unjail, vote(), equivocation(V0, 1)]) run.refused([[A, body]], 'no_staking')
    assert.deepEqual(run.state.validators(), [])
    assert.deepEqual(run.state.validatorsAt(3), [])
    assert.deepEqual(run.state.stakeEntries(), [])
    run.next([[A, { kind: 'transfer', to: addr(B), amount: 10n }, 2n]])
    tree.set(addr(A), { balance: BALANCE - 12n, nonce: 1 })
    tree.set(addr(B), { balance: BALANCE + 10n, nonce: 0 })
    tree.set(PROPOSER, { balance: 2n, nonce: 0 })
    assert.equal(run.state.root(), toHex(tree.rootHash()), 'PoW roots are unchanged')
  })
})
