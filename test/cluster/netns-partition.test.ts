/**
 * Five nodes on five hosts (Linux network namespaces) with a real network partition: cut into
 * {0,1} | {2,3,4}, nodes 0-1 report no quorum and nodes 2-4 report quorum (as in the simulator),
 * every link across the cut dies and every link within a side stays up; healed, every link comes
 * back and every node converges to the same view with quorum. Skipped, with the reason, where
 * network namespaces are unavailable.
 */
import { test } from 'node:test'
import { NetnsCluster, netnsAvailable } from '../support/netns.js'
import { waitUntil } from '../support/ports.js'

const HOSTS = 5
const SIDES = [[0, 1], [2, 3, 4]]
const LINKS_TIMEOUT_MS = 30_000
const POLL_MS = 200

/** What `GET /v1/cluster/members` answers, as far as the quorum checks need it. */
export interface ClusterMembersBody { hasQuorum: boolean, members: Array<{ id: string, state: string, incarnation: number }> }

/** Node `index`'s membership view (`GET /v1/cluster/members`), or null while it does not answer. */
export async function clusterMembers (cluster: NetnsCluster, index: number): Promise<ClusterMembersBody | null> {
  return await cluster.getJson<ClusterMembersBody>(index, '/v1/cluster/members')
}

/** The hosts node `index` should have live links to: the others on its side of `sides`. */
export function sameSide (sides: number[][], index: number): number[] {
  return (sides.find((side) => side.includes(index)) ?? []).filter((other) => other !== index)
}

/** Host indexes of node `index`'s connected peers, sorted. */
async function linkedHosts (cluster: NetnsCluster, index: number): Promise<number[]> {
  const ids = cluster.init.members.map((member) => member.id)
  return (await cluster.connectedPeers(index)).map((peer) => ids.indexOf(peer)).sort((a, b) => a - b)
}

/**
 * Polls until `check(index)` holds for every node at once and returns how long that took; on
 * timeout the error shows every node's live links (as host indexes) and the end of every log.
 * Use it for any per-node condition, such as `(await clusterMembers(cluster, i))?.hasQuorum`.
 */
export async function waitForEveryNode (cluster: NetnsCluster, what: string, check: (index: number) => Promise<boolean>, timeoutMs = LINKS_TIMEOUT_MS): Promise<number> {
  const started = Date.now()
  const nodes = cluster.hosts.map((_, index) => index)
  try {
    await waitUntil(async () => (await Promise.all(nodes.map(check))).every(Boolean), timeoutMs, what, POLL_MS)
  } catch (error) {
    const views = await Promise.all(nodes.map(async (index) => `node ${index} linked to hosts [${(await linkedHosts(cluster, index)).join(', ')}]`))
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${views.join('\n')}\n${cluster.logs()}`)
  }
  return Date.now() - started
}

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
  await waitForEveryNode(cluster, 'every node holds every member alive', async (index) =>
    (await clusterMembers(cluster, index))?.members.every((member) => member.state === 'alive') === true)
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
