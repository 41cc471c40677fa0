/**
 * The discrete-event kernel: virtual time, one event queue, one trace. Nothing here reads a real
 * clock, so a run is a pure function of its inputs and its seed.
 *
 * Events are ordered by (timeMs, insertion sequence): two events due at the same instant fire in
 * the order they were scheduled, which keeps runs reproducible without any tie-breaking by chance.
 *
 * An event may belong to a node incarnation (`EventOwner`). A crash ends the incarnation, so its
 * timers and the deliveries addressed to it never fire, exactly as a dead process never sees them.
 * A pause (a stop-the-world GC) holds the node's due events aside and fires them, in their
 * original order, the moment the pause ends.
 */
import { Heap, assert, createHasher, type Clock, type NodeId, type TimerId, type Timers } from '../core/index.js'
import { shortId } from './names.js'

export type EventId = number

/** A node incarnation: the node id plus an epoch that changes at every crash and restart. */
export interface EventOwner {
  readonly node: NodeId
  readonly epoch: number
}

export interface KernelStats {
  eventsFired: number
  /** Events that came due for a crashed incarnation and were discarded. */
  eventsDropped: number
  /** Events held aside because their node was paused when they came due. */
  eventsDeferred: number
  eventsPending: number
}

export interface SimKernelOptions {
  /** How many trace lines to keep in memory for reports; the hash covers all of them. */
  traceLinesKeptMax?: number
}

export const defaultTraceLinesKeptMax = 200
/** Trace lines folded into the running digest at once, so hashing stays cheap per line. */
const TRACE_BLOCK_LINES_MAX = 1_024

interface SimEvent {
  readonly id: EventId
  readonly timeMs: number
  readonly fire: () => void
  readonly owner: EventOwner | undefined
  /** Names the event in the trace if it is dropped (a delivery to a dead node, say). */
  readonly label: string | undefined
  cancelled: boolean
}

interface NodeLife {
  epoch: number
  up: boolean
  /** Set while paused: the instant the pause ends. */
  pausedUntilMs: number | null
  deferred: SimEvent[]
}

/** Events in (timeMs, id) order; ids grow with insertion, so equal times keep insertion order. */
function precedes (a: SimEvent, b: SimEvent): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.id < b.id)
}

/** An incremental trace digest whose value does not depend on when (or how often) it is read. */
class TraceDigest {
  private chainedHex = ''
  private block: string[] = []

  append (line: string): void {
    this.block.push(line)
    if (this.block.length >= TRACE_BLOCK_LINES_MAX) {
      this.chainedHex = this.digestOf(this.block)
      this.block = []
    }
  }

  hex (): string {
    return this.digestOf(this.block)
  }

  private digestOf (lines: string[]): string {
    return createHasher().update(this.chainedHex).update(lines.join('')).digestHex()
  }
}

export class SimKernel {
  private nowMs = 0
  private nextId = 1
  private running = false
  private readonly queue = new Heap<SimEvent>(precedes)
  private readonly pending = new Map<EventId, SimEvent>()
  private readonly lives = new Map<NodeId, NodeLife>()
  private readonly digest = new TraceDigest()
  private readonly recentLines: string[] = []
  private readonly traceLinesKeptMax: number
  private readonly kindCounts = new Map<string, number>()
  private readonly counters: KernelStats = { eventsFired: 0, eventsDropped: 0, eventsDeferred: 0, eventsPending: 0 }

  constructor (options: SimKernelOptions = {}) {
    this.traceLinesKeptMax = options.traceLinesKeptMax ?? defaultTraceLinesKeptMax
  }

  now (): number {
    return this.nowMs
  }

