/**
 * The consistent-hash ring that places the store's keys on nodes. Every node builds the same
 * ring from the same member list, so any node (and the gateway) can name a key's replicas
 * without asking anyone. Positions are the first 48 bits of SHA-256, exact in a JS number, so
 * the hot path compares plain numbers. Each member owns many virtual nodes (tokens), in
 * proportion to its weight, which evens out the arcs (a member's share deviates from its fair
 * share by about 1/sqrt(vnodes)) and lets a joining member take a little from every other
 * member instead of half of one neighbour. See docs/store.md "Ring".
 */
import { sha256, type NodeId } from '../core/index.js'
import { StoreError } from './errors.js'

export const DEFAULT_REPLICATION_FACTOR = 3
export const DEFAULT_VNODES_PER_WEIGHT = 128
export const DEFAULT_RING_VERSION = 1
/** Bits of SHA-256 used as a position: 48 bits are exact in a double and make token collisions negligible. */
export const RING_POSITION_BITS = 48
/** Positions are in [0, RING_POSITIONS). */
export const RING_POSITIONS = 2 ** RING_POSITION_BITS
/** The most tokens a ring may hold (all members' vnodes together): bounds memory (16 bytes a token) and build time. */
export const RING_TOKENS_MAX = 1_000_000

export interface RingMember {
  readonly id: NodeId
  /** Capacity relative to the other members, > 0; 1 when left out. A member gets max(1, round(vnodesPerWeight * weight)) tokens. */
  readonly weight: number
  /** Where the member serves the client API (e.g. `http://10.0.0.2:7070`), for redirects and the dashboard. */
  readonly api?: string
}

export interface RingInit {
  members: readonly RingMember[]
  /** Replicas per key; default DEFAULT_REPLICATION_FACTOR. May exceed the member count (lists are capped). */
  replicationFactor?: number
  /** Tokens per unit of weight; default DEFAULT_VNODES_PER_WEIGHT. */
  vnodesPerWeight?: number
  /** Bumped on every membership change so nodes can tell which ring a message was routed by; default 1. */
  version?: number
}

export interface RingMemberDescription {
  id: NodeId
  weight: number
  vnodes: number
  /** Fraction of the hash space this member owns as primary (the arcs ending at its tokens). */
  share: number
  api?: string
}

/** The body of GET /v1/cluster/ring. */
export interface RingDescription {
  version: number
  replicationFactor: number
  vnodesPerWeight: number
  members: RingMemberDescription[]
}

const utf8 = new TextEncoder()
/** Keys up to this many UTF-8 bytes are encoded into a reused buffer: `encode` allocates and costs several times more. */
const KEY_SCRATCH_BYTES = 1024
const keyScratch = new Uint8Array(KEY_SCRATCH_BYTES)

/** The key's position on the ring: the first 48 bits of SHA-256 of its UTF-8 bytes, big-endian. */
export function keyPosition (key: string): number {
  const digest = sha256(utf8Bytes(key))
  const high16 = (digest[0] << 8) | digest[1]
  const low32 = ((digest[2] << 24) | (digest[3] << 16) | (digest[4] << 8) | digest[5]) >>> 0
  return high16 * 2 ** 32 + low32
}

/** The key's UTF-8 bytes, valid until the next call (sha256 consumes them at once). */
function utf8Bytes (key: string): Uint8Array {
  const { read, written } = utf8.encodeInto(key, keyScratch)
  return read === key.length ? keyScratch.subarray(0, written) : utf8.encode(key)
}

/** How many bytes a key takes in UTF-8 (what the store's `keyBytesMax` limits), without allocating for short keys. */
export function utf8ByteLength (key: string): number {
  return utf8Bytes(key).length
}

/** The string hashed for a member's index-th token: a member keeps its tokens however the others change. */
export function tokenLabel (memberId: NodeId, index: number): string {
  return `${memberId}#${index}`
}

export class HashRing {
  readonly version: number
  readonly replicationFactor: number
  readonly vnodesPerWeight: number
  /** Sorted by id; a member's index here is what tokenOwners holds. */
  private readonly sortedMembers: readonly RingMember[]
  private readonly memberIndexById: ReadonlyMap<NodeId, number>
  private readonly vnodeCounts: Uint32Array
  /** Token positions, ascending; tokenOwners[i] is the member index owning tokenPositions[i]. */
  private readonly tokenPositions: Float64Array
  private readonly tokenOwners: Uint32Array
  /**
   * Scratch for the clockwise walks: memberVisitStamp[m] === visitStamp marks member m as taken
   * in the current walk. Bumping the stamp clears every mark at once, so a walk allocates
   * nothing. Safe because the walks are synchronous and never re-enter.
   */
  private readonly memberVisitStamp: Float64Array
  private visitStamp = 0

