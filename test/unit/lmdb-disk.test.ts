/**
 * The real disk in one process: LMDB behind the write-ahead log. Reads see writes at once,
 * checkpoints move the log into LMDB and delete its segments, a reopened disk holds exactly what
 * was written (a model check over random operations), a batch a crash cut short is cut off, and
 * damage anywhere else refuses to open. Recovery after SIGKILL is `test/cluster/lmdb-durability`.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import fc from 'fast-check'
import { CoreError, silentLogger } from '../../src/core/index.js'
import { LmdbDisk, type DiskLimits } from '../../src/node/index.js'

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined): string | undefined => value === undefined ? undefined : new TextDecoder().decode(value)
const synced = async (disk: LmdbDisk): Promise<void> => { await new Promise<void>((resolve) => { disk.sync(resolve) }) }

async function withDir (run: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'synod-disk-'))
  try { await run(dir) } finally { rmSync(dir, { recursive: true, force: true }) }
}

function segments (path: string): string[] {
  return readdirSync(join(path, 'wal')).filter((name) => name.endsWith('.wal')).sort()
}

/** Writes through a disk that is never closed, as a crash leaves it: its segments hold the writes. */
async function crashedDisk (path: string, write: (disk: LmdbDisk) => void): Promise<void> {
  const disk = new LmdbDisk(path, silentLogger, { walCheckpointIntervalMs: 3_600_000 })
  write(disk)
  await synced(disk)
  // Stand-in for the crash: the log stays as it is, LMDB never saw these writes. `abandon` only
  // stops the timers and closes the files, it writes nothing.
  await disk.abandon()
}

/** Every entry of a range, read `limit` at a time with `after`; each page checked for its length. */
function paged (disk: LmdbDisk, prefix: string, limit: number): Array<[string, string | undefined]> {
  const all: Array<[string, string | undefined]> = []
  for (let page = disk.entries(prefix, limit); page.length > 0; page = disk.entries(prefix, limit, (page[page.length - 1] as [string, Uint8Array])[0])) {
    assert.ok(page.length <= limit, `a page of ${page.length}, asked for ${limit}`)
    all.push(...page.map(([key, value]): [string, string | undefined] => [key, text(value)]))
  }
  return all
}

