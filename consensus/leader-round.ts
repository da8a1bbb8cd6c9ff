// One placement round of the ready leader, planned from the document, the leader's state and the
// time: which pending jobs to assign or mark unplaceable, whether to record commit markers or ratify
// earlier terms, and which finished jobs have expired from the document. Peer applies the plan.
import {
  committedSeqOf,
  demandOf,
  effectiveAssignment,
  forEachJob,
  forEachNode,
  isJobDone,
  leaderSeqOf,
  writeAssignment,
  writeCommit,
  writeLeaderSeq,
  writeUnplaceable,
  deleteJob,
  type ClusterDocument,
  type Document,
} from './cluster-document.ts'
import { placeSpread, type PendingJob, type PlacementCandidate, type PlacementResult } from './interim-placement.ts'
import type { LeaderState } from './leader-state.ts'
import type { JobId, NodeId, PeerConfig, Resources, Term } from './types.ts'

export interface RoundPlan {
  assignments: PlacementResult['assignments']
  unplaceable: PlacementResult['unplaceable']
  /** Finished jobs past archiveAfterMs: dropped from the document in this round. */
  expired: JobId[]
  /** Finished jobs this leader sees for the first time (their archive clock starts now). */
  doneSeen: JobId[]
  /** The round writes a new decision (numbered `seq`). */
  decide: boolean
  seq: number
  /** For a leader's first decision: the earlier terms' decisions it ratifies, else null. */
  ratify: Map<string, number> | null
  /** The round commits the earlier terms' decisions recorded at the first decision. */
  ratifyNow: boolean
  /** The round records the leader's commit watermark in the document. */
  markCommit: boolean
}

export type RoundLimits = Pick<PeerConfig, 'archiveAfterMs' | 'maxJobsPerRound'>

/** True when the plan changes nothing (the round is skipped). */
export function isIdle(plan: RoundPlan): boolean {
  return !plan.decide && !plan.markCommit && !plan.ratifyNow && plan.expired.length === 0
}

export function planRound(document: Document, leader: Readonly<LeaderState>, term: Term, nowMs: number, limits: RoundLimits, isAlive: (nodeId: NodeId) => boolean): RoundPlan {
  const used = new Map<NodeId, Resources>()
  const pending: (PendingJob & { submittedAtMs: number })[] = []
  const expired: JobId[] = []
  const doneSeen: JobId[] = []
  forEachJob(document, (jobId, job) => {
    if (isJobDone(job)) {
      const seen = leader.doneSeenMs.get(jobId)
      if (seen === undefined) doneSeen.push(jobId)
      else if (nowMs - seen >= limits.archiveAfterMs && expired.length < limits.maxJobsPerRound) expired.push(jobId)
      return
    }
    let current = effectiveAssignment(job)
    // An earlier term's assignment that is neither committed nor ratified by this leader arrived
    // after its barrier: its leader never got a majority, so the job is placed again in this term.
    if (current !== null && current.term < term) {
      const covered = Math.max(committedSeqOf(document, current.term), leader.ratify?.get(String(current.term)) ?? 0)
      if (current.seq > covered) current = null
    }
    if (current !== null && isAlive(current.node)) {
      const total = used.get(current.node) ?? { cpuMillis: 0, memoryMiB: 0 }
      total.cpuMillis += job.cpuMillis
      total.memoryMiB += job.memoryMiB
      used.set(current.node, total)
      return
    }
    if (current === null && Object.keys(job.unplaceable).length > 0) return
    pending.push({ jobId, demand: demandOf(job), submittedAtMs: job.submittedAtMs })
  })
  pending.sort((a, b) => a.submittedAtMs - b.submittedAtMs || (a.jobId < b.jobId ? -1 : 1))
  const batch = pending.slice(0, limits.maxJobsPerRound)
  const candidates: PlacementCandidate[] = []
  forEachNode(document, (nodeId, node) => {
    candidates.push({ id: nodeId, capacity: { cpuMillis: node.cpuMillis, memoryMiB: node.memoryMiB }, used: used.get(nodeId) ?? { cpuMillis: 0, memoryMiB: 0 }, alive: isAlive(nodeId) })
  })
  const result = batch.length > 0 ? placeSpread(batch, candidates) : { assignments: [], unplaceable: [], waiting: 0 }
  const firstDecision = leader.seq === leaderSeqOf(document, term) && leader.ratify === null
  const decide = result.assignments.length > 0 || result.unplaceable.length > 0 || firstDecision
  const ratifyNow = leader.ratify !== null && !leader.ratified && leader.committedSeq >= 1
  const markCommit = leader.committedSeq > leader.markerSeq && (decide || nowMs >= leader.nextMarkerMs)
  let ratify: Map<string, number> | null = null
  if (firstDecision) {
    // Everything earlier leaders decided that this leader holds is committed with its first decision.
    ratify = new Map()
    for (const [earlierTerm, seq] of Object.entries(document.leaderLog)) if (Number(earlierTerm) < term) ratify.set(earlierTerm, seq)
  }
  return { assignments: result.assignments, unplaceable: result.unplaceable, expired, doneSeen, decide, seq: decide ? leader.seq + 1 : leader.seq, ratify, ratifyNow, markCommit }
}

/** The round's one document change. */
export function writeRound(draft: ClusterDocument, plan: RoundPlan, term: Term, leader: Readonly<LeaderState>): void {
  if (plan.decide) {
    writeLeaderSeq(draft, term, plan.seq)
    for (const { jobId, nodeId } of plan.assignments) writeAssignment(draft, jobId, term, nodeId, plan.seq)
    for (const { jobId, reason } of plan.unplaceable) writeUnplaceable(draft, jobId, term, reason)
  }
  if (plan.markCommit) writeCommit(draft, term, leader.committedSeq)
  if (plan.ratifyNow && leader.ratify !== null) for (const [earlierTerm, earlierSeq] of leader.ratify) writeCommit(draft, Number(earlierTerm), earlierSeq)
  for (const jobId of plan.expired) deleteJob(draft, jobId)
}
