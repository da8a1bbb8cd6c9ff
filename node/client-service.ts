// What the daemon answers on the client protocol, request by request: submit, cancel and migrate
// (to the core, answered once durable or refused), jobs, job, logs (local files, or passed on to the
// node that holds them; follow streams until the job ends), nodes, leader, status, explain (the
// leader answers; another node passes it on once), plan (a dry run here) and the stream of committed
// assignments. The protocol layer (client-protocol.ts) frames, validates and authorizes; this file
// only decides the answers.
import { getHeads } from '@automerge/automerge'
import { asJobId, asNodeId, forEachJob, replicaRecords, type ArchivedJob, type Document, type JobId, type JobSubmission, type NodeId, type PeerEvent, type ReplayKey, type Role, type Term } from '../consensus/index.ts'
import { parseJobSpec, type JobExplanation } from '../placement/index.ts'
import { JobNotFoundError, type LogChunk, type LogOptions } from '../runtime/index.ts'
import { answerAdmissionRequest, type AdmissionRequestBackend } from './admission-requests.ts'
import { clientWireLimits, errorResponse, type ClientErrorCode, type ClientRequest, type ClientRequestBody, type ClientRequestOf, type ClientResponse } from './client-wire.ts'
import type { LocalJobState } from './job-runner.ts'
import { CommittedAssignmentWatch } from './assignment-watch.ts'
import { jobDetail, listJobs, listNodes, outputNode, parentJobId, recordsOf } from './job-views.ts'
import { planOnDocument } from './live-plan.ts'
import type { NodeMetricsBook } from './metrics-gossip.ts'
import type { NodeMetrics } from './wire.ts'
import type { NodeLiveness } from './node-liveness.ts'
import { submissionFromSpecText } from './submission.ts'
import { replayKeyOfSignature, signatureField, signedRequestText } from './request-signature.ts'
import { maxSubmissionProofChars } from './submission-proof.ts'
import { MoveRequests, type MoveBackend } from './move-requests.ts'
import { maxArchiveScan } from './store.ts'

export type SubmitOutcome = { ok: true; jobId: JobId } | { ok: false; code: 'refused' | 'busy' | 'not-acknowledged' | 'unavailable'; reason: string; jobId?: JobId }

/** A request as it arrived: its frame (passed on as it is when relayed), its signed fields, and whether a node relayed it here. */
export interface RequestContext {
  frame: Uint8Array
  signed: Record<string, unknown>
  relayed: boolean
}

/** Requests only a voter writes (consensus/write-rules.ts): a non-voter relays them to the leader, as its client sent them. */
export const relayedKinds: ReadonlySet<string> = new Set(['cancel', 'migrate', 'drain', 'undrain'])

/**
 * A signed request's key in the mesh's replay memory (from its signature: one signed request, one
 * key), kept until its replay window closes: taken once, through whichever node it reaches.
 */
export function replayKeyOf(context: RequestContext | undefined): ReplayKey | undefined {
  const signature = context?.signed[signatureField]
  const signedAtMs = context?.signed.signedAtMs
  if (typeof signature !== 'string' || typeof signedAtMs !== 'number') return undefined
  return replayKeyOfSignature(signature, signedAtMs)
}

