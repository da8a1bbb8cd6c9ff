// The simulator end to end: the real consensus core under every fault over many seeds, the
// checker catching a deliberately broken core, and exact replay of a seed.
import { describe, expect, it } from 'vitest'
import { allFaults, defaultSimOptions, runSeed, summarize, type SimOptions } from './index.ts'
import { runSeeds } from './parallel.ts'

const chaos: SimOptions = {
  ...defaultSimOptions,
  nodes: 10,
  voters: 5,
  durationMs: 30_000,
  ratePerSecond: 3,
  faults: allFaults,
}

describe('simulation under chaos', () => {
  it('keeps every invariant over 50 seeds with all faults, losing no acknowledged job', async () => {
    const seeds = Array.from({ length: 50 }, (_, index) => 1000 + index)
    const results = await runSeeds(chaos, seeds, 2)
    const report = summarize(chaos, results, 1)
    const firstViolations = report.violations.slice(0, 3).map((v) => `${v.invariant} seed=${v.seed} t=${v.virtualMs}: ${v.detail}`)
    expect(firstViolations).toEqual([])
    expect(report.jobsLost).toBe(0)
    expect(report.maxLeadersPerTerm).toBe(1)
    // The run really exercised the system: jobs flowed, leaders changed, faults hit leaders.
    expect(report.jobsAcknowledged).toBeGreaterThan(50 * 30)
    expect(report.replicasFinished).toBeGreaterThan(report.jobsAcknowledged * 0.8)
    expect(report.leaderChanges).toBeGreaterThan(50)
    expect(results.some((result) => result.failoverMs.length > 0)).toBe(true)
  }, 600_000)

  it('catches a core whose quorum check is disabled (the checker is not blind)', async () => {
    const broken: SimOptions = { ...chaos, broken: 'no-quorum', faults: ['partition', 'crash', 'loss'] }
    const results = await runSeeds(broken, [1, 2, 3, 4], 2)
    const invariants = new Set(results.flatMap((result) => result.violations.map((violation) => violation.invariant)))
    expect(results.every((result) => result.violations.length > 0)).toBe(true)
    expect([...invariants].some((name) => ['commit-needs-majority', 'one-valid-lease', 'one-leader-per-term'].includes(name))).toBe(true)
  }, 300_000)

  // Each planted bug on fixed seeds of the chaos settings above, with the invariant that must catch it.
  // Not every seed catches skip-barrier and reused-origin-seq at these short settings (5 and 7 of
  // seeds 1-10 measured; a 30 s run has about one lag: bench/RESULTS.md): these seeds do, and must
  // go on doing so.
  const planted: { broken: SimOptions['broken']; seeds: number[]; invariants: string[] }[] = [
    { broken: 'uncommitted-start', seeds: [1, 2], invariants: ['start-only-committed'] },
    { broken: 'skip-barrier', seeds: [2, 7], invariants: ['committed-survives-leader-change', 'acknowledged-job-survives'] },
    { broken: 'uncommitted-committee', seeds: [1, 3], invariants: ['committee-agreement'] },
    { broken: 'reused-origin-seq', seeds: [4], invariants: ['ack-needs-majority', 'no-acknowledged-job-lost'] },
  ]
  for (const { broken, seeds, invariants } of planted) {
    it(`catches the planted bug ${broken} (seeds ${seeds.join(', ')}) by ${invariants.join(' or ')}`, async () => {
      // As `fabric sim --broken` runs them: each seed ends at its first violation.
      const results = await runSeeds({ ...chaos, broken, stopAtFirstViolation: true }, seeds, 2)
      for (const result of results) {
        const caught = new Set(result.violations.map((violation) => violation.invariant))
        expect([...caught].filter((name) => invariants.includes(name)), `seed ${result.seed}: ${[...caught].join(', ') || 'no violation'}`).not.toEqual([])
        // Everything it reports was found at the one event it stopped after.
        expect(new Set(result.violations.map((violation) => violation.virtualMs))).toEqual(new Set([Math.round(result.stoppedAtMs ?? -1)]))
        expect(result.virtualSeconds).toBeLessThan(chaos.durationMs / 1000)
      }
    }, 300_000)
  }

  it('replays a seed exactly: the same seed gives the same report', () => {
    const options: SimOptions = { ...chaos, durationMs: 15_000 }
    const first = summarize(options, [runSeed(options, 77)], 0)
    const second = summarize(options, [runSeed(options, 77)], 0)
    expect(second).toEqual(first)
    expect(first.jobsSubmitted).toBeGreaterThan(0)
    const other = summarize(options, [runSeed(options, 78)], 0)
    expect(other.messagesSent).not.toBe(first.messagesSent)
  }, 120_000)

  it('gives the same report on worker threads as in one thread', async () => {
    const options: SimOptions = { ...chaos, durationMs: 10_000 }
    const threaded = summarize(options, await runSeeds(options, [5, 6], 2), 0)
    const inline = summarize(options, await runSeeds(options, [5, 6], 1), 0)
    expect(threaded).toEqual(inline)
  }, 120_000)
})
