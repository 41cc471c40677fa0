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
  const disk = new SimDisk({ timers: kernel.timersFor(owner), device: kernel.worldTimers(), random: createPrng(seed), syncLatencyMsMin: 5, syncLatencyMsMax: 50 })
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

  it('pages through a range in key order with `after`, never past the prefix', () => {
    const { disk } = setup()
    for (const key of ['p/c', 'p/a', 'q/a', 'p/b', 'o/z', 'p/d']) disk.put(key, Uint8Array.of(key.charCodeAt(2)))
    disk.delete('p/b')
    assert.deepEqual(disk.entries('p/', 2).map(([key]) => key), ['p/a', 'p/c'])
    assert.deepEqual(disk.entries('p/', 2, 'p/c').map(([key]) => key), ['p/d'])
    assert.deepEqual(disk.entries('p/', 2, 'p/d'), [])
    assert.deepEqual(disk.entries('p/', undefined, 'p/a').map(([key]) => key), ['p/c', 'p/d'])
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
    assert.deepEqual(disk.durableKeys(), [])
  })

  it('an unsynced delete is lost at a crash: the durable value comes back', () => {
    const { kernel, disk, crash } = setup()
    disk.put('k', bytes('v1'))
    disk.sync(() => {})
    kernel.runFor(100)
    disk.delete('k')
    assert.equal(disk.get('k'), undefined, 'the delete is visible at once')
    assert.deepEqual(disk.entries(''), [], 'and hidden from entries')
    crash()
    assert.equal(text(disk.get('k')), 'v1')
    assert.equal(disk.stats().writesLostAtCrash, 1)
  })

  it('a sync covers the latest value of an overwritten key, and later writes stay lost', () => {
    const { kernel, disk, crash } = setup()
    disk.put('k', bytes('1'))
    disk.put('k', bytes('2'))
    disk.sync(() => {})
    disk.put('k', bytes('3'))
    assert.equal(text(disk.get('k')), '3', 'reads see the newest write')
    kernel.runFor(100)
    crash()
    assert.equal(text(disk.get('k')), '2')
  })

  it('a restart sees the durable state only, and a sync after it works again', () => {
    const { kernel, disk, crash } = setup()
    disk.put('a', bytes('1'))
    disk.sync(() => {})
    kernel.runFor(100)
    disk.put('b', bytes('2'))
    crash()
    assert.deepEqual(disk.entries('').map(([key]) => key), ['a'])
    disk.put('c', bytes('3'))
    let durable = false
    disk.sync(() => { durable = true })
    kernel.runFor(100)
    assert.equal(durable, true)
    assert.deepEqual(disk.durableKeys(), ['a', 'c'])
  })

  it('a sync completes on the device while its node is paused; the callback waits for the resume', () => {
    const { kernel, disk } = setup()
    disk.put('k', bytes('v'))
    const calledAtMs: number[] = []
    disk.sync(() => { calledAtMs.push(kernel.now()) })
    kernel.pause('n', 500)
    kernel.runFor(100)
    assert.deepEqual(disk.durableKeys(), ['k'], 'durable although the node is frozen')
    assert.deepEqual(calledAtMs, [], 'the node hears nothing while paused')
    kernel.runFor(500)
    assert.deepEqual(calledAtMs, [500])
  })

  it('a crash during a pause keeps what the device made durable, without ever calling back', () => {
    const { kernel, disk, crash } = setup()
    disk.put('synced', bytes('1'))
    let called = false
    disk.sync(() => { called = true })
    disk.put('unsynced', bytes('2'))
    kernel.pause('n', 1_000)
    kernel.runFor(200)
    crash()
    kernel.runFor(2_000)
    assert.equal(called, false, 'the callback died with its incarnation')
    assert.equal(text(disk.get('synced')), '1', 'the completed sync survived the crash')
    assert.equal(disk.get('unsynced'), undefined)
    assert.equal(disk.stats().writesLostAtCrash, 1)
  })

  it('syncs complete in the order issued, after a latency drawn from the seed', () => {
    const completions = (seed: number): Array<{ sync: number, atMs: number, durable: string[] }> => {
      const { kernel, disk } = setup(seed)
      const done: Array<{ sync: number, atMs: number, durable: string[] }> = []
      for (let i = 0; i < 20; i++) {
        disk.put(`k${String(i).padStart(2, '0')}`, bytes(String(i)))
        disk.sync(() => { done.push({ sync: i, atMs: kernel.now(), durable: disk.durableKeys() }) })
        kernel.runFor(1)
      }
      kernel.runFor(10_000)
      return done
    }
    const first = completions(3)
    assert.deepEqual(first.map((entry) => entry.sync), Array.from({ length: 20 }, (_, i) => i), 'callbacks in issue order')
    for (const entry of first) {
      assert.ok(entry.atMs >= entry.sync + 5, `sync ${entry.sync} never before the minimum latency`)
      assert.ok(entry.durable.includes(`k${String(entry.sync).padStart(2, '0')}`), `sync ${entry.sync} made its write durable before calling back`)
    }
    assert.ok(new Set(first.map((entry) => entry.atMs - entry.sync)).size > 1, 'latencies are drawn, not constant')
    assert.deepEqual(completions(3), first, 'same seed, same latencies')
    assert.notDeepEqual(completions(4).map((entry) => entry.atMs), first.map((entry) => entry.atMs), 'another seed, other latencies')
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
