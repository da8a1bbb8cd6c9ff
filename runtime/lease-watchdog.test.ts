// The lease watchdog: its rules on a virtual clock; the spawner process's watchdog against real
// processes (killed after the deadline and not before, spared when renewed, when already gone or when
// their PID names another process); and the point of it all: a stand-in daemon in its own process
// (testing/lease-daemon.ts), paused with SIGSTOP or killed with SIGKILL, whose jobs still end at the
// lease's deadline, in the process runtime (PID namespace, process group, restored from a checkpoint)
// and the Docker runtime.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { probeCriu } from './criu.ts'
import { connectDocker, dockerSocketPath, probeDockerEngine } from './docker-engine.ts'
import { childPids, isDead, probePidNamespace, processStartTicks, processTree } from './isolation.ts'
import { LeaseWatchdog, leaseWatchdogLimits, monotonicNowMs, type GuardedProcess, type LeaseLapse } from './lease-watchdog.ts'
import { ProcessRuntime } from './process-runtime.ts'
import { leaseLapsedReason, type JobExit } from './runtime.ts'
import { Spawner, type LaunchedProcess } from './spawner.ts'
import { ensureBusyboxImage } from './testing/busybox-image.ts'
import { criuMissing, requirementGate } from './testing/requirements.ts'
import { freshJobId, untilMonotonic, waitFor } from './testing/runtime-compliance.ts'

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const allDead = async (pids: readonly number[]): Promise<boolean> => (await Promise.all(pids.map(isDead))).every(Boolean)
const noneDead = async (pids: readonly number[]): Promise<boolean> => !(await Promise.all(pids.map(isDead))).some(Boolean)
/** /proc/PID/stat's state letter ('T': stopped). */
const stateOf = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? ''
}

describe('the lease watchdog, on a virtual clock', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  function watched(): { watchdog: LeaseWatchdog; clock: { nowMs: number }; killedPids: number[]; lapses: LeaseLapse[] } {
    vi.useFakeTimers()
    const clock = { nowMs: 0 }
    const killedPids: number[] = []
    const lapses: LeaseLapse[] = []
    const watchdog = new LeaseWatchdog({
      nowMs: () => clock.nowMs,
      kill: (target) => {
        killedPids.push(target.pid)
        return true
      },
      onLapse: (lapse) => lapses.push(lapse),
    })
    return { watchdog, clock, killedPids, lapses }
  }
  const target = (pid: number): GuardedProcess[] => [{ pid, startTicks: 1, group: true }]

  it('kills nothing before the deadline and everything at it; a timer that fires early re-arms instead', () => {
    const { watchdog, clock, killedPids, lapses } = watched()
    watchdog.guard('a', target(11))
    watchdog.guard('b', target(12))
    watchdog.setDeadline(1_000)
    clock.nowMs = 990 // the clock lags the timer: it fires "at" 1000 while the clock says 990
    vi.advanceTimersByTime(1_000)
    expect(killedPids).toEqual([])
    clock.nowMs = 1_000
    vi.advanceTimersByTime(10)
    expect(killedPids).toEqual([11, 12])
    expect(lapses).toEqual([{ deadlineMs: 1_000, killed: ['a', 'b'] }])
    expect(watchdog.guardedCount).toBe(0)
  })

  it('keeps jobs while the lease is renewed; a withdrawn lease (null) kills at once, and so does a guard while it is lapsed', () => {
    const { watchdog, clock, killedPids, lapses } = watched()
    watchdog.guard('a', target(11))
    watchdog.setDeadline(1_000)
    clock.nowMs = 900
    vi.advanceTimersByTime(900)
    watchdog.setDeadline(2_000)
    clock.nowMs = 1_500
    vi.advanceTimersByTime(600)
    expect(killedPids).toEqual([])
    watchdog.setDeadline(null)
    expect(killedPids).toEqual([11])
    expect(watchdog.lapsed()).toBe(true)
    watchdog.guard('late', target(13))
    expect(killedPids).toEqual([11, 13])
    expect(lapses.map((lapse) => lapse.killed)).toEqual([['a'], ['late']])
    watchdog.setDeadline(clock.nowMs + 1_000) // a new lease: what starts under it lives
    watchdog.guard('new', target(14))
    expect(killedPids).toEqual([11, 13])
  })

  it('is disarmed until told of a lease: nothing is killed, and it does not count as lapsed', () => {
    const { watchdog, clock, killedPids } = watched()
    watchdog.guard('a', target(11))
    clock.nowMs = 10 ** 9
    vi.advanceTimersByTime(10 ** 6)
    expect(watchdog.armed).toBe(false)
    expect(watchdog.lapsed()).toBe(false)
    expect(killedPids).toEqual([])
  })

  it('unguarded targets are spared; limits on targets, processes and keys hold; a deadline must be finite', () => {
    const { watchdog, killedPids } = watched()
    watchdog.guard('a', target(11))
    watchdog.guard('b', target(12))
    watchdog.unguard('a')
    for (let index = watchdog.guardedCount; index < leaseWatchdogLimits.maxGuardedTargets; index += 1) expect(watchdog.guard(`job-${index}`, target(1000 + index)).ok).toBe(true)
    expect(watchdog.guard('one-too-many', target(99))).toMatchObject({ ok: false, reason: expect.stringMatching(/maximum/) })
    expect(watchdog.guard('b', target(12)).ok).toBe(true) // replacing a key is no new target
    expect(watchdog.guard('b', Array.from({ length: leaseWatchdogLimits.maxProcessesPerTarget + 1 }, (_, index) => ({ pid: 100 + index, startTicks: 1, group: false }))).ok).toBe(false)
    expect(watchdog.guard('x'.repeat(leaseWatchdogLimits.maxKeyLength + 1), target(98)).ok).toBe(false)
    expect(() => watchdog.setDeadline(Number.NaN)).toThrow(RangeError)
    watchdog.setDeadline(null)
    expect(killedPids).not.toContain(11)
    expect(killedPids).toHaveLength(leaseWatchdogLimits.maxGuardedTargets)
  })
})

