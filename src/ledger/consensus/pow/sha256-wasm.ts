/**
 * The mining kernel: double SHA-256 of an 80-byte work header over a range of nonces, as a
 * WebAssembly function generated here, at load time, with every round unrolled.
 *
 * Why it is fast, compared with calling `node:crypto` twice per nonce:
 * - the first 64 bytes of the header do not depend on the nonce: their compression (the
 *   midstate) is computed once per header template, and so are the first 3 rounds of the second
 *   block, whose message words come from those bytes;
 * - message words that are SHA-256 padding are constants, folded into the code when generated;
 * - the second hash stops after round 60: the most significant word of the result (as Bitcoin
 *   reads hashes) is then known, and almost every nonce is rejected on it. A nonce that passes
 *   is a candidate, which the caller checks in full with `node:crypto` (`PowScanner.scan`), so
 *   the kernel can only ever make the miner slower, never wrong.
 *
 * The module is built with a small WebAssembly binary writer (no toolchain needed); the only
 * instructions used are integer arithmetic, locals, loads, stores and loops.
 */

const K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
]
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]

/** Memory layout of the kernel, in bytes; words are stored as little-endian i32 values. */
export const KERNEL_LAYOUT = Object.freeze({
  /** 8 words: the state after the first 64 header bytes (written by `midstate`). */
  midstateOffset: 0,
  /** 3 words: message words 0..2 of the second block (header bytes 64..75, read big-endian). */
  tailOffset: 32,
  /** 1 word: the most significant 32 bits of the target. */
  targetTopOffset: 44,
  /** 16 words: the first 64 header bytes as big-endian message words, input of `midstate`. */
  blockOffset: 64
})

// --- a minimal WebAssembly binary writer -------------------------------------------------------

const OP = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, return: 0x0f,
  localGet: 0x20, localSet: 0x21, localTee: 0x22, load: 0x28, store: 0x36, const: 0x41,
  eqz: 0x45, eq: 0x46, leU: 0x4d, add: 0x6a, and: 0x71, or: 0x72, xor: 0x73, shl: 0x74, shrU: 0x76, rotl: 0x77, rotr: 0x78
} as const
const VOID_BLOCK = 0x40
const I32 = 0x7f

function unsignedLeb (value: number): number[] {
  const out: number[] = []
  let rest = value >>> 0
  do {
    const byte = rest & 0x7f
    rest >>>= 7
    out.push(rest === 0 ? byte : byte | 0x80)
  } while (rest !== 0)
  return out
}

function signedLeb (value: number): number[] {
  const out: number[] = []
  let rest = value | 0
  for (;;) {
    const byte = rest & 0x7f
    rest >>= 7
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0)
    out.push(done ? byte : byte | 0x80)
    if (done) return out
  }
}

function vector (items: number[][]): number[] {
  return [...unsignedLeb(items.length), ...items.flat()]
}

function section (id: number, content: number[]): number[] {
  return [id, ...unsignedLeb(content.length), ...content]
}

function name (text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)]
  return [...unsignedLeb(bytes.length), ...bytes]
}

/** Instructions of one function body, with i32 locals allocated on demand. */
class Body {
  readonly code: number[] = []
  private localCount: number

  constructor (readonly paramCount: number) {
    this.localCount = paramCount
  }

  local (): number { return this.localCount++ }
  get (local: number): this { this.code.push(OP.localGet, ...unsignedLeb(local)); return this }
  set (local: number): this { this.code.push(OP.localSet, ...unsignedLeb(local)); return this }
  tee (local: number): this { this.code.push(OP.localTee, ...unsignedLeb(local)); return this }
  const (value: number): this { this.code.push(OP.const, ...signedLeb(value)); return this }
  op (code: number): this { this.code.push(code); return this }
  load (offset: number): this { this.code.push(OP.const, 0, OP.load, 2, ...unsignedLeb(offset)); return this }
  /** Stores the value on the stack at `offset` (address pushed first, as wasm wants). */
  storeLocal (offset: number, local: number): this { this.code.push(OP.const, 0); this.get(local); this.code.push(OP.store, 2, ...unsignedLeb(offset)); return this }

  encode (): number[] {
    const declared = this.localCount - this.paramCount
    const locals = declared > 0 ? [[...unsignedLeb(declared), I32]] : []
    const body = [...vector(locals), ...this.code, OP.end]
    return [...unsignedLeb(body.length), ...body]
  }
}

// --- SHA-256 rounds, unrolled, with constant folding -------------------------------------------

/** A message word: known when the code is generated, or held in a local at run time. */
type Word = { constant: number } | { local: number }

const rotr = (x: number, n: number): number => ((x >>> n) | (x << (32 - n))) >>> 0
const smallSigma0 = (x: number): number => (rotr(x, 7) ^ rotr(x, 18) ^ (x >>> 3)) >>> 0
const smallSigma1 = (x: number): number => (rotr(x, 17) ^ rotr(x, 19) ^ (x >>> 10)) >>> 0

