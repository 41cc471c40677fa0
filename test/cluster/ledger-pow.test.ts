/**
 * Proof of work across real processes: `synod up --consensus pow` (4 nodes, one miner thread
 * each) grows one chain; a node killed with SIGKILL and started again from its data directory
 * catches up and stays in sync; a transfer signed with `synod tx transfer` and submitted to one
 * node is included, and the restarted node reports it.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SYNOD_MAIN, freeBasePort, getJson, runSynodUp, stopAllUpRuns } from '../support/cluster.js'
import { waitUntil } from '../support/ports.js'

interface ChainBody { head: { height: number, hash: string }, stats: { blocksMined: number } }

const NODES = 4
const SYNC_TIMEOUT_MS = 60_000

it('synod up --consensus pow grows one chain, and a killed node restarted from disk rejoins it', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'synod-pow-'))
  const basePort = await freeBasePort(NODES)
  const apis = Array.from({ length: NODES }, (_, index) => `http://127.0.0.1:${basePort + 100 + index}`)
  const chainOf = async (index: number): Promise<ChainBody | null> => await getJson<ChainBody>(`${apis[index]}/v1/chain`)
  const hashAt = async (index: number, height: number): Promise<string | null> => (await getJson<{ hash: string }>(`${apis[index]}/v1/blocks/${height}`))?.hash ?? null
  /** Every node of `among` has the same block at the lowest head height minus one (the tip may differ for a moment). */
  const agree = async (among: number[], heightMin: number): Promise<boolean> => {
    const chains = await Promise.all(among.map(chainOf))
    if (chains.some((chain) => chain === null || chain.head.height < heightMin)) return false
    const height = Math.min(...chains.map((chain) => (chain as ChainBody).head.height)) - 1
    const hashes = await Promise.all(among.map(async (index) => await hashAt(index, height)))
    return hashes[0] !== null && hashes.every((hash) => hash === hashes[0])
  }
  let restarted: ChildProcess | null = null
  try {
    const up = runSynodUp(dataDir, basePort, ['--nodes', String(NODES), '--gateway-port', '0', '--consensus', 'pow', '--miner-threads', '1'])
    await up.ready
    assert.match(up.output(), /ledger: pow, chain synod-local, 1 miner thread/)
    const all = [0, 1, 2, 3]
    await waitUntil(async () => await agree(all, 8), SYNC_TIMEOUT_MS, 'four nodes on one chain of 8 blocks')
    const mined = await Promise.all(all.map(async (index) => (await chainOf(index))?.stats.blocksMined ?? 0))
    assert.ok(mined.filter((count) => count > 0).length >= 2, `more than one node mined: ${mined.join(', ')}`)

    const victim = 3
    const pid = (await getJson<{ pid: number }>(`${apis[victim]}/v1/status`))?.pid
    assert.ok(pid !== undefined)
    const heightAtKill = (await chainOf(victim))?.head.height ?? 0
    process.kill(pid, 'SIGKILL')
    await waitUntil(async () => ((await chainOf(0))?.head.height ?? 0) >= heightAtKill + 3, SYNC_TIMEOUT_MS, 'the others go on mining')

    restarted = spawn(process.execPath, [SYNOD_MAIN, 'node', '--config', join(dataDir, `node-${victim}.json`), '--miner-threads', '1'], { stdio: 'ignore' })
    await waitUntil(async () => (await chainOf(victim)) !== null, SYNC_TIMEOUT_MS, 'the restarted node answers')
    const replayed = (await chainOf(victim))?.head.height ?? 0
    assert.ok(replayed >= heightAtKill - 2, `it replayed its chain from disk (${replayed}, killed at ${heightAtKill})`)
    const othersHeight = (await chainOf(0))?.head.height ?? 0
    await waitUntil(async () => await agree(all, othersHeight + 1), SYNC_TIMEOUT_MS, 'the restarted node is back in sync')

    // A transfer signed by the CLI with node 0's key, submitted to node 1, lands at node 3.
    const to = 'ab'.repeat(20)
    const { stdout } = await promisify(execFile)(process.execPath, [SYNOD_MAIN, 'tx', 'transfer', '--key', join(dataDir, 'data', 'node-0', 'node.key'), '--to', to, '--amount', '777', '--fee', '3', '--api', apis[1] as string])
    const submitted = JSON.parse(stdout) as { hash: string, status: string }
    assert.equal(submitted.status, 'pending')
    await waitUntil(async () => (await getJson<{ balance: string }>(`${apis[victim]}/v1/accounts/${to}`))?.balance === '777', SYNC_TIMEOUT_MS, 'the transfer is included')
    const included = await getJson<{ status: string, height: number, confirmations: number }>(`${apis[victim]}/v1/tx/${submitted.hash}`)
    assert.equal(included?.status, 'included')
  } finally {
    restarted?.kill('SIGTERM')
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  }
})
