/**
 * Transport benchmark: 1 KiB messages between two processes on loopback, over libp2p (TCP + Noise
 * + Yamux, Synod's framing and CBOR codec) and over a raw TCP socket measured in the same run as
 * the baseline. Throughput uses a window of unacknowledged messages; latency is sequential
 * round trips. The figure that matters is the ratio libp2p / raw TCP (target >= 0.25).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { keyPairFromSeed, nodeIdFromPublicKey, silentLogger, toHex, type Message } from '../src/core/index.js'
import { Libp2pTransport } from '../src/node/index.js'
import { ACK_EVERY, FRAME_DATA, FRAME_PING, MESSAGE_BYTES, WINDOW_MESSAGES, benchRegistry, readFrames, tcpFrame, type BenchMessage } from './transport-protocol.js'
import { freePort, percentile, type BenchResult } from './util.js'

const PEER_SCRIPT = fileURLToPath(new URL('./transport-peer.js', import.meta.url))
const THROUGHPUT_MESSAGES = 64 * 1_000
const WARMUP_MESSAGES = 64 * 50
const LATENCY_ROUND_TRIPS = 2_000

interface PathFigures { messagesPerSecond: number, p50Us: number, p99Us: number }

/** A sender the measurements drive: send a data or ping frame, and get told of acks and echoes. */
interface Sender {
  sendData (seq: number): void
  sendPing (seq: number): void
  onAck: (seq: number) => void
  onEcho: (seq: number) => void
}

async function measure (sender: Sender, progress: (line: string) => void, label: string): Promise<PathFigures> {
  const throughput = async (count: number): Promise<number> => await new Promise((resolve) => {
    let sent = 0
    let acked = 0
    const started = performance.now()
    const pump = (): void => { while (sent < count && sent - acked < WINDOW_MESSAGES) sender.sendData(sent++) }
    sender.onAck = (seq) => {
      acked = Math.max(acked, seq + 1)
      if (acked >= count) resolve(count / ((performance.now() - started) / 1_000))
      else pump()
    }
    pump()
  })
  await throughput(WARMUP_MESSAGES)
  progress(`${label}: throughput, ${THROUGHPUT_MESSAGES} messages`)
  const messagesPerSecond = await throughput(THROUGHPUT_MESSAGES)
  progress(`${label}: latency, ${LATENCY_ROUND_TRIPS} round trips`)
  const roundTripsUs: number[] = []
  for (let seq = 0; seq < LATENCY_ROUND_TRIPS; seq++) {
    const started = performance.now()
    await new Promise<void>((resolve) => {
      sender.onEcho = (echoed) => { if (echoed === seq) resolve() }
      sender.sendPing(seq)
    })
    roundTripsUs.push((performance.now() - started) * 1_000)
  }
  return { messagesPerSecond, p50Us: percentile(roundTripsUs, 50), p99Us: percentile(roundTripsUs, 99) }
}

async function startPeer (args: string[]): Promise<{ child: ChildProcess, hello: Record<string, unknown> }> {
  const child = spawn(process.execPath, [...process.execArgv, '--import', fileURLToPath(new URL('../src/compat/promise-with-resolvers.js', import.meta.url)), PEER_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.once('line', (line) => { resolve(JSON.parse(line) as Record<string, unknown>) })
    child.once('exit', (code) => { reject(new Error(`benchmark peer exited with ${code}`)) })
  })
  return { child, hello }
}

