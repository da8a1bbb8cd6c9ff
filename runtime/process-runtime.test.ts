// The process runtime against real processes in temporary data folders: the port's compliance suite
// in each isolation mode this machine offers, then what only a process runtime can show (the whole
// process tree ends, PID 1 in the namespace, cgroup limits, its own bounds). Checkpoints have their
// own file (process-checkpoint.test.ts).
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isDead, probeParentDeathSignal, processTree } from './isolation.ts'
import { ProcessRuntime, RuntimeAtCapacityError, SpawnFailedError, InvalidRunSpecError, probePidNamespace, type ProcessRuntimeInit } from './index.ts'
import { collect, describeRuntimeCompliance, freshJobId, waitFor } from './testing/runtime-compliance.ts'
import { probeCgroups } from './cgroups.ts'

const stopGraceMs = 300
const silent = { debug() {}, info() {}, warn() {}, error() {} }

const namespaceSupport = await probePidNamespace()
const parentDeath = await probeParentDeathSignal()
const cgroupProbe = await probeCgroups(`fabric-test-probe-${process.pid}`)
if (cgroupProbe.available) await cgroupProbe.close()

interface Mode { name: string; pidNamespace: 'auto' | 'off'; cgroups: 'auto' | 'off' }
const modes: Mode[] = [
  ...(namespaceSupport.available ? [{ name: 'PID namespace', pidNamespace: 'auto', cgroups: 'auto' } as const] : []),
  ...(cgroupProbe.available ? [{ name: 'process group + cgroups', pidNamespace: 'off', cgroups: 'auto' } as const] : []),
  { name: 'process group only', pidNamespace: 'off', cgroups: 'off' },
]

