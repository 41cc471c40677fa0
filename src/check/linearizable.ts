/**
 * The linearizability checker for the key-value store: is there one order of a history's
 * operations, consistent with what every client saw and with real time (an operation that
 * returned before another was called comes first), in which a plain register per key explains
 * every answer? The history format is docs/store-history.md.
 *
 * Linearizability is local (Herlihy and Wing): a history is linearizable exactly when each key's
 * sub-history is. So each key is checked on its own, which turns one search exponential in the
 * whole history into many small ones (Porcupine calls this P-compositionality). Per key the search
 * is Wing and Gong's, with Lowe's memoisation, as Porcupine does it: call and return entries in a
 * doubly linked list sorted by time; linearize a call whose effect the register allows and unlink
 * it with its return; meeting a return whose call is not linearized yet means backtracking. A
 * (set of linearized operations, register value) pair already explored is never explored again.
 * `searchKey` explains what is added to that: operations that never returned kept apart, and
 * reads taken greedily. Before searching, `findDirectAnomaly` looks for the reads a search would
 * take longest to refute and a person most wants named: stale, future and unwritten values.
 *
 * The checker reads no clock: its work is bounded by `searchStepsMax` per key, and a key whose
 * search needs more is reported `unknown`, not guessed.
 */
import { z } from 'zod'
import { SynodError } from '../core/index.js'

export type CheckErrorCode =
  /** A history that is not in the format of docs/store-history.md. */
  | 'CHECK_BAD_HISTORY'

export class CheckError extends SynodError<CheckErrorCode> {}

export type KvHistoryOperationKind = 'get' | 'put' | 'delete' | 'cas'

/**
 * One operation of a store history, field for field as docs/store-history.md writes it (hence the
 * `_ns` names). Not `KvOperation`: that is the store's own request type.
 */
export interface KvHistoryOperation {
  client: string | number
  op: KvHistoryOperationKind
  key: string
  /** put and cas: the value written. */
  value?: string
  /** cas: the value the key must hold for the cas to apply; null: the key must be absent. */
  expected?: string | null
  /** get: the value read (null: absent). cas: whether it applied. Ignored for put and delete. */
  output?: string | null | boolean
  call_ns: number
  /** null: the operation never returned; it may or may not have taken effect, any time after its call. */
  return_ns: number | null
  /**
   * Causal and eventual histories (docs/store-history.md): for a put or delete, the version the
   * store assigned to the write; for a get, the version of the write it read (null: nothing was
   * ever written). A version is `"<physicalMs>.<logical>.<node>"`. Dropped for an operation that
   * never returned, and for cas; the linearizability checker does not use it.
   */
  version?: string | null
}

/** An operation together with its position in the history it came from. */
export type IndexedKvOperation = KvHistoryOperation & { index: number }

export interface LinearizabilityLimits {
  /**
   * Search steps (one candidate looked at, or one backtrack) allowed per key. The search is
   * exponential in the worst case, so a key that needs more is reported `unknown`. The default
   * is a few seconds and a few hundred megabytes of explored states at most.
   */
  searchStepsMax: number
}

export const defaultLinearizabilityLimits: Readonly<LinearizabilityLimits> = Object.freeze({
  searchStepsMax: 20_000_000
})

/** How many operations a failure lists, each way: enough to see the problem, not a dump. */
export const FAILURE_OPERATIONS_REPORTED_MAX = 8

export type LinearizabilityVerdict = 'linearizable' | 'not-linearizable' | 'unknown'

export type LinearizabilityFailureKind =
  /** A get (or a cas that applied) saw a value no other operation on the key writes. */
  | 'unwritten-value'
  /** It saw a value whose only writer was called after it returned. */
  | 'future-read'
  /** It saw a value whose only writer had certainly been overwritten before it was called. */
  | 'stale-read'
  /** The search tried every order and none fits. */
  | 'no-linearization'
  /** The search needed more than `searchStepsMax` steps: verdict unknown. */
  | 'search-limit'

export interface LinearizabilityFailure {
  key: string
  verdict: 'not-linearizable' | 'unknown'
  kind: LinearizabilityFailureKind
  /** Operations on this key. */
  operations: number
  reason: string
  /** 0 when a direct check found the failure (no search ran). */
  searchSteps: number
  /** The longest linearizable prefix the search found: how many of the key's operations it orders (0 after a direct check). */
  linearizedMax: number
  /** The key's value after that prefix (null: absent). */
  valueAfterPrefix: string | null
  /** The last operations of that prefix, in linearization order (empty after a direct check). */
  prefixTail: IndexedKvOperation[]
  /**
   * The operations the reason is about. After a search: those that could take effect after the
   * longest prefix, none of which leads anywhere; first the one that returned earliest (it must
   * take effect before its return). After a direct check: the operation that saw the value, its
   * writer, and the write that certainly overwrote it, as far as they apply.
   */
  stuck: IndexedKvOperation[]
}

export interface LinearizabilityReport {
  ok: boolean
  verdict: LinearizabilityVerdict
  keys: number
  operations: number
  /** Search steps over all keys: the work done, for comparing runs. */
  searchSteps: number
  /** Keys that are not linearizable, then keys left unknown, each in order of first appearance. */
  failures: LinearizabilityFailure[]
}

// ---------------------------------------------------------------------------------------------
// Parsing

