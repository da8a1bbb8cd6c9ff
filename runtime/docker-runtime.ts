// The Docker runtime: each job is one container of a real Docker engine (dockerode over its Unix
// socket), made from a local image (nothing is pulled unless asked: nodes may have no registry).
// The job's folder is DATA/jobs/<jobId>/ as in the process runtime: its work/ is mounted at
// /fabric/work, and a pump copies the container's stdout and stderr into stdout.log and stderr.log
// there, so logs read, follow and outlive the container the same way in both runtimes. A
// container is removed once its exit and its last log bytes are recorded.
//
// Checkpoints go through the engine's own runc when the engine is on this machine (the API's
// round trip through containerd's content store cost seconds: see runc-checkpoint.ts), else
// through the engine's checkpoint API (runc drives CRIU; the engine needs experimental features on). A restore creates a new container from the same spec and image,
// places links to the CRIU images in its checkpoints/ folder (copies if the engine cannot follow
// them: checkpoint-links.ts) and starts it from them (Docker 20.10 refuses --checkpoint-dir on
// start): the path a migration to another node takes.
// The node's lease (setLeaseDeadline) is watched by a spawner process of its own and by a watchdog
// here (lease-guard.ts): each container is guarded by its init's host PID (the engine's State.Pid),
// whose SIGKILL ends the container, so the watchdog needs no Docker API.
import { randomUUID } from 'node:crypto'
import { createWriteStream, type WriteStream } from 'node:fs'
import { access, cp, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { constants } from 'node:os'
import { join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import type Docker from 'dockerode'
import { ContainerUsageMeter } from './docker-usage.ts'
import type { JobId } from '../consensus/index.ts'
import { linkCheckpointImages } from './checkpoint-links.ts'
import { checkpointLayout, copyWorkFolder, prepareCheckpointDirectory, readCheckpointManifest, writeCheckpointManifest } from './checkpoint-directory.ts'
import { uncheckpointableReasons } from './checkpoint-guard.ts'
import { probeCriu } from './criu.ts'
import { containerCreateOptions, dockerLabels } from './docker-container-spec.ts'
import { assignedGpus } from './gpu-devices.ts'
import { bounded, connectDocker, dockerSocketPath, probeDockerEngine, unavailable, type DockerEngineInfo } from './docker-engine.ts'
import { processStartTicks, processTree } from './isolation.ts'
import { LeaseGuard } from './lease-guard.ts'
import { leaseWatchdogLimits, type LeaseLapse } from './lease-watchdog.ts'
import { defaultRuncRoot, localRuncContainer, runcCheckpoint } from './runc-checkpoint.ts'
import { mergeAsync, readLogFile } from './log-files.ts'
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
  type Runtime,
  type RuntimeLogger,
  type StopOptions,
} from './runtime.ts'

export interface DockerRuntimeLimits {
  maxRunningJobs: number
  maxRememberedJobs: number
  maxLogBytesPerCall: number
  logReadChunkBytes: number
  logFollowPollMs: number
  /** Time between SIGTERM and SIGKILL on stop and timeout. */
  stopGraceMs: number
  /** One engine call that should answer at once (create, start, kill, inspect). */
  engineCallTimeoutMs: number
  /** After the container ended, how long its log stream may take to deliver the rest. */
  logDrainTimeoutMs: number
  /** One `docker checkpoint create` (the container is frozen meanwhile). */
  checkpointTimeoutMs: number
  /** One pull of a missing image, when pulling is on. */
  pullTimeoutMs: number
  maxCommandArguments: number
}

export const defaultDockerRuntimeLimits: DockerRuntimeLimits = {
  maxRunningJobs: 64,
  maxRememberedJobs: 1024,
  maxLogBytesPerCall: 1024 * 1024,
  logReadChunkBytes: 64 * 1024,
  logFollowPollMs: 500,
  stopGraceMs: 10_000,
  engineCallTimeoutMs: 30_000,
  logDrainTimeoutMs: 10_000,
  checkpointTimeoutMs: 120_000,
  pullTimeoutMs: 300_000,
  maxCommandArguments: 4096,
}

export interface DockerRuntimeInit {
  /** The daemon's data folder; jobs live in DATA/jobs/<jobId>/ (logs, work/). */
  dataDir: string
  /** The engine's Unix socket; DOCKER_HOST (unix://) or /var/run/docker.sock by default. */
  socketPath?: string
  /** Network of job containers ('bridge', 'none', a network name); 'bridge' by default. */
  networkMode?: string
  /** 'missing' pulls an image the node lacks; 'never' (the default) refuses the job instead. */
  pull?: 'missing' | 'never'
  /** The image of a job whose spec names none. */
  defaultImage?: string
  /** The CRIU the engine's runc uses (checked before a checkpoint); `criu` on PATH by default. */
  criuPath?: string
  /** dockerd's runc state root, for checkpoints straight through runc; null: always the engine's API. */
  runcRoot?: string | null
  limits?: Partial<DockerRuntimeLimits>
}

export interface DockerRuntimeComponents {
  logger: RuntimeLogger
  nowMs?: () => number
  /** How a restore links the images into the engine's folder (checkpoint-links.ts by default); a test swaps in links CRIU cannot follow to prove the copy fallback. */
  linkImages?: (from: string, to: string) => Promise<unknown>
}

/** Job ids name folders; a replica (`<job>#<replica>`) has its `#` turned into `.` in its container name. */
const jobIdPattern = /^[A-Za-z0-9][A-Za-z0-9._#-]{0,127}$/
/** The engine's name for the checkpoint a restore starts from (inside the new container). */
const restoreCheckpointName = 'fabric-restore'

interface ContainerRun {
  jobId: JobId
  spec: RunSpec
  container: Docker.Container
  containerId: string
  pid: number
  jobDir: string
  startedAtMs: number
  ranBeforeMs: number
  limits: LimitsReport
  exit: JobExit | undefined
  exited: Promise<JobExit>
  resolveExited: (exit: JobExit) => void
  ending: { reason: string; timedOut: boolean } | undefined
  timeoutTimer: NodeJS.Timeout | undefined
  checkpointing: boolean
  /** The engine's stats, read while it runs: the usage its exit reports. */
  meter: ContainerUsageMeter
}

const isolation: IsolationReport = { mode: 'container' }

export class DockerRuntime implements Runtime {
  readonly kind = 'docker'
  readonly #dataDir: string
  readonly #limits: DockerRuntimeLimits
  readonly #logger: RuntimeLogger
  readonly #nowMs: () => number
  readonly #endpoint: string
  #client: Docker | null = null
  /** The engine's client, made at the first container call (dockerode is loaded then: docker-engine.ts). */
  get #docker(): Docker {
    this.#client ??= connectDocker(this.#endpoint)
    return this.#client
  }
  readonly #networkMode: string
  readonly #pull: 'missing' | 'never'
  readonly #criuPath: string
  readonly #runcRoot: string | null
  readonly #defaultImage: string | undefined
  readonly #linkImages: (from: string, to: string) => Promise<unknown>
  readonly #instance = `fabric-${process.pid}-${randomUUID().slice(0, 8)}`
  readonly #runs = new Map<JobId, ContainerRun>()
  readonly #starting = new Set<JobId>()
  readonly #listeners = new Set<ExitListener>()
  readonly #lease: LeaseGuard
  #closed = false

  constructor(init: DockerRuntimeInit, components: DockerRuntimeComponents) {
    this.#dataDir = init.dataDir
    this.#limits = { ...defaultDockerRuntimeLimits, ...init.limits }
    if (this.#limits.maxRunningJobs > leaseWatchdogLimits.maxGuardedTargets) throw new RangeError(`maxRunningJobs ${this.#limits.maxRunningJobs} is above the lease watchdog's ${leaseWatchdogLimits.maxGuardedTargets} targets`)
    this.#logger = components.logger
    this.#nowMs = components.nowMs ?? Date.now
    this.#endpoint = dockerSocketPath(init.socketPath)
    this.#networkMode = init.networkMode ?? 'bridge'
    this.#pull = init.pull ?? 'never'
    this.#criuPath = init.criuPath ?? 'criu'
    this.#runcRoot = init.runcRoot === undefined ? defaultRuncRoot : init.runcRoot
    this.#defaultImage = init.defaultImage
    this.#linkImages = components.linkImages ?? linkCheckpointImages
    this.#lease = new LeaseGuard({ runtime: this.kind, spawner: 'own' }, { logger: this.#logger, onLapse: (lapse) => this.#leaseLapsed(lapse) })
  }

  setLeaseDeadline(deadlineMs: number | null): void {
    if (this.#closed) return
    this.#lease.setDeadline(deadlineMs)
  }

  /** A watchdog killed these containers' init: they end stopped, for that reason (the engine is told to kill them too). */
  #leaseLapsed(lapse: LeaseLapse & { where: 'spawner' | 'daemon' }): void {
    for (const jobId of lapse.killed) {
      const run = this.#runs.get(jobId as JobId)
      if (run === undefined || run.exit !== undefined) continue
      this.#logger.warn('job-lease-lapsed', { jobId, deadlineMs: lapse.deadlineMs, killedBy: lapse.where })
      run.ending = { reason: leaseLapsedReason, timedOut: false }
      void this.#kill(run, 'SIGKILL')
    }
  }

  /** Guards the container's init (by host PID and start time) under the lease. */
  async #guard(run: ContainerRun): Promise<void> {
    if (!(run.pid > 0)) return // ended before the engine was asked
    const startTicks = await processStartTicks(run.pid)
    // Ended meanwhile (#watch unguards as it records the exit): nothing to guard.
    if (startTicks === undefined || run.exit !== undefined) return
    this.#lease.guard(run.jobId, [{ pid: run.pid, startTicks, group: false }])
  }

  /** What the engine on our socket offers, asked now (the daemon reports it, and bids only when available). */
  engine(): Promise<DockerEngineInfo> {
    return probeDockerEngine(this.#endpoint)
  }

  jobDir(jobId: JobId): string {
    return join(this.#dataDir, 'jobs', jobId)
  }

  async #availableEngine(): Promise<Extract<DockerEngineInfo, { available: true }>> {
    const engine = await this.engine()
    if (!engine.available) throw unavailable(engine)
    return engine
  }

  async start(requested: RunSpec): Promise<RunHandle> {
    const spec: RunSpec = requested.image === undefined && this.#defaultImage !== undefined ? { ...requested, image: this.#defaultImage } : requested
    this.#checkStartable(spec)
    this.#starting.add(spec.jobId)
    try {
      const engine = await this.#availableEngine()
      await this.#ensureImage(spec)
      // Under a lease, the watchdog spawner hears of the container the moment it is tracked.
      await this.#lease.outsideReady()
      const jobDir = this.jobDir(spec.jobId)
      await this.#prepareJobFolder(spec, jobDir, { freshLogs: true })
      const container = await this.#createContainer(spec, jobDir)
      try {
        await bounded(container.start(), this.#limits.engineCallTimeoutMs, 'starting the container')
      } catch (error) {
        await container.remove({ force: true }).catch(() => {})
        throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: engineMessage(error) })
      }
      return await this.#track(spec, container, jobDir, 0, engine)
    } finally {
      this.#starting.delete(spec.jobId)
    }
  }

  #checkStartable(spec: RunSpec): void {
    if (this.#closed) throw new RuntimeClosedError({ runtime: this.kind })
    const jobId = spec.jobId
    if (this.#lease.lapsed()) throw new LeaseLapsedError({ jobId, runtime: this.kind, deadlineMs: this.#lease.deadlineMs ?? null })
    if (!jobIdPattern.test(jobId)) throw new InvalidRunSpecError({ jobId, field: 'jobId', reason: `must match ${jobIdPattern}` })
    const argv = [...spec.command, ...(spec.args ?? [])]
    if (argv.length > this.#limits.maxCommandArguments) throw new InvalidRunSpecError({ jobId, field: 'command', reason: `has ${argv.length} arguments, at most ${this.#limits.maxCommandArguments}` })
    if (spec.timeoutMs !== undefined && !(spec.timeoutMs > 0)) throw new InvalidRunSpecError({ jobId, field: 'timeoutMs', reason: 'must be positive' })
    assignedGpus(spec) // refuses GPU indices that are not indices, or that disagree with gpuCount, before the engine is asked
    const existing = this.#runs.get(jobId)
    if (existing !== undefined && existing.exit === undefined) throw new JobAlreadyRunningError({ jobId, pid: existing.pid, startedAtMs: existing.startedAtMs })
    if (this.#starting.has(jobId)) throw new JobAlreadyRunningError({ jobId, pid: 0, startedAtMs: this.#nowMs() })
    let running = this.#starting.size
    for (const run of this.#runs.values()) if (run.exit === undefined) running += 1
    if (running >= this.#limits.maxRunningJobs) throw new RuntimeAtCapacityError({ jobId, running, maxRunningJobs: this.#limits.maxRunningJobs })
  }

  async #ensureImage(spec: RunSpec): Promise<Docker.ImageInspectInfo> {
    const image = spec.image ?? ''
    if (image === '') throw new InvalidRunSpecError({ jobId: spec.jobId, field: 'image', reason: 'is required by the docker runtime' })
    const found = await this.#inspectImage(image)
    if (found !== undefined) return found
    if (this.#pull === 'never') {
      throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: `image ${image} is not on this node and pulling is off (build or import it here, or start the runtime with pull: 'missing')` })
    }
    try {
      const stream = (await bounded(this.#docker.pull(image), this.#limits.pullTimeoutMs, `pulling ${image}`)) as Readable
      await bounded(
        new Promise<void>((resolve, reject) => this.#docker.modem.followProgress(stream, (error: Error | null) => (error === null ? resolve() : reject(error)))),
        this.#limits.pullTimeoutMs,
        `pulling ${image}`,
      )
    } catch (error) {
      throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: `image ${image} is not on this node and pulling it failed: ${engineMessage(error)}` })
    }
    const pulled = await this.#inspectImage(image)
    if (pulled === undefined) throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: `image ${image} is still missing after a pull` })
    return pulled
  }

  async #inspectImage(image: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await bounded(this.#docker.getImage(image).inspect(), this.#limits.engineCallTimeoutMs, `inspecting image ${image}`)
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined
      throw error
    }
  }

  async #prepareJobFolder(spec: RunSpec, jobDir: string, options: { freshLogs: boolean }): Promise<void> {
    try {
      await mkdir(join(jobDir, 'work'), { recursive: true })
      for (const log of ['stdout.log', 'stderr.log']) await writeFile(join(jobDir, log), '', { flag: options.freshLogs ? 'w' : 'a' })
    } catch (error) {
      throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: `cannot prepare the job's folder ${jobDir}: ${(error as Error).message}` })
    }
  }

  async #createContainer(spec: RunSpec, jobDir: string): Promise<Docker.Container> {
    const options = containerCreateOptions(spec, {
      name: `fabric-${spec.jobId.replaceAll('#', '.')}-${randomUUID().slice(0, 8)}`,
      hostWorkDir: join(jobDir, 'work'),
      networkMode: this.#networkMode,
      runtimeInstance: this.#instance,
    })
    try {
      return await bounded(this.#docker.createContainer(options), this.#limits.engineCallTimeoutMs, 'creating the container')
    } catch (error) {
      throw new SpawnFailedError({ jobId: spec.jobId, command: spec.command, reason: `the engine refused the container: ${engineMessage(error)}` })
    }
  }

  /** Records a started container and watches it: its exit (engine wait) and its output (log pump). */
  async #track(spec: RunSpec, container: Docker.Container, jobDir: string, ranBeforeMs: number, engine: Extract<DockerEngineInfo, { available: true }>): Promise<RunHandle> {
    const jobId = spec.jobId
    const details = await bounded(container.inspect(), this.#limits.engineCallTimeoutMs, 'inspecting the container')
    let resolveExited: (exit: JobExit) => void = () => {}
    const exited = new Promise<JobExit>((resolve) => {
      resolveExited = resolve
    })
    const run: ContainerRun = {
      jobId,
      spec,
      container,
      containerId: container.id,
      pid: details.State.Pid,
      jobDir,
      startedAtMs: this.#nowMs(),
      ranBeforeMs,
      limits: { requested: { ...spec.resources }, enforced: true, note: `docker (cgroup v${engine.cgroupVersion})` },
      exit: undefined,
      exited,
      resolveExited,
      ending: undefined,
      timeoutTimer: undefined,
      checkpointing: false,
      meter: ContainerUsageMeter.start(container),
    }
    this.#remember(run)
    await this.#guard(run)
    const pumped = this.#pumpLogs(run)
    void this.#watch(run, pumped)
    if (spec.timeoutMs !== undefined) {
      run.timeoutTimer = setTimeout(() => {
        this.#logger.info('job-timeout', { jobId, timeoutMs: spec.timeoutMs })
        void this.#end(run, { reason: 'timeout', timedOut: true }, this.#limits.stopGraceMs)
      }, Math.max(1, spec.timeoutMs - ranBeforeMs))
    }
    // CRIU's probe (cached for the process's life) is asked now, not inside a later checkpoint's downtime.
    void probeCriu(this.#criuPath).catch(() => {})
    this.#logger.info('job-started', { jobId, container: container.id, pid: run.pid })
    return { jobId, pid: run.pid, startedAtMs: run.startedAtMs, isolation, limits: run.limits, exited }
  }

  /** Copies the container's output into the job's log files until the container ends. */
  async #pumpLogs(run: ContainerRun): Promise<void> {
    const stdout = createWriteStream(join(run.jobDir, 'stdout.log'), { flags: 'a' })
    const stderr = createWriteStream(join(run.jobDir, 'stderr.log'), { flags: 'a' })
    try {
      const stream = (await run.container.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable
      this.#docker.modem.demuxStream(stream, stdout, stderr)
      await new Promise<void>((resolve, reject) => {
        stream.once('end', resolve)
        stream.once('close', resolve)
        stream.once('error', reject)
      })
    } catch (error) {
      this.#logger.warn('log-pump-failed', { jobId: run.jobId, error: engineMessage(error) })
    } finally {
      await Promise.all([closeStream(stdout), closeStream(stderr)])
    }
  }

  async #watch(run: ContainerRun, pumped: Promise<void>): Promise<void> {
    let statusCode = 255
    let oomKilled = false
    try {
      const result = (await run.container.wait()) as { StatusCode?: number }
      statusCode = result.StatusCode ?? 255
      const details = await bounded(run.container.inspect(), this.#limits.engineCallTimeoutMs, 'inspecting the ended container').catch(() => undefined)
      oomKilled = details?.State.OOMKilled === true
    } catch (error) {
      this.#logger.warn('container-wait-failed', { jobId: run.jobId, error: engineMessage(error) })
    }
    const measured = run.meter.finish()
    // Everything the job wrote is in the log files before anyone hears it ended.
    await bounded(pumped, this.#limits.logDrainTimeoutMs, 'draining the container log').catch((error) => this.#logger.warn('log-drain-slow', { jobId: run.jobId, error: engineMessage(error) }))
    await run.container.remove({ force: true }).catch((error) => this.#logger.warn('container-remove-failed', { jobId: run.jobId, error: engineMessage(error) }))
    clearTimeout(run.timeoutTimer)
    const signal = statusCode > 128 ? signalName(statusCode - 128) : null
    const state = run.ending !== undefined && !run.ending.timedOut ? 'stopped' : statusCode === 0 && run.ending === undefined ? 'exited' : 'failed'
    const endedAtMs = this.#nowMs()
    const exit: JobExit = { jobId: run.jobId, state, exitCode: statusCode, signal, startedAtMs: run.startedAtMs, endedAtMs, usage: { ...measured, wallMs: Math.max(0, endedAtMs - run.startedAtMs) } }
    if (run.ending !== undefined) exit.reason = run.ending.reason
    else if (oomKilled) exit.reason = 'out of memory'
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

  #remember(run: ContainerRun): void {
    this.#runs.delete(run.jobId)
    this.#runs.set(run.jobId, run)
    if (this.#runs.size <= this.#limits.maxRememberedJobs) return
    for (const [jobId, candidate] of this.#runs) {
      if (this.#runs.size <= this.#limits.maxRememberedJobs) break
      if (candidate.exit !== undefined) this.#runs.delete(jobId)
    }
  }

  #get(jobId: JobId): ContainerRun {
    const run = this.#runs.get(jobId)
    if (run === undefined) throw new JobNotFoundError({ jobId })
    return run
  }

  async stop(jobId: JobId, reason: string, options: StopOptions = {}): Promise<JobExit> {
    const run = this.#get(jobId)
    if (run.exit !== undefined) return run.exit
    return this.#end(run, { reason, timedOut: false }, options.graceMs ?? this.#limits.stopGraceMs)
  }

  /** SIGTERM to the container's main process, SIGKILL after the grace period (kept to the millisecond, unlike `docker stop`). */
  async #end(run: ContainerRun, ending: { reason: string; timedOut: boolean }, graceMs: number): Promise<JobExit> {
    if (run.exit !== undefined) return run.exit
    if (run.ending !== undefined) return run.exited
    run.ending = ending
    if (graceMs > 0) {
      await this.#kill(run, 'SIGTERM')
      let timer: NodeJS.Timeout | undefined
      await Promise.race([run.exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))])
      clearTimeout(timer)
    }
    if (run.exit === undefined) await this.#kill(run, 'SIGKILL')
    return run.exited
  }

  async #kill(run: ContainerRun, signal: NodeJS.Signals): Promise<void> {
    try {
      await bounded(run.container.kill({ signal }), this.#limits.engineCallTimeoutMs, `sending ${signal} to the container`)
    } catch (error) {
      // 409: not running any more (it ended meanwhile); the watcher records the exit.
      if ((error as { statusCode?: number }).statusCode !== 409) this.#logger.warn('container-kill-failed', { jobId: run.jobId, signal, error: engineMessage(error) })
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
      isolation,
      limits: run.limits,
      stdoutPath: join(run.jobDir, 'stdout.log'),
      stderrPath: join(run.jobDir, 'stderr.log'),
    }
    if (run.exit !== undefined) {
      inspection.exitCode = run.exit.exitCode
      inspection.signal = run.exit.signal
      inspection.endedAtMs = run.exit.endedAtMs
      if (run.exit.reason !== undefined) inspection.reason = run.exit.reason
    } else if (run.ending !== undefined) {
      inspection.reason = run.ending.reason
    }
    return inspection
  }

  /** The engine's checkpoint API, into `directory`/criu, after refusing what CRIU cannot dump. */
  async checkpoint(jobId: JobId, directory: string, options: CheckpointOptions = {}): Promise<void> {
    const run = this.#get(jobId)
    const refuse = (reason: string): CheckpointUnsupportedError => new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'checkpoint', reason })
    if (run.exit !== undefined || run.ending !== undefined) throw refuse(`the job is not running (${run.exit?.state ?? `ending: ${run.ending?.reason}`})`)
    if (run.checkpointing) throw refuse('another checkpoint of the job is in progress')
    if (assignedGpus(run.spec).length > 0) throw refuse('the job has GPUs, whose state CRIU cannot carry here')
    const steps = new StepClock()
    // Asked together (the job runs meanwhile), judged in this order: the first failing one is the reason given.
    const [engineAsked, criuAsked, reasonsAsked, imageAsked] = await Promise.allSettled([
      this.#availableEngine(),
      probeCriu(this.#criuPath),
      processTree(run.pid).then(uncheckpointableReasons),
      this.#inspectImage(run.spec.image ?? ''),
    ])
    const engine = settledValue(engineAsked)
    if (!engine.experimental) throw refuse(`the Docker engine at ${engine.endpoint} runs without experimental features, which checkpoints need ("experimental": true in daemon.json)`)
    const criu = settledValue(criuAsked)
    if (!criu.available) throw refuse(criu.reason)
    const reasons = settledValue(reasonsAsked)
    if (reasons.length > 0) throw refuse(reasons.join('; '))
    const image = settledValue(imageAsked)
    if (image === undefined) throw refuse(`its image ${run.spec.image} is gone from this node`)
    await prepareCheckpointDirectory(directory, { jobId, runtime: this.kind })
    const leaveRunning = options.leaveRunning === true
    run.checkpointing = true
    if (!leaveRunning) run.ending = { reason: 'checkpointed', timedOut: false }
    steps.lap('checks')
    try {
      try {
        const runc = this.#runcRoot === null ? null : await localRuncContainer(run.container.id, this.#runcRoot)
        if (runc !== null) {
          const imagesDirectory = join(directory, checkpointLayout.images)
          await mkdir(imagesDirectory)
          await runcCheckpoint(runc, { criuPath: criu.path, imagesDirectory, scratchDirectory: run.jobDir, leaveRunning, timeoutMs: this.#limits.checkpointTimeoutMs })
        } else {
          // Docker writes the images to CheckpointDir/CheckpointID.
          await bounded(withCheckpoints(run.container).createCheckpoint({ CheckpointID: checkpointLayout.images, CheckpointDir: directory, Exit: !leaveRunning }), this.#limits.checkpointTimeoutMs, 'docker checkpoint create')
        }
      } catch (error) {
        if (!leaveRunning) run.ending = undefined
        throw new CheckpointFailedError({ jobId, runtime: this.kind, operation: 'checkpoint', reason: engineMessage(error) })
      }
      steps.lap('dump')
      await copyWorkFolder(join(run.jobDir, 'work'), join(directory, checkpointLayout.work))
      await writeCheckpointManifest(directory, {
        format: 1,
        runtime: 'docker',
        jobId,
        spec: run.spec,
        jobDir: run.jobDir,
        createdAtMs: this.#nowMs(),
        ranMs: run.ranBeforeMs + (this.#nowMs() - run.startedAtMs),
        criuVersion: criu.version,
        docker: { imageId: image.Id, checkpointName: checkpointLayout.images },
      })
      steps.lap('files')
    } finally {
      run.checkpointing = false
    }
    // The container is gone (its exit recorded, logs drained, engine removal done) before we return.
    if (!leaveRunning) await run.exited
    steps.lap('ended')
    this.#logger.info('job-checkpointed', { jobId, directory, leaveRunning, dumpMs: steps.laps.dump ?? 0, stepsMs: steps.laps, totalMs: steps.totalMs() })
  }

  /** A new container from the checkpoint's spec and image, started from its CRIU images. */
  async restore(jobId: JobId, directory: string): Promise<RunHandle> {
    const manifest = await readCheckpointManifest(directory, { jobId, runtime: 'docker' })
    const spec = manifest.spec
    this.#checkStartable(spec)
    const refuse = (reason: string): CheckpointUnsupportedError => new CheckpointUnsupportedError({ jobId, runtime: this.kind, operation: 'restore', reason })
    const steps = new StepClock()
    this.#starting.add(jobId)
    try {
      const engine = await this.#availableEngine()
      if (!engine.experimental) throw refuse(`the Docker engine at ${engine.endpoint} runs without experimental features, which restores need`)
      await this.#lease.outsideReady()
      const image = await this.#inspectImage(spec.image ?? '')
      if (image === undefined) throw refuse(`its image ${spec.image} is not on this node`)
      if (manifest.docker !== undefined && image.Id !== manifest.docker.imageId) {
        throw refuse(`image ${spec.image} here is ${image.Id}, the checkpoint was made from ${manifest.docker.imageId}`)
      }
      const jobDir = this.jobDir(jobId)
      const workPresent = await access(join(jobDir, 'work')).then(() => true, () => false)
      if (!workPresent) await copyWorkFolder(join(directory, checkpointLayout.work), join(jobDir, 'work'))
      await this.#prepareJobFolder(spec, jobDir, { freshLogs: false })
      steps.lap('checks')
      const images = resolve(directory, checkpointLayout.images)
      let container = await this.#createContainer(spec, jobDir)
      steps.lap('create')
      let imagesBy: 'link' | 'copy' = 'link'
      try {
        await this.#startFromImages(container, engine.rootDir, images, 'link', steps)
      } catch (linkError) {
        // An engine that does not see this machine's paths as we do (or a damaged image): copies, in a fresh container.
        await container.remove({ force: true }).catch(() => {})
        this.#logger.warn('restore-from-links-failed', { jobId, error: engineMessage(linkError) })
        imagesBy = 'copy'
        container = await this.#createContainer(spec, jobDir)
        try {
          await this.#startFromImages(container, engine.rootDir, images, 'copy', steps)
        } catch (error) {
          await container.remove({ force: true }).catch(() => {})
          throw new CheckpointFailedError({ jobId, runtime: this.kind, operation: 'restore', reason: engineMessage(error) })
        }
      }
      const handle = await this.#track(spec, container, jobDir, manifest.ranMs, engine)
      steps.lap('track')
      this.#logger.info('job-restored', { jobId, directory, container: container.id, imagesBy, restoreMs: steps.totalMs(), stepsMs: steps.laps })
      return handle
    } finally {
      this.#starting.delete(jobId)
    }
  }

  /**
   * Starts a created container from the CRIU images in `images`, placed in its own checkpoints/
   * folder (the engine finds a checkpoint there by name) as links (checkpoint-links.ts) or copies.
   * The name goes in the query: dockerode would send it as a body, which the engine refuses on start.
   */
  async #startFromImages(container: Docker.Container, engineRoot: string, images: string, by: 'link' | 'copy', steps: StepClock): Promise<void> {
    const checkpoints = join(engineRoot, 'containers', container.id, 'checkpoints')
    await mkdir(checkpoints, { recursive: true })
    if (by === 'link') await this.#linkImages(images, join(checkpoints, restoreCheckpointName))
    else await cp(images, join(checkpoints, restoreCheckpointName), { recursive: true })
    steps.lap(by)
    await bounded(container.start({ _query: { checkpoint: restoreCheckpointName }, _body: {} } as object), this.#limits.checkpointTimeoutMs, 'starting the container from its checkpoint')
    steps.lap(by === 'link' ? 'start' : 'startFromCopy')
    // The started process holds nothing of the images: the links (or copies) can go now.
    await rm(join(checkpoints, restoreCheckpointName), { recursive: true, force: true }).catch(() => {})
  }

  onExit(listener: ExitListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Kills every running job's container (a closing daemon does not wait out grace periods) and waits until each is recorded and removed. */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#runs.values()].filter((run) => run.exit === undefined).map((run) => this.#end(run, { reason: 'runtime closed', timedOut: false }, 0)))
    await this.#lease.close()
  }

  /** Containers of this runtime instance the engine still has (for tests and leak checks). */
  async containers(): Promise<string[]> {
    const list = await this.#docker.listContainers({ all: true, filters: { label: [`${dockerLabels.runtimeInstance}=${this.#instance}`] } })
    return list.map((entry) => entry.Id)
  }
}

/** dockerode has the checkpoint call; its type definitions lack it. */
function withCheckpoints(container: Docker.Container): { createCheckpoint(options: { CheckpointID: string; CheckpointDir: string; Exit: boolean }): Promise<unknown> } {
  return container as unknown as { createCheckpoint(options: { CheckpointID: string; CheckpointDir: string; Exit: boolean }): Promise<unknown> }
}

function settledValue<T>(settled: PromiseSettledResult<T>): T {
  if (settled.status === 'rejected') throw settled.reason
  return settled.value
}

/** Milliseconds spent in each named step of a checkpoint or restore, for its log line and the migrate bench. */
class StepClock {
  readonly laps: Record<string, number> = {}
  readonly #startedMs = performance.now()
  #lastMs = this.#startedMs
  lap(step: string): void {
    const nowMs = performance.now()
    this.laps[step] = Math.round(nowMs - this.#lastMs)
    this.#lastMs = nowMs
  }
  totalMs(): number {
    return Math.round(performance.now() - this.#startedMs)
  }
}

function engineMessage(error: unknown): string {
  const json = (error as { json?: { message?: string } }).json
  if (json?.message !== undefined) return json.message.trim()
  return error instanceof Error ? error.message : String(error)
}

function signalName(number: number): NodeJS.Signals | null {
  for (const [name, value] of Object.entries(constants.signals)) if (value === number) return name as NodeJS.Signals
  return null
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed) resolve()
    else stream.end(() => resolve())
  })
}

