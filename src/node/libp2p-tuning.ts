/**
 * Three costs of the libp2p stack below the transport, taken out. All three were found in CPU
 * profiles of the store bench (`docs/node.md`, "Transport"); none changes the wire format.
 *
 * 1. **One write per send.** libp2p's TCP connection gives each buffer of what it sends its own
 *    `socket.write`. Under Noise a message reaches it as a list (Noise's length prefix, then the
 *    ciphertext and tag, in one buffer or more), so every frame cost two write syscalls or more
 *    and, with `TCP_NODELAY`, as many segments, each a `data` event at the far end. The raw
 *    connection's send is wrapped in `socket.cork()` and `uncork()`, so Node hands the list to the
 *    kernel as one `writev`.
 * 2. **No stack trace per received chunk.** Noise's length decoder signals "not enough bytes for a
 *    length prefix" by constructing a `RangeError`, which the decoder catches; it does so at the
 *    end of every chunk received, so each `data` event paid for a stack trace. The encrypted
 *    stream's decoder gets a length decoder that throws one `RangeError` made once instead.
 * 3. **Window updates once 128 KiB is owed, not after every frame.** js-yamux answers every data
 *    frame it receives with a window update: a second frame, encrypted, written and decrypted, for
 *    each one carrying data. A receiving stream here sends its update once the window it has not
 *    yet given back reaches `WINDOW_UPDATE_BYTES_MIN` (128 KiB) or half its window, whichever is
 *    less, as hashicorp/yamux and go-yamux wait for half theirs. js-yamux starts a sender from its
 *    own configured window, not the receiver's; with 128 KiB any sender starting from at least
 *    yamux's standard 256 KiB is given bytes back before it runs out, so nothing stalls even when
 *    two nodes are configured with different windows.
 *
 * All three reach into the shapes of `@libp2p/tcp`, `@chainsafe/libp2p-noise` and
 * `@chainsafe/libp2p-yamux` (pinned in `package-lock.json`): the raw connection's `socket` and
 * `sendData`, the encrypted stream's `decoder.lengthDecoder`, the Yamux stream's window fields and
 * `sendWindowUpdate`. When a shape is not found the connection works as before, untuned, and
 * `onUntuned` says which part was missing (the transport logs the first of each part and counts
 * every one), so an upgrade that moves them costs speed, never correctness.
 * `test/cluster/transport-libp2p.test.ts` checks that frames sent in separate turns take one write
 * each, that 16 MiB (four windows) goes through one link, and that no connection or stream was left
 * untuned.
 */
import { Socket } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { ConnectionEncrypter, MessageStream, SecuredConnection } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

type NoiseFactory = ReturnType<typeof noise>
type NoiseComponents = Parameters<NoiseFactory>[0]

/** The part of a connection a tuning could not find. */
export type UntunedPart = 'socket' | 'length-decoder' | 'window-update'

/** Thrown for "fewer than two bytes buffered"; made once, so no stack trace is taken per chunk. */
const SHORT_LENGTH_PREFIX = new RangeError('fewer than 2 bytes for a Noise length prefix')

/** Noise's 2-byte big-endian frame length, read from what the decoder has buffered. */
function noiseLength (data: Uint8Array | Uint8ArrayList): number {
  if (data.length < 2) throw SHORT_LENGTH_PREFIX
  if (data instanceof Uint8Array) return ((data[0] as number) << 8) | (data[1] as number)
  return data.getUint16(0)
}

interface CorkableConnection { socket: Socket, sendData: (data: Uint8ArrayList) => unknown }

function isCorkable (connection: object): connection is CorkableConnection {
  const candidate = connection as { socket?: unknown, sendData?: unknown }
  return candidate.socket instanceof Socket && typeof candidate.sendData === 'function'
}

/** Makes each send of `connection` one write to its socket; false when it has no socket to cork. */
export function corkSends (connection: MessageStream): boolean {
  if (!isCorkable(connection)) return false
  const { socket } = connection
  const send = connection.sendData.bind(connection)
  connection.sendData = (data) => {
    socket.cork()
    try {
      return send(data)
    } finally {
      socket.uncork()
    }
  }
  return true
}

interface DecodingStream { decoder: { lengthDecoder: (data: Uint8Array | Uint8ArrayList) => number } }

function hasLengthDecoder (connection: object): connection is DecodingStream {
  const decoder = (connection as { decoder?: { lengthDecoder?: unknown } }).decoder
  return typeof decoder === 'object' && decoder !== null && typeof decoder.lengthDecoder === 'function'
}

/** Gives the encrypted stream's decoder a length decoder that takes no stack trace; false when it has none. */
export function quietLengthDecoder (connection: MessageStream): boolean {
  if (!hasLengthDecoder(connection)) return false
  connection.decoder.lengthDecoder = noiseLength
  return true
}

/** `noise()` with both tunings applied to every connection it secures. */
export function tunedNoise (onUntuned: (part: UntunedPart) => void = () => {}): (components: NoiseComponents) => ConnectionEncrypter {
  const factory = noise()
  return (components) => {
    const encrypter = factory(components)
    const tune = (secured: SecuredConnection): SecuredConnection => {
      if (!quietLengthDecoder(secured.connection)) onUntuned('length-decoder')
      return secured
    }
    const cork = (raw: MessageStream): void => {
      if (!corkSends(raw)) onUntuned('socket')
    }
    // Noise's own properties (protocol, service capabilities, tag) stay, through the prototype.
    const tuned: ConnectionEncrypter = Object.create(encrypter)
    tuned.secureOutbound = async (connection, options) => {
      cork(connection)
      return tune(await encrypter.secureOutbound(connection, options))
    }
    tuned.secureInbound = async (connection, options) => {
      cork(connection)
      return tune(await encrypter.secureInbound(connection, options))
    }
    return tuned
  }
}

/** A receiving stream gives window back once it owes this much (or half its window, if less). */
export const WINDOW_UPDATE_BYTES_MIN = 128 * 1_024

/** The window fields of js-yamux's stream, private in its types. */
interface YamuxWindow { state: StreamState, recvWindow: number, recvWindowCapacity: number, sendWindowUpdate: () => void }

function hasYamuxWindow (stream: object): stream is YamuxWindow {
  if (!(stream instanceof YamuxStream)) return false
  const candidate = stream as unknown as Partial<Record<keyof YamuxWindow, unknown>>
  return typeof candidate.recvWindow === 'number' && typeof candidate.recvWindowCapacity === 'number' && typeof candidate.sendWindowUpdate === 'function'
}

/**
 * Makes a receiving Yamux stream send its window update only once it owes
 * `WINDOW_UPDATE_BYTES_MIN` or half its window, whichever is less; a stream not established (whose
 * update carries a flag), paused or finished goes through js-yamux's own rule. False when `stream`
 * is not a js-yamux stream of the expected shape.
 */
export function lazyWindowUpdates (stream: object): boolean {
  if (!hasYamuxWindow(stream)) return false
  const update = stream.sendWindowUpdate.bind(stream)
  stream.sendWindowUpdate = () => {
    const owedBytes = stream.recvWindow - stream.recvWindowCapacity
    if (stream.state === StreamState.Established && owedBytes < Math.min(WINDOW_UPDATE_BYTES_MIN, stream.recvWindow / 2)) return
    update()
  }
  return true
}
