/** The pure parts of membership: Lifeguard's suspicion timeout, the update queue, peer scores. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
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

  it('selects exactly what a plain sort of the whole queue selects, over random histories', () => {
    /** The obvious model: a list, filtered and sorted on every call. */
    class Model {
      entries: Array<{ update: MemberUpdate, transmits: number, order: number }> = []
      order = 0
      constructor (readonly limit: number) {}
      key (update: MemberUpdate): string { return update.state === 'suspect' ? `${update.member}/${update.from}` : update.member }
      enqueue (update: MemberUpdate): void {
        this.entries = this.entries.filter((entry) => entry.update.member !== update.member || (this.key(entry.update) !== this.key(update) && update.state === 'suspect' && entry.update.state === 'suspect'))
        this.entries.push({ update, transmits: 0, order: ++this.order })
      }
      select (countMax: number, first: string[]): { lead: MemberUpdate[], rest: MemberUpdate[] } {
        const lead = first.flatMap((wanted) => this.entries.filter((entry) => entry.update.member === wanted)).slice(0, countMax)
        const rest = this.entries.filter((entry) => !lead.includes(entry)).sort((x, y) => x.transmits - y.transmits || y.order - x.order)
        return { lead: lead.map((entry) => entry.update), rest: rest.slice(0, countMax - lead.length).map((entry) => entry.update) }
      }
      sent (updates: MemberUpdate[]): void {
        for (const update of updates) {
          const entry = this.entries.find((held) => held.update === update)
          if (entry !== undefined && ++entry.transmits >= this.limit) this.entries = this.entries.filter((held) => held !== entry)
        }
      }
    }
    const member = fc.constantFrom(a, b, c, 'dddddddddddddddddddd')
    const step = fc.oneof(
      fc.record({ op: fc.constant('enqueue' as const), member, from: member, state: fc.constantFrom<MemberUpdate['state']>('alive', 'suspect', 'dead', 'left'), incarnation: fc.nat(5) }),
      fc.record({ op: fc.constant('send' as const), countMax: fc.integer({ min: 0, max: 5 }), first: fc.subarray([a, b, c]) })
    )
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.array(step, { maxLength: 60 }), (limit, steps) => {
      const queue = new UpdateQueue(() => limit)
      const model = new Model(limit)
      for (const next of steps) {
        if (next.op === 'enqueue') {
          const update: MemberUpdate = { member: next.member, state: next.state, incarnation: next.incarnation, from: next.from }
          queue.enqueue(update)
          model.enqueue(update)
        } else {
          const chosen = queue.select(next.countMax, next.first)
          const expected = model.select(next.countMax, next.first)
          assert.equal(chosen.length, expected.lead.length + expected.rest.length)
          assert.deepEqual(new Set(chosen.slice(0, expected.lead.length)), new Set(expected.lead), 'the recipient and sender lead')
          assert.deepEqual(chosen.slice(expected.lead.length), expected.rest, 'then least transmitted, newest first')
          queue.sent(chosen)
          model.sent(chosen)
        }
        assert.equal(queue.size, model.entries.length)
      }
    }), { numRuns: 300 })
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
