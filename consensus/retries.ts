// Retries: a replica whose run exits non-zero (or times out) while attempts are left goes back to
// waiting, and the leader auctions it again, away from the node where it failed when another node
// can take it. The failed run stays in the record as an attempt (cluster-document.ts keeps them and
// says when a failure is final); this file holds the decisions built on them. Pure, like the core.
import {
  failedAttempts,
  finalRun,
  latestSnapshot,
  runStateOf,
  stampAfter,
  type EffectiveAssignment,
  type JobRecord,
} from './cluster-document.ts'
import type { PendingReplica } from './leader-round.ts'
import type { NodeOffer } from '../placement/index.ts'
import type { JobId, NodeId } from './types.ts'

/** The copy the assignment `stamp` names failed: its runner reported a non-zero exit for that very assignment. */
export function copyFailed(job: JobRecord, stamp: EffectiveAssignment): boolean {
  const run = job.runs[stamp.node]
  return run !== undefined && runStateOf(run) === 'failed' && run.term === stamp.term && run.seq === stamp.seq
}

/**
 * The copy the assignment `stamp` names was stopped on its own node (its lease lapsed while it ran):
 * not a failure of the job, so no attempt is spent, but the leader places it again (a new
 * assignment, on any node) rather than the runner starting the old one a second time.
 */
export function copyStopped(job: JobRecord, stamp: EffectiveAssignment): boolean {
  const run = job.runs[stamp.node]
  return run !== undefined && runStateOf(run) === 'stopped' && run.term === stamp.term && run.seq === stamp.seq
}

/**
 * The copy of `node` for the assignment `stamp` already ended there (failed, stopped when its lease
 * lapsed, checkpointed to move, or evicted by a drain): the runner never starts that assignment
 * again; only a new one (a retry, a placement again, a move back) does.
 */
export function copyEnded(job: JobRecord, node: NodeId, stamp: { term: number; seq: number }): boolean {
  const run = job.runs[node]
  if (run === undefined || run.term !== stamp.term || run.seq !== stamp.seq) return false
  const state = runStateOf(run)
  return state === 'checkpointed' || state === 'evicted' || state === 'failed' || state === 'stopped'
}

/**
 * The snapshot a new copy restores from: the latest, unless a run failed at or after the copy it
 * was taken of (a retry starts afresh rather than from the state that led to the failure).
 */
export function restorePoint(job: JobRecord): { cid: string; node: NodeId; holders: NodeId[] } | null {
  const snapshot = latestSnapshot(job)
  if (snapshot === null) return null
  const taken = job.snapshots?.[snapshot.node]
  if (taken === undefined) return null
  if (failedAttempts(job).some((attempt) => !stampAfter(taken, attempt))) return null
  return { cid: snapshot.cid, node: snapshot.node, holders: snapshot.holders }
}

/**
 * Which waiting replicas the next auction round takes, and on which offers. A migration goes in a
 * round of its own (away from its node, or to the node asked for); so does a retry, away from the
 * node it failed on, unless no other node is offered or an earlier round could not place it
 * (`relaxed`): the preference is never a reason to leave a replica unplaced.
 */
export function scopeRound(
  pending: readonly PendingReplica[],
  relaxed: (jobId: JobId) => boolean,
  offersWhere: (allows: (nodeId: NodeId) => boolean) => NodeOffer[],
): { pending: PendingReplica[]; offers: NodeOffer[] } {
  const move = pending.find((replica) => replica.moveFrom !== null)
  if (move !== undefined) {
    return {
      pending: pending.filter((replica) => replica.moveFrom === move.moveFrom && replica.moveTo === move.moveTo),
      offers: offersWhere((nodeId) => (move.moveTo !== null ? nodeId === move.moveTo : nodeId !== move.moveFrom)),
    }
  }
  const retry = pending.find((replica) => replica.avoid !== null && !relaxed(replica.jobId))
  if (retry !== undefined) {
    const elsewhere = offersWhere((nodeId) => nodeId !== retry.avoid)
    const retries = pending.filter((replica) => replica.avoid === retry.avoid && !relaxed(replica.jobId))
    if (elsewhere.length > 0) return { pending: retries, offers: elsewhere }
  }
  return { pending: [...pending], offers: offersWhere(() => true) }
}

/** Where a replica is in its attempts, for `fabric job`: "attempt 2 of 3" and the failures so far. */
export interface AttemptProgress {
  attempt: number
  of: number
  failed: ReturnType<typeof failedAttempts>
}

export function attemptProgress(job: JobRecord): AttemptProgress {
  const failed = failedAttempts(job)
  const of = job.maxAttempts ?? 1
  const ended = finalRun(job)
  // A final failure was the last attempt; otherwise the one running (or waiting) comes after the failures.
  const attempt = ended?.state === 'failed' ? Math.max(failed.length, 1) : Math.min(failed.length + 1, of)
  return { attempt, of, failed }
}
