// `fabric demo` is the README's main command (`npm start`): run whole, it must place and run jobs,
// survive the leader's SIGKILL with every job finishing exactly once, and leave no daemon running
// and no data directory behind. Its flags are checked before anything starts.
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { runCli } from '../../node/testing/daemon-process.ts'
import type { DemoSummary } from '../demo-tour.ts'

const demoTimeoutMs = 180_000

describe('fabric demo', () => {
  it('runs a local mesh through a leader failover and stops everything it started (--json: the tour on stderr, what it saw on stdout)', async () => {
    const result = await runCli(['demo', '--job-seconds', '4', '--json'], demoTimeoutMs)
    const tour = result.stderr
    expect(result.code, `${result.stdout}\n${tour}`).toBe(0)
    expect(tour).toMatch(/was elected leader in term \d+/)
    expect(tour).toMatch(/\| hello from job hello-/)
    expect(tour).toMatch(/SIGKILL node-\d, the leader/)
    expect(tour).toMatch(/node-\d leads term \d+, [\d.]+ s after the kill/)
    expect(tour).toMatch(/all 3 jobs in flight at the kill finished, each with exactly one finished run/)
    const summary = JSON.parse(result.stdout) as DemoSummary
    expect(summary).toMatchObject({ nodes: 3, hello: { jobId: expect.stringMatching(/^hello-/), state: 'finished', exitCode: 0 }, finishedOnce: true })
    expect(summary.failover.term).toBeGreaterThan(summary.killed.term)
    expect(summary.failover.leader).not.toBe(summary.killed.name)
    expect(summary.longJobs.map((job) => job.state)).toEqual(['finished', 'finished', 'finished'])
    const pids = [...tour.matchAll(/started node-\d \(pid (\d+)\)/g)].map((match) => Number(match[1]))
    expect(pids).toHaveLength(3)
    for (const pid of pids) expect(() => process.kill(pid, 0), `daemon ${pid} still runs`).toThrow()
    const root = /stopped; removed (\S+)/.exec(tour)?.[1]
    expect(root).toBeDefined()
    expect(existsSync(root!)).toBe(false)
  }, demoTimeoutMs + 10_000)

  it('refuses a mesh too small to lose its leader, starting nothing', async () => {
    const result = await runCli(['demo', '--nodes', '2'])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/--nodes must be 3 to 7, got 2/)
    expect(result.stdout).toBe('')
  })
})
