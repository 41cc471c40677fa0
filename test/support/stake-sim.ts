/**
 * A simulated PoS or DPoS network: every node runs the production overlay, membership and ledger
 * services and the engine's service (Tendermint rounds, or slot production); validators
 * (producers) hold test keys derived from the seed, with equal stake unless given. Some may run a
 * Byzantine variant from the simulator. Every node's finalized (PoS) or irreversible (DPoS)
 * blocks are recorded for the chain-safety checker.
 */
import { encodeCanonical, keyPairFromSeed, sha256, type Ed25519KeyPair, type NodeId } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import {
  DposEngine, DposService, LedgerService, PosEngine, defaultDposParams, PosService, addressFromPublicKey, defaultStakingParams,
  type DposParams, type GenesisSpec, type PosTimeouts, type StakingParams
} from '../../src/ledger/index.js'
import { byzantineDpos, byzantinePos, type ByzantineBehaviour, type DposByzantineBehaviour, type SimCluster, type SimKernel, type SimNetwork, type LinkPacket } from '../../src/sim/index.js'
import { makeOverlayCluster, runKernelUntil } from './overlay-cluster.js'
import type { FinalizedEvent } from '../../src/check/index.js'

export const POS_CHAIN = 'synod-pos-test'

export interface PosSimInit {
  /** PoS by default. */
  engine?: 'pos' | 'dpos'
  /** DPoS parameters besides the genesis time. */
  dpos?: Partial<Omit<DposParams, 'genesisTimeMs'>>
  /** DPoS Byzantine producers, by node index. */
  byzantineProducers?: Partial<Record<number, DposByzantineBehaviour>>
  nodes: number
  seed: number
  /** Validator i runs on node i; nodes beyond `validators` follow without voting. Default: all. */
  validators?: number
  stakes?: bigint[]
  byzantine?: Partial<Record<number, ByzantineBehaviour>>
  timeouts?: Partial<PosTimeouts>
  staking?: Partial<StakingParams>
  messageLossRate?: number
}

export interface PosSim {
  kernel: SimKernel
  network: SimNetwork<LinkPacket>
  cluster: SimCluster
  members: readonly NodeId[]
  keys: Ed25519KeyPair[]
  genesis: GenesisSpec
  ledger: (id: NodeId) => LedgerService
  pos: (id: NodeId) => PosService
  dpos: (id: NodeId) => DposService
  /** The final (PoS) or irreversible (DPoS) height of each up node. */
  finalHeights: () => number[]
  runUntil: (predicate: () => boolean, maxMs: number, checkEveryMs?: number) => boolean
  /** Head heights of the up nodes. */
  heights: () => number[]
  /** Every block every node finalized, in order: the chain-safety checker's input. */
  events: FinalizedEvent[]
  /** The nodes that run honest validators or followers. */
  honest: ReadonlySet<NodeId>
  /** The id of node `index` (validator `index` runs there). */
  idOf: (index: number) => NodeId
}

export function validatorKeys (seed: number, count: number): Ed25519KeyPair[] {
  return Array.from({ length: count }, (_, index) => keyPairFromSeed(sha256(encodeCanonical({ purpose: 'pos-sim-validator', seed, index }))))
}

