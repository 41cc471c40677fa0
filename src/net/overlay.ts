/**
 * The overlay service: links to the topology's neighbours only, link-state routing so `send`
 * reaches any member, and Plumtree broadcast so `broadcast` reaches every live, reachable member
 * exactly once. Other services send through it; see docs/net.md.
 */
import type { Env, LinkState, Message, NodeId, Service, TimerId } from '../core/index.js'
import { CoreError, errorMessage } from '../core/index.js'
import { NetError } from './errors.js'
import {
  overlayMessages, type NetDigest, type NetEcho, type NetGossip, type NetGraft, type NetIHave, type NetLinkState,
  type NetPing, type NetPong, type NetRouted
} from './overlay-messages.js'
import { PlumtreeBroadcast, defaultBroadcastLimits, type BroadcastLimits, type BroadcastMode, type BroadcastStats } from './plumtree.js'
import { RoutingTable, type Route, type RouteMetric } from './routing.js'

export interface OverlayLimits extends BroadcastLimits {
  /** Hops a routed message may take before it is dropped. */
  hopLimit: number
  /** Interval of RTT probes on each live link. */
  pingIntervalMs: number
  /** A node re-announces its links at this interval even when nothing changed. */
  linkStateRefreshMs: number
  /** Changes to this node's links are announced after this delay, so a burst (a start) makes one announcement. */
  linkStateDelayMs: number
  /** Echo requests waiting for a reply. */
  echoesPendingMax: number
}

export const defaultOverlayLimits: Readonly<OverlayLimits> = Object.freeze({
  ...defaultBroadcastLimits,
  hopLimit: 32,
  pingIntervalMs: 1_000,
  linkStateRefreshMs: 120_000,
  linkStateDelayMs: 100,
  echoesPendingMax: 1_024
})

export interface OverlayInit {
  /** This node's neighbours in the configured topology: the only overlay links. */
  neighbours: readonly NodeId[]
  /** Weight routes by measured round-trip time instead of hop count. */
  routeMetric?: RouteMetric
  /** Plumtree (the default) or plain flooding, the baseline it is measured against. */
  broadcastMode?: BroadcastMode
  /**
   * Link-state routing (the default). Without it the overlay only broadcasts, and `send` reaches
   * direct neighbours only: for broadcast-only networks, and for measuring broadcast alone, since
   * announcing link state costs one broadcast per node.
   */
  linkStateRouting?: boolean
  limits?: Partial<OverlayLimits>
}

export type DropCause = 'unreachable' | 'hop_limit' | 'loop' | 'bad_path' | 'bad_payload' | 'no_handler'

export interface OverlayStats {
  routedSent: number
  routedForwarded: number
  routedDelivered: number
  /** Delivered routed messages by hop count. */
  routedHops: Record<number, number>
  /** Delivered broadcasts by hop count from their origin. */
  broadcastHops: Record<number, number>
  dropped: Record<DropCause, number>
  broadcast: BroadcastStats
  linkStatesAnnounced: number
}

export interface Delivery { origin: NodeId, hops: number, path: readonly NodeId[] }
export type RoutedHandler = (message: Message, delivery: Delivery) => void
export type TopicHandler = (message: Message, delivery: Delivery) => void

export interface EchoResult { target: NodeId, rttMs: number, requestPath: NodeId[], replyPath: NodeId[] }
interface PendingEcho { target: NodeId, sentMs: number, timer: TimerId, done: (result: EchoResult | NetError) => void }

export interface NeighbourView { peer: NodeId, state: LinkState, rttMs: number | null, mode: 'eager' | 'lazy' | null }

const LINK_STATE_TOPIC = 'net.link-state'
/** Share of `linkStateRefreshMs` by which each refresh is moved at random. */
const LINK_STATE_REFRESH_JITTER = 0.5
/** Weight of a new RTT sample in the moving average. */
const RTT_SMOOTHING = 0.25

