/**
 * The real disk: LMDB through the `lmdb` package. Writes go into lmdb's batched asynchronous
 * transactions (no `transactionSync`, which can make `close()` hang in lmdb 3.5); reads see them
 * at once through an overlay of writes not yet committed. `sync` calls back when lmdb reports
 * every earlier write flushed to disk, which is the durability point the Disk contract promises.
 */
import { open, type RootDatabase } from 'lmdb'
import type { Disk, Logger } from '../core/index.js'
import { errorMessage } from '../core/index.js'

const DELETED = null

export class LmdbDisk implements Disk {
  private readonly db: RootDatabase<Uint8Array, string>
  /** Writes issued but not yet committed by lmdb; `null` marks a delete. */
  private readonly overlay = new Map<string, Uint8Array | null>()
  private failures = 0

  constructor (path: string, private readonly log: Logger) {
    this.db = open<Uint8Array, string>({ path, encoding: 'binary', compression: false })
  }

  get (key: string): Uint8Array | undefined {
    if (this.overlay.has(key)) return this.overlay.get(key) ?? undefined
    return this.db.get(key) ?? undefined
  }

  put (key: string, value: Uint8Array): void {
    const stored = new Uint8Array(value)
    this.overlay.set(key, stored)
    this.track(key, stored, this.db.put(key, stored))
  }

  delete (key: string): void {
    this.overlay.set(key, DELETED)
    this.track(key, DELETED, this.db.remove(key))
  }

  entries (prefix: string, limit = Number.MAX_SAFE_INTEGER): Array<[string, Uint8Array]> {
    const merged = new Map<string, Uint8Array | null>()
    for (const { key, value } of this.db.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break
      merged.set(key, value)
    }
    for (const [key, value] of this.overlay) if (key.startsWith(prefix)) merged.set(key, value)
    const live: Array<[string, Uint8Array]> = []
    for (const [key, value] of merged) if (value !== null) live.push([key, value])
    live.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return live.slice(0, limit)
  }

  sync (onDurable: () => void): void {
    this.db.flushed.then(onDurable, (error: unknown) => {
      this.failures++
      this.log.error({ reason: errorMessage(error) }, 'disk flush failed; writes are not durable')
    })
  }

  /** Writes that lmdb failed to commit: a disk that is full or broken. */
  failedWrites (): number {
    return this.failures
  }

  async close (): Promise<void> {
    await this.db.flushed
    await this.db.close()
  }

  private track (key: string, value: Uint8Array | null, committed: Promise<boolean>): void {
    committed.then(() => {
      if (this.overlay.get(key) === value) this.overlay.delete(key)
    }, (error: unknown) => {
      this.failures++
      this.log.error({ key, reason: errorMessage(error) }, 'disk write failed')
    })
  }
}
