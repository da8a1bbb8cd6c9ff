// `fabric bench mesh`: real daemons as processes on loopback (a LocalMesh), measured from outside
// through the client protocol. Submit -> committed assignment latency (the client's clock, from the
// submit call to the leader's `assignments` stream reporting the job) twice: one submission at a
// time on an otherwise idle mesh (what a user submitting a job sees), and under a load of
// `concurrency` in flight (where it is mostly queueing behind the daemons' CPU); jobs/s under that
// load; leader SIGKILL -> a job submitted after the kill committed by the new leader; idle RSS.
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { availableParallelism, loadavg } from 'node:os'
import type { PeerConfig } from '../consensus/index.ts'
import { clientCall, clientFrames } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import type { Daemon } from './daemon-process.ts'
import { LocalMesh } from './local-mesh.ts'

export interface MeshBenchOptions {
  nodes: number
  jobs: number
  /** Submissions in flight at once in the load phase (spread over the non-leader nodes). */
  concurrency: number
  /** Submissions timed one at a time on the idle mesh before the load, each after a pause of `idleIntervalMs` (0: none). */
  idleSamples: number
  idleIntervalMs: number
  /** Leader SIGKILLs to time (each killed daemon is restarted before the next). */
  kills: number
  /** How long the mesh idles before RSS is read. */
  idleMs: number
  /** The daemons' request fan-out (default LocalMesh's). */
  requestFanout?: PeerConfig['requestFanout']
  /** Progress lines (stderr in the CLI: stdout carries the one JSON object). */
  progress?(line: string): void
}

/** Goals of issue C (Bacalhau measured 630 ms per job). */
export const meshBenchGoals = { submitToCommitP50Ms: 30, submitToCommitP99Ms: 100, failoverToPlacingP99Ms: 1_000, idleRssMiB: 150 } as const

export const meshBenchLimits = {
  electionTimeoutMs: 30_000,
  /** All jobs committed within this after the last submission, or the run fails. */
  drainTimeoutMs: 120_000,
  /** A job submitted after a kill committed by the new leader within this, or the run fails. */
  failoverTimeoutMs: 30_000,
  /** Each job's demand: tiny, so capacity never limits the run (nodes offer `nodeCpuMillis`). */
  jobCpu: '1m',
  jobMemory: '1Mi',
  nodeCpuMillis: 64_000,
  nodeMemoryMiB: 65_536,
} as const

export interface Percentiles { p50: number; p99: number; max: number; samples: number }

export interface MeshBenchResult {
  nodes: number
  voters: number
  jobs: number
  concurrency: number
  /** How the daemons send a request first. */
  requestFanout: PeerConfig['requestFanout']
  /** One submission at a time on an idle mesh (idleSamples of them, idleIntervalMs apart). */
  idleSubmitToCommitMs: Percentiles
  /** Under the load (`concurrency` in flight). */
  submitToCommitMs: Percentiles
  submitAckMs: Percentiles
  jobsPerSec: number
  /** CPU the daemons themselves spent per job during the load, summed over the mesh (not their jobs' CPU): a figure a loaded machine does not distort the way it does latency. */
  daemonCpuMsPerJob: number
  failover: { kills: number; leaderLossToPlacingMs: Percentiles & { all: number[] }; leaderLossToElectedMs: Percentiles }
  idleRssMiB: { perNode: (number | null)[]; max: number | null }
  rssAfterLoadMiB: { perNode: (number | null)[]; max: number | null }
  /** The latency goals are checked on both phases: idle (one at a time) and loaded. */
  goals: Record<'idleSubmitToCommitP50Ms' | 'idleSubmitToCommitP99Ms' | 'loadedSubmitToCommitP50Ms' | 'loadedSubmitToCommitP99Ms' | 'failoverToPlacingP99Ms' | 'idleRssMiB', { goal: number; measured: number | null; met: boolean }>
  /** The machine's 1-minute load average when the run started and ended: other work on it shows here. */
  machine: { cpus: number; node: string; loadAverageAtStart: number; loadAverageAtEnd: number }
  wallSeconds: number
}

export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN, samples: 0 }
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
  const round = (value: number): number => Math.round(value * 10) / 10
  return { p50: round(rank(0.5)), p99: round(rank(0.99)), max: round(sorted.at(-1)!), samples: sorted.length }
}

const mib = (bytes: number | null): number | null => (bytes === null ? null : Math.round(bytes / 1024 / 1024))

