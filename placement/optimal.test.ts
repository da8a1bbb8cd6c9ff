// Proves the auction's allocations are near cost-optimal where they should be: on an
// uncongested fleet, a lowest_cost workload costs within 5% of the no-contention lower bound;
// and that the bound really is a bound (never above a capacity-respecting greedy placement).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseFleet } from './fleet.ts'
import { costLowerBound, costVsOptimal, greedyReference } from './optimal.ts'
import { placeBatch } from './place-batch.ts'
import { expandWorkload, parseWorkload } from './workload.ts'
import { benchPlacement, syntheticFleet, syntheticJobs } from './bench.ts'

const read = (name: string): string => readFileSync(new URL(`../examples/${name}`, import.meta.url), 'utf8')

describe('cost against the optimum', () => {
  const fleet = parseFleet(read('fleet.yaml'))
  const workload = parseWorkload(read('lowest-cost.yaml'))
  if (!fleet.ok || !workload.ok) throw new Error('examples must parse')

  it('lowest_cost workload on the uncongested example fleet: costVsOptimal <= 1.05', () => {
    // 40 jobs leave room on each class's cheapest nodes (at 60 the cheapest spot nodes fill up).
    const jobs = expandWorkload(workload.workload, 40)
    const result = placeBatch(jobs, fleet.offers)
    expect(result.pending).toEqual([])
    const comparison = costVsOptimal(jobs, result.awards, fleet.offers)
    expect(comparison.jobsCompared).toBe(40)
    expect(comparison.costVsOptimal).toBeGreaterThanOrEqual(1 - 1e-9)
    expect(comparison.costVsOptimal).toBeLessThanOrEqual(1.05)
    // Second-price payments sit at or above the asks.
    expect(comparison.paidPerHour).toBeGreaterThanOrEqual(comparison.awardedCostPerHour - 1e-9)
  })

  it('when the cheapest nodes are congested, the auction stays within 5% of the greedy-with-capacity reference', () => {
    const jobs = expandWorkload(workload.workload, 100)
    const result = placeBatch(jobs, fleet.offers)
    expect(result.pending).toEqual([])
    const comparison = costVsOptimal(jobs, result.awards, fleet.offers)
    const greedy = greedyReference(jobs, fleet.offers)
    expect(comparison.costVsOptimal).toBeGreaterThan(1.2) // congested: the bound is not reachable
    expect(comparison.awardedCostPerHour).toBeLessThanOrEqual(greedy.totalPerHour * 1.05)
  })

  it('the lower bound never exceeds a capacity-respecting greedy placement', () => {
    const offers = syntheticFleet(200, 7)
    const jobs = syntheticJobs(5_000, 7).filter((job) => job.spec.intent !== 'tightly-coupled')
    const greedy = greedyReference(jobs, offers)
    const bound = costLowerBound(jobs, offers)
    expect(greedy.unplaced).toBe(0)
    expect(bound.totalPerHour).toBeLessThanOrEqual(greedy.totalPerHour + 1e-9)
  })
})

describe('benchmark harness', () => {
  it('is deterministic for a seed and accounts for every job', () => {
    const meter = { nowMs: () => performance.now(), heapUsedBytes: () => process.memoryUsage().heapUsed }
    const first = benchPlacement({ nodes: 300, jobs: 20_000, seed: 3, meter })
    const second = benchPlacement({ nodes: 300, jobs: 20_000, seed: 3, meter })
    expect(first.placed + first.unplaceable).toBe(20_000)
    expect({ ...first, wallMs: 0, heapUsedMB: 0, placementsPerSec: 0, decisionsPerSec: 0 }).toEqual({ ...second, wallMs: 0, heapUsedMB: 0, placementsPerSec: 0, decisionsPerSec: 0 })
    expect(first.placed).toBeGreaterThan(0)
    expect(first.placementsPerSec).toBeGreaterThan(0)
  })
})