  constructor (init: RingInit) {
    this.replicationFactor = init.replicationFactor ?? DEFAULT_REPLICATION_FACTOR
    this.vnodesPerWeight = init.vnodesPerWeight ?? DEFAULT_VNODES_PER_WEIGHT
    this.version = init.version ?? DEFAULT_RING_VERSION
    validateSettings(this.replicationFactor, this.vnodesPerWeight, this.version)
    this.sortedMembers = normalizeMembers(init.members)
    this.memberIndexById = new Map(this.sortedMembers.map((member, index) => [member.id, index]))
    this.vnodeCounts = Uint32Array.from(this.sortedMembers, (member) => vnodeCount(this.vnodesPerWeight, member.weight))
    const tokenCount = this.vnodeCounts.reduce((sum, count) => sum + count, 0)
    if (tokenCount > RING_TOKENS_MAX) {
      throw new StoreError('STORE_RING_INVALID', `the ring would hold ${tokenCount} tokens, more than ${RING_TOKENS_MAX}`, { tokenCount, tokensMax: RING_TOKENS_MAX })
    }
    const tokens = buildTokens(this.sortedMembers, this.vnodeCounts, tokenCount)
    this.tokenPositions = tokens.positions
    this.tokenOwners = tokens.owners
    this.memberVisitStamp = new Float64Array(this.sortedMembers.length)
  }

  /** Sorted by id. */
  members (): readonly RingMember[] {
    return this.sortedMembers
  }

  member (id: NodeId): RingMember | undefined {
    const index = this.memberIndexById.get(id)
    return index === undefined ? undefined : this.sortedMembers[index]
  }

  /**
   * The first `count` (default replicationFactor, capped at the member count) distinct members
   * clockwise from the key's position. Runs on every request: one hash, one binary search, then
   * a walk that allocates nothing but the result.
   */
  preferenceList (key: string, count: number = this.replicationFactor): NodeId[] {
    if (!Number.isInteger(count) || count < 0) {
      throw new StoreError('STORE_BAD_REQUEST', `a preference list length must be a non-negative integer, not ${count}`, { count })
    }
    const wanted = Math.min(count, this.sortedMembers.length)
    const result: NodeId[] = []
    if (wanted === 0) return result
    const stamp = this.nextVisitStamp()
    const tokenCount = this.tokenPositions.length
    let token = this.firstTokenAtOrAfter(keyPosition(key))
    for (let steps = 0; steps < tokenCount && result.length < wanted; steps++) {
      const owner = this.tokenOwners[token]
      if (this.memberVisitStamp[owner] !== stamp) {
        this.memberVisitStamp[owner] = stamp
        result.push(this.sortedMembers[owner].id)
      }
      token = token + 1 === tokenCount ? 0 : token + 1
    }
    return result
  }

  /** preferenceList(key)[0]: the member owning the first token at or after the key. */
  owner (key: string): NodeId {
    return this.sortedMembers[this.tokenOwners[this.firstTokenAtOrAfter(keyPosition(key))]].id
  }

  /**
   * Bounded-load mode (Mirrokni, Thorup, Zadimoghaddam 2018, "Consistent Hashing with Bounded
   * Loads"): walk clockwise from the key and take the first member whose load + 1 <=
   * ceil(loadFactor * (totalLoad + 1) / members). Loads come from the caller (open connections,
   * in-flight requests); a member missing from `loads` has load 0. With loadFactor >= 1 some
   * member always has room, so the walk ends; no member ends above ceil(loadFactor * mean).
   * With no load anywhere this is owner(key). Throws STORE_RING_INVALID for loadFactor < 1.
   */
  ownerWithBoundedLoad (key: string, loads: ReadonlyMap<NodeId, number>, loadFactor: number): NodeId {
    if (!(loadFactor >= 1) || !Number.isFinite(loadFactor)) {
      throw new StoreError('STORE_RING_INVALID', `a bounded-load factor must be a finite number >= 1, not ${loadFactor}`, { loadFactor })
    }
    const memberLoads = this.sortedMembers.map((member) => loads.get(member.id) ?? 0)
    const totalLoad = memberLoads.reduce((sum, load) => sum + load, 0)
    const capacity = Math.ceil(loadFactor * (totalLoad + 1) / this.sortedMembers.length)
    const stamp = this.nextVisitStamp()
    const tokenCount = this.tokenPositions.length
    const start = this.firstTokenAtOrAfter(keyPosition(key))
    for (let steps = 0, token = start; steps < tokenCount; steps++, token = token + 1 === tokenCount ? 0 : token + 1) {
      const owner = this.tokenOwners[token]
      if (this.memberVisitStamp[owner] === stamp) continue
      this.memberVisitStamp[owner] = stamp
      if (memberLoads[owner] + 1 <= capacity) return this.sortedMembers[owner].id
    }
    // Only reachable with loads that break the arithmetic (negative, NaN): fall back to the plain owner.
    return this.sortedMembers[this.tokenOwners[start]].id
  }

