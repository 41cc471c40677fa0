/**
 * Wire messages of the store. The `strong` level is CASPaxos (Rystsov 2018): every key is its own
 * replicated register over the key's replicas, with prepare/promise and accept/accepted rounds,
 * no leader and no log. Requests from clients reach a coordinator (`store.forward`), and tombstones
 * are collected with a check of every replica followed by an erase (`store.gc-check`, `store.erase`).
 */
import { z } from 'zod'
import {
  bytesField, CBOR_FALSE, CBOR_MAJOR, CBOR_NULL, CBOR_TRUE, cborText, type CborWriter, defineMessage, writeCbor, hasExactly, isCounter, isRecord, parseMessage,
  type Message, type MessageCheck, type MessageOf, type MessageSchema
} from '../core/index.js'

/** The longest key the wire accepts, in UTF-8 bytes (the configured limit may be lower). */
export const KEY_BYTES_WIRE_MAX = 4_096

/** The longest proposer id a ballot carries, in characters. */
const BALLOT_PROPOSER_CHARS_MAX = 64
/** The longest write id a register carries, in characters. */
const WRITE_ID_CHARS_MAX = 128

const key = z.string().min(1).max(KEY_BYTES_WIRE_MAX)
const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/**
 * A ballot: a counter, then the proposer's node id to break ties. `~` sorts above every node id
 * (lowercase hex): it marks an acceptor's implicit promise for keys it holds no record of.
 */
export const ballotSchema = z.tuple([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().min(1).max(BALLOT_PROPOSER_CHARS_MAX)]).readonly()
export type Ballot = readonly [counter: number, proposer: string]

/**
 * The value of one key's register: its version (1 for the first write, +1 for every write after),
 * its bytes, or null for a tombstone, and the id of the write that produced it (so a coordinator
 * that retries can recognise its own write).
 */
export const registerSchema = z.strictObject({
  version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  value: bytesField().nullable(),
  writeId: z.string().max(WRITE_ID_CHARS_MAX)
})
export type Register = z.infer<typeof registerSchema>

export const storePrepare = withFastPaths(defineMessage('store.prepare', { requestId, key, ballot: ballotSchema }))
export const storePromise = withFastPaths(defineMessage('store.promise', {
  requestId,
  key,
  /** The ballot this answers (a reply is matched by request id and ballot both). */
  ballot: ballotSchema,
  ok: z.boolean(),
  /** On refusal: the ballot this acceptor promised, which the proposer must exceed. */
  promised: ballotSchema,
  accepted: z.strictObject({ ballot: ballotSchema, register: registerSchema }).nullable()
}))
export const storeAccept = withFastPaths(defineMessage('store.accept', { requestId, key, ballot: ballotSchema, register: registerSchema }))
export const storeAccepted = withFastPaths(defineMessage('store.accepted', { requestId, key, ballot: ballotSchema, ok: z.boolean(), promised: ballotSchema }))

/** A client operation, as forwarded to a coordinator. Values are bytes; `expected` null = absent. */
export const kvOperationSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('get'), key }),
  z.strictObject({ kind: z.literal('put'), key, value: bytesField() }),
  z.strictObject({ kind: z.literal('delete'), key }),
  z.strictObject({ kind: z.literal('cas'), key, expected: bytesField().nullable(), value: bytesField() })
])
export type KvOperation = z.infer<typeof kvOperationSchema>

export const kvResultSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('get'), found: z.boolean(), value: bytesField().nullable(), version: z.number().int().min(0) }),
  z.strictObject({ kind: z.literal('put'), version: z.number().int().min(0) }),
  z.strictObject({ kind: z.literal('delete'), found: z.boolean(), version: z.number().int().min(0) }),
  z.strictObject({ kind: z.literal('cas'), applied: z.boolean(), current: bytesField().nullable(), version: z.number().int().min(0) })
])
export type KvResult = z.infer<typeof kvResultSchema>