const operationSchema = z.object({
  client: z.union([z.string(), z.number()], { error: 'expected a string or a number' }),
  op: z.enum(['get', 'put', 'delete', 'cas']),
  key: z.string(),
  value: z.string().optional(),
  expected: z.string().nullable().optional(),
  output: z.union([z.string(), z.boolean(), z.null()], { error: 'expected a string, null or a boolean' }).optional(),
  call_ns: z.number(),
  return_ns: z.number().nullable(),
  version: z.string().nullable().optional()
})

/**
 * A write's version: its HLC timestamp (physical milliseconds, logical counter) and the node that
 * coordinated it, `"<physicalMs>.<logical>.<node>"`.
 */
export const VERSION_PATTERN = /^(\d+)\.(\d+)\.([0-9a-zA-Z_-]+)$/

interface Location { where: string, details: Record<string, unknown> }

function badHistory (location: Location, field: string | null, problem: string): CheckError {
  const prefix = field === null ? location.where : `${location.where}, field ${field}`
  return new CheckError('CHECK_BAD_HISTORY', `${prefix}: ${problem}`, field === null ? location.details : { ...location.details, field })
}

/**
 * The operation with only the fields its kind uses, after the checks the schema cannot express.
 * An unreturned operation's output is dropped: it never returned, so it has none.
 */
function normalizeOperation (input: KvHistoryOperation, location: Location): KvHistoryOperation {
  const { client, op, key, call_ns: callNs, return_ns: returnNs } = input
  if (!Number.isFinite(callNs)) throw badHistory(location, 'call_ns', `must be a finite number, got ${callNs}`)
  if (returnNs !== null) {
    if (!Number.isFinite(returnNs)) throw badHistory(location, 'return_ns', `must be a finite number or null, got ${returnNs}`)
    if (returnNs < callNs) throw badHistory(location, 'return_ns', `the operation returns (${returnNs}) before it is called (${callNs})`)
  }
  const base = { client, op, key, call_ns: callNs, return_ns: returnNs }
  const { version } = input
  if (typeof version === 'string' && !VERSION_PATTERN.test(version)) throw badHistory(location, 'version', `expected "<physicalMs>.<logical>.<node>" or null, got ${JSON.stringify(version)}`)
  // Only an answer carries a version.
  const versioned = returnNs === null || version === undefined ? {} : { version }
  switch (op) {
    case 'put':
      if (typeof input.value !== 'string') throw badHistory(location, 'value', 'a put needs the value it writes (a string)')
      return { ...base, value: input.value, ...versioned }
    case 'delete':
      return { ...base, ...versioned }
    case 'get':
      if (returnNs === null) return base
      if (input.output === undefined || typeof input.output === 'boolean') throw badHistory(location, 'output', 'a get that returned needs the value it read (a string, or null for absent)')
      return { ...base, output: input.output, ...versioned }
    case 'cas': {
      if (input.expected === undefined) throw badHistory(location, 'expected', 'a cas needs the value it expects (a string, or null for absent)')
      if (typeof input.value !== 'string') throw badHistory(location, 'value', 'a cas needs the value it writes (a string)')
      const cas = { ...base, expected: input.expected, value: input.value }
      if (returnNs === null) return cas
      if (typeof input.output !== 'boolean') throw badHistory(location, 'output', 'a cas that returned needs whether it applied (true or false)')
      return { ...cas, output: input.output }
    }
    default:
      throw badHistory(location, 'op', `unknown operation ${String(op)}`)
  }
}

/**
 * Applies the checks of `parseHistory` to operations handed over directly (their types trusted),
 * and returns them with only the fields their kinds use. Throws a `CheckError` naming the index.
 */
export function normalizeHistory (history: readonly KvHistoryOperation[]): KvHistoryOperation[] {
  return history.map((operation, index) => normalizeOperation(operation, { where: `operation at index ${index}`, details: { index } }))
}

function parseOperation (value: unknown, location: Location): KvHistoryOperation {
  const parsed = operationSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue === undefined || issue.path.length === 0 ? null : issue.path.map(String).join('.')
    throw badHistory(location, field, issue?.message ?? 'not an operation')
  }
  return normalizeOperation(parsed.data, location)
}

