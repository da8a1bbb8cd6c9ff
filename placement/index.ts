// The public face of placement/: job specs, offers and bids, the auction round and the
// leader's book, one-shot placement, explain records, fleets/workloads and the benchmark.
// Pure: no clock, no randomness, no I/O (bench.ts alone reads the clock, to time the core).
export {
  parseJobSpec,
  validateJobSpec,
  jobDemand,
  asJobId,
  parseDurationMs,
  type JobSpec,
  type JobId,
  type Demand,
  type DataInput,
  type DataLocation,
  type JobConstraints,
  type Intent,
  type StrategyName,
  type StrategyWeights,
  type SpecError,
  type JobSpecResult,
} from './job-spec.ts'
export {
  defaultCostModel,
  defaultTransferPrices,
  transferPricePerGB,
  transferCost,
  transferCostPerHour,
  totalJobCost,
  costHorizonHours,
  countryGroups,
  expandSovereignty,
  type CostModel,
  type TransferPriceTable,
} from './cost-model.ts'
export {
  asNodeId,
  askPerHour,
  unitPricesFromInstancePrice,
  nodePricePerHour,
  type NodeId,
  type NodeOffer,
  type Resources,
  type UnitPrices,
  type Reliability,
} from './node-offer.ts'
export { describeExclusion, exclusionKey, type Exclusion, type ResourceName } from './constraints.ts'
export {
  makeBid,
  answerCall,
  canonicalJson,
  bidSigningPayload,
  trustAllBids,
  defaultBidPolicy,
  type Bid,
  type BidPolicy,
  type CallForBids,
  type ClassId,
  type VerifyBid,
  type SignBid,
} from './bid.ts'
export { strategyPresets, strategyWeights } from './strategies.ts'
export {
  AuctionRound,
  adaptiveBidWindowMs,
  auctionDefaults,
  type AuctionOptions,
  type Award,
  type BidReceipt,
  type BidRejection,
  type OpenRoundInit,
  type PendingJob,
  type PendingReason,
  type RoundResult,
  type Unplaced,
} from './auction.ts'
export { placeBatch, type BatchResult, type PlaceBatchOptions } from './place-batch.ts'
export { PlacementLeader, defaultLeaderTiming, type LeaderEffect, type LeaderOptions, type Assignment } from './leader.ts'
export { explainJob, renderExplanation, describePending, type ExplainRow, type JobExplanation, type RoundExplanation } from './explain.ts'
export { parseFleet, type FleetResult } from './fleet.ts'
export { parseWorkload, expandWorkload, type Workload, type JobTemplate, type WorkloadResult } from './workload.ts'
export { costLowerBound, greedyReference, costVsOptimal, type CostComparison } from './optimal.ts'
export { benchPlacement, type BenchResult, type BenchOptions, type BenchMeter } from './bench.ts'
