// The leader's placement book, a pure state machine: pending jobs are batched into an auction
// round every `roundIntervalMs`; a closed round yields awards (to be written into the document
// with the leader's term) and pending reasons. A lost node or a fenced assignment sends its
// replicas back to pending for the next round. Time comes in through `tick(nowMs)`.
import { AuctionRound, replicasOf, type AuctionOptions, type Award, type PendingJob, type PendingReason, type BidReceipt } from './auction.ts'
import type { Bid, CallForBids } from './bid.ts'
import type { JobId } from './job-spec.ts'
import type { NodeId, NodeOffer } from './node-offer.ts'

export interface LeaderOptions {
  leaderId: string
  /** How often pending jobs are batched into a round. */
  roundIntervalMs: number
  /** Submissions beyond this are refused (STYLE: every queue has a limit). */
  maxPendingJobs: number
  auction: AuctionOptions
}

export const defaultLeaderTiming = { roundIntervalMs: 50, maxPendingJobs: 1_000_000 } as const

export type LeaderEffect =
  /** Send the call to these nodes on direct streams. */
  | { kind: 'call_for_bids'; call: CallForBids; to: NodeId[] }
  /** Write these assignments (one document change per round), then tell the winners. */
  | { kind: 'assign'; roundId: string; awards: Award[] }
  /** Nothing feasible for these replicas now; the autoscaler reads the reason. */
  | { kind: 'pending'; jobId: JobId; replicas: number[]; reason: PendingReason }

export type SubmitResult = { ok: true } | { ok: false; reason: 'duplicate' | 'queue_full' }

export interface Assignment {
  nodeId: NodeId
  roundId: string
  pricePerHour: number
}

export class PlacementLeader {
  readonly #options: LeaderOptions
  /** Pending replicas by job, in submission order (Map keeps insertion order). */
  readonly #pending = new Map<JobId, PendingJob>()
  readonly #reasons = new Map<JobId, PendingReason>()
  /** jobId -> replica -> assignment. */
  readonly #assigned = new Map<JobId, Map<number, Assignment>>()
  readonly #specs = new Map<JobId, PendingJob['spec']>()
  #round: AuctionRound | undefined
  /** Nodes lost while a round was open: their awards in that round are re-auctioned instead. */
  readonly #lostDuringRound = new Set<string>()
  #nextRoundAtMs = 0
  #roundSeq = 0

  constructor(options: LeaderOptions) {
    this.#options = options
  }

  get pendingCount(): number {
    return this.#pending.size
  }