/** What the service needs from the daemon (the Shuttle implements it; moves and snapshots: move-requests.ts). */
export interface ClientBackend extends MoveBackend {
  readonly nodeId: NodeId
  nowMs(): number
  status(): { role: Role; term: Term; leaderId: NodeId | null; readyLeader: boolean; voters: NodeId[] }
  document(): Document
  submit(job: JobSubmission, replay?: ReplayKey): Promise<SubmitOutcome>
  cancel(jobId: JobId, replay?: ReplayKey): Promise<SubmitOutcome>
  /** Passes a client's request on to `nodeId` as the client sent it (a 'relay' request) and yields the answer's frames. */
  relay(nodeId: NodeId, frame: Uint8Array, signal: AbortSignal): AsyncIterable<ClientResponse>
  /** The leader's explain record of the latest remembered auction round that held the job (undefined elsewhere). */
  explain(jobId: JobId): JobExplanation | undefined
  /** On the leader, the highest of its term's decisions a majority acknowledged; null elsewhere. */
  leaderCommittedSeq(): number | null
  onCoreEvent(listener: (event: PeerEvent) => void): () => void
  counters(): Record<string, unknown>
  archivedJob(jobId: JobId): Promise<ArchivedJob | undefined>
  archivedJobs(limit: number): Promise<ArchivedJob[]>
  liveness: NodeLiveness
  /** This node's own state (it does not hear its own gossip). */
  own(): { free: { cpuMillis: number; memoryMiB: number }; running: number; metrics: NodeMetrics }
  /** The latest metrics heard from the other nodes. */
  metricsHeard: NodeMetricsBook
  localJob(jobId: JobId): LocalJobState | undefined
  localLogs(jobId: JobId, options: LogOptions): AsyncIterable<LogChunk>
  /** Passes a request on to another node over the client protocol and yields its frames. */
  forward(nodeId: NodeId, body: ClientRequestBody, signal: AbortSignal): AsyncIterable<ClientResponse>
  /** Answers admit, revoke and mesh (admission-requests.ts). */
  admission: AdmissionRequestBackend
}

export interface ClientServiceLimits {
  /** How long a follow waits for its job to be placed and started before giving up. */
  followStartWaitMs: number
  /** How often such a wait looks again. */
  waitPollMs: number
  /** `assignments` streams open at once (each scans the document whenever the core commits). */
  maxAssignmentWatches: number
  /** A non-leader's `assignments` stream looks at the document this often (it hears no commit events). */
  assignmentScanIntervalMs: number
  /** Archived replica records of one job looked up for `job ID` (a job leaves the document for the archive). */
  maxArchivedReplicasRead: number
}

export const defaultClientServiceLimits: ClientServiceLimits = { followStartWaitMs: 60_000, waitPollMs: 100, maxAssignmentWatches: 16, assignmentScanIntervalMs: 100, maxArchivedReplicasRead: 1_000 }

/** A refusal with the code the client sees; thrown inside handlers, framed by the protocol. */
export class ClientFailure extends Error {
  override name = 'ClientFailure'
  readonly code: ClientErrorCode
  readonly jobId: string | undefined
  constructor(code: ClientErrorCode, message: string, jobId?: string) {
    super(message)
    this.code = code
    this.jobId = jobId
  }
}

export class ClientService {
  readonly #backend: ClientBackend
  readonly #limits: ClientServiceLimits
  readonly #moves: MoveRequests
  #assignmentWatches = 0

  constructor(backend: ClientBackend, limits: Partial<ClientServiceLimits> = {}) {
    this.#backend = backend
    this.#limits = { ...defaultClientServiceLimits, ...limits }
    this.#moves = new MoveRequests(backend)
  }

