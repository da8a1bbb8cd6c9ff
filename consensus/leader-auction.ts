// The leader's side of placement: one auction round at a time over the replicas the survey found
// waiting. It opens a placement/ AuctionRound on offers built from the document (each live node's
// registered offer, with free resources as the document accounts them), names the nodes to invite,
// takes their bids, and on close turns awards and pending reasons into per-replica assignments and
// reasons for the round's decision. Pure: time comes in as arguments.
import {
  AuctionRound,
  adaptiveBidWindowMs,
  describePending,
  explainJob,
  type JobExplanation,
  type RoundResult,
  trustAllBids,
  type Bid,
  type CallForBids,
  type JobSpec,
  type NodeOffer,
  type PendingJob,
  type VerifyBid,
} from '../placement/index.ts'
import { replicaIdOf } from './cluster-document.ts'
import type { PendingReplica, Placement } from './leader-round.ts'
import type { AuctionSummary, JobId, NodeId, Resources } from './types.ts'
import { asNodeId } from './types.ts'

export interface LeaderAuctionOptions {
  leaderId: NodeId
  /** Checks a bid's signature (node/ verifies the bidder's key; the simulator trusts all). */
  verify?: VerifyBid
  /** Replicas per round; the rest wait for the next round. */
  maxReplicasPerRound: number
  /** Bounds of the adaptive bid window. */
  minBidWindowMs: number
  maxBidWindowMs: number
}

/** Bid latencies remembered for the adaptive window. */
const latencyMemory = 256
/** Closed rounds kept for `explain` (each holds its bids' score table). */
const roundsRemembered = 32

interface OpenRound {
  auction: AuctionRound
  /** Per submitted job in the round: its spec and its replicas' record ids. */
  jobs: Map<string, { spec: JobSpec; replicas: number; reasons: Map<number, string | null> }>
  /** Per invited node: free resources as the document accounted them at open, and its registered capacity. */
  free: Map<string, Resources>
  capacity: Map<string, Resources>
}

export type BidRefusal = string

export class LeaderAuction {
  readonly #options: LeaderAuctionOptions
  readonly #latenciesMs: number[] = []
  readonly #recent: RoundResult[] = []
  #round: OpenRound | null = null
  #seq = 0

  constructor(options: LeaderAuctionOptions) {
    this.#options = options
  }

