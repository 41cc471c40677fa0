import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { SEED_MAX } from '../../src/core/index.js'
import { NetError } from '../../src/net/errors.js'
import {
  bfsDistances, buildTopology, defaultSpecFor, degreeStats, diameter, edges, graphFromEdges, isConnected, isTopologyName,
  parseTopologySpec, shortestPathNextHops, topologyNames, UNREACHABLE, validateTopology,
  type EdgeUp, type Graph, type TopologyName, type TopologySpecInput
} from '../../src/net/topology.js'

const NODE_COUNTS = Array.from({ length: 64 }, (_, index) => index + 1)

/** Sorted strictly ascending (so no duplicates), in range, no self-loops, symmetric. */
function assertWellFormed (graph: Graph, nodeCount: number): void {
  assert.equal(graph.adjacency.length, nodeCount)
  graph.adjacency.forEach((neighbours, node) => {
    neighbours.forEach((neighbour, position) => {
      assert.ok(Number.isInteger(neighbour) && neighbour >= 0 && neighbour < nodeCount, `node ${node}: neighbour ${neighbour} out of range`)
      assert.notEqual(neighbour, node, `self-loop at node ${node}`)
      if (position > 0) assert.ok(neighbours[position - 1] < neighbour, `node ${node}: neighbours not strictly ascending`)
      assert.ok(graph.adjacency[neighbour].includes(node), `edge ${node}-${neighbour} is not symmetric`)
    })
  })
}

function assertConnectedTopology (graph: Graph, nodeCount: number): void {
  assertWellFormed(graph, nodeCount)
  assert.ok(isConnected(graph), `${nodeCount}-node graph is not connected`)
}

function assertTopologyInvalid (action: () => unknown, messagePattern: RegExp): NetError {
  let caught: unknown
  assert.throws(action, (error: unknown) => { caught = error; return true })
  assert.ok(caught instanceof NetError, `expected a NetError, got ${String(caught)}`)
  assert.equal(caught.code, 'NET_TOPOLOGY_INVALID')
  assert.match(caught.message, messagePattern)
  return caught
}

/** Height and diameter of the level-by-level k-ary tree, from its shape: the two deepest branches under the root, joined there. */
function expectedTreeShape (nodeCount: number, fanout: number): { height: number, diameter: number } {
  const depth = [0]
  const branch = [-1]
  const deepestInBranch = new Map<number, number>()
  for (let position = 1; position < nodeCount; position++) {
    const parent = Math.floor((position - 1) / fanout)
    depth[position] = depth[parent] + 1
    branch[position] = parent === 0 ? position : branch[parent]
    deepestInBranch.set(branch[position], Math.max(deepestInBranch.get(branch[position]) ?? 0, depth[position]))
  }
  const deepest = [...deepestInBranch.values()].sort((a, b) => b - a)
  return { height: Math.max(...depth), diameter: (deepest[0] ?? 0) + (deepest[1] ?? 0) }
}

function nodesPerLevel (distances: number[]): number[] {
  const counts: number[] = []
  for (const distance of distances) counts[distance] = (counts[distance] ?? 0) + 1
  return counts
}

