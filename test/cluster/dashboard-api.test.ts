/**
 * The dashboard's server side over real HTTP, against 3 real node processes started with an admin
 * token (as `synod up` starts them): the nodes' own admin routes and their token check; the
 * gateway's admin routes for a local cluster (partition, heal, link latency, kill and restart, and
 * faults re-applied to a restarted node); the event stream; the static files; and a gateway that
 * fronts no local cluster, which serves no admin route and passes none on to a node.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request as httpRequest } from 'node:http'
import { Gateway, parseGatewayConfig, type LocalClusterControl } from '../../src/gateway/index.js'
import { createLogger } from '../../src/node/index.js'
import { TestCluster } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'

const TOKEN = 'test-admin-token-0123456789'
const silent = createLogger({ component: 'dashboard-test' }, 'silent')

interface StatusBody { peers: Array<{ peer: string, state: string }>, faults?: { isolatedFrom: string[], latencyMs: number, lossPercent: number } }
interface MembersBody { hasQuorum: boolean, members: Array<{ id: string, state: string }> }

async function json<T> (url: string, init: RequestInit = {}): Promise<{ status: number, body: T, headers: Headers }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) })
  return { status: response.status, body: await response.json() as T, headers: response.headers }
}

/** A raw GET, so the path reaches the server exactly as written (fetch would normalise `..`). */
async function rawGet (origin: string, path: string): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> {
  const { hostname, port } = new URL(origin)
  return await new Promise((resolve, reject) => {
    const request = httpRequest({ host: hostname, port, path, method: 'GET' }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, body }) })
    })
    request.on('error', reject)
    request.end()
  })
}

