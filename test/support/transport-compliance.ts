/**
 * One compliance suite for every `Transport`: the simulated network and libp2p both run it.
 * A world provides nodes with real identities, records what each receives, and knows how to wait:
 * the real world polls the wall clock, the simulated world advances virtual time.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { z } from 'zod'
import { defineMessage, MessageRegistry, TransportError, type LinkState, type Message, type NodeId, type SynodError, type Transport } from '../../src/core/index.js'

export const testPing = defineMessage('test.ping', { seq: z.number().int().nonnegative(), body: z.instanceof(Uint8Array) })
export type TestPing = { type: 'test.ping', seq: number, body: Uint8Array }
export const complianceRegistry = (): MessageRegistry => new MessageRegistry([testPing])
/** Small on purpose so the oversized case is cheap. */
export const COMPLIANCE_MESSAGE_BYTES_MAX = 4_096

export interface Received { from: NodeId, message: Message }

/** What a world records for one node, from the handlers it passes to `Transport.start`. */
export class NodeRecorder {
  readonly received: Received[] = []
  readonly linkEvents: Array<{ peer: NodeId, state: LinkState }> = []
  readonly misbehaved: Array<{ peer: NodeId, error: SynodError }> = []
  readonly handlers = {
    onMessage: (from: NodeId, message: Message) => { this.received.push({ from, message }) },
    onLinkChange: (peer: NodeId, state: LinkState) => { this.linkEvents.push({ peer, state }) },
    onPeerMisbehaved: (peer: NodeId, error: SynodError) => { this.misbehaved.push({ peer, error }) }
  }
}

export interface TransportWorld {
  /** Creates `count` nodes, all in one network config, with `messageBytesMax` = COMPLIANCE_MESSAGE_BYTES_MAX, and starts them. */
  createNodes (count: number): Promise<void>
  nodeId (index: number): NodeId
  transport (index: number): Transport
  recorder (index: number): NodeRecorder
  /** Stops node `index` as a crash would (its peers see the link drop). */
  stopNode (index: number): Promise<void>
  /** Starts node `index` again with the same identity and a fresh recorder. */
  startNode (index: number): Promise<void>
  /** Starts a node whose key is not in the network config, which tries to reach node `target`. */
  startOutsider (target: number): Promise<{ id: NodeId, transport: Transport, recorder: NodeRecorder }>
  /** Writes raw bytes to `to` on the link from `from`, bypassing encoding. */
  sendRaw (from: number, to: number, bytes: Uint8Array): Promise<void>
  /** Resolves once `condition` holds; rejects with `what` after `timeoutMs` (virtual in the simulator). */
  waitFor (condition: () => boolean, timeoutMs: number, what: string): Promise<void>
  /** The clock the world's transports read (virtual in the simulator): what `Transport.refuse` takes. */
  now (): number
  close (): Promise<void>
}

const ping = (seq: number, bodyBytes = 16): TestPing => ({ type: 'test.ping', seq, body: new Uint8Array(bodyBytes).fill(seq & 0xff) })
const pingsFrom = (recorder: NodeRecorder, from: NodeId): TestPing[] =>
  recorder.received.filter((entry) => entry.from === from && entry.message.type === 'test.ping').map((entry) => entry.message as TestPing)
const connected = (transport: Transport, peer: NodeId): boolean =>
  transport.links().some((link) => link.peer === peer && link.state === 'connected')

/**
 * `refusalMs` is how long the refusal case refuses a peer: short where time is real, longer than
 * `linkIdleTimeoutMs` where it is virtual, so the refused side notices the drop before the refusal
 * ends even when the network eats the reset.
 */
