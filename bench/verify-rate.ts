/**
 * Ed25519 verification rates for the consensus benchmark's limit, with the ledger's own `verify`
 * on ~150-byte messages: on one core alone, and on every core at once (one worker thread per core,
 * started together), which is what the machine can verify when all of it works: on a host whose
 * cores share a physical core or a busy neighbour, all cores together verify less than one core's
 * rate times the number of cores.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { keyPairFromSeed, sha256, sign, verify } from '../src/core/index.js'

interface SignedMessage { message: Uint8Array, signature: Uint8Array }

function workload (): { publicKey: Uint8Array, signed: SignedMessage[] } {
  const key = keyPairFromSeed(sha256(Uint8Array.of(1)))
  const signed = Array.from({ length: 256 }, (_, index) => {
    const message = new Uint8Array(150)
    message.set(sha256(Uint8Array.of(index)))
    return { message, signature: sign(key, message) }
  })
  return { publicKey: key.publicKey, signed }
}

/** Single-thread Ed25519 verifications per second, over `durationMs`. */
export function verificationsPerSecond (durationMs = 2_000): number {
  const { publicKey, signed } = workload()
  let done = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    for (const item of signed) if (!verify(publicKey, item.message, item.signature)) throw new Error('verify failed')
    done += signed.length
  }
  return done / ((performance.now() - started) / 1000)
}

/**
 * Ed25519 verifications per second of each of `threads` worker threads running at once (their sum
 * is the machine's rate). The workers load and warm up first, then all start on one signal.
 */
export async function verificationsPerSecondAllCores (threads: number, durationMs = 2_000): Promise<number[]> {
  const workers = Array.from({ length: threads }, () => new Worker(new URL(import.meta.url), { workerData: { durationMs } }))
  try {
    await Promise.all(workers.map(async (worker) => await new Promise<void>((resolve, reject) => {
      worker.once('message', () => { resolve() })
      worker.once('error', reject)
    })))
    const rates = workers.map(async (worker) => await new Promise<number>((resolve, reject) => {
      worker.once('message', (rate: number) => { resolve(rate) })
      worker.once('error', reject)
    }))
    for (const worker of workers) worker.postMessage('go')
    return await Promise.all(rates)
  } finally {
    await Promise.all(workers.map(async (worker) => await worker.terminate()))
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const { durationMs } = workerData as { durationMs: number }
  verificationsPerSecond(200) // warm up: the first calls compile and fill the key cache
  port.once('message', () => { port.postMessage(verificationsPerSecond(durationMs)) })
  port.postMessage('ready')
}
