/**
 * The chain-safety checker: over a history of finality events from many nodes, no two honest
 * nodes ever finalize different blocks at the same height, and no node goes back on what it
 * finalized (a different block at a height it finalized, or a finalized height that decreases).
 * Byzantine nodes' events are left out when the caller names the honest nodes.
 */
import type { NodeId } from '../core/index.js'

export interface FinalizedEvent {
  node: NodeId
  height: number
  /** The block hash the node holds final at that height. */
  hash: string
  /** When the node finalized it (for reports). */
  atMs?: number
}

export type SafetyViolation =
  | { kind: 'conflict', height: number, blocks: Array<{ hash: string, nodes: NodeId[] }> }
  | { kind: 'reverted', node: NodeId, height: number, first: string, later: string }
  | { kind: 'regressed', node: NodeId, from: number, to: number }

export interface SafetyReport {
  ok: boolean
  events: number
  heights: number
  /** The highest height every checked node that reported anything agrees on. */
  commonFinalizedHeight: number | null
  violations: SafetyViolation[]
}

export function checkChainSafety (events: readonly FinalizedEvent[], honest?: ReadonlySet<NodeId>): SafetyReport {
  const counted = honest === undefined ? events : events.filter((event) => honest.has(event.node))
  const violations: SafetyViolation[] = []
  const byHeight = new Map<number, Map<string, Set<NodeId>>>()
  const perNode = new Map<NodeId, { highest: number, at: Map<number, string> }>()
  for (const event of counted) {
    let node = perNode.get(event.node)
    if (node === undefined) perNode.set(event.node, node = { highest: -1, at: new Map() })
    const earlier = node.at.get(event.height)
    if (earlier !== undefined && earlier !== event.hash) violations.push({ kind: 'reverted', node: event.node, height: event.height, first: earlier, later: event.hash })
    if (event.height < node.highest) violations.push({ kind: 'regressed', node: event.node, from: node.highest, to: event.height })
    node.highest = Math.max(node.highest, event.height)
    if (earlier === undefined) node.at.set(event.height, event.hash)
    let hashes = byHeight.get(event.height)
    if (hashes === undefined) byHeight.set(event.height, hashes = new Map())
    let nodes = hashes.get(event.hash)
    if (nodes === undefined) hashes.set(event.hash, nodes = new Set())
    nodes.add(event.node)
  }
  for (const [height, hashes] of [...byHeight].sort(([a], [b]) => a - b)) {
    if (hashes.size > 1) violations.push({ kind: 'conflict', height, blocks: [...hashes].map(([hash, nodes]) => ({ hash, nodes: [...nodes].sort() })) })
  }
  const highest = [...perNode.values()].map((node) => node.highest)
  return {
    ok: violations.length === 0,
    events: counted.length,
    heights: byHeight.size,
    commonFinalizedHeight: highest.length === 0 ? null : Math.min(...highest),
    violations
  }
}
