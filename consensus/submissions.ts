// Submissions accepted by this node and not yet acknowledged: each is acknowledged once a majority of
// voters report holding this node's changes up to its origin sequence number; until then it is retried.
import { jobRecord, replicaIdOf, replicaSeparator, type Document } from './cluster-document.ts'
import { majorityValue } from './quorum.ts'
import type { JobId, JobSubmission, NodeId } from './types.ts'

/** A job's replicas are written in one change: this bounds that change. */
export const maxReplicasPerJob = 1_000

/**
 * The voters a request goes to first with requestFanout 'majority': the leader (which places it in
 * the same step) and just enough others for a majority with this node, taking turns by origin
 * sequence number. Null: every voter (no leader known, or this node leads).
 */
export function majorityFanout(self: NodeId, leader: NodeId | null, voters: readonly NodeId[], originSeq: number): NodeId[] | null {
  if (leader === null || leader === self || !voters.includes(leader)) return null
  const others = voters.filter((voter) => voter !== self && voter !== leader)
  const needed = Math.floor(voters.length / 2) + 1 - (voters.includes(self) ? 1 : 0) - 1
  const targets = [leader]
  for (let index = 0; index < needed && index < others.length; index++) targets.push(others[(originSeq + index) % others.length]!)
  return targets
}

export interface PendingSubmission { requestId: string; jobId: JobId; originSeq: number }

export interface SubmissionsInit {
  /** The last origin sequence number this node wrote (from the document). */
  originSeq: number
  maxPendingSubmissions: number
  submitRetryMs: number
}

export class Submissions {
  readonly #maxPending: number
  readonly #retryMs: number
  readonly #pending: PendingSubmission[] = []
  /** Per voter: this node's origin sequence number it reported holding. */
  readonly #durable = new Map<NodeId, number>()
  #originSeq: number
  #nextRetryMs = Infinity

  constructor(init: SubmissionsInit) {
    this.#originSeq = init.originSeq
    this.#maxPending = init.maxPendingSubmissions
    this.#retryMs = init.submitRetryMs
  }

  get nextRetryMs(): number { return this.#nextRetryMs }

  /** Why no more requests are taken now, or null. */
  capacityRefusal(): string | null {
    return this.#pending.length >= this.#maxPending ? `this node holds ${this.#maxPending} unacknowledged submissions already` : null
  }

  /** Why this submission is refused, or null when it is accepted. */
  refusal(job: JobSubmission, document: Document): string | null {
    const full = this.capacityRefusal()
    if (full !== null) return full
    if (job.id.length === 0 || job.id.includes(replicaSeparator)) return `job id "${job.id}" must be non-empty and must not contain "${replicaSeparator}"`
    const { resources, replicas } = job.spec
    if (!(resources.cpuMillis > 0) || !(resources.memoryMiB > 0)) return 'resources must ask for a positive CPU and memory'
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > maxReplicasPerJob) return `replicas must be a whole number from 1 to ${maxReplicasPerJob}`
    if (!(job.durationMs >= 0)) return 'duration must not be negative'
    if (jobRecord(document, job.id) !== undefined || jobRecord(document, replicaIdOf(job.id, 0, 2)) !== undefined) return `job ${job.id} exists already`
    return null
  }

  /** Claims the origin sequence number of the next submission written to the document. */
  nextOriginSeq(): number { return ++this.#originSeq }

  add(submission: PendingSubmission, nowMs: number): void {
    this.#pending.push(submission)
    this.#nextRetryMs = nowMs + this.#retryMs
  }

  /** Records a voter's acknowledgement; true when it reports more than before. */
  recordDurable(voter: NodeId, originSeq: number): boolean {
    if (!(originSeq > (this.#durable.get(voter) ?? 0))) return false
    this.#durable.set(voter, originSeq)
    return true
  }

  /** Removes and returns the submissions a majority of every committee holds (this node counts when it is a voter). */
  takeDurable(committees: readonly (readonly NodeId[])[], self: NodeId | null): PendingSubmission[] {
    if (this.#pending.length === 0) return []
    const durable = new Map(this.#durable)
    if (self !== null) durable.set(self, this.#originSeq)
    let safeSeq = Infinity
    for (const voters of committees) safeSeq = Math.min(safeSeq, majorityValue(durable, voters))
    const taken: PendingSubmission[] = []
    while (this.#pending.length > 0 && (this.#pending[0]?.originSeq ?? Infinity) <= safeSeq) taken.push(this.#pending.shift()!)
    if (this.#pending.length === 0) this.#nextRetryMs = Infinity
    return taken
  }

  /** Schedules the next retry and returns the voters still missing some pending submission. */
  retryTargets(nowMs: number, voters: readonly NodeId[], self: NodeId): NodeId[] {
    this.#nextRetryMs = this.#pending.length > 0 ? nowMs + this.#retryMs : Infinity
    const needed = this.#pending.at(-1)?.originSeq ?? 0
    return voters.filter((voter) => voter !== self && (this.#durable.get(voter) ?? 0) < needed)
  }
}