export class OverlayService implements Service {
  readonly name = 'net'
  readonly messages = overlayMessages
  private env: Env | null = null
  private readonly limits: OverlayLimits
  private readonly neighbours: ReadonlySet<NodeId>
  private readonly live = new Set<NodeId>()
  private readonly rtt = new Map<NodeId, number>()
  private routing: RoutingTable | null = null
  private broadcaster: PlumtreeBroadcast | null = null
  private readonly topicHandlers = new Map<string, TopicHandler[]>()
  private readonly routedHandlers = new Map<string, RoutedHandler>()
  private readonly echoes = new Map<number, PendingEcho>()
  private readonly latestLinkState = new Map<NodeId, NetGossip>()
  private idPrefix = ''
  private sequence = 0
  private linkStateSeq = 0
  private linkStateTimer: TimerId | null = null
  private periodicTimers: TimerId[] = []
  private readonly counters: Omit<OverlayStats, 'broadcast'> = {
    routedSent: 0, routedForwarded: 0, routedDelivered: 0, routedHops: {}, broadcastHops: {}, linkStatesAnnounced: 0,
    dropped: { unreachable: 0, hop_limit: 0, loop: 0, bad_path: 0, bad_payload: 0, no_handler: 0 }
  }

  constructor (private readonly init: OverlayInit) {
    this.limits = { ...defaultOverlayLimits, ...init.limits }
    this.neighbours = new Set(init.neighbours)
  }

  start (env: Env): void {
    this.env = env
    this.routing = new RoutingTable(env.self, this.init.routeMetric ?? 'hops')
    // Message ids must not repeat after a restart, when the sequence starts again from zero.
    this.idPrefix = `${env.self}/${env.random.int(0, 0xffff_ffff).toString(36)}`
    this.broadcaster = new PlumtreeBroadcast(env.self, {
      now: () => env.now(),
      setTimer: (afterMs, fire) => env.setTimer(afterMs, fire),
      clearTimer: (id) => { env.clearTimer(id) },
      pick: (peers) => env.random.pick(peers),
      sendGossip: (to, gossip) => { env.send(to, gossip) },
      sendIHave: (to, message) => { env.send(to, message) },
      sendGraft: (to, message) => { env.send(to, message) },
      sendPrune: (to) => { env.send(to, { type: 'net.prune' }) },
      sendDigest: (to, message) => { env.send(to, message) },
      deliver: (gossip) => { this.deliverBroadcast(gossip) }
    }, this.limits, this.init.broadcastMode ?? 'plumtree')
    this.broadcaster.start()
    for (const link of env.links()) if (link.state === 'connected' && this.neighbours.has(link.peer)) this.linkChanged(link.peer, 'connected')
    this.every(this.limits.pingIntervalMs, () => { this.pingAll() })
    // Jittered, so that nodes started together do not all refresh at once: concurrent broadcasts
    // from many origins make Plumtree prune its tree apart and graft it back.
    if (this.init.linkStateRouting !== false) {
      this.every(this.limits.linkStateRefreshMs, () => { this.announceLinks() }, LINK_STATE_REFRESH_JITTER)
      this.scheduleLinkState()
    }
  }

  stop (): void {
    const env = this.env
    if (env === null) return
    this.broadcaster?.stop()
    for (const timer of this.periodicTimers) env.clearTimer(timer)
    if (this.linkStateTimer !== null) env.clearTimer(this.linkStateTimer)
    for (const echo of this.echoes.values()) env.clearTimer(echo.timer)
    this.periodicTimers = []
    this.linkStateTimer = null
    this.echoes.clear()
  }

  /** Routes a message to any member. Throws `NET_UNREACHABLE` when no live path exists now. */
  send<M extends Message> (to: NodeId, message: M): void {
    const env = this.requireEnv()
    const routed: NetRouted = { type: 'net.routed', id: this.nextId(), src: env.self, dst: to, path: [env.self], hopsLeft: this.limits.hopLimit, payload: env.codec.encode(message) }
    this.counters.routedSent++
    if (to === env.self) {
      env.setTimer(0, () => { this.deliverRouted(routed) })
      return
    }
    const next = this.routing?.nextHopAvoiding(to, new Set([env.self]))
    if (next === undefined) {
      this.counters.dropped.unreachable++
      throw new NetError('NET_UNREACHABLE', `no live overlay path from ${env.self} to ${to}`, { from: env.self, to })
    }
    env.send(next, routed)
  }

