/**
 * The upstreams' health as one state machine, pure (time comes in as `nowMs` arguments), so the
 * gateway's IO and the tests drive the same code.
 *
 * An upstream serves when every source of health agrees:
 * - **active checks** (`recordCheck`): `unhealthyThreshold` failed checks in a row take it out,
 *   `healthyThreshold` passed checks in a row bring it back (Envoy's and nginx plus's rule);
 * - **outlier detection** (`recordResult`): `consecutive5xx` answers of 5xx, or
 *   `consecutiveConnectFailures` connect failures or timeouts, eject it for
 *   `baseEjectionMs × times ejected` (capped at `ejectionMsMax`); every `baseEjectionMs` it then
 *   stays in service forgives one past ejection (Envoy's multiplier). At most
 *   `ejectionPercentMax` of the upstreams are ejected at once, but always at least one may be;
 * - **membership** (`setMembership`): a gateway attached to a cluster takes out the nodes the
 *   membership view holds dead or left.
 *
 * An upstream that comes back (or is new) starts slow: its weight ramps from
 * `slowStartMinWeightPercent` to full over `slowStartWindowMs`, as `(elapsed / window)^(1 /
 * aggression)` (Envoy's slow start). When fewer than `panicThresholdPercent` of the upstreams
 * serve, the gateway panics and balances over all of them, healthy or not (Envoy's panic mode):
 * sending to a possibly-bad upstream beats refusing everything.
 *
 * `eligible(nowMs)` gives the upstreams to balance over with their effective weights; it is
 * recomputed only when something changed or a slow-start step is due, so the per-request cost
 * is a comparison.
 */

export interface UpstreamSpec { readonly id: string, readonly weight: number }

export interface HealthPolicy {
  /** Failed active checks in a row that take an upstream out. */
  unhealthyThreshold: number
  /** Passed active checks in a row that bring it back. */
  healthyThreshold: number
  /** 5xx answers in a row that eject an upstream; 0 turns this off. */
  consecutive5xx: number
  /** Connect failures or timeouts in a row that eject an upstream; 0 turns this off. */
  consecutiveConnectFailures: number
  /** The first ejection's length; the n-th lasts n times as long. */
  baseEjectionMs: number
  /** No ejection lasts longer. */
  ejectionMsMax: number
  /** At most this share of the upstreams is ejected at once (at least one always may be). */
  ejectionPercentMax: number
  /** How long an upstream that comes back takes to reach its full weight; 0 turns slow start off. */
  slowStartWindowMs: number
  /** The weight it starts at, in percent of its configured weight. */
  slowStartMinWeightPercent: number
  /** 1 ramps linearly; larger ramps faster at first. */
  slowStartAggression: number
  /** Below this share of serving upstreams, balance over all of them. 0 turns panic mode off. */
  panicThresholdPercent: number
}

export const DEFAULT_HEALTH_POLICY: Readonly<HealthPolicy> = Object.freeze({
  unhealthyThreshold: 2,
  healthyThreshold: 2,
  consecutive5xx: 5,
  consecutiveConnectFailures: 3,
  baseEjectionMs: 10_000,
  ejectionMsMax: 300_000,
  ejectionPercentMax: 50,
  slowStartWindowMs: 5_000,
  slowStartMinWeightPercent: 10,
  slowStartAggression: 1,
  panicThresholdPercent: 50
})

/** Slow start moves the weight in this many steps over its window. */
export const SLOW_START_STEPS = 10

export type ResultKind = 'success' | '5xx' | 'connect-failure' | 'timeout'
export type MembershipState = 'alive' | 'suspect' | 'dead' | 'left'

export type UpstreamEvent =
  | { kind: 'ejected', id: string, forMs: number, times: number, reason: '5xx' | 'connect-failure', atMs: number }
  | { kind: 'ejection-refused', id: string, reason: '5xx' | 'connect-failure', atMs: number }
  | { kind: 'returned', id: string, atMs: number }
  | { kind: 'unhealthy', id: string, atMs: number }
  | { kind: 'healthy', id: string, atMs: number }
  | { kind: 'membership', id: string, state: MembershipState, atMs: number }
  | { kind: 'panic', panicking: boolean, serving: number, total: number, atMs: number }

export interface UpstreamStatus {
  id: string
  weight: number
  effectiveWeight: number
  serving: boolean
  activeHealthy: boolean
  membership: MembershipState | null
  ejected: boolean
  ejectedUntilMs: number | null
  ejections: number
  consecutive5xx: number
  consecutiveConnectFailures: number
  slowStartUntilMs: number | null
}

export interface EligibleSet {
  /** The upstreams to balance over, in configuration order, with their effective weights. */
  readonly upstreams: readonly UpstreamSpec[]
  /** True when too few serve and the set is every upstream (panic mode). */
  readonly panicking: boolean
  /** Increases whenever the set or a weight changes. */
  readonly generation: number
}

