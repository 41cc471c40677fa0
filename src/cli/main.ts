#!/usr/bin/env node
// The compatibility shim must load before anything that may reach libp2p.
import '../compat/promise-with-resolvers.js'
import { Command } from 'commander'
import { SynodError, errorMessage } from '../core/index.js'
import { startNode, SYNOD_VERSION } from '../node/index.js'
import { initNetwork } from './init.js'
import { up } from './up.js'
import { fetchStatus, formatStatus } from './status.js'
import { simCommand } from './sim.js'
import { powCommand } from './pow.js'
import { ledgerCommands } from './ledger.js'
import { checkCommands } from './check.js'
import { kvCommands } from './kv.js'
import { gatewayCommand } from './gateway.js'
import { consensusOption, integerOption as integer, topologyOption, type ConsensusChoice } from './options.js'
import { defaultSpecFor, topologyNames, type TopologyName } from '../net/index.js'

const print = (line: string): void => { process.stdout.write(line + '\n') }

const program = new Command()
program.name('synod').description('Synod: a distributed-systems node for Web3 networks').version(SYNOD_VERSION)

program.command('init')
  .description('create keys, a network config and one config file per node')
  .requiredOption('--nodes <n>', 'number of nodes', integer('--nodes', 1, 64))
  .requiredOption('--out <dir>', 'directory to write into')
  .option('--hosts <list>', 'comma-separated hosts, one per machine; nodes are spread over them')
  .option('--base-port <port>', 'first p2p port; API ports start 100 higher', integer('--base-port', 1024, 65_000), 7100)
  .option('--network-id <id>', 'network name', 'synod')
  .option('--topology <name>', `overlay topology: ${topologyNames.join(', ')}`, topologyOption, 'full-mesh')
  .option('--consensus <engine>', 'add a ledger with this consensus engine: pos, dpos, pow (none by default)', consensusOption)
  .action((options: { nodes: number, out: string, hosts?: string, basePort: number, networkId: string, topology: TopologyName, consensus?: ConsensusChoice }) => {
    const hosts = options.hosts?.split(',').map((host) => host.trim()).filter((host) => host.length > 0)
    const result = initNetwork({ nodes: options.nodes, out: options.out, hosts, basePort: options.basePort, networkId: options.networkId, topology: defaultSpecFor(options.topology), consensus: options.consensus })
    print(`wrote ${result.networkFile}`)
    for (const [index, file] of result.nodeFiles.entries()) print(`wrote ${file}  (node ${result.members[index]?.id ?? ''}, api ${result.members[index]?.api ?? ''})`)
  })

program.command('node')
  .description('run one node from its config file')
  .requiredOption('--config <file>', 'node config file')
  .option('--miner-threads <n>', 'proof-of-work miner threads (0: do not mine); one per core by default', integer('--miner-threads', 0, 256))
  .action(async (options: { config: string, minerThreads?: number }) => {
    // SYNOD_ADMIN_TOKEN: set by `synod up` for the nodes of a local cluster; enables the admin
    // routes (injected link faults) for requests that carry it. Unset, they do not exist.
    const adminToken = process.env.SYNOD_ADMIN_TOKEN
    const node = await startNode(options.config, { minerThreads: options.minerThreads, ...(adminToken === undefined || adminToken === '' ? {} : { adminToken }) })
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      node.log.info({ signal }, 'stopping')
      node.stop().then(() => process.exit(0), (error: unknown) => {
        node.log.error({ reason: errorMessage(error) }, 'unclean stop')
        process.exit(1)
      })
    }
    process.once('SIGINT', () => { stop('SIGINT') })
    process.once('SIGTERM', () => { stop('SIGTERM') })
  })

program.command('up')
  .description('run a local cluster: initialise if needed, start the nodes, stop them on Ctrl-C')
  .option('--nodes <n>', 'number of nodes', integer('--nodes', 1, 64), 4)
  .option('--data-dir <dir>', 'where configs, keys, data and logs live', '.synod')
  .option('--base-port <port>', 'first p2p port on first start; API ports start 100 higher', integer('--base-port', 1024, 65_000), 7100)
  .option('--ready-timeout-ms <ms>', 'how long to wait for the cluster', integer('--ready-timeout-ms', 1_000, 600_000), 30_000)
  .option('--topology <name>', `overlay topology for a new network: ${topologyNames.join(', ')}`, topologyOption)
  .option('--consensus <engine>', 'the ledger of a new network: pos (default), dpos, pow, or none', consensusOption)
  .option('--miner-threads <n>', 'miner threads per node; the cores shared among the nodes by default', integer('--miner-threads', 0, 256))
  .option('--gateway-port <port>', 'the gateway\'s port on 127.0.0.1, 0 for any free one', integer('--gateway-port', 0, 65_535), 8080)
  .action(async (options: { nodes: number, dataDir: string, basePort: number, readyTimeoutMs: number, topology?: TopologyName, consensus?: ConsensusChoice, minerThreads?: number, gatewayPort: number }) => {
    await up({ ...options, print })
  })

program.command('status')
  .description("show a node's status and its links")
  .option('--api <url>', 'node API address', 'http://127.0.0.1:7200')
  .option('--json', 'print the raw JSON')
  .action(async (options: { api: string, json?: boolean }) => {
    const status = await fetchStatus(options.api)
    print(options.json === true ? JSON.stringify(status, null, 2) : formatStatus(status, Date.now()))
  })

simCommand(program, print)
powCommand(program, print)
ledgerCommands(program, print)
checkCommands(program, print)
kvCommands(program, print)
gatewayCommand(program, print)

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof SynodError) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`error: ${errorMessage(error)}\n`)
  process.exit(1)
})
