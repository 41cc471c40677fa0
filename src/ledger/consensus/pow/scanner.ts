/**
 * Searches nonces of one header template with the WebAssembly kernel (sha256-wasm.ts) and
 * confirms every candidate with `node:crypto`'s double SHA-256, so what it returns is exactly
 * what a verifier computes.
 */
import { LedgerError } from '../../errors.js'
import { NONCE_OFFSET, WORK_HEADER_BYTES, meetsTarget, workHash } from './header.js'
import { KERNEL_LAYOUT, kernelModuleBytes } from './sha256-wasm.js'

interface KernelExports {
  memory: { buffer: ArrayBuffer }
  scan: (start: number, count: number) => number
  midstate: () => void
}

/** Nonces are 32-bit. */
export const NONCE_SPACE = 2 ** 32

let kernelModule: WebAssembly.Module | null = null

export class PowScanner {
  private readonly kernel: KernelExports
  private readonly words: DataView
  private readonly header = new Uint8Array(WORK_HEADER_BYTES)
  private target = 0n
  /** Candidates the kernel passed on its most significant word that failed the full check. */
  candidatesRejected = 0

  constructor () {
    kernelModule ??= new WebAssembly.Module(kernelModuleBytes())
    this.kernel = new WebAssembly.Instance(kernelModule, {}).exports as KernelExports
    this.words = new DataView(this.kernel.memory.buffer)
  }

  /** Prepares a header (its nonce is ignored) and the target its hash must meet. */
  setTemplate (header: Uint8Array, target: bigint): void {
    if (header.length !== WORK_HEADER_BYTES) throw new LedgerError('LEDGER_MALFORMED', `a work header is ${WORK_HEADER_BYTES} bytes`)
    if (target < 0n) throw new RangeError('negative target')
    this.header.set(header)
    this.target = target
    const bytes = new DataView(header.buffer, header.byteOffset, header.byteLength)
    for (let word = 0; word < 16; word++) this.words.setUint32(KERNEL_LAYOUT.blockOffset + 4 * word, bytes.getUint32(4 * word, false), true)
    this.kernel.midstate()
    for (let word = 0; word < 3; word++) this.words.setUint32(KERNEL_LAYOUT.tailOffset + 4 * word, bytes.getUint32(64 + 4 * word, false), true)
    const top = target >> 224n
    this.words.setUint32(KERNEL_LAYOUT.targetTopOffset, top > 0xffffffffn ? 0xffffffff : Number(top), true)
  }

  /**
   * The first nonce in [start, start + count) whose header hash meets the target, or null.
   * `start + count` must not pass 2^32.
   */
  scan (start: number, count: number): number | null {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > NONCE_SPACE) {
      throw new RangeError(`nonce range ${start} + ${count} is outside 0..2^32`)
    }
    let from = start
    let left = count
    while (left > 0) {
      const chunk = Math.min(left, 0x7fffffff)
      const index = this.kernel.scan(from | 0, chunk)
      if (index < 0) {
        from += chunk
        left -= chunk
        continue
      }
      const nonce = from + index
      if (this.check(nonce)) return nonce
      this.candidatesRejected++
      from = nonce + 1
      left -= index + 1
    }
    return null
  }

  /** The header with `nonce` filled in. */
  headerWith (nonce: number): Uint8Array {
    const out = Uint8Array.from(this.header)
    new DataView(out.buffer).setUint32(NONCE_OFFSET, nonce, true)
    return out
  }

  private check (nonce: number): boolean {
    return meetsTarget(workHash(this.headerWith(nonce)), this.target)
  }
}
