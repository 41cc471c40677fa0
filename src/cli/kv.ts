/**
 * `synod kv put|get|del|cas`: the key-value store from the command line, through the client SDK
 * (src/client). Exit codes say what happened to the operation, so scripts can tell "did not
 * apply" from "may have applied".
 */
import type { Command } from 'commander'
import { SynodClient, SynodClientError, DEFAULT_TIMEOUT_MS } from '../client/index.js'
import { CliError } from './errors.js'
import { choiceOption, integerOption } from './options.js'

const DEFAULT_API = 'http://127.0.0.1:7200'

/** The operation succeeded (cas: it applied). */
const EXIT_OK = 0
/** get: no value under the key; cas: the current value was not the expected one (nothing written). */
const EXIT_NOT_THERE = 1
/** A definite failure: the operation certainly did not apply (no quorum, overloaded, bad input, node unreachable before sending). */
const EXIT_DEFINITE = 2
/** An indefinite failure: the operation may or may not have applied (STORE_TIMEOUT, a timeout or a lost connection after sending). */
const EXIT_INDEFINITE = 3

const EXIT_CODES_HELP = `
Exit codes:
  0  done (cas: applied)
  1  get: no value under the key; cas: the value was not the expected one, nothing written
  2  failed, and certainly did not apply (STORE_NO_QUORUM, STORE_OVERLOADED, bad input, a node
     that refused the connection); safe to run again
  3  failed, and may or may not have applied (STORE_TIMEOUT, a timeout or a lost connection
     after sending); read the key before running a write again

Keys may hold any characters ('/' included). --api takes one node API address or several,
comma-separated: the first that answers serves, the others are fallbacks. Writes are retried
only after definite failures; a get is retried after any transient failure.`

interface CommonOptions { api: string, json?: boolean, timeoutMs: number, consistency: Level, w?: number, r?: number, session?: string }

const levels = ['strong', 'causal', 'eventual'] as const
type Level = typeof levels[number]

/** put, get and del at the chosen level: the SDK's strong methods, a causal session, or the eventual view. */
interface LevelOperations {
  put: (key: string, value: string) => Promise<{ version: number | string }>
  get: (key: string) => Promise<{ value: Uint8Array, version: number | string } | null>
  del: (key: string) => Promise<{ deleted?: boolean, version: number | string | null }>
  /** The causal session's token after the operation (null at the other levels). */
  session: () => string | null
}

function operationsAt (client: SynodClient, options: CommonOptions): LevelOperations {
  if (options.consistency !== 'eventual' && (options.w !== undefined || options.r !== undefined)) throw new CliError('CLI_BAD_INPUT', '--w and --r are options of --consistency eventual')
  if (options.consistency !== 'causal' && options.session !== undefined) throw new CliError('CLI_BAD_INPUT', '--session is an option of --consistency causal')
  if (options.consistency === 'causal') {
    const session = client.session(options.session)
    return { put: async (key, value) => await session.put(key, value), get: async (key) => await session.get(key), del: async (key) => await session.delete(key), session: () => session.token }
  }
  if (options.consistency === 'eventual') {
    const eventual = client.eventual({ w: options.w, r: options.r })
    return { put: async (key, value) => await eventual.put(key, value), get: async (key) => await eventual.get(key), del: async (key) => await eventual.delete(key), session: () => null }
  }
  return { put: async (key, value) => await client.put(key, value), get: async (key) => await client.get(key), del: async (key) => await client.delete(key), session: () => null }
}

/** A causal session's token: in the JSON output, or on stderr (stdout carries the value). */
function sessionFields (operations: LevelOperations, options: CommonOptions): { session?: string } {
  const token = operations.session()
  if (token === null) return {}
  if (options.json !== true) process.stderr.write(`session ${token}\n`)
  return { session: token }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true })

function endpointsOf (api: string): string[] {
  const endpoints = api.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
  if (endpoints.length === 0) throw new CliError('CLI_BAD_INPUT', '--api: give at least one node API address')
  for (const endpoint of endpoints) {
    if (!URL.canParse(endpoint)) throw new CliError('CLI_BAD_INPUT', `--api: ${endpoint} is not a URL (try ${DEFAULT_API})`)
  }
  return endpoints
}

