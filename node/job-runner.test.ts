// Proves the job runner against the real process runtime and the real level store: a start-job runs
// the record's command and its exit comes back once; a run the core stopped is not reported; an
// exit already handed to the core is replayed (with its usage), not rerun, when the same assignment is asked again
// after a restart; and a restart ends (by PID and start time) the processes of runs that were in
// flight, reporting them lost with 137, while leaving alone a process that only reuses a PID. GPU
// runs get disjoint device indices (in their environment, `local` and the ledger), a run asking more
// than is free fails to launch saying so, and a start waits for the devices of a run being stopped.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Peer, actorOf, asJobId, asNodeId, asTerm, createGenesis, defaultPeerTiming, type Document, type JobId, type JobUsage } from '../consensus/index.ts'
import { ProcessRuntime, isDead, processStartTicks } from '../runtime/index.ts'
import type { StartJobEffect } from './job-launch.ts'
import { jobSpec, offer } from '../placement/testing.ts'
import { GpuAllocator } from './gpu-allocator.ts'
import { JobRunner, launchFailedExitCode, lostWithDaemonExitCode, timedOutExitCode } from './job-runner.ts'
import { silentLogger } from './logger.ts'
import { ConsensusStore } from './store.ts'

const nodeId = asNodeId('12D3KooWjobrunnertest')
const genesis = createGenesis({ voters: [nodeId] })
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A document holding one job record per command, written by the real core. */
function documentWith(jobs: Record<string, string[]>): Document {
  const peer = new Peer({
    config: { ...defaultPeerTiming, nodeId },
    attributes: { id: nodeId, offer: offer(nodeId, { capacity: { cpuMillis: 4_000, memoryMiB: 4_096 } }) },
    random: { next: () => 0.5 },
    persisted: Peer.fresh(genesis),
    nowMs: 0,
    incarnation: '01',
  })
  for (const [id, argv] of Object.entries(jobs)) {
    peer.step({ kind: 'submit', nowMs: 1, requestId: id, job: { id: asJobId(id), spec: jobSpec({ name: id, command: argv, resources: { cpu: '100m', memory: '16Mi' } }), durationMs: 0 } })
  }
  return peer.document
}

const startEffect = (jobId: string, seq = 1, gpuCount = 0): StartJobEffect => ({ kind: 'start-job', jobId: asJobId(jobId), demand: { cpuMillis: 100, memoryMiB: 16, diskMiB: 0, gpuCount }, durationMs: 0, term: asTerm(1), seq, restoreFrom: null })

async function openRunner(dataDir: string, gpus?: GpuAllocator): Promise<{ runner: JobRunner; store: ConsensusStore; exits: { jobId: JobId; exitCode: number }[]; usages: (JobUsage | undefined)[]; close(): Promise<void> }> {
  const { store } = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
  const runtime = new ProcessRuntime({ dataDir, cgroups: 'off', limits: { stopGraceMs: 200 } }, { logger: silentLogger })
  const exits: { jobId: JobId; exitCode: number }[] = []
  const usages: (JobUsage | undefined)[] = []
  const runner = new JobRunner({
    runtime,
    store,
    ...(gpus === undefined ? {} : { gpus }),
    logger: silentLogger,
    nowMs: Date.now,
    onExit: (jobId, exitCode, usage) => {
      exits.push({ jobId, exitCode })
      usages.push(usage)
    },
  })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await runner.close()
    await store.close()
  }
  cleanups.push(close)
  return { runner, store, exits, usages, close }
}

