// Reads the cluster document (and a node's archive) into the views clients see: job summaries and
// details, and the node registry. The one place node/ interprets job and node records; the state
// names are the client's (pending, placed, assigned, unplaceable, finished, failed).
import {
  attemptProgress,
  assignmentsOf,
  committeeVoters,
  copyFailed,
  effectiveAssignment,
  finalRun as endingRun,
  forEachJob,
  forEachNode,
  isDraining,
  isCommitted,
  jobRecord,
  readText,
  readUsage,
  replicaRecords,
  runStateOf,
  specCommandOf,
  type ArchivedJob,
  type Document,
  type JobId,
  type JobRecord,
  type NodeId,
} from '../consensus/index.ts'
import { nodePricePerHour, type NodeOffer } from '../placement/index.ts'
import type { JobDetail, JobSummary, NodeView, ReplicaSummary } from './client-wire.ts'
import type { LocalJobState } from './job-runner.ts'
import type { NodeMetricsBook } from './metrics-gossip.ts'
import type { NodeLiveness } from './node-liveness.ts'
import type { NodeMetrics } from './wire.ts'

/** How the job ended, if it did: cancelled, or the run that finished (or failed). */
function finalRun(job: JobRecord): { node: string; state: 'finished' | 'failed' | 'cancelled'; exitCode: number; atMs: number } | null {
  const ended = endingRun(job)
  return ended === null ? null : { node: ended.node, state: ended.state, exitCode: ended.run.exitCode, atMs: ended.run.atMs }
}

/** Words as a POSIX shell would take them back: plain where safe, else in single quotes (`fabric submit --cmd` splits them so). */
export function shellQuoted(words: readonly string[]): string {
  return words.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ')
}

/** The command line a record's spec runs, for display. */
function commandOf(job: JobRecord): string {
  const ran = specCommandOf(job)
  return ran === null ? '' : describeCommand(ran.words, ran.image)
}

/** What a job runs, for display: its command line, or its image when it names no command ('' when neither is known). */
function describeCommand(words: readonly string[], image: string | undefined): string {
  return words.length > 0 ? shellQuoted(words) : image === undefined ? '' : `image ${image}`
}

/** A node's registered offer (provider, region, AZ-ID, price, GPU model), read from its record. */
function offerOf(text: string): { provider: string; region: string; azId: string; pricePerHour: number; gpu?: { model: string; memoryMiB: number } } {
  try {
    const offer = JSON.parse(text) as NodeOffer
    const gpu = offer.gpu === undefined ? {} : { gpu: { model: offer.gpu.model, memoryMiB: offer.gpu.memoryMiB } }
    return { provider: offer.provider, region: offer.region, azId: offer.azId, pricePerHour: nodePricePerHour(offer), ...gpu }
  } catch {
    return { provider: '', region: '', azId: '', pricePerHour: 0 }
  }
}

/** Job ids may not contain '#': consensus names replica records `<jobId>#<r>` (its replicaSeparator). */
const replicaSeparator = '#'

/** The submitted job a replica record (or archived record) belongs to. */
export function parentJobId(recordId: string): string {
  const at = recordId.indexOf(replicaSeparator)
  return at < 0 ? recordId : recordId.slice(0, at)
}

type ReplicaState = JobSummary['state']

/** One replica record as the client sees it: state, node, exit. */
export function summarizeRecord(document: Document, jobId: JobId, job: JobRecord): ReplicaSummary & { finishedAtMs: number | null } {
  const final = finalRun(job)
  if (final !== null) return { id: jobId, state: final.state, node: final.node, exitCode: final.exitCode, finishedAtMs: final.atMs }
  const assignment = effectiveAssignment(job)
  // A copy that failed with attempts left waits to be placed again (its failure is in `attempts`).
  if (assignment !== null && !copyFailed(job, assignment)) return { id: jobId, state: isCommitted(document, assignment) ? 'assigned' : 'placed', node: assignment.node, exitCode: null, finishedAtMs: null }
  return { id: jobId, state: Object.keys(job.unplaceable).length > 0 ? 'unplaceable' : 'pending', node: null, exitCode: null, finishedAtMs: null }
}

function summarizeArchivedRecord(job: ArchivedJob): ReplicaSummary & { finishedAtMs: number | null } {
  return { id: job.id, state: job.state, node: job.node, exitCode: job.exitCode, finishedAtMs: job.finishedAtMs }
}

/** Least advanced first: a job is as far along as its slowest replica. */
const progress: Record<ReplicaState, number> = { unplaceable: 0, pending: 1, placed: 2, assigned: 3, finished: 4, failed: 4, cancelled: 4 }

