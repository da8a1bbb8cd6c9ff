// Runs seeds and folds their results into the JSON report `fabric sim --json` prints.
// Everything but wallSeconds is a pure function of the options and seeds, so a replay is identical.
import type { Violation } from './checker.ts'
import type { SimOptions } from './options.ts'
import type { PlacementResult, StrategyCost } from './placement-metrics.ts'
import { World } from './world.ts'

export interface Percentiles { p50: number; p99: number }

export interface SeedResult {
  seed: number
  violations: Violation[]
  jobsSubmitted: number
  jobsAcknowledged: number
  jobsLost: number
  jobsFinished: number
  replicasSubmitted: number
  unplaceable: { jobId: string; reason: string }[]
  placement: PlacementResult
  migrations: { requested: number; checkpointed: number; restored: number }
  fencedCopies: number
  retries: { failedRuns: number; retried: number }
  operator: Record<string, number>
  byzantine: { changes: number; messages: number; falseReports: number } | null
  maxLeadersPerTerm: number
  failoverMs: number[]
  commitMs: number[]
  ackMs: number[]
  gossip99Ms: number[]
  gossipUnreached: number
  leaderChanges: number
  messagesSent: number
  events: number
  virtualSeconds: number
  /** Virtual ms at which the seed stopped at its first violation; null: it ran its whole duration. */
  stoppedAtMs: number | null
}

export interface SimReport {
  seeds: number[]
  /** Seeds that stopped at their first violation (a planted-bug run), with when: the rest of their time was not run. */
  stoppedAtFirstViolation: { seed: number; atMs: number }[]
  nodes: number
  voters: number
  faults: string[]
  violations: Violation[]
  jobsSubmitted: number
  jobsAcknowledged: number
  jobsLost: number
  /** Replicas finished (a job of n replicas counts n). */
  replicasFinished: number
  replicasSubmitted: number
  /** Replicas pending at the end with a reason, counted by the reason's kind. */
  unplaceable: { count: number; reasons: Record<string, number> }
  /** Replicas awarded by auctions per virtual second (re-placements count again). */
  placementsPerSec: number
  auctionRounds: number
  /** Submission to the replica's first start. */
  placementMs: Percentiles
  /**
   * Awarded cost per hour over the cheapest cost per hour any bidder with room offered in the same
   * round (a lower bound for that round's placement): 1 = every replica went to the cheapest bid.
   * Across all strategies, and per strategy (only lowest_cost aims at 1).
   */
  costVsOptimal: number
  costVsOptimalByStrategy: Record<string, number>
  /** Move requests users made, checkpoints taken (periodic and for moves), replicas restored from a snapshot. */
  migrations: { requested: number; checkpointed: number; restored: number }
  /** Copies stopped because a committed assignment moved their replica elsewhere: its node was lost (a crash, a partition), or a new leader placed it again. */
  fencedCopies: number
  /** Runs that failed (the workload's flaky jobs), and replicas started again after a failed run. */
  retries: { failedRuns: number; retried: number }
  /** What the operator asked for (moves, cancels, drains, admissions, committee changes), summed over seeds. */
  operator: Record<string, number>
  /** What the Byzantine non-voter tried (forged changes, forged protocol messages, false reports of its own runs), summed; null without it. */
  byzantine: { changes: number; messages: number; falseReports: number } | null
  /** Mean sampled share of the fleet's CPU (and GPUs) held by running replicas. */
  utilization: { cpu: number; gpu: number }
  maxLeadersPerTerm: number
  leaderChanges: number
  failoverMs: Percentiles
  commitMs: Percentiles
  ackMs: Percentiles
  gossip99Ms: number
  gossip99MsP99: number
  gossipUnreached: number
  messagesSent: number
  events: number
  virtualSeconds: number
  wallSeconds: number
}

export function runSeed(options: SimOptions, seed: number): SeedResult {
  const world = new World(options, seed)
  world.run()
  const checker = world.checker
  return {
    seed,
    violations: checker.violations,
    jobsSubmitted: checker.submitted.size,
    jobsAcknowledged: checker.acknowledged.size,
    jobsLost: checker.jobsLost,
    jobsFinished: checker.finished,
    replicasSubmitted: checker.replicas,
    unplaceable: checker.unplaceable,
    placement: world.placement.result,
    migrations: { ...world.migration, requested: world.operatorCounts.migrate },
    fencedCopies: world.fencedCopies,
    retries: { failedRuns: checker.failedRuns, retried: checker.retried },
    operator: { ...world.operatorCounts },
    byzantine: world.byzantine === null ? null : { ...world.byzantine.counts },
    maxLeadersPerTerm: checker.maxLeadersPerTerm,
    failoverMs: world.metrics.failoverMs,
    commitMs: world.metrics.commitMs,
    ackMs: world.metrics.ackMs,
    gossip99Ms: world.metrics.gossip99Ms,
    gossipUnreached: world.metrics.gossipUnreached,
    leaderChanges: world.metrics.leaderChanges,
    messagesSent: world.metrics.messagesSent,
    events: world.metrics.events,
    virtualSeconds: (world.stoppedAtMs ?? options.durationMs) / 1000,
    stoppedAtMs: world.stoppedAtMs,
  }
}

export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))
  return round(sorted[index]!)
}

const round = (value: number): number => Math.round(value * 10) / 10

/** Virtual seconds per wall second (not part of the report: it would differ between replays). */
export function speedupOf(virtualSeconds: number, wallSeconds: number): number {
  return wallSeconds > 0 ? round(virtualSeconds / wallSeconds) : 0
}

