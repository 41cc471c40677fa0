/**
 * Wire messages of the store. The `strong` level is CASPaxos (Rystsov 2018): every key is its own
 * replicated register over the key's replicas, with prepare/promise and accept/accepted rounds,
 * no leader and no log. Requests from clients reach a coordinator (`store.forward`), and tombstones
 * are collected with a check of every replica followed by an erase (`store.gc-check`, `store.erase`).
 */
import { z } from 'zod'
import { bytesField, defineMessage, type MessageOf } from '../core/index.js'

/** The longest key the wire accepts, in UTF-8 bytes (the configured limit may be lower). */
export const KEY_BYTES_WIRE_MAX = 4_096

const key = z.string().min(1).max(KEY_BYTES_WIRE_MAX)
const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/**
 * A ballot: a counter, then the proposer's node id to break ties. `~` sorts above every node id
 * (lowercase hex): it marks an acceptor's implicit promise for keys it holds no record of.
 */
export const ballotSchema = z.tuple([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().min(1).max(64)]).readonly()
export type Ballot = readonly [counter: number, proposer: string]

/**
 * The value of one key's register: its version (1 for the first write, +1 for every write after),
 * its bytes, or null for a tombstone, and the id of the write that produced it (so a coordinator
 * that retries can recognise its own write).
 */
export const registerSchema = z.strictObject({
  version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  value: bytesField().nullable(),
  writeId: z.string().max(128)
})
export type Register = z.infer<typeof registerSchema>

export const storePrepare = defineMessage('store.prepare', { requestId, key, ballot: ballotSchema })
export const storePromise = defineMessage('store.promise', {
  requestId,
  key,
  /** The ballot this answers (a reply is matched by request id and ballot both). */
  ballot: ballotSchema,
  ok: z.boolean(),
  /** On refusal: the ballot this acceptor promised, which the proposer must exceed. */
  promised: ballotSchema,
  accepted: z.strictObject({ ballot: ballotSchema, register: registerSchema }).nullable()
})
export const storeAccept = defineMessage('store.accept', { requestId, key, ballot: ballotSchema, register: registerSchema })
export const storeAccepted = defineMessage('store.accepted', { requestId, key, ballot: ballotSchema, ok: z.boolean(), promised: ballotSchema })

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
export const storeBatch = defineMessage('store.batch', {
  messages: z.array(z.discriminatedUnion('type', [
    storePrepare.schema, storePromise.schema, storeAccept.schema, storeAccepted.schema, storeForward.schema,
    storeForwardReply.schema, storeGcCheck.schema, storeGcState.schema, storeErase.schema
  ] as unknown as [z.ZodObject, z.ZodObject, ...z.ZodObject[]])).min(2).max(STORE_BATCH_MESSAGES_MAX)
})

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
