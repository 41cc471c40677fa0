/**
 * One key's state at the `causal` and `eventual` levels: the values written concurrently
 * (siblings), each tagged with a dot, plus a version vector of every write the state has seen.
 * This is Riak's DVV set (Almeida, Baquero, Gonçalves, Preguiça, Fonte 2014, "Scalable and
 * Accurate Causality Tracking for Eventually Consistent Stores"): one dot per sibling and one
 * vector entry per coordinating node, so the metadata grows with the writers of a key, not with
 * its clients. Merging two replicas' states is a CRDT join, so replicas that exchange states in
 * any order, any number of times, converge. The bound on siblings is kept by writes, never by
 * merges (applyWrite says why).
 *
 * Each sibling also carries a last-writer-wins stamp, for readers that want one value
 * (`lastWriter`), and the causal dependencies its write carried, for the `causal` level.
 */
import { z } from 'zod'
import { assert, bytesEqual, bytesField, CBOR_MAJOR, CBOR_NULL, cborText, decodeCanonical, encodeCanonical, errorMessage, hasExactly, isAscii, isCounter, isRecord, sha256, writeCbor } from '../core/index.js'
import { StoreError } from './errors.js'
import { KEY_BYTES_WIRE_MAX } from './messages.js'

/** The longest node id a stamp, dot or version vector holds, in characters. */
export const NODE_ID_CHARS_MAX = 128
/** Siblings a state on the wire or disk may hold; a store's configured `siblingsMax` is at most this. */
export const VERSIONED_SIBLINGS_WIRE_MAX = 1_024
/** Dependencies one sibling on the wire or disk may carry. */
export const SIBLING_DEPENDENCIES_WIRE_MAX = 4_096
/** Nodes a version vector on the wire or disk may name. */
export const VERSION_VECTOR_NODES_WIRE_MAX = 4_096
/** Bytes of SHA-256 that make a state's digest (anti-entropy compares digests, not states). */
export const STATE_DIGEST_BYTES = 16

/** A write's position in last-writer-wins order: its HLC timestamp, then the coordinating node's id to break ties. */
export type Stamp = readonly [physicalMs: number, logical: number, node: string]
/** A write's unique identity: the node that coordinated it and that node's counter (never reused by the node). */
export type Dot = readonly [node: string, counter: number]
/** Per node, the highest counter seen (all dots of that node up to it are covered). A node absent from it is at 0. */
export type VersionVector = Readonly<Record<string, number>>
/**
 * Causal dependencies a causal write (and a session token) carries: per key, the least stamp a
 * reader must see. The empty key (no real key is empty) holds the floor: the least stamp a reader
 * must see of every key not named, where the entries evicted to keep the set bounded went.
 */
export type Dependencies = ReadonlyArray<readonly [key: string, stamp: Stamp]>

export interface Sibling {
  readonly dot: Dot
  readonly stamp: Stamp
  /** null is a tombstone: a delete is a write like any other, so it supersedes what it saw. */
  readonly value: Uint8Array | null
  readonly dependencies: Dependencies
}

export interface VersionedState {
  readonly context: VersionVector
  /** Sorted by stamp ascending (then by dot), so equal states have equal bytes. */
  readonly siblings: readonly Sibling[]
}

export interface VersionedWrite {
  /** The coordinator's next dot for the key (`nextDot`). */
  readonly dot: Dot
  readonly stamp: Stamp
  readonly value: Uint8Array | null
  /** The writes this one supersedes: the coordinator's own context for LWW, the client's for siblings. */
  readonly context: VersionVector
  readonly dependencies: Dependencies
}

export const EMPTY_VERSIONED_STATE: VersionedState = Object.freeze({ context: Object.freeze({}), siblings: Object.freeze([]) })

const NODE_ID_PATTERN = /^[0-9A-Za-z_-]+$/
const STAMP_PATTERN = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.([0-9A-Za-z_-]+)$/

