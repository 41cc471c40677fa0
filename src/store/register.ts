/**
 * What each client operation does to a key's register: a pure change function, as CASPaxos
 * applies it to the newest accepted value it learnt in the prepare round. Reads and a cas that
 * does not match change nothing (the coordinator still has a quorum accept the unchanged
 * register, which is what makes them linearizable); writes bump the version.
 */
import type { KvOperation, KvResult, Register } from './messages.js'

/** The register of a key never written: absent, version 0. */
export const ABSENT: Register = Object.freeze({ version: 0, value: null, writeId: '' })

export interface Change {
  /** The register to accept: the same object as `current` when the operation changes nothing. */
  register: Register
  result: KvResult
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false
  return true
}

export function applyOperation (operation: KvOperation, current: Register, writeId: string): Change {
  const value = current.value
  switch (operation.kind) {
    case 'get':
      return { register: current, result: { kind: 'get', found: value !== null, value, version: current.version } }
    case 'put': {
      const register = { version: current.version + 1, value: operation.value, writeId }
      return { register, result: { kind: 'put', version: register.version } }
    }
    case 'delete': {
      // Deleting an absent key writes nothing: no tombstone to collect later.
      if (value === null) return { register: current, result: { kind: 'delete', found: false, version: current.version } }
      const register = { version: current.version + 1, value: null, writeId }
      return { register, result: { kind: 'delete', found: true, version: register.version } }
    }
    case 'cas': {
      const matches = operation.expected === null ? value === null : value !== null && sameBytes(value, operation.expected)
      if (!matches) return { register: current, result: { kind: 'cas', applied: false, current: value, version: current.version } }
      const register = { version: current.version + 1, value: operation.value, writeId }
      return { register, result: { kind: 'cas', applied: true, current: operation.value, version: register.version } }
    }
  }
}
