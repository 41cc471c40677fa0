/**
 * The causal consistency checker for the store's `causal` and `eventual` levels: causal
 * consistency with convergence (causal+, "CCv" in Bouajjani, Enea, Guerraoui and Hamza, "On
 * Verifying Causal Consistency", POPL 2017), with the versions the store recorded as the
 * arbitration (last-writer-wins) order. The history format, with its `version` field, is
 * docs/store-history.md.
 *
 * Reads are matched to writes by (key, version), which gives reads-from without a search. The
 * causal order is the transitive closure of session order (a client's operations by call time)
 * and reads-from (a write before each get that returned it). CCv then asks three things, each
 * checked in one pass over a topological order of that relation (Kahn's algorithm; whatever is
 * left over lies on or after a cycle):
 *
 * - the causal order is a partial order: no cycle;
 * - arbitration extends it: a write that causally follows another write of its key has a
 *   greater version (else, under last-writer-wins, it would lose to a write it depends on);
 * - every get returns the greatest version of its key in its causal past (or something greater):
 *   anything less is a stale read.
 *
 * For the last two each operation carries, per key, the write with the greatest version in its
 * causal past: the element-wise maximum of its predecessors' maps, plus the predecessor writes
 * themselves. A map is shared, not copied, when an operation adds nothing to it, and dropped once
 * every successor has been processed. Work is O(operations × keys) at worst, and each check O(1).
 *
 * Each violation names the session guarantee it breaks where one applies (Terry et al., "Session
 * Guarantees for Weakly Consistent Replicated Data", 1994): read-your-writes, monotonic reads,
 * monotonic writes, writes-follow-reads.
 */
import { CheckError, FAILURE_OPERATIONS_REPORTED_MAX, VERSION_PATTERN, describeOperation, normalizeHistory, type IndexedKvOperation, type KvHistoryOperation } from './linearizable.js'

export type CausalVerdict = 'causal' | 'not-causal'

export type CausalViolationKind =
  /** A get returned a (key, version, value) no write in the history (answered, or not) explains. */
  | 'thin-air-read'
  /** Two writes of one key were given the same version: last-writer-wins cannot order them. */
  | 'duplicate-version'
  /** Session order and reads-from form a cycle: some operation depends on itself. */
  | 'cyclic-causality'
  /** A write causally after another write of its key has a version that is not greater: it would lose to a write it depends on. */
  | 'causality-against-arbitration'
  /** A get returned a version less than the greatest one of its key in its causal past (or nothing, when that past has a write). */
  | 'stale-read'

export type SessionGuarantee =
  /** A session reads its own writes (or later ones). */
  | 'read-your-writes'
  /** A session's reads of a key never go back to an older version. */
  | 'monotonic-reads'
  /** One session's writes are seen, and ordered, in the order it made them. */
  | 'monotonic-writes'
  /** A write, or a read, that follows a read in a session is ordered after the write that read saw. */
  | 'writes-follow-reads'

export interface CausalViolation {
  kind: CausalViolationKind
  /** The key the violation is about; null for a cycle across keys. */
  key: string | null
  /** The session guarantee broken, where one names it. */
  guarantee: SessionGuarantee | null
  reason: string
  /** The operations involved, each with its index in the history, causes first (at most 2 × FAILURE_OPERATIONS_REPORTED_MAX for a cycle). */
  operations: IndexedKvOperation[]
}

export interface CausalReport {
  ok: boolean
  verdict: CausalVerdict
  operations: number
  /** Distinct clients. */
  sessions: number
  keys: number
  violations: CausalViolation[]
}

// ---------------------------------------------------------------------------------------------
// Versions

interface ParsedVersion { physicalMs: string, logical: string, node: string }

function parseVersion (version: string): ParsedVersion {
  const match = VERSION_PATTERN.exec(version)
  if (match === null) throw new CheckError('CHECK_BAD_HISTORY', `not a version: ${JSON.stringify(version)} (expected "<physicalMs>.<logical>.<node>")`, { version })
  return { physicalMs: withoutLeadingZeros(match[1] as string), logical: withoutLeadingZeros(match[2] as string), node: match[3] as string }
}

