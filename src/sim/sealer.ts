/**
 * Proof of work in the simulator. A real miner's time to a block is exponential with mean
 * (expected hashes) / (hash rate); the simulated one waits that long in virtual time, drawn from
 * the node's seeded stream, then finds a real nonce with the kernel (simulated chains use an easy
 * limit, so that takes a few hashes). The seal is real: every node verifies it as it would any.
 */
import type { Env, TimerId } from '../core/index.js'
import { PowScanner, encodeWorkHeader, decodeWorkHeader, workCommitment, NONCE_SPACE, type Sealer, type SealJob } from '../ledger/index.js'

const TWO_TO_256 = 2 ** 256

export class SimSealer implements Sealer {
  private env: Env | null = null
  private timer: TimerId | null = null
  private pending: ((seal: { nonce: number, extraNonce: number } | null) => void) | null = null
  private readonly scanner = new PowScanner()
  jobs = 0

  /** `hashesPerMs`: this node's simulated hash rate. */
  constructor (private readonly hashesPerMs: number) {}

  start (env: Env): void {
    this.env = env
  }

  mine (job: SealJob, done: (seal: { nonce: number, extraNonce: number } | null) => void): void {
    const env = this.env
    if (env === null) throw new Error('SimSealer used before start')
    this.cancel()
    this.jobs++
    this.pending = done
    const expectedHashes = TWO_TO_256 / (Number(job.target) + 1)
    const delayMs = -Math.log(1 - env.random.float()) * expectedHashes / this.hashesPerMs
    this.timer = env.setTimer(Math.round(delayMs), () => {
      this.timer = null
      const finish = this.pending
      this.pending = null
      finish?.(this.search(job))
    })
  }

  cancel (): void {
    if (this.timer !== null) this.env?.clearTimer(this.timer)
    this.timer = null
    const finish = this.pending
    this.pending = null
    finish?.(null)
  }

  private search (job: SealJob): { nonce: number, extraNonce: number } | null {
    const template = decodeWorkHeader(job.header)
    for (let extraNonce = 0; extraNonce < 16; extraNonce++) {
      this.scanner.setTemplate(encodeWorkHeader({ ...template, commitment: workCommitment(job.commitmentBase, extraNonce) }), job.target)
      const nonce = this.scanner.scan(0, Math.min(NONCE_SPACE, 1 << 22))
      if (nonce !== null) return { nonce, extraNonce }
    }
    return null
  }
}
