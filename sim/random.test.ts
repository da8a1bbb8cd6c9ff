import { describe, expect, it } from 'vitest'
import { hashString, SeededRandom } from './random.ts'

function draws(random: SeededRandom, count: number): number[] {
  return Array.from({ length: count }, () => random.next())
}

describe('SeededRandom', () => {
  it('replays the same sequence from the same seed, and a different one from another seed', () => {
    expect(draws(new SeededRandom(42), 100)).toEqual(draws(new SeededRandom(42), 100))
    expect(draws(new SeededRandom(42), 100)).not.toEqual(draws(new SeededRandom(43), 100))
  })

  it('forks different streams for different labels, and the same stream for the same label', () => {
    const parent = new SeededRandom(7)
    const a = draws(parent.fork('network'), 50)
    const b = draws(parent.fork('clocks'), 50)
    expect(a).not.toEqual(b)
    expect(draws(parent.fork('network'), 50)).toEqual(a)
    // A fork is not a copy of the parent either.
    expect(a).not.toEqual(draws(new SeededRandom(7), 50))
  })

  it('does not advance the parent stream when forking', () => {
    const forked = new SeededRandom(99)
    forked.next()
    forked.fork('one')
    forked.fork('two').next()
    const plain = new SeededRandom(99)
    plain.next()
    expect(draws(forked, 20)).toEqual(draws(plain, 20))
  })

  it('keeps next in [0, 1) with a roughly uniform mean', () => {
    const random = new SeededRandom(1)
    let sum = 0
    let outOfRange = 0
    for (let index = 0; index < 100_000; index++) {
      const value = random.next()
      if (!(value >= 0 && value < 1)) outOfRange++
      sum += value
    }
    expect(outOfRange).toBe(0)
    expect(sum / 100_000).toBeGreaterThan(0.49)
    expect(sum / 100_000).toBeLessThan(0.51)
  })

  it('draws int within [min, max) and hits every value about equally', () => {
    const random = new SeededRandom(2)
    const counts = new Map<number, number>()
    for (let index = 0; index < 60_000; index++) {
      const value = random.int(-3, 3)
      counts.set(value, (counts.get(value) ?? 0) + 1)
    }
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([-3, -2, -1, 0, 1, 2])
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(9_400)
      expect(count).toBeLessThan(10_600)
    }
    expect(() => random.int(5, 5)).toThrow()
  })

  it('makes chance true with about the given probability, and exact at 0 and 1', () => {
    const random = new SeededRandom(3)
    let hits = 0
    for (let index = 0; index < 100_000; index++) if (random.chance(0.3)) hits++
    expect(hits / 100_000).toBeGreaterThan(0.29)
    expect(hits / 100_000).toBeLessThan(0.31)
    for (let index = 0; index < 1000; index++) {
      expect(random.chance(0)).toBe(false)
      expect(random.chance(1)).toBe(true)
    }
  })

  it('picks members only and refuses an empty list', () => {
    const random = new SeededRandom(4)
    const items = ['a', 'b', 'c']
    const seen = new Set<string>()
    for (let index = 0; index < 300; index++) seen.add(random.pick(items))
    expect([...seen].sort()).toEqual(items)
    expect(() => random.pick([])).toThrow()
  })

  it('shuffles in place into a permutation, deterministically per seed', () => {
    const items = Array.from({ length: 50 }, (_, index) => index)
    const shuffled = new SeededRandom(5).shuffle([...items])
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items)
    expect(shuffled).not.toEqual(items)
    expect(new SeededRandom(5).shuffle([...items])).toEqual(shuffled)
    const target = [1, 2, 3]
    expect(new SeededRandom(5).shuffle(target)).toBe(target)
  })

  it('draws exponential with the requested mean and logNormal with the requested median', () => {
    const random = new SeededRandom(6)
    let sum = 0
    let negative = 0
    for (let index = 0; index < 100_000; index++) {
      const value = random.exponential(10)
      if (value < 0) negative++
      sum += value
    }
    expect(negative).toBe(0)
    expect(sum / 100_000).toBeGreaterThan(9.8)
    expect(sum / 100_000).toBeLessThan(10.2)
    expect(random.exponential(0)).toBe(0)

    const samples = Array.from({ length: 20_001 }, () => random.logNormal(50, 0.5)).sort((a, b) => a - b)
    expect(samples[10_000]!).toBeGreaterThan(48)
    expect(samples[10_000]!).toBeLessThan(52)
    expect(samples[0]!).toBeGreaterThan(0)
  })

  it('hashes strings to stable, distinct 32-bit values', () => {
    expect(hashString('network')).toBe(hashString('network'))
    expect(hashString('network')).not.toBe(hashString('networl'))
    for (const text of ['', 'a', 'a much longer label with ünïcode']) {
      const hash = hashString(text)
      expect(Number.isInteger(hash) && hash >= 0 && hash < 2 ** 32).toBe(true)
    }
  })
})
