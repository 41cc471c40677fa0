/**
 * Overlay topologies. The operator picks one in `network.json` (`topology`); every node computes
 * the same graph from the sorted member list and that spec, so the nodes agree on who links to
 * whom without exchanging a message. A graph is over member indices 0..n-1 (positions in the
 * sorted member list). Random kinds draw only from `createPrng(spec.seed)` and its forks, so a
 * graph is a pure function of (spec, n). See docs/net.md "Topologies".
 */
import { z } from 'zod'
import { assert, createPrng, SEED_MAX, type Prng } from '../core/index.js'
import { NetError } from './errors.js'

// ---------------------------------------------------------------------------------------------
// Graphs

export interface Graph {
  /** adjacency[i]: the neighbours of node i, ascending, symmetric, never i itself, no repeats. */
  adjacency: number[][]
}

export type Edge = [number, number]
/** Whether the link may be crossed in the direction from → to (a link that is down, a dead node). */
export type EdgeUp = (from: number, to: number) => boolean
export type NodeAlive = (node: number) => boolean

export interface DegreeStats {
  degreeMin: number
  degreeMax: number
  degreeMean: number
}

/** The distance bfsDistances reports for a node the source cannot reach. */
export const UNREACHABLE = Number.POSITIVE_INFINITY

const everyEdgeUp: EdgeUp = () => true
const ascending = (a: number, b: number): number => a - b

export function graphFromNeighbourSets (neighbourSets: ReadonlyArray<ReadonlySet<number>>): Graph {
  return { adjacency: neighbourSets.map((neighbours) => [...neighbours].sort(ascending)) }
}

/** Builds a graph from undirected edges; a repeated edge counts once. */
export function graphFromEdges (nodeCount: number, edgeList: Iterable<readonly [number, number]>): Graph {
  const neighbourSets = emptyNeighbourSets(nodeCount)
  for (const [a, b] of edgeList) {
    assert(isNodeIndex(a, nodeCount) && isNodeIndex(b, nodeCount), `edge ${a}-${b} outside nodes 0..${nodeCount - 1}`)
    assert(a !== b, `self-loop at node ${a}`)
    link(neighbourSets, a, b)
  }
  return graphFromNeighbourSets(neighbourSets)
}

export function nodeCountOf (graph: Graph): number {
  return graph.adjacency.length
}

/** Every undirected edge once, as [lower, higher], in ascending order. */
export function edges (graph: Graph): Edge[] {
  const out: Edge[] = []
  graph.adjacency.forEach((neighbours, node) => {
    for (const neighbour of neighbours) if (node < neighbour) out.push([node, neighbour])
  })
  return out
}

export function degreeStats (graph: Graph): DegreeStats {
  const degrees = graph.adjacency.map((neighbours) => neighbours.length)
  if (degrees.length === 0) return { degreeMin: 0, degreeMax: 0, degreeMean: 0 }
  const total = degrees.reduce((sum, degree) => sum + degree, 0)
  return { degreeMin: Math.min(...degrees), degreeMax: Math.max(...degrees), degreeMean: total / degrees.length }
}

/** Hop counts from source over the links isEdgeUp allows; UNREACHABLE (Infinity) where there is no path. */
export function bfsDistances (graph: Graph, source: number, isEdgeUp: EdgeUp = everyEdgeUp): number[] {
  assert(isNodeIndex(source, nodeCountOf(graph)), `source ${source} is not a node of a ${nodeCountOf(graph)}-node graph`)
  const distances = new Array<number>(nodeCountOf(graph)).fill(UNREACHABLE)
  distances[source] = 0
  const queue = [source]
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head]
    for (const next of graph.adjacency[node]) {
      if (distances[next] !== UNREACHABLE || !isEdgeUp(node, next)) continue
      distances[next] = distances[node] + 1
      queue.push(next)
    }
  }
  return distances
}

/** Whether every alive node reaches every other through alive nodes only. No or one alive node counts as connected. */
export function isConnected (graph: Graph, alive: NodeAlive = () => true): boolean {
  return unreachedNodes(graph, alive).length === 0
}

