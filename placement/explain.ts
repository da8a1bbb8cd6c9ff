// Explain records: for each job, which nodes were considered, who was excluded and why, the
// scores, the winners and the price paid; and a text table renderer for them (like `nomad job
// plan` or SkyPilot's optimizer table). The same record serves `fabric plan` dry runs.
import type { ClassId } from './bid.ts'
import { describeExclusion, type Exclusion } from './constraints.ts'
import type { Demand, Intent, JobId, StrategyName, StrategyWeights } from './job-spec.ts'
import type { Award, BidRejection, RoundResult, Unplaced } from './auction.ts'

export interface ExplainRow {
  nodeId: string
  provider: string
  region: string
  azId: string
  spot: boolean
  askPerHour?: number
  transferPerHour?: number
  /** Ask plus transfer, what the strategy's cost term saw. */
  costPerHour?: number
  score?: number
  excluded?: Exclusion
  /** Replicas of this class awarded to the node in the round. */
  awarded: number
}

export interface ClassSummary {
  classId: ClassId
  strategy: StrategyName
  weights: StrategyWeights
  demand: Demand
  maxPricePerHour?: number
  jobs: number
  /** Bidders that passed every hard constraint. */
  candidates: number
}

export interface RoundExplanation {
  roundId: string
  openedAtMs: number
  closedAtMs: number
  eligible: number
  answered: number
  rejectedBids: readonly { nodeId: string; reason: BidRejection }[]
  classes: readonly ClassSummary[]
  classOfJob: ReadonlyMap<JobId, ClassId>
  /** The per-node table of a class, built on demand (a round may hold thousands of nodes). */
  rowsOf(classId: ClassId): ExplainRow[]
}

export interface JobExplanation {
  roundId: string
  jobId: JobId
  name: string
  strategy: StrategyName
  intent: Intent
  replicas: number
  demand: Demand
  maxPricePerHour?: number
  eligible: number
  answered: number
  /** Candidates best first, then excluded nodes. */
  rows: ExplainRow[]
  awards: Award[]
  pending?: Unplaced
}

/** Everything about one job's placement in a round, or undefined if it was not in the round. */
export function explainJob(result: RoundResult, jobId: JobId): JobExplanation | undefined {
  const explanation = result.explanation
  const classId = explanation.classOfJob.get(jobId)
  const job = result.jobs.find((candidate) => candidate.jobId === jobId)
  if (classId === undefined || job === undefined) return undefined
  const summary = explanation.classes[classId]!
  const rows = explanation.rowsOf(classId)
  rows.sort((a, b) => {
    if (a.excluded === undefined && b.excluded !== undefined) return -1
    if (a.excluded !== undefined && b.excluded === undefined) return 1
    const scoreOrder = (b.score ?? -1) - (a.score ?? -1)
    return scoreOrder !== 0 ? scoreOrder : a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0
  })
  const record: JobExplanation = {
    roundId: explanation.roundId,
    jobId,
    name: job.spec.name,
    strategy: job.spec.strategy,
    intent: job.spec.intent,
    replicas: job.spec.replicas,
    demand: summary.demand,
    eligible: explanation.eligible,
    answered: explanation.answered,
    rows,
    awards: result.awards.filter((award) => award.jobId === jobId),
  }
  if (summary.maxPricePerHour !== undefined) record.maxPricePerHour = summary.maxPricePerHour
  const pending = result.pending.find((entry) => entry.jobId === jobId)
  if (pending) record.pending = pending
  return record
}

const money = (value: number | undefined): string => (value === undefined ? '-' : `$${value.toFixed(4)}`)

function pad(cells: readonly string[][]): string {
  const widths: number[] = []
  for (const row of cells) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)))
  return cells.map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!))).join('  ')).join('\n')
}

/** Human reading of a pending reason. */
export function describePending(pending: Unplaced): string {
  const reason = pending.reason
  switch (reason.kind) {
    case 'no_feasible_node': {
      const counts = Object.entries(reason.byConstraint)
        .sort((a, b) => b[1] - a[1])
        .map(([key, count]) => `${key}: ${count}`)
        .join(', ')
      return `no node satisfies the hard constraints (${counts || 'no nodes'})`
    }
    case 'capacity_exhausted':
      return `${reason.candidates} feasible node(s) but not enough free ${reason.resource} left in this round`
    case 'gang_no_island':
      return `no AZ-ID island (same placement group) fits all ${reason.replicas} replicas; best island fits ${reason.bestIslandSlots} of ${reason.islands} island(s)`
  }
}

/** The plan table: one row per node considered, then the choice and the price paid. */
export function renderExplanation(record: JobExplanation, options: { maxRows?: number } = {}): string {
  const maxRows = options.maxRows ?? 60
  const lines: string[] = []
  const demand = record.demand
  const gpu = demand.gpuCount > 0 ? `, ${demand.gpuCount} GPU${demand.gpuModels.length ? ` (${demand.gpuModels.join('|')})` : ''}` : ''
  lines.push(
    `Job ${record.name} (${record.jobId}): ${record.replicas} replica(s), intent ${record.intent}, strategy ${record.strategy}; ` +
      `each ${demand.cpuMillis}m CPU, ${demand.memoryMiB} MiB${gpu}` +
      (record.maxPricePerHour !== undefined ? `; max ${money(record.maxPricePerHour)}/h` : ''),
  )
  lines.push(`Round ${record.roundId}: ${record.eligible} eligible bidder(s), ${record.answered} answered`)
  lines.push('')
  const header = ['NODE', 'PROVIDER', 'REGION', 'AZ-ID', 'SPOT', 'ASK/H', 'XFER/H', 'SCORE', 'WON', 'EXCLUDED']
  const body = record.rows.slice(0, maxRows).map((row) => [
    row.nodeId,
    row.provider,
    row.region,
    row.azId,
    row.spot ? 'spot' : 'on-demand',
    money(row.askPerHour),
    money(row.transferPerHour),
    row.score === undefined ? '-' : row.score.toFixed(4),
    row.awarded > 0 ? String(row.awarded) : '',
    row.excluded ? describeExclusion(row.excluded) : '',
  ])
  lines.push(pad([header, ...body]))
  if (record.rows.length > maxRows) lines.push(`... ${record.rows.length - maxRows} more node(s)`)
  lines.push('')
  if (record.awards.length > 0) {
    for (const award of record.awards) {
      lines.push(
        `replica ${award.replica} -> ${award.nodeId}: ask ${money(award.askPerHour)}/h, pays ${money(award.pricePerHour)}/h (second price), score ${award.score.toFixed(4)}`,
      )
    }
    const total = record.awards.reduce((sum, award) => sum + award.pricePerHour, 0)
    lines.push(`total ${money(total)}/h for ${record.awards.length} replica(s)`)
  }
  if (record.pending) lines.push(`pending (${record.pending.replicas.length} replica(s)): ${describePending(record.pending)}`)
  return lines.join('\n')
}
