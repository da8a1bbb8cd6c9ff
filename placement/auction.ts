// The auction round, a pure state machine driven by the leader: open with a batch of pending
// jobs and the gossiped offers (prefilter -> eligible bidders), receive bids, close when all
// answered or the window ends, then award under hard constraints, capacity accounting across
// the whole batch, fairness, gangs and spreading, with second-price settlement.
//
// Speed: jobs are grouped into classes (same demand, constraints, strategy, data, ceiling).
// Each class scores its candidates once (O(bidders log bidders)) and then serves its jobs from
// that sorted list through a cursor: nodes that no longer fit the class are dropped for good
// (capacity only shrinks within a round), so a pick costs O(1) amortized and a round costs
// O(classes x bidders x log bidders + replicas). Optimality: for a single class the greedy is
// exact per job (each replica takes the best-scoring node with room, in priority order); across
// classes it is greedy in priority then submission order, not a global optimum (no
// backtracking), and "equal" scores are equal within `equalScoreTolerance`, so a replica may
// pay up to that fraction more than the very best node in exchange for spreading.
import { canonicalJson, type Bid, type CallForBids, type ClassId, type JobClassCall, type VerifyBid } from './bid.ts'
import { CapacityLedger } from './capacity-ledger.ts'
import { exclusionKey, exclusionOf, resourceExclusion, type Exclusion, type ResourceName } from './constraints.ts'
import { costHorizonHours, defaultCostModel, transferCostPerHour, type CostModel } from './cost-model.ts'
import type { ClassSummary, ExplainRow, RoundExplanation } from './explain.ts'
import type { DataInput, JobId, JobSpec, StrategyName, StrategyWeights } from './job-spec.ts'
import { askPerHour, type NodeId, type NodeOffer, type Resources } from './node-offer.ts'
import { reliabilityValue, scoreCandidates, strategyWeights, type CandidateTerms } from './strategies.ts'

export interface PendingJob {
  jobId: JobId
  spec: JobSpec
  /** Which replica indices to place (a re-auction after a lost node); default all of them. */
  replicas?: readonly number[]
}

/** The replica indices a pending job asks for. */
export function replicasOf(job: PendingJob): readonly number[] {
  return job.replicas ?? range(0, job.spec.replicas)
}

export interface AuctionLimits {
  /** Jobs beyond this are deferred to the next round. */
  maxJobsPerRound: number
  /** Distinct job classes per round (bounds the call's size and the scoring work). */
  maxClassesPerRound: number
  /** How far past the winner the settlement looks for the runner-up with room. */
  runnerUpScanLimit: number
}

export interface AuctionOptions {
  verify: VerifyBid
  costModel?: CostModel
  /** How long bidders have; see adaptiveBidWindowMs. */
  bidWindowMs?: number
  /** Scores within this fraction of each other count as equal and share the work. */
  equalScoreTolerance?: number
  /** Intent `balanced` puts up to this many replicas of a job on one node before moving on. */
  balancedReplicasPerNode?: number
  limits?: Partial<AuctionLimits>
}

export const auctionDefaults = {
  bidWindowMs: 50,
  equalScoreTolerance: 0.005,
  balancedReplicasPerNode: 2,
  limits: { maxJobsPerRound: 200_000, maxClassesPerRound: 512, runnerUpScanLimit: 32 } satisfies AuctionLimits,
}

export interface BidWindowLimits {
  minBidWindowMs: number
  maxBidWindowMs: number
  /** The window is this multiple of the recent 95th-percentile bid latency. */
  headroom: number
}

export const defaultBidWindowLimits: BidWindowLimits = { minBidWindowMs: 20, maxBidWindowMs: 250, headroom: 1.5 }

/** Adaptive, bounded bid window from the bid latencies of recent rounds. */
export function adaptiveBidWindowMs(recentLatenciesMs: readonly number[], limits: BidWindowLimits = defaultBidWindowLimits): number {
  if (recentLatenciesMs.length === 0) return limits.maxBidWindowMs
  const sorted = [...recentLatenciesMs].sort((a, b) => a - b)
  const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!
  return Math.min(limits.maxBidWindowMs, Math.max(limits.minBidWindowMs, Math.ceil(p95 * limits.headroom)))
}

export interface Award {
  jobId: JobId
  replica: number
  nodeId: NodeId
  /** What the winner is paid: the runner-up's ask, never below its own ask nor above the job's max. */
  pricePerHour: number
  askPerHour: number
  /** Ask plus data transfer per hour. */
  costPerHour: number
  score: number
  classId: ClassId
}

