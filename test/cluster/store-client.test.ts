/**
 * The client SDK and `synod kv` against a real 3-node cluster (real processes, real HTTP):
 * put/get/delete/cas round trips with ring-aware routing on (nothing forwarded, read from each
 * node's `synod_store_forwarded_total`) and off (a non-coordinator forwards every request), keys
 * with `/` and unicode, a 100 KiB value, a cas mismatch that returns the current value, the CLI's
 * output and exit codes, and, with one node SIGKILLed, the SDK falling back to the others.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { SynodClient, type SynodClientOptions } from '../../src/client/index.js'
import { HashRing, type RingDescription } from '../../src/store/index.js'
import { SYNOD_MAIN, TestCluster } from '../support/cluster.js'
import { freePort, waitUntil } from '../support/ports.js'

const NODES = 3
const SETTLE_TIMEOUT_MS = 20_000
const VALUE_100_KIB = 100 * 1_024
const VIEW_ROUNDS_MAX = 3

interface MembersBody { members: Array<{ id: string, state: string }> }
interface CliRun { code: number | null, stdout: string, stderr: string }

/** Runs `node dist/src/cli/main.js ...args` to completion. */
async function synod (args: string[]): Promise<CliRun> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SYNOD_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.once('error', reject)
    child.once('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

describe('the store client SDK and synod kv against 3 real nodes', () => {
  let cluster: TestCluster
  let ring: HashRing
  const clients: SynodClient[] = []
  const apis = (): string[] => Array.from({ length: NODES }, (_, index) => cluster.api(index))
  const indexOf = (id: string): number => cluster.init.members.findIndex((member) => member.id === id)
  const coordinatorOf = (key: string): number => indexOf(ring.preferenceList(key)[0])
  const client = (options: Partial<SynodClientOptions> & { endpoints: string[] }): SynodClient => {
    const made = new SynodClient(options)
    clients.push(made)
    return made
  }
  const forwarded = async (index: number): Promise<number> => {
    const metrics = await (await fetch(`${cluster.api(index)}/metrics`)).text()
    const match = /^synod_store_forwarded_total (\d+)$/m.exec(metrics)
    assert.ok(match !== null, `node ${index} exports synod_store_forwarded_total`)
    return Number(match[1])
  }
  /** Suspicions raised, refuted, and probes on a lost link, summed over the nodes: constant while every view is steady. */
  const viewDisturbances = async (): Promise<number> => {
    const totals = await Promise.all([0, 1, 2].map(async (index) => {
      const metrics = await (await fetch(`${cluster.api(index)}/metrics`)).text()
      let total = 0
      for (const name of ['synod_membership_suspicions_total', 'synod_membership_refutations_total', 'synod_membership_probes_on_link_loss_total']) {
        const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)
        assert.ok(match !== null, `node ${index} exports ${name}`)
        total += Number(match[1])
      }
      return total
    }))
    return totals.reduce((sum, value) => sum + value, 0)
  }
  const forwardedEverywhere = async (among: number[] = [0, 1, 2]): Promise<number[]> => await Promise.all(among.map(forwarded))
  /** `count` fresh keys (with this prefix) whose coordinator satisfies `wanted`. */
  const keysWhere = (prefix: string, count: number, wanted: (coordinator: number) => boolean): string[] => {
    const keys: string[] = []
    for (let index = 0; keys.length < count && index < 10_000; index++) if (wanted(coordinatorOf(`${prefix}-${index}`))) keys.push(`${prefix}-${index}`)
    assert.equal(keys.length, count)
    return keys
  }
  const allAlive = async (): Promise<boolean> =>
    (await Promise.all([0, 1, 2].map(async (index) => (await cluster.getJson<MembersBody>(index, '/v1/cluster/members'))?.members.every((member) => member.state === 'alive') === true))).every(Boolean)

  before(async () => {
    cluster = await TestCluster.create(NODES)
    await cluster.startAllHealthy()
    await waitUntil(allAlive, SETTLE_TIMEOUT_MS, 'every node holds every member alive', 100)
    const description = await cluster.getJson<RingDescription>(0, '/v1/cluster/ring')
    assert.ok(description !== null)
    ring = new HashRing({ members: description.members, replicationFactor: description.replicationFactor, vnodesPerWeight: description.vnodesPerWeight })
    assert.deepEqual(description.members.map((member) => member.api).sort(), apis().sort(), 'the ring names every node\'s API')
  })
  after(async () => {
    await Promise.all(clients.map(async (made) => { await made.close() }))
    await cluster.destroy()
  })

  it('round-trips put, get, cas and delete through a ring-aware client, without a single forward', async () => {
    const sdk = client({ endpoints: [cluster.api(0)] })
    const keys = Array.from({ length: 12 }, (_, index) => `ring-aware-${index}`)
    assert.ok(new Set(keys.map(coordinatorOf)).size >= 2, 'the keys have different coordinators')
    const before = await forwardedEverywhere()
    for (const key of keys) {
      assert.deepEqual(await sdk.put(key, `v1 of ${key}`), { version: 1 })
      assert.deepEqual(await sdk.getString(key), { value: `v1 of ${key}`, version: 1 })
      assert.deepEqual(await sdk.cas(key, `v1 of ${key}`, `v2 of ${key}`), { applied: true, version: 2 })
      assert.deepEqual(await sdk.put(key, `v3 of ${key}`), { version: 3 })
      assert.deepEqual(await sdk.delete(key), { deleted: true, version: 4 })
      assert.equal(await sdk.get(key), null)
    }
    assert.deepEqual(await forwardedEverywhere(), before, 'every request reached its coordinator directly')
    assert.equal(sdk.stats().ringFetches, 1)
    assert.equal(sdk.stats().retries, 0)
    assert.equal((await sdk.ring()).members.length, NODES)
  })

  it('goes through a non-coordinator without ring awareness, which forwards every request', async () => {
    const entry = 1
    const keys = keysWhere('forwarded', 5, (coordinator) => coordinator !== entry)
    const sdk = client({ endpoints: [cluster.api(entry)], ringAware: false })
    // A node coordinates itself while it suspects the key's first replica (or lost the link to
    // it), which a loaded machine can cause for a moment; such a round says nothing about
    // forwarding, so it runs again, at most VIEW_ROUNDS_MAX times.
    let forwardedInRound = -1
    for (let round = 1; round <= VIEW_ROUNDS_MAX; round++) {
      const disturbancesBefore = await viewDisturbances()
      const before = await forwarded(entry)
      for (const key of keys) {
        await sdk.put(key, 'one')
        assert.equal((await sdk.getString(key))?.value, 'one')
        assert.equal((await sdk.cas(key, 'one', 'two')).applied, true)
        assert.equal((await sdk.delete(key)).deleted, true)
      }
      forwardedInRound = await forwarded(entry) - before
      if (await viewDisturbances() === disturbancesBefore) break
      await waitUntil(allAlive, SETTLE_TIMEOUT_MS, 'every node holds every member alive again', 100)
    }
    assert.equal(forwardedInRound, keys.length * 4, 'each of the 4 operations per key was forwarded once')
    const ringAware = client({ endpoints: [cluster.api(entry)] })
    const ringAwareBefore = await forwardedEverywhere()
    for (const key of keys) await ringAware.put(key, 'three')
    assert.deepEqual(await forwardedEverywhere(), ringAwareBefore, 'the same keys, ring-aware: no forwards')
  })

  it('keeps keys with / and unicode apart, and stores a 100 KiB value byte for byte', async () => {
    const sdk = client({ endpoints: apis() })
    const keys = ['a/b/c', '/leading/and/trailing/', 'a', 'a/', 'ключ/значение', '🚀 rocket key', 'ü%2F?#&=+ mixed', 'x/cas', 'x']
    for (const [index, key] of keys.entries()) await sdk.put(key, `value ${index} for ${key}`)
    for (const [index, key] of keys.entries()) assert.deepEqual(await sdk.getString(key), { value: `value ${index} for ${key}`, version: 1 }, key)
    const big = new Uint8Array(randomBytes(VALUE_100_KIB))
    assert.deepEqual(await sdk.put('big/value 🚀', big), { version: 1 })
    const found = await sdk.get('big/value 🚀')
    assert.ok(found !== null)
    assert.equal(found.value.byteLength, VALUE_100_KIB)
    assert.ok(Buffer.from(found.value).equals(Buffer.from(big)), 'the 100 KiB value came back unchanged')
    assert.equal(found.version, 1)
  })

  it('answers a cas mismatch with the current value, and applies a matching one', async () => {
    const sdk = client({ endpoints: [cluster.api(2)] })
    const key = 'cas/ü'
    assert.deepEqual(await sdk.cas(key, null, 'one'), { applied: true, version: 1 })
    assert.deepEqual(await sdk.cas(key, null, 'again'), { applied: false, current: 'one', version: 1 })
    assert.deepEqual(await sdk.cas(key, 'wrong', 'two'), { applied: false, current: 'one', version: 1 })
    assert.deepEqual(await sdk.cas(key, 'one', 'two'), { applied: true, version: 2 })
    assert.deepEqual(await sdk.getString(key), { value: 'two', version: 2 })
    assert.equal((await sdk.delete(key)).deleted, true)
    const afterDelete = await sdk.cas(key, 'two', 'three')
    assert.equal(afterDelete.applied, false)
    assert.equal(afterDelete.applied ? undefined : afterDelete.current, null, 'a deleted key is absent to cas')
  })

  it('a causal session reads its own writes on every node; the eventual view writes to W, reads from R, and merges siblings', async () => {
    const session = client({ endpoints: apis() }).session()
    assert.equal(session.token, null)
    const written = await session.put('causal/profile', 'v1')
    assert.match(written.version, /^\d+\.\d+\./)
    assert.ok(session.token !== null)
    // The same session through each node in turn (not ring-aware): every read sees the write.
    for (let index = 0; index < NODES; index++) {
      const resumed = client({ endpoints: [cluster.api(index)], ringAware: false }).session(session.token)
      const read = await resumed.get('causal/profile')
      assert.equal(read === null ? null : Buffer.from(read.value).toString(), 'v1', `node ${index}`)
    }
    await session.delete('causal/profile')
    assert.equal(await session.get('causal/profile'), null)

    const eventual = client({ endpoints: apis() }).eventual({ w: 3, r: 3 })
    await eventual.put('eventual/cart', 'apple')
    const { context } = await eventual.siblings('eventual/cart')
    await eventual.resolve('eventual/cart', 'pear', context)
    await eventual.resolve('eventual/cart', 'plum', context)
    const siblings = await eventual.siblings('eventual/cart')
    assert.deepEqual(siblings.values.map((sibling) => Buffer.from(sibling.value ?? new Uint8Array()).toString()).sort(), ['pear', 'plum'])
    const merged = await eventual.merge('eventual/cart', (values) => values.map((sibling) => Buffer.from(sibling.value ?? new Uint8Array()).toString()).sort().join('+'))
    assert.equal(Buffer.from(merged ?? new Uint8Array()).toString(), 'pear+plum')
    const after = await eventual.siblings('eventual/cart')
    assert.equal(after.values.length, 1)
    assert.equal(Buffer.from((await eventual.get('eventual/cart'))?.value ?? new Uint8Array()).toString(), 'pear+plum')
    await assert.rejects(client({ endpoints: apis() }).eventual({ w: 4 }).put('eventual/x', 'y'), (error: Error & { code?: string }) => error.code === 'STORE_BAD_REQUEST')
  })

  it('synod kv at the causal and eventual levels: versions, the session token, and cas refused', async () => {
    const api = ['--api', cluster.api(1)]
    let run = await synod(['kv', 'put', 'cli/causal', 'one', '--consistency', 'causal', '--json', ...api])
    assert.equal(run.code, 0, run.stderr)
    const put = JSON.parse(run.stdout) as { version: string, session: string }
    assert.match(put.version, /^\d+\.\d+\./)
    run = await synod(['kv', 'get', 'cli/causal', '--consistency', 'causal', '--session', put.session, '--api', cluster.api(2)])
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, 'one')
    assert.match(run.stderr, /^session /)
    run = await synod(['kv', 'put', 'cli/eventual', 'two', '--consistency', 'eventual', '--w', '2', ...api])
    assert.equal(run.code, 0, run.stderr)
    run = await synod(['kv', 'get', 'cli/eventual', '--consistency', 'eventual', '--r', '2', ...api])
    assert.deepEqual([run.code, run.stdout], [0, 'two'])
    run = await synod(['kv', 'cas', 'cli/eventual', 'x', '--absent', '--consistency', 'eventual', ...api])
    assert.equal(run.code, 2)
    run = await synod(['kv', 'get', 'cli/eventual', '--w', '2', ...api])
    assert.equal(run.code, 2, 'w without --consistency eventual is refused')
  })

  it('synod kv put, get, cas, del: output and exit codes', async () => {
    const api = ['--api', cluster.api(1)]
    const key = 'cli/ключ 🚀'
    let run = await synod(['kv', 'put', key, 'hello', ...api])
    assert.deepEqual([run.code, run.stdout], [0, '1\n'], run.stderr)
    run = await synod(['kv', 'get', key, ...api])
    assert.deepEqual([run.code, run.stdout], [0, 'hello'], 'get prints the raw value')
    run = await synod(['kv', 'get', key, '--json', ...api])
    assert.equal(run.code, 0)
    assert.deepEqual(JSON.parse(run.stdout), { key, found: true, version: 1, value: 'hello' })
    run = await synod(['kv', 'cas', key, '--expected', 'hello', 'world', ...api])
    assert.deepEqual([run.code, run.stdout], [0, '2\n'], run.stderr)
    run = await synod(['kv', 'cas', key, '--expected', 'hello', 'again', ...api])
    assert.equal(run.code, 1, 'a cas that does not apply exits 1')
    assert.match(run.stderr, /not applied: the value is "world" \(version 2\)/)
    run = await synod(['kv', 'cas', key, '--absent', 'again', '--json', ...api])
    assert.equal(run.code, 1)
    assert.deepEqual(JSON.parse(run.stdout), { key, applied: false, current: 'world', version: 2 })
    run = await synod(['kv', 'del', key, ...api])
    assert.deepEqual([run.code, run.stdout], [0, 'deleted, version 3\n'])
    run = await synod(['kv', 'get', key, ...api])
    assert.equal(run.code, 1, 'get of an absent key exits 1')
    assert.equal(run.stdout, '')
    assert.match(run.stderr, /not found/)
    run = await synod(['kv', 'del', key, '--json', ...api])
    assert.equal(run.code, 0)
    assert.equal(JSON.parse(run.stdout).deleted, false)
    run = await synod(['kv', 'cas', key, '--absent', 'fresh', '--json', ...api])
    assert.equal(run.code, 0)
    assert.equal(JSON.parse(run.stdout).applied, true)
    run = await synod(['kv', 'put', 'cli/x', 'y', '--api', `http://127.0.0.1:${await freePort()},${cluster.api(2)}`])
    assert.deepEqual([run.code, run.stdout], [0, '1\n'], 'an unreachable first --api falls back to the next')

    const refused = `http://127.0.0.1:${await freePort()}`
    run = await synod(['kv', 'put', 'k', 'v', '--api', refused])
    assert.equal(run.code, 2, 'a definite failure exits 2')
    assert.match(run.stderr, /error CLIENT_UNREACHABLE: .*did not apply/)
    run = await synod(['kv', 'get', 'k', '--api', refused, '--json'])
    assert.equal(run.code, 2)
    assert.deepEqual([JSON.parse(run.stdout).error.code, JSON.parse(run.stdout).error.definite], ['CLIENT_UNREACHABLE', true])
    run = await synod(['kv', 'cas', 'k', 'v', ...api])
    assert.equal(run.code, 2, 'neither --expected nor --absent is bad input')
    assert.match(run.stderr, /--expected VALUE or --absent/)

    // An indefinite failure: a stand-in node answering 504 STORE_TIMEOUT.
    let seen = 0
    const standIn = createServer((_request, response) => {
      seen++
      response.writeHead(504, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'STORE_TIMEOUT', message: 'no quorum confirmed the write in time', details: {} }))
    })
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve))
    try {
      const address = standIn.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      run = await synod(['kv', 'put', 'k', 'v', '--api', `http://127.0.0.1:${port}`])
      assert.equal(run.code, 3, 'an indefinite failure exits 3')
      assert.match(run.stderr, /error STORE_TIMEOUT: .*may or may not have applied/)
      assert.equal(seen, 1, 'the put was not retried')
    } finally {
      standIn.closeAllConnections()
      await new Promise<void>((resolve) => standIn.close(() => resolve()))
    }

    run = await synod(['kv', '--help'])
    assert.match(run.stdout, /Exit codes:[\s\S]*2 +failed, and certainly did not apply[\s\S]*3 +failed, and may or may not have applied/)
  })

  it('keeps working through the SDK when a node is SIGKILLed', async () => {
    const victim = 2
    const victimId = cluster.nodeId(victim)
    const keys = keysWhere('survivor', 4, (coordinator) => coordinator === victim)
    const ringAware = client({ endpoints: apis(), retries: { attempts: 4, backoffMsMin: 50, backoffMsMax: 500 } })
    const plain = client({ endpoints: [cluster.api(victim), cluster.api(0)], ringAware: false })
    for (const key of keys) await ringAware.put(key, `before ${key}`)

    await cluster.kill(victim, 'SIGKILL')
    const survivors = [0, 1]
    await waitUntil(async () => (await Promise.all(survivors.map(async (index) =>
      (await cluster.getJson<MembersBody>(index, '/v1/cluster/members'))?.members.find((member) => member.id === victimId)?.state !== 'alive'))).every(Boolean),
    SETTLE_TIMEOUT_MS, 'the survivors no longer hold the killed node alive', 100)

    for (const key of keys) {
      assert.deepEqual(await ringAware.getString(key), { value: `before ${key}`, version: 1 }, `${key}, whose coordinator was killed, reads through a fallback`)
      assert.deepEqual(await ringAware.put(key, `after ${key}`), { version: 2 })
      assert.deepEqual(await ringAware.cas(key, `after ${key}`, 'cas after'), { applied: true, version: 3 })
      assert.equal((await plain.getString(key))?.value, 'cas after', 'a client whose first endpoint is dead falls back to the next')
      assert.deepEqual(await plain.delete(key), { deleted: true, version: 4 })
    }
    assert.ok(ringAware.stats().unreachable >= 1, 'the ring-aware client met the dead node and moved on')
    assert.ok(plain.stats().unreachable >= 1)
  })
})
