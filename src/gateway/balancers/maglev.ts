/**
 * A Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI 2016, section 3.4): consistent hashing with a table of M slots (M prime) that
 * maps a key's hash to a backend in O(1), spreads slots evenly, and moves few slots when the
 * backend set changes.
 *
 * Each backend has a preference permutation of the slots, offset + j·skip (mod M), with offset in
 * [0, M) and skip in [1, M) from two independent hashes of its id; M prime makes every skip
 * coprime to M, so each permutation visits every slot. Backends take turns claiming their next
 * preferred slot that is still free until the table is full. Here the two hashes are disjoint
 * 48-bit pieces of SHA-256(id) (bytes 0-5 for the offset, 6-11 for the skip; bits of a
 * cryptographic digest are independent for this purpose), and a key's slot is the store ring's
 * own 48-bit `keyPosition(key)` (also SHA-256) mod M.
 *
 * Weights, as Envoy's MaglevLoadBalancer does it: in turn round r (from 1), a backend of weight w
 * claims a slot only while the turns it has taken are below r·w / w_max, so the heaviest backend
 * claims every round and one of half its weight every other round. Each backend claims in round
 * 1, so even a tiny weight holds at least one slot (when backends ≤ M). With equal weights this
 * is the paper's algorithm exactly, and every backend ends with ⌊M/n⌋ or ⌈M/n⌉ slots.
 *
 * Complexity: `lookup` O(1) (one SHA-256 of the key and an array read). Building is
 * O(M log M) expected probes (the coupon-collector bound the paper gives; its worst case is M²)
 * plus O(n) turn checks per round over about M·w_max/Σw rounds, i.e. O(M·(log M + w_max/w_mean))
 * in all, and M·4 bytes of table.
 */
import { sha256 } from '../../core/index.js'
import { keyPosition } from '../../store/index.js'
import { checkUpstreams, type BalancerUpstream } from './types.js'

/** The paper's smaller table size: a prime comfortably above 100 × the backends a gateway has. */
export const MAGLEV_TABLE_SIZE_DEFAULT = 65_537

const utf8 = new TextEncoder()

export class MaglevTable {
  /** M, the number of slots (a prime). */
  readonly size: number
  /** The backends in the order given. */
  readonly backends: readonly string[]
  /** slot → index into `backends` (unused when there are no backends). */
  private readonly slots: Int32Array

  constructor (backends: readonly BalancerUpstream[], size: number = MAGLEV_TABLE_SIZE_DEFAULT) {
    if (!isPrime(size)) throw new RangeError(`a Maglev table size must be a prime, got ${size}`)
    checkUpstreams(backends)
    this.size = size
    this.backends = backends.map((backend) => backend.id)
    this.slots = new Int32Array(size).fill(-1)
    if (backends.length > 0) this.populate(backends)
  }

  /** The backend for a key, or null without backends. O(1). */
  lookup (key: string): string | null {
    return this.backends.length === 0 ? null : this.at(this.slotOf(key))
  }

  /** The slot a key hashes to. */
  slotOf (key: string): number {
    return keyPosition(key) % this.size
  }

  /** The backend owning a slot (taken mod M), or null without backends. */
  at (slot: number): string | null {
    if (this.backends.length === 0) return null
    return this.backends[this.slots[((slot % this.size) + this.size) % this.size]]
  }

  /** How many slots each backend holds. O(M). */
  slotCounts (): Map<string, number> {
    const counts = new Map<string, number>(this.backends.map((id) => [id, 0]))
    if (this.backends.length === 0) return counts
    for (const owner of this.slots) {
      const id = this.backends[owner]
      counts.set(id, (counts.get(id) as number) + 1)
    }
    return counts
  }

  private populate (backends: readonly BalancerUpstream[]): void {
    const size = this.size
    const count = backends.length
    const next = new Float64Array(count) // each backend's next preferred slot
    const skip = new Float64Array(count)
    const turns = new Float64Array(count)
    let heaviest = 0
    for (let backend = 0; backend < count; backend++) {
      const digest = sha256(utf8.encode(backends[backend].id))
      next[backend] = read48(digest, 0) % size
      skip[backend] = (read48(digest, 6) % (size - 1)) + 1
      heaviest = Math.max(heaviest, backends[backend].weight)
    }
    let filled = 0
    for (let round = 1; filled < size; round++) {
      for (let backend = 0; backend < count && filled < size; backend++) {
        if (turns[backend] * heaviest >= round * backends[backend].weight) continue
        turns[backend]++
        let slot = next[backend]
        while (this.slots[slot] >= 0) {
          slot += skip[backend]
          if (slot >= size) slot -= size
        }
        this.slots[slot] = backend
        slot += skip[backend]
        next[backend] = slot >= size ? slot - size : slot
        filled++
      }
    }
  }
}

/** Big-endian 48-bit integer at `at` (exact in a double). */
function read48 (bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 8) | bytes[at + 1]) * 2 ** 32 + (((bytes[at + 2] << 24) | (bytes[at + 3] << 16) | (bytes[at + 4] << 8) | bytes[at + 5]) >>> 0)
}

function isPrime (value: number): boolean {
  if (!Number.isSafeInteger(value) || value < 2) return false
  if (value % 2 === 0) return value === 2
  for (let divisor = 3; divisor * divisor <= value; divisor += 2) if (value % divisor === 0) return false
  return true
}
