/** A Disk held in a Map, durable at once: for unit tests of code that persists through Env.disk. */
import type { Disk } from '../../src/core/index.js'

export class MemoryDisk implements Disk {
  readonly data = new Map<string, Uint8Array>()
  get (key: string): Uint8Array | undefined { return this.data.get(key)?.slice() }
  put (key: string, value: Uint8Array): void { this.data.set(key, value.slice()) }
  delete (key: string): void { this.data.delete(key) }
  entries (prefix: string, limit = Number.POSITIVE_INFINITY, after?: string): Array<[string, Uint8Array]> {
    return [...this.data].filter(([key]) => key.startsWith(prefix) && (after === undefined || key > after)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).slice(0, limit)
  }
  sync (onDurable: () => void): void { onDurable() }
}