/** The longest shortest path, exactly (a BFS from every node: fine up to a few thousand nodes); Infinity if disconnected. */
export function diameter (graph: Graph): number {
  let longest = 0
  for (let source = 0; source < nodeCountOf(graph) && longest !== UNREACHABLE; source++) {
    for (const distance of bfsDistances(graph, source)) longest = Math.max(longest, distance)
  }
  return longest
}

/**
 * nextHops[destination]: the neighbours of source that begin a shortest path to destination,
 * ascending; empty for the source itself and for destinations it cannot reach. One BFS: a node's
 * first hops are the union of the first hops of its predecessors one step closer to the source.
 */
export function shortestPathNextHops (graph: Graph, source: number, isEdgeUp: EdgeUp = everyEdgeUp): number[][] {
  const distances = bfsDistances(graph, source, isEdgeUp)
  const firstHops = distances.map(() => new Set<number>())
  for (const node of nodesByDistance(distances)) {
    if (distances[node] === 1) firstHops[node].add(node)
    if (distances[node] < 2) continue
    for (const previous of graph.adjacency[node]) {
      if (distances[previous] !== distances[node] - 1 || !isEdgeUp(previous, node)) continue
      for (const hop of firstHops[previous]) firstHops[node].add(hop)
    }
  }
  return firstHops.map((hops) => [...hops].sort(ascending))
}

function nodesByDistance (distances: readonly number[]): number[] {
  const reached = distances.flatMap((distance, node) => distance === UNREACHABLE ? [] : [node])
  return reached.sort((a, b) => distances[a] - distances[b] || a - b)
}

/** Alive nodes the first alive node cannot reach through alive nodes. */
function unreachedNodes (graph: Graph, alive: NodeAlive): number[] {
  const aliveNodes = range(nodeCountOf(graph)).filter(alive)
  if (aliveNodes.length <= 1) return []
  const distances = bfsDistances(graph, aliveNodes[0], (_from, to) => alive(to))
  return aliveNodes.filter((node) => distances[node] === UNREACHABLE)
}

function emptyNeighbourSets (nodeCount: number): Array<Set<number>> {
  return Array.from({ length: nodeCount }, () => new Set<number>())
}

function link (neighbourSets: Array<Set<number>>, a: number, b: number): void {
  neighbourSets[a].add(b)
  neighbourSets[b].add(a)
}

function unlink (neighbourSets: Array<Set<number>>, a: number, b: number): void {
  neighbourSets[a].delete(b)
  neighbourSets[b].delete(a)
}

function isNodeIndex (value: number, nodeCount: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < nodeCount
}

function range (count: number): number[] {
  return Array.from({ length: count }, (_, index) => index)
}

// ---------------------------------------------------------------------------------------------
// The spec in network.json

const degreeMaxSchema = z.number().int().min(1).optional()
const seedSchema = z.number().int().min(0).max(SEED_MAX).default(1)

export const topologySpecSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('full-mesh'), degreeMax: degreeMaxSchema }),
  z.strictObject({ kind: z.literal('ring'), degreeMax: degreeMaxSchema }),
  z.strictObject({
    kind: z.literal('tree'),
    fanout: z.number().int().min(1).default(2),
    root: z.number().int().min(0).default(0),
    degreeMax: degreeMaxSchema
  }),
  z.strictObject({ kind: z.literal('star'), center: z.number().int().min(0).default(0), degreeMax: degreeMaxSchema }),
  z.strictObject({
    kind: z.literal('random-regular'),
    degree: z.number().int().min(1).default(6),
    seed: seedSchema,
    degreeMax: degreeMaxSchema
  }),
  z.strictObject({
    kind: z.literal('small-world'),
    neighbours: z.number().int().min(2).multipleOf(2).default(4),
    rewireProbability: z.number().min(0).max(1).default(0.1),
    seed: seedSchema,
    degreeMax: degreeMaxSchema
  })
])

