/** Shared wire details of the transport benchmark: message schemas and raw TCP framing. */
import type { Socket } from 'node:net'
import { z } from 'zod'
import { MessageRegistry, defineMessage } from '../src/core/index.js'

export const MESSAGE_BYTES = 1_024
/** The receiver acks every this many data messages. */
export const ACK_EVERY = 64
/** Data messages the sender may have unacknowledged: the flow-control window. */
export const WINDOW_MESSAGES = 1_024

export const FRAME_DATA = 1
export const FRAME_PING = 2
export const FRAME_ACK = 3

const body = { seq: z.number().int().nonnegative(), body: z.instanceof(Uint8Array) }
export const benchData = defineMessage('bench.data', body)
export const benchPing = defineMessage('bench.ping', body)
export const benchAck = defineMessage('bench.ack', { seq: z.number().int().nonnegative() })
export type BenchMessage =
  | { type: 'bench.data', seq: number, body: Uint8Array }
  | { type: 'bench.ping', seq: number, body: Uint8Array }
  | { type: 'bench.ack', seq: number }

export const benchRegistry = (): MessageRegistry => new MessageRegistry([benchData, benchPing, benchAck])

/** A raw frame: u32 length, u8 kind, u32 seq, then `bodyBytes` of payload. */
export function tcpFrame (kind: number, seq: number, bodyBytes: number): Buffer {
  const frame = Buffer.alloc(4 + 5 + bodyBytes)
  frame.writeUInt32BE(5 + bodyBytes, 0)
  frame.writeUInt8(kind, 4)
  frame.writeUInt32BE(seq, 5)
  return frame
}

/** Calls `onFrame(kind, seq, wholeFrame)` for each complete frame on the socket. */
export function readFrames (socket: Socket, onFrame: (kind: number, seq: number, frame: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let offset = 0
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32BE(offset)
      if (pending.length - offset < 4 + length) break
      const frame = pending.subarray(offset, offset + 4 + length)
      onFrame(frame.readUInt8(4), frame.readUInt32BE(5), frame)
      offset += 4 + length
    }
    pending = pending.subarray(offset)
  })
}
