/** Data written and synced through the disk (write-ahead log and LMDB) survives SIGKILL of the process that wrote it. */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { silentLogger } from '../../src/core/index.js'
import { LmdbDisk } from '../../src/node/index.js'

const WRITER = fileURLToPath(new URL('../support/disk-writer.js', import.meta.url))

for (const [name, intervalMs, runMs] of [['from the write-ahead log', undefined, 50], ['with checkpoints into LMDB running meanwhile', 100, 600]] as const) {
it(`keeps every synced write after the writer is killed with SIGKILL (${name})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'synod-lmdb-'))
  try {
    const count = 5_000
    const child = spawn(process.execPath, [WRITER, join(dir, 'db'), String(count), ...(intervalMs === undefined ? [] : [String(intervalMs)])], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    await new Promise<void>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes(`synced ${count}`)) resolve()
      })
      child.once('exit', () => { reject(new Error(`writer exited before syncing: ${out}`)) })
    })
    await new Promise((resolve) => setTimeout(resolve, runMs)) // let unsynced writes pile up (and checkpoints run)
    child.kill('SIGKILL')
    await exited
    if (intervalMs !== undefined) {
      // A checkpoint moved the log past its first segment and deleted it.
      const first = Math.min(...readdirSync(join(dir, 'db', 'wal')).map((name) => Number(name.slice(0, 16))))
      assert.ok(first >= 2, `the oldest segment left is ${first}`)
    }
    const disk = new LmdbDisk(join(dir, 'db'), silentLogger)
    const synced = disk.entries('synced/')
    assert.equal(synced.length, count)
    for (const [index, [key, value]] of synced.entries()) {
      assert.equal(key, `synced/${String(index).padStart(6, '0')}`)
      assert.equal(new TextDecoder().decode(value), `value-${index}`)
    }
    await disk.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
}
