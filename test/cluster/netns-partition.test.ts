/**
 * Five nodes on five hosts (Linux network namespaces) with a real network partition: cut into
 * {0,1} | {2,3,4}, nodes 0-1 report no quorum and nodes 2-4 report quorum (as in the simulator),
 * every link across the cut dies and every link within a side stays up; healed, every link comes
 * back and every node converges to the same view with quorum. Skipped, with the reason, where
 * network namespaces are unavailable.
 */
import { test } from 'node:test'
import { NetnsCluster, clusterMembers, linkedHosts, netnsAvailable, sameSide, waitForAllAlive, waitForEveryNode } from '../support/netns.js'

const HOSTS = 5
const SIDES = [[0, 1], [2, 3, 4]]

/** Waits until every node's live links are exactly the other hosts on its side. */
async function waitForLinks (cluster: NetnsCluster, sides: number[][], what: string): Promise<number> {
  return await waitForEveryNode(cluster, what, async (index) => {
    return JSON.stringify(await linkedHosts(cluster, index)) === JSON.stringify(sameSide(sides, index))
  })
}

test('a partition between network namespaces gives quorum to the majority side only, cuts exactly the links across it, and healing restores links and one view', async (t) => {
  const available = await netnsAvailable()
  if (!available.ok) {
    t.diagnostic(`network namespaces unavailable: ${available.reason}`)
    t.skip(`network namespaces unavailable: ${available.reason}`)
    return
  }
  const started = Date.now()
  const cluster = await NetnsCluster.create(HOSTS)
  t.after(async () => { await cluster.close() })
  await cluster.startAllHealthy()
  const healthyMs = Date.now() - started
  const everyone = [cluster.hosts.map((_, index) => index)]
  const meshMs = await waitForLinks(cluster, everyone, 'every node linked to the 4 others')
  t.diagnostic(`startup: every node healthy after ${healthyMs} ms, full mesh ${meshMs} ms later (subnet ${cluster.subnet}.0/24)`)

  const quorumIs = (expected: (index: number) => boolean) => async (index: number): Promise<boolean> =>
    (await clusterMembers(cluster, index))?.hasQuorum === expected(index)
  const majoritySide = (index: number): boolean => (SIDES[1] as number[]).includes(index)
  await waitForAllAlive(cluster)
  await waitForEveryNode(cluster, 'every node has quorum before the partition', quorumIs(() => true))

  await cluster.partition(SIDES)
  const quorumMs = await waitForEveryNode(cluster, 'nodes 0-1 without quorum, nodes 2-4 with it', quorumIs(majoritySide))
  t.diagnostic(`partition: quorum answers per side after ${quorumMs} ms`)
  const cutMs = await waitForLinks(cluster, SIDES, 'links only within each side of {0,1} | {2,3,4}')
  t.diagnostic(`partition: links across the cut gone after ${cutMs} ms`)
  // The answers hold for as long as the partition does.
  await waitForEveryNode(cluster, 'quorum answers unchanged once the links are gone', quorumIs(majoritySide), 1_000)

  await cluster.heal()
  const healedMs = await waitForLinks(cluster, everyone, 'every node linked to the 4 others again')
  t.diagnostic(`heal: full mesh again after ${healedMs} ms`)
  const views = async (): Promise<string[]> => await Promise.all(cluster.hosts.map(async (_, index) =>
    JSON.stringify((await clusterMembers(cluster, index))?.members.map((member) => [member.id, member.state, member.incarnation]) ?? null)))
  const convergedMs = await waitForEveryNode(cluster, 'every node holds the same view, every member alive, with quorum', async (index) => {
    const all = await views()
    const body = await clusterMembers(cluster, index)
    return new Set(all).size === 1 && body?.hasQuorum === true && body.members.every((member) => member.state === 'alive')
  })
  t.diagnostic(`heal: views converged ${convergedMs} ms after the links came back`)
})
