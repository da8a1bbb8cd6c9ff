// A mesh whose voters sit in different regions (80-200 ms links, 160-400 ms round trips) with no
// faults: the election timeout follows the measured round trips (consensus/election-timing.ts), so
// a leader becomes ready, holds its lease and places jobs. With T fixed at 150 ms no leader stayed
// ready: votes and lease acks came back after the timeout, and no replica finished.
import { describe, expect, it } from 'vitest'
import { defaultSimOptions, runSeed, summarize, type SimOptions } from './index.ts'

const wideArea: SimOptions = {
  ...defaultSimOptions,
  nodes: 10,
  voters: 5,
  durationMs: 20_000,
  ratePerSecond: 3,
  faults: [],
  linkLatencyMinMs: 80,
  linkLatencyMaxMs: 200,
}

describe('simulation across regions', () => {
  it('elects a leader that places jobs on 80-200 ms links with the default 150 ms lower bound (seed 1, 20 virtual s)', () => {
    expect(wideArea.electionTimeoutMs).toBe(150)
    const result = runSeed(wideArea, 1)
    const report = summarize(wideArea, [result], 0)
    expect(report.violations.map((violation) => `${violation.invariant}: ${violation.detail}`)).toEqual([])
    expect(report.leaderChanges).toBeGreaterThan(0)
    expect(report.replicasFinished).toBeGreaterThan(0)
    expect(report.replicasFinished).toBeGreaterThan(report.replicasSubmitted / 2)
  }, 180_000)
})