function withoutLeadingZeros (digits: string): string {
  const trimmed = digits.replace(/^0+/, '')
  return trimmed.length === 0 ? '0' : trimmed
}

/** Compares digit strings without leading zeros as numbers, of any length. */
function compareDigits (a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

function compareParsedVersions (a: ParsedVersion, b: ParsedVersion): number {
  return compareDigits(a.physicalMs, b.physicalMs) || compareDigits(a.logical, b.logical) || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
}

/**
 * The arbitration (last-writer-wins) order of versions: physical milliseconds numerically, then
 * the logical counter numerically, then the node id as a string. Negative, zero or positive, as
 * `Array.prototype.sort` wants. Throws a `CheckError` for a string that is not a version.
 */
export function compareVersions (a: string, b: string): number {
  return compareParsedVersions(parseVersion(a), parseVersion(b))
}

/** Ranks distinct versions 0, 1, ... in arbitration order. */
function rankVersions (versions: Iterable<string>): Map<string, number> {
  const parsed = [...new Set(versions)].map((version) => ({ version, parsed: parseVersion(version) }))
  parsed.sort((a, b) => compareParsedVersions(a.parsed, b.parsed))
  const ranks = new Map<string, number>()
  let rank = -1
  for (const [position, entry] of parsed.entries()) {
    // Versions equal in order (leading zeros) share a rank.
    const previous = parsed[position - 1]
    if (previous === undefined || compareParsedVersions(previous.parsed, entry.parsed) !== 0) rank++
    ranks.set(entry.version, rank)
  }
  return ranks
}

// ---------------------------------------------------------------------------------------------
// Describing operations

/** `describeOperation` with the version: `#3 client 1 put "a" [0, 10] @1700.0.n1`. */
export function describeVersionedOperation (operation: KvHistoryOperation, index?: number): string {
  const base = describeOperation(operation, index)
  return typeof operation.version === 'string' ? `${base} @${operation.version}` : base
}

// ---------------------------------------------------------------------------------------------
// The history, resolved: sessions, versions, reads-from

const NONE = -1

interface Resolved {
  operations: KvHistoryOperation[]
  /** Per operation: its session (dense ids), its key (dense ids). */
  sessionOf: Int32Array
  keyOf: Int32Array
  sessionCount: number
  keys: string[]
  sessionPrevious: Int32Array
  sessionNext: Int32Array
  /** Per get: the write it read (NONE: the initial nothing, or a thin-air read, or no answer). */
  readsFrom: Int32Array
  /** Per write: the rank of its version (NONE: none known). Per get: the rank of the version it returned (NONE: nothing). */
  rank: Int32Array
  /** Per operation: the version it has, or was given because a get read it (an unanswered write). */
  version: Array<string | null>
  /** Gets left out of the causal order: they read a version no write explains. */
  thinAir: Uint8Array
  violations: CausalViolation[]
}

function badOperation (index: number, field: string, problem: string): CheckError {
  return new CheckError('CHECK_BAD_HISTORY', `operation at index ${index}, field ${field}: ${problem}`, { index, field })
}

/** The causal format's checks on top of `normalizeHistory`'s: no cas; every answer carries its version. */
function checkCausalFormat (operations: readonly KvHistoryOperation[]): void {
  for (const [index, operation] of operations.entries()) {
    if (operation.op === 'cas') throw badOperation(index, 'op', 'cas is not offered at the causal and eventual levels')
    if (operation.return_ns === null) continue
    if (operation.op === 'get' && operation.version === undefined) throw badOperation(index, 'version', 'a get that returned needs the version it read (null when it found nothing)')
    if (operation.op !== 'get' && typeof operation.version !== 'string') throw badOperation(index, 'version', `a ${operation.op} that returned needs the version the store gave it`)
  }
}

/** Session order: each client's operations by call time. Nothing may follow an operation that never returned. */
function orderSessions (operations: readonly KvHistoryOperation[]): { sessionOf: Int32Array, sessionCount: number, sessionPrevious: Int32Array, sessionNext: Int32Array } {
  const count = operations.length
  const sessionIds = new Map<string | number, number>()
  const members: number[][] = []
  const sessionOf = new Int32Array(count)
  for (const [index, operation] of operations.entries()) {
    let session = sessionIds.get(operation.client)
    if (session === undefined) {
      sessionIds.set(operation.client, session = members.length)
      members.push([])
    }
    sessionOf[index] = session
    members[session]?.push(index)
  }
  const sessionPrevious = new Int32Array(count).fill(NONE)
  const sessionNext = new Int32Array(count).fill(NONE)
  for (const indices of members) {
    indices.sort((a, b) => (operations[a] as KvHistoryOperation).call_ns - (operations[b] as KvHistoryOperation).call_ns || a - b)
    for (let position = 1; position < indices.length; position++) {
      const previous = indices[position - 1] as number
      const current = indices[position] as number
      if ((operations[previous] as KvHistoryOperation).return_ns === null) {
        throw badOperation(current, 'client', `client ${String(operations[current]?.client)} goes on after operation at index ${previous}, which never returned; a client that gets no answer must go on under a new name`)
      }
      sessionPrevious[current] = previous
      sessionNext[previous] = current
    }
  }
  return { sessionOf, sessionCount: members.length, sessionPrevious, sessionNext }
}

/** What a write leaves as the key's value: a put its value, a delete nothing. */
function writtenValue (operation: KvHistoryOperation): string | null {
  return operation.op === 'put' ? operation.value as string : null
}

function isWrite (operation: KvHistoryOperation): boolean {
  return operation.op === 'put' || operation.op === 'delete'
}

function resolve (history: readonly KvHistoryOperation[]): Resolved {
  const operations = normalizeHistory(history)
  checkCausalFormat(operations)
  const count = operations.length
  const { sessionOf, sessionCount, sessionPrevious, sessionNext } = orderSessions(operations)
  const keyIds = new Map<string, number>()
  const keyOf = new Int32Array(count)
  for (const [index, operation] of operations.entries()) {
    let key = keyIds.get(operation.key)
    if (key === undefined) keyIds.set(operation.key, key = keyIds.size)
    keyOf[index] = key
  }
  const versions = operations.flatMap((operation) => typeof operation.version === 'string' ? [operation.version] : [])
  const ranks = rankVersions(versions)
  const resolved: Resolved = {
    operations,
    sessionOf,
    keyOf,
    sessionCount,
    keys: [...keyIds.keys()],
    sessionPrevious,
    sessionNext,
    readsFrom: new Int32Array(count).fill(NONE),
    rank: new Int32Array(count).fill(NONE),
    version: operations.map((operation) => operation.version ?? null),
    thinAir: new Uint8Array(count),
    violations: []
  }
  for (const [index, operation] of operations.entries()) {
    if (typeof operation.version === 'string') resolved.rank[index] = ranks.get(operation.version) as number
  }
  resolveReads(resolved)
  return resolved
}

/** The answered writes of each key by version; the ones that never returned, by key. */
function indexWrites (resolved: Resolved): { answered: Map<string, Map<string, number[]>>, unanswered: Map<string, number[]> } {
  const answered = new Map<string, Map<string, number[]>>()
  const unanswered = new Map<string, number[]>()
  for (const [index, operation] of resolved.operations.entries()) {
    if (!isWrite(operation)) continue
    if (operation.return_ns === null) {
      let writes = unanswered.get(operation.key)
      if (writes === undefined) unanswered.set(operation.key, writes = [])
      writes.push(index)
      continue
    }
    let byVersion = answered.get(operation.key)
    if (byVersion === undefined) answered.set(operation.key, byVersion = new Map())
    const version = operation.version as string
    let writes = byVersion.get(version)
    if (writes === undefined) byVersion.set(version, writes = [])
    writes.push(index)
  }
  return { answered, unanswered }
}

/**
 * Reads-from: each get that returned is matched to the write of its key with its version and
 * value. A version no answered write has may belong to a write that never returned (the client
 * gave up, the store applied it anyway): the gets returning it are matched to such a write of the
 * same key and value, called before they returned, which takes that version. Otherwise the get is
 * a thin-air read.
 */
function resolveReads (resolved: Resolved): void {
  const { operations, readsFrom, rank, thinAir, violations } = resolved
  const { answered, unanswered } = indexWrites(resolved)
  for (const [key, byVersion] of answered) {
    for (const [version, writes] of byVersion) {
      if (writes.length < 2) continue
      violations.push({
        kind: 'duplicate-version',
        key,
        guarantee: null,
        reason: `${writes.length} writes of key ${JSON.stringify(key)} have version ${version}: last-writer-wins cannot order them, so replicas may keep different ones`,
        operations: writes.slice(0, FAILURE_OPERATIONS_REPORTED_MAX).map((index) => indexed(operations, index))
      })
    }
  }
  const thinAirRead = (get: number, why: string, writer?: number): void => {
    thinAir[get] = 1
    rank[get] = NONE
    const operation = operations[get] as KvHistoryOperation
    violations.push({
      kind: 'thin-air-read',
      key: operation.key,
      guarantee: null,
      reason: `${describeVersionedOperation(operation, get)} ${why}`,
      operations: writer === undefined ? [indexed(operations, get)] : [indexed(operations, writer), indexed(operations, get)]
    })
  }
  // Gets whose version no answered write of their key has, grouped by (key, version).
  const pending = new Map<string, Map<string, number[]>>()
  for (const [index, operation] of operations.entries()) {
    if (operation.op !== 'get' || operation.return_ns === null) continue
    const version = operation.version as string | null
    const output = operation.output as string | null
    if (version === null) {
      if (output !== null) thinAirRead(index, `returned ${JSON.stringify(output)} without a version: every value comes from a write, and every write has one`)
      continue
    }
    const writes = answered.get(operation.key)?.get(version)
    if (writes === undefined) {
      let byVersion = pending.get(operation.key)
      if (byVersion === undefined) pending.set(operation.key, byVersion = new Map())
      let gets = byVersion.get(version)
      if (gets === undefined) byVersion.set(version, gets = [])
      gets.push(index)
      continue
    }
    const writer = writes.find((write) => writtenValue(operations[write] as KvHistoryOperation) === output)
    if (writer !== undefined) readsFrom[index] = writer
    else thinAirRead(index, `returned ${quote(output)}, but version ${version} of key ${JSON.stringify(operation.key)} is ${describeVersionedOperation(operations[writes[0] as number] as KvHistoryOperation, writes[0])}`, writes[0])
  }
  adoptUnansweredWrites(resolved, pending, unanswered, thinAirRead)
}

/**
 * The gets of each unknown (key, version), earliest deadline first, take a write of that key that
 * never returned, has the value they read, was called before the earliest of them returned, and
 * has no version yet. Candidates for an earlier deadline are candidates for every later one, so
 * taking any eligible write never leaves a later group without one it could have had.
 */
function adoptUnansweredWrites (resolved: Resolved, pending: Map<string, Map<string, number[]>>, unanswered: Map<string, number[]>, thinAirRead: (get: number, why: string, writer?: number) => void): void {
  const { operations, readsFrom, rank, version: versionOf } = resolved
  const groups: Array<{ key: string, version: string, gets: number[], deadline: number }> = []
  for (const [key, byVersion] of pending) {
    for (const [version, gets] of byVersion) {
      gets.sort((a, b) => returnOf(operations, a) - returnOf(operations, b) || a - b)
      groups.push({ key, version, gets, deadline: returnOf(operations, gets[0] as number) })
    }
  }
  groups.sort((a, b) => a.deadline - b.deadline)
  for (const { key, version, gets, deadline } of groups) {
    const first = operations[gets[0] as number] as KvHistoryOperation
    const value = first.output as string | null
    const candidates = unanswered.get(key) ?? []
    const writer = candidates
      .filter((write) => versionOf[write] === null && writtenValue(operations[write] as KvHistoryOperation) === value && (operations[write] as KvHistoryOperation).call_ns <= deadline)
      .sort((a, b) => (operations[a] as KvHistoryOperation).call_ns - (operations[b] as KvHistoryOperation).call_ns || a - b)[0]
    if (writer === undefined) {
      for (const get of gets) thinAirRead(get, `returned version ${version}, which no write of key ${JSON.stringify(key)} has, and no write that never returned could have written ${quote(operations[get]?.output as string | null)} before it returned`)
      continue
    }
    versionOf[writer] = version
    rank[writer] = rank[gets[0] as number] as number
    for (const get of gets) {
      const output = operations[get]?.output as string | null
      if (output === value) readsFrom[get] = writer
      else thinAirRead(get, `returned ${quote(output)}, but version ${version} of key ${JSON.stringify(key)} is ${describeVersionedOperation(operations[writer] as KvHistoryOperation, writer)} (it never returned; gets saw it with that version)`, writer)
    }
  }
}

function returnOf (operations: readonly KvHistoryOperation[], index: number): number {
  return (operations[index] as KvHistoryOperation).return_ns as number
}

function indexed (operations: readonly KvHistoryOperation[], index: number): IndexedKvOperation {
  return { ...(operations[index] as KvHistoryOperation), index }
}

function quote (value: string | null): string {
  return value === null ? 'nothing' : JSON.stringify(value)
}

// ---------------------------------------------------------------------------------------------
// The causal order, in topological order

/**
 * What a session has seen so far, per key: its own write with the greatest version, its get
 * that returned the greatest version, and the get through which the greatest version in its
 * causal past arrived (the "bridge", for explaining a dependency across sessions).
 */
interface SessionMemory {
  ownWrite: Map<number, number>
  greatestRead: Map<number, number>
  bridge: Map<number, number>
}

interface Walk {
  resolved: Resolved
  /** Per operation: the greatest write of each key in its causal past, itself included (null once no successor needs it). */
  past: Array<Int32Array | null>
  empty: Int32Array
  sessions: SessionMemory[]
  /** Per write: the gets that read it. */
  readerStart: Int32Array
  readers: Int32Array
}

function buildReaders (resolved: Resolved): { readerStart: Int32Array, readers: Int32Array } {
  const count = resolved.operations.length
  const readerStart = new Int32Array(count + 1)
  for (let get = 0; get < count; get++) {
    const writer = resolved.readsFrom[get] as number
    if (writer !== NONE) readerStart[writer + 1]++
  }
  for (let index = 0; index < count; index++) readerStart[index + 1] = (readerStart[index + 1] as number) + (readerStart[index] as number)
  const readers = new Int32Array(readerStart[count] as number)
  const filled = readerStart.slice(0, count)
  for (let get = 0; get < count; get++) {
    const writer = resolved.readsFrom[get] as number
    if (writer !== NONE) readers[filled[writer]++] = get
  }
  return { readerStart, readers }
}

/**
 * Kahn's algorithm over session order and reads-from. Each operation is checked when it comes
 * up, against the maps of its predecessors. Returns the operations never reached: those on or
 * after a cycle.
 */
function walkCausalOrder (resolved: Resolved): Int32Array {
  const { operations, sessionPrevious, sessionNext, readsFrom } = resolved
  const count = operations.length
  const { readerStart, readers } = buildReaders(resolved)
  const walk: Walk = {
    resolved,
    past: new Array<Int32Array | null>(count).fill(null),
    empty: new Int32Array(resolved.keys.length).fill(NONE),
    sessions: Array.from({ length: resolved.sessionCount }, () => ({ ownWrite: new Map(), greatestRead: new Map(), bridge: new Map() })),
    readerStart,
    readers
  }
  const waiting = new Int32Array(count)
  const uses = new Int32Array(count)
  const ready: number[] = []
  for (let index = 0; index < count; index++) {
    waiting[index] = (sessionPrevious[index] !== NONE ? 1 : 0) + (readsFrom[index] !== NONE ? 1 : 0)
    uses[index] = (sessionNext[index] !== NONE ? 1 : 0) + (readerStart[index + 1] as number) - (readerStart[index] as number)
    if (waiting[index] === 0) ready.push(index)
  }
  const release = (index: number): void => {
    if (--uses[index] === 0) walk.past[index] = null
  }
  for (let head = 0; head < ready.length; head++) {
    const index = ready[head] as number
    visit(walk, index)
    if (uses[index] === 0) walk.past[index] = null
    const previous = sessionPrevious[index] as number
    const writer = readsFrom[index] as number
    if (previous !== NONE) release(previous)
    if (writer !== NONE) release(writer)
    const next = sessionNext[index] as number
    if (next !== NONE && --waiting[next] === 0) ready.push(next)
    for (let position = readerStart[index] as number; position < (readerStart[index + 1] as number); position++) {
      const reader = readers[position] as number
      if (--waiting[reader] === 0) ready.push(reader)
    }
  }
  return waiting
}

function visit (walk: Walk, index: number): void {
  const { operations, sessionPrevious } = walk.resolved
  const previous = sessionPrevious[index] as number
  const before = previous === NONE ? walk.empty : walk.past[previous] as Int32Array
  const operation = operations[index] as KvHistoryOperation
  if (isWrite(operation)) visitWrite(walk, index, before)
  else if (operation.op === 'get' && operation.return_ns !== null && walk.resolved.thinAir[index] === 0) visitGet(walk, index, before)
  else walk.past[index] = before
}

function visitWrite (walk: Walk, index: number, before: Int32Array): void {
  const { rank, keyOf, sessionOf } = walk.resolved
  const own = rank[index] as number
  // A write that never returned and that no get saw has no version: nothing depends on it.
  if (own === NONE) {
    walk.past[index] = before
    return
  }
  const key = keyOf[index] as number
  const greatest = before[key] as number
  const memory = walk.sessions[sessionOf[index] as number] as SessionMemory
  if (greatest !== NONE && (rank[greatest] as number) >= own) reportAgainstArbitration(walk, index, greatest, memory)
  if (greatest === NONE || (rank[greatest] as number) < own) {
    const past = before.slice()
    past[key] = index
    walk.past[index] = past
  } else {
    walk.past[index] = before
  }
  const ownGreatest = memory.ownWrite.get(key)
  if (ownGreatest === undefined || (rank[ownGreatest] as number) < own) memory.ownWrite.set(key, index)
}

function visitGet (walk: Walk, index: number, before: Int32Array): void {
  const { rank, keyOf, sessionOf, readsFrom } = walk.resolved
  const key = keyOf[index] as number
  const read = rank[index] as number
  const memory = walk.sessions[sessionOf[index] as number] as SessionMemory
  // What the read itself brings (its writer's past) cannot make it stale: a greater version of
  // the key there is the writer's own causality-against-arbitration, reported at the writer.
  const greatest = before[key] as number
  if (greatest !== NONE && (rank[greatest] as number) > read) reportStaleRead(walk, index, greatest, memory)
  const writer = readsFrom[index] as number
  walk.past[index] = writer === NONE ? before : merge(walk, index, before, walk.past[writer] as Int32Array, memory)
  const greatestRead = memory.greatestRead.get(key)
  if (read !== NONE && (greatestRead === undefined || (rank[greatestRead] as number) < read)) memory.greatestRead.set(key, index)
}

/** The element-wise greatest of two pasts; `before` itself when the writer's past adds nothing. */
function merge (walk: Walk, index: number, before: Int32Array, writerPast: Int32Array, memory: SessionMemory): Int32Array {
  const { rank } = walk.resolved
  let merged: Int32Array | null = null
  for (let key = 0; key < before.length; key++) {
    const theirs = writerPast[key] as number
    if (theirs === NONE) continue
    const ours = before[key] as number
    if (ours !== NONE && (rank[ours] as number) >= (rank[theirs] as number)) continue
    merged ??= before.slice()
    merged[key] = theirs
    memory.bridge.set(key, index)
  }
  return merged ?? before
}

// ---------------------------------------------------------------------------------------------
// Reports

function reportAgainstArbitration (walk: Walk, write: number, greatest: number, memory: SessionMemory): void {
  const { operations, rank, keyOf, readsFrom, version } = walk.resolved
  const key = keyOf[write] as number
  const own = rank[write] as number
  const ownEarlier = memory.ownWrite.get(key)
  const describe = (index: number): string => describeVersionedOperation({ ...(operations[index] as KvHistoryOperation), version: version[index] }, index)
  const operation = operations[write] as KvHistoryOperation
  if (ownEarlier !== undefined && (rank[ownEarlier] as number) >= own) {
    walk.resolved.violations.push({
      kind: 'causality-against-arbitration',
      key: operation.key,
      guarantee: 'monotonic-writes',
      reason: `${describe(write)} follows ${describe(ownEarlier)} in its session, but its version is not greater: last-writer-wins keeps the earlier write`,
      operations: [indexed(operations, ownEarlier), indexed(operations, write)]
    })
    return
  }
  const bridge = memory.bridge.get(key)
  const via = bridge === undefined ? NONE : readsFrom[bridge] as number
  const path = bridge === undefined
    ? ''
    : via === greatest
      ? `, which its session read in ${describe(bridge)}`
      : `, which precedes ${describe(via)}, which its session read in ${describe(bridge)}`
  walk.resolved.violations.push({
    kind: 'causality-against-arbitration',
    key: operation.key,
    guarantee: 'writes-follow-reads',
    reason: `${describe(write)} causally follows ${describe(greatest)}${path}, but its version is not greater: last-writer-wins keeps the earlier write`,
    operations: [greatest, ...(via === NONE || via === greatest ? [] : [via]), ...(bridge === undefined ? [] : [bridge]), write].map((index) => indexed(operations, index))
  })
}

function reportStaleRead (walk: Walk, get: number, greatest: number, memory: SessionMemory): void {
  const { operations, rank, keyOf, readsFrom, version } = walk.resolved
  const key = keyOf[get] as number
  const read = rank[get] as number
  const writer = readsFrom[get] as number
  const describe = (index: number): string => describeVersionedOperation({ ...(operations[index] as KvHistoryOperation), version: version[index] }, index)
  const operation = operations[get] as KvHistoryOperation
  const returned = writer === NONE ? 'returned nothing' : `returned version ${version[get] as string}`
  const withRead = (involved: number[]): IndexedKvOperation[] => [...involved, get, ...(writer === NONE ? [] : [writer])].map((index) => indexed(operations, index))
  const push = (guarantee: SessionGuarantee, reason: string, involved: number[]): void => {
    walk.resolved.violations.push({ kind: 'stale-read', key: operation.key, guarantee, reason: `${describe(get)} ${returned}, but ${reason}`, operations: withRead(involved) })
  }
  const ownWrite = memory.ownWrite.get(key)
  if (ownWrite !== undefined && (rank[ownWrite] as number) > read) {
    push('read-your-writes', `its session wrote ${describe(ownWrite)} before`, [ownWrite])
    return
  }
  const earlierRead = memory.greatestRead.get(key)
  if (earlierRead !== undefined && (rank[earlierRead] as number) > read) {
    const earlierWriter = readsFrom[earlierRead] as number
    push('monotonic-reads', `its session read a greater version before, in ${describe(earlierRead)}`, [earlierWriter, earlierRead])
    return
  }
  const bridge = memory.bridge.get(key)
  const via = bridge === undefined ? NONE : readsFrom[bridge] as number
  if (bridge === undefined || via === NONE) {
    push('writes-follow-reads', `${describe(greatest)} is in its causal past`, [greatest])
    return
  }
  // The greater version reached this session through a read of another write `via`, which depends on it.
  const sameWriterSession = walk.resolved.sessionOf[via] === walk.resolved.sessionOf[greatest]
  push(
    sameWriterSession ? 'monotonic-writes' : 'writes-follow-reads',
    `its session read ${describe(via)} in ${describe(bridge)}, and that write ${sameWriterSession ? 'follows, in its own session,' : 'causally follows'} ${describe(greatest)}`,
    [greatest, via, bridge]
  )
}

/** Finds cycles among the operations the walk never reached: each has a predecessor that was not reached either. */
function reportCycles (resolved: Resolved, waiting: Int32Array): void {
  const { operations, sessionPrevious, readsFrom } = resolved
  const count = operations.length
  const walkOf = new Int32Array(count)
  const leftover = (index: number): boolean => index !== NONE && (waiting[index] as number) > 0
  let walks = 0
  for (let start = 0; start < count; start++) {
    if (!leftover(start) || walkOf[start] !== 0) continue
    walks++
    const path: number[] = []
    let node = start
    while (walkOf[node] === 0) {
      walkOf[node] = walks
      path.push(node)
      // Every leftover operation waits for a leftover predecessor; reads-from first, for short cycles.
      node = leftover(readsFrom[node] as number) ? readsFrom[node] as number : sessionPrevious[node] as number
    }
    if (walkOf[node] !== walks) continue
    const backwards = path.slice(path.indexOf(node)).reverse()
    // Start at the earliest operation in the history, for a stable report.
    const first = backwards.indexOf(Math.min(...backwards))
    const cycle = [...backwards.slice(first), ...backwards.slice(0, first)]
    resolved.violations.push(describeCycle(resolved, cycle))
  }
}

function describeCycle (resolved: Resolved, cycle: number[]): CausalViolation {
  const { operations, sessionPrevious, sessionOf } = resolved
  const shownMax = 2 * FAILURE_OPERATIONS_REPORTED_MAX
  const shown = cycle.slice(0, shownMax)
  const describe = (index: number): string => describeVersionedOperation(operations[index] as KvHistoryOperation, index)
  const steps = shown.map((index, position) => {
    const next = cycle[(position + 1) % cycle.length] as number
    return `${describe(index)} -(${sessionPrevious[next] === index ? 'session order' : 'read by'})->`
  })
  const rest = cycle.length > shownMax ? `... (${cycle.length - shownMax} more) -> ` : ''
  const keys = new Set(cycle.map((index) => operations[index]?.key))
  // Within one session, a cycle needs a get that read a write its session made after it.
  const oneSession = cycle.every((index) => sessionOf[index] === sessionOf[cycle[0] as number])
  return {
    kind: 'cyclic-causality',
    key: keys.size === 1 ? [...keys][0] as string : null,
    guarantee: null,
    reason: `session order and reads-from form a cycle of ${cycle.length} operations${oneSession ? ' (a get read a write that comes after it in its session)' : ''}: ${steps.join(' ')} ${rest}${describe(cycle[0] as number)}`,
    operations: shown.map((index) => indexed(operations, index))
  }
}

/**
 * Checks that a causal or eventual history is causally consistent with convergence (CCv), with
 * its versions as the arbitration order. Throws a `CheckError` (`CHECK_BAD_HISTORY`) for an
 * operation that does not fit docs/store-history.md, for a cas, for an answer without its
 * version, and for a client that goes on after an operation that never returned.
 */
export function checkCausal (history: readonly KvHistoryOperation[]): CausalReport {
  const resolved = resolve(history)
  const waiting = walkCausalOrder(resolved)
  reportCycles(resolved, waiting)
  const { violations } = resolved
  return {
    ok: violations.length === 0,
    verdict: violations.length === 0 ? 'causal' : 'not-causal',
    operations: history.length,
    sessions: resolved.sessionCount,
    keys: resolved.keys.length,
    violations
  }
}
