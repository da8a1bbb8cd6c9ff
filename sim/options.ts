// What one simulation run is made of: cluster size, timing, faults, workload. One seed draws
// every random choice of a run, so a run is fully described by these options plus its seed.
// consensus/types.ts, not the consensus barrel: `fabric sim --help` shows these defaults without loading Automerge.
import { defaultPeerTiming, type BrokenVariant } from '../consensus/types.ts'
import type { NodeOffer, Workload } from '../placement/index.ts'

export const allFaults = ['partition', 'oneway', 'crash', 'pause', 'disk', 'lag', 'loss', 'reorder', 'duplicate', 'drift', 'slow', 'byzantine'] as const
export type FaultKind = (typeof allFaults)[number]

export interface SimOptions {
  nodes: number
  voters: number
  durationMs: number
  faults: readonly FaultKind[]
  /** Jobs submitted per virtual second, through random live nodes. */
  ratePerSecond: number
  electionTimeoutMs: number
  heartbeatIntervalMs: number
  linkLatencyMinMs: number
  linkLatencyMaxMs: number
  /** Faults stop at this fraction of the run; the rest is the liveness phase. */
  faultPhaseFraction: number
  /** Bound on the clock drift rate a node may have (drift fault). */
  maxDriftRate: number
  gossipDegree: number
  broken: BrokenVariant
  /** Keep a transcript of notable events (for failures and --trace). */
  traceLimit: number
  /** The nodes' offers (a --fleet file); null: the generated heterogeneous fleet of `nodes` nodes. */
  fleet: NodeOffer[] | null
  /** The job mix (a --workload file); null: the built-in mix. Arrivals follow ratePerSecond. */
  workload: Workload | null
  /** Users asking to move a running job (checkpoint, re-place, restore), per virtual second, during the fault phase. */
  migrationsPerSecond: number
  /**
   * End a seed at its first violation (what a planted-bug run asks: was the bug caught?). The rest of
   * such a run tells nothing more and costs most of the time; `fabric sim --broken` sets it unless --full.
   */
  stopAtFirstViolation: boolean
}

export const defaultSimOptions: SimOptions = {
  nodes: 25,
  voters: 5,
  durationMs: 120_000,
  faults: allFaults,
  ratePerSecond: 5,
  electionTimeoutMs: defaultPeerTiming.electionTimeoutMs,
  heartbeatIntervalMs: defaultPeerTiming.heartbeatIntervalMs,
  linkLatencyMinMs: 20,
  linkLatencyMaxMs: 50,
  faultPhaseFraction: 0.75,
  maxDriftRate: 0.01,
  gossipDegree: 6,
  broken: 'none',
  traceLimit: 200,
  fleet: null,
  workload: null,
  migrationsPerSecond: 0.2,
  stopAtFirstViolation: false,
}

export function parseFaults(text: string): FaultKind[] {
  if (text === 'all') return [...allFaults]
  if (text === 'none' || text === '') return []
  const faults: FaultKind[] = []
  for (const part of text.split(',').map((piece) => piece.trim()).filter(Boolean)) {
    if (!(allFaults as readonly string[]).includes(part)) throw new Error(`unknown fault "${part}" (known: ${allFaults.join(', ')}, or all, none)`)
    faults.push(part as FaultKind)
  }
  return faults
}

/** "120s", "2m", "500ms" or a bare number of seconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (match === null) throw new Error(`cannot read duration "${text}" (examples: 120s, 2m, 500ms)`)
  const value = Number(match[1])
  const unit = match[2] ?? 's'
  return Math.round(unit === 'ms' ? value : unit === 'm' ? value * 60_000 : value * 1000)
}
