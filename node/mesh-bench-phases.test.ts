// The bench's phases offer load as they say: paced is an open loop (a slow mesh does not slow the
// submissions down), saturated never has more than `concurrency` in flight, one at a time has one.
import { describe, expect, it } from 'vitest'
import { timeOneAtATime, timePaced, timeSaturated, type CommitLog, type PhaseContext } from './mesh-bench-phases.ts'

/** A mesh that acknowledges each submission after `ackMs` and commits it at once: counts what is in flight. */
function slowMesh(ackMs: number): { context: PhaseContext; maxInFlight: () => number; submitted: number[] } {
  const committed = new Map<string, number>()
  let inFlight = 0
  let maxInFlight = 0
  const submitted: number[] = []
  const commits: CommitLog = {
    committedAt: (jobId) => committed.get(jobId),
    allCommitted: async (jobIds) => {
      for (const jobId of jobIds) if (!committed.has(jobId)) throw new Error(`${jobId} was never submitted`)
    },
  }
  const submit = async (index: number): Promise<string> => {
    submitted.push(index)
    maxInFlight = Math.max(maxInFlight, ++inFlight)
    await new Promise((resolve) => setTimeout(resolve, ackMs))
    inFlight--
    committed.set(`job-${index}`, performance.now())
    return `job-${index}`
  }
  return { context: { submit, commits, drainTimeoutMs: 1_000 }, maxInFlight: () => maxInFlight, submitted }
}

describe('mesh benchmark phases', () => {
  it('paced: submissions go on their schedule while earlier ones are still unanswered', async () => {
    const mesh = slowMesh(100)
    const times = await timePaced(mesh.context, 0, 10, 200) // one every 5 ms, each answered after 100 ms
    expect(mesh.maxInFlight()).toBeGreaterThanOrEqual(5)
    expect(mesh.submitted).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(times.latenciesMs).toHaveLength(10)
    expect(Math.min(...times.latenciesMs)).toBeGreaterThanOrEqual(90)
  })

  it('saturated: never more than `concurrency` in flight, and every job submitted once', async () => {
    const mesh = slowMesh(5)
    const times = await timeSaturated(mesh.context, 100, 40, 4)
    expect(mesh.maxInFlight()).toBe(4)
    expect([...mesh.submitted].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, index) => 100 + index))
    expect(times.acksMs).toHaveLength(40)
  })

  it('one at a time: one in flight', async () => {
    const mesh = slowMesh(5)
    const times = await timeOneAtATime(mesh.context, 0, 5, 0)
    expect(mesh.maxInFlight()).toBe(1)
    expect(times.latenciesMs).toHaveLength(5)
  })
})
