/** Prometheus metrics for one node process (prom-client), read at scrape time from live state. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Transport, TransportStats } from '../core/index.js'
import type { DiskStats, LmdbDisk } from './lmdb-disk.js'

type CounterName = keyof TransportStats

const transportCounters: Array<[CounterName, string, string]> = [
  ['framesSent', 'synod_transport_frames_sent_total', 'Frames sent to peers.'],
  ['framesReceived', 'synod_transport_frames_received_total', 'Frames received from peers and decoded.'],
  ['bytesSent', 'synod_transport_bytes_sent_total', 'Bytes written to peer links, length prefixes included.'],
  ['bytesReceived', 'synod_transport_bytes_received_total', 'Payload bytes received from peers.'],
  ['badFrames', 'synod_transport_bad_frames_total', 'Frames from peers that did not decode; the link was dropped.'],
  ['refusedPeers', 'synod_transport_refused_peers_total', 'Handshakes refused: the remote key is not in the network config.'],
  ['refusedBannedPeers', 'synod_transport_refused_banned_peers_total', 'Handshakes refused: the peer is refused for misbehaviour.'],
  ['droppedFrames', 'synod_transport_dropped_frames_total', 'Frames dropped at send: no live link or the send queue was full.'],
  ['reconnects', 'synod_transport_reconnects_total', 'Links that came back after going down.']
]

/** A gauge read from live state at scrape time, for services to export their own figures. */
export interface GaugeSource {
  name: string
  help: string
  read: () => number
}

/**
 * A counter whose value is read from a protocol's own running totals at scrape time, per label
 * value when `read` returns a record. Protocol code keeps plain counts; only this layer knows
 * prom-client.
 */
export function collectedCounter (registry: Registry, name: string, help: string, read: () => number | Record<string, number>, labelName?: string): void {
  new Counter({
    name, help, registers: [registry], labelNames: labelName === undefined ? [] : [labelName],
    collect () {
      this.reset()
      const value = read()
      if (typeof value === 'number') { this.inc(value); return }
      for (const [label, count] of Object.entries(value)) this.inc({ [labelName ?? 'label']: label }, count)
    }
  })
}

export function collectedGauge (registry: Registry, source: GaugeSource): void {
  new Gauge({ name: source.name, help: source.help, registers: [registry], collect () { this.set(source.read()) } })
}

export function createMetrics (transport: Transport, gauges: readonly GaugeSource[] = []): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'synod_' })
  for (const [field, name, help] of transportCounters) collectedCounter(registry, name, help, () => transport.stats()[field])
  collectedGauge(registry, { name: 'synod_transport_links_connected', help: 'Peers with a live link.', read: () => transport.links().filter((link) => link.state === 'connected').length })
  for (const source of gauges) collectedGauge(registry, source)
  return registry
}

const diskCounters: Array<[keyof DiskStats, string, string]> = [
  ['walBatches', 'synod_disk_wal_batches_total', 'Batches written to the write-ahead log and made durable (one O_DSYNC write each).'],
  ['walBytes', 'synod_disk_wal_bytes_total', 'Bytes written to the write-ahead log, frame headers included.'],
  ['checkpoints', 'synod_disk_checkpoints_total', 'Checkpoints of the write-ahead log into LMDB.'],
  ['checkpointKeys', 'synod_disk_checkpoint_keys_total', 'Keys written to LMDB by checkpoints.'],
  ['replayedBatches', 'synod_disk_replayed_batches_total', 'Write-ahead log batches replayed at start.'],
  ['tornTailBytes', 'synod_disk_torn_tail_bytes_total', 'Bytes cut off the write-ahead log at start: a batch a crash cut short.'],
  ['failures', 'synod_disk_failures_total', 'Write-ahead log writes or checkpoints that failed; after a failed write no sync completes.']
]

export function registerDiskMetrics (registry: Registry, disk: LmdbDisk): void {
  for (const [field, name, help] of diskCounters) collectedCounter(registry, name, help, () => disk.stats[field])
  collectedGauge(registry, { name: 'synod_disk_uncheckpointed_keys', help: 'Keys written since the last checkpoint into LMDB (held in memory and in the log).', read: () => disk.uncheckpointedKeys() })
}
