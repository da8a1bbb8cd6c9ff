import { describe, expect, it } from 'vitest'
import { EventQueue } from './event-queue.ts'
import { SeededRandom } from './random.ts'

describe('EventQueue', () => {
  it('is empty at first', () => {
    const queue = new EventQueue<string>()
    expect(queue.size).toBe(0)
    expect(queue.pop()).toBeUndefined()
    expect(queue.peekTimeMs()).toBeUndefined()
  })

  it('pops in time order and in insertion order on ties', () => {
    const queue = new EventQueue<string>()
    queue.push(5, 'late')
    queue.push(1, 'first-at-1')
    queue.push(3, 'middle')
    queue.push(1, 'second-at-1')
    queue.push(1, 'third-at-1')
    expect(queue.peekTimeMs()).toBe(1)
    const order: string[] = []
    for (let entry = queue.pop(); entry !== undefined; entry = queue.pop()) order.push(entry.event)
    expect(order).toEqual(['first-at-1', 'second-at-1', 'third-at-1', 'middle', 'late'])
  })

  it('matches a bucketed FIFO reference over 100k random pushes interleaved with pops', () => {
    // With integer times in [0, 500), one FIFO per time is an exact model of (time, insertion order).
    const random = new SeededRandom(11)
    const queue = new EventQueue<number>()
    const buckets: number[][] = Array.from({ length: 500 }, () => [])
    const heads = new Array<number>(500).fill(0)
    const referencePop = (): { atMs: number; event: number } | undefined => {
      for (let atMs = 0; atMs < 500; atMs++) {
        if (heads[atMs]! < buckets[atMs]!.length) return { atMs, event: buckets[atMs]![heads[atMs]!++]! }
      }
      return undefined
    }
    let mismatches = 0
    for (let id = 0; id < 100_000; id++) {
      const atMs = random.int(0, 500)
      queue.push(atMs, id)
      buckets[atMs]!.push(id)
      if (random.chance(0.3)) {
        const actual = queue.pop()
        const expected = referencePop()
        if (actual?.atMs !== expected?.atMs || actual?.event !== expected?.event) mismatches++
      }
    }
    expect(queue.size).toBeGreaterThan(50_000)
    for (let expected = referencePop(); expected !== undefined; expected = referencePop()) {
      const actual = queue.pop()
      if (actual?.atMs !== expected.atMs || actual.event !== expected.event) mismatches++
    }
    expect(mismatches).toBe(0)
    expect(queue.size).toBe(0)
  })

  it('drains 100k random pushes (fractional times, many ties) as a stable sort of them', () => {
    const random = new SeededRandom(12)
    const queue = new EventQueue<number>()
    const pushed: { atMs: number; id: number }[] = []
    for (let id = 0; id < 100_000; id++) {
      const atMs = random.int(0, 1000) + (random.chance(0.5) ? 0.5 : 0)
      queue.push(atMs, id)
      pushed.push({ atMs, id })
    }
    const expected = [...pushed].sort((a, b) => a.atMs - b.atMs || a.id - b.id)
    const drained: { atMs: number; id: number }[] = []
    for (let entry = queue.pop(); entry !== undefined; entry = queue.pop()) drained.push({ atMs: entry.atMs, id: entry.event })
    expect(drained).toEqual(expected)
  })

  it('refuses to hold more than maxEvents', () => {
    const queue = new EventQueue<string>({ maxEvents: 3 })
    queue.push(1, 'a')
    queue.push(2, 'b')
    queue.push(3, 'c')
    expect(() => queue.push(4, 'd')).toThrow(/maxEvents/)
    queue.pop()
    expect(() => queue.push(4, 'd')).not.toThrow()
    expect(queue.size).toBe(3)
  })
})
