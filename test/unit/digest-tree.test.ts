/**
 * The anti-entropy digest tree (src/store/digest-tree.ts): determinism and hash format, exact
 * 48-bit placement, node checks, diffEntries, digestTreeDepth, and the exchange protocol run
 * between two trees with every digest counted. The figures printed here (digests exchanged for d
 * differing keys among n) are the ones to quote for anti-entropy's cost.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bytesEqual, sha256 } from '../../src/core/index.js'
import { StoreError } from '../../src/store/errors.js'
import {
  DIGEST_TREE_DEPTH_MAX, DIGEST_TREE_HASH_BYTES, DIGEST_TREE_ROOT, DigestTree, descend, diffEntries, digestTreeDepth,
  keyPosition, RING_POSITIONS,
  type TreeEntry, type TreeNodeHash, type TreeNodeRef
} from '../../src/store/index.js'

const utf8 = new TextEncoder()

function stateDigest (key: string, version: number): Uint8Array {
  return sha256(utf8.encode(`${key}#${version}`)).slice(0, DIGEST_TREE_HASH_BYTES)
}

function entryOf (key: string, version = 0): TreeEntry {
  return { key, position: keyPosition(key), digest: stateDigest(key, version) }
}

function keysOf (count: number, tag = 'key'): string[] {
  return Array.from({ length: count }, (_, index) => `${tag}:${index}`)
}

function isStoreBadRequest (error: unknown): boolean {
  return error instanceof StoreError && error.code === 'STORE_BAD_REQUEST'
}

function sortedKeys (keys: Iterable<string>): string[] {
  return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

interface ExchangeOutcome {
  /** Every node hash sent by either side, the initiator's root included. */
  digests: number
  /** Messages of hashes sent (the root message included). */
  messages: number
  leaves: TreeNodeRef[]
  /** From the initiator's side: keys it sends, keys it asks for. */
  send: string[]
  request: string[]
  /** (key, digest) pairs the two sides send each other to settle the mismatched leaves. */
  pairsExchanged: number
}

/**
 * The whole exchange, as the service runs it: A (the initiator) sends its root; the sides then
 * alternate `descend` until a step has nothing to send; the mismatched leaves found by either side
 * are settled by swapping the (key, digest) pairs under them. The responder builds its tree at the
 * initiator's depth, which is why the depths must match.
 */
function exchange (initiator: DigestTree, responder: DigestTree): ExchangeOutcome {
  assert.equal(responder.depth, initiator.depth, 'the responder builds its tree at the depth the initiator announces')
  let message: TreeNodeHash[] = [{ ...DIGEST_TREE_ROOT, hash: initiator.hash(DIGEST_TREE_ROOT) }]
  let digests = message.length
  let messages = 1
  const leaves: TreeNodeRef[] = []
  let receiver = responder
  let sender = initiator
  while (message.length > 0) {
    const step = descend(receiver, message)
    leaves.push(...step.leaves)
    message = step.next
    digests += message.length
    if (message.length > 0) messages++;
    [receiver, sender] = [sender, receiver]
  }
  const leafIds = new Set(leaves.map((leaf) => `${leaf.level}/${leaf.prefix}`))
  assert.equal(leafIds.size, leaves.length, 'each mismatched leaf is found once')
  const send = new Set<string>()
  const request = new Set<string>()
  let pairsExchanged = 0
  for (const leaf of leaves) {
    assert.equal(leaf.level, initiator.depth)
    const mine = initiator.entriesUnder(leaf)
    const theirs = responder.entriesUnder(leaf)
    pairsExchanged += mine.length + theirs.length
    const fromInitiator = diffEntries(mine, theirs)
    const fromResponder = diffEntries(theirs, mine)
    assert.deepEqual(fromResponder, { send: fromInitiator.request, request: fromInitiator.send }, 'both sides agree on what moves')
    for (const key of fromInitiator.send) send.add(key)
    for (const key of fromInitiator.request) request.add(key)
  }
  return { digests, messages, leaves, send: sortedKeys(send), request: sortedKeys(request), pairsExchanged }
}

