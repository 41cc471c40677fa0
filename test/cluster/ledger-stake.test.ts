/**
 * PoS and DPoS across real processes. `synod up` (PoS by default, 4 validators with equal stake)
 * finalizes continuously; with one validator killed (SIGKILL) the other three (3/4 of the power,
 * more than 2/3) still finalize; with a second one killed (2/4, not more than 2/3) nothing
 * finalizes; restarting one of them from its data directory makes it catch up and finalization
 * resumes. The same with `--consensus dpos` (4 producers: a block is irreversible once
 * floor(2 x 4 / 3) + 1 = 3 distinct producers built on it). Every node reports the same block at
 * every final height it shares with the others.
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

interface ChainBody { engine: string, head: { height: number, hash: string }, finalizedHeight: number | null }

const NODES = 4
const TIMEOUT_MS = 60_000
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

for (const engine of ['pos', 'dpos'] as const) {
it(`synod up (${engine}): finalizes with 4 and with 3 of 4 validators, stops with 2, resumes when one restarts`, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), `synod-${engine}-`))
  const basePort = await freeBasePort(NODES)
  const apis = Array.from({ length: NODES }, (_, index) => `http://127.0.0.1:${basePort + 100 + index}`)
  const chainOf = async (index: number): Promise<ChainBody | null> => await getJson<ChainBody>(`${apis[index]}/v1/chain`)
  const finalized = async (index: number): Promise<number> => (await chainOf(index))?.finalizedHeight ?? -1
  const hashAt = async (index: number, height: number): Promise<string | null> => (await getJson<{ hash: string }>(`${apis[index]}/v1/blocks/${height}`))?.hash ?? null
  const pidOf = async (index: number): Promise<number> => {
    const pid = (await getJson<{ pid: number }>(`${apis[index]}/v1/status`))?.pid
    assert.ok(pid !== undefined, `node ${index} reports its pid`)
    return pid
  }
  /** The nodes in `among` hold the same block at every height up to the lowest finalized one (sampled). */
  const agree = async (among: number[]): Promise<void> => {
    const heights = await Promise.all(among.map(finalized))
    const top = Math.min(...heights)
    for (const height of [1, Math.max(1, top >> 1), top]) {
      const hashes = await Promise.all(among.map(async (index) => await hashAt(index, height)))
      assert.ok(hashes.every((hash) => hash !== null && hash === hashes[0]), `height ${height}: ${hashes.join(', ')}`)
    }
  }
  let restarted: ChildProcess | null = null
  try {
    const up = runSynodUp(dataDir, basePort, ['--nodes', String(NODES), '--gateway-port', '0', ...(engine === 'pos' ? [] : ['--consensus', engine])])
    await up.ready
    assert.match(up.output(), engine === 'pos' ? /ledger: pos, chain synod-local, 4 validators/ : /ledger: dpos, chain synod-local, 4 producer candidates/)
    const all = [0, 1, 2, 3]
    await waitUntil(async () => (await Promise.all(all.map(finalized))).every((height) => height >= 5), TIMEOUT_MS, 'four validators finalize 5 blocks')
    assert.equal((await chainOf(0))?.engine, engine)
    const chain = await chainOf(0) as ChainBody
    if (engine === 'pos') assert.equal(chain.finalizedHeight, chain.head.height, 'every block a PoS node holds is final')
    else assert.ok((chain.finalizedHeight ?? 0) < chain.head.height, 'the irreversible block trails the head')
    await agree(all)

    // Staking from the command line: node 0 bonds more; the validators list shows it.
    const key = join(dataDir, 'data', 'node-0', 'node.key')
    const run = async (...args: string[]): Promise<string> => (await promisify(execFile)(process.execPath, [SYNOD_MAIN, ...args, '--api', apis[1] as string])).stdout
    const before = JSON.parse(await run('validators', '--json')) as { validators: Array<{ address: string, stake: string }> }
    const bonded = JSON.parse(await run('tx', 'bond', '--key', key, '--amount', '5000')) as { from: string, status: string }
    assert.equal(bonded.status, 'pending')
    const stakeOf = (body: { validators: Array<{ address: string, stake: string }> }): bigint => BigInt(body.validators.find((validator) => validator.address === bonded.from)?.stake ?? '0')
    await waitUntil(async () => stakeOf(await getJson(`${apis[2]}/v1/validators`) ?? { validators: [] }) === stakeOf(before) + 5000n, TIMEOUT_MS, 'the bond is final on another node')
    assert.match(await run('validators'), new RegExp(`${bonded.from}\\s+active`))

    // One validator down: 3/4 of the power is more than 2/3.
    process.kill(await pidOf(3), 'SIGKILL')
    const atFirstKill = await finalized(0)
    await waitUntil(async () => (await finalized(0)) >= atFirstKill + 5, TIMEOUT_MS, 'three validators still finalize')
    await agree([0, 1, 2])

    // Two down: 2/4 is not more than 2/3; nothing made after the kill may finalize.
    const killedHead = (await chainOf(2))?.head.height ?? 0
    process.kill(await pidOf(2), 'SIGKILL')
    if (engine === 'pos') {
      await sleep(2_000)
      const stalled = Math.max(await finalized(0), await finalized(1))
      await sleep(6_000)
      assert.equal(Math.max(await finalized(0), await finalized(1)), stalled, 'two of four validators finalized alone')
    } else {
      // A block the killed producer made before the kill (at most one more than the head it
      // reported) may still become irreversible once both survivors build on it, however long
      // their forks take to settle; no block made after the kill ever may (it would need a third
      // distinct producer). Sampled over 12 s while the survivors go on producing.
      const headBefore = (await chainOf(0))?.head.height ?? 0
      for (let sample = 0; sample < 12; sample++) {
        await sleep(1_000)
        const lib = Math.max(await finalized(0), await finalized(1))
        assert.ok(lib <= killedHead + 1, `two of four producers made block ${lib} irreversible alone (the killed producer's head was ${killedHead})`)
      }
      assert.ok(((await chainOf(0))?.head.height ?? 0) > headBefore, 'DPoS blocks go on in the survivors\' slots')
    }
    const stalled = Math.max(await finalized(0), await finalized(1))

    // One comes back from its data directory: 3/4 again.
    restarted = spawn(process.execPath, [SYNOD_MAIN, 'node', '--config', join(dataDir, 'node-2.json')], { stdio: 'ignore' })
    await waitUntil(async () => (await finalized(2)) >= stalled, TIMEOUT_MS, 'the restarted validator catches up')
    await waitUntil(async () => (await Promise.all([0, 1, 2].map(finalized))).every((height) => height >= stalled + 3), TIMEOUT_MS, 'finalization resumes')
    await agree([0, 1, 2])
  } finally {
    restarted?.kill('SIGTERM')
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  }
})
}
