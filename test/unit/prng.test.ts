import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng } from '../../src/core/index.js'

describe('seeded PRNG', () => {
  it('repeats exactly for the same seed, and differs across seeds', () => {
    const draw = (seed: number): number[] => { const prng = createPrng(seed); return Array.from({ length: 32 }, () => prng.int(0, 1_000_000)) }
    assert.deepEqual(draw(42), draw(42))
    assert.notDeepEqual(draw(42), draw(43))
  })

  it('forks independent streams by label, unaffected by how much the parent drew', () => {
    const a = createPrng(7)
    const b = createPrng(7)
    for (let i = 0; i < 100; i++) b.float()
    assert.deepEqual(a.fork('net').bytes(16), b.fork('net').bytes(16))
    assert.notDeepEqual(createPrng(7).fork('net').bytes(16), createPrng(7).fork('disk').bytes(16))
  })

  it('keeps int within bounds and covers them, and shuffle is a permutation', () => {
    const prng = createPrng(1)
    const seen = new Set<number>()
    for (let i = 0; i < 2_000; i++) {
      const value = prng.int(3, 9)
      assert.ok(value >= 3 && value <= 9)
      seen.add(value)
    }
    assert.equal(seen.size, 7)
    const items = Array.from({ length: 50 }, (_, i) => i)
    assert.deepEqual(prng.shuffle(items).sort((x, y) => x - y), items)
  })

  it('refuses a seed outside 32 bits', () => {
    assert.throws(() => createPrng(-1), RangeError)
    assert.throws(() => createPrng(2 ** 32), RangeError)
    assert.throws(() => createPrng(1.5), RangeError)
  })
})
