// The client requests about snapshots and moves, answered by any node: checkpoint (each running
// replica on its runner, which streams its progress; a node passes the request on once to a runner
// that is not itself), snapshots (from the document), drain and undrain (admin; a drain then reports
// each copy as it leaves the node), and a followed migration (each copy's move, with the restore's
// progress streamed from the node it moves to). client-service.ts dispatches here.
import {
  asJobId,
  asNodeId,
  effectiveAssignment,
  forEachJob,
  isCommitted,
  isJobDone,
  jobRecord,
  latestSnapshot,
  runStateOf,
  snapshotsOf,
  type Document,
  type JobId,
  type MoveConstraints,
  type NodeId,
  type ReplayKey,
} from '../consensus/index.ts'
import { ClientFailure, type ClientBackend, type SubmitOutcome } from './client-service.ts'
import { clientWireLimits, decodeClientResult, type ClientRequestOf, type ClientResponse, type MovedView, type ProgressFrame, type SnapshotView } from './client-wire.ts'
import type { CheckpointMade } from './checkpoint-waiters.ts'
import { recordsOf } from './job-views.ts'

/** What these requests need beyond the rest of the client backend (the Shuttle provides both). */
export interface MoveBackend {
  migrate(jobId: JobId, to: NodeId | null, where?: MoveConstraints, replay?: ReplayKey): Promise<SubmitOutcome>
  drain(nodeId: NodeId, undo: boolean, replay?: ReplayKey): Promise<SubmitOutcome>
  checkpointNow(jobId: JobId, onProgress: (frame: ProgressFrame) => void, signal: AbortSignal): Promise<CheckpointMade>
  onRestoreProgress(jobId: JobId, listener: (frame: ProgressFrame) => void): () => void
}

export interface MoveRequestLimits {
  /** A drain or followed migration waits this long for its copies to move unless the request says. */
  defaultMoveWaitMs: number
  /** How often a wait looks at the document again. */
  movePollMs: number
  /** How long a made snapshot may take to show in this node's document. */
  recordWaitMs: number
}

export const defaultMoveRequestLimits: MoveRequestLimits = { defaultMoveWaitMs: 120_000, movePollMs: 100, recordWaitMs: 10_000 }

type Backend = ClientBackend & MoveBackend

/** A copy of a job as a move request found it: the record, its stamp, and the node it ran on. */
interface Copy { jobId: JobId; term: number; seq: number; from: NodeId }

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })

export class MoveRequests {
  readonly #backend: Backend
  readonly #limits: MoveRequestLimits

  constructor(backend: Backend, limits: Partial<MoveRequestLimits> = {}) {
    this.#backend = backend
    this.#limits = { ...defaultMoveRequestLimits, ...limits }
  }

  // ---- snapshots

