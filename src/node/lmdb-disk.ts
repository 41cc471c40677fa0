/**
 * The real disk: a write-ahead log in front of LMDB, as etcd keeps its WAL in front of bbolt.
 *
 * - A write goes into an in-memory overlay (reads see it at once) and into the log's next batch.
 *   Every write of one event-loop turn, and every write made while the previous batch is being
 *   made durable, goes out as one batch: one `write` of a few kilobytes to a segment opened with
 *   `O_DSYNC`, so durable when it returns (group commit). A batch past `walFrameBytesMax` goes out
 *   as several frames, one after another. `sync` calls back once every earlier write is durable.
 * - LMDB is the checkpoint. Every `walCheckpointIntervalMs`, or once `walCheckpointBytes` of log
 *   were written since the last checkpoint, the log moves to a new segment and every write that
 *   is in the log (never one still waiting for its batch) goes to LMDB, in key-ordered slices,
 *   then the number of the last segment they cover; once LMDB has that mark on disk, the covered
 *   segments are deleted and the overlay forgets what was not written again meanwhile.
 * - On open, the segments after the mark are replayed into the overlay. A batch cut short at the
 *   end of the last segment (a crash in the middle of a write; it was never reported durable) is
 *   cut off. Anything else that does not check out is `CORE_DISK_CORRUPT`: the node refuses to
 *   start rather than forget a write it acknowledged.
 *
 * Why: LMDB rewrites a B-tree page per key it changes and makes each commit durable, which cost
 * far more CPU than appending the same records (`docs/node.md`). A write that fails leaves the disk
 * failed: no later `sync` calls back, since a failed synchronous write cannot be retried safely.
 */
import { close, closeSync, constants, fsync, fsyncSync, ftruncateSync, mkdirSync, open as openFile, openSync, readFileSync, readdirSync, statSync, unlinkSync, write, writeSync } from 'node:fs'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'
import { CoreError, errorMessage, sha256, type Disk, type Logger } from '../core/index.js'

export interface DiskLimits {
  /** The overlay goes to LMDB at least this often while there are writes. */
  walCheckpointIntervalMs: number
  /** ...and as soon as this many bytes of log were written since the last checkpoint. */
  walCheckpointBytes: number
  /**
   * A batch's frame holds at most this many bytes of records (more than this waits for the next
   * frame; a single larger record has a frame of its own). A frame is written with one `write`:
   * without a bound, a burst of writes between two flushes past 2 GiB would be more than Node.js
   * writes at once (and past 4 GiB would wrap the frame's 32-bit length).
   */
  walFrameBytesMax: number
}

export const defaultDiskLimits: Readonly<DiskLimits> = Object.freeze({
  walCheckpointIntervalMs: 10_000,
  walCheckpointBytes: 32 * 1_048_576,
  walFrameBytesMax: 64 * 1_048_576
})

export interface DiskStats {
  /** Frames written to the log and made durable (a batch past `walFrameBytesMax` is several). */
  walBatches: number
  walBytes: number
  checkpoints: number
  /** Keys written to LMDB by checkpoints. */
  checkpointKeys: number
  /** Frames replayed from the log at open. */
  replayedBatches: number
  /** Bytes cut off the end of the last segment at open: a write a crash cut short. */
  tornTailBytes: number
  /** Log writes or checkpoints that failed: a disk that is full or broken. */
  failures: number
}

/** Reserved LMDB key (outside any key a service writes): the last segment the checkpoint covers (u64). */
const CHECKPOINT_KEY = '\u0000wal/checkpointed-segment'
const SEGMENT_MAGIC = new TextEncoder().encode('SYNODWAL')
const SEGMENT_NAME = /^(\d{16})\.wal$/
/** A segment's writes are durable when they return (`O_DSYNC`); a new segment never replaces a file. */
const SEGMENT_OPEN_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC
/** A batch's frame: payload length (u32), SHA-256 of the payload, the payload. */
const FRAME_HEADER_BYTES = 4 + 32
/**
 * The largest record: its frame must fit one `write`, and Linux writes at most 0x7ffff000 bytes
 * at once (Node.js refuses more than 2^31 - 1).
 */
