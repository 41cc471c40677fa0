/**
 * Proof of Stake in the simulator: Tendermint rounds on the production services, with Byzantine
 * validators (equivocating proposals, double votes, withheld votes, invalid blocks), partitions,
 * crashes and restarts, over many seeds. The chain-safety checker reads every block every honest
 * node finalized: no two honest nodes may ever finalize different blocks at one height.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Ed25519KeyPair } from '../../src/core/index.js'
import { checkChainSafety } from '../../src/check/index.js'
import { LedgerState, addressFromPublicKey, blockContext, signTx, type Block } from '../../src/ledger/index.js'
import { byzantineBehaviours, type ByzantineBehaviour } from '../../src/sim/index.js'
import { assertStarvedNodeFetches, makePosSim, type PosSim } from '../support/stake-sim.js'

const LONG = process.env.SYNOD_LONG === '1'
const SEEDS = LONG ? 40 : 6

function assertSafe (sim: PosSim, label: string): void {
  const report = checkChainSafety(sim.events, sim.honest)
  assert.ok(report.ok, `${label}: ${JSON.stringify(report.violations.slice(0, 3))}`)
}

/**
 * The node's live state equals a replay of its chain from genesis, staking records and validator
 * sets included: its blocks were added from their checks' results (`LedgerState.redo`), and its
 * checks rolled back by restoring the trees whole, where a replay executes every block once.
 */
function assertStateIsReplay (sim: PosSim, id: string, label: string): void {
  const chain = sim.ledger(id).chain()
  const replayed = LedgerState.fromGenesis(sim.genesis)
  for (let height = 1; height <= chain.head().header.height; height++) {
    const block = chain.block(chain.hashAt(height) as string) as Block
    replayed.apply(block, blockContext(chain.engine, block.header, replayed))
  }
  const live = chain.state()
  const byAddress = <T>(entries: Array<[string, T]>): Array<[string, T]> => [...entries].sort(([a], [b]) => a.localeCompare(b))
  assert.equal(live.root(), replayed.root(), `${label}: state root`)
  assert.deepEqual(byAddress(live.entries()), byAddress(replayed.entries()), `${label}: accounts`)
  assert.deepEqual(byAddress(live.stakeEntries()), byAddress(replayed.stakeEntries()), `${label}: staking records`)
  assert.deepEqual(live.validators(), replayed.validators(), `${label}: validator set`)
  assert.ok(chain.counters.checkedReused > 0, `${label}: no block was added from its check`)
}

/** The lowest head height among the up honest nodes. */
function honestHeight (sim: PosSim): number {
  return Math.min(...[...sim.honest].filter((id) => sim.cluster.isUp(id)).map((id) => sim.ledger(id).chain().head().header.height))
}

