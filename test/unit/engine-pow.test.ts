/** PoW passes the consensus engine compliance suite, at a difficulty where a changed header fails its work. */
import type { PowEngine } from '../../src/ledger/index.js'
import { engineCompliance } from '../support/engine-compliance.js'
import { newChain, produce, testPowParams } from '../support/pow-chain.js'

/** About 1 in 65 536 hashes meets this: a tampered header fails its work check but for that chance. */
const params = { ...testPowParams, powLimitBits: 0x1f00ffff, initialBits: 0x1f00ffff, retargetIntervalBlocks: 1_000 }

engineCompliance('pow', {
  newChain: () => newChain(params),
  produce: (chain, engine, afterMs = 1_000) => produce(chain, engine as PowEngine, { timeMs: chain.head().header.timeMs + afterMs })
})
