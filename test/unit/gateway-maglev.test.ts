/**
 * The Maglev lookup table (src/gateway/balancers/maglev.ts; Eisenbud et al., NSDI 2016, section
 * 3.4): every slot filled, the paper's balance with equal weights, weights in proportion, minimal
 * disruption when a backend leaves, and the same table from every instance.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { MAGLEV_TABLE_SIZE_DEFAULT, MaglevTable, type BalancerUpstream } from '../../src/gateway/balancers/index.js'

const M = MAGLEV_TABLE_SIZE_DEFAULT
const SMALL_M = 10_007 // prime; for the property runs, where building 65,537 slots each time would be slow

const backends = (count: number, weight = 1): BalancerUpstream[] => Array.from({ length: count }, (_, index) => ({ id: `backend-${index}`, weight }))

describe('Maglev table', () => {
  it('fills every slot with one of the backends', () => {
    const table = new MaglevTable(backends(10))
    assert.equal(table.size, 65_537)
    const ids = new Set(table.backends)
    for (let slot = 0; slot < table.size; slot++) {
      const owner = table.at(slot)
      if (owner === null || !ids.has(owner)) assert.fail(`slot ${slot} holds ${owner}`)
    }
    assert.equal([...table.slotCounts().values()].reduce((sum, count) => sum + count, 0), M)
  })

  // With equal weights every backend claims exactly one slot per round until the table is full,
  // so after the last (partial) round each holds ⌊M/n⌋ or ⌈M/n⌉ slots: the paper's balance claim,
  // far inside 1% of M/n.
  it('gives each of n equal backends ⌊M/n⌋ or ⌈M/n⌉ slots', () => {
    for (const n of [1, 2, 3, 7, 10, 100]) {
      const counts = [...new MaglevTable(backends(n)).slotCounts().values()]
      assert.equal(counts.length, n)
      for (const count of counts) assert.ok(count === Math.floor(M / n) || count === Math.ceil(M / n), `n = ${n}: a backend holds ${count} slots`)
    }
  })

  it('gives weights {2, 1} two thirds and one third of the slots', () => {
    const counts = new MaglevTable([{ id: 'a', weight: 2 }, { id: 'b', weight: 1 }]).slotCounts()
    assert.ok(Math.abs((counts.get('a') as number) - 2 * M / 3) < 1, `a holds ${counts.get('a')}`)
    assert.ok(Math.abs((counts.get('b') as number) - M / 3) < 1, `b holds ${counts.get('b')}`)
  })

  // Bound for any weights. A backend of weight w takes a turn in round r while its turns are below
  // r·w/W (W the largest weight), so after r full rounds it has ⌈r·w/W⌉ turns; the last round is
  // partial, so with R rounds a backend holds ⌈(R−1)·w/W⌉ + {0 or 1} slots, in [x·w, x·w + 2) for
  // x = (R−1)/W. Summing to M pins x to ((M − 2n)/Σw, M/Σw], so each count is within
  // max(2, 2n·w/Σw) of the exact share M·w/Σw.
  it('gives any weights their share of the slots within max(2, 2n·w/Σw)', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: 1, max: 10 }), fc.double({ min: 0.05, max: 5, noNaN: true })), { minLength: 1, maxLength: 8 }), (weights) => {
      const list = weights.map((weight, index) => ({ id: `w${index}`, weight }))
      const total = weights.reduce((sum, weight) => sum + weight, 0)
      const counts = new MaglevTable(list, SMALL_M).slotCounts()
      for (const { id, weight } of list) {
        const share = SMALL_M * weight / total
        const bound = Math.max(2, 2 * list.length * weight / total)
        const count = counts.get(id) as number
        assert.ok(Math.abs(count - share) < bound, `${id} (weight ${weight} of ${total}) holds ${count}, share ${share.toFixed(2)}`)
      }
    }), { numRuns: 60 })
  })

  // Removing one of 10 backends must move its own slots (10% of the table); an ideal consistent
  // hash moves nothing else. Maglev trades a little of that for its exact balance: the freed slots
  // change the order in which the others' preferences collide, so a few of their slots move too.
  // The paper reports this as a small fraction for M = 65,537; here, with SHA-256 permutations of
  // fixed ids (so the figure is exact, not a sample), it is 1.14% on average over the ten
  // possible removals and 1.40% at worst. Asserted: under 2% each, 1.5% on average. For contrast,
  // hashing a key mod n would move about 90% of the surviving keys.
  it('moves few of the other backends\' slots when one backend leaves', () => {
    const all = backends(10)
    const before = new MaglevTable(all)
    let sum = 0
    for (const leaving of all) {
      const after = new MaglevTable(all.filter((backend) => backend !== leaving))
      let kept = 0
      let moved = 0
      for (let slot = 0; slot < M; slot++) {
        const owner = before.at(slot)
        if (owner === leaving.id) {
          if (after.at(slot) === leaving.id) assert.fail(`slot ${slot} still goes to the removed ${leaving.id}`)
          continue
        }
        kept++
        if (after.at(slot) !== owner) moved++
      }
      const fraction = moved / kept
      assert.ok(fraction < 0.02, `removing ${leaving.id} moved ${(fraction * 100).toFixed(2)}% of the other backends' slots`)
      sum += fraction
    }
    assert.ok(sum / all.length < 0.015, `moved ${(sum / all.length * 100).toFixed(2)}% on average`)
  })

  it('builds the same table in every instance, so gateways agree on where a key goes', () => {
    const first = new MaglevTable(backends(10))
    const second = new MaglevTable(backends(10).map((backend) => ({ ...backend })))
    for (let slot = 0; slot < M; slot++) if (first.at(slot) !== second.at(slot)) assert.fail(`slot ${slot} differs`)
    for (let key = 0; key < 1_000; key++) assert.equal(first.lookup(`user:${key}`), second.lookup(`user:${key}`))
    assert.equal(first.slotOf('user:1'), second.slotOf('user:1'))
    assert.equal(first.at(first.slotOf('user:1')), first.lookup('user:1'))
  })

  it('answers null without backends, and refuses a table size that is not a prime and bad backends', () => {
    assert.equal(new MaglevTable([]).lookup('k'), null)
    assert.deepEqual(new MaglevTable([], 7).slotCounts(), new Map())
    for (const size of [0, 1, 4, 65_536, 10.5, -7]) assert.throws(() => new MaglevTable(backends(2), size), RangeError)
    assert.throws(() => new MaglevTable([{ id: 'a', weight: 1 }, { id: 'a', weight: 1 }]), RangeError)
    assert.throws(() => new MaglevTable([{ id: 'a', weight: 0 }]), RangeError)
    const tiny = new MaglevTable(backends(3), 7)
    assert.deepEqual([...tiny.slotCounts().values()].sort(), [2, 2, 3])
  })
})
