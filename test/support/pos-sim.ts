/**
 * A simulated PoS network: every node runs the production overlay, membership, ledger and
 * Tendermint services; validators hold test keys derived from the seed, with equal stake unless
 * given. Some validators may run a Byzantine variant from the simulator.
 */
import { encodeCanonical, keyPairFromSeed, sha256, type Ed25519KeyPair, type NodeId } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import {
  LedgerService, PosEngine, blockHash, PosService, addressFromPublicKey, defaultStakingParams,
  type GenesisSpec, type PosTimeouts, type StakingParams
} from '../../src/ledger/index.js'
import { byzantinePos, type ByzantineBehaviour, type SimCluster, type SimKernel, type SimNetwork, type LinkPacket } from '../../src/sim/index.js'
import { makeOverlayCluster, runKernelUntil } from './overlay-cluster.js'
import type { FinalizedEvent } from '../../src/check/index.js'

export const POS_CHAIN = 'synod-pos-test'

export interface PosSimInit {
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
  const engine = new PosEngine()
  const events: FinalizedEvent[] = []
  const kernelRef = { now: (): number => kernel.now() }
  const { kernel, network, cluster } = makeOverlayCluster({
    nodes: init.nodes,
    seed: init.seed,
    messageLossRate: init.messageLossRate,
    services: (context, overlay) => {
      const membership = new MembershipService({ net: overlay })
      let pos: PosService | null = null
      const ledger = new LedgerService({
        net: overlay,
        genesis,
        engine,
        sealer: null,
        coinbase: addressFromPublicKey(sha256(new TextEncoder().encode(context.id))),
        finality: PosService.finality(() => pos),
        penalize: (peer, offence, reason) => { membership.penalize(peer, offence, reason) }
      })
      const key = keys[context.index] ?? null
      const behaviour = init.byzantine?.[context.index]
      const posInit = { ledger, net: overlay, key, timeouts: init.timeouts, penalize: (peer: NodeId, offence: 'invalid_signature' | 'malformed_message' | 'protocol_violation', reason: string) => { membership.penalize(peer, offence, reason) } }
      pos = behaviour === undefined ? new PosService(posInit) : byzantinePos(posInit, behaviour)
      ledger.onHead((outcome) => {
        for (const block of outcome.applied) events.push({ node: context.id, height: block.header.height, hash: blockHash(block.header), atMs: kernelRef.now() })
      })
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
    runUntil: (predicate, maxMs, checkEveryMs = 100) => runKernelUntil(kernel, predicate, maxMs, checkEveryMs),
    heights: () => up().map((id) => ledger(id).chain().head().header.height),
    events,
    honest: new Set(cluster.nodes.filter((node) => init.byzantine?.[node.index] === undefined).map((node) => node.id)),
    idOf: (index) => (cluster.nodes[index] as { id: NodeId }).id
  }
}
