// CRIU checkpoints of the process runtime, with real CRIU and real processes: a job that counts in
// memory is dumped, its process tree is gone, and the restored job goes on from the next number,
// in place and on a "new machine" (another runtime, another data folder, the old one deleted).
// Refusals come before CRIU runs. Skipped only where this machine cannot checkpoint at all (not
// root, no CRIU 4.x): loudly, and never in a run that requires the runtimes (scripts/test.sh).
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { isDead } from './isolation.ts'
import { ProcessRuntime, type JobExit } from './index.ts'
import { probeCriu } from './criu.ts'
import { probePidNamespace } from './isolation.ts'
import { assertConsecutive, countingExitCode, countingScript, countsIn, waitForCounts } from './testing/counting.ts'
import { collect, freshJobId, waitFor } from './testing/runtime-compliance.ts'
import { criuMissing, requirementGate } from './testing/requirements.ts'

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const namespace = await probePidNamespace()
const criu = await probeCriu()
const gate = requirementGate('CRIU checkpoints of the process runtime', [
  namespace.available ? undefined : `no PID namespaces: ${namespace.reason}`,
  criuMissing(criu),
])

const made: { runtime: ProcessRuntime; dataDir: string }[] = []
async function makeRuntime(): Promise<{ runtime: ProcessRuntime; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fabric-criu-'))
  const entry = { runtime: new ProcessRuntime({ dataDir, limits: { stopGraceMs: 300 } }, { logger: silent }), dataDir }
  made.push(entry)
  return entry
}

afterEach(async () => {
  for (const { runtime, dataDir } of made.splice(0)) {
    await runtime.close()
    await rm(dataDir, { recursive: true, force: true })
  }
})

