/**
 * The convergence checker for the store's `causal` and `eventual` levels: once the network has
 * healed and the cluster is quiet, (1) every replica of a key holds the same thing (the same set
 * of versioned values: one under last-writer-wins, several siblings otherwise), and (2) no write
 * the store acknowledged is lost: each one is still there, or superseded by a write with a greater
 * version. The input is the replicas' final states with the history that led to them, as
 * docs/store-history.md describes.
 */
import { z } from 'zod'
import { CheckError, VERSION_PATTERN, parseHistoryJson, type IndexedKvOperation, type KvHistoryOperation } from './linearizable.js'
import { compareVersions, describeVersionedOperation } from './causal.js'

/** One value a replica holds for a key, with its version. value null: a tombstone (a delete). */
export interface VersionedValue {
  value: string | null
  version: string
}

/** One replica's final state of one key. `values` empty: it holds nothing for the key. */
export interface ReplicaKeyState {
  node: string
  key: string
  values: VersionedValue[]
}

export interface ConvergenceInput {
  replicas: ReplicaKeyState[]
  history: KvHistoryOperation[]
}

export type ConvergenceVerdict = 'converged' | 'not-converged'

export type ConvergenceViolationKind =
  /** Replicas of one key hold different sets of versioned values. */
  | 'diverged'
  /** An acknowledged write is on no replica, and nothing with a greater version superseded it. */
  | 'lost-write'

export interface ConvergenceViolation {
  kind: ConvergenceViolationKind
  key: string
  reason: string
  /** Every replica's state of the key, values in version order (empty for a key no replica lists). */
  replicas: Array<{ node: string, values: VersionedValue[] }>
  /** lost-write: the write, with its index in the history. */
  operations: IndexedKvOperation[]
}

export interface ConvergenceReport {
  ok: boolean
  verdict: ConvergenceVerdict
  /** Keys listed by a replica or written in the history. */
  keys: number
  /** Distinct replica nodes. */
  replicas: number
  /** Acknowledged writes (returned, with a version) checked for loss. */
  writes: number
  violations: ConvergenceViolation[]
}

// ---------------------------------------------------------------------------------------------
// Parsing

const versionSchema = z.string().regex(VERSION_PATTERN, { error: 'expected a version "<physicalMs>.<logical>.<node>"' })

const inputSchema = z.object({
  replicas: z.array(z.object({
    node: z.string().min(1),
    key: z.string(),
    values: z.array(z.object({ value: z.string().nullable(), version: versionSchema }))
  })),
  history: z.array(z.unknown(), { error: 'expected a JSON array of operations' })
}, { error: 'expected an object with "replicas" and "history"' })

function badInput (field: string | null, problem: string, details: Record<string, unknown> = {}): CheckError {
  return new CheckError('CHECK_BAD_HISTORY', field === null ? `convergence input: ${problem}` : `convergence input, field ${field}: ${problem}`, field === null ? details : { ...details, field })
}

/**
 * Validates a convergence input that is already JSON (or handed over by code): the schema, the
 * history (as `parseHistory` would, inside `history`), no cas, and each (node, key) listed once.
 * Throws a `CheckError` (`CHECK_BAD_HISTORY`) naming the field.
 */
export function validateConvergenceInput (json: unknown): ConvergenceInput {
  const parsed = inputSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue === undefined || issue.path.length === 0 ? null : issue.path.map(String).join('.')
    throw badInput(field, issue?.message ?? 'not a convergence input')
  }
  const history = parseHistoryJson(parsed.data.history, 'history')
  for (const [index, operation] of history.entries()) {
    if (operation.op === 'cas') throw new CheckError('CHECK_BAD_HISTORY', `history, operation at index ${index}, field op: cas is not offered at the causal and eventual levels`, { index, field: 'op' })
  }
  const listed = new Map<string, Set<string>>()
  for (const [position, replica] of parsed.data.replicas.entries()) {
    let keys = listed.get(replica.node)
    if (keys === undefined) listed.set(replica.node, keys = new Set())
    if (keys.has(replica.key)) throw badInput(`replicas.${position}`, `node ${JSON.stringify(replica.node)} lists key ${JSON.stringify(replica.key)} twice`)
    keys.add(replica.key)
  }
  return { replicas: parsed.data.replicas, history }
}