  get isOpen(): boolean { return this.#round !== null }
  get closesAtMs(): number { return this.#round?.auction.call.closesAtMs ?? Infinity }

  shouldClose(nowMs: number): boolean {
    return this.#round !== null && this.#round.auction.shouldClose(nowMs)
  }

  /**
   * Opens a round for the waiting replicas on `offers` (live nodes, free as the document accounts):
   * the call and the nodes to invite, or null when nothing can be auctioned. Replicas whose spec
   * cannot be read come back in `unreadable`, to be recorded as unplaceable.
   */
  open(pending: readonly PendingReplica[], offers: readonly NodeOffer[], specOf: (json: string) => JobSpec | null, nowMs: number, term: number): { opened: { call: CallForBids; invite: NodeId[] } | null; unreadable: Placement['unplaceable'] } {
    if (this.#round !== null) throw new Error('assertion: an auction round is already open')
    const jobs: OpenRound['jobs'] = new Map()
    const unreadable: Placement['unplaceable'] = []
    let replicas = 0
    for (const replica of pending) {
      if (replicas >= this.#options.maxReplicasPerRound) break
      const spec = specOf(replica.spec)
      if (spec === null) {
        if (replica.reason === null) unreadable.push({ jobId: replica.jobId, reason: 'invalid_spec: the job spec in the document cannot be read' })
        continue
      }
      let job = jobs.get(replica.parent)
      if (job === undefined) jobs.set(replica.parent, (job = { spec, replicas: replica.replicas, reasons: new Map() }))
      job.reasons.set(replica.replica, replica.reason)
      replicas++
    }
    if (jobs.size === 0) return { opened: null, unreadable }
    const pendingJobs: PendingJob[] = [...jobs].map(([parent, job]) => ({ jobId: parent as PendingJob['jobId'], spec: job.spec, replicas: [...job.reasons.keys()].sort((a, b) => a - b) }))
    const auction = new AuctionRound({
      roundId: `${this.#options.leaderId}/${term}/${++this.#seq}`,
      leaderId: this.#options.leaderId,
      nowMs,
      jobs: pendingJobs,
      offers,
      // Signatures are checked in receive() on the bid as signed, before its free is clamped.
      options: { verify: trustAllBids, bidWindowMs: adaptiveBidWindowMs(this.#latenciesMs, { minBidWindowMs: this.#options.minBidWindowMs, maxBidWindowMs: this.#options.maxBidWindowMs, headroom: 1.5 }) },
    })
    this.#round = { auction, jobs, free: new Map(offers.map((offer) => [offer.nodeId as string, offer.free])), capacity: new Map(offers.map((offer) => [offer.nodeId as string, offer.capacity])) }
    return { opened: { call: auction.call, invite: [...auction.eligible].map((id) => asNodeId(id)) }, unreadable }
  }

  /** A bid from `from`; refused bids change nothing. */
  receive(from: NodeId, bid: Bid, nowMs: number): BidRefusal | null {
    const round = this.#round
    if (round === null) return 'no auction round is open'
    if (bid.nodeId !== from) return `bid names ${String(bid.nodeId)} but came from ${from}`
    if (!(this.#options.verify ?? trustAllBids)(bid)) return 'bad bid signature'
    const free = round.free.get(from)
    const capacity = round.capacity.get(from)
    if (free === undefined || capacity === undefined) return 'not_eligible'
    // Claiming more than the node registered is a lie, not lag: refuse it whole.
    for (const resource of ['cpuMillis', 'memoryMiB', 'diskMiB', 'gpuCount'] as const) if (!(bid.free[resource] <= capacity[resource])) return 'attribute_mismatch'
    // The document's accounting decides what a node has free: the node's own view lags it either
    // way (a committed assignment not started yet, a fenced copy still stopping); its runner
    // starts a replica only once the room is really there.
    const clamped = { ...bid, free }
    const receipt = round.auction.receiveBid(clamped, nowMs)
    return receipt.ok ? null : `${receipt.reason.kind}`
  }

  /** Decides the round: assignments and (changed) reasons per replica, and a summary for metrics. */
  close(nowMs: number): { placement: Placement; waiting: JobId[]; summary: AuctionSummary } {
    const round = this.#round
    if (round === null) throw new Error('assertion: no auction round to close')
    this.#round = null
    const result = round.auction.close(nowMs)
    this.#recent.push(result)
    if (this.#recent.length > roundsRemembered) this.#recent.shift()
    for (const latency of result.bidLatenciesMs) {
      this.#latenciesMs.push(latency)
      if (this.#latenciesMs.length > latencyMemory) this.#latenciesMs.shift()
    }
    const placement: Placement = { assignments: [], unplaceable: [] }
    const waiting: JobId[] = []
    const summary: AuctionSummary = { roundId: result.roundId, eligible: result.explanation.eligible, answered: result.explanation.answered, awards: result.awards.length, pending: 0, byStrategy: {} }
    for (const award of result.awards) {
      const job = round.jobs.get(award.jobId)!
      placement.assignments.push({ jobId: replicaIdOf(award.jobId, award.replica, job.replicas), nodeId: asNodeId(award.nodeId) })
      const strategy = (summary.byStrategy[job.spec.strategy] ??= { replicas: 0, costPerHour: 0, cheapestPerHour: 0 })
      strategy.replicas++
      strategy.costPerHour += award.costPerHour
      strategy.cheapestPerHour += result.cheapestPerHour[award.classId]!
    }
    for (const unplaced of result.pending) {
      const job = round.jobs.get(unplaced.jobId)!
      const reason = `${unplaced.reason.kind}: ${describePending(unplaced)}`
      for (const replica of unplaced.replicas) {
        summary.pending++
        waiting.push(replicaIdOf(unplaced.jobId, replica, job.replicas))
        // Rewrite a reason only when its kind changed: a waiting replica must not churn the document.
        const before = job.reasons.get(replica)
        if (before !== null && before !== undefined && before.split(':')[0] === unplaced.reason.kind) continue
        placement.unplaceable.push({ jobId: replicaIdOf(unplaced.jobId, replica, job.replicas), reason })
      }
    }
    return { placement, waiting, summary }
  }

  /** How the latest of the remembered rounds that held job `jobId` decided it: bids, exclusions, scores, winners, prices. */
  explain(jobId: string): JobExplanation | undefined {
    for (let index = this.#recent.length - 1; index >= 0; index--) {
      const record = explainJob(this.#recent[index]!, jobId as PendingJob['jobId'])
      if (record !== undefined) return record
    }
    return undefined
  }
}