/**
 * Two replicas of n keys with d differences, in turn: a changed digest, a key only A holds, a key
 * only B holds. Returns the trees, built at the depth for the larger side, and the expected lists.
 */
function replicasWithDifferences (keyCount: number, differenceCount: number): {
  a: DigestTree, b: DigestTree, expectedSend: string[], expectedRequest: string[]
} {
  const keys = keysOf(keyCount)
  const aEntries = keys.map((key) => entryOf(key))
  const bByKey = new Map(aEntries.map((entry) => [entry.key, entry]))
  const expectedSend: string[] = []
  const expectedRequest: string[] = []
  for (let index = 0; index < differenceCount; index++) {
    const key = keys[index]
    switch (index % 3) {
      case 0:
        bByKey.set(key, entryOf(key, 1))
        expectedSend.push(key)
        expectedRequest.push(key)
        break
      case 1:
        bByKey.delete(key)
        expectedSend.push(key)
        break
      default: {
        const onlyB = `only-b:${index}`
        bByKey.set(onlyB, entryOf(onlyB))
        expectedRequest.push(onlyB)
      }
    }
  }
  const depth = digestTreeDepth(Math.max(aEntries.length, bByKey.size))
  return {
    a: DigestTree.build(aEntries, depth),
    b: DigestTree.build(bByKey.values(), depth),
    expectedSend: sortedKeys(expectedSend),
    expectedRequest: sortedKeys(expectedRequest)
  }
}

/** The cost bound: the root, then two children for each mismatched inner node, at most d a level. */
function digestBound (differenceCount: number, depth: number): number {
  return 2 * differenceCount * (depth + 1) + 1
}