const RECORD_BYTES_LIMIT = 0x7fff_f000 - FRAME_HEADER_BYTES
/** Keys a checkpoint writes to LMDB per transaction (a few milliseconds of the event loop). */
const CHECKPOINT_SLICE_KEYS = 256
/** LMDB's key limit as lmdb-js builds it, if the database does not say. */
const LMDB_KEY_BYTES_MAX = 1_978
/** Checkpoints `close` runs at most, for writes made while it runs. */
const CLOSE_CHECKPOINT_ROUNDS = 3
const OP_PUT = 1
const OP_DELETE = 2
const DELETED = null

interface Batch {
  records: Uint8Array[]
  /** What each record wrote, in order: applied to `logged` once the batch is durable. */
  keys: string[]
  values: Array<Uint8Array | null>
  bytes: number
  /** Each with how many of the batch's first records it waits for (a frame takes those whose records it holds). */
  waiters: Array<{ records: number, call: () => void }>
}

function segmentName (segment: number): string {
  return `${String(segment).padStart(16, '0')}.wal`
}

/** Calls `waiter` once every record `batch` holds now is durable. */
function waitOn (batch: Batch, waiter: () => void): void {
  batch.waiters.push({ records: batch.records.length, call: waiter })
}

function emptyBatch (): Batch {
  return { records: [], keys: [], values: [], bytes: 0, waiters: [] }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * One record: op (u8), key length (u32) and UTF-8 key, value length (u32) and value (puts only).
 * Returns the record and, for a put, the value as a view into it (the overlay keeps that view, so
 * a write copies its value once).
 */
/** A record's length: op, key length and key, and for a put the value's length and value. */
function recordBytesOf (keyLength: number, value: Uint8Array | null): number {
  return 1 + 4 + keyLength + (value === null ? 0 : 4 + value.length)
}

function encodeRecord (key: string, keyLength: number, value: Uint8Array | null): { record: Buffer, stored: Uint8Array | null } {
  // Not from Buffer's shared pool: the overlay keeps a view into the record, which must not keep
  // an 8 KiB slab of other records alive.
  const record = Buffer.allocUnsafeSlow(recordBytesOf(keyLength, value))
  record[0] = value === null ? OP_DELETE : OP_PUT
  record.writeUInt32BE(keyLength, 1)
  record.write(key, 5, 'utf8')
  if (value === null) return { record, stored: null }
  const at = 9 + keyLength
  record.writeUInt32BE(value.length, 5 + keyLength)
  record.set(value, at)
  return { record, stored: new Uint8Array(record.buffer, record.byteOffset + at, value.length) }
}

/** The records of one batch's payload; throws on anything that does not parse exactly. */
function decodeRecords (payload: Uint8Array, apply: (key: string, value: Uint8Array | null) => void): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  let at = 0
  const need = (bytes: number): void => { if (at + bytes > payload.length) throw new Error('record runs past its batch') }
  while (at < payload.length) {
    need(5)
    const op = payload[at] as number
    const keyLength = view.getUint32(at + 1)
    at += 5
    need(keyLength)
    const key = utf8Decoder.decode(payload.subarray(at, at + keyLength))
    at += keyLength
    if (op === OP_DELETE) { apply(key, DELETED); continue }
    if (op !== OP_PUT) throw new Error(`unknown record op ${op}`)
    need(4)
    const valueLength = view.getUint32(at)
    at += 4
    need(valueLength)
    apply(key, new Uint8Array(payload.subarray(at, at + valueLength)))
    at += valueLength
  }
}

/** The payload of the intact frame at `at`, or null: cut short, or failing its checksum. */
function frameAt (bytes: Buffer, at: number): Buffer | null {
  if (at + FRAME_HEADER_BYTES > bytes.length) return null
  const end = at + FRAME_HEADER_BYTES + bytes.readUInt32BE(at)
  if (end > bytes.length) return null
  const payload = bytes.subarray(at + FRAME_HEADER_BYTES, end)
  return Buffer.from(sha256(payload)).equals(bytes.subarray(at + 4, at + FRAME_HEADER_BYTES)) ? payload : null
}

