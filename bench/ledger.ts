/**
 * Ledger benchmark, in one run:
 * - raw `node:crypto` Ed25519 verifications per second (the baseline);
 * - transaction validation per second: decode the canonical CBOR, check the schema, the chain id
 *   and the signature (`checkTx`), as every received transaction is checked;
 * - block apply rate: executing blocks of transfers on the state (with the state root), and adding
 *   whole PoW blocks to a chain store (header checks, transaction root, execution, state root).
 */
import { createPublicKey, verify } from 'node:crypto'
import { decodeCanonical, keyPairFromSeed, sha256, type Ed25519KeyPair } from '../src/core/index.js'
import { LedgerState, addressFromPublicKey, checkTx, encodeTx, signTx, txRootOf, txSigningBytes, type Block, type SignedTx } from '../src/ledger/index.js'
import { MemoryDisk } from '../test/support/memory-disk.js'
import { extend, newChain } from '../test/support/pow-chain.js'
import type { BenchResult } from './util.js'

const CHAIN = 'synod-bench'
const SENDERS = 100
const TXS = 5_000
const BLOCK_TXS = 500
const MEASURE_MS = 2_000
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

const keys: Ed25519KeyPair[] = Array.from({ length: SENDERS }, (_, index) => keyPairFromSeed(sha256(Uint8Array.of(index, 7))))
const addresses = keys.map((key) => addressFromPublicKey(key.publicKey))

function transfers (count: number, nonces: number[]): SignedTx[] {
  return Array.from({ length: count }, (_, index) => {
    const from = index % SENDERS
    const key = keys[from] as Ed25519KeyPair
    return signTx({ chainId: CHAIN, publicKey: key.publicKey, nonce: (nonces[from] as number)++, fee: 1n, body: { kind: 'transfer', to: addresses[(index * 7 + 3) % SENDERS] as string, amount: 5n } }, key)
  })
}

/** Calls per second of `run` over `items`, cycling, for MEASURE_MS. */
function rate<T> (items: readonly T[], run: (item: T) => void): number {
  let done = 0
  const started = performance.now()
  while (performance.now() - started < MEASURE_MS) {
    for (const item of items) run(item)
    done += items.length
  }
  return done / ((performance.now() - started) / 1_000)
}

export async function ledgerBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const txs = transfers(TXS, new Array<number>(SENDERS).fill(0))
  const encoded = txs.map(encodeTx)
  const raw = txs.map((tx) => {
    const { signature, ...unsigned } = tx
    return { key: createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, tx.publicKey]), format: 'der', type: 'spki' }), message: txSigningBytes(unsigned), signature }
  })
  rate(raw.slice(0, 500), (item) => { verify(null, item.message, item.key, item.signature) })
  const verifyRate = rate(raw, (item) => { verify(null, item.message, item.key, item.signature) })
  progress(`node:crypto Ed25519 verify: ${Math.round(verifyRate)}/s`)
  const checkRate = rate(encoded, (bytes) => { checkTx(decodeCanonical(bytes), CHAIN) })
  progress(`checkTx (decode, schema, signature): ${Math.round(checkRate)}/s`)

  // Execution: blocks of BLOCK_TXS transfers applied and undone on a state of SENDERS accounts.
  const genesis = { chainId: CHAIN, timeMs: 0, allocations: addresses.map((address) => ({ address, balance: 1_000_000_000n })) }
  const state = LedgerState.fromGenesis(genesis)
  const block: Block = { header: { chainId: CHAIN, height: 1, parent: '0'.repeat(64), timeMs: 1, txRoot: txRootOf(txs.slice(0, BLOCK_TXS)), stateRoot: '0'.repeat(64), proposer: 'f'.repeat(40), seal: null }, txs: txs.slice(0, BLOCK_TXS) }
  const applyRate = rate([block], (item) => { state.revert(state.apply(item, 50n)); state.root() })
  progress(`apply + state root + undo: ${Math.round(applyRate * BLOCK_TXS)} txs/s`)

  // Whole blocks through the chain store (PoW header checks at an easy limit, execution, roots).
  const { chain } = newChain(undefined, new MemoryDisk())
  const source = newChain()
  const blocks = extend(source.chain, source.engine, 20)
  const started = performance.now()
  for (const each of blocks) chain.add(each, Number.MAX_SAFE_INTEGER)
  const emptyBlocksPerSecond = blocks.length / ((performance.now() - started) / 1_000)
  progress(`chain store, empty PoW blocks: ${Math.round(emptyBlocksPerSecond)}/s`)

  return {
    name: 'ledger',
    title: 'transaction validation and block execution',
    header: ['what', 'per second', 'x raw verify'],
    rows: [
      ['node:crypto Ed25519 verify (baseline)', String(Math.round(verifyRate)), '1.00'],
      ['checkTx: decode CBOR, schema, chain id, signature', String(Math.round(checkRate)), (checkRate / verifyRate).toFixed(2)],
      [`apply ${BLOCK_TXS}-transfer block + state root + undo (txs)`, String(Math.round(applyRate * BLOCK_TXS)), (applyRate * BLOCK_TXS / verifyRate).toFixed(2)],
      ['chain store: empty PoW blocks added (blocks)', String(Math.round(emptyBlocksPerSecond)), 'n/a']
    ],
    verdict: `transaction validation runs at ${(checkRate / verifyRate * 100).toFixed(0)}% of raw signature verification; execution is ${(applyRate * BLOCK_TXS / checkRate).toFixed(1)}x validation, so signature checks bound the ledger`,
    data: { verifyRate, checkRate, applyTxsPerSecond: applyRate * BLOCK_TXS, emptyBlocksPerSecond }
  }
}
