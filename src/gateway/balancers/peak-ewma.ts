/**
 * Peak EWMA latency estimates per upstream (Finagle's and Linkerd's `PeakEwma`), for p2c's load.
 * Envoy's least-request compares in-flight counts only; under a load that keeps every upstream
 * busy, a slow upstream then gets work until its in-flight count matches the fast ones', which
 * is a share of the requests large enough to set the p99. Weighing in-flight by a latency
 * estimate sends it almost nothing while it stays slow.
 *
 * - An answer slower than the estimate raises the estimate to it at once (the peak);
 *   a faster one moves it by an exponentially weighted average whose weight grows with the time
 *   since the last update (`decayMs` is the time constant), so a spike is forgotten over seconds.
 * - Read without new answers, the estimate decays toward zero with the same time constant, so an
 *   upstream that was slow and got no traffic is probed again after a while.
 * - An error or a 5xx counts as an answer of at least `errorPenaltyMs`: a fast failure must not
 *   look attractive.
 * - An upstream never heard from starts at `defaultRttMs` (1 ms by default: low, so a new upstream
 *   is tried soon, while its in-flight count still limits how many it gets before its first
 *   answer replaces the default), decaying from when it is first weighed; once a request is on
 *   its way there, the time waited so far is a lower bound of its estimate, so a slow new
 *   upstream does not collect a burst of requests before its first answer.
 *
 * Pure: time comes in as `nowMs`. O(1) per observation and per read.
 */
export interface PeakEwmaPolicy {
  /** The time constant of the average and of the decay, in milliseconds. */
  decayMs: number
  /** The estimate of an upstream not yet heard from, in milliseconds. */
  defaultRttMs: number
  /** The least an error or a 5xx counts as, in milliseconds. */
  errorPenaltyMs: number
}

export const DEFAULT_PEAK_EWMA: Readonly<PeakEwmaPolicy> = Object.freeze({ decayMs: 10_000, defaultRttMs: 1, errorPenaltyMs: 1_000 })

/**
 * `measured`: false while the estimate is still the default (the first answer replaces it);
 * `firstSentMs`: when the first request went to an upstream not yet measured.
 */
interface Estimate { rttMs: number, atMs: number, measured: boolean, firstSentMs: number | null }

export class PeakEwma {
  private readonly estimates = new Map<string, Estimate>()

  constructor (private readonly policy: Readonly<PeakEwmaPolicy> = DEFAULT_PEAK_EWMA) {
    if (!(policy.decayMs > 0) || !(policy.defaultRttMs >= 0) || !(policy.errorPenaltyMs >= 0)) throw new RangeError('peak EWMA: decayMs must be positive, defaultRttMs and errorPenaltyMs not negative')
  }

  /** An answer from `id` that took `rttMs`; `failed` for an error or a 5xx. */
  observe (id: string, rttMs: number, failed: boolean, nowMs: number): void {
    const sample = failed ? Math.max(rttMs, this.policy.errorPenaltyMs) : rttMs
    const estimate = this.estimates.get(id)
    if (estimate === undefined || !estimate.measured) { this.estimates.set(id, { rttMs: sample, atMs: nowMs, measured: true, firstSentMs: null }); return }
    const weight = Math.exp(-Math.max(0, nowMs - estimate.atMs) / this.policy.decayMs)
    estimate.rttMs = sample > estimate.rttMs ? sample : estimate.rttMs * weight + sample * (1 - weight)
    estimate.atMs = nowMs
  }

  /** The estimate now, in milliseconds: decayed toward zero since the last answer. */
  estimateMs (id: string, nowMs: number): number {
    let estimate = this.estimates.get(id)
    if (estimate === undefined) {
      // The default is a first estimate like any other: it decays, so an upstream that never
      // got a request (others being faster than the default) is tried after a while.
      estimate = { rttMs: this.policy.defaultRttMs, atMs: nowMs, measured: false, firstSentMs: null }
      this.estimates.set(id, estimate)
    }
    const decayed = estimate.rttMs * Math.exp(-Math.max(0, nowMs - estimate.atMs) / this.policy.decayMs)
    // Not measured yet but asked: its first answer takes at least as long as it has been waiting.
    return estimate.firstSentMs === null ? decayed : Math.max(decayed, nowMs - estimate.firstSentMs)
  }

  /** A request went to `id`: before its first answer, the wait so far is a lower bound of its latency. */
  sent (id: string, nowMs: number): void {
    const estimate = this.estimates.get(id)
    if (estimate === undefined) this.estimates.set(id, { rttMs: this.policy.defaultRttMs, atMs: nowMs, measured: false, firstSentMs: nowMs })
    else if (!estimate.measured && estimate.firstSentMs === null) estimate.firstSentMs = nowMs
  }

  /** p2c's load: the estimate times (in-flight + 1), so an idle slow upstream still costs its latency. */
  load (id: string, inFlight: number, nowMs: number): number {
    return this.estimateMs(id, nowMs) * (inFlight + 1)
  }

  forget (id: string): void {
    this.estimates.delete(id)
  }
}