/** Reads a convergence input file: one JSON object (docs/store-history.md). */
export function parseConvergenceInput (text: string): ConvergenceInput {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw badInput(null, `not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  return validateConvergenceInput(json)
}

// ---------------------------------------------------------------------------------------------
// The check

/** A replica's values as a set: deduplicated, in version order then value order. */
function canonical (values: readonly VersionedValue[]): VersionedValue[] {
  const unique = new Map<string, VersionedValue>()
  for (const { value, version } of values) unique.set(JSON.stringify([version, value]), { value, version })
  return [...unique.values()].sort((a, b) => compareVersions(a.version, b.version) || compareValues(a.value, b.value))
}

function compareValues (a: string | null, b: string | null): number {
  if (a === b) return 0
  if (a === null) return -1
  if (b === null) return 1
  return a < b ? -1 : 1
}

function describeValues (values: readonly VersionedValue[]): string {
  if (values.length === 0) return 'nothing'
  return values.map(({ value, version }) => `${value === null ? 'tombstone' : JSON.stringify(value)}@${version}`).join(', ')
}

interface KeyReplicas {
  states: Array<{ node: string, values: VersionedValue[] }>
  /** The greatest version any replica holds for the key, and every (version, value) held. */
  greatestVersion: string | null
  held: Set<string>
}

function groupReplicas (replicas: readonly ReplicaKeyState[]): Map<string, KeyReplicas> {
  const byKey = new Map<string, KeyReplicas>()
  for (const replica of replicas) {
    let entry = byKey.get(replica.key)
    if (entry === undefined) byKey.set(replica.key, entry = { states: [], greatestVersion: null, held: new Set() })
    const values = canonical(replica.values)
    entry.states.push({ node: replica.node, values })
    for (const { value, version } of values) {
      entry.held.add(JSON.stringify([version, value]))
      if (entry.greatestVersion === null || compareVersions(version, entry.greatestVersion) > 0) entry.greatestVersion = version
    }
  }
  for (const entry of byKey.values()) entry.states.sort((a, b) => a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
  return byKey
}

function checkDivergence (key: string, entry: KeyReplicas): ConvergenceViolation | null {
  const groups = new Map<string, string[]>()
  for (const state of entry.states) {
    const signature = JSON.stringify(state.values)
    let nodes = groups.get(signature)
    if (nodes === undefined) groups.set(signature, nodes = [])
    nodes.push(state.node)
  }
  if (groups.size < 2) return null
  const described = [...groups].map(([signature, nodes]) => `${nodes.join(', ')} ${nodes.length === 1 ? 'holds' : 'hold'} ${describeValues(JSON.parse(signature) as VersionedValue[])}`)
  return {
    kind: 'diverged',
    key,
    reason: `the ${entry.states.length} replicas of key ${JSON.stringify(key)} hold ${groups.size} different states: ${described.join('; ')}`,
    replicas: entry.states,
    operations: []
  }
}

/**
 * A write is kept when some replica holds it (its version with its value: a delete's is null) or
 * a greater version of its key. With diverged replicas, any one replica is enough here: the
 * divergence is reported on its own.
 */
function checkWrite (history: readonly KvHistoryOperation[], index: number, entry: KeyReplicas | undefined): ConvergenceViolation | null {
  const write = history[index] as KvHistoryOperation
  const version = write.version as string
  const value = write.op === 'put' ? write.value as string : null
  if (entry !== undefined && entry.greatestVersion !== null) {
    const order = compareVersions(entry.greatestVersion, version)
    if (order > 0 || entry.held.has(JSON.stringify([version, value]))) return null
  }
  const where = entry === undefined
    ? 'no replica lists the key'
    : `no replica holds it or a greater version (${entry.states.map((state) => `${state.node}: ${describeValues(state.values)}`).join('; ')})`
  return {
    kind: 'lost-write',
    key: write.key,
    reason: `${describeVersionedOperation(write, index)} was acknowledged, but ${where}`,
    replicas: entry?.states ?? [],
    operations: [{ ...write, index }]
  }
}

/**
 * Checks the final replica states of a causal or eventual store: the replicas of each key agree
 * (as sets of versioned values), and every acknowledged write (returned, with a version) is held
 * or superseded by a greater version. Throws a `CheckError` (`CHECK_BAD_HISTORY`) for an input
 * that does not fit docs/store-history.md.
 */
export function checkConvergence (input: ConvergenceInput): ConvergenceReport {
  const { replicas, history } = validateConvergenceInput(input)
  const byKey = groupReplicas(replicas)
  const violations: ConvergenceViolation[] = []
  for (const [key, entry] of byKey) {
    const divergence = checkDivergence(key, entry)
    if (divergence !== null) violations.push(divergence)
  }
  const keys = new Set(byKey.keys())
  let writes = 0
  for (const [index, operation] of history.entries()) {
    if (operation.op === 'get') continue
    keys.add(operation.key)
    if (operation.return_ns === null || typeof operation.version !== 'string') continue
    writes++
    const lost = checkWrite(history, index, byKey.get(operation.key))
    if (lost !== null) violations.push(lost)
  }
  return {
    ok: violations.length === 0,
    verdict: violations.length === 0 ? 'converged' : 'not-converged',
    keys: keys.size,
    replicas: new Set(replicas.map((replica) => replica.node)).size,
    writes,
    violations
  }
}
