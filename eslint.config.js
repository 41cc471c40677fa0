// Lint for Synod. Two jobs: catch plain mistakes (typescript-eslint's recommended rules, no
// type information, so it stays fast) and enforce the layering in DESIGN.md (the local plugin
// tools/eslint-plugin-synod.js plus the protocol-folder bans below). Stylistic rules stay off:
// formatting is not what this lint is for. See docs/layering.md.
import { fileURLToPath } from 'node:url'
import { defineConfig, globalIgnores } from 'eslint/config'
import tseslint from 'typescript-eslint'
import synod, { protocolFileGlobs } from './tools/eslint-plugin-synod.js'

const repositoryRoot = fileURLToPath(new URL('.', import.meta.url))
const typeScriptFiles = ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts']

const WHY_NO_AMBIENT = "see DESIGN.md 'The one rule': protocol code runs unchanged in the simulator, so it performs no IO and reads no ambient state"

/** Globals protocol code must not touch, each with the Env member it should use instead. */
const protocolRestrictedGlobals = [
  { name: 'Date', message: `Protocol code takes time from env.now(); ${WHY_NO_AMBIENT}.` },
  { name: 'performance', message: `Protocol code takes time from env.now(); ${WHY_NO_AMBIENT}.` },
  { name: 'setTimeout', message: `Protocol code schedules with env.setTimer(); ${WHY_NO_AMBIENT}.` },
  { name: 'setInterval', message: `Protocol code schedules with env.setTimer() (re-armed on fire); ${WHY_NO_AMBIENT}.` },
  { name: 'setImmediate', message: `Protocol handlers are synchronous; schedule with env.setTimer(); ${WHY_NO_AMBIENT}.` },
  { name: 'queueMicrotask', message: `Protocol handlers are synchronous; schedule with env.setTimer(); ${WHY_NO_AMBIENT}.` },
  { name: 'clearTimeout', message: `Protocol timers come from env.setTimer() and are cancelled through the Env; ${WHY_NO_AMBIENT}.` },
  { name: 'clearInterval', message: `Protocol timers come from env.setTimer() and are cancelled through the Env; ${WHY_NO_AMBIENT}.` },
  { name: 'clearImmediate', message: `Protocol timers come from env.setTimer() and are cancelled through the Env; ${WHY_NO_AMBIENT}.` },
  { name: 'process', message: `Protocol code gets configuration and identity through its init options and the Env, never process; ${WHY_NO_AMBIENT}.` },
  { name: 'console', message: `Protocol code logs through env.log; ${WHY_NO_AMBIENT}.` },
  { name: 'fetch', message: `Protocol code talks to peers with env.send(); ${WHY_NO_AMBIENT}.` },
  { name: 'require', message: `Protocol code uses static ESM imports, checked by synod/layering; ${WHY_NO_AMBIENT}.` },
  { name: 'globalThis', message: `globalThis is a back door to every ambient global; use the Env; ${WHY_NO_AMBIENT}.` },
  { name: 'crypto', message: `Web Crypto's randomness is unseeded: use env.random for randomness and src/core/crypto for hashes and signatures; ${WHY_NO_AMBIENT}.` }
]

export default defineConfig([
  globalIgnores(['dist/', 'node_modules/', '.synod/', 'bench/results/']),

  {
    files: typeScriptFiles,
    extends: [tseslint.configs.recommended],
    rules: {
      // Tests and benchmarks may reach for `any` when poking at internals; src may not.
      '@typescript-eslint/no-explicit-any': 'warn',
      // `_`-prefixed names are the conventional "deliberately unused" marker.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }]
    }
  },

  {
    files: ['src/**/*.ts'],
    plugins: { synod },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      'synod/layering': ['error', { root: repositoryRoot }]
    }
  },

  // The dashboard (web/) talks to the gateway over HTTP only: it imports nothing from src/.
  {
    files: ['web/**/*.ts'],
    extends: [tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-imports': ['error', { patterns: [{ group: ['../../src/*', '../../../src/*', '../../../../src/*', '**/dist/src/*'], message: 'web/ talks to the gateway over HTTP only (DESIGN.md, Layers): it must not import src/.' }] }]
    }
  },

  {
    files: protocolFileGlobs(),
    rules: {
      'no-restricted-globals': ['error', ...protocolRestrictedGlobals],
      'no-restricted-properties': ['error', {
        object: 'Math',
        property: 'random',
        message: `Protocol code draws randomness from env.random, which is seeded so a run replays exactly; ${WHY_NO_AMBIENT}.`
      }]
    }
  }
])