interface UpstreamState {
  spec: UpstreamSpec
  activeHealthy: boolean
  checkStreak: number
  membership: MembershipState | null
  ejectedUntilMs: number | null
  /** Ejections not yet forgiven: the next one lasts this + 1 times the base. */
  ejections: number
  /** When the last ejection ends (or the last forgiveness happened): service from then on earns forgiveness. */
  cleanSinceMs: number
  consecutive5xx: number
  consecutiveConnectFailures: number
  /** When the last health or membership change happened (for the time an upstream came back). */
  changedAtMs: number
  /** When it last came back into service, for slow start; null = full weight. */
  returnedAtMs: number | null
  serving: boolean
}

export class UpstreamSet {
  private readonly states = new Map<string, UpstreamState>()
  private order: string[] = []
  private current: EligibleSet = { upstreams: [], panicking: false, generation: 0 }
  private dirty = true
  /** The earliest time something changes by itself (an ejection ends, a slow-start step). */
  private nextChangeMs = Number.POSITIVE_INFINITY

  constructor (private readonly policy: Readonly<HealthPolicy>, private readonly onEvent: (event: UpstreamEvent) => void = () => {}) {}

  /**
   * Sets the upstreams (configuration order). Existing ones keep their health; new ones start
   * healthy and, unless this is the first set, slowly.
   */
  setUpstreams (specs: readonly UpstreamSpec[], nowMs: number): void {
    const first = this.order.length === 0
    const next = new Map<string, UpstreamState>()
    for (const spec of specs) {
      if (!(spec.weight > 0) || !Number.isFinite(spec.weight)) throw new RangeError(`upstream ${spec.id}: weight must be a positive number, got ${spec.weight}`)
      if (next.has(spec.id)) throw new RangeError(`upstream ${spec.id} appears twice`)
      const known = this.states.get(spec.id)
      next.set(spec.id, known === undefined
        ? { spec, activeHealthy: true, checkStreak: 0, membership: null, ejectedUntilMs: null, ejections: 0, cleanSinceMs: nowMs, changedAtMs: nowMs, consecutive5xx: 0, consecutiveConnectFailures: 0, returnedAtMs: first ? null : nowMs, serving: true }
        : { ...known, spec })
    }
    this.states.clear()
    for (const [id, state] of next) this.states.set(id, state)
    this.order = specs.map((spec) => spec.id)
    this.dirty = true
  }

  /** The set to balance over now. O(1) unless something changed. */
  eligible (nowMs: number): EligibleSet {
    if (this.dirty || nowMs >= this.nextChangeMs) this.recompute(nowMs)
    return this.current
  }

  /** The outcome of one proxied request. */
  recordResult (id: string, kind: ResultKind, nowMs: number): void {
    const state = this.states.get(id)
    if (state === undefined) return
    if (kind === 'success') {
      state.consecutive5xx = 0
      state.consecutiveConnectFailures = 0
      return
    }
    if (kind === '5xx') state.consecutive5xx++
    else state.consecutiveConnectFailures++
    const reason = kind === '5xx' ? '5xx' : 'connect-failure'
    const threshold = kind === '5xx' ? this.policy.consecutive5xx : this.policy.consecutiveConnectFailures
    const streak = kind === '5xx' ? state.consecutive5xx : state.consecutiveConnectFailures
    if (threshold <= 0 || streak < threshold || this.isEjected(state, nowMs)) return
    if (!this.mayEject(nowMs)) {
      this.onEvent({ kind: 'ejection-refused', id, reason, atMs: nowMs })
      return
    }
    this.forgive(state, nowMs)
    state.ejections++
    const forMs = Math.min(this.policy.baseEjectionMs * state.ejections, this.policy.ejectionMsMax)
    state.ejectedUntilMs = nowMs + forMs
    state.cleanSinceMs = state.ejectedUntilMs
    state.serving = false
    state.consecutive5xx = 0
    state.consecutiveConnectFailures = 0
    this.dirty = true
    this.onEvent({ kind: 'ejected', id, forMs, times: state.ejections, reason, atMs: nowMs })
  }

  /** The outcome of one active health check. */
  recordCheck (id: string, passed: boolean, nowMs: number): void {
    const state = this.states.get(id)
    if (state === undefined) return
    if (passed === (state.checkStreak >= 0)) state.checkStreak += passed ? 1 : -1
    else state.checkStreak = passed ? 1 : -1
    if (state.activeHealthy && -state.checkStreak >= this.policy.unhealthyThreshold) {
      state.activeHealthy = false
      state.serving = false
      this.dirty = true
      this.onEvent({ kind: 'unhealthy', id, atMs: nowMs })
    } else if (!state.activeHealthy && state.checkStreak >= this.policy.healthyThreshold) {
      state.activeHealthy = true
      state.changedAtMs = nowMs
      this.dirty = true
      this.onEvent({ kind: 'healthy', id, atMs: nowMs })
    }
  }

  /** The membership view's state of the node behind an upstream (null: not a cluster member). */
  setMembership (id: string, membership: MembershipState | null, nowMs: number): void {
    const state = this.states.get(id)
    if (state === undefined || state.membership === membership) return
    state.membership = membership
    state.changedAtMs = nowMs
    if (membership === 'dead' || membership === 'left') state.serving = false
    this.dirty = true
    if (membership !== null) this.onEvent({ kind: 'membership', id, state: membership, atMs: nowMs })
  }

