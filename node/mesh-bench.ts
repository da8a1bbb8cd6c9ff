// `fabric bench mesh`: real daemons as processes on loopback (a LocalMesh), measured from outside
// through the client protocol. Submit -> committed assignment latency (the client's clock, from the
// submit call to the leader's `assignments` stream reporting the job) in three phases
// (mesh-bench-phases.ts): one submission at a time on an otherwise idle mesh (what a user submitting
// a job sees); paced, an open loop at `ratePerSec` (the latency at that offered load: the goals are
// checked here and on the idle mesh); saturated, `concurrency` in flight (jobs/s and the daemons' CPU
// per job; its latency is mostly queueing, in flight / jobs/s by Little's law). Then leader SIGKILL ->
// a job submitted after the kill committed by the new leader, and idle RSS.
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { availableParallelism, loadavg } from 'node:os'
import type { PeerConfig } from '../consensus/index.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { LocalMesh } from './local-mesh.ts'
import { CommitWatch, sleep, timeOneAtATime, timePaced, timeSaturated, type PhaseContext } from './mesh-bench-phases.ts'

export { defaultPacedRatePerSec } from './mesh-bench-defaults.ts'

export interface MeshBenchOptions {
  nodes: number
  /** Submissions in each of the paced and the saturated phases. */
  jobs: number
  /** The paced phase's rate, submissions per second on their schedule (0: no paced phase). */
  ratePerSec: number
  /** Submissions in flight at once in the saturated phase (spread over the non-leader nodes). */
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
  /** `jobs` submissions at `ratePerSec` on their schedule (null when the rate is 0). */
  paced: { ratePerSec: number; achievedPerSec: number; submitToCommitMs: Percentiles; submitAckMs: Percentiles; daemonCpuMsPerJob: number } | null
  /** Saturated (`concurrency` in flight): mostly queueing behind the daemons' CPU. */
  submitToCommitMs: Percentiles
  submitAckMs: Percentiles
  /** Saturated: the mesh's throughput. */
  jobsPerSec: number
  /** CPU the daemons themselves spent per job when saturated, summed over the mesh (not their jobs' CPU): a figure a loaded machine does not distort the way it does latency. */
  daemonCpuMsPerJob: number
  /** New leaders during the timed phases before the kills (elections the load brought). */
  leaderChangesUnderLoad: number
  failover: { kills: number; leaderLossToPlacingMs: Percentiles & { all: number[] }; leaderLossToElectedMs: Percentiles }
  idleRssMiB: { perNode: (number | null)[]; max: number | null }
  rssAfterLoadMiB: { perNode: (number | null)[]; max: number | null }
  /**
   * The latency goals are checked one at a time on the idle mesh and at the paced rate: a latency is
   * a figure at an offered load, and past the mesh's throughput no rate has one (it grows with the queue).
   */
  goals: Record<'idleSubmitToCommitP50Ms' | 'idleSubmitToCommitP99Ms' | 'pacedSubmitToCommitP50Ms' | 'pacedSubmitToCommitP99Ms' | 'failoverToPlacingP99Ms' | 'idleRssMiB', { goal: number; measured: number | null; met: boolean }>
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

    // Commits as the leader reports them (its own term's commits are known to it at once), following
    // a new leader should the load bring an election.
    const commits = new CommitWatch(host, progress)
    const loadWatch = new AbortController()
    commits.followLeaders(() => mesh.live, AbortSignal.any([loadWatch.signal, streams.signal]))
    const followers = mesh.live.filter((daemon) => daemon !== leader)
    const spec = (index: number): string => JSON.stringify({ name: `bench-${index}`, command: ['true'], resources: { cpu: meshBenchLimits.jobCpu, memory: meshBenchLimits.jobMemory } })
    const context: PhaseContext = {
      submit: async (index) => (await clientCall(host, multiaddr(followers[index % followers.length]!.address), { kind: 'submit', spec: spec(index) })).jobId,
      commits,
      drainTimeoutMs: meshBenchLimits.drainTimeoutMs,
    }
    const cpuMsPerJob = async <T>(jobs: number, phase: () => Promise<T>): Promise<{ result: T; daemonCpuMsPerJob: number }> => {
      const before = mesh.daemons.map((daemon) => daemon.cpuSeconds())
      const result = await phase()
      const used = mesh.daemons.map((daemon, index) => {
        const start = before[index]
        const end = daemon.cpuSeconds()
        return start === null || start === undefined || end === null ? 0 : end - start
      })
      return { result, daemonCpuMsPerJob: Math.round((used.reduce((sum, value) => sum + value, 0) * 1000 * 10) / Math.max(1, jobs)) / 10 }
    }
    let nextIndex = 0
    const indexes = (count: number): number => {
      const first = nextIndex
      nextIndex += count
      return first
    }