  /** Delivers a message to every live member reachable in the overlay, this node included, once. */
  broadcast<M extends Message> (topic: string, message: M): string {
    const env = this.requireEnv()
    const gossip: NetGossip = { type: 'net.gossip', id: this.nextId(), origin: env.self, topic, hops: 0, payload: env.codec.encode(message), repair: false }
    this.broadcaster?.originate(gossip)
    return gossip.id
  }

  subscribe (topic: string, handler: TopicHandler): void {
    const handlers = this.topicHandlers.get(topic) ?? []
    handlers.push(handler)
    this.topicHandlers.set(topic, handlers)
  }

  /** Handles routed messages of one type addressed to this node. */
  onRouted (type: string, handler: RoutedHandler): void {
    this.routedHandlers.set(type, handler)
  }

  /** Routes an echo request to `target` and reports both paths and the round trip. */
  echo (target: NodeId, timeoutMs: number, done: (result: EchoResult | NetError) => void): void {
    const env = this.requireEnv()
    if (this.echoes.size >= this.limits.echoesPendingMax) {
      done(new NetError('NET_UNREACHABLE', `too many echoes pending (echoesPendingMax ${this.limits.echoesPendingMax})`))
      return
    }
    const nonce = ++this.sequence
    const timer = env.setTimer(timeoutMs, () => {
      this.echoes.delete(nonce)
      done(new NetError('NET_UNREACHABLE', `no echo from ${target} within ${timeoutMs} ms`, { target, timeoutMs }))
    })
    this.echoes.set(nonce, { target, sentMs: env.now(), timer, done })
    try {
      this.send(target, { type: 'net.echo', nonce, isReply: false, requestPath: [] } satisfies NetEcho)
    } catch (error) {
      env.clearTimer(timer)
      this.echoes.delete(nonce)
      done(error instanceof NetError ? error : new NetError('NET_UNREACHABLE', errorMessage(error)))
    }
  }

  onMessage (from: NodeId, message: Message): void {
    const broadcaster = this.broadcaster
    if (broadcaster === null || this.env === null) return
    switch (message.type) {
      case 'net.ping': this.env.send(from, { type: 'net.pong', echoMs: (message as NetPing).sentMs } satisfies NetPong); break
      case 'net.pong': this.recordRtt(from, this.env.now() - (message as NetPong).echoMs); break
      case 'net.routed': this.onRoutedFrame(from, message as NetRouted); break
      case 'net.gossip': broadcaster.onGossip(from, message as NetGossip); break
      case 'net.ihave': broadcaster.onIHave(from, message as NetIHave); break
      case 'net.graft': broadcaster.onGraft(from, message as NetGraft); break
      case 'net.prune': broadcaster.onPrune(from); break
      case 'net.digest': broadcaster.onDigest(from, message as NetDigest); break
      default: this.env.log.warn({ from, type: message.type }, 'overlay message that only travels inside envelopes arrived bare')
    }
  }

  onLinkChange (peer: NodeId, state: LinkState): void {
    if (this.neighbours.has(peer)) this.linkChanged(peer, state)
  }

  route (destination: NodeId): Route | undefined {
    return this.routing?.route(destination)
  }

  routes (): Route[] {
    return this.routing?.allRoutes() ?? []
  }

  neighbourViews (): NeighbourView[] {
    return [...this.neighbours].sort().map((peer) => ({
      peer,
      state: this.live.has(peer) ? 'connected' : 'disconnected',
      rttMs: this.rtt.get(peer) ?? null,
      mode: this.broadcaster?.mode(peer) ?? null
    }))
  }

  linkStates (): Array<{ origin: NodeId, seq: number, links: Array<{ peer: NodeId, rttMs: number }> }> {
    return (this.routing?.announcements() ?? []).map(([origin, entry]) => ({
      origin, seq: entry.seq, links: [...entry.links.entries()].map(([peer, rttMs]) => ({ peer, rttMs }))
    }))
  }

  stats (): OverlayStats {
    return {
      ...this.counters,
      routedHops: { ...this.counters.routedHops },
      broadcastHops: { ...this.counters.broadcastHops },
      dropped: { ...this.counters.dropped },
      broadcast: { ...(this.broadcaster?.stats ?? emptyBroadcastStats()) }
    }
  }

