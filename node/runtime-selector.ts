// The daemon's runtime: jobs that name an image run in the Docker runtime (when this node has an
// engine), the others in the process runtime. Every later call on a job goes to the runtime that
// started it; a restore goes to the runtime its checkpoint came from (the checkpoint says which).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { JobId } from '../consensus/index.ts'
import {
  RuntimeUnavailableError,
  checkpointLayout,
  type CheckpointOptions,
  type ExitListener,
  type JobExit,
  type JobInspection,
  type LogChunk,
  type LogOptions,
  type RunHandle,
  type RunSpec,
  type Runtime,
  type StopOptions,
} from '../runtime/index.ts'

/** The node label a job naming an image needs (the Shuttle sets it when it has a Docker engine). */
export const dockerLabel = { key: 'runtime.docker', value: 'yes' } as const
/** Jobs remembered with their runtime (past this, the oldest go: their calls then go to the process runtime). */
export const maxJobsRemembered = 100_000

export class RuntimeSelector implements Runtime {
  readonly kind = 'selector'
  readonly #process: Runtime
  readonly #docker: Runtime | null
  readonly #owner = new Map<JobId, Runtime>()

  constructor(runtimes: { process: Runtime; docker: Runtime | null }) {
    this.#process = runtimes.process
    this.#docker = runtimes.docker
  }

  get hasDocker(): boolean { return this.#docker !== null }

  async start(spec: RunSpec): Promise<RunHandle> {
    const runtime = spec.image === undefined ? this.#process : this.#dockerOrRefuse()
    this.#remember(spec.jobId, runtime)
    return runtime.start(spec)
  }

  stop(jobId: JobId, reason: string, options?: StopOptions): Promise<JobExit> { return this.#of(jobId).stop(jobId, reason, options) }

  setLeaseDeadline(deadlineMs: number | null): void {
    this.#process.setLeaseDeadline(deadlineMs)
    this.#docker?.setLeaseDeadline(deadlineMs)
  }
  logs(jobId: JobId, options?: LogOptions): AsyncIterable<LogChunk> { return this.#of(jobId).logs(jobId, options) }
  inspect(jobId: JobId): Promise<JobInspection> { return this.#of(jobId).inspect(jobId) }
  checkpoint(jobId: JobId, directory: string, options?: CheckpointOptions): Promise<void> { return this.#of(jobId).checkpoint(jobId, directory, options) }

  async restore(jobId: JobId, directory: string): Promise<RunHandle> {
    let kind: unknown
    try {
      kind = (JSON.parse(await readFile(join(directory, checkpointLayout.manifest), 'utf8')) as { runtime?: unknown }).runtime
    } catch {
      kind = undefined // the runtime's own restore says what is wrong with the directory
    }
    const runtime = kind === 'docker' ? this.#dockerOrRefuse() : this.#process
    this.#remember(jobId, runtime)
    return runtime.restore(jobId, directory)
  }

  onExit(listener: ExitListener): () => void {
    const unsubscribe = [this.#process.onExit(listener), this.#docker?.onExit(listener)]
    return () => { for (const undo of unsubscribe) undo?.() }
  }

  async close(): Promise<void> {
    await Promise.all([this.#process.close(), this.#docker?.close()])
  }

  #of(jobId: JobId): Runtime {
    return this.#owner.get(jobId) ?? this.#process
  }

  #remember(jobId: JobId, runtime: Runtime): void {
    this.#owner.delete(jobId)
    if (this.#owner.size >= maxJobsRemembered) this.#owner.delete(this.#owner.keys().next().value!)
    this.#owner.set(jobId, runtime)
  }

  #dockerOrRefuse(): Runtime {
    if (this.#docker === null) throw new RuntimeUnavailableError({ runtime: 'docker', endpoint: 'this node', reason: 'no Docker engine answered when the daemon started' })
    return this.#docker
  }
}
