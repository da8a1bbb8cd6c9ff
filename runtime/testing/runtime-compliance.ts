// The Runtime port's acceptance suite: every adapter (process now, Docker later) runs it against a
// real engine. Jobs are POSIX shell scripts so a busybox image can run them too. No fixed sleeps in
// the tests: they wait for conditions (files, exits), each wait bounded.
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { asJobId, type JobId } from '../../consensus/index.ts'
import { monotonicNowMs } from '../lease-watchdog.ts'
import { JobAlreadyRunningError, JobNotFoundError, LeaseLapsedError, leaseLapsedReason, logLines, type JobExit, type LogChunk, type LogOptions, type Runtime } from '../runtime.ts'

export interface RuntimeUnderTest {
  runtime: Runtime
  /** The host folder that is the job's working directory (the test drops trigger files there). */
  workDir(jobId: JobId): string
  /** Grace period the runtime was configured with (timeouts are checked against it). */
  stopGraceMs: number
  cleanup(): Promise<void>
}

/** Polls `condition` until it holds; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export async function collect(chunks: AsyncIterable<LogChunk>): Promise<string> {
  let text = ''
  for await (const chunk of chunks) text += chunk.text
  return text
}

/** Resolves once CLOCK_MONOTONIC reaches `atMs` (a lease test has to let real deadlines pass). */
export function untilMonotonic(atMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - monotonicNowMs())))
}

let counter = 0
export const freshJobId = (label: string): JobId => asJobId(`${label}-${process.pid}-${(counter += 1)}`)