export class LmdbDisk implements Disk {
  private readonly db: RootDatabase<Uint8Array, string>
  private readonly limits: DiskLimits
  private readonly keyBytesMax: number
  private readonly walDir: string
  /** Writes not yet checkpointed into LMDB, what reads see first; `null` marks a delete. */
  private readonly overlay = new Map<string, Uint8Array | null>()
  /**
   * The part of the overlay that is in the log and durable: what a checkpoint gives LMDB. A write
   * still waiting for its batch never reaches LMDB before the log, so a crash can only lose the
   * writes after some point, never an earlier one while keeping a later one.
   */
  private logged = new Map<string, Uint8Array | null>()
  /** The next segment, created ahead off the event loop (a checkpoint moves the log to it). */
  private nextSegment: { segment: number, fd: number } | null = null
  private preparingSegment = false
  private readonly segmentWaiters: Array<() => void> = []
  private segment: number
  private segmentFd: number
  private segmentBytes: number
  /** Segments whose writes the overlay holds and LMDB may not (every one from here to `segment - 1`). */
  private oldestUncheckpointed: number
  private pending = emptyBatch()
  private inFlight: Batch | null = null
  private flushScheduled = false
  private bytesSinceCheckpoint = 0
  private lastCheckpointMs = Date.now()
  private checkpointing: Promise<void> | null = null
  private readonly checkpointTimer: NodeJS.Timeout
  private failed = false
  /** Called if a write fails, so that `close` does not wait for a sync that will never come. */
  private readonly failureWatchers: Array<() => void> = []
  private closed = false
  private closing: Promise<void> | null = null
  readonly stats: DiskStats = { walBatches: 0, walBytes: 0, checkpoints: 0, checkpointKeys: 0, replayedBatches: 0, tornTailBytes: 0, failures: 0 }

  constructor (path: string, private readonly log: Logger, limits: Partial<DiskLimits> = {}) {
    this.limits = { ...defaultDiskLimits, ...limits }
    this.db = open<Uint8Array, string>({ path, encoding: 'binary', compression: false })
    this.keyBytesMax = (this.db as unknown as { maxKeySize?: number }).maxKeySize ?? LMDB_KEY_BYTES_MAX
    this.walDir = join(path, 'wal')
    mkdirSync(this.walDir, { recursive: true })
    const mark = this.db.get(CHECKPOINT_KEY)
    if (mark !== undefined && mark.length !== 8) throw new CoreError('CORE_DISK_CORRUPT', `LMDB at ${path}: the checkpoint mark has ${mark.length} bytes, not 8`, { path })
    const covered = mark === undefined ? 0 : Number(new DataView(mark.buffer, mark.byteOffset, 8).getBigUint64(0))
    const segments = readdirSync(this.walDir).flatMap((name) => {
      const match = SEGMENT_NAME.exec(name)
      return match === null ? [] : [Number(match[1])]
    }).sort((a, b) => a - b)
    for (const segment of segments) if (segment <= covered) unlinkSync(join(this.walDir, segmentName(segment)))
    const toReplay = segments.filter((segment) => segment > covered)
    // Segments with nothing but (part of) the header at the end: created ahead of use, or as a
    // crash came. Nothing was ever written to them; the one before is the last.
    while (toReplay.length > 0 && this.headerOnly(toReplay[toReplay.length - 1] as number)) unlinkSync(join(this.walDir, segmentName(toReplay.pop() as number)))
    toReplay.forEach((segment, index) => { this.replay(segment, index === toReplay.length - 1) })
    this.oldestUncheckpointed = toReplay[0] ?? covered + 1
    this.segment = Math.max(covered, ...segments) + 1
    this.segmentFd = this.createSegment(this.segment)
    this.segmentBytes = SEGMENT_MAGIC.length
    if (toReplay.length > 0) this.log.info({ segments: toReplay.length, batches: this.stats.replayedBatches, keys: this.overlay.size }, 'write-ahead log replayed')
    this.checkpointTimer = setInterval(() => { this.maybeCheckpoint() }, Math.max(100, Math.floor(this.limits.walCheckpointIntervalMs / 4)))
    this.checkpointTimer.unref()
  }

  get (key: string): Uint8Array | undefined {
    if (this.overlay.has(key)) return this.overlay.get(key) ?? undefined
    return this.db.get(key) ?? undefined
  }

  put (key: string, value: Uint8Array): void {
    this.write(key, value)
  }

  delete (key: string): void {
    this.write(key, DELETED)
  }