describe('graph helpers', () => {
  const path = graphFromEdges(5, [[2, 1], [0, 1], [1, 2], [3, 2]])

  it('builds sorted, symmetric adjacency without repeats, and lists each edge once', () => {
    assert.deepEqual(path.adjacency, [[1], [0, 2], [1, 3], [2], []])
    assert.deepEqual(edges(path), [[0, 1], [1, 2], [2, 3]])
    assert.deepEqual(degreeStats(path), { degreeMin: 0, degreeMax: 2, degreeMean: 6 / 5 })
    assert.deepEqual(degreeStats({ adjacency: [] }), { degreeMin: 0, degreeMax: 0, degreeMean: 0 })
    assert.throws(() => graphFromEdges(3, [[1, 1]]), /self-loop/)
    assert.throws(() => graphFromEdges(3, [[0, 3]]), /outside/)
  })

  it('measures hop distances, honouring links that are down', () => {
    assert.deepEqual(bfsDistances(path, 0), [0, 1, 2, 3, UNREACHABLE])
    assert.deepEqual(bfsDistances(path, 0, (from, to) => !(from === 1 && to === 2)), [0, 1, UNREACHABLE, UNREACHABLE, UNREACHABLE])
    assert.deepEqual(bfsDistances(path, 3, (from, to) => !(from === 1 && to === 2)), [3, 2, 1, 0, UNREACHABLE])
  })

  it('tells connected from disconnected, among the alive nodes only', () => {
    assert.equal(isConnected(path), false)
    assert.equal(isConnected(path, (node) => node !== 4), true)
    assert.equal(isConnected(path, (node) => node !== 1), false)
    assert.equal(isConnected(path, (node) => node === 4), true)
    assert.equal(isConnected(path, () => false), true)
    assert.equal(isConnected({ adjacency: [[]] }), true)
  })

  it('computes the exact diameter, Infinity when disconnected', () => {
    assert.equal(diameter(path), UNREACHABLE)
    assert.equal(diameter(graphFromEdges(4, [[0, 1], [1, 2], [2, 3]])), 3)
    assert.equal(diameter({ adjacency: [[]] }), 0)
    assert.equal(diameter({ adjacency: [] }), 0)
  })

  it('lists every first hop of a shortest path, and only those', () => {
    const square = graphFromEdges(4, [[0, 1], [1, 2], [2, 3], [3, 0]])
    assert.deepEqual(shortestPathNextHops(square, 0), [[], [1], [1, 3], [3]])
    const zeroToOneDown: EdgeUp = (from, to) => !(from === 0 && to === 1)
    assert.deepEqual(shortestPathNextHops(square, 0, zeroToOneDown), [[], [3], [3], [3]])
    assert.deepEqual(shortestPathNextHops(path, 0), [[], [1], [1], [1], []])
  })

  it('next hops agree with distances from each neighbour (property)', () => {
    const graphArbitrary = fc.integer({ min: 1, max: 16 }).chain((nodeCount) => fc.record({
      nodeCount: fc.constant(nodeCount),
      edgeList: fc.array(fc.tuple(fc.nat(nodeCount - 1), fc.nat(nodeCount - 1)), { maxLength: 40 }),
      downEdges: fc.array(fc.tuple(fc.nat(nodeCount - 1), fc.nat(nodeCount - 1)), { maxLength: 6 }),
      source: fc.nat(nodeCount - 1)
    }))
    fc.assert(fc.property(graphArbitrary, ({ nodeCount, edgeList, downEdges, source }) => {
      const graph = graphFromEdges(nodeCount, edgeList.filter(([a, b]) => a !== b))
      const down = new Set(downEdges.flatMap(([a, b]) => [`${a}-${b}`, `${b}-${a}`]))
      const isEdgeUp: EdgeUp = (from, to) => !down.has(`${from}-${to}`)
      const distances = bfsDistances(graph, source, isEdgeUp)
      const nextHops = shortestPathNextHops(graph, source, isEdgeUp)
      const upNeighbours = graph.adjacency[source].filter((neighbour) => isEdgeUp(source, neighbour))
      const distancesFrom = new Map(upNeighbours.map((neighbour) => [neighbour, bfsDistances(graph, neighbour, isEdgeUp)]))
      for (let destination = 0; destination < nodeCount; destination++) {
        const expected = destination === source || distances[destination] === UNREACHABLE
          ? []
          : upNeighbours.filter((neighbour) => distancesFrom.get(neighbour)?.[destination] === distances[destination] - 1)
        assert.deepEqual(nextHops[destination], expected, `destination ${destination}`)
      }
    }), { numRuns: 300 })
  })
})

