/**
 * The "hello" service: the smallest protocol that proves the whole path in both worlds. Each node
 * greets every peer it has a link with (its overlay neighbours) on an interval, answers greetings,
 * and keeps a view of the peers it currently reaches (heard from within `peerTimeoutMs`). It counts its own boots on disk, so a
 * restart shows that synced data survived. The overlay and membership services absorb it later.
 */
import { z } from 'zod'
import { defineMessage, type Env, type LinkState, type Message, type MessageOf, type NodeId, type Service } from '../core/index.js'

export const helloGreet = defineMessage('hello.greet', { boot: z.number().int().nonnegative(), sentMs: z.number() })
export const helloAck = defineMessage('hello.ack', { boot: z.number().int().nonnegative(), echoSentMs: z.number() })
type HelloGreet = MessageOf<typeof helloGreet>
type HelloAck = MessageOf<typeof helloAck>

export interface HelloLimits {
  greetIntervalMs: number
  /** A peer not heard from for this long is no longer reached. */
  peerTimeoutMs: number
}

export const defaultHelloLimits: Readonly<HelloLimits> = Object.freeze({ greetIntervalMs: 500, peerTimeoutMs: 2_000 })

export interface PeerView {
  peer: NodeId
  reachable: boolean
  lastHeardMs: number | null
  rttMs: number | null
  peerBoot: number | null
  greetsReceived: number
}

export interface HelloStatus {
  boots: number
  bootDurable: boolean
  greetsSent: number
  reachable: NodeId[]
  peers: PeerView[]
}

const BOOTS_KEY = 'hello/boots'

interface PeerRecord { lastHeardMs: number, rttMs: number | null, peerBoot: number, greetsReceived: number }

export class HelloService implements Service {
  readonly name = 'hello'
  readonly messages = [helloGreet, helloAck]
  private env: Env | null = null
  private readonly limits: HelloLimits
  private readonly heard = new Map<NodeId, PeerRecord>()
  private boots = 0
  private bootDurable = false
  private greetsSent = 0
  private timer: number | null = null

  constructor (limits: Partial<HelloLimits> = {}) {
    this.limits = { ...defaultHelloLimits, ...limits }
  }

  start (env: Env): void {
    this.env = env
    const stored = env.disk.get(BOOTS_KEY)
    this.boots = (stored === undefined ? 0 : new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(0)) + 1
    const record = new Uint8Array(4)
    new DataView(record.buffer).setUint32(0, this.boots)
    env.disk.put(BOOTS_KEY, record)
    env.disk.sync(() => {
      this.bootDurable = true
      env.log.info({ boots: this.boots }, 'boot count durable')
    })
    this.scheduleGreeting()
  }

  stop (): void {
    if (this.env !== null && this.timer !== null) this.env.clearTimer(this.timer)
    this.timer = null
  }

  onMessage (from: NodeId, message: Message): void {
    const env = this.env
    if (env === null) return
    if (message.type === helloGreet.type) {
      const greet = message as HelloGreet
      this.record(from, greet.boot, null)
      env.send(from, { type: 'hello.ack', boot: this.boots, echoSentMs: greet.sentMs } satisfies HelloAck)
    } else if (message.type === helloAck.type) {
      const ack = message as HelloAck
      this.record(from, ack.boot, env.now() - ack.echoSentMs)
    }
  }

  onLinkChange (peer: NodeId, state: LinkState): void {
    if (state === 'connected') this.greet(peer)
  }

  /** The peers heard from within `peerTimeoutMs`, sorted. */
  reachable (): NodeId[] {
    const env = this.env
    if (env === null) return []
    const now = env.now()
    return [...this.heard.entries()]
      .filter(([, record]) => now - record.lastHeardMs <= this.limits.peerTimeoutMs)
      .map(([peer]) => peer)
      .sort()
  }

  status (): HelloStatus {
    const env = this.env
    const now = env?.now() ?? 0
    const peers = (env?.links() ?? []).map((link) => link.peer).sort().map((peer): PeerView => {
      const record = this.heard.get(peer)
      return {
        peer,
        reachable: record !== undefined && now - record.lastHeardMs <= this.limits.peerTimeoutMs,
        lastHeardMs: record?.lastHeardMs ?? null,
        rttMs: record?.rttMs ?? null,
        peerBoot: record?.peerBoot ?? null,
        greetsReceived: record?.greetsReceived ?? 0
      }
    })
    return { boots: this.boots, bootDurable: this.bootDurable, greetsSent: this.greetsSent, reachable: this.reachable(), peers }
  }

  private record (from: NodeId, peerBoot: number, rttMs: number | null): void {
    const env = this.env
    if (env === null) return
    const previous = this.heard.get(from)
    this.heard.set(from, {
      lastHeardMs: env.now(),
      rttMs: rttMs ?? previous?.rttMs ?? null,
      peerBoot,
      greetsReceived: (previous?.greetsReceived ?? 0) + (rttMs === null ? 1 : 0)
    })
  }

  private scheduleGreeting (): void {
    const env = this.env
    if (env === null) return
    this.timer = env.setTimer(this.limits.greetIntervalMs, () => {
      for (const link of env.links()) if (link.state === 'connected') this.greet(link.peer)
      this.scheduleGreeting()
    })
  }

  private greet (peer: NodeId): void {
    const env = this.env
    if (env === null) return
    this.greetsSent++
    env.send(peer, { type: 'hello.greet', boot: this.boots, sentMs: env.now() } satisfies HelloGreet)
  }
}