function parseJson (text: string, location: Location): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw badHistory(location, null, `not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * Reads a history: a JSON array of operations, or JSON Lines (one operation object per line,
 * blank lines skipped). Throws a `CheckError` naming the index or line, and the field, of the
 * first operation that does not fit docs/store-history.md.
 */
export function parseHistory (text: string): KvHistoryOperation[] {
  if (text.trimStart().startsWith('[')) return parseHistoryJson(parseJson(text, { where: 'history', details: {} }))
  const operations: KvHistoryOperation[] = []
  const lines = text.split('\n')
  for (const [offset, line] of lines.entries()) {
    if (line.trim().length === 0) continue
    const location = { where: `line ${offset + 1}`, details: { line: offset + 1 } }
    operations.push(parseOperation(parseJson(line, location), location))
  }
  return operations
}

/**
 * Reads a history that is already JSON: an array of operation objects, as in a history file or
 * inside another file (the convergence checker's). `within` names where the array is, for errors
 * (`history, operation at index 3, field value: ...`); the details carry the index and the field.
 */
export function parseHistoryJson (json: unknown, within?: string): KvHistoryOperation[] {
  if (!Array.isArray(json)) throw badHistory({ where: within ?? 'history', details: {} }, null, 'expected a JSON array of operations')
  const prefix = within === undefined ? '' : `${within}, `
  return json.map((item: unknown, index) => parseOperation(item, { where: `${prefix}operation at index ${index}`, details: { index } }))
}

// ---------------------------------------------------------------------------------------------
// The register model, on interned values

/** Value codes: 0 is absent, 1 + i the i-th distinct string of the key. */
const ABSENT = 0
/** What `stepRegister` returns when the operation cannot take effect on that value. */
const NOT_ALLOWED = -1

const enum Effect {
  Put,
  Delete,
  /** A get whose answer is known: allowed only when the register holds it. */
  Read,
  /** A get that never returned: no constraint, no effect. Dropped before the search. */
  ReadUnknown,
  CasApplied,
  CasRejected,
  /** A cas that never returned: applies exactly when the register holds its expected value. */
  CasUnknown
}

/**
 * One key's operations in the form the search wants: parallel typed arrays, values interned to
 * small integers so a state is one number and a step is a comparison.
 */
interface KeyProblem {
  /** The operations (indices into the history), by call time. */
  indices: number[]
  effect: Uint8Array
  /** Put and cas: the value written. */
  written: Int32Array
  /** Read: the value read; cas: the value expected. */
  compared: Int32Array
  callNs: Float64Array
  /** Infinity for an operation that never returned. */
  returnNs: Float64Array
  /**
   * The operation's position among the operations that returned, or among those that did not:
   * the search keeps the two kinds in separate sets (see `ExploredStates`).
   */
  bit: Int32Array
  returnedCount: number
  unreturnedCount: number
  values: string[]
}

function stepRegister (problem: KeyProblem, state: number, operation: number): number {
  switch (problem.effect[operation] as Effect) {
    case Effect.Put: return problem.written[operation] as number
    case Effect.Delete: return ABSENT
    case Effect.Read: return state === problem.compared[operation] ? state : NOT_ALLOWED
    case Effect.ReadUnknown: return state
    case Effect.CasApplied: return state === problem.compared[operation] ? problem.written[operation] as number : NOT_ALLOWED
    case Effect.CasRejected: return state === problem.compared[operation] ? NOT_ALLOWED : state
    case Effect.CasUnknown: return state === problem.compared[operation] ? problem.written[operation] as number : state
  }
}

function effectOf (operation: KvHistoryOperation): Effect {
  const returned = operation.return_ns !== null
  switch (operation.op) {
    case 'put': return Effect.Put
    case 'delete': return Effect.Delete
    case 'get': return returned ? Effect.Read : Effect.ReadUnknown
    case 'cas': return !returned ? Effect.CasUnknown : operation.output === true ? Effect.CasApplied : Effect.CasRejected
  }
}

function buildProblem (history: readonly KvHistoryOperation[], indices: number[]): KeyProblem {
  // A get that never returned constrains nothing and changes nothing: leave it out of the search.
  const kept = indices.filter((index) => effectOf(history[index] as KvHistoryOperation) !== Effect.ReadUnknown)
  kept.sort((a, b) => (history[a] as KvHistoryOperation).call_ns - (history[b] as KvHistoryOperation).call_ns || a - b)
  const count = kept.length
  const problem: KeyProblem = {
    indices: kept,
    effect: new Uint8Array(count),
    written: new Int32Array(count),
    compared: new Int32Array(count),
    callNs: new Float64Array(count),
    returnNs: new Float64Array(count),
    bit: new Int32Array(count),
    returnedCount: 0,
    unreturnedCount: 0,
    values: []
  }
  const codes = new Map<string, number>()
  const intern = (value: string | null | undefined): number => {
    if (value === null || value === undefined) return ABSENT
    let code = codes.get(value)
    if (code === undefined) {
      problem.values.push(value)
      codes.set(value, code = problem.values.length)
    }
    return code
  }
  for (const [operation, index] of kept.entries()) {
    const entry = history[index] as KvHistoryOperation
    const effect = effectOf(entry)
    problem.effect[operation] = effect
    problem.callNs[operation] = entry.call_ns
    problem.returnNs[operation] = entry.return_ns ?? Infinity
    problem.bit[operation] = entry.return_ns === null ? problem.unreturnedCount++ : problem.returnedCount++
    if (effect === Effect.Put || effect === Effect.CasApplied || effect === Effect.CasUnknown) problem.written[operation] = intern(entry.value)
    if (effect === Effect.Read) problem.compared[operation] = intern(entry.output as string | null)
    if (effect === Effect.CasApplied || effect === Effect.CasRejected || effect === Effect.CasUnknown) problem.compared[operation] = intern(entry.expected)
  }
  return problem
}

// ---------------------------------------------------------------------------------------------
// The search

/** murmur3's finalizer: spreads an integer over 32 bits, so XORs of them make a usable set hash. */
function mix32 (input: number): number {
  let hash = input | 0
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85eb_ca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2_ae35)
  hash ^= hash >>> 16
  return hash
}

const FULL_WORD = 0xffff_ffff

/**
 * The linearized operations that returned, as a bitset, with a hash kept up to date by XOR (so
 * adding or removing one costs O(1), not a pass over the words). Memo entries store only the words
 * between the first not-full word and the last non-zero one: every returned operation is
 * linearized soon after it returns, so that window is about the history's concurrency wide,
 * however long the history.
 */
class ReturnedSet {
  readonly words: Uint32Array
  hash = 0
  /** The first word that is not all ones (words.length when every word is). */
  low = 0
  /** The last word that is not zero (-1 when none is). */
  high = -1
  private readonly memberHashes: Int32Array

  constructor (size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32))
    this.memberHashes = new Int32Array(size)
    for (let member = 0; member < size; member++) this.memberHashes[member] = mix32(Math.imul(member + 1, 0x9e37_79b9))
  }

  add (member: number): void {
    const word = member >>> 5
    this.words[word] = (this.words[word] as number) | (1 << (member & 31))
    this.hash ^= this.memberHashes[member] as number
    if (word > this.high) this.high = word
    while (this.low < this.words.length && this.words[this.low] === FULL_WORD) this.low++
  }

  remove (member: number): void {
    const word = member >>> 5
    this.words[word] = (this.words[word] as number) & ~(1 << (member & 31))
    this.hash ^= this.memberHashes[member] as number
    if (word < this.low) this.low = word
    while (this.high >= 0 && this.words[this.high] === 0) this.high--
  }

  /** Words in the window: from the first not-full word to the last non-zero one. */
  windowLength (): number {
    return Math.max(0, this.high + 1 - this.low)
  }

  /** Whether this set is the one stored as (`low`, `pool[start .. start + length)`). */
  matches (low: number, pool: Uint32Array, start: number, length: number): boolean {
    if (low !== this.low || length !== this.windowLength()) return false
    for (let offset = 0; offset < length; offset++) {
      if (pool[start + offset] !== this.words[low + offset]) return false
    }
    return true
  }
}

/**
 * The linearized operations that never returned. These are not part of the memo's key but
 * compared by inclusion: having taken fewer of them never hurts (the others can still take effect
 * later, or never), so a state explored with a subset of them covers this one.
 */
class UnreturnedSet {
  readonly words: Uint32Array
  /** The last word that is not zero (-1 when none is). */
  high = -1

  constructor (size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32))
  }

  add (member: number): void {
    const word = member >>> 5
    this.words[word] = (this.words[word] as number) | (1 << (member & 31))
    if (word > this.high) this.high = word
  }

  remove (member: number): void {
    const word = member >>> 5
    this.words[word] = (this.words[word] as number) & ~(1 << (member & 31))
    while (this.high >= 0 && this.words[this.high] === 0) this.high--
  }

  /** Whether the set stored as `pool[start .. start + length)` (no trailing zero words) is a subset of this one. */
  includes (pool: Uint32Array, start: number, length: number): boolean {
    if (length > this.high + 1) return false
    for (let offset = 0; offset < length; offset++) {
      if (((pool[start + offset] as number) & ~(this.words[offset] as number)) !== 0) return false
    }
    return true
  }
}

/** Typed arrays grow by doubling; this is where they start. */
const EXPLORED_CAPACITY_INITIAL = 1_024

function grown<T extends Int32Array | Uint32Array> (array: T, needed: number): T {
  if (needed <= array.length) return array
  let length = array.length
  while (length < needed) length *= 2
  const bigger = new (array.constructor as new (length: number) => T)(length)
  bigger.set(array)
  return bigger
}

/**
 * The states already explored, none of which leads to a linearization (the search stops at the
 * first that does). A state is (returned operations linearized, register value, unreturned
 * operations linearized); the first two are the hash key, the third is compared by inclusion. A
 * hash table with chaining, all in typed arrays: a search may record millions of states, and an
 * object for each would cost more memory than the states themselves. Entry i's words are
 * `pool[start[i] .. middle[i])` (its returned window) and `pool[middle[i] .. start[i + 1])`.
 */
class ExploredStates {
  private heads = new Int32Array(EXPLORED_CAPACITY_INITIAL).fill(-1)
  private chain = new Int32Array(EXPLORED_CAPACITY_INITIAL)
  private hashes = new Int32Array(EXPLORED_CAPACITY_INITIAL)
  private lows = new Int32Array(EXPLORED_CAPACITY_INITIAL)
  private states = new Int32Array(EXPLORED_CAPACITY_INITIAL)
  private middle = new Int32Array(EXPLORED_CAPACITY_INITIAL)
  private start = new Int32Array(EXPLORED_CAPACITY_INITIAL + 1)
  private pool = new Uint32Array(EXPLORED_CAPACITY_INITIAL)
  private count = 0

  /** Records the state; false when it is covered by one recorded before. */
  add (returned: ReturnedSet, unreturned: UnreturnedSet, state: number): boolean {
    const hash = returned.hash ^ mix32(state + 0x5bd1_e995)
    for (let entry = this.heads[hash & (this.heads.length - 1)] as number; entry !== -1; entry = this.chain[entry] as number) {
      if (this.hashes[entry] !== hash || this.states[entry] !== state) continue
      const start = this.start[entry] as number
      const middle = this.middle[entry] as number
      if (returned.matches(this.lows[entry] as number, this.pool, start, middle - start) && unreturned.includes(this.pool, middle, (this.start[entry + 1] as number) - middle)) return false
    }
    this.append(returned, unreturned, state, hash)
    return true
  }

  private append (returned: ReturnedSet, unreturned: UnreturnedSet, state: number, hash: number): void {
    const entry = this.count++
    this.chain = grown(this.chain, this.count)
    this.hashes = grown(this.hashes, this.count)
    this.lows = grown(this.lows, this.count)
    this.states = grown(this.states, this.count)
    this.middle = grown(this.middle, this.count)
    this.start = grown(this.start, this.count + 1)
    const start = this.start[entry] as number
    const windowLength = returned.windowLength()
    const unreturnedLength = unreturned.high + 1
    this.pool = grown(this.pool, start + windowLength + unreturnedLength)
    this.pool.set(returned.words.subarray(returned.low, returned.low + windowLength), start)
    this.pool.set(unreturned.words.subarray(0, unreturnedLength), start + windowLength)
    this.middle[entry] = start + windowLength
    this.start[entry + 1] = start + windowLength + unreturnedLength
    this.hashes[entry] = hash
    this.lows[entry] = returned.low
    this.states[entry] = state
    if (this.count > this.heads.length) this.rehash(this.heads.length * 2)
    const bucket = hash & (this.heads.length - 1)
    this.chain[entry] = this.heads[bucket] as number
    this.heads[bucket] = entry
  }

  /** Keeps chains about one entry long. */
  private rehash (size: number): void {
    this.heads = new Int32Array(size).fill(-1)
    for (let entry = 0; entry < this.count - 1; entry++) {
      const bucket = (this.hashes[entry] as number) & (size - 1)
      this.chain[entry] = this.heads[bucket] as number
      this.heads[bucket] = entry
    }
  }
}

type SearchOutcome =
  | { verdict: 'linearizable', steps: number }
  | { verdict: 'not-linearizable' | 'unknown', steps: number, prefix: number[], stateAfterPrefix: number }

/**
 * The call and return entries of the operations that returned, as a doubly linked list of node
 * numbers: node 0 is the head, then 1..2r in time order. A call sorts before a return at the same
 * time, so touching intervals count as concurrent (the order that cannot invent a violation).
 */
function buildEntryList (problem: KeyProblem): { next: Int32Array, prev: Int32Array, operationOf: Int32Array, isCall: Uint8Array, callNode: Int32Array, returnNode: Int32Array } {
  const count = problem.indices.length
  const order: number[] = []
  for (let operation = 0; operation < count; operation++) if (problem.returnNs[operation] !== Infinity) order.push(operation << 1, (operation << 1) | 1)
  const timeOf = (entry: number): number => (entry & 1) === 0 ? problem.callNs[entry >> 1] as number : problem.returnNs[entry >> 1] as number
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b)
  const size = order.length + 1
  const next = new Int32Array(size)
  const prev = new Int32Array(size)
  const operationOf = new Int32Array(size)
  const isCall = new Uint8Array(size)
  const callNode = new Int32Array(count).fill(-1)
  const returnNode = new Int32Array(count).fill(-1)
  for (const [position, entry] of order.entries()) {
    const node = position + 1
    const operation = entry >> 1
    operationOf[node] = operation
    if ((entry & 1) === 0) {
      isCall[node] = 1
      callNode[operation] = node
    } else {
      returnNode[operation] = node
    }
  }
  for (let node = 0; node < size; node++) {
    next[node] = node + 1 < size ? node + 1 : -1
    prev[node] = node - 1
  }
  return { next, prev, operationOf, isCall, callNode, returnNode }
}

/**
 * The operations that never returned, by call time, as a doubly linked list over operation
 * numbers with `count` as its head: they have no return entry, so they live outside the main list.
 */
function buildUnreturnedList (problem: KeyProblem): { next: Int32Array, prev: Int32Array } {
  const count = problem.indices.length
  const next = new Int32Array(count + 1).fill(-1)
  const prev = new Int32Array(count + 1).fill(-1)
  let last = count
  for (let operation = 0; operation < count; operation++) {
    if (problem.returnNs[operation] !== Infinity) continue
    next[last] = operation
    prev[operation] = last
    last = operation
  }
  return { next, prev }
}

/** Operations whose effect does not depend on the register's value. */
function isBlindWrite (problem: KeyProblem, operation: number): boolean {
  const effect = problem.effect[operation] as Effect
  return effect === Effect.Put || effect === Effect.Delete
}

/** Operations that never change the register: a known read, a cas that did not apply. */
function isReadOnly (problem: KeyProblem, operation: number): boolean {
  const effect = problem.effect[operation] as Effect
  return effect === Effect.Read || effect === Effect.CasRejected
}

/**
 * Depth-first search for a linearization of one key: Porcupine's loop, with three additions.
 *
 * Operations that never returned have no return entry. The key is linearized once every operation
 * that returned is; the others may stay out (they never took effect). At each state the search
 * first tries the returned operations whose calls come before the earliest pending return, and
 * only then the unreturned ones called before it, so the states without them are explored first
 * and cover the states with them (see `UnreturnedSet`): a write that timed out and never landed
 * costs a little, not a doubling of the search.
 *
 * A read-only operation the register allows now is taken now and never revisited. If any
 * linearization extends the current prefix, one extends it with that operation next: moving a
 * read that came later to the front breaks no real-time order (whatever had to precede it already
 * does, as its call comes before every pending return) and changes no state. So when the prefix
 * plus that read fails, the prefix fails too, and the search backs up past it instead of trying
 * the prefix's other candidates. On read-heavy histories with repeated values this removes most
 * of the branching.
 */
function searchKey (problem: KeyProblem, searchStepsMax: number): SearchOutcome {
  const count = problem.indices.length
  const { next, prev, operationOf, isCall, callNode, returnNode } = buildEntryList(problem)
  const unreturnedList = buildUnreturnedList(problem)
  const unreturnedHead = count
  const returned = new ReturnedSet(problem.returnedCount)
  const unreturned = new UnreturnedSet(problem.unreturnedCount)
  const explored = new ExploredStates()
  const stackOperation = new Int32Array(count)
  const stackState = new Int32Array(count)
  /** 1: the frame took a read-only operation, so its failure is its parent's failure. */
  const stackForced = new Uint8Array(count)
  /** For a frame that took an unreturned operation: the deadline it was tried under. */
  const stackDeadline = new Float64Array(count)
  let depth = 0
  let state = ABSENT
  let returnedLeft = problem.returnedCount
  // Where the search is: in the main list at `node`, or, once that list's candidates are spent,
  // in the unreturned list at `candidate`, for operations called by `deadline` (the earliest
  // pending return).
  let inUnreturned = false
  let node = next[0] as number
  let candidate = -1
  let deadline = 0
  // The deepest point reached, for the report. Stack slots below `unchangedBelow` have not been
  // touched since the last copy, so each copy only takes what changed: O(1) amortized a step.
  const deepest = new Int32Array(count)
  let deepestDepth = 0
  let deepestState = ABSENT
  let unchangedBelow = 0
  const unlink = (links: { next: Int32Array, prev: Int32Array }, at: number): void => {
    links.next[links.prev[at] as number] = links.next[at] as number
    if (links.next[at] !== -1) links.prev[links.next[at] as number] = links.prev[at] as number
  }
  const relink = (links: { next: Int32Array, prev: Int32Array }, at: number): void => {
    links.next[links.prev[at] as number] = at
    if (links.next[at] !== -1) links.prev[links.next[at] as number] = at
  }
  const mainList = { next, prev }
  const isUnreturned = (operation: number): boolean => problem.returnNs[operation] === Infinity
  const take = (operation: number): void => {
    if (isUnreturned(operation)) unreturned.add(problem.bit[operation] as number)
    else returned.add(problem.bit[operation] as number)
  }
  const untake = (operation: number): void => {
    if (isUnreturned(operation)) unreturned.remove(problem.bit[operation] as number)
    else returned.remove(problem.bit[operation] as number)
  }
  /** Undoes frames up to and including the first that may have other candidates; false when none is left. */
  const backtrack = (): boolean => {
    while (depth > 0) {
      depth--
      const operation = stackOperation[depth] as number
      state = stackState[depth] as number
      untake(operation)
      if (isUnreturned(operation)) {
        relink(unreturnedList, operation)
      } else {
        relink(mainList, returnNode[operation] as number)
        relink(mainList, callNode[operation] as number)
        returnedLeft++
      }
      if (stackForced[depth] === 1) continue
      if (depth < unchangedBelow) unchangedBelow = depth
      inUnreturned = isUnreturned(operation)
      if (inUnreturned) {
        candidate = unreturnedList.next[operation] as number
        deadline = stackDeadline[depth] as number
      } else {
        node = next[callNode[operation] as number] as number
      }
      return true
    }
    return false
  }
  const failure = (verdict: 'not-linearizable' | 'unknown', steps: number): SearchOutcome =>
    ({ verdict, steps, prefix: Array.from(deepest.subarray(0, deepestDepth)), stateAfterPrefix: deepestState })

  let steps = 0
  while (returnedLeft > 0) {
    if (steps >= searchStepsMax) return failure('unknown', steps)
    steps++
    let operation: number
    if (!inUnreturned) {
      if (isCall[node] === 0) {
        // The earliest pending return: the returned candidates are spent; the unreturned ones called by then are next.
        inUnreturned = true
        deadline = problem.returnNs[operationOf[node] as number] as number
        candidate = unreturnedList.next[unreturnedHead] as number
        continue
      }
      operation = operationOf[node] as number
      node = next[node] as number
    } else {
      if (candidate === -1 || (problem.callNs[candidate] as number) > deadline) {
        // Every candidate of this state is spent: it leads nowhere.
        if (!backtrack()) return failure('not-linearizable', steps)
        continue
      }
      operation = candidate
      candidate = unreturnedList.next[candidate] as number
    }
    // An unreturned operation's effect, overwritten before anything saw it, might as well not have
    // happened: that state is covered by the one without it, which the search reaches directly.
    if (depth > 0 && isUnreturned(stackOperation[depth - 1] as number) && isBlindWrite(problem, operation)) continue
    const after = stepRegister(problem, state, operation)
    if (after === NOT_ALLOWED) continue
    const forced = isReadOnly(problem, operation)
    take(operation)
    if (!explored.add(returned, unreturned, after)) {
      untake(operation)
      // Covered by a state explored without success. For a read-only operation that settles this prefix too.
      if (forced && !backtrack()) return failure('not-linearizable', steps)
      continue
    }
    stackOperation[depth] = operation
    stackState[depth] = state
    stackForced[depth] = forced ? 1 : 0
    stackDeadline[depth] = deadline
    depth++
    state = after
    if (isUnreturned(operation)) {
      unlink(unreturnedList, operation)
    } else {
      unlink(mainList, callNode[operation] as number)
      unlink(mainList, returnNode[operation] as number)
      returnedLeft--
    }
    if (depth > deepestDepth) {
      deepest.set(stackOperation.subarray(unchangedBelow, depth), unchangedBelow)
      deepestDepth = depth
      deepestState = state
      unchangedBelow = depth
    }
    inUnreturned = false
    node = next[0] as number
  }
  return { verdict: 'linearizable', steps }
}

// ---------------------------------------------------------------------------------------------
// Reports

function indexed (history: readonly KvHistoryOperation[], index: number): IndexedKvOperation {
  return { ...(history[index] as KvHistoryOperation), index }
}

function quote (value: string | null): string {
  return value === null ? 'absent' : JSON.stringify(value)
}

/** One line for an operation, for reports: `#12 client 3 cas "a" -> "b" = true [100, 250]`. */
export function describeOperation (operation: KvHistoryOperation, index?: number): string {
  const what = operation.op === 'put'
    ? `put ${quote(operation.value ?? null)}`
    : operation.op === 'delete'
      ? 'delete'
      : operation.op === 'get'
        ? `get = ${operation.return_ns === null ? '?' : quote(operation.output as string | null)}`
        : `cas ${quote(operation.expected ?? null)} -> ${quote(operation.value ?? null)} = ${operation.return_ns === null ? '?' : String(operation.output)}`
  const returned = operation.return_ns === null ? 'never returned' : String(operation.return_ns)
  return `${index === undefined ? '' : `#${index} `}client ${operation.client} ${what} [${operation.call_ns}, ${returned}]`
}

function valueOf (problem: KeyProblem, code: number): string | null {
  return code === ABSENT ? null : problem.values[code - 1] as string
}

function describeSearchFailure (history: readonly KvHistoryOperation[], key: string, problem: KeyProblem, outcome: Extract<SearchOutcome, { prefix: number[] }>, operations: number): LinearizabilityFailure {
  const inPrefix = new Uint8Array(problem.indices.length)
  for (const operation of outcome.prefix) inPrefix[operation] = 1
  const left: number[] = []
  for (let operation = 0; operation < problem.indices.length; operation++) if (inPrefix[operation] === 0) left.push(operation)
  // The earliest return among what is left bounds what may come next.
  const blocking = left.reduce((best, operation) => (problem.returnNs[operation] as number) < (problem.returnNs[best] as number) ? operation : best, left[0] ?? -1)
  const deadline = blocking === -1 ? Infinity : problem.returnNs[blocking] as number
  const candidates = left.filter((operation) => operation !== blocking && (problem.callNs[operation] as number) <= deadline)
  const stuckOperations = blocking === -1 ? [] : [blocking, ...candidates]
  const involved = stuckOperations.slice(0, FAILURE_OPERATIONS_REPORTED_MAX).map((operation) => indexed(history, problem.indices[operation] as number))
  const tail = outcome.prefix.slice(-FAILURE_OPERATIONS_REPORTED_MAX).map((operation) => indexed(history, problem.indices[operation] as number))
  const valueAfter = valueOf(problem, outcome.stateAfterPrefix)
  const longest = `the longest linearizable prefix orders ${outcome.prefix.length} of ${problem.indices.length} operations, leaving the value ${quote(valueAfter)}`
  const first = involved[0]
  const reason = outcome.verdict === 'unknown'
    ? `gave up after ${outcome.steps} search steps (searchStepsMax); ${longest}`
    : first === undefined
      ? `no linearization; ${longest}`
      : `no linearization: ${longest}; from there, no order of the ${stuckOperations.length === 1 ? 'one operation' : `${stuckOperations.length} operations`} that may take effect next lets ${describeOperation(first, first.index)} take effect before it returned`
  return {
    key,
    verdict: outcome.verdict,
    kind: outcome.verdict === 'unknown' ? 'search-limit' : 'no-linearization',
    operations,
    reason,
    searchSteps: outcome.steps,
    linearizedMax: outcome.prefix.length,
    valueAfterPrefix: valueAfter,
    prefixTail: tail,
    stuck: involved
  }
}

interface DirectAnomaly {
  kind: 'unwritten-value' | 'future-read' | 'stale-read'
  observer: number
  writer: number
  /** stale-read: the write that certainly came between. */
  overwriter: number
}

/**
 * Writes that certainly took effect (they returned, and are blind or applied), by call time, with
 * the earliest return among each suffix: "is there one called after X that returned before Y?"
 * is then a binary search.
 */
function certainWrites (problem: KeyProblem): (calledAfter: number, returnedBefore: number) => number {
  const writes: number[] = []
  for (let operation = 0; operation < problem.indices.length; operation++) {
    const effect = problem.effect[operation] as Effect
    if (effect === Effect.Put || effect === Effect.Delete || effect === Effect.CasApplied) {
      if (problem.returnNs[operation] !== Infinity) writes.push(operation)
    }
  }
  // Operations are numbered by call time, so `writes` is sorted by call already.
  const earliestReturnFrom = new Int32Array(writes.length + 1).fill(-1)
  for (let position = writes.length - 1; position >= 0; position--) {
    const operation = writes[position] as number
    const later = earliestReturnFrom[position + 1] as number
    earliestReturnFrom[position] = later === -1 || (problem.returnNs[operation] as number) < (problem.returnNs[later] as number) ? operation : later
  }
  return (calledAfter, returnedBefore) => {
    let low = 0
    let high = writes.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((problem.callNs[writes[middle] as number] as number) > calledAfter) high = middle
      else low = middle + 1
    }
    const found = earliestReturnFrom[low] as number
    return found !== -1 && (problem.returnNs[found] as number) < returnedBefore ? found : -1
  }
}

