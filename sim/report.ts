// Runs seeds and folds their results into the JSON report `fabric sim --json` prints.
// Everything but wallSeconds is a pure function of the options and seeds, so a replay is identical.
import type { Violation } from './checker.ts'
import type { SimOptions } from './options.ts'
import { World } from './world.ts'

export interface Percentiles { p50: number; p99: number }

export interface SeedResult {
  seed: number
  violations: Violation[]
  jobsSubmitted: number
  jobsAcknowledged: number
  jobsLost: number
  jobsFinished: number
  unplaceable: { jobId: string; reason: string }[]
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
}

export interface SimReport {
  seeds: number[]
  nodes: number
  voters: number
  faults: string[]
  violations: Violation[]
  jobsSubmitted: number
  jobsAcknowledged: number
  jobsLost: number
  jobsFinished: number
  unplaceable: { count: number; reasons: Record<string, number> }
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
    unplaceable: checker.unplaceable,
    maxLeadersPerTerm: checker.maxLeadersPerTerm,
    failoverMs: world.metrics.failoverMs,
    commitMs: world.metrics.commitMs,
    ackMs: world.metrics.ackMs,
    gossip99Ms: world.metrics.gossip99Ms,
    gossipUnreached: world.metrics.gossipUnreached,
    leaderChanges: world.metrics.leaderChanges,
    messagesSent: world.metrics.messagesSent,
    events: world.metrics.events,
    virtualSeconds: options.durationMs / 1000,
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
  for (const result of results) for (const { reason } of result.unplaceable) reasons[reason] = (reasons[reason] ?? 0) + 1
  const virtualSeconds = sum('virtualSeconds')
  return {
    seeds: all('seed'),
    nodes: options.nodes,
    voters: options.voters,
    faults: [...options.faults],
    violations: results.flatMap((result) => result.violations),
    jobsSubmitted: sum('jobsSubmitted'),
    jobsAcknowledged: sum('jobsAcknowledged'),
    jobsLost: sum('jobsLost'),
    jobsFinished: sum('jobsFinished'),
    unplaceable: { count: results.reduce((total, result) => total + result.unplaceable.length, 0), reasons },
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