export function describeRuntimeCompliance(name: string, create: () => Promise<RuntimeUnderTest>): void {
  describe(`Runtime port compliance: ${name}`, () => {
    let subject: RuntimeUnderTest
    beforeEach(async () => {
      subject = await create()
    })
    afterEach(async () => {
      await subject.cleanup()
    })

    it("returns a job's stdout and stderr through logs", async () => {
      const jobId = freshJobId('hello')
      const handle = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'echo hello; echo oops >&2; echo world'] })
      const exit = await handle.exited
      expect(exit).toMatchObject({ state: 'exited', exitCode: 0 })
      expect(await collect(subject.runtime.logs(jobId))).toBe('hello\nworld\n')
      expect(await collect(subject.runtime.logs(jobId, { stream: 'stderr' }))).toBe('oops\n')
      const lines: string[] = []
      for await (const { stream, line } of logLines(subject.runtime.logs(jobId, { stream: 'both' }))) lines.push(`${stream}:${line}`)
      expect(lines.sort()).toEqual(['stderr:oops', 'stdout:hello', 'stdout:world'])
    })

    it('reports exit code 3 as failed with code 3, to inspect and to exit listeners', async () => {
      const jobId = freshJobId('three')
      const heard: JobExit[] = []
      const unsubscribe = subject.runtime.onExit((exit) => heard.push(exit))
      const handle = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'exit 3'] })
      const exit = await handle.exited
      unsubscribe()
      expect(exit).toMatchObject({ jobId, state: 'failed', exitCode: 3 })
      expect(heard).toEqual([exit])
      const inspection = await subject.runtime.inspect(jobId)
      expect(inspection).toMatchObject({ state: 'failed', exitCode: 3, pid: handle.pid })
      expect(inspection.endedAtMs).toBeGreaterThanOrEqual(inspection.startedAtMs)
    })

    it('ends a job that outlives its timeout and reports the timeout', async () => {
      const jobId = freshJobId('timeout')
      const startedMs = Date.now()
      const handle = await subject.runtime.start({ jobId, command: ['sleep', '1000'], timeoutMs: 200 })
      const exit = await handle.exited
      expect(exit).toMatchObject({ state: 'failed', reason: 'timeout' })
      expect(exit.exitCode).toBeGreaterThan(128) // ended by a signal
      expect(Date.now() - startedMs).toBeLessThan(200 + subject.stopGraceMs + 5_000)
      expect(await subject.runtime.inspect(jobId)).toMatchObject({ state: 'failed', reason: 'timeout' })
    })

    it('stops a running job on request and reports it stopped with the reason', async () => {
      const jobId = freshJobId('stop')
      const handle = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'echo up > up; exec sleep 1000'] })
      await waitFor(() => existsSync(join(subject.workDir(jobId), 'up')), 5_000, 'the job to come up')
      expect((await subject.runtime.inspect(jobId)).state).toBe('running')
      const exit = await subject.runtime.stop(jobId, 'operator asked')
      expect(exit).toMatchObject({ state: 'stopped', reason: 'operator asked' })
      expect(await handle.exited).toEqual(exit)
      expect(await subject.runtime.stop(jobId, 'again')).toEqual(exit) // stopping an ended job is a no-op
    })

    it('delivers, in follow mode, lines written after the call, and ends when the job does', async () => {
      const jobId = freshJobId('follow')
      const script = 'while [ ! -e go ]; do sleep 0.02; done; echo after-1; echo after-2 >&2; echo after-3'
      const handle = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', script] })
      const options: LogOptions = { follow: true, stream: 'both' }
      const following = (async () => {
        const lines: string[] = []
        for await (const { line } of logLines(subject.runtime.logs(jobId, options))) lines.push(line)
        return lines
      })()
      // Nothing can be in the logs yet: the job writes only once `go` exists.
      expect(await collect(subject.runtime.logs(jobId, { stream: 'both' }))).toBe('')
      await writeFile(join(subject.workDir(jobId), 'go'), '')
      expect((await following).sort()).toEqual(['after-1', 'after-2', 'after-3'])
      expect((await handle.exited).state).toBe('exited')
    })

    it('refuses to start a job id that is already running', async () => {
      const jobId = freshJobId('twice')
      const handle = await subject.runtime.start({ jobId, command: ['sleep', '1000'] })
      await expect(subject.runtime.start({ jobId, command: ['sleep', '1000'] })).rejects.toThrow(JobAlreadyRunningError)
      await expect(subject.runtime.start({ jobId, command: ['sleep', '1000'] })).rejects.toMatchObject({ name: 'JobAlreadyRunningError', jobId, pid: handle.pid })
      await subject.runtime.stop(jobId, 'test over', { graceMs: 0 })
      // Once ended, the same id may run again (the core's retry).
      const again = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'exit 0'] })
      expect((await again.exited).state).toBe('exited')
    })

    it("ends every job once the node's lease lapses, not while it is renewed, and says why", async () => {
      const jobId = freshJobId('lease')
      const handle = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'echo up > up; exec sleep 1000'] })
      await waitFor(() => existsSync(join(subject.workDir(jobId), 'up')), 10_000, 'the job to come up')
      const firstDeadlineMs = monotonicNowMs() + 400
      subject.runtime.setLeaseDeadline(firstDeadlineMs)
      await untilMonotonic(firstDeadlineMs - 200)
      const renewedDeadlineMs = monotonicNowMs() + 400
      subject.runtime.setLeaseDeadline(renewedDeadlineMs) // renewed before it lapsed
      await untilMonotonic(firstDeadlineMs + 100)
      expect((await subject.runtime.inspect(jobId)).state).toBe('running')
      expect(monotonicNowMs()).toBeLessThan(renewedDeadlineMs) // the check above came in time to mean something
      const exit = await handle.exited
      expect(monotonicNowMs()).toBeGreaterThanOrEqual(renewedDeadlineMs)
      expect(exit).toMatchObject({ jobId, state: 'stopped', reason: leaseLapsedReason, exitCode: 137, signal: 'SIGKILL' })
      expect(await subject.runtime.inspect(jobId)).toMatchObject({ state: 'stopped', reason: leaseLapsedReason })
    })

    it('kills every job at once when the lease is withdrawn (null), and starts nothing until a lease holds again', async () => {
      const jobId = freshJobId('nolease')
      const handle = await subject.runtime.start({ jobId, command: ['sleep', '1000'] })
      subject.runtime.setLeaseDeadline(null)
      expect(await handle.exited).toMatchObject({ state: 'stopped', reason: leaseLapsedReason })
      await expect(subject.runtime.start({ jobId: freshJobId('refused'), command: ['sleep', '1000'] })).rejects.toThrow(LeaseLapsedError)
      subject.runtime.setLeaseDeadline(monotonicNowMs() + 60_000)
      const again = await subject.runtime.start({ jobId, command: ['/bin/sh', '-c', 'exit 0'] })
      expect((await again.exited).state).toBe('exited')
    })

    it('answers an unknown job id with JobNotFoundError everywhere', async () => {
      const jobId = asJobId('never-started')
      await expect(subject.runtime.inspect(jobId)).rejects.toThrow(JobNotFoundError)
      await expect(subject.runtime.stop(jobId, 'why')).rejects.toMatchObject({ name: 'JobNotFoundError', jobId })
      await expect(collect(subject.runtime.logs(jobId))).rejects.toThrow(JobNotFoundError)
      await expect(subject.runtime.checkpoint(jobId, '/tmp/nowhere')).rejects.toThrow(JobNotFoundError)
    })
  })
}