/**
 * A node id of a stamp, dot or vector: 1 to NODE_ID_CHARS_MAX of [0-9A-Za-z_-], so a formatted
 * stamp splits at its dots unambiguously. `__proto__` fits that pattern but cannot be a key of a
 * plain object (assigning it replaces the prototype), and version vectors key by node id.
 */
export function isVersionNodeId (text: string): boolean {
  return text.length <= NODE_ID_CHARS_MAX && NODE_ID_PATTERN.test(text) && text !== '__proto__'
}

function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Orders stamps: physical part, logical part, then node id. */
export function compareStamps (a: Stamp, b: Stamp): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
  return compareStrings(a[2], b[2])
}

/** `physicalMs.logical.node`, as stamps travel in headers and logs. */
export function formatStamp (stamp: Stamp): string {
  return `${stamp[0]}.${stamp[1]}.${stamp[2]}`
}

/** The inverse of formatStamp; null for anything formatStamp cannot produce from a valid stamp. */
export function parseStamp (text: string): Stamp | null {
  const match = STAMP_PATTERN.exec(text)
  if (match === null) return null
  const physicalMs = Number(match[1])
  const logical = Number(match[2])
  const node = match[3]
  if (!isCounter(physicalMs) || !isCounter(logical) || !isVersionNodeId(node)) return null
  return [physicalMs, logical, node]
}

/** A node's counter in a vector; own properties only, so a node named like an Object method is not misread. */
function counterOf (vector: VersionVector, node: string): number {
  return Object.hasOwn(vector, node) ? vector[node] : 0
}

export function covers (context: VersionVector, dot: Dot): boolean {
  return dot[1] <= counterOf(context, dot[0])
}

/** Per node the larger counter; nodes sorted and zero entries left out (absent means 0), so equal vectors encode alike. */
export function joinVectors (a: VersionVector, b: VersionVector): VersionVector {
  const nodes = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(compareStrings)
  const entries: Array<[string, number]> = []
  for (const node of nodes) {
    const counter = Math.max(counterOf(a, node), counterOf(b, node))
    if (counter > 0) entries.push([node, counter])
  }
  // fromEntries defines properties, so even an odd key cannot reach a setter on the prototype.
  return Object.fromEntries(entries)
}

function vectorsEqual (a: VersionVector, b: VersionVector): boolean {
  for (const node of Object.keys(a)) if (counterOf(a, node) !== counterOf(b, node)) return false
  for (const node of Object.keys(b)) if (counterOf(a, node) !== counterOf(b, node)) return false
  return true
}

/** The dot the coordinator `node` gives its next write of the key: one past every dot of its own the state has seen. */
export function nextDot (state: VersionedState, node: string): Dot {
  return [node, counterOf(state.context, node) + 1]
}

/** The canonical order of siblings: by stamp, then by dot, which is unique within a state. */
function compareSiblings (a: Sibling, b: Sibling): number {
  return compareStamps(a.stamp, b.stamp) || compareStrings(a.dot[0], b.dot[0]) || a.dot[1] - b.dot[1]
}

function dotKey (dot: Dot): string {
  return `${dot[1]}:${dot[0]}`
}

function assertSiblingsMax (siblingsMax: number): void {
  assert(Number.isSafeInteger(siblingsMax) && siblingsMax >= 1 && siblingsMax <= VERSIONED_SIBLINGS_WIRE_MAX,
    `siblingsMax is an integer in 1..${VERSIONED_SIBLINGS_WIRE_MAX}, got ${siblingsMax}`)
}

/** Keeps the `count` newest of siblings already in canonical order. */
function newest (siblings: Sibling[], count: number): Sibling[] {
  return siblings.length > count ? siblings.slice(siblings.length - count) : siblings
}

