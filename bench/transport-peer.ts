/**
 * The far end of the transport benchmark, run as its own process. Mode `tcp`: a raw TCP server
 * with 4-byte length-prefixed frames. Mode `libp2p`: a Synod libp2p transport. Either way it acks
 * every `ACK_EVERY` data messages (the sender's flow-control window) and echoes ping messages.
 * It prints one JSON line with its address, then serves until killed.
 */
import '../src/compat/promise-with-resolvers.js'
import { createServer, type Socket } from 'node:net'
import { fromHex, silentLogger } from '../src/core/index.js'
import { Libp2pTransport } from '../src/node/index.js'
import { ACK_EVERY, FRAME_ACK, FRAME_DATA, FRAME_PING, benchRegistry, readFrames, tcpFrame, type BenchMessage } from './transport-protocol.js'

function serveTcp (): void {
  const server = createServer((socket: Socket) => {
    socket.setNoDelay(true)
    let received = 0
    readFrames(socket, (kind, seq, frame) => {
      if (kind === FRAME_PING) { socket.write(frame); return }
      if (kind === FRAME_DATA && ++received % ACK_EVERY === 0) socket.write(tcpFrame(FRAME_ACK, seq, 0))
    })
  })
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }) + '\n')
  })
}

async function serveLibp2p (selfId: string, seedHex: string, port: string, peerId: string, peerKey: string, peerPort: string, selfKey: string): Promise<void> {
  const transport = new Libp2pTransport({
    self: selfId,
    seed: fromHex(seedHex),
    listen: `/ip4/127.0.0.1/tcp/${port}`,
    peers: [
      { id: selfId, publicKey: fromHex(selfKey), address: `/ip4/127.0.0.1/tcp/${port}` },
      { id: peerId, publicKey: fromHex(peerKey), address: `/ip4/127.0.0.1/tcp/${peerPort}` }
    ],
    registry: benchRegistry(),
    log: silentLogger
  })
  let received = 0
  await transport.start({
    onMessage (from, message) {
      const data = message as BenchMessage
      if (data.type === 'bench.ping') transport.send(from, data)
      else if (data.type === 'bench.data' && ++received % ACK_EVERY === 0) transport.send(from, { type: 'bench.ack', seq: data.seq })
    },
    onLinkChange () {}
  })
  process.stdout.write(JSON.stringify({ ready: true }) + '\n')
}

process.once('SIGTERM', () => { process.exit(0) })
const [mode, ...rest] = process.argv.slice(2)
if (mode === 'tcp') serveTcp()
else if (mode === 'libp2p') {
  const [selfId, seedHex, port, peerId, peerKey, peerPort, selfKey] = rest
  if (selfId === undefined || seedHex === undefined || port === undefined || peerId === undefined || peerKey === undefined || peerPort === undefined || selfKey === undefined) throw new Error('usage: transport-peer libp2p SELF SEED PORT PEER PEERKEY PEERPORT SELFKEY')
  await serveLibp2p(selfId, seedHex, port, peerId, peerKey, peerPort, selfKey)
} else throw new Error(`unknown mode ${String(mode)}`)