/** A spec with every default filled in. */
export type TopologySpec = z.infer<typeof topologySpecSchema>
/** A spec as written in network.json: parameters with defaults may be left out. */
export type TopologySpecInput = z.input<typeof topologySpecSchema>
export type TopologyName = TopologySpec['kind']
type SpecOf<Name extends TopologyName> = Extract<TopologySpec, { kind: Name }>

export const topologyNames = ['full-mesh', 'ring', 'tree', 'star', 'random-regular', 'small-world'] as const satisfies readonly TopologyName[]

export function isTopologyName (text: string): text is TopologyName {
  return (topologyNames as readonly string[]).includes(text)
}

/** The spec `synod up --topology NAME` uses: the kind with every default. */
export function defaultSpecFor (name: TopologyName): TopologySpec {
  if (!isTopologyName(name)) {
    throw new NetError('NET_TOPOLOGY_INVALID', `unknown topology "${String(name)}": expected one of ${topologyNames.join(', ')}`, { name })
  }
  return parseTopologySpec({ kind: name })
}

/** Checks a spec and fills in its defaults; a bad spec is a NET_TOPOLOGY_INVALID naming the field. */
export function parseTopologySpec (value: unknown): TopologySpec {
  const parsed = topologySpecSchema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const field = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.')
  const problem = field === 'kind' ? `expected one of ${topologyNames.join(', ')}` : issue?.message ?? 'invalid'
  const where = field === '(root)' ? '' : ` field "${field}"`
  throw new NetError('NET_TOPOLOGY_INVALID', `topology spec${where}: ${problem}`, { field, problem })
}

// ---------------------------------------------------------------------------------------------
// Building and validating

/** The graph for memberCount members, checked by validateTopology; a NET_TOPOLOGY_INVALID if the spec cannot give one. */
export function buildTopology (specInput: TopologySpecInput, memberCount: number): Graph {
  const spec = parseTopologySpec(specInput)
  requireMemberCount(spec.kind, memberCount)
  const graph = generate(spec, memberCount)
  validateTopology(graph, spec)
  return graph
}

/** Every member must reach every other (routing and broadcast rely on it), and no node may exceed degreeMax. */
export function validateTopology (graph: Graph, spec: Pick<TopologySpecInput, 'kind' | 'degreeMax'>): void {
  requireConnected(graph, spec.kind)
  if (spec.degreeMax !== undefined) requireDegreeAtMost(graph, spec.kind, spec.degreeMax)
}

function generate (spec: TopologySpec, nodeCount: number): Graph {
  switch (spec.kind) {
    case 'full-mesh': return fullMeshGraph(nodeCount)
    case 'ring': return ringGraph(nodeCount)
    case 'tree': return treeGraph(nodeCount, spec)
    case 'star': return starGraph(nodeCount, spec)
    case 'random-regular': return randomRegularGraph(nodeCount, spec)
    case 'small-world': return smallWorldGraph(nodeCount, spec)
  }
}

function requireMemberCount (kind: TopologyName, memberCount: number): void {
  if (Number.isInteger(memberCount) && memberCount >= 1) return
  throw invalid(`topology ${kind} needs a whole number of members, at least one: n=${memberCount}`, { kind, memberCount })
}

function requireConnected (graph: Graph, kind: TopologyName): void {
  const unreached = unreachedNodes(graph, () => true)
  if (unreached.length === 0) return
  const shown = unreached.slice(0, 8).join(', ') + (unreached.length > 8 ? ', ...' : '')
  throw invalid(
    `topology ${kind} is not connected: ${unreached.length} of ${nodeCountOf(graph)} nodes cannot be reached from node 0 (${shown}); ` +
    'routing and broadcast need a path between every two members',
    { kind, unreachedNodes: unreached }
  )
}

function requireDegreeAtMost (graph: Graph, kind: TopologyName, degreeMax: number): void {
  const node = graph.adjacency.findIndex((neighbours) => neighbours.length > degreeMax)
  if (node === -1) return
  const degree = graph.adjacency[node].length
  throw invalid(
    `topology ${kind}: node ${node} has degree ${degree} over degreeMax ${degreeMax}; choose a sparser topology or raise degreeMax`,
    { kind, node, degree, degreeMax }
  )
}

