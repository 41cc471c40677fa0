/**
 * Child process for the durability test: writes `count` keys through the LMDB disk, syncs, prints
 * `synced <count>` once the sync has called back, keeps writing unsynced keys, and waits to be killed.
 */
import '../../src/compat/promise-with-resolvers.js'
import { silentLogger } from '../../src/core/index.js'
import { LmdbDisk } from '../../src/node/index.js'

const [path, countText] = process.argv.slice(2)
const count = Number(countText)
if (path === undefined || !Number.isInteger(count)) throw new Error('usage: disk-writer PATH COUNT')
const disk = new LmdbDisk(path, silentLogger)
for (let i = 0; i < count; i++) disk.put(`synced/${String(i).padStart(6, '0')}`, new TextEncoder().encode(`value-${i}`))
disk.sync(() => {
  process.stdout.write(`synced ${count}\n`)
  let extra = 0
  setInterval(() => { disk.put(`unsynced/${extra++}`, new Uint8Array(64)) }, 1)
})