describe('LmdbDisk (write-ahead log in front of LMDB)', () => {
  it('reads its writes at once, syncs, and keeps them across close and reopen', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      const disk = new LmdbDisk(path, silentLogger)
      disk.put('a/1', bytes('one'))
      disk.put('a/2', bytes('two'))
      disk.put('b/1', bytes('other'))
      disk.delete('a/2')
      assert.equal(text(disk.get('a/1')), 'one')
      assert.equal(disk.get('a/2'), undefined)
      await synced(disk)
      assert.ok(disk.stats.walBatches >= 1)
      await synced(disk) // nothing pending: calls back too
      await disk.close()
      assert.throws(() => { disk.put('a/3', bytes('late')) }, (error: unknown) => error instanceof CoreError && error.code === 'CORE_DISK_CLOSED')
      const again = new LmdbDisk(path, silentLogger)
      assert.equal(again.stats.replayedBatches, 0, 'close checkpoints: nothing left to replay')
      assert.deepEqual(again.entries('a/').map(([key, value]) => [key, text(value)]), [['a/1', 'one']])
      assert.deepEqual(again.entries('').map(([key]) => key), ['a/1', 'b/1'], 'the checkpoint mark is not an entry')
      await again.close()
    })
  })

  it('checkpoints into LMDB as the log grows, deletes the covered segments, and merges both in reads', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      const disk = new LmdbDisk(path, silentLogger, { walCheckpointBytes: 2_000 })
      for (let round = 0; round < 40; round++) {
        for (let i = 0; i < 10; i++) disk.put(`k/${String(i).padStart(2, '0')}`, bytes(`v${round}-${i}`))
        if (round % 7 === 0) disk.delete('k/03')
        await synced(disk)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.ok(disk.stats.checkpoints >= 3, `checkpoints: ${disk.stats.checkpoints}`)
      assert.ok(segments(path).length <= 2, `segments left: ${segments(path).join(', ')}`)
      const expected = Array.from({ length: 10 }, (_, i) => [`k/${String(i).padStart(2, '0')}`, `v39-${i}`])
      assert.deepEqual(disk.entries('k/').map(([key, value]) => [key, text(value)]), expected)
      assert.deepEqual(disk.entries('k/', 3).map(([key]) => key), ['k/00', 'k/01', 'k/02'])
      await disk.close()
    })
  })

  it('writes a burst past walFrameBytesMax as several frames, calls a sync back once all are durable, and replays them all after a crash', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      // One 64-byte value per record (1 + 4 + 5-byte key + 4 + 64 = 78 bytes): 4 096-byte frames hold 52.
      const value = (i: number): Uint8Array => bytes(`value-${String(i).padStart(4, '0')}`.padEnd(64, '.'))
      const disk = new LmdbDisk(path, silentLogger, { walCheckpointIntervalMs: 3_600_000, walFrameBytesMax: 4_096 })
      for (let i = 0; i < 500; i++) disk.put(`b/${String(i).padStart(3, '0')}`, value(i))
      let heardAfter: number | null = null
      disk.sync(() => { heardAfter = disk.stats.walBatches })
      await synced(disk)
      assert.equal(disk.stats.walBatches, Math.ceil(500 / Math.floor(4_096 / 78)), 'frames of at most walFrameBytesMax')
      assert.equal(heardAfter, disk.stats.walBatches, 'the sync called back once the last of its frames was durable')
      assert.ok(disk.stats.walBytes <= 500 * 78 + disk.stats.walBatches * 36)
      await disk.abandon()
      const reopened = new LmdbDisk(path, silentLogger)
      assert.equal(reopened.stats.replayedBatches, disk.stats.walBatches)
      assert.equal(reopened.entries('b/').length, 500)
      assert.equal(text(reopened.get('b/499')), text(value(499)))
      await reopened.close()
    })
  })

  it('calls a sync back once its own writes are durable while later writes keep the log busy', async () => {
    await withDir(async (dir) => {
      const disk = new LmdbDisk(join(dir, 'db'), silentLogger, { walCheckpointIntervalMs: 3_600_000, walFrameBytesMax: 4_096 })
      const value = bytes(''.padEnd(64, '.'))
      for (let i = 0; i < 500; i++) disk.put(`s/${String(i).padStart(3, '0')}`, value)
      let heardAfter: number | null = null
      disk.sync(() => { heardAfter = disk.stats.walBatches })
      // More writes every turn than a frame holds: the backlog never fits one frame again.
      for (let turn = 0, next = 500; heardAfter === null && turn < 5_000; turn++) {
        for (let i = 0; i < 60; i++) disk.put(`s/${String(next++).padStart(6, '0')}`, value)
        await new Promise((resolve) => setImmediate(resolve))
      }
      assert.equal(heardAfter, Math.ceil(500 / Math.floor(4_096 / 78)), 'called back with the frame that held the last write before it')
      await disk.close()
    })
  })

  it('refuses a record too large for one log write with CORE_DISK_VALUE_TOO_LARGE', async () => {
    await withDir(async (dir) => {
      const disk = new LmdbDisk(join(dir, 'db'), silentLogger)
      // Only the length is read before the refusal: no 2 GiB value is allocated.
      const huge = { length: 2 ** 31 } as unknown as Uint8Array
      assert.throws(() => { disk.put('too/large', huge) }, (error: unknown) => error instanceof CoreError && error.code === 'CORE_DISK_VALUE_TOO_LARGE')
      assert.equal(disk.get('too/large'), undefined)
      disk.put('ok', bytes('fine'))
      await synced(disk)
      assert.equal(text(disk.get('ok')), 'fine')
      await disk.close()
    })
  })

  it('replays the log of a disk that was never closed', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      await crashedDisk(path, (disk) => {
        for (let i = 0; i < 100; i++) disk.put(`r/${i}`, bytes(`value-${i}`))
        disk.delete('r/7')
      })
      const disk = new LmdbDisk(path, silentLogger)
      assert.ok(disk.stats.replayedBatches >= 1)
      assert.equal(disk.entries('r/').length, 99)
      assert.equal(text(disk.get('r/42')), 'value-42')
      assert.equal(disk.get('r/7'), undefined)
      await disk.close()
    })
  })

  it('cuts off a batch a crash cut short at the end of the last segment, and keeps what came before', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      await crashedDisk(path, (disk) => { for (let i = 0; i < 20; i++) disk.put(`t/${i}`, bytes(`v${i}`)) })
      const [last] = segments(path).slice(-1)
      assert.ok(last !== undefined)
      const file = join(path, 'wal', last)
      const intact = readFileSync(file).length
      // A frame header that promises 500 bytes, and only 10 of them.
      const torn = Buffer.alloc(4 + 32 + 10)
      torn.writeUInt32BE(500, 0)
      appendFileSync(file, torn)
      const disk = new LmdbDisk(path, silentLogger, { walCheckpointIntervalMs: 3_600_000 })
      assert.equal(disk.stats.tornTailBytes, torn.length)
      assert.equal(readFileSync(file).length, intact, 'the torn tail is cut off the file')
      assert.equal(disk.entries('t/').length, 20)
      await disk.abandon()
      const again = new LmdbDisk(path, silentLogger)
      assert.equal(again.stats.tornTailBytes, 0)
      assert.equal(again.entries('t/').length, 20)
      await again.close()
    })
  })

  it('takes zeros where the last batch should be as a torn end, with the next segment already created', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      await crashedDisk(path, (disk) => { for (let i = 0; i < 20; i++) disk.put(`z/${i}`, bytes(`v${i}`)) })
      const [last] = segments(path).slice(-1)
      assert.ok(last !== undefined)
      const file = join(path, 'wal', last)
      const intact = readFileSync(file).length
      appendFileSync(file, Buffer.alloc(100)) // a batch whose pages never reached the disk
      // The next segment, created ahead: nothing but its header, so the torn one is still the last.
      const next = join(path, 'wal', `${String(Number(last.slice(0, 16)) + 1).padStart(16, '0')}.wal`)
      writeFileSync(next, 'SYNODWAL')
      const disk = new LmdbDisk(path, silentLogger)
      assert.ok(!segments(path).includes(basename(next)), 'the header-only segment is deleted')
      assert.equal(disk.stats.tornTailBytes, 100)
      assert.equal(readFileSync(file).length, intact)
      assert.equal(disk.entries('z/').length, 20)
      await disk.close()
    })
  })

  it('drops a last segment whose header a crash cut short, and opens again after it', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      await crashedDisk(path, (disk) => { for (let i = 0; i < 20; i++) disk.put(`h/${i}`, bytes(`v${i}`)) })
      const [last] = segments(path).slice(-1)
      assert.ok(last !== undefined)
      const cutShort = `${String(Number(last.slice(0, 16)) + 1).padStart(16, '0')}.wal`
      writeFileSync(join(path, 'wal', cutShort), 'SYN') // the next segment, being created as the crash came
      await crashedDisk(path, (disk) => { assert.equal(disk.entries('h/').length, 20); disk.put('h/extra', bytes('x')) })
      assert.ok(!segments(path).includes(cutShort) || readFileSync(join(path, 'wal', cutShort)).length > 3, 'the cut-short segment is gone, or is a new one')
      const disk = new LmdbDisk(path, silentLogger)
      assert.equal(disk.entries('h/').length, 21)
      await disk.close()
    })
  })

  it('never replays a segment the checkpoint covered, even when its deletion was lost', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'db')
      await crashedDisk(path, (disk) => { disk.put('u/key', bytes('old')) })
      const [covered] = segments(path)
      assert.ok(covered !== undefined)
      const saved = readFileSync(join(path, 'wal', covered))
      const first = new LmdbDisk(path, silentLogger)
      first.put('u/key', bytes('new'))
      await first.close() // checkpoints: the old segment is covered and deleted
      assert.ok(!segments(path).includes(covered))
      writeFileSync(join(path, 'wal', covered), saved) // the deletion did not survive a crash
      const disk = new LmdbDisk(path, silentLogger)
      assert.equal(text(disk.get('u/key')), 'new')
      assert.ok(!segments(path).includes(covered), 'a covered segment is deleted at open')
      await disk.close()
    })
  })

  it('refuses to open a log damaged anywhere but its last batch (CORE_DISK_CORRUPT)', async () => {
    for (const where of ['closed segment', 'middle of the last segment'] as const) {
      await withDir(async (dir) => {
        const path = join(dir, 'db')
        await crashedDisk(path, (disk) => { for (let i = 0; i < 20; i++) disk.put(`c/${i}`, bytes(`v${i}`)) })
        await crashedDisk(path, (disk) => { for (let i = 0; i < 20; i++) disk.put(`d/${i}`, bytes(`v${i}`)) })
        const names = segments(path)
        // The first crashed disk left the segment with the c/ batch; the second replayed it and
        // wrote the d/ batch to the next one, the last.
        const target = where === 'closed segment' ? names[0] : names[names.length - 1]
        assert.ok(target !== undefined)
        const file = join(path, 'wal', target)
        if (where === 'middle of the last segment') {
          // Two complete batches in the last segment, the first of them damaged.
          const content = readFileSync(join(path, 'wal', names[0] as string))
          writeFileSync(file, content)
          appendFileSync(file, content.subarray(8))
        }
        const content = readFileSync(file)
        content[8 + 36 + 3] = (content[8 + 36 + 3] as number) ^ 0xff
        writeFileSync(file, content)
        assert.throws(() => new LmdbDisk(path, silentLogger), (error: unknown) => error instanceof CoreError && error.code === 'CORE_DISK_CORRUPT', where)
      })
    }
  })

  it('holds what a model map holds, through random writes, checkpoints, reopens and crashes that lose unsynced writes', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((key) => `m/${key}`)
    const operation = fc.oneof(
      fc.record({ op: fc.constant('put' as const), key: fc.constantFrom(...keys), value: fc.string({ maxLength: 40 }) }),
      fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
      fc.record({ op: fc.constantFrom('sync' as const, 'pause' as const, 'reopen' as const, 'crash' as const) })
    )
    const limits: Partial<DiskLimits> = { walCheckpointBytes: 300, walFrameBytesMax: 120 }
    await fc.assert(fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 60 }), async (operations) => {
      await withDir(async (dir) => {
        const path = join(dir, 'db')
        let model = new Map<string, string>()
        // Writes not yet synced: after a crash each key holds its synced value or one of these.
        let syncedModel = new Map<string, string>()
        let since = new Map<string, Array<string | undefined>>()
        const wrote = (key: string, value: string | undefined): void => { since.set(key, [...(since.get(key) ?? []), value]) }
        let disk = new LmdbDisk(path, silentLogger, limits)
        // Neighbours of the range on both sides, which no page may hold.
        disk.put('l/x', bytes('before'))
        disk.put('m0', bytes('after'))
        for (const step of operations) {
          if (step.op === 'put') { disk.put(step.key, bytes(step.value)); model.set(step.key, step.value); wrote(step.key, step.value) }
          if (step.op === 'delete') { disk.delete(step.key); model.delete(step.key); wrote(step.key, undefined) }
          if (step.op === 'sync') { await synced(disk); syncedModel = new Map(model); since = new Map() }
          if (step.op === 'pause') await new Promise((resolve) => setTimeout(resolve, 2)) // batches and checkpoints run
          if (step.op === 'reopen') {
            await disk.close()
            disk = new LmdbDisk(path, silentLogger, limits)
            syncedModel = new Map(model)
            since = new Map()
          }
          if (step.op === 'crash') {
            await disk.abandon()
            disk = new LmdbDisk(path, silentLogger, limits)
            const after = new Map<string, string>()
            for (const key of keys) {
              const value = text(disk.get(key))
              const allowed = [syncedModel.get(key), ...(since.get(key) ?? [])]
              assert.ok(allowed.includes(value), `after a crash ${key} holds ${String(value)}, not one of ${JSON.stringify(allowed)}`)
              if (value !== undefined) after.set(key, value)
            }
            model = after
            syncedModel = new Map(model)
            since = new Map()
          }
          for (const key of keys) assert.equal(text(disk.get(key)), model.get(key), `get ${key}`)
        }
        const expected = [...model].sort(([a], [b]) => (a < b ? -1 : 1))
        assert.deepEqual(disk.entries('m/').map(([key, value]) => [key, text(value)]), expected)
        // Paged (the last key of each page starts the next), with deletes and puts still in the
        // log over keys LMDB holds: the same entries, and no page longer than asked.
        for (const limit of [1, 2, 4]) assert.deepEqual(paged(disk, 'm/', limit), expected, `pages of ${limit}`)
        await disk.close()
        const reopened = new LmdbDisk(path, silentLogger, limits)
        assert.deepEqual(reopened.entries('m/').map(([key, value]) => [key, text(value)]), expected)
        for (const limit of [1, 3]) assert.deepEqual(paged(reopened, 'm/', limit), expected, `pages of ${limit} after a reopen`)
        await reopened.close()
      })
    }), { numRuns: 40 })
  })

  it('refuses a key longer than LMDB takes, at once (CORE_DISK_KEY_TOO_LARGE)', async () => {
    await withDir(async (dir) => {
      const disk = new LmdbDisk(join(dir, 'db'), silentLogger)
      assert.throws(() => { disk.put('k'.repeat(5_000), bytes('v')) }, (error: unknown) => error instanceof CoreError && error.code === 'CORE_DISK_KEY_TOO_LARGE')
      disk.put('k/ok', bytes('v'))
      await disk.close()
    })
  })
})
