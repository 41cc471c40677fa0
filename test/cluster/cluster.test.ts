/** Real node processes on loopback: links, SIGKILL and restart, durable data, the allowlist. */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TestCluster, freeBasePort } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'
import { generateKeyFile, writeKeyFile, type NetworkConfig, type NodeConfig } from '../../src/node/index.js'

const LINK_TIMEOUT_MS = 10_000

describe('a 4-node cluster of real processes', () => {
  let cluster: TestCluster
  const others = (index: number): string[] => cluster.init.members.filter((_, i) => i !== index).map((member) => member.id).sort()

  before(async () => {
    cluster = await TestCluster.create(4)
    cluster.startAll()
  })
  after(async () => { await cluster.destroy() })

  it('links every node to the 3 others within 10 s', async () => {
    const started = Date.now()
    await waitUntil(async () => {
      const views = await Promise.all([0, 1, 2, 3].map(async (i) => await cluster.connectedPeers(i)))
      return views.every((view, i) => JSON.stringify(view) === JSON.stringify(others(i)))
    }, LINK_TIMEOUT_MS, 'every node connected to the 3 others')
    assert.ok(Date.now() - started <= LINK_TIMEOUT_MS)
    await waitUntil(async () => (await cluster.status(0))?.services.hello?.reachable.length === 3, LINK_TIMEOUT_MS, 'hello view reaches 3 peers')
    const metrics = await (await fetch(`${cluster.api(0)}/metrics`)).text()
    assert.match(metrics, /^synod_hello_peers_reachable 3$/m)
    assert.match(metrics, /^synod_transport_links_connected 3$/m)
  })

  it('shows a SIGKILLed node disconnected, and reconnects it with its data intact after a restart', async () => {
    const victim = 3
    await waitUntil(async () => (await cluster.status(victim))?.services.hello?.bootDurable === true, LINK_TIMEOUT_MS, 'boot count durable')
    const bootsBefore = (await cluster.status(victim))?.services.hello?.boots ?? 0
    assert.equal(bootsBefore, 1)
    await cluster.kill(victim, 'SIGKILL')
    await waitUntil(async () => {
      const views = await Promise.all([0, 1, 2].map(async (i) => await cluster.connectedPeers(i)))
      return views.every((view) => !view.includes(cluster.nodeId(victim)))
    }, LINK_TIMEOUT_MS, 'the others see the killed node disconnected')
    cluster.start(victim)
    await waitUntil(async () => {
      const views = await Promise.all([0, 1, 2, 3].map(async (i) => await cluster.connectedPeers(i)))
      return views.every((view, i) => JSON.stringify(view) === JSON.stringify(others(i)))
    }, LINK_TIMEOUT_MS, 'the restarted node is linked to all again')
    const after = await cluster.status(victim)
    assert.equal(after?.services.hello?.boots, bootsBefore + 1, 'the boot count synced before SIGKILL survived in LMDB')
    const peerView = await cluster.status(0)
    assert.ok((peerView?.transport.reconnects ?? 0) >= 1, 'node 0 counted the reconnection')
  })

  it('refuses a process whose key is not in the network config', async () => {
    // The outsider believes it belongs: its own network file lists the members and itself.
    const network = JSON.parse(readFileSync(cluster.init.networkFile, 'utf8')) as NetworkConfig
    const highest = [...network.members].map((member) => member.id).sort().at(-1) ?? ''
    let key = generateKeyFile()
    while (key.id >= highest) key = generateKeyFile() // lower ids dial, so the outsider dials someone
    const base = await freeBasePort(1)
    const outsiderNetwork: NetworkConfig = {
      ...network,
      members: [...network.members, { id: key.id, publicKey: key.publicKey, p2p: `/ip4/127.0.0.1/tcp/${base}`, api: `http://127.0.0.1:${base + 100}` }]
    }
    writeFileSync(join(cluster.dir, 'outsider-network.json'), JSON.stringify(outsiderNetwork))
    mkdirSync(join(cluster.dir, 'data', 'outsider'), { recursive: true })
    writeKeyFile(join(cluster.dir, 'data', 'outsider', 'node.key'), key)
    const config: NodeConfig = {
      version: 1, nodeId: key.id, network: 'outsider-network.json', keyFile: 'data/outsider/node.key', dataDir: 'data/outsider',
      listen: { p2p: `/ip4/127.0.0.1/tcp/${base}`, apiHost: '127.0.0.1', apiPort: base + 100 }, logLevel: 'info'
    }
    const configFile = join(cluster.dir, 'outsider.json')
    writeFileSync(configFile, JSON.stringify(config))
    const refusedBefore = (await Promise.all([0, 1, 2, 3].map(async (i) => (await cluster.status(i))?.transport.refusedPeers ?? 0))).reduce((a, b) => a + b, 0)
    cluster.start(4, configFile)
    const outsiderApi = `http://127.0.0.1:${base + 100}`
    await waitUntil(async () => {
      const refused = (await Promise.all([0, 1, 2, 3].map(async (i) => (await cluster.status(i))?.transport.refusedPeers ?? 0))).reduce((a, b) => a + b, 0)
      return refused > refusedBefore
    }, LINK_TIMEOUT_MS, 'a member refuses the outsider at the handshake')
    const outsiderStatus = await cluster.status(4, outsiderApi)
    assert.ok(outsiderStatus !== null, 'the outsider runs')
    assert.deepEqual(outsiderStatus.peers.filter((peer) => peer.state === 'connected'), [], 'the outsider has no links')
    for (let i = 0; i < 4; i++) {
      const status = await cluster.status(i)
      assert.ok(!(status?.peers ?? []).some((peer) => peer.peer === key.id), 'members never list the outsider')
      assert.equal((status?.peers ?? []).filter((peer) => peer.state === 'connected').length, 3, 'members keep their links')
    }
    assert.match(cluster.log(0) + cluster.log(1) + cluster.log(2) + cluster.log(3), /refused a peer that is not in the network config/)
    await cluster.kill(4)
  })
})