  status (): object {
    const routes = this.routes()
    return {
      self: this.env?.self ?? null,
      neighbours: this.neighbourViews(),
      reachable: routes.map((route) => route.destination),
      routes,
      stats: this.stats()
    }
  }

  private linkChanged (peer: NodeId, state: LinkState): void {
    if (state === 'connected') {
      if (this.live.has(peer)) return
      this.live.add(peer)
      this.broadcaster?.linkUp(peer)
      this.env?.send(peer, { type: 'net.ping', sentMs: this.env.now() } satisfies NetPing)
      // A new neighbour may have missed announcements older than the repair window.
      for (const gossip of this.latestLinkState.values()) this.env?.send(peer, { ...gossip, repair: true })
    } else {
      if (!this.live.delete(peer)) return
      this.rtt.delete(peer)
      this.broadcaster?.linkDown(peer)
    }
    this.routing?.setOwnLinks(this.liveLinkRtts())
    this.scheduleLinkState()
  }

  private liveLinkRtts (): Map<NodeId, number> {
    return new Map([...this.live].sort().map((peer) => [peer, this.rtt.get(peer) ?? 0]))
  }

  private recordRtt (peer: NodeId, sampleMs: number): void {
    if (!this.live.has(peer) || !(sampleMs >= 0)) return
    const held = this.rtt.get(peer)
    this.rtt.set(peer, held === undefined ? sampleMs : held + RTT_SMOOTHING * (sampleMs - held))
    this.routing?.setOwnLinks(this.liveLinkRtts())
  }

  private pingAll (): void {
    const env = this.env
    if (env === null) return
    for (const peer of this.live) env.send(peer, { type: 'net.ping', sentMs: env.now() } satisfies NetPing)
  }

  private scheduleLinkState (): void {
    const env = this.env
    if (env === null || this.linkStateTimer !== null || this.init.linkStateRouting === false) return
    this.linkStateTimer = env.setTimer(this.limits.linkStateDelayMs, () => {
      this.linkStateTimer = null
      this.announceLinks()
    })
  }

  private announceLinks (): void {
    const env = this.env
    if (env === null) return
    // Sequence numbers follow the clock so that a restarted node's announcements win over its old ones.
    this.linkStateSeq = Math.max(this.linkStateSeq + 1, Math.floor(env.now()))
    const links = [...this.liveLinkRtts()].map(([peer, rttMs]) => ({ peer, rttMs: Math.round(rttMs * 1_000) / 1_000 }))
    this.counters.linkStatesAnnounced++
    this.broadcast(LINK_STATE_TOPIC, { type: 'net.link-state', origin: env.self, seq: this.linkStateSeq, links } satisfies NetLinkState)
  }

  private onRoutedFrame (from: NodeId, routed: NetRouted): void {
    const env = this.requireEnv()
    if (routed.path[routed.path.length - 1] !== from) {
      this.counters.dropped.bad_path++
      env.log.warn({ from, id: routed.id }, 'routed message whose path does not end with the sender')
      return
    }
    if (routed.dst === env.self) {
      this.deliverRouted(routed)
      return
    }
    if (routed.path.includes(env.self)) { this.counters.dropped.loop++; return }
    if (routed.hopsLeft <= 1) { this.counters.dropped.hop_limit++; return }
    const path = [...routed.path, env.self]
    const next = this.routing?.nextHopAvoiding(routed.dst, new Set(path))
    if (next === undefined) { this.counters.dropped.unreachable++; return }
    this.counters.routedForwarded++
    env.send(next, { ...routed, path, hopsLeft: routed.hopsLeft - 1 })
  }

  private deliverRouted (routed: NetRouted): void {
    const env = this.requireEnv()
    const message = this.decodeInner(routed.payload, routed.src)
    if (message === null) return
    const hops = routed.src === env.self ? 0 : routed.path.length
    this.counters.routedDelivered++
    this.counters.routedHops[hops] = (this.counters.routedHops[hops] ?? 0) + 1
    const delivery: Delivery = { origin: routed.src, hops, path: routed.path }
    if (message.type === 'net.echo') { this.onEcho(message as NetEcho, delivery); return }
    const handler = this.routedHandlers.get(message.type)
    if (handler === undefined) { this.counters.dropped.no_handler++; return }
    handler(message, delivery)
  }