export async function runMeshBench(options: MeshBenchOptions): Promise<MeshBenchResult> {
  const wallStart = performance.now()
  const loadAtStart = loadavg()[0]!
  const progress = options.progress ?? (() => {})
  const mesh = await LocalMesh.start({ nodes: options.nodes, cpuMillis: meshBenchLimits.nodeCpuMillis, memoryMiB: meshBenchLimits.nodeMemoryMiB, logLevel: 'warn', requestFanout: options.requestFanout, onProgress: progress })
  let client: Libp2p | null = null
  const streams = new AbortController()
  try {
    const leader = await mesh.waitForLeader(meshBenchLimits.electionTimeoutMs)
    progress(`leader ${leader.name} in term ${leader.status!.term}; idling ${options.idleMs} ms before reading RSS`)
    await sleep(options.idleMs)
    const idle = mesh.daemons.map((daemon) => mib(daemon.rssBytes()))
    client = await createClientHost()
    const host = client

    // Commits as the leader reports them (its own term's commits are known to it at once).
    const committedAt = new Map<string, number>()
    const waiters = new Set<() => void>()
    const watch = (daemon: Daemon, signal: AbortSignal): Promise<void> =>
      (async () => {
        for await (const frame of clientFrames(host, multiaddr(daemon.address), { kind: 'assignments' }, { signal })) {
          if (frame.type === 'error') throw new Error(`${daemon.name} refused the assignments stream: ${frame.message}`)
          if (frame.type !== 'assignment' || committedAt.has(frame.jobId)) continue
          committedAt.set(frame.jobId, performance.now())
          for (const wake of [...waiters]) wake()
        }
      })().catch((error: unknown) => {
        if (!signal.aborted) progress(`assignments stream of ${daemon.name} ended: ${(error as Error).message}`)
      })
    const loadWatch = new AbortController()
    void watch(leader, AbortSignal.any([loadWatch.signal, streams.signal]))

    const followers = mesh.live.filter((daemon) => daemon !== leader)
    const spec = (index: number): string => JSON.stringify({ name: `bench-${index}`, command: ['true'], resources: { cpu: meshBenchLimits.jobCpu, memory: meshBenchLimits.jobMemory } })

    // Idle: one submission at a time, each after a pause that lets the last one's run, exit and reports settle.
    const idleLatencies: number[] = []
    if (options.idleSamples > 0) progress(`timing ${options.idleSamples} submissions one at a time on the idle mesh, ${options.idleIntervalMs} ms apart`)
    for (let sample = 0; sample < options.idleSamples; sample++) {
      await sleep(options.idleIntervalMs)
      const via = followers[sample % followers.length]!
      const startedAt = performance.now()
      const { jobId } = await clientCall(host, multiaddr(via.address), { kind: 'submit', spec: spec(-1 - sample) })
      await waitUntil(() => committedAt.has(jobId), meshBenchLimits.drainTimeoutMs, waiters, `${jobId} to be committed`)
      idleLatencies.push(committedAt.get(jobId)! - startedAt)
    }

    // The load: `jobs` submissions through the followers, `concurrency` at a time.
    const submittedAt = new Map<string, number>()
    const ackMs: number[] = []
    let next = 0
    const cpuBefore = mesh.daemons.map((daemon) => daemon.cpuSeconds())
    const firstSubmit = performance.now()
    progress(`submitting ${options.jobs} jobs through ${followers.length} follower(s), ${options.concurrency} at a time`)
    await Promise.all(
      Array.from({ length: options.concurrency }, async (_, worker) => {
        while (next < options.jobs) {
          const index = next++
          const via = followers[(worker + index) % followers.length]!
          const startedAt = performance.now()
          const { jobId } = await clientCall(host, multiaddr(via.address), { kind: 'submit', spec: spec(index) })
          ackMs.push(performance.now() - startedAt)
          submittedAt.set(jobId, startedAt)
        }
      }),
    )
    await waitUntil(() => [...submittedAt.keys()].every((jobId) => committedAt.has(jobId)), meshBenchLimits.drainTimeoutMs, waiters, 'every job to be committed')
    const lastCommit = Math.max(...[...submittedAt.keys()].map((jobId) => committedAt.get(jobId)!))
    const latencies = [...submittedAt].map(([jobId, at]) => committedAt.get(jobId)! - at)
    const jobsPerSec = Math.round((options.jobs / ((lastCommit - firstSubmit) / 1000)) * 10) / 10
    loadWatch.abort()
    progress(`load done: ${options.jobs} jobs committed in ${((lastCommit - firstSubmit) / 1000).toFixed(1)} s`)
    const afterLoad = mesh.daemons.map((daemon) => mib(daemon.rssBytes()))
    const cpuUsed = mesh.daemons.map((daemon, index) => {
      const before = cpuBefore[index]
      const after = daemon.cpuSeconds()
      return before === null || before === undefined || after === null ? 0 : after - before
    })
    const daemonCpuMsPerJob = Math.round((cpuUsed.reduce((sum, value) => sum + value, 0) * 1000 * 10) / options.jobs) / 10

    // Failovers: SIGKILL the leader, submit one job through a survivor at once, time until the new leader commits it.
    const placingMs: number[] = []
    const electedMs: number[] = []
    for (let kill = 1; kill <= options.kills; kill++) {
      const current = await mesh.waitForLeader(meshBenchLimits.electionTimeoutMs)
      const term = current.status!.term
      const via = mesh.live.find((daemon) => daemon !== current)!
      const killedAt = performance.now()
      await mesh.kill(current)
      const submitted = clientCall(host, multiaddr(via.address), { kind: 'submit', spec: spec(options.jobs + kill) })
      const next = await mesh.waitForLeader(meshBenchLimits.failoverTimeoutMs, term)
      electedMs.push(performance.now() - killedAt)
      const failoverWatch = new AbortController()
      void watch(next, AbortSignal.any([failoverWatch.signal, streams.signal]))
      const { jobId } = await submitted
      await waitUntil(() => committedAt.has(jobId), meshBenchLimits.failoverTimeoutMs, waiters, `${jobId} to be committed by the new leader`)
      placingMs.push(committedAt.get(jobId)! - killedAt)
      failoverWatch.abort()
      progress(`kill ${kill}: ${current.name} killed; ${next.name} elected after ${electedMs.at(-1)!.toFixed(0)} ms, placing after ${placingMs.at(-1)!.toFixed(0)} ms`)
      await mesh.restart(current)
      await mesh.waitForLeader(meshBenchLimits.electionTimeoutMs)
    }

    const submitToCommitMs = percentiles(latencies)
    const idleSubmitToCommitMs = percentiles(idleLatencies)
    const failoverPercentiles = percentiles(placingMs)
    const idleMax = idle.every((value) => value === null) ? null : Math.max(...idle.filter((value): value is number => value !== null))
    const measuredGoal = (measured: number | null, goal: number) => ({ goal, measured, met: measured !== null && Number.isFinite(measured) && measured <= goal })
    return {
      nodes: options.nodes,
      voters: mesh.voters,
      jobs: options.jobs,
      concurrency: options.concurrency,
      requestFanout: mesh.requestFanout,
      idleSubmitToCommitMs,
      submitToCommitMs,
      submitAckMs: percentiles(ackMs),
      jobsPerSec,
      daemonCpuMsPerJob,
      failover: { kills: placingMs.length, leaderLossToPlacingMs: { ...failoverPercentiles, all: placingMs.map((value) => Math.round(value)) }, leaderLossToElectedMs: percentiles(electedMs) },
      idleRssMiB: { perNode: idle, max: idleMax },
      rssAfterLoadMiB: { perNode: afterLoad, max: afterLoad.every((value) => value === null) ? null : Math.max(...afterLoad.filter((value): value is number => value !== null)) },
      goals: {
        idleSubmitToCommitP50Ms: measuredGoal(idleLatencies.length === 0 ? null : idleSubmitToCommitMs.p50, meshBenchGoals.submitToCommitP50Ms),
        idleSubmitToCommitP99Ms: measuredGoal(idleLatencies.length === 0 ? null : idleSubmitToCommitMs.p99, meshBenchGoals.submitToCommitP99Ms),
        loadedSubmitToCommitP50Ms: measuredGoal(submitToCommitMs.p50, meshBenchGoals.submitToCommitP50Ms),
        loadedSubmitToCommitP99Ms: measuredGoal(submitToCommitMs.p99, meshBenchGoals.submitToCommitP99Ms),
        failoverToPlacingP99Ms: measuredGoal(placingMs.length === 0 ? null : failoverPercentiles.p99, meshBenchGoals.failoverToPlacingP99Ms),
        idleRssMiB: measuredGoal(idleMax, meshBenchGoals.idleRssMiB),
      },
      machine: { cpus: availableParallelism(), node: process.version, loadAverageAtStart: Math.round(loadAtStart * 100) / 100, loadAverageAtEnd: Math.round(loadavg()[0]! * 100) / 100 },
      wallSeconds: Math.round((performance.now() - wallStart) / 100) / 10,
    }
  } finally {
    streams.abort()
    await client?.stop()
    await mesh.stop()
  }
}

/** Resolves once `condition` holds, re-checked whenever a commit arrives (and every 50 ms); rejects after `timeoutMs`. */
async function waitUntil(condition: () => boolean, timeoutMs: number, waiters: Set<() => void>, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 50)
      function done(): void {
        clearTimeout(timer)
        waiters.delete(done)
        resolve()
      }
      waiters.add(done)
    })
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