export const storeForward = defineMessage('store.forward', {
  requestId,
  /** Unique per forwarding node and incarnation: the coordinator runs a request once, however often the network delivers it. */
  forwardId: z.string().min(1).max(128),
  operation: kvOperationSchema,
  deadlineInMs: z.number().int().min(0).max(600_000)
})
export const storeForwardReply = defineMessage('store.forward-reply', {
  requestId,
  result: kvResultSchema.nullable(),
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(1_024) }).nullable()
})

/** Asks a replica whether it holds exactly this tombstone with nothing newer promised. */
export const storeGcCheck = defineMessage('store.gc-check', { requestId, key, ballot: ballotSchema })
export const storeGcState = defineMessage('store.gc-state', { requestId, key, erasable: z.boolean() })
/** Every replica holds the tombstone: erase it (each replica checks again first). */
export const storeErase = defineMessage('store.erase', { key, ballot: ballotSchema })

/** Messages one batch carries at most. */
export const STORE_BATCH_MESSAGES_MAX = 1_024

/**
 * The store messages a node has for one peer within one turn of its event loop, sent as one: one
 * envelope, one encoding and one frame instead of one per message (many keys' rounds go to the
 * same replicas at once).
 */
const storeBatchDefinition = defineMessage('store.batch', {
  messages: z.array(z.discriminatedUnion('type', [
    storePrepare.schema, storePromise.schema, storeAccept.schema, storeAccepted.schema, storeForward.schema,
    storeForwardReply.schema, storeGcCheck.schema, storeGcState.schema, storeErase.schema
  ] as unknown as [z.ZodObject, z.ZodObject, ...z.ZodObject[]])).min(2).max(STORE_BATCH_MESSAGES_MAX)
})
export const storeBatch: MessageSchema<StoreBatch> = {
  type: storeBatchDefinition.type,
  schema: storeBatchDefinition.schema as unknown as z.ZodType<StoreBatch>,
  write: writeBatch,
  check: checkBatch
}

export type StorePrepare = MessageOf<typeof storePrepare>
export type StorePromise = MessageOf<typeof storePromise>
export type StoreAccept = MessageOf<typeof storeAccept>
export type StoreAccepted = MessageOf<typeof storeAccepted>
export type StoreForward = MessageOf<typeof storeForward>
export type StoreForwardReply = MessageOf<typeof storeForwardReply>
export type StoreGcCheck = MessageOf<typeof storeGcCheck>
export type StoreGcState = MessageOf<typeof storeGcState>
export type StoreErase = MessageOf<typeof storeErase>
export type StoreMessage = StorePrepare | StorePromise | StoreAccept | StoreAccepted | StoreForward | StoreForwardReply | StoreGcCheck | StoreGcState | StoreErase
export interface StoreBatch { type: 'store.batch', messages: StoreMessage[] }

export const storeMessages = [storePrepare, storePromise, storeAccept, storeAccepted, storeForward, storeForwardReply, storeGcCheck, storeGcState, storeErase, storeBatch]

/** Orders ballots: by counter, then by proposer id. */
export function compareBallots (a: Ballot, b: Ballot): number {
  if (a[0] !== b[0]) return a[0] - b[0]
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0
}

/** The ballot an acceptor promises when it accepts `ballot`: the proposer's next one, for its one-round-trip path. */
export function successorBallot (ballot: Ballot): Ballot {
  return [ballot[0] + 1, ballot[1]]
}

// --- the hot messages written directly and checked in place ----------------------------------------
//
// Every strong operation sends an accept to each replica and gets an accepted back, and each
// replica writes its acceptor record: cborg's general encoder (a token per item, map keys sorted
// by their encodings) and zod's parse (which rebuilds the value it checks) were a fifth of a
// node's CPU on strong puts. The four round messages, batches of them and acceptor records are
// written here directly, in canonical key order, and checked in place; any other message, and
// any value outside the shape the writer knows, goes to the general encoder and to zod.
// test/unit/store-messages.test.ts holds both to encodeCanonical and to the schemas.