  /**
   * Schedules `fire` after `delayMs` of virtual time; an owned event follows its node's fate.
   * A labelled event that is dropped for that reason leaves a trace line saying so.
   */
  schedule (delayMs: number, fire: () => void, owner?: EventOwner, label?: string): EventId {
    assert(Number.isFinite(delayMs) && delayMs >= 0, `event delay must be a finite non-negative number, got ${delayMs}`)
    const event: SimEvent = { id: this.nextId++, timeMs: this.nowMs + delayMs, fire, owner, label, cancelled: false }
    this.queue.push(event)
    this.pending.set(event.id, event)
    return event.id
  }

  /** True when the event was still pending; it will not fire. */
  cancel (id: EventId): boolean {
    const event = this.pending.get(id)
    if (event === undefined) return false
    event.cancelled = true
    this.pending.delete(id)
    return true
  }

  /** Fires every event due within the next `durationMs`, then leaves the clock at the end. */
  runFor (durationMs: number): void {
    assert(durationMs >= 0, `runFor needs a non-negative duration, got ${durationMs}`)
    const endMs = this.nowMs + durationMs
    this.runLoop(endMs, () => false)
    this.nowMs = endMs
  }

  /**
   * Fires events until `predicate` holds (checked before the first event and after each one) or
   * `maxMs` of virtual time pass. Returns whether the predicate held.
   */
  runUntil (predicate: () => boolean, maxMs: number): boolean {
    assert(maxMs >= 0, `runUntil needs a non-negative bound, got ${maxMs}`)
    if (predicate()) return true
    const endMs = this.nowMs + maxMs
    if (this.runLoop(endMs, predicate)) return true
    this.nowMs = endMs
    return predicate()
  }

  private runLoop (endMs: number, predicate: () => boolean): boolean {
    assert(!this.running, 'the kernel does not run re-entrantly (runFor/runUntil called from an event)')
    this.running = true
    try {
      for (let next = this.queue.peek(); next !== undefined && next.timeMs <= endMs; next = this.queue.peek()) {
        this.queue.pop()
        if (next.cancelled) continue
        this.nowMs = next.timeMs
        this.dispatch(next)
        if (predicate()) return true
      }
      return false
    } finally {
      this.running = false
    }
  }

  private dispatch (event: SimEvent): void {
    const owner = event.owner
    if (owner !== undefined) {
      const life = this.lives.get(owner.node)
      if (life === undefined || !life.up || life.epoch !== owner.epoch) {
        this.drop(event)
        return
      }
      if (life.pausedUntilMs !== null) {
        life.deferred.push(event)
        this.counters.eventsDeferred++
        return
      }
    }
    this.fireNow(event)
  }

  private drop (event: SimEvent): void {
    this.pending.delete(event.id)
    this.counters.eventsDropped++
    if (event.label !== undefined) this.trace('event.drop', event.label)
  }

  private fireNow (event: SimEvent): void {
    this.pending.delete(event.id)
    this.counters.eventsFired++
    event.fire()
  }

  // --- node incarnations -------------------------------------------------------------------

  /** Registers a node that is up, and returns its first incarnation. */
  addNode (node: NodeId): EventOwner {
    assert(!this.lives.has(node), `node ${node} registered twice`)
    this.lives.set(node, { epoch: 0, up: true, pausedUntilMs: null, deferred: [] })
    this.trace('node.add', shortId(node))
    return { node, epoch: 0 }
  }

  /** The current incarnation of a registered node (dead while the node is down). */
  ownerOf (node: NodeId): EventOwner | undefined {
    const life = this.lives.get(node)
    return life === undefined ? undefined : { node, epoch: life.epoch }
  }

  isAlive (owner: EventOwner): boolean {
    const life = this.lives.get(owner.node)
    return life !== undefined && life.up && life.epoch === owner.epoch
  }

  isUp (node: NodeId): boolean {
    return this.lives.get(node)?.up === true
  }

  isPaused (node: NodeId): boolean {
    return this.lives.get(node)?.pausedUntilMs != null
  }