class Sha256Emitter {
  /** Working registers a..h, renamed each round instead of moved. */
  registers: number[]
  private readonly t1: number

  constructor (private readonly body: Body, registers?: number[]) {
    this.registers = registers ?? Array.from({ length: 8 }, () => body.local())
    this.t1 = body.local()
  }

  /** Pushes the value of a word. */
  private push (word: Word): void {
    if ('constant' in word) this.body.const(word.constant | 0)
    else this.body.get(word.local)
  }

  private rotateXor (local: number, first: number, second: number, third: number, thirdIsShift = false): void {
    const b = this.body
    b.get(local).const(first).op(OP.rotr)
    b.get(local).const(second).op(OP.rotr).op(OP.xor)
    b.get(local).const(third).op(thirdIsShift ? OP.shrU : OP.rotr).op(OP.xor)
  }

  /**
   * The message word `index` from the 16 before it, into `into` (the slot of word index - 16),
   * folding constant terms; returns the word (a constant when every term is).
   */
  schedule (words: Word[], index: number, into: () => number): Word {
    const w2 = words[index - 2] as Word
    const w7 = words[index - 7] as Word
    const w15 = words[index - 15] as Word
    const w16 = words[index - 16] as Word
    let constant = 0
    let terms = 0
    const b = this.body
    const addTerm = (emit: () => void): void => { emit(); if (terms++ > 0) b.op(OP.add) }
    if ('constant' in w2) constant += smallSigma1(w2.constant)
    else addTerm(() => { this.rotateXor(w2.local, 17, 19, 10, true) })
    if ('constant' in w7) constant += w7.constant
    else addTerm(() => { b.get(w7.local) })
    if ('constant' in w15) constant += smallSigma0(w15.constant)
    else addTerm(() => { this.rotateXor(w15.local, 7, 18, 3, true) })
    if ('constant' in w16) constant += w16.constant
    else addTerm(() => { b.get(w16.local) })
    constant >>>= 0
    if (terms === 0) return { constant }
    if (constant !== 0) b.const(constant | 0).op(OP.add)
    const local = into()
    b.set(local)
    return { local }
  }

  /** One round with message word `word`. */
  round (index: number, word: Word): void {
    const b = this.body
    const [ra, rb, rc, rd, re, rf, rg, rh] = this.registers as [number, number, number, number, number, number, number, number]
    // t1 = h + Σ1(e) + Ch(e, f, g) + K[i] + W[i]
    b.get(rh)
    this.rotateXor(re, 6, 11, 25)
    b.op(OP.add)
    b.get(rg).get(re).get(rf).get(rg).op(OP.xor).op(OP.and).op(OP.xor).op(OP.add)
    if ('constant' in word) b.const((K[index] as number) + word.constant | 0).op(OP.add)
    else b.const(K[index] as number | 0).op(OP.add).get(word.local).op(OP.add)
    b.set(this.t1)
    // d += t1 (the new e); h = t1 + Σ0(a) + Maj(a, b, c) (the new a)
    b.get(rd).get(this.t1).op(OP.add).set(rd)
    b.get(this.t1)
    this.rotateXor(ra, 2, 13, 22)
    b.op(OP.add)
    b.get(ra).get(rb).op(OP.and).get(rc).get(ra).get(rb).op(OP.or).op(OP.and).op(OP.or).op(OP.add)
    b.set(rh)
    // Rename: the new a is in h's local, the new e in d's.
    this.registers = [rh, ra, rb, rc, rd, re, rf, rg]
  }

  /** Rounds `from`..`to` (inclusive) over a 16-word ring of message words. */
  rounds (words: Word[], from: number, to: number, ring: number[]): void {
    for (let index = from; index <= to; index++) {
      if (index >= 16) words[index] = this.schedule(words, index, () => ring[index % 16] as number)
      this.round(index, words[index] as Word)
    }
  }

  loadState (values: Word[]): void {
    for (const [index, register] of this.registers.entries()) {
      const value = values[index] as Word
      if ('constant' in value) this.body.const(value.constant | 0)
      else this.body.get(value.local)
      this.body.set(register)
    }
  }

  /** out[i] = base[i] + register[i] */
  addInto (base: Word[], out: number[]): void {
    for (const [index, register] of this.registers.entries()) {
      this.push(base[index] as Word)
      this.body.get(register).op(OP.add).set(out[index] as number)
    }
  }
}

/** Pushes `local` with its bytes reversed: rotl(x & 0xff00ff00, 8) | rotr(x & 0x00ff00ff, 8). */
function byteSwap (body: Body, local: number): void {
  body.get(local).const(0xff00ff00 | 0).op(OP.and).const(8).op(OP.rotl)
  body.get(local).const(0x00ff00ff).op(OP.and).const(8).op(OP.rotr).op(OP.or)
}