describe('topology spec', () => {
  it('names every kind, each with its defaults', () => {
    assert.deepEqual([...topologyNames], ['full-mesh', 'ring', 'tree', 'star', 'random-regular', 'small-world'])
    assert.deepEqual(topologyNames.map(defaultSpecFor), [
      { kind: 'full-mesh' },
      { kind: 'ring' },
      { kind: 'tree', fanout: 2, root: 0 },
      { kind: 'star', center: 0 },
      { kind: 'random-regular', degree: 6, seed: 1 },
      { kind: 'small-world', neighbours: 4, rewireProbability: 0.1, seed: 1 }
    ])
    assert.equal(isTopologyName('ring'), true)
    assert.equal(isTopologyName('hypercube'), false)
    assertTopologyInvalid(() => defaultSpecFor('hypercube' as TopologyName), /unknown topology "hypercube": expected one of full-mesh, ring, tree/)
  })

  it('keeps explicit parameters and degreeMax', () => {
    assert.deepEqual(parseTopologySpec({ kind: 'tree', fanout: 3, root: 2, degreeMax: 4 }), { kind: 'tree', fanout: 3, root: 2, degreeMax: 4 })
    assert.deepEqual(parseTopologySpec({ kind: 'small-world', neighbours: 6, rewireProbability: 0, seed: SEED_MAX }),
      { kind: 'small-world', neighbours: 6, rewireProbability: 0, seed: SEED_MAX })
  })

  it('refuses a bad spec, naming the field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ kind: 'hypercube' }, /field "kind": expected one of full-mesh, ring, tree, star, random-regular, small-world/],
      [{}, /field "kind"/],
      ['ring', /expected object/],
      [{ kind: 'tree', fanout: 0 }, /field "fanout"/],
      [{ kind: 'tree', root: -1 }, /field "root"/],
      [{ kind: 'star', center: 1.5 }, /field "center"/],
      [{ kind: 'random-regular', degree: 0 }, /field "degree"/],
      [{ kind: 'random-regular', seed: 2 ** 32 }, /field "seed"/],
      [{ kind: 'small-world', neighbours: 3 }, /field "neighbours".*multiple of 2/],
      [{ kind: 'small-world', neighbours: 0 }, /field "neighbours"/],
      [{ kind: 'small-world', rewireProbability: 1.5 }, /field "rewireProbability"/],
      [{ kind: 'ring', degreeMax: 0 }, /field "degreeMax"/],
      [{ kind: 'ring', fanout: 2 }, /Unrecognized key: "fanout"/]
    ]
    for (const [value, pattern] of cases) assertTopologyInvalid(() => parseTopologySpec(value), pattern)
  })
})