async function makeRuntime(mode: Mode, extra: Partial<ProcessRuntimeInit> = {}): Promise<{ runtime: ProcessRuntime; dataDir: string; cleanup(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fabric-runtime-'))
  const runtime = new ProcessRuntime({ dataDir, pidNamespace: mode.pidNamespace, cgroups: mode.cgroups, ...extra, limits: { stopGraceMs, ...extra.limits } }, { logger: silent })
  return {
    runtime,
    dataDir,
    async cleanup() {
      await runtime.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

for (const mode of modes) {
  describeRuntimeCompliance(`process runtime, ${mode.name}`, async () => {
    const made = await makeRuntime(mode)
    return { runtime: made.runtime, workDir: (jobId) => join(made.runtime.jobDir(jobId), 'work'), stopGraceMs, cleanup: made.cleanup }
  })

  describe(`process runtime, ${mode.name}`, () => {
    let made: Awaited<ReturnType<typeof makeRuntime>>
    beforeEach(async () => {
      made = await makeRuntime(mode)
    })
    afterEach(async () => {
      await made.cleanup()
    })

    it('reports the isolation it gave the job', async () => {
      const handle = await made.runtime.start({ jobId: freshJobId('isolation'), command: ['/bin/sh', '-c', 'exit 0'] })
      expect(handle.isolation.mode).toBe(mode.pidNamespace === 'auto' ? 'pid-namespace' : 'process-group')
      await handle.exited
    })

    it('stop ends the job and every grandchild (checked by host PID)', async () => {
      const jobId = freshJobId('tree')
      // Two children and a grandchild; each sleeping child records itself so we know the tree is up.
      const script = "sleep 1000 & echo $! >> pids; /bin/sh -c 'sleep 1000 & echo $! >> pids; wait' & wait"
      const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', script] })
      const pidsFile = join(made.runtime.jobDir(jobId), 'work', 'pids')
      await waitFor(() => existsSync(pidsFile) && readFileSync(pidsFile, 'utf8').trim().split('\n').length === 2, 5_000, 'both sleepers to start')
      const tree = await processTree(handle.pid)
      // Leader (sh, or unshare around the namespace's sh), sleep, sh, and the grandchild sleep.
      expect(tree.length).toBeGreaterThanOrEqual(4)
      const exit = await made.runtime.stop(jobId, 'cancelled')
      expect(exit.state).toBe('stopped')
      await waitFor(() => tree.every(isGone), 5_000, `every PID of the tree ${tree.join(',')} to be gone`)
    })

    const contained = mode.pidNamespace === 'auto' || mode.cgroups === 'auto'
    it.skipIf(!contained)(`ends a grandchild that left the process group (setsid)${contained ? '' : ' [skipped: needs a PID namespace or cgroups, this mode has neither]'}`, async () => {
      const jobId = freshJobId('escape')
      const script = "setsid /bin/sh -c 'echo $$ > escaped; exec sleep 1000' & while [ ! -s escaped ]; do sleep 0.02; done; exec sleep 1000"
      const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', script] })
      const escapedFile = join(made.runtime.jobDir(jobId), 'work', 'escaped')
      await waitFor(() => existsSync(escapedFile) && readFileSync(escapedFile, 'utf8').trim() !== '', 5_000, 'the escapee to start')
      const tree = await processTree(handle.pid)
      expect(tree.length).toBeGreaterThanOrEqual(2)
      await made.runtime.stop(jobId, 'cancelled', { graceMs: 0 })
      await waitFor(() => tree.every(isGone), 5_000, `every PID of the tree ${tree.join(',')} to be gone`)
    })

    it('kills what the job left behind when its main process exits', async () => {
      const jobId = freshJobId('leftover')
      const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', 'sleep 1000 & echo $! > left; exit 0'] })
      const exit = await handle.exited
      expect(exit.state).toBe('exited')
      // The leftover sleep must be gone once the exit is reported (its PID means something on the
      // host only outside a namespace; inside one, the namespace's end takes it).
      const left = Number(readFileSync(join(made.runtime.jobDir(jobId), 'work', 'left'), 'utf8'))
      if (mode.pidNamespace === 'off') {
        expect(await isDead(left)).toBe(true) // dead at once; init reaps it in its own time
        await waitFor(() => isGone(left), 5_000, `the leftover ${left} to be reaped`)
      }
    })

    it('reports at exit what the job used: CPU, peak memory (through cgroups) and wall time', async () => {
      // 50 MiB held in one string, then half a second of CPU; a job that does nothing for contrast.
      const heavy = await made.runtime.start({ jobId: freshJobId('usage'), command: ['/usr/bin/perl', '-e', '$x = "a" x (50 * 1024 * 1024); 1 while (times)[0] < 0.5; exit length($x) == 52428800 ? 0 : 1'] })
      const light = await made.runtime.start({ jobId: freshJobId('idle'), command: ['/bin/sh', '-c', 'exit 0'] })
      const [used, idle] = [(await heavy.exited).usage, (await light.exited).usage]
      expect(used.wallMs).toBeGreaterThanOrEqual(400)
      if (mode.cgroups === 'auto') {
        expect(used.peakMemoryBytes).toBeGreaterThanOrEqual(40 * 2 ** 20)
        expect(used.cpuSeconds).toBeGreaterThanOrEqual(0.2)
        expect(idle.peakMemoryBytes).toBeLessThan(40 * 2 ** 20)
        expect(idle.cpuSeconds).toBeLessThan(0.2)
      } else {
        expect([used.cpuSeconds, used.peakMemoryBytes]).toEqual([null, null]) // not measurable without cgroups
      }
    })

    it('reports limits as enforced through cgroups, or says why not', async () => {
      const jobId = freshJobId('limits')
      const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', 'cat /proc/self/cgroup'], resources: { cpuMillis: 500, memoryMiB: 64 } })
      await handle.exited
      const inspection = await made.runtime.inspect(jobId)
      expect(inspection.limits.requested).toEqual({ cpuMillis: 500, memoryMiB: 64 })
      if (mode.cgroups === 'auto') {
        expect(inspection.limits).toMatchObject({ enforced: true })
        expect(inspection.limits.note).toMatch(/^cgroup v[12]$/)
        expect(await collect(made.runtime.logs(jobId))).toContain(`/${jobId}-`) // it ran inside its own group
        expect(inspection.usage?.cpuSeconds).toBeGreaterThanOrEqual(0)
      } else {
        expect(inspection.limits.enforced).toBe(false)
        expect(inspection.limits.note).toMatch(/^limits not enforced: /)
      }
    })
  })
}

describe('process runtime, everywhere', () => {
  let made: Awaited<ReturnType<typeof makeRuntime>>
  afterEach(async () => {
    await made.cleanup()
  })

  it.skipIf(!namespaceSupport.available)(
    `the job sees itself as PID 1 in its own namespace${namespaceSupport.available ? '' : ` [skipped: ${namespaceSupport.reason}]`}`,
    async () => {
      made = await makeRuntime({ name: 'namespace', pidNamespace: 'auto', cgroups: 'off' })
      const jobId = freshJobId('pid1')
      const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', 'echo $$'] })
      expect(handle.isolation).toEqual({ mode: 'pid-namespace' })
      await handle.exited
      expect(['1', '2']).toContain((await collect(made.runtime.logs(jobId))).trim())
    },
  )

  it('refuses a start beyond the maximum of running jobs', async () => {
    made = await makeRuntime({ name: 'plain', pidNamespace: 'off', cgroups: 'off' }, { limits: { maxRunningJobs: 1 } })
    await made.runtime.start({ jobId: freshJobId('first'), command: ['sleep', '1000'] })
    await expect(made.runtime.start({ jobId: freshJobId('second'), command: ['sleep', '1000'] })).rejects.toMatchObject({ name: 'RuntimeAtCapacityError', running: 1, maxRunningJobs: 1 })
    await expect(made.runtime.start({ jobId: freshJobId('third'), command: ['sleep', '1000'] })).rejects.toThrow(RuntimeAtCapacityError)
  })

  it('refuses a command that is not there, a bad job id and a working folder outside the job', async () => {
    made = await makeRuntime({ name: 'plain', pidNamespace: 'off', cgroups: 'off' })
    await expect(made.runtime.start({ jobId: freshJobId('missing'), command: ['no-such-command-fabric'] })).rejects.toThrow(SpawnFailedError)
    await expect(made.runtime.start({ jobId: freshJobId('../evil'), command: ['true'] })).rejects.toThrow(InvalidRunSpecError)
    await expect(made.runtime.start({ jobId: freshJobId('outside'), command: ['true'], workingDir: '../..' })).rejects.toMatchObject({ name: 'InvalidRunSpecError', field: 'workingDir' })
  })

  it('tells a job the GPUs it was given in CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES, a job given none an empty CUDA_VISIBLE_DEVICES', async () => {
    made = await makeRuntime({ name: 'plain', pidNamespace: 'off', cgroups: 'off' })
    const printGpus = ['/bin/sh', '-c', 'echo "cuda=${CUDA_VISIBLE_DEVICES-unset} nvidia=${NVIDIA_VISIBLE_DEVICES-unset}"']
    const given = freshJobId('gpus')
    // The job's own env does not widen what it was given.
    await (await made.runtime.start({ jobId: given, command: printGpus, env: { CUDA_VISIBLE_DEVICES: '0,1,2,3' }, resources: { gpuCount: 2, gpuDevices: [1, 3] } })).exited
    expect((await collect(made.runtime.logs(given))).trim()).toBe('cuda=1,3 nvidia=1,3')
    const none = freshJobId('nogpus')
    await (await made.runtime.start({ jobId: none, command: printGpus })).exited
    expect((await collect(made.runtime.logs(none))).trim()).toBe('cuda= nvidia=unset')
    // A count without devices: the runtime does not choose GPUs.
    await expect(made.runtime.start({ jobId: freshJobId('unnamed'), command: ['true'], resources: { gpuCount: 1 } })).rejects.toMatchObject({ name: 'InvalidRunSpecError', field: 'resources.gpuDevices' })
  })

  it('bounds what one logs call returns and lets the caller continue from an offset', async () => {
    made = await makeRuntime({ name: 'plain', pidNamespace: 'off', cgroups: 'off' }, { limits: { maxLogBytesPerCall: 1000, logReadChunkBytes: 256 } })
    const jobId = freshJobId('big')
    const handle = await made.runtime.start({ jobId, command: ['/bin/sh', '-c', 'i=0; while [ $i -lt 500 ]; do echo 0123456789; i=$((i+1)); done'] })
    await handle.exited
    const first = await collect(made.runtime.logs(jobId))
    expect(first.length).toBe(1000)
    const rest = await collect(made.runtime.logs(jobId, { fromBytes: 1000, maxBytes: 10_000 }))
    expect(rest.length).toBe(1000) // still capped by the runtime's own maximum
    expect(await readFile(join(made.runtime.jobDir(jobId), 'stdout.log'), 'utf8')).toHaveLength(5500)
  })
})

describe('process runtime, when its daemon dies', () => {
  // In a namespace the whole job ends with its PID 1; in a bare process group only the job's first
  // process gets the signal (what it started is swept by the daemon's restart, node/job-runner.ts).
  for (const pidNamespace of namespaceSupport.available ? (['auto', 'off'] as const) : (['off'] as const)) {
    const whole = pidNamespace === 'auto'
    it.skipIf(!parentDeath.available)(
      `a SIGKILLed daemon takes ${whole ? 'every process of its job' : "its job's first process"} with it (PID namespace ${pidNamespace})${parentDeath.available ? '' : ` [skipped: ${parentDeath.reason}]`}`,
      async () => {
        const dataDir = await mkdtemp(join(tmpdir(), 'fabric-runtime-orphan-'))
        const holder = spawn(process.execPath, [join(import.meta.dirname, 'testing/hold-job.ts'), dataDir, pidNamespace], { stdio: ['ignore', 'pipe', 'inherit'] })
        let jobPid: number | undefined
        try {
          const line = await new Promise<string>((resolve, reject) => {
            createInterface({ input: holder.stdout! }).once('line', resolve)
            holder.once('exit', (code) => reject(new Error(`the holder exited (${code}) before starting its job`)))
          })
          const { pid } = JSON.parse(line) as { pid: number }
          jobPid = pid
          await waitFor(() => existsSync(join(dataDir, 'jobs/held/work/up')), 5_000, 'the job to start its sleeper')
          const tree = await processTree(pid)
          expect(tree.length).toBeGreaterThanOrEqual(2) // the launcher and at least the sleeper
          const watched = whole ? tree : [pid]
          holder.kill('SIGKILL')
          await waitFor(async () => (await Promise.all(watched.map(isDead))).every(Boolean), 5_000, `PIDs ${watched.join(',')} to die with the holder`)
        } finally {
          holder.kill('SIGKILL')
          // The sleeper a bare process group leaves behind: end it (its group is the job's first PID).
          if (jobPid !== undefined) {
            try {
              process.kill(-jobPid, 'SIGKILL')
            } catch {
              // Already gone.
            }
          }
          await rm(dataDir, { recursive: true, force: true })
        }
      },
    )
  }
})
