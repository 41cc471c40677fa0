/**
 * The dashboard in a real browser (Debian's headless Chromium, driven by playwright-core) against a
 * real local cluster: `synod up` with 4 node processes (PoS), its gateway serving the built page.
 * Each view must show live data; "Kill" must get the node marked dead by the cluster; the CAP
 * scenario must show the minority refusing strong writes while causal and eventual writes succeed
 * on both sides and converge after healing. Screenshots land in test/web/screenshots/ for review,
 * and the page must log no console errors.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { freeBasePort, runSynodUp, stopAllUpRuns } from '../support/cluster.js'
import { launchChromium } from '../support/browser.js'

const SCREENSHOTS = fileURLToPath(new URL('../../../test/web/screenshots/', import.meta.url))
const NODES = 4
/** Generous: the machine runs 4 nodes and a browser on 2 cores. */
const WAIT_MS = 60_000

async function numberIn (page: Page, selector: string): Promise<number> {
  const text = await page.locator(selector).first().innerText()
  return Number(/-?\d+(\.\d+)?/.exec(text)?.[0] ?? NaN)
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

test('the dashboard shows a live local cluster in Chromium, kills a node, and runs the CAP scenario', { timeout: 420_000 }, async (t) => {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const dataDir = mkdtempSync(join(tmpdir(), 'synod-web-'))
  const up = runSynodUp(dataDir, await freeBasePort(NODES), ['--nodes', String(NODES), '--gateway-port', '0'])
  const browser = await launchChromium((line) => { t.diagnostic(line) })
  t.after(async () => {
    await browser.close()
    await stopAllUpRuns()
    rmSync(dataDir, { recursive: true, force: true })
  })
  await up.ready
  const dashboardUrl = /dashboard: (http:\/\/\S+)/.exec(up.output())?.[1]
  assert.ok(dashboardUrl !== undefined, `synod up printed no dashboard address:\n${up.output()}`)
  const gateway = new URL(dashboardUrl).origin
  const token = /#token=(\S+)/.exec(dashboardUrl)?.[1] as string

  // The admin routes refuse a request without the token, or with a wrong one.
  assert.equal((await fetch(`${gateway}/v1/admin/cluster`)).status, 401)
  assert.equal((await fetch(`${gateway}/v1/admin/cluster`, { headers: { authorization: 'Bearer not-the-token' } })).status, 401)
  assert.equal((await fetch(`${gateway}/v1/admin/nodes/x/kill`, { method: 'POST' })).status, 401)
  const cluster = await fetch(`${gateway}/v1/admin/cluster`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(cluster.status, 200)
  const ids = ((await cluster.json()) as { nodes: Array<{ id: string }> }).nodes.map((node) => node.id)
  assert.equal(ids.length, NODES)

  const page = await browser.context.newPage()
  // Chromium logs every fetch answered 4xx or 5xx as a console error ("Failed to load
  // resource"). The only such answers the page may get are the ones the CAP scenario provokes on
  // purpose: the minority side refusing a strong write. Any other is a failure.
  const consoleErrors: string[] = []
  const expectedRefusals: string[] = []
  let failedLoads = 0
  page.on('response', (response) => {
    if (response.status() < 400) return
    const url = new URL(response.url())
    if (/^\/v1\/admin\/nodes\/[^/]+\/kv\/cap-strong-/.test(url.pathname) && [503, 504].includes(response.status())) expectedRefusals.push(url.pathname)
    else consoleErrors.push(`unexpected ${response.status()} for ${response.request().method()} ${url.pathname}${url.search}`)
  })
  // Nothing needs the internet: every request the page makes goes to the gateway.
  const foreignRequests: string[] = []
  page.on('request', (request) => {
    const url = new URL(request.url())
    if (url.protocol !== 'data:' && url.origin !== gateway) foreignRequests.push(request.url())
  })
  page.on('console', (message) => {
    if (message.type() !== 'error') return
    if (message.text().startsWith('Failed to load resource: the server responded with a status of')) failedLoads++
    else consoleErrors.push(message.text())
  })
  page.on('pageerror', (error) => { consoleErrors.push(error.message) })
  await page.goto(dashboardUrl)

  // Overview: every node, with the chain's head moving.
  await until('the overview to list every node', async () => await page.locator('[data-testid=nodes-table] tbody tr').count() === NODES)
  await until('the head height to show', async () => Number.isFinite(await numberIn(page, '[data-testid=head-height]')))
  const firstHeight = await numberIn(page, '[data-testid=head-height]')
  await until('the head height to grow (live updates)', async () => await numberIn(page, '[data-testid=head-height]') > firstHeight)
  for (const id of ids) await until(`node ${id} alive`, async () => (await page.locator(`[data-testid=node-state-${id}]`).innerText()) === 'alive')
  assert.equal(new URL(page.url()).hash, '#/overview', 'the token leaves the address bar')
  await page.screenshot({ path: join(SCREENSHOTS, 'overview.png'), fullPage: true })

  // Topology: a full mesh of 4 is 6 links, all up; a traced route names its path.
  await page.click('[data-testid=nav-topology]')
  await until('6 links up', async () => (await page.locator('[data-testid=link-counts]').innerText()).startsWith(`${NODES * (NODES - 1) / 2} links up`))
  await page.click('[data-testid=route-trace]')
  await until('a traced route', async () => (await page.locator('[data-testid=route-result]').innerText()).startsWith('request '))
  await page.screenshot({ path: join(SCREENSHOTS, 'topology.png'), fullPage: true })

  // Chain: recent blocks, final, and the validator set.
  await page.click('[data-testid=nav-chain]')
  await until('recent blocks', async () => await page.locator('[data-testid=blocks-table] tbody tr').count() >= 3)
  await until('a final block', async () => (await page.locator('[data-testid=blocks-table]').innerText()).includes('final'))
  await until('the validators', async () => await page.locator('[data-testid=validators-table] tbody tr').count() === NODES)
  await page.screenshot({ path: join(SCREENSHOTS, 'chain.png'), fullPage: true })

  // Store: the ring's virtual nodes, a key's preference list, and live throughput per level.
  await page.click('[data-testid=nav-store]')
  await until('the ring drawn', async () => await page.locator('[data-testid=store-ring] line').count() >= NODES * 128)
  await page.fill('[data-testid=ring-key]', 'greeting')
  await page.click('[data-testid=ring-key-lookup]')
  await until('the preference list', async () => /greeting → replicas (\w+, ){2}\w+/.test(await page.locator('[data-testid=ring-key-result]').innerText()))
  await page.click('[data-testid=store-traffic]')
  for (const level of ['strong', 'causal', 'eventual']) {
    await until(`${level} throughput`, async () => await numberIn(page, `[data-testid=store-ops-${level}]`) > 0)
  }
  await page.screenshot({ path: join(SCREENSHOTS, 'store.png'), fullPage: true })
  await page.click('[data-testid=store-traffic]')

  // Faults: kill a node, and the cluster marks it dead; restart it, and it is alive again.
  await page.click('[data-testid=nav-faults]')
  const victim = ids[ids.length - 1] as string
  await page.click(`[data-testid=kill-${victim}]`)
  await until('the killed node marked dead', async () => (await page.locator(`[data-testid=fault-node-state-${victim}]`).innerText()) === 'dead')
  await page.screenshot({ path: join(SCREENSHOTS, 'faults-killed.png'), fullPage: true })
  await page.click(`[data-testid=restart-${victim}]`)
  await until('the restarted node alive again', async () => (await page.locator(`[data-testid=fault-node-state-${victim}]`).innerText()) === 'alive', 90_000)

  // CAP in one minute: strong refuses on the minority side; causal and eventual serve both sides and converge.
  await page.click('[data-testid=cap-run]')
  await until('the scenario to finish', async () => {
    const steps = await page.locator('[data-testid=cap-steps]').innerText()
    if (/did not|failed|: \d{3} /.test(steps) && !(await page.locator('[data-testid=cap-steps] li.step-running').count() > 0)) throw new Error(steps)
    return steps.includes('Done:')
  }, 180_000)
  const cell = async (level: string, column: string): Promise<string> => await page.locator(`[data-testid=cap-${level}-${column}]`).innerText()
  assert.match(await cell('strong', 'minority'), /^refused: STORE_(NO_QUORUM|TIMEOUT)/)
  assert.match(await cell('strong', 'majority'), /^ok/)
  for (const level of ['causal', 'eventual']) {
    assert.match(await cell(level, 'minority'), /^ok/, `${level} on the minority side`)
    assert.match(await cell(level, 'majority'), /^ok/, `${level} on the majority side`)
    assert.match(await cell(level, 'healed'), new RegExp(`^converged: 3 replicas agree; both sides read "${level} written on the (minority|majority) side"$`), `${level} after healing`)
  }
  assert.match(await cell('strong', 'healed'), /^consistent: the minority side now reads "strong written on the majority side"/)
  await page.screenshot({ path: join(SCREENSHOTS, 'faults-cap.png'), fullPage: true })

  await page.close()
  assert.deepEqual(foreignRequests, [], 'the page requests nothing but the gateway')
  assert.deepEqual(consoleErrors, [], 'the page logs no console errors and gets no error answers but the intended refusal')
  assert.equal(expectedRefusals.length, 1, 'exactly one refused write: strong on the minority side')
  assert.ok(failedLoads <= expectedRefusals.length, `${failedLoads} failed loads logged, ${expectedRefusals.length} intended`)
})