export function summarize(options: SimOptions, results: readonly SeedResult[], wallSeconds: number): SimReport {
  const all = <K extends keyof SeedResult>(key: K): SeedResult[K][] => results.map((result) => result[key])
  const flat = (key: 'failoverMs' | 'commitMs' | 'ackMs' | 'gossip99Ms'): number[] => results.flatMap((result) => result[key])
  const sum = (key: 'jobsSubmitted' | 'jobsAcknowledged' | 'jobsLost' | 'jobsFinished' | 'leaderChanges' | 'messagesSent' | 'events' | 'gossipUnreached' | 'virtualSeconds'): number =>
    results.reduce((total, result) => total + result[key], 0)
  const reasons: Record<string, number> = {}
  for (const result of results) for (const { reason } of result.unplaceable) {
    const kind = reason.split(':')[0]!
    reasons[kind] = (reasons[kind] ?? 0) + 1
  }
  const virtualSeconds = sum('virtualSeconds')
  const costs: Record<string, StrategyCost> = {}
  for (const result of results) for (const [strategy, cost] of Object.entries(result.placement.byStrategy)) {
    const total = (costs[strategy] ??= { replicas: 0, costPerHour: 0, cheapestPerHour: 0 })
    total.replicas += cost.replicas
    total.costPerHour += cost.costPerHour
    total.cheapestPerHour += cost.cheapestPerHour
  }
  const ratio = (cost: number, cheapest: number): number => (cheapest > 0 ? Math.round((cost / cheapest) * 1000) / 1000 : 1)
  const allCosts = Object.values(costs)
  const mean = (values: readonly number[]): number => (values.length === 0 ? 0 : Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 1000) / 1000)
  const placementMs = results.flatMap((result) => result.placement.placementMs)
  return {
    seeds: all('seed'),
    stoppedAtFirstViolation: results.flatMap((result) => (result.stoppedAtMs === null ? [] : [{ seed: result.seed, atMs: Math.round(result.stoppedAtMs) }])),
    nodes: options.nodes,
    voters: options.voters,
    faults: [...options.faults],
    violations: results.flatMap((result) => result.violations),
    jobsSubmitted: sum('jobsSubmitted'),
    jobsAcknowledged: sum('jobsAcknowledged'),
    jobsLost: sum('jobsLost'),
    replicasFinished: sum('jobsFinished'),
    replicasSubmitted: results.reduce((total, result) => total + result.replicasSubmitted, 0),
    unplaceable: { count: results.reduce((total, result) => total + result.unplaceable.length, 0), reasons },
    placementsPerSec: virtualSeconds > 0 ? round(results.reduce((total, result) => total + result.placement.awards, 0) / virtualSeconds) : 0,
    auctionRounds: results.reduce((total, result) => total + result.placement.rounds, 0),
    placementMs: { p50: percentile(placementMs, 0.5), p99: percentile(placementMs, 0.99) },
    costVsOptimal: ratio(allCosts.reduce((total, cost) => total + cost.costPerHour, 0), allCosts.reduce((total, cost) => total + cost.cheapestPerHour, 0)),
    costVsOptimalByStrategy: Object.fromEntries(Object.entries(costs).sort(([a], [b]) => (a < b ? -1 : 1)).map(([strategy, cost]) => [strategy, ratio(cost.costPerHour, cost.cheapestPerHour)])),
    migrations: {
      requested: results.reduce((total, result) => total + result.migrations.requested, 0),
      checkpointed: results.reduce((total, result) => total + result.migrations.checkpointed, 0),
      restored: results.reduce((total, result) => total + result.migrations.restored, 0),
    },
    fencedCopies: results.reduce((total, result) => total + result.fencedCopies, 0),
    retries: {
      failedRuns: results.reduce((total, result) => total + result.retries.failedRuns, 0),
      retried: results.reduce((total, result) => total + result.retries.retried, 0),
    },
    operator: results.reduce<Record<string, number>>((total, result) => {
      for (const [action, count] of Object.entries(result.operator)) total[action] = (total[action] ?? 0) + count
      return total
    }, {}),
    byzantine: results.every((result) => result.byzantine === null) ? null : results.reduce((total, result) => ({
      changes: total.changes + (result.byzantine?.changes ?? 0),
      messages: total.messages + (result.byzantine?.messages ?? 0),
      falseReports: total.falseReports + (result.byzantine?.falseReports ?? 0),
    }), { changes: 0, messages: 0, falseReports: 0 }),
    utilization: { cpu: mean(results.flatMap((result) => result.placement.cpuUtilization)), gpu: mean(results.flatMap((result) => result.placement.gpuUtilization)) },
    maxLeadersPerTerm: Math.max(0, ...all('maxLeadersPerTerm')),
    leaderChanges: sum('leaderChanges'),
    failoverMs: { p50: percentile(flat('failoverMs'), 0.5), p99: percentile(flat('failoverMs'), 0.99) },
    commitMs: { p50: percentile(flat('commitMs'), 0.5), p99: percentile(flat('commitMs'), 0.99) },
    ackMs: { p50: percentile(flat('ackMs'), 0.5), p99: percentile(flat('ackMs'), 0.99) },
    gossip99Ms: percentile(flat('gossip99Ms'), 0.5),
    gossip99MsP99: percentile(flat('gossip99Ms'), 0.99),
    gossipUnreached: sum('gossipUnreached'),
    messagesSent: sum('messagesSent'),
    events: sum('events'),
    virtualSeconds,
    wallSeconds: round(wallSeconds),
  }
}