/** Encoded map keys and type names: each written once, copied on every use. */
const TEXT = {
  ok: cborText('ok'),
  key: cborText('key'),
  type: cborText('type'),
  value: cborText('value'),
  ballot: cborText('ballot'),
  version: cborText('version'),
  writeId: cborText('writeId'),
  accepted: cborText('accepted'),
  messages: cborText('messages'),
  promised: cborText('promised'),
  register: cborText('register'),
  requestId: cborText('requestId')
}
const TYPE_TEXT: Readonly<Record<string, Uint8Array>> = {
  'store.prepare': cborText('store.prepare'),
  'store.promise': cborText('store.promise'),
  'store.accept': cborText('store.accept'),
  'store.accepted': cborText('store.accepted'),
  'store.batch': cborText('store.batch')
}
/** About how many bytes a written message takes besides its value, to size the writer. */
const WRITTEN_MESSAGE_BYTES = 128

function writeBallot (out: CborWriter, ballot: Ballot): boolean {
  if (ballot.length !== 2 || typeof ballot[1] !== 'string') return false
  out.head(CBOR_MAJOR.array, 2)
  return out.uint(ballot[0]) && out.text(ballot[1])
}

/** Map keys in canonical order: value, version, writeId. */
function writeRegister (out: CborWriter, register: Register): boolean {
  out.head(CBOR_MAJOR.map, 3)
  out.raw(TEXT.value)
  if (register.value === null) out.byte(CBOR_NULL)
  else out.byteString(register.value)
  out.raw(TEXT.version)
  if (!out.uint(register.version)) return false
  out.raw(TEXT.writeId)
  return out.text(register.writeId)
}

/** An accepted ballot with its register (keys: ballot, register), or null. */
function writeAcceptedPair (out: CborWriter, accepted: { ballot: Ballot, register: Register } | null): boolean {
  if (accepted === null) { out.byte(CBOR_NULL); return true }
  out.head(CBOR_MAJOR.map, 2)
  out.raw(TEXT.ballot)
  if (!writeBallot(out, accepted.ballot)) return false
  out.raw(TEXT.register)
  return writeRegister(out, accepted.register)
}

/** The fields of each round message, as its schema has them. */
const ROUND_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'store.prepare': ['type', 'requestId', 'key', 'ballot'],
  'store.promise': ['type', 'requestId', 'key', 'ballot', 'ok', 'promised', 'accepted'],
  'store.accept': ['type', 'requestId', 'key', 'ballot', 'register'],
  'store.accepted': ['type', 'requestId', 'key', 'ballot', 'ok', 'promised']
}

/** The fields every round message has that sort first: key, type, ballot (after `ok`, where there is one). */
function writeKeyTypeBallot (out: CborWriter, message: StoreMessage & { key: string, ballot: Ballot }): boolean {
  out.raw(TEXT.key)
  if (!out.text(message.key)) return false
  out.raw(TEXT.type)
  out.raw(TYPE_TEXT[message.type] as Uint8Array)
  out.raw(TEXT.ballot)
  return writeBallot(out, message.ballot)
}

function writeOk (out: CborWriter, ok: boolean): boolean {
  if (typeof ok !== 'boolean') return false
  out.raw(TEXT.ok)
  out.byte(ok ? CBOR_TRUE : CBOR_FALSE)
  return true
}

/** The field every round message has that sorts last. */
function writeRequestId (out: CborWriter, requestId: number): boolean {
  out.raw(TEXT.requestId)
  return out.uint(requestId)
}

/**
 * One of the four round messages, keys in canonical order (by length, then bytewise: ok, key,
 * type, ballot, accepted, promised, register, requestId); false for any other message, or a value
 * the writer cannot write as cborg would (a number that is not a counter, text with a lone
 * surrogate, a ballot that is not a pair, an `ok` that is not a boolean). It reads the schema's
 * fields only: an object with extra fields, which TypeScript's types rule out, would lose them.
 */
