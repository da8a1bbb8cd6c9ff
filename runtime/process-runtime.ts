// The process runtime, the embedded default: a job's command runs as a child process in its own
// session and process group (and its own PID namespace when root and unshare allow), in a folder of
// its own under DATA/jobs/<jobId>/, with stdout and stderr written straight to files there (no pipes
// through the daemon: logs survive it, and CRIU can see them later). cgroups give limits and usage.
//
// Launch chain: /bin/sh (setsid by Node: session and group leader) joins the job's cgroups, then
// execs the command, or `unshare --pid --fork --kill-child setsid sh -c INIT COMMAND` whose forked
// child is PID 1 of the namespace and leads its own session there (as CRIU wants). That PID 1 is a
// small shell (the init shim) that runs the command and writes its exit status to a file: the status
// survives a checkpoint, since the shim is dumped and restored with the job, and CRIU reports none.
//
// Checkpoints (namespace mode only): `criu dump` of the tree under the namespace's PID 1; a restore
// runs `criu restore` (without detaching, so it stays our child and waits for the restored tree, as
// unshare does) through the same launcher, so the restored job lands in its own new cgroups.
// Every launch goes through `setpriv --pdeathsig KILL` where available, so a job dies with the process
// that forked it (a namespaced job whole: its PID 1 goes with unshare or criu restore).
// The node's lease (setLeaseDeadline) is watched by the spawner's watchdog and by one here
// (lease-guard.ts): each job is guarded by its launcher's process group (unshare's --kill-child takes
// a namespace's PID 1 with it) and, after a restore, by the restored PID 1 itself.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { access, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { constants } from 'node:os'
import { dirname, isAbsolute, join, normalize, relative } from 'node:path'
import type { JobId } from '../consensus/index.ts'
import { probeCgroups, type CgroupSupport, type JobCgroup } from './cgroups.ts'
import { checkpointLayout, copyWorkFolder, prepareCheckpointDirectory, readCheckpointManifest, writeCheckpointManifest } from './checkpoint-directory.ts'
import { uncheckpointableReasons } from './checkpoint-guard.ts'
import { assignedGpus, gpuEnvironment } from './gpu-devices.ts'
import { criuLimits, logErrors, probeCriu, runCriu, type CriuSupport } from './criu.ts'
import { childPids, isDead, livingGroupMembers, probeParentDeathSignal, probePidNamespace, processStartTicks, processTree, resolveExecutable, type NamespaceSupport, type ParentDeathSupport } from './isolation.ts'
import { LeaseGuard } from './lease-guard.ts'
import { leaseWatchdogLimits, type GuardedProcess, type LeaseLapse } from './lease-watchdog.ts'
import { mergeAsync, readLogFile } from './log-files.ts'
import { Spawner, type LaunchedProcess } from './spawner.ts'
import {
  CheckpointFailedError,
  CheckpointUnsupportedError,
  InvalidRunSpecError,
  JobAlreadyRunningError,
  JobNotFoundError,
  LeaseLapsedError,
  RuntimeAtCapacityError,
  RuntimeClosedError,
  SpawnFailedError,
  leaseLapsedReason,
  type CheckpointOptions,
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
  /** The CRIU binary for checkpoints; `criu` on PATH by default. */
  criuPath?: string
  /** 'auto' (the default): jobs are forked by a small spawner process (spawner.ts); 'off': by this process. */
  spawner?: 'auto' | 'off'
}

export interface ProcessRuntimeComponents {
  logger: RuntimeLogger
  nowMs?: () => number
}

