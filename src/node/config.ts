/**
 * Network and node configuration files. A bad file gets a `CORE_CONFIG_INVALID` error that names
 * the file, the field and what was expected. Relative paths in a node config are relative to the
 * file itself, so a config directory can be moved as a whole.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { CoreError, errorMessage, fromHex, nodeIdFromPublicKey, type NodeId } from '../core/index.js'
import { NetError, buildTopology, topologySpecSchema, type Graph } from '../net/index.js'

const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `${bytes * 2} lowercase hex digits`)
const multiaddrText = z.string().regex(/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d{1,5}$/, 'a multiaddr like /ip4/127.0.0.1/tcp/4101')
const port = z.number().int().min(0).max(65_535)

export const memberSchema = z.strictObject({
  id: hex(10),
  publicKey: hex(32),
  p2p: multiaddrText,
  api: z.string().url(),
  /** The member's capacity: its share of the store's keys is proportional to it (1 by default). */
  weight: z.number().positive().max(1_000).optional()
})

export const transportLimitsSchema = z.strictObject({
  messageBytesMax: z.number().int().min(1_024).max(64 * 1_048_576),
  sendQueueBytesMax: z.number().int().min(1_024),
  reconnectDelayMsMin: z.number().int().min(1),
  reconnectDelayMsMax: z.number().int().min(1),
  linkIdleTimeoutMs: z.number().int().min(100),
  keepaliveIntervalMs: z.number().int().min(50)
}).partial()

const positiveMs = z.number().int().min(1)
/** Membership timings a network may tune; score penalties keep their defaults. */
export const membershipLimitsSchema = z.strictObject({
  probeIntervalMs: positiveMs,
  probeTimeoutMs: positiveMs,
  indirectProbes: z.number().int().min(0).max(16),
  suspicionTimeoutMsMin: positiveMs,
  suspicionTimeoutMsMax: positiveMs,
  suspicionConfirmationsExpected: z.number().int().min(0).max(64),
  gossipIntervalMs: positiveMs,
  gossipFanout: z.number().int().min(1).max(64),
  scoreBanThreshold: z.number().max(0),
  banDurationMsMin: positiveMs,
  banDurationMsMax: positiveMs
}).partial()

const amountText = z.string().regex(/^\d{1,20}$/, 'a whole number as a decimal string')
const compactBits = z.string().regex(/^[0-9a-f]{8}$/, 'compact bits as 8 hex digits, like 2000ffff')

/** Proof-of-work parameters a network may set; see PowParams for their meaning. */
export const powConfigSchema = z.strictObject({
  retargetIntervalBlocks: z.number().int().min(2).max(1_000_000),
  targetBlockSpacingMs: z.number().int().min(1),
  powLimitBits: compactBits,
  initialBits: compactBits,
  blockReward: amountText,
  halvingIntervalBlocks: z.number().int().min(0),
  futureTimeLimitMs: z.number().int().min(0)
}).partial()

/** Staking rules of a PoS or DPoS network; see StakingParams for their meaning. */
export const stakingConfigSchema = z.strictObject({
  epochBlocks: z.number().int().min(1),
  validatorsMax: z.number().int().min(1).max(1_000),
  validatorStakeMin: amountText,
  unbondingBlocks: z.number().int().min(1),
  slashPerMille: z.number().int().min(0).max(1_000),
  jailBlocks: z.number().int().min(1),
  downtimeWindowBlocks: z.number().int().min(1),
  downtimeMissedMax: z.number().int().min(0)
}).partial()

/** Proof-of-stake settings: the block reward, the clock tolerance, and Tendermint's timeouts (PosTimeouts). */
export const posConfigSchema = z.strictObject({
  blockReward: amountText,
  futureTimeLimitMs: z.number().int().min(0),
  proposeMs: z.number().int().min(1),
  prevoteMs: z.number().int().min(1),
  precommitMs: z.number().int().min(1),
  roundDeltaMs: z.number().int().min(0),
  commitWaitMs: z.number().int().min(0),
  rebroadcastMs: z.number().int().min(10)
}).partial()