function writeRoundMessage (out: CborWriter, message: StoreMessage): boolean {
  switch (message.type) {
    case 'store.prepare':
      out.head(CBOR_MAJOR.map, 4)
      return writeKeyTypeBallot(out, message) && writeRequestId(out, message.requestId)
    case 'store.accept':
      out.head(CBOR_MAJOR.map, 5)
      if (!writeKeyTypeBallot(out, message)) return false
      out.raw(TEXT.register)
      return writeRegister(out, message.register) && writeRequestId(out, message.requestId)
    case 'store.accepted':
      out.head(CBOR_MAJOR.map, 6)
      if (!writeOk(out, message.ok) || !writeKeyTypeBallot(out, message)) return false
      out.raw(TEXT.promised)
      return writeBallot(out, message.promised) && writeRequestId(out, message.requestId)
    case 'store.promise':
      out.head(CBOR_MAJOR.map, 7)
      if (!writeOk(out, message.ok) || !writeKeyTypeBallot(out, message)) return false
      out.raw(TEXT.accepted)
      if (!writeAcceptedPair(out, message.accepted)) return false
      out.raw(TEXT.promised)
      return writeBallot(out, message.promised) && writeRequestId(out, message.requestId)
    default:
      return false
  }
}

function valueBytes (message: StoreMessage): number {
  if (message.type === 'store.accept') return message.register.value?.length ?? 0
  if (message.type === 'store.promise') return message.accepted?.register.value?.length ?? 0
  return 0
}

function writeSingle (message: StoreMessage): Uint8Array | null {
  return writeCbor((out) => writeRoundMessage(out, message), WRITTEN_MESSAGE_BYTES + valueBytes(message))
}

/** A batch of round messages only (keys: type, messages); null when it holds any other. */
function writeBatch (batch: StoreBatch): Uint8Array | null {
  let bytes = 16
  for (const message of batch.messages) bytes += WRITTEN_MESSAGE_BYTES + valueBytes(message)
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, 2)
    out.raw(TEXT.type)
    out.raw(TYPE_TEXT['store.batch'] as Uint8Array)
    out.raw(TEXT.messages)
    out.head(CBOR_MAJOR.array, batch.messages.length)
    for (const message of batch.messages) if (!writeRoundMessage(out, message)) return false
    return true
  }, bytes)
}

/** An acceptor's record of a key, as it goes to disk: exactly `encodeCanonical(record)` (keys: accepted, promised). */
export function encodeAcceptorRecordDirect (record: { promised: Ballot, accepted: { ballot: Ballot, register: Register } | null }): Uint8Array | null {
  return writeCbor((out) => {
    out.head(CBOR_MAJOR.map, 2)
    out.raw(TEXT.accepted)
    if (!writeAcceptedPair(out, record.accepted)) return false
    out.raw(TEXT.promised)
    return writeBallot(out, record.promised)
  }, WRITTEN_MESSAGE_BYTES + (record.accepted?.register.value?.length ?? 0))
}

function isKey (value: unknown): boolean {
  return typeof value === 'string' && value.length >= 1 && value.length <= KEY_BYTES_WIRE_MAX
}

function isBallot (value: unknown): boolean {
  return Array.isArray(value) && value.length === 2 && isCounter(value[0]) &&
    typeof value[1] === 'string' && value[1].length >= 1 && value[1].length <= BALLOT_PROPOSER_CHARS_MAX
}

const REGISTER_FIELDS = ['version', 'value', 'writeId']
const BATCH_FIELDS = ['type', 'messages']
const ACCEPTED_PAIR_FIELDS = ['ballot', 'register']

function isRegister (value: unknown): boolean {
  return isRecord(value) && hasExactly(value, REGISTER_FIELDS) && isCounter(value.version) &&
    (value.value === null || value.value instanceof Uint8Array) && typeof value.writeId === 'string' && value.writeId.length <= WRITE_ID_CHARS_MAX
}

function isAcceptedPair (value: unknown): boolean {
  return value === null || (isRecord(value) && hasExactly(value, ACCEPTED_PAIR_FIELDS) && isBallot(value.ballot) && isRegister(value.register))
}