  entries (prefix: string, limit = Number.MAX_SAFE_INTEGER, after?: string): Array<[string, Uint8Array]> {
    const merged = new Map<string, Uint8Array | null>()
    // LMDB's first `limit` live keys (those the overlay has not deleted) and every overlay key in
    // range: the first `limit` of their union are the range's first `limit`, and only a page of
    // LMDB's is read, however long the range.
    let fromLmdb = 0
    for (const { key, value } of this.db.getRange({ start: after !== undefined && after > prefix ? after : prefix })) {
      if (!key.startsWith(prefix) || fromLmdb >= limit) break
      if (key === CHECKPOINT_KEY || (after !== undefined && key <= after) || this.overlay.get(key) === null) continue
      merged.set(key, value)
      fromLmdb++
    }
    for (const [key, value] of this.overlay) if (key.startsWith(prefix) && (after === undefined || key > after)) merged.set(key, value)
    const live: Array<[string, Uint8Array]> = []
    for (const [key, value] of merged) if (value !== null) live.push([key, value])
    live.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return live.slice(0, limit)
  }

  sync (onDurable: () => void): void {
    if (this.pending.records.length > 0) waitOn(this.pending, onDurable)
    else if (this.inFlight !== null) waitOn(this.inFlight, onDurable)
    else if (!this.failed) queueMicrotask(onDurable)
  }

  /** Keys written since the last checkpoint: held in memory and in the log. */
  uncheckpointedKeys (): number {
    return this.overlay.size
  }

  /** Writes everything out, checkpoints it into LMDB (so the next open replays nothing) and closes. */
  async close (): Promise<void> {
    this.closing ??= this.closeOnce()
    await this.closing
  }

  private async closeOnce (): Promise<void> {
    if (this.closed) return
    clearInterval(this.checkpointTimer)
    // Writes made while closing (a service stopping) are still logged; a few rounds of checkpoint
    // take them into LMDB too, and any left over are replayed from the log at the next open.
    for (let round = 0; round < CLOSE_CHECKPOINT_ROUNDS && !this.failed; round++) {
      await this.quiesce()
      if (this.failed || this.logged.size === 0) break
      await this.nextSegmentReady()
      await this.quiesce()
      if (this.failed || this.nextSegment === null) break
      this.startCheckpoint()
      await this.checkpointing
    }
    await this.quiesce()
    this.closed = true
    await this.segmentSettled()
    closeSync(this.segmentFd)
    if (this.nextSegment !== null) closeSync(this.nextSegment.fd)
    await this.db.flushed
    await this.db.close()
  }

  /** Resolves once nothing is pending, in flight or checkpointing, or once the disk failed. */
  private async quiesce (): Promise<void> {
    while (!this.failed && (this.pending.records.length > 0 || this.inFlight !== null || this.checkpointing !== null)) {
      await new Promise<void>((resolve) => { this.sync(resolve); this.failureWatchers.push(resolve) })
      await this.checkpointing
    }
  }

  /**
   * Closes the files as a crash would leave them: no checkpoint, and writes not yet in a batch are
   * lost (a checkpoint already running finishes first). For recovery tests.
   */
  async abandon (): Promise<void> {
    if (this.closed) return
    clearInterval(this.checkpointTimer)
    this.closed = true
    this.pending = emptyBatch()
    for (let batch = this.inFlight; batch !== null; batch = this.inFlight) {
      await new Promise<void>((resolve) => { waitOn(batch, resolve); this.failureWatchers.push(resolve) })
    }
    await this.checkpointing
    await this.segmentSettled()
    closeSync(this.segmentFd)
    if (this.nextSegment !== null) closeSync(this.nextSegment.fd)
    await this.db.close()
  }

