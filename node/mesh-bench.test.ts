// The mesh benchmark's percentiles: nearest rank, so p99 of fewer than 100 samples is the maximum,
// and an empty run says so (NaN, printed as null) instead of inventing a figure.
import { describe, expect, it } from 'vitest'
import { percentiles } from './mesh-bench.ts'

describe('mesh benchmark percentiles', () => {
  it('takes the nearest rank', () => {
    const values = Array.from({ length: 200 }, (_, index) => 200 - index) // 1..200, shuffled order does not matter
    expect(percentiles(values)).toEqual({ p50: 100, p99: 198, max: 200, samples: 200 })
    expect(percentiles([5, 1, 3])).toEqual({ p50: 3, p99: 5, max: 5, samples: 3 })
  })

  it('reports no figure for no samples', () => {
    const empty = percentiles([])
    expect(empty.samples).toBe(0)
    expect(Number.isNaN(empty.p50) && Number.isNaN(empty.p99)).toBe(true)
    expect(JSON.parse(JSON.stringify(empty))).toEqual({ p50: null, p99: null, max: null, samples: 0 })
  })
})
