/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium` driven by
 * playwright-core (which downloads no browser of its own). `.ci/run` installs the package; when it
 * is missing here the setup installs it itself if it runs as root, and otherwise fails saying how
 * to get it. The flags keep Chromium off the network (this machine has none) and out of any
 * profile: a fresh user-data directory per launch.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'
import { findOrInstallDebian } from '../../bench/util.js'

export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export interface HeadlessChromium { context: BrowserContext, close: () => Promise<void> }

export async function launchChromium (progress: (line: string) => void = () => {}): Promise<HeadlessChromium> {
  const found = await findOrInstallDebian('chromium', 'chromium', progress)
  if ('reason' in found) throw new Error(`the browser tests need Debian's chromium: ${found.reason} (apt-get install -y chromium)`)
  const profile = mkdtempSync(join(tmpdir(), 'synod-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: found.path,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 }
  })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

export type { Browser }
