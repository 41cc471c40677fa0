/**
 * Five real node processes on a ring overlay: a routed message from node 1 to node 3 takes the
 * two hops through node 2; with node 2 killed it goes the other way round, in three hops.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestCluster } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'

interface EchoBody { requestHops: number, replyHops: number, requestPath: string[], replyPath: string[] }
interface TopologyBody { links: Array<{ peer: string, state: string }>, routes: Array<{ destination: string, hops: number }> }

const TIMEOUT_MS = 15_000
const RING_SIZE = 5
const ringDistance = (a: number, b: number): number => Math.min(Math.abs(a - b), RING_SIZE - Math.abs(a - b))

describe('a 5-node ring of real processes', () => {
  let cluster: TestCluster
  // On a ring the overlay order is the members sorted by node id.
  const ordered = (): string[] => cluster.init.members.map((member) => member.id).sort()
  const indexOf = (id: string): number => cluster.init.members.findIndex((member) => member.id === id)
  const api = (ringPosition: number): string => cluster.api(indexOf(ordered()[ringPosition] as string))

  async function topology (ringPosition: number): Promise<TopologyBody | null> {
    try {
      const response = await fetch(`${api(ringPosition)}/v1/topology`, { signal: AbortSignal.timeout(2_000) })
      return response.ok ? await response.json() as TopologyBody : null
    } catch { return null }
  }

  async function echo (fromPosition: number, toPosition: number): Promise<{ status: number, body: EchoBody & { code?: string } }> {
    const response = await fetch(`${api(fromPosition)}/v1/net/echo/${ordered()[toPosition] ?? ''}?timeoutMs=3000`, { method: 'POST', signal: AbortSignal.timeout(5_000) })
    return { status: response.status, body: await response.json() as EchoBody & { code?: string } }
  }

  before(async () => {
    cluster = await TestCluster.create(5, { kind: 'ring' })
    cluster.startAll()
  })
  after(async () => { await cluster.destroy() })

  it('links each node to its two ring neighbours only, and routes to all four others', async () => {
    await waitUntil(async () => {
      const views = await Promise.all([0, 1, 2, 3, 4].map(topology))
      // Converged means every route is a shortest ring path, not just that one exists: while
      // announcements are still arriving a node may briefly route the long way round.
      return views.every((view, position) => view !== null && view.links.length === 2 && view.links.every((link) => link.state === 'connected') &&
        view.routes.length === 4 && view.routes.every((route) => route.hops === ringDistance(position, ordered().indexOf(route.destination))))
    }, TIMEOUT_MS, 'ring links up and shortest routes to every member').catch(async (error: unknown) => {
      const views = await Promise.all([0, 1, 2, 3, 4].map(topology))
      throw new Error(`${String(error)}\nviews: ${JSON.stringify(views.map((view) => view === null ? null : { links: view.links, routes: view.routes.length }))}\n${cluster.logs()}`)
    })
    const first = await topology(0)
    assert.deepEqual(first?.links.map((link) => link.peer).sort(), [ordered()[1], ordered()[4]].sort())
    assert.equal(first?.routes.find((route) => route.destination === ordered()[2])?.hops, 2)
  })

  it('sends from node 1 to node 3 in two hops, through node 2', async () => {
    const { status, body } = await echo(0, 2)
    assert.equal(status, 200)
    assert.equal(body.requestHops, 2)
    assert.deepEqual(body.requestPath, [ordered()[0], ordered()[1], ordered()[2]])
    const metrics = await (await fetch(`${api(2)}/metrics`)).text()
    assert.match(metrics, /^synod_net_routed_delivered_by_hops_total\{hops="2"\} [1-9]/m, 'the destination counts a 2-hop delivery')
    assert.match(metrics, /^synod_net_routes 4$/m)
    const relay = await (await fetch(`${api(1)}/metrics`)).text()
    assert.match(relay, /^synod_net_routed_forwarded_total [1-9]/m, 'node 2 forwarded it')
  })

  it('goes the other way round, in three hops, once node 2 is killed', async () => {
    await cluster.kill(indexOf(ordered()[1] as string), 'SIGKILL')
    // Both ends must have noticed: the request goes 1 -> 5 -> 4 -> 3 and the reply 3 -> 4 -> 5 -> 1.
    await waitUntil(async () => (await topology(0))?.routes.find((route) => route.destination === ordered()[2])?.hops === 3 &&
      (await topology(2))?.routes.find((route) => route.destination === ordered()[0])?.hops === 3, TIMEOUT_MS, 'routes between nodes 1 and 3 recomputed around node 2')
    const { status, body } = await echo(0, 2)
    assert.equal(status, 200)
    assert.equal(body.requestHops, 3)
    assert.deepEqual(body.requestPath, [ordered()[0], ordered()[4], ordered()[3], ordered()[2]])
    const toDead = await echo(0, 1)
    assert.equal(toDead.status, 503)
    assert.equal(toDead.body.code, 'NET_UNREACHABLE')
  })

  it('refuses a non-member target and a bad timeout with typed errors', async () => {
    const stranger = await fetch(`${api(0)}/v1/net/echo/${'0'.repeat(20)}`, { method: 'POST' })
    assert.equal(stranger.status, 404)
    assert.equal((await stranger.json() as { code: string }).code, 'NET_NOT_A_MEMBER')
    const badTimeout = await fetch(`${api(0)}/v1/net/echo/${ordered()[2] ?? ''}?timeoutMs=soon`, { method: 'POST' })
    assert.equal(badTimeout.status, 400)
    assert.equal((await badTimeout.json() as { code: string }).code, 'NET_BAD_REQUEST')
  })
})
