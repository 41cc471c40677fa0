import { InvalidArgumentError } from 'commander'
import { isTopologyName, topologyNames, type TopologyName } from '../net/index.js'

/** A commander parser for an integer flag within [min, max]. */
export function integerOption (name: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text)
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`)
    return value
  }
}

/** A commander parser for a flag that takes one of `allowed`. */
export function choiceOption<T extends string> (flag: string, allowed: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag} is one of ${allowed.join(', ')}`)
    return value as T
  }
}

export function topologyOption (text: string): TopologyName {
  if (!isTopologyName(text)) throw new InvalidArgumentError(`expected one of ${topologyNames.join(', ')}`)
  return text
}

/** Consensus engines a new network can be given, and `none` for no ledger. */
export const consensusNames = ['pos', 'dpos', 'pow', 'none'] as const
export type ConsensusChoice = typeof consensusNames[number]

export function consensusOption (text: string): ConsensusChoice {
  const found = consensusNames.find((name) => name === text)
  if (found === undefined) throw new InvalidArgumentError(`expected one of ${consensusNames.join(', ')}`)
  return found
}