  /**
   * A new ring with these members and version + 1, the same replication factor and vnodes per
   * weight. Tokens depend only on (member id, index), so an unchanged member's tokens stay put
   * and only keys on the arcs a joining member takes (or a leaving member held) move. A member
   * whose weight grows keeps its tokens and gains more.
   */
  withMembers (members: readonly RingMember[]): HashRing {
    return new HashRing({ members, replicationFactor: this.replicationFactor, vnodesPerWeight: this.vnodesPerWeight, version: this.version + 1 })
  }

  /** The JSON of GET /v1/cluster/ring. */
  /** Every virtual node as its position on the ring, a fraction in [0, 1), and its owner; ascending. For pictures of the ring. */
  tokens (): Array<{ position: number, member: NodeId }> {
    return Array.from(this.tokenPositions, (position, index) => ({ position: position / RING_POSITIONS, member: this.sortedMembers[this.tokenOwners[index] as number]?.id as NodeId }))
  }

  /** Where a key falls on the ring, as a fraction in [0, 1). */
  static keyFraction (key: string): number {
    return keyPosition(key) / RING_POSITIONS
  }

  describe (): RingDescription {
    const shares = this.primaryShares()
    return {
      version: this.version,
      replicationFactor: this.replicationFactor,
      vnodesPerWeight: this.vnodesPerWeight,
      members: this.sortedMembers.map((member, index) => ({
        id: member.id,
        weight: member.weight,
        vnodes: this.vnodeCounts[index],
        share: shares[index],
        ...(member.api === undefined ? {} : { api: member.api })
      }))
    }
  }

  /** Each member's fraction of the hash space as primary: token i owns the arc (token i-1, token i]. */
  private primaryShares (): number[] {
    const shares = new Array<number>(this.sortedMembers.length).fill(0)
    const tokenCount = this.tokenPositions.length
    for (let token = 0; token < tokenCount; token++) {
      const previous = token === 0 ? this.tokenPositions[tokenCount - 1] - RING_POSITIONS : this.tokenPositions[token - 1]
      shares[this.tokenOwners[token]] += (this.tokenPositions[token] - previous) / RING_POSITIONS
    }
    return shares
  }

  /** Binary search for the first token at or after the position, wrapping past the top to token 0. */
  private firstTokenAtOrAfter (position: number): number {
    const positions = this.tokenPositions
    let low = 0
    let high = positions.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (positions[middle] < position) low = middle + 1
      else high = middle
    }
    return low === positions.length ? 0 : low
  }

  private nextVisitStamp (): number {
    this.visitStamp += 1
    return this.visitStamp
  }
}

/**
 * Lamping and Veach 2014, "A Fast, Minimal Memory, Consistent Hash Algorithm": the bucket in
 * [0, buckets) for a 64-bit key. Kept as the reference for balance and movement (it is nearly
 * perfectly balanced and moves exactly 1/(n+1) of the keys on growth) and for its published
 * vectors; the store does not use it for placement because it only supports adding and removing
 * the highest-numbered bucket and has no weights. The 64-bit multiply runs on two 32-bit halves
 * (a BigInt per step would cost several times more); a negative key is taken modulo 2^64.
 */
export function jumpConsistentHash (key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 2 ** 31) {
    throw new StoreError('STORE_BAD_REQUEST', `jump hash needs an integer bucket count in [1, 2^31], not ${buckets}`, { buckets })
  }
  const unsigned = BigInt.asUintN(64, key)
  let high = Number(unsigned >> 32n)
  let low = Number(unsigned & 0xffffffffn)
  let bucket = -1
  let next = 0
  while (next < buckets) {
    bucket = next
    // key = key * 2862933555777941757 + 1 (mod 2^64), in 32-bit halves.
    const lowProductHigh = mulHigh32(low, JUMP_MULTIPLIER_LOW)
    const newLow = Math.imul(low, JUMP_MULTIPLIER_LOW) >>> 0
    let newHigh = (lowProductHigh + Math.imul(high, JUMP_MULTIPLIER_LOW) + Math.imul(low, JUMP_MULTIPLIER_HIGH)) >>> 0
    low = (newLow + 1) >>> 0
    if (low === 0) newHigh = (newHigh + 1) >>> 0
    high = newHigh
    // next = floor((bucket + 1) * 2^31 / ((key >>> 33) + 1))
    next = Math.floor((bucket + 1) * (2 ** 31 / ((high >>> 1) + 1)))
  }
  return bucket
}