const exitOf = (child: LaunchedProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }> =>
  new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, atMs: monotonicNowMs() })))
const spawned = (child: LaunchedProcess): Promise<number> =>
  new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!))
    child.once('error', reject)
  })

describe("the spawner's watchdog, with real processes", () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })

  async function started(): Promise<{ spawner: Spawner; dir: string; lapses: LeaseLapse[]; launch(key?: string): LaunchedProcess }> {
    const lapses: LeaseLapse[] = []
    const spawner = Spawner.start({ onProblem: () => {}, onLeaseLapsed: (lapse) => lapses.push(lapse) })
    const dir = await mkdtemp(join(tmpdir(), 'fabric-lease-'))
    const launched: LaunchedProcess[] = []
    cleanups.push(async () => {
      for (const child of launched) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL')
      await spawner.close()
      await rm(dir, { recursive: true, force: true })
    })
    expect(await spawner.ready()).toBe(true)
    const paths = { stdoutPath: join(dir, 'o'), stderrPath: join(dir, 'e') }
    const launch = (key?: string): LaunchedProcess => {
      const child = spawner.launch({ file: '/bin/sleep', args: ['30'], argv0: 'sleep', cwd: dir, env: {}, ...paths, ...(key === undefined ? {} : { guardKey: key }) })
      launched.push(child)
      return child
    }
    return { spawner, dir, lapses, launch }
  }

  it('SIGKILLs a guarded job once the deadline passed, and not before', async () => {
    const { spawner, lapses, launch } = await started()
    const child = launch('job-a')
    const exit = exitOf(child)
    const pid = await spawned(child)
    const deadlineMs = monotonicNowMs() + 400
    spawner.setLease(deadlineMs)
    await untilMonotonic(deadlineMs - 100)
    expect(await isDead(pid)).toBe(false)
    expect(await exit).toMatchObject({ code: null, signal: 'SIGKILL' })
    expect((await exit).atMs).toBeGreaterThanOrEqual(deadlineMs)
    expect(lapses).toEqual([{ deadlineMs, killed: ['job-a'] }])
  })

  it('keeps a job running while the lease is renewed, and kills it at once when the lease is withdrawn', async () => {
    const { spawner, lapses, launch } = await started()
    const child = launch('job-b')
    const exit = exitOf(child)
    const pid = await spawned(child)
    const firstDeadlineMs = monotonicNowMs() + 300
    spawner.setLease(firstDeadlineMs)
    for (let renewal = 0; renewal < 6; renewal += 1) {
      await untilMonotonic(monotonicNowMs() + 100)
      spawner.setLease(monotonicNowMs() + 300)
    }
    expect(monotonicNowMs()).toBeGreaterThan(firstDeadlineMs + 200)
    expect(await isDead(pid)).toBe(false)
    const withdrawnMs = monotonicNowMs()
    spawner.setLease(null)
    expect(await exit).toMatchObject({ signal: 'SIGKILL' })
    expect((await exit).atMs - withdrawnMs).toBeLessThan(1_000)
    expect(lapses).toEqual([{ deadlineMs: null, killed: ['job-b'] }])
    // And with no lease it launches no guarded job.
    await expect(spawned(launch('job-c'))).rejects.toThrow(/no lease/)
  })

  it('spares a target that already exited and one whose PID now names another process (another start time)', async () => {
    const { spawner, lapses } = await started()
    const sleeper = (): ChildProcess => spawn('/bin/sleep', ['30'], { detached: true, stdio: 'ignore' })
    const [gone, reused, reusedGroup, live] = [sleeper(), sleeper(), sleeper(), sleeper()]
    const all = [gone, reused, reusedGroup, live]
    cleanups.push(async () => {
      for (const child of all) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    await Promise.all(all.map((child) => new Promise((resolve) => child.once('spawn', resolve))))
    const ticks = async (child: ChildProcess): Promise<number> => (await processStartTicks(child.pid!))!
    const goneTicks = await ticks(gone)
    gone.kill('SIGKILL')
    await new Promise((resolve) => gone.once('exit', resolve))
    spawner.guard('gone', [{ pid: gone.pid!, startTicks: goneTicks, group: false }])
    // A reused PID is the same number with another start time: we give the watchdog another start time.
    spawner.guard('reused', [{ pid: reused.pid!, startTicks: (await ticks(reused)) + 1, group: false }])
    spawner.guard('reused-group', [{ pid: reusedGroup.pid!, startTicks: (await ticks(reusedGroup)) + 1, group: true }])
    spawner.guard('live', [{ pid: live.pid!, startTicks: await ticks(live), group: true }])
    const liveExit = new Promise<NodeJS.Signals | null>((resolve) => live.once('exit', (_code, signal) => resolve(signal)))
    spawner.setLease(null)
    expect(await liveExit).toBe('SIGKILL')
    await waitFor(() => lapses.length === 1, 5_000, 'the lapse report')
    expect(lapses[0]).toEqual({ deadlineMs: null, killed: ['live'] })
    expect(await isDead(reused.pid!)).toBe(false)
    expect(await isDead(reusedGroup.pid!)).toBe(false)
  })
})

