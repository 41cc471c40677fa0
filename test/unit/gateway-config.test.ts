/** The gateway's config: defaults, and a typed GATEWAY_CONFIG_INVALID naming the field for each kind of mistake. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GatewayError, loadGatewayConfig, parseGatewayConfig, upstreamId } from '../../src/gateway/index.js'
import { gatewayConfigFrom } from '../../src/cli/gateway.js'

const upstreams = [{ url: 'http://127.0.0.1:7200' }]

function refused (value: unknown, field: string): void {
  assert.throws(() => parseGatewayConfig(value, 'test.json'), (error: unknown) => {
    assert.ok(error instanceof GatewayError)
    assert.equal(error.code, 'GATEWAY_CONFIG_INVALID')
    assert.equal(error.details.field, field, error.message)
    assert.match(error.message, /^test\.json: field "/)
    return true
  })
}

describe('gateway config', () => {
  it('fills every default from just the upstreams', () => {
    const config = parseGatewayConfig({ upstreams }, 'test.json')
    assert.equal(config.listen, '127.0.0.1:8080')
    assert.equal(config.strategy, 'p2c')
    assert.equal(config.upstreams[0].weight, 1)
    assert.equal(config.healthCheck.intervalMs, 2_000)
    assert.equal(config.outlier.consecutive5xx, 5)
    assert.equal(config.p2c.load, 'peak-ewma')
    assert.equal(config.proxy.retriesMax, 2)
    assert.equal(config.cluster, undefined)
    assert.equal(config.dashboard, true)
    assert.equal(upstreamId(config.upstreams[0]), '127.0.0.1:7200')
  })

  it('refuses each kind of mistake with the field named', () => {
    refused({}, 'upstreams')
    refused({ upstreams: [] }, 'upstreams')
    refused({ upstreams, strategy: 'random' }, 'strategy')
    refused({ upstreams: [{ url: 'ftp://127.0.0.1:21' }] }, 'upstreams.0.url')
    refused({ upstreams: [{ url: 'http://127.0.0.1:7200/prefix' }] }, 'upstreams.0.url')
    refused({ upstreams: [{ url: 'http://127.0.0.1:7200', weight: 0 }] }, 'upstreams.0.weight')
    refused({ upstreams: [{ url: 'http://127.0.0.1:7200' }, { url: 'http://127.0.0.1:7200' }] }, 'upstreams.1')
    refused({ upstreams, listen: 'no-port' }, 'listen')
    refused({ upstreams, listen: '127.0.0.1:70000' }, 'listen')
    refused({ upstreams, healthCheck: { intervalMs: 1e12 } }, 'healthCheck.intervalMs')
    refused({ upstreams, proxy: { requestTimeoutMs: 3e9 } }, 'proxy.requestTimeoutMs')
    refused({ upstreams, outlier: { ejectionPercentMax: 101 } }, 'outlier.ejectionPercentMax')
    refused({ upstreams, p2c: { load: 'random' } }, 'p2c.load')
    refused({ upstreams, unknown: true }, '(root)')
  })

  it('names the file when it is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'synod-gateway-config-'))
    try {
      const file = join(dir, 'gateway.json')
      writeFileSync(file, '{ "upstreams": ')
      assert.throws(() => loadGatewayConfig(file), (error: unknown) => error instanceof GatewayError && error.code === 'GATEWAY_CONFIG_INVALID' && error.message.startsWith(`${file}: cannot read as JSON`))
      writeFileSync(file, JSON.stringify({ upstreams, strategy: 'round-robin' }))
      assert.equal(loadGatewayConfig(file).strategy, 'round-robin')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('turns the dashboard off from the file or with --no-dashboard', () => {
    assert.equal(parseGatewayConfig({ upstreams, dashboard: false }, 'test.json').dashboard, false)
    assert.equal(gatewayConfigFrom({ upstream: ['http://127.0.0.1:7200'], dashboard: false }).dashboard, false)
    assert.equal(gatewayConfigFrom({ upstream: ['http://127.0.0.1:7200'] }).dashboard, true)
    assert.throws(() => parseGatewayConfig({ upstreams, dashboard: 'yes' }, 'test.json'), (error: unknown) => error instanceof GatewayError && error.code === 'GATEWAY_CONFIG_INVALID' && error.message.includes('dashboard'))
  })
})
