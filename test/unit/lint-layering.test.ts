/**
 * Proves the layering lint (eslint.config.js + tools/eslint-plugin-synod.js) fires on each kind
 * of violation DESIGN.md forbids, stays quiet on the allowed shapes, and that the repository
 * itself is lint-clean. Snippets are linted under virtual paths (nothing is written to disk),
 * so the answers depend only on where a file would live. See docs/layering.md.
 */
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint, type Linter } from 'eslint'

/** Walks up from this (compiled) file to the directory whose package.json is named "synod". */
function findRepositoryRoot (): string {
  let directory = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(directory, 'package.json')
    if (existsSync(manifest)) {
      const name: unknown = JSON.parse(readFileSync(manifest, 'utf8')).name
      if (name === 'synod') return directory
    }
    const parent = dirname(directory)
    if (parent === directory) throw new Error('no package.json named "synod" above ' + fileURLToPath(import.meta.url))
    directory = parent
  }
}

const repositoryRoot = findRepositoryRoot()
let eslint: ESLint

async function lint (filePath: string, code: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath })
  const fatal = result.messages.filter((message) => message.fatal === true)
  assert.deepEqual(fatal, [], `snippet for ${filePath} must parse`)
  return result.messages
}

function describeMessages (messages: Linter.LintMessage[]): string {
  return messages.map((message) => `  ${message.line}:${message.column} ${message.ruleId ?? '(none)'}: ${message.message}`).join('\n') || '  (no messages)'
}

interface Violation {
  name: string
  filePath: string
  code: string
  ruleId: string
  /** Must match the reported message: proves the message says what is wrong and why. */
  message: RegExp
}

const violations: Violation[] = [
  {
    name: 'an upward import (net importing store)',
    filePath: 'src/net/bad.ts',
    code: "import { Store } from '../store/index.js'\nexport const store = Store\n",
    ruleId: 'synod/layering',
    message: /'net'.*'store'.*only go down/
  },
  {
    name: 'an upward type-only import (store importing ledger types)',
    filePath: 'src/store/bad.ts',
    code: "import type { Block } from '../ledger/index.js'\nexport type Blocks = Block[]\n",
    ruleId: 'synod/layering',
    message: /'store'.*'ledger'.*only go down/
  },
  {
    name: 'an upward inline import type',
    filePath: 'src/membership/bad.ts',
    code: "export type Route = import('../gateway/index.js').Route\n",
    ruleId: 'synod/layering',
    message: /'membership'.*'gateway'/
  },
  {
    name: 'an upward re-export',
    filePath: 'src/core/bad.ts',
    code: "export * from '../net/index.js'\n",
    ruleId: 'synod/layering',
    message: /'core'.*'net'/
  },
  {
    name: "a reach into another subsystem's internals (store importing net/hello.js)",
    filePath: 'src/store/bad.ts',
    code: "import { HelloService } from '../net/hello.js'\nexport const hello = HelloService\n",
    ruleId: 'synod/layering',
    message: /internals of 'net'.*src\/net\/index\.js/
  },
  {
    name: 'a type-only reach into internals',
    filePath: 'src/node/bad.ts',
    code: "import type { Env } from '../core/env.js'\nexport type NodeEnv = Env\n",
    ruleId: 'synod/layering',
    message: /internals of 'core'/
  },
  {
    name: 'node:fs in src/ledger',
    filePath: 'src/ledger/bad.ts',
    code: "import { readFileSync } from 'node:fs'\nexport const read = readFileSync\n",
    ruleId: 'synod/layering',
    message: /Node builtin 'node:fs'.*The one rule/
  },
  {
    name: 'a bare builtin name (net) in src/membership',
    filePath: 'src/membership/bad.ts',
    code: "import { Socket } from 'net'\nexport const socket = Socket\n",
    ruleId: 'synod/layering',
    message: /Node builtin 'net'/
  },
  {
    name: 'node:crypto anywhere in core but core/crypto.ts',
    filePath: 'src/core/bad.ts',
    code: "import { randomBytes } from 'node:crypto'\nexport const bytes = randomBytes\n",
    ruleId: 'synod/layering',
    message: /Node builtin 'node:crypto'/
  },
  {
    name: 'a non-allowlisted package (lmdb) in src/store',
    filePath: 'src/store/bad.ts',
    code: "import { open } from 'lmdb'\nexport const openDatabase = open\n",
    ruleId: 'synod/layering',
    message: /package 'lmdb'.*cborg, zod, pure-rand/
  },
  {
    name: 'a non-allowlisted package in gateway balancers',
    filePath: 'src/gateway/balancers/bad.ts',
    code: "import { request } from 'undici'\nexport const send = request\n",
    ruleId: 'synod/layering',
    message: /package 'undici'/
  },
  {
    name: 'compat importing anything',
    filePath: 'src/compat/bad.ts',
    code: "import { CoreError } from '../core/index.js'\nexport const error = CoreError\n",
    ruleId: 'synod/layering',
    message: /compat\/ imports nothing/
  },
  {
    name: 'a computed dynamic import',
    filePath: 'src/node/bad.ts',
    code: 'export async function load (name: string): Promise<unknown> { return import(name) }\n',
    ruleId: 'synod/layering',
    message: /computed specifier/
  },
  {
    name: 'Date.now() in src/membership',
    filePath: 'src/membership/bad.ts',
    code: 'export const startedAtMs = Date.now()\n',
    ruleId: 'no-restricted-globals',
    message: /'Date'.*env\.now\(\).*The one rule/
  },
  {
    name: 'new Date() in src/ledger',
    filePath: 'src/ledger/bad.ts',
    code: 'export const stamp = new Date()\n',
    ruleId: 'no-restricted-globals',
    message: /'Date'.*env\.now\(\)/
  },
  {
    name: 'Math.random() in src/gateway/balancers',
    filePath: 'src/gateway/balancers/bad.ts',
    code: 'export const pick = (count: number): number => Math.floor(Math.random() * count)\n',
    ruleId: 'no-restricted-properties',
    message: /Math\.random.*env\.random/
  },
  {
    name: 'setTimeout in src/store',
    filePath: 'src/store/bad.ts',
    code: 'export function later (fire: () => void): void { setTimeout(fire, 10) }\n',
    ruleId: 'no-restricted-globals',
    message: /'setTimeout'.*env\.setTimer\(\)/
  },
  {
    name: 'process.env in src/check',
    filePath: 'src/check/bad.ts',
    code: 'export const verbose = process.env.VERBOSE === "1"\n',
    ruleId: 'no-restricted-globals',
    message: /'process'.*The one rule/
  },
  {
    name: 'console.log in src/sim',
    filePath: 'src/sim/bad.ts',
    code: 'export function report (line: string): void { console.log(line) }\n',
    ruleId: 'no-restricted-globals',
    message: /'console'.*env\.log/
  },
  {
    name: 'globalThis in src/net',
    filePath: 'src/net/bad.ts',
    code: 'export const clock = globalThis.performance\n',
    ruleId: 'no-restricted-globals',
    message: /'globalThis'/
  },
  {
    name: 'explicit any in src/',
    filePath: 'src/node/bad.ts',
    code: 'export function loose (value: any): void { void value }\n',
    ruleId: '@typescript-eslint/no-explicit-any',
    message: /any/
  }
]

