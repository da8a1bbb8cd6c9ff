// `fabric bench cli` end to end with one run of each: it starts its one-node mesh, its query finds
// the leader (the bench checks the answer names the node), and it prints the figures it promises.
// No timing is asserted: only that each figure is there and consistent with its samples.
import { describe, expect, it } from 'vitest'
import { runCli } from '../node/testing/daemon-process.ts'
import { median, type CliBenchResult } from './cli-bench.ts'

describe('fabric bench cli', () => {
  it('prints medians of its samples, the goals they are checked against and the machine', async () => {
    const { code, stdout, stderr } = await runCli(['bench', 'cli', '--runs', '1', '--json'], 180_000)
    expect(code, stderr).toBe(0)
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as CliBenchResult
    expect(result).toMatchObject({ bench: 'cli', runs: 1, goals: { helpMs: { goal: 150 }, queryMs: { goal: 400 } } })
    expect(result.helpSamplesMs).toHaveLength(1)
    expect(result.querySamplesMs).toHaveLength(1)
    expect(result.helpMs).toBe(result.helpSamplesMs[0])
    expect(result.queryMs).toBe(result.querySamplesMs[0])
    expect(result.helpMs).toBeGreaterThan(0)
    expect(result.goals.queryMs.met).toBe(result.queryMs <= 400)
    expect(result.machine.cpus).toBeGreaterThan(0)
  }, 200_000)

  it('refuses a run count that is not a positive whole number', async () => {
    const { code, stderr } = await runCli(['bench', 'cli', '--runs', '0'])
    expect(code).toBe(1)
    expect(stderr).toContain('--runs must be at least 1')
  })

  it('takes the middle sample, or the mean of the two middle ones', () => {
    expect(median([30, 10, 20])).toBe(20)
    expect(median([40, 10, 30, 20])).toBe(25)
  })
})