test('dashboard and admin routes on a real 3-node cluster', { timeout: 180_000 }, async (t) => {
  const cluster = await TestCluster.create(3)
  cluster.extraEnv = { SYNOD_ADMIN_TOKEN: TOKEN }
  const assets = mkdtempSync(join(tmpdir(), 'synod-web-assets-'))
  mkdirSync(join(assets, 'assets'))
  writeFileSync(join(assets, 'index.html'), '<!doctype html><title>synod test page</title>')
  writeFileSync(join(assets, 'assets', 'app-abc123.js'), 'console.log("app")')
  const gateways: Gateway[] = []
  t.after(async () => {
    for (const gateway of gateways) await gateway.stop()
    await cluster.destroy()
    rmSync(assets, { recursive: true, force: true })
  })
  await cluster.startAllHealthy()
  const ids = [0, 1, 2].map((index) => cluster.nodeId(index))
  const auth = { authorization: `Bearer ${TOKEN}` }

  // The nodes' own admin routes need the token, and check what they are given.
  assert.equal((await json(`${cluster.api(0)}/v1/admin/faults`)).status, 401)
  assert.equal((await json(`${cluster.api(0)}/v1/admin/faults`, { headers: { authorization: 'Bearer wrong' } })).status, 401)
  const bad = await json<{ code: string, details: { field: string } }>(`${cluster.api(0)}/v1/admin/faults`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ isolatedFrom: ['nobody'] }) })
  assert.equal(bad.status, 400)
  assert.equal(bad.body.code, 'CORE_BAD_LINK_FAULTS')
  assert.equal(bad.body.details.field, 'isolatedFrom')
  const none = await json<{ faults: object }>(`${cluster.api(0)}/v1/admin/faults`, { headers: auth })
  assert.deepEqual(none.body.faults, { isolatedFrom: [], latencyMs: 0, lossPercent: 0 })

  const running = new Set([0, 1, 2])
  const control: LocalClusterControl = {
    nodes: () => [0, 1, 2].map((index) => ({ id: ids[index] as string, api: cluster.api(index), pid: null, running: running.has(index) })),
    kill: async (id) => { const index = ids.indexOf(id); await cluster.kill(index); running.delete(index) },
    restart: async (id) => { const index = ids.indexOf(id); cluster.start(index); running.add(index); await cluster.waitHealthy(index) }
  }
  const gateway = new Gateway(parseGatewayConfig({
    listen: '127.0.0.1:0',
    strategy: 'key-affinity',
    upstreams: [0, 1, 2].map((index) => ({ url: cluster.api(index), id: ids[index] })),
    cluster: { follow: true }
  }, 'test'), { log: silent, dashboard: { assetsDir: assets, local: { control, adminToken: TOKEN }, pollIntervalMs: 300 } })
  gateways.push(gateway)
  await gateway.start()
  const front = gateway.address()

  // Static files: / redirects, index and hashed assets are served with the right caching, and no
  // path climbs out of the assets directory.
  const root = await rawGet(front, '/')
  assert.equal(root.status, 302)
  assert.equal(root.headers.location, '/dashboard/')
  const index = await rawGet(front, '/dashboard/')
  assert.equal(index.status, 200)
  assert.match(index.body, /synod test page/)
  assert.equal(index.headers['cache-control'], 'no-cache')
  const script = await rawGet(front, '/dashboard/assets/app-abc123.js')
  assert.equal(script.status, 200)
  assert.match(String(script.headers['content-type']), /^text\/javascript/)
  assert.match(String(script.headers['cache-control']), /immutable/)
  for (const path of ['/dashboard/../../package.json', '/dashboard/%2e%2e/%2e%2e/package.json', '/dashboard/assets/%2e%2e%2f%2e%2e%2findex.html']) {
    assert.equal((await rawGet(front, path)).status, 404, path)
  }
  // A directory is not a file; index.html is read afresh after a rebuild.
  assert.equal((await rawGet(front, '/dashboard/assets/')).status, 404)
  writeFileSync(join(assets, 'index.html'), '<!doctype html><title>rebuilt page</title>')
  assert.match((await rawGet(front, '/dashboard/')).body, /rebuilt page/)
  // A malformed escape is a 400, and the gateway lives on.
  assert.equal((await rawGet(front, '/dashboard/assets/%E0%A4%A.js')).status, 400)
  assert.equal((await json(`${front}/v1/admin/nodes/%E0%A4%A/kill`, { method: 'POST', headers: auth })).status, 400)
  assert.equal((await rawGet(front, '/dashboard/')).status, 200)

  // The gateway's admin routes need the token too; bad requests are typed 400s.
  assert.equal((await json(`${front}/v1/admin/cluster`)).status, 401)
  assert.equal((await json(`${front}/v1/admin/heal`, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status, 401)
  const badGroups = await json<{ code: string }>(`${front}/v1/admin/partition`, { method: 'POST', headers: auth, body: JSON.stringify({ groups: [[ids[0]]] }) })
  assert.equal(badGroups.status, 400)
  assert.equal(badGroups.body.code, 'DASHBOARD_BAD_REQUEST')
  assert.equal((await json(`${front}/v1/admin/nodes/nobody/kill`, { method: 'POST', headers: auth })).status, 404)

  // The event stream delivers snapshots of all three nodes.
  const stream = await fetch(`${front}/v1/dashboard/events`)
  assert.equal(stream.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  while (!text.includes('event: snapshot\ndata: ')) text += new TextDecoder().decode((await reader.read()).value)
  const firstEvent = text.slice(text.indexOf('data: ') + 6).split('\n')[0] as string
  const snapshot = JSON.parse(firstEvent.length > 0 ? firstEvent : '{}') as { nodes?: Array<{ id: string }>, admin?: { enabled: boolean } }
  await reader.cancel()
  assert.deepEqual(snapshot.nodes?.map((node) => node.id).sort(), [...ids].sort())
  assert.equal(snapshot.admin?.enabled, true)

  // Partition {0} | {1, 2}: node 0 sees its links down and loses its quorum; the others keep theirs.
  const cut = await json<{ partition: string[][], notApplied: string[] }>(`${front}/v1/admin/partition`, { method: 'POST', headers: auth, body: JSON.stringify({ groups: [[ids[0]], [ids[1], ids[2]]] }) })
  assert.equal(cut.status, 200)
  assert.deepEqual(cut.body.notApplied, [])
  const status0 = await json<StatusBody>(`${cluster.api(0)}/v1/status`)
  assert.ok(status0.body.peers.every((peer) => peer.state === 'disconnected'), JSON.stringify(status0.body.peers))
  assert.deepEqual(status0.body.faults?.isolatedFrom, [ids[1], ids[2]].sort())
  await waitUntil(async () => (await json<MembersBody>(`${cluster.api(0)}/v1/cluster/members`)).body.hasQuorum === false, 30_000, 'node 0 without quorum')
  await waitUntil(async () => {
    const members = (await json<MembersBody>(`${cluster.api(1)}/v1/cluster/members`)).body
    return members.hasQuorum && members.members.find((member) => member.id === ids[0])?.state === 'dead'
  }, 30_000, 'node 1 holding node 0 dead, with its quorum')

  // A restarted node forgets its faults; the gateway puts them back.
  await json(`${front}/v1/admin/nodes/${ids[0] as string}/kill`, { method: 'POST', headers: auth })
  assert.equal((await json<{ nodes: Array<{ running: boolean }> }>(`${front}/v1/admin/cluster`, { headers: auth })).body.nodes[0]?.running, false)
  await json(`${front}/v1/admin/nodes/${ids[0] as string}/restart`, { method: 'POST', headers: auth })
  await waitUntil(async () => {
    await fetch(`${front}/v1/dashboard/snapshot`)
    return (await json<{ faults: { isolatedFrom: string[] } }>(`${cluster.api(0)}/v1/admin/faults`, { headers: auth })).body.faults.isolatedFrom.length === 2
  }, 30_000, 'the partition re-applied to the restarted node')

  // Heal: every link comes back and node 0 regains its quorum.
  const heal = await json<{ partition: null }>(`${front}/v1/admin/heal`, { method: 'POST', headers: auth })
  assert.equal(heal.status, 200)
  await waitUntil(async () => (await json<MembersBody>(`${cluster.api(0)}/v1/cluster/members`)).body.hasQuorum, 30_000, 'node 0 with quorum again')
  await waitUntil(async () => (await json<StatusBody>(`${cluster.api(0)}/v1/status`)).body.peers.every((peer) => peer.state === 'connected'), 30_000, 'node 0 linked again')

  // Latency on node 1's links shows in the round trips its peers measure (+2 x 60 ms).
  const slow = await json<{ latencyMs: number }>(`${front}/v1/admin/nodes/${ids[1] as string}/link-faults`, { method: 'PUT', headers: auth, body: JSON.stringify({ latencyMs: 60, lossPercent: 0 }) })
  assert.equal(slow.status, 200)
  await waitUntil(async () => {
    const topology = (await json<{ links: Array<{ peer: string, rttMs: number | null }> }>(`${cluster.api(2)}/v1/topology`)).body
    return (topology.links.find((link) => link.peer === ids[1])?.rttMs ?? 0) >= 100
  }, 30_000, 'node 2 measuring a round trip over 100 ms to node 1')
  await json(`${front}/v1/admin/heal`, { method: 'POST', headers: auth })
  assert.deepEqual((await json<{ faults: object }>(`${cluster.api(1)}/v1/admin/faults`, { headers: auth })).body.faults, { isolatedFrom: [], latencyMs: 0, lossPercent: 0 })

  // A gateway that fronts no local cluster serves no admin route and passes none on, even to a
  // node that has them and with the right token.
  const plain = new Gateway(parseGatewayConfig({ listen: '127.0.0.1:0', upstreams: [{ url: cluster.api(0) }] }, 'test'), { log: silent, dashboard: { assetsDir: null } })
  const bare = new Gateway(parseGatewayConfig({ listen: '127.0.0.1:0', upstreams: [{ url: cluster.api(0) }] }, 'test'), { log: silent })
  gateways.push(plain, bare)
  await plain.start()
  await bare.start()
  // A node's router decodes the path: an escaped admin path reaches the node's admin route...
  assert.equal((await json(`${cluster.api(0)}/v1/%61dmin/faults`, { headers: auth })).status, 200)
  for (const other of [plain, bare]) {
    // ...so the gateway decodes it too before it decides a path is not for the nodes.
    for (const path of ['/v1/admin/faults', '/v1/admin/cluster', '/v1/%61dmin/faults', '/v1/adm%69n/cluster']) {
      const answer = await json<{ code: string }>(`${other.address()}${path}`, { headers: auth })
      assert.equal(answer.status, 404, path)
      assert.equal(answer.body.code, 'HTTP_NOT_FOUND')
      assert.equal(answer.headers.get('synod-upstream'), null, 'not passed on to a node')
    }
  }
  // Refusals and actions are counted.
  const metricsText = await (await fetch(`${front}/metrics`)).text()
  assert.match(metricsText, /synod_gateway_dashboard_errors_total\{code="ADMIN_UNAUTHORIZED"\} [2-9]/)
  assert.match(metricsText, /synod_gateway_dashboard_errors_total\{code="DASHBOARD_BAD_REQUEST"\} 3/)
  assert.match(metricsText, /synod_gateway_admin_actions_total\{action="partition"\} 1/)
  assert.match(metricsText, /synod_gateway_admin_actions_total\{action="kill"\} 1/)
  const readOnly = await json<{ admin: { enabled: boolean }, nodes: unknown[] }>(`${plain.address()}/v1/dashboard/snapshot`)
  assert.equal(readOnly.body.admin.enabled, false)
  assert.equal(readOnly.body.nodes.length, 1)
})