  private write (key: string, value: Uint8Array | null): void {
    if (this.closed) throw new CoreError('CORE_DISK_CLOSED', `disk write after close: ${key}`)
    // Refused here, as LMDB would refuse it at the checkpoint (and block every later one).
    const keyLength = Buffer.byteLength(key, 'utf8')
    if (keyLength > this.keyBytesMax) throw new CoreError('CORE_DISK_KEY_TOO_LARGE', `a disk key of ${keyLength} bytes, LMDB's limit is ${this.keyBytesMax}`, { keyBytesMax: this.keyBytesMax })
    // A record's frame must fit one write.
    const recordBytes = recordBytesOf(keyLength, value)
    if (recordBytes > RECORD_BYTES_LIMIT) throw new CoreError('CORE_DISK_VALUE_TOO_LARGE', `a disk record of ${recordBytes} bytes; the log writes one of at most ${RECORD_BYTES_LIMIT}`, { recordBytesMax: RECORD_BYTES_LIMIT })
    const { record, stored } = encodeRecord(key, keyLength, value)
    this.overlay.set(key, stored)
    // A failed disk acknowledges nothing more: reads still see the write, the log never gets it.
    if (this.failed) return
    this.pending.records.push(record)
    this.pending.keys.push(key)
    this.pending.values.push(stored)
    this.pending.bytes += record.length
    if (!this.flushScheduled && this.inFlight === null) {
      this.flushScheduled = true
      setImmediate(() => { this.flushScheduled = false; this.flush() })
    }
  }

  /**
   * The records of the next frame: the whole pending batch, or, past `walFrameBytesMax`, its first
   * records up to it (at least one) while the rest stays pending for the frame after (written when
   * this one is durable). Each waiter goes with the frame that holds the last record written before
   * its `sync`: writes that keep coming after it never hold it back.
   */
  private takeFrame (): Batch {
    const pending = this.pending
    if (pending.bytes <= this.limits.walFrameBytesMax) {
      this.pending = emptyBatch()
      return pending
    }
    let count = 1
    let bytes = (pending.records[0] as Uint8Array).length
    while (count < pending.records.length && bytes + (pending.records[count] as Uint8Array).length <= this.limits.walFrameBytesMax) bytes += (pending.records[count++] as Uint8Array).length
    const frame: Batch = { records: pending.records.slice(0, count), keys: pending.keys.slice(0, count), values: pending.values.slice(0, count), bytes, waiters: [] }
    this.pending = { records: pending.records.slice(count), keys: pending.keys.slice(count), values: pending.values.slice(count), bytes: pending.bytes - bytes, waiters: [] }
    for (const waiter of pending.waiters) {
      if (waiter.records <= count) frame.waiters.push(waiter)
      else this.pending.waiters.push({ records: waiter.records - count, call: waiter.call })
    }
    return frame
  }

  /** Writes the pending batch (or its first `walFrameBytesMax`) as one frame and makes it durable; the next waits for it. */
  private flush (): void {
    if (this.inFlight !== null || this.pending.records.length === 0 || this.failed || this.closed) return
    const batch = this.takeFrame()
    this.inFlight = batch
    const frame = new Uint8Array(FRAME_HEADER_BYTES + batch.bytes)
    new DataView(frame.buffer).setUint32(0, batch.bytes)
    let at = FRAME_HEADER_BYTES
    for (const record of batch.records) { frame.set(record, at); at += record.length }
    frame.set(sha256(frame.subarray(FRAME_HEADER_BYTES)), 4)
    // The segment is open with O_DSYNC: the write returns once the frame is durable, one trip to
    // libuv's thread pool instead of a write and an fdatasync (each would wait for the event loop).
    write(this.segmentFd, frame, 0, frame.length, this.segmentBytes, (error, written) => {
      if (error !== null) { this.fail(error, 'write-ahead log write failed'); return }
      if (written !== frame.length) { this.fail(new Error(`wrote ${written} of ${frame.length} bytes`), 'write-ahead log write cut short'); return }
      for (let i = 0; i < batch.keys.length; i++) this.logged.set(batch.keys[i] as string, batch.values[i] as Uint8Array | null)
      this.stats.walBatches++
      this.stats.walBytes += frame.length
      this.inFlight = null
      for (const waiter of batch.waiters) waiter.call()
      this.maybeCheckpoint()
      this.flush()
    })
    this.segmentBytes += frame.length
    this.bytesSinceCheckpoint += frame.length
  }

  private fail (error: Error, message: string): void {
    // Nothing in this batch, or written after it, may ever be reported durable.
    this.failed = true
    this.stats.failures++
    this.inFlight = null
    this.log.error({ reason: errorMessage(error) }, `${message}; writes are no longer durable and no sync will call back`)
    for (const watcher of this.failureWatchers.splice(0)) watcher()
  }

