/**
 * Link-state routing over the overlay (OSPF-like). Every node announces its live links and their
 * round-trip times; every node keeps the newest announcement of every origin and computes shortest
 * paths from itself. A link counts only when both ends announce it (the two-way check), so a
 * crashed node's stale announcement cannot attract traffic: its neighbours stop listing it.
 * This node's own links come from its transport, never from an announcement.
 */
import type { NodeId } from '../core/index.js'

export interface LinkStateEntry {
  seq: number
  /** Peer to round-trip time in ms. */
  links: Map<NodeId, number>
  receivedMs: number
}

export interface Route {
  destination: NodeId
  nextHop: NodeId
  hops: number
  /** Hops, or the sum of link round-trip times when routing is weighted by RTT. */
  cost: number
}

export type RouteMetric = 'hops' | 'rtt'

/** RTT assumed for a link not yet measured, so weighted routing never treats it as free. */
const UNMEASURED_RTT_MS = 50

export class RoutingTable {
  private readonly states = new Map<NodeId, LinkStateEntry>()
  private readonly ownLinks = new Map<NodeId, number>()
  private routes: Map<NodeId, Route> | null = null

  constructor (private readonly self: NodeId, private readonly metric: RouteMetric) {}

  /** This node's live links, from its transport. */
  setOwnLinks (links: ReadonlyMap<NodeId, number>): void {
    // Routes are recomputed lazily and only when an input that matters to the metric changed:
    // a fresh RTT sample changes nothing under hop routing.
    const changed = !this.sameLinks(this.ownLinks, links)
    this.ownLinks.clear()
    for (const [peer, rtt] of links) this.ownLinks.set(peer, rtt)
    if (changed) this.routes = null
  }

  /** Takes an announcement if it is newer than the one held; returns whether it was. */
  accept (origin: NodeId, seq: number, links: ReadonlyArray<{ peer: NodeId, rttMs: number }>, nowMs: number): boolean {
    if (origin === this.self) return false
    const held = this.states.get(origin)
    if (held !== undefined && held.seq >= seq) return false
    const entry = { seq, links: new Map(links.map((link) => [link.peer, link.rttMs])), receivedMs: nowMs }
    this.states.set(origin, entry)
    // A periodic refresh that repeats the held links leaves every route as it was.
    if (held === undefined || !this.sameLinks(held.links, entry.links)) this.routes = null
    return true
  }

  announcements (): Array<[NodeId, LinkStateEntry]> {
    return [...this.states.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
  }

  route (destination: NodeId): Route | undefined {
    return this.table().get(destination)
  }

  allRoutes (): Route[] {
    return [...this.table().values()].sort((a, b) => (a.destination < b.destination ? -1 : 1))
  }

  /**
   * The next hop towards `destination` that leaves out every node in `avoid` (the nodes a message
   * has already visited), so a routed message can never loop. Uses the table when its next hop
   * is allowed, and searches around the visited nodes otherwise.
   */
  nextHopAvoiding (destination: NodeId, avoid: ReadonlySet<NodeId>): NodeId | undefined {
    const route = this.route(destination)
    if (route !== undefined && !avoid.has(route.nextHop)) return route.nextHop
    return this.search(avoid).get(destination)?.nextHop
  }

  /** Peers of `node` over links that both ends announce (own links come from the transport). */
  neighboursOf (node: NodeId): Array<[NodeId, number]> {
    if (node === this.self) return [...this.ownLinks.entries()]
    const entry = this.states.get(node)
    if (entry === undefined) return []
    const out: Array<[NodeId, number]> = []
    for (const [peer, rtt] of entry.links) {
      const confirmed = peer === this.self ? this.ownLinks.has(node) : this.states.get(peer)?.links.has(node) === true
      if (confirmed) out.push([peer, rtt])
    }
    return out
  }

  private table (): Map<NodeId, Route> {
    this.routes ??= this.search(new Set())
    return this.routes
  }

  /** Shortest paths from this node: breadth-first for hops, Dijkstra for RTT. */
  private search (avoid: ReadonlySet<NodeId>): Map<NodeId, Route> {
    const first: Route[] = []
    for (const [peer, rtt] of [...this.ownLinks.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!avoid.has(peer)) first.push({ destination: peer, nextHop: peer, hops: 1, cost: this.linkCost(rtt) })
    }
    return this.metric === 'hops' ? this.breadthFirst(first, avoid) : this.dijkstra(first, avoid)
  }

  private breadthFirst (first: Route[], avoid: ReadonlySet<NodeId>): Map<NodeId, Route> {
    const best = new Map<NodeId, Route>()
    for (const route of first) best.set(route.destination, route)
    const queue = [...first]
    for (let index = 0; index < queue.length; index++) {
      const at = queue[index] as Route
      for (const [peer] of this.neighboursOf(at.destination)) {
        if (peer === this.self || avoid.has(peer) || best.has(peer)) continue
        const route = { destination: peer, nextHop: at.nextHop, hops: at.hops + 1, cost: at.hops + 1 }
        best.set(peer, route)
        queue.push(route)
      }
    }
    return best
  }

  /** Dijkstra with a linear scan for the cheapest tentative route: O(n^2), fine for overlay sizes. */
  private dijkstra (first: Route[], avoid: ReadonlySet<NodeId>): Map<NodeId, Route> {
    const best = new Map<NodeId, Route>()
    const tentative = new Map<NodeId, Route>()
    for (const route of first) tentative.set(route.destination, route)
    while (tentative.size > 0) {
      let next: Route | undefined
      for (const route of tentative.values()) {
        if (next === undefined || route.cost < next.cost || (route.cost === next.cost && route.destination < next.destination)) next = route
      }
      const at = next as Route
      tentative.delete(at.destination)
      best.set(at.destination, at)
      for (const [peer, rtt] of this.neighboursOf(at.destination)) {
        if (peer === this.self || avoid.has(peer) || best.has(peer)) continue
        const cost = at.cost + this.linkCost(rtt)
        const held = tentative.get(peer)
        if (held === undefined || cost < held.cost) tentative.set(peer, { destination: peer, nextHop: at.nextHop, hops: at.hops + 1, cost })
      }
    }
    return best
  }

  /** Whether two link sets give the same routes: the same peers, and under RTT routing the same RTTs. */
  private sameLinks (a: ReadonlyMap<NodeId, number>, b: ReadonlyMap<NodeId, number>): boolean {
    if (a.size !== b.size) return false
    for (const [peer, rtt] of b) {
      const held = a.get(peer)
      if (held === undefined || (this.metric === 'rtt' && held !== rtt)) return false
    }
    return true
  }

  private linkCost (rttMs: number): number {
    if (this.metric === 'hops') return 1
    return rttMs > 0 ? rttMs : UNMEASURED_RTT_MS
  }
}
