/**
 * Named limits, units last in every name. Services take these as init options and may
 * override them from config; nothing in Synod uses an unnamed bound.
 */
export interface TransportLimits {
  /** Largest encoded message (one frame payload) a node sends or accepts. */
  messageBytesMax: number
  /** Bytes a link may hold queued for a slow peer before new frames are dropped. */
  sendQueueBytesMax: number
  /** First reconnection delay after a link drops; doubles per failed attempt. */
  reconnectDelayMsMin: number
  /** Cap on the reconnection delay. */
  reconnectDelayMsMax: number
  /** A link with no frame received for this long is considered dead. */
  linkIdleTimeoutMs: number
  /** Interval of keepalive frames on an otherwise quiet link. */
  keepaliveIntervalMs: number
}

export const defaultTransportLimits: Readonly<TransportLimits> = Object.freeze({
  messageBytesMax: 1_048_576,
  sendQueueBytesMax: 16_777_216,
  reconnectDelayMsMin: 100,
  reconnectDelayMsMax: 2_000,
  linkIdleTimeoutMs: 6_000,
  keepaliveIntervalMs: 2_000
})