describe('a process runtime without a spawner', () => {
  it('says the watchdog runs in the daemon only, and that one still ends jobs at the deadline', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-lease-nospawner-'))
    const warnings: string[] = []
    const logger = { ...silent, warn: (event: string) => void warnings.push(event) }
    const runtime = new ProcessRuntime({ dataDir, pidNamespace: 'off', cgroups: 'off', spawner: 'off' }, { logger })
    try {
      const handle = await runtime.start({ jobId: freshJobId('inside'), command: ['sleep', '1000'] })
      const deadlineMs = monotonicNowMs() + 300
      runtime.setLeaseDeadline(deadlineMs)
      expect(warnings).toContain('lease-watchdog-in-daemon')
      expect(await handle.exited).toMatchObject({ state: 'stopped', reason: leaseLapsedReason })
      expect(monotonicNowMs()).toBeGreaterThanOrEqual(deadlineMs)
    } finally {
      await runtime.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

// ---- The daemon in a process of its own, paused or killed.

const namespace = await probePidNamespace()
const criu = await probeCriu()
const engine = await probeDockerEngine(dockerSocketPath())
const dockerGate = requirementGate('lease watchdog tests with Docker', [engine.available ? undefined : `no Docker engine: ${engine.reason}`])
const restoreGate = requirementGate('lease watchdog tests of restored jobs', [namespace.available ? undefined : `no PID namespaces: ${namespace.reason}`, criuMissing(criu)])
const namespaceGate = requirementGate('lease watchdog tests in a PID namespace', [namespace.available ? undefined : `no PID namespaces: ${namespace.reason}`])

type DaemonMode = 'process-ns' | 'process-group' | 'process-restored' | 'docker'
/** How long the stand-in's lease runs after it printed (time for the test to look before the deadline). */
const leaseMs = 1_500
/** The stand-in builds its runtime and starts its job (a checkpoint and a restore first, in one mode) within this. */
const standInStartTimeoutMs = 20_000

interface StandIn {
  child: ChildProcess
  pid: number
  dataDir: string
  started: { pid: number; deadlineMs: number; containers: string[] }
  nextLine(): Promise<string>
}

async function startStandIn(mode: DaemonMode): Promise<StandIn> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fabric-lease-daemon-'))
  const child = spawn(process.execPath, [join(import.meta.dirname, 'testing/lease-daemon.ts'), dataDir, mode, String(leaseMs)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: string[] = []
  const waiting: ((line: string) => void)[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(line)
    else lines.push(line)
  })
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const line = lines.shift()
      if (line !== undefined) return resolve(line)
      waiting.push(resolve)
      child.once('exit', (code) => reject(new Error(`the stand-in daemon exited (${code})`)))
    })
  let timer: NodeJS.Timeout | undefined
  try {
    const first = await Promise.race([nextLine(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the stand-in daemon (${mode}) did not start its job within ${standInStartTimeoutMs} ms`)), standInStartTimeoutMs)))])
    const started = JSON.parse(first) as StandIn['started']
    return { child, pid: child.pid!, dataDir, started, nextLine }
  } catch (error) {
    // It is stuck (a hung CRIU, say): end it and everything it started, so the run can finish.
    for (const pid of (await processTree(child.pid!)).reverse()) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Gone.
      }
    }
    await rm(dataDir, { recursive: true, force: true })
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** The stand-in's children that are spawners (its job launcher's parent, or the Docker runtime's watchdog). */
async function spawnersOf(pid: number): Promise<number[]> {
  const children = await childPids(pid)
  return children.filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('spawner-main.ts')
    } catch {
      return false
    }
  })
}

/** The job's processes, once it is up: its tree on the host (a container's from its init). */
async function jobTree(standIn: StandIn): Promise<number[]> {
  await waitFor(() => existsSync(join(standIn.dataDir, 'jobs/guarded/work/up')), 10_000, 'the job to start its sleeper')
  const tree = await processTree(standIn.started.pid)
  expect(tree.length).toBeGreaterThanOrEqual(2)
  return tree
}

async function cleanUp(standIn: StandIn): Promise<void> {
  if (standIn.child.exitCode === null && standIn.child.signalCode === null) {
    standIn.child.kill('SIGCONT')
    standIn.child.kill('SIGKILL')
  }
  for (const pid of await processTree(standIn.started.pid).catch(() => [])) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Gone.
    }
  }
  if (standIn.started.containers.length > 0) {
    const docker = connectDocker(dockerSocketPath())
    for (const id of standIn.started.containers) await docker.getContainer(id).remove({ force: true }).catch(() => {})
  }
  await rm(standIn.dataDir, { recursive: true, force: true })
}

function describeStandIn(mode: DaemonMode, gate: { skip: boolean; note: string }, options: { killed: boolean }): void {
  describe.skipIf(gate.skip)(`a stand-in daemon in ${mode} mode${gate.note}`, () => {
    if (mode === 'docker') beforeAll(async () => void (await ensureBusyboxImage(connectDocker(dockerSocketPath()))), 120_000)

    it("paused with SIGSTOP: its job ends at the lease's deadline, not before, and the daemon hears why once it goes on", async () => {
      const standIn = await startStandIn(mode)
      try {
        const { deadlineMs } = standIn.started
        const tree = await jobTree(standIn)
        process.kill(standIn.pid, 'SIGSTOP')
        await untilMonotonic(deadlineMs - 300)
        expect(await noneDead(tree)).toBe(true)
        expect(monotonicNowMs()).toBeLessThan(deadlineMs)
        await waitFor(() => allDead(tree), deadlineMs + 3_000 - monotonicNowMs(), `PIDs ${tree.join(',')} to die at the deadline`)
        expect(monotonicNowMs()).toBeGreaterThanOrEqual(deadlineMs)
        expect(stateOf(standIn.pid)).toBe('T') // still paused: nothing in the daemon did it
        process.kill(standIn.pid, 'SIGCONT')
        const { exit } = JSON.parse(await standIn.nextLine()) as { exit: JobExit }
        expect(exit).toMatchObject({ state: 'stopped', reason: leaseLapsedReason, exitCode: 137 })
        const closed = new Promise((resolve) => standIn.child.once('exit', resolve))
        standIn.child.stdin!.end()
        await closed
      } finally {
        await cleanUp(standIn)
      }
    }, 30_000)

    it.runIf(options.killed)('killed with SIGKILL: its spawner outlives it until the deadline, kills the job, then exits', async () => {
      const standIn = await startStandIn(mode)
      try {
        const { deadlineMs } = standIn.started
        const tree = await jobTree(standIn)
        const spawners = await spawnersOf(standIn.pid)
        expect(spawners).toHaveLength(1)
        standIn.child.kill('SIGKILL')
        await untilMonotonic(deadlineMs - 300)
        expect(await noneDead([...tree, ...spawners])).toBe(true)
        expect(monotonicNowMs()).toBeLessThan(deadlineMs)
        await waitFor(() => allDead([...tree, ...spawners]), deadlineMs + 3_000 - monotonicNowMs(), `the job ${tree.join(',')} and the spawner ${spawners.join(',')} to go at the deadline`)
        expect(monotonicNowMs()).toBeGreaterThanOrEqual(deadlineMs)
      } finally {
        await cleanUp(standIn)
      }
    }, 30_000)
  })
}

describeStandIn('process-ns', namespaceGate, { killed: true })
describeStandIn('process-group', { skip: false, note: '' }, { killed: true })
describeStandIn('process-restored', restoreGate, { killed: false })
describeStandIn('docker', dockerGate, { killed: true })
