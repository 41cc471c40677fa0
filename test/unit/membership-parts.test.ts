/** The pure parts of membership: Lifeguard's suspicion timeout, the update queue, peer scores. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { PeerScores, UpdateQueue, defaultScoreLimits, quorumSize, retransmitLimit, suspicionTimeoutMs, type MemberUpdate } from '../../src/membership/index.js'

const a = 'aaaaaaaaaaaaaaaaaaaa'
const b = 'bbbbbbbbbbbbbbbbbbbb'
const c = 'cccccccccccccccccccc'

describe('suspicion timeout (Lifeguard)', () => {
  it('starts at the maximum, shrinks logarithmically with confirmations and stops at the minimum', () => {
    assert.equal(suspicionTimeoutMs(0, 3, 2_000, 6_000), 6_000)
    assert.equal(suspicionTimeoutMs(1, 3, 2_000, 6_000), 4_000)
    assert.equal(suspicionTimeoutMs(2, 3, 2_000, 6_000), Math.round(6_000 - 4_000 * Math.log(3) / Math.log(4)))
    assert.equal(suspicionTimeoutMs(3, 3, 2_000, 6_000), 2_000)
    assert.equal(suspicionTimeoutMs(9, 3, 2_000, 6_000), 2_000)
    assert.equal(suspicionTimeoutMs(0, 0, 2_000, 6_000), 2_000, 'with nobody to confirm, the minimum')
  })
  it('retransmits scale with log10 of the cluster size, and quorum is a strict majority', () => {
    assert.deepEqual([1, 5, 9, 10, 50, 500].map((n) => retransmitLimit(4, n)), [4, 4, 4, 8, 8, 12])
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(quorumSize), [1, 2, 2, 3, 3, 4])
  })
})

describe('update queue', () => {
  const update = (member: string, state: MemberUpdate['state'], incarnation: number, from = member): MemberUpdate => ({ member, state, incarnation, from })
  it('keeps the newest claim per member, each suspicion accuser side by side, and counts only sent copies', () => {
    const queue = new UpdateQueue(() => 2)
    queue.enqueue(update(a, 'alive', 1))
    queue.enqueue(update(a, 'suspect', 1, b))
    queue.enqueue(update(a, 'suspect', 1, c))
    assert.equal(queue.size, 2, 'the suspicion replaced the alive claim; two accusers kept')
    queue.enqueue(update(b, 'alive', 3))
    const first = queue.select(2, [b])
    assert.equal(first[0]?.member, b, 'the recipient hears about itself first')
    assert.equal(queue.size, 3, 'select alone spends nothing')
    queue.sent(first)
    queue.sent(first)
    assert.equal(queue.size, 1, 'sent twice with a limit of 2: gone')
    queue.enqueue(update(a, 'dead', 1, b))
    assert.deepEqual(queue.select(10).map((entry) => entry.state), ['dead'], 'a death replaces every suspicion of the member')
  })
})

describe('peer scores', () => {
  it('bans at the threshold, doubles the ban on repeat, decays with the half-life', () => {
    const scores = new PeerScores(defaultScoreLimits)
    for (let i = 0; i < 9; i++) assert.equal(scores.penalize(a, 'protocol_violation', 0).bannedUntilMs, null)
    assert.equal(scores.view(a, 0).score, -90)
    const ban = scores.penalize(a, 'protocol_violation', 0)
    assert.equal(ban.bannedUntilMs, defaultScoreLimits.banDurationMsMin)
    assert.ok(scores.isBanned(a, 1) && !scores.isBanned(b, 1))
    assert.equal(scores.isBanned(a, defaultScoreLimits.banDurationMsMin), false, 'the ban ends on time')
    const at = defaultScoreLimits.banDurationMsMin
    assert.equal(scores.view(a, at).score, 0, 'a served ban wipes the slate')
    assert.equal(scores.penalize(a, 'equivocation', at).bannedUntilMs, at + 2 * defaultScoreLimits.banDurationMsMin, 'the second ban lasts twice as long')
    scores.penalize(b, 'invalid_signature', 0)
    assert.equal(scores.view(b, defaultScoreLimits.scoreHalfLifeMs).score, -25, 'half the penalty after one half-life')
    assert.equal(scores.view(c, 0).score, 0)
  })
})