function requireMemberIndex (kind: TopologyName, field: string, value: number, nodeCount: number): void {
  if (value < nodeCount) return
  throw invalid(
    `${kind} topology ${field} ${value} is not a member index: n=${nodeCount}, so ${field} must be in 0..${nodeCount - 1} (an index into the sorted member list)`,
    { kind, field, value, nodeCount }
  )
}

function invalid (message: string, details: Record<string, unknown>): NetError {
  return new NetError('NET_TOPOLOGY_INVALID', message, details)
}

// ---------------------------------------------------------------------------------------------
// Generators

export function fullMeshGraph (nodeCount: number): Graph {
  return { adjacency: range(nodeCount).map((node) => range(nodeCount).filter((other) => other !== node)) }
}

/** Each node links to the next around the circle; two nodes share one link, one node has none. */
export function ringGraph (nodeCount: number): Graph {
  if (nodeCount < 2) return graphFromEdges(nodeCount, [])
  return graphFromEdges(nodeCount, range(nodeCount).map((node): Edge => [node, (node + 1) % nodeCount]))
}

/**
 * A complete k-ary tree filled level by level: position p's parent is floor((p-1)/fanout). Positions
 * follow the sorted member list with `root` moved to the front, so position 0 is member `root`.
 */
export function treeGraph (nodeCount: number, options: Pick<SpecOf<'tree'>, 'fanout' | 'root'>): Graph {
  const { fanout, root } = options
  requireMemberIndex('tree', 'root', root, nodeCount)
  const memberAt = (position: number): number => position === 0 ? root : position - 1 < root ? position - 1 : position
  const treeEdges = range(nodeCount).slice(1).map((position): Edge => [memberAt(position), memberAt(Math.floor((position - 1) / fanout))])
  return graphFromEdges(nodeCount, treeEdges)
}

export function starGraph (nodeCount: number, options: Pick<SpecOf<'star'>, 'center'>): Graph {
  const { center } = options
  requireMemberIndex('star', 'center', center, nodeCount)
  return graphFromEdges(nodeCount, range(nodeCount).filter((node) => node !== center).map((leaf): Edge => [center, leaf]))
}

// Random d-regular ------------------------------------------------------------------------------

const REGULAR_ATTEMPTS_MAX = 64
/** Random stub pairs tried before listing every pairable pair (or finding a dead end). */
const STUB_DRAWS_MAX = 64

/**
 * A connected random d-regular graph. Steger–Wormald style: pair two random unpaired stubs whose
 * vertices differ and are not yet linked, until none are left; on a dead end (or a disconnected
 * result) start over from a fresh fork of the seed. Special cases: degree n-1 is the full mesh; a
 * dense graph (degree above n-1-degree) is the complement of a sparse random (n-1-degree)-regular
 * one, since pairing stubs nearly always dead-ends when almost every pair is already linked, and
 * such a complement is always connected (two nodes of degree > (n-1)/2 share a neighbour); degree 2
 * is a random Hamiltonian cycle, since a random 2-regular graph is rarely connected.
 */
export function randomRegularGraph (nodeCount: number, options: Pick<SpecOf<'random-regular'>, 'degree' | 'seed'>): Graph {
  const { degree, seed } = options
  requireRegularParameters(nodeCount, degree)
  if (degree === nodeCount - 1) return fullMeshGraph(nodeCount)
  const prng = createPrng(seed)
  for (let attempt = 0; attempt < REGULAR_ATTEMPTS_MAX; attempt++) {
    const graph = drawRegularGraph(nodeCount, degree, prng.fork(`random-regular/attempt-${attempt}`))
    if (graph !== null && isConnected(graph)) return graph
  }
  throw invalid(
    `random-regular topology found no connected ${degree}-regular graph in ${REGULAR_ATTEMPTS_MAX} attempts: n=${nodeCount}, degree=${degree}, seed=${seed}; ` +
    'try another seed or degree',
    { kind: 'random-regular', nodeCount, degree, seed }
  )
}

