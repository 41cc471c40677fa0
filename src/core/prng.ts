/**
 * The seeded generator every protocol draws from (`Env.random`). Built on pure-rand's
 * xoroshiro128+; `fork(label)` derives an independent stream from the seed and a label, so adding
 * a consumer in one place does not shift the numbers every other consumer sees.
 */
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus'
import { uniformInt } from 'pure-rand/distribution/uniformInt'
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64'
import { sha256 } from './crypto.js'

export interface Prng {
  readonly seed: number
  /** Uniform in [0, 1). */
  float (): number
  /** Uniform integer in [minInclusive, maxInclusive]. */
  int (minInclusive: number, maxInclusive: number): number
  /** True with the given probability. */
  chance (probability: number): boolean
  pick<T> (items: readonly T[]): T
  shuffle<T> (items: readonly T[]): T[]
  /** 32 random bytes, for key seeds in the simulator. */
  bytes (length: number): Uint8Array
  /** An independent generator derived from this seed and a label. */
  fork (label: string): Prng
}

export const SEED_MAX = 0xffff_ffff

export function deriveSeed (seed: number, label: string): number {
  const digest = sha256(new TextEncoder().encode(`${seed}/${label}`))
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0)
}

export function createPrng (seed: number): Prng {
  if (!Number.isInteger(seed) || seed < 0 || seed > SEED_MAX) throw new RangeError(`seed must be an integer in [0, ${SEED_MAX}], got ${seed}`)
  const generator = xoroshiro128plus(seed)
  const prng: Prng = {
    seed,
    float: () => uniformFloat64(generator),
    int: (minInclusive, maxInclusive) => uniformInt(generator, minInclusive, maxInclusive),
    chance: (probability) => probability > 0 && uniformFloat64(generator) < probability,
    pick (items) {
      if (items.length === 0) throw new RangeError('pick from an empty list')
      return items[uniformInt(generator, 0, items.length - 1)] as (typeof items)[number]
    },
    shuffle (items) {
      const out = items.slice()
      for (let i = out.length - 1; i > 0; i--) {
        const j = uniformInt(generator, 0, i)
        const held = out[i] as (typeof out)[number]
        out[i] = out[j] as (typeof out)[number]
        out[j] = held
      }
      return out
    },
    bytes (length) {
      const out = new Uint8Array(length)
      for (let i = 0; i < length; i++) out[i] = uniformInt(generator, 0, 255)
      return out
    },
    fork: (label) => createPrng(deriveSeed(seed, label))
  }
  return prng
}