interface Allowed {
  name: string
  filePath: string
  code: string
}

const allowed: Allowed[] = [
  {
    name: 'src/node importing node:fs, ../core/index.js and using the wall clock and timers',
    filePath: 'src/node/good.ts',
    code: [
      "import { readFileSync } from 'node:fs'",
      "import { CoreError, type Env } from '../core/index.js'",
      'export const read = readFileSync',
      'export const error = CoreError',
      'export type NodeEnv = Env',
      'export function later (fire: () => void): void { setTimeout(fire, Date.now() % 10) }',
      ''
    ].join('\n')
  },
  {
    name: 'src/core/crypto.ts importing node:crypto',
    filePath: 'src/core/crypto.ts',
    code: "import { createHash } from 'node:crypto'\nexport const hash = createHash\n"
  },
  {
    name: 'src/sim importing ../net/index.js',
    filePath: 'src/sim/good.ts',
    code: "import { HelloService } from '../net/index.js'\nexport const hello = HelloService\n"
  },
  {
    name: 'import type from a lower layer',
    filePath: 'src/ledger/good.ts',
    code: "import type { Store } from '../store/index.js'\nexport type Stores = Store[]\n"
  },
  {
    name: 'an inline import type from a lower layer',
    filePath: 'src/gateway/good.ts',
    code: "export type View = import('../membership/index.js').View\n"
  },
  {
    name: 'any relative import within a subsystem, however deep',
    filePath: 'src/ledger/consensus/pow/good.ts',
    code: "import { Chain } from '../../chain.js'\nimport { target } from './target.js'\nexport const parts = [Chain, target]\n"
  },
  {
    name: 'allowlisted packages and their subpaths in protocol code',
    filePath: 'src/store/good.ts',
    code: [
      "import { z } from 'zod'",
      "import { encode } from 'cborg'",
      "import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'",
      'export const parts = [z, encode, xoroshiro128plus]',
      ''
    ].join('\n')
  },
  {
    name: 'anyone importing src/compat',
    filePath: 'src/net/good.ts',
    code: "import '../compat/promise-with-resolvers.js'\nexport const loaded = true\n"
  },
  {
    name: 'gateway outside balancers may use timers (it is not a protocol folder)',
    filePath: 'src/gateway/health.ts',
    code: 'export function probeLater (probe: () => void): void { setTimeout(probe, 1000) }\n'
  },
  {
    name: 'tests may reach into internals and use ambient globals',
    filePath: 'test/unit/good.test.ts',
    code: "import { HelloService } from '../../src/net/hello.js'\nexport const hello = HelloService\nexport const now = Date.now()\n"
  }
]

describe('layering lint', () => {
  before(() => {
    eslint = new ESLint({ cwd: repositoryRoot })
  })

  describe('fires on', () => {
    for (const violation of violations) {
      it(violation.name, async () => {
        const messages = await lint(violation.filePath, violation.code)
        const hit = messages.find((message) => message.ruleId === violation.ruleId && violation.message.test(message.message))
        assert.ok(hit !== undefined, `expected ${violation.ruleId} matching ${violation.message} for ${violation.filePath}, got:\n${describeMessages(messages)}`)
        assert.equal(hit.severity, 2, 'layering violations are errors, not warnings')
      })
    }
  })

  describe('stays quiet on', () => {
    for (const allowedCase of allowed) {
      it(allowedCase.name, async () => {
        const messages = await lint(allowedCase.filePath, allowedCase.code)
        assert.deepEqual(messages, [], `expected no messages for ${allowedCase.filePath}, got:\n${describeMessages(messages)}`)
      })
    }
  })

  it('finds no errors in the repository (`eslint .`)', async () => {
    const results = await eslint.lintFiles(['.'])
    const errors = results.flatMap((result) => result.messages
      .filter((message) => message.severity === 2)
      .map((message) => `${result.filePath}:${message.line}:${message.column} ${message.ruleId ?? '(none)'}: ${message.message}`))
    assert.deepEqual(errors, [], `eslint . reported errors:\n${errors.join('\n')}`)
  })
})
