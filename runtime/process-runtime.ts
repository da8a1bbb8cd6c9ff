// The process runtime, the embedded default: a job's command runs as a child process in its own
// session and process group (and its own PID namespace when root and unshare allow), in a folder of
// its own under DATA/jobs/<jobId>/, with stdout and stderr written straight to files there (no pipes
// through the daemon: logs survive it, and CRIU can see them later). cgroups give limits and usage.
//
// Launch chain: /bin/sh (setsid by Node: session and group leader) joins the job's cgroups, tells us
// on fd 3, then execs the command, or `unshare --pid --fork --kill-child setsid --wait COMMAND` whose
// forked child is PID 1 of the namespace and leads its own session there (as CRIU wants). Both are
// run through `setpriv --pdeathsig KILL` where available, so a job dies with the daemon that started it.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdir, open, readFile, stat } from 'node:fs/promises'
import { constants } from 'node:os'
import { isAbsolute, join, normalize, relative } from 'node:path'
import type { JobId } from '../consensus/index.ts'
import { probeCgroups, type CgroupSupport, type JobCgroup } from './cgroups.ts'
import { childPids, isDead, livingGroupMembers, probeParentDeathSignal, probePidNamespace, resolveExecutable, type NamespaceSupport, type ParentDeathSupport } from './isolation.ts'
import { mergeAsync, readLogFile } from './log-files.ts'
import {
  CheckpointUnsupportedError,
  InvalidRunSpecError,
  JobAlreadyRunningError,
  JobNotFoundError,
  RuntimeAtCapacityError,
  RuntimeClosedError,
  SpawnFailedError,
  type ExitListener,
  type IsolationReport,
  type JobExit,
  type JobInspection,
  type LimitsReport,
  type LogChunk,
  type LogOptions,
  type LogStream,
  type RunHandle,
  type RunSpec,
  type RunUsage,
  type Runtime,
  type RuntimeLogger,
  type StopOptions,
} from './runtime.ts'

export interface ProcessRuntimeLimits {
  /** Jobs running at once; a further start is refused with RuntimeAtCapacityError. */
  maxRunningJobs: number
  /** Finished jobs remembered for inspect and logs (oldest forgotten first; their files stay). */
  maxRememberedJobs: number
  /** Bytes one `logs` call returns per stream without follow. */
  maxLogBytesPerCall: number
  /** Bytes read from a log file at once. */
  logReadChunkBytes: number
  /** A follower re-checks its file this often even without a change notice. */
  logFollowPollMs: number
  /** Time between SIGTERM and SIGKILL on stop and timeout. */
  stopGraceMs: number
  /** How long the launcher may take to report that it joined its cgroups. */
  launchTimeoutMs: number
  /** How long we wait, after the job's leader is gone, for the rest of its processes to go. */
  reapWaitMs: number
  maxCommandArguments: number
}

export const defaultProcessRuntimeLimits: ProcessRuntimeLimits = {
  maxRunningJobs: 64,
  maxRememberedJobs: 1024,
  maxLogBytesPerCall: 1024 * 1024,
  logReadChunkBytes: 64 * 1024,
  logFollowPollMs: 500,
  stopGraceMs: 10_000,
  launchTimeoutMs: 10_000,
  reapWaitMs: 5_000,
  maxCommandArguments: 4096,
}

export interface ProcessRuntimeInit {
  /** The daemon's data folder; jobs live in DATA/jobs/<jobId>/. */
  dataDir: string
  limits?: Partial<ProcessRuntimeLimits>
  /** 'auto' uses a PID namespace when the machine allows; 'off' never does. */
  pidNamespace?: 'auto' | 'off'
  /** 'auto' uses cgroups when writable; 'off' never does (limits then reported not enforced). */
  cgroups?: 'auto' | 'off'
  /**
   * 'auto' (the default): a job's first process gets SIGKILL when the daemon dies, even by SIGKILL,
   * ending a namespaced job whole (its PID 1 goes with unshare); 'off': jobs outlive the daemon.
   */
  dieWithDaemon?: 'auto' | 'off'
  /** PATH given to jobs that set none (and used to find their command). */
  jobPath?: string
}

