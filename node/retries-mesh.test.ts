// Integration: retries with real daemons (two Shuttle processes on loopback, the process runtime).
// A job whose command fails on its first run (it leaves a marker file, and passes once the marker
// is there) is run again and succeeds; `fabric job` shows "attempt 2 of 3", the failed attempt
// with its exit code, and what each run used, in text and in --json.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import type { JobDetail } from './client-wire.ts'
import { runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const leaderTimeoutMs = 20_000
/** Two runs of a short job, each placed by an auction and reported back through the leader. */
const jobTimeoutMs = 30_000

const resources = testResources()

describe('retries on a mesh of two Shuttle processes', () => {
  it('runs a job again after its first run fails, and reports both attempts', async () => {
    const marks = await resources.tempDir('fabric-retry-marks-')
    const mesh = await resources.startLocalMesh({ nodes: 2, voters: 2, cpuMillis: 2000, memoryMiB: 2048 })
    const leader = await mesh.waitForLeader(leaderTimeoutMs)
    const follower = mesh.daemons.find((daemon) => daemon !== leader)!
    const host = await resources.clientHost()
    const job = (jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(follower.address), { kind: 'job', jobId })

    // The first run finds no marker: it leaves one and fails with 3. The second finds it and succeeds.
    const marker = join(marks, 'tried')
    const script = `echo run >> ${join(marks, 'runs')}; if [ -f ${marker} ]; then echo second; exit 0; fi; touch ${marker}; echo first; exit 3`
    const spec = JSON.stringify({ name: 'flaky', command: ['sh', '-c', script], resources: { cpu: '250m', memory: '64Mi' }, retries: 2 })
    const { jobId } = await clientCall(host, multiaddr(follower.address), { kind: 'submit', spec })

    const done = await poll(() => job(jobId), (detail) => detail.state === 'finished' || detail.state === 'failed', jobTimeoutMs, 'the job to end')
    expect(await readFile(join(marks, 'runs'), 'utf8')).toBe('run\nrun\n')
    expect(done.state).toBe('finished')
    expect(done.archived).toBe(false) // it leaves the document 5 s after it ended
    expect(done.attempts).toEqual([{ replica: jobId, attempt: 2, of: 3, failed: [expect.objectContaining({ attempt: 1, exitCode: 3, usage: expect.objectContaining({ wallMs: expect.any(Number) }) })] }])
    const finished = done.runs.find((run) => run.state === 'finished')!
    expect(finished.usage).toMatchObject({ wallMs: expect.any(Number) })
    // Two different assignments ran: the retry is a new one.
    const [failure] = done.attempts![0]!.failed
    expect([finished.term, finished.seq]).not.toEqual([failure!.term, failure!.seq])

    const text = await runCli(['job', jobId, '--node', follower.address])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/attempts +attempt 2 of 3/)
    expect(text.stdout).toMatch(/attempt 1 failed on \S+: exit 3/)
    expect(text.stdout).toMatch(/finished, exit 0, .*used .*wall \d+\.\d\d s/)
    const json = await runCli(['job', jobId, '--json', '--node', follower.address])
    expect(JSON.parse(json.stdout)).toMatchObject({ attempts: [{ attempt: 2, of: 3, failed: [{ exitCode: 3 }] }] })
  }, 90_000)
})