  submit(job: PendingJob): SubmitResult {
    if (this.#specs.has(job.jobId)) return { ok: false, reason: 'duplicate' }
    if (this.#pending.size >= this.#options.maxPendingJobs) return { ok: false, reason: 'queue_full' }
    this.#specs.set(job.jobId, job.spec)
    this.#pending.set(job.jobId, { jobId: job.jobId, spec: job.spec, replicas: replicasOf(job) })
    return { ok: true }
  }

  /** Closes the open round when due, and opens the next when the interval has passed. */
  tick(nowMs: number, offers: readonly NodeOffer[]): LeaderEffect[] {
    const effects: LeaderEffect[] = []
    if (this.#round && this.#round.shouldClose(nowMs)) effects.push(...this.#close(nowMs))
    if (!this.#round && this.#pending.size > 0 && nowMs >= this.#nextRoundAtMs) {
      const jobs = [...this.#pending.values()]
      this.#pending.clear()
      const round = new AuctionRound({
        roundId: `${this.#options.leaderId}-${++this.#roundSeq}`,
        leaderId: this.#options.leaderId,
        nowMs,
        jobs,
        offers,
        options: this.#options.auction,
      })
      for (const job of round.deferred) this.#pending.set(job.jobId, job)
      this.#round = round
      this.#nextRoundAtMs = nowMs + this.#options.roundIntervalMs
      effects.push({ kind: 'call_for_bids', call: round.call, to: [...round.eligible] })
      if (round.eligible.size === 0) effects.push(...this.#close(nowMs))
    }
    return effects
  }

  receiveBid(bid: Bid, nowMs: number): BidReceipt {
    if (!this.#round) return { ok: false, reason: { kind: 'unknown_round', roundId: bid.roundId } }
    return this.#round.receiveBid(bid, nowMs)
  }

  #close(nowMs: number): LeaderEffect[] {
    const result = this.#round!.close(nowMs)
    this.#round = undefined
    const effects: LeaderEffect[] = []
    const lost = result.awards.filter((award) => this.#lostDuringRound.has(award.nodeId))
    if (lost.length > 0) result.awards = result.awards.filter((award) => !this.#lostDuringRound.has(award.nodeId))
    this.#lostDuringRound.clear()
    for (const award of lost) {
      const existing = this.#pending.get(award.jobId)
      const replicas = [...new Set([...(existing?.replicas ?? []), award.replica])].sort((a, b) => a - b)
      this.#pending.set(award.jobId, { jobId: award.jobId, spec: this.#specs.get(award.jobId)!, replicas })
    }
    for (const award of result.awards) {
      let replicas = this.#assigned.get(award.jobId)
      if (!replicas) this.#assigned.set(award.jobId, (replicas = new Map()))
      replicas.set(award.replica, { nodeId: award.nodeId, roundId: result.roundId, pricePerHour: award.pricePerHour })
      this.#reasons.delete(award.jobId)
    }
    if (result.awards.length > 0) effects.push({ kind: 'assign', roundId: result.roundId, awards: result.awards })
    for (const entry of result.pending) {
      const spec = this.#specs.get(entry.jobId)!
      this.#pending.set(entry.jobId, { jobId: entry.jobId, spec, replicas: entry.replicas })
      this.#reasons.set(entry.jobId, entry.reason)
      effects.push({ kind: 'pending', jobId: entry.jobId, replicas: entry.replicas, reason: entry.reason })
    }
    return effects
  }

  /** A node is gone: every replica it held returns to pending (a whole gang for tightly-coupled jobs). */
  nodeLost(nodeId: NodeId): JobId[] {
    if (this.#round) this.#lostDuringRound.add(nodeId)
    const affected: JobId[] = []
    for (const [jobId, replicas] of this.#assigned) {
      const lost = [...replicas].filter(([, assignment]) => assignment.nodeId === nodeId).map(([replica]) => replica)
      if (lost.length === 0) continue
      affected.push(jobId)
      const spec = this.#specs.get(jobId)!
      const requeue = spec.intent === 'tightly-coupled' ? [...replicas.keys()] : lost
      this.#requeue(jobId, requeue)
    }
    return affected
  }

  /** A replica's assignment was fenced (a higher term placed it elsewhere or it was refused). */
  fenced(jobId: JobId, replica: number): boolean {
    const replicas = this.#assigned.get(jobId)
    if (!replicas?.has(replica)) return false
    const spec = this.#specs.get(jobId)!
    this.#requeue(jobId, spec.intent === 'tightly-coupled' ? [...replicas.keys()] : [replica])
    return true
  }

  /** The job finished or was cancelled: forget it. */
  forget(jobId: JobId): void {
    this.#assigned.delete(jobId)
    this.#pending.delete(jobId)
    this.#reasons.delete(jobId)
    this.#specs.delete(jobId)
  }

  assignmentsOf(jobId: JobId): ReadonlyMap<number, Assignment> | undefined {
    return this.#assigned.get(jobId)
  }

  pendingReason(jobId: JobId): PendingReason | undefined {
    return this.#reasons.get(jobId)
  }

  isPending(jobId: JobId): boolean {
    return this.#pending.has(jobId)
  }

  #requeue(jobId: JobId, replicas: readonly number[]): void {
    const assigned = this.#assigned.get(jobId)!
    for (const replica of replicas) assigned.delete(replica)
    if (assigned.size === 0) this.#assigned.delete(jobId)
    const existing = this.#pending.get(jobId)
    const merged = [...new Set([...(existing?.replicas ?? []), ...replicas])].sort((a, b) => a - b)
    this.#pending.set(jobId, { jobId, spec: this.#specs.get(jobId)!, replicas: merged })
  }
}
