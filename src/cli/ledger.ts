/**
 * `synod keys new`, `synod tx transfer|bond|unbond|withdraw|register|unjail|vote`, `synod
 * validators`, `synod chain status`: the ledger from the command line.
 */
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { fromHex, keyPairFromSeed } from '../core/index.js'
import { VOTES_PER_VOTER_MAX, addressFromPublicKey, signTx, txToJson, type TxBody, type UnsignedTx } from '../ledger/index.js'
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

  const tx = program.command('tx').description('sign a transaction with a key file and submit it to a node')
  /** The options every transaction takes, and the signing and submitting they share. */
  const txCommand = (name: string, description: string): Command => tx.command(name).description(description)
    .requiredOption('--key <file>', 'key file of the sender (a node key or one from `synod keys new`)')
    .option('--fee <units>', 'fee offered to the block producer', amount('--fee'), '1')
    .option('--nonce <n>', 'the sender nonce; by default the account\'s next one from the node')
    .option('--api <url>', 'node API address', DEFAULT_API)
  const submit = async (options: { key: string, fee: string, nonce?: string, api: string }, body: TxBody): Promise<void> => {
    const key = readJsonFile(options.key, keyFileSchema)
    const keyPair = keyPairFromSeed(fromHex(key.seed))
    const from = addressFromPublicKey(keyPair.publicKey)
    const chain = await call(`${options.api}/v1/chain`) as { chainId: string }
    const nonce = options.nonce === undefined ? (await call(`${options.api}/v1/accounts/${from}`) as { nonce: number }).nonce : Number(options.nonce)
    if (!Number.isSafeInteger(nonce) || nonce < 0) throw new CliError('CLI_BAD_INPUT', `--nonce: a whole number, got ${options.nonce ?? ''}`)
    const unsigned: UnsignedTx = { chainId: chain.chainId, publicKey: keyPair.publicKey, nonce, fee: BigInt(options.fee), body }
    const { hash, ...json } = txToJson(signTx(unsigned, keyPair))
    const result = await call(`${options.api}/v1/tx`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) })
    print(JSON.stringify({ from, nonce, kind: body.kind, ...(result as object), hash }, null, 2))
  }
  const address = (name: string) => (value: string): string => {
    if (!/^[0-9a-f]{40}$/.test(value)) throw new CliError('CLI_BAD_INPUT', `${name}: an address is 40 lowercase hex digits, got ${value}`)
    return value
  }

  txCommand('transfer', 'send units to an address')
    .requiredOption('--to <address>', 'recipient address (40 hex digits)', address('--to'))
    .requiredOption('--amount <units>', 'amount to send', amount('--amount'))
    .option('--memo <text>', 'a note carried with the transfer')
    .action(async (options: { key: string, to: string, amount: string, fee: string, nonce?: string, memo?: string, api: string }) => {
      await submit(options, { kind: 'transfer', to: options.to, amount: BigInt(options.amount), ...(options.memo === undefined ? {} : { memo: options.memo }) })
    })
  txCommand('bond', 'bond units of the balance as stake (PoS voting power, DPoS vote weight)')
    .requiredOption('--amount <units>', 'amount to bond', amount('--amount'))
    .action(async (options: { key: string, amount: string, fee: string, nonce?: string, api: string }) => { await submit(options, { kind: 'bond', amount: BigInt(options.amount) }) })
  txCommand('unbond', 'start unbonding stake: it leaves the power at once and can be withdrawn after the unbonding period')
    .requiredOption('--amount <units>', 'amount to unbond', amount('--amount'))
    .action(async (options: { key: string, amount: string, fee: string, nonce?: string, api: string }) => { await submit(options, { kind: 'unbond', amount: BigInt(options.amount) }) })
  txCommand('withdraw', 'return released unbonded stake to the balance')
    .action(async (options: { key: string, fee: string, nonce?: string, api: string }) => { await submit(options, { kind: 'withdraw' }) })
  txCommand('register', 'register the key as a validator (PoS) or producer candidate (DPoS)')
    .action(async (options: { key: string, fee: string, nonce?: string, api: string }) => { await submit(options, { kind: 'register' }) })
  txCommand('unjail', 'end a downtime jailing once its term has passed')
    .action(async (options: { key: string, fee: string, nonce?: string, api: string }) => { await submit(options, { kind: 'unjail' }) })
  txCommand('vote', `DPoS: back up to ${VOTES_PER_VOTER_MAX} producers with the bonded stake (replaces earlier votes; no --for withdraws them)`)
    .option('--for <addresses>', 'comma-separated producer addresses', '')
    .action(async (options: { key: string, for: string, fee: string, nonce?: string, api: string }) => {
      const producers = options.for.split(',').map((item) => item.trim()).filter((item) => item.length > 0).map(address('--for'))
      if (producers.length > VOTES_PER_VOTER_MAX) throw new CliError('CLI_BAD_INPUT', `--for: at most ${VOTES_PER_VOTER_MAX} producers, got ${producers.length}`)
      await submit(options, { kind: 'vote', producers })
    })

  program.command('validators')
    .description('list the validators (PoS) or producers (DPoS) with stake, votes, status and slashing history')
    .option('--api <url>', 'node API address', DEFAULT_API)
    .option('--json', 'print the raw JSON')
    .action(async (options: { api: string, json?: boolean }) => {
      const body = await call(`${options.api}/v1/validators`) as { engine: string, height: number, active: number, validators: Array<{ address: string, status: string, stake: string, power: string, votes: string, slashes: unknown[] }> }
      if (options.json === true) {
        print(JSON.stringify(body, null, 2))
        return
      }
      print(`${body.engine} at height ${body.height}: ${body.active} active`)
      for (const validator of body.validators) print(`  ${validator.address}  ${validator.status.padEnd(10)}  stake ${validator.stake}  power ${validator.power}  votes ${validator.votes}  slashes ${validator.slashes.length}`)
    })

  program.command('chain').description('the ledger').command('status')
    .description("show a node's chain: head, final height, mempool")
    .option('--api <url>', 'node API address', DEFAULT_API)
    .option('--json', 'print the raw JSON')
    .action(async (options: { api: string, json?: boolean }) => {
      const status = await call(`${options.api}/v1/chain`) as { chainId: string, engine: string, head: { height: number, hash: string }, finalizedHeight: number | null, work: string, mempool: { size: number }, stats: { reorgs: number, blocksMined: number } }
      const final = status.finalizedHeight === null ? `work ${status.work}  mined here ${status.stats.blocksMined}` : `final ${status.finalizedHeight}`
      print(options.json === true
        ? JSON.stringify(status, null, 2)
        : `chain ${status.chainId} (${status.engine})  height ${status.head.height}  head ${status.head.hash.slice(0, 16)}…  ${final}  mempool ${status.mempool.size}  reorgs ${status.stats.reorgs}`)
    })
}
