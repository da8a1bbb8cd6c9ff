// One-shot placement for the simulator, the benchmark and `fabric plan`: opens a round over all
// offers, lets every eligible offer bid through makeBid, closes it, and repeats with the jobs a
// round deferred (its limits) against the capacity left. No clock: time is `nowMs`.
import { AuctionRound, type AuctionOptions, type Award, type PendingJob, type RoundResult, type Unplaced } from './auction.ts'
import { defaultBidPolicy, makeBid, trustAllBids, type BidPolicy, type VerifyBid } from './bid.ts'
import { subtractDemand, type NodeOffer } from './node-offer.ts'

export interface PlaceBatchOptions extends Omit<AuctionOptions, 'verify'> {
  /** Defaults to trusting every bid: placeBatch's bids are made in-process. */
  verify?: VerifyBid
  nowMs?: number
  leaderId?: string
  roundIdPrefix?: string
  bidPolicy?: BidPolicy
  /** Bound on rounds when limits defer jobs. */
  maxRounds?: number
}

export interface BatchResult {
  awards: Award[]
  pending: Unplaced[]
  /** Jobs still deferred when maxRounds ran out. */
  deferred: PendingJob[]
  rounds: RoundResult[]
}

export function placeBatch(jobs: readonly PendingJob[], offers: readonly NodeOffer[], options: PlaceBatchOptions = {}): BatchResult {
  const nowMs = options.nowMs ?? 0
  const maxRounds = options.maxRounds ?? 64
  const auctionOptions: AuctionOptions = { ...options, verify: options.verify ?? trustAllBids }
  let current = offers
  let remaining = jobs
  const result: BatchResult = { awards: [], pending: [], deferred: [], rounds: [] }
  for (let round = 0; round < maxRounds && remaining.length > 0; round++) {
    const auction = new AuctionRound({
      roundId: `${options.roundIdPrefix ?? 'batch'}-${round}`,
      leaderId: options.leaderId ?? 'local',
      nowMs,
      jobs: remaining,
      offers: current,
      options: auctionOptions,
    })
    for (const offer of current) {
      if (!auction.eligible.has(offer.nodeId)) continue
      const bid = makeBid(offer, auction.call, nowMs, options.bidPolicy ?? defaultBidPolicy)
      if (bid) auction.receiveBid(bid, nowMs)
    }
    const closed = auction.close(nowMs)
    result.rounds.push(closed)
    for (const award of closed.awards) result.awards.push(award)
    for (const entry of closed.pending) result.pending.push(entry)
    remaining = closed.deferred
    if (remaining.length > 0) current = debit(current, closed)
  }
  result.deferred = [...remaining]
  return result
}

/** The offers with the round's awards taken out of their free capacity. */
export function debit(offers: readonly NodeOffer[], round: RoundResult): NodeOffer[] {
  const byNode = new Map<string, NodeOffer>()
  for (const offer of offers) byNode.set(offer.nodeId, offer)
  const demandOf = new Map(round.jobs.map((job) => [job.jobId, job.spec.resources]))
  for (const award of round.awards) {
    const offer = byNode.get(award.nodeId)!
    byNode.set(award.nodeId, { ...offer, free: subtractDemand(offer.free, demandOf.get(award.jobId)!) })
  }
  return offers.map((offer) => byNode.get(offer.nodeId)!)
}
