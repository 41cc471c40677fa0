/**
 * The gateway attached to a real 3-node cluster (real processes, libp2p, LMDB, HTTP): key
 * affinity sends each key to its first replica on the store ring (no node forwards anything),
 * and the upstreams follow the membership view: with active checks off, a SIGKILLed node leaves
 * the balancing set when the cluster holds it dead, its keys go to their next replica, and it
 * comes back when it restarts.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Gateway, parseGatewayConfig, type GatewayStatus } from '../../src/gateway/index.js'
import { HashRing, type RingDescription } from '../../src/store/index.js'
import { createLogger } from '../../src/node/index.js'
import { TestCluster } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'

const NODES = 3
const SETTLE_TIMEOUT_MS = 30_000

describe('the gateway in front of a real 3-node cluster', () => {
  let cluster: TestCluster
  let gateway: Gateway
  let ring: HashRing

  const status = async (): Promise<GatewayStatus> => await (await fetch(`${gateway.address()}/v1/gateway/status`)).json() as GatewayStatus
  const upstreamOf = async (id: string): Promise<GatewayStatus['upstreams'][number] | undefined> => (await status()).upstreams.find((upstream) => upstream.id === id)
  const forwardedTotal = async (): Promise<number> => {
    let total = 0
    for (let index = 0; index < NODES; index++) {
      const metrics = await (await fetch(`${cluster.api(index)}/metrics`)).text()
      total += Number(/^synod_store_forwarded_total (\d+)$/m.exec(metrics)?.[1] ?? Number.NaN)
    }
    return total
  }

  before(async () => {
    cluster = await TestCluster.create(NODES)
    await cluster.startAllHealthy()
    gateway = new Gateway(parseGatewayConfig({
      listen: '127.0.0.1:0',
      strategy: 'key-affinity',
      upstreams: Array.from({ length: NODES }, (_, index) => ({ url: cluster.api(index), id: cluster.nodeId(index) })),
      healthCheck: { intervalMs: 0 },
      outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 },
      slowStart: { windowMs: 1_000 },
      cluster: { follow: true, refreshIntervalMs: 200 },
      seed: 3
    }, 'test'), { log: createLogger({ component: 'gateway-test' }, 'silent') })
    await gateway.start()
    await waitUntil(async () => {
      const view = await status()
      return view.ring?.members === NODES && view.upstreams.every((upstream) => upstream.membership === 'alive')
    }, SETTLE_TIMEOUT_MS, 'the gateway follows the ring and sees every member alive', 100)
    const description = await (await fetch(`${cluster.api(0)}/v1/cluster/ring`)).json() as RingDescription
    ring = new HashRing({ members: description.members, replicationFactor: description.replicationFactor, vnodesPerWeight: description.vnodesPerWeight })
  })
  after(async () => {
    await gateway?.stop()
    await cluster?.destroy()
  })

  it('sends each key to its first replica, so no node forwards', async () => {
    const before = await forwardedTotal()
    const keys = Array.from({ length: 24 }, (_, index) => `affinity-${index}`)
    for (const key of keys) {
      const put = await fetch(`${gateway.address()}/v1/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: key })
      assert.equal(put.status, 200)
      assert.equal(put.headers.get('synod-upstream'), ring.preferenceList(key)[0], key)
      await put.arrayBuffer()
    }
    assert.equal(new Set(keys.map((key) => ring.preferenceList(key)[0])).size, NODES, 'the keys have every node as first replica')
    assert.equal(await forwardedTotal() - before, 0, 'every request reached its coordinator directly')
  })

  it('follows the membership view: a killed node leaves when held dead, its keys go to the next replica, and it returns', async () => {
    const victim = 2
    const victimId = cluster.nodeId(victim)
    const keys = Array.from({ length: 200 }, (_, index) => `failover-${index}`).filter((key) => ring.preferenceList(key)[0] === victimId).slice(0, 5)
    assert.equal(keys.length, 5)
    await cluster.kill(victim)
    await waitUntil(async () => {
      const upstream = await upstreamOf(victimId)
      return upstream?.membership === 'dead' && upstream.serving === false
    }, SETTLE_TIMEOUT_MS, 'the gateway takes the node out once the cluster holds it dead', 100)
    assert.equal((await upstreamOf(victimId))?.activeHealthy, true, 'active checks are off: membership alone took it out')
    for (const key of keys) {
      const put = await fetch(`${gateway.address()}/v1/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: 'after the crash' })
      assert.equal(put.status, 200, `${key}: two of its three replicas still serve`)
      assert.equal(put.headers.get('synod-upstream'), ring.preferenceList(key)[1], `${key} goes to its second replica`)
      await put.arrayBuffer()
    }
    cluster.start(victim)
    await cluster.waitHealthy(victim)
    await waitUntil(async () => {
      const upstream = await upstreamOf(victimId)
      return upstream?.membership === 'alive' && upstream.serving
    }, SETTLE_TIMEOUT_MS, 'the node serves again once alive', 100)
  })
})
