/** The binary heap pops in the caller's order, stably when the order is total. */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Heap } from '../../src/core/index.js'

it('pops every pushed item in order, across interleaved pushes and pops', () => {
  fc.assert(fc.property(fc.array(fc.option(fc.integer({ min: -50, max: 50 }), { freq: 3 }), { maxLength: 200 }), (steps) => {
    const heap = new Heap<{ key: number, id: number }>((a, b) => a.key < b.key || (a.key === b.key && a.id < b.id))
    const model: Array<{ key: number, id: number }> = []
    for (const [id, step] of steps.entries()) {
      if (step === null) {
        model.sort((a, b) => a.key - b.key || a.id - b.id)
        assert.deepEqual(heap.pop(), model.shift())
      } else {
        heap.push({ key: step, id })
        model.push({ key: step, id })
      }
      assert.equal(heap.size, model.length)
    }
  }), { numRuns: 300 })
  assert.equal(new Heap<number>((a, b) => a < b).pop(), undefined)
})