/** A value as JSON: its UTF-8 text when it is valid UTF-8, base64 otherwise. */
function jsonValue (bytes: Uint8Array): { value: string } | { valueBase64: string } {
  try {
    return { value: utf8Strict.decode(bytes) }
  } catch {
    return { valueBase64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') }
  }
}

/**
 * Runs one store operation with a client on the given endpoints, and turns its outcome into
 * output and an exit code. One request per command: a one-shot process gains nothing from
 * fetching the ring first, since a node forwards to the coordinator itself.
 */
async function withClient (options: CommonOptions, print: (line: string) => void, work: (client: SynodClient) => Promise<number>): Promise<void> {
  const client = new SynodClient({ endpoints: endpointsOf(options.api), ringAware: false, timeoutMs: options.timeoutMs })
  try {
    process.exitCode = await work(client)
  } catch (error) {
    if (!(error instanceof SynodClientError)) throw error
    if (options.json === true) {
      print(JSON.stringify({ error: error.toJSON() }, null, 2))
    } else {
      const outcome = error.definite ? 'the operation did not apply' : 'the operation may or may not have applied'
      process.stderr.write(`error ${error.code}: ${error.message} (${outcome})\n`)
    }
    process.exitCode = error.definite ? EXIT_DEFINITE : EXIT_INDEFINITE
  } finally {
    await client.close()
  }
}

export function kvCommands (program: Command, print: (line: string) => void): void {
  const kv = program.command('kv')
    .description('the replicated key-value store: put, get, del (strong, causal or eventual), cas (strong)')
    .addHelpText('after', EXIT_CODES_HELP)
  const kvCommand = (name: string, description: string): Command => kv.command(name).description(description)
    .option('--api <urls>', 'node API address (several: comma-separated fallbacks)', DEFAULT_API)
    .option('--json', 'print JSON (errors too, as {"error": {...}}, on stdout)')
    .option('--timeout-ms <ms>', 'per attempt', integerOption('--timeout-ms', 1, 600_000), DEFAULT_TIMEOUT_MS)
    .option('--consistency <level>', `${levels.join(', ')} (cas: strong only)`, choiceOption('--consistency', levels), 'strong')
    .option('--w <n>', 'eventual: replicas that must hold a write before it is acknowledged', integerOption('--w', 1, 64))
    .option('--r <n>', 'eventual: replicas a read merges', integerOption('--r', 1, 64))
    .option('--session <token>', 'causal: the session token a previous command printed, to continue its session')
    .addHelpText('after', EXIT_CODES_HELP)

  kvCommand('put', 'store VALUE (as UTF-8) under KEY and print the new version')
    .argument('<key>', 'the key')
    .argument('<value>', 'the value')
    .action(async (key: string, value: string, options: CommonOptions) => {
      await withClient(options, print, async (client) => {
        const operations = operationsAt(client, options)
        const { version } = await operations.put(key, value)
        const session = sessionFields(operations, options)
        print(options.json === true ? JSON.stringify({ key, version, ...session }) : String(version))
        return EXIT_OK
      })
    })

  kvCommand('get', 'print the value under KEY, as stored (raw bytes, no newline added); exit 1 when there is none')
    .argument('<key>', 'the key')
    .action(async (key: string, options: CommonOptions) => {
      await withClient(options, print, async (client) => {
        const operations = operationsAt(client, options)
        const found = await operations.get(key)
        const session = sessionFields(operations, options)
        if (found === null) {
          if (options.json === true) print(JSON.stringify({ key, found: false, ...session }))
          else process.stderr.write(`not found: no value under ${JSON.stringify(key)}\n`)
          return EXIT_NOT_THERE
        }
        if (options.json === true) print(JSON.stringify({ key, found: true, version: found.version, ...jsonValue(found.value), ...session }))
        else process.stdout.write(found.value)
        return EXIT_OK
      })
    })

  kvCommand('del', 'delete KEY; prints whether a value was there and the version (deleting an absent key succeeds)')
    .argument('<key>', 'the key')
    .action(async (key: string, options: CommonOptions) => {
      await withClient(options, print, async (client) => {
        const operations = operationsAt(client, options)
        const { deleted, version } = await operations.del(key)
        const session = sessionFields(operations, options)
        if (deleted === undefined) print(options.json === true ? JSON.stringify({ key, version, ...session }) : `deleted, version ${String(version)}`)
        else print(options.json === true ? JSON.stringify({ key, deleted, version }) : `${deleted ? 'deleted' : 'absent'}, version ${String(version)}`)
        return EXIT_OK
      })
    })

  kvCommand('cas', 'compare-and-set: store VALUE under KEY only if the value is --expected X (or the key is --absent); exit 1 when it is not')
    .argument('<key>', 'the key')
    .argument('<value>', 'the new value')
    .option('--expected <value>', 'the value KEY must hold now')
    .option('--absent', 'KEY must hold no value now')
    .action(async (key: string, value: string, options: CommonOptions & { expected?: string, absent?: boolean }) => {
      if ((options.expected === undefined) === (options.absent !== true)) {
        throw new CliError('CLI_BAD_INPUT', 'cas: give exactly one of --expected VALUE or --absent')
      }
      if (options.consistency !== 'strong') throw new CliError('CLI_BAD_INPUT', 'cas: compare-and-set needs --consistency strong')
      const expected = options.absent === true ? null : options.expected ?? null
      await withClient(options, print, async (client) => {
        const result = await client.cas(key, expected, value)
        if (options.json === true) {
          print(JSON.stringify({ key, ...result }))
        } else if (result.applied) {
          print(String(result.version))
        } else {
          const current = result.current === null ? 'absent' : JSON.stringify(result.current)
          process.stderr.write(`not applied: the value is ${current} (version ${result.version})\n`)
        }
        return result.applied ? EXIT_OK : EXIT_NOT_THERE
      })
    })
}
