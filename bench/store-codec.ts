/**
 * The codec work of one strong put, in one process: the direct path the nodes use (the store's
 * round messages written directly and checked in place, the direct CBOR reader, acceptor records
 * written directly) against the general path (cborg's encoder and decoder, zod's parse) on the
 * same messages, interleaved, best of several rounds. No target: the figures say how much of a
 * put's CPU the codec is, which the cluster benchmarks on a noisy machine cannot resolve.
 *
 * One put, as `kv-strong` runs it with 3 replicas: the coordinator sends an accept to each of 2
 * replicas and gets 2 accepteds back, each of the 3 replicas writes its acceptor record, and
 * messages travel in batches (about 8 a frame under load, from the nodes' frame counters).
 */
import { isDeepStrictEqual } from 'node:util'
import { decode as cborDecode } from 'cborg'
import { MessageRegistry, decodeCanonical, encodeCanonical, type Message } from '../src/core/index.js'
import { encodeAcceptorRecord, type AcceptorRecord } from '../src/store/acceptor.js'
import { storeMessages, type StoreAccept, type StoreAccepted, type StoreBatch } from '../src/store/messages.js'
import type { BenchResult } from './util.js'

const MEASURE_MS = 500
const WARMUP_MS = 300
const ROUNDS = 5
/** Messages a batch carries, as measured under the kv-strong load. */
const BATCH_MESSAGES = 8
const VALUE_BYTES = 100
/** cborg's options as decodeCanonical sets them, for the general path. */
const CBORG_STRICT = { strict: true, rejectDuplicateMapKeys: true, allowUndefined: false, allowIndefinite: false, allowInfinity: false, allowNaN: false, useMaps: false }

const direct = new MessageRegistry(storeMessages)
const schemaOf = new Map(storeMessages.map((definition) => [definition.type, definition.schema]))

/** The general path: cborg encodes, cborg decodes, zod parses. */
function generalEncode (message: Message): Uint8Array {
  return encodeCanonical(message)
}
function generalDecode (bytes: Uint8Array): unknown {
  const value = cborDecode(bytes, CBORG_STRICT) as Message
  const parsed = schemaOf.get(value.type)?.safeParse(value)
  if (parsed?.success !== true) throw new Error('the general path refused a message')
  return parsed.data
}

const proposer = '13a66c697daa3691a82c'
const value = new Uint8Array(VALUE_BYTES).fill(7)
const accepts: StoreBatch = {
  type: 'store.batch',
  messages: Array.from({ length: BATCH_MESSAGES }, (_, index): StoreAccept => ({
    type: 'store.accept', requestId: 1_000_000_000 + index, key: `key-${index * 7919}`, ballot: [120_000 + index, proposer],
    register: { version: 17 + index, value, writeId: `${proposer}.1x2y3z.${(index * 31).toString(36)}` }
  }))
}
const accepteds: StoreBatch = {
  type: 'store.batch',
  messages: Array.from({ length: BATCH_MESSAGES }, (_, index): StoreAccepted => ({
    type: 'store.accepted', requestId: 1_000_000_000 + index, key: `key-${index * 7919}`, ballot: [120_000 + index, proposer], ok: true, promised: [120_001 + index, proposer]
  }))
}
const record: AcceptorRecord = { promised: [120_001, proposer], accepted: { ballot: [120_000, proposer], register: { version: 17, value, writeId: `${proposer}.1x2y3z.a` } } }

/** One batch's worth of puts: each batch goes to 2 replicas and comes back from 2; each put writes 3 records. */
function batchOfPuts (encode: (message: Message) => Uint8Array, decode: (bytes: Uint8Array) => unknown, writeRecord: () => Uint8Array): number {
  let bytes = 0
  for (let replica = 0; replica < 2; replica++) {
    const out = encode(accepts)
    decode(out)
    const back = encode(accepteds)
    decode(back)
    bytes += out.length + back.length
  }
  for (let put = 0; put < BATCH_MESSAGES * 3; put++) bytes += writeRecord().length
  return bytes
}

const cases: Array<{ name: string, run: () => number }> = [
  {
    name: 'general: cborg encode and decode, zod parse',
    run: () => batchOfPuts(generalEncode, generalDecode, () => encodeCanonical(record))
  },
  {
    name: 'direct: written directly, read directly, checked in place',
    run: () => batchOfPuts((message) => direct.encode(message), (bytes) => direct.decode(bytes), () => encodeAcceptorRecord(record))
  }
]

/** Puts per second of codec work. */
function rate (run: () => number, durationMs: number): number {
  let puts = 0
  let sink = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    sink += run()
    puts += BATCH_MESSAGES
  }
  if (sink === 0) throw new Error('nothing was encoded')
  return puts / ((performance.now() - started) / 1_000)
}

export async function storeCodecBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  // Both paths must agree before either is timed.
  for (const batch of [accepts, accepteds]) {
    if (Buffer.compare(direct.encode(batch), generalEncode(batch)) !== 0) throw new Error('the direct writer and cborg disagree')
    if (!isDeepStrictEqual(decodeCanonical(generalEncode(batch)), cborDecode(generalEncode(batch), CBORG_STRICT))) throw new Error('the direct reader and cborg disagree')
  }
  const rates: Record<string, number> = {}
  for (const benchCase of cases) rate(benchCase.run, WARMUP_MS)
  for (let round = 1; round <= ROUNDS; round++) {
    for (const benchCase of cases) rates[benchCase.name] = Math.max(rates[benchCase.name] ?? 0, rate(benchCase.run, MEASURE_MS))
    progress(`round ${round} of ${ROUNDS} done`)
  }
  const general = cases[0]!.name
  const usPerPut = (name: string): number => 1e6 / (rates[name] as number)
  const rows = cases.map((benchCase) => [benchCase.name, usPerPut(benchCase.name).toFixed(1), (usPerPut(benchCase.name) / usPerPut(general)).toFixed(2)])
  const directName = cases[1]!.name
  return {
    name: 'store-codec',
    title: `the codec work of one strong put (2 accepts and 2 accepteds in batches of ${BATCH_MESSAGES}, 3 acceptor records, ${VALUE_BYTES}-byte values), one thread`,
    header: ['path', 'us per put', 'x general'],
    rows,
    verdict: `the direct path costs ${usPerPut(directName).toFixed(1)} us a put, ${(usPerPut(directName) / usPerPut(general)).toFixed(2)}x the general path's ${usPerPut(general).toFixed(1)} us`,
    data: { usPerPut: Object.fromEntries(cases.map((benchCase) => [benchCase.name, usPerPut(benchCase.name)])), batchMessages: BATCH_MESSAGES, valueBytes: VALUE_BYTES, rounds: ROUNDS, measureMs: MEASURE_MS }
  }
}