/**
 * A write coordinated at `write.dot[0]`: drops the siblings whose dots `write.context` covers,
 * adds the new one, and joins the context with write.context and the new dot. LWW writes pass the
 * coordinator's own state.context as context (supersede everything it has seen); sibling-mode
 * writes pass the client's context.
 *
 * When more than siblingsMax remain, the write also supersedes the other siblings with the
 * smallest stamps. The bound is applied here and not in mergeStates because only a write may
 * supersede: it is a new event, after everything it drops, so the states stay a lattice. A merge
 * that dropped siblings for the bound could not tell that from supersession; it loses
 * associativity, and replicas can converge on a state with no sibling at all (a key that was
 * written vanishes). For the same reason the write itself always stays, whatever its stamp: it has
 * superseded what its context covers, and if it went too, nothing would be left of either (and the
 * writer could not read its own write). test/unit/versioned.test.ts "convergence" holds the cases.
 *
 * A write whose dot the state already covers was applied (or superseded) before, so applying it
 * again changes nothing. The new context covers every dot of the coordinator up to the write's
 * counter, so `state` must hold (or have superseded) every earlier write the coordinator made to
 * this key: a node writes a key through one state only (a node-wide counter that skips is fine;
 * writing the same key into two states under one node id, say its own and a hint it keeps for
 * another replica, lets either cover and drop the other's writes). `nextDot` gives the least
 * counter that works. Replicas other than the coordinator take the result with mergeStates.
 */
export function applyWrite (state: VersionedState, write: VersionedWrite, siblingsMax: number): VersionedState {
  assertSiblingsMax(siblingsMax)
  const [node, counter] = write.dot
  assert(isVersionNodeId(node) && Number.isSafeInteger(counter) && counter >= 1, `a dot is a node id and a counter from 1, got ${JSON.stringify(write.dot)}`)
  if (covers(state.context, write.dot)) return state
  const others = newest(state.siblings.filter((sibling) => !covers(write.context, sibling.dot)).sort(compareSiblings), siblingsMax - 1)
  const siblings = [...others, { dot: write.dot, stamp: write.stamp, value: write.value, dependencies: write.dependencies }].sort(compareSiblings)
  const context = joinVectors(joinVectors(state.context, write.context), Object.fromEntries([[node, counter]]))
  return { context, siblings }
}

/**
 * Joins two replicas' states of one key: commutative, associative, idempotent (a CRDT merge). A
 * sibling survives when the other side holds it too, or has not seen its dot; a sibling the other
 * side has seen but no longer holds was superseded there and goes.
 *
 * The result holds at most siblingsMax siblings per coordinating node. For states built here that
 * drops nothing: a state holding a node's write covers that node's context at the write, so of the
 * node's writes it holds only ones the node's own state held right after the newest of them, and
 * applyWrite bounded that state. It bounds what a faulty peer can make a replica keep. In all the
 * result holds at most VERSIONED_SIBLINGS_WIRE_MAX siblings, the newest, so every state stays
 * decodable; only past that many (siblingsMax times the key's coordinators) can a merge drop a
 * live sibling, and with it the laws above.
 */
export function mergeStates (a: VersionedState, b: VersionedState, siblingsMax: number): VersionedState {
  assertSiblingsMax(siblingsMax)
  // The usual case, a replica taking a newer state of a key: the join is one side as it is.
  if (absorbs(b, a, siblingsMax)) return b
  if (absorbs(a, b, siblingsMax)) return a
  return joinStates(a, b, siblingsMax)
}

/**
 * Whether joining `other` into `state` gives `state` itself: `state` has seen everything `other`
 * has (its context is at least as large), holds each of `other`'s siblings it has not superseded
 * unchanged, and holds none that `other` has seen and superseded; within the sibling bounds. Then
 * joinStates would keep exactly `state`'s siblings in `state`'s (canonical) order, and its
 * context. test/unit/versioned.test.ts checks the two agree.
 */