/** Delegated-proof-of-stake settings; see DposParams for their meaning. */
export const dposConfigSchema = z.strictObject({
  producersMax: z.number().int().min(1).max(1_000),
  blocksPerTurn: z.number().int().min(1).max(1_000),
  blockIntervalMs: z.number().int().min(10),
  blockReward: amountText,
  futureTimeLimitMs: z.number().int().min(0)
}).partial()

export const consensusEngines = ['pow', 'pos', 'dpos'] as const
export type ConsensusName = typeof consensusEngines[number]

/** The ledger: consensus engine, chain id and genesis. */
export const ledgerConfigSchema = z.strictObject({
  consensus: z.enum(consensusEngines),
  chainId: z.string().min(1).max(64),
  genesisTimeMs: z.number().int().min(0),
  allocations: z.array(z.strictObject({ address: hex(20), balance: amountText })).max(100_000),
  pow: powConfigSchema.optional(),
  pos: posConfigSchema.optional(),
  dpos: dposConfigSchema.optional(),
  staking: stakingConfigSchema.optional(),
  /** PoS and DPoS: the validators (producer candidates) at genesis, each with its bonded stake (usually the members' node keys). */
  validators: z.array(z.strictObject({ publicKey: hex(32), stake: amountText })).max(1_000).optional()
}).superRefine((ledger, context) => {
  if (ledger.consensus !== 'pow' && (ledger.validators === undefined || ledger.validators.length === 0)) {
    context.addIssue({ code: 'custom', path: ['validators'], message: `at least one genesis validator for ${ledger.consensus}` })
  }
})

/** The key-value store: replication and placement, and the limits a network may tune (StoreLimits). */
export const storeConfigSchema = z.strictObject({
  replicationFactor: z.number().int().min(1).max(15),
  vnodesPerWeight: z.number().int().min(1).max(4_096),
  /** LMDB keys are at most 1 978 bytes, and a store record's disk key adds a short prefix. */
  keyBytesMax: z.number().int().min(1).max(1_900),
  valueBytesMax: z.number().int().min(1).max(512 * 1_024),
  requestTimeoutMs: z.number().int().min(10).max(600_000),
  roundTimeoutMs: z.number().int().min(1).max(600_000),
  tombstoneGcDelayMs: z.number().int().min(0),
  /** Causal and eventual levels (AvailableStoreLimits). */
  siblingsMax: z.number().int().min(1).max(1_024),
  sessionDependenciesMax: z.number().int().min(1).max(4_096),
  causalFetchTimeoutMs: z.number().int().min(1).max(600_000),
  hintsMax: z.number().int().min(0),
  hintedHandoffIntervalMs: z.number().int().min(10).max(3_600_000),
  antiEntropyIntervalMs: z.number().int().min(10).max(86_400_000),
  antiEntropyBytesPerSecondMax: z.number().int().min(1_024),
  readRepairChance: z.number().min(0).max(1),
  replicationLingerMs: z.number().int().min(0).max(1_000)
}).partial()

export const networkConfigSchema = z.strictObject({
  version: z.literal(1),
  networkId: z.string().min(1).max(64),
  members: z.array(memberSchema).min(1).max(1_024),
  /** The overlay topology over the members sorted by node id; full mesh when absent. */
  topology: topologySpecSchema.optional(),
  routeMetric: z.enum(['hops', 'rtt']).optional(),
  limits: z.strictObject({ transport: transportLimitsSchema.optional(), membership: membershipLimitsSchema.optional() }).optional(),
  ledger: ledgerConfigSchema.optional(),
  store: storeConfigSchema.optional()
})

