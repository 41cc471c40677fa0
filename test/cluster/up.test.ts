/** `synod up`: starts a local cluster, stops it cleanly on Ctrl-C, and reuses its data next time. */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freeBasePort, runSynodUp, stopAllUpRuns, type NodeStatusBody } from '../support/cluster.js'

async function status (api: string): Promise<NodeStatusBody | null> {
  try {
    const response = await fetch(`${api}/v1/status`, { signal: AbortSignal.timeout(2_000) })
    return response.ok ? await response.json() as NodeStatusBody : null
  } catch {
    return null
  }
}

it('synod up brings up a linked cluster, stops it on SIGINT, and restarts it on the same data', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'synod-up-'))
  const basePort = await freeBasePort(3)
  const apis = [0, 1, 2].map((i) => `http://127.0.0.1:${basePort + 100 + i}`)
  try {
    const first = runSynodUp(dataDir, basePort)
    await first.ready
    for (const api of apis) assert.ok(first.output().includes(`api ${api}`), `prints ${api}`)
    for (const api of apis) {
      const body = await status(api)
      assert.equal(body?.peers.filter((peer) => peer.state === 'connected').length, 2, `${api} linked to both others`)
    }
    assert.equal(await first.stop(), 0)
    assert.match(first.output(), /all nodes stopped/)
    for (const api of apis) assert.equal(await status(api), null, `${api} is down after Ctrl-C`)

    const second = runSynodUp(dataDir, basePort)
    await second.ready
    assert.doesNotMatch(second.output(), /initialising/)
    for (const api of apis) assert.equal((await status(api))?.services.hello?.boots, 2, `${api} reused its data`)
    assert.equal(await second.stop(), 0)
  } finally {
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  }
})