describe('generators, for every n from 1 to 64', () => {
  it('full mesh: degree n-1, diameter 1 (0 for one node)', () => {
    for (const nodeCount of NODE_COUNTS) {
      const graph = buildTopology({ kind: 'full-mesh' }, nodeCount)
      assertConnectedTopology(graph, nodeCount)
      assert.deepEqual(degreeStats(graph), { degreeMin: nodeCount - 1, degreeMax: nodeCount - 1, degreeMean: nodeCount - 1 })
      assert.equal(diameter(graph), nodeCount === 1 ? 0 : 1)
    }
  })

  it('ring: degree 2 from three nodes on, diameter floor(n/2)', () => {
    for (const nodeCount of NODE_COUNTS) {
      const graph = buildTopology({ kind: 'ring' }, nodeCount)
      assertConnectedTopology(graph, nodeCount)
      const degree = Math.min(2, nodeCount - 1)
      assert.deepEqual(degreeStats(graph), { degreeMin: degree, degreeMax: degree, degreeMean: degree })
      assert.equal(edges(graph).length, nodeCount >= 3 ? nodeCount : nodeCount - 1)
      assert.equal(diameter(graph), Math.floor(nodeCount / 2))
    }
  })

  it('star: the center has degree n-1, every leaf degree 1, diameter 2 from three nodes on', () => {
    for (const nodeCount of NODE_COUNTS) {
      for (const center of new Set([0, nodeCount >> 1, nodeCount - 1])) {
        const graph = buildTopology({ kind: 'star', center }, nodeCount)
        assertConnectedTopology(graph, nodeCount)
        graph.adjacency.forEach((neighbours, node) => assert.equal(neighbours.length, node === center ? nodeCount - 1 : 1))
        assert.equal(diameter(graph), Math.min(2, nodeCount - 1))
      }
    }
  })

  it('k-ary tree (k = 2, 3): n-1 edges, degree at most k+1, full levels from the root, diameter from the shape', () => {
    for (const fanout of [2, 3]) {
      for (const nodeCount of NODE_COUNTS) {
        const { height, diameter: expectedDiameter } = expectedTreeShape(nodeCount, fanout)
        for (const root of new Set([0, nodeCount >> 1, nodeCount - 1])) {
          const graph = buildTopology({ kind: 'tree', fanout, root }, nodeCount)
          const label = `k=${fanout} n=${nodeCount} root=${root}`
          assertConnectedTopology(graph, nodeCount)
          assert.equal(edges(graph).length, nodeCount - 1, label)
          assert.ok(degreeStats(graph).degreeMax <= fanout + 1, label)
          assert.equal(graph.adjacency[root].length, Math.min(fanout, nodeCount - 1), label)
          const levels = nodesPerLevel(bfsDistances(graph, root))
          assert.equal(levels.length - 1, height, label)
          levels.slice(0, -1).forEach((count, level) => assert.equal(count, fanout ** level, `${label}: level ${level} is full`))
          assert.equal(diameter(graph), expectedDiameter, label)
          assert.ok(expectedDiameter <= 2 * height, label)
        }
      }
    }
  })

  it('tree: positions follow the sorted members with the root moved to the front', () => {
    // positions 0..6 are members [3, 0, 1, 2, 4, 5, 6]; position p's parent is floor((p-1)/2)
    const graph = buildTopology({ kind: 'tree', fanout: 2, root: 3 }, 7)
    assert.deepEqual(graph.adjacency, [[2, 3, 4], [3, 5, 6], [0], [0, 1], [0], [1], [1]])
  })

  it('random 6-regular (n >= 7): every degree exactly 6, connected, the same for a seed and different across seeds', () => {
    for (const nodeCount of NODE_COUNTS.filter((count) => count >= 7)) {
      const graph = buildTopology({ kind: 'random-regular', degree: 6, seed: 11 }, nodeCount)
      assertConnectedTopology(graph, nodeCount)
      graph.adjacency.forEach((neighbours, node) => assert.equal(neighbours.length, 6, `n=${nodeCount} node ${node}`))
      assert.deepEqual(buildTopology({ kind: 'random-regular', degree: 6, seed: 11 }, nodeCount), graph)
      const otherSeed = buildTopology({ kind: 'random-regular', degree: 6, seed: 12 }, nodeCount)
      if (nodeCount > 7) assert.notDeepEqual(otherSeed, graph, `n=${nodeCount}: seeds 11 and 12 gave the same graph`)
    }
  })

  it('random-regular reaches every feasible degree, dense ones included', () => {
    for (const nodeCount of [4, 9, 16, 33, 64]) {
      for (let degree = 2; degree < nodeCount; degree++) {
        if ((nodeCount * degree) % 2 !== 0) continue
        const graph = buildTopology({ kind: 'random-regular', degree, seed: 5 }, nodeCount)
        assertConnectedTopology(graph, nodeCount)
        assert.deepEqual(degreeStats(graph), { degreeMin: degree, degreeMax: degree, degreeMean: degree }, `n=${nodeCount} degree=${degree}`)
      }
    }
  })

  it('small world: average degree equals neighbours, connected, deterministic; no rewiring is the ring lattice', () => {
    for (const neighbours of [2, 4, 6]) {
      for (const nodeCount of NODE_COUNTS.filter((count) => count > neighbours)) {
        const spec: TopologySpecInput = { kind: 'small-world', neighbours, rewireProbability: 0.2, seed: 3 }
        const graph = buildTopology(spec, nodeCount)
        assertConnectedTopology(graph, nodeCount)
        assert.equal(degreeStats(graph).degreeMean, neighbours, `n=${nodeCount} neighbours=${neighbours}`)
        assert.deepEqual(buildTopology(spec, nodeCount), graph)
        const lattice = buildTopology({ ...spec, rewireProbability: 0 }, nodeCount)
        assert.deepEqual(degreeStats(lattice), { degreeMin: neighbours, degreeMax: neighbours, degreeMean: neighbours })
        assert.equal(diameter(lattice), Math.ceil(Math.floor(nodeCount / 2) / (neighbours / 2)))
      }
    }
  })

  it('small world with full rewiring still comes out connected and keeps its edge count', () => {
    for (const nodeCount of [8, 20, 64]) {
      const graph = buildTopology({ kind: 'small-world', neighbours: 4, rewireProbability: 1, seed: 9 }, nodeCount)
      assertConnectedTopology(graph, nodeCount)
      assert.equal(edges(graph).length, 2 * nodeCount)
      assert.notDeepEqual(graph, buildTopology({ kind: 'small-world', neighbours: 4, rewireProbability: 0 }, nodeCount))
    }
  })
})

