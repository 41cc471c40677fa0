/**
 * Proof of work on Bitcoin's rules: compact targets and retargets against Bitcoin Core's vectors,
 * the real mainnet headers, and headers mutated one way at a time.
 */
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import fc from 'fast-check'
import { fromHex, toHex } from '../../src/core/index.js'
import {
  BITCOIN_MAINNET, PowScanner, decodeCompact, hashToNumber, meetsTarget, decodeWorkHeader, displayHash, encodeCompact, encodeWorkHeader, nextBits, verifyHeaders, workHash, workOf,
  type HeaderInput, type VerifySummary
} from '../../src/ledger/index.js'
import { SYNOD_MAIN } from '../support/cluster.js'

interface CompactVector { compact: string, target_hex: string | null, negative: boolean, overflow: boolean, get_compact_roundtrip?: string | null }
interface RetargetVector { name: string, first_time: number, last_time: number, last_bits: string, expected_bits: string }
interface HeaderFixture { height: number, hex: string, hash: string }

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../../../test/fixtures/${name}`, import.meta.url), 'utf8'))
const vectors = fixture('bitcoin-pow-vectors.json') as { compact: CompactVector[], retarget: RetargetVector[] }
const headers = (fixture('bitcoin-mainnet-headers.json') as { headers: HeaderFixture[] }).headers
const NOW_S = 1_900_000_000
const verify = (inputs: HeaderInput[]): VerifySummary => verifyHeaders(BITCOIN_MAINNET, inputs, NOW_S)

/** The fixture with one header rewritten by `change`. */
function mutated (height: number, change: (bytes: Uint8Array) => void): HeaderInput[] {
  return headers.map((header) => {
    if (header.height !== height) return { height: header.height, hex: header.hex }
    const bytes = fromHex(header.hex)
    change(bytes)
    return { height, hex: toHex(bytes) }
  })
}

const codesAt = (summary: VerifySummary, height: number): string[] => summary.invalid.filter((problem) => problem.height === height).map((problem) => problem.code)

describe('compact targets (nBits)', () => {
  it('decodes every vector with its negative and overflow flags, and re-encodes as GetCompact does', () => {
    for (const vector of vectors.compact) {
      const decoded = decodeCompact(Number.parseInt(vector.compact, 16))
      assert.equal(decoded.negative, vector.negative, `${vector.compact} negative`)
      assert.equal(decoded.overflow, vector.overflow, `${vector.compact} overflow`)
      if (vector.target_hex !== null) assert.equal(decoded.target, BigInt('0x' + vector.target_hex), `${vector.compact} target`)
      if (vector.get_compact_roundtrip != null) {
        assert.equal(encodeCompact(decoded.target, decoded.negative).toString(16).padStart(8, '0'), vector.get_compact_roundtrip, `${vector.compact} round trip`)
      }
    }
    assert.ok(vectors.compact.length >= 20)
  })

  it('keeps the three most significant bytes of any target and never sets the sign bit by accident', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), (target) => {
      const compact = encodeCompact(target)
      const decoded = decodeCompact(compact)
      assert.equal(decoded.negative || decoded.overflow, false)
      assert.ok(decoded.target <= target)
      const size = compact >>> 24
      assert.ok(target - decoded.target < (size > 3 ? 1n << BigInt(8 * (size - 3)) : 1n), 'only bytes below the mantissa are lost')
    }), { numRuns: 500 })
  })
})

describe('retargeting', () => {
  it("reproduces Bitcoin Core's pow_tests vectors, the x4 and /4 clamps and the limit cap", () => {
    for (const vector of vectors.retarget) {
      const bits = nextBits(Number.parseInt(vector.last_bits, 16), vector.first_time, vector.last_time, BITCOIN_MAINNET)
      assert.equal(bits.toString(16).padStart(8, '0'), vector.expected_bits, vector.name)
    }
    assert.equal(vectors.retarget.length, 4)
  })

  it('gives the work of a difficulty-1 block as Core does (0x100010001)', () => {
    assert.equal(workOf(decodeCompact(0x1d00ffff).target), 0x100010001n)
  })
})

describe('work headers', () => {
  it('hash to the real block hashes, and encode back to the same 80 bytes', () => {
    for (const header of headers) {
      const bytes = fromHex(header.hex)
      assert.equal(displayHash(workHash(bytes)), header.hash, `block ${header.height}`)
      assert.equal(toHex(encodeWorkHeader(decodeWorkHeader(bytes))), header.hex)
    }
  })
})

describe('the WebAssembly mining kernel', () => {
  const scanner = new PowScanner()

  it('finds the real nonce of real blocks, searching from below it', () => {
    for (const header of headers.slice(0, 12)) {
      const bytes = fromHex(header.hex)
      const nonce = new DataView(bytes.buffer).getUint32(76, true)
      scanner.setTemplate(bytes, decodeCompact(new DataView(bytes.buffer).getUint32(72, true)).target)
      const start = Math.max(0, nonce - 20_000)
      assert.equal(scanner.scan(start, Math.min(40_000, 2 ** 32 - start)), nonce, `block ${header.height}`)
    }
  })

  it('returns the first nonce node:crypto accepts, for random headers and targets', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 80, maxLength: 80 }), fc.integer({ min: 1, max: 0xffffffff }), fc.bigInt({ min: 0n, max: (1n << 224n) - 1n }), fc.nat(2 ** 32 - 400), (header, top, low, start) => {
      const target = (BigInt(top) << 224n) | low
      scanner.setTemplate(header, target)
      let expected: number | null = null
      for (let nonce = start; nonce < start + 300 && expected === null; nonce++) {
        if (meetsTarget(workHash(scanner.headerWith(nonce)), target)) expected = nonce
      }
      assert.equal(scanner.scan(start, 300), expected)
    }), { numRuns: 60 })
  })

  it('checks every candidate in full: a hash whose top word equals the target\'s but is above it is passed over', () => {
    const header = fromHex(headers[5]?.hex as string)
    scanner.setTemplate(header, 0n)
    const hash = hashToNumber(workHash(scanner.headerWith(7)))
    scanner.setTemplate(header, hash - 1n)
    const rejectedBefore = scanner.candidatesRejected
    assert.equal(scanner.scan(7, 1), null)
    assert.equal(scanner.candidatesRejected, rejectedBefore + 1)
    scanner.setTemplate(header, hash)
    assert.equal(scanner.scan(7, 1), 7, 'a hash equal to the target meets it')
  })

  it('refuses nonce ranges outside 32 bits', () => {
    assert.throws(() => scanner.scan(2 ** 32 - 1, 2), RangeError)
    assert.throws(() => scanner.scan(-1, 1), RangeError)
    assert.equal(scanner.scan(2 ** 32 - 1, 0), null)
  })
})

describe('verifying the Bitcoin header chain', () => {
  it('accepts every real mainnet header, runs the retarget check at 32256, and sums the chain work', () => {
    const summary = verify(headers.map(({ height, hex }) => ({ height, hex })))
    assert.deepEqual(summary.invalid, [])
    assert.equal(summary.valid, headers.length)
    assert.equal(summary.checks.retarget, 1, 'the period 30240..32255 is present, so 32256 is checked')
    assert.equal(summary.checks.work, headers.length)
    assert.deepEqual(summary.chainWorkRun, { fromHeight: 0, toHeight: 255 })
    assert.equal(BigInt('0x' + summary.chainWork), 256n * 0x100010001n)
  })

  it('rejects a flipped nonce bit as bad work (and the child no longer links to it)', () => {
    const summary = verify(mutated(100, (bytes) => { bytes[76] = (bytes[76] as number) ^ 1 }))
    assert.deepEqual(codesAt(summary, 100), ['LEDGER_BAD_WORK'])
    assert.deepEqual(codesAt(summary, 101), ['LEDGER_BAD_PARENT'])
    assert.equal(summary.valid, headers.length - 2)
  })

  it('rejects wrong bits at a retarget height with the expected bits in the reason', () => {
    const summary = verify(mutated(32256, (bytes) => { new DataView(bytes.buffer).setUint32(72, 0x1d00ffff, true) }))
    const problem = summary.invalid.find((entry) => entry.height === 32256 && entry.code === 'LEDGER_BAD_BITS')
    assert.ok(problem !== undefined, JSON.stringify(summary.invalid))
    assert.match(problem.reason, /expected 1d00d86a/)
  })

  it('rejects bits that change outside a retarget height, and bits above the limit', () => {
    const changed = verify(mutated(30, (bytes) => { new DataView(bytes.buffer).setUint32(72, 0x1c00ffff, true) }))
    assert.ok(codesAt(changed, 30).includes('LEDGER_BAD_BITS'))
    const easy = verify(mutated(31, (bytes) => { new DataView(bytes.buffer).setUint32(72, 0x1e00ffff, true) }))
    assert.match(easy.invalid.find((entry) => entry.height === 31)?.reason ?? '', /above the proof-of-work limit/)
  })

  it('rejects a broken parent link', () => {
    const summary = verify(mutated(50, (bytes) => { bytes[4] = (bytes[4] as number) ^ 0xff }))
    assert.ok(codesAt(summary, 50).includes('LEDGER_BAD_PARENT'))
  })

  it('rejects a time not above the median of the previous 11, and one too far in the future', () => {
    const previous = headers.filter((header) => header.height >= 189 && header.height < 200).map((header) => decodeWorkHeader(fromHex(header.hex)).time).sort((a, b) => a - b)
    const median = previous[5] as number
    const early = verify(mutated(200, (bytes) => { new DataView(bytes.buffer).setUint32(68, median, true) }))
    assert.ok(codesAt(early, 200).includes('LEDGER_BAD_TIME'), JSON.stringify(early.invalid))
    const late = verify(mutated(10, (bytes) => { new DataView(bytes.buffer).setUint32(68, NOW_S + 3 * 3600, true) }))
    assert.match(late.invalid.find((entry) => entry.code === 'LEDGER_BAD_TIME')?.reason ?? '', /ahead of the clock/)
  })

  it('skips checks whose predecessors are missing instead of guessing, and reports malformed entries', () => {
    const sparse = headers.filter((header) => header.height % 3 === 0).map(({ height, hex }) => ({ height, hex }))
    const summary = verify([...sparse, { height: 7, hex: 'zz' }, { height: 0, hex: headers[0]?.hex as string }])
    assert.equal(summary.checks.parent, 0)
    assert.equal(summary.checks.medianTime, 0)
    assert.equal(summary.checks.work, sparse.length)
    assert.deepEqual(summary.invalid.map((problem) => [problem.height, problem.code]), [[7, 'LEDGER_MALFORMED'], [0, 'LEDGER_MALFORMED']])
  })
})

describe('synod pow verify-headers', () => {
  const dirs: string[] = []
  const tempDir = (): string => { const dir = mkdtempSync(join(tmpdir(), 'synod-pow-')); dirs.push(dir); return dir }
  after(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })
  const run = async (file: string): Promise<{ code: number, summary: VerifySummary }> => {
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [SYNOD_MAIN, 'pow', 'verify-headers', file])
      return { code: 0, summary: JSON.parse(stdout) as VerifySummary }
    } catch (error) {
      const failed = error as { code: number, stdout: string }
      return { code: failed.code, summary: JSON.parse(failed.stdout) as VerifySummary }
    }
  }
  it('exits 0 on the real headers and 1 with the reasons on a mutated file', async () => {
    const good = await run(new URL('../../../test/fixtures/bitcoin-mainnet-headers.json', import.meta.url).pathname)
    assert.equal(good.code, 0)
    assert.equal(good.summary.valid, headers.length)
    const dir = tempDir()
    const file = join(dir, 'bad.json')
    writeFileSync(file, JSON.stringify({ network: 'bitcoin-mainnet', headers: mutated(100, (bytes) => { bytes[79] = (bytes[79] as number) ^ 0x80 }) }))
    const bad = await run(file)
    assert.equal(bad.code, 1)
    assert.deepEqual(codesAt(bad.summary, 100), ['LEDGER_BAD_WORK'])
  })

  it('refuses an unknown network and a file that is not a header file with a typed error', async () => {
    const dir = tempDir()
    for (const [content, pattern] of [[JSON.stringify({ network: 'dogecoin', headers: [] }), /CLI_BAD_INPUT: unknown network dogecoin/], ['{"headers": 3}', /CLI_BAD_INPUT: .* is not a header file/], ['not json', /CLI_BAD_INPUT: .* is not JSON/]] as const) {
      const file = join(dir, 'input.json')
      writeFileSync(file, content)
      await assert.rejects(promisify(execFile)(process.execPath, [SYNOD_MAIN, 'pow', 'verify-headers', file]), (error: { code: number, stderr: string }) => error.code === 2 && pattern.test(error.stderr))
    }
  })
})