/**
 * Anomalies visible without a search, for values with one writer (a store's clients usually
 * write unique values): a read of a value nothing writes, a read of a value written only later, a
 * read of a value certainly overwritten. They are reported with the three operations that show
 * them, and found in O(n log n) where the search could take its whole budget to prove the same.
 */
function findDirectAnomaly (problem: KeyProblem): DirectAnomaly | null {
  const count = problem.indices.length
  const writerCount = new Int32Array(problem.values.length + 1)
  const writerOf = new Int32Array(problem.values.length + 1).fill(-1)
  for (let operation = 0; operation < count; operation++) {
    const effect = problem.effect[operation] as Effect
    if (effect !== Effect.Put && effect !== Effect.CasApplied && effect !== Effect.CasUnknown) continue
    const value = problem.written[operation] as number
    writerCount[value]++
    writerOf[value] = operation
  }
  const overwriteBetween = certainWrites(problem)
  for (let observer = 0; observer < count; observer++) {
    const effect = problem.effect[observer] as Effect
    if (effect !== Effect.Read && effect !== Effect.CasApplied) continue
    const value = problem.compared[observer] as number
    if (value === ABSENT) continue
    const writer = writerOf[value] as number
    if (writerCount[value] === 0 || (writerCount[value] === 1 && writer === observer)) return { kind: 'unwritten-value', observer, writer: -1, overwriter: -1 }
    if (writerCount[value] !== 1) continue
    if ((problem.callNs[writer] as number) > (problem.returnNs[observer] as number)) return { kind: 'future-read', observer, writer, overwriter: -1 }
    const overwriter = overwriteBetween(problem.returnNs[writer] as number, problem.callNs[observer] as number)
    if (overwriter !== -1) return { kind: 'stale-read', observer, writer, overwriter }
  }
  return null
}

