/** Proof-of-work networks whose headers Synod can verify. */
import type { RetargetRules } from './work.js'

export interface PowNetwork extends RetargetRules {
  name: string
  /** Largest allowed distance of a block time ahead of the verifier's clock, in seconds. */
  futureTimeLimitS: number
}

export const BITCOIN_MAINNET: Readonly<PowNetwork> = Object.freeze({
  name: 'bitcoin-mainnet',
  retargetIntervalBlocks: 2016,
  targetTimespan: 14 * 24 * 60 * 60,
  powLimit: (1n << 224n) - 1n,
  futureTimeLimitS: 2 * 60 * 60
})

export const POW_NETWORKS: Readonly<Record<string, Readonly<PowNetwork>>> = Object.freeze({ [BITCOIN_MAINNET.name]: BITCOIN_MAINNET })