describe.skipIf(gate.skip)(`process runtime checkpoints${gate.note}`, () => {
  it('dumps a counting job, ends it, and restores it in place: the count goes on with no gap or repeat', async () => {
    const { runtime, dataDir } = await makeRuntime()
    const jobId = freshJobId('count')
    const handle = await runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript] })
    const stdout = (): Promise<string> => readFile(join(runtime.jobDir(jobId), 'stdout.log'), 'utf8')
    await waitForCounts(stdout, 10, 10_000)
    const imagesDir = join(dataDir, 'checkpoint')
    const dumpStartedMs = Date.now()
    await runtime.checkpoint(jobId, imagesDir)
    const dumpMs = Date.now() - dumpStartedMs
    const exit = await handle.exited
    expect(exit).toMatchObject({ state: 'stopped', reason: 'checkpointed' })
    expect(await isDead(handle.pid)).toBe(true)
    // The dump's SIGKILL makes unshare complain: that goes to launcher.log, not into the job's own stderr.
    expect(await readFile(join(runtime.jobDir(jobId), 'stderr.log'), 'utf8')).toBe('')
    const atDump = countsIn(await stdout())
    const lastBefore = assertConsecutive(atDump, 0)
    // Nothing counts while it is dumped: the log stays as it was.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(countsIn(await stdout())).toEqual(atDump)
    expect(existsSync(join(imagesDir, 'criu', 'inventory.img'))).toBe(true)
    expect(existsSync(join(imagesDir, 'fabric-checkpoint.json'))).toBe(true)

    const restoreStartedMs = Date.now()
    const restored = await runtime.restore(jobId, imagesDir)
    const restoreMs = Date.now() - restoreStartedMs
    expect(restored.isolation.mode).toBe('pid-namespace')
    expect((await runtime.inspect(jobId)).state).toBe('running')
    const after = await waitForCounts(stdout, atDump.length + 10, 10_000)
    expect(assertConsecutive(after, 0)).toBeGreaterThan(lastBefore + 9)
    console.info(`process runtime: dump ${dumpMs} ms, restore ${restoreMs} ms (counter at ${lastBefore})`)
    const stopped = await runtime.stop(jobId, 'test over')
    expect(stopped).toMatchObject({ state: 'stopped', reason: 'test over' })
  })

  it('restores on another runtime with its own data folder after the first one is gone, and reports the exit status the job ends with', async () => {
    const source = await makeRuntime()
    const jobId = freshJobId('migrate')
    const handle = await source.runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript], resources: { memoryMiB: 64 } })
    const sourceLog = (): Promise<string> => readFile(join(source.runtime.jobDir(jobId), 'stdout.log'), 'utf8')
    await waitForCounts(sourceLog, 5, 10_000)
    const imagesDir = await mkdtemp(join(tmpdir(), 'fabric-criu-images-'))
    try {
      await source.runtime.checkpoint(jobId, join(imagesDir, 'one'))
      await handle.exited
      const lastBefore = assertConsecutive(countsIn(await sourceLog()), 0)
      // The source machine is gone: runtime, data folder and all.
      await source.runtime.close()
      await rm(source.dataDir, { recursive: true, force: true })

      const target = await makeRuntime()
      const restored = await target.runtime.restore(jobId, join(imagesDir, 'one'))
      const targetLog = (): Promise<string> => collect(target.runtime.logs(jobId))
      const after = await waitForCounts(targetLog, 10, 10_000)
      assertConsecutive(after, lastBefore + 1)
      // The restored tree runs inside the new job's own cgroup, with the spec's limit.
      const inspection = await target.runtime.inspect(jobId)
      expect(inspection.limits.requested).toEqual({ memoryMiB: 64 })
      if (inspection.limits.enforced) expect(inspection.usage?.memoryBytes).toBeGreaterThan(0)
      // Its working folder is the target's own: the trigger file written there ends it.
      await writeFile(join(target.runtime.jobDir(jobId), 'work', 'finish'), '')
      const exit: JobExit = await restored.exited
      expect(exit).toMatchObject({ state: 'failed', exitCode: countingExitCode, signal: null })
      assertConsecutive(countsIn(await targetLog()), lastBefore + 1)
      expect(existsSync(source.runtime.jobDir(jobId))).toBe(false) // the old path was only a link while CRIU restored
    } finally {
      await rm(imagesDir, { recursive: true, force: true })
    }
  })

  it('leaves the job running with leaveRunning, and a second checkpoint can follow', async () => {
    const { runtime, dataDir } = await makeRuntime()
    const jobId = freshJobId('periodic')
    await runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript] })
    const stdout = (): Promise<string> => collect(runtime.logs(jobId))
    await waitForCounts(stdout, 3, 10_000)
    await runtime.checkpoint(jobId, join(dataDir, 'first'), { leaveRunning: true })
    const atFirst = countsIn(await stdout()).length
    await waitForCounts(stdout, atFirst + 3, 10_000) // still counting
    await runtime.checkpoint(jobId, join(dataDir, 'second'), { leaveRunning: true })
    expect((await runtime.inspect(jobId)).state).toBe('running')
    await expect(runtime.checkpoint(jobId, join(dataDir, 'second'))).rejects.toMatchObject({ name: 'CheckpointFailedError', operation: 'checkpoint' }) // not empty
    // A damaged checkpoint: the restore fails with CRIU's reason and where its log is.
    await runtime.stop(jobId, 'done', { graceMs: 0 })
    await rm(join(dataDir, 'first', 'criu', 'pstree.img'))
    const failure = await runtime.restore(jobId, join(dataDir, 'first')).catch((error: unknown) => error)
    expect(failure).toMatchObject({ name: 'CheckpointFailedError', operation: 'restore', logPath: expect.stringMatching(/restore\.log$/) })
    expect((await runtime.inspect(jobId)).state).not.toBe('running')
  })

  it('refuses, before CRIU runs, a job that uses io_uring, and the job runs on', async () => {
    const { runtime, dataDir } = await makeRuntime()
    const jobId = freshJobId('uring')
    // libuv gives Node an io_uring instance when asked to.
    const script = "require('fs').readFile('/etc/hostname', () => require('fs').writeFileSync('ready', '')); setInterval(() => {}, 1000)"
    await runtime.start({ jobId, command: [process.execPath, '-e', script], env: { UV_USE_IO_URING: '1' } })
    await waitFor(() => existsSync(join(runtime.jobDir(jobId), 'work', 'ready')), 10_000, 'node to start')
    await expect(runtime.checkpoint(jobId, join(dataDir, 'uring'))).rejects.toMatchObject({ name: 'CheckpointUnsupportedError', reason: expect.stringMatching(/io_uring/) })
    expect(existsSync(join(dataDir, 'uring'))).toBe(false)
    expect((await runtime.inspect(jobId)).state).toBe('running')
  })

  it('refuses a job without its own PID namespace, and a restore from a folder that is no checkpoint', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-criu-'))
    const runtime = new ProcessRuntime({ dataDir, pidNamespace: 'off', limits: { stopGraceMs: 300 } }, { logger: silent })
    made.push({ runtime, dataDir })
    const jobId = freshJobId('flat')
    await runtime.start({ jobId, command: ['sleep', '1000'] })
    await expect(runtime.checkpoint(jobId, join(dataDir, 'flat'))).rejects.toMatchObject({ name: 'CheckpointUnsupportedError', reason: expect.stringMatching(/PID namespace/) })
    const other = freshJobId('nothing')
    await expect(runtime.restore(other, dataDir)).rejects.toMatchObject({ name: 'CheckpointFailedError', operation: 'restore' })
  })
})
