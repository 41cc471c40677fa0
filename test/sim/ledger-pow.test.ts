/**
 * A simulated PoW network under partitions and crashes: both sides mine, the heaviest chain wins
 * everywhere after healing with state equal to a replay of that chain, double spends across the
 * partition are settled to one, and a node restarted from disk catches up.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { encodeCanonical } from '../../src/core/index.js'
import { MembershipService } from '../../src/membership/index.js'
import { OverlayService } from '../../src/net/index.js'
import {
  BLOCK_TOPIC, TX_TOPIC, LedgerError, addressFromPublicKey, encodeBlock, encodeTx, meetsTarget, packTxHashes, sealOf, txHash, txRootOf, workHash, workHeaderOf,
  type Block, type PowEngine, type SignedTx
} from '../../src/ledger/index.js'
import { forSeeds } from '../support/membership-sim.js'
import { makeLedgerSim, replayedRoot } from '../support/ledger-sim.js'
import { produce, seal, testKeys, transfer } from '../support/pow-chain.js'

const SEEDS = process.env.SYNOD_LONG === '1' ? [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] : [1, 2, 3]

describe('PoW network in the simulator', () => {
  it('mines on both sides of a partition and converges on the heaviest chain after healing', () => {
    forSeeds(SEEDS, (seed) => {
      const sim = makeLedgerSim({ nodes: 5, seed })
      sim.kernel.runFor(10_000)
      const [a, b, c, d, e] = sim.members as [string, string, string, string, string]
      assert.ok(sim.ledger(a).chain().head().header.height >= 3, 'the network mines')
      sim.network.partition([[a, b], [c, d, e]])
      const before = sim.ledger(a).chain().head().header.height
      // Both sides mine (the minority with 2/5 of the hash rate): wait until each has 2 blocks of its own.
      assert.ok(sim.runUntil(() => sim.ledger(a).chain().head().header.height >= before + 2 && sim.ledger(c).chain().head().header.height >= before + 2, 120_000), 'both sides mine')
      const minority = sim.ledger(a).chain().head()
      const majority = sim.ledger(c).chain().head()
      assert.notEqual(minority.hash, majority.hash, 'each side grew its own chain')
      sim.network.heal()
      assert.ok(sim.runUntil(() => sim.converged(), 30_000), `converged after healing: ${sim.heads().join(' ')}`)
      // Mining goes on: wait for a quiet moment where all agree, then compare with a replay.
      for (const id of [a, b, c, d, e]) assert.equal(sim.ledger(id).chain().state().root(), replayedRoot(sim.ledger(id)), `node ${id}: state equals a replay of its chain`)
      const winner = sim.ledger(a).chain().head()
      assert.ok(winner.weight >= majority.weight, 'the heavier chain won')
      assert.ok(sim.ledger(a).stats().reorgs + sim.ledger(c).stats().reorgs > 0, 'one side reorganised')
          })
  })

  it('settles a double spend made on both sides of a partition to exactly one, and refuses replays', () => {
    forSeeds(SEEDS, (seed) => {
      const sim = makeLedgerSim({ nodes: 5, seed })
      sim.kernel.runFor(5_000)
      const [a, , c] = sim.members as [string, string, string]
      sim.network.partition([[a, sim.members[1] as string], [c, sim.members[3] as string, sim.members[4] as string]])
      const toBob = transfer(0, 0, 1, 6_000n)
      const toCarol = transfer(0, 0, 2, 6_000n)
      // One transaction submitted on both sides: each side's chain includes it, in different blocks.
      const onBothSides = transfer(1, 0, 3, 10n)
      sim.ledger(a).submit(toBob)
      sim.ledger(c).submit(toCarol)
      sim.ledger(a).submit(onBothSides)
      sim.ledger(c).submit(onBothSides)
      sim.kernel.runFor(15_000)
      const sides = [a, c].map((id) => sim.ledger(id).txStatus(txHash(onBothSides)) as { status: string, block?: string })
      assert.ok(sides.every((side) => side.status === 'included') && sides[0]?.block !== sides[1]?.block, `mined on both sides, in different blocks: ${JSON.stringify(sides)}`)
      sim.network.heal()
      assert.ok(sim.runUntil(() => sim.converged() && [toBob, toCarol].some((tx) => sim.ledger(a).txStatus(txHash(tx)).status === 'included') && sim.ledger(a).txStatus(txHash(onBothSides)).status === 'included', 40_000))
      const statuses = [toBob, toCarol].map((tx) => sim.ledger(a).txStatus(txHash(tx)).status)
      assert.equal(statuses.filter((status) => status === 'included').length, 1, `exactly one spend is included: ${statuses.join(', ')}`)
      // Every node answers from main-chain blocks only: the losing spend is not included, the
      // transaction on both sides is named by the winning side's block, which holds it.
      const loser = [toBob, toCarol].find((tx) => sim.ledger(a).txStatus(txHash(tx)).status !== 'included') as SignedTx
      for (const id of sim.members) {
        const chain = sim.ledger(id).chain()
        assert.notEqual(sim.ledger(id).txStatus(txHash(loser)).status, 'included', `node ${id}: the spend that lost is not included`)
        for (const tx of [toBob, toCarol, onBothSides].filter((each) => each !== loser)) {
          const answer = sim.ledger(id).txStatus(txHash(tx)) as { status: string, block?: string }
          assert.ok(answer.status === 'included' && chain.isOnMainChain(answer.block as string) && (chain.block(answer.block as string) as Block).txs.some((held) => txHash(held) === txHash(tx)), `node ${id}: named by the main-chain block holding it`)
        }
      }
      const alice = sim.ledger(a).chain().state().get(addressFromPublicKey((testKeys[0] as { publicKey: Uint8Array }).publicKey))
      assert.deepEqual(alice, { balance: 10_000n - 6_001n, nonce: 1 })
      assert.throws(() => sim.ledger(c).submit(toBob), (error) => error instanceof LedgerError && (error.code === 'LEDGER_TX_NONCE_TOO_LOW' || error.code === 'LEDGER_TX_DUPLICATE'))
    })
  })

  it('brings a node restarted from disk back to the network\'s head', () => {
    forSeeds(SEEDS, (seed) => {
      const sim = makeLedgerSim({ nodes: 5, seed })
      sim.kernel.runFor(8_000)
      const victim = sim.members[4] as string
      const heightAtCrash = sim.ledger(victim).chain().head().header.height
      sim.cluster.crash(victim)
      const other = sim.members[0] as string
      assert.ok(sim.runUntil(() => sim.ledger(other).chain().head().header.height >= heightAtCrash + 3, 120_000), 'the others mine on')
      sim.cluster.restart(victim)
      const restarted = sim.ledger(victim).chain().head().header.height
      assert.ok(restarted >= Math.max(0, heightAtCrash - 3), `replayed its durable chain from disk (height ${restarted} of ${heightAtCrash})`)
      assert.ok(sim.runUntil(() => sim.converged(), 30_000), `caught up: ${sim.heads().join(' ')}`)
      const caughtUp = sim.ledger(victim).chain().head().header.height
      assert.ok(caughtUp > heightAtCrash && sim.ledger(victim).stats().blocksAccepted >= caughtUp - restarted, `took the blocks mined while it was down from its peers (${restarted} -> ${caughtUp})`)
    })
  })

  it('keeps the transaction index bounded: the oldest blocks\' transactions are forgotten, the recent ones answered, also after a restart', () => {
    forSeeds(SEEDS.slice(0, 2), (seed) => {
      const sim = makeLedgerSim({ nodes: 3, seed, limits: { txIndexTxsMax: 3 } })
      sim.kernel.runFor(5_000)
      const [a, , victim] = sim.members as [string, string, string]
      const status = (id: string, tx: SignedTx): string => sim.ledger(id).txStatus(txHash(tx)).status
      const first = [0, 1, 2].map((nonce) => transfer(0, nonce, 1, 10n))
      for (const tx of first) sim.ledger(a).submit(tx)
      assert.ok(sim.runUntil(() => sim.members.every((id) => first.every((tx) => status(id, tx) === 'included')), 60_000), 'the first three included everywhere')
      // Four more: more than the index keeps, all newer than the first three.
      const second = [0, 1, 2, 3].map((nonce) => transfer(1, nonce, 2, 10n))
      for (const tx of second) sim.ledger(a).submit(tx)
      const last = second[3] as SignedTx
      assert.ok(sim.runUntil(() => sim.members.every((id) => status(id, last) === 'included'), 60_000), 'the last one included everywhere')
      const forgotten = (id: string): boolean => first.every((tx) => status(id, tx) === 'unknown')
      for (const id of sim.members) assert.ok(forgotten(id), `node ${id} forgot the oldest transactions: ${first.map((tx) => status(id, tx)).join(', ')}`)
      // The balances show they ran: the index forgets, the chain does not.
      assert.equal(sim.ledger(a).chain().state().get(addressFromPublicKey((testKeys[0] as { publicKey: Uint8Array }).publicKey)).nonce, 3)
      let synced = false
      sim.cluster.node(victim).disk.sync(() => { synced = true })
      assert.ok(sim.runUntil(() => synced, 5_000))
      sim.cluster.crash(victim)
      sim.cluster.restart(victim)
      assert.ok(sim.runUntil(() => status(victim, last) === 'included', 30_000), 'rebuilt from the replayed chain')
      assert.ok(forgotten(victim), 'and bounded the same way')
    })
  })
})

describe('invalid blocks in the simulator', () => {
  it('are refused by every honest node; those that got them straight from the sender ban it, none bans an honest relay; the chain goes on', () => {
    forSeeds(SEEDS.slice(0, 2), (seed) => {
      const sim = makeLedgerSim({ nodes: 5, seed })
      sim.kernel.runFor(5_000)
      const liar = sim.members[0] as string
      const honest = sim.members.slice(1)
      const overlay = sim.cluster.service(liar, OverlayService) as OverlayService
      const chain = sim.ledger(liar).chain()
      const engine = chain.engine as PowEngine
      const send = (block: Block): void => { overlay.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: encodeBlock(block) }) }
      const good = produce(chain, engine, { timeMs: sim.kernel.now() })
      const goodSeal = sealOf(good.header)
      let nonce = 0
      while (meetsTarget(workHash(workHeaderOf(good.header, { ...goodSeal, nonce })), engine.targetOf(goodSeal.bits))) nonce++
      send({ ...good, header: { ...good.header, seal: { ...goodSeal, nonce } } }) // bad work
      send({ ...good, header: seal({ ...good.header, txRoot: 'ab'.repeat(32) }, engine, goodSeal.bits) }) // bad Merkle root
      const forged = { ...transfer(1, 0, 2, 5n), fee: 9n }
      send({ txs: [forged], header: seal({ ...good.header, txRoot: txRootOf([forged]) }, engine, goodSeal.bits) }) // bad signature
      const overspend = transfer(1, 0, 2, 50_000n)
      send({ txs: [overspend], header: seal({ ...good.header, txRoot: txRootOf([overspend]) }, engine, goodSeal.bits) }) // overspend
      send(produce(chain, engine, { timeMs: chain.head().header.timeMs - 10_000 })) // time below the median
      overlay.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: Uint8Array.of(0xff, 0x00, 0x13) }) // not CBOR
      overlay.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: encodeCanonical({ header: good.header, txs: [Uint8Array.of(0xff)] }) }) // a transaction that is not CBOR
      overlay.broadcast(TX_TOPIC, { type: 'ledger.txs', txs: [Uint8Array.of(0xff)] }) // a bare transaction that is not CBOR
      const heights = honest.map((id) => sim.ledger(id).chain().head().header.height)
      sim.kernel.runFor(10_000)
      for (const [index, id] of honest.entries()) {
        const membership = sim.cluster.service(id, MembershipService) as MembershipService
        // A node that banned the sender early stops hearing the rest straight from it.
        const { blocksRejected, txsRejected } = sim.ledger(id).stats()
        assert.ok((blocksRejected >= 7 && txsRejected >= 1) || (blocksRejected >= 1 && membership.isBanned(liar)), `node ${id} refused ${blocksRejected} of 7 blocks and ${txsRejected} of 1 transactions`)
        // Blocks that came straight from the liar count against it; relayed ones cannot be pinned on anyone.
        assert.ok(membership.isBanned(liar) || sim.ledger(id).stats().invalidUnattributed > 0, `node ${id} banned the sender or counted the relayed blocks as unattributed`)
        for (const other of honest) assert.equal(membership.isBanned(other), false, `node ${id} banned no honest node`)
        assert.ok(sim.ledger(id).chain().head().header.height > (heights[index] as number), 'the honest chain goes on')
      }
      const banners = honest.filter((id) => sim.cluster.service(id, MembershipService)?.isBanned(liar) === true)
      assert.ok(banners.length >= 1, 'the sender\'s direct neighbours in the broadcast tree banned it')
      assert.ok(sim.runUntil(() => new Set(honest.map((id) => sim.ledger(id).chain().head().hash)).size === 1, 20_000), 'the honest nodes agree')
    })
  })
})

describe('transaction fetches in the simulator', () => {
  it('answer a fetch with the transactions held, and score down a peer whose fetch is not a list of hashes', () => {
    const sim = makeLedgerSim({ nodes: 3, seed: 3 })
    sim.kernel.runFor(3_000)
    const [asker, holder] = sim.members as [string, string, string]
    const overlay = sim.cluster.service(asker, OverlayService) as OverlayService
    const tx = transfer(0, 0, 1, 5n)
    sim.ledger(holder).submit(tx)
    // A well-formed fetch: the holder's answer carries the transaction it holds, and nothing for the hash it lacks.
    const answers: Array<{ id: number, txs: Uint8Array[] }> = []
    overlay.onRouted('ledger.txs-found', (message) => { answers.push(message as unknown as { id: number, txs: Uint8Array[] }) })
    overlay.send(holder, { type: 'ledger.get-txs', id: 7, hashes: packTxHashes([txHash(tx), 'ab'.repeat(32)], 2) })
    sim.kernel.runFor(1_000)
    assert.deepEqual(answers.map((answer) => [answer.id, answer.txs]), [[7, [encodeTx(tx)]]])
    // 33 bytes of hashes, six times: malformed each time (20 points, decaying), banned past -100.
    const membership = sim.cluster.service(holder, MembershipService) as MembershipService
    const penalties = membership.stats().penalties
    for (let index = 0; index < 6; index++) overlay.send(holder, { type: 'ledger.get-txs', id: index, hashes: new Uint8Array(33) })
    sim.kernel.runFor(1_000)
    assert.ok(membership.stats().penalties - penalties >= 5, 'each malformed fetch is scored')
    assert.ok(membership.isBanned(asker), 'the sender of malformed fetches is banned')
    assert.equal(answers.length, 1, 'a malformed fetch gets no answer')
  })
})

describe('intake of gossiped transactions in the simulator', () => {
  it('checks a backlog in slices, each its own event, so other messages are served between them; drops and counts beyond the queue bound', () => {
    forSeeds(SEEDS.slice(0, 2), (seed) => {
      const slice = 10
      const sim = makeLedgerSim({ nodes: 4, seed, limits: { intakeSliceTxs: slice, intakeQueueTxsMax: 150 } })
      sim.kernel.runFor(3_000)
      const [sender, ...receivers] = sim.members as [string, ...string[]]
      // 160 valid transfers in one gossip message (40 from each funded key, nonces in order). Each
      // receiver queues the first 150 and drops the last 10; the sender itself checks nothing.
      const signed = testKeys.flatMap((_, from) => Array.from({ length: 40 }, (_, nonce) => transfer(from, nonce, (from + 1) % testKeys.length, 1n)))
      const txs = signed.map(encodeTx)
      const pooled = (): number[] => receivers.map((id) => sim.ledger(id).pool().stats().size)
      const before = pooled()
      ;(sim.cluster.service(sender, OverlayService) as OverlayService).broadcast(TX_TOPIC, { type: 'ledger.txs', txs })
      let last = before
      let largestStep = 0
      let backlogSeen = false
      const done = sim.kernel.runUntil(() => {
        const now = pooled()
        for (const [index, size] of now.entries()) largestStep = Math.max(largestStep, size - (last[index] as number))
        last = now
        backlogSeen ||= receivers.some((id) => sim.ledger(id).intakeQueued() > slice)
        return receivers.every((id) => sim.ledger(id).intakeQueued() === 0 && sim.ledger(id).stats().intakeDropped === 10)
      }, 5_000)
      assert.ok(done, 'every receiver checked its queue and dropped the 10 beyond the bound')
      assert.ok(backlogSeen, 'a receiver held more than one slice at once')
      assert.ok(largestStep <= slice, `at most one slice (${slice}) joined a pool per event, saw ${largestStep}`)
      for (const id of receivers) {
        // The 150 queued were all admitted (some may already sit in a block), the 10 dropped were not.
        const known = signed.map((tx) => sim.ledger(id).txStatus(txHash(tx)).status !== 'unknown')
        assert.equal(known.slice(0, 150).filter(Boolean).length, 150, `node ${id} admitted every queued transaction`)
        assert.equal(known.slice(150).filter(Boolean).length, 0, `node ${id} dropped the 10 beyond the bound`)
      }
      assert.equal(sim.ledger(sender).stats().intakeDropped, 0, 'the sender does not queue its own gossip')
    })
  })

  it('verifies a transaction once: bytes verified in a block are not verified again when gossiped', () => {
    forSeeds(SEEDS.slice(0, 2), (seed) => {
      const sim = makeLedgerSim({ nodes: 4, seed })
      sim.kernel.runFor(3_000)
      const [sender, ...receivers] = sim.members as [string, ...string[]]
      const overlay = sim.cluster.service(sender, OverlayService) as OverlayService
      const chain = sim.ledger(sender).chain()
      const tx = transfer(1, 0, 2, 5n)
      // A block whose body is sound (so its signatures are verified) but whose state root is wrong:
      // refused, so the transaction stays unapplied and the pool will take it.
      const block = produce(chain, chain.engine as PowEngine, { txs: [tx], stateRoot: 'ab'.repeat(32), timeMs: sim.kernel.now() })
      const counts = (): Array<{ verified: number, skipped: number }> => receivers.map((id) => ({ verified: sim.ledger(id).stats().signaturesVerified, skipped: sim.ledger(id).stats().signaturesSkipped }))
      const start = counts()
      overlay.broadcast(BLOCK_TOPIC, { type: 'ledger.block', block: encodeBlock(block) })
      sim.kernel.runFor(1_000)
      const afterBlock = counts()
      for (const [index, id] of receivers.entries()) {
        assert.equal(afterBlock[index]?.verified, (start[index]?.verified ?? 0) + 1, `node ${id} verified the block's transaction`)
        assert.equal(sim.ledger(id).txStatus(txHash(tx)).status, 'unknown', `node ${id} refused the block`)
      }
      overlay.broadcast(TX_TOPIC, { type: 'ledger.txs', txs: [encodeTx(tx)] })
      sim.kernel.runFor(1_000)
      const afterGossip = counts()
      for (const [index, id] of receivers.entries()) {
        assert.notEqual(sim.ledger(id).txStatus(txHash(tx)).status, 'unknown', `node ${id} admitted the gossiped transaction`)
        assert.equal(afterGossip[index]?.verified, afterBlock[index]?.verified, `node ${id} did not verify it again`)
        // At least this skip (a block mined meanwhile with the transaction counts one more: taken from the pool).
        assert.ok((afterGossip[index]?.skipped ?? 0) >= (afterBlock[index]?.skipped ?? 0) + 1, `node ${id} counted the skip`)
      }
    })
  })
})