export interface ProcessRuntimeComponents {
  logger: RuntimeLogger
  nowMs?: () => number
}

/** Job ids become folder and cgroup names: keep them to a safe alphabet. */
const jobIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const defaultJobPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

// Joins each cgroup.procs file given (saying so on stderr when it cannot), then runs the command.
const launcherScript = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do { echo $$ > "$1"; } 2>/dev/null || echo "fabric-launch: could not join cgroup $1; limits not enforced" >&2; shift; n=$((n - 1)); done',
  'exec "$@"',
].join('\n')

interface Run {
  jobId: JobId
  spec: RunSpec
  child: ChildProcess
  pid: number
  namespace: boolean
  startedAtMs: number
  isolation: IsolationReport
  limits: LimitsReport
  cgroup: JobCgroup | undefined
  stdoutPath: string
  stderrPath: string
  exit: JobExit | undefined
  exited: Promise<JobExit>
  resolveExited: (exit: JobExit) => void
  /** Set by stop or timeout: why we are ending it. */
  ending: { reason: string; timedOut: boolean } | undefined
  timeoutTimer: NodeJS.Timeout | undefined
  usage: RunUsage | undefined
  /** We sent SIGKILL to the workload. */
  killed: boolean
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process'
  readonly #dataDir: string
  readonly #limits: ProcessRuntimeLimits
  readonly #logger: RuntimeLogger
  readonly #nowMs: () => number
  readonly #jobPath: string
  readonly #instanceName = `fabric-${process.pid}-${randomUUID().slice(0, 8)}`
  readonly #runs = new Map<JobId, Run>()
  /** Job ids reserved by a start in progress (before the child exists). */
  readonly #starting = new Set<JobId>()
  readonly #listeners = new Set<ExitListener>()
  readonly #removals = new Set<Promise<unknown>>()
  readonly #namespace: Promise<NamespaceSupport>
  readonly #parentDeath: Promise<ParentDeathSupport>
  readonly #cgroups: Promise<CgroupSupport>
  #closed = false

  constructor(init: ProcessRuntimeInit, components: ProcessRuntimeComponents) {
    this.#dataDir = init.dataDir
    this.#limits = { ...defaultProcessRuntimeLimits, ...init.limits }
    this.#logger = components.logger
    this.#nowMs = components.nowMs ?? Date.now
    this.#jobPath = init.jobPath ?? defaultJobPath
    this.#namespace = init.pidNamespace === 'off' ? Promise.resolve({ available: false, reason: 'PID namespaces turned off in the runtime settings' }) : probePidNamespace()
    this.#parentDeath = init.dieWithDaemon === 'off' ? Promise.resolve({ available: false, reason: 'turned off in the runtime settings' }) : probeParentDeathSignal()
    this.#cgroups = init.cgroups === 'off' ? Promise.resolve({ available: false, reason: 'cgroups turned off in the runtime settings' }) : probeCgroups(this.#instanceName)
  }