function describeDirectAnomaly (history: readonly KvHistoryOperation[], key: string, problem: KeyProblem, anomaly: DirectAnomaly, operations: number): LinearizabilityFailure {
  const [observer, writer, overwriter] = [anomaly.observer, anomaly.writer, anomaly.overwriter]
    .map((operation) => operation === -1 ? undefined : indexed(history, problem.indices[operation] as number))
  const seen = quote(valueOf(problem, problem.compared[anomaly.observer] as number))
  const saw = observer === undefined ? '' : `${describeOperation(observer, observer.index)} saw ${seen}`
  const reason = anomaly.kind === 'unwritten-value'
    ? `${saw}, which no other operation on this key writes`
    : anomaly.kind === 'future-read'
      ? `${saw}, written only by ${writer === undefined ? '' : describeOperation(writer, writer.index)}, which was called after it returned`
      : `${saw}, written only by ${writer === undefined ? '' : describeOperation(writer, writer.index)} and then certainly overwritten by ${overwriter === undefined ? '' : describeOperation(overwriter, overwriter.index)}, called after that write returned and returned before the read was called`
  return {
    key,
    verdict: 'not-linearizable',
    kind: anomaly.kind,
    operations,
    reason,
    searchSteps: 0,
    linearizedMax: 0,
    valueAfterPrefix: null,
    prefixTail: [],
    stuck: [observer, writer, overwriter].filter((operation) => operation !== undefined)
  }
}

