// Seeded random source for the simulator: every draw in a run comes from one of these,
// so a run replays exactly from its seed. sfc32 seeded through splitmix32; `fork` derives
// independent named streams so adding a consumer never perturbs the draws of the others.
import assert from 'node:assert/strict'

const twoToThe32 = 4294967296

/** 32-bit FNV-1a over the UTF-16 code units of `text`, finished with an avalanche mix. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return mix32(hash)
}

/** A bijective 32-bit avalanche (the murmur3 finalizer). */
export function mix32(value: number): number {
  let hash = value | 0
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

/** One splitmix32 step: returns the next state and its output. */
function splitmix32(state: number): { state: number; output: number } {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
  z ^= z >>> 15
  return { state: next, output: z >>> 0 }
}

export class SeededRandom {
  /** The 32-bit seed this stream started from; forks derive from it, not from the position. */
  readonly seed: number
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    assert.ok(Number.isInteger(seed), `seed must be an integer, got ${seed}`)
    this.seed = seed >>> 0
    let state = this.seed
    const words: number[] = []
    for (let index = 0; index < 4; index++) {
      const step = splitmix32(state)
      state = step.state
      words.push(step.output)
    }
    this.a = words[0]! | 0
    this.b = words[1]! | 0
    this.c = words[2]! | 0
    this.d = words[3]! | 0
    // sfc32 recommends discarding the first outputs to fully mix the state.
    for (let index = 0; index < 12; index++) this.uint32()
  }

  /** Next raw 32-bit unsigned output (sfc32). */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.uint32() / twoToThe32
  }

  /** Uniform integer in [minInclusive, maxExclusive); the range must fit in 32 bits. */
  int(minInclusive: number, maxExclusive: number): number {
    const span = maxExclusive - minInclusive
    // Checked with `if` so the hot path builds no message string.
    if (!(Number.isInteger(minInclusive) && Number.isInteger(maxExclusive) && span > 0 && span <= twoToThe32)) {
      assert.fail(`int range [${minInclusive}, ${maxExclusive}) is not a non-empty integer range of at most 2^32`)
    }
    return minInclusive + Math.floor(this.next() * span)
  }

  /** True with `probability`. Probabilities of 0 or 1 draw nothing, so a disabled fault perturbs no stream. */
  chance(probability: number): boolean {
    if (probability <= 0) return false
    if (probability >= 1) return true
    return this.next() < probability
  }

  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0, 'pick from an empty list')
    return items[this.int(0, items.length)] as T
  }

  /** Fisher-Yates in place; returns `items`. */
  shuffle<T>(items: T[]): T[] {
    for (let index = items.length - 1; index > 0; index--) {
      const other = this.int(0, index + 1)
      const held = items[index] as T
      items[index] = items[other] as T
      items[other] = held
    }
    return items
  }

  /** Exponential with the given mean; a mean of 0 gives 0 without drawing. */
  exponential(meanMs: number): number {
    if (!(meanMs >= 0)) assert.fail(`exponential mean must be >= 0, got ${meanMs}`)
    if (meanMs === 0) return 0
    return -meanMs * Math.log(1 - this.next())
  }

  /** Log-normal with the given median and log-space standard deviation. */
  logNormal(medianMs: number, sigma: number): number {
    assert.ok(medianMs > 0 && sigma >= 0, 'logNormal needs median > 0 and sigma >= 0')
    return medianMs * Math.exp(sigma * this.standardNormal())
  }

  /** Standard normal via Box-Muller (one of the pair, so there is no hidden cached state). */
  standardNormal(): number {
    const u = 1 - this.next() // (0, 1], keeps log finite
    const v = this.next()
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
  }

  /**
   * An independent stream derived from this stream's seed and `label`. It does not advance
   * this stream and does not depend on how far it has advanced: the same label always
   * yields the same child stream.
   */
  fork(label: string): SeededRandom {
    const childSeed = mix32((mix32(this.seed ^ 0x5bd1e995) + hashString(label)) | 0)
    return new SeededRandom(childSeed)
  }
}
