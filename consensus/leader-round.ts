// One placement round of the ready leader. `surveyJobs` reads the document: which replicas are
// placed (and the resources they hold per node), which wait for a placement, which finished jobs
// expired. The auction (leader-auction.ts) decides the waiting ones; `planRound` then says what the
// round writes: the auction's assignments and reasons, commit markers, ratification of earlier
// terms, expired jobs. Peer applies the plan as one document change.
import {
  committedSeqOf,
  demandOf,
  effectiveAssignment,
  forEachJob,
  isJobDone,
  leaderSeqOf,
  migrateOf,
  readText,
  runStateOf,
  writeAssignment,
  writeCommit,
  writeLeaderSeq,
  writeRatified,
  writeUnplaceable,
  deleteJob,
  deleteRequestSeen,
  type ClusterDocument,
  type Document,
  type JobRecord,
} from './cluster-document.ts'
import { writeCommitteeProposal } from './committee.ts'
import type { LeaderState } from './leader-state.ts'
import { constrainSpecText } from './move-constraints.ts'
import { copyFailed, copyStopped } from './retries.ts'
import type { JobId, MoveConstraints, NodeId, PeerConfig, Resources, Term } from './types.ts'

/** A replica waiting for a placement, as the auction needs it. */
export interface PendingReplica {
  jobId: JobId
  /** The submitted job and this replica's index in it. */
  parent: string
  replica: number
  replicas: number
  spec: string
  submittedAtMs: number
  /** The reason recorded for this replica in the current term, if any (rewritten only when it changes). */
  reason: string | null
  /**
   * A migration: the node its copy was checkpointed and stopped on, and the node asked for (null: any
   * other). A move limited to a provider or region carries them in `spec`.
   */
  moveFrom: NodeId | null
  moveTo: NodeId | null
  /** A retry: the node its last attempt failed on (placed elsewhere if another node can take it). */
  avoid: NodeId | null
}

export interface JobSurvey {
  pending: PendingReplica[]
  /** Resources held on each node by the replicas placed there (committed or not). */
  used: Map<NodeId, Resources>
  /** Finished jobs past archiveAfterMs: dropped from the document in this round. */
  expired: JobId[]
  /** Finished jobs this leader sees for the first time (their archive clock starts now). */
  doneSeen: JobId[]
}

export interface Placement {
  assignments: { jobId: JobId; nodeId: NodeId }[]
  unplaceable: { jobId: JobId; reason: string }[]
}

export const noPlacement: Placement = { assignments: [], unplaceable: [] }

export interface RoundPlan extends Placement {
  expired: JobId[]
  /** Client request keys whose replay window closed: the mesh forgets them in this round. */
  forget: string[]
  /** The round writes a new decision (numbered `seq`). */
  decide: boolean
  seq: number
  /** For a leader's first decision: the earlier terms' decisions it ratifies, else null. */
  ratify: Map<string, number> | null
  /**
   * For a leader's first decision: the committee it affirms (committee.ts), the pending proposal's if
   * there is one (finishing an earlier leader's change), else the one in force. Its stamp supersedes
   * every earlier proposal, so one that arrives late never becomes a committee.
   */
  affirm: readonly NodeId[] | null
  /** The round commits the earlier terms' decisions recorded at the first decision. */
  ratifyNow: boolean
  /** The round records the leader's commit watermark in the document. */
  markCommit: boolean
}

export type RoundLimits = Pick<PeerConfig, 'archiveAfterMs' | 'maxJobsPerRound'>

/** True when the plan changes nothing (the round is skipped). */
export function isIdle(plan: RoundPlan): boolean {
  return !plan.decide && !plan.markCommit && !plan.ratifyNow && plan.expired.length === 0 && plan.forget.length === 0
}

const addTo = (total: Resources, demand: Resources): void => {
  total.cpuMillis += demand.cpuMillis
  total.memoryMiB += demand.memoryMiB
  total.diskMiB += demand.diskMiB
  total.gpuCount += demand.gpuCount
}

/**
 * `ratify`: the earlier terms' decisions this leader ratifies. The round that makes its first decision
 * passes what that decision will ratify (`firstDecisionRatify`): their assignments are committed, not
 * placed again (a job running under one would otherwise be moved by every new leader).
 */
