// The Runtime port: what the daemon needs from anything that runs a job's workload (the embedded
// process runtime and the Docker runtime). The daemon turns a core's `start-job`/`stop-job` effects into
// calls on it, and its exit notifications into the core's `job-exited` input. Retries are the
// core's business: a runtime runs a job once per `start`.
import type { JobId } from '../consensus/index.ts'

export interface RunResources {
  /** CPU limit in thousandths of a core (1000 = one core). */
  cpuMillis?: number
  memoryMiB?: number
  /** NVIDIA GPUs: how many (gpuDevices must name that many). */
  gpuCount?: number
  /**
   * Which NVIDIA GPUs, by nvidia-smi index: chosen by the daemon, never by the runtime (gpu-devices.ts).
   * Process runtime: CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES; Docker: a DeviceRequest for them.
   */
  gpuDevices?: readonly number[]
}

export interface RunSpec {
  jobId: JobId
  /** argv[0] and any leading arguments; `args` are appended. */
  command: readonly string[]
  args?: readonly string[]
  /** The job's whole environment on top of a small base (PATH, HOME, FABRIC_JOB_ID): the daemon's own is not inherited. */
  env?: Readonly<Record<string, string>>
  /** Relative to the job's own folder; must stay inside it. */
  workingDir?: string
  /** Ends the job (TERM, then KILL after the grace period) and reports it failed with reason 'timeout'. */
  timeoutMs?: number
  resources?: RunResources
  /** Container image (Docker runtime only; the process runtime ignores it). */
  image?: string
}

export type RunState = 'running' | 'exited' | 'failed' | 'stopped'

export interface JobExit {
  jobId: JobId
  state: Exclude<RunState, 'running'>
  /** The process's exit code; 128 + signal number when a signal ended it (the shell convention). */
  exitCode: number
  signal: NodeJS.Signals | null
  /** Why it ended when not by itself: the reason given to `stop`, `timeout`, or `leaseLapsedReason` (the lease watchdog). */
  reason?: string
  startedAtMs: number
  endedAtMs: number
  /** What the run used, measured at its end (for the document; null where this machine cannot measure). */
  usage: ExitUsage
}

/** A run's usage at exit, as the core records it (consensus' JobUsage). */
export interface ExitUsage {
  cpuSeconds: number | null
  peakMemoryBytes: number | null
  wallMs: number | null
}

export interface RunUsage {
  cpuSeconds?: number
  memoryBytes?: number
  memoryPeakBytes?: number
}

export interface IsolationReport {
  /**
   * 'container': a container of the Docker engine; 'pid-namespace': own PID namespace and session;
   * 'process-group': own session and process group only.
   */
  mode: 'container' | 'pid-namespace' | 'process-group'
  /** Why the stronger mode was not used, when it was not. */
  note?: string
}

export interface LimitsReport {
  requested: RunResources
  enforced: boolean
  /** 'cgroup v1', 'cgroup v2', or 'limits not enforced: <why>'. */
  note: string
}

export interface JobInspection {
  jobId: JobId
  state: RunState
  /** Host PID of the job's outermost process (the process group leader). */
  pid: number
  exitCode?: number
  signal?: NodeJS.Signals | null
  reason?: string
  startedAtMs: number
  endedAtMs?: number
  isolation: IsolationReport
  limits: LimitsReport
  usage?: RunUsage
  stdoutPath: string
  stderrPath: string
}

export interface RunHandle {
  jobId: JobId
  pid: number
  startedAtMs: number
  isolation: IsolationReport
  limits: LimitsReport
  /** Settles once the job and every process it started are gone. */
  exited: Promise<JobExit>
}

export type LogStream = 'stdout' | 'stderr'

export interface LogOptions {
  /** Keep reading as the job writes; ends once the job has exited and everything was delivered. */
  follow?: boolean
  stream?: LogStream | 'both'
  /** Byte offset to start from (per stream); 0 by default. */
  fromBytes?: number
  /** Without follow: at most this many bytes per stream (capped by the runtime's own maximum). */
  maxBytes?: number
  signal?: AbortSignal
}

export interface LogChunk {
  stream: LogStream
  /** Byte offset of this chunk in its stream's log. */
  offsetBytes: number
  text: string
}

export interface StopOptions {
  /** Time between SIGTERM and SIGKILL; the runtime's default when absent. */
  graceMs?: number
}

export type ExitListener = (exit: JobExit) => void

