/**
 * DPoS behind the chain store: the compliance suite, then the schedule (the top K candidates by
 * votes, a shuffle that every node computes alike, kept in the state for the round, re-elected
 * each round, blocksPerTurn slots a turn, missed slots skipped), the header rules (producer,
 * signature, slot time, slot order, clock, candidacy), the last irreversible block against
 * `lastIrreversibleHeight`, fork choice that never reorganises below it, double-sign evidence,
 * and a restart from disk. The harness is test/support/dpos-chain.ts.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  LedgerError, blockHash, checkTx, conflicting, electProducers, irreversibilityThreshold, lastIrreversibleHeight, signTx,
  type Address, type Block, type ChainStore, type DposEngine, type ProducerSchedule, type SignedTx, type TxBody
} from '../../src/ledger/index.js'
import { engineCompliance } from '../support/engine-compliance.js'
import {
  DPOS_CHAIN, blockSignedStatement, type DposChainOptions, copyPrefix, dposAddresses, dposKeyOf, extendDpos, newDposChain, produceDpos, producersFromHead, slotOf
} from '../support/dpos-chain.js'

const addr = (index: number): Address => dposAddresses[index] as Address

const isLedgerError = (code: string, reason?: string, message?: RegExp) => (error: unknown): boolean => {
  assert.ok(error instanceof LedgerError, `not a LedgerError: ${String(error)}`)
  assert.equal(error.code, code, error.message)
  if (reason !== undefined) assert.equal((error.details as { reason?: string } | undefined)?.reason, reason, error.message)
  if (message !== undefined) assert.match(error.message, message)
  return true
}

const order = (schedule: ProducerSchedule): Address[] => schedule.producers.map((producer) => producer.address)

function tx (chain: ChainStore, from: Address, body: TxBody): SignedTx {
  const key = dposKeyOf(from)
  return signTx({ chainId: DPOS_CHAIN, publicKey: key.publicKey, nonce: chain.state().get(from).nonce, fee: 1n, body }, key)
}

/** Adds `blocks` to `chain` (from another store of the same genesis) and returns the last outcome. */
function addAll (chain: ChainStore, blocks: readonly Block[]): ReturnType<ChainStore['add']> | undefined {
  let outcome
  for (const block of blocks) outcome = chain.add(block, block.header.timeMs)
  return outcome
}

/** A store holding `main`'s chain up to `forkHeight`, then its own branch: a skipped slot, then `length` blocks in all. */
function branchFrom (main: ChainStore, forkHeight: number, length: number, options: DposChainOptions = {}): Block[] {
  const rival = newDposChain(options)
  copyPrefix(main, rival.chain, forkHeight)
  const first = produceDpos(rival.chain, rival.engine, { slot: slotOf(rival.chain.head().header) + 2 })
  assert.equal(rival.chain.add(first, first.header.timeMs).status, 'head')
  return [first, ...extendDpos(rival.chain, rival.engine, length - 1)]
}

engineCompliance('dpos', {
  newChain: () => newDposChain(),
  produce: (chain, engine) => produceDpos(chain, engine as DposEngine)
})

