/**
 * The strong level's hot messages (prepare, promise, accept, accepted, batches of them) and the
 * acceptor's records are written directly and checked in place. These tests hold the direct
 * writer to `encodeCanonical` byte for byte, and the in-place check to the zod schemas verdict for
 * verdict, on random valid messages and on random damage to them.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { z } from 'zod'
import { CoreError, MessageRegistry, decodeCanonical, encodeCanonical, toHex, type Message } from '../../src/core/index.js'
import { encodeAcceptorRecord } from '../../src/store/acceptor.js'
import {
  KEY_BYTES_WIRE_MAX, STORE_BATCH_MESSAGES_MAX, encodeAcceptorRecordDirect, storeAccept, storeAccepted, storeBatch, storeMessages, storePrepare, storePromise,
  type Ballot, type Register, type StoreMessage
} from '../../src/store/messages.js'
import { mutate, mutations } from '../support/mutations.js'

const registry = new MessageRegistry(storeMessages)

/** Text of every kind: ASCII, other Unicode, astral characters; and now and then a lone surrogate (UTF-8 cannot hold it). */
const text = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.oneof(
  { weight: 40, arbitrary: fc.string({ minLength, maxLength }) },
  { weight: 10, arbitrary: fc.string({ unit: 'binary', minLength, maxLength }) },
  { weight: 1, arbitrary: fc.constantFrom('\uD800', 'a\uDC00b').filter((value) => value.length >= minLength && value.length <= maxLength) }
)
const counter = fc.oneof(fc.nat(30), fc.nat(), fc.constantFrom(23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER))
const ballot: fc.Arbitrary<Ballot> = fc.tuple(counter, fc.oneof(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 20, maxLength: 20 }), text(1, 64)))
const register: fc.Arbitrary<Register> = fc.record({
  version: counter,
  value: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: null }),
  writeId: text(0, 128)
})
const key = text(1, 40)
const accepted = fc.option(fc.record({ ballot, register }), { nil: null })
const roundMessage: fc.Arbitrary<StoreMessage> = fc.oneof(
  fc.record({ type: fc.constant('store.prepare' as const), requestId: counter, key, ballot }),
  fc.record({ type: fc.constant('store.promise' as const), requestId: counter, key, ballot, ok: fc.boolean(), promised: ballot, accepted }),
  fc.record({ type: fc.constant('store.accept' as const), requestId: counter, key, ballot, register }),
  fc.record({ type: fc.constant('store.accepted' as const), requestId: counter, key, ballot, ok: fc.boolean(), promised: ballot })
)
/** Store messages the direct writer leaves to the general encoder. */
const otherMessage: fc.Arbitrary<StoreMessage> = fc.oneof(
  fc.record({ type: fc.constant('store.gc-check' as const), requestId: counter, key, ballot }),
  fc.record({ type: fc.constant('store.erase' as const), key, ballot }),
  fc.record({
    type: fc.constant('store.forward' as const),
    requestId: counter,
    forwardId: fc.string({ minLength: 1, maxLength: 20 }),
    operation: fc.record({ kind: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 20 }) }),
    deadlineInMs: fc.nat(600_000)
  })
)
const batch = fc.array(fc.oneof({ weight: 11, arbitrary: roundMessage }, { weight: 1, arbitrary: otherMessage }), { minLength: 2, maxLength: 12 })
  .map((messages) => ({ type: 'store.batch' as const, messages }))
/** Whether any text holds a lone surrogate, which UTF-8 cannot hold (cborg writes U+FFFD for it). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
function hasLoneSurrogate (value: unknown): boolean {
  let found = false
  JSON.stringify(value, (name: string, item: unknown) => {
    if (LONE_SURROGATE.test(name) || (typeof item === 'string' && LONE_SURROGATE.test(item))) found = true
    return item instanceof Uint8Array ? null : item
  })
  return found
}

function hex (bytes: Uint8Array): string {
  return toHex(bytes)
}

/** What encodeCanonical gives, or its error's code (the writer must fall back to it, error and all). */
function generic (value: unknown): string {
  try {
    return hex(encodeCanonical(value))
  } catch (error) {
    return `error ${(error as CoreError).code}`
  }
}

function viaRegistry (message: Message): string {
  try {
    return hex(registry.encode(message))
  } catch (error) {
    return `error ${(error as CoreError).code}`
  }
}

/** The writer of a message's own definition, called directly (the registry would hide a null behind cborg). */
function directWrite (message: Message): Uint8Array | null {
  const definition = storeMessages.find((candidate) => candidate.type === message.type)
  return (definition?.write as ((value: Message) => Uint8Array | null) | undefined)?.(message) ?? null
}

