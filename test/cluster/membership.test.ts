/**
 * Membership across 5 real node processes on loopback: SIGKILL one and the four others declare it
 * dead within the documented bound (read from each node's own clock, not from polling); restart
 * it and it is alive again at a higher incarnation; a graceful stop is a leave, not a death.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestCluster } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'

/** docs/membership.md: a crashed process is declared dead by every other node within 5 s. */
const DETECTION_BOUND_MS = 5_000
const SETTLE_TIMEOUT_MS = 20_000

interface MemberBody { id: string, state: string, incarnation: number, stateSinceMs: number, reachable: boolean, score: number }
interface MembersBody { self: string, hasQuorum: boolean, quorumSize: number, reachable: string[], members: MemberBody[] }

describe('membership across 5 real processes', () => {
  let cluster: TestCluster
  const indexes = [0, 1, 2, 3, 4]
  const members = async (index: number): Promise<MembersBody | null> => await cluster.getJson<MembersBody>(index, '/v1/cluster/members')
  const heldBy = async (index: number, member: string): Promise<MemberBody | undefined> => (await members(index))?.members.find((entry) => entry.id === member)
  const allHold = async (among: number[], member: string, state: string): Promise<boolean> =>
    (await Promise.all(among.map(async (index) => (await heldBy(index, member))?.state === state))).every(Boolean)
  const allAlive = async (): Promise<boolean> =>
    (await Promise.all(indexes.map(async (index) => (await members(index))?.members.every((member) => member.state === 'alive') === true))).every(Boolean)

  before(async () => {
    cluster = await TestCluster.create(5)
    cluster.startAll()
    await Promise.all(indexes.map(async (index) => { await cluster.waitHealthy(index) }))
    await waitUntil(allAlive, SETTLE_TIMEOUT_MS, 'every node holds every member alive')
  })
  after(async () => { await cluster.destroy() })

  it('shows every member, its state and incarnation, and the quorum', async () => {
    // On a starved machine a probe can time out and a member be suspected for a moment after the
    // cluster settled (clean-clone CI runs saw 3 of 5 reachable 50 ms after every node held all
    // alive, and 4 of 5 in the read right after one that saw 5): the assertions are made on the
    // view that showed node 0 reaching everyone, and a member that stays unreachable still fails
    // the test.
    const seen: { body: MembersBody | null, metrics: string } = { body: null, metrics: '' }
    await waitUntil(async () => {
      seen.body = await members(0)
      return seen.body?.reachable.length === indexes.length
    }, SETTLE_TIMEOUT_MS, 'node 0 reaches every member')
    const body = seen.body
    assert.ok(body !== null)
    assert.equal(body.self, cluster.nodeId(0))
    assert.equal(body.hasQuorum, true)
    assert.equal(body.quorumSize, 3)
    assert.equal(body.reachable.length, 5)
    assert.deepEqual(body.members.map((member) => member.id), indexes.map((index) => cluster.nodeId(index)).sort())
    for (const member of body.members) assert.ok(member.incarnation >= 1 && member.reachable && member.score === 0)
    // The same race for the metrics: read until they count all five alive (or time out and fail).
    await waitUntil(async () => {
      seen.metrics = await (await fetch(`${cluster.api(0)}/metrics`)).text()
      return /^synod_membership_members\{state="alive"\} 5$/m.test(seen.metrics)
    }, SETTLE_TIMEOUT_MS, 'node 0\'s metrics count five members alive')
    const metrics = seen.metrics
    assert.match(metrics, /^synod_membership_has_quorum 1$/m)
    assert.match(metrics, /^synod_membership_members\{state="alive"\} 5$/m)
    assert.match(metrics, /^synod_membership_updates_queued \d+$/m)
    assert.match(metrics, /^synod_membership_corrections_total \d+$/m)
  })

  it('declares a SIGKILLed node dead within the bound, and alive again at a higher incarnation after a restart', async () => {
    const victim = 4
    const victimId = cluster.nodeId(victim)
    const others = indexes.filter((index) => index !== victim)
    const before = (await heldBy(0, victimId))?.incarnation ?? 0
    const killedMs = Date.now()
    await cluster.kill(victim, 'SIGKILL')
    await waitUntil(async () => await allHold(others, victimId, 'dead'), SETTLE_TIMEOUT_MS, `the four others hold ${victimId} dead`, 100)
    for (const index of others) {
      const held = await heldBy(index, victimId)
      const detectedMs = (held?.stateSinceMs ?? Number.POSITIVE_INFINITY) - killedMs
      assert.ok(detectedMs <= DETECTION_BOUND_MS, `node ${index} declared the killed node dead after ${Math.round(detectedMs)} ms, over the ${DETECTION_BOUND_MS} ms bound`)
    }
    cluster.start(victim)
    await cluster.waitHealthy(victim)
    await waitUntil(allAlive, SETTLE_TIMEOUT_MS, 'the restarted node is alive everywhere')
    for (const index of others) {
      const held = await heldBy(index, victimId)
      assert.ok(held !== undefined && held.incarnation > before, `node ${index} holds the restarted node at incarnation ${held?.incarnation}, not above ${before}`)
    }
  })

  it('marks a gracefully stopped node left, not dead', async () => {
    const leaver = 3
    const leaverId = cluster.nodeId(leaver)
    const others = indexes.filter((index) => index !== leaver)
    await cluster.kill(leaver, 'SIGTERM')
    await waitUntil(async () => await allHold(others, leaverId, 'left'), SETTLE_TIMEOUT_MS, `the others hold ${leaverId} left`, 100)
    // A left member is not suspected or declared dead later on.
    await new Promise((resolve) => setTimeout(resolve, DETECTION_BOUND_MS))
    assert.ok(await allHold(others, leaverId, 'left'), 'still left, never dead')
    cluster.start(leaver)
    await cluster.waitHealthy(leaver)
    await waitUntil(allAlive, SETTLE_TIMEOUT_MS, 'the node that left is alive again after it restarts')
  })
})
