/**
 * Proof-of-work mining benchmark. In one run:
 * - the baseline: `node:crypto` double SHA-256 of the 80-byte header per nonce (two createHash
 *   calls, the obvious miner);
 * - the WebAssembly kernel on this thread (PowScanner), the figure the target is about;
 * - the miner pool (worker threads) with one thread and with one per core;
 * - the native limit where `openssl` is installed: `openssl speed -evp sha256` on 64-byte blocks,
 *   halved (a nonce costs two block compressions once the midstate is reused).
 * Target: kernel nonces per second per thread >= 5x the baseline.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { PowScanner, encodeWorkHeader, NONCE_OFFSET } from '../src/ledger/index.js'
import { MinerPool } from '../src/node/index.js'
import type { BenchResult } from './util.js'

const MEASURE_MS = 3_000
const WARMUP_MS = 1_000
const TARGET_SPEEDUP = 5
/** A target no hash meets, so every run searches for the whole measurement. */
const IMPOSSIBLE_TARGET = 0n

const header = encodeWorkHeader({ version: 1, parent: new Uint8Array(32).fill(7), commitment: new Uint8Array(32).fill(9), time: 1_700_000_000, bits: 0x1d00ffff, nonce: 0 })

function nodeCryptoRate (durationMs: number): number {
  const bytes = Buffer.from(header)
  let nonce = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    for (let i = 0; i < 1_000; i++) {
      bytes.writeUInt32LE(nonce++, NONCE_OFFSET)
      createHash('sha256').update(createHash('sha256').update(bytes).digest()).digest()
    }
  }
  return nonce / ((performance.now() - started) / 1_000)
}

function kernelRate (durationMs: number): number {
  const scanner = new PowScanner()
  scanner.setTemplate(header, IMPOSSIBLE_TARGET)
  const chunk = 1 << 16
  let nonces = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    scanner.scan(nonces % 2 ** 31, chunk)
    nonces += chunk
  }
  return nonces / ((performance.now() - started) / 1_000)
}

async function poolRate (threads: number, progress: (line: string) => void): Promise<number> {
  const pool = new MinerPool({ threads })
  try {
    const job = pool.mine({ header, commitmentBase: new Uint8Array(32), target: IMPOSSIBLE_TARGET })
    await new Promise((resolve) => setTimeout(resolve, WARMUP_MS))
    const before = pool.stats().hashes
    const started = performance.now()
    await new Promise((resolve) => setTimeout(resolve, MEASURE_MS))
    const rate = (pool.stats().hashes - before) / ((performance.now() - started) / 1_000)
    pool.cancel()
    await job
    progress(`pool of ${threads}: ${Math.round(rate).toLocaleString('en')} nonces/s`)
    return rate
  } finally {
    await pool.close()
  }
}

/** Double-SHA-256 nonces per second the native library could do, from `openssl speed`, or null. */
function opensslLimit (): number | null {
  try {
    const output = execFileSync('openssl', ['speed', '-evp', 'sha256', '-bytes', '64', '-seconds', '2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const match = /sha256\s+([\d.]+)k/i.exec(output)
    if (match === null) return null
    const blocksPerSecond = Number(match[1]) * 1_000 / 64
    return blocksPerSecond / 2
  } catch {
    return null
  }
}

const format = (rate: number | null): string => rate === null ? 'n/a' : Math.round(rate).toLocaleString('en')

export async function powBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  nodeCryptoRate(WARMUP_MS)
  const baseline = nodeCryptoRate(MEASURE_MS)
  progress(`node:crypto double SHA-256: ${format(baseline)} nonces/s`)
  kernelRate(WARMUP_MS)
  const kernel = kernelRate(MEASURE_MS)
  progress(`WebAssembly kernel: ${format(kernel)} nonces/s`)
  const cores = availableParallelism()
  const single = await poolRate(1, progress)
  const all = await poolRate(cores, progress)
  const native = opensslLimit()
  const speedup = kernel / baseline
  const rows: Array<[string, number | null]> = [
    ['node:crypto, 2 x createHash per nonce (baseline)', baseline],
    ['WebAssembly kernel, this thread', kernel],
    ['miner pool, 1 worker thread', single],
    [`miner pool, ${cores} worker threads`, all],
    ['native limit: openssl speed sha256 (64-byte blocks / 2)', native]
  ]
  return {
    name: 'pow',
    title: 'proof-of-work nonces per second (double SHA-256 of an 80-byte header)',
    header: ['path', 'nonces/s', 'x baseline'],
    rows: rows.map(([label, rate]) => [label, format(rate), rate === null ? 'n/a' : (rate / baseline).toFixed(2)]),
    verdict: `${speedup >= TARGET_SPEEDUP ? 'MET' : 'NOT MET'}: kernel per thread ${speedup.toFixed(2)}x node:crypto (target >= ${TARGET_SPEEDUP}x); ` +
      `${cores} threads ${(all / single).toFixed(2)}x one thread` + (native === null ? '; openssl not found' : `; ${(kernel / native * 100).toFixed(0)}% of the native limit (which uses SHA extensions where the CPU has them)`),
    data: { baseline, kernel, poolSingle: single, poolAll: all, native, cores, targetSpeedup: TARGET_SPEEDUP }
  }
}
