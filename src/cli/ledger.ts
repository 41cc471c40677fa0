/** `synod keys new`, `synod tx transfer`, `synod chain status`: the ledger from the command line. */
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { fromHex, keyPairFromSeed } from '../core/index.js'
import { addressFromPublicKey, signTx, txToJson, type UnsignedTx } from '../ledger/index.js'
import { generateKeyFile, keyFileSchema, readJsonFile, writeKeyFile } from '../node/index.js'
import { CliError } from './errors.js'

const DEFAULT_API = 'http://127.0.0.1:7200'
const REQUEST_TIMEOUT_MS = 10_000

async function call (url: string, init?: RequestInit): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  } catch (error) {
    throw new CliError('CLI_NODE_UNREACHABLE', `cannot reach ${url}: ${(error as Error).message}`)
  }
  const body = await response.json().catch(() => null) as { code?: string, message?: string } | null
  if (!response.ok) throw new CliError('CLI_REQUEST_FAILED', `${response.status} ${body?.code ?? ''}: ${body?.message ?? response.statusText}`, { status: response.status, code: body?.code })
  return body
}

const amount = (name: string) => (value: string): string => {
  if (!/^\d{1,20}$/.test(value) || BigInt(value) >= 1n << 64n) throw new CliError('CLI_BAD_INPUT', `${name}: a whole number below 2^64, got ${value}`)
  return value
}

export function ledgerCommands (program: Command, print: (line: string) => void): void {
  program.command('keys').description('account keys').command('new')
    .description('create an Ed25519 key file and print its account address')
    .requiredOption('--out <file>', 'where to write the key (refuses to overwrite)')
    .action((options: { out: string }) => {
      if (existsSync(options.out)) throw new CliError('CLI_BAD_INPUT', `${options.out} exists; choose another --out`)
      const key = generateKeyFile()
      writeKeyFile(options.out, key)
      print(JSON.stringify({ address: addressFromPublicKey(fromHex(key.publicKey)), publicKey: key.publicKey, file: options.out }, null, 2))
    })

  program.command('tx').description('transactions').command('transfer')
    .description('sign a transfer with a key file and submit it to a node')
    .requiredOption('--key <file>', 'key file of the sender (a node key or one from `synod keys new`)')
    .requiredOption('--to <address>', 'recipient address (40 hex digits)')
    .requiredOption('--amount <units>', 'amount to send', amount('--amount'))
    .option('--fee <units>', 'fee offered to the miner', amount('--fee'), '1')
    .option('--nonce <n>', 'the sender nonce; by default the account\'s next one from the node')
    .option('--memo <text>', 'a note carried with the transfer')
    .option('--api <url>', 'node API address', DEFAULT_API)
    .action(async (options: { key: string, to: string, amount: string, fee: string, nonce?: string, memo?: string, api: string }) => {
      if (!/^[0-9a-f]{40}$/.test(options.to)) throw new CliError('CLI_BAD_INPUT', `--to: an address is 40 lowercase hex digits, got ${options.to}`)
      const key = readJsonFile(options.key, keyFileSchema)
      const keyPair = keyPairFromSeed(fromHex(key.seed))
      const from = addressFromPublicKey(keyPair.publicKey)
      const chain = await call(`${options.api}/v1/chain`) as { chainId: string }
      const nonce = options.nonce === undefined ? (await call(`${options.api}/v1/accounts/${from}`) as { nonce: number }).nonce : Number(options.nonce)
      if (!Number.isSafeInteger(nonce) || nonce < 0) throw new CliError('CLI_BAD_INPUT', `--nonce: a whole number, got ${options.nonce ?? ''}`)
      const unsigned: UnsignedTx = { chainId: chain.chainId, publicKey: keyPair.publicKey, nonce, fee: BigInt(options.fee), body: { kind: 'transfer', to: options.to, amount: BigInt(options.amount), ...(options.memo === undefined ? {} : { memo: options.memo }) } }
      const json = txToJson(signTx(unsigned, keyPair))
      const { hash, ...body } = json
      const result = await call(`${options.api}/v1/tx`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      print(JSON.stringify({ from, nonce, ...(result as object), hash }, null, 2))
    })

  program.command('chain').description('the ledger').command('status')
    .description("show a node's chain: head, work, mempool")
    .option('--api <url>', 'node API address', DEFAULT_API)
    .option('--json', 'print the raw JSON')
    .action(async (options: { api: string, json?: boolean }) => {
      const status = await call(`${options.api}/v1/chain`) as { chainId: string, engine: string, head: { height: number, hash: string }, work: string, mempool: { size: number }, stats: { reorgs: number, blocksMined: number } }
      print(options.json === true
        ? JSON.stringify(status, null, 2)
        : `chain ${status.chainId} (${status.engine})  height ${status.head.height}  head ${status.head.hash.slice(0, 16)}…  work ${status.work}  mempool ${status.mempool.size}  mined here ${status.stats.blocksMined}  reorgs ${status.stats.reorgs}`)
    })
}
