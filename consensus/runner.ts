// The runner: starts the committed assignments that name this node when it has room and its lease
// holds (node-lease.ts), stops every copy when the lease lapses and copies that a committed assignment
// fenced elsewhere or that finished elsewhere, hands finished jobs to the archive, and records job
// exits as they were: a copy stopped by fencing or a lapse that finished first is recorded finished.
// Peer feeds it the jobs each step touched and performs its effects.
import {
  demandOf,
  effectiveAssignment,
  failedAttempts,
  finalRun,
  forEachJob,
  isCancelled,
  isJobDone,
  isDraining,
  jobRecord,
  migrateOf,
  readText,
  readUsage,
  specCommandOf,
  type Document,
  type JobRecord,
  type RunState,
} from './cluster-document.ts'
import { copyEnded, restorePoint } from './retries.ts'
import type { JobId, JobUsage, NodeId, PeerEffect, PeerEvent, Resources } from './types.ts'
import { asTerm } from './types.ts'

export interface LocalRun {
  term: number
  seq: number
  demand: Resources
  /** Periodic checkpoints (0: none) and when the next is due. */
  checkpointEveryMs: number
  nextCheckpointMs: number
  /** A checkpoint the adapter is taking now, and why. */
  checkpointing: 'periodic' | 'migrate' | 'requested' | null
}
export interface RunOutcome { state: RunState; term: number; seq: number; exitCode: number; atMs: number; usage?: JobUsage }

export interface RunnerComponents {
  nodeId: NodeId
  capacity: Resources
  maxArchiveRemembered: number
  /** The peer's current document (it changes as the runner reports runs). */
  document: () => Document
  nowMs: () => number
  /** Whether an assignment is known committed (from the document or the leader's awards). */
  isCommitted: (assignment: { term: number; seq: number }) => boolean
  /** The node holds a lease and its document has caught up with what the granting leader held. */
  leaseHolds: () => boolean
  emit: (effect: PeerEffect) => void
  /** Writes this node's run of a job into the document and reports it to the leader. */
  reportRun: (message: string, jobId: JobId, run: RunOutcome) => void
  /** A finished job was handed to the archive. */
  onArchived: (jobId: JobId) => void
  /** Writes this node's latest snapshot of a replica into the document and reports it to the leader. */
  reportSnapshot: (jobId: JobId, snapshot: { cid: string; atMs: number; term: number; seq: number; holders: readonly NodeId[]; sizeBytes?: number; chunks?: number }) => void
  event: (event: PeerEvent) => void
}

export class Runner {
  readonly #components: RunnerComponents
  readonly #running = new Map<JobId, LocalRun>()
  /** Copies asked to stop whose exit has not come yet; `report`: record how it ended (fenced, lapsed). */
  readonly #stopping = new Map<JobId, { run: LocalRun; report: boolean }>()
  /** Jobs whose effective assignment names this node (started or waiting for commit or room). */
  readonly #mine = new Map<JobId, { term: number; seq: number }>()
  readonly #touchedJobs = new Set<JobId>()
  /** Jobs already handed to the archive (a bounded memory of them; the archive itself is the adapter's). */
  readonly #archived = new Set<JobId>()
  #recheckAll = true

  constructor(components: RunnerComponents) {
    this.#components = components
  }

