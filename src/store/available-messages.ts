/**
 * Wire messages of the store's available levels, `causal` and `eventual` (docs/store.md). Each
 * key's replicas hold a multi-value state with dotted version vectors (`versioned.ts`); every
 * message that carries state carries the whole state of one key, so a replica merges whatever
 * arrives, in any order, any number of times, and ends at the same state (a CRDT join).
 *
 * - `kv.write`: a coordinator's write, a hint handed off, a read repair or an anti-entropy push.
 *   `requestId` 0 wants no acknowledgement; `hintFor` names the down replica a substitute keeps
 *   the state for (sloppy quorum).
 *
 * A state travels as its canonical bytes (`encodeVersionedState`, as stored on disk), decoded and
 * checked by the receiver (`decodeVersionedState`): a coordinator encodes a write once for its own
 * disk and every replica, instead of once more per peer inside each batch.
 * - `kv.read` / `kv.read-reply`: a coordinator reading a replica's state.
 * - `kv.forward` / `kv.forward-reply`: a request from a node that is not a replica.
 * - `kv.ae-nodes`, `kv.ae-leaves`, `kv.ae-pull`: Merkle anti-entropy between two replicas.
 */
import { z } from 'zod'
import { bytesField, defineMessage, type MessageOf } from '../core/index.js'
import { DIGEST_TREE_DEPTH_MAX } from './digest-tree.js'
import { KEY_BYTES_WIRE_MAX } from './messages.js'
import { dependenciesSchema, stampSchema, versionVectorSchema } from './versioned.js'

const key = z.string().min(1).max(KEY_BYTES_WIRE_MAX)
const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const nodeId = z.string().min(1).max(128)

/** Replicas a request may ask for in `w` or `r`, on the wire (the ring's replication factor bounds it further). */
export const QUORUM_WIRE_MAX = 64
/** Keys one anti-entropy pull or leaf message names at most. */
export const ANTI_ENTROPY_KEYS_WIRE_MAX = 4_096
/** Tree nodes one anti-entropy message carries at most. */
export const ANTI_ENTROPY_NODES_WIRE_MAX = 8_192

export const availableLevels = ['causal', 'eventual'] as const
export type AvailableLevel = typeof availableLevels[number]

/** A request at the causal or eventual level, as a client's node hands it to a coordinator. */
export const availableRequestSchema = z.strictObject({
  level: z.enum(availableLevels),
  kind: z.enum(['get', 'put', 'delete']),
  key,
  /** A put's value; null for get and delete. */
  value: bytesField().nullable(),
  /** Replicas that must hold a write before it is acknowledged (eventual; causal writes use 1). */
  writeQuorum: z.number().int().min(1).max(QUORUM_WIRE_MAX),
  /** Replicas whose states a read merges before it answers (eventual; causal reads use 1). */
  readQuorum: z.number().int().min(1).max(QUORUM_WIRE_MAX),
  /** Sibling mode: a read returns every concurrent value; a write supersedes exactly `context`. */
  siblings: z.boolean(),
  /** A sibling-mode write's context: what the client read and merged (null: supersede nothing). */
  context: versionVectorSchema.nullable(),
  /** The causal session's dependencies (empty at the eventual level). */
  dependencies: dependenciesSchema
})
export type AvailableRequest = z.infer<typeof availableRequestSchema>

export const siblingValueSchema = z.strictObject({ value: bytesField().nullable(), stamp: stampSchema })

export const availableResultSchema = z.strictObject({
  kind: z.enum(['get', 'put', 'delete']),
  /** A write's stamp; a read's: the stamp of the value returned (null when the key holds nothing). */
  stamp: stampSchema.nullable(),
  /** A read's value by last writer (null: absent or deleted). */
  value: bytesField().nullable(),
  /** A sibling-mode read: every concurrent value, oldest first. */
  siblings: z.array(siblingValueSchema).max(1_024),
  /** A read's causal context, for a sibling-mode write that resolves the siblings. */
  context: versionVectorSchema,
  /** The causal session's dependencies after the operation. */
  dependencies: dependenciesSchema
})
export type AvailableResult = z.infer<typeof availableResultSchema>

/** A state's canonical bytes on the wire; the receiver decodes and checks them (`decodeVersionedState`). */
const stateBytes = bytesField()