/**
 * What the schema of a round message refuses in a decoded value (the field and the rule), or
 * null when it accepts it: the same verdict as the zod schema, without rebuilding the value.
 */
function roundMessageProblem (value: Record<string, unknown>): string | null {
  const fields = ROUND_FIELDS[value.type as string] as readonly string[]
  if (!hasExactly(value, fields)) return `a ${String(value.type)} is a map of exactly ${fields.join(', ')}`
  if (!isCounter(value.requestId)) return 'requestId: an integer from 0 to 2^53 - 1'
  if (!isKey(value.key)) return `key: a string of 1 to ${KEY_BYTES_WIRE_MAX} characters`
  if (!isBallot(value.ballot)) return `ballot: a counter and a proposer of 1 to ${BALLOT_PROPOSER_CHARS_MAX} characters`
  switch (value.type) {
    case 'store.accept':
      return isRegister(value.register) ? null : `register: exactly a version, a value (bytes or null) and a write id of at most ${WRITE_ID_CHARS_MAX} characters`
    case 'store.accepted':
      if (typeof value.ok !== 'boolean') return 'ok: a boolean'
      return isBallot(value.promised) ? null : 'promised: a ballot'
    case 'store.promise':
      if (typeof value.ok !== 'boolean') return 'ok: a boolean'
      if (!isBallot(value.promised)) return 'promised: a ballot'
      return isAcceptedPair(value.accepted) ? null : 'accepted: null, or exactly a ballot and a register'
    default:
      return null
  }
}

function checkRoundMessage<M extends Message> (value: Record<string, unknown>): MessageCheck<M> {
  const problem = roundMessageProblem(value)
  return problem === null ? { message: value as unknown as M } : { problem }
}

/** The store's other messages, which a batch may carry too: zod checks those. */
const OTHER_SCHEMAS: ReadonlyMap<string, z.ZodType<Message>> = new Map<string, z.ZodType<Message>>([
  [storeForward.type, storeForward.schema], [storeForwardReply.type, storeForwardReply.schema], [storeGcCheck.type, storeGcCheck.schema],
  [storeGcState.type, storeGcState.schema], [storeErase.type, storeErase.schema]
])

/** A batch checked message by message: round messages in place, any other store message by its schema (and replaced by zod's result). */
function checkBatch (value: Record<string, unknown>): MessageCheck<StoreBatch> {
  if (!hasExactly(value, BATCH_FIELDS)) return { problem: 'a store.batch is a map of exactly type and messages' }
  const messages = value.messages
  if (!Array.isArray(messages) || messages.length < 2 || messages.length > STORE_BATCH_MESSAGES_MAX) return { problem: `messages: a list of 2 to ${STORE_BATCH_MESSAGES_MAX} messages` }
  for (let index = 0; index < messages.length; index++) {
    const inner: unknown = messages[index]
    if (!isRecord(inner)) return { problem: `messages.${index}: a store message` }
    const type = inner.type
    if (typeof type === 'string' && Object.hasOwn(ROUND_FIELDS, type)) {
      const problem = roundMessageProblem(inner)
      if (problem !== null) return { problem: `messages.${index}: ${problem}` }
      continue
    }
    const schema = typeof type === 'string' ? OTHER_SCHEMAS.get(type) : undefined
    if (schema === undefined) return { problem: `messages.${index}.type: a store message type other than store.batch` }
    const parsed = parseMessage(schema, inner)
    if ('problem' in parsed) return { problem: `messages.${index}: ${parsed.problem}` }
    messages[index] = parsed.message
  }
  return { message: value as unknown as StoreBatch }
}

/** A round message's definition with its direct writer and in-place check. */
function withFastPaths<M extends Message> (definition: MessageSchema<M>): MessageSchema<M> {
  return {
    ...definition,
    write: (message: M) => writeSingle(message as unknown as StoreMessage),
    check: (value: Record<string, unknown>) => checkRoundMessage<M>(value)
  }
}