async function rawTcp (progress: (line: string) => void): Promise<PathFigures> {
  const { child, hello } = await startPeer(['tcp'])
  const socket: Socket = connect(Number(hello.port), '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise((resolve) => socket.once('connect', resolve))
  const data = tcpFrame(FRAME_DATA, 0, MESSAGE_BYTES)
  const ping = tcpFrame(FRAME_PING, 0, MESSAGE_BYTES)
  const sender: Sender = {
    sendData (seq) { data.writeUInt32BE(seq, 5); socket.write(Buffer.from(data)) },
    sendPing (seq) { ping.writeUInt32BE(seq, 5); socket.write(Buffer.from(ping)) },
    onAck: () => {},
    onEcho: () => {}
  }
  readFrames(socket, (kind, seq) => { if (kind === FRAME_PING) sender.onEcho(seq); else sender.onAck(seq) })
  try {
    return await measure(sender, progress, 'raw TCP')
  } finally {
    socket.destroy()
    child.kill()
  }
}

async function libp2p (progress: (line: string) => void): Promise<PathFigures> {
  const identity = async (): Promise<{ seed: Uint8Array, id: string, key: string, port: number }> => {
    const seed = new Uint8Array(randomBytes(32))
    const publicKey = keyPairFromSeed(seed).publicKey
    return { seed, id: nodeIdFromPublicKey(publicKey), key: toHex(publicKey), port: await freePort() }
  }
  const me = await identity()
  const peer = await identity()
  const { child } = await startPeer(['libp2p', peer.id, toHex(peer.seed), String(peer.port), me.id, me.key, String(me.port), peer.key])
  const transport = new Libp2pTransport({
    self: me.id,
    seed: me.seed,
    listen: `/ip4/127.0.0.1/tcp/${me.port}`,
    peers: [{ id: me.id, publicKey: keyPairFromSeed(me.seed).publicKey, address: `/ip4/127.0.0.1/tcp/${me.port}` }, { id: peer.id, publicKey: keyPairFromSeed(peer.seed).publicKey, address: `/ip4/127.0.0.1/tcp/${peer.port}` }],
    registry: benchRegistry(),
    log: silentLogger
  })
  const body = new Uint8Array(MESSAGE_BYTES)
  let linked: () => void = () => {}
  const linkUp = new Promise<void>((resolve) => { linked = resolve })
  const sender: Sender = {
    sendData (seq) { transport.send<BenchMessage>(peer.id, { type: 'bench.data', seq, body }) },
    sendPing (seq) { transport.send<BenchMessage>(peer.id, { type: 'bench.ping', seq, body }) },
    onAck: () => {},
    onEcho: () => {}
  }
  await transport.start({
    onMessage (_from, message: Message) {
      const received = message as BenchMessage
      if (received.type === 'bench.ack') sender.onAck(received.seq)
      else if (received.type === 'bench.ping') sender.onEcho(received.seq)
    },
    onLinkChange (_peer, state) { if (state === 'connected') linked() }
  })
  await linkUp
  try {
    const figures = await measure(sender, progress, 'libp2p')
    if (transport.stats().droppedFrames > 0) throw new Error(`libp2p dropped ${transport.stats().droppedFrames} frames; the window is too large for sendQueueBytesMax`)
    return figures
  } finally {
    await transport.stop()
    child.kill()
  }
}

export async function transportBenchmark (progress: (line: string) => void): Promise<BenchResult> {
  const tcp = await rawTcp(progress)
  const p2p = await libp2p(progress)
  const ratio = p2p.messagesPerSecond / tcp.messagesPerSecond
  const targetRatio = 0.25
  const row = (name: string, figures: PathFigures): string[] => [name, figures.messagesPerSecond.toFixed(0), figures.p50Us.toFixed(0), figures.p99Us.toFixed(0)]
  return {
    name: 'transport',
    title: `${MESSAGE_BYTES} B messages between two processes on loopback (window ${WINDOW_MESSAGES}, ack every ${ACK_EVERY})`,
    header: ['path', 'msgs/s', 'rtt p50 us', 'rtt p99 us'],
    rows: [row('raw TCP (baseline)', tcp), row('libp2p (noise+yamux)', p2p)],
    verdict: `throughput ratio libp2p / raw TCP = ${ratio.toFixed(3)} (target >= ${targetRatio}): ${ratio >= targetRatio ? 'MET' : 'NOT MET'}`,
    data: { tcp, libp2p: p2p, ratio, targetRatio, met: ratio >= targetRatio }
  }
}
