/**
 * The ledger in a real node: the engine and genesis from the network config; for PoW the miner
 * pool as the sealer, for PoS the Tendermint service signing with this node's key (a validator
 * when the genesis lists that key), for DPoS slot production with it; this node's key as its coinbase; and membership's scores for
 * peers that send invalid blocks, transactions or consensus messages.
 */
import { availableParallelism } from 'node:os'
import { CoreError, fromHex, keyPairFromSeed, toHex, type Logger } from '../core/index.js'
import type { MembershipService } from '../membership/index.js'
import type { OverlayService } from '../net/index.js'
import {
  DposEngine, DposService, LedgerError, LedgerService, PosEngine, defaultDposParams, PosService, PowEngine, addressFromPublicKey, checkStakingParams, defaultPosParams, defaultPosTimeouts, defaultPowParams, defaultStakingParams,
  type DposParams, type GenesisSpec, type LedgerLimits, type PosParams, type PosTimeouts, type PowParams, type Sealer, type SealJob, type StakingParams
} from '../ledger/index.js'
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

export function stakingParamsOf (config: LedgerConfig): StakingParams {
  const staking = config.staking ?? {}
  return {
    ...defaultStakingParams,
    ...staking,
    validatorStakeMin: staking.validatorStakeMin === undefined ? defaultStakingParams.validatorStakeMin : BigInt(staking.validatorStakeMin)
  }
}

export function posParamsOf (config: LedgerConfig): { params: PosParams, timeouts: PosTimeouts } {
  const { blockReward, futureTimeLimitMs, ...timeouts } = config.pos ?? {}
  return {
    params: { blockReward: blockReward === undefined ? defaultPosParams.blockReward : BigInt(blockReward), futureTimeLimitMs: futureTimeLimitMs ?? defaultPosParams.futureTimeLimitMs },
    timeouts: { ...defaultPosTimeouts, ...timeouts }
  }
}

/** The genesis of a network config's ledger. */
export function genesisOf (config: LedgerConfig): GenesisSpec {
  return {
    chainId: config.chainId,
    timeMs: config.genesisTimeMs,
    allocations: config.allocations.map((allocation) => ({ address: allocation.address, balance: BigInt(allocation.balance) })),
    ...(config.consensus === 'pow'
      ? {}
      : { staking: { params: checkStakingParams(stakingParamsOf(config)), validators: (config.validators ?? []).map((validator) => ({ publicKey: fromHex(validator.publicKey), stake: BigInt(validator.stake) })) } })
  }
}

export function dposParamsOf (config: LedgerConfig): DposParams {
  const { blockReward, ...rest } = config.dpos ?? {}
  return { ...defaultDposParams, ...rest, blockReward: blockReward === undefined ? defaultDposParams.blockReward : BigInt(blockReward), genesisTimeMs: config.genesisTimeMs }
}

export interface LedgerParts {
  ledger: LedgerService
  miner: MinerPool | null
  /** PoS: the consensus service (it votes when this node's key is a validator's). */
  pos: PosService | null
  /** DPoS: block production (it produces when this node's key is an elected producer's). */
  dpos: DposService | null
}

export function createLedger (config: LedgerConfig, init: { overlay: OverlayService, membership: MembershipService, keySeed: string, minerThreads: number | undefined, limits?: Partial<LedgerLimits>, log: Logger }): LedgerParts {
  const limits = init.limits ?? {}
  const keyPair = keyPairFromSeed(fromHex(init.keySeed))
  const penalize = (peer: string, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string): void => { init.membership.penalize(peer, offence, reason) }
  let genesis: GenesisSpec
  let engine: PowEngine | PosEngine | DposEngine
  try {
    genesis = genesisOf(config)
    engine = config.consensus === 'pow' ? new PowEngine(powParamsOf(config)) : config.consensus === 'pos' ? new PosEngine(posParamsOf(config).params) : new DposEngine(dposParamsOf(config))
  } catch (error) {
    if (error instanceof LedgerError) throw new CoreError('CORE_CONFIG_INVALID', `network config ledger: ${error.message}`, { field: 'ledger' })
    throw error
  }
  const coinbase = addressFromPublicKey(keyPair.publicKey)
  if (engine instanceof PosEngine) {
    let pos: PosService | null = null
    const ledger = new LedgerService({ net: init.overlay, genesis, engine, sealer: null, coinbase, finality: PosService.finality(() => pos), penalize, limits })
    const isValidator = (config.validators ?? []).some((validator) => validator.publicKey === toHex(keyPair.publicKey))
    pos = new PosService({ ledger, net: init.overlay, key: keyPair, timeouts: posParamsOf(config).timeouts, penalize })
    init.log.info({ validator: isValidator, address: coinbase }, 'proof of stake')
    return { ledger, miner: null, pos, dpos: null }
  }
  if (engine instanceof DposEngine) {
    const ledger = new LedgerService({ net: init.overlay, genesis, engine, sealer: null, coinbase, penalize, limits })
    const dpos = new DposService({ ledger, engine, key: keyPair })
    init.log.info({ address: coinbase }, 'delegated proof of stake')
    return { ledger, miner: null, pos: null, dpos }
  }
  const threads = init.minerThreads ?? availableParallelism()
  const miner = threads > 0 ? new MinerPool({ threads }) : null
  const ledger = new LedgerService({
    net: init.overlay,
    genesis,
    engine,
    sealer: miner === null ? null : new MinerPoolSealer(miner, init.log.child({ component: 'miner' })),
    coinbase,
    penalize,
    limits
  })
  return { ledger, miner, pos: null, dpos: null }
}
