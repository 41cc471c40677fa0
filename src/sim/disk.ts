/**
 * The simulated disk. Reads see every write at once (the page cache); a write becomes durable
 * only when a `sync` issued after it completes; a crash throws away everything not yet durable.
 * The disk object outlives its node's incarnations: a restarted node reopens the same durable
 * state, as a process restarted on the same machine finds its files.
 *
 * The device keeps its own time: a sync completes (its writes become durable) when its latency
 * is up, even if the node is paused then. Only the callback belongs to the node: it runs in a
 * later event of the incarnation that asked, waits out a pause, and dies with a crash. So a crash
 * can find writes durable whose sync the node never heard complete, as a real one can.
 */
import { assert, type Clock, type Disk, type Prng, type Timers } from '../core/index.js'

export interface SimDiskInit {
  /** Clock and timers of the node incarnation using the disk: a sync's callback dies with it. */
  timers: Clock & Timers
  /** Clock and timers of the device, tied to no incarnation (`SimKernel.worldTimers()`): syncs complete on them. */
  device: Clock & Timers
  random: Prng
  syncLatencyMsMin?: number
  syncLatencyMsMax?: number
  /** Receives one line per crash, for the trace. */
  trace?: (kind: string, details: string) => void
}

export const defaultSyncLatencyMsMin = 1
export const defaultSyncLatencyMsMax = 20

export interface SimDiskStats {
  writes: number
  syncs: number
  /** Writes lost at crashes because no completed sync covered them. */
  writesLostAtCrash: number
}

interface PendingWrite {
  readonly sequence: number
  readonly key: string
  /** null records a delete. */
  readonly value: Uint8Array | null
}

export class SimDisk implements Disk {
  private timers: Clock & Timers
  private readonly device: Clock & Timers
  private readonly random: Prng
  private readonly syncLatencyMsMin: number
  private readonly syncLatencyMsMax: number
  private readonly trace: (kind: string, details: string) => void
  private visible = new Map<string, Uint8Array>()
  private readonly durable = new Map<string, Uint8Array>()
  /** Writes not yet durable, in issue order. */
  private pendingWrites: PendingWrite[] = []
  private lastSequence = 0
  /** Syncs complete in the order issued, as an fsync queue drains. */
  private lastSyncDoneMs = 0
  /** Bumped at each crash so a sync issued before it can never make anything durable. */
  private generation = 0
  private readonly counters: SimDiskStats = { writes: 0, syncs: 0, writesLostAtCrash: 0 }

  constructor (init: SimDiskInit) {
    this.timers = init.timers
    this.device = init.device
    this.random = init.random
    this.syncLatencyMsMin = init.syncLatencyMsMin ?? defaultSyncLatencyMsMin
    this.syncLatencyMsMax = init.syncLatencyMsMax ?? defaultSyncLatencyMsMax
    assert(this.syncLatencyMsMin >= 0 && this.syncLatencyMsMax >= this.syncLatencyMsMin, 'sync latency bounds must satisfy 0 <= min <= max')
    this.trace = init.trace ?? (() => {})
  }

  get (key: string): Uint8Array | undefined {
    const value = this.visible.get(key)
    return value === undefined ? undefined : value.slice()
  }

  put (key: string, value: Uint8Array): void {
    this.write(key, value.slice())
  }

  delete (key: string): void {
    this.write(key, null)
  }

  entries (prefix: string, limit = Number.POSITIVE_INFINITY, after?: string): Array<[string, Uint8Array]> {
    const keys = [...this.visible.keys()].filter((key) => key.startsWith(prefix) && (after === undefined || key > after)).sort()
    return keys.slice(0, limit).map((key) => [key, (this.visible.get(key) as Uint8Array).slice()])
  }

  sync (onDurable: () => void): void {
    this.counters.syncs++
    const coveredSequence = this.lastSequence
    const generation = this.generation
    const caller = this.timers
    const now = this.device.now()
    const doneMs = Math.max(now + this.random.int(this.syncLatencyMsMin, this.syncLatencyMsMax), this.lastSyncDoneMs)
    this.lastSyncDoneMs = doneMs
    this.device.setTimer(doneMs - now, () => {
      if (generation !== this.generation) return
      this.makeDurable(coveredSequence)
      caller.setTimer(0, onDurable)
    })
  }

  /** Loses every write no completed sync covered; reads then see the durable state. */
  crash (): void {
    this.generation++
    const lost = this.pendingWrites.length
    this.counters.writesLostAtCrash += lost
    this.pendingWrites = []
    this.visible = new Map(this.durable)
    this.lastSyncDoneMs = 0
    this.trace('disk.crash', `lost ${lost} unsynced writes`)
  }

  /** Binds the disk to a new incarnation's timers after a restart. */
  reopen (timers: Clock & Timers): void {
    this.timers = timers
  }

  /** The durable keys in order, for tests and reports. */
  durableKeys (): string[] {
    return [...this.durable.keys()].sort()
  }

  stats (): SimDiskStats {
    return { ...this.counters }
  }

  private write (key: string, value: Uint8Array | null): void {
    this.counters.writes++
    this.lastSequence++
    this.pendingWrites.push({ sequence: this.lastSequence, key, value })
    if (value === null) this.visible.delete(key)
    else this.visible.set(key, value)
  }

  private makeDurable (coveredSequence: number): void {
    let applied = 0
    for (const write of this.pendingWrites) {
      if (write.sequence > coveredSequence) break
      if (write.value === null) this.durable.delete(write.key)
      else this.durable.set(write.key, write.value)
      applied++
    }
    this.pendingWrites = this.pendingWrites.slice(applied)
  }
}