describe('PoS simulation: honest validators', () => {
  it('n = 4: every node finalizes the same blocks, continuously', () => {
    const sim = makePosSim({ nodes: 4, seed: 11 })
    assert.ok(sim.runUntil(() => honestHeight(sim) >= 20, 30_000), `heights ${sim.heights().join(',')}`)
    assertSafe(sim, 'honest')
    for (const id of sim.members) {
      const stats = sim.pos(id).stats()
      assert.equal(stats.equivocationsSeen, 0)
      assert.equal(stats.invalidProposals, 0)
      // Each committed block is the proposal the node checked before it voted: added from that
      // check's result, not checked and executed a second time.
      assert.ok(stats.commits >= 20)
      assert.equal(sim.ledger(id).chain().counters.checkedReused, stats.commits, `node ${id}`)
      // Every committed block is final: none keeps an undo record (a reorganisation cannot reach it).
      assert.equal(sim.ledger(id).chain().undoRecords(), 0, `node ${id}`)
      // Each validator signature is verified once per node: per height, at most the three others'
      // prevotes and precommits, and a proposal with its seal. The same precommits come back in the
      // next block's certificate (with this node's own), and messages for the next height that
      // came early are replayed: those are answered from memory.
      assert.ok(stats.statementSignaturesVerified <= 8 * (stats.commits + 1), `node ${id}: ${stats.statementSignaturesVerified} verifications over ${stats.commits} heights`)
      assert.ok(stats.statementSignaturesRemembered >= stats.commits, `node ${id}: ${stats.statementSignaturesRemembered} signatures remembered`)
    }
  })

  it('transfers submitted to different nodes are finalized once and every node ends with the same balances', () => {
    const sim = makePosSim({ nodes: 4, seed: 5 })
    const to = 'ab'.repeat(20)
    const hashes: string[] = []
    for (const [index, key] of sim.keys.entries()) {
      const ledger = sim.ledger(sim.idOf(index))
      for (let nonce = 0; nonce < 5; nonce++) {
        hashes.push(ledger.submit(signTx({ chainId: sim.genesis.chainId, publicKey: key.publicKey, nonce, fee: 2n, body: { kind: 'transfer', to, amount: 10n } }, key)).hash)
      }
    }
    const everywhere = (): boolean => sim.members.every((id) => hashes.every((hash) => sim.ledger(id).txStatus(hash).status === 'included'))
    assert.ok(sim.runUntil(everywhere, 30_000), 'not every transfer was finalized everywhere')
    for (const id of sim.members) assert.equal(sim.ledger(id).chain().state().get(to).balance, 200n)
    // Proposals named transactions the pool had verified: each node put them together from its
    // pool, without their bytes, and did not check their signatures again.
    assert.ok(sim.members.some((id) => sim.ledger(id).stats().signaturesSkipped > 0))
    for (const id of sim.members) assert.ok(sim.ledger(id).stats().compactBlocksAssembled > 0, `node ${id} put no proposal together`)
    // Each node verified each transaction's signature exactly once, whichever path met it first
    // (its client, the gossip intake, or a proposal that overtook the gossip).
    for (const id of sim.members) assert.equal(sim.ledger(id).stats().signaturesVerified, hashes.length, `node ${id}`)
    assertSafe(sim, 'transfers')
  })

  it('a validator that gets no gossip fetches each proposal\'s transactions from its proposer, and every transfer finalizes everywhere', () => {
    // Node 3 drops every gossiped transaction (an intake queue of 0): every proposal names
    // transactions it lacks, and it asks the proposer for them.
    const sim = makePosSim({ nodes: 4, seed: 9, ledgerLimits: { 3: { intakeQueueTxsMax: 0 } } })
    assertStarvedNodeFetches(sim, 'cd'.repeat(20), 30_000)
    assertSafe(sim, 'no gossip to node 3')
  })

  it('a proposal that overtakes the gossip finds its transactions in the intake queue: checked out of turn, each verified once, nothing fetched', () => {
    // A steady load: each 150 ms a node gets 64 transfers from its clients, the nodes in turn.
    const sim = makePosSim({ nodes: 4, seed: 7 })
    const to = 'ab'.repeat(20)
    assert.ok(sim.runUntil(() => honestHeight(sim) >= 2, 10_000))
    let count = 0
    for (let round = 0; round < 40; round++) {
      const ledger = sim.ledger(sim.idOf(round % 4))
      for (const key of sim.keys) {
        for (let index = 0; index < 16; index++) {
          ledger.submit(signTx({ chainId: sim.genesis.chainId, publicKey: key.publicKey, nonce: round * 16 + index, fee: 2n, body: { kind: 'transfer', to, amount: 1n } }, key))
          count++
        }
      }
      sim.kernel.runFor(150)
    }
    assert.ok(sim.runUntil(() => sim.members.every((id) => sim.ledger(id).chain().state().get(to).balance === BigInt(count)), 60_000), 'not every transfer was finalized everywhere')
    const stats = sim.members.map((id) => sim.ledger(id).stats())
    assert.ok(stats.some((node) => node.compactTxsFromIntake > 0), 'no proposal overtook the gossip')
    for (const [index, node] of stats.entries()) {
      assert.equal(node.compactTxsFetched, 0, `node ${index}`)
      assert.equal(node.signaturesVerified, count, `node ${index} verified each transaction once`)
      // Those checked out of turn left the queue's count at once, the rest when their turn came.
      assert.equal(sim.ledger(sim.idOf(index)).intakeQueued(), 0, `node ${index}: nothing waits`)
    }
    assertSafe(sim, 'steady load')
  })

  it('with more than 1/3 of the power offline nothing finalizes, and it resumes when enough return', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = makePosSim({ nodes: 4, seed })
      assert.ok(sim.runUntil(() => honestHeight(sim) >= 3, 20_000))
      sim.cluster.crash(sim.idOf(0))
      sim.cluster.crash(sim.idOf(1))
      sim.kernel.runFor(2_000)
      const stalled = Math.max(...sim.heights())
      sim.kernel.runFor(15_000)
      assert.equal(Math.max(...sim.heights()), stalled, `seed ${seed}: 2 of 4 validators finalized alone`)
      sim.cluster.restart(sim.idOf(1))
      assert.ok(sim.runUntil(() => honestHeight(sim) >= stalled + 3, 60_000), `seed ${seed}: no progress after a restart, heights ${sim.heights().join(',')}`)
      assertSafe(sim, `seed ${seed}`)
    }
  })

  it('a validator that crashes and restarts at random never signs two values for one step', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const sim = makePosSim({ nodes: 4, seed, timeouts: { commitWaitMs: 50 } })
      const victim = sim.idOf(seed % 4)
      for (let cycle = 0; cycle < 8; cycle++) {
        sim.kernel.runFor(700 + ((seed * 131 + cycle * 97) % 900))
        sim.cluster.crash(victim)
        sim.kernel.runFor(200 + ((seed * 17 + cycle * 53) % 400))
        sim.cluster.restart(victim)
      }
      assert.ok(sim.runUntil(() => honestHeight(sim) >= 10, 60_000), `seed ${seed}: heights ${sim.heights().join(',')}`)
      for (const id of sim.members) assert.equal(sim.pos(id).stats().equivocationsSeen, 0, `seed ${seed}: an honest validator equivocated after a restart`)
      assertSafe(sim, `seed ${seed}`)
    }
  })
})