  /** Starts a checkpoint when one is due; only between batches (the completion of one calls it again). */
  private maybeCheckpoint (): void {
    if (this.checkpointing !== null || this.inFlight !== null || this.failed || this.closed || this.logged.size === 0) return
    if (this.bytesSinceCheckpoint < this.limits.walCheckpointBytes && Date.now() - this.lastCheckpointMs < this.limits.walCheckpointIntervalMs) return
    if (this.nextSegment === null) { this.prepareNextSegment(); return }
    this.startCheckpoint()
  }

  /**
   * Creates the next segment off the event loop (open with O_DSYNC, the header, an fsync of the
   * directory so that its name is durable before anything in it is reported durable), then
   * looks again whether a checkpoint is due. A failure fails the disk: the log cannot go on.
   */
  private prepareNextSegment (): void {
    if (this.preparingSegment || this.nextSegment !== null || this.failed || this.closed) return
    this.preparingSegment = true
    const segment = this.segment + 1
    const failed = (error: Error): void => {
      this.preparingSegment = false
      this.segmentWaiters.splice(0).forEach((resolve) => { resolve() })
      if (!this.closed) this.fail(error, 'write-ahead log: cannot create the next segment')
    }
    openFile(join(this.walDir, segmentName(segment)), SEGMENT_OPEN_FLAGS, (openError, fd) => {
      if (openError !== null) { failed(openError); return }
      write(fd, SEGMENT_MAGIC, 0, SEGMENT_MAGIC.length, 0, (writeError, written) => {
        if (writeError !== null || written !== SEGMENT_MAGIC.length) { close(fd, () => {}); failed(writeError ?? new Error('segment header cut short')); return }
        openFile(this.walDir, 'r', (dirError, dir) => {
          if (dirError !== null) { close(fd, () => {}); failed(dirError); return }
          fsync(dir, (syncError) => {
            close(dir, () => {})
            if (syncError !== null) { close(fd, () => {}); failed(syncError); return }
            this.preparingSegment = false
            if (this.closed) close(fd, () => {})
            else this.nextSegment = { segment, fd }
            this.segmentWaiters.splice(0).forEach((resolve) => { resolve() })
            this.maybeCheckpoint()
          })
        })
      })
    })
  }

  /** Resolves once no segment is being created (so that no file appears after the disk closed). */
  private async segmentSettled (): Promise<void> {
    if (!this.preparingSegment) return
    await new Promise<void>((resolve) => { this.segmentWaiters.push(resolve) })
  }

  /** Resolves once the next segment is ready (or the disk failed). */
  private async nextSegmentReady (): Promise<void> {
    if (this.nextSegment !== null || this.failed) return
    await new Promise<void>((resolve) => { this.segmentWaiters.push(resolve); this.failureWatchers.push(resolve); this.prepareNextSegment() })
  }

  /**
   * Moves the log to a new segment, at once and between batches, and writes every logged write
   * (all of them in the segments up to the old one) into LMDB with the number of the last segment
   * it covers; once LMDB has it on disk, deletes the covered segments.
   */
  private startCheckpoint (): void {
    const next = this.nextSegment
    if (next === null) return
    const covered = this.segment
    this.nextSegment = null
    closeSync(this.segmentFd)
    this.segment = next.segment
    this.segmentFd = next.fd
    this.segmentBytes = SEGMENT_MAGIC.length
    this.bytesSinceCheckpoint = 0
    this.lastCheckpointMs = Date.now()
    // The logged writes so far are the snapshot; writes made durable from now on start a new map.
    const snapshot = this.logged
    this.logged = new Map()
    this.checkpointing = this.writeCheckpoint(covered, snapshot).finally(() => { this.checkpointing = null })
  }

