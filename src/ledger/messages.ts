/** Wire messages of the ledger: transactions (batched) and blocks by broadcast, blocks by request for sync. */
import { z } from 'zod'
import { bytesField, defineMessage, type MessageOf } from '../core/index.js'

/** Block hashes one locator may carry (exponentially spaced back from the head). */
export const LOCATOR_HASHES_MAX = 64
/** Blocks one sync reply may carry. */
export const SYNC_BLOCKS_PER_REPLY_MAX = 256

const hashHex = z.string().regex(/^[0-9a-f]{64}$/)

/** Transactions one gossip message carries at most. */
export const TX_BATCH_TXS_MAX = 512

/** Transactions a node's clients submitted, gossiped in batches. */
export const ledgerTxs = defineMessage('ledger.txs', { txs: z.array(bytesField()).min(1).max(TX_BATCH_TXS_MAX) })
export const ledgerBlock = defineMessage('ledger.block', { block: bytesField() })
export const ledgerGetBlocks = defineMessage('ledger.get-blocks', {
  /** Hashes of the asker's main chain, newest first; the answer starts after the first one the peer shares. */
  locator: z.array(hashHex).min(1).max(LOCATOR_HASHES_MAX),
  countMax: z.number().int().min(1).max(SYNC_BLOCKS_PER_REPLY_MAX)
})
export const ledgerBlocks = defineMessage('ledger.blocks', {
  blocks: z.array(bytesField()).max(SYNC_BLOCKS_PER_REPLY_MAX),
  /** Engines with finality: each block's proof (PoS: its commit certificate), in the same order. */
  proofs: z.array(bytesField()).max(SYNC_BLOCKS_PER_REPLY_MAX).optional(),
  /** The replier's head height, so the asker knows whether to ask again. */
  headHeight: z.number().int().min(0)
})

/** Transactions one `ledger.get-txs` asks for: a block's worth at most. */
export const TX_FETCH_TXS_MAX = 4_096

/** The transactions of a compact block this node lacks, asked of the peer that sent it, by hash (32 bytes each, concatenated). */
export const ledgerGetTxs = defineMessage('ledger.get-txs', {
  id: z.number().int().min(0),
  hashes: bytesField()
})
/** The answer: the canonical bytes of the asked transactions the peer holds (those it lacks are left out). */
export const ledgerTxsFound = defineMessage('ledger.txs-found', {
  id: z.number().int().min(0),
  txs: z.array(bytesField()).max(TX_FETCH_TXS_MAX)
})

export type LedgerTxsMessage = MessageOf<typeof ledgerTxs>
export type LedgerGetTxs = MessageOf<typeof ledgerGetTxs>
export type LedgerTxsFound = MessageOf<typeof ledgerTxsFound>
export type LedgerBlockMessage = MessageOf<typeof ledgerBlock>
export type LedgerGetBlocks = MessageOf<typeof ledgerGetBlocks>
export type LedgerBlocks = MessageOf<typeof ledgerBlocks>

export const ledgerMessages = [ledgerTxs, ledgerBlock, ledgerGetBlocks, ledgerBlocks, ledgerGetTxs, ledgerTxsFound]