export const nodeConfigSchema = z.strictObject({
  version: z.literal(1),
  nodeId: hex(10),
  network: z.string().min(1),
  keyFile: z.string().min(1),
  dataDir: z.string().min(1),
  listen: z.strictObject({ p2p: multiaddrText, apiHost: z.string().min(1), apiPort: port }),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Proof-of-work miner threads: one per core when absent, 0 to not mine. */
  minerThreads: z.number().int().min(0).max(256).optional(),
  /** The write-ahead log in front of LMDB (`docs/node.md`); defaults when absent. */
  disk: z.strictObject({
    walCheckpointIntervalMs: z.number().int().min(100).max(3_600_000),
    walCheckpointBytes: z.number().int().min(4_096).max(1_073_741_824),
    walFrameBytesMax: z.number().int().min(1_048_576).max(1_073_741_824)
  }).partial().optional(),
  /** This node's ledger limits (`docs/ledger.md`); defaults when absent. */
  ledger: z.strictObject({
    /** Included transactions `GET /v1/tx/{hash}` can find (the most recent whole blocks': the newest block's always); about 150 bytes of memory each. */
    txIndexTxsMax: z.number().int().min(0).max(100_000_000)
  }).partial().optional()
})

export const keyFileSchema = z.strictObject({
  type: z.literal('ed25519'),
  id: hex(10),
  publicKey: hex(32),
  seed: hex(32)
})

export type Member = z.infer<typeof memberSchema>
export type NetworkConfig = z.infer<typeof networkConfigSchema>
export type NodeConfig = z.infer<typeof nodeConfigSchema>
export type KeyFile = z.infer<typeof keyFileSchema>
export type LedgerConfig = z.infer<typeof ledgerConfigSchema>

export function configError (file: string, field: string, expected: string): CoreError {
  return new CoreError('CORE_CONFIG_INVALID', `${file}: field "${field}": ${expected}`, { file, field, expected })
}

/** Reads a JSON file and checks it against a schema, naming the file and field on failure. */
export function readJsonFile<T> (file: string, schema: z.ZodType<T>): T {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new CoreError('CORE_CONFIG_INVALID', `${file}: cannot read: ${errorMessage(error)}`, { file })
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new CoreError('CORE_CONFIG_INVALID', `${file}: not valid JSON: ${errorMessage(error)}`, { file })
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.')
    throw configError(file, field, issue?.message ?? 'invalid')
  }
  return parsed.data
}

export interface LoadedConfig {
  file: string
  node: NodeConfig
  network: NetworkConfig
  networkFile: string
  key: KeyFile
  dataDir: string
  self: Member
}

/** The overlay graph of a network config, over its members sorted by node id. */
export function topologyOf (file: string, network: NetworkConfig): Graph {
  try {
    return buildTopology(network.topology ?? { kind: 'full-mesh' }, network.members.length)
  } catch (error) {
    if (error instanceof NetError) throw configError(file, 'topology', error.message)
    throw error
  }
}

export function checkNetworkConfig (file: string, network: NetworkConfig): void {
  const seen = new Set<NodeId>()
  network.members.forEach((member, index) => {
    if (nodeIdFromPublicKey(fromHex(member.publicKey)) !== member.id) {
      throw configError(file, `members.${index}.id`, 'the node id derived from members.' + index + '.publicKey')
    }
    if (seen.has(member.id)) throw configError(file, `members.${index}.id`, 'a node id listed once')
    seen.add(member.id)
  })
  topologyOf(file, network)
}

export function loadNodeConfig (configFile: string): LoadedConfig {
  const file = resolve(configFile)
  const node = readJsonFile(file, nodeConfigSchema)
  const base = dirname(file)
  const networkFile = resolve(base, node.network)
  const network = readJsonFile(networkFile, networkConfigSchema)
  checkNetworkConfig(networkFile, network)
  const keyPath = resolve(base, node.keyFile)
  const key = readJsonFile(keyPath, keyFileSchema)
  if (key.id !== node.nodeId) throw configError(keyPath, 'id', `the node id of ${file} (${node.nodeId})`)
  if (nodeIdFromPublicKey(fromHex(key.publicKey)) !== key.id) throw configError(keyPath, 'id', 'the node id derived from publicKey')
  const self = network.members.find((member) => member.id === node.nodeId)
  if (self === undefined) throw configError(file, 'nodeId', `a member of ${networkFile}`)
  if (self.publicKey !== key.publicKey) throw configError(keyPath, 'publicKey', `the public key listed for ${node.nodeId} in ${networkFile}`)
  return { file, node, network, networkFile, key, dataDir: resolve(base, node.dataDir), self }
}
