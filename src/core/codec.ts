/**
 * The one canonical encoding: deterministic CBOR (RFC 8949 core deterministic encoding, via
 * cborg) for everything hashed, signed or sent. Every message type has a schema (zod); bytes from
 * the network are decoded strictly and then checked against the schema of their `type` before any
 * protocol sees them. Failures are `CoreError`s, never crashes.
 */
import { encode as cborEncode, decode as cborDecode, rfc8949EncodeOptions, Token, Type } from 'cborg'
import { z } from 'zod'
import { CoreError, errorMessage } from './errors.js'

export interface Message {
  readonly type: string
}

export interface MessageSchema<M extends Message = Message> {
  readonly type: string
  readonly schema: z.ZodType<M>
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
  try {
    return cborDecode(bytes, decodeOptions)
  } catch (error) {
    throw new CoreError('CORE_DECODE_FAILED', `malformed CBOR: ${errorMessage(error)}`, { bytes: bytes.length })
  }
}

/** The set of message types a node understands, and the decoder that enforces them. */
export class MessageRegistry {
  private readonly schemas = new Map<string, z.ZodType<Message>>()

  constructor (definitions: Iterable<MessageSchema> = []) {
    for (const definition of definitions) this.register(definition)
  }

  register (definition: MessageSchema): void {
    if (this.schemas.has(definition.type)) throw new Error(`message type ${definition.type} registered twice`)
    this.schemas.set(definition.type, definition.schema)
  }

  has (type: string): boolean {
    return this.schemas.has(type)
  }

  types (): string[] {
    return [...this.schemas.keys()].sort()
  }

  encode (message: Message): Uint8Array {
    if (!this.schemas.has(message.type)) throw new CoreError('CORE_UNKNOWN_MESSAGE_TYPE', `no schema for message type ${message.type}`, { type: message.type })
    return encodeCanonical(message)
  }

  decode (bytes: Uint8Array): Message {
    const value = decodeCanonical(bytes)
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CoreError('CORE_SCHEMA_MISMATCH', 'a message is a CBOR map')
    }
    const type = (value as { type?: unknown }).type
    if (typeof type !== 'string') throw new CoreError('CORE_SCHEMA_MISMATCH', 'a message has a string field "type"')
    const schema = this.schemas.get(type)
    if (schema === undefined) throw new CoreError('CORE_UNKNOWN_MESSAGE_TYPE', `unknown message type ${JSON.stringify(type.slice(0, 64))}`, { type: type.slice(0, 64) })
    let parsed: ReturnType<typeof schema.safeParse>
    try {
      parsed = schema.safeParse(value)
    } catch (error) {
      // zod can throw instead of reporting: `readonly()` freezes a byte string where a list was expected (TypeError).
      throw new CoreError('CORE_SCHEMA_MISMATCH', `message ${type} does not match its schema: ${errorMessage(error)}`, { type })
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new CoreError('CORE_SCHEMA_MISMATCH', `message ${type} does not match its schema: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(), { type })
    }
    return parsed.data
  }
}

/** Schema for a byte string field (CBOR major type 2). */
export function bytesField (): z.ZodType<Uint8Array> {
  return z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected bytes')
}

/** A node id on the wire: 20 lowercase hex digits (see `nodeIdFromPublicKey`). */
export function nodeIdField (): z.ZodType<string> {
  return z.string().regex(/^[0-9a-f]{20}$/)
}