describe('digest tree: hashes', () => {
  const entries = keysOf(500).map((key) => entryOf(key))

  it('gives the same root for the same entries in any order, and the all-zero root when empty', () => {
    for (const depth of [0, 1, 6, DIGEST_TREE_DEPTH_MAX]) {
      const forward = DigestTree.build(entries, depth)
      const backward = DigestTree.build([...entries].reverse(), depth)
      const shuffled = DigestTree.build([...entries].sort((x, y) => x.digest[0] - y.digest[0]), depth)
      assert.ok(bytesEqual(forward.hash(DIGEST_TREE_ROOT), backward.hash(DIGEST_TREE_ROOT)), `depth ${depth}`)
      assert.ok(bytesEqual(forward.hash(DIGEST_TREE_ROOT), shuffled.hash(DIGEST_TREE_ROOT)), `depth ${depth}`)
      assert.equal(forward.size, entries.length)
      const empty = DigestTree.build([], depth)
      assert.equal(empty.size, 0)
      assert.deepEqual(empty.hash(DIGEST_TREE_ROOT), new Uint8Array(DIGEST_TREE_HASH_BYTES))
      assert.ok(!bytesEqual(forward.hash(DIGEST_TREE_ROOT), empty.hash(DIGEST_TREE_ROOT)))
    }
  })

  it('changes the root when a digest changes, a key is added or a key is removed', () => {
    const depth = digestTreeDepth(entries.length)
    const root = DigestTree.build(entries, depth).hash(DIGEST_TREE_ROOT)
    const changed = entries.map((entry, index) => (index === 123 ? entryOf(entry.key, 1) : entry))
    const added = [...entries, entryOf('one-more')]
    const removed = entries.slice(1)
    for (const [name, variant] of [['changed', changed], ['added', added], ['removed', removed]] as const) {
      assert.ok(!bytesEqual(DigestTree.build(variant, depth).hash(DIGEST_TREE_ROOT), root), name)
    }
  })

  it('hashes a leaf as 0x00 then (u32 key length, key, digest) in key order, and an inner node as 0x01 || left || right', () => {
    const low = { key: 'b', position: 5, digest: new Uint8Array(16).fill(0xbb) }
    const lowToo = { key: 'a\u00e9', position: 7, digest: new Uint8Array(16).fill(0xaa) }
    const high = { key: 'c', position: RING_POSITIONS - 1, digest: new Uint8Array(16).fill(0xcc) }
    const leafInput = Uint8Array.of(
      0x00,
      0, 0, 0, 3, 0x61, 0xc3, 0xa9, ...lowToo.digest,
      0, 0, 0, 1, 0x62, ...low.digest
    )
    const lowLeaf = sha256(leafInput).slice(0, 16)
    assert.deepEqual(DigestTree.build([low, lowToo], 0).hash(DIGEST_TREE_ROOT), lowLeaf)
    const highLeaf = sha256(Uint8Array.of(0x00, 0, 0, 0, 1, 0x63, ...high.digest)).slice(0, 16)
    const tree = DigestTree.build([high, low, lowToo], 1)
    assert.deepEqual(tree.hash({ level: 1, prefix: 0 }), lowLeaf)
    assert.deepEqual(tree.hash({ level: 1, prefix: 1 }), highLeaf)
    assert.deepEqual(tree.hash(DIGEST_TREE_ROOT), sha256(Uint8Array.of(0x01, ...lowLeaf, ...highLeaf)).slice(0, 16))
    const lopsided = DigestTree.build([high], 1)
    assert.deepEqual(lopsided.hash(DIGEST_TREE_ROOT), sha256(Uint8Array.of(0x01, ...new Uint8Array(16), ...highLeaf)).slice(0, 16))
  })

  it('places 48-bit positions by their top bits exactly (past 32 bits), and lists entries under any node by key', () => {
    const positions = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 47 - 1, 2 ** 47, 2 ** 48 - 2 ** 24, 2 ** 48 - 1]
    const entries = positions.map((position, index) => ({ key: `p${7 - index}`, position, digest: stateDigest(`p${index}`, 0) }))
    const tree = DigestTree.build(entries, DIGEST_TREE_DEPTH_MAX)
    const keysUnder = (level: number, prefix: number): string[] => tree.entriesUnder({ level, prefix }).map((entry) => entry.key)
    assert.deepEqual(keysUnder(0, 0), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'])
    assert.deepEqual(keysUnder(1, 0), ['p3', 'p4', 'p5', 'p6', 'p7'])
    assert.deepEqual(keysUnder(1, 1), ['p0', 'p1', 'p2'])
    assert.deepEqual(keysUnder(16, 0), ['p5', 'p6', 'p7'], 'positions below 2**32 share the first 16 bits')
    assert.deepEqual(keysUnder(16, 1), ['p4'], '2**32 starts the next 16-bit prefix')
    assert.deepEqual(keysUnder(24, 2 ** 24 - 1), ['p0', 'p1'])
    assert.deepEqual(keysUnder(24, 2 ** 23), ['p2'])
    assert.deepEqual(keysUnder(24, 2 ** 23 - 1), ['p3'])
    assert.deepEqual(keysUnder(24, 12345), [])
    assert.ok(!bytesEqual(tree.hash({ level: 24, prefix: 2 ** 24 - 1 }), new Uint8Array(16)))
    assert.deepEqual(tree.hash({ level: 24, prefix: 2 ** 24 - 2 }), new Uint8Array(16))
  })

  it("gives every inner node two children one level down with this tree's hashes", () => {
    const tree = DigestTree.build(entries, 5)
    for (let level = 0; level < tree.depth; level++) {
      for (let prefix = 0; prefix < 2 ** level; prefix++) {
        const children = tree.children({ level, prefix })
        assert.deepEqual(children.map(({ level, prefix }) => [level, prefix]), [[level + 1, 2 * prefix], [level + 1, 2 * prefix + 1]])
        for (const child of children) assert.deepEqual(child.hash, tree.hash(child))
        const under = tree.entriesUnder({ level, prefix }).map((entry) => entry.key)
        const fromChildren = children.flatMap((child) => tree.entriesUnder(child)).map((entry) => entry.key)
        assert.deepEqual(under, sortedKeys(fromChildren))
      }
    }
    const mismatched = tree.mismatched([
      { level: 0, prefix: 0, hash: tree.hash(DIGEST_TREE_ROOT) },
      { level: 3, prefix: 2, hash: new Uint8Array(16) },
      { level: 5, prefix: 31, hash: tree.hash({ level: 5, prefix: 31 }).slice(0, 15) }
    ])
    assert.deepEqual(mismatched, [{ level: 3, prefix: 2 }, { level: 5, prefix: 31 }])
  })

  it('rejects nodes outside the tree (they come from a peer) with STORE_BAD_REQUEST', () => {
    const tree = DigestTree.build(entries, 4)
    const outside: TreeNodeRef[] = [
      { level: 5, prefix: 0 }, { level: -1, prefix: 0 }, { level: 2, prefix: 4 }, { level: 2, prefix: -1 },
      { level: 1.5, prefix: 0 }, { level: 2, prefix: 0.5 }, { level: Number.NaN, prefix: 0 }
    ]
    for (const node of outside) {
      assert.throws(() => tree.hash(node), isStoreBadRequest, JSON.stringify(node))
      assert.throws(() => tree.children(node), isStoreBadRequest)
      assert.throws(() => tree.entriesUnder(node), isStoreBadRequest)
      assert.throws(() => tree.mismatched([{ ...node, hash: new Uint8Array(16) }]), isStoreBadRequest)
    }
    assert.throws(() => tree.children({ level: 4, prefix: 3 }), isStoreBadRequest, 'a leaf has no children')
    for (const depth of [-1, DIGEST_TREE_DEPTH_MAX + 1, 2.5]) assert.throws(() => DigestTree.build(entries, depth), isStoreBadRequest)
  })

  it('asserts its entries are well formed (they come from the local store)', () => {
    const good = entryOf('x')
    assert.throws(() => DigestTree.build([good, entryOf('x', 1)], 3), /duplicate key/)
    assert.throws(() => DigestTree.build([{ ...good, digest: new Uint8Array(32) }], 3), /16 bytes/)
    assert.throws(() => DigestTree.build([{ ...good, position: RING_POSITIONS }], 3), /ring position/)
    assert.throws(() => DigestTree.build([{ ...good, position: -1 }], 3), /ring position/)
  })
})

