/**
 * eslint-plugin-synod: the lint that keeps Synod's layers honest.
 *
 * DESIGN.md ("Layers", "The one rule that makes it testable") says imports only go down, each
 * subsystem is used through its `index.ts`, and protocol code performs no IO and reads no
 * ambient state. Goodwill does not survive a deadline, so this plugin checks it on every lint.
 *
 * Rule `synod/layering` looks at every module specifier a file under `src/` names, whether the
 * import is for values or only for types (a type-only import still couples two layers):
 *
 *   import ... from '...'          import type ... from '...'
 *   export ... from '...'          export * from '...'
 *   import('...')                  type T = import('...').T
 *   import x = require('...')
 *
 * and enforces:
 *
 *   1. Direction. A file in layer X may import a relative module in layer Y only when
 *      rank(Y) < rank(X) or Y === X (see LAYER_RANKS). `src/compat/` may be imported by
 *      anyone and itself imports nothing outside `src/compat/`.
 *   2. Public faces. Across subsystems the only importable module is `src/<layer>/index.js`
 *      (the compiled name of `index.ts`). Within a subsystem any relative import is fine.
 *   3. Protocol purity. In PROTOCOL_FOLDERS: no `node:*` and no builtin module names
 *      (`fs`, `net`, `http`, ...), except `src/core/crypto.ts` importing `node:crypto`; bare
 *      package imports only from PACKAGE_ALLOWLIST (and their subpaths).
 *   4. Known places. A file directly in `src/` or in an unlisted folder, an import that leaves
 *      `src/`, or an `import()` whose specifier is not a string literal, cannot be placed in
 *      the layer graph, so each is an error until the table (and DESIGN.md) says where it goes.
 *
 * The ban on ambient globals in protocol folders (`Date`, `setTimeout`, `process`, `console`,
 * `Math.random`, ...) is plain ESLint configuration (`no-restricted-globals`,
 * `no-restricted-properties`) in `eslint.config.js`, scoped with `protocolFileGlobs()` below,
 * so both halves agree on what "protocol" means.
 *
 * Options: `[{ root: string }]`, the absolute path of the repository root; paths are judged
 * relative to it. Defaults to ESLint's cwd. `eslint.config.js` passes its own directory, so
 * linting from a subdirectory or through the Node API gives the same answers.
 *
 * Tests: test/unit/lint-layering.test.ts. Prose: docs/layering.md.
 */
import { builtinModules } from 'node:module'
import path from 'node:path'

/** Layer ranks: a layer may import only layers of lower rank, and itself. */
export const LAYER_RANKS = Object.freeze({
  core: 0,
  net: 1,
  membership: 2,
  store: 3,
  ledger: 4,
  gateway: 5,
  check: 6,
  sim: 7,
  client: 8,
  node: 9,
  cli: 10
})

/** Not a layer: polyfills loaded before anything else. Anyone may import it; it imports nothing. */
export const COMPAT_FOLDER = 'compat'

/**
 * Folders (relative to the repository root) whose code must be deterministic and IO-free:
 * it runs unchanged inside the simulator, so everything comes through the injected Env.
 */
export const PROTOCOL_FOLDERS = Object.freeze([
  'src/core',
  'src/net',
  'src/membership',
  'src/store',
  'src/ledger',
  'src/check',
  'src/sim',
  'src/gateway/balancers'
])

/**
 * Packages protocol code may import (and their subpaths, e.g. `pure-rand/generator/...`):
 * pure, deterministic, no IO. Add one only after checking it reads no clock, randomness or
 * environment of its own.
 */
export const PACKAGE_ALLOWLIST = Object.freeze(['cborg', 'zod', 'pure-rand'])

/** Node builtins protocol code may import, per file: the one door to the platform's crypto. */
export const BUILTIN_EXCEPTIONS = Object.freeze({
  'src/core/crypto.ts': Object.freeze(['node:crypto'])
})

/** Globs matching protocol files, for scoping config blocks in eslint.config.js. */
export function protocolFileGlobs () {
  return PROTOCOL_FOLDERS.map((folder) => `${folder}/**/*.ts`)
}

const BUILTIN_NAMES = new Set(builtinModules)
const FACE_FILE = 'index.js'
const WHY_LAYERS = "See DESIGN.md 'Layers' and docs/layering.md."
const WHY_PURE = "Protocol code performs no IO and reads no ambient state; it gets what it needs from the injected Env. See DESIGN.md 'The one rule'."

/** `a\b` and `a/b` both become `a/b`, so the rule gives the same answers on every platform. */
function toPosix (filePath) {
  return filePath.split(path.sep).join('/')
}

/**
 * Where a repository-relative path sits in the layer graph.
 * @param {string} relativePath posix path relative to the repository root
 * @returns {{ kind: 'outside' } | { kind: 'unknown', folder: string } | { kind: 'compat' } | { kind: 'layer', layer: string }}
 */
function placeOf (relativePath) {
  const parts = relativePath.split('/')
  if (parts[0] !== 'src') return { kind: 'outside' }
  if (parts.length < 3) return { kind: 'unknown', folder: '(src root)' }
  const folder = parts[1]
  if (folder === COMPAT_FOLDER) return { kind: 'compat' }
  if (Object.hasOwn(LAYER_RANKS, folder)) return { kind: 'layer', layer: folder }
  return { kind: 'unknown', folder }
}

function isProtocolFile (relativePath) {
  return PROTOCOL_FOLDERS.some((folder) => relativePath.startsWith(`${folder}/`))
}

