import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { SimKernel } from '../../src/sim/index.js'

describe('SimKernel', () => {
  it('fires events by time, and by insertion order at equal times', () => {
    const kernel = new SimKernel()
    const fired: string[] = []
    kernel.schedule(30, () => { fired.push('c') })
    kernel.schedule(10, () => { fired.push('a1') })
    kernel.schedule(20, () => { fired.push('b') })
    kernel.schedule(10, () => { fired.push('a2') })
    kernel.schedule(0, () => { fired.push('now') })
    kernel.runFor(25)
    assert.deepEqual(fired, ['now', 'a1', 'a2', 'b'])
    assert.equal(kernel.now(), 25)
    kernel.runFor(5)
    assert.deepEqual(fired, ['now', 'a1', 'a2', 'b', 'c'])
  })

  it('keeps order across many random insertions (heap property)', () => {
    const kernel = new SimKernel()
    const fired: Array<[number, number]> = []
    for (let i = 0; i < 500; i++) {
      const at = (i * 7919) % 101
      kernel.schedule(at, () => { fired.push([kernel.now(), i]) })
    }
    kernel.runFor(200)
    assert.equal(fired.length, 500)
    for (let i = 1; i < fired.length; i++) {
      const [previousTime, previousIndex] = fired[i - 1] as [number, number]
      const [time, index] = fired[i] as [number, number]
      assert.ok(previousTime < time || (previousTime === time && previousIndex < index), `order broken at ${i}`)
    }
  })

  it('events scheduled from events run at the right time', () => {
    const kernel = new SimKernel()
    const times: number[] = []
    const tick = (): void => { times.push(kernel.now()); if (times.length < 4) kernel.schedule(10, tick) }
    kernel.schedule(5, tick)
    kernel.runFor(100)
    assert.deepEqual(times, [5, 15, 25, 35])
  })

  it('cancel stops an event, once', () => {
    const kernel = new SimKernel()
    let fired = false
    const id = kernel.schedule(10, () => { fired = true })
    assert.equal(kernel.cancel(id), true)
    assert.equal(kernel.cancel(id), false)
    kernel.runFor(20)
    assert.equal(fired, false)
    assert.equal(kernel.stats().eventsPending, 0)
  })

  it('runUntil stops as soon as the predicate holds, or at the bound', () => {
    const kernel = new SimKernel()
    let count = 0
    for (let i = 1; i <= 10; i++) kernel.schedule(i * 10, () => { count++ })
    assert.equal(kernel.runUntil(() => count >= 3, 1_000), true)
    assert.equal(kernel.now(), 30)
    assert.equal(kernel.runUntil(() => count >= 100, 50), false)
    assert.equal(kernel.now(), 80)
    assert.equal(kernel.runUntil(() => true, 0), true)
  })

  it('a crash drops the incarnation\'s timers; the next incarnation\'s events fire', () => {
    const kernel = new SimKernel()
    const first = kernel.addNode('n')
    const fired: string[] = []
    kernel.schedule(10, () => { fired.push('old timer') }, first)
    kernel.schedule(10, () => { fired.push('global') })
    kernel.crash('n')
    kernel.schedule(5, () => { fired.push('while down') }, kernel.ownerOf('n'))
    const second = kernel.restart('n')
    kernel.schedule(10, () => { fired.push('new timer') }, second)
    kernel.runFor(20)
    assert.deepEqual(fired, ['global', 'new timer'])
    assert.equal(kernel.isAlive(first), false)
    assert.equal(kernel.isAlive(second), true)
    assert.equal(kernel.stats().eventsDropped, 2)
  })

  it('a pause defers the node\'s events, in order, to the moment it ends', () => {
    const kernel = new SimKernel()
    const owner = kernel.addNode('n')
    const fired: Array<[string, number]> = []
    const record = (name: string) => (): void => { fired.push([name, kernel.now()]) }
    kernel.schedule(10, record('n@10'), owner)
    kernel.schedule(20, record('other@20'))
    kernel.schedule(30, record('n@30'), owner)
    kernel.schedule(50, record('n@50'), owner)
    kernel.schedule(60, record('n@60'), owner)
    kernel.runFor(5)
    kernel.pause('n', 45)
    assert.equal(kernel.isPaused('n'), true)
    kernel.runFor(100)
    assert.deepEqual(fired, [['other@20', 20], ['n@10', 50], ['n@30', 50], ['n@50', 50], ['n@60', 60]])
    assert.equal(kernel.isPaused('n'), false)
    assert.equal(kernel.stats().eventsDeferred, 3)
  })

  it('a crash during a pause drops the held events, and the restarted node is not paused', () => {
    const kernel = new SimKernel()
    const owner = kernel.addNode('n')
    const fired: string[] = []
    kernel.schedule(10, () => { fired.push('held') }, owner)
    kernel.schedule(150, () => { fired.push('due after the pause') }, owner)
    kernel.pause('n', 100)
    kernel.runFor(50)
    assert.equal(kernel.stats().eventsDeferred, 1)
    kernel.crash('n')
    assert.equal(kernel.isPaused('n'), false)
    const next = kernel.restart('n')
    kernel.schedule(10, () => { fired.push(`new incarnation at ${kernel.now()}`) }, next)
    kernel.runFor(200)
    assert.deepEqual(fired, ['new incarnation at 60'], 'nothing of the old incarnation fires, the new one is not held')
    assert.equal(kernel.stats().eventsDropped, 2)
  })

  it('overlapping pauses end at the later end, and a shorter one does not cut a longer one short', () => {
    const kernel = new SimKernel()
    const owner = kernel.addNode('n')
    const firedAt: number[] = []
    kernel.schedule(1, () => { firedAt.push(kernel.now()) }, owner)
    kernel.pause('n', 100)
    kernel.runFor(10)
    kernel.pause('n', 20)
    kernel.runFor(80)
    assert.equal(kernel.isPaused('n'), true, 'still paused at 90')
    assert.deepEqual(firedAt, [])
    kernel.pause('n', 60)
    kernel.runFor(20)
    assert.equal(kernel.isPaused('n'), true, 'extended to 150')
    kernel.runFor(40)
    assert.deepEqual(firedAt, [150])
    assert.equal(kernel.isPaused('n'), false)
  })

  it('pausing a crashed node does nothing', () => {
    const kernel = new SimKernel()
    kernel.addNode('n')
    kernel.crash('n')
    kernel.pause('n', 100)
    assert.equal(kernel.isPaused('n'), false)
    assert.equal(kernel.isUp('n'), false)
  })

  it('world timers belong to no incarnation: a pause does not hold them, a crash does not drop them', () => {
    const kernel = new SimKernel()
    const owner = kernel.addNode('n')
    const world = kernel.worldTimers()
    const node = kernel.timersFor(owner)
    const fired: string[] = []
    world.setTimer(10, () => { fired.push(`world@${kernel.now()}`) })
    node.setTimer(10, () => { fired.push(`node@${kernel.now()}`) })
    world.setTimer(100, () => { fired.push(`world after crash@${kernel.now()}`) })
    const cancelled = world.setTimer(100, () => { fired.push('cancelled') })
    world.clearTimer(cancelled)
    kernel.pause('n', 50)
    kernel.runFor(60)
    kernel.crash('n')
    kernel.runFor(100)
    assert.deepEqual(fired, ['world@10', 'node@50', 'world after crash@100'])
  })

  it('hashes the trace deterministically, and reading the hash changes nothing', () => {
    const run = (peek: boolean): string => {
      const kernel = new SimKernel({ traceLinesKeptMax: 3 })
      for (let i = 0; i < 3_000; i++) {
        kernel.trace('step', `i=${i}`)
        if (peek && i % 700 === 0) kernel.traceHash()
      }
      return kernel.traceHash()
    }
    assert.equal(run(false), run(true))
    const kernel = new SimKernel({ traceLinesKeptMax: 3 })
    kernel.trace('a', 'x')
    const one = kernel.traceHash()
    kernel.trace('a', 'y')
    assert.notEqual(kernel.traceHash(), one)
    kernel.trace('b', 'z')
    kernel.trace('b', 'w')
    assert.deepEqual(kernel.recentTrace(), ['0 a y', '0 b z', '0 b w'])
    assert.deepEqual(kernel.traceCounts(), { a: 2, b: 2 })
  })
})