  private async writeCheckpoint (covered: number, snapshot: Map<string, Uint8Array | null>): Promise<void> {
    const mark = new Uint8Array(8)
    new DataView(mark.buffer).setBigUint64(0, BigInt(covered))
    try {
      // In slices, each its own LMDB transaction, so that the event loop serves requests in
      // between: a key written by a slice is also in the segments until the mark moves past them.
      // In key order, so that each slice rewrites only its own stretch of the B-tree's leaves.
      const keys = [...snapshot.keys()].sort() // the default order: UTF-16 code units, natively
      for (let from = 0; from < keys.length; from += CHECKPOINT_SLICE_KEYS) {
        // Inside a batch, lmdb's put and remove return an already resolved promise: the batch's
        // promise carries a failed commit.
        await this.db.batch(() => {
          for (const key of keys.slice(from, from + CHECKPOINT_SLICE_KEYS)) {
            const value = snapshot.get(key) as Uint8Array | null
            if (value === null) void this.db.remove(key)
            else void this.db.put(key, value)
          }
        })
      }
      await this.db.put(CHECKPOINT_KEY, mark)
      await this.db.flushed
    } catch (error) {
      this.stats.failures++
      this.log.error({ reason: errorMessage(error) }, 'checkpoint into LMDB failed; the write-ahead log keeps the writes')
      // The next checkpoint takes them again, unless written again since.
      for (const [key, value] of snapshot) if (!this.logged.has(key)) this.logged.set(key, value)
      return
    }
    for (let segment = this.oldestUncheckpointed; segment <= covered; segment++) {
      try { unlinkSync(join(this.walDir, segmentName(segment))) } catch { /* already gone */ }
    }
    this.oldestUncheckpointed = covered + 1
    for (const [key, value] of snapshot) if (this.overlay.get(key) === value) this.overlay.delete(key)
    this.stats.checkpoints++
    this.stats.checkpointKeys += snapshot.size
  }

  private createSegment (segment: number): number {
    const fd = openSync(join(this.walDir, segmentName(segment)), SEGMENT_OPEN_FLAGS)
    writeSync(fd, SEGMENT_MAGIC)
    // The new file's name must be durable before anything in it is reported durable.
    const dir = openSync(this.walDir, 'r')
    try { fsyncSync(dir) } finally { closeSync(dir) }
    return fd
  }

  /** Whether a segment holds at most its header (or part of it): nothing was written to it. */
  private headerOnly (segment: number): boolean {
    const path = join(this.walDir, segmentName(segment))
    if (statSync(path).size > SEGMENT_MAGIC.length) return false
    const bytes = readFileSync(path)
    return SEGMENT_MAGIC.subarray(0, bytes.length).every((byte, i) => bytes[i] === byte)
  }

  private replay (segment: number, last: boolean): void {
    const path = join(this.walDir, segmentName(segment))
    const bytes = readFileSync(path)
    const corrupt = (at: number, why: string): never => {
      throw new CoreError('CORE_DISK_CORRUPT', `write-ahead log ${path} at byte ${at}: ${why}`, { path, offset: at })
    }
    // A segment whose header a crash cut short was deleted before replay (`headerOnly`).
    if (!(bytes.length >= SEGMENT_MAGIC.length && SEGMENT_MAGIC.every((byte, i) => bytes[i] === byte))) corrupt(0, 'not a Synod write-ahead log segment')
    for (let at = SEGMENT_MAGIC.length; at < bytes.length;) {
      const frame = frameAt(bytes, at)
      if (frame === null) {
        if (!last) corrupt(at, 'a batch does not check out in a segment that was closed')
        // Only the last batch can be torn: one batch is written at a time, each made durable
        // before the next. Damage that an intact batch follows is not a torn write.
        const declared = at + 4 <= bytes.length ? at + FRAME_HEADER_BYTES + bytes.readUInt32BE(at) : bytes.length
        if (declared < bytes.length && frameAt(bytes, declared) !== null) corrupt(at, 'a batch that does not check out is followed by an intact one')
        // The tail a crash cut short was never reported durable: cut it off and go on.
        this.stats.tornTailBytes += bytes.length - at
        this.log.warn({ path, offset: at, bytes: bytes.length - at }, 'write-ahead log: cutting off a batch a crash cut short')
        const fd = openSync(path, 'r+')
        try { ftruncateSync(fd, at); fsyncSync(fd) } finally { closeSync(fd) }
        return
      }
      try {
        decodeRecords(frame, (key, value) => { this.overlay.set(key, value); this.logged.set(key, value) })
      } catch (error) {
        corrupt(at, `a batch whose checksum holds does not parse: ${errorMessage(error)}`)
      }
      this.stats.replayedBatches++
      at += FRAME_HEADER_BYTES + frame.length
    }
  }
}
