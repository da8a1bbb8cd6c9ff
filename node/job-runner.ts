// Carries the core's job effects to a Runtime and the runtime's exits back to the core: `start-job`
// -> runtime.start (what to run comes from job-launch.ts), `stop-job` -> runtime.stop, a run's end
// -> `onExit` (the Shuttle steps it into the core as `job-exited`; a run the core stopped is reported
// too, so its record says how it ended), the core's lease -> the runtime's watchdog deadline. Work on
// one job is serialized (a start waits for the stop before it); nothing here blocks the core's step loop.
//
// A ledger of local runs in the store survives crashes. On restart (`recover`, before the core's
// first step) every run that was in flight when the old daemon died is ended for sure (its
// processes, if any outlived the daemon, are killed, checked by PID and start time) and reported
// as lost with exit code 137, like a SIGKILL. A run that had ended, and whose exit was handed to
// the core, is not run again when the core asks for the same assignment again: its exit is replayed.
//
// GPUs: a run that asks for some is given device indices from the node's free ones as it launches
// (gpu-allocator.ts), and gives them back when it ends. The leader never places more GPUs on a node
// than it offers, but the core counts a run it stops as gone at once: a start may find its devices
// still held by a run that is stopping, and waits for them (bounded). Recovery kills every run a
// previous daemon left, so no device is held across a restart.
import type { Document, JobId, JobUsage } from '../consensus/index.ts'
import { isDead, leaseLapsedReason, livingGroupMembers, monotonicNowMs, processStartTicks, processTree, type JobExit, type LogChunk, type LogOptions, type RunHandle, type Runtime } from '../runtime/index.ts'
import { GpuAllocator, GpuShortageError } from './gpu-allocator.ts'
import { runSpecFor, type StartJobEffect } from './job-launch.ts'
import type { Logger } from './logger.ts'
import type { LocalRunRecord } from './store.ts'

/** The exit code reported for a run that ended with the daemon (as if SIGKILLed: 128 + 9). */
export const lostWithDaemonExitCode = 137
/** The exit code reported for a run that could not be launched (the shell's "command not found"). */
export const launchFailedExitCode = 127
/** The exit code reported for a run its timeout ended that still exited 0 (GNU timeout's): a timeout is a failure. */
export const timedOutExitCode = 124
/** Launch failures and ended runs remembered for `fabric job` (oldest forgotten first). */
export const maxRememberedLaunchErrors = 1_024
export const maxRememberedRuns = 4_096
/** How long `recover` waits for a leftover process to die after SIGKILL. */
export const leftoverKillWaitMs = 5_000
/** How long a start waits for GPUs held by runs being stopped (their stop's grace period, and some). */
export const gpuReleaseWaitMs = 30_000

export interface LocalRunStore {
  putLocalRun(run: LocalRunRecord): Promise<void>
  deleteLocalRun(jobId: string): Promise<void>
  localRuns(): Promise<LocalRunRecord[]>
}

export interface JobRunnerComponents {
  runtime: Runtime
  store: LocalRunStore
  logger: Logger
  nowMs: () => number
  /** The node's GPU devices (default: none; a run asking for GPUs then fails to launch). */
  gpus?: GpuAllocator
  /**
   * A run ended (by itself, stopped, or killed by the lease watchdog: `leaseLapsed`) or could not
   * start: hand its exit code, and what it used when measured, to the core.
   */
  onExit(jobId: JobId, exitCode: number, usage?: JobUsage, leaseLapsed?: boolean): void
}

/** What this node's runtime knows of a job (for `fabric job`). */
export interface LocalJobState {
  state: 'starting' | 'running' | 'stopping' | 'exited' | 'failed' | 'stopped' | 'launch-failed' | 'lost'
  pid: number | null
  exitCode: number | null
  reason: string | null
  /** The GPU device indices the run was given (absent when it asked for none). */
  gpus?: readonly number[]
}

interface LocalRun {
  term: number
  seq: number
  state: 'starting' | 'running' | 'ended'
  /** Set when the core asked for the stop: the run's end is then not reported back. */
  stopReason: string | null
  pid: number | null
  exit: JobExit | null
  /** The GPU device indices it was given ([] for none); held until it ends. */
  gpus: readonly number[]
}

export class JobRunner {
  readonly #components: JobRunnerComponents
  readonly #runs = new Map<JobId, LocalRun>()
  readonly #ledger = new Map<JobId, LocalRunRecord>()
  readonly #chains = new Map<JobId, Promise<void>>()
  readonly #launchErrors = new Map<JobId, string>()
  readonly #lost = new Set<JobId>()
  readonly #gpus: GpuAllocator
  /** Runs holding GPUs (a replaced run of the same job may still hold some while it stops). */
  readonly #gpuHolders = new Set<LocalRun>()
  #closing = false
  /** The lease's end last set (core clock): a new lease after none, or after a lapse, is logged. */
  #leaseUntilMs = Number.NEGATIVE_INFINITY

