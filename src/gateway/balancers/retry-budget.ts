/**
 * A retry budget (as Finagle's and Envoy's): retries may add at most `retryPercentMax` percent to
 * the requests sent, plus a floor of `retriesPerSecondMin` so a quiet gateway can still retry.
 * Without a budget, retries multiply load exactly when upstreams are failing, and a partial
 * outage becomes a full one. Pure: time comes in as `nowMs`.
 *
 * Each request deposits `retryPercentMax / 100` of a token (the balance is capped at
 * `tokensMax`, so a long calm spell cannot fund a storm); each retry spends one token, from the
 * deposits first, then from the floor bucket, which refills at `retriesPerSecondMin` and holds
 * at most one second's worth.
 */
export interface RetryBudgetPolicy {
  /** Retries may add this share of the requests, in percent. */
  retryPercentMax: number
  /** Retries allowed per second whatever the traffic. */
  retriesPerSecondMin: number
  /** The most tokens deposits can accumulate. */
  tokensMax: number
}

export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetPolicy> = Object.freeze({ retryPercentMax: 20, retriesPerSecondMin: 10, tokensMax: 100 })

export class RetryBudget {
  /** Saved-up retries, in hundredths of a retry (percent units), so whole percentages add exactly. */
  private depositsPercent = 0
  private floor: number
  private floorAtMs: number

  constructor (private readonly policy: Readonly<RetryBudgetPolicy>, nowMs: number) {
    this.floor = policy.retriesPerSecondMin
    this.floorAtMs = nowMs
  }

  /** A request was sent (first attempts only). */
  deposit (): void {
    this.depositsPercent = Math.min(this.policy.tokensMax * 100, this.depositsPercent + this.policy.retryPercentMax)
  }

  /** Spends one retry if the budget allows; false means do not retry. */
  tryWithdraw (nowMs: number): boolean {
    const elapsedMs = Math.max(0, nowMs - this.floorAtMs)
    this.floorAtMs = nowMs
    this.floor = Math.min(this.floorMax(), this.floor + elapsedMs * this.policy.retriesPerSecondMin / 1_000)
    if (this.depositsPercent >= 100) { this.depositsPercent -= 100; return true }
    if (this.floor >= 1) { this.floor -= 1; return true }
    return false
  }

  /** The floor bucket holds one second's worth, and at least one retry when the rate is above 0 (a rate of 0.5 means one every 2 s). */
  private floorMax (): number {
    return this.policy.retriesPerSecondMin > 0 ? Math.max(1, this.policy.retriesPerSecondMin) : 0
  }

  /** Whole retries available now (deposits plus floor), for status. */
  available (nowMs: number): number {
    const elapsedMs = Math.max(0, nowMs - this.floorAtMs)
    const floor = Math.min(this.floorMax(), this.floor + elapsedMs * this.policy.retriesPerSecondMin / 1_000)
    return Math.floor(this.depositsPercent / 100) + Math.floor(floor)
  }
}