export function surveyJobs(document: Document, leader: Readonly<LeaderState>, term: Term, nowMs: number, limits: RoundLimits, isAlive: (nodeId: NodeId) => boolean, ratify: ReadonlyMap<string, number> | null = leader.ratify): JobSurvey {
  const survey: JobSurvey = { pending: [], used: new Map(), expired: [], doneSeen: [] }
  /** Gangs (tightly-coupled jobs) are placed whole: one lost replica sends every replica back. */
  const gangs = new Map<string, { placed: { jobId: JobId; job: JobRecord; node: NodeId }[]; pending: boolean }>()
  const wait = (jobId: JobId, job: JobRecord, move: { from: NodeId; to: NodeId | null; where: MoveConstraints } | null = null, avoid: NodeId | null = null): void => {
    const reason = job.unplaceable[String(term)]
    survey.pending.push({
      jobId,
      parent: readText(job.job) || jobId,
      replica: job.replica ?? 0,
      replicas: job.replicas ?? 1,
      spec: move === null ? readText(job.spec) : constrainSpecText(readText(job.spec), move.where),
      submittedAtMs: job.submittedAtMs,
      reason: reason === undefined ? null : readText(reason),
      moveFrom: move?.from ?? null,
      moveTo: move?.to ?? null,
      avoid,
    })
  }
  const hold = (node: NodeId, job: JobRecord): void => {
    let total = survey.used.get(node)
    if (total === undefined) survey.used.set(node, (total = { cpuMillis: 0, memoryMiB: 0, diskMiB: 0, gpuCount: 0 }))
    addTo(total, demandOf(job))
  }
  forEachJob(document, (jobId, job) => {
    if (isJobDone(job)) {
      const seen = leader.doneSeenMs.get(jobId)
      if (seen === undefined) survey.doneSeen.push(jobId)
      else if (nowMs - seen >= limits.archiveAfterMs && survey.expired.length < limits.maxJobsPerRound) survey.expired.push(jobId)
      return
    }
    let current = effectiveAssignment(job)
    // An earlier term's assignment that is neither committed nor ratified by this leader arrived
    // after its barrier: its leader never got a majority, so the job is placed again in this term.
    if (current !== null && current.term < term) {
      const covered = Math.max(committedSeqOf(document, current.term), ratify?.get(String(current.term)) ?? 0)
      if (current.seq > covered) current = null
    }
    // A copy checkpointed (or evicted) and stopped for a migration: placed again away from its node, and restored.
    if (current !== null) {
      const run = job.runs[current.node]
      const state = run === undefined ? null : runStateOf(run)
      if ((state === 'checkpointed' || state === 'evicted') && run!.term === current.term && run!.seq === current.seq) {
        const request = migrateOf(job, current)
        if ((leader.retryAtMs.get(jobId) ?? -Infinity) <= nowMs) wait(jobId, job, { from: current.node, to: request?.to ?? null, where: request?.where ?? {} })
        return
      }
    }
    // Its copy failed with attempts left (a final failure made the job done above): placed again.
    const failedOn = current !== null && copyFailed(job, current) ? current.node : null
    if (failedOn !== null) current = null
    // Its copy was stopped when its node's lease lapsed: placed again, on any node (no attempt spent).
    if (current !== null && copyStopped(job, current)) current = null
    const placed = current !== null && isAlive(current.node)
    if (placed) hold(current!.node, job)
    if (job.gang === true) {
      const parent = readText(job.job)
      let gang = gangs.get(parent)
      if (gang === undefined) gangs.set(parent, (gang = { placed: [], pending: false }))
      if (placed) gang.placed.push({ jobId, job, node: current!.node })
      else gang.pending = true
      if (placed) return
    } else if (placed) return
    if ((leader.retryAtMs.get(jobId) ?? -Infinity) > nowMs) return
    wait(jobId, job, null, job.gang === true ? null : failedOn)
  })
  for (const gang of gangs.values()) {
    if (!gang.pending) continue
    // The survivors are placed again with the rest, and their room counts as free: a survivor
    // awarded its own node keeps running, one moved elsewhere is stopped by the fencing, and a
    // runner starts a replica only once its node really has the room.
    for (const { jobId, job, node } of gang.placed) {
      wait(jobId, job)
      const total = survey.used.get(node)!
      const demand = demandOf(job)
      total.cpuMillis -= demand.cpuMillis
      total.memoryMiB -= demand.memoryMiB
      total.diskMiB -= demand.diskMiB
      total.gpuCount -= demand.gpuCount
    }
  }
  survey.pending.sort((a, b) => a.submittedAtMs - b.submittedAtMs || (a.jobId < b.jobId ? -1 : 1))
  return survey
}

