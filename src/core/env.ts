/**
 * The environment protocol code runs in. `src/node` implements it with libp2p, LMDB, timers and
 * the wall clock; `src/sim` with an in-memory network and disk on virtual time. Protocol code
 * receives everything through these interfaces and performs no IO of its own.
 */
import type { NodeId } from './crypto.js'
import type { Message, MessageSchema } from './codec.js'
import type { Prng } from './prng.js'
import type { SynodError } from './errors.js'

export type { NodeId } from './crypto.js'

export type TimerId = number

export interface Clock {
  /** Milliseconds. Monotonic within a process run. */
  now (): number
}

export interface Timers {
  setTimer (afterMs: number, fire: () => void): TimerId
  clearTimer (id: TimerId): void
}

export type LogFields = Record<string, unknown>

export interface Logger {
  debug (fields: LogFields, message: string): void
  info (fields: LogFields, message: string): void
  warn (fields: LogFields, message: string): void
  error (fields: LogFields, message: string): void
  child (bindings: LogFields): Logger
}

/**
 * Key-value disk. Reads see every earlier write at once; a write is durable only once a later
 * `sync` has called back. A crash loses every write not yet covered by a completed sync.
 */
export interface Disk {
  get (key: string): Uint8Array | undefined
  put (key: string, value: Uint8Array): void
  delete (key: string): void
  /**
   * Entries whose key starts with prefix, in key order, at most limit of them, and only keys after
   * `after` when it is given: a caller pages through a long range with the last key of each page,
   * holding one page at a time. Keys are ordered as JavaScript compares strings, which is LMDB's
   * order for printable ASCII: page only ranges of such keys.
   */
  entries (prefix: string, limit?: number, after?: string): Array<[string, Uint8Array]>
  /** Calls onDurable once every write issued before this call is durable. */
  sync (onDurable: () => void): void
}

export type LinkState = 'connected' | 'disconnected'

export interface LinkInfo {
  readonly peer: NodeId
  readonly state: LinkState
  /** Clock time of the last state change. */
  readonly sinceMs: number
  readonly framesSent: number
  readonly framesReceived: number
}

/** Encodes and decodes any message type the node's services speak (for messages inside messages). */
export interface MessageCodec {
  encode (message: Message): Uint8Array
  /** Throws a `CoreError` for bytes that are not a valid message. */
  decode (bytes: Uint8Array): Message
}

export interface Env {
  readonly self: NodeId
  /** Every member of the network config, this node included, sorted. */
  readonly members: readonly NodeId[]
  now (): number
  readonly random: Prng
  /** Best effort: a message to a peer with no live link is dropped and counted. */
  send<M extends Message> (to: NodeId, message: M): void
  setTimer (afterMs: number, fire: () => void): TimerId
  clearTimer (id: TimerId): void
  readonly disk: Disk
  readonly log: Logger
  links (): readonly LinkInfo[]
  /**
   * Disconnects `peer` and refuses links with it, both ways, until clock time `untilMs` (this
   * env's `now`), for a peer that misbehaved; an `untilMs` at or before now lifts the refusal.
   * The link comes back by itself once the refusal ends. Services may hear the link go down
   * (`onLinkChange`) before this returns.
   */
  refusePeer (peer: NodeId, untilMs: number): void
  readonly codec: MessageCodec
}

/** A protocol: synchronous handlers, an event in, state changes and effects out. */
export interface Service {
  readonly name: string
  readonly messages: readonly MessageSchema[]
  start (env: Env): void
  onMessage (from: NodeId, message: Message): void
  onLinkChange? (peer: NodeId, state: LinkState): void
  /** A peer sent bytes that did not decode (the transport has dropped its link); for scoring. */
  onPeerMisbehaved? (peer: NodeId, error: SynodError): void
  stop? (): void
  /** A JSON-friendly summary for `/v1/status` and the simulator's report. */
  status? (): object
}

export const silentLogger: Logger = {
  debug () {},
  info () {},
  warn () {},
  error () {},
  child () { return silentLogger }
}
