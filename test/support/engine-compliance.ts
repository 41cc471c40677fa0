/**
 * The consensus engine compliance suite: what every engine (PoW now; PoS and DPoS next) must do
 * behind the chain store. An engine's test file calls `engineCompliance` with a harness that
 * makes a fresh chain and produces sealed blocks on its head.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { LedgerError, blockHash, type Block, type ChainStore, type ConsensusEngine } from '../../src/ledger/index.js'

export interface EngineHarness {
  newChain: () => { chain: ChainStore, engine: ConsensusEngine }
  /** A sealed block on the chain's head, with the given time offset from the head (ms). */
  produce: (chain: ChainStore, engine: ConsensusEngine, afterMs?: number) => Block
}

export function engineCompliance (name: string, harness: EngineHarness): void {
  describe(`consensus engine compliance: ${name}`, () => {
    it('accepts the blocks its producer seals, and each adds weight', () => {
      const { chain, engine } = harness.newChain()
      let weight = chain.head().weight
      for (let index = 0; index < 5; index++) {
        const block = harness.produce(chain, engine)
        assert.ok(engine.weightOf(block.header) > 0n)
        assert.equal(engine.weightOf(block.header), engine.weightOf(structuredClone(block.header)), 'weight is a function of the header')
        assert.equal(chain.add(block, block.header.timeMs).status, 'head')
        assert.ok(chain.head().weight > weight)
        weight = chain.head().weight
      }
    })

    it('refuses a sealed block whose content changed after sealing', () => {
      const { chain, engine } = harness.newChain()
      const block = harness.produce(chain, engine)
      const changes: Array<Partial<Block['header']>> = [{ proposer: 'e'.repeat(40) }, { stateRoot: 'e'.repeat(64) }, { timeMs: block.header.timeMs + 1 }]
      for (const change of changes) {
        const header = { ...block.header, ...change }
        assert.throws(() => { engine.verifyHeader(header, chain.head().header, chain, header.timeMs) }, (error) => error instanceof LedgerError, JSON.stringify(change))
      }
      assert.throws(() => chain.add({ ...block, header: { ...block.header, seal: null } }, block.header.timeMs), (error) => error instanceof LedgerError, 'no seal')
      assert.equal(chain.add(block, block.header.timeMs).status, 'head', 'the untouched block still goes in')
    })

    it('refuses a block at the wrong height or on an unknown parent, without changing the head', () => {
      const { chain, engine } = harness.newChain()
      const block = harness.produce(chain, engine)
      assert.throws(() => chain.add({ ...block, header: { ...block.header, height: 5 } }, block.header.timeMs), (error) => error instanceof LedgerError)
      assert.equal(chain.add({ ...block, header: { ...block.header, parent: 'f'.repeat(64) } }, block.header.timeMs).status, 'orphan')
      assert.equal(chain.head().hash, chain.genesisHash)
      assert.equal(blockHash(chain.head().header), chain.genesisHash)
    })

    it('pays a reward that depends on the height only, none at genesis', () => {
      const { engine } = harness.newChain()
      assert.equal(engine.rewardAt(0), 0n)
      assert.equal(engine.rewardAt(7), harness.newChain().engine.rewardAt(7))
    })
  })
}