  /** Ends the node's incarnation: none of its pending or deferred events will ever fire. */
  crash (node: NodeId): void {
    const life = this.lifeOf(node)
    if (!life.up) return
    life.up = false
    life.epoch++
    life.pausedUntilMs = null
    this.trace('node.crash', shortId(node))
    const held = life.deferred
    life.deferred = []
    for (const event of held) if (!event.cancelled) this.drop(event)
  }

  /** Starts a new incarnation of a crashed node. */
  restart (node: NodeId): EventOwner {
    const life = this.lifeOf(node)
    assert(!life.up, `restart of ${node}, which is up`)
    life.up = true
    life.epoch++
    this.trace('node.restart', `${shortId(node)} epoch ${life.epoch}`)
    return { node, epoch: life.epoch }
  }

  /** Freezes the node for `durationMs`: its events wait, in order, until the pause ends. */
  pause (node: NodeId, durationMs: number): void {
    const life = this.lifeOf(node)
    if (!life.up) return
    const untilMs = Math.max(life.pausedUntilMs ?? 0, this.nowMs + durationMs)
    life.pausedUntilMs = untilMs
    this.trace('node.pause', `${shortId(node)} until ${untilMs}`)
    // A global event: the pause must end even though every event the node owns is held.
    this.schedule(untilMs - this.nowMs, () => {
      if (life.pausedUntilMs === untilMs) this.resume(node)
    })
  }

  /**
   * Ends a pause now. The held events fire right here, before anything else the node owns, so
   * their order is the order they would have had without the pause.
   */
  resume (node: NodeId): void {
    const life = this.lifeOf(node)
    if (life.pausedUntilMs === null) return
    life.pausedUntilMs = null
    const held = life.deferred
    life.deferred = []
    this.trace('node.resume', `${shortId(node)} held ${held.length}`)
    const epoch = life.epoch
    for (const event of held) {
      if (event.cancelled) continue
      if (!life.up || life.epoch !== epoch) { this.drop(event); continue }
      this.fireNow(event)
    }
  }

  private lifeOf (node: NodeId): NodeLife {
    const life = this.lives.get(node)
    assert(life !== undefined, `unknown node ${node}`)
    return life
  }

  /** Clock and timers for one incarnation: its timers die with it and wait out its pauses. */
  timersFor (owner: EventOwner): Clock & Timers {
    return {
      now: () => this.nowMs,
      setTimer: (afterMs: number, fire: () => void): TimerId => this.schedule(Math.max(0, afterMs), fire, owner),
      clearTimer: (id: TimerId) => { this.cancel(id) }
    }
  }

  /** Clock and timers that belong to no incarnation: a device (a disk, say) neither crashes nor pauses with its node. */
  worldTimers (): Clock & Timers {
    return {
      now: () => this.nowMs,
      setTimer: (afterMs: number, fire: () => void): TimerId => this.schedule(Math.max(0, afterMs), fire),
      clearTimer: (id: TimerId) => { this.cancel(id) }
    }
  }

  // --- trace --------------------------------------------------------------------------------

  /** Appends one line to the trace: every line is hashed, the last few are kept for reports. */
  trace (kind: string, details: string): void {
    const line = `${this.nowMs} ${kind} ${details}`
    this.digest.append(line + '\n')
    this.recentLines.push(line)
    if (this.recentLines.length > this.traceLinesKeptMax) this.recentLines.shift()
    this.kindCounts.set(kind, (this.kindCounts.get(kind) ?? 0) + 1)
  }

  /** SHA-256 over every trace line so far; reading it changes nothing. */
  traceHash (): string {
    return this.digest.hex()
  }

  recentTrace (): string[] {
    return this.recentLines.slice()
  }

  /** Trace lines per kind, sorted by kind. */
  traceCounts (): Record<string, number> {
    return Object.fromEntries([...this.kindCounts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }

  stats (): KernelStats {
    return { ...this.counters, eventsPending: this.pending.size }
  }
}
