// Scoring strategies: how a job's strategy turns a bid's cost, performance, reliability and
// start time into one score in [0, 1] (higher wins). Each term is normalized against the other
// candidates of the same job class, so weights mean the same thing whatever the prices.
import type { StrategyName, StrategyWeights } from './job-spec.ts'
import type { Reliability } from './node-offer.ts'

export const strategyPresets: Readonly<Record<Exclude<StrategyName, 'custom'>, StrategyWeights>> = {
  /** Cost only; equal-cost nodes share the work (fairness), ties broken by node id. */
  lowest_cost: { cost: 1, performance: 0, reliability: 0, startTime: 0 },
  /** Speed first; cost only separates nodes of nearly equal speed. */
  best_performance: { cost: 0.03, performance: 0.97, reliability: 0, startTime: 0 },
  balanced: { cost: 0.4, performance: 0.3, reliability: 0.2, startTime: 0.1 },
  /** Reliability first; replicas are also spread over distinct providers and regions (auction.ts). */
  high_availability: { cost: 0.25, performance: 0.15, reliability: 0.5, startTime: 0.1 },
}

/** The normalized weights (summing to 1) for a strategy. */
export function strategyWeights(strategy: StrategyName, custom?: StrategyWeights): StrategyWeights {
  const raw = strategy === 'custom' ? custom : strategyPresets[strategy]
  if (raw === undefined) throw new Error('assertion: custom strategy without weights')
  const sum = raw.cost + raw.performance + raw.reliability + raw.startTime
  if (!(sum > 0)) throw new Error('assertion: strategy weights sum to zero')
  return { cost: raw.cost / sum, performance: raw.performance / sum, reliability: raw.reliability / sum, startTime: raw.startTime / sum }
}

/** Spot capacity can be reclaimed at short notice: its reliability counts for this much less. */
export const spotReliabilityFactor = 0.9
/** Each past interruption lowers reliability by this fraction (compounding as 1 / (1 + k n)). */
export const interruptionPenalty = 0.2
/** A start this far away halves the start-time term. */
export const startHalfScoreMs = 60_000

/** One number in [0, 1] for how much a node can be relied on. */
export function reliabilityValue(reliability: Reliability, spot: boolean): number {
  const uptime = Math.max(0, Math.min(1, reliability.uptime))
  return (uptime / (1 + interruptionPenalty * Math.max(0, reliability.interruptions))) * (spot ? spotReliabilityFactor : 1)
}

export interface CandidateTerms {
  /** Ask plus transfer, per hour. */
  costPerHour: number
  performanceScore: number
  /** From reliabilityValue. */
  reliability: number
  startDelayMs: number
}

/** Keeps free (zero-cost) nodes from dividing by zero; a tenth of a cent per hour. */
const costFloorPerHour = 0.001

/**
 * Scores every candidate of one class: cost term = cheapest / own cost, performance term =
 * own / fastest, reliability as is, start term = 1 / (1 + delay / startHalfScoreMs).
 */
export function scoreCandidates(candidates: readonly CandidateTerms[], weights: StrategyWeights): Float64Array {
  let minCost = Infinity
  let maxPerformance = 0
  for (const candidate of candidates) {
    if (candidate.costPerHour < minCost) minCost = candidate.costPerHour
    if (candidate.performanceScore > maxPerformance) maxPerformance = candidate.performanceScore
  }
  const scores = new Float64Array(candidates.length)
  for (let index = 0; index < candidates.length; index++) {
    scores[index] = scoreOne(candidates[index]!, weights, minCost, maxPerformance)
  }
  return scores
}

export function scoreOne(candidate: CandidateTerms, weights: StrategyWeights, minCost: number, maxPerformance: number): number {
  const costTerm = (minCost + costFloorPerHour) / (candidate.costPerHour + costFloorPerHour)
  const performanceTerm = maxPerformance > 0 ? candidate.performanceScore / maxPerformance : 1
  const startTerm = 1 / (1 + Math.max(0, candidate.startDelayMs) / startHalfScoreMs)
  return weights.cost * costTerm + weights.performance * performanceTerm + weights.reliability * candidate.reliability + weights.startTime * startTerm
}