  /** The frames answering `request` (`context`: how it arrived); a ClientFailure becomes an error frame. */
  async *handle(request: ClientRequest, signal: AbortSignal, context?: RequestContext): AsyncGenerator<ClientResponse> {
    try {
      if (relayedKinds.has(request.kind) && context !== undefined && !context.relayed && !this.#backend.status().voters.includes(this.#backend.nodeId)) {
        yield* this.#relayToVoter(context.frame, signal)
        return
      }
      const replay = replayKeyOf(context)
      switch (request.kind) {
        case 'submit':
          yield await this.#submit(request, replay, context)
          return
        case 'jobs':
          yield await this.#jobs(request)
          return
        case 'job':
          yield await this.#job(request)
          return
        case 'logs':
          yield* this.#logs(request, signal)
          return
        case 'nodes':
          yield this.#nodes()
          return
        case 'leader':
          yield this.#leader()
          return
        case 'admit':
        case 'revoke':
        case 'mesh':
          yield await answerAdmissionRequest(request, this.#backend.admission, context === undefined ? null : signedRequestText(context.signed))
          return
        case 'cancel':
          yield await this.#acknowledged(request.jobId, this.#backend.cancel(asJobId(request.jobId), replay), { jobId: request.jobId })
          return
        case 'migrate':
          yield* this.#moves.migrate(request, signal, replay)
          return
        case 'checkpoint':
          yield* this.#moves.checkpoint(request, signal)
          return
        case 'snapshots':
          yield this.#moves.snapshots(request)
          return
        case 'drain':
          yield* this.#moves.drain(request, signal, replay)
          return
        case 'undrain':
          yield await this.#moves.undrain(request, replay)
          return
        case 'relay':
          throw new ClientFailure('bad-request', 'a relayed request is answered where it lands, not relayed on')
        case 'restore-progress':
          yield* this.#moves.restoreProgress(request, signal)
          return
        case 'explain':
          yield* this.#explain(request, signal)
          return
        case 'plan':
          yield this.#plan(request)
          return
        case 'status':
          yield this.#status()
          return
        case 'assignments':
          yield* this.#assignments(signal)
          return
      }
    } catch (error) {
      if (error instanceof ClientFailure) yield errorResponse(error.code, error.message, error.jobId)
      else throw error
    }
  }

  async #submit(request: ClientRequestOf<'submit'>, replay: ReplayKey | undefined, context: RequestContext | undefined): Promise<ClientResponse> {
    // The job id comes from the signed request when there is one: the same request taken by two nodes at once is one job.
    const made = submissionFromSpecText(request.spec, replay?.key)
    if (!made.ok) throw new ClientFailure('invalid-spec', made.reason)
    // The client's signed request goes with the job: a non-voter's job records need it (node/submission-proof.ts).
    const proof = context === undefined ? undefined : signedRequestText(context.signed)
    if (proof !== undefined && proof.length > maxSubmissionProofChars) {
      throw new ClientFailure('invalid-spec', `the signed request is ${proof.length} characters as JSON, over the ${maxSubmissionProofChars} a job record keeps: shorten the spec`)
    }
    const outcome = await this.#backend.submit(proof === undefined ? made.submission : { ...made.submission, request: proof }, replay)
    if (!outcome.ok) throw new ClientFailure(outcome.code, outcome.reason, outcome.jobId)
    return { type: 'result', value: { jobId: outcome.jobId } }
  }