/** A job's summary from its replica records (one for a job of one replica). */
function groupSummary(id: string, name: string, submittedAtMs: number, archived: boolean, records: readonly (ReplicaSummary & { finishedAtMs: number | null })[]): JobSummary {
  const replicas = [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const states = new Set(replicas.map((replica) => replica.state))
  // One cancelled or failed replica marks the job; otherwise the slowest replica says where it is.
  const state: ReplicaState = states.has('cancelled') ? 'cancelled' : states.has('failed') ? 'failed' : replicas.reduce<ReplicaState>((slowest, replica) => (progress[replica.state] < progress[slowest] ? replica.state : slowest), 'finished')
  const nodes = new Set(replicas.map((replica) => replica.node))
  const ended = replicas.every((replica) => replica.finishedAtMs !== null)
  return {
    id,
    name,
    state,
    node: nodes.size === 1 ? [...nodes][0]! : null,
    submittedAtMs,
    finishedAtMs: ended ? Math.max(...replicas.map((replica) => replica.finishedAtMs!)) : null,
    exitCode: ended ? (replicas.find((replica) => replica.exitCode !== 0)?.exitCode ?? 0) : null,
    archived,
    replicas: replicas.map(({ id: replicaId, state: replicaState, node, exitCode }) => ({ id: replicaId, state: replicaState, node, exitCode })),
  }
}

export function summarizeJob(document: Document, jobId: JobId, job: JobRecord): JobSummary {
  return groupSummary(jobId, readText(job.name), job.submittedAtMs, false, [summarizeRecord(document, jobId, job)])
}

export function summarizeArchived(job: ArchivedJob): JobSummary {
  return groupSummary(job.id, job.name, job.submittedAtMs, true, [summarizeArchivedRecord(job)])
}

/**
 * Active jobs from the document and finished ones from the archive, newest first, at most
 * `limit`; the replicas of one job are grouped into one entry (its `replicas` lists them).
 */
export function listJobs(document: Document, archived: readonly ArchivedJob[], limit: number): { jobs: JobSummary[]; truncated: boolean } {
  interface Group { name: string; submittedAtMs: number; fromDocument: boolean; records: Map<string, ReplicaSummary & { finishedAtMs: number | null }> }
  const groups = new Map<string, Group>()
  const groupOf = (id: string, name: string, submittedAtMs: number): Group => {
    let group = groups.get(id)
    if (group === undefined) groups.set(id, (group = { name, submittedAtMs, fromDocument: false, records: new Map() }))
    return group
  }
  for (const job of archived) groupOf(parentJobId(job.id), job.name, job.submittedAtMs).records.set(job.id, summarizeArchivedRecord(job))
  // The document's view wins: it is newer than the archive for a record still in it.
  forEachJob(document, (jobId, job) => {
    const group = groupOf(readText(job.job) || parentJobId(jobId), readText(job.name), job.submittedAtMs)
    group.fromDocument = true
    group.records.set(jobId, summarizeRecord(document, jobId, job))
  })
  const jobs = [...groups].map(([id, group]) => groupSummary(id, group.name, group.submittedAtMs, !group.fromDocument, [...group.records.values()]))
  jobs.sort((a, b) => b.submittedAtMs - a.submittedAtMs || (a.id < b.id ? -1 : 1))
  return { jobs: jobs.slice(0, limit), truncated: jobs.length > limit }
}

/** The replica records of `jobId` in the document: every replica of a job, or the one record a replica id names. */
export function recordsOf(document: Document, jobId: JobId): { id: JobId; job: JobRecord }[] {
  const records = replicaRecords(document, jobId)
  if (records.length > 0) return records
  const single = jobRecord(document, jobId)
  return single === undefined ? [] : [{ id: jobId, job: single }]
}

/**
 * One job in detail: every replica record in the document (a job of n replicas lists n histories,
 * each entry naming its replica), else what the archive holds of it.
 */
export function jobDetail(document: Document, jobId: JobId, archived: readonly ArchivedJob[], local: { node: NodeId; replica: JobId; state: LocalJobState } | undefined): JobDetail | undefined {
  const records = recordsOf(document, jobId)
  const localView = local === undefined ? null : { node: local.node, replica: local.replica, state: local.state.state, pid: local.state.pid, exitCode: local.state.exitCode, reason: local.state.reason, ...(local.state.gpus === undefined ? {} : { gpus: [...local.state.gpus] }) }
  if (records.length === 0) {
    const first = archived[0]
    if (first === undefined) return undefined
    const summary = groupSummary(jobId, first.name, first.submittedAtMs, true, archived.map(summarizeArchivedRecord))
    const attempts = archived.flatMap((job) => (job.attempts === undefined ? [] : [{ replica: job.id, attempt: job.attempts, of: job.maxAttempts ?? null, failed: [] }]))
    const runs = archived.map((job) => ({ replica: job.id, node: job.node, state: job.state, term: 0, seq: 0, exitCode: job.exitCode, atMs: job.finishedAtMs, usage: readUsage(job.usage) }))
    return { ...summary, command: describeCommand(first.command ?? [], first.image), demand: null, origin: null, assignments: [], runs, unplaceable: [], attempts, local: localView }
  }
  const first = records[0]!.job
  const replicaIds = new Set<string>(records.map(({ id }) => id))
  const summaries = [...records.map(({ id, job }) => summarizeRecord(document, id, job)), ...archived.filter((job) => !replicaIds.has(job.id)).map(summarizeArchivedRecord)]
  const assignments = records
    .flatMap(({ id, job }) =>
      assignmentsOf(job).map((assignment) => ({ replica: id as string, term: assignment.term as number, seq: assignment.seq, node: assignment.node as string, committed: isCommitted(document, assignment) })),
    )
    .sort((a, b) => a.term - b.term || a.seq - b.seq || (a.replica < b.replica ? -1 : 1))
  const runs = records
    .flatMap(({ id, job }) =>
      Object.keys(job.runs).map((node) => {
        const run = job.runs[node]!
        return { replica: id as string, node, state: runStateOf(run), term: run.term, seq: run.seq, exitCode: run.exitCode, atMs: run.atMs, usage: readUsage(run.usage) }
      }),
    )
    .sort((a, b) => a.atMs - b.atMs)
  const attempts = records.map(({ id, job }) => {
    const progress = attemptProgress(job)
    return { replica: id as string, attempt: progress.attempt, of: progress.of, failed: progress.failed.map((attempt, index) => ({ attempt: index + 1, ...attempt, node: attempt.node as string })) }
  })
  const unplaceable = records.flatMap(({ id, job }) => Object.keys(job.unplaceable).map((term) => ({ replica: id as string, term: Number(term), reason: readText(job.unplaceable[term]) })))
  return {
    ...groupSummary(jobId, readText(first.name), first.submittedAtMs, false, summaries),
    command: commandOf(first),
    demand: { cpuMillis: first.cpuMillis, memoryMiB: first.memoryMiB, ...((first.gpuCount ?? 0) > 0 ? { gpuCount: first.gpuCount } : {}) },
    origin: readText(first.origin),
    assignments,
    runs,
    unplaceable,
    attempts,
    local: localView,
  }
}

/** The node that holds the job's output: the one whose run ended it, else the one it is assigned to. */
export function outputNode(document: Document, jobId: JobId, archived: ArchivedJob | undefined): { node: NodeId | null; active: boolean } | undefined {
  const job = jobRecord(document, jobId)
  if (job === undefined) return archived === undefined ? undefined : { node: archived.node, active: false }
  const final = finalRun(job)
  if (final !== null) return { node: final.node as NodeId, active: false }
  return { node: effectiveAssignment(job)?.node ?? null, active: true }
}

export function jobExists(document: Document, jobId: JobId): boolean {
  return jobRecord(document, jobId) !== undefined
}

export interface NodeListContext {
  self: NodeId
  leaderId: NodeId | null
  nowMs: number
  liveness: NodeLiveness
  metricsHeard: NodeMetricsBook
  /** This node's own free resources, running count and metrics (it does not hear its own gossip). */
  own: { free: { cpuMillis: number; memoryMiB: number }; running: number; metrics: NodeMetrics }
}

export function listNodes(document: Document, context: NodeListContext): NodeView[] {
  const voters = new Set<string>(committeeVoters(document))
  const nodes: NodeView[] = []
  forEachNode(document, (nodeId, node) => {
    const self = nodeId === context.self
    const heard = context.liveness.heard(nodeId)
    const metrics = self ? { metrics: context.own.metrics, heardAtMs: context.nowMs } : context.metricsHeard.latest(nodeId)
    nodes.push({
      id: nodeId,
      self,
      voter: voters.has(nodeId),
      leader: nodeId === context.leaderId,
      ...(isDraining(document, nodeId) ? { draining: true } : {}),
      alive: self || context.liveness.isAlive(nodeId, context.nowMs),
      lastHeardAgoMs: self ? 0 : heard === undefined ? null : Math.max(0, context.nowMs - heard.lastHeardMs),
      capacity: { cpuMillis: node.cpuMillis, memoryMiB: node.memoryMiB, ...((node.gpuCount ?? 0) > 0 ? { gpuCount: node.gpuCount } : {}) },
      free: self ? context.own.free : (heard?.free ?? null),
      running: self ? context.own.running : (heard?.running ?? null),
      ...offerOf(readText(node.offer)),
      ...(metrics === undefined ? {} : { metrics: { ...metrics.metrics, ageMs: Math.max(0, context.nowMs - metrics.heardAtMs) } }),
    })
  })
  return nodes.sort((a, b) => (a.id < b.id ? -1 : 1))
}
