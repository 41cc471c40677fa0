/**
 * Wire messages of the failure detector (SWIM with Lifeguard). Every one travels through the
 * overlay's routed `send`, so probes reach members that are not direct neighbours, and every one
 * carries piggybacked membership updates.
 */
import { z } from 'zod'
import { defineMessage, nodeIdField, type MessageOf } from '../core/index.js'

/** Updates one message may carry. */
export const UPDATES_PER_MESSAGE_MAX = 64

export const memberStates = ['alive', 'suspect', 'dead', 'left'] as const
export type MemberState = typeof memberStates[number]

const nodeId = nodeIdField()
const sequence = z.number().int().nonnegative()
/** Every message carries its sender's incarnation: hearing from a member is news of it being alive. */
const incarnation = z.number().int().nonnegative()

/**
 * A claim about one member. `from` is the node that made the claim: for `suspect`, distinct
 * sources are the confirmations that shorten the suspicion (Lifeguard); `left` is only valid from
 * the member itself.
 */
export const memberUpdateSchema = z.strictObject({
  member: nodeId,
  state: z.enum(memberStates),
  incarnation: z.number().int().nonnegative(),
  from: nodeId
})
export type MemberUpdate = z.infer<typeof memberUpdateSchema>

const updates = z.array(memberUpdateSchema).max(UPDATES_PER_MESSAGE_MAX)

/** A probe. `target` names the member it is meant for, so a misrouted probe is not acknowledged. */
export const memberPing = defineMessage('member.ping', { seq: sequence, target: nodeId, incarnation, updates })
/** Answer to a ping, or a helper relaying the target's answer to an indirect probe. */
export const memberAck = defineMessage('member.ack', { seq: sequence, target: nodeId, incarnation, updates })
/** Asks a helper to probe `target` and relay its ack (SWIM's indirect probe). */
export const memberPingReq = defineMessage('member.ping-req', { seq: sequence, target: nodeId, incarnation, updates })
/** A helper could not reach the target in time: proof the requester's own links still work (Lifeguard). */
export const memberNack = defineMessage('member.nack', { seq: sequence, target: nodeId, incarnation })
/** Updates only, sent to a few random members while updates are fresh. */
export const memberGossip = defineMessage('member.gossip', { incarnation, updates: updates.min(1) })

/** Members one state sync may carry: every member of the largest network config. */
export const SYNC_MEMBERS_MAX = 1_024
/**
 * Anti-entropy (memberlist's push-pull): this node's whole view, sent to one random member now
 * and then; the receiver merges it and, if `reply`, answers with its own. Heals what gossip with
 * bounded retransmission missed.
 */
export const memberSync = defineMessage('member.sync', { incarnation, reply: z.boolean(), updates: z.array(memberUpdateSchema).max(SYNC_MEMBERS_MAX) })

export type MemberPing = MessageOf<typeof memberPing>
export type MemberAck = MessageOf<typeof memberAck>
export type MemberPingReq = MessageOf<typeof memberPingReq>
export type MemberNack = MessageOf<typeof memberNack>
export type MemberGossip = MessageOf<typeof memberGossip>
export type MemberSync = MessageOf<typeof memberSync>
export type MembershipMessage = MemberPing | MemberAck | MemberPingReq | MemberNack | MemberGossip | MemberSync

export const membershipMessages = [memberPing, memberAck, memberPingReq, memberNack, memberGossip, memberSync]