  async #jobs(request: ClientRequestOf<'jobs'>): Promise<ClientResponse> {
    const archived = await this.#backend.archivedJobs(maxArchiveScan)
    return { type: 'result', value: listJobs(this.#backend.document(), archived, request.limit ?? clientWireLimits.maxListedJobs) }
  }

  async #job(request: ClientRequestOf<'job'>): Promise<ClientResponse> {
    const jobId = asJobId(request.jobId)
    const document = this.#backend.document()
    const records = recordsOf(document, jobId)
    // The replicas this node runs: the first one found is shown as `local`.
    const candidates = records.length > 0 ? records.map(({ id }) => id) : [jobId]
    let local
    for (const id of candidates) {
      const state = this.#backend.localJob(id)
      if (state !== undefined) {
        local = { node: this.#backend.nodeId, replica: id, state }
        break
      }
    }
    const detail = jobDetail(document, jobId, await this.#archivedRecords(jobId, records.length), local)
    if (detail === undefined) throw new ClientFailure('not-found', `no job ${jobId} (not in the cluster document, nor in this node's archive)`, jobId)
    return { type: 'result', value: detail }
  }

  /** What the archive holds of a job: its record, or its replicas' records `<id>#0`, `<id>#1`, ... */
  async #archivedRecords(jobId: JobId, inDocument: number): Promise<ArchivedJob[]> {
    const whole = await this.#backend.archivedJob(jobId)
    if (whole !== undefined) return [whole]
    const found: ArchivedJob[] = []
    // Replicas leave the document one by one; read on past those still in it.
    for (let replica = 0; replica < this.#limits.maxArchivedReplicasRead; replica++) {
      const archived = await this.#backend.archivedJob(asJobId(`${jobId}#${replica}`))
      if (archived === undefined) {
        if (replica >= inDocument) break
        continue
      }
      found.push(archived)
    }
    return found
  }

  /** A request only a voter writes, taken by this non-voter: the leader (else any voter) answers it. */
  async *#relayToVoter(frame: Uint8Array, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const status = this.#backend.status()
    const targets = [...new Set([...(status.leaderId === null ? [] : [status.leaderId]), ...status.voters])].filter((node) => node !== this.#backend.nodeId)
    let lastError = 'no voter is known'
    for (const target of targets) {
      try {
        yield* this.#backend.relay(target, frame, signal)
        return
      } catch (error) {
        if (signal.aborted) throw error
        lastError = `${target}: ${(error as Error).message}`
      }
    }
    throw new ClientFailure('unavailable', `only a voter records this request and none answered (${lastError})`)
  }

  /** cancel and migrate: answered once the core says the request is durable on a majority of voters. */
  async #acknowledged(jobId: string, outcome: Promise<SubmitOutcome>, value: Record<string, unknown>): Promise<ClientResponse> {
    const answer = await outcome
    if (!answer.ok) throw new ClientFailure(answer.code, answer.reason, jobId)
    return { type: 'result', value }
  }