  status (nowMs: number): UpstreamStatus[] {
    const eligible = this.eligible(nowMs)
    const weights = new Map(eligible.upstreams.map((spec) => [spec.id, spec.weight]))
    return this.order.map((id) => {
      const state = this.states.get(id) as UpstreamState
      const ejected = this.isEjected(state, nowMs)
      const slowStartUntilMs = state.returnedAtMs === null ? null : state.returnedAtMs + this.policy.slowStartWindowMs
      return {
        id,
        weight: state.spec.weight,
        effectiveWeight: weights.get(id) ?? 0,
        serving: state.serving,
        activeHealthy: state.activeHealthy,
        membership: state.membership,
        ejected,
        ejectedUntilMs: ejected ? state.ejectedUntilMs : null,
        ejections: state.ejections,
        consecutive5xx: state.consecutive5xx,
        consecutiveConnectFailures: state.consecutiveConnectFailures,
        slowStartUntilMs
      }
    })
  }

  private isEjected (state: UpstreamState, nowMs: number): boolean {
    return state.ejectedUntilMs !== null && nowMs < state.ejectedUntilMs
  }

  private mayEject (nowMs: number): boolean {
    let ejected = 0
    for (const state of this.states.values()) if (this.isEjected(state, nowMs)) ejected++
    const allowed = Math.max(1, Math.floor(this.states.size * this.policy.ejectionPercentMax / 100))
    return ejected < allowed
  }

  /** Each `baseEjectionMs` in service since the last ejection forgives one. */
  private forgive (state: UpstreamState, nowMs: number): void {
    if (state.ejections === 0) return
    const periods = Math.floor((nowMs - state.cleanSinceMs) / this.policy.baseEjectionMs)
    if (periods <= 0) return
    state.ejections = Math.max(0, state.ejections - periods)
    state.cleanSinceMs += periods * this.policy.baseEjectionMs
  }

  private recompute (nowMs: number): void {
    this.dirty = false
    let nextChangeMs = Number.POSITIVE_INFINITY
    const serving: UpstreamSpec[] = []
    for (const id of this.order) {
      const state = this.states.get(id) as UpstreamState
      // Computed lazily: an upstream came back at its last change, or when its ejection ended.
      let changedAtMs = state.changedAtMs
      if (state.ejectedUntilMs !== null && nowMs >= state.ejectedUntilMs) {
        changedAtMs = Math.max(changedAtMs, state.ejectedUntilMs)
        this.onEvent({ kind: 'returned', id, atMs: state.ejectedUntilMs })
        state.ejectedUntilMs = null
      }
      if (state.ejectedUntilMs !== null) nextChangeMs = Math.min(nextChangeMs, state.ejectedUntilMs)
      const up = state.ejectedUntilMs === null && state.activeHealthy && state.membership !== 'dead' && state.membership !== 'left'
      if (up && !state.serving) state.returnedAtMs = changedAtMs
      state.serving = up
      if (!up) continue
      const { weight, nextStepMs } = this.slowStartWeight(state, nowMs)
      nextChangeMs = Math.min(nextChangeMs, nextStepMs)
      serving.push({ id, weight })
    }
    const total = this.order.length
    const panicking = total > 0 && serving.length * 100 < this.policy.panicThresholdPercent * total
    const upstreams = panicking ? this.order.map((id) => ({ id, weight: (this.states.get(id) as UpstreamState).spec.weight })) : serving
    if (panicking !== this.current.panicking) this.onEvent({ kind: 'panic', panicking, serving: serving.length, total, atMs: nowMs })
    this.nextChangeMs = nextChangeMs
    if (sameSpecs(upstreams, this.current.upstreams) && panicking === this.current.panicking) return
    this.current = { upstreams, panicking, generation: this.current.generation + 1 }
  }

  /** The weight now, and when the next slow-start step is due (infinity once at full weight). */
  private slowStartWeight (state: UpstreamState, nowMs: number): { weight: number, nextStepMs: number } {
    const window = this.policy.slowStartWindowMs
    const full = state.spec.weight
    if (state.returnedAtMs === null || window <= 0) return { weight: full, nextStepMs: Number.POSITIVE_INFINITY }
    const elapsed = nowMs - state.returnedAtMs
    if (elapsed >= window) {
      state.returnedAtMs = null
      return { weight: full, nextStepMs: Number.POSITIVE_INFINITY }
    }
    const stepMs = window / SLOW_START_STEPS
    const step = Math.floor(elapsed / stepMs)
    const fraction = Math.max(this.policy.slowStartMinWeightPercent / 100, (step / SLOW_START_STEPS) ** (1 / this.policy.slowStartAggression))
    return { weight: full * Math.min(1, fraction), nextStepMs: state.returnedAtMs + (step + 1) * stepMs }
  }
}

function sameSpecs (a: readonly UpstreamSpec[], b: readonly UpstreamSpec[]): boolean {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) {
    if (a[index].id !== b[index].id || a[index].weight !== b[index].weight) return false
  }
  return true
}
