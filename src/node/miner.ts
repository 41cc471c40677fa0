/**
 * The proof-of-work miner: one worker thread per core by default, each running the WebAssembly
 * kernel over its own share of the search space (extra nonces k, k + threads, ...). `mine`
 * resolves with the first seal any thread finds, or with null when the job is cancelled (a new
 * head arrived) or replaced; a new job stops every thread within one chunk of nonces.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { LedgerError, NONCE_SPACE } from '../ledger/index.js'

export interface MiningJob {
  /** The 80-byte work header; its commitment and nonce are filled in by the miner. */
  header: Uint8Array
  /** The block's commitment; the header commits to SHA-256(base ‖ extra nonce). */
  commitmentBase: Uint8Array
  target: bigint
}

export interface MinedSeal {
  nonce: number
  extraNonce: number
  /** The winning 80-byte header. */
  header: Uint8Array
  /** Hashes all threads tried for this job. */
  hashes: number
}

export interface MinerPoolInit {
  /** Worker threads; one per core by default. */
  threads?: number
  /** Nonces a thread searches between checks for a new job (about 100 ms at 3 M/s by default). */
  chunkNonces?: number
  /**
   * Nonces searched before the extra nonce rolls: all 2^32 by default. A miner that wants fresher
   * header times, or a test of the roll, sets fewer.
   */
  noncesPerExtraNonce?: number
}

export interface MinerStats {
  threads: number
  jobs: number
  found: number
  /** Hashes tried since the pool started, all threads together. */
  hashes: number
}

/** Messages between the pool and its workers. */
export interface MinerJobMessage { id: number, header: Uint8Array, commitmentBase: Uint8Array, targetHex: string, extraNonceStart: number, extraNonceStep: number }
export type MinerReply =
  | { type: 'progress', id: number, hashes: number }
  | { type: 'found', id: number, nonce: number, extraNonce: number, header: Uint8Array, hashes: number }
  | { type: 'stopped', id: number, hashes: number }

export const MINER_THREADS_MAX = 256
const DEFAULT_CHUNK_NONCES = 1 << 18

export class MinerPool {
  readonly threads: number
  private readonly workers: Worker[]
  private readonly jobCounter: Int32Array
  private pending: { id: number, resolve: (seal: MinedSeal | null) => void, reject: (error: Error) => void, hashes: number } | null = null
  private failure: Error | null = null
  private readonly counters = { jobs: 0, found: 0, hashes: 0 }
  private closed = false

  constructor (init: MinerPoolInit = {}) {
    this.threads = init.threads ?? availableParallelism()
    if (!Number.isInteger(this.threads) || this.threads < 1 || this.threads > MINER_THREADS_MAX) {
      throw new LedgerError('LEDGER_CONFIG_INVALID', `miner threads must be 1..${MINER_THREADS_MAX}, got ${this.threads}`)
    }
    const control = new SharedArrayBuffer(4)
    this.jobCounter = new Int32Array(control)
    const noncesPerExtraNonce = init.noncesPerExtraNonce ?? NONCE_SPACE
    if (!Number.isInteger(noncesPerExtraNonce) || noncesPerExtraNonce < 1 || noncesPerExtraNonce > NONCE_SPACE) {
      throw new LedgerError('LEDGER_CONFIG_INVALID', `noncesPerExtraNonce must be 1..2^32, got ${noncesPerExtraNonce}`)
    }
    const workerData = { control, chunkNonces: init.chunkNonces ?? DEFAULT_CHUNK_NONCES, noncesPerExtraNonce }
    this.workers = Array.from({ length: this.threads }, () => {
      const worker = new Worker(new URL('./miner-worker.js', import.meta.url), { workerData })
      worker.on('message', (message: MinerReply) => { this.onReply(message) })
      worker.on('error', (error) => { this.fail(error) })
      return worker
    })
  }

  /** Mines `job` on every thread; a later `mine` or `cancel` resolves this one with null. */
  mine (job: MiningJob): Promise<MinedSeal | null> {
    if (this.closed) throw new LedgerError('LEDGER_CONFIG_INVALID', 'the miner pool is closed')
    if (this.failure !== null) return Promise.reject(this.failure)
    this.settle(null)
    const id = Atomics.add(this.jobCounter, 0, 1) + 1
    this.counters.jobs++
    const promise = new Promise<MinedSeal | null>((resolve, reject) => { this.pending = { id, resolve, reject, hashes: 0 } })
    const targetHex = job.target.toString(16)
    for (const [index, worker] of this.workers.entries()) {
      const message: MinerJobMessage = { id, header: job.header, commitmentBase: job.commitmentBase, targetHex, extraNonceStart: index, extraNonceStep: this.threads }
      worker.postMessage(message)
    }
    return promise
  }

  /** Stops the current job (a new head arrived); its promise resolves with null. */
  cancel (): void {
    Atomics.add(this.jobCounter, 0, 1)
    this.settle(null)
  }

  stats (): MinerStats {
    return { threads: this.threads, ...this.counters }
  }

  async close (): Promise<void> {
    this.closed = true
    this.cancel()
    await Promise.all(this.workers.map(async (worker) => await worker.terminate()))
  }

  private onReply (message: MinerReply): void {
    if (message.type === 'progress') {
      this.counters.hashes += message.hashes
      if (this.pending?.id === message.id) this.pending.hashes += message.hashes
      return
    }
    if (message.type !== 'found' || this.pending?.id !== message.id) return
    this.counters.found++
    // Stop the other threads: the job is done.
    Atomics.add(this.jobCounter, 0, 1)
    this.settle({ nonce: message.nonce, extraNonce: message.extraNonce, header: message.header, hashes: this.pending.hashes })
  }

  /** A thread died: the pool cannot mine any more; the current and every later job fail. */
  private fail (error: Error): void {
    this.failure = error
    Atomics.add(this.jobCounter, 0, 1)
    const pending = this.pending
    this.pending = null
    pending?.reject(error)
  }

  private settle (seal: MinedSeal | null): void {
    const pending = this.pending
    this.pending = null
    pending?.resolve(seal)
  }
}