  constructor(components: JobRunnerComponents) {
    this.#components = components
    this.#gpus = components.gpus ?? new GpuAllocator([])
  }

  /**
   * Ends what a previous daemon left running and returns the runs lost with it (exit 137); drops
   * entries of jobs the document no longer holds. Call before the core's first step.
   */
  async recover(inDocument: (jobId: JobId) => boolean): Promise<{ jobId: JobId; exitCode: number }[]> {
    const lost: { jobId: JobId; exitCode: number }[] = []
    for (const record of await this.#components.store.localRuns()) {
      const jobId = record.jobId as JobId
      const killed = record.exitCode === null ? await killLeftover(record) : false
      if (!inDocument(jobId)) {
        await this.#components.store.deleteLocalRun(jobId)
        continue
      }
      this.#ledger.set(jobId, record)
      if (record.exitCode !== null) continue
      this.#components.logger.warn('job-lost-with-daemon', { jobId, pid: record.pid, leftoverKilled: killed, ...(record.gpus === undefined ? {} : { gpus: record.gpus }) })
      this.#lost.add(jobId)
      lost.push({ jobId, exitCode: lostWithDaemonExitCode })
    }
    return lost
  }

  /**
   * The core's start-job: launch the run (asynchronously; its end comes back through onExit). With
   * `restore`, the run comes back from a snapshot instead; should that fail, it starts afresh.
   */
  start(effect: StartJobEffect, document: Document, restore?: () => Promise<RunHandle>): void {
    const jobId = effect.jobId
    const recorded = this.#ledger.get(jobId)
    if (recorded !== undefined && recorded.exitCode !== null && recorded.term === effect.term && recorded.seq === effect.seq) {
      // This very run ended before a restart and the core asks again: replay its exit, do not run it twice.
      this.#components.logger.info('job-exit-replayed', { jobId, exitCode: recorded.exitCode })
      const { exitCode, usage } = recorded
      queueMicrotask(() => this.#components.onExit(jobId, exitCode, usage))
      return
    }
    // Read the record now: the document handed to us is the one the effect was made from.
    const plan = runSpecFor(effect, document)
    const run: LocalRun = { term: effect.term, seq: effect.seq, state: 'starting', stopReason: null, pid: null, exit: null, gpus: [] }
    this.#runs.delete(jobId)
    this.#runs.set(jobId, run)
    this.#forgetOldRuns()
    this.#lost.delete(jobId)
    this.#launchErrors.delete(jobId)
    this.#serialize(jobId, async () => {
      if (run.stopReason !== null) return this.#ended(jobId, run, null)
      if (!plan.ok) return this.#launchFailed(jobId, run, plan.reason)
      let spec = plan.spec
      const gpuCount = spec.resources?.gpuCount ?? 0
      if (gpuCount > 0) {
        try {
          run.gpus = await this.#takeGpus(jobId, gpuCount)
        } catch (error) {
          return this.#launchFailed(jobId, run, (error as Error).message)
        }
        this.#gpuHolders.add(run)
        spec = { ...spec, resources: { ...spec.resources, gpuDevices: run.gpus } }
        // Stopped while it waited for devices: it never launches.
        if (run.stopReason !== null) return this.#ended(jobId, run, null)
      }
      let handle: RunHandle | undefined
      if (restore !== undefined) {
        try {
          handle = await restore()
        } catch (error) {
          this.#components.logger.warn('job-restore-failed', { jobId, reason: (error as Error).message, fallback: 'a fresh start' })
        }
      }
      try {
        handle ??= await this.#components.runtime.start(spec)
      } catch (error) {
        return this.#launchFailed(jobId, run, (error as Error).message)
      }
      run.pid = handle.pid
      run.state = 'running'
      const record: LocalRunRecord = { jobId, term: run.term, seq: run.seq, pid: handle.pid, pidStartTicks: (await processStartTicks(handle.pid)) ?? null, startedAtMs: handle.startedAtMs, exitCode: null, ...(run.gpus.length > 0 ? { gpus: [...run.gpus] } : {}) }
      this.#ledger.set(jobId, record)
      await this.#components.store.putLocalRun(record)
      void handle.exited.then((exit) => {
        // Free the moment the run is gone, not after the job's queued work: a later run of the same job may wait for them.
        this.#releaseGpus(run)
        this.#serialize(jobId, () => this.#ended(jobId, run, exit))
      })
    })
  }

  /**
   * A checkpoint that ends the run is about to be taken (a migration): the run's end is then the
   * checkpoint's doing, reported by the core's job-checkpointed input, not as an exit.
   */
  endsWithCheckpoint(jobId: JobId): void {
    const run = this.#runs.get(jobId)
    if (run !== undefined && run.state !== 'ended' && run.stopReason === null) run.stopReason = 'checkpointed'
  }

  /** A checkpoint meant to end the run failed and the run goes on: its end is reported again. */
  checkpointFailed(jobId: JobId): void {
    const run = this.#runs.get(jobId)
    if (run !== undefined && run.state !== 'ended' && run.stopReason === 'checkpointed') run.stopReason = null
  }

  /**
   * The core's lease (untilMs on the core's clock, `nowMs`'s): the runtime's watchdog, outside this
   * process's event loop, kills every job once it passes without a later one.
   */
  setLease(untilMs: number): void {
    const nowMs = this.#components.nowMs()
    const remainingMs = untilMs - nowMs
    if (this.#leaseUntilMs < nowMs) this.#components.logger.info('lease-held', { afterLapse: Number.isFinite(this.#leaseUntilMs), remainingMs })
    this.#leaseUntilMs = untilMs
    this.#components.runtime.setLeaseDeadline(Number.isFinite(remainingMs) ? monotonicNowMs() + remainingMs : null)
  }

  /** The core's stop-job: end the run (its end is reported: the core records how it ended). */
  stop(jobId: JobId, reason: string): void {
    const run = this.#runs.get(jobId)
    if (run === undefined || run.state === 'ended' || run.stopReason !== null) return
    run.stopReason = reason
    // Queued behind a start in flight (which then does not launch at all); a later start waits for it.
    this.#serialize(jobId, async () => {
      if (run.state === 'running') await this.#components.runtime.stop(jobId, reason)
    })
  }

  /** The job left for the archive: its ledger entry is no longer needed (what `local` says stays, bounded). */
  forget(jobId: JobId): void {
    const run = this.#runs.get(jobId)
    if (run !== undefined && run.state !== 'ended') return
    this.#lost.delete(jobId)
    if (!this.#ledger.delete(jobId)) return
    this.#serialize(jobId, () => this.#components.store.deleteLocalRun(jobId))
  }

  #forgetOldRuns(): void {
    if (this.#runs.size <= maxRememberedRuns) return
    for (const [jobId, run] of this.#runs) {
      if (this.#runs.size <= maxRememberedRuns) return
      if (run.state === 'ended') this.#runs.delete(jobId)
    }
  }

  local(jobId: JobId): LocalJobState | undefined {
    const launchError = this.#launchErrors.get(jobId)
    if (launchError !== undefined) return { state: 'launch-failed', pid: null, exitCode: launchFailedExitCode, reason: launchError }
    const run = this.#runs.get(jobId)
    if (run !== undefined) {
      const gpus = run.gpus.length > 0 ? { gpus: run.gpus } : {}
      if (run.state === 'ended') return { state: run.exit?.state ?? 'stopped', pid: run.pid, exitCode: run.exit?.exitCode ?? null, reason: run.exit?.reason ?? run.stopReason, ...gpus }
      return { state: run.stopReason !== null ? 'stopping' : run.state, pid: run.pid, exitCode: null, reason: run.stopReason, ...gpus }
    }
    const recorded = this.#ledger.get(jobId)
    const recordedGpus = recorded?.gpus === undefined ? {} : { gpus: recorded.gpus }
    if (this.#lost.has(jobId)) return { state: 'lost', pid: null, exitCode: lostWithDaemonExitCode, reason: 'the run ended with the previous daemon', ...recordedGpus }
    if (recorded !== undefined) return { state: recorded.exitCode === null ? 'lost' : recorded.exitCode === 0 ? 'exited' : 'failed', pid: recorded.pid, exitCode: recorded.exitCode, reason: null, ...recordedGpus }
    return undefined
  }

  /** True while the job has a run here that has not ended. */
  isActive(jobId: JobId): boolean {
    const run = this.#runs.get(jobId)
    return run !== undefined && run.state !== 'ended'
  }

  /** The job's output on this node (files outlive the run and the daemon). */
  logs(jobId: JobId, options: LogOptions): AsyncIterable<LogChunk> {
    return this.#components.runtime.logs(jobId, options)
  }

  /** Stops every run (they are lost with this daemon: the ledger keeps them in flight for the next start). */
  async close(): Promise<void> {
    this.#closing = true
    await this.#components.runtime.close()
    await Promise.all([...this.#chains.values()])
  }

  #launchFailed(jobId: JobId, run: LocalRun, reason: string): Promise<void> {
    this.#components.logger.warn('job-launch-failed', { jobId, reason })
    if (this.#launchErrors.size >= maxRememberedLaunchErrors) this.#launchErrors.delete(this.#launchErrors.keys().next().value!)
    this.#launchErrors.set(jobId, reason)
    return this.#ended(jobId, run, null, launchFailedExitCode)
  }

  async #ended(jobId: JobId, run: LocalRun, exit: JobExit | null, exitCode = exitCodeOf(exit)): Promise<void> {
    run.state = 'ended'
    run.exit = exit
    // Its devices are free before the core hears of the end (and may start the next GPU job here).
    this.#releaseGpus(run)
    if (this.#runs.get(jobId) !== run) return // a later run of the same job replaced this one
    if (this.#closing) return // killed by our own shutdown: the ledger keeps it in flight (lost at restart)
    if (run.stopReason !== null) {
      // The core stopped it (fenced, finished elsewhere, its lease lapsed): it records how it ended (finished, if it did first).
      if (this.#ledger.delete(jobId)) await this.#components.store.deleteLocalRun(jobId)
      if (run.stopReason !== 'checkpointed') this.#components.onExit(jobId, exitCode, exit?.usage, exit?.reason === leaseLapsedReason)
      return
    }
    const recorded = this.#ledger.get(jobId)
    if (recorded !== undefined && recorded.term === run.term && recorded.seq === run.seq) {
      // Durable before the core hears it: after a crash the same assignment is answered, not rerun.
      const ended: LocalRunRecord = { ...recorded, exitCode, ...(exit?.usage === undefined ? {} : { usage: exit.usage }) }
      this.#ledger.set(jobId, ended)
      await this.#components.store.putLocalRun(ended)
    }
    this.#components.onExit(jobId, exitCode, exit?.usage, exit?.reason === leaseLapsedReason)
  }

  /**
   * Takes `count` devices for the job's run. While the shortfall is held by runs the core is
   * stopping, waits for them to end (at most gpuReleaseWaitMs); otherwise GpuShortageError at once:
   * the leader's accounting should never send more than the node has free.
   */
  async #takeGpus(jobId: JobId, count: number): Promise<number[]> {
    const deadline = Date.now() + gpuReleaseWaitMs
    let logged = false
    for (;;) {
      try {
        return this.#gpus.acquire(jobId, count)
      } catch (error) {
        if (!(error instanceof GpuShortageError) || !this.#stoppingRunHoldsGpus() || Date.now() >= deadline) throw error
        if (!logged) this.#components.logger.info('job-waits-for-gpus', { jobId, asked: count, free: error.free })
        logged = true
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          stopListening()
          resolve()
        }
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()))
        const stopListening = this.#gpus.onRelease(done)
      })
    }
  }

  #releaseGpus(run: LocalRun): void {
    if (this.#gpuHolders.delete(run)) this.#gpus.release(run.gpus)
  }

  #stoppingRunHoldsGpus(): boolean {
    for (const run of this.#gpuHolders) if (run.stopReason !== null) return true
    return false
  }

  /** Runs `work` after everything queued for the job; failures are logged, never thrown. */
  #serialize(jobId: JobId, work: () => Promise<void>): void {
    const previous = this.#chains.get(jobId) ?? Promise.resolve()
    const next = previous.then(work).catch((error: unknown) => this.#components.logger.error('job-runner-failed', { jobId, error }))
    this.#chains.set(jobId, next)
    void next.then(() => {
      if (this.#chains.get(jobId) === next) this.#chains.delete(jobId)
    })
  }
}

/** The code the core hears: a run ended by its timeout failed, even if it caught the signal and exited 0. */
function exitCodeOf(exit: JobExit | null): number {
  if (exit === null) return launchFailedExitCode
  return exit.state === 'failed' && exit.exitCode === 0 ? timedOutExitCode : exit.exitCode
}

/**
 * Kills what is left of a run whose daemon died; true if something was. The job's first process led
 * its own process group, so the group's id is the recorded PID. The PID still naming a process with
 * the recorded start time, or naming none while the group lives on (the kernel does not hand out a
 * PID that a living group still carries), means the processes are that run's; a PID now naming
 * another process means the run's group is long gone.
 */
async function killLeftover(record: LocalRunRecord): Promise<boolean> {
  const ticks = await processStartTicks(record.pid)
  if (ticks !== undefined && ticks !== record.pidStartTicks) return false
  const leaderAlive = ticks !== undefined && !(await isDead(record.pid))
  const doomed = [...new Set([...(leaderAlive ? await processTree(record.pid) : []), ...(await livingGroupMembers(record.pid))])]
  if (doomed.length === 0) return false
  signal(-record.pid, 'SIGKILL')
  for (const pid of doomed) signal(pid, 'SIGKILL')
  const deadline = Date.now() + leftoverKillWaitMs
  while (Date.now() < deadline && !(await Promise.all(doomed.map(isDead))).every(Boolean)) await new Promise((resolve) => setTimeout(resolve, 20))
  return true
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch {
    // Already gone.
  }
}