const ROUND_TYPES = new Set(['store.prepare', 'store.promise', 'store.accept', 'store.accepted'])
const writtenDirectly = (message: Message): boolean => ROUND_TYPES.has(message.type) ||
  (message.type === 'store.batch' && (message as unknown as { messages: Message[] }).messages.every((inner) => ROUND_TYPES.has(inner.type)))

describe('store messages: the direct writer', () => {
  it('writes every round message and batch of them itself, exactly as encodeCanonical does, and they decode back to the message', () => {
    let direct = 0
    fc.assert(fc.property(fc.oneof(roundMessage, batch, otherMessage), (message) => {
      const written = directWrite(message)
      // cborg writes a lone surrogate as U+FFFD, so the writer leaves such text to it (and the message does not come back as it was).
      if (hasLoneSurrogate(message)) { assert.equal(written, null); return }
      if (!writtenDirectly(message)) { assert.equal(written, null, 'a batch with another message goes to cborg whole'); return }
      assert.ok(written !== null, `written directly: ${message.type}`)
      assert.equal(hex(written), generic(message))
      assert.equal(viaRegistry(message), hex(written))
      assert.deepEqual(registry.decode(written), structuredClone(message))
      direct++
    }), { numRuns: 3_000 })
    assert.ok(direct > 1_000, `many messages are written directly (${direct})`)
  })

  it('leaves to the general encoder what it cannot write as cborg would', () => {
    const prepare = { type: 'store.prepare', requestId: 7, key: 'k', ballot: [3, 'a'] } as const
    const accepted = { type: 'store.accepted', requestId: 7, key: 'k', ballot: [3, 'a'], ok: true, promised: [4, 'a'] } as const
    const write = storePrepare.write as (message: unknown) => Uint8Array | null
    const writeAccepted = storeAccepted.write as (message: unknown) => Uint8Array | null
    assert.equal(hex(write(prepare) as Uint8Array), hex(encodeCanonical(prepare)))
    for (const odd of [
      { ...prepare, key: 'a\uD800' }, // a lone surrogate
      { ...prepare, requestId: 1.5 }, // a number that is not a counter
      { ...prepare, ballot: [3, 'a', 1] }, // a ballot that is not a pair
      { ...prepare, ballot: [3, 7] }
    ]) assert.equal(write(odd), null, JSON.stringify(odd))
    assert.equal(writeAccepted({ ...accepted, ok: 1 }), null, 'an ok that is not a boolean')
    assert.equal(writeAccepted({ ...accepted, ok: undefined }), null, 'a missing ok')
    const batchWrite = storeBatch.write as (message: unknown) => Uint8Array | null
    assert.equal(batchWrite({ type: 'store.batch', messages: [prepare, { type: 'store.erase', key: 'k', ballot: [1, 'a'] }] }), null)
    assert.equal(hex(batchWrite({ type: 'store.batch', messages: [prepare, accepted] }) as Uint8Array), hex(encodeCanonical({ type: 'store.batch', messages: [prepare, accepted] })))
    for (const definition of [storePromise, storeAccept]) assert.equal(typeof definition.write, 'function')
  })

  it('writes acceptor records itself, exactly as encodeCanonical does', () => {
    let direct = 0
    fc.assert(fc.property(ballot, accepted, (promised, acceptedPair) => {
      const record = { promised, accepted: acceptedPair }
      const written = encodeAcceptorRecordDirect(record)
      if (hasLoneSurrogate(record)) { assert.equal(written, null); return }
      assert.ok(written !== null)
      assert.equal(hex(written), hex(encodeCanonical(record)))
      assert.equal(hex(encodeAcceptorRecord(record)), hex(written))
      direct++
    }), { numRuns: 2_000 })
    assert.ok(direct > 1_000, `many records are written directly (${direct})`)
  })
})

const oddValue = fc.oneof(
  fc.constantFrom(-1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 0, 1, '', 'a', '~', 'x'.repeat(65), 'x'.repeat(129), 'k'.repeat(KEY_BYTES_WIRE_MAX + 1),
    null, true, false, 7n, [], [1], [1, 'a'], [1, 'a', 2], {}, new Uint8Array(2), 'store.prepare', 'store.accept', 'store.batch', 'store.erase', 'nope'),
  fc.string({ maxLength: 5 }), fc.integer({ min: -3, max: 40 })
)
const mutationArbitrary = mutations(oddValue, ['extra', 'type', 'key', 'value', '0'])