describe('at scale', () => {
  it('a random 6-regular graph over 1000 nodes builds in well under a second, with a small diameter', () => {
    const startedMs = performance.now()
    const graph = buildTopology({ kind: 'random-regular', degree: 6, seed: 1 }, 1_000)
    const elapsedMs = performance.now() - startedMs
    assert.ok(elapsedMs < 500, `took ${elapsedMs.toFixed(0)} ms`)
    assertConnectedTopology(graph, 1_000)
    assert.deepEqual(degreeStats(graph), { degreeMin: 6, degreeMax: 6, degreeMean: 6 })
    assert.ok(diameter(graph) <= 8, `diameter ${diameter(graph)}`)
  })
})

describe('validation errors', () => {
  it('refuses a disconnected graph, naming the kind and the unreached nodes', () => {
    const twoIslands = graphFromEdges(6, [[0, 1], [1, 2], [3, 4], [4, 5]])
    const error = assertTopologyInvalid(() => validateTopology(twoIslands, { kind: 'tree' }),
      /^topology tree is not connected: 3 of 6 nodes cannot be reached from node 0 \(3, 4, 5\); routing and broadcast need a path/)
    assert.deepEqual(error.details.unreachedNodes, [3, 4, 5])
  })

  it('refuses a node over degreeMax, and accepts one at it', () => {
    assertTopologyInvalid(() => buildTopology({ kind: 'star', degreeMax: 8 }, 10), /^topology star: node 0 has degree 9 over degreeMax 8/)
    assertTopologyInvalid(() => validateTopology(buildTopology({ kind: 'full-mesh' }, 5), { kind: 'full-mesh', degreeMax: 3 }), /node 0 has degree 4 over degreeMax 3/)
    assertTopologyInvalid(() => buildTopology({ kind: 'tree', fanout: 3, degreeMax: 3 }, 20), /node \d+ has degree 4 over degreeMax 3/)
    assert.doesNotThrow(() => buildTopology({ kind: 'random-regular', degree: 6, degreeMax: 6 }, 20))
    assert.doesNotThrow(() => buildTopology({ kind: 'ring', degreeMax: 2 }, 20))
  })

  it('refuses impossible random-regular parameters, saying why', () => {
    assertTopologyInvalid(() => buildTopology({ kind: 'random-regular', degree: 3 }, 5), /needs n\*degree even.*n=5, degree=3/)
    assertTopologyInvalid(() => buildTopology({ kind: 'random-regular', degree: 6 }, 5), /needs degree < n.*n=5, degree=6/)
    assertTopologyInvalid(() => buildTopology({ kind: 'random-regular', degree: 1 }, 1), /needs degree < n/)
    assertTopologyInvalid(() => buildTopology({ kind: 'random-regular', degree: 1 }, 6), /degree 1 .* never connected for n > 2: n=6/)
    assert.deepEqual(buildTopology({ kind: 'random-regular', degree: 1 }, 2).adjacency, [[1], [0]])
    assert.deepEqual(buildTopology({ kind: 'random-regular', degree: 4 }, 5), buildTopology({ kind: 'full-mesh' }, 5))
  })

  it('refuses other parameters the member count cannot meet', () => {
    assertTopologyInvalid(() => buildTopology({ kind: 'small-world', neighbours: 4 }, 4), /needs more members than neighbours.*n=4, neighbours=4/)
    assertTopologyInvalid(() => buildTopology({ kind: 'tree', root: 5 }, 5), /tree topology root 5 is not a member index: n=5, so root must be in 0\.\.4/)
    assertTopologyInvalid(() => buildTopology({ kind: 'star', center: 3 }, 2), /star topology center 3 is not a member index/)
    assertTopologyInvalid(() => buildTopology({ kind: 'ring' }, 0), /at least one: n=0/)
    assertTopologyInvalid(() => buildTopology({ kind: 'ring', fanout: 2 } as unknown as TopologySpecInput, 3), /Unrecognized key/)
  })

  it('any spec gives a valid, reproducible graph or a NET_TOPOLOGY_INVALID (property)', () => {
    const seed = fc.integer({ min: 0, max: SEED_MAX })
    const specArbitrary: fc.Arbitrary<TopologySpecInput> = fc.oneof(
      fc.constant({ kind: 'full-mesh' as const }),
      fc.constant({ kind: 'ring' as const }),
      fc.record({ kind: fc.constant('tree' as const), fanout: fc.integer({ min: 1, max: 5 }), root: fc.nat(40) }),
      fc.record({ kind: fc.constant('star' as const), center: fc.nat(40) }),
      fc.record({ kind: fc.constant('random-regular' as const), degree: fc.integer({ min: 1, max: 12 }), seed }),
      fc.record({
        kind: fc.constant('small-world' as const),
        neighbours: fc.integer({ min: 1, max: 4 }).map((half) => 2 * half),
        rewireProbability: fc.double({ min: 0, max: 1, noNaN: true }),
        seed
      })
    )
    const caseArbitrary = fc.record({
      spec: specArbitrary,
      degreeMax: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
      nodeCount: fc.integer({ min: 1, max: 40 })
    })
    fc.assert(fc.property(caseArbitrary, ({ spec, degreeMax, nodeCount }) => {
      const fullSpec: TopologySpecInput = degreeMax === undefined ? spec : { ...spec, degreeMax }
      let graph: Graph
      try {
        graph = buildTopology(fullSpec, nodeCount)
      } catch (error) {
        assert.ok(error instanceof NetError && error.code === 'NET_TOPOLOGY_INVALID', `unexpected ${String(error)}`)
        if (spec.kind === 'random-regular') assert.equal(regularIsFeasible(spec.degree ?? 6, nodeCount, degreeMax), false, error.message)
        return
      }
      assertConnectedTopology(graph, nodeCount)
      if (degreeMax !== undefined) assert.ok(degreeStats(graph).degreeMax <= degreeMax)
      assert.deepEqual(buildTopology(fullSpec, nodeCount), graph)
      if (spec.kind === 'random-regular') assert.ok(regularIsFeasible(spec.degree ?? 6, nodeCount, degreeMax))
    }), { numRuns: 300 })
  })
})

function regularIsFeasible (degree: number, nodeCount: number, degreeMax: number | undefined): boolean {
  return degree <= nodeCount - 1 && (nodeCount * degree) % 2 === 0 && (degree !== 1 || nodeCount <= 2) && (degreeMax === undefined || degree <= degreeMax)
}