function requireRegularParameters (nodeCount: number, degree: number): void {
  const details = { kind: 'random-regular', nodeCount, degree }
  if (degree > nodeCount - 1) {
    throw invalid(`random-regular topology needs degree < n, since a node links to at most the n-1 others (degree n-1 is the full mesh): n=${nodeCount}, degree=${degree}`, details)
  }
  if ((nodeCount * degree) % 2 !== 0) {
    throw invalid(`random-regular topology needs n*degree even, since every link has two ends: n=${nodeCount}, degree=${degree}`, details)
  }
  if (degree === 1 && nodeCount > 2) {
    throw invalid(`random-regular topology with degree 1 pairs the members off, which is never connected for n > 2: n=${nodeCount}; use degree 2 or more`, details)
  }
}

function drawRegularGraph (nodeCount: number, degree: number, prng: Prng): Graph | null {
  const complementDegree = nodeCount - 1 - degree
  if (complementDegree < degree) {
    const sparse = drawStubPairing(nodeCount, complementDegree, prng)
    return sparse === null ? null : complementGraph(sparse)
  }
  if (degree === 2) return randomCycleGraph(nodeCount, prng)
  return drawStubPairing(nodeCount, degree, prng)
}

function drawStubPairing (nodeCount: number, degree: number, prng: Prng): Graph | null {
  const edgeList = pairStubs(nodeCount, degree, prng)
  return edgeList === null ? null : graphFromEdges(nodeCount, edgeList)
}

function complementGraph (graph: Graph): Graph {
  const nodes = range(nodeCountOf(graph))
  return {
    adjacency: graph.adjacency.map((neighbours, node) => {
      const excluded = new Set(neighbours).add(node)
      return nodes.filter((other) => !excluded.has(other))
    })
  }
}

function randomCycleGraph (nodeCount: number, prng: Prng): Graph {
  const order = prng.shuffle(range(nodeCount))
  return graphFromEdges(nodeCount, order.map((node, position): Edge => [node, order[(position + 1) % nodeCount]]))
}

/** The edges of one draw, or null on a dead end (unpaired stubs left, but no two may be linked). */
function pairStubs (nodeCount: number, degree: number, prng: Prng): Edge[] | null {
  const stubs = range(nodeCount * degree).map((stub) => Math.floor(stub / degree))
  const neighbourSets = emptyNeighbourSets(nodeCount)
  const edgeList: Edge[] = []
  while (stubs.length > 0) {
    const pair = drawPairableStubs(stubs, neighbourSets, prng)
    if (pair === null) return null
    const [a, b] = takeStubs(stubs, pair)
    link(neighbourSets, a, b)
    edgeList.push([a, b])
  }
  return edgeList
}

function canLink (a: number, b: number, neighbourSets: ReadonlyArray<ReadonlySet<number>>): boolean {
  return a !== b && !neighbourSets[a].has(b)
}

/** Indices of two stubs that may be linked: random draws first, then an exhaustive look when those keep failing. */
function drawPairableStubs (stubs: readonly number[], neighbourSets: ReadonlyArray<ReadonlySet<number>>, prng: Prng): Edge | null {
  for (let draw = 0; draw < STUB_DRAWS_MAX; draw++) {
    const first = prng.int(0, stubs.length - 1)
    const second = prng.int(0, stubs.length - 1)
    if (canLink(stubs[first], stubs[second], neighbourSets)) return [first, second]
  }
  return pickAnyPairableStubs(stubs, neighbourSets, prng)
}