/**
 * Checks a history key by key. Throws a `CheckError` for an operation that does not fit
 * docs/store-history.md (histories from `parseHistory` always fit).
 */
export function checkLinearizable (history: readonly KvHistoryOperation[], limits: Partial<LinearizabilityLimits> = {}): LinearizabilityReport {
  const { searchStepsMax } = { ...defaultLinearizabilityLimits, ...limits }
  const operations = normalizeHistory(history)
  const byKey = new Map<string, number[]>()
  for (const [index, operation] of operations.entries()) {
    let indices = byKey.get(operation.key)
    if (indices === undefined) byKey.set(operation.key, indices = [])
    indices.push(index)
  }
  const violations: LinearizabilityFailure[] = []
  const unknown: LinearizabilityFailure[] = []
  let searchSteps = 0
  for (const [key, indices] of byKey) {
    const problem = buildProblem(operations, indices)
    const anomaly = findDirectAnomaly(problem)
    if (anomaly !== null) {
      violations.push(describeDirectAnomaly(operations, key, problem, anomaly, indices.length))
      continue
    }
    const outcome = searchKey(problem, searchStepsMax)
    searchSteps += outcome.steps
    if (outcome.verdict === 'linearizable') continue
    const failure = describeSearchFailure(operations, key, problem, outcome, indices.length)
    if (failure.verdict === 'unknown') unknown.push(failure)
    else violations.push(failure)
  }
  const verdict: LinearizabilityVerdict = violations.length > 0 ? 'not-linearizable' : unknown.length > 0 ? 'unknown' : 'linearizable'
  return { ok: verdict === 'linearizable', verdict, keys: byKey.size, operations: history.length, searchSteps, failures: [...violations, ...unknown] }
}