export function makePosSim (init: PosSimInit): PosSim {
  const validatorCount = init.validators ?? init.nodes
  const keys = validatorKeys(init.seed, validatorCount)
  const genesis: GenesisSpec = {
    chainId: POS_CHAIN,
    timeMs: 0,
    allocations: keys.map((key) => ({ address: addressFromPublicKey(key.publicKey), balance: 1_000_000n })),
    staking: {
      params: { ...defaultStakingParams, validatorStakeMin: 1n, ...init.staking },
      validators: keys.map((key, index) => ({ publicKey: key.publicKey, stake: init.stakes?.[index] ?? 10_000n }))
    }
  }
  // One engine per node, as each process has its own (the PoS engine remembers the signatures its node verified).
  const newEngine = (): PosEngine | DposEngine => init.engine === 'dpos' ? new DposEngine({ ...defaultDposParams, ...init.dpos, genesisTimeMs: genesis.timeMs }) : new PosEngine()
  const events: FinalizedEvent[] = []
  const finalSeen = new Map<NodeId, number>()
  const reported = new Map<string, string>()
  const kernelRef = { now: (): number => kernel.now() }
  const { kernel, network, cluster } = makeOverlayCluster({
    nodes: init.nodes,
    seed: init.seed,
    messageLossRate: init.messageLossRate,
    services: (context, overlay) => {
      const engine = newEngine()
      const membership = new MembershipService({ net: overlay })
      let pos: PosService | null = null
      const penalize = (peer: NodeId, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string): void => { membership.penalize(peer, offence, reason) }
      const ledger = new LedgerService({
        net: overlay,
        genesis,
        engine,
        sealer: null,
        coinbase: addressFromPublicKey(sha256(new TextEncoder().encode(context.id))),
        ...(engine instanceof PosEngine ? { finality: PosService.finality(() => pos) } : {}),
        penalize
      })
      const key = keys[context.index] ?? null
      // Each block that becomes final (PoS: on joining the chain; DPoS: when it becomes
      // irreversible). A restarted node recomputes its final height from its chain; the blocks it
      // had reported before are checked again, and only higher ones are new events.
      ledger.onHead(() => {
        const chain = ledger.chain()
        const final = chain.finalizedHeight() ?? 0
        const seen = finalSeen.get(context.id) ?? 0
        for (let height = 1; height <= Math.min(seen, final); height += Math.max(1, Math.floor(seen / 8))) {
          if (reported.get(`${context.id}/${height}`) !== chain.hashAt(height)) events.push({ node: context.id, height, hash: chain.hashAt(height) as string, atMs: kernelRef.now() })
        }
        for (let height = seen + 1; height <= final; height++) {
          const hash = chain.hashAt(height) as string
          reported.set(`${context.id}/${height}`, hash)
          events.push({ node: context.id, height, hash, atMs: kernelRef.now() })
        }
        finalSeen.set(context.id, Math.max(seen, final))
      })
      if (engine instanceof DposEngine) {
        const behaviour = init.byzantineProducers?.[context.index]
        const dposInit = { ledger, engine, key }
        return [membership, ledger, behaviour === undefined ? new DposService(dposInit) : byzantineDpos(dposInit, behaviour)]
      }
      const behaviour = init.byzantine?.[context.index]
      const posInit = { ledger, net: overlay, key, timeouts: init.timeouts, penalize }
      pos = behaviour === undefined ? new PosService(posInit) : byzantinePos(posInit, behaviour)
      return [membership, ledger, pos]
    }
  })
  const ledger = (id: NodeId): LedgerService => cluster.service(id, LedgerService) as LedgerService
  const pos = (id: NodeId): PosService => cluster.service(id, PosService) as PosService
  const up = (): NodeId[] => cluster.members.filter((id) => cluster.isUp(id))
  return {
    kernel,
    network,
    cluster,
    members: cluster.members,
    keys,
    genesis,
    ledger,
    pos,
    dpos: (id) => cluster.service(id, DposService) as DposService,
    finalHeights: () => up().map((id) => ledger(id).chain().finalizedHeight() ?? 0),
    runUntil: (predicate, maxMs, checkEveryMs = 100) => runKernelUntil(kernel, predicate, maxMs, checkEveryMs),
    heights: () => up().map((id) => ledger(id).chain().head().header.height),
    events,
    honest: new Set(cluster.nodes.filter((node) => init.byzantine?.[node.index] === undefined && init.byzantineProducers?.[node.index] === undefined).map((node) => node.id)),
    idOf: (index) => (cluster.nodes[index] as { id: NodeId }).id
  }
}
