// What the daemon answers on the client protocol, request by request: submit (spec -> submission ->
// the core, answered once durable or refused), jobs, job, logs (local files, or passed on to the
// node that holds them; follow streams until the job ends), nodes and leader. The protocol layer
// (client-protocol.ts) frames, validates and authorizes; this file only decides the answers.
import { asJobId, type ArchivedJob, type Document, type JobId, type JobSubmission, type NodeId, type Role, type Term } from '../consensus/index.ts'
import { parseJobSpec } from '../placement/index.ts'
import { JobNotFoundError, type LogChunk, type LogOptions } from '../runtime/index.ts'
import { answerAdmissionRequest, type AdmissionRequestBackend } from './admission-requests.ts'
import { clientWireLimits, errorResponse, type ClientErrorCode, type ClientRequest, type ClientRequestBody, type ClientRequestOf, type ClientResponse } from './client-wire.ts'
import type { LocalJobState } from './job-runner.ts'
import { jobDetail, listJobs, listNodes, outputNode } from './job-views.ts'
import type { NodeLiveness } from './node-liveness.ts'
import { newJobId, submissionFromSpec } from './submission.ts'
import { maxArchiveScan } from './store.ts'

export type SubmitOutcome = { ok: true; jobId: JobId } | { ok: false; code: 'refused' | 'busy' | 'not-acknowledged' | 'unavailable'; reason: string; jobId?: JobId }

/** What the service needs from the daemon (the Shuttle implements it). */
export interface ClientBackend {
  readonly nodeId: NodeId
  nowMs(): number
  status(): { role: Role; term: Term; leaderId: NodeId | null; readyLeader: boolean }
  document(): Document
  submit(job: JobSubmission): Promise<SubmitOutcome>
  archivedJob(jobId: JobId): Promise<ArchivedJob | undefined>
  archivedJobs(limit: number): Promise<ArchivedJob[]>
  liveness: NodeLiveness
  own(): { free: { cpuMillis: number; memoryMiB: number }; running: number }
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
}

export const defaultClientServiceLimits: ClientServiceLimits = { followStartWaitMs: 60_000, waitPollMs: 100 }

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

  constructor(backend: ClientBackend, limits: Partial<ClientServiceLimits> = {}) {
    this.#backend = backend
    this.#limits = { ...defaultClientServiceLimits, ...limits }
  }

  /** The frames answering `request`; a ClientFailure becomes an error frame. */
  async *handle(request: ClientRequest, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    try {
      switch (request.kind) {
        case 'submit':
          yield await this.#submit(request)
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
          yield await answerAdmissionRequest(request, this.#backend.admission)
          return
      }
    } catch (error) {
      if (error instanceof ClientFailure) yield errorResponse(error.code, error.message, error.jobId)
      else throw error
    }
  }

  async #submit(request: ClientRequestOf<'submit'>): Promise<ClientResponse> {
    const parsed = parseJobSpec(request.spec, 'spec')
    if (!parsed.ok) throw new ClientFailure('invalid-spec', parsed.errors.map((error) => `${error.path}: ${error.message}`).join('; '))
    const made = submissionFromSpec(parsed.spec, newJobId(parsed.spec.name))
    if (!made.ok) throw new ClientFailure('invalid-spec', made.reason)
    const outcome = await this.#backend.submit(made.submission)
    if (!outcome.ok) throw new ClientFailure(outcome.code, outcome.reason, outcome.jobId)
    return { type: 'result', value: { jobId: outcome.jobId } }
  }

  async #jobs(request: ClientRequestOf<'jobs'>): Promise<ClientResponse> {
    const archived = await this.#backend.archivedJobs(maxArchiveScan)
    return { type: 'result', value: listJobs(this.#backend.document(), archived, request.limit ?? clientWireLimits.maxListedJobs) }
  }

  async #job(request: ClientRequestOf<'job'>): Promise<ClientResponse> {
    const jobId = asJobId(request.jobId)
    const local = this.#backend.localJob(jobId)
    const detail = jobDetail(this.#backend.document(), jobId, await this.#backend.archivedJob(jobId), local === undefined ? undefined : { node: this.#backend.nodeId, state: local })
    if (detail === undefined) throw new ClientFailure('not-found', `no job ${jobId} (not in the cluster document, nor in this node's archive)`, jobId)
    return { type: 'result', value: detail }
  }

  #nodes(): ClientResponse {
    const status = this.#backend.status()
    const nodes = listNodes(this.#backend.document(), { self: this.#backend.nodeId, leaderId: status.leaderId, nowMs: this.#backend.nowMs(), liveness: this.#backend.liveness, own: this.#backend.own() })
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
    if (found === undefined) throw new ClientFailure('not-found', `no job ${jobId} (not in the cluster document, nor in this node's archive)`, jobId)
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
