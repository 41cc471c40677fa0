/**
 * A simulated PoW network: every node runs the production overlay, membership and ledger
 * services, mining with the simulated sealer at an equal share of the hash rate.
 */
import { sha256, toHex, type NodeId } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import { ChainStore, LedgerService, PowEngine, type Block, type LedgerLimits, type PowParams } from '../../src/ledger/index.js'
import { SimSealer, type SimCluster, type SimKernel, type SimNetwork, type LinkPacket } from '../../src/sim/index.js'
import { MemoryDisk } from './memory-disk.js'
import { makeOverlayCluster, runKernelUntil } from './overlay-cluster.js'
import { testGenesis } from './pow-chain.js'

export const simPowParams: PowParams = {
  retargetIntervalBlocks: 10,
  targetBlockSpacingMs: 1_000,
  powLimitBits: 0x2003ffff,
  initialBits: 0x2003ffff,
  blockReward: 100n,
  halvingIntervalBlocks: 0,
  futureTimeLimitMs: 60_000
}

export interface LedgerSim {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  members: readonly NodeId[]
  ledger: (id: NodeId) => LedgerService
  /** The up nodes' heads. */
  heads: () => string[]
  /** Runs until `predicate` holds, checking every `checkEveryMs`; false after `maxMs`. */
  runUntil: (predicate: () => boolean, maxMs: number, checkEveryMs?: number) => boolean
  /** True when every up node has the same head. */
  converged: () => boolean
}

export function makeLedgerSim (init: { nodes: number, seed: number, spacingMs?: number, limits?: Partial<LedgerLimits> }): LedgerSim {
  const engine = new PowEngine(simPowParams)
  // The network's blocks come every spacing on average at the limit's expected 64 hashes.
  const hashesPerMs = 64 / ((init.spacingMs ?? simPowParams.targetBlockSpacingMs) * init.nodes)
  const genesis = { ...testGenesis, timeMs: 0 }
  const { kernel, network, cluster } = makeOverlayCluster({
    nodes: init.nodes,
    seed: init.seed,
    services: (context, overlay) => {
      const membership = new MembershipService({ net: overlay })
      const ledger = new LedgerService({
        net: overlay,
        genesis,
        engine,
        sealer: new SimSealer(hashesPerMs),
        coinbase: toHex(sha256(new TextEncoder().encode(context.id)).subarray(0, 20)),
        penalize: (peer, offence, reason) => { membership.penalize(peer, offence, reason) },
        limits: init.limits
      })
      return [membership, ledger]
    }
  })
  const ledger = (id: NodeId): LedgerService => cluster.service(id, LedgerService) as LedgerService
  const up = (): NodeId[] => cluster.members.filter((id) => cluster.isUp(id))
  const heads = (): string[] => up().map((id) => ledger(id).chain().head().hash)
  const runUntil = (predicate: () => boolean, maxMs: number, checkEveryMs = 100): boolean => runKernelUntil(kernel, predicate, maxMs, checkEveryMs)
  return { kernel, network, cluster, members: cluster.members, ledger, heads, runUntil, converged: () => new Set(heads()).size === 1 }
}

/** The state root a fresh chain store reaches by replaying `service`'s main chain from genesis. */
export function replayedRoot (service: LedgerService): string {
  const chain = service.chain()
  const fresh = new ChainStore({ genesis: { ...testGenesis, timeMs: 0 }, engine: new PowEngine(simPowParams), disk: new MemoryDisk() })
  for (let height = 1; height <= chain.head().header.height; height++) {
    const block = chain.block(chain.hashAt(height) as string) as Block
    const outcome = fresh.add(block, Number.MAX_SAFE_INTEGER)
    if (outcome.status !== 'head') throw new Error(`replay of block ${height}: ${outcome.status}`)
  }
  return fresh.state().root()
}