/** 2862933555777941757 = 0x27BB2EE6_87B0B0FD, the 64-bit LCG multiplier of the paper. */
const JUMP_MULTIPLIER_HIGH = 0x27bb2ee6
const JUMP_MULTIPLIER_LOW = 0x87b0b0fd

/** The high 32 bits of the 64-bit product of two unsigned 32-bit integers, from 16-bit pieces (each partial product is exact in a double). */
function mulHigh32 (a: number, b: number): number {
  const a0 = a & 0xffff
  const a1 = a >>> 16
  const b0 = b & 0xffff
  const b1 = b >>> 16
  const lowLow = a0 * b0
  const lowHigh = a0 * b1
  const highLow = a1 * b0
  const middle = (lowLow >>> 16) + (lowHigh & 0xffff) + (highLow & 0xffff)
  return (a1 * b1 + (lowHigh >>> 16) + (highLow >>> 16) + (middle >>> 16)) >>> 0
}

function vnodeCount (vnodesPerWeight: number, weight: number): number {
  return Math.max(1, Math.round(vnodesPerWeight * weight))
}

function validateSettings (replicationFactor: number, vnodesPerWeight: number, version: number): void {
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new StoreError('STORE_RING_INVALID', `the replication factor must be an integer >= 1, not ${replicationFactor}`, { replicationFactor })
  }
  if (!Number.isFinite(vnodesPerWeight) || vnodesPerWeight <= 0) {
    throw new StoreError('STORE_RING_INVALID', `vnodes per weight must be a finite number > 0, not ${vnodesPerWeight}`, { vnodesPerWeight })
  }
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new StoreError('STORE_RING_INVALID', `a ring version must be a non-negative integer, not ${version}`, { version })
  }
}

/** Copies the members with the weight defaulted, sorted by id, after checking ids and weights. */
function normalizeMembers (members: readonly RingMember[]): RingMember[] {
  if (members.length === 0) throw new StoreError('STORE_RING_INVALID', 'a ring needs at least one member')
  const seen = new Set<NodeId>()
  const normalized = members.map((member): RingMember => {
    if (typeof member.id !== 'string' || member.id.length === 0) {
      throw new StoreError('STORE_RING_INVALID', 'a ring member needs a non-empty id', { id: member.id })
    }
    if (seen.has(member.id)) throw new StoreError('STORE_RING_INVALID', `member ${member.id} appears twice`, { id: member.id })
    seen.add(member.id)
    const weight = (member.weight as number | undefined) ?? 1
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
      throw new StoreError('STORE_RING_INVALID', `member ${member.id} has weight ${weight}; weights must be finite and > 0`, { id: member.id, weight })
    }
    return member.api === undefined ? { id: member.id, weight } : { id: member.id, weight, api: member.api }
  })
  return normalized.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

/** Every member's tokens, sorted by position; equal positions (vanishingly rare at 48 bits) by member index, then token index, so every node orders them alike. */
function buildTokens (members: readonly RingMember[], vnodeCounts: Uint32Array, tokenCount: number): { positions: Float64Array, owners: Uint32Array } {
  const unsortedPositions = new Float64Array(tokenCount)
  const unsortedOwners = new Uint32Array(tokenCount)
  let next = 0
  members.forEach((member, memberIndex) => {
    for (let index = 0; index < vnodeCounts[memberIndex]; index++, next++) {
      unsortedPositions[next] = keyPosition(tokenLabel(member.id, index))
      unsortedOwners[next] = memberIndex
    }
  })
  // Tokens were laid out by (member index, token index), so the original slot breaks ties.
  const order = Uint32Array.from({ length: tokenCount }, (_, slot) => slot)
  order.sort((a, b) => unsortedPositions[a] - unsortedPositions[b] || a - b)
  return {
    positions: Float64Array.from(order, (slot) => unsortedPositions[slot]),
    owners: Uint32Array.from(order, (slot) => unsortedOwners[slot])
  }
}
