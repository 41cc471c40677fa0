/** Wire messages of the overlay: link probes, routed envelopes, and the broadcast (Plumtree) protocol. */
import { z } from 'zod'
import { bytesField, defineMessage, nodeIdField, type MessageOf } from '../core/index.js'

/** The most hops a routed message may ever be given; configs choose a smaller `hopLimit`. */
export const HOP_LIMIT_MAX = 255
/** Message ids a single IHAVE, GRAFT or DIGEST may carry. */
export const IDS_PER_MESSAGE_MAX = 1_024
/** Links one link-state announcement may list. */
export const LINKS_PER_ANNOUNCEMENT_MAX = 4_096

const nodeId = nodeIdField()
const messageId = z.string().min(1).max(80)
const bytes = bytesField()

export const netPing = defineMessage('net.ping', { sentMs: z.number() })
export const netPong = defineMessage('net.pong', { echoMs: z.number() })
export const netRouted = defineMessage('net.routed', {
  id: messageId,
  src: nodeId,
  dst: nodeId,
  /** Every node the message has left so far, source first: the hop count and the loop guard. */
  path: z.array(nodeId).min(1).max(HOP_LIMIT_MAX),
  hopsLeft: z.number().int().min(0).max(HOP_LIMIT_MAX),
  payload: bytes
})
export const netGossip = defineMessage('net.gossip', {
  id: messageId,
  origin: nodeId,
  topic: z.string().min(1).max(64),
  hops: z.number().int().min(0).max(65_535),
  payload: bytes,
  /** Sent to fill a gap found by digest exchange, not along the tree: never prunes a link. */
  repair: z.boolean()
})
export const netIHave = defineMessage('net.ihave', { ids: z.array(messageId).min(1).max(IDS_PER_MESSAGE_MAX) })
export const netGraft = defineMessage('net.graft', { ids: z.array(messageId).max(IDS_PER_MESSAGE_MAX) })
export const netPrune = defineMessage('net.prune', {})
export const netDigest = defineMessage('net.digest', {
  ids: z.array(messageId).max(IDS_PER_MESSAGE_MAX),
  /** False when the sender had more recent ids than fit: the receiver then only pulls. */
  complete: z.boolean()
})
/** Inner messages, carried inside routed envelopes or broadcasts. */
export const netEcho = defineMessage('net.echo', {
  nonce: z.number().int().nonnegative(),
  isReply: z.boolean(),
  requestPath: z.array(nodeId).max(HOP_LIMIT_MAX)
})
export const netLinkState = defineMessage('net.link-state', {
  origin: nodeId,
  seq: z.number().int().nonnegative(),
  links: z.array(z.strictObject({ peer: nodeId, rttMs: z.number().nonnegative() })).max(LINKS_PER_ANNOUNCEMENT_MAX)
})

export type NetPing = MessageOf<typeof netPing>
export type NetPong = MessageOf<typeof netPong>
export type NetRouted = MessageOf<typeof netRouted>
export type NetGossip = MessageOf<typeof netGossip>
export type NetIHave = MessageOf<typeof netIHave>
export type NetGraft = MessageOf<typeof netGraft>
export type NetDigest = MessageOf<typeof netDigest>
export type NetEcho = MessageOf<typeof netEcho>
export type NetLinkState = MessageOf<typeof netLinkState>

export const overlayMessages = [netPing, netPong, netRouted, netGossip, netIHave, netGraft, netPrune, netDigest, netEcho, netLinkState]