export type PendingReason =
  | { kind: 'no_feasible_node'; byConstraint: Readonly<Record<string, number>>; example?: Exclusion }
  | { kind: 'capacity_exhausted'; resource: ResourceName; candidates: number }
  | { kind: 'gang_no_island'; replicas: number; bestIslandSlots: number; islands: number }

/** Replicas of a job left pending, and why (read by the autoscaler). */
export interface Unplaced {
  jobId: JobId
  replicas: number[]
  reason: PendingReason
}

export type BidRejection =
  | { kind: 'unknown_round'; roundId: string }
  | { kind: 'late'; receivedAtMs: number; closesAtMs: number }
  | { kind: 'not_eligible'; nodeId: string }
  | { kind: 'duplicate'; nodeId: string }
  | { kind: 'bad_signature'; nodeId: string }
  | { kind: 'malformed'; detail: string }
  | { kind: 'attribute_mismatch'; field: string }

export type BidReceipt = { ok: true } | { ok: false; reason: BidRejection }

export interface RoundResult {
  roundId: string
  openedAtMs: number
  closedAtMs: number
  /** The jobs this round decided on (awarded or pending). */
  jobs: readonly PendingJob[]
  awards: Award[]
  pending: Unplaced[]
  /** Jobs beyond the round's limits, untouched: they go into the next round. */
  deferred: PendingJob[]
  explanation: RoundExplanation
  /** Receive time minus open time of each accepted bid, for adaptiveBidWindowMs. */
  bidLatenciesMs: number[]
  /**
   * Per class: the cheapest cost per hour (ask plus transfer) among the bidders that could run
   * one replica when the round opened (Infinity when none). Summed over a round's awards this is
   * a lower bound on what any placement of the round could cost: the reference for costVsOptimal.
   */
  cheapestPerHour: Float64Array
}

interface ClassInfo {
  call: JobClassCall
  strategy: StrategyName
  weights: StrategyWeights
  data: readonly DataInput[]
  horizonHours: number
  jobs: number
}

interface Island {
  key: string
  efa: boolean
  nodes: Int32Array
}

interface Domain {
  key: string
  nodes: Int32Array
  head: number
}

/** Per-class working state during close(). Arrays indexed by bidder unless said otherwise. */
interface ClassState {
  info: ClassInfo
  size: number
  /** Candidate bidders best first; inside the current tier the order is permuted. */
  order: Int32Array
  /** The untouched best-first order. */
  sorted: Int32Array
  /** For a position where a tier starts, where it ends. */
  tierEndOf: Int32Array
  head: number
  tierEnd: number
  cursor: number
  score: Float64Array
  ask: Float64Array
  transfer: Float64Array
  awarded: Int32Array
  /** Bidders excluded at close, with the reason. */
  excluded: Map<number, Exclusion>
  islands?: Island[]
  domains?: Domain[]
  exhausted?: PendingReason
}

const classKeys = new WeakMap<JobSpec, string>()

