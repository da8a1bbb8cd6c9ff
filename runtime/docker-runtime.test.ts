// The Docker runtime against the real engine (started by scripts/install-runtime-deps.sh) with a
// busybox image built here: the port's compliance suite, what only containers show (limits seen
// from inside, images, container clean-up, an engine that is not there), and CRIU checkpoints
// through the engine: a counting container is dumped, and a new container goes on counting (from links to the images, or from copies when the engine cannot follow them).
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connectDocker, dockerSocketPath, probeDockerEngine } from './docker-engine.ts'
import { DockerRuntime, type DockerRuntimeInit } from './docker-runtime.ts'
import { probeCriu } from './criu.ts'
import { RuntimeUnavailableError, type RuntimeLogger } from './runtime.ts'
import { busyboxImage, ensureBusyboxImage } from './testing/busybox-image.ts'
import { assertConsecutive, countingExitCode, countingScript, countsIn, waitForCounts } from './testing/counting.ts'
import { criuMissing, requirementGate } from './testing/requirements.ts'
import { collect, describeRuntimeCompliance, freshJobId } from './testing/runtime-compliance.ts'

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const stopGraceMs = 300
const socketPath = dockerSocketPath()
const engine = await probeDockerEngine(socketPath)
const gate = requirementGate('Docker runtime tests', [engine.available ? undefined : `no Docker engine: ${engine.reason}`])
const criu = await probeCriu()
const checkpointGate = requirementGate('Docker checkpoint tests', [
  ...gate.missing,
  engine.available && !engine.experimental ? 'the engine runs without experimental features' : undefined,
  criuMissing(criu),
])

const made: { runtime: DockerRuntime; dataDir: string }[] = []
async function makeRuntime(extra: Partial<DockerRuntimeInit> = {}, logger: RuntimeLogger = silent): Promise<{ runtime: DockerRuntime; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fabric-docker-'))
  const runtime = new DockerRuntime({ dataDir, networkMode: 'none', defaultImage: busyboxImage, ...extra, limits: { stopGraceMs, ...extra.limits } }, { logger })
  const entry = { runtime, dataDir }
  made.push(entry)
  return entry
}
async function cleanupAll(): Promise<void> {
  for (const { runtime, dataDir } of made.splice(0)) {
    await runtime.close()
    expect(await runtime.containers()).toEqual([]) // nothing of ours left in the engine
    await rm(dataDir, { recursive: true, force: true })
  }
}

