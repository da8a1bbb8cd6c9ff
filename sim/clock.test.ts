import { describe, expect, it } from 'vitest'
import { drawClock, DriftingClock } from './clock.ts'
import { SeededRandom } from './random.ts'

describe('DriftingClock', () => {
  it('reads real time exactly with no drift and no offset', () => {
    const clock = new DriftingClock({ driftRate: 0, offsetMs: 0 })
    for (const realMs of [0, 1, 12_345.5]) {
      expect(clock.localMs(realMs)).toBe(realMs)
      expect(clock.realMsAt(realMs)).toBe(realMs)
    }
  })

  it('applies offset and drift, and realMsAt inverts localMs', () => {
    const clock = new DriftingClock({ driftRate: 0.001, offsetMs: 250 })
    expect(clock.localMs(0)).toBe(250)
    expect(clock.localMs(10_000)).toBeCloseTo(250 + 10_010, 9)
    for (const realMs of [0, 17, 10_000, 3_600_000]) expect(clock.realMsAt(clock.localMs(realMs))).toBeCloseTo(realMs, 6)
    expect(() => new DriftingClock({ driftRate: -1, offsetMs: 0 })).toThrow()
  })

  it('draws drift and offset within bounds, deterministically per seed', () => {
    const random = new SeededRandom(1)
    let negative = 0
    for (let index = 0; index < 1000; index++) {
      const clock = drawClock(random, 1e-4, 500)
      expect(Math.abs(clock.driftRate)).toBeLessThanOrEqual(1e-4)
      expect(clock.offsetMs).toBeGreaterThanOrEqual(0)
      expect(clock.offsetMs).toBeLessThanOrEqual(500)
      if (clock.driftRate < 0) negative++
    }
    expect(negative).toBeGreaterThan(400)
    expect(negative).toBeLessThan(600)
    expect(drawClock(new SeededRandom(2), 1e-4, 500)).toEqual(drawClock(new SeededRandom(2), 1e-4, 500))
  })
})