  snapshots(request: ClientRequestOf<'snapshots'>): ClientResponse {
    const jobId = asJobId(request.jobId)
    const records = recordsOf(this.#backend.document(), jobId)
    if (records.length === 0) throw new ClientFailure('not-found', `no job ${jobId} in the cluster document (a finished job leaves it, and its snapshots with it)`, jobId)
    const snapshots: SnapshotView[] = []
    for (const { id, job } of records) for (const snapshot of snapshotsOf(job)) snapshots.push(snapshotView(id, snapshot))
    return { type: 'result', value: { jobId, snapshots: snapshots.slice(0, clientWireLimits.maxListedSnapshots) } }
  }

  // ---- checkpoint

  async *checkpoint(request: ClientRequestOf<'checkpoint'>, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const jobId = asJobId(request.jobId)
    const document = this.#backend.document()
    const records = recordsOf(document, jobId)
    if (records.length === 0) throw new ClientFailure('not-found', `no job ${jobId} in the cluster document`, jobId)
    const runners = records.flatMap(({ id, job }) => {
      const assignment = isJobDone(job) ? null : effectiveAssignment(job)
      return assignment === null ? [] : [{ replica: id, node: assignment.node }]
    })
    if (runners.length === 0) throw new ClientFailure('refused', `job ${jobId} has no placed replica to checkpoint (finished, or not placed yet)`, jobId)
    const self = this.#backend.nodeId
    if (request.forwarded === true && runners.some(({ node }) => node !== self)) throw new ClientFailure('unavailable', `${self} does not run ${jobId}`, jobId)
    const snapshots: SnapshotView[] = []
    for (const { replica, node } of runners) {
      if (node === self) {
        snapshots.push(yield* this.#checkpointHere(replica, signal))
        continue
      }
      // Passed on once to the runner, which streams its progress and answers with its snapshot.
      try {
        for await (const frame of this.#backend.forward(node, { kind: 'checkpoint', jobId: replica }, signal)) {
          if (frame.type === 'progress') yield frame
          else if (frame.type === 'error') throw new ClientFailure(frame.code, `${node}: ${frame.message}`, replica)
          else if (frame.type === 'result') {
            const result = decodeClientResult('checkpoint', frame.value)
            if (!result.ok) throw new ClientFailure('unavailable', `${node} answered: ${result.reason}`, replica)
            snapshots.push(...result.value.snapshots)
          }
        }
      } catch (error) {
        if (error instanceof ClientFailure || signal.aborted) throw error
        throw new ClientFailure('unavailable', `the runner of ${replica}, ${node}, did not answer: ${(error as Error).message}`, replica)
      }
    }
    yield { type: 'result', value: { jobId, snapshots } }
  }

  /** Checkpoints a replica this node runs, streaming its progress, and returns the snapshot once the document records it. */
  async *#checkpointHere(replica: JobId, signal: AbortSignal): AsyncGenerator<ClientResponse, SnapshotView> {
    let made: CheckpointMade
    try {
      made = yield* withProgress((push) => this.#backend.checkpointNow(replica, push, signal))
    } catch (error) {
      if (signal.aborted) throw error
      const refused = (error as Error).name === 'CheckpointRefusedError'
      throw new ClientFailure(refused ? 'refused' : 'unavailable', refused ? (error as Error).message : `${this.#backend.nodeId}: ${(error as Error).message}`, replica)
    }
    const self = this.#backend.nodeId
    const recorded = (): SnapshotView | undefined => {
      const job = jobRecord(this.#backend.document(), replica)
      const snapshot = job === undefined ? undefined : snapshotsOf(job).find((entry) => entry.node === self && entry.cid === made.cid)
      return snapshot === undefined ? undefined : snapshotView(replica, snapshot)
    }
    const deadline = this.#backend.nowMs() + this.#limits.recordWaitMs
    for (let view = recorded(); ; view = recorded()) {
      if (view !== undefined) {
        yield { type: 'progress', jobId: replica, node: self, phase: 'done', bytesDone: view.sizeBytes ?? 0, bytesTotal: view.sizeBytes ?? 0, chunksDone: view.chunks ?? 0, chunksTotal: view.chunks ?? 0, bytesPerSecond: 0, etaMs: 0 }
        return view
      }
      if (signal.aborted || this.#backend.nowMs() >= deadline) throw new ClientFailure('unavailable', `${self} made snapshot ${made.cid} of ${replica}, but its document did not record it within ${this.#limits.recordWaitMs} ms (the copy may have stopped)`, replica)
      await sleep(this.#limits.movePollMs, signal)
    }
  }

  // ---- drain, undrain

  async undrain(request: ClientRequestOf<'undrain'>, replay?: ReplayKey): Promise<ClientResponse> {
    const answer = await this.#backend.drain(asNodeId(request.nodeId), true, replay)
    if (!answer.ok) throw new ClientFailure(answer.code, answer.reason)
    return { type: 'result', value: { nodeId: request.nodeId } }
  }

  async *drain(request: ClientRequestOf<'drain'>, signal: AbortSignal, replay?: ReplayKey): AsyncGenerator<ClientResponse> {
    const nodeId = asNodeId(request.nodeId)
    // The copies the drain asks to move: those placed on the node in the document it is planned from.
    const copies: Copy[] = []
    forEachJob(this.#backend.document(), (jobId, job) => {
      const assignment = isJobDone(job) ? null : effectiveAssignment(job)
      if (assignment !== null && assignment.node === nodeId) copies.push({ jobId, term: assignment.term, seq: assignment.seq, from: nodeId })
    })
    const answer = await this.#backend.drain(nodeId, false, replay)
    if (!answer.ok) throw new ClientFailure(answer.code, answer.reason)
    const moved = yield* this.#watchMoves(copies, request.waitMs ?? this.#limits.defaultMoveWaitMs, signal, false)
    yield { type: 'result', value: { nodeId, moved: moved.slice(0, clientWireLimits.maxListedJobs), complete: moved.every((view) => view.how !== 'waiting') } }
  }

  // ---- migrate (with follow: each copy's move, and the restore's progress from its new node)

  async *migrate(request: ClientRequestOf<'migrate'>, signal: AbortSignal, replay?: ReplayKey): AsyncGenerator<ClientResponse> {
    const jobId = asJobId(request.jobId)
    const to = request.to === null ? null : asNodeId(request.to)
    const where: MoveConstraints = { ...(request.provider === undefined ? {} : { provider: request.provider }), ...(request.region === undefined ? {} : { region: request.region }) }
    const copies: Copy[] = []
    for (const { id, job } of recordsOf(this.#backend.document(), jobId)) {
      const assignment = isJobDone(job) ? null : effectiveAssignment(job)
      if (assignment !== null && assignment.node !== to) copies.push({ jobId: id, term: assignment.term, seq: assignment.seq, from: assignment.node })
    }
    const answer = await this.#backend.migrate(jobId, to, where, replay)
    if (!answer.ok) throw new ClientFailure(answer.code, answer.reason, jobId)
    const value = { jobId, to: request.to, ...where }
    if (request.follow !== true) {
      yield { type: 'result', value }
      return
    }
    const moved = yield* this.#watchMoves(copies, request.waitMs ?? this.#limits.defaultMoveWaitMs, signal, true)
    yield { type: 'result', value: { ...value, moved } }
  }

  /**
   * Yields a `moved` frame for each copy as it leaves its node (placed again, committed, elsewhere; or
   * finished), until all did or `waitMs` passed; with `progress`, also the restore's progress frames
   * from each copy's new node until it runs there. Returns every copy's outcome.
   */
  async *#watchMoves(copies: readonly Copy[], waitMs: number, signal: AbortSignal, progress: boolean): AsyncGenerator<ClientResponse, MovedView[]> {
    const outcomes = new Map<JobId, MovedView>()
    const deadline = this.#backend.nowMs() + waitMs
    while (outcomes.size < copies.length && !signal.aborted && this.#backend.nowMs() < deadline) {
      const document = this.#backend.document()
      for (const copy of copies) {
        if (outcomes.has(copy.jobId)) continue
        const view = moveOf(document, copy)
        if (view === null) continue
        outcomes.set(copy.jobId, view)
        yield { type: 'moved', ...view }
        if (progress && view.to !== null && view.cid !== null) yield* this.#restoreProgress(copy.jobId, asNodeId(view.to), deadline, signal)
      }
      if (outcomes.size < copies.length) await sleep(this.#limits.movePollMs, signal)
    }
    return copies.map((copy) => outcomes.get(copy.jobId) ?? { jobId: copy.jobId, from: copy.from, to: null, how: 'waiting', cid: null })
  }

  /** The restore's progress frames on `node` (this one, or asked of it once), until the copy runs there or the deadline. */
  async *#restoreProgress(replica: JobId, node: NodeId, deadline: number, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const waitMs = Math.max(1, Math.min(clientWireLimits.maxMoveWaitMs, Math.round(deadline - this.#backend.nowMs())))
    if (node !== this.#backend.nodeId) {
      try {
        for await (const frame of this.#backend.forward(node, { kind: 'restore-progress', jobId: replica, waitMs }, signal)) if (frame.type === 'progress') yield frame
      } catch {
        // Progress is a courtesy: the move itself is reported from the document either way (a
        // target that does not answer shows as one restore step without numbers).
        if (signal.aborted) return
        yield { type: 'progress', jobId: replica, node, phase: 'restore', bytesDone: 0, bytesTotal: 0, chunksDone: 0, chunksTotal: 0, bytesPerSecond: 0, etaMs: null }
      }
      return
    }
    yield* this.#localRestoreProgress({ jobId: replica, waitMs }, signal)
  }

  /** The `restore-progress` request: this node's restore of a replica, then the stream's end. */
  async *restoreProgress(request: { jobId: string; waitMs?: number }, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    yield* this.#localRestoreProgress(request, signal)
    yield { type: 'end' }
  }

  /** This node's restore of a replica: its fetch and restore progress, until the replica runs here (or `waitMs`). */
  async *#localRestoreProgress(request: { jobId: string; waitMs?: number }, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const replica = asJobId(request.jobId)
    const stop = new AbortController()
    const timer = setTimeout(() => stop.abort(), request.waitMs ?? this.#limits.defaultMoveWaitMs)
    const onAbort = (): void => stop.abort()
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      yield* withProgress<void>(async (push) => {
        const unsubscribe = this.#backend.onRestoreProgress(replica, push)
        try {
          // Ends once the replica runs here (restored) or ended, or the wait is over.
          while (!stop.signal.aborted) {
            const local = this.#backend.localJob(replica)
            if (local !== undefined && local.state !== 'starting') return
            await sleep(this.#limits.movePollMs, stop.signal)
          }
        } finally {
          unsubscribe()
        }
      })
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
  }
}

/** How a copy left its node, or null while it has not (its assignment still names the node, or the new one is not committed). */
function moveOf(document: Document, copy: Copy): MovedView | null {
  const job = jobRecord(document, copy.jobId)
  if (job === undefined || isJobDone(job)) return { jobId: copy.jobId, from: copy.from, to: null, how: 'finished', cid: null }
  const current = effectiveAssignment(job)
  if (current === null || current.node === copy.from || (current.term === copy.term && current.seq === copy.seq) || !isCommitted(document, current)) return null
  const run = job.runs[copy.from]
  const checkpointed = run !== undefined && runStateOf(run) === 'checkpointed' && run.term === copy.term && run.seq === copy.seq
  const from = job.snapshots?.[copy.from]
  const cid = checkpointed && from !== undefined ? snapshotsOf(job).find((entry) => entry.node === copy.from)!.cid : (latestSnapshot(job)?.cid ?? null)
  return { jobId: copy.jobId, from: copy.from, to: current.node, how: checkpointed ? 'restored' : 'restarted', cid }
}

/** A snapshot view for the wire (holders within the limit). */
function snapshotView(replica: string, snapshot: ReturnType<typeof snapshotsOf>[number]): SnapshotView {
  return { replica, node: snapshot.node, cid: snapshot.cid, atMs: snapshot.atMs, sizeBytes: snapshot.sizeBytes, chunks: snapshot.chunks, holders: snapshot.holders.slice(0, clientWireLimits.maxHolders) }
}

/** Runs `work`, yielding the progress frames it pushes as they come, and returns its result. */
async function* withProgress<T>(work: (push: (frame: ProgressFrame) => void) => Promise<T>): AsyncGenerator<ClientResponse, T> {
  const queue: ProgressFrame[] = []
  let wake: (() => void) | null = null
  let settled: { ok: true; value: T } | { ok: false; error: unknown } | null = null
  void work((frame) => {
    queue.push(frame)
    wake?.()
  }).then(
    (value) => { settled = { ok: true, value }; wake?.() },
    (error: unknown) => { settled = { ok: false, error }; wake?.() },
  )
  for (;;) {
    while (queue.length > 0) yield queue.shift()!
    const outcome = settled as { ok: true; value: T } | { ok: false; error: unknown } | null
    if (outcome !== null) {
      if (!outcome.ok) throw outcome.error
      return outcome.value
    }
    await new Promise<void>((resolve) => (wake = resolve))
    wake = null
  }
}