export function transportComplianceSuite (name: string, makeWorld: () => TransportWorld, linkTimeoutMs = 10_000, refusalMs = 1_500): void {
  describe(`transport compliance: ${name}`, () => {
    let world: TransportWorld
    const allConnected = (count: number) => (): boolean => {
      for (let i = 0; i < count; i++) {
        for (let j = 0; j < count; j++) if (i !== j && !connected(world.transport(i), world.nodeId(j))) return false
      }
      return true
    }

    /**
     * Node `refuser` refuses node `refused` and checks the link goes down on both ends, stays down
     * while the refusal lasts and other links do not notice, then comes back by itself.
     */
    const refuseUntilItEnds = async (refuser: number, refused: number): Promise<void> => {
      const [transport, peerTransport, peer, self] = [world.transport(refuser), world.transport(refused), world.nodeId(refused), world.nodeId(refuser)]
      const nodes = [0, 1, 2]
      const eventsBefore = nodes.map((i) => world.recorder(i).linkEvents.length)
      const untilMs = world.now() + refusalMs
      transport.refuse(peer, untilMs)
      assert.deepEqual(transport.refusals(), [{ peer, untilMs }], 'refusals() lists the refusal')
      await world.waitFor(() => !connected(transport, peer) && !connected(peerTransport, self), linkTimeoutMs, 'both ends of the refused link down')
      const checkMs = untilMs - refusalMs / 10
      assert.ok(world.now() < checkMs, 'the refused link went down well before the refusal ends')
      await world.waitFor(() => world.now() >= checkMs, refusalMs, 'most of the refusal to pass')
      const eventsSince = nodes.map((i) => world.recorder(i).linkEvents.slice(eventsBefore[i]))
      const isPair = (i: number, event: { peer: NodeId }): boolean => (i === refuser && event.peer === peer) || (i === refused && event.peer === self)
      assert.ok(!nodes.some((i) => eventsSince[i]?.some((event) => isPair(i, event) && event.state === 'connected')), 'the refused link stays down while the refusal lasts')
      assert.deepEqual(nodes.flatMap((i) => eventsSince[i]?.filter((event) => !isPair(i, event)) ?? []), [], 'other links do not notice')
      assert.deepEqual(transport.refusals(), [{ peer, untilMs }], 'refusals() lists the refusal while it lasts')
      await world.waitFor(allConnected(3), refusalMs + linkTimeoutMs * 2, 'the refused link back once the refusal ends')
      assert.ok(world.now() >= untilMs, 'the refused link came back only once the refusal ended')
      assert.deepEqual(transport.refusals(), [], 'an ended refusal is pruned')
      transport.send(peer, ping(5150))
      await world.waitFor(() => pingsFrom(world.recorder(refused), self).some((p) => p.seq === 5150), linkTimeoutMs, 'delivery after the refusal')
    }

    before(async () => {
      world = makeWorld()
      await world.createNodes(3)
      await world.waitFor(allConnected(3), linkTimeoutMs, 'all three nodes connected')
    })
    after(async () => { await world.close() })

    it('delivers messages between every pair', async () => {
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) if (i !== j) world.transport(i).send(world.nodeId(j), ping(1000 + i))
      await world.waitFor(() => [0, 1, 2].every((j) => [0, 1, 2].every((i) => i === j || pingsFrom(world.recorder(j), world.nodeId(i)).some((p) => p.seq === 1000 + i))), linkTimeoutMs, 'pairwise delivery')
      const before = world.transport(0).stats()
      assert.ok(before.framesSent >= 2 && before.framesReceived >= 2, 'stats count frames')
    })

    it('keeps per-link order', async () => {
      const count = 300
      for (let seq = 0; seq < count; seq++) world.transport(0).send(world.nodeId(1), ping(seq))
      const mine = (): TestPing[] => pingsFrom(world.recorder(1), world.nodeId(0)).filter((p) => p.seq < count)
      await world.waitFor(() => mine().length >= count, linkTimeoutMs, `${count} ordered messages`)
      assert.deepEqual(mine().map((p) => p.seq), Array.from({ length: count }, (_, seq) => seq))
    })

    it('refuses an oversized frame at the sender and at the receiver', async () => {
      assert.throws(() => { world.transport(0).send(world.nodeId(1), ping(7, COMPLIANCE_MESSAGE_BYTES_MAX + 1)) },
        (error: unknown) => error instanceof TransportError && error.code === 'TRANSPORT_FRAME_TOO_LARGE')
      const badBefore = world.transport(1).stats().badFrames
      const huge = complianceRegistry().encode(ping(60_001, COMPLIANCE_MESSAGE_BYTES_MAX + 64))
      await world.sendRaw(0, 1, huge)
      await world.waitFor(() => world.transport(1).stats().badFrames > badBefore, linkTimeoutMs, 'receiver counts the oversized frame')
      assert.ok(!pingsFrom(world.recorder(1), world.nodeId(0)).some((p) => p.seq === 60_001), 'oversized frame not delivered')
      await world.waitFor(allConnected(3), linkTimeoutMs * 2, 'links restored after the oversized frame')
    })

    it('counts garbage from a peer, reports it, drops the link, and keeps working', async () => {
      const badBefore = world.transport(0).stats().badFrames
      const misbehavedBefore = world.recorder(0).misbehaved.length
      const garbage = new Uint8Array([0xff, 0xfe, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03])
      await world.sendRaw(2, 0, garbage)
      await world.waitFor(() => world.transport(0).stats().badFrames > badBefore, linkTimeoutMs, 'garbage counted')
      const report = world.recorder(0).misbehaved.slice(misbehavedBefore)
      assert.ok(report.some((entry) => entry.peer === world.nodeId(2)), 'the sender is reported as misbehaving')
      assert.ok(world.recorder(0).linkEvents.some((event) => event.peer === world.nodeId(2) && event.state === 'disconnected'), 'the link to the sender is dropped')
      await world.waitFor(allConnected(3), linkTimeoutMs * 2, 'link restored after garbage')
      world.transport(2).send(world.nodeId(0), ping(4242))
      await world.waitFor(() => pingsFrom(world.recorder(0), world.nodeId(2)).some((p) => p.seq === 4242), linkTimeoutMs, 'delivery after garbage')
    })

    it('refuses a peer whose key is not in the network config', async () => {
      const refusedBefore = world.transport(0).stats().refusedPeers
      const outsider = await world.startOutsider(0)
      await world.waitFor(() => world.transport(0).stats().refusedPeers > refusedBefore, linkTimeoutMs, 'outsider refused')
      outsider.transport.send(world.nodeId(0), ping(9999))
      // A member's message sent after the outsider's marks time passing on the receiver.
      world.transport(1).send(world.nodeId(0), ping(9998))
      await world.waitFor(() => pingsFrom(world.recorder(0), world.nodeId(1)).some((p) => p.seq === 9998), linkTimeoutMs, 'a member message after the outsider attempt')
      assert.ok(!world.transport(0).links().some((link) => link.peer === outsider.id && link.state === 'connected'), 'no link to the outsider')
      assert.ok(!world.recorder(0).received.some((entry) => entry.from === outsider.id), 'nothing delivered from the outsider')
      await outsider.transport.stop()
    })

    it('refuses a peer until the refusal ends, then links with it again by itself', async () => {
      const refusedHandshakes = (): number => world.transport(0).stats().refusedBannedPeers + world.transport(1).stats().refusedBannedPeers
      const refusedBefore = refusedHandshakes()
      // Both ways round: where only one side of a pair dials (libp2p), one round has the refuser
      // wait out the refusal before dialing, the other has the refused peer dial and be refused.
      await refuseUntilItEnds(0, 1)
      await refuseUntilItEnds(1, 0)
      assert.ok(refusedHandshakes() > refusedBefore, 'the refused peer dialed and its handshakes were refused and counted')
    })

    it('reconnects after a peer restarts', async () => {
      await world.stopNode(1)
      await world.waitFor(() => !connected(world.transport(0), world.nodeId(1)), linkTimeoutMs, 'node 0 sees node 1 gone')
      const droppedBefore = world.transport(0).stats().droppedFrames
      world.transport(0).send(world.nodeId(1), ping(1))
      assert.equal(world.transport(0).stats().droppedFrames, droppedBefore + 1, 'a send with no link is dropped and counted')
      await world.startNode(1)
      await world.waitFor(allConnected(3), linkTimeoutMs * 2, 'node 1 reconnected')
      world.transport(0).send(world.nodeId(1), ping(77))
      await world.waitFor(() => pingsFrom(world.recorder(1), world.nodeId(0)).some((p) => p.seq === 77), linkTimeoutMs, 'delivery after restart')
      assert.ok(world.transport(0).stats().reconnects >= 1, 'reconnects counted')
    })
  })
}
