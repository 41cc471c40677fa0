import { readFileSync } from 'node:fs'

/** The package version, read once from package.json (two levels above dist/src/node). */
export const SYNOD_VERSION: string = (() => {
  try {
    const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')
    const parsed = JSON.parse(text) as { version?: unknown }
    return typeof parsed.version === 'string' ? parsed.version : '0.0.0'
  } catch {
    return '0.0.0'
  }
})()
