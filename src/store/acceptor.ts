/**
 * The CASPaxos acceptor of every key this node replicates. Its state per key is the highest
 * ballot it promised and the register it last accepted, with that register's ballot. Every
 * answer that reveals or depends on a change goes out only after the change is durable
 * (`disk.sync`): a replica that crashes and loses unsynced writes has never told anyone about
 * them.
 *
 * Two rules differ from textbook Paxos, both only ever refusing more:
 * - An accept must carry exactly the ballot the acceptor promised. Accepting ballot b promises
 *   b's successor (the same proposer's counter + 1), so the proposer that just won can skip the
 *   prepare round next time (CASPaxos's one-round-trip path); anyone else's prepare in between
 *   changes the promise and the skipped round is refused.
 * - A key with no record has the implicit promise (floor, "~"), where the floor is above the
 *   ballot of every tombstone this acceptor erased: a proposer with an old, low counter can never
 *   get a register accepted below a tombstone that another replica still holds.
 */
import { decodeCanonical, encodeCanonical, type Disk } from '../core/index.js'
import { ballotSchema, compareBallots, encodeAcceptorRecordDirect, registerSchema, successorBallot, type Ballot, type Register } from './messages.js'
import { z } from 'zod'

const RECORD_PREFIX = 'store/r/'
const FLOOR_KEY = 'store/floor'
/** Sorts above every node id (lowercase hex): the proposer of an implicit promise. */
export const IMPLICIT_PROPOSER = '~'

export interface AcceptorRecord {
  promised: Ballot
  accepted: { ballot: Ballot, register: Register } | null
}

const recordSchema = z.strictObject({
  promised: ballotSchema,
  accepted: z.strictObject({ ballot: ballotSchema, register: registerSchema }).nullable()
})

export interface AcceptorLimits {
  /** Records kept decoded in memory (the disk holds all of them). */
  acceptorRecordsCachedMax: number
}

export interface AcceptorStats {
  promises: number
  promisesRefused: number
  accepts: number
  acceptsRefused: number
  tombstonesErased: number
  corruptRecords: number
}

export type PromiseAnswer = { ok: true, accepted: AcceptorRecord['accepted'], promised: Ballot } | { ok: false, promised: Ballot, accepted: null }
export type AcceptAnswer = { ok: boolean, promised: Ballot }

/** A record's bytes on disk: `encodeCanonical` of it, written directly (every accept writes one on every replica). */
export function encodeAcceptorRecord (record: AcceptorRecord): Uint8Array {
  return encodeAcceptorRecordDirect(record) ?? encodeCanonical(record)
}

export class Acceptor {
  private readonly cache = new Map<string, AcceptorRecord>()
  private floor: number
  readonly stats: AcceptorStats = { promises: 0, promisesRefused: 0, accepts: 0, acceptsRefused: 0, tombstonesErased: 0, corruptRecords: 0 }

  constructor (private readonly disk: Disk, private readonly limits: AcceptorLimits) {
    const stored = disk.get(FLOOR_KEY)
    this.floor = stored === undefined ? 0 : z.number().int().min(0).parse(decodeCanonical(stored))
  }

  /** Prepare: promise `ballot` if it is above every promise made for the key. */
  prepare (key: string, ballot: Ballot): PromiseAnswer {
    const record = this.record(key)
    if (compareBallots(ballot, record.promised) <= 0) {
      this.stats.promisesRefused++
      return { ok: false, promised: record.promised, accepted: null }
    }
    record.promised = ballot
    this.write(key, record)
    this.stats.promises++
    return { ok: true, promised: ballot, accepted: record.accepted }
  }

  /** Accept: only for exactly the promised ballot (or again for the ballot already accepted: a duplicate). */
  accept (key: string, ballot: Ballot, register: Register): AcceptAnswer {
    const record = this.record(key)
    if (record.accepted !== null && compareBallots(record.accepted.ballot, ballot) === 0) return { ok: true, promised: record.promised }
    if (compareBallots(record.promised, ballot) !== 0) {
      this.stats.acceptsRefused++
      return { ok: false, promised: record.promised }
    }
    record.accepted = { ballot, register }
    record.promised = successorBallot(ballot)
    this.write(key, record)
    this.stats.accepts++
    return { ok: true, promised: record.promised }
  }

  /**
   * Whether the key's tombstone accepted at `ballot` may be erased here: it is what this acceptor
   * holds, with nothing promised since; or the key was erased here already.
   */
  erasable (key: string, ballot: Ballot): boolean {
    const record = this.stored(key)
    if (record === null) return this.floor > ballot[0]
    return record.accepted !== null && record.accepted.register.value === null &&
      compareBallots(record.accepted.ballot, ballot) === 0 &&
      compareBallots(record.promised, successorBallot(ballot)) === 0
  }

  /** Erases the tombstone if it is still erasable, raising the floor above its ballot first. */
  erase (key: string, ballot: Ballot): boolean {
    if (this.stored(key) === null || !this.erasable(key, ballot)) return false
    if (ballot[0] + 1 > this.floor) {
      this.floor = ballot[0] + 1
      this.disk.put(FLOOR_KEY, encodeCanonical(this.floor))
    }
    this.cache.delete(key)
    this.disk.delete(RECORD_PREFIX + key)
    this.stats.tombstonesErased++
    return true
  }

  /** The register accepted for a key here, if any (for status and tests). */
  acceptedRegister (key: string): Register | null {
    return this.stored(key)?.accepted?.register ?? null
  }

  floorCounter (): number {
    return this.floor
  }

  private record (key: string): AcceptorRecord {
    return this.stored(key) ?? { promised: [this.floor, IMPLICIT_PROPOSER], accepted: null }
  }

  private stored (key: string): AcceptorRecord | null {
    const cached = this.cache.get(key)
    if (cached !== undefined) return cached
    const bytes = this.disk.get(RECORD_PREFIX + key)
    if (bytes === undefined) return null
    let record: AcceptorRecord
    try {
      record = recordSchema.parse(decodeCanonical(bytes)) as AcceptorRecord
    } catch {
      // A record this node wrote that no longer decodes: refuse everything for the key rather
      // than forget a promise (a promise at the top ballot can never be exceeded).
      this.stats.corruptRecords++
      return { promised: [Number.MAX_SAFE_INTEGER, IMPLICIT_PROPOSER], accepted: null }
    }
    this.remember(key, record)
    return record
  }

  private write (key: string, record: AcceptorRecord): void {
    this.remember(key, record)
    this.disk.put(RECORD_PREFIX + key, encodeAcceptorRecord(record))
  }

  private remember (key: string, record: AcceptorRecord): void {
    this.cache.delete(key)
    this.cache.set(key, record)
    if (this.cache.size > this.limits.acceptorRecordsCachedMax) this.cache.delete(this.cache.keys().next().value as string)
  }
}