describe('digest tree: depth and diffs', () => {
  it('picks ceil(log2(count / target)) clamped to [0, 24]', () => {
    const table: Array<[count: number, target: number | undefined, depth: number]> = [
      [0, undefined, 0], [1, undefined, 0], [8, undefined, 0], [9, undefined, 1], [16, undefined, 1], [17, undefined, 2],
      [1_000, undefined, 7], [10_000, undefined, 11], [100_000, undefined, 14], [1_000_000, undefined, 17],
      [8 * 2 ** 24, undefined, 24], [8 * 2 ** 24 + 1, undefined, 24], [1e12, undefined, 24],
      [64, 1, 6], [65, 1, 7], [1_000, 1_000, 0], [1_001, 1_000, 1], [48, 3, 4], [49, 3, 5]
    ]
    for (const [count, target, depth] of table) assert.equal(digestTreeDepth(count, target), depth, `${count} / ${target}`)
    assert.throws(() => digestTreeDepth(-1))
    assert.throws(() => digestTreeDepth(10, 0))
  })

  it('never compares trees of different depth: the same entries give different roots, and deeper nodes are rejected', () => {
    const entries = keysOf(1_000).map((key) => entryOf(key))
    const shallow = DigestTree.build(entries, 6)
    const deep = DigestTree.build(entries, 7)
    assert.ok(!bytesEqual(shallow.hash(DIGEST_TREE_ROOT), deep.hash(DIGEST_TREE_ROOT)),
      'so both sides build at the initiator depth (it announces the depth with its root)')
    assert.throws(() => shallow.mismatched(deep.children({ level: 6, prefix: 0 })), isStoreBadRequest)
    assert.equal(exchange(shallow, DigestTree.build([...entries].reverse(), 6)).digests, 1)
  })

  it('diffEntries: sends what the other lacks or holds differently, requests what it lacks or holds differently', () => {
    const digest = (tag: number): Uint8Array => new Uint8Array(16).fill(tag)
    const mine = (pairs: Array<[string, number]>): TreeEntry[] => pairs.map(([key, tag]) => ({ key, position: 0, digest: digest(tag) }))
    const theirs = (pairs: Array<[string, number]>): Array<{ key: string, digest: Uint8Array }> => pairs.map(([key, tag]) => ({ key, digest: digest(tag) }))
    const cases: Array<{ name: string, mine: Array<[string, number]>, theirs: Array<[string, number]>, send: string[], request: string[] }> = [
      { name: 'both empty', mine: [], theirs: [], send: [], request: [] },
      { name: 'equal', mine: [['a', 1], ['b', 2]], theirs: [['b', 2], ['a', 1]], send: [], request: [] },
      { name: 'only mine', mine: [['a', 1]], theirs: [], send: ['a'], request: [] },
      { name: 'only theirs', mine: [], theirs: [['a', 1]], send: [], request: ['a'] },
      { name: 'differing digest: both lists', mine: [['a', 1]], theirs: [['a', 2]], send: ['a'], request: ['a'] },
      {
        name: 'mixed, unsorted in, sorted out',
        mine: [['z', 1], ['m', 1], ['c', 3], ['a', 1]],
        theirs: [['y', 1], ['c', 4], ['a', 1], ['b', 9]],
        send: ['c', 'm', 'z'],
        request: ['b', 'c', 'y']
      },
      { name: 'a key repeated by the peer appears once', mine: [], theirs: [['a', 1], ['a', 1]], send: [], request: ['a'] }
    ]
    for (const testCase of cases) {
      assert.deepEqual(diffEntries(mine(testCase.mine), theirs(testCase.theirs)), { send: testCase.send, request: testCase.request }, testCase.name)
    }
  })
})

