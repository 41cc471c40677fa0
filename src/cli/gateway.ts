/**
 * `synod gateway`: the load-balancing front door, from a config file, flags, or both (flags win).
 * Runs until SIGINT or SIGTERM.
 */
import { DASHBOARD_ASSETS_DIR } from './up.js'
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { errorMessage } from '../core/index.js'
import { Gateway, STRATEGY_NAMES, loadGatewayConfig, parseGatewayConfig, type GatewayConfig, type GatewayConfigInput, type StrategyName } from '../gateway/index.js'
import { createLogger } from '../node/index.js'
import { choiceOption, integerOption } from './options.js'

export interface GatewayFlags {
  config?: string
  listen?: string
  upstream?: string[]
  strategy?: StrategyName
  followCluster?: boolean
  healthIntervalMs?: number
  seed?: number
  p2cLoad?: 'peak-ewma' | 'in-flight'
  /** commander's `--no-dashboard`: false when given. */
  dashboard?: boolean
}

/** `url` or `url=weight`. */
function upstreamFlag (text: string, previous: string[] = []): string[] {
  if (!/^https?:\/\/[^=\s]+(=\d+(\.\d+)?)?$/.test(text)) throw new InvalidArgumentError('--upstream is URL or URL=WEIGHT, e.g. http://127.0.0.1:7200=2')
  return [...previous, text]
}

/** The config the flags and file describe, checked as a whole. */
export function gatewayConfigFrom (flags: GatewayFlags): GatewayConfig {
  const base: GatewayConfigInput = flags.config === undefined ? { upstreams: [] } : loadGatewayConfig(flags.config)
  const input: GatewayConfigInput = { ...base }
  if (flags.listen !== undefined) input.listen = flags.listen
  if (flags.strategy !== undefined) input.strategy = flags.strategy
  if (flags.seed !== undefined) input.seed = flags.seed
  if (flags.upstream !== undefined && flags.upstream.length > 0) {
    input.upstreams = flags.upstream.map((text) => {
      const [url, weight] = text.split('=')
      return weight === undefined ? { url } : { url, weight: Number(weight) }
    })
  }
  if (flags.p2cLoad !== undefined) input.p2c = { ...base.p2c, load: flags.p2cLoad }
  if (flags.healthIntervalMs !== undefined) input.healthCheck = { ...base.healthCheck, intervalMs: flags.healthIntervalMs }
  if (flags.followCluster === true) input.cluster = { ...base.cluster, follow: true }
  if (flags.dashboard === false) input.dashboard = false
  return parseGatewayConfig(input, flags.config === undefined ? 'flags' : `${flags.config} with flags`)
}

export function gatewayCommand (program: Command, print: (line: string) => void): void {
  program.command('gateway')
    .description('run the load-balancing gateway in front of node APIs')
    .option('--config <file>', 'gateway config file (JSON; see docs/gateway.md)')
    .option('--listen <host:port>', 'where to listen (default 127.0.0.1:8080)')
    .option('--upstream <url[=weight]>', 'an upstream node API; repeat for each (replaces the file\'s list)', upstreamFlag)
    .option('--strategy <name>', `balancing strategy: ${STRATEGY_NAMES.join(', ')} (default p2c)`, choiceOption('--strategy', STRATEGY_NAMES))
    .option('--p2c-load <load>', 'how p2c weighs load: peak-ewma (in-flight times a latency estimate, the default) or in-flight (Envoy\'s least-request)', choiceOption('--p2c-load', ['peak-ewma', 'in-flight'] as const))
    .option('--follow-cluster', 'follow the upstream nodes\' membership view and store ring')
    .option('--health-interval-ms <ms>', 'active health check interval, 0 for none', integerOption('--health-interval-ms', 0, 3_600_000))
    .option('--seed <n>', 'seed for the balancers\' random choices', integerOption('--seed', 0, 0xffff_ffff))
    .option('--no-dashboard', 'do not serve the read-only dashboard (/dashboard/, /v1/dashboard/*)')
    .action(async (flags: GatewayFlags) => {
      const config = gatewayConfigFrom(flags)
      const log = createLogger({ component: 'gateway' })
      // The dashboard, read-only: fault injection exists only in front of `synod up`'s own cluster.
      const gateway = new Gateway(config, { log, ...(config.dashboard ? { dashboard: { assetsDir: DASHBOARD_ASSETS_DIR } } : {}) })
      await gateway.start()
      print(`gateway listening on ${gateway.address()} (${config.strategy}, ${config.upstreams.length} upstream(s)); status at ${gateway.address()}/v1/gateway/status${config.dashboard ? `, dashboard at ${gateway.address()}/dashboard/` : ''}`)
      let stopping = false
      const stop = (signal: string): void => {
        if (stopping) return
        stopping = true
        log.info({ signal }, 'stopping')
        gateway.stop().then(() => process.exit(0), (error: unknown) => {
          log.error({ reason: errorMessage(error) }, 'unclean stop')
          process.exit(1)
        })
      }
      process.once('SIGINT', () => { stop('SIGINT') })
      process.once('SIGTERM', () => { stop('SIGTERM') })
    })
}
