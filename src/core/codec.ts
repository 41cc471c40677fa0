/**
 * The one canonical encoding: deterministic CBOR (RFC 8949 core deterministic encoding, via
 * cborg) for everything hashed, signed or sent. Every message type has a schema (zod); bytes from
 * the network are decoded strictly and then checked against the schema of their `type` before any
 * protocol sees them. Failures are `CoreError`s, never crashes.
 */
import { encode as cborEncode, decode as cborDecode, rfc8949EncodeOptions, Token, Type } from 'cborg'
import { z } from 'zod'
import { readCbor } from './cbor-reader.js'
import { CoreError, errorMessage } from './errors.js'

export interface Message {
  readonly type: string
}

/** What a message's own check says of a decoded value: the message, or what is wrong with it. */
export type MessageCheck<M extends Message> = { readonly message: M } | { readonly problem: string }

export interface MessageSchema<M extends Message = Message> {
  readonly type: string
  readonly schema: z.ZodType<M>
  /**
   * Fast paths for a hot message, each held by a property test to the two references: `write`
   * gives exactly `encodeCanonical`'s bytes of a message of the schema's shape (or null: the
   * general encoder decides), `check` gives the schema's verdict on a decoded value, checking in
   * place what zod would rebuild (it may still hand parts to zod, and take zod's result for them).
   */
  write? (message: M): Uint8Array | null
  check? (value: Record<string, unknown>): MessageCheck<M>
}

/** A strict object schema whose `type` field is the literal message type. */
export function defineMessage<const Type extends string, Shape extends z.ZodRawShape> (
  type: Type,
  shape: Shape
): MessageSchema<{ readonly type: Type } & z.infer<z.ZodObject<Shape>>> {
  const schema = z.strictObject({ type: z.literal(type), ...shape })
  return { type, schema: schema as unknown as z.ZodType<{ readonly type: Type } & z.infer<z.ZodObject<Shape>>> }
}

export type MessageOf<S> = S extends MessageSchema<infer M> ? M : never

type MapEntryTokens = Parameters<NonNullable<typeof rfc8949EncodeOptions.mapSorter>>[0]
const rfc8949MapSorter = rfc8949EncodeOptions.mapSorter as NonNullable<typeof rfc8949EncodeOptions.mapSorter>

/**
 * RFC 8949 orders map keys by their encoded bytes. For two ASCII text keys that is: the shorter
 * first, then by character, which needs no encoding; cborg's own sorter encodes every key to
 * compare it, the largest single cost of encoding a message. Any other key goes to cborg's sorter.
 * `test/unit/codec.test.ts` checks that both give the same bytes.
 */
function canonicalMapSorter (e1: MapEntryTokens, e2: MapEntryTokens): number {
  const key1 = e1[0]
  const key2 = e2[0]
  if (key1 instanceof Token && key2 instanceof Token && key1.type === Type.string && key2.type === Type.string) {
    const text1 = key1.value as string
    const text2 = key2.value as string
    if (isAscii(text1) && isAscii(text2)) {
      if (text1.length !== text2.length) return text1.length - text2.length
      return text1 < text2 ? -1 : text1 > text2 ? 1 : 0
    }
  }
  return rfc8949MapSorter(e1, e2)
}

const ASCII_ONLY = /^[\x00-\x7f]*$/

/** Whether every character is ASCII (then a string's UTF-16 units are its UTF-8 bytes, and its order is theirs). */
export function isAscii (text: string): boolean {
  return ASCII_ONLY.test(text)
}

const encodeOptions = {
  ...rfc8949EncodeOptions,
  mapSorter: canonicalMapSorter,
  typeEncoders: {
    undefined: (): never => { throw new CoreError('CORE_ENCODE_FAILED', 'undefined is not encodable; omit the field instead') }
  }
}

const decodeOptions = {
  strict: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowIndefinite: false,
  allowInfinity: false,
  allowNaN: false,
  useMaps: false
}

/** Deterministic CBOR bytes of a value: equal values give equal bytes. */
export function encodeCanonical (value: unknown): Uint8Array {
  try {
    return cborEncode(value, encodeOptions)
  } catch (error) {
    if (error instanceof CoreError) throw error
    throw new CoreError('CORE_ENCODE_FAILED', `cannot encode: ${errorMessage(error)}`)
  }
}

