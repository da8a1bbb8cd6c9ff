// `fabric demo` is the README's main command (`npm start`): run whole, it must place and run jobs,
// survive the leader's SIGKILL with every job finishing exactly once, and leave no daemon running
// and no data directory behind. Its flags are checked before anything starts.
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { runCli } from '../../node/testing/daemon-process.ts'

const demoTimeoutMs = 180_000

describe('fabric demo', () => {
  it('runs a local mesh through a leader failover and stops everything it started', async () => {
    const result = await runCli(['demo', '--job-seconds', '4'], demoTimeoutMs)
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toMatch(/was elected leader in term \d+/)
    expect(result.stdout).toMatch(/\| hello from job hello-/)
    expect(result.stdout).toMatch(/SIGKILL node-\d, the leader/)
    expect(result.stdout).toMatch(/node-\d leads term \d+, [\d.]+ s after the kill/)
    expect(result.stdout).toMatch(/all 3 jobs in flight at the kill finished, each with exactly one finished run/)
    const pids = [...result.stdout.matchAll(/started node-\d \(pid (\d+)\)/g)].map((match) => Number(match[1]))
    expect(pids).toHaveLength(3)
    for (const pid of pids) expect(() => process.kill(pid, 0), `daemon ${pid} still runs`).toThrow()
    const root = /stopped; removed (\S+)/.exec(result.stdout)?.[1]
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