export interface CheckpointOptions {
  /** Keep the job running after the dump (periodic checkpoints); by default the dump ends it (migration). */
  leaveRunning?: boolean
}

export interface Runtime {
  readonly kind: string
  start(spec: RunSpec): Promise<RunHandle>
  /** Ends the job and every process it started; resolves with its exit (already exited: that exit). */
  stop(jobId: JobId, reason: string, options?: StopOptions): Promise<JobExit>
  logs(jobId: JobId, options?: LogOptions): AsyncIterable<LogChunk>
  inspect(jobId: JobId): Promise<JobInspection>
  /**
   * Writes the job's CRIU images and what a restore needs (its spec, its work folder) into
   * `directory` (created; must be empty). Without `leaveRunning` the job ends, state 'stopped',
   * reason 'checkpointed'. Refuses early, with CheckpointUnsupportedError, what cannot be dumped.
   */
  checkpoint(jobId: JobId, directory: string, options?: CheckpointOptions): Promise<void>
  /** Runs the job again from a checkpoint directory written by the same kind of runtime (this machine or another). */
  restore(jobId: JobId, directory: string): Promise<RunHandle>
  /**
   * The node's lease from the committee ends at `deadlineMs`, in milliseconds of CLOCK_MONOTONIC
   * (`monotonicNowMs()`: the same clock in every process of the machine). Past it, a watchdog outside
   * the daemon's event loop (the runtime's spawner process) SIGKILLs every job of this runtime, even
   * while the daemon is paused or dead, their exits carry `leaseLapsedReason`, and starts are refused
   * (LeaseLapsedError). null: no lease, every job is killed now. Call it on every renewal, well before
   * the deadline. Before the first call no lease is watched (jobs run as they always did).
   */
  setLeaseDeadline(deadlineMs: number | null): void
  /** Called once per job end; returns an unsubscribe function. */
  onExit(listener: ExitListener): () => void
  /** Stops every running job and releases what the runtime holds (cgroups, watchers). */
  close(): Promise<void>
}

/** The reason a job's exit carries when the lease watchdog ended it (its state is 'stopped'). */
export const leaseLapsedReason = "the node's lease lapsed"

// ---- Errors: one class per failure, carrying what a user needs to act on it.