describe.skipIf(gate.skip)(`docker runtime${gate.note}`, () => {
  beforeAll(async () => {
    await ensureBusyboxImage(connectDocker(socketPath))
  }, 120_000)

  describeRuntimeCompliance('docker runtime', async () => {
    const { runtime, dataDir } = await makeRuntime()
    return {
      runtime,
      workDir: (jobId) => join(runtime.jobDir(jobId), 'work'),
      stopGraceMs,
      async cleanup() {
        await cleanupAll()
        await rm(dataDir, { recursive: true, force: true })
      },
    }
  })

  describe('containers', () => {
    afterEach(cleanupAll)

    it('gives the job its env, and the limits it asked for are the container cgroup limits', async () => {
      const { runtime } = await makeRuntime()
      const jobId = freshJobId('limits')
      const script = 'echo "$GREETING $FABRIC_JOB_ID"; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; pwd'
      const handle = await runtime.start({ jobId, command: ['/bin/sh', '-c', script], env: { GREETING: 'hello' }, resources: { memoryMiB: 64, cpuMillis: 500 } })
      expect(handle.isolation).toEqual({ mode: 'container' })
      expect(handle.limits).toMatchObject({ enforced: true, requested: { memoryMiB: 64, cpuMillis: 500 } })
      expect((await handle.exited).state).toBe('exited')
      const [greeting, memory, quota, period, cwd] = (await collect(runtime.logs(jobId))).trim().split('\n')
      expect(greeting).toBe(`hello ${jobId}`)
      expect(Number(memory)).toBe(64 * 2 ** 20)
      expect(Number(quota) / Number(period)).toBe(0.5)
      expect(cwd).toBe('/fabric/work')
    })

    it('refuses an image the node does not have (no pull), naming it', async () => {
      const { runtime } = await makeRuntime()
      await expect(runtime.start({ jobId: freshJobId('noimage'), command: ['true'], image: 'fabric-test/not-here:0' })).rejects.toMatchObject({
        name: 'SpawnFailedError',
        reason: expect.stringMatching(/fabric-test\/not-here:0 is not on this node/),
      })
      await expect(runtime.start({ jobId: freshJobId('nocommand'), command: ['/no/such/binary'] })).rejects.toMatchObject({ name: 'SpawnFailedError' })
    })

    it('asks the engine for the NVIDIA GPU it was given, and a node without the NVIDIA toolkit refuses with the engine\'s reason', async () => {
      const { runtime } = await makeRuntime()
      await expect(runtime.start({ jobId: freshJobId('gpu'), command: ['true'], resources: { gpuCount: 1, gpuDevices: [0] } })).rejects.toMatchObject({
        name: 'SpawnFailedError',
        reason: expect.stringMatching(/nvidia|gpu/i),
      })
    })

    it('reports at exit what the container used, from the engine\'s stats (CPU a lower bound: the last sample)', async () => {
      const { runtime } = await makeRuntime()
      // 50 MiB in the container's tmpfs (charged to its memory group), then about three seconds of forks.
      const script = 'head -c 52428800 /dev/zero > /dev/shm/fill; end=$(( $(date +%s) + 3 )); while [ $(date +%s) -lt $end ]; do :; done'
      const handle = await runtime.start({ jobId: freshJobId('usage'), command: ['/bin/sh', '-c', script], resources: { memoryMiB: 256 } })
      const { usage } = await handle.exited
      expect(usage.wallMs).toBeGreaterThanOrEqual(2_000)
      expect(usage.peakMemoryBytes).toBeGreaterThanOrEqual(40 * 2 ** 20)
      expect(usage.cpuSeconds).toBeGreaterThanOrEqual(0.2)
    }, 30_000)

    it('removes each container once its exit and logs are recorded', async () => {
      const { runtime } = await makeRuntime()
      const handle = await runtime.start({ jobId: freshJobId('gone'), command: ['/bin/sh', '-c', 'echo bye'] })
      await handle.exited
      expect(await runtime.containers()).toEqual([])
    })
  })

  describe.skipIf(checkpointGate.skip)(`checkpoints through the engine${checkpointGate.note}`, () => {
    afterEach(cleanupAll)

    it('dumps a counting container and restores it into a new container on a fresh runtime: the count goes on, then the exit status comes through', async () => {
      const source = await makeRuntime()
      const jobId = freshJobId('dcount')
      const handle = await source.runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript], resources: { memoryMiB: 64 } })
      const sourceLog = (): Promise<string> => readFile(join(source.runtime.jobDir(jobId), 'stdout.log'), 'utf8')
      await waitForCounts(sourceLog, 10, 20_000)
      const imagesDir = await mkdtemp(join(tmpdir(), 'fabric-docker-images-'))
      try {
        const dumpStartedMs = Date.now()
        await source.runtime.checkpoint(jobId, join(imagesDir, 'one'))
        const dumpMs = Date.now() - dumpStartedMs
        expect(await handle.exited).toMatchObject({ state: 'stopped', reason: 'checkpointed' })
        expect(existsSync(join(imagesDir, 'one', 'criu', 'inventory.img'))).toBe(true)
        const lastBefore = assertConsecutive(countsIn(await sourceLog()), 0)
        // Another node: its own runtime and data folder; the source's are gone.
        await source.runtime.close()
        await rm(source.dataDir, { recursive: true, force: true })
        const events: { event: string; fields: Record<string, unknown> }[] = []
        const target = await makeRuntime({}, { ...silent, info: (event, fields = {}) => events.push({ event, fields }), warn: (event, fields = {}) => events.push({ event, fields }) })
        const restoreStartedMs = Date.now()
        const restored = await target.runtime.restore(jobId, join(imagesDir, 'one'))
        const restoreMs = Date.now() - restoreStartedMs
        // The engine got links to the images, not copies, and they worked the first time.
        expect(events.find((entry) => entry.event === 'job-restored')?.fields).toMatchObject({ imagesBy: 'link', stepsMs: { link: expect.any(Number), start: expect.any(Number) } })
        expect(events.map((entry) => entry.event)).not.toContain('restore-from-links-failed')
        const targetLog = (): Promise<string> => collect(target.runtime.logs(jobId))
        const after = await waitForCounts(targetLog, 10, 20_000)
        assertConsecutive(after, lastBefore + 1)
        console.info(`docker runtime: checkpoint ${dumpMs} ms, restore ${restoreMs} ms (counter at ${lastBefore})`)
        await writeFile(join(target.runtime.jobDir(jobId), 'work', 'finish'), '')
        expect(await restored.exited).toMatchObject({ state: 'failed', exitCode: countingExitCode })
        assertConsecutive(countsIn(await targetLog()), lastBefore + 1)
      } finally {
        await rm(imagesDir, { recursive: true, force: true })
      }
    })

    it('falls back to copies in a fresh container when the engine cannot follow the links, and the count goes on', async () => {
      const source = await makeRuntime()
      const jobId = freshJobId('dcopy')
      await source.runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript], resources: { memoryMiB: 64 } })
      const sourceLog = (): Promise<string> => readFile(join(source.runtime.jobDir(jobId), 'stdout.log'), 'utf8')
      await waitForCounts(sourceLog, 5, 20_000)
      const imagesDir = await mkdtemp(join(tmpdir(), 'fabric-docker-images-'))
      try {
        await source.runtime.checkpoint(jobId, join(imagesDir, 'one'))
        const lastBefore = assertConsecutive(countsIn(await sourceLog()), 0)
        // Absolute links: CRIU opens some images after entering the container's root, where they lead nowhere.
        const absoluteLinks = async (from: string, to: string): Promise<void> => {
          await mkdir(to)
          for (const name of await readdir(from)) await symlink(join(from, name), join(to, name))
        }
        const events: { event: string; fields: Record<string, unknown> }[] = []
        const logger = { ...silent, info: (event: string, fields: Record<string, unknown> = {}) => events.push({ event, fields }), warn: (event: string, fields: Record<string, unknown> = {}) => events.push({ event, fields }) }
        const dataDir = await mkdtemp(join(tmpdir(), 'fabric-docker-'))
        const target = new DockerRuntime({ dataDir, networkMode: 'none', defaultImage: busyboxImage, limits: { stopGraceMs } }, { logger, linkImages: absoluteLinks })
        made.push({ runtime: target, dataDir })
        const restored = await target.restore(jobId, join(imagesDir, 'one'))
        expect(events.map((entry) => entry.event)).toContain('restore-from-links-failed')
        expect(events.find((entry) => entry.event === 'job-restored')?.fields).toMatchObject({ imagesBy: 'copy', stepsMs: { copy: expect.any(Number), startFromCopy: expect.any(Number) } })
        // The failed container is gone: only the restored one is left.
        expect(await target.containers()).toHaveLength(1)
        const targetLog = (): Promise<string> => collect(target.logs(jobId))
        assertConsecutive(await waitForCounts(targetLog, 5, 20_000), lastBefore + 1)
        await writeFile(join(target.jobDir(jobId), 'work', 'finish'), '')
        expect(await restored.exited).toMatchObject({ state: 'failed', exitCode: countingExitCode })
      } finally {
        await rm(imagesDir, { recursive: true, force: true })
      }
    })

    it('checkpoints with leaveRunning and the container counts on; the directory must be empty', async () => {
      const { runtime, dataDir } = await makeRuntime()
      const jobId = freshJobId('dperiodic')
      await runtime.start({ jobId, command: ['/bin/sh', '-c', countingScript] })
      const log = (): Promise<string> => collect(runtime.logs(jobId))
      await waitForCounts(log, 3, 20_000)
      await runtime.checkpoint(jobId, join(dataDir, 'first'), { leaveRunning: true })
      const atFirst = countsIn(await log()).length
      await waitForCounts(log, atFirst + 5, 20_000)
      expect((await runtime.inspect(jobId)).state).toBe('running')
      await expect(runtime.checkpoint(jobId, join(dataDir, 'first'))).rejects.toMatchObject({ name: 'CheckpointFailedError' })
      // A damaged checkpoint: the engine's reason comes back, and no container is left behind (checked after each test).
      await runtime.stop(jobId, 'done', { graceMs: 0 })
      await rm(join(dataDir, 'first', 'criu', 'pstree.img'))
      await expect(runtime.restore(jobId, join(dataDir, 'first'))).rejects.toMatchObject({ name: 'CheckpointFailedError', operation: 'restore' })
    })
  })
})

describe('docker runtime without an engine', () => {
  it('says which socket has no engine, in a RuntimeUnavailableError, and engine() reports it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-docker-none-'))
    const runtime = new DockerRuntime({ dataDir, socketPath: join(dataDir, 'no-docker.sock') }, { logger: silent })
    try {
      await expect(runtime.start({ jobId: freshJobId('nowhere'), command: ['true'], image: 'x' })).rejects.toThrow(RuntimeUnavailableError)
      await expect(runtime.start({ jobId: freshJobId('nowhere'), command: ['true'], image: 'x' })).rejects.toMatchObject({ endpoint: join(dataDir, 'no-docker.sock'), reason: expect.stringMatching(/does not exist/) })
      expect(await runtime.engine()).toMatchObject({ available: false })
    } finally {
      await runtime.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