  get running(): ReadonlyMap<JobId, LocalRun> { return this.#running }

  /** The next reconcile looks at this job again. */
  touch(jobId: JobId): void { this.#touchedJobs.add(jobId) }

  /** The next reconcile looks at every job (commits moved, or room was freed). */
  recheckAll(): void { this.#recheckAll = true }

  freeResources(): Resources {
    const free = { ...this.#components.capacity }
    for (const run of this.#running.values()) {
      free.cpuMillis -= run.demand.cpuMillis
      free.memoryMiB -= run.demand.memoryMiB
      free.diskMiB -= run.demand.diskMiB
      free.gpuCount -= run.demand.gpuCount
    }
    return free
  }

  /** Start committed assignments to this node, stop fenced copies. */
  reconcile(): void {
    const self = this.#components.nodeId
    const document = this.#components.document()
    const check = this.#recheckAll ? null : this.#touchedJobs
    if (check === null) {
      this.#mine.clear()
      forEachJob(document, (jobId, job) => {
        const current = effectiveAssignment(job)
        if (current !== null && current.node === self && !isJobDone(job) && !copyEnded(job, self, current)) this.#mine.set(jobId, current)
      })
    } else {
      for (const jobId of check) {
        const job = jobRecord(document, jobId)
        const current = job === undefined ? null : effectiveAssignment(job)
        if (job !== undefined && current !== null && current.node === self && !isJobDone(job) && !copyEnded(job, self, current)) this.#mine.set(jobId, current)
        else this.#mine.delete(jobId)
      }
    }
    this.#archiveDone(check)
    this.#recheckAll = false
    this.#touchedJobs.clear()
    // Without a lease this node runs nothing: the mesh may place its jobs elsewhere once it has surely lapsed.
    const leased = this.#components.leaseHolds()
    if (!leased) for (const jobId of [...this.#running.keys()]) this.#stop(jobId, 'lease-lapsed', "the node's lease lapsed", true)
    // Fencing: a committed assignment elsewhere with a higher stamp stops this copy.
    for (const [jobId, run] of this.#running) {
      const job = jobRecord(document, jobId)
      if (job === undefined || isJobDone(job)) {
        // Cancelled, or another copy finished it (and the leader may have archived it already): this copy is surplus.
        const cancelled = job !== undefined && isCancelled(job)
        this.#stop(jobId, cancelled ? 'cancelled' : 'finished-elsewhere', cancelled ? 'cancelled' : 'the job finished on another node', false)
        continue
      }
      const current = effectiveAssignment(job)
      // A migrate request for this copy: checkpoint it and stop (it restores elsewhere).
      if (run.checkpointing === null && migrateOf(job, run) !== null) {
        run.checkpointing = 'migrate'
        this.#components.emit({ kind: 'checkpoint-job', jobId, term: asTerm(run.term), seq: run.seq, stop: true, reason: 'migrate' })
      }
      if (current === null || current.node === self || !this.#components.isCommitted(current)) continue
      this.#stop(jobId, 'fenced', `fenced: assignment ${current.term}.${current.seq} moved it to ${current.node}`, true)
    }
    if (!leased) return
    for (const [jobId, assignment] of this.#mine) {
      if (this.#running.has(jobId) || !this.#components.isCommitted(assignment)) continue
      const job = jobRecord(document, jobId)
      if (job === undefined) continue
      // Asked to move (a drain, a migrate) before it started here: it starts elsewhere instead.
      if (migrateOf(job, assignment) !== null) {
        this.#mine.delete(jobId)
        this.#components.reportRun(`evict ${jobId}`, jobId, { state: 'evicted', term: assignment.term, seq: assignment.seq, exitCode: -1, atMs: this.#components.nowMs() })
        continue
      }
      const demand = demandOf(job)
      const free = this.freeResources()
      if (demand.cpuMillis > free.cpuMillis || demand.memoryMiB > free.memoryMiB || demand.diskMiB > free.diskMiB || demand.gpuCount > free.gpuCount) continue // wait for room
      const every = job.checkpointEveryMs ?? 0
      const now = this.#components.nowMs()
      this.#running.set(jobId, { term: assignment.term, seq: assignment.seq, demand, checkpointEveryMs: every, nextCheckpointMs: every > 0 ? now + every : Infinity, checkpointing: null })
      // Only the outcome goes into the document; that it runs is soft state (capacity gossip).
      this.#components.emit({ kind: 'start-job', jobId, demand, durationMs: job.durationMs, term: asTerm(assignment.term), seq: assignment.seq, restoreFrom: restorePoint(job) })
    }
  }

  /** Every node archives the jobs it sees finish; the leader later drops them from the document. */
  #archiveDone(check: ReadonlySet<JobId> | null): void {
    const visit = (jobId: JobId, job: JobRecord): void => {
      if (this.#archived.has(jobId)) return
      const outcome = finalRun(job)
      if (outcome === null) return
      if (this.#archived.size >= this.#components.maxArchiveRemembered) this.#archived.delete(this.#archived.keys().next().value!)
      this.#archived.add(jobId)
      this.#components.onArchived(jobId)
      const attempts = failedAttempts(job).length + (outcome.state === 'finished' ? 1 : 0)
      const measured = readUsage(outcome.run.usage)
      const usage = measured === null ? {} : { usage: measured }
      this.#components.emit({ kind: 'archive-job', job: { id: jobId, name: readText(job.name), state: outcome.state, node: outcome.node, exitCode: outcome.run.exitCode, submittedAtMs: job.submittedAtMs, finishedAtMs: outcome.run.atMs, attempts, maxAttempts: job.maxAttempts ?? 1, ...usage, ...whatItRan(job) } })
    }
    const document = this.#components.document()
    if (check === null) forEachJob(document, visit)
    else for (const jobId of check) {
      const job = jobRecord(document, jobId)
      if (job !== undefined) visit(jobId, job)
    }
  }

  /** Asks the adapter to stop a running copy; its exit is recorded as it happens when `report` (a copy that finished first says so). */
  #stop(jobId: JobId, cause: 'cancelled' | 'finished-elsewhere' | 'fenced' | 'lease-lapsed', reason: string, report: boolean): void {
    const run = this.#running.get(jobId)
    if (run === undefined) return
    this.#running.delete(jobId)
    this.#stopping.set(jobId, { run, report })
    this.#components.emit({ kind: 'stop-job', jobId, cause, reason })
  }

  /** The earliest periodic checkpoint due. */
  nextCheckpointMs(): number {
    let next = Infinity
    for (const run of this.#running.values()) if (run.checkpointing === null) next = Math.min(next, run.nextCheckpointMs)
    return next
  }

  /** Asks the adapter for the periodic checkpoints that are due. */
  checkpointDue(): void {
    const now = this.#components.nowMs()
    for (const [jobId, run] of this.#running) {
      if (run.checkpointing !== null || now < run.nextCheckpointMs) continue
      run.checkpointing = 'periodic'
      this.#components.emit({ kind: 'checkpoint-job', jobId, term: asTerm(run.term), seq: run.seq, stop: false, reason: 'periodic' })
    }
  }

  /**
   * A client asked for a checkpoint of this node's copy now (it keeps running). Null when one was
   * started or is under way already (its snapshot answers the request too), else why not.
   */
  requestCheckpoint(jobId: JobId): string | null {
    const run = this.#running.get(jobId)
    if (run === undefined) return `${this.#components.nodeId} runs no copy of ${jobId}`
    if (run.checkpointing !== null) return null
    run.checkpointing = 'requested'
    this.#components.emit({ kind: 'checkpoint-job', jobId, term: asTerm(run.term), seq: run.seq, stop: false, reason: 'requested' })
    return null
  }

  /** The adapter published a snapshot of a replica: record it; a stopped copy (a migration) leaves. */
  checkpointed(jobId: JobId, cid: string, stopped: boolean, holders: readonly NodeId[] = [], size: { sizeBytes?: number; chunks?: number } = {}): void {
    const run = this.#running.get(jobId)
    if (run === undefined || jobRecord(this.#components.document(), jobId) === undefined) return
    const now = this.#components.nowMs()
    this.#components.reportSnapshot(jobId, { cid, atMs: now, term: run.term, seq: run.seq, holders, ...size })
    run.checkpointing = null
    run.nextCheckpointMs = run.checkpointEveryMs > 0 ? now + run.checkpointEveryMs : Infinity
    if (!stopped) return
    this.#running.delete(jobId)
    this.#mine.delete(jobId)
    this.#components.reportRun(`checkpointed ${jobId}`, jobId, { state: 'checkpointed', term: run.term, seq: run.seq, exitCode: -1, atMs: now })
    this.#recheckAll = true
  }

  /**
   * A checkpoint failed: the copy keeps running (a migration is not retried until asked again),
   * except on a draining node, where it is stopped and placed again elsewhere without a snapshot
   * of its own (it restarts from its latest one, if any, else from the beginning).
   */
  checkpointFailed(jobId: JobId, reason: string): void {
    const run = this.#running.get(jobId)
    if (run === undefined) return
    const now = this.#components.nowMs()
    const moving = run.checkpointing === 'migrate'
    run.checkpointing = null
    run.nextCheckpointMs = run.checkpointEveryMs > 0 ? now + run.checkpointEveryMs : Infinity
    this.#components.event({ kind: 'checkpoint-failed', jobId, reason })
    if (!moving || !isDraining(this.#components.document(), this.#components.nodeId)) return
    this.#running.delete(jobId)
    this.#mine.delete(jobId)
    this.#components.emit({ kind: 'stop-job', jobId, cause: 'drained', reason: `drained without a checkpoint (${reason})` })
    this.#components.reportRun(`evict ${jobId}`, jobId, { state: 'evicted', term: run.term, seq: run.seq, exitCode: -1, atMs: now })
    this.#recheckAll = true
  }

  /**
   * A local job ended: record the outcome and its usage (if the job is still in the document) and
   * free its room. A copy that was being stopped is recorded as it ended: finished if it exited 0
   * first, else stopped; so is one the watchdog ended when the lease lapsed (not a failure of the job).
   */
  jobExited(jobId: JobId, exitCode: number, usage?: JobUsage, leaseLapsed = false): void {
    const stopping = this.#stopping.get(jobId)
    if (stopping !== undefined) {
      this.#stopping.delete(jobId)
      if (stopping.report) this.#record(jobId, stopping.run, exitCode === 0 ? 'finished' : 'stopped', exitCode, usage)
      return
    }
    const run = this.#running.get(jobId)
    if (run === undefined) return
    this.#running.delete(jobId)
    this.#mine.delete(jobId)
    // Only the watchdog's word makes an exit a lapse: a job that failed by itself while the node was
    // paused is heard after its lease lapsed, and is still a failure (recorded so, never run again on
    // the same assignment).
    this.#record(jobId, run, exitCode === 0 ? 'finished' : leaseLapsed ? 'stopped' : 'failed', exitCode, usage)
  }

  #record(jobId: JobId, run: LocalRun, state: 'finished' | 'failed' | 'stopped', exitCode: number, usage: JobUsage | undefined): void {
    if (jobRecord(this.#components.document(), jobId) !== undefined) {
      this.#components.reportRun(`${state} ${jobId}`, jobId, { state, term: run.term, seq: run.seq, exitCode, atMs: this.#components.nowMs(), ...(usage === undefined ? {} : { usage }) })
    }
    this.#recheckAll = true // room freed: a waiting assignment may start
  }
}

/** The spec's command and args, and its image, for the archive (`fabric job` shows them after the job leaves the document). */
function whatItRan(job: JobRecord): { command?: string[]; image?: string } {
  const ran = specCommandOf(job)
  if (ran === null) return {}
  return { ...(ran.words.length > 0 ? { command: ran.words } : {}), ...(ran.image === undefined ? {} : { image: ran.image }) }
}