/**
 * Before a leader's first decision: the earlier terms' decisions that decision ratifies (everything
 * earlier leaders decided that this leader holds is committed with it). Null once it is made.
 */
export function firstDecisionRatify(document: Document, leader: Readonly<LeaderState>, term: Term): Map<string, number> | null {
  if (leader.ratify !== null || leader.seq !== leaderSeqOf(document, term)) return null
  const ratify = new Map<string, number>()
  // Terms whose decisions are all known committed need nothing more.
  for (const [earlierTerm, seq] of Object.entries(document.leaderLog)) if (Number(earlierTerm) < term && seq > committedSeqOf(document, Number(earlierTerm))) ratify.set(earlierTerm, seq)
  return ratify
}

/**
 * The running assignments of earlier terms that a first decision's ratification commits, by node and
 * term: their runners are told at once (an award), as they would be of this leader's own decisions.
 */
export function ratifiedAssignments(document: Document, ratify: ReadonlyMap<string, number>): Map<NodeId, Map<number, { jobId: JobId; seq: number }[]>> {
  const byNode = new Map<NodeId, Map<number, { jobId: JobId; seq: number }[]>>()
  forEachJob(document, (jobId, job) => {
    if (isJobDone(job)) return
    const current = effectiveAssignment(job)
    if (current === null || current.seq > (ratify.get(String(current.term)) ?? 0) || current.seq <= committedSeqOf(document, current.term)) return
    let byTerm = byNode.get(current.node)
    if (byTerm === undefined) byNode.set(current.node, (byTerm = new Map()))
    let jobs = byTerm.get(current.term)
    if (jobs === undefined) byTerm.set(current.term, (jobs = []))
    jobs.push({ jobId, seq: current.seq })
  })
  return byNode
}

/**
 * What the round writes, given what the auction placed (nothing when no round closed). `ratify`: the
 * round's `firstDecisionRatify` (non-null makes it the leader's first decision).
 */
export function planRound(leader: Readonly<LeaderState>, nowMs: number, placement: Placement, expired: JobId[], ratify: Map<string, number> | null, affirm: readonly NodeId[], forget: string[] = []): RoundPlan {
  const decide = placement.assignments.length > 0 || placement.unplaceable.length > 0 || ratify !== null
  const ratifyNow = leader.ratify !== null && !leader.ratified && leader.committedSeq >= 1
  const markCommit = leader.committedSeq > leader.markerSeq && (decide || nowMs >= leader.nextMarkerMs)
  return { assignments: placement.assignments, unplaceable: placement.unplaceable, expired, forget, decide, seq: decide ? leader.seq + 1 : leader.seq, ratify, affirm: ratify === null ? null : affirm, ratifyNow, markCommit }
}

/** The round's one document change. */
export function writeRound(draft: ClusterDocument, plan: RoundPlan, term: Term, leader: Readonly<LeaderState>): void {
  if (plan.decide) {
    writeLeaderSeq(draft, term, plan.seq)
    if (plan.affirm !== null) writeCommitteeProposal(draft, plan.affirm, term, plan.seq)
    for (const { jobId, nodeId } of plan.assignments) writeAssignment(draft, jobId, term, nodeId, plan.seq)
    for (const { jobId, reason } of plan.unplaceable) writeUnplaceable(draft, jobId, term, reason)
  }
  if (plan.markCommit) writeCommit(draft, term, leader.committedSeq)
  if (plan.ratifyNow && leader.ratify !== null && leader.ratify.size > 0) writeRatified(draft, term, leader.ratify)
  for (const jobId of plan.expired) deleteJob(draft, jobId)
  for (const key of plan.forget) deleteRequestSeen(draft, key)
}