/** zod's verdict on a decoded value, through the schema of its type (a throw is a refusal, as MessageRegistry treats it). */
function zodAccepts (value: unknown): boolean {
  const type = (value as { type?: unknown } | null)?.type
  const definition = storeMessages.find((candidate) => candidate.type === type)
  if (definition === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return false
  try {
    return (definition.schema as z.ZodType).safeParse(value).success
  } catch {
    return false
  }
}

function registryAccepts (value: unknown): boolean {
  try {
    registry.decode(encodeCanonical(value))
    return true
  } catch (error) {
    if (error instanceof CoreError && (error.code === 'CORE_SCHEMA_MISMATCH' || error.code === 'CORE_UNKNOWN_MESSAGE_TYPE' || error.code === 'CORE_DECODE_FAILED')) return false
    throw error
  }
}

describe('store messages: the in-place check', () => {
  it('refuses exactly what the zod schemas refuse, for valid and damaged messages and batches', () => {
    let refused = 0
    let acceptedCount = 0
    const runs = Number(process.env.SYNOD_STATE_CHECK_RUNS ?? 4_000)
    fc.assert(fc.property(fc.oneof(roundMessage, batch), fc.array(mutationArbitrary, { maxLength: 3 }), (message, damage) => {
      const value = decodeCanonical(encodeCanonical(message))
      for (const mutation of damage) mutate(value, mutation)
      let bytes: Uint8Array
      try {
        bytes = encodeCanonical(value)
      } catch {
        return // damage cborg cannot encode (a bigint out of range) never reaches a decoder
      }
      // The reference decodes afresh: the in-place check may replace a batch's other messages with zod's result.
      const byZod = zodAccepts(decodeCanonical(bytes))
      const byRegistry = registryAccepts(decodeCanonical(bytes))
      if (byRegistry !== byZod) assert.fail(`zod ${byZod ? 'accepts' : 'refuses'}, the registry ${byRegistry ? 'accepts' : 'refuses'}: ${JSON.stringify(decodeCanonical(bytes), (_, item: unknown) => typeof item === 'bigint' ? `${item}n` : item instanceof Uint8Array ? `bytes(${item.length})` : item)}`)
      if (byZod) acceptedCount++
      else refused++
    }), { numRuns: runs })
    assert.ok(refused > runs / 6 && acceptedCount > runs / 6, `both verdicts are exercised (${acceptedCount} accepted, ${refused} refused)`)
  })

  it('refuses the bounds and shapes zod refuses, with the field named', () => {
    const prepare = { type: 'store.prepare', requestId: 1, key: 'k', ballot: [1, 'a'] }
    const cases: Array<[unknown, RegExp]> = [
      [{ ...prepare, key: 'k'.repeat(KEY_BYTES_WIRE_MAX + 1) }, /key/],
      [{ ...prepare, key: '' }, /key/],
      [{ ...prepare, ballot: [1, 'p'.repeat(65)] }, /ballot/],
      [{ ...prepare, requestId: -1 }, /requestId/],
      [{ ...prepare, extra: 1 }, /exactly/],
      [{ type: 'store.accept', requestId: 1, key: 'k', ballot: [1, 'a'], register: { version: 1, value: 'text', writeId: 'w' } }, /register/],
      [{ type: 'store.accepted', requestId: 1, key: 'k', ballot: [1, 'a'], ok: 1, promised: [2, 'a'] }, /ok/],
      [{ type: 'store.promise', requestId: 1, key: 'k', ballot: [1, 'a'], ok: true, promised: [2, 'a'], accepted: { ballot: [1, 'a'] } }, /accepted/],
      [{ type: 'store.batch', messages: [prepare] }, /messages/],
      [{ type: 'store.batch', messages: Array.from({ length: STORE_BATCH_MESSAGES_MAX + 1 }, () => prepare) }, /messages/],
      [{ type: 'store.batch', messages: [prepare, { type: 'store.batch', messages: [prepare, prepare] }] }, /messages\.1\.type/],
      [{ type: 'store.batch', messages: [prepare, { type: 'store.erase', key: 'k' }] }, /messages\.1/]
    ]
    for (const [value, field] of cases) {
      assert.equal(zodAccepts(value), false, JSON.stringify(value).slice(0, 80))
      assert.throws(() => registry.decode(encodeCanonical(value)), (error: unknown) => error instanceof CoreError && error.code === 'CORE_SCHEMA_MISMATCH' && field.test(error.message))
    }
  })

  it('hands a batch\'s other messages to the protocol as zod parsed them', () => {
    const erase = { type: 'store.erase', key: 'k', ballot: [4, 'b'] }
    const decoded = registry.decode(encodeCanonical({ type: 'store.batch', messages: [{ type: 'store.prepare', requestId: 1, key: 'k', ballot: [1, 'a'] }, erase] })) as unknown as { messages: Array<{ ballot: unknown }> }
    assert.deepEqual(decoded, { type: 'store.batch', messages: [{ type: 'store.prepare', requestId: 1, key: 'k', ballot: [1, 'a'] }, erase] })
    // zod's result, not the decoded value: its readonly() tuple comes back frozen; the round message is checked in place.
    assert.ok(Object.isFrozen(decoded.messages[1]?.ballot))
    assert.ok(!Object.isFrozen(decoded.messages[0]?.ballot))
  })
})
