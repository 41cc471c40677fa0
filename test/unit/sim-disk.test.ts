import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrng } from '../../src/core/index.js'
import { SimDisk, SimKernel } from '../../src/sim/index.js'

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined): string | undefined => value === undefined ? undefined : new TextDecoder().decode(value)

/** A disk on its own kernel, owned by node "n" so crash semantics match the cluster's. */
function setup (seed = 1): { kernel: SimKernel, disk: SimDisk, crash: () => void } {
  const kernel = new SimKernel()
  const owner = kernel.addNode('n')
  const disk = new SimDisk({ timers: kernel.timersFor(owner), random: createPrng(seed), syncLatencyMsMin: 5, syncLatencyMsMax: 50 })
  const crash = (): void => {
    kernel.crash('n')
    disk.crash()
    disk.reopen(kernel.timersFor(kernel.restart('n')))
  }
  return { kernel, disk, crash }
}

describe('SimDisk', () => {
  it('reads see writes at once, before any sync', () => {
    const { disk } = setup()
    disk.put('a', bytes('1'))
    assert.equal(text(disk.get('a')), '1')
    disk.delete('a')
    assert.equal(disk.get('a'), undefined)
  })

  it('loses unsynced writes at a crash and keeps synced ones', () => {
    const { kernel, disk, crash } = setup()
    disk.put('synced', bytes('yes'))
    let durable = false
    disk.sync(() => { durable = true })
    kernel.runFor(100)
    assert.ok(durable, 'the sync completed')
    disk.put('unsynced', bytes('no'))
    disk.put('synced', bytes('overwritten but not synced'))
    crash()
    assert.equal(text(disk.get('synced')), 'yes')
    assert.equal(disk.get('unsynced'), undefined)
    assert.equal(disk.stats().writesLostAtCrash, 2)
  })

  it('a sync covers exactly the writes issued before it', () => {
    const { kernel, disk, crash } = setup()
    disk.put('before', bytes('1'))
    let calls = 0
    disk.sync(() => { calls++ })
    disk.put('after', bytes('2'))
    kernel.runFor(100)
    assert.equal(calls, 1)
    assert.deepEqual(disk.durableKeys(), ['before'])
    crash()
    assert.equal(text(disk.get('before')), '1')
    assert.equal(disk.get('after'), undefined)
  })

  it('a crash before the sync completes loses the write, and the callback never runs', () => {
    const { kernel, disk, crash } = setup()
    disk.put('k', bytes('v'))
    let called = false
    disk.sync(() => { called = true })
    crash()
    kernel.runFor(1_000)
    assert.equal(called, false)
    assert.equal(disk.get('k'), undefined)
    assert.deepEqual(disk.durableKeys(), [])
  })

  it('a synced delete is durable too', () => {
    const { kernel, disk, crash } = setup()
    disk.put('k', bytes('v'))
    disk.sync(() => {})
    kernel.runFor(100)
    disk.delete('k')
    disk.sync(() => {})
    kernel.runFor(100)
    crash()
    assert.equal(disk.get('k'), undefined)
  })

  it('syncs complete in the order issued, after a latency drawn from the seed', () => {
    const completions = (seed: number): number[] => {
      const { kernel, disk } = setup(seed)
      const done: number[] = []
      for (let i = 0; i < 20; i++) {
        disk.put(`k${i}`, bytes(String(i)))
        disk.sync(() => { done.push(kernel.now()) })
      }
      kernel.runFor(10_000)
      return done
    }
    const first = completions(3)
    assert.equal(first.length, 20)
    assert.ok(first.every((time, i) => i === 0 || time >= (first[i - 1] as number)), 'in issue order')
    assert.ok(first.every((time) => time >= 5), 'never before the minimum latency')
    assert.deepEqual(completions(3), first, 'same seed, same latencies')
  })

  it('lists entries by prefix in key order, up to a limit, and copies values', () => {
    const { disk } = setup()
    for (const key of ['b/2', 'a/1', 'b/10', 'b/1', 'c/1']) disk.put(key, bytes(key))
    assert.deepEqual(disk.entries('b/').map(([key]) => key), ['b/1', 'b/10', 'b/2'])
    assert.deepEqual(disk.entries('b/', 2).map(([key]) => key), ['b/1', 'b/10'])
    assert.deepEqual(disk.entries('').map(([key]) => key), ['a/1', 'b/1', 'b/10', 'b/2', 'c/1'])
    const value = disk.get('a/1') as Uint8Array
    value[0] = 0
    assert.equal(text(disk.get('a/1')), 'a/1', 'a caller cannot mutate stored bytes')
  })
})
