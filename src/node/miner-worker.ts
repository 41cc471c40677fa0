/**
 * One mining thread. It receives a job, searches nonce chunks with the WebAssembly kernel, rolls
 * the extra nonce (its own residue class, so threads never search the same header) when the
 * nonces run out, and reports progress. Between chunks it reads the job counter the pool shares
 * with it: a new job (a new head) stops the search within one chunk.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { PowScanner, encodeWorkHeader, decodeWorkHeader, workCommitment } from '../ledger/index.js'
import type { MinerJobMessage, MinerReply } from './miner.js'

const port = parentPort
if (port === null) throw new Error('miner-worker runs in a worker thread')
const { control, chunkNonces, noncesPerExtraNonce } = workerData as { control: SharedArrayBuffer, chunkNonces: number, noncesPerExtraNonce: number }
const jobCounter = new Int32Array(control)
const scanner = new PowScanner()
const reply = (message: MinerReply): void => { port.postMessage(message) }

port.on('message', (job: MinerJobMessage) => {
  const template = decodeWorkHeader(job.header)
  const target = BigInt('0x' + job.targetHex)
  let hashes = 0
  for (let extraNonce = job.extraNonceStart; Number.isSafeInteger(extraNonce); extraNonce += job.extraNonceStep) {
    scanner.setTemplate(encodeWorkHeader({ ...template, commitment: workCommitment(job.commitmentBase, extraNonce) }), target)
    for (let start = 0; start < noncesPerExtraNonce; start += chunkNonces) {
      if (Atomics.load(jobCounter, 0) !== job.id) {
        reply({ type: 'stopped', id: job.id, hashes })
        return
      }
      const count = Math.min(chunkNonces, noncesPerExtraNonce - start)
      const nonce = scanner.scan(start, count)
      const tried = nonce === null ? count : nonce - start + 1
      hashes += tried
      reply({ type: 'progress', id: job.id, hashes: tried })
      if (nonce !== null) {
        reply({ type: 'found', id: job.id, nonce, extraNonce, header: scanner.headerWith(nonce), hashes })
        return
      }
    }
  }
  reply({ type: 'stopped', id: job.id, hashes })
})