function absorbs (state: VersionedState, other: VersionedState, siblingsMax: number): boolean {
  if (state.siblings.length > siblingsMax) return false
  for (const node of Object.keys(other.context)) if (counterOf(other.context, node) > counterOf(state.context, node)) return false
  for (const sibling of state.siblings) {
    const twin = findDot(other.siblings, sibling.dot)
    // Held by both: unchanged. Held here only: `other` has not seen it (else it superseded it there).
    if (twin === undefined ? covers(other.context, sibling.dot) : !siblingsEqual(twin, sibling)) return false
  }
  // Held by `other` only: superseded here.
  for (const sibling of other.siblings) if (findDot(state.siblings, sibling.dot) === undefined && !covers(state.context, sibling.dot)) return false
  return true
}

function findDot (siblings: readonly Sibling[], dot: Dot): Sibling | undefined {
  return siblings.find((sibling) => sibling.dot[0] === dot[0] && sibling.dot[1] === dot[1])
}

/** mergeStates without the shortcut: the join computed sibling by sibling. */
export function joinStates (a: VersionedState, b: VersionedState, siblingsMax: number): VersionedState {
  const bByDot = new Map(b.siblings.map((sibling) => [dotKey(sibling.dot), sibling]))
  const aDots = new Set<string>()
  const siblings: Sibling[] = []
  for (const sibling of a.siblings) {
    const key = dotKey(sibling.dot)
    aDots.add(key)
    const twin = bByDot.get(key)
    if (twin !== undefined) siblings.push(sameDotWinner(sibling, twin))
    else if (!covers(b.context, sibling.dot)) siblings.push(sibling)
  }
  for (const sibling of b.siblings) {
    if (!aDots.has(dotKey(sibling.dot)) && !covers(a.context, sibling.dot)) siblings.push(sibling)
  }
  siblings.sort(compareSiblings)
  return { context: joinVectors(a.context, b.context), siblings: newest(perNodeNewest(siblings, siblingsMax), VERSIONED_SIBLINGS_WIRE_MAX) }
}

/** The siblings (in canonical order) less those beyond the `count` newest of their coordinating node. */
function perNodeNewest (siblings: Sibling[], count: number): Sibling[] {
  const remainingByNode = new Map<string, number>()
  const kept: Sibling[] = []
  for (let index = siblings.length - 1; index >= 0; index--) {
    const node = siblings[index].dot[0]
    const remaining = remainingByNode.get(node) ?? count
    if (remaining === 0) continue
    remainingByNode.set(node, remaining - 1)
    kept.push(siblings[index])
  }
  return kept.length === siblings.length ? siblings : kept.reverse()
}

/**
 * A dot names one write, so both sides hold the same sibling, unless a node reused a counter
 * (lost its disk) or lies. Then one of the two must win the same way on every replica, whichever
 * side it merges from: the newer stamp, then the larger encoding.
 */
function sameDotWinner (a: Sibling, b: Sibling): Sibling {
  if (siblingsEqual(a, b)) return a
  const byStamp = compareStamps(a.stamp, b.stamp)
  if (byStamp !== 0) return byStamp > 0 ? a : b
  return compareBytes(encodeSibling(a), encodeSibling(b)) >= 0 ? a : b
}

/** The last writer by stamp, or null for an empty state. */
export function lastWriter (state: VersionedState): Sibling | null {
  let last: Sibling | null = null
  for (const sibling of state.siblings) if (last === null || compareSiblings(sibling, last) > 0) last = sibling
  return last
}

function valuesEqual (a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a === null || b === null ? a === b : bytesEqual(a, b)
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length)
  for (let index = 0; index < length; index++) if (a[index] !== b[index]) return a[index] - b[index]
  return a.length - b.length
}

function dependenciesEqual (a: Dependencies, b: Dependencies): boolean {
  if (a.length !== b.length) return false
  return a.every(([key, stamp], index) => key === b[index][0] && compareStamps(stamp, b[index][1]) === 0)
}