/** A start or restore on a node whose lease lapsed or was withdrawn: the mesh may be running the job elsewhere. */
export class LeaseLapsedError extends Error {
  override readonly name = 'LeaseLapsedError'
  readonly jobId: JobId
  readonly runtime: string
  /** The deadline that passed (CLOCK_MONOTONIC ms); null: the lease was withdrawn. */
  readonly deadlineMs: number | null
  constructor(facts: { jobId: JobId; runtime: string; deadlineMs: number | null }) {
    super(`job ${facts.jobId} refused by the ${facts.runtime} runtime: ${facts.deadlineMs === null ? 'the node holds no lease' : `the node's lease lapsed (deadline ${facts.deadlineMs} ms of CLOCK_MONOTONIC)`}`)
    this.jobId = facts.jobId
    this.runtime = facts.runtime
    this.deadlineMs = facts.deadlineMs
  }
}

export class JobNotFoundError extends Error {
  override readonly name = 'JobNotFoundError'
  readonly jobId: JobId
  constructor(facts: { jobId: JobId }) {
    super(`job ${facts.jobId} is not known to this runtime`)
    this.jobId = facts.jobId
  }
}

export class JobAlreadyRunningError extends Error {
  override readonly name = 'JobAlreadyRunningError'
  readonly jobId: JobId
  readonly pid: number
  readonly startedAtMs: number
  constructor(facts: { jobId: JobId; pid: number; startedAtMs: number }) {
    super(`job ${facts.jobId} is already running (pid ${facts.pid}, started ${new Date(facts.startedAtMs).toISOString()})`)
    this.jobId = facts.jobId
    this.pid = facts.pid
    this.startedAtMs = facts.startedAtMs
  }
}

export class SpawnFailedError extends Error {
  override readonly name = 'SpawnFailedError'
  readonly jobId: JobId
  readonly command: readonly string[]
  readonly reason: string
  constructor(facts: { jobId: JobId; command: readonly string[]; reason: string }) {
    super(`job ${facts.jobId} could not start ${JSON.stringify(facts.command[0] ?? '')}: ${facts.reason}`)
    this.jobId = facts.jobId
    this.command = facts.command
    this.reason = facts.reason
  }
}

export class InvalidRunSpecError extends Error {
  override readonly name = 'InvalidRunSpecError'
  readonly jobId: string
  readonly field: string
  readonly reason: string
  constructor(facts: { jobId: string; field: string; reason: string }) {
    super(`job ${facts.jobId}: ${facts.field} ${facts.reason}`)
    this.jobId = facts.jobId
    this.field = facts.field
    this.reason = facts.reason
  }
}

export class RuntimeAtCapacityError extends Error {
  override readonly name = 'RuntimeAtCapacityError'
  readonly jobId: JobId
  readonly running: number
  readonly maxRunningJobs: number
  constructor(facts: { jobId: JobId; running: number; maxRunningJobs: number }) {
    super(`job ${facts.jobId} refused: ${facts.running} jobs already running, the maximum is ${facts.maxRunningJobs}`)
    this.jobId = facts.jobId
    this.running = facts.running
    this.maxRunningJobs = facts.maxRunningJobs
  }
}

export class RuntimeClosedError extends Error {
  override readonly name = 'RuntimeClosedError'
  readonly runtime: string
  constructor(facts: { runtime: string }) {
    super(`the ${facts.runtime} runtime is closed`)
    this.runtime = facts.runtime
  }
}

export class CheckpointUnsupportedError extends Error {
  override readonly name = 'CheckpointUnsupportedError'
  readonly jobId: JobId
  readonly runtime: string
  readonly operation: 'checkpoint' | 'restore'
  readonly reason: string
  constructor(facts: { jobId: JobId; runtime: string; operation: 'checkpoint' | 'restore'; reason: string }) {
    super(`${facts.operation} of job ${facts.jobId} is not supported by the ${facts.runtime} runtime: ${facts.reason}`)
    this.jobId = facts.jobId
    this.runtime = facts.runtime
    this.operation = facts.operation
    this.reason = facts.reason
  }
}

export class CheckpointFailedError extends Error {
  override readonly name = 'CheckpointFailedError'
  readonly jobId: JobId
  readonly runtime: string
  readonly operation: 'checkpoint' | 'restore'
  readonly reason: string
  /** Where the full CRIU log is, when there is one. */
  readonly logPath: string | undefined
  constructor(facts: { jobId: JobId; runtime: string; operation: 'checkpoint' | 'restore'; reason: string; logPath?: string }) {
    super(`${facts.operation} of job ${facts.jobId} failed in the ${facts.runtime} runtime: ${facts.reason}${facts.logPath === undefined ? '' : ` (log: ${facts.logPath})`}`)
    this.jobId = facts.jobId
    this.runtime = facts.runtime
    this.operation = facts.operation
    this.reason = facts.reason
    this.logPath = facts.logPath
  }
}

/** The runtime's engine cannot be reached (no Docker daemon on the socket): the node runs what its other runtimes can. */
export class RuntimeUnavailableError extends Error {
  override readonly name = 'RuntimeUnavailableError'
  readonly runtime: string
  readonly endpoint: string
  readonly reason: string
  constructor(facts: { runtime: string; endpoint: string; reason: string }) {
    super(`the ${facts.runtime} runtime is unavailable: no engine answers at ${facts.endpoint} (${facts.reason})`)
    this.runtime = facts.runtime
    this.endpoint = facts.endpoint
    this.reason = facts.reason
  }
}

/** The logger a runtime is given: node/'s Logger satisfies it. */
export interface RuntimeLogger {
  debug(event: string, fields?: Record<string, unknown>): void
  info(event: string, fields?: Record<string, unknown>): void
  warn(event: string, fields?: Record<string, unknown>): void
  error(event: string, fields?: Record<string, unknown>): void
}

/** Splits chunks into whole lines per stream (a last line without newline is delivered at the end). */
export async function* logLines(chunks: AsyncIterable<LogChunk>): AsyncGenerator<{ stream: LogStream; line: string }> {
  const pending: Record<LogStream, string> = { stdout: '', stderr: '' }
  for await (const chunk of chunks) {
    const parts = (pending[chunk.stream] + chunk.text).split('\n')
    pending[chunk.stream] = parts.pop() ?? ''
    for (const line of parts) yield { stream: chunk.stream, line }
  }
  for (const stream of ['stdout', 'stderr'] as const) if (pending[stream] !== '') yield { stream, line: pending[stream] }
}
