/** `synod init`: keys, a network config and one config file per node. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { CoreError, fromHex } from '../core/index.js'
import { addressFromPublicKey } from '../ledger/index.js'
import { NetError, buildTopology, parseTopologySpec, type TopologySpecInput } from '../net/index.js'
import { generateKeyFile, writeKeyFile, type Member, type NetworkConfig, type NodeConfig } from '../node/index.js'
import type { ConsensusChoice } from './options.js'

export interface InitOptions {
  nodes: number
  out: string
  hosts?: string[]
  basePort: number
  networkId: string
  /** The overlay topology; full mesh by default. */
  topology?: TopologySpecInput
  /** A ledger with this consensus engine; none by default. */
  consensus?: ConsensusChoice
  force?: boolean
}

/** What genesis gives each node's account on a new network with a ledger. */
export const GENESIS_BALANCE_PER_NODE = 1_000_000_000n
/** PoS and DPoS: the stake each node's key has bonded at genesis, as one of the validators (producer candidates). */
export const GENESIS_STAKE_PER_NODE = 1_000_000n

export const NODES_MAX = 64
/** API ports sit this far above the p2p ports. */
export const API_PORT_OFFSET = 100

function hostMultiaddr (host: string, port: number): string {
  const family = isIP(host)
  const protocol = family === 4 ? 'ip4' : family === 6 ? 'ip6' : 'dns4'
  return `/${protocol}/${host}/tcp/${port}`
}

function apiUrl (host: string, port: number): string {
  return isIP(host) === 6 ? `http://[${host}]:${port}` : `http://${host}:${port}`
}

export interface InitResult {
  dir: string
  networkFile: string
  nodeFiles: string[]
  members: Member[]
}

export function initNetwork (options: InitOptions): InitResult {
  const { nodes, basePort } = options
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > NODES_MAX) {
    throw new CoreError('CORE_CONFIG_INVALID', `--nodes: expected an integer in 1..${NODES_MAX}, got ${nodes}`, { field: 'nodes' })
  }
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + API_PORT_OFFSET + nodes > 65_535) {
    throw new CoreError('CORE_CONFIG_INVALID', `--base-port: expected an integer port from 1024 leaving room for ${nodes} nodes, got ${basePort}`, { field: 'basePort' })
  }
  const dir = resolve(options.out)
  const networkFile = join(dir, 'network.json')
  if (existsSync(networkFile) && options.force !== true) {
    throw new CoreError('CORE_CONFIG_INVALID', `${networkFile} already exists; choose another --out or remove it`, { file: networkFile })
  }
  const topology = checkedTopology(options.topology ?? { kind: 'full-mesh' }, nodes)
  const hosts = options.hosts ?? []
  const spread = hosts.length > 0
  const members: Member[] = []
  const nodeFiles: string[] = []
  for (let index = 0; index < nodes; index++) {
    const host = spread ? hosts[index % hosts.length] ?? '127.0.0.1' : '127.0.0.1'
    const p2pPort = basePort + index
    const apiPort = basePort + API_PORT_OFFSET + index
    const key = generateKeyFile()
    // The key lives in the node's data directory: the identity belongs with the data it signed.
    const dataDir = join('data', `node-${index}`)
    const keyFile = join(dataDir, 'node.key')
    mkdirSync(join(dir, dataDir), { recursive: true })
    writeKeyFile(join(dir, keyFile), key)
    members.push({ id: key.id, publicKey: key.publicKey, p2p: hostMultiaddr(host, p2pPort), api: apiUrl(host, apiPort) })
    const listenHost = spread ? '0.0.0.0' : '127.0.0.1'
    const nodeConfig: NodeConfig = {
      version: 1,
      nodeId: key.id,
      network: 'network.json',
      keyFile,
      dataDir,
      listen: { p2p: `/ip4/${listenHost}/tcp/${p2pPort}`, apiHost: listenHost, apiPort },
      logLevel: 'info'
    }
    const nodeFile = join(dir, `node-${index}.json`)
    writeFileSync(nodeFile, JSON.stringify(nodeConfig, null, 2) + '\n')
    nodeFiles.push(nodeFile)
  }
  const network: NetworkConfig = { version: 1, networkId: options.networkId, members, topology }
  if (options.consensus !== undefined && options.consensus !== 'none') {
    network.ledger = {
      consensus: options.consensus,
      chainId: options.networkId,
      genesisTimeMs: Date.now(),
      allocations: members.map((member) => ({ address: addressFromPublicKey(fromHex(member.publicKey)), balance: GENESIS_BALANCE_PER_NODE.toString() })),
      // Every node is a validator with an equal stake.
      ...(options.consensus !== 'pow' ? { validators: members.map((member) => ({ publicKey: member.publicKey, stake: GENESIS_STAKE_PER_NODE.toString() })) } : {})
    }
  }
  writeFileSync(networkFile, JSON.stringify(network, null, 2) + '\n')
  return { dir, networkFile, nodeFiles, members }
}

function checkedTopology (input: TopologySpecInput, nodes: number): NetworkConfig['topology'] {
  try {
    const spec = parseTopologySpec(input)
    buildTopology(spec, nodes)
    return spec
  } catch (error) {
    if (error instanceof NetError) throw new CoreError('CORE_CONFIG_INVALID', `--topology: ${error.message}`, { field: 'topology' })
    throw error
  }
}
