/**
 * Hybrid logical clock (Kulkarni, Demirbas, Madappa, Avva, Leone 2014, "Logical Physical Clocks
 * and Consistent Snapshots in Globally Distributed Databases"). A timestamp is a physical part,
 * which stays within the clock drift of real time so it can be compared with wall-clock time, and
 * a logical part that orders events within one physical millisecond. Timestamps respect causality
 * (a send precedes its receive) and never go backwards, even when the physical clock does.
 *
 * The clock is injected, so the simulator drives it on virtual time like any other protocol code.
 */
import { assert } from './errors.js'

export type HlcTimestamp = readonly [physicalMs: number, logical: number]

/** Orders timestamps: by physical part, then by logical part. */
export function compareHlc (a: HlcTimestamp, b: HlcTimestamp): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
  return 0
}

export interface HybridClockOptions {
  /** Remote timestamps further than this ahead of the local clock are refused. */
  driftMsMax?: number
}

export const DEFAULT_HLC_DRIFT_MS_MAX = 60_000

function isCounter (value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}

/**
 * A timestamp from the network is only folded in when both parts are counters and the logical
 * part leaves room for the increment a receive event makes: anything else would make the local
 * clock produce a timestamp that is not a safe integer pair.
 */
function isValidRemote (remote: unknown): remote is HlcTimestamp {
  if (!Array.isArray(remote) || remote.length !== 2) return false
  const [physicalMs, logical] = remote as unknown[]
  return isCounter(physicalMs) && isCounter(logical) && Number.isSafeInteger((logical as number) + 1)
}

export class HybridLogicalClock {
  private readonly clock: () => number
  private readonly driftMsMax: number
  private physicalMs = 0
  private logical = 0

  constructor (clock: () => number, options: HybridClockOptions = {}) {
    const driftMsMax = options.driftMsMax ?? DEFAULT_HLC_DRIFT_MS_MAX
    assert(Number.isSafeInteger(driftMsMax) && driftMsMax >= 0, `driftMsMax is a non-negative integer, got ${driftMsMax}`)
    this.clock = clock
    this.driftMsMax = driftMsMax
  }

  /** A local or send event: a timestamp greater than every one issued or observed before. */
  now (): HlcTimestamp {
    const physicalMs = Math.max(this.physicalMs, this.readClock())
    // Same physical part as before (the clock stalled, went back, or a remote is ahead of it): tick the logical part.
    this.logical = physicalMs === this.physicalMs ? this.logical + 1 : 0
    this.physicalMs = physicalMs
    return this.last()
  }

  /**
   * A receive event: folds a remote timestamp in (so the next now() exceeds it). Returns false and
   * changes nothing when remote's physical part is more than driftMsMax ahead of clock(), or when
   * remote is not a pair of safe non-negative integers; true otherwise.
   */
  observe (remote: HlcTimestamp): boolean {
    if (!isValidRemote(remote)) return false
    const clockMs = this.readClock()
    const [remotePhysicalMs, remoteLogical] = remote
    // A peer whose clock runs far ahead (or lies) would otherwise drag every clock it talks to into the future for good.
    if (remotePhysicalMs - clockMs > this.driftMsMax) return false
    const physicalMs = Math.max(this.physicalMs, remotePhysicalMs, clockMs)
    const fromLocal = physicalMs === this.physicalMs
    const fromRemote = physicalMs === remotePhysicalMs
    if (fromLocal && fromRemote) this.logical = Math.max(this.logical, remoteLogical) + 1
    else if (fromLocal) this.logical = this.logical + 1
    else if (fromRemote) this.logical = remoteLogical + 1
    else this.logical = 0
    this.physicalMs = physicalMs
    return true
  }

  /**
   * The last timestamp issued or observed (never advances). After observe it is the receive
   * event's own timestamp, which exceeds the remote one (the paper's receive rule).
   */
  last (): HlcTimestamp {
    return [this.physicalMs, this.logical]
  }

  /** Whole milliseconds: a fractional clock (performance.now) would make the physical part a float on the wire. */
  private readClock (): number {
    const clockMs = Math.floor(this.clock())
    assert(Number.isSafeInteger(clockMs) && clockMs >= 0, `the clock gives non-negative milliseconds, got ${clockMs}`)
    return clockMs
  }
}