  private deliverBroadcast (gossip: NetGossip): void {
    const message = this.decodeInner(gossip.payload, gossip.origin)
    if (message === null) return
    this.counters.broadcastHops[gossip.hops] = (this.counters.broadcastHops[gossip.hops] ?? 0) + 1
    const delivery: Delivery = { origin: gossip.origin, hops: gossip.hops, path: [] }
    if (gossip.topic === LINK_STATE_TOPIC) {
      this.onLinkState(message as NetLinkState, gossip)
      return
    }
    for (const handler of this.topicHandlers.get(gossip.topic) ?? []) handler(message, delivery)
  }

  private onLinkState (state: NetLinkState, gossip: NetGossip): void {
    const env = this.requireEnv()
    if (state.type !== 'net.link-state' || state.origin !== gossip.origin) {
      this.counters.dropped.bad_payload++
      return
    }
    const newer = this.routing?.accept(state.origin, state.seq, state.links, env.now()) === true
    if (newer || state.origin === env.self) this.latestLinkState.set(state.origin, gossip)
  }

  private onEcho (echo: NetEcho, delivery: Delivery): void {
    const env = this.requireEnv()
    if (!echo.isReply) {
      try {
        this.send(delivery.origin, { type: 'net.echo', nonce: echo.nonce, isReply: true, requestPath: pathTo(delivery.path, env.self) } satisfies NetEcho)
      } catch (error) {
        env.log.debug({ to: delivery.origin, reason: errorMessage(error) }, 'echo reply unroutable')
      }
      return
    }
    const pending = this.echoes.get(echo.nonce)
    if (pending === undefined || pending.target !== delivery.origin) return
    this.echoes.delete(echo.nonce)
    env.clearTimer(pending.timer)
    pending.done({ target: pending.target, rttMs: env.now() - pending.sentMs, requestPath: echo.requestPath, replyPath: pathTo(delivery.path, env.self) })
  }

  private decodeInner (payload: Uint8Array, origin: NodeId): Message | null {
    const env = this.requireEnv()
    try {
      return env.codec.decode(payload)
    } catch (error) {
      this.counters.dropped.bad_payload++
      env.log.warn({ origin, code: error instanceof CoreError ? error.code : 'UNKNOWN', reason: errorMessage(error) }, 'overlay payload does not decode')
      return null
    }
  }

  /** Runs `action` every `intervalMs`, each wait drawn within ±jitter of it. */
  private every (intervalMs: number, action: () => void, jitter = 0): void {
    const env = this.requireEnv()
    const index = this.periodicTimers.length
    const arm = (): void => {
      const waitMs = jitter > 0 ? Math.round(intervalMs * (1 - jitter + 2 * jitter * env.random.float())) : intervalMs
      this.periodicTimers[index] = env.setTimer(waitMs, () => { action(); arm() })
    }
    arm()
  }

  private nextId (): string {
    return `${this.idPrefix}/${(++this.sequence).toString(36)}`
  }

  private requireEnv (): Env {
    if (this.env === null) throw new Error('overlay used before start')
    return this.env
  }
}

/** The full path of a delivered message: the nodes it left, then the node it reached. */
function pathTo (path: readonly NodeId[], destination: NodeId): NodeId[] {
  return path[path.length - 1] === destination ? [...path] : [...path, destination]
}

function emptyBroadcastStats (): BroadcastStats {
  return { originated: 0, delivered: 0, duplicates: 0, repairDuplicates: 0, repaired: 0, grafts: 0, prunes: 0, ihaveIdsSent: 0, digestsSent: 0 }
}

/** The neighbours of `self` in a topology graph over the sorted member list. */
export function overlayNeighbours (adjacency: readonly (readonly number[])[], members: readonly NodeId[], self: NodeId): NodeId[] {
  const index = members.indexOf(self)
  if (index < 0) throw new NetError('NET_TOPOLOGY_INVALID', `${self} is not a member`, { self })
  return (adjacency[index] ?? []).map((neighbour) => members[neighbour]).filter((peer): peer is NodeId => peer !== undefined)
}
