/** PoS proposer selection and DPoS scheduling: deterministic, proportional, and the irreversibility rule. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { sha256, toHex } from '../../src/core/index.js'
import {
  LedgerError, ProposerSelector, electProducers, irreversibilityThreshold, lastIrreversibleHeight, producerOfSlot, proposerSeed, shuffleSchedule, slotAt
} from '../../src/ledger/index.js'

const address = (index: number): string => toHex(sha256(Uint8Array.of(index)).subarray(0, 20))
const parent = 'ab'.repeat(32)

describe('PoS proposer selection', () => {
  it('draws proposers in proportion to power, from the chain-derived seed alone', () => {
    const powers = [1n, 2n, 3n, 4n, 0n]
    const selector = new ProposerSelector(powers.map((power, index) => ({ address: address(index), power })))
    assert.equal(selector.totalPower, 10n)
    const counts = new Map<string, number>()
    const draws = 20_000
    for (let height = 1; height <= draws; height++) {
      const chosen = selector.proposer(proposerSeed(parent, height, 0))
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1)
    }
    assert.equal(counts.get(address(4)), undefined, 'no power, never chosen')
    for (const [index, power] of powers.entries()) {
      if (power === 0n) continue
      const expected = draws * Number(power) / 10
      const observed = counts.get(address(index)) ?? 0
      // Five standard deviations of a binomial: fails only when the draw is not proportional.
      const sigma = Math.sqrt(draws * (Number(power) / 10) * (1 - Number(power) / 10))
      assert.ok(Math.abs(observed - expected) < 5 * sigma, `validator ${index}: ${observed} draws, expected ${expected}`)
    }
  })

  it('gives every node the same proposer whatever order it lists the validators in, and changes with the round', () => {
    fc.assert(fc.property(fc.array(fc.bigInt({ min: 1n, max: 1n << 60n }), { minLength: 1, maxLength: 30 }), fc.nat(1_000_000), (powers, height) => {
      const validators = powers.map((power, index) => ({ address: address(index), power }))
      const seed = proposerSeed(parent, height, 0)
      assert.equal(new ProposerSelector(validators).proposer(seed), new ProposerSelector([...validators].reverse()).proposer(seed))
    }), { numRuns: 200 })
    assert.notEqual(toHex(proposerSeed(parent, 5, 0)), toHex(proposerSeed(parent, 5, 1)))
  })

  it('refuses an empty set and a validator listed twice', () => {
    assert.throws(() => new ProposerSelector([{ address: address(1), power: 0n }]), LedgerError)
    assert.throws(() => new ProposerSelector([{ address: address(1), power: 1n }, { address: address(1), power: 2n }]), LedgerError)
  })
})

describe('DPoS scheduling', () => {
  it('elects the top K by votes, ties by address, or all candidates when fewer', () => {
    const candidates = Array.from({ length: 30 }, (_, index) => ({ address: address(index), votes: BigInt(index % 10) }))
    const elected = electProducers(candidates, 21)
    assert.equal(elected.length, 21)
    assert.ok(elected.slice(0, 3).every((chosen) => candidates.find((candidate) => candidate.address === chosen)?.votes === 9n))
    assert.deepEqual(electProducers(candidates.slice(0, 5), 21).length, 5)
  })

  it('shuffles deterministically from the seed: a permutation, the same everywhere, different per seed', () => {
    const producers = Array.from({ length: 21 }, (_, index) => address(index))
    const seed = sha256(Uint8Array.of(1))
    const order = shuffleSchedule(producers, seed)
    assert.deepEqual([...order].sort(), [...producers].sort())
    assert.deepEqual(shuffleSchedule(producers, seed), order)
    assert.notDeepEqual(shuffleSchedule(producers, sha256(Uint8Array.of(2))), order)
  })

  it('gives each producer blocksPerTurn consecutive slots', () => {
    const schedule = ['a', 'b', 'c']
    const slots = Array.from({ length: 8 }, (_, slot) => producerOfSlot(schedule, slot + 100, 100, 2))
    assert.deepEqual(slots, ['a', 'a', 'b', 'b', 'c', 'c', 'a', 'a'])
    assert.equal(slotAt(10_500, 10_000, 250), 2)
  })

  it('makes a block irreversible once floor(2K/3) + 1 distinct producers confirmed it: with 5 of 21 offline it advances, with 8 it stops', () => {
    assert.equal(irreversibilityThreshold(21), 15)
    const producers = Array.from({ length: 21 }, (_, index) => address(index))
    const chainOf = (online: string[], length: number): Array<{ height: number, producer: string }> =>
      Array.from({ length }, (_, index) => ({ height: length - index, producer: online[(length - index) % online.length] as string }))
    assert.equal(lastIrreversibleHeight(chainOf(producers, 100), 21), 100 - 14, 'all online: 15 blocks back')
    assert.equal(lastIrreversibleHeight(chainOf(producers.slice(5), 100), 21), 100 - 14, '16 online still confirm')
    assert.equal(lastIrreversibleHeight(chainOf(producers.slice(8), 100), 21), null, '13 online never reach 15')
  })
})