  /** What this machine gives jobs (probed once). */
  async isolation(): Promise<{ pidNamespace: NamespaceSupport; cgroups: { available: true; version: 1 | 2 } | { available: false; reason: string } }> {
    const cgroups = await this.#cgroups
    return { pidNamespace: await this.#namespace, cgroups: cgroups.available ? { available: true, version: cgroups.version } : cgroups }
  }

  jobDir(jobId: JobId): string {
    return join(this.#dataDir, 'jobs', jobId)
  }

  async start(spec: RunSpec): Promise<RunHandle> {
    if (this.#closed) throw new RuntimeClosedError({ runtime: this.kind })
    const jobId = spec.jobId
    if (!jobIdPattern.test(jobId)) throw new InvalidRunSpecError({ jobId, field: 'jobId', reason: `must match ${jobIdPattern}` })
    const argv = [...spec.command, ...(spec.args ?? [])]
    if (spec.command.length === 0 || argv[0] === '') throw new InvalidRunSpecError({ jobId, field: 'command', reason: 'is empty' })
    if (argv.length > this.#limits.maxCommandArguments) throw new InvalidRunSpecError({ jobId, field: 'command', reason: `has ${argv.length} arguments, at most ${this.#limits.maxCommandArguments}` })
    if (spec.timeoutMs !== undefined && !(spec.timeoutMs > 0)) throw new InvalidRunSpecError({ jobId, field: 'timeoutMs', reason: 'must be positive' })
    const existing = this.#runs.get(jobId)
    if (existing !== undefined && existing.exit === undefined) throw new JobAlreadyRunningError({ jobId, pid: existing.pid, startedAtMs: existing.startedAtMs })
    if (this.#starting.has(jobId)) throw new JobAlreadyRunningError({ jobId, pid: 0, startedAtMs: this.#nowMs() })
    const running = this.#runningCount() + this.#starting.size
    if (running >= this.#limits.maxRunningJobs) throw new RuntimeAtCapacityError({ jobId, running, maxRunningJobs: this.#limits.maxRunningJobs })
    this.#starting.add(jobId)
    try {
      return await this.#launch(spec, argv)
    } finally {
      this.#starting.delete(jobId)
    }
  }

  async #launch(spec: RunSpec, argv: string[]): Promise<RunHandle> {
    const jobId = spec.jobId
    const jobDir = this.jobDir(jobId)
    const workRoot = join(jobDir, 'work')
    const workingDir = normalize(join(workRoot, spec.workingDir ?? '.'))
    const inside = relative(workRoot, workingDir)
    if (inside.startsWith('..') || isAbsolute(inside)) throw new InvalidRunSpecError({ jobId, field: 'workingDir', reason: `leaves the job's folder (${spec.workingDir})` })
    try {
      await mkdir(workingDir, { recursive: true })
    } catch (error) {
      throw new SpawnFailedError({ jobId, command: argv, reason: `cannot create working folder ${workingDir}: ${(error as Error).message}` })
    }
    const env: Record<string, string> = { PATH: this.#jobPath, HOME: workRoot, FABRIC_JOB_ID: jobId, ...spec.env }
    const executable = await resolveExecutable(argv[0] ?? '', env.PATH ?? this.#jobPath, workingDir)
    if (executable === undefined) throw new SpawnFailedError({ jobId, command: argv, reason: `not found or not executable (PATH=${env.PATH})` })

    const namespace = await this.#namespace
    const cgroups = await this.#cgroups
    const requested = { ...spec.resources }
    let cgroup: JobCgroup | undefined
    let limitsNote: string
    if (cgroups.available) {
      try {
        cgroup = await cgroups.createJob(`${jobId}-${randomUUID().slice(0, 8)}`, requested)
        limitsNote = cgroup.note
      } catch (error) {
        limitsNote = `limits not enforced: cannot create the job's cgroup: ${(error as Error).message}`
      }
    } else {
      limitsNote = `limits not enforced: ${cgroups.reason}`
    }

    const stdoutPath = join(jobDir, 'stdout.log')
    const stderrPath = join(jobDir, 'stderr.log')
    // A new run starts new logs (a retry of the same job id does not mix its output with the last).
    const stdoutFile = await open(stdoutPath, 'w')
    const stderrFile = await open(stderrPath, 'w')
    const procsFiles = cgroup?.procsFiles ?? []
    const parentDeath = await this.#parentDeath
    const workload = namespace.available ? [namespace.unshare, '--pid', '--fork', '--kill-child', namespace.setsid, '--wait', executable, ...argv.slice(1)] : [executable, ...argv.slice(1)]
    // setpriv sets the parent-death signal and execs: the PID, group and session stay the launcher's.
    const command = parentDeath.available ? [parentDeath.setpriv, '--pdeathsig', 'KILL', ...workload] : workload
    let child: ChildProcess
    let launched: Promise<{ ok: true } | { ok: false; reason: string }>
    try {
      child = spawn('/bin/sh', ['-c', launcherScript, 'fabric-launch', String(procsFiles.length), ...procsFiles, ...command], {
        cwd: workingDir,
        env,
        detached: true, // setsid: its own session and process group
        stdio: ['ignore', stdoutFile.fd, stderrFile.fd],
        argv0: 'fabric-launch',
      })
      // Listen at once: 'spawn' and 'error' come on the next tick.
      launched = this.#awaitLauncher(child)
    } catch (error) {
      await cgroup?.remove().catch(() => {})
      throw new SpawnFailedError({ jobId, command: argv, reason: (error as Error).message })
    } finally {
      await stdoutFile.close()
      await stderrFile.close()
    }
    const launch = await launched
    if (!launch.ok || child.pid === undefined) {
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL')
      await cgroup?.killAll()
      await cgroup?.remove().catch(() => {})
      const said = (await readFile(stderrPath, 'utf8').catch(() => '')).slice(0, 500).trim()
      throw new SpawnFailedError({ jobId, command: argv, reason: `${launch.ok ? 'no process id' : launch.reason}${said === '' ? '' : ` (it said: ${said})`}` })
    }

    let resolveExited: (exit: JobExit) => void = () => {}
    const exited = new Promise<JobExit>((resolve) => {
      resolveExited = resolve
    })
    const run: Run = {
      jobId,
      spec,
      child,
      pid: child.pid,
      namespace: namespace.available,
      startedAtMs: this.#nowMs(),
      isolation: namespace.available ? { mode: 'pid-namespace' } : { mode: 'process-group', note: namespace.reason },
      limits: { requested, enforced: cgroup !== undefined && cgroup.enforced, note: limitsNote },
      cgroup,
      stdoutPath,
      stderrPath,
      exit: undefined,
      exited,
      resolveExited,
      ending: undefined,
      timeoutTimer: undefined,
      usage: undefined,
      killed: false,
    }
    this.#remember(run)
    if (child.exitCode !== null || child.signalCode !== null) void this.#finish(run, child.exitCode, child.signalCode)
    else child.once('exit', (code, signal) => void this.#finish(run, code, signal))
    if (spec.timeoutMs !== undefined) {
      run.timeoutTimer = setTimeout(() => {
        this.#logger.info('job-timeout', { jobId, timeoutMs: spec.timeoutMs })
        void this.#end(run, { reason: 'timeout', timedOut: true }, this.#limits.stopGraceMs)
      }, spec.timeoutMs)
    }
    this.#logger.info('job-started', { jobId, pid: run.pid, isolation: run.isolation.mode, limits: run.limits.note })
    return { jobId, pid: run.pid, startedAtMs: run.startedAtMs, isolation: run.isolation, limits: run.limits, exited }
  }

  /** Node's 'spawn' (the launcher runs) or 'error' (it could not), bounded. */
  #awaitLauncher(child: ChildProcess): Promise<{ ok: true } | { ok: false; reason: string }> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ ok: false, reason: `the launcher did not start within ${this.#limits.launchTimeoutMs} ms` }), this.#limits.launchTimeoutMs)
      child.once('spawn', () => {
        clearTimeout(timer)
        resolve({ ok: true })
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        resolve({ ok: false, reason: error.message })
      })
    })
  }

  #runningCount(): number {
    let count = 0
    for (const run of this.#runs.values()) if (run.exit === undefined) count += 1
    return count
  }

  #remember(run: Run): void {
    this.#runs.delete(run.jobId)
    this.#runs.set(run.jobId, run)
    if (this.#runs.size <= this.#limits.maxRememberedJobs) return
    for (const [jobId, candidate] of this.#runs) {
      if (this.#runs.size <= this.#limits.maxRememberedJobs) break
      if (candidate.exit !== undefined) this.#runs.delete(jobId)
    }
  }

  #get(jobId: JobId): Run {
    const run = this.#runs.get(jobId)
    if (run === undefined) throw new JobNotFoundError({ jobId })
    return run
  }

  async stop(jobId: JobId, reason: string, options: StopOptions = {}): Promise<JobExit> {
    const run = this.#get(jobId)
    if (run.exit !== undefined) return run.exit
    return this.#end(run, { reason, timedOut: false }, options.graceMs ?? this.#limits.stopGraceMs)
  }

  /** SIGTERM to the workload's process group, SIGKILL to everything after the grace period. */
  async #end(run: Run, ending: { reason: string; timedOut: boolean }, graceMs: number): Promise<JobExit> {
    if (run.exit !== undefined) return run.exit
    if (run.ending !== undefined) return run.exited // already ending: the first reason stands
    run.ending = ending
    if (graceMs > 0) {
      await this.#signalWorkload(run, 'SIGTERM')
      let timer: NodeJS.Timeout | undefined
      await Promise.race([run.exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))])
      clearTimeout(timer)
    }
    if (run.exit === undefined) await this.#killEverything(run)
    return run.exited
  }

  /**
   * A polite signal. In a namespace, unshare blocks SIGTERM and the namespace's PID 1 only receives
   * signals it handles, so it goes to PID 1's own process group (its children get it; PID 1 too
   * if it installed a handler). Otherwise to the job's process group.
   */
  async #signalWorkload(run: Run, signal: NodeJS.Signals): Promise<void> {
    if (!run.namespace) {
      killGroup(run.pid, signal)
      return
    }
    for (const inner of await childPids(run.pid)) killGroup(inner, signal)
  }

  async #killEverything(run: Run): Promise<void> {
    // In a namespace, PID 1's death ends the namespace, and unshare (its parent) reaps it and exits,
    // leaving no orphan for init. Before unshare has forked, killing unshare is enough.
    run.killed = true
    const inner = run.namespace ? await childPids(run.pid).catch(() => []) : []
    for (const pid of inner) killPid(pid, 'SIGKILL')
    if (inner.length === 0) killGroup(run.pid, 'SIGKILL')
    await run.cgroup?.killAll()
  }