export const kvWrite = defineMessage('kv.write', { requestId, key, state: stateBytes, hintFor: nodeId.nullable() })
export const kvWriteAck = defineMessage('kv.write-ack', { requestId, key })
export const kvRead = defineMessage('kv.read', { requestId, key })
export const kvReadReply = defineMessage('kv.read-reply', { requestId, key, state: stateBytes })
export const kvForward = defineMessage('kv.forward', {
  requestId,
  /** Unique per forwarding node and incarnation: a request runs once however often it arrives. */
  forwardId: z.string().min(1).max(128),
  request: availableRequestSchema,
  deadlineInMs: z.number().int().min(0).max(600_000)
})
export const kvForwardReply = defineMessage('kv.forward-reply', {
  requestId,
  result: availableResultSchema.nullable(),
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(1_024) }).nullable()
})

const treeNode = z.strictObject({
  level: z.number().int().min(0).max(48),
  prefix: z.number().int().min(0).max(2 ** 48 - 1),
  hash: bytesField()
})
const treeRef = z.strictObject({ level: z.number().int().min(0).max(48), prefix: z.number().int().min(0).max(2 ** 48 - 1) })

/** Anti-entropy: the sender's hashes of these tree nodes (the root first); the receiver descends where its own differ. */
export const kvAeNodes = defineMessage('kv.ae-nodes', {
  exchangeId: z.string().min(1).max(64),
  depth: z.number().int().min(0).max(DIGEST_TREE_DEPTH_MAX),
  nodes: z.array(treeNode).min(1).max(ANTI_ENTROPY_NODES_WIRE_MAX)
})
/** Anti-entropy: leaves that differ, with the sender's (key, digest) entries under them. */
export const kvAeLeaves = defineMessage('kv.ae-leaves', {
  exchangeId: z.string().min(1).max(64),
  depth: z.number().int().min(0).max(DIGEST_TREE_DEPTH_MAX),
  leaves: z.array(treeRef).min(1).max(ANTI_ENTROPY_NODES_WIRE_MAX),
  entries: z.array(z.strictObject({ key, digest: bytesField() })).max(ANTI_ENTROPY_KEYS_WIRE_MAX)
})
/** Anti-entropy: keys whose states the sender lacks or holds differently; the receiver sends them (`kv.write`, no ack). */
export const kvAePull = defineMessage('kv.ae-pull', { exchangeId: z.string().min(1).max(64), keys: z.array(key).min(1).max(ANTI_ENTROPY_KEYS_WIRE_MAX) })

/** Messages one batch carries at most. */
export const KV_BATCH_MESSAGES_MAX = 1_024

export const kvBatch = defineMessage('kv.batch', {
  messages: z.array(z.discriminatedUnion('type', [
    kvWrite.schema, kvWriteAck.schema, kvRead.schema, kvReadReply.schema, kvForward.schema, kvForwardReply.schema,
    kvAeNodes.schema, kvAeLeaves.schema, kvAePull.schema
  ] as unknown as [z.ZodObject, z.ZodObject, ...z.ZodObject[]])).min(2).max(KV_BATCH_MESSAGES_MAX)
})

export type KvWrite = MessageOf<typeof kvWrite>
export type KvWriteAck = MessageOf<typeof kvWriteAck>
export type KvRead = MessageOf<typeof kvRead>
export type KvReadReply = MessageOf<typeof kvReadReply>
export type KvForward = MessageOf<typeof kvForward>
export type KvForwardReply = MessageOf<typeof kvForwardReply>
export type KvAeNodes = MessageOf<typeof kvAeNodes>
export type KvAeLeaves = MessageOf<typeof kvAeLeaves>
export type KvAePull = MessageOf<typeof kvAePull>
export type KvMessage = KvWrite | KvWriteAck | KvRead | KvReadReply | KvForward | KvForwardReply | KvAeNodes | KvAeLeaves | KvAePull
export interface KvBatch { type: 'kv.batch', messages: KvMessage[] }

export const kvMessages = [kvWrite, kvWriteAck, kvRead, kvReadReply, kvForward, kvForwardReply, kvAeNodes, kvAeLeaves, kvAePull, kvBatch]
