/**
 * The ledger in a real node: the PoW engine and genesis from the network config, the miner pool
 * as the sealer, this node's key as its coinbase, and membership's scores for peers that send
 * invalid blocks or transactions.
 */
import { availableParallelism } from 'node:os'
import { CoreError, fromHex, type Logger } from '../core/index.js'
import type { MembershipService } from '../membership/index.js'
import type { OverlayService } from '../net/index.js'
import { LedgerError, LedgerService, PowEngine, addressFromPublicKey, defaultPowParams, type PowParams, type Sealer, type SealJob } from '../ledger/index.js'
import type { LedgerConfig } from './config.js'
import { MinerPool } from './miner.js'

/** A `Sealer` over the miner pool's worker threads. */
export class MinerPoolSealer implements Sealer {
  constructor (readonly pool: MinerPool, private readonly log: Logger) {}

  mine (job: SealJob, done: (seal: { nonce: number, extraNonce: number } | null) => void): void {
    this.pool.mine(job).then((seal) => { done(seal === null ? null : { nonce: seal.nonce, extraNonce: seal.extraNonce }) }, (error: unknown) => {
      this.log.error({ reason: error instanceof Error ? error.message : String(error) }, 'the miner failed; mining stops')
      done(null)
    })
  }

  cancel (): void {
    this.pool.cancel()
  }
}

export function powParamsOf (config: LedgerConfig): PowParams {
  const pow = config.pow ?? {}
  const bits = (text: string | undefined, fallback: number): number => text === undefined ? fallback : Number.parseInt(text, 16)
  return {
    retargetIntervalBlocks: pow.retargetIntervalBlocks ?? defaultPowParams.retargetIntervalBlocks,
    targetBlockSpacingMs: pow.targetBlockSpacingMs ?? defaultPowParams.targetBlockSpacingMs,
    powLimitBits: bits(pow.powLimitBits, defaultPowParams.powLimitBits),
    initialBits: bits(pow.initialBits, defaultPowParams.initialBits),
    blockReward: pow.blockReward === undefined ? defaultPowParams.blockReward : BigInt(pow.blockReward),
    halvingIntervalBlocks: pow.halvingIntervalBlocks ?? defaultPowParams.halvingIntervalBlocks,
    futureTimeLimitMs: pow.futureTimeLimitMs ?? defaultPowParams.futureTimeLimitMs
  }
}

export interface LedgerParts { ledger: LedgerService, miner: MinerPool | null }

export function createLedger (config: LedgerConfig, init: { overlay: OverlayService, membership: MembershipService, publicKey: string, minerThreads: number | undefined, log: Logger }): LedgerParts {
  let engine: PowEngine
  try {
    engine = new PowEngine(powParamsOf(config))
  } catch (error) {
    if (error instanceof LedgerError) throw new CoreError('CORE_CONFIG_INVALID', `network config ledger.pow: ${error.message}`, { field: 'ledger.pow' })
    throw error
  }
  const threads = init.minerThreads ?? availableParallelism()
  const miner = threads > 0 ? new MinerPool({ threads }) : null
  const ledger = new LedgerService({
    net: init.overlay,
    genesis: { chainId: config.chainId, timeMs: config.genesisTimeMs, allocations: config.allocations.map((allocation) => ({ address: allocation.address, balance: BigInt(allocation.balance) })) },
    engine,
    sealer: miner === null ? null : new MinerPoolSealer(miner, init.log.child({ component: 'miner' })),
    coinbase: addressFromPublicKey(fromHex(init.publicKey)),
    penalize: (peer, offence, reason) => { init.membership.penalize(peer, offence, reason) }
  })
  return { ledger, miner }
}
