/**
 * A causal session's dependency set (src/store/available.ts): per key the greatest stamp, bounded
 * to a number of named keys with the oldest folded into a floor stamp, and the stamp a read of a
 * key must see. Property: bounding never lowers what any key requires (the session's guarantees
 * only get more conservative), and the set never names more than the bound.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DEPENDENCY_FLOOR_KEY, compareStamps, joinDependencies, requiredStamp, type Dependencies, type Stamp } from '../../src/store/index.js'

const stamp = (physicalMs: number, logical = 0, node = 'n1'): Stamp => [physicalMs, logical, node]

describe('causal dependency sets', () => {
  it('keeps the greatest stamp per key, sorted by key', () => {
    const joined = joinDependencies(8, [['b', stamp(5)], ['a', stamp(3)]], [['a', stamp(7)], ['b', stamp(2)]])
    assert.deepEqual(joined, [['a', stamp(7)], ['b', stamp(5)]])
    assert.deepEqual(requiredStamp(joined, 'a'), stamp(7))
    assert.equal(requiredStamp(joined, 'c'), null, 'no floor: an unnamed key requires nothing')
  })

  it('folds the oldest keys into the floor beyond the bound, and drops named keys the floor covers', () => {
    const joined = joinDependencies(2, [['a', stamp(1)], ['b', stamp(2)], ['c', stamp(3)], ['d', stamp(4)]])
    assert.deepEqual(joined, [[DEPENDENCY_FLOOR_KEY, stamp(2)], ['c', stamp(3)], ['d', stamp(4)]])
    assert.deepEqual(requiredStamp(joined, 'a'), stamp(2), 'an evicted key requires the floor')
    assert.deepEqual(requiredStamp(joined, 'zzz'), stamp(2), 'so does any key never named')
    assert.deepEqual(requiredStamp(joined, 'd'), stamp(4))
    // A later, lower entry for a key the floor already covers is not named again.
    const again = joinDependencies(2, joined, [['a', stamp(1, 5)]])
    assert.deepEqual(again, joined)
  })

  it('property: bounding never lowers the stamp any key requires, and names at most the bound', () => {
    const entry = fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', DEPENDENCY_FLOOR_KEY), fc.nat(50), fc.nat(3), fc.constantFrom('n1', 'n2'))
      .map(([key, physical, logical, node]) => [key, stamp(physical, logical, node)] as const)
    fc.assert(fc.property(fc.array(fc.array(entry, { maxLength: 8 }), { maxLength: 4 }), fc.integer({ min: 1, max: 4 }), (sets, keysMax) => {
      const exact = joinDependencies(1_000, ...sets as Dependencies[])
      const bounded = joinDependencies(keysMax, ...sets as Dependencies[])
      assert.ok(bounded.filter(([key]) => key !== DEPENDENCY_FLOOR_KEY).length <= keysMax)
      for (const key of ['a', 'b', 'c', 'd', 'e', 'f', 'never']) {
        const wanted = requiredStamp(exact, key)
        const got = requiredStamp(bounded, key)
        if (wanted !== null) assert.ok(got !== null && compareStamps(got, wanted) >= 0, `${key}: ${JSON.stringify(got)} < ${JSON.stringify(wanted)}`)
      }
    }))
  })
})
