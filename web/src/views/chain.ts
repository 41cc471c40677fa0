/** Chain: recent blocks with proposer and finality, validators or producers with stake, votes and slashes. */
import { shortId, type Snapshot } from '../api.js'
import { badge, card, fill, h, table } from '../dom.js'
import type { View } from '../main.js'

export class ChainView implements View {
  private root: HTMLElement | null = null

  mount (container: HTMLElement): void {
    this.root = h('div', { className: 'view', 'data-testid': 'view-chain' }, h('p', { className: 'muted' }, 'waiting for the first snapshot…'))
    container.append(this.root)
  }

  update (snapshot: Snapshot): void {
    if (this.root === null) return
    const chain = snapshot.chain
    if (chain === null) {
      fill(this.root, h('p', { 'data-testid': 'no-ledger' }, 'This network has no ledger (start a new data directory with --consensus pos, dpos or pow).'))
      return
    }
    const finality = chain.engine === 'pow' ? 'no finality: confirmations only' : chain.engine === 'dpos' ? 'last irreversible block' : 'BFT finality'
    const addressNode = new Map(snapshot.nodes.filter((node) => node.address !== null).map((node) => [node.address as string, node.id]))
    const cards = h('div', { className: 'cards' },
      card('Engine', chain.engine.toUpperCase(), finality),
      card('Head', h('span', { 'data-testid': 'chain-head' }, String(chain.headHeight))),
      card(chain.engine === 'dpos' ? 'Irreversible' : 'Finalized', chain.finalizedHeight === null ? 'n/a' : String(chain.finalizedHeight), chain.finalizedHeight === null ? null : `${chain.headHeight - chain.finalizedHeight} block(s) behind the head`),
      card('Transactions / s', chain.txPerSec.toFixed(1), `${chain.mempoolTxs} in the mempool`),
      card('Reorganisations', String(chain.reorgs), `deepest ${chain.deepestReorgBlocks} block(s)`))
    const blocks = table(['height', 'hash', chain.engine === 'pow' ? 'miner' : chain.engine === 'dpos' ? 'producer' : 'proposer', 'txs', 'time', chain.engine === 'dpos' ? 'irreversible' : 'final'], chain.blocks.map((block) => [
      block.height,
      h('code', { title: block.hash }, block.hash.slice(0, 12)),
      block.proposerNode === null ? h('code', { title: block.proposer }, block.proposer.slice(0, 10)) : h('span', { title: block.proposer }, `node ${shortId(block.proposerNode)}`),
      block.txCount,
      new Date(block.timeMs).toLocaleTimeString(),
      block.finalized === null ? '–' : block.finalized ? badge('final', 'ok') : badge('pending', 'warn')
    ]), 'blocks-table')
    const slashes = chain.validators.flatMap((validator) => validator.slashes.map((slash) => ({ validator, slash })))
    const validators = table(['address', 'node', 'status', 'stake', 'power', 'votes', 'missed', 'jailed until', 'slashes'], chain.validators.map((validator) => [
      h('code', { title: validator.address }, validator.address.slice(0, 10)),
      addressNode.has(validator.address) ? shortId(addressNode.get(validator.address) as string) : '–',
      badge(validator.status, validator.status === 'active' ? 'ok' : validator.status === 'jailed' ? 'bad' : 'warn'),
      validator.stake, validator.power, validator.votes, validator.missedInWindow,
      validator.jailedUntil ?? '–',
      validator.slashes.length
    ]), 'validators-table')
    fill(this.root, cards,
      h('h2', {}, 'Recent blocks'), blocks,
      h('h2', {}, chain.engine === 'dpos' ? 'Producers' : 'Validators'), validators,
      h('h2', {}, 'Slashing events'),
      slashes.length === 0
        ? h('p', { className: 'muted' }, 'none so far')
        : table(['validator', 'at height', 'reason', 'amount'], slashes.map(({ validator, slash }) => [validator.address.slice(0, 10), slash.height ?? '–', slash.reason ?? '–', slash.amount])))
  }

  unmount (): void {
    this.root = null
  }
}