/** Job ids name folders and cgroups: letters, digits, '.', '_', '-' and '#' (a replica: `<job>#<replica>`). */
const jobIdPattern = /^[A-Za-z0-9][A-Za-z0-9._#-]{0,127}$/
const defaultJobPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

// Joins each cgroup.procs file given (saying so on stderr when it cannot), then runs the command.
const launcherScript = [
  // Descriptors the daemon leaked without close-on-exec (LevelDB's LOG file, for one) must not reach
  // the job: CRIU would dump them and fail to restore them on another machine. bash closes any fd.
  'if [ -n "$BASH_VERSION" ]; then for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && exec {fd}>&-; done; fi',
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do { echo $$ > "$1"; } 2>/dev/null || echo "fabric-launch: could not join cgroup $1; limits not enforced" >&2; shift; n=$((n - 1)); done',
  'exec "$@"',
].join('\n')

// PID 1 of a job's namespace: runs the command with its output appended to the job's logs, records
// how it ended (128 + N for signal N, the shell's convention), ends the same way. CRIU carries it
// across a checkpoint like any process. Its own output and unshare's ("Terminated", complaints
// when a dump kills the tree) go to launcher.log, not into the job's logs.
/** bash where the machine has it (Debian always does): it can close descriptors above 9. */
const launcherShell = existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh'

const initScript = 'f=$1; o=$2; e=$3; shift 3; "$@" >>"$o" 2>>"$e"; s=$?; echo $s > "$f"; exit $s'
const exitStatusFile = 'exit-status'
const launcherLog = 'launcher.log'

interface Run {
  jobId: JobId
  spec: RunSpec
  /** unshare (or the command itself without a namespace), or `criu restore` for a restored job. */
  child: LaunchedProcess
  pid: number
  namespace: boolean
  /** The job's folder: this runtime's, or the one a restore found the job's files in. */
  jobDir: string
  /** How long the job ran before the checkpoint it was restored from (0 for a fresh start). */
  ranBeforeMs: number
  checkpointing: boolean
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
  /** What the lease watchdogs kill if the lease lapses (grows as they become known). */
  guarded: GuardedProcess[]
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
  readonly #criuPath: string
  readonly #useSpawner: boolean
  #spawner: Promise<Spawner | null> | null = null
  readonly #lease: LeaseGuard
  #closed = false

  constructor(init: ProcessRuntimeInit, components: ProcessRuntimeComponents) {
    this.#dataDir = init.dataDir
    this.#limits = { ...defaultProcessRuntimeLimits, ...init.limits }
    if (this.#limits.maxRunningJobs > leaseWatchdogLimits.maxGuardedTargets) throw new RangeError(`maxRunningJobs ${this.#limits.maxRunningJobs} is above the lease watchdog's ${leaseWatchdogLimits.maxGuardedTargets} targets`)
    this.#logger = components.logger
    this.#nowMs = components.nowMs ?? Date.now
    this.#jobPath = init.jobPath ?? defaultJobPath
    this.#criuPath = init.criuPath ?? 'criu'
    this.#useSpawner = init.spawner !== 'off'
    this.#namespace = init.pidNamespace === 'off' ? Promise.resolve({ available: false, reason: 'PID namespaces turned off in the runtime settings' }) : probePidNamespace()
    this.#parentDeath = init.dieWithDaemon === 'off' ? Promise.resolve({ available: false, reason: 'turned off in the runtime settings' }) : probeParentDeathSignal()
    this.#cgroups = init.cgroups === 'off' ? Promise.resolve({ available: false, reason: 'cgroups turned off in the runtime settings' }) : probeCgroups(this.#instanceName)
    this.#lease = new LeaseGuard({ runtime: this.kind, spawner: 'attached' }, { logger: this.#logger, onLapse: (lapse) => this.#leaseLapsed(lapse) })
    if (!this.#useSpawner) this.#lease.attach(null)
  }

  setLeaseDeadline(deadlineMs: number | null): void {
    if (this.#closed) return
    this.#lease.setDeadline(deadlineMs)
  }

  /** A watchdog killed these jobs: they end stopped, for that reason (the rest of each, its cgroup, is killed here too). */
  #leaseLapsed(lapse: LeaseLapse & { where: 'spawner' | 'daemon' }): void {
    for (const jobId of lapse.killed) {
      const run = this.#runs.get(jobId as JobId)
      if (run === undefined || run.exit !== undefined) continue
      this.#logger.warn('job-lease-lapsed', { jobId, deadlineMs: lapse.deadlineMs, killedBy: lapse.where })
      run.ending = { reason: leaseLapsedReason, timedOut: false }
      void this.#killEverything(run)
    }
  }

  #refuseWithoutLease(jobId: JobId): void {
    if (this.#lease.lapsed()) throw new LeaseLapsedError({ jobId, runtime: this.kind, deadlineMs: this.#lease.deadlineMs ?? null })
  }

  /** What this machine gives jobs (probed once). */
  async isolation(): Promise<{ pidNamespace: NamespaceSupport; cgroups: { available: true; version: 1 | 2 } | { available: false; reason: string } }> {
    const cgroups = await this.#cgroups
    return { pidNamespace: await this.#namespace, cgroups: cgroups.available ? { available: true, version: cgroups.version } : cgroups }
  }

  /** Whether this runtime can checkpoint jobs here: CRIU usable and jobs in their own PID namespace. */
  async checkpointSupport(): Promise<CriuSupport> {
    const namespace = await this.#namespace
    if (!namespace.available) return { available: false, reason: `jobs get no PID namespace of their own: ${namespace.reason}` }
    return probeCriu(this.#criuPath)
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
    assignedGpus(spec) // refuses GPU indices that are not indices, or that disagree with gpuCount
    this.#refuseWithoutLease(jobId)
    this.#checkStartable(jobId)
    this.#starting.add(jobId)
    try {
      return await this.#launch(spec, argv)
    } finally {
      this.#starting.delete(jobId)
    }
  }

  #checkStartable(jobId: JobId): void {
    const existing = this.#runs.get(jobId)
    if (existing !== undefined && existing.exit === undefined) throw new JobAlreadyRunningError({ jobId, pid: existing.pid, startedAtMs: existing.startedAtMs })
    if (this.#starting.has(jobId)) throw new JobAlreadyRunningError({ jobId, pid: 0, startedAtMs: this.#nowMs() })
    const running = this.#runningCount() + this.#starting.size
    if (running >= this.#limits.maxRunningJobs) throw new RuntimeAtCapacityError({ jobId, running, maxRunningJobs: this.#limits.maxRunningJobs })
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
    // The GPU variables come last: the job sees the devices it was given, whatever its env says.
    const env: Record<string, string> = { PATH: this.#jobPath, HOME: workRoot, FABRIC_JOB_ID: jobId, ...spec.env, ...gpuEnvironment(assignedGpus(spec)) }
    const executable = await resolveExecutable(argv[0] ?? '', env.PATH ?? this.#jobPath, workingDir)
    if (executable === undefined) throw new SpawnFailedError({ jobId, command: argv, reason: `not found or not executable (PATH=${env.PATH})` })

    const namespace = await this.#namespace
    const { cgroup, limitsNote } = await this.#createCgroup(jobId, spec)
    // A new run starts new logs (a retry of the same job id does not mix its output with the last).
    await writeFile(join(jobDir, 'stdout.log'), '')
    await writeFile(join(jobDir, 'stderr.log'), '')
    await rm(join(jobDir, exitStatusFile), { force: true })
    // The shim names its files relative to its working folder: after a restore elsewhere the
    // folder is the new one, while an absolute path would still name the old.
    const fromWork = (name: string): string => relative(workingDir, join(jobDir, name))
    if (!namespace.available) return this.#spawnRun({ spec, argv, jobDir, workingDir, env, command: [executable, ...argv.slice(1)], cgroup, limitsNote, namespace, ranBeforeMs: 0 })
    await writeFile(join(jobDir, launcherLog), '')
    const command = [namespace.unshare, '--pid', '--fork', '--kill-child', namespace.setsid, '/bin/sh', '-c', initScript, 'fabric-init', fromWork(exitStatusFile), fromWork('stdout.log'), fromWork('stderr.log'), executable, ...argv.slice(1)]
    const launcherOutput = join(jobDir, launcherLog)
    return this.#spawnRun({ spec, argv, jobDir, workingDir, env, command, cgroup, limitsNote, namespace, ranBeforeMs: 0, outputPaths: { stdout: launcherOutput, stderr: launcherOutput } })
  }

  async #createCgroup(jobId: JobId, spec: RunSpec): Promise<{ cgroup: JobCgroup | undefined; limitsNote: string }> {
    const cgroups = await this.#cgroups
    if (!cgroups.available) return { cgroup: undefined, limitsNote: `limits not enforced: ${cgroups.reason}` }
    try {
      const cgroup = await cgroups.createJob(`${jobId}-${randomUUID().slice(0, 8)}`, { ...spec.resources })
      return { cgroup, limitsNote: cgroup.note }
    } catch (error) {
      return { cgroup: undefined, limitsNote: `limits not enforced: cannot create the job's cgroup: ${(error as Error).message}` }
    }
  }

  /**
   * Starts `command` through the launcher (which joins the cgroups) with stdout and stderr appended
   * to the job's log files. O_APPEND matters for checkpoints: CRIU does not insist on the size of a
   * file opened for appending, so a restore works after the log grew or on a fresh, empty log.
   */
  async #spawnRun(request: {
    spec: RunSpec
    argv: string[]
    jobDir: string
    workingDir: string
    env: Record<string, string>
    command: string[]
    cgroup: JobCgroup | undefined
    limitsNote: string
    namespace: NamespaceSupport
    ranBeforeMs: number
    /** Where the launcher's own output goes (default: the job's stdout and stderr). */
    outputPaths?: { stdout: string; stderr: string }
  }): Promise<RunHandle> {
    const { spec, argv, jobDir, workingDir, env, cgroup, limitsNote, namespace } = request
    const jobId = spec.jobId
    const parentDeath = await this.#parentDeath
    // setpriv sets the parent-death signal and execs: the PID, group and session stay the launcher's.
    const command = parentDeath.available ? [parentDeath.setpriv, '--pdeathsig', 'KILL', ...request.command] : request.command
    const requested = { ...spec.resources }
    const stdoutPath = join(jobDir, 'stdout.log')
    const stderrPath = join(jobDir, 'stderr.log')
    const procsFiles = cgroup?.procsFiles ?? []
    const launcher = { file: launcherShell, args: ['-c', launcherScript, 'fabric-launch', String(procsFiles.length), ...procsFiles, ...command], argv0: 'fabric-launch', cwd: workingDir, env }
    const outputs = { stdoutPath: request.outputPaths?.stdout ?? stdoutPath, stderrPath: request.outputPaths?.stderr ?? stderrPath }
    let child: LaunchedProcess
    let launched: Promise<{ ok: true } | { ok: false; reason: string }>
    const spawner = await this.#spawnerReady()
    if (spawner !== null) {
      child = spawner.launch({ ...launcher, ...outputs, guardKey: jobId })
      launched = this.#awaitLauncher(child)
    } else {
      const stdoutFile = await open(outputs.stdoutPath, 'a')
      const stderrFile = await open(outputs.stderrPath, 'a')
      try {
        // detached: setsid, its own session and process group.
        child = spawn(launcher.file, launcher.args, { cwd: launcher.cwd, env: launcher.env, detached: true, stdio: ['ignore', stdoutFile.fd, stderrFile.fd], argv0: launcher.argv0 })
        // Listen at once: 'spawn' and 'error' come on the next tick.
        launched = this.#awaitLauncher(child)
      } catch (error) {
        await cgroup?.remove().catch(() => {})
        throw new SpawnFailedError({ jobId, command: argv, reason: (error as Error).message })
      } finally {
        await stdoutFile.close()
        await stderrFile.close()
      }
    }
    const launch = await launched
    if (!launch.ok || child.pid === undefined) {
      this.#lease.unguard(jobId) // the spawner guarded it as it forked
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL')
      await cgroup?.killAll()
      await cgroup?.remove().catch(() => {})
      const said = (await readFile(request.outputPaths?.stderr ?? stderrPath, 'utf8').catch(() => '')).slice(0, 500).trim()
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
      jobDir,
      ranBeforeMs: request.ranBeforeMs,
      checkpointing: false,
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
      guarded: [],
    }
    this.#remember(run)
    void this.#guard(run, run.pid, true)
    if (child.exitCode !== null || child.signalCode !== null) void this.#finish(run, child.exitCode, child.signalCode)
    else child.once('exit', (code, signal) => void this.#finish(run, code, signal))
    if (spec.timeoutMs !== undefined) {
      run.timeoutTimer = setTimeout(() => {
        this.#logger.info('job-timeout', { jobId, timeoutMs: spec.timeoutMs })
        void this.#end(run, { reason: 'timeout', timedOut: true }, this.#limits.stopGraceMs)
      }, Math.max(1, spec.timeoutMs - request.ranBeforeMs))
    }
    this.#logger.info('job-started', { jobId, pid: run.pid, isolation: run.isolation.mode, limits: run.limits.note })
    return { jobId, pid: run.pid, startedAtMs: run.startedAtMs, isolation: run.isolation, limits: run.limits, exited }
  }

  /**
   * The spawner, started at the first launch and again after one died (its jobs died with it and were
   * reported so); null (fork here) when off or when it does not answer.
   */
  async #spawnerReady(): Promise<Spawner | null> {
    if (!this.#useSpawner) return null
    const current = this.#spawner
    if (current !== null && (await current)?.gone === true) {
      if (this.#spawner === current) this.#spawner = null
    }
    this.#spawner ??= (async () => {
      const parentDeath = await this.#parentDeath
      const spawner = Spawner.start({
        ...(parentDeath.available ? { setpriv: parentDeath.setpriv } : {}),
        onProblem: (reason) => this.#logger.warn('spawner-problem', { reason }),
        onLeaseLapsed: (lapse) => this.#lease.fromSpawner(lapse),
      })
      if (await spawner.ready()) {
        // Told the lease and the targets before any launch it forks.
        this.#lease.attach(spawner)
        return spawner
      }
      this.#logger.warn('spawner-unavailable', { reason: 'it did not answer; jobs are forked by the daemon itself' })
      await spawner.close().catch(() => {})
      this.#lease.attach(null)
      return null
    })()
    return this.#spawner
  }

  /** Adds a process of the run to what the lease watchdogs kill (a group: its launcher's; else one process). */
  async #guard(run: Run, pid: number, group: boolean): Promise<void> {
    const startTicks = await processStartTicks(pid)
    // Ended meanwhile (#finish unguards as it records the exit): nothing to guard.
    if (startTicks === undefined || run.exit !== undefined) return
    run.guarded.push({ pid, startTicks, group })
    this.#lease.guard(run.jobId, run.guarded)
  }

  /** Node's 'spawn' (the launcher runs) or 'error' (it could not), bounded. */
  #awaitLauncher(child: LaunchedProcess): Promise<{ ok: true } | { ok: false; reason: string }> {
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
    const recorded = run.namespace ? await readExitStatus(join(run.jobDir, exitStatusFile)) : undefined
    if (recorded !== undefined) {
      // The init shim saw the command end: 128 + N means signal N (the shell's convention).
      code = recorded
      signal = recorded > 128 ? signalName(recorded - 128) : null
    } else if (run.namespace && run.killed) {
      // The shim died before it could record anything: SIGKILL from us (stop, close or a dump);
      // unshare cannot re-raise SIGKILL on itself (it exits 1) and criu restore exits 0.
      code = null
      signal = 'SIGKILL'
    }
    const exitCode = code ?? (signal !== null ? 128 + signalNumber(signal) : 255)
    const state = run.ending !== undefined && !run.ending.timedOut ? 'stopped' : exitCode === 0 && run.ending === undefined ? 'exited' : 'failed'
    const endedAtMs = this.#nowMs()
    // cgroups measure the whole job (v1: cpuacct.usage, memory.max_usage_in_bytes); without them only the wall time is known.
    const usage = { cpuSeconds: run.usage?.cpuSeconds ?? null, peakMemoryBytes: run.usage?.memoryPeakBytes ?? null, wallMs: Math.max(0, endedAtMs - run.startedAtMs) }
    const exit: JobExit = { jobId: run.jobId, state, exitCode, signal, startedAtMs: run.startedAtMs, endedAtMs, usage }
    if (run.ending !== undefined) exit.reason = run.ending.reason
    run.exit = exit
    this.#lease.unguard(run.jobId)
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
      // In a PID namespace the kernel ends every member once its PID 1 is gone, and the launcher
      // only exits after that: no need to read all of /proc (costly on a busy machine) for the group.
      const groupMembers = run.namespace ? [] : await livingGroupMembers(run.pid)
      const alive = [...new Set([...groupMembers, ...cgroupPids])]
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
    const jobDir = run?.jobDir ?? this.jobDir(jobId)
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

  /** `criu dump` of the tree under the job's namespace PID 1, after refusing what CRIU cannot dump. */
  async checkpoint(jobId: JobId, directory: string, options: CheckpointOptions = {}): Promise<void> {
    const run = this.#get(jobId)
    const refuse = (reason: string): CheckpointUnsupportedError => new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'checkpoint', reason })
    if (run.exit !== undefined || run.ending !== undefined) throw refuse(`the job is not running (${run.exit?.state ?? `ending: ${run.ending?.reason}`})`)
    if (run.checkpointing) throw refuse('another checkpoint of the job is in progress')
    // The dumped environment holds this node's device indices, which mean other devices elsewhere.
    if (assignedGpus(run.spec).length > 0) throw refuse('the job has GPUs: their indices are this node\'s and their state CRIU cannot carry')
    if (!run.namespace) throw refuse(`the job has no PID namespace of its own (${run.isolation.note ?? 'turned off'}), so its restore would need its host PIDs free`)
    const criu = await probeCriu(this.#criuPath)
    if (!criu.available) throw refuse(criu.reason)
    const inits = await childPids(run.pid)
    if (inits.length !== 1 || inits[0] === undefined) throw refuse('its namespace is not up yet')
    const init = inits[0]
    const reasons = await uncheckpointableReasons(await processTree(init))
    if (reasons.length > 0) throw refuse(reasons.join('; '))
    await prepareCheckpointDirectory(directory, { jobId, runtime: this.kind })
    const images = join(directory, checkpointLayout.images)
    await mkdir(images)
    const logPath = join(run.jobDir, 'criu-dump.log')
    const leaveRunning = options.leaveRunning === true
    run.checkpointing = true
    // Set before the dump kills the tree, so its exit reads as stopped for a checkpoint.
    if (!leaveRunning) {
      run.ending = { reason: 'checkpointed', timedOut: false }
      run.killed = true
    }
    const startedMs = Date.now()
    try {
      const args = ['dump', '--tree', String(init), '--images-dir', images, '--log-file', logPath, '-v4', '--manage-cgroups=ignore', '--tcp-close', '--file-locks']
      if (leaveRunning) args.push('--leave-running')
      const dump = await runCriu(criu.path, args, criuLimits.dumpTimeoutMs)
      if (dump.code !== 0) {
        if (!leaveRunning) {
          // CRIU resumes the tree after a failed dump: the job runs on.
          run.ending = undefined
          run.killed = false
        }
        const reason = dump.timedOut ? `criu dump took longer than ${criuLimits.dumpTimeoutMs} ms` : await logErrors(logPath, dump.stderr)
        throw new CheckpointFailedError({ jobId, runtime: this.kind, operation: 'checkpoint', reason, logPath })
      }
      await copyWorkFolder(join(run.jobDir, 'work'), join(directory, checkpointLayout.work))
      await writeCheckpointManifest(directory, {
        format: 1,
        runtime: 'process',
        jobId,
        spec: run.spec,
        jobDir: run.jobDir,
        createdAtMs: this.#nowMs(),
        ranMs: run.ranBeforeMs + (this.#nowMs() - run.startedAtMs),
        criuVersion: criu.version,
      })
    } finally {
      run.checkpointing = false
    }
    this.#logger.info('job-checkpointed', { jobId, directory, leaveRunning, dumpMs: Date.now() - startedMs })
    if (!leaveRunning) await run.exited
  }

  /**
   * `criu restore` of a checkpoint made by a process runtime. CRIU reopens the job's files and
   * working folder by the paths they had: the job gets this runtime's folder (its work files copied
   * from the checkpoint when missing) and the old path is a symbolic link to it while CRIU restores.
   */
  async restore(jobId: JobId, directory: string): Promise<RunHandle> {
    if (this.#closed) throw new RuntimeClosedError({ runtime: this.kind })
    const refuse = (reason: string): CheckpointUnsupportedError => new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'restore', reason })
    this.#refuseWithoutLease(jobId)
    this.#checkStartable(jobId)
    const manifest = await readCheckpointManifest(directory, { jobId, runtime: 'process' })
    const namespace = await this.#namespace
    if (!namespace.available) throw refuse(`jobs get no PID namespace of their own here: ${namespace.reason}`)
    const criu = await probeCriu(this.#criuPath)
    if (!criu.available) throw refuse(criu.reason)
    this.#starting.add(jobId)
    let link: string | undefined
    let linkParents: string | undefined
    let aside: string | undefined
    try {
      // The job always comes back in this runtime's own folder. Its old path (another node's data
      // dir) is a link to it while CRIU runs; when that path exists here too (two daemons on one
      // machine), the folder there is moved aside for that time.
      const jobDir = this.jobDir(jobId)
      await mkdir(jobDir, { recursive: true })
      if (jobDir !== manifest.jobDir) {
        if (await pathExists(manifest.jobDir)) {
          aside = `${manifest.jobDir}.aside-${randomUUID().slice(0, 8)}`
          await rename(manifest.jobDir, aside)
        } else {
          // Folders made here only to hold the link go with it.
          linkParents = await mkdir(dirname(manifest.jobDir), { recursive: true })
        }
        await symlink(jobDir, manifest.jobDir)
        link = manifest.jobDir
      }
      if (!(await pathExists(join(jobDir, 'work')))) await copyWorkFolder(join(directory, checkpointLayout.work), join(jobDir, 'work'))
      // CRIU reopens each file the tree had open by its path: they must exist (appending, any size will do).
      for (const log of ['stdout.log', 'stderr.log', launcherLog]) await writeFile(join(jobDir, log), '', { flag: 'a' })
      await rm(join(jobDir, exitStatusFile), { force: true })
      const criuDir = join(jobDir, 'criu-restore')
      await rm(criuDir, { recursive: true, force: true })
      await mkdir(criuDir)
      const pidFile = join(criuDir, 'restored.pid')
      const logPath = join(criuDir, 'restore.log')
      const command = [criu.path, 'restore', '--images-dir', join(directory, checkpointLayout.images), '--work-dir', criuDir, '--pidfile', pidFile, '--log-file', logPath, '-v4', '--manage-cgroups=ignore', '--tcp-close', '--file-locks']
      const { cgroup, limitsNote } = await this.#createCgroup(jobId, manifest.spec)
      const handle = await this.#spawnRun({
        spec: manifest.spec,
        argv: command,
        jobDir,
        workingDir: criuDir,
        env: { PATH: this.#jobPath },
        command,
        cgroup,
        limitsNote,
        namespace,
        ranBeforeMs: manifest.ranMs,
        outputPaths: { stdout: join(criuDir, 'criu.out'), stderr: join(criuDir, 'criu.out') },
      })
      // Restored once CRIU has written the root's PID; CRIU exiting first means it failed.
      const deadline = Date.now() + criuLimits.restoreStartTimeoutMs
      const run = this.#get(jobId)
      for (;;) {
        const restoredPid = (await readFile(pidFile, 'utf8').catch(() => '')).trim()
        if (restoredPid !== '') {
          // The restored PID 1 (a host PID): killing criu restore need not take it along.
          if (/^\d+$/.test(restoredPid)) await this.#guard(run, Number(restoredPid), false)
          break
        }
        if (run.exit !== undefined || Date.now() > deadline) {
          if (run.exit === undefined) await this.#end(run, { reason: 'restore timed out', timedOut: false }, 0)
          const reason = Date.now() > deadline ? `criu restore did not finish within ${criuLimits.restoreStartTimeoutMs} ms` : await logErrors(logPath)
          throw new CheckpointFailedError({ jobId, runtime: this.kind, operation: 'restore', reason, logPath })
        }
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      this.#logger.info('job-restored', { jobId, directory, pid: handle.pid, jobDir })
      return handle
    } finally {
      this.#starting.delete(jobId)
      // CRIU has opened everything by now: the restored job holds its files, not the path.
      if (link !== undefined) await rm(link, { force: true })
      if (aside !== undefined) await rename(aside, link!)
      if (linkParents !== undefined) await rm(linkParents, { recursive: true, force: true })
    }
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
    const spawner = await this.#spawner
    await spawner?.close()
    await this.#lease.close()
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

function signalName(number: number): NodeJS.Signals | null {
  for (const [name, value] of Object.entries(constants.signals)) if (value === number) return name as NodeJS.Signals
  return null
}

async function readExitStatus(path: string): Promise<number | undefined> {
  const text = (await readFile(path, 'utf8').catch(() => '')).trim()
  return /^\d+$/.test(text) ? Number(text) : undefined
}

async function pathExists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}