function isRelative (specifier) {
  return specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../')
}

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
function packageNameOf (specifier) {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

function isBuiltin (specifier) {
  return specifier.startsWith('node:') || BUILTIN_NAMES.has(specifier) || BUILTIN_NAMES.has(packageNameOf(specifier))
}

/** The string literal a module-naming node carries, or undefined when it is computed. */
function literalSpecifier (node) {
  if (node == null) return undefined
  if (node.type === 'Literal' && typeof node.value === 'string') return node.value
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked
  if (node.type === 'TSLiteralType') return literalSpecifier(node.literal)
  return undefined
}

/** @type {import('eslint').Rule.RuleModule} */
const layering = {
  meta: {
    type: 'problem',
    docs: {
      description: 'Imports only go down the layers, cross subsystems through index.js, and protocol folders import no IO.',
      url: 'docs/layering.md'
    },
    schema: [
      {
        type: 'object',
        properties: { root: { type: 'string' } },
        additionalProperties: false
      }
    ],
    messages: {
      upward: "Layer '{{from}}' (rank {{fromRank}}) must not import layer '{{to}}' (rank {{toRank}}) ('{{specifier}}'): imports only go down. " + WHY_LAYERS,
      internals: "'{{specifier}}' reaches into the internals of '{{to}}'; import its public face '{{face}}' instead. " + WHY_LAYERS,
      compatImports: "src/compat/ imports nothing outside itself ('{{specifier}}'): it is preloaded before any other module and anyone may import it. " + WHY_LAYERS,
      unknownFile: "'{{file}}' is not in a known layer (folder '{{folder}}'); add the folder to LAYER_RANKS in tools/eslint-plugin-synod.js and to DESIGN.md 'Layers', or move the file. " + WHY_LAYERS,
      unknownTarget: "'{{specifier}}' resolves to '{{target}}', which is not in a known layer. " + WHY_LAYERS,
      outsideSrc: "'{{specifier}}' resolves to '{{target}}', outside src/: tests, benchmarks and tools depend on src/, never the reverse. " + WHY_LAYERS,
      computedImport: 'import() with a computed specifier cannot be checked against the layers; name the module with a string literal. ' + WHY_LAYERS,
      builtin: "Protocol folder '{{folder}}' must not import the Node builtin '{{specifier}}'. " + WHY_PURE,
      packageNotAllowed: "Protocol folder '{{folder}}' must not import the package '{{packageName}}'; allowed: {{allowlist}} (pure and deterministic; widen PACKAGE_ALLOWLIST in tools/eslint-plugin-synod.js only after review). " + WHY_PURE
    }
  },

  create (context) {
    const root = context.options[0]?.root ?? context.cwd
    const file = toPosix(path.relative(root, context.filename))
    const here = placeOf(file)
    if (here.kind === 'outside') return {}

    const protocolFolder = isProtocolFile(file) ? PROTOCOL_FOLDERS.find((folder) => file.startsWith(`${folder}/`)) : undefined
    const builtinExceptions = BUILTIN_EXCEPTIONS[file] ?? []

    function checkBare (node, specifier) {
      if (here.kind === 'compat') {
        context.report({ node, messageId: 'compatImports', data: { specifier } })
        return
      }
      if (protocolFolder === undefined) return
      if (isBuiltin(specifier)) {
        if (builtinExceptions.includes(specifier)) return
        context.report({ node, messageId: 'builtin', data: { folder: protocolFolder, specifier } })
        return
      }
      const packageName = packageNameOf(specifier)
      if (PACKAGE_ALLOWLIST.includes(packageName)) return
      context.report({ node, messageId: 'packageNotAllowed', data: { folder: protocolFolder, packageName, allowlist: PACKAGE_ALLOWLIST.join(', ') } })
    }

    function checkRelative (node, specifier) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier))
      const there = placeOf(target)
      if (there.kind === 'outside') {
        context.report({ node, messageId: 'outsideSrc', data: { specifier, target } })
        return
      }
      if (here.kind === 'compat') {
        if (there.kind !== 'compat') context.report({ node, messageId: 'compatImports', data: { specifier } })
        return
      }
      if (there.kind === 'compat') return
      if (there.kind === 'unknown') {
        context.report({ node, messageId: 'unknownTarget', data: { specifier, target } })
        return
      }
      const from = here.layer
      const to = there.layer
      if (from === to) return
      if (LAYER_RANKS[to] > LAYER_RANKS[from]) {
        context.report({ node, messageId: 'upward', data: { from, fromRank: LAYER_RANKS[from], to, toRank: LAYER_RANKS[to], specifier } })
        return
      }
      const face = `src/${to}/${FACE_FILE}`
      if (target !== face) context.report({ node, messageId: 'internals', data: { specifier, to, face } })
    }

    function check (node, specifierNode) {
      const specifier = literalSpecifier(specifierNode)
      if (specifier === undefined) {
        context.report({ node, messageId: 'computedImport' })
        return
      }
      if (here.kind === 'unknown') return // reported once, on Program
      if (isRelative(specifier)) checkRelative(node, specifier)
      else checkBare(node, specifier)
    }

    return {
      Program (node) {
        if (here.kind === 'unknown') context.report({ node, messageId: 'unknownFile', data: { file, folder: here.folder } })
      },
      ImportDeclaration (node) { check(node, node.source) },
      ExportNamedDeclaration (node) { if (node.source != null) check(node, node.source) },
      ExportAllDeclaration (node) { check(node, node.source) },
      ImportExpression (node) { check(node, node.source) },
      TSImportType (node) { check(node, node.argument) },
      TSImportEqualsDeclaration (node) {
        if (node.moduleReference.type === 'TSExternalModuleReference') check(node, node.moduleReference.expression)
      }
    }
  }
}

const plugin = {
  meta: { name: 'eslint-plugin-synod', version: '0.1.0' },
  rules: { layering }
}

export default plugin