describe('digest tree: the exchange', () => {
  it('exchanges exactly one digest (the root) between replicas in sync, n = 10,000', (t) => {
    const { a, b } = replicasWithDifferences(10_000, 0)
    const outcome = exchange(a, b)
    assert.deepEqual(outcome, { digests: 1, messages: 1, leaves: [], send: [], request: [], pairsExchanged: 0 })
    t.diagnostic(`n = 10000, d = 0, depth ${a.depth}: 1 digest`)
  })

  it('finds exactly the d differing keys among n = 10,000 with at most 2·d·(depth + 1) + 1 digests', (t) => {
    const digestsByDifferences: number[] = []
    for (const differenceCount of [1, 10, 100]) {
      const { a, b, expectedSend, expectedRequest } = replicasWithDifferences(10_000, differenceCount)
      const outcome = exchange(a, b)
      assert.deepEqual(outcome.send, expectedSend, `d = ${differenceCount}`)
      assert.deepEqual(outcome.request, expectedRequest, `d = ${differenceCount}`)
      assert.ok(outcome.leaves.length <= differenceCount)
      const bound = digestBound(differenceCount, a.depth)
      assert.ok(outcome.digests <= bound, `d = ${differenceCount}: ${outcome.digests} digests > ${bound}`)
      digestsByDifferences.push(outcome.digests)
      t.diagnostic(`n = 10000, d = ${differenceCount}, depth ${a.depth}: ${outcome.digests} digests (bound ${bound}) in ${outcome.messages} messages, ` +
        `${outcome.leaves.length} leaves, ${outcome.pairsExchanged} (key, digest) pairs to settle them`)
    }
    assert.ok(digestsByDifferences[0] < digestsByDifferences[1] && digestsByDifferences[1] < digestsByDifferences[2], 'grows with d')
  })

  it('grows with log n, not n: d = 10 among n = 1,000 and n = 100,000', (t) => {
    const digestsByKeys: number[] = []
    for (const keyCount of [1_000, 100_000]) {
      const { a, b, expectedSend, expectedRequest } = replicasWithDifferences(keyCount, 10)
      const outcome = exchange(a, b)
      assert.deepEqual(outcome.send, expectedSend)
      assert.deepEqual(outcome.request, expectedRequest)
      const bound = digestBound(10, a.depth)
      assert.ok(outcome.digests <= bound, `n = ${keyCount}: ${outcome.digests} digests > ${bound}`)
      digestsByKeys.push(outcome.digests)
      t.diagnostic(`n = ${keyCount}, d = 10, depth ${a.depth}: ${outcome.digests} digests (bound ${bound}), ${outcome.pairsExchanged} pairs`)
    }
    const ratio = digestsByKeys[1] / digestsByKeys[0]
    t.diagnostic(`100x the keys cost ${ratio.toFixed(2)}x the digests`)
    assert.ok(ratio < 4, `100x the keys should cost a few times the digests at most, got ${ratio}`)
  })

  it('finds exactly the symmetric difference of (key, digest) pairs for random overlapping replicas', () => {
    const replica = fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 2 })), {
      selector: ([keyIndex]) => keyIndex,
      maxLength: 60
    })
    fc.assert(fc.property(replica, replica, fc.integer({ min: 0, max: 10 }), fc.boolean(), (aPairs, bPairs, depthChoice, clustered) => {
      // Clustered positions put many keys in few leaves; the spread ones use the real ring positions.
      const positionOf = (key: string): number => (clustered ? Math.floor(keyPosition(key) / 2 ** 44) * 2 ** 44 : keyPosition(key))
      const toEntries = (pairs: Array<[number, number]>): TreeEntry[] =>
        pairs.map(([keyIndex, version]) => ({ key: `k${keyIndex}`, position: positionOf(`k${keyIndex}`), digest: stateDigest(`k${keyIndex}`, version) }))
      const aEntries = toEntries(aPairs)
      const bEntries = toEntries(bPairs)
      const depth = depthChoice === 10 ? DIGEST_TREE_DEPTH_MAX : depthChoice
      const outcome = exchange(DigestTree.build(aEntries, depth), DigestTree.build(bEntries, depth))

      const pairId = (entry: { key: string, digest: Uint8Array }): string => `${entry.key}=${entry.digest.join(',')}`
      const aIds = new Set(aEntries.map(pairId))
      const bIds = new Set(bEntries.map(pairId))
      const aByKey = new Map(aEntries.map((entry) => [entry.key, entry]))
      const bByKey = new Map(bEntries.map((entry) => [entry.key, entry]))
      const onlyA = aEntries.filter((entry) => !bIds.has(pairId(entry))).map(pairId).sort()
      const onlyB = bEntries.filter((entry) => !aIds.has(pairId(entry))).map(pairId).sort()
      assert.deepEqual(outcome.send.map((key) => pairId(aByKey.get(key) as TreeEntry)).sort(), onlyA)
      assert.deepEqual(outcome.request.map((key) => pairId(bByKey.get(key) as TreeEntry)).sort(), onlyB)

      const differingKeys = new Set([...outcome.send, ...outcome.request]).size
      assert.ok(outcome.digests <= (differingKeys === 0 ? 1 : digestBound(differingKeys, depth)))
    }), { numRuns: 300 })
  })
})