function siblingsEqual (a: Sibling, b: Sibling): boolean {
  return a.dot[0] === b.dot[0] && a.dot[1] === b.dot[1] && compareStamps(a.stamp, b.stamp) === 0 &&
    valuesEqual(a.value, b.value) && dependenciesEqual(a.dependencies, b.dependencies)
}

export function statesEqual (a: VersionedState, b: VersionedState): boolean {
  if (a.siblings.length !== b.siblings.length || !vectorsEqual(a.context, b.context)) return false
  return a.siblings.every((sibling, index) => siblingsEqual(sibling, b.siblings[index]))
}

/** Only the fields of a sibling, whatever else the object carries, so the bytes depend on the state alone. */
function siblingFields (sibling: Sibling): Sibling {
  return { dot: sibling.dot, stamp: sibling.stamp, value: sibling.value, dependencies: sibling.dependencies }
}

function encodeSibling (sibling: Sibling): Uint8Array {
  return encodeCanonical(siblingFields(sibling))
}

/**
 * The state's bytes in canonical form (for digests and disk): states equal by statesEqual encode
 * alike. The bytes are `encodeCanonical` of the state (`encodeVersionedStateGeneric`), written
 * directly for the state's fixed shape: every replica encodes each state it stores, and cborg's
 * general encoder (a token per item, map keys sorted by their encodings) was the largest single
 * cost of a write. Anything outside the shape the direct writer knows (a number that is not a
 * counter, a node id that is not ASCII) goes to the general encoder. test/unit/versioned.test.ts
 * checks both give the same bytes.
 */
export function encodeVersionedState (state: VersionedState): Uint8Array {
  return writeState(state) ?? encodeVersionedStateGeneric(state)
}

/** encodeVersionedState through cborg's general encoder: the reference the direct writer must match. */
export function encodeVersionedStateGeneric (state: VersionedState): Uint8Array {
  const siblings = [...state.siblings].sort(compareSiblings).map(siblingFields)
  return encodeCanonical({ context: joinVectors(state.context, {}), siblings })
}

/** Encoded map keys, in RFC 8949 order: by length, then bytewise. */
const KEY_CONTEXT = cborText('context')
const KEY_SIBLINGS = cborText('siblings')
const KEY_DOT = cborText('dot')
const KEY_STAMP = cborText('stamp')
const KEY_VALUE = cborText('value')
const KEY_DEPENDENCIES = cborText('dependencies')

/** Canonical node-id order for map keys (ASCII ids): shorter first, then by character. */
function compareMapKeys (a: string, b: string): number {
  return a.length - b.length || compareStrings(a, b)
}

/** Deterministic CBOR of a VersionedState, byte for byte what cborg's rfc8949 encoder gives; null when the state is outside its shape. */
function writeState (state: VersionedState): Uint8Array | null {
  return writeCbor((out) => {
    const nodeId = (id: string): boolean => isAscii(id) && out.text(id)
    const stamp = (value: Stamp): boolean => {
      out.head(CBOR_MAJOR.array, 3)
      return out.uint(value[0]) && out.uint(value[1]) && nodeId(value[2])
    }
    const context = Object.keys(state.context).filter((node) => counterOf(state.context, node) > 0).sort(compareMapKeys)
    out.head(CBOR_MAJOR.map, 2)
    out.raw(KEY_CONTEXT)
    out.head(CBOR_MAJOR.map, context.length)
    for (const node of context) if (!nodeId(node) || !out.uint(state.context[node] as number)) return false
    out.raw(KEY_SIBLINGS)
    out.head(CBOR_MAJOR.array, state.siblings.length)
    for (const sibling of [...state.siblings].sort(compareSiblings)) {
      out.head(CBOR_MAJOR.map, 4)
      out.raw(KEY_DOT)
      out.head(CBOR_MAJOR.array, 2)
      if (!nodeId(sibling.dot[0]) || !out.uint(sibling.dot[1])) return false
      out.raw(KEY_STAMP)
      if (!stamp(sibling.stamp)) return false
      out.raw(KEY_VALUE)
      if (sibling.value === null) out.byte(CBOR_NULL)
      else out.byteString(sibling.value)
      out.raw(KEY_DEPENDENCIES)
      out.head(CBOR_MAJOR.array, sibling.dependencies.length)
      for (const [key, keyStamp] of sibling.dependencies) {
        out.head(CBOR_MAJOR.array, 2)
        if (!out.text(key) || !stamp(keyStamp)) return false
      }
    }
    return true
  })
}

