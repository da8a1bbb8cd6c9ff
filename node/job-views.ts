// Reads the cluster document (and a node's archive) into the views clients see: job summaries and
// details, and the node registry. The one place node/ interprets job and node records; the state
// names are the client's (pending, placed, assigned, unplaceable, finished, failed).
import {
  committeeVoters,
  effectiveAssignment,
  finalRun as endingRun,
  forEachJob,
  forEachNode,
  isCommitted,
  jobRecord,
  readText,
  runStateOf,
  type ArchivedJob,
  type Document,
  type JobId,
  type JobRecord,
  type NodeId,
} from '../consensus/index.ts'
import { nodePricePerHour, type NodeOffer } from '../placement/index.ts'
import type { JobDetail, JobSummary, NodeView } from './client-wire.ts'
import type { LocalJobState } from './job-runner.ts'
import type { NodeLiveness } from './node-liveness.ts'

/** How the job ended, if it did: cancelled, or the run that finished (or failed). */
function finalRun(job: JobRecord): { node: string; state: 'finished' | 'failed' | 'cancelled'; exitCode: number; atMs: number } | null {
  const ended = endingRun(job)
  return ended === null ? null : { node: ended.node, state: ended.state, exitCode: ended.run.exitCode, atMs: ended.run.atMs }
}

/** The command line a record's spec runs, for display. */
function commandOf(job: JobRecord): string {
  try {
    const spec = JSON.parse(readText(job.spec)) as { command?: string[]; args?: string[]; image?: string }
    const words = [...(spec.command ?? []), ...(spec.args ?? [])]
    return words.length > 0 ? words.join(' ') : `image ${spec.image ?? '?'}`
  } catch {
    return ''
  }
}

/** A node's registered offer (provider, region, AZ-ID, price), read from its record. */
function offerOf(text: string): { provider: string; region: string; azId: string; pricePerHour: number } {
  try {
    const offer = JSON.parse(text) as NodeOffer
    return { provider: offer.provider, region: offer.region, azId: offer.azId, pricePerHour: nodePricePerHour(offer) }
  } catch {
    return { provider: '', region: '', azId: '', pricePerHour: 0 }
  }
}

export function summarizeJob(document: Document, jobId: JobId, job: JobRecord): JobSummary {
  const base = { id: jobId, name: readText(job.name), submittedAtMs: job.submittedAtMs, archived: false }
  const final = finalRun(job)
  if (final !== null) return { ...base, state: final.state, node: final.node, finishedAtMs: final.atMs, exitCode: final.exitCode }
  const assignment = effectiveAssignment(job)
  if (assignment !== null) {
    return { ...base, state: isCommitted(document, assignment) ? 'assigned' : 'placed', node: assignment.node, finishedAtMs: null, exitCode: null }
  }
  const state = Object.keys(job.unplaceable).length > 0 ? 'unplaceable' : 'pending'
  return { ...base, state, node: null, finishedAtMs: null, exitCode: null }
}

export function summarizeArchived(job: ArchivedJob): JobSummary {
  return { id: job.id, name: job.name, state: job.state, node: job.node, submittedAtMs: job.submittedAtMs, finishedAtMs: job.finishedAtMs, exitCode: job.exitCode, archived: true }
}

/** Active jobs from the document and finished ones from the archive, newest first, at most `limit`. */
export function listJobs(document: Document, archived: readonly ArchivedJob[], limit: number): { jobs: JobSummary[]; truncated: boolean } {
  const byId = new Map<string, JobSummary>()
  for (const job of archived) byId.set(job.id, summarizeArchived(job))
  // The document's view wins: it is newer than the archive for a job still in it.
  forEachJob(document, (jobId, job) => byId.set(jobId, summarizeJob(document, jobId, job)))
  const jobs = [...byId.values()].sort((a, b) => b.submittedAtMs - a.submittedAtMs || (a.id < b.id ? -1 : 1))
  return { jobs: jobs.slice(0, limit), truncated: jobs.length > limit }
}

export function jobDetail(document: Document, jobId: JobId, archived: ArchivedJob | undefined, local: { node: NodeId; state: LocalJobState } | undefined): JobDetail | undefined {
  const job = jobRecord(document, jobId)
  const localView = local === undefined ? null : { node: local.node, state: local.state.state, pid: local.state.pid, exitCode: local.state.exitCode, reason: local.state.reason }
  if (job === undefined) {
    if (archived === undefined) return undefined
    return { ...summarizeArchived(archived), command: '', demand: null, origin: null, assignments: [], runs: [], unplaceable: [], local: localView }
  }
  const assignments = Object.keys(job.assignments)
    .map((term) => {
      const record = job.assignments[term]!
      return { term: Number(term), seq: record.seq, node: readText(record.node), committed: isCommitted(document, { term: Number(term), seq: record.seq }) }
    })
    .sort((a, b) => a.term - b.term)
  const runs = Object.keys(job.runs)
    .map((node) => {
      const run = job.runs[node]!
      return { node, state: runStateOf(run), term: run.term, seq: run.seq, exitCode: run.exitCode, atMs: run.atMs }
    })
    .sort((a, b) => a.atMs - b.atMs)
  const unplaceable = Object.keys(job.unplaceable).map((term) => ({ term: Number(term), reason: readText(job.unplaceable[term]) }))
  return {
    ...summarizeJob(document, jobId, job),
    command: commandOf(job),
    demand: { cpuMillis: job.cpuMillis, memoryMiB: job.memoryMiB },
    origin: readText(job.origin),
    assignments,
    runs,
    unplaceable,
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
  /** This node's own free resources and running count (it does not hear its own gossip). */
  own: { free: { cpuMillis: number; memoryMiB: number }; running: number }
}

export function listNodes(document: Document, context: NodeListContext): NodeView[] {
  const voters = new Set<string>(committeeVoters(document))
  const nodes: NodeView[] = []
  forEachNode(document, (nodeId, node) => {
    const self = nodeId === context.self
    const heard = context.liveness.heard(nodeId)
    nodes.push({
      id: nodeId,
      self,
      voter: voters.has(nodeId),
      leader: nodeId === context.leaderId,
      alive: self || context.liveness.isAlive(nodeId, context.nowMs),
      lastHeardAgoMs: self ? 0 : heard === undefined ? null : Math.max(0, context.nowMs - heard.lastHeardMs),
      capacity: { cpuMillis: node.cpuMillis, memoryMiB: node.memoryMiB },
      free: self ? context.own.free : (heard?.free ?? null),
      running: self ? context.own.running : (heard?.running ?? null),
      ...offerOf(readText(node.offer)),
    })
  })
  return nodes.sort((a, b) => (a.id < b.id ? -1 : 1))
}
