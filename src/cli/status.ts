/** `synod status`: one node's view of itself and its peers, from its HTTP API. */
import { errorMessage } from '../core/index.js'
import { CliError } from './errors.js'

interface PeerStatus { peer: string, state: string, sinceMs: number, framesSent: number, framesReceived: number, api: string | null }
interface NodeStatus { nodeId: string, version: string, networkId: string, uptimeMs: number, peers: PeerStatus[] }

export async function fetchStatus (api: string): Promise<NodeStatus> {
  let response: Response
  try {
    response = await fetch(new URL('/v1/status', api), { signal: AbortSignal.timeout(5_000) })
  } catch (error) {
    throw new CliError('CLI_NODE_UNREACHABLE', `cannot reach ${api}: ${errorMessage(error)}`, { api })
  }
  if (!response.ok) throw new CliError('CLI_NODE_UNREACHABLE', `${api} answered ${response.status}`, { api, status: response.status })
  return await response.json() as NodeStatus
}

export function formatStatus (status: NodeStatus, nowMs: number): string {
  const lines = [
    `node     ${status.nodeId}`,
    `network  ${status.networkId}`,
    `version  ${status.version}`,
    `uptime   ${(status.uptimeMs / 1_000).toFixed(1)} s`,
    'peers:'
  ]
  for (const peer of status.peers) {
    const since = ((nowMs - peer.sinceMs) / 1_000).toFixed(1)
    lines.push(`  ${peer.peer}  ${peer.state.padEnd(12)} for ${since} s  sent ${peer.framesSent}  received ${peer.framesReceived}  ${peer.api ?? ''}`)
  }
  return lines.join('\n')
}