    if (options.idleSamples > 0) progress(`timing ${options.idleSamples} submissions one at a time on the idle mesh, ${options.idleIntervalMs} ms apart`)
    const oneAtATime = await timeOneAtATime(context, indexes(options.idleSamples), options.idleSamples, options.idleIntervalMs)

    let paced: MeshBenchResult['paced'] = null
    if (options.ratePerSec > 0) {
      progress(`submitting ${options.jobs} jobs at ${options.ratePerSec} per second, each on its schedule (an open loop)`)
      const { result, daemonCpuMsPerJob } = await cpuMsPerJob(options.jobs, () => timePaced(context, indexes(options.jobs), options.jobs, options.ratePerSec))
      paced = { ratePerSec: options.ratePerSec, achievedPerSec: perSecond(options.jobs, result.elapsedMs), submitToCommitMs: percentiles(result.latenciesMs), submitAckMs: percentiles(result.acksMs), daemonCpuMsPerJob }
      progress(`paced done: p50 ${paced.submitToCommitMs.p50} ms, p99 ${paced.submitToCommitMs.p99} ms`)
      await sleep(options.idleMs)
    }

    progress(`submitting ${options.jobs} jobs through ${followers.length} follower(s), ${options.concurrency} at a time`)
    const saturated = await cpuMsPerJob(options.jobs, () => timeSaturated(context, indexes(options.jobs), options.jobs, options.concurrency))
    loadWatch.abort()
    const leaderChangesUnderLoad = commits.leadersFollowed - 1
    progress(`saturated load done: ${options.jobs} jobs committed in ${(saturated.result.elapsedMs / 1000).toFixed(1)} s`)
    const afterLoad = mesh.daemons.map((daemon) => mib(daemon.rssBytes()))

    // Failovers: SIGKILL the leader, submit one job through a survivor at once, time until the new leader commits it.
    const placingMs: number[] = []
    const electedMs: number[] = []
    for (let kill = 1; kill <= options.kills; kill++) {
      const current = await mesh.waitForLeader(meshBenchLimits.electionTimeoutMs)
      const term = current.status!.term
      const via = mesh.live.find((daemon) => daemon !== current)!
      const killedAt = performance.now()
      await mesh.kill(current)
      const submitted = clientCall(host, multiaddr(via.address), { kind: 'submit', spec: spec(indexes(1)) })
      const next = await mesh.waitForLeader(meshBenchLimits.failoverTimeoutMs, term)
      electedMs.push(performance.now() - killedAt)
      const failoverWatch = new AbortController()
      commits.watch(next, AbortSignal.any([failoverWatch.signal, streams.signal]))
      const { jobId } = await submitted
      await commits.allCommitted([jobId], meshBenchLimits.failoverTimeoutMs, `${jobId} to be committed by the new leader`)
      placingMs.push(commits.committedAt(jobId)! - killedAt)
      failoverWatch.abort()
      progress(`kill ${kill}: ${current.name} killed; ${next.name} elected after ${electedMs.at(-1)!.toFixed(0)} ms, placing after ${placingMs.at(-1)!.toFixed(0)} ms`)
      await mesh.restart(current)
      await mesh.waitForLeader(meshBenchLimits.electionTimeoutMs)
    }

    const idleSubmitToCommitMs = percentiles(oneAtATime.latenciesMs)
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
      paced,
      submitToCommitMs: percentiles(saturated.result.latenciesMs),
      submitAckMs: percentiles(saturated.result.acksMs),
      jobsPerSec: perSecond(options.jobs, saturated.result.elapsedMs),
      daemonCpuMsPerJob: saturated.daemonCpuMsPerJob,
      leaderChangesUnderLoad,
      failover: { kills: placingMs.length, leaderLossToPlacingMs: { ...failoverPercentiles, all: placingMs.map((value) => Math.round(value)) }, leaderLossToElectedMs: percentiles(electedMs) },
      idleRssMiB: { perNode: idle, max: idleMax },
      rssAfterLoadMiB: { perNode: afterLoad, max: afterLoad.every((value) => value === null) ? null : Math.max(...afterLoad.filter((value): value is number => value !== null)) },
      goals: {
        idleSubmitToCommitP50Ms: measuredGoal(oneAtATime.latenciesMs.length === 0 ? null : idleSubmitToCommitMs.p50, meshBenchGoals.submitToCommitP50Ms),
        idleSubmitToCommitP99Ms: measuredGoal(oneAtATime.latenciesMs.length === 0 ? null : idleSubmitToCommitMs.p99, meshBenchGoals.submitToCommitP99Ms),
        pacedSubmitToCommitP50Ms: measuredGoal(paced === null ? null : paced.submitToCommitMs.p50, meshBenchGoals.submitToCommitP50Ms),
        pacedSubmitToCommitP99Ms: measuredGoal(paced === null ? null : paced.submitToCommitMs.p99, meshBenchGoals.submitToCommitP99Ms),
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

const perSecond = (jobs: number, elapsedMs: number): number => Math.round((jobs / (elapsedMs / 1000)) * 10) / 10