const counter = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const nodeId = z.string().min(1).max(NODE_ID_CHARS_MAX).refine(isVersionNodeId, 'a node id is [0-9A-Za-z_-] and not __proto__')
export const stampSchema = z.tuple([counter, counter, nodeId]).readonly()
/** Counter 0 is what a vector says of a node it does not name, so a dot counts from 1. */
export const dotSchema = z.tuple([nodeId, counter.min(1)]).readonly()
/** zod drops a `__proto__` key from a record without a word (it cannot be assigned); refuse it instead, as any other bad node id. */
const withoutProtoKey = z.custom<Record<string, number>>((value) => typeof value === 'object' && value !== null && !Object.hasOwn(value, '__proto__'),
  'a version vector is a map without a __proto__ key')
export const versionVectorSchema = withoutProtoKey.pipe(z.record(nodeId, counter)).refine((vector) => Object.keys(vector).length <= VERSION_VECTOR_NODES_WIRE_MAX,
  `a version vector names at most ${VERSION_VECTOR_NODES_WIRE_MAX} nodes`)
export const dependenciesSchema = z.array(z.tuple([z.string().max(KEY_BYTES_WIRE_MAX), stampSchema]).readonly())
  .max(SIBLING_DEPENDENCIES_WIRE_MAX).readonly()
export const siblingSchema = z.strictObject({ dot: dotSchema, stamp: stampSchema, value: bytesField().nullable(), dependencies: dependenciesSchema })

/**
 * Beyond the shape, the invariants every state built here keeps, which merging relies on: each
 * sibling's dot is covered by the context, dots are distinct, siblings are in canonical order.
 */
function invariantProblem (state: VersionedState): { index: number, message: string } | null {
  const dots = new Set<string>()
  for (const [index, sibling] of state.siblings.entries()) {
    const key = dotKey(sibling.dot)
    if (dots.has(key)) return { index, message: 'two siblings have the same dot' }
    dots.add(key)
    if (!covers(state.context, sibling.dot)) return { index, message: 'a sibling\'s dot is not covered by the context' }
    if (index > 0 && compareSiblings(state.siblings[index - 1], sibling) >= 0) return { index, message: 'siblings are not sorted by stamp' }
  }
  return null
}

function checkInvariants (state: VersionedState, context: z.RefinementCtx): void {
  const problem = invariantProblem(state)
  if (problem !== null) context.addIssue({ code: 'custom', message: problem.message, path: ['siblings', problem.index] })
}

/**
 * zod schema of a VersionedState (values use bytesField() from core): the rules
 * `versionedStateProblem` checks in place, and the reference the tests hold it to.
 */
export const versionedStateSchema: z.ZodType<VersionedState> = z.strictObject({
  context: versionVectorSchema,
  siblings: z.array(siblingSchema).max(VERSIONED_SIBLINGS_WIRE_MAX).readonly()
}).superRefine(checkInvariants)

/** Decodes and validates a state from disk or a peer; bad bytes are a `STORE_BAD_REQUEST`, never a crash. */
export function decodeVersionedState (bytes: Uint8Array): VersionedState {
  let value: unknown
  try {
    value = decodeCanonical(bytes)
  } catch (error) {
    throw new StoreError('STORE_BAD_REQUEST', `a versioned state is not canonical CBOR: ${errorMessage(error)}`, { bytes: bytes.length })
  }
  const problem = versionedStateProblem(value)
  if (problem !== null) throw new StoreError('STORE_BAD_REQUEST', `a versioned state does not match its schema: ${problem}`, { bytes: bytes.length })
  return value as VersionedState
}