/** Jobs with the same key are interchangeable to bidders and scoring. Memoized per spec object. */
export function jobClassKey(spec: JobSpec): string {
  let key = classKeys.get(spec)
  if (key === undefined) {
    key = canonicalJson({
      resources: spec.resources,
      constraints: spec.constraints,
      strategy: spec.strategy,
      weights: spec.weights,
      data: spec.data,
      maxPricePerHour: spec.maxPricePerHour,
      horizon: spec.data.length > 0 ? spec.timeoutMs : undefined,
    })
    classKeys.set(spec, key)
  }
  return key
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

export interface OpenRoundInit {
  roundId: string
  leaderId: string
  nowMs: number
  jobs: readonly PendingJob[]
  /** The leader's gossiped view of the nodes: the prefilter runs on it. */
  offers: readonly NodeOffer[]
  options: AuctionOptions
}

export class AuctionRound {
  readonly call: CallForBids
  /** Nodes invited to bid: they pass every hard constraint of at least one class. */
  readonly eligible: ReadonlySet<NodeId>
  readonly jobs: readonly PendingJob[]
  readonly deferred: PendingJob[]

  readonly #options: AuctionOptions
  readonly #limits: AuctionLimits
  readonly #costModel: CostModel
  readonly #classes: ClassInfo[]
  readonly #classOfJob: Map<JobId, ClassId>
  readonly #offers: NodeOffer[]
  readonly #offerIndex: Map<string, number>
  /** prefilter[class][offer]: why the offer cannot run the class, or undefined. */
  readonly #prefilter: (Exclusion | undefined)[][]
  readonly #bids = new Map<string, Bid>()
  readonly #latenciesMs: number[] = []
  readonly #rejected: { nodeId: string; reason: BidRejection }[] = []
  #closed = false

  constructor(init: OpenRoundInit) {
    this.#options = init.options
    this.#limits = { ...auctionDefaults.limits, ...init.options.limits }
    this.#costModel = init.options.costModel ?? defaultCostModel
    this.#classOfJob = new Map()
    this.#classes = []
    const classByKey = new Map<string, ClassId>()
    const jobs: PendingJob[] = []
    this.deferred = []
    for (const job of init.jobs) {
      if (jobs.length >= this.#limits.maxJobsPerRound || this.#classOfJob.has(job.jobId)) {
        if (!this.#classOfJob.has(job.jobId)) this.deferred.push(job)
        continue
      }
      const key = jobClassKey(job.spec)
      let classId = classByKey.get(key)
      if (classId === undefined) {
        if (this.#classes.length >= this.#limits.maxClassesPerRound) {
          this.deferred.push(job)
          continue
        }
        classId = this.#classes.length
        classByKey.set(key, classId)
        const spec = job.spec
        const call: JobClassCall = { classId, demand: spec.resources, constraints: spec.constraints, replicas: 0 }
        if (spec.maxPricePerHour !== undefined) call.maxPricePerHour = spec.maxPricePerHour
        this.#classes.push({
          call,
          strategy: spec.strategy,
          weights: strategyWeights(spec.strategy, spec.weights),
          data: spec.data,
          horizonHours: costHorizonHours(spec.timeoutMs, this.#costModel),
          jobs: 0,
        })
      }
      const info = this.#classes[classId]!
      info.jobs++
      info.call.replicas += job.replicas?.length ?? job.spec.replicas
      this.#classOfJob.set(job.jobId, classId)
      jobs.push(job)
    }
    this.jobs = jobs

    this.#offers = [...init.offers].sort((a, b) => compareStrings(a.nodeId, b.nodeId))
    this.#offerIndex = new Map(this.#offers.map((offer, index) => [offer.nodeId, index]))
    const eligible = new Set<NodeId>()
    this.#prefilter = this.#classes.map((info) => {
      const row: (Exclusion | undefined)[] = new Array(this.#offers.length)
      for (let index = 0; index < this.#offers.length; index++) {
        const offer = this.#offers[index]!
        const exclusion = exclusionOf(info.call, offer, offer.free, askPerHour(offer.prices, info.call.demand))
        row[index] = exclusion
        if (exclusion === undefined) eligible.add(offer.nodeId)
      }
      return row
    })
    this.eligible = eligible
    const bidWindowMs = init.options.bidWindowMs ?? auctionDefaults.bidWindowMs
    this.call = {
      roundId: init.roundId,
      leaderId: init.leaderId,
      openedAtMs: init.nowMs,
      closesAtMs: init.nowMs + bidWindowMs,
      classes: this.#classes.map((info) => info.call),
    }
  }

  get answered(): number {
    return this.#bids.size
  }

  /** Accepts a bid or says why not; a refused bid changes nothing. */
  receiveBid(bid: Bid, nowMs: number): BidReceipt {
    const refuse = (reason: BidRejection): BidReceipt => {
      if (this.#rejected.length < 10_000) this.#rejected.push({ nodeId: String(bid.nodeId), reason })
      return { ok: false, reason }
    }
    if (bid.roundId !== this.call.roundId) return refuse({ kind: 'unknown_round', roundId: String(bid.roundId) })
    if (this.#closed || nowMs > this.call.closesAtMs) return refuse({ kind: 'late', receivedAtMs: nowMs, closesAtMs: this.call.closesAtMs })
    const offerIndex = this.#offerIndex.get(bid.nodeId)
    if (offerIndex === undefined || !this.eligible.has(bid.nodeId)) return refuse({ kind: 'not_eligible', nodeId: bid.nodeId })
    const malformed = malformedBid(bid, this.#classes.length)
    if (malformed !== undefined) return refuse({ kind: 'malformed', detail: malformed })
    if (!this.#options.verify(bid)) return refuse({ kind: 'bad_signature', nodeId: bid.nodeId })
    if (this.#bids.has(bid.nodeId)) return refuse({ kind: 'duplicate', nodeId: bid.nodeId })
    const registered = this.#offers[offerIndex]!
    for (const field of ['provider', 'region', 'azId', 'country'] as const) {
      if (registered[field] !== bid[field]) return refuse({ kind: 'attribute_mismatch', field })
    }
    // A node may not claim more free capacity than it has registered (it would be over-committed).
    for (const resource of ['cpuMillis', 'memoryMiB', 'diskMiB', 'gpuCount'] as const) {
      if (bid.free[resource] > registered.capacity[resource]) return refuse({ kind: 'attribute_mismatch', field: `free.${resource}` })
    }
    this.#bids.set(bid.nodeId, bid)
    this.#latenciesMs.push(nowMs - this.call.openedAtMs)
    return { ok: true }
  }

  /** Close when every eligible bidder answered, or the bid window has passed. */
  shouldClose(nowMs: number): boolean {
    return this.#bids.size >= this.eligible.size || nowMs >= this.call.closesAtMs
  }

  /** Decides the round: awards, pending jobs with reasons, and the explain record. */
  close(nowMs: number): RoundResult {
    if (this.#closed) throw new Error('assertion: auction round closed twice')
    this.#closed = true
    const bidders = [...this.#bids.values()].sort((a, b) => compareStrings(a.nodeId, b.nodeId))
    const ledger = new CapacityLedger(bidders.map((bid) => bid.free))
    const states = this.#scoreClasses(bidders, nowMs)
    const awards: Award[] = []
    const pending: Unplaced[] = []
    const placer = new Placer(bidders, ledger, states, this.#options, this.#limits, awards, pending, this.#prefilter, this.#offerIndex, this.#offers.map((offer) => offer.capacity))

    // Higher priority first; equal priority keeps submission order (the sort is stable).
    let ordered: readonly PendingJob[] = this.jobs
    if (this.jobs.some((job) => job.spec.priority !== this.jobs[0]!.spec.priority)) {
      ordered = [...this.jobs].sort((a, b) => b.spec.priority - a.spec.priority)
    }
    for (const job of ordered) placer.place(job, this.#classOfJob.get(job.jobId)!)

    const summaries: ClassSummary[] = states.map((state, classId) => {
      const summary: ClassSummary = {
        classId,
        strategy: state.info.strategy,
        weights: state.info.weights,
        demand: state.info.call.demand,
        jobs: state.info.jobs,
        candidates: state.size,
      }
      if (state.info.call.maxPricePerHour !== undefined) summary.maxPricePerHour = state.info.call.maxPricePerHour
      return summary
    })
    const offers = this.#offers
    const prefilter = this.#prefilter
    const bidderIndex = new Map(bidders.map((bid, index) => [bid.nodeId as string, index]))
    const explanation: RoundExplanation = {
      roundId: this.call.roundId,
      openedAtMs: this.call.openedAtMs,
      closedAtMs: nowMs,
      eligible: this.eligible.size,
      answered: bidders.length,
      rejectedBids: this.#rejected,
      classes: summaries,
      classOfJob: this.#classOfJob,
      rowsOf: (classId) => explainRows(states[classId]!, offers, prefilter[classId]!, bidderIndex),
    }
    return {
      roundId: this.call.roundId,
      openedAtMs: this.call.openedAtMs,
      closedAtMs: nowMs,
      jobs: this.jobs,
      awards,
      pending,
      deferred: this.deferred,
      explanation,
      bidLatenciesMs: this.#latenciesMs,
      cheapestPerHour: Float64Array.from(states, (state) => cheapestOf(state)),
    }
  }

  #scoreClasses(bidders: readonly Bid[], nowMs: number): ClassState[] {
    const count = bidders.length
    const perClass: { node: number[]; ask: number[] }[] = this.#classes.map(() => ({ node: [], ask: [] }))
    bidders.forEach((bid, node) => {
      for (const ask of bid.asks) {
        const list = perClass[ask.classId]!
        list.node.push(node)
        list.ask.push(ask.askPerHour)
      }
    })
    const tolerance = this.#options.equalScoreTolerance ?? auctionDefaults.equalScoreTolerance
    return this.#classes.map((info, classId) => {
      const offered = perClass[classId]!
      const excluded = new Map<number, Exclusion>()
      const nodes: number[] = []
      const terms: CandidateTerms[] = []
      const ask = new Float64Array(count).fill(NaN)
      const transfer = new Float64Array(count).fill(NaN)
      for (let k = 0; k < offered.node.length; k++) {
        const node = offered.node[k]!
        const bid = bidders[node]!
        const nodeAsk = offered.ask[k]!
        const exclusion = exclusionOf(info.call, bid, bid.free, nodeAsk)
        if (exclusion !== undefined) {
          excluded.set(node, exclusion)
          continue
        }
        const transferPerHour = transferCostPerHour(info.data, bid, info.horizonHours, this.#costModel)
        ask[node] = nodeAsk
        transfer[node] = transferPerHour
        nodes.push(node)
        terms.push({
          costPerHour: nodeAsk + transferPerHour,
          performanceScore: bid.performanceScore,
          reliability: reliabilityValue(bid.reliability, bid.spot),
          startDelayMs: bid.estimatedStartMs - nowMs,
        })
      }
      const scores = scoreCandidates(terms, info.weights)
      const score = new Float64Array(count).fill(NaN)
      nodes.forEach((node, k) => (score[node] = scores[k]!))
      // Best score first, in tiers of equal score (within the tolerance).
      const sorted = Int32Array.from(nodes).sort((a, b) => score[b]! - score[a]! || a - b)
      const tierEndOf = new Int32Array(sorted.length)
      const demand = info.call.demand
      for (let start = 0; start < sorted.length; ) {
        const floor = score[sorted[start]!]! * (1 - tolerance)
        let end = start + 1
        while (end < sorted.length && score[sorted[end]!]! >= floor) end++
        tierEndOf[start] = end
        // Inside a tier, the node with room for the most replicas of this class comes first (then the
        // lower id): rounds of one job each would otherwise all start at the same node, and equal
        // prices would pile every job on it while the others sat idle.
        sorted.subarray(start, end).sort((a, b) => replicasThatFit(bidders[b]!.free, demand) - replicasThatFit(bidders[a]!.free, demand) || a - b)
        start = end
      }
      return {
        info,
        size: sorted.length,
        order: Int32Array.from(sorted),
        sorted,
        tierEndOf,
        head: 0,
        tierEnd: 0,
        cursor: 0,
        score,
        ask,
        transfer,
        awarded: new Int32Array(count),
        excluded,
      }
    })
  }
}

/** How many replicas of `demand` fit in `free` (the scarcest resource the class asks for decides). */
function replicasThatFit(free: Resources, demand: Resources): number {
  let fit = Infinity
  if (demand.cpuMillis > 0) fit = Math.min(fit, free.cpuMillis / demand.cpuMillis)
  if (demand.memoryMiB > 0) fit = Math.min(fit, free.memoryMiB / demand.memoryMiB)
  if (demand.diskMiB > 0) fit = Math.min(fit, free.diskMiB / demand.diskMiB)
  if (demand.gpuCount > 0) fit = Math.min(fit, free.gpuCount / demand.gpuCount)
  return fit === Infinity ? 0 : Math.floor(fit)
}

function cheapestOf(state: ClassState): number {
  let cheapest = Infinity
  for (const node of state.sorted) cheapest = Math.min(cheapest, state.ask[node]! + state.transfer[node]!)
  return cheapest
}

function malformedBid(bid: Bid, classCount: number): string | undefined {
  if (!Array.isArray(bid.asks) || bid.asks.length > classCount) return 'asks: expected at most one ask per class'
  const seen = new Set<number>()
  for (const ask of bid.asks) {
    if (!Number.isInteger(ask.classId) || ask.classId < 0 || ask.classId >= classCount) return `asks: unknown class ${String(ask.classId)}`
    if (seen.has(ask.classId)) return `asks: class ${ask.classId} asked twice`
    seen.add(ask.classId)
    if (!Number.isFinite(ask.askPerHour) || ask.askPerHour < 0) return `asks: class ${ask.classId} has no valid price`
  }
  const free = bid.free
  for (const value of [free?.cpuMillis, free?.memoryMiB, free?.diskMiB, free?.gpuCount]) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return 'free: expected finite non-negative resources'
  }
  if (!Number.isFinite(bid.performanceScore) || bid.performanceScore < 0) return 'performanceScore: expected a finite number >= 0'
  if (!Number.isFinite(bid.estimatedStartMs)) return 'estimatedStartMs: expected a time'
  return undefined
}

/** Places jobs one at a time against the class states and the ledger. */
class Placer {
  readonly #bidders: readonly Bid[]
  readonly #ledger: CapacityLedger
  readonly #states: readonly ClassState[]
  readonly #limits: AuctionLimits
  readonly #packPerNode: number
  readonly #awards: Award[]
  readonly #pending: Unplaced[]
  readonly #prefilter: (Exclusion | undefined)[][]
  readonly #offerIndex: ReadonlyMap<string, number>
  readonly #offerCount: number
  /** Registered capacity per offer: a node out of room now but big enough when empty is busy, not unfit. */
  readonly #capacities: readonly Resources[]

  constructor(
    bidders: readonly Bid[],
    ledger: CapacityLedger,
    states: readonly ClassState[],
    options: AuctionOptions,
    limits: AuctionLimits,
    awards: Award[],
    pending: Unplaced[],
    prefilter: (Exclusion | undefined)[][],
    offerIndex: ReadonlyMap<string, number>,
    capacities: readonly Resources[],
  ) {
    this.#bidders = bidders
    this.#ledger = ledger
    this.#states = states
    this.#limits = limits
    this.#packPerNode = Math.max(1, options.balancedReplicasPerNode ?? auctionDefaults.balancedReplicasPerNode)
    this.#awards = awards
    this.#pending = pending
    this.#prefilter = prefilter
    this.#offerIndex = offerIndex
    this.#offerCount = capacities.length
    this.#capacities = capacities
  }

  place(job: PendingJob, classId: ClassId): void {
    const state = this.#states[classId]!
    const replicas = replicasOf(job)
    if (replicas.length === 0) return
    if (state.size === 0) {
      this.#pending.push({ jobId: job.jobId, replicas: [...replicas], reason: this.#infeasibleReason(state, classId) })
      return
    }
    if (job.spec.intent === 'tightly-coupled' && replicas.length > 1) this.#placeGang(job, replicas, state)
    else if (state.info.strategy === 'high_availability') this.#placeAcrossDomains(job, replicas, state)
    else this.#placeSpread(job, replicas, state)
  }

  /** throughput: each replica takes the next node of the best tier (round robin); balanced packs a few. */
  #placeSpread(job: PendingJob, replicas: readonly number[], state: ClassState): void {
    const demand = state.info.call.demand
    const pack = job.spec.intent === 'balanced' ? this.#packPerNode : 1
    let last = -1
    let packed = 0
    for (let k = 0; k < replicas.length; k++) {
      let node: number
      if (last >= 0 && packed < pack && this.#ledger.fits(last, demand)) {
        node = last
        packed++
      } else {
        node = this.#pickFromTier(state)
        packed = 1
      }
      if (node < 0) {
        this.#pending.push({ jobId: job.jobId, replicas: replicas.slice(k), reason: this.#exhaustedReason(state) })
        return
      }
      last = node
      this.#award(job, replicas[k]!, state, node, this.#runnerUpAsk(state, node))
    }
  }

  /**
   * Round robin over the current tier of equal-score nodes; nodes that no longer fit the class
   * are swapped to the front and dropped (for good: capacity only shrinks in a round).
   */
  #pickFromTier(state: ClassState): number {
    const ledger = this.#ledger
    const demand = state.info.call.demand
    const order = state.order
    for (;;) {
      if (state.head >= state.tierEnd) {
        if (state.tierEnd >= state.size) return -1
        state.tierEnd = state.tierEndOf[state.tierEnd]!
        state.cursor = state.head
      }
      let position = state.cursor >= state.head && state.cursor < state.tierEnd ? state.cursor : state.head
      let unchecked = state.tierEnd - state.head
      while (unchecked > 0) {
        const node = order[position]!
        if (ledger.fits(node, demand)) {
          state.cursor = position + 1
          return node
        }
        // Drop: move the exhausted node to the head slot and advance the head past it.
        order[position] = order[state.head]!
        order[state.head] = node
        state.head++
        unchecked--
        if (position < state.head) position = state.head
        if (position >= state.tierEnd) position = state.head
      }
      // Whole tier exhausted; the loop moves to the next one.
    }
  }

  /** The ask of the best other candidate that could have taken this replica instead. */
  #runnerUpAsk(state: ClassState, winner: number): number | undefined {
    const demand = state.info.call.demand
    const end = Math.min(state.size, state.head + this.#limits.runnerUpScanLimit)
    for (let position = state.head; position < end; position++) {
      const node = state.order[position]!
      if (node !== winner && this.#ledger.fits(node, demand)) return state.ask[node]
    }
    return undefined
  }

  /** high_availability: each replica goes to a provider/region not yet used by this job, best first. */
  #placeAcrossDomains(job: PendingJob, replicas: readonly number[], state: ClassState): void {
    const demand = state.info.call.demand
    const domains = (state.domains ??= buildDomains(state, this.#bidders))
    const used = new Uint8Array(domains.length)
    let usedCount = 0
    for (let k = 0; k < replicas.length; k++) {
      let best = -1
      let bestDomain = -1
      let second = -1
      for (let attempt = 0; attempt < 2 && best < 0; attempt++) {
        if (attempt === 1) {
          if (usedCount === 0) break
          used.fill(0) // every domain holds a replica: start another lap
          usedCount = 0
        }
        for (let d = 0; d < domains.length; d++) {
          if (used[d]) continue
          const domain = domains[d]!
          while (domain.head < domain.nodes.length && !this.#ledger.fits(domain.nodes[domain.head]!, demand)) domain.head++
          if (domain.head >= domain.nodes.length) continue
          const node = domain.nodes[domain.head]!
          if (best < 0 || state.score[node]! > state.score[best]!) {
            second = best
            best = node
            bestDomain = d
          } else if (second < 0 || state.score[node]! > state.score[second]!) {
            second = node
          }
        }
      }
      if (best < 0) {
        this.#pending.push({ jobId: job.jobId, replicas: replicas.slice(k), reason: this.#exhaustedReason(state) })
        return
      }
      used[bestDomain] = 1
      usedCount++
      this.#award(job, replicas[k]!, state, best, second >= 0 ? state.ask[second] : this.#runnerUpAsk(state, best))
    }
  }

  /** tightly-coupled: all replicas in one island (provider, AZ-ID, placement group, EFA) or none. */
  #placeGang(job: PendingJob, replicaIds: readonly number[], state: ClassState): void {
    const demand = state.info.call.demand
    const replicas = replicaIds.length
    const islands = (state.islands ??= buildIslands(state, this.#bidders))
    let best: { island: Island; score: number; askMean: number } | undefined
    let runnerUpAskMean: number | undefined
    let runnerUpScore = -Infinity
    let bestSlots = 0
    for (const island of islands) {
      let taken = 0
      let scoreSum = 0
      let askSum = 0
      for (let k = 0; k < island.nodes.length && taken < replicas; k++) {
        const node = island.nodes[k]!
        const slots = Math.min(this.#ledger.slots(node, demand), replicas - taken)
        taken += slots
        scoreSum += slots * state.score[node]!
        askSum += slots * state.ask[node]!
      }
      bestSlots = Math.max(bestSlots, taken)
      if (taken < replicas) continue
      const candidate = { island, score: scoreSum / replicas, askMean: askSum / replicas }
      const better = best === undefined || candidate.score > best.score || (candidate.score === best.score && candidate.island.efa && !best.island.efa)
      if (better) {
        if (best !== undefined) {
          runnerUpScore = best.score
          runnerUpAskMean = best.askMean
        }
        best = candidate
      } else if (candidate.score > runnerUpScore) {
        runnerUpScore = candidate.score
        runnerUpAskMean = candidate.askMean
      }
    }
    if (best === undefined) {
      this.#pending.push({
        jobId: job.jobId,
        replicas: [...replicaIds],
        reason: { kind: 'gang_no_island', replicas, bestIslandSlots: bestSlots, islands: islands.length },
      })
      return
    }
    let placed = 0
    for (let k = 0; k < best.island.nodes.length && placed < replicas; k++) {
      const node = best.island.nodes[k]!
      const slots = Math.min(this.#ledger.slots(node, demand), replicas - placed)
      for (let s = 0; s < slots; s++) this.#award(job, replicaIds[placed++]!, state, node, runnerUpAskMean)
    }
  }

  #award(job: PendingJob, replica: number, state: ClassState, node: number, runnerUpAsk: number | undefined): void {
    this.#ledger.take(node, state.info.call.demand)
    state.awarded[node]!++
    const ask = state.ask[node]!
    const maxPrice = state.info.call.maxPricePerHour ?? Infinity
    // Reverse Vickrey: paid the runner-up's ask, never below its own ask nor above the ceiling.
    const price = Math.min(maxPrice, Math.max(ask, runnerUpAsk ?? ask))
    this.#awards.push({
      jobId: job.jobId,
      replica,
      nodeId: this.#bidders[node]!.nodeId,
      pricePerHour: price,
      askPerHour: ask,
      costPerHour: ask + state.transfer[node]!,
      score: state.score[node]!,
      classId: state.info.call.classId,
    })
  }

  /** No candidates at all: count which constraint removed each node. */
  #infeasibleReason(state: ClassState, classId: ClassId): PendingReason {
    if (state.exhausted) return state.exhausted
    const byConstraint: Record<string, number> = {}
    const examples = new Map<string, Exclusion>()
    const prefilter = this.#prefilter[classId]!
    const seen = new Set<number>()
    const demand = state.info.call.demand
    const busy = new Map<ResourceName, number>()
    const count = (exclusion: Exclusion, offer: number | undefined): void => {
      const key = exclusionKey(exclusion)
      byConstraint[key] = (byConstraint[key] ?? 0) + 1
      if (!examples.has(key)) examples.set(key, exclusion)
      // Out of room now, but it could run the job once its running jobs end.
      if (exclusion.kind === 'resources' && offer !== undefined && resourceExclusion(demand, this.#capacities[offer]!) === undefined) {
        busy.set(exclusion.resource, (busy.get(exclusion.resource) ?? 0) + 1)
      }
    }
    for (const [node, exclusion] of state.excluded) {
      const offer = this.#offerIndex.get(this.#bidders[node]!.nodeId)
      count(exclusion, offer)
      if (offer !== undefined) seen.add(offer)
    }
    for (let offer = 0; offer < this.#offerCount; offer++) {
      if (seen.has(offer)) continue
      count(prefilter[offer] ?? { kind: 'no_bid' }, offer)
    }
    if (busy.size > 0) {
      const [resource] = [...busy].sort((a, b) => b[1] - a[1])[0]!
      state.exhausted = { kind: 'capacity_exhausted', resource, candidates: [...busy.values()].reduce((a, b) => a + b, 0) }
      return state.exhausted
    }
    // The example is of the constraint that removed the most nodes (ties: first seen, by node id).
    let example: Exclusion | undefined
    let most = 0
    for (const [key, exclusion] of examples) {
      if (byConstraint[key]! > most) [example, most] = [exclusion, byConstraint[key]!]
    }
    const reason: PendingReason = { kind: 'no_feasible_node', byConstraint }
    if (example) reason.example = example
    state.exhausted = reason
    return reason
  }

  /** Candidates existed but the batch used them up: which resource ran out most often. */
  #exhaustedReason(state: ClassState): PendingReason {
    const counts = new Map<ResourceName, number>()
    const demand = state.info.call.demand
    for (let k = 0; k < state.size; k++) {
      const exclusion = resourceExclusion(demand, this.#ledger.freeOf(state.sorted[k]!))
      if (exclusion?.kind === 'resources') counts.set(exclusion.resource, (counts.get(exclusion.resource) ?? 0) + 1)
    }
    let resource: ResourceName = 'cpu'
    let most = -1
    for (const [name, count] of counts) if (count > most) [resource, most] = [name, count]
    return { kind: 'capacity_exhausted', resource, candidates: state.size }
  }
}

function range(from: number, to: number): number[] {
  const values: number[] = []
  for (let value = from; value < to; value++) values.push(value)
  return values
}

/** Candidates grouped by (provider, region), each best first; domains in key order. */
function buildDomains(state: ClassState, bidders: readonly Bid[]): Domain[] {
  const groups = new Map<string, number[]>()
  for (const node of state.sorted) {
    const bid = bidders[node]!
    const key = `${bid.provider}/${bid.region}`
    let group = groups.get(key)
    if (!group) groups.set(key, (group = []))
    group.push(node)
  }
  return [...groups.entries()].sort(([a], [b]) => compareStrings(a, b)).map(([key, nodes]) => ({ key, nodes: Int32Array.from(nodes), head: 0 }))
}

/**
 * Candidates grouped into gang islands, each best first. Nodes sharing provider, AZ-ID,
 * placement group and EFA form one island; a node with no placement group is an island alone.
 */
function buildIslands(state: ClassState, bidders: readonly Bid[]): Island[] {
  const groups = new Map<string, { efa: boolean; nodes: number[] }>()
  for (const node of state.sorted) {
    const bid = bidders[node]!
    const key = bid.placementGroup === undefined ? `node/${bid.nodeId}` : `${bid.provider}/${bid.azId}/${bid.placementGroup}/${bid.efa ? 'efa' : 'no-efa'}`
    let group = groups.get(key)
    if (!group) groups.set(key, (group = { efa: bid.efa, nodes: [] }))
    group.nodes.push(node)
  }
  return [...groups.entries()].sort(([a], [b]) => compareStrings(a, b)).map(([key, group]) => ({ key, efa: group.efa, nodes: Int32Array.from(group.nodes) }))
}

function explainRows(state: ClassState, offers: readonly NodeOffer[], prefilter: readonly (Exclusion | undefined)[], bidderIndex: ReadonlyMap<string, number>): ExplainRow[] {
  return offers.map((offer, offerIndex) => {
    const row: ExplainRow = { nodeId: offer.nodeId, provider: offer.provider, region: offer.region, azId: offer.azId, spot: offer.spot, awarded: 0 }
    const node = bidderIndex.get(offer.nodeId)
    if (node === undefined) {
      row.excluded = prefilter[offerIndex] ?? { kind: 'no_bid' }
      return row
    }
    const excluded = state.excluded.get(node)
    if (excluded) row.excluded = excluded
    else if (Number.isNaN(state.score[node]!)) row.excluded = prefilter[offerIndex] ?? { kind: 'no_bid' }
    else {
      row.askPerHour = state.ask[node]!
      row.transferPerHour = state.transfer[node]!
      row.costPerHour = row.askPerHour + row.transferPerHour
      row.score = state.score[node]!
      row.awarded = state.awarded[node]!
    }
    return row
  })
}