/** `midstate()`: compresses the 16 words at `blockOffset` from the IV into `midstateOffset`. */
function midstateFunction (): Body {
  const body = new Body(0)
  const sha = new Sha256Emitter(body)
  const ring = Array.from({ length: 16 }, () => body.local())
  for (const [index, local] of ring.entries()) body.load(KERNEL_LAYOUT.blockOffset + 4 * index).set(local)
  const words: Word[] = ring.map((local) => ({ local }))
  sha.loadState(IV.map((constant) => ({ constant })))
  sha.rounds(words, 0, 63, ring)
  const out = Array.from({ length: 8 }, () => body.local())
  sha.addInto(IV.map((constant) => ({ constant })), out)
  for (const [index, local] of out.entries()) body.storeLocal(KERNEL_LAYOUT.midstateOffset + 4 * index, local)
  return body
}

/**
 * `scan(start, count)`: the index (0..count-1) of the first nonce start + index whose double
 * SHA-256 has a most significant word (byte-reversed H7) at or below the target's, or -1.
 */
function scanFunction (): Body {
  const body = new Body(2)
  const [start, count] = [0, 1]
  const index = body.local()
  const targetTop = body.local()
  const mid = Array.from({ length: 8 }, () => body.local())
  const tail = Array.from({ length: 3 }, () => body.local())
  const after3 = Array.from({ length: 8 }, () => body.local())
  const nonceWord = body.local()
  const ring = Array.from({ length: 16 }, () => body.local())
  for (const [i, local] of mid.entries()) body.load(KERNEL_LAYOUT.midstateOffset + 4 * i).set(local)
  for (const [i, local] of tail.entries()) body.load(KERNEL_LAYOUT.tailOffset + 4 * i).set(local)
  body.load(KERNEL_LAYOUT.targetTopOffset).set(targetTop)

  // Rounds 0..2 of the second block use header bytes 64..75 only: once per call.
  const first = new Sha256Emitter(body)
  first.loadState(mid.map((local) => ({ local })))
  for (let round = 0; round < 3; round++) first.round(round, { local: tail[round] as number })
  for (const [i, register] of first.registers.entries()) body.get(register).set(after3[i] as number)

  body.const(0).set(index)
  body.op(OP.block).op(VOID_BLOCK).op(OP.loop).op(VOID_BLOCK)
  body.get(index).get(count).op(OP.eq).op(OP.brIf).code.push(1)
  // W3 is the nonce read big-endian: a byte swap of start + index.
  const nonce = body.local()
  body.get(start).get(index).op(OP.add).set(nonce)
  byteSwap(body, nonce)
  body.set(nonceWord)

  const second = new Sha256Emitter(body)
  second.loadState(after3.map((local) => ({ local })))
  const block2: Word[] = [
    { local: tail[0] as number }, { local: tail[1] as number }, { local: tail[2] as number }, { local: nonceWord },
    { constant: 0x80000000 }, ...Array.from({ length: 10 }, () => ({ constant: 0 })), { constant: 640 }
  ]
  // Message words 0..2 live in `tail`, word 3 in `nonceWord`; the ring takes scheduled words.
  const ringFor = (i: number): number => ring[i % 16] as number
  for (let round = 3; round <= 63; round++) {
    if (round >= 16) block2[round] = second.schedule(block2, round, () => ringFor(round))
    second.round(round, block2[round] as Word)
  }
  // The first hash: midstate + registers, straight into the third block's message words.
  const digest = ring.slice(0, 8)
  second.addInto(mid.map((local) => ({ local })), digest)

  const third = new Sha256Emitter(body)
  third.loadState(IV.map((constant) => ({ constant })))
  const block3: Word[] = [...digest.map((local) => ({ local })), { constant: 0x80000000 }, ...Array.from({ length: 6 }, () => ({ constant: 0 })), { constant: 256 }]
  third.rounds(block3, 0, 60, ring)
  // After round 60, e is what h will be after round 63: H7 = IV7 + e.
  const h7 = body.local()
  body.const(IV[7] as number | 0).get(third.registers[4] as number).op(OP.add).set(h7)
  // The most significant word of the hash read as a little-endian number is H7 byte-swapped.
  byteSwap(body, h7)
  body.get(targetTop).op(OP.leU)
  body.op(0x04).op(VOID_BLOCK) // if
  body.get(index).op(OP.return)
  body.op(OP.end)
  body.get(index).const(1).op(OP.add).set(index)
  body.op(OP.br).code.push(0)
  body.op(OP.end).op(OP.end)
  body.const(-1)
  return body
}

/** The kernel module's bytes. */
export function kernelModuleBytes (): Uint8Array {
  const scan = scanFunction()
  const midstate = midstateFunction()
  const types = section(1, vector([[0x60, ...vector([[I32], [I32]]), ...vector([[I32]])], [0x60, 0, 0]]))
  const functions = section(3, vector([[0], [1]]))
  const memory = section(5, vector([[0x00, 1]]))
  const exports = section(7, vector([[...name('scan'), 0x00, 0], [...name('midstate'), 0x00, 1], [...name('memory'), 0x02, 0]]))
  const code = section(10, vector([scan.encode(), midstate.encode()]))
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...functions, ...memory, ...exports, ...code])
}