/** Near the end of a draw few pairs fit: list the linkable vertex pairs and pick one, or report a dead end. */
function pickAnyPairableStubs (stubs: readonly number[], neighbourSets: ReadonlyArray<ReadonlySet<number>>, prng: Prng): Edge | null {
  const firstStubOf = new Map<number, number>()
  stubs.forEach((vertex, index) => { if (!firstStubOf.has(vertex)) firstStubOf.set(vertex, index) })
  const entries = [...firstStubOf.entries()]
  const candidates: Edge[] = []
  entries.forEach(([vertex, stub], position) => {
    for (const [otherVertex, otherStub] of entries.slice(position + 1)) {
      if (canLink(vertex, otherVertex, neighbourSets)) candidates.push([stub, otherStub])
    }
  })
  return candidates.length === 0 ? null : prng.pick(candidates)
}

/** Removes two stubs (swapping each with the last, higher index first) and returns their vertices. */
function takeStubs (stubs: number[], [first, second]: Edge): Edge {
  const vertices: Edge = [stubs[first], stubs[second]]
  for (const index of [Math.max(first, second), Math.min(first, second)]) {
    stubs[index] = stubs[stubs.length - 1]
    stubs.pop()
  }
  return vertices
}

// Watts–Strogatz small world ---------------------------------------------------------------------

const SMALL_WORLD_ATTEMPTS_MAX = 64

/**
 * A ring lattice (each node linked to neighbours/2 on each side) whose edges each have their far
 * end moved, with probability rewireProbability, to a random node that is neither the near end nor
 * already its neighbour. The edge count, so the average degree, stays `neighbours`. A disconnected
 * draw is redrawn from a fresh fork of the seed.
 */
export function smallWorldGraph (nodeCount: number, options: Pick<SpecOf<'small-world'>, 'neighbours' | 'rewireProbability' | 'seed'>): Graph {
  const { neighbours, rewireProbability, seed } = options
  requireSmallWorldParameters(nodeCount, neighbours)
  const prng = createPrng(seed)
  for (let attempt = 0; attempt < SMALL_WORLD_ATTEMPTS_MAX; attempt++) {
    const graph = drawSmallWorldGraph(nodeCount, neighbours, rewireProbability, prng.fork(`small-world/attempt-${attempt}`))
    if (isConnected(graph)) return graph
  }
  throw invalid(
    `small-world topology stayed disconnected in ${SMALL_WORLD_ATTEMPTS_MAX} draws: n=${nodeCount}, neighbours=${neighbours}, ` +
    `rewireProbability=${rewireProbability}, seed=${seed}; lower rewireProbability or raise neighbours`,
    { kind: 'small-world', nodeCount, neighbours, rewireProbability, seed }
  )
}

function requireSmallWorldParameters (nodeCount: number, neighbours: number): void {
  if (nodeCount > neighbours) return
  throw invalid(
    `small-world topology needs more members than neighbours, since each node links to neighbours/2 others on each side of the ring: n=${nodeCount}, neighbours=${neighbours}`,
    { kind: 'small-world', nodeCount, neighbours }
  )
}

function drawSmallWorldGraph (nodeCount: number, neighbours: number, rewireProbability: number, prng: Prng): Graph {
  const neighbourSets = emptyNeighbourSets(nodeCount)
  const reach = neighbours / 2
  for (let offset = 1; offset <= reach; offset++) {
    for (let node = 0; node < nodeCount; node++) link(neighbourSets, node, (node + offset) % nodeCount)
  }
  for (let offset = 1; offset <= reach; offset++) {
    for (let node = 0; node < nodeCount; node++) {
      if (prng.chance(rewireProbability)) rewireFarEnd(neighbourSets, node, (node + offset) % nodeCount, prng)
    }
  }
  return graphFromNeighbourSets(neighbourSets)
}

function rewireFarEnd (neighbourSets: Array<Set<number>>, node: number, farEnd: number, prng: Prng): void {
  const nodeCount = neighbourSets.length
  if (neighbourSets[node].size >= nodeCount - 1) return
  let target = prng.int(0, nodeCount - 1)
  while (!canLink(node, target, neighbourSets)) target = prng.int(0, nodeCount - 1)
  unlink(neighbourSets, node, farEnd)
  link(neighbourSets, node, target)
}