  async #finish(run: Run, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (run.exit !== undefined) return
    clearTimeout(run.timeoutTimer)
    // The leader is gone: nothing of the job outlives it (as with a container's main process).
    killGroup(run.pid, 'SIGKILL')
    await this.#reap(run)
    if (run.cgroup !== undefined) {
      run.usage = await run.cgroup.usage().catch(() => undefined)
      // Dead processes not yet reaped keep the group busy: remove it in the background (bounded).
      const removal = run.cgroup.remove().catch((error) => this.#logger.warn('cgroup-remove-failed', { jobId: run.jobId, error }))
      this.#removals.add(removal)
      void removal.finally(() => this.#removals.delete(removal))
    }
    if (run.namespace && run.killed && signal === null && code !== 0) {
      // unshare re-raises its child's fatal signal on itself, but SIGKILL cannot be re-raised that
      // way (it exits 1 instead): report the kill we know we sent.
      code = null
      signal = 'SIGKILL'
    }
    const exitCode = code ?? (signal !== null ? 128 + signalNumber(signal) : 255)
    const state = run.ending !== undefined && !run.ending.timedOut ? 'stopped' : exitCode === 0 && run.ending === undefined ? 'exited' : 'failed'
    const exit: JobExit = { jobId: run.jobId, state, exitCode, signal, startedAtMs: run.startedAtMs, endedAtMs: this.#nowMs() }
    if (run.ending !== undefined) exit.reason = run.ending.reason
    run.exit = exit
    this.#logger.info('job-exited', { ...exit })
    run.resolveExited(exit)
    for (const listener of this.#listeners) {
      try {
        listener(exit)
      } catch (error) {
        this.#logger.error('exit-listener-failed', { jobId: run.jobId, error })
      }
    }
  }

  /**
   * Bounded wait until no process of the job is alive (group and cgroup), killing stragglers.
   * Zombies count as gone: reaping orphans is init's business, and some inits take seconds.
   */
  async #reap(run: Run): Promise<void> {
    const deadline = Date.now() + this.#limits.reapWaitMs
    for (;;) {
      const cgroupPids = (await run.cgroup?.pids()) ?? []
      const alive = [...new Set([...(await livingGroupMembers(run.pid)), ...cgroupPids])]
      const living: number[] = []
      for (const pid of alive) if (!(await isDead(pid))) living.push(pid)
      if (living.length === 0) return
      if (Date.now() >= deadline) {
        this.#logger.warn('job-processes-linger', { jobId: run.jobId, pids: living })
        return
      }
      for (const pid of living) killPid(pid, 'SIGKILL')
      killGroup(run.pid, 'SIGKILL')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  logs(jobId: JobId, options: LogOptions = {}): AsyncIterable<LogChunk> {
    const run = this.#runs.get(jobId)
    const streams: LogStream[] = options.stream === 'both' ? ['stdout', 'stderr'] : [options.stream ?? 'stdout']
    const maxBytes = Math.min(options.maxBytes ?? this.#limits.maxLogBytesPerCall, this.#limits.maxLogBytesPerCall)
    const jobDir = this.jobDir(jobId)
    const limits = this.#limits
    async function* read(): AsyncGenerator<LogChunk> {
      if (run === undefined) {
        // Not in memory (forgotten, or from before a restart): its files may still be on disk.
        const found = await stat(join(jobDir, 'stdout.log')).then(() => true, () => false)
        if (!found) throw new JobNotFoundError({ jobId })
      }
      const sources = streams.map((stream) =>
        readLogFile({
          path: join(jobDir, `${stream}.log`),
          stream,
          fromBytes: options.fromBytes ?? 0,
          maxBytes,
          follow: options.follow === true && run !== undefined,
          readChunkBytes: limits.logReadChunkBytes,
          pollMs: limits.logFollowPollMs,
          isDone: () => run === undefined || run.exit !== undefined,
          done: run?.exited ?? Promise.resolve(),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        }),
      )
      yield* sources.length === 1 && sources[0] !== undefined ? sources[0] : mergeAsync(sources)
    }
    return read()
  }

  async inspect(jobId: JobId): Promise<JobInspection> {
    const run = this.#get(jobId)
    const inspection: JobInspection = {
      jobId,
      state: run.exit?.state ?? 'running',
      pid: run.pid,
      startedAtMs: run.startedAtMs,
      isolation: run.isolation,
      limits: run.limits,
      stdoutPath: run.stdoutPath,
      stderrPath: run.stderrPath,
    }
    if (run.exit !== undefined) {
      inspection.exitCode = run.exit.exitCode
      inspection.signal = run.exit.signal
      inspection.endedAtMs = run.exit.endedAtMs
      if (run.exit.reason !== undefined) inspection.reason = run.exit.reason
      if (run.usage !== undefined) inspection.usage = run.usage
    } else {
      if (run.ending !== undefined) inspection.reason = run.ending.reason
      const usage = await run.cgroup?.usage().catch(() => undefined)
      if (usage !== undefined) inspection.usage = usage
    }
    return inspection
  }

  async checkpoint(jobId: JobId, _directory: string): Promise<void> {
    this.#get(jobId)
    throw new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'checkpoint', reason: 'CRIU support is not built yet (issue D)' })
  }

  async restore(jobId: JobId, _directory: string): Promise<RunHandle> {
    throw new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'restore', reason: 'CRIU support is not built yet (issue D)' })
  }

  onExit(listener: ExitListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Stops every running job (SIGKILL: a closing daemon does not wait out grace periods) and removes the runtime's cgroups. */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#runs.values()].filter((run) => run.exit === undefined).map((run) => this.#end(run, { reason: 'runtime closed', timedOut: false }, 0)))
    await Promise.all(this.#removals)
    const cgroups = await this.#cgroups
    if (cgroups.available) await cgroups.close()
  }
}

function killGroup(leaderPid: number, signal: NodeJS.Signals): void {
  killPid(-leaderPid, signal)
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // Already gone (ESRCH).
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0
}
