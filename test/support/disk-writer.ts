/**
 * Child process for the durability test: writes `count` keys through the disk, syncs, prints
 * `synced <count>` once the sync has called back, keeps writing unsynced keys (checkpointing them
 * into LMDB every CHECKPOINT_INTERVAL_MS, if given), and waits to be killed.
 */
import '../../src/compat/promise-with-resolvers.js'
import { silentLogger } from '../../src/core/index.js'
import { LmdbDisk } from '../../src/node/index.js'

const [path, countText, intervalText] = process.argv.slice(2)
const count = Number(countText)
if (path === undefined || !Number.isInteger(count)) throw new Error('usage: disk-writer PATH COUNT [CHECKPOINT_INTERVAL_MS]')
const disk = new LmdbDisk(path, silentLogger, intervalText === undefined ? {} : { walCheckpointIntervalMs: Number(intervalText) })
for (let i = 0; i < count; i++) disk.put(`synced/${String(i).padStart(6, '0')}`, new TextEncoder().encode(`value-${i}`))
disk.sync(() => {
  process.stdout.write(`synced ${count}\n`)
  let extra = 0
  setInterval(() => { disk.put(`unsynced/${extra++}`, new Uint8Array(64)) }, 1)
})