async function freshDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fabric-job-runner-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('JobRunner', () => {
  it('runs the record\'s command and reports its exit once; the same assignment after a restart is answered, not rerun', async () => {
    const dataDir = await freshDir()
    const marks = join(dataDir, 'marks')
    const document = documentWith({ once: ['/bin/sh', '-c', `echo run >> ${marks}; exit 3`] })
    const first = await openRunner(dataDir)
    first.runner.start(startEffect('once'), document)
    await until(() => first.exits.length === 1, 'the exit')
    expect(first.exits).toEqual([{ jobId: 'once', exitCode: 3 }])
    expect(first.runner.local(asJobId('once'))).toMatchObject({ state: 'failed', exitCode: 3 })
    await first.close()

    // A crash before the core persisted the outcome: the restarted core asks for the same run again.
    const second = await openRunner(dataDir)
    expect(await second.runner.recover(() => true)).toEqual([])
    second.runner.start(startEffect('once'), document)
    await until(() => second.exits.length === 1, 'the replayed exit')
    expect(second.exits).toEqual([{ jobId: 'once', exitCode: 3 }])
    // ...with what the run used, as the first exit reported it.
    expect(first.usages[0]).toMatchObject({ wallMs: expect.any(Number) })
    expect(second.usages[0]).toEqual(first.usages[0])
    expect(readFileSync(marks, 'utf8')).toBe('run\n') // it ran once
    // A new assignment (another seq) of the job is a new run.
    second.runner.start(startEffect('once', 2), document)
    await until(() => second.exits.length === 2, 'the second run')
    expect(readFileSync(marks, 'utf8')).toBe('run\nrun\n')
  })

  it('hands the core what the run used with its exit (wall time here: this runtime has no cgroups)', async () => {
    const opened = await openRunner(await freshDir())
    opened.runner.start(startEffect('napper'), documentWith({ napper: ['/bin/sh', '-c', 'sleep 0.3; exit 4'] }))
    await until(() => opened.exits.length === 1, 'the exit')
    expect(opened.exits).toEqual([{ jobId: 'napper', exitCode: 4 }])
    expect(opened.usages[0]).toMatchObject({ cpuSeconds: null, peakMemoryBytes: null, wallMs: expect.any(Number) })
    expect(opened.usages[0]!.wallMs).toBeGreaterThanOrEqual(250)
  })

  it('reports a run its timeout ended as failed, even when it caught the signal and exited 0', async () => {
    const opened = await openRunner(await freshDir())
    const peer = new Peer({ config: { ...defaultPeerTiming, nodeId }, attributes: { id: nodeId, offer: offer(nodeId) }, random: { next: () => 0.5 }, persisted: Peer.fresh(genesis), nowMs: 0, incarnation: '01' })
    const spec = jobSpec({ name: 'stubborn', command: ['/bin/sh', '-c', "trap 'exit 0' TERM; sleep 10 & wait"], resources: { cpu: '100m', memory: '16Mi' }, timeout: '300ms' })
    peer.step({ kind: 'submit', nowMs: 1, requestId: 'stubborn', job: { id: asJobId('stubborn'), spec, durationMs: 0 } })
    opened.runner.start(startEffect('stubborn'), peer.document)
    await until(() => opened.exits.length === 1, 'the timeout')
    expect(opened.exits).toEqual([{ jobId: 'stubborn', exitCode: timedOutExitCode }])
  })

  it('reports the end of a run the core stopped (the core records how it ended), and a launch failure as 127', async () => {
    const dataDir = await freshDir()
    const document = documentWith({ long: ['sleep', '1000'], missing: ['/no/such/program'] })
    const opened = await openRunner(dataDir)
    opened.runner.start(startEffect('long'), document)
    await until(() => opened.runner.local(asJobId('long'))?.state === 'running', 'the run to start')
    opened.runner.stop(asJobId('long'), 'fenced')
    await until(() => opened.runner.local(asJobId('long'))?.state === 'stopped', 'the run to stop')
    await until(() => opened.exits.length === 1, 'the stopped run\'s exit')
    opened.runner.start(startEffect('missing'), document)
    await until(() => opened.exits.length === 2, 'the launch failure')
    expect(opened.exits.map((exit) => exit.jobId)).toEqual(['long', 'missing'])
    expect(opened.exits[0]!.exitCode).toBeGreaterThan(128) // ended by a signal (TERM, or KILL past the grace)
    expect(opened.exits[1]!.exitCode).toBe(127)
    expect(opened.runner.local(asJobId('missing'))).toMatchObject({ state: 'launch-failed', reason: expect.stringContaining('/no/such/program') })
  })

  it('at restart ends what a dead daemon left running and reports it lost; a reused PID is left alone', async () => {
    const dataDir = await freshDir()
    const { store } = await ConsensusStore.open({ dataDir, nodeId, actor: actorOf(nodeId, '02'), genesis, syncWrites: false })
    // Stand-ins for a dead daemon's jobs: process-group leaders with children, as the runtime makes them.
    const spawnGroup = () => spawn('/bin/sh', ['-c', 'sleep 1000 & sleep 1000; wait'], { detached: true, stdio: 'ignore' })
    const orphan = spawnGroup()
    const stranger = spawnGroup()
    cleanups.push(async () => {
      for (const child of [orphan, stranger]) {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {
          // Gone.
        }
      }
    })
    await until(async () => (await processStartTicks(orphan.pid!)) !== undefined && (await processStartTicks(stranger.pid!)) !== undefined, 'the stand-ins')
    const orphanTicks = (await processStartTicks(orphan.pid!))!
    await store.putLocalRun({ jobId: 'orphan', term: 1, seq: 1, pid: orphan.pid!, pidStartTicks: orphanTicks, startedAtMs: 0, exitCode: null })
    // Same PID as a live process, but another start time: the recorded run's process is long gone.
    await store.putLocalRun({ jobId: 'reused', term: 1, seq: 1, pid: stranger.pid!, pidStartTicks: (await processStartTicks(stranger.pid!))! - 1, startedAtMs: 0, exitCode: null })
    await store.putLocalRun({ jobId: 'archived', term: 1, seq: 1, pid: 1, pidStartTicks: 0, startedAtMs: 0, exitCode: 0 })
    await store.close()

    const opened = await openRunner(dataDir)
    const lost = await opened.runner.recover((jobId) => jobId !== 'archived')
    expect(lost.sort((a, b) => (a.jobId < b.jobId ? -1 : 1))).toEqual([
      { jobId: 'orphan', exitCode: lostWithDaemonExitCode },
      { jobId: 'reused', exitCode: lostWithDaemonExitCode },
    ])
    expect(await isDead(orphan.pid!)).toBe(true)
    expect(await isDead(stranger.pid!)).toBe(false)
    expect(opened.runner.local(asJobId('orphan'))).toMatchObject({ state: 'lost', exitCode: 137 })
    // The entry of a job the document no longer holds is dropped.
    expect((await opened.store.localRuns()).map((run) => run.jobId).sort()).toEqual(['orphan', 'reused'])
    expect(existsSync(join(dataDir, 'jobs'))).toBe(false) // nothing was started by recovery
  })

  it('gives GPU runs disjoint devices, fails a run asking more than is free with what is free, and reuses a device once its run ended', async () => {
    const dataDir = await freshDir()
    const printAndWait = (name: string, seconds: number): string[] => ['/bin/sh', '-c', `echo "$CUDA_VISIBLE_DEVICES" > ${join(dataDir, name)}; sleep ${seconds}`]
    // a outlasts b: the device d gets can only be b's.
    const document = documentWith({ a: printAndWait('a', 5), b: printAndWait('b', 0.6), c: printAndWait('c', 0), d: printAndWait('d', 0) })
    const opened = await openRunner(dataDir, new GpuAllocator([0, 1, 2]))
    opened.runner.start(startEffect('a', 1, 2), document)
    await until(() => opened.runner.local(asJobId('a'))?.state === 'running', 'a to start')
    opened.runner.start(startEffect('b', 1, 1), document)
    await until(() => opened.runner.local(asJobId('b'))?.state === 'running', 'b to start')
    expect(opened.runner.local(asJobId('a'))).toMatchObject({ state: 'running', gpus: [0, 1] })
    expect(opened.runner.local(asJobId('b'))).toMatchObject({ state: 'running', gpus: [2] })
    // The ledger keeps them (what `fabric job` shows after a restart too).
    await until(async () => (await opened.store.localRuns()).length === 2, 'both runs in the ledger')
    expect((await opened.store.localRuns()).map((run) => [run.jobId, run.gpus]).sort()).toEqual([['a', [0, 1]], ['b', [2]]])
    // No device is free: c cannot launch (the leader's accounting should never send it), and says why.
    opened.runner.start(startEffect('c', 1, 1), document)
    await until(() => opened.exits.some((exit) => exit.jobId === 'c'), 'c to fail')
    expect(opened.exits.find((exit) => exit.jobId === 'c')!.exitCode).toBe(launchFailedExitCode)
    expect(opened.runner.local(asJobId('c'))).toMatchObject({ state: 'launch-failed', reason: 'job c asks for 1 GPU, but no device is free of the 3 this node offers' })
    await until(() => opened.exits.some((exit) => exit.jobId === 'b'), 'b to end', 10_000)
    opened.runner.start(startEffect('d', 1, 1), document)
    await until(() => opened.exits.some((exit) => exit.jobId === 'd'), 'd to end', 10_000)
    expect(readFileSync(join(dataDir, 'a'), 'utf8')).toBe('0,1\n')
    expect(readFileSync(join(dataDir, 'b'), 'utf8')).toBe('2\n')
    expect(readFileSync(join(dataDir, 'd'), 'utf8')).toBe('2\n') // b's device, free again
    expect(opened.runner.local(asJobId('d'))).toMatchObject({ state: 'exited', gpus: [2] })
    expect(opened.runner.local(asJobId('a'))).toMatchObject({ state: 'running', gpus: [0, 1] })
  })

  it('starts a GPU run whose device is held by a run being stopped once that run has ended, not as a launch failure', async () => {
    const dataDir = await freshDir()
    // The holder takes a while to end after TERM (its stop's grace), as a real job might.
    const document = documentWith({ holder: ['/bin/sh', '-c', "trap 'sleep 0.3; exit 0' TERM; sleep 1000 & wait"], next: ['/bin/sh', '-c', `echo "$CUDA_VISIBLE_DEVICES" > ${join(dataDir, 'next')}`] })
    const opened = await openRunner(dataDir, new GpuAllocator([0]))
    opened.runner.start(startEffect('holder', 1, 1), document)
    await until(() => opened.runner.local(asJobId('holder'))?.state === 'running', 'the holder to start')
    // The core counts a stopped run's room free at once, and may start the next job right away.
    opened.runner.stop(asJobId('holder'), 'cancelled')
    opened.runner.start(startEffect('next', 1, 1), document)
    await until(() => opened.exits.some((exit) => exit.jobId === 'next'), 'next to end', 10_000)
    expect(opened.exits.find((exit) => exit.jobId === 'next')!.exitCode).toBe(0)
    expect(readFileSync(join(dataDir, 'next'), 'utf8')).toBe('0\n')
    expect(opened.exits.map((exit) => exit.jobId)).toEqual(['holder', 'next'])
  })
})
