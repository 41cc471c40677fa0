/**
 * Lifeguard's dynamic suspicion timeout (Dadgar et al., 2018): a suspicion starts with a long
 * timeout that shrinks, logarithmically, as independent members confirm it. A member that many
 * others cannot reach is declared dead quickly; one that a single slow prober suspects gets time
 * to refute.
 */
export function suspicionTimeoutMs (confirmations: number, confirmationsExpected: number, timeoutMsMin: number, timeoutMsMax: number): number {
  if (confirmationsExpected < 1) return timeoutMsMin
  const fraction = Math.log(Math.min(confirmations, confirmationsExpected) + 1) / Math.log(confirmationsExpected + 1)
  return Math.max(timeoutMsMin, Math.round(timeoutMsMax - fraction * (timeoutMsMax - timeoutMsMin)))
}

/** How many times each node passes on one update: `multiplier * ceil(log10(n + 1))` (memberlist). */
export function retransmitLimit (multiplier: number, memberCount: number): number {
  return multiplier * Math.max(1, Math.ceil(Math.log10(memberCount + 1)))
}