describe('DPoS: the schedule', () => {
  it('elects the top producersMax candidates by votes (genesis self-votes are the stakes), with their votes as power', () => {
    const stakes = [100n, 400n, 50n, 300n, 200n]
    const { chain, engine } = newDposChain({ stakes, producersMax: 3 })
    const schedule = engine.schedule(chain.state(), chain.genesisHash, 0)
    assert.equal(schedule.round, 0)
    const byPower = [...schedule.producers].sort((a, b) => (a.power > b.power ? -1 : 1))
    assert.deepEqual(byPower.map((producer) => [producer.address, producer.power]), [[addr(1), 400n], [addr(3), 300n], [addr(4), 200n]])
    for (const producer of schedule.producers) assert.deepEqual(producer.publicKey, dposKeyOf(producer.address).publicKey)
    // The same set as electing straight from the state's votes.
    const votes = chain.state().stakeEntries().map(([address, record]) => ({ address, votes: record.votesReceived }))
    assert.deepEqual(new Set(order(schedule)), new Set(electProducers(votes, 3)))
  })

  it('elects every candidate when there are fewer than producersMax, and breaks equal votes by address', () => {
    const few = newDposChain({ stakes: [400n, 300n], producersMax: 21 })
    const schedule = few.engine.schedule(few.chain.state(), few.chain.genesisHash, 0)
    assert.deepEqual(new Set(order(schedule)), new Set([addr(0), addr(1)]))
    // Turns go round the two producers: turn t belongs to producers[t mod 2].
    for (let slot = 0; slot < few.engine.roundSlots; slot++) {
      assert.equal(few.engine.producerAt(few.chain.state(), few.chain.genesisHash, slot)?.address, order(schedule)[Math.floor(slot / 2) % 2])
    }
    const tied = newDposChain({ stakes: [100n, 100n, 100n], producersMax: 2 })
    const elected = order(tied.engine.schedule(tied.chain.state(), tied.chain.genesisHash, 0))
    assert.deepEqual(new Set(elected), new Set([addr(0), addr(1), addr(2)].sort().slice(0, 2)))
  })

  it('orders a round by a shuffle of (parent, round): the same on every node, different across rounds and parents', () => {
    const a = newDposChain({ stakes: [400n, 300n, 200n, 100n, 50n], producersMax: 5 })
    const b = newDposChain({ stakes: [400n, 300n, 200n, 100n, 50n], producersMax: 5 })
    const rounds = Array.from({ length: 12 }, (_, round) => a.engine.schedule(a.chain.state(), a.chain.genesisHash, round))
    for (const [round, schedule] of rounds.entries()) {
      assert.equal(schedule.round, round)
      assert.deepEqual(b.engine.schedule(b.chain.state(), b.chain.genesisHash, round), schedule, 'another node, the same schedule')
      assert.deepEqual(a.engine.schedule(a.chain.state(), a.chain.genesisHash, round), schedule, 'asked again, the same schedule')
      assert.deepEqual([...order(schedule)].sort(), [...dposAddresses.slice(0, 5)].sort(), 'a permutation of the elected')
    }
    assert.ok(new Set(rounds.map((schedule) => order(schedule).join())).size > 1, 'rounds are shuffled differently')
    const parents = Array.from({ length: 12 }, (_, index) => index.toString(16).padStart(2, '0').repeat(32))
    assert.ok(new Set(parents.map((parent) => order(a.engine.schedule(a.chain.state(), parent, 0)).join())).size > 1, 'parents seed different orders')
  })

  it('gives each producer blocksPerTurn consecutive slots, turn by turn in the schedule order', () => {
    const { chain, engine } = newDposChain()
    const blocks: Block[] = []
    for (let index = 0; index < 2 * engine.roundSlots; index++) {
      const [block] = extendDpos(chain, engine, 1) as [Block]
      const slot = slotOf(block.header)
      const round = engine.roundOf(slot)
      const schedule = chain.state().producerSchedule() as ProducerSchedule
      assert.equal(schedule.round, round, `slot ${slot}`)
      assert.equal(block.header.proposer, order(schedule)[Math.floor((slot - round * engine.roundSlots) / 2)], `slot ${slot}`)
      blocks.push(block)
    }
    assert.ok(engine.roundOf(slotOf((blocks.at(-1) as Block).header)) >= 2)
    // Slots 1..16: slot 1 ends turn 0, then pairs (2,3), (4,5), ... share a producer and neighbouring pairs do not.
    for (let index = 1; index + 1 < blocks.length; index += 2) {
      assert.equal((blocks[index] as Block).header.proposer, (blocks[index + 1] as Block).header.proposer)
      assert.notEqual((blocks[index - 1] as Block).header.proposer, (blocks[index] as Block).header.proposer)
    }
  })

  it('keeps the schedule of the round in the state from its first block on, though votes change mid-round, and re-elects for the next round', () => {
    const { chain, engine } = newDposChain({ stakes: [400n, 300n, 200n, 100n, 50n], producersMax: 3 })
    const elected0 = engine.schedule(chain.state(), chain.genesisHash, 0)
    assert.deepEqual(new Set(order(elected0)), new Set([addr(0), addr(1), addr(2)]))
    // The first block carries a bond that makes candidate 4 the most voted (its self-vote: 50 + 10 000).
    const first = produceDpos(chain, engine, { txs: [tx(chain, addr(4), { kind: 'bond', amount: 10_000n })] })
    assert.equal(chain.add(first, first.header.timeMs).status, 'head')
    assert.equal(chain.state().stakeOf(addr(4)).votesReceived, 10_050n)
    assert.deepEqual(chain.state().producerSchedule(), elected0, 'the round-0 schedule, elected before the bond')
    assert.deepEqual(engine.schedule(chain.state(), chain.head().hash, 0), elected0, 'reused for the round, not re-elected')
    // Candidate 4 may not produce in this round though it now has the most votes.
    const usurper = produceDpos(chain, engine, { proposer: addr(4) })
    assert.throws(() => chain.add(usurper, usurper.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    // The rest of round 0 goes to the held schedule.
    while (engine.roundOf(slotOf(chain.head().header) + 1) === 0) {
      const [block] = extendDpos(chain, engine, 1) as [Block]
      assert.ok(order(elected0).includes(block.header.proposer))
      assert.deepEqual(chain.state().producerSchedule(), elected0)
    }
    // Round 1 re-elects: candidate 4 in, candidate 2 (200) out, shuffled by round 1's parent.
    const expected = engine.schedule(chain.state(), chain.head().hash, 1)
    assert.deepEqual(new Set(order(expected)), new Set([addr(4), addr(0), addr(1)]))
    const [next] = extendDpos(chain, engine, 1) as [Block]
    assert.equal(engine.roundOf(slotOf(next.header)), 1)
    assert.deepEqual(chain.state().producerSchedule(), expected)
    assert.equal(next.header.proposer, order(expected)[0])
  })

  it('skips a missed slot or a whole missed round: the next block, by its own slot\'s producer, is accepted', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 3)
    const parentSlot = slotOf(chain.head().header)
    // A gap of two slots into a slot whose producer differs from the skipped slot's.
    const gap = [2, 3, 4].find((step) => engine.producerAt(chain.state(), chain.head().hash, parentSlot + step)?.address !== engine.producerAt(chain.state(), chain.head().hash, parentSlot + 1)?.address) as number
    const skippedProducer = engine.producerAt(chain.state(), chain.head().hash, parentSlot + 1)?.address as Address
    const late = produceDpos(chain, engine, { slot: parentSlot + gap, proposer: skippedProducer })
    assert.throws(() => chain.add(late, late.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'), 'the missed slot\'s producer may not take a later slot')
    const block = produceDpos(chain, engine, { slot: parentSlot + gap })
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    // No block in round 1 at all: round 2's first block re-elects from the last block's state.
    const slot = 2 * engine.roundSlots + 3
    const expected = engine.schedule(chain.state(), chain.head().hash, 2)
    const afterGap = produceDpos(chain, engine, { slot })
    assert.equal(chain.add(afterGap, afterGap.header.timeMs).status, 'head')
    assert.deepEqual(chain.state().producerSchedule(), expected)
    assert.equal(afterGap.header.proposer, order(expected)[1], 'slot 3 of a round: the second turn')
  })
})

describe('DPoS: header rules', () => {
  it('checks the slot\'s producer when the block executes (add, check), not in verifyHeader', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 1)
    const good = produceDpos(chain, engine)
    const other = dposAddresses.slice(0, 4).find((address) => address !== good.header.proposer) as Address
    const wrong = produceDpos(chain, engine, { proposer: other })
    // A candidate's correctly signed block passes the header checks: the schedule needs the state.
    engine.verifyHeader(wrong.header, chain.head().header, chain, wrong.header.timeMs)
    assert.throws(() => engine.verifyInState(wrong.header, chain.state()), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    engine.verifyInState(good.header, chain.state())
    const root = chain.state().root()
    assert.throws(() => chain.check(wrong, wrong.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    assert.throws(() => chain.add(wrong, wrong.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    assert.equal(chain.stored(blockHash(wrong.header)), undefined, 'not stored')
    assert.equal(chain.state().root(), root, 'the state is untouched')
    chain.check(good, good.header.timeMs)
    assert.equal(chain.add(good, good.header.timeMs).status, 'head')
  })

  it('refuses a wrong producer\'s block on a side branch when a reorganisation executes it, and keeps the old chain', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 3)
    const head = chain.head().hash
    const root = chain.state().root()
    // A rival store that skips the producer check builds a longer branch on height 1 whose first block has the wrong producer.
    const lax = newDposChain()
    Object.assign(lax.engine, { verifyInState: () => {} })
    copyPrefix(chain, lax.chain, 1)
    const slot = slotOf(chain.head().header) + 1
    const scheduled = lax.engine.producerAt(lax.chain.state(), lax.chain.head().hash, slot)?.address
    const wrong = produceDpos(lax.chain, lax.engine, { slot, proposer: dposAddresses.slice(0, 4).find((address) => address !== scheduled) as Address })
    assert.equal(lax.chain.add(wrong, wrong.header.timeMs).status, 'head')
    const branch = [wrong, ...extendDpos(lax.chain, lax.engine, 3)]
    assert.equal(chain.add(wrong, wrong.header.timeMs).status, 'side', 'a side block gets the header checks only')
    assert.equal(chain.add(branch[1] as Block, (branch[1] as Block).header.timeMs).status, 'side')
    assert.throws(() => chain.add(branch[2] as Block, (branch[2] as Block).header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    assert.equal(chain.head().hash, head)
    assert.equal(chain.state().root(), root)
    assert.equal(chain.stored(blockHash(wrong.header))?.invalid, true)
    assert.throws(() => chain.add(branch[3] as Block, (branch[3] as Block).header.timeMs), isLedgerError('LEDGER_BAD_BLOCK'), 'built on an invalid block')
  })

  it('refuses a bad signature: another key\'s, or one over another slot', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 1)
    const good = produceDpos(chain, engine)
    const forger = dposAddresses.slice(0, 4).find((address) => address !== good.header.proposer) as Address
    const forged = produceDpos(chain, engine, { signer: dposKeyOf(forger) })
    assert.throws(() => engine.verifyHeader(forged.header, chain.head().header, chain, forged.header.timeMs), isLedgerError('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => chain.add(forged, forged.header.timeMs), isLedgerError('LEDGER_BAD_SIGNATURE'))
    // The signature of the next slot's block (same producer in a turn of two slots, or not) does not seal this one.
    const later = produceDpos(chain, engine, { slot: slotOf(good.header) + 1 })
    const swapped: Block = { ...good, header: { ...good.header, seal: { ...(good.header.seal as object), signature: (later.header.seal as { signature: Uint8Array }).signature } } }
    assert.throws(() => chain.add(swapped, swapped.header.timeMs), isLedgerError('LEDGER_BAD_SIGNATURE'))
    assert.throws(() => chain.add({ ...good, header: { ...good.header, seal: { slot: slotOf(good.header) } } }, good.header.timeMs), isLedgerError('LEDGER_MALFORMED'))
    assert.equal(chain.add(good, good.header.timeMs).status, 'head')
  })

  it('refuses a time that is not its slot\'s start, a slot not after the parent\'s, and a slot too far ahead of the clock', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 3)
    const parentSlot = slotOf(chain.head().header)
    const slot = parentSlot + 1
    for (const timeMs of [engine.slotStartMs(slot) + 1, engine.slotStartMs(slot) + 499, engine.slotStartMs(slot + 1), engine.slotStartMs(slot) - 1]) {
      const off = produceDpos(chain, engine, { slot, timeMs })
      assert.throws(() => chain.add(off, timeMs + 10_000), isLedgerError('LEDGER_BAD_TIME', undefined, /is not the start of slot/), `time ${timeMs - engine.slotStartMs(slot)} ms into the slot`)
    }
    for (const stale of [parentSlot, parentSlot - 1]) {
      const block = produceDpos(chain, engine, { slot: stale })
      assert.throws(() => chain.add(block, block.header.timeMs + 10_000), isLedgerError('LEDGER_BAD_TIME', undefined, /not after the parent's/), `slot ${stale} on a parent at ${parentSlot}`)
    }
    const good = produceDpos(chain, engine, { slot: slot + 3 })
    const start = good.header.timeMs
    assert.throws(() => engine.verifyHeader(good.header, chain.head().header, chain, start - 2_001), isLedgerError('LEDGER_BAD_TIME', undefined, /ahead of this node's clock/))
    assert.throws(() => chain.add(good, start - 2_001), isLedgerError('LEDGER_BAD_TIME'))
    assert.equal(chain.head().header.height, 3)
    assert.equal(chain.add(good, start - 2_000).status, 'head', 'futureTimeLimitMs ahead is still accepted')
  })

  it('refuses a proposer that is not a candidate before executing anything', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 1)
    for (const outsider of [addr(4), addr(5)]) {
      const block = produceDpos(chain, engine, { proposer: outsider })
      assert.throws(() => engine.verifyHeader(block.header, chain.head().header, chain, block.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer', /is not a candidate/))
      assert.throws(() => chain.add(block, block.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'producer'))
    }
  })
})

describe('DPoS: the last irreversible block', () => {
  it('is the highest block that floor(2K/3) + 1 distinct producers built on, as lastIrreversibleHeight says, and never goes back', () => {
    assert.equal(irreversibilityThreshold(4), 3)
    const { chain, engine } = newDposChain()
    let last = 0
    for (let index = 0; index < 3 * engine.roundSlots; index++) {
      extendDpos(chain, engine, 1)
      const fromHead = producersFromHead(chain)
      const expected = lastIrreversibleHeight(fromHead, 4) ?? 0
      const final = chain.finalizedHeight() as number
      assert.equal(final, expected, `head ${chain.head().header.height}`)
      assert.ok(final >= last)
      if (final > 0) {
        // At least 3 distinct producers from the LIB up; fewer from the block above it.
        const from = (height: number): number => new Set(fromHead.filter((block) => block.height >= height).map((block) => block.producer)).size
        assert.ok(from(final) >= 3)
        assert.ok(from(final + 1) < 3)
      }
      last = final
    }
    assert.ok(last > 0 && last < chain.head().header.height)
  })

  it('matches lastIrreversibleHeight with slots missed at random, and with fewer producers', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 4, maxLength: 14 }),
      fc.constantFrom(2, 3, 4),
      (gaps, candidates) => {
        const { chain, engine } = newDposChain({ stakes: [400n, 300n, 200n, 100n].slice(0, candidates) })
        let last = 0
        for (const gap of gaps) {
          const block = produceDpos(chain, engine, { slot: (chain.head().header.height === 0 ? 0 : slotOf(chain.head().header)) + gap })
          assert.equal(chain.add(block, block.header.timeMs).status, 'head')
          const final = chain.finalizedHeight() as number
          assert.equal(final, lastIrreversibleHeight(producersFromHead(chain), candidates) ?? 0)
          assert.ok(final >= last)
          last = final
        }
      }
    ), { numRuns: 12, seed: 20_240_611 })
  })

  it('does not go back when a reorganisation moves to a branch whose own LIB is lower', () => {
    const main = newDposChain()
    extendDpos(main.chain, main.engine, 16)
    const final = main.chain.finalizedHeight() as number
    const head = main.chain.head().header.height
    // A branch forking at the LIB, one block longer: its own LIB, from its head, may be lower.
    const branch = branchFrom(main.chain, final, head - final + 1)
    const outcome = addAll(main.chain, branch)
    assert.equal(outcome?.status, 'head')
    assert.ok((main.chain.finalizedHeight() as number) >= final)
    assert.equal(main.chain.finalizedHeight(), Math.max(final, lastIrreversibleHeight(producersFromHead(main.chain), 4) ?? 0))
  })
})

describe('DPoS: fork choice', () => {
  it('keeps its head against a longer branch that forks below the final height (a side branch), and counts the refusal', () => {
    const main = newDposChain()
    extendDpos(main.chain, main.engine, 2)
    const branch = branchFrom(main.chain, 2, 30)
    extendDpos(main.chain, main.engine, 20)
    const final = main.chain.finalizedHeight() as number
    assert.ok(final > 2, `final ${final}`)
    const head = main.chain.head()
    for (const block of branch) assert.equal(main.chain.add(block, block.header.timeMs).status, 'side')
    assert.equal(main.chain.head().hash, head.hash, 'the irreversible chain stays')
    assert.ok((main.chain.stored(blockHash((branch.at(-1) as Block).header))?.weight as bigint) > head.weight, 'though the branch is heavier')
    assert.ok(main.chain.counters.belowFinalRefused > 0)
    assert.equal(main.chain.finalizedHeight(), final)
  })

  it('refuses a longer branch forking one block below the final height and takes one forking at it or above', () => {
    const main = newDposChain()
    extendDpos(main.chain, main.engine, 20)
    const final = main.chain.finalizedHeight() as number
    const height = main.chain.head().header.height
    assert.ok(final > 1 && final < height - 2, `final ${final} of ${height}`)
    for (const fork of [final - 1, final, final + 2]) {
      const store = newDposChain()
      copyPrefix(main.chain, store.chain, height)
      assert.equal(store.chain.finalizedHeight(), final)
      // Undo records are kept only above the final height: exactly the blocks a reorganisation may revert.
      assert.equal(store.chain.undoRecords(), height - final)
      const branch = branchFrom(main.chain, fork, height - fork + 1)
      const outcome = addAll(store.chain, branch)
      if (fork < final) {
        assert.equal(outcome?.status, 'side', `fork at ${fork}`)
        assert.equal(store.chain.head().hash, main.chain.head().hash)
        assert.equal(store.chain.counters.belowFinalRefused, 1)
      } else {
        assert.equal(outcome?.status, 'head', `fork at ${fork}`)
        assert.equal(outcome?.status === 'head' && outcome.reverted.length, height - fork, 'a reorganisation')
        assert.equal(store.chain.head().hash, blockHash((branch.at(-1) as Block).header))
        assert.equal(store.chain.hashAt(fork), main.chain.hashAt(fork))
        assert.equal(store.chain.counters.belowFinalRefused, 0)
        assert.ok((store.chain.finalizedHeight() as number) >= final)
        assert.equal(store.chain.undoRecords(), store.chain.head().header.height - (store.chain.finalizedHeight() as number), 'after the reorganisation, the records above the final height')
      }
    }
  })
})

describe('DPoS: double signing', () => {
  /** Evidence `first`/`second` in a block on `chain` by a reporter that is not the offender; returns the block. */
  function reportIn (chain: ChainStore, engine: DposEngine, first: Block, second: Block): Block {
    const reporter = dposAddresses.find((address) => address !== first.header.proposer) as Address
    const evidence = checkTx(tx(chain, reporter, { kind: 'evidence', first: blockSignedStatement(first), second: blockSignedStatement(second) }), DPOS_CHAIN)
    const block = produceDpos(chain, engine, { txs: [evidence] })
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
    return block
  }

  it('two blocks signed for one slot at different heights conflict, and the evidence tombstones the producer and keeps it out of the next round', () => {
    // Store A: block a1 at slot 3. Store B: b1 at slot 2 and b2 at slot 3 (height 2): slots 2 and 3 are one turn.
    const a = newDposChain()
    const b = newDposChain()
    const a1 = produceDpos(a.chain, a.engine, { slot: 3 })
    assert.equal(a.chain.add(a1, a1.header.timeMs).status, 'head')
    const b1 = produceDpos(b.chain, b.engine, { slot: 2 })
    assert.equal(b.chain.add(b1, b1.header.timeMs).status, 'head')
    const b2 = produceDpos(b.chain, b.engine, { slot: 3 })
    assert.equal(b.chain.add(b2, b2.header.timeMs).status, 'head')
    const offender = a1.header.proposer
    assert.equal(b2.header.proposer, offender)
    assert.notEqual(a1.header.height, b2.header.height)
    assert.ok(conflicting(blockSignedStatement(a1), blockSignedStatement(b2)), 'one slot, two blocks')
    assert.ok(conflicting(blockSignedStatement(b2), blockSignedStatement(a1)))
    assert.ok(!conflicting(blockSignedStatement(a1), blockSignedStatement(b1)), 'different slots')
    assert.ok(!conflicting(blockSignedStatement(a1), blockSignedStatement(a1)), 'the same block')

    const bonded = a.chain.state().stakeOf(offender).bonded
    reportIn(a.chain, a.engine, a1, b2)
    const record = a.chain.state().stakeOf(offender)
    assert.equal(record.candidate?.tombstoned, true)
    assert.ok(record.bonded < bonded, 'slashed')
    assert.equal(record.candidate?.slashes.at(-1)?.offence, 'equivocation')
    // The same offence cannot be reported twice.
    const reporter = dposAddresses.find((address) => address !== offender) as Address
    const again = produceDpos(a.chain, a.engine, { txs: [tx(a.chain, reporter, { kind: 'evidence', first: blockSignedStatement(b2), second: blockSignedStatement(a1) })], execute: false })
    assert.throws(() => a.chain.add(again, again.header.timeMs), isLedgerError('LEDGER_BAD_BLOCK', 'duplicate'))

    // The next round's schedule, elected on the chain, leaves the offender out.
    const nextRound = a.engine.roundOf(slotOf(a.chain.head().header)) + 1
    const first = produceDpos(a.chain, a.engine, { slot: nextRound * a.engine.roundSlots })
    assert.equal(a.chain.add(first, first.header.timeMs).status, 'head')
    const schedule = a.chain.state().producerSchedule() as ProducerSchedule
    assert.equal(schedule.round, nextRound)
    assert.equal(schedule.producers.length, 3)
    assert.ok(!order(schedule).includes(offender))
    assert.notEqual(first.header.proposer, offender)
  })

  it('two different blocks for one slot at the same height are evidence too', () => {
    const { chain, engine } = newDposChain()
    extendDpos(chain, engine, 1)
    const plain = produceDpos(chain, engine)
    const producer = plain.header.proposer
    const withTx = produceDpos(chain, engine, { txs: [tx(chain, producer, { kind: 'transfer', to: producer, amount: 1n })] })
    assert.equal(slotOf(plain.header), slotOf(withTx.header))
    assert.notEqual(blockHash(plain.header), blockHash(withTx.header))
    assert.ok(conflicting(blockSignedStatement(plain), blockSignedStatement(withTx)))
    assert.equal(chain.add(plain, plain.header.timeMs).status, 'head')
    reportIn(chain, engine, plain, withTx)
    assert.equal(chain.state().stakeOf(producer).candidate?.tombstoned, true)
    assert.ok(!order(engine.schedule(chain.state(), chain.head().hash, engine.roundOf(slotOf(chain.head().header)) + 1)).includes(producer))
  })
})

describe('DPoS: restart', () => {
  it('a store reloaded from its disk reaches the same head, state root, schedule and LIB, and goes on with the same producers', () => {
    const { chain, engine, disk } = newDposChain({ stakes: [400n, 300n, 200n, 100n, 50n], producersMax: 4 })
    extendDpos(chain, engine, 5)
    // Votes change (candidate 4 in), a slot and a round are missed, and a reorganisation moves the head.
    const bond = produceDpos(chain, engine, { txs: [tx(chain, addr(4), { kind: 'bond', amount: 1_000n })] })
    assert.equal(chain.add(bond, bond.header.timeMs).status, 'head')
    const skipped = produceDpos(chain, engine, { slot: (engine.roundOf(slotOf(chain.head().header)) + 2) * engine.roundSlots + 1 })
    assert.equal(chain.add(skipped, skipped.header.timeMs).status, 'head')
    extendDpos(chain, engine, 10)
    const fork = chain.head().header.height - 2
    assert.ok(fork >= (chain.finalizedHeight() as number))
    assert.equal(addAll(chain, branchFrom(chain, fork, 4, { stakes: [400n, 300n, 200n, 100n, 50n] }))?.status, 'head')
    assert.ok(order(chain.state().producerSchedule() as ProducerSchedule).includes(addr(4)))

    const reloaded = newDposChain({ stakes: [400n, 300n, 200n, 100n, 50n], producersMax: 4, disk })
    assert.equal(reloaded.chain.load(), chain.head().header.height)
    assert.equal(reloaded.chain.head().hash, chain.head().hash)
    assert.equal(reloaded.chain.state().root(), chain.state().root())
    assert.deepEqual(reloaded.chain.state().producerSchedule(), chain.state().producerSchedule())
    assert.equal(reloaded.chain.finalizedHeight(), chain.finalizedHeight())
    const next = produceDpos(reloaded.chain, reloaded.engine)
    assert.equal(reloaded.chain.add(next, next.header.timeMs).status, 'head')
    assert.equal(chain.add(next, next.header.timeMs).status, 'head', 'the original store agrees on the producer')
  })
})

describe('DPoS: staking epochs (known bugs)', () => {
  // A staking epoch (height % epochBlocks === 0) re-elects the PoS validator sets with
  // `setSets({ current, previous, changedAt })` in LedgerState.endBlock, which drops the DPoS
  // `schedule` field of the sets (LedgerState.dropFromSet, after evidence, does the same).

  it('keeps the round\'s schedule across an epoch block in mid-round', () => {
    const { chain, engine } = newDposChain({ staking: { epochBlocks: 5 } })
    extendDpos(chain, engine, 4)
    const held = chain.state().producerSchedule() as ProducerSchedule
    assert.equal(held.round, 0)
    extendDpos(chain, engine, 1)
    assert.equal(chain.head().header.height, 5, 'an epoch block')
    assert.equal(engine.roundOf(slotOf(chain.head().header)), 0, 'still round 0')
    assert.deepEqual(chain.state().producerSchedule(), held)
    assert.deepEqual(engine.schedule(chain.state(), chain.head().hash, 0), held)
    assert.equal(engine.finalizedHeight(chain), lastIrreversibleHeight(producersFromHead(chain), 4) ?? 0, 'the engine\'s LIB at the epoch block')
    // Slot 6 is turn 3 of round 0: the held schedule's fourth producer's.
    const block = produceDpos(chain, engine, { slot: 6, proposer: order(held)[3] })
    assert.equal(chain.add(block, block.header.timeMs).status, 'head')
  })

  it('refuses a branch forking below the LIB after a restart whose head is an epoch block', () => {
    const epoch = { staking: { epochBlocks: 10 } }
    const main = newDposChain(epoch)
    extendDpos(main.chain, main.engine, 2)
    const branch = branchFrom(main.chain, 2, 14, epoch)
    extendDpos(main.chain, main.engine, 8)
    assert.equal(main.chain.head().header.height, 10, 'the head is an epoch block')
    const lib = lastIrreversibleHeight(producersFromHead(main.chain), 4) ?? 0
    assert.ok(lib > 2, `LIB ${lib}`)
    const restarted = newDposChain({ ...epoch, disk: main.disk })
    restarted.chain.load()
    assert.equal(restarted.chain.finalizedHeight(), lib)
    assert.equal(addAll(restarted.chain, branch)?.status, 'side')
    assert.equal(restarted.chain.head().hash, main.chain.head().hash)
  })
})
