/** Short, stable renderings of ids for trace lines and reports. */
import type { NodeId } from '../core/index.js'

/** Hex characters of a node id shown in trace lines: enough to tell a cluster's nodes apart. */
const SHORT_ID_CHARS = 8

export function shortId (node: NodeId): string {
  return node.slice(0, SHORT_ID_CHARS)
}
