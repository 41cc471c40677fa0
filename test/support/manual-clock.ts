/**
 * A clock with timers that runs only when a test advances it: for unit tests of protocol pieces
 * that take `now`, `setTimer` and `clearTimer` from their environment.
 */
export interface ManualClock {
  now: () => number
  setTimer: (afterMs: number, fire: () => void) => number
  clearTimer: (id: number) => void
  /** Moves time forward by `ms`, firing due timers in order of due time, then of setting. */
  advance: (ms: number) => void
}

export function manualClock (): ManualClock {
  let now = 0
  let nextTimer = 1
  const timers = new Map<number, { at: number, fire: () => void }>()
  return {
    now: () => now,
    setTimer: (afterMs, fire) => { const id = nextTimer++; timers.set(id, { at: now + afterMs, fire }); return id },
    clearTimer: (id) => { timers.delete(id) },
    advance: (ms) => {
      const until = now + ms
      for (;;) {
        const due = [...timers].filter(([, timer]) => timer.at <= until).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0]
        if (due === undefined) break
        timers.delete(due[0])
        now = due[1].at
        due[1].fire()
      }
      now = until
    }
  }
}