function byzantineRun (nodes: number, faulty: number, behaviour: ByzantineBehaviour, seed: number): PosSim {
  const byzantine: Partial<Record<number, ByzantineBehaviour>> = {}
  for (let index = 0; index < faulty; index++) byzantine[index] = behaviour
  const sim = makePosSim({ nodes, seed, byzantine })
  sim.kernel.runFor(3_000)
  // A partition that splits the honest validators, then heals.
  const honest = sim.members.filter((id) => sim.honest.has(id))
  const cut = 1 + (seed % (honest.length - 1))
  sim.network.partition([honest.slice(0, cut), [...honest.slice(cut), ...sim.members.filter((id) => !sim.honest.has(id))]])
  sim.kernel.runFor(4_000)
  sim.network.heal()
  const healedAt = honestHeight(sim)
  assert.ok(sim.runUntil(() => honestHeight(sim) >= healedAt + 5, 60_000), `${behaviour} n=${nodes} seed ${seed}: no progress after healing, heights ${sim.heights().join(',')}`)
  assertSafe(sim, `${behaviour} n=${nodes} seed ${seed}`)
  return sim
}

for (const [nodes, faulty] of [[4, 1], [7, 2]] as const) {
  describe(`PoS simulation: n = ${nodes}, f = ${faulty} Byzantine`, () => {
    for (const behaviour of byzantineBehaviours) {
      it(`${behaviour}: honest nodes stay safe and live over ${SEEDS} seeds${behaviour === 'equivocate-proposals' || behaviour === 'double-vote' ? ', and the equivocators are slashed' : ''}`, () => {
        let givenUp = 0
        for (let seed = 1; seed <= SEEDS; seed++) {
          const sim = byzantineRun(nodes, faulty, behaviour, seed)
          assertStateIsReplay(sim, [...sim.honest][0] as string, `${behaviour} n=${nodes} seed ${seed}`)
          for (const id of sim.honest) givenUp += sim.ledger(id).stats().compactBlocksUnavailable
          if (behaviour === 'withhold-txs') {
            // Its proposals never finalize: the transaction it withheld is on no honest chain.
            for (const id of sim.honest) assert.equal(sim.ledger(id).chain().state().get(addressFromPublicKey((sim.keys[0] as Ed25519KeyPair).publicKey)).nonce, 0, `${behaviour} n=${nodes} seed ${seed}`)
          }
          if (behaviour !== 'equivocate-proposals' && behaviour !== 'double-vote') continue
          const observer = [...sim.honest][0] as string
          const slashed = () => sim.keys.slice(0, faulty).every((key) => sim.ledger(observer).chain().state().stakeOf(addressFromPublicKey(key.publicKey)).candidate?.tombstoned === true)
          assert.ok(sim.runUntil(slashed, 60_000), `${behaviour} n=${nodes} seed ${seed}: equivocators not slashed`)
          assertSafe(sim, `${behaviour} n=${nodes} seed ${seed} after slashing`)
          // Slashing changed stakes and the validator set: the live state is still exactly a replay.
          assertStateIsReplay(sim, observer, `${behaviour} n=${nodes} seed ${seed}`)
        }
        // Honest validators gave up on the proposals whose transactions the proposer withheld
        // (the fetch came back without them), and voted nil instead; no other behaviour causes it.
        if (behaviour === 'withhold-txs') assert.ok(givenUp > 0, 'no compact proposal was given up')
        else assert.equal(givenUp, 0)
      })
    }
  })
}
