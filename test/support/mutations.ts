/**
 * Random damage to a decoded value, for property tests that compare a hand-written check with the
 * zod schema it stands in for: a value replaced at a path, a field dropped or added, an entry
 * duplicated. Applied in place to a fresh decode.
 */
import fc from 'fast-check'

export type Mutation = { kind: 'set', path: number[], value: unknown } | { kind: 'drop', path: number[] } | { kind: 'add', path: number[], key: string } | { kind: 'duplicate', path: number[] }

/** Mutations that set values drawn from `oddValue` and add fields named from `addedKeys`. */
export function mutations (oddValue: fc.Arbitrary<unknown>, addedKeys: string[]): fc.Arbitrary<Mutation> {
  return fc.oneof(
    fc.record({ kind: fc.constant('set' as const), path: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), value: oddValue }),
    fc.record({ kind: fc.constant('drop' as const), path: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }) }),
    fc.record({ kind: fc.constant('add' as const), path: fc.array(fc.nat(), { maxLength: 5 }), key: fc.constantFrom(...addedKeys) }),
    fc.record({ kind: fc.constant('duplicate' as const), path: fc.array(fc.nat(), { maxLength: 5 }) })
  )
}

/** Applies a mutation to a decoded value in place; each path step picks among the container's keys. */
export function mutate (root: unknown, mutation: Mutation): void {
  let container = root
  const steps = mutation.kind === 'set' || mutation.kind === 'drop' ? mutation.path.slice(0, -1) : mutation.path
  for (const step of steps) {
    if (typeof container !== 'object' || container === null || container instanceof Uint8Array) return
    const keys = Object.keys(container)
    if (keys.length === 0) return
    container = (container as Record<string, unknown>)[keys[step % keys.length] as string]
  }
  if (typeof container !== 'object' || container === null || container instanceof Uint8Array) return
  const target = container as Record<string, unknown>
  const keys = Object.keys(target)
  const last = mutation.kind === 'set' || mutation.kind === 'drop' ? mutation.path.at(-1) as number : 0
  const key = keys.length === 0 ? '0' : keys[last % keys.length] as string
  // A copy: fast-check hands the same constant objects to every run, and later mutations must not change them.
  if (mutation.kind === 'set') target[key] = structuredClone(mutation.value)
  else if (mutation.kind === 'drop') { if (Array.isArray(target)) target.splice(Number(key), 1); else Reflect.deleteProperty(target, key) }
  else if (mutation.kind === 'add') { if (Array.isArray(target)) target.push(target[0] ?? 0); else Object.defineProperty(target, mutation.key, { value: 1, enumerable: true, writable: true, configurable: true }) }
  else if (Array.isArray(target) && target.length > 0) target.push(structuredClone(target[0]))
}