  #status(): ClientResponse {
    const status = this.#backend.status()
    const document = this.#backend.document()
    let jobRecords = 0
    forEachJob(document, () => jobRecords++)
    const heads = getHeads(document)
    return {
      type: 'result',
      value: {
        nodeId: this.#backend.nodeId,
        role: status.role,
        term: status.term,
        leaderId: status.leaderId,
        readyLeader: status.readyLeader,
        voters: status.voters,
        documentHeads: heads.slice(0, clientWireLimits.maxStatusHeads),
        jobRecords,
        counters: this.#backend.counters(),
      },
    }
  }

  // ---- explain and plan

  async *#explain(request: ClientRequestOf<'explain'>, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    // Auctions are held per submitted job: a replica's id names its job's record.
    const jobId = asJobId(parentJobId(request.jobId))
    const status = this.#backend.status()
    if (status.role !== 'leader') {
      if (request.forwarded === true) throw new ClientFailure('unavailable', `${this.#backend.nodeId} is not the leader (it follows ${status.leaderId ?? 'no leader'}); ask again`, jobId)
      if (status.leaderId === null) throw new ClientFailure('unavailable', `no leader is known to ${this.#backend.nodeId} in term ${status.term}: only the leader remembers its auction rounds`, jobId)
      const leaderId = status.leaderId
      try {
        yield* this.#backend.forward(leaderId, { kind: 'explain', jobId }, signal)
      } catch (error) {
        if (signal.aborted) throw error
        throw new ClientFailure('unavailable', `the leader ${leaderId} did not answer: ${(error as Error).message}`, jobId)
      }
      return
    }
    const record = this.#backend.explain(jobId)
    if (record === undefined) {
      const known = replicaRecords(this.#backend.document(), jobId).length > 0 || (await this.#backend.archivedJob(jobId)) !== undefined
      throw new ClientFailure(
        'not-found',
        known
          ? `job ${jobId} is in none of the auction rounds the leader remembers (its last 32; a new leader remembers only its own): it was placed earlier, or waits for its next round`
          : `no job ${jobId} (not in the cluster document, nor in this node's archive)`,
        jobId,
      )
    }
    yield { type: 'result', value: { explanation: clipExplanation(record), answeredBy: this.#backend.nodeId, term: status.term } }
  }

  #plan(request: ClientRequestOf<'plan'>): ClientResponse {
    const parsed = parseJobSpec(request.spec, 'spec')
    if (!parsed.ok) throw new ClientFailure('invalid-spec', parsed.errors.map((error) => `${error.path}: ${error.message}`).join('; '))
    const nowMs = this.#backend.nowMs()
    const self = this.#backend.nodeId
    const liveness = this.#backend.liveness
    const plan = planOnDocument(this.#backend.document(), parsed.spec, {
      nowMs,
      isAlive: (nodeId) => nodeId === self || liveness.isAlive(nodeId, nowMs),
      describeSilence: (nodeId) => {
        const heard = liveness.heard(nodeId)
        return heard === undefined ? 'not heard on the capacity topic' : `silent for ${Math.round((nowMs - heard.lastHeardMs) / 1000)} s`
      },
    })
    return { type: 'result', value: { explanation: clipExplanation(plan.explanation), considered: plan.considered, leftOut: plan.leftOut.slice(0, clientWireLimits.maxListedNodes) } }
  }

  // ---- the stream of committed assignments

  async *#assignments(signal: AbortSignal): AsyncGenerator<ClientResponse> {
    if (this.#assignmentWatches >= this.#limits.maxAssignmentWatches) throw new ClientFailure('busy', `${this.#limits.maxAssignmentWatches} assignment streams are open on this node already`)
    this.#assignmentWatches++
    const watch = new CommittedAssignmentWatch()
    let wake: (() => void) | null = null
    // A commit on the leader wakes the stream at once; elsewhere it looks every scan interval.
    const unsubscribe = this.#backend.onCoreEvent((event) => {
      if (event.kind === 'committed' || event.kind === 'leader-ready') wake?.()
    })
    try {
      while (!signal.aborted) {
        const status = this.#backend.status()
        const committedSeq = this.#backend.leaderCommittedSeq()
        const leader = committedSeq === null ? null : { term: status.term, committedSeq }
        for (const assignment of watch.scan(this.#backend.document(), leader)) yield { type: 'assignment', ...assignment }
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer)
            signal.removeEventListener('abort', done)
            wake = null
            resolve()
          }
          const timer = setTimeout(done, this.#limits.assignmentScanIntervalMs)
          signal.addEventListener('abort', done)
          wake = done
        })
      }
    } finally {
      unsubscribe()
      this.#assignmentWatches--
    }
  }

  #nodes(): ClientResponse {
    const status = this.#backend.status()
    const nodes = listNodes(this.#backend.document(), { self: this.#backend.nodeId, leaderId: status.leaderId, nowMs: this.#backend.nowMs(), liveness: this.#backend.liveness, metricsHeard: this.#backend.metricsHeard, own: this.#backend.own() })
    return { type: 'result', value: { nodes: nodes.slice(0, clientWireLimits.maxListedNodes) } }
  }

  #leader(): ClientResponse {
    const status = this.#backend.status()
    return { type: 'result', value: { leaderId: status.leaderId, term: status.term, askedNode: this.#backend.nodeId, askedRole: status.role, readyLeader: status.readyLeader } }
  }

  // ---- logs

  async *#logs(request: ClientRequestOf<'logs'>, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const jobId = asJobId(request.jobId)
    const { node: where, active } = await this.#outputNode(jobId, request.follow, signal)
    if (where !== this.#backend.nodeId) {
      // Passed on once: the node named by the document answers from its own files or refuses.
      if (request.forwarded === true) throw new ClientFailure('unavailable', `job ${jobId} ran on ${where}, not on ${this.#backend.nodeId}`, jobId)
      yield* this.#forward(where, request, signal)
      return
    }
    // A job still to run here may not have started yet; a finished one is read from its files.
    if (request.follow && active) await this.#waitForLocalStart(jobId, signal)
    try {
      // Without follow, one bounded read per stream (the daemon's runtime sets how much).
      yield* framesOf(this.#backend.localLogs(jobId, { follow: request.follow, stream: request.stream, signal }))
    } catch (error) {
      if (!(error instanceof JobNotFoundError)) throw error
      const local = this.#backend.localJob(jobId)
      if (local?.state === 'launch-failed') throw new ClientFailure('unavailable', `job ${jobId} could not be launched on ${this.#backend.nodeId}: ${local.reason ?? 'unknown reason'}`, jobId)
      throw new ClientFailure('unavailable', `job ${jobId} has no output on ${this.#backend.nodeId} yet (it has not started here)`, jobId)
    }
    yield { type: 'end' }
  }

  /** The node holding the job's output and whether the job is still active; with follow, waits (bounded) for it to be placed. */
  async #outputNode(jobId: JobId, follow: boolean, signal: AbortSignal): Promise<{ node: NodeId; active: boolean }> {
    const archived = await this.#backend.archivedJob(jobId)
    const locate = () => outputNode(this.#backend.document(), jobId, archived)
    let found = locate()
    if (found === undefined) {
      const replicas = replicaRecords(this.#backend.document(), jobId)
      if (replicas.length > 1) throw new ClientFailure('not-found', `job ${jobId} has ${replicas.length} replicas, each with its own output: ask for one of ${replicas.map(({ id }) => id).join(', ')}`, jobId)
      throw new ClientFailure('not-found', `no job ${jobId} (not in the cluster document, nor in this node's archive)`, jobId)
    }
    if (found.node === null && follow) {
      await this.#waitUntil(() => locate()?.node !== null, signal)
      found = locate()
    }
    const node = found?.node ?? null
    if (node === null) throw new ClientFailure('unavailable', `job ${jobId} has not been placed yet${follow ? ` (waited ${this.#limits.followStartWaitMs} ms)` : '; follow its logs with -f to wait for it'}`, jobId)
    return { node, active: found?.active ?? false }
  }

  async #waitForLocalStart(jobId: JobId, signal: AbortSignal): Promise<void> {
    await this.#waitUntil(() => {
      const local = this.#backend.localJob(jobId)
      return local !== undefined && local.state !== 'starting'
    }, signal)
  }

  async #waitUntil(condition: () => boolean, signal: AbortSignal): Promise<boolean> {
    const deadline = this.#backend.nowMs() + this.#limits.followStartWaitMs
    while (!condition()) {
      if (signal.aborted || this.#backend.nowMs() >= deadline) return false
      await new Promise((resolve) => setTimeout(resolve, this.#limits.waitPollMs))
    }
    return true
  }

  async *#forward(node: NodeId, request: ClientRequestOf<'logs'>, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    const body: ClientRequestBody = { kind: 'logs', jobId: request.jobId, follow: request.follow, stream: request.stream }
    try {
      yield* this.#backend.forward(node, body, signal)
    } catch (error) {
      if (signal.aborted) throw error
      throw new ClientFailure('unavailable', `the output of job ${request.jobId} is on node ${node}, which did not answer: ${(error as Error).message}`, request.jobId)
    }
  }
}

/** Log chunks as frames, split to the wire's size per frame. */
async function* framesOf(chunks: AsyncIterable<LogChunk>): AsyncGenerator<ClientResponse> {
  const max = clientWireLimits.maxLogChunkChars
  for await (const chunk of chunks) {
    let offsetBytes = chunk.offsetBytes
    for (let start = 0; start < chunk.text.length; start += max) {
      const text = chunk.text.slice(start, start + max)
      yield { type: 'log', stream: chunk.stream, offsetBytes, text }
      offsetBytes += Buffer.byteLength(text)
    }
  }
}

/** An explain record within the wire's row limit (the rest are counted in `rowsOmitted`). */
function clipExplanation(record: JobExplanation): JobExplanation & { rowsOmitted?: number } {
  const max = clientWireLimits.maxExplainRows
  if (record.rows.length <= max) return record
  return { ...record, rows: record.rows.slice(0, max), rowsOmitted: record.rows.length - max }
}
