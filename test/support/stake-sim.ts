/**
 * A simulated PoS or DPoS network: every node runs the production overlay, membership and ledger
 * services and the engine's service (Tendermint rounds, or slot production); validators
 * (producers) hold test keys derived from the seed, with equal stake unless given. Some may run a
 * Byzantine variant from the simulator. Every node's finalized (PoS) or irreversible (DPoS)
 * blocks are recorded for the chain-safety checker.
 */
import assert from 'node:assert/strict'
import { encodeCanonical, keyPairFromSeed, sha256, type Ed25519KeyPair, type NodeId } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import {
  DposEngine, DposService, LedgerService, PosEngine, defaultDposParams, PosService, addressFromPublicKey, defaultStakingParams, signTx,
  type DposParams, type GenesisSpec, type LedgerLimits, type PosTimeouts, type StakingParams
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
  /** Ledger limits of some nodes, by node index. */
  ledgerLimits?: Partial<Record<number, Partial<LedgerLimits>>>
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
        penalize,
        limits: init.ledgerLimits?.[context.index]
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

/**
 * Compact PoS proposals with a node that gets no gossip (`sim` built with node 3's `intakeQueueTxsMax` 0):
 * validators 0-2 each submit 8 transfers of 10 to `to` at their own nodes. Checks that every one
 * is included on every node within `withinMs`, that node 3 dropped all the gossip and fetched each
 * transaction once from the proposers (and verified each once, none given up), that no other node
 * fetched, that every node put proposals together from their compact form, and that the balances agree.
 */
export function assertStarvedNodeFetches (sim: PosSim, to: string, withinMs: number): void {
  const hashes: string[] = []
  for (const [index, key] of sim.keys.slice(0, 3).entries()) {
    for (let nonce = 0; nonce < 8; nonce++) {
      hashes.push(sim.ledger(sim.idOf(index)).submit(signTx({ chainId: sim.genesis.chainId, publicKey: key.publicKey, nonce, fee: 2n, body: { kind: 'transfer', to, amount: 10n } }, key)).hash)
    }
  }
  const everywhere = (): boolean => sim.members.every((id) => hashes.every((hash) => sim.ledger(id).txStatus(hash).status === 'included'))
  assert.ok(sim.runUntil(everywhere, withinMs), 'not every transfer was included everywhere')
  const starved = sim.ledger(sim.idOf(3)).stats()
  assert.equal(starved.intakeDropped, hashes.length, 'node 3 dropped all the gossip')
  assert.equal(starved.compactTxsFetched, hashes.length, 'it fetched each transaction once')
  assert.equal(starved.signaturesVerified, hashes.length, 'and verified each once')
  assert.equal(starved.compactBlocksUnavailable, 0)
  for (const id of sim.members) {
    assert.ok(sim.ledger(id).stats().compactBlocksAssembled > 0, `node ${id} put no block together`)
    assert.equal(sim.ledger(id).chain().state().get(to).balance, BigInt(10 * hashes.length), `node ${id}`)
    if (id !== sim.idOf(3)) assert.equal(sim.ledger(id).stats().compactTxsFetched, 0, `node ${id} had the gossip`)
  }
}