/** Strict decode of one CBOR item; trailing bytes, duplicate keys and non-canonical forms fail. */
export function decodeCanonical (bytes: Uint8Array): unknown {
  // The usual message takes the direct reader; anything outside its subset, or malformed, goes to cborg.
  const direct = readCbor(bytes)
  if (direct !== null) return direct.value
  try {
    return cborDecode(bytes, decodeOptions)
  } catch (error) {
    throw new CoreError('CORE_DECODE_FAILED', `malformed CBOR: ${errorMessage(error)}`, { bytes: bytes.length })
  }
}

/** The set of message types a node understands, and the decoder that enforces them. */
export class MessageRegistry {
  private readonly definitions = new Map<string, MessageSchema>()

  constructor (definitions: Iterable<MessageSchema> = []) {
    for (const definition of definitions) this.register(definition)
  }

  register (definition: MessageSchema): void {
    if (this.definitions.has(definition.type)) throw new Error(`message type ${definition.type} registered twice`)
    this.definitions.set(definition.type, definition)
  }

  has (type: string): boolean {
    return this.definitions.has(type)
  }

  types (): string[] {
    return [...this.definitions.keys()].sort()
  }

  encode (message: Message): Uint8Array {
    const definition = this.definitions.get(message.type)
    if (definition === undefined) throw new CoreError('CORE_UNKNOWN_MESSAGE_TYPE', `no schema for message type ${message.type}`, { type: message.type })
    return definition.write?.(message) ?? encodeCanonical(message)
  }

  decode (bytes: Uint8Array): Message {
    const value = decodeCanonical(bytes)
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CoreError('CORE_SCHEMA_MISMATCH', 'a message is a CBOR map')
    }
    const type = (value as { type?: unknown }).type
    if (typeof type !== 'string') throw new CoreError('CORE_SCHEMA_MISMATCH', 'a message has a string field "type"')
    const definition = this.definitions.get(type)
    if (definition === undefined) throw new CoreError('CORE_UNKNOWN_MESSAGE_TYPE', `unknown message type ${JSON.stringify(type.slice(0, 64))}`, { type: type.slice(0, 64) })
    let checked: MessageCheck<Message>
    try {
      checked = definition.check !== undefined ? definition.check(value as Record<string, unknown>) : parseMessage(definition.schema, value)
    } catch (error) {
      // A check that throws (a bug) refuses the message, as zod's throws do: bytes from a peer never crash a node.
      checked = { problem: errorMessage(error) }
    }
    if ('problem' in checked) throw new CoreError('CORE_SCHEMA_MISMATCH', `message ${type} does not match its schema: ${checked.problem}`, { type })
    return checked.message
  }
}

/**
 * zod's verdict on a decoded value: the message zod made of it, or its first issue (the path and
 * the rule). zod can throw instead of reporting (`readonly()` freezes a byte string where a list
 * was expected: a TypeError); that is a refusal too.
 */
export function parseMessage<M extends Message> (schema: z.ZodType<M>, value: unknown): MessageCheck<M> {
  let parsed: ReturnType<typeof schema.safeParse>
  try {
    parsed = schema.safeParse(value)
  } catch (error) {
    return { problem: errorMessage(error) }
  }
  if (parsed.success) return { message: parsed.data }
  const issue = parsed.error.issues[0]
  return { problem: `${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim() }
}

/**
 * In-place checks of decoded values, for the hand-written `check`s that stand in for zod schemas.
 * A map as cborg decodes one is a plain object. (zod's object also takes other objects, a
 * Uint8Array say, and then finds its fields missing: with every field required, the verdicts agree.)
 */
export function isRecord (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) return false
  const prototype = Object.getPrototypeOf(value) as unknown
  return prototype === Object.prototype || prototype === null
}

/** The object's own keys are exactly `fields` (a strict object with every field required). */
export function hasExactly (value: Record<string, unknown>, fields: readonly string[]): boolean {
  const keys = Object.keys(value)
  return keys.length === fields.length && fields.every((field) => Object.hasOwn(value, field) && value[field] !== undefined)
}

/** An integer from 0 to 2^53 - 1, as `z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)` accepts. */
export function isCounter (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** Schema for a byte string field (CBOR major type 2). */
export function bytesField (): z.ZodType<Uint8Array> {
  return z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes')
}

/** A node id on the wire: 20 lowercase hex digits (see `nodeIdFromPublicKey`). */
export function nodeIdField (): z.ZodType<string> {
  return z.string().regex(/^[0-9a-f]{20}$/)
}
