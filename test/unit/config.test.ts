/** A bad config gets an error that names the file, the field and what was expected. */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CoreError } from '../../src/core/index.js'
import { loadNodeConfig } from '../../src/node/index.js'
import { initNetwork, type InitResult } from '../../src/cli/init.js'

describe('config loading', () => {
  let dir: string
  let init: InitResult
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'synod-config-'))
    init = initNetwork({ nodes: 3, out: dir, basePort: 30_000, networkId: 'test' })
  })
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  const nodeFile = (): string => init.nodeFiles[0]!
  const edit = (file: string, change: (value: Record<string, unknown>) => void): () => void => {
    const original = readFileSync(file, 'utf8')
    const value = JSON.parse(original) as Record<string, unknown>
    change(value)
    writeFileSync(file, JSON.stringify(value))
    return () => { writeFileSync(file, original) }
  }
  const rejects = (file: string, field: string): void => {
    assert.throws(() => loadNodeConfig(nodeFile()), (error: unknown) => {
      assert.ok(error instanceof CoreError, String(error))
      assert.equal(error.code, 'CORE_CONFIG_INVALID')
      assert.equal(error.details.file, file)
      assert.equal(error.details.field, field)
      assert.ok(error.message.includes(file) && error.message.includes(field), error.message)
      return true
    })
  }

  it('loads what init wrote', () => {
    const loaded = loadNodeConfig(nodeFile())
    assert.equal(loaded.self.id, init.members[0]!.id)
    assert.equal(loaded.network.members.length, 3)
  })

  it('names a bad port in the node file', () => {
    const restore = edit(nodeFile(), (value) => { (value.listen as Record<string, unknown>).apiPort = 'eighty' })
    try { rejects(nodeFile(), 'listen.apiPort') } finally { restore() }
  })

  it('loads a ledger section, and names a ledger limit out of its range or unknown', () => {
    let restore = edit(nodeFile(), (value) => { value.ledger = { txIndexTxsMax: 5_000 } })
    try {
      assert.deepEqual(loadNodeConfig(nodeFile()).node.ledger, { txIndexTxsMax: 5_000 })
    } finally { restore() }
    restore = edit(nodeFile(), (value) => { value.ledger = { txIndexTxsMax: -1 } })
    try { rejects(nodeFile(), 'ledger.txIndexTxsMax') } finally { restore() }
    restore = edit(nodeFile(), (value) => { value.ledger = { txIndexMax: 5 } })
    try { rejects(nodeFile(), 'ledger') } finally { restore() }
  })

  it('loads a disk section, and names a disk limit out of its range', () => {
    let restore = edit(nodeFile(), (value) => { value.disk = { walCheckpointIntervalMs: 2_000, walFrameBytesMax: 2_097_152 } })
    try {
      assert.deepEqual(loadNodeConfig(nodeFile()).node.disk, { walCheckpointIntervalMs: 2_000, walFrameBytesMax: 2_097_152 })
    } finally { restore() }
    restore = edit(nodeFile(), (value) => { value.disk = { walFrameBytesMax: 65_536 } })
    try { rejects(nodeFile(), 'disk.walFrameBytesMax') } finally { restore() }
    restore = edit(nodeFile(), (value) => { value.disk = { walCheckpointBytes: 2 ** 40 } })
    try { rejects(nodeFile(), 'disk.walCheckpointBytes') } finally { restore() }
    restore = edit(nodeFile(), (value) => { value.disk = { walCheckpointMs: 1_000 } })
    try { rejects(nodeFile(), 'disk') } finally { restore() }
  })

  it('names a missing field', () => {
    const restore = edit(nodeFile(), (value) => { delete value.dataDir })
    try { rejects(nodeFile(), 'dataDir') } finally { restore() }
  })

  it('names an unknown field', () => {
    const restore = edit(nodeFile(), (value) => { value.dataDirectory = 'x' })
    try { rejects(nodeFile(), '(root)') } finally { restore() }
  })

  it('names a member whose id does not match its key in the network file', () => {
    const restore = edit(init.networkFile, (value) => {
      const members = value.members as Array<Record<string, unknown>>
      members[1]!.publicKey = members[2]!.publicKey
    })
    try { rejects(init.networkFile, 'members.1.id') } finally { restore() }
  })

  it('names a bad multiaddr', () => {
    const restore = edit(init.networkFile, (value) => { (value.members as Array<Record<string, unknown>>)[2]!.p2p = 'localhost:7000' })
    try { rejects(init.networkFile, 'members.2.p2p') } finally { restore() }
  })

  it('names a topology that cannot be built for these members', () => {
    const restore = edit(init.networkFile, (value) => { value.topology = { kind: 'random-regular', degree: 3, seed: 1 } })
    try {
      rejects(init.networkFile, 'topology')
      assert.throws(() => loadNodeConfig(nodeFile()), (error: unknown) => error instanceof CoreError && /degree/.test(error.message))
    } finally { restore() }
  })

  it('names an unknown topology kind', () => {
    const restore = edit(init.networkFile, (value) => { value.topology = { kind: 'hypercube' } })
    try { rejects(init.networkFile, 'topology.kind') } finally { restore() }
  })

  it('says when the file is not JSON', () => {
    const original = readFileSync(nodeFile(), 'utf8')
    writeFileSync(nodeFile(), '{ not json')
    try {
      assert.throws(() => loadNodeConfig(nodeFile()), (error: unknown) => error instanceof CoreError && error.message.includes(nodeFile()) && error.message.includes('not valid JSON'))
    } finally { writeFileSync(nodeFile(), original) }
  })
})