/**
 * What `versionedStateSchema` refuses in a decoded value (the path and the rule), or null when it
 * accepts it; the value is then a VersionedState as it is. Every replica decodes every state it
 * receives, and zod's parse (which rebuilds the value as it checks it) was the largest cost of a
 * causal write at a replica; this checks the same rules in place. test/unit/versioned.test.ts
 * checks that both give the same verdict on valid, mutated and random values.
 */
export function versionedStateProblem (value: unknown): string | null {
  if (!isRecord(value) || !hasExactly(value, STATE_FIELDS)) return 'a state is a map of exactly context and siblings'
  const context = value.context
  if (!isRecord(context) || Object.hasOwn(context, '__proto__')) return 'context: a version vector is a map without a __proto__ key'
  const nodes = Object.keys(context)
  for (const node of nodes) if (!isVersionNodeId(node) || !isCounter(context[node])) return `context.${node.slice(0, 40)}: a node id and a counter`
  if (nodes.length > VERSION_VECTOR_NODES_WIRE_MAX) return `context: a version vector names at most ${VERSION_VECTOR_NODES_WIRE_MAX} nodes`
  const siblings = value.siblings
  if (!Array.isArray(siblings) || siblings.length > VERSIONED_SIBLINGS_WIRE_MAX) return `siblings: a list of at most ${VERSIONED_SIBLINGS_WIRE_MAX}`
  for (const [index, sibling] of siblings.entries()) {
    const problem = siblingProblem(sibling)
    if (problem !== null) return `siblings.${index}.${problem}`
  }
  const problem = invariantProblem(value as unknown as VersionedState)
  return problem === null ? null : `siblings.${problem.index}: ${problem.message}`
}

const STATE_FIELDS = ['context', 'siblings']
const SIBLING_FIELDS = ['dot', 'stamp', 'value', 'dependencies']

function siblingProblem (sibling: unknown): string | null {
  if (!isRecord(sibling) || !hasExactly(sibling, SIBLING_FIELDS)) return ' a sibling is a map of exactly dot, stamp, value and dependencies'
  const dot = sibling.dot
  if (!Array.isArray(dot) || dot.length !== 2 || !isNodeIdValue(dot[0]) || !isCounter(dot[1]) || dot[1] < 1) return 'dot: a node id and a counter from 1'
  if (!isStamp(sibling.stamp)) return 'stamp: two counters and a node id'
  if (sibling.value !== null && !(sibling.value instanceof Uint8Array)) return 'value: bytes or null'
  const dependencies = sibling.dependencies
  if (!Array.isArray(dependencies) || dependencies.length > SIBLING_DEPENDENCIES_WIRE_MAX) return `dependencies: a list of at most ${SIBLING_DEPENDENCIES_WIRE_MAX}`
  for (const [index, entry] of dependencies.entries()) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || entry[0].length > KEY_BYTES_WIRE_MAX || !isStamp(entry[1])) {
      return `dependencies.${index}: a key of at most ${KEY_BYTES_WIRE_MAX} characters and a stamp`
    }
  }
  return null
}

function isStamp (value: unknown): boolean {
  return Array.isArray(value) && value.length === 3 && isCounter(value[0]) && isCounter(value[1]) && isNodeIdValue(value[2])
}

function isNodeIdValue (value: unknown): boolean {
  return typeof value === 'string' && isVersionNodeId(value)
}

/** A 16-byte digest of the state (first 16 bytes of SHA-256 of encodeVersionedState). */
export function stateDigest (state: VersionedState): Uint8Array {
  return sha256(encodeVersionedState(state)).slice(0, STATE_DIGEST_BYTES)
}
