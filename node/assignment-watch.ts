// Which assignments of the cluster document are committed, reported once each: what the client
// protocol's `assignments` stream sends (the mesh benchmark times submit -> committed with it).
// A leader knows its own term's commits at once (the core's committedSeq); other nodes learn them
// from the commit markers in the document, which trail by up to the core's commitMarkerIntervalMs.
import { effectiveAssignment, forEachJob, isCommitted, type Document, type JobId, type NodeId } from '../consensus/index.ts'

export interface CommittedAssignment {
  jobId: JobId
  node: NodeId
  term: number
  seq: number
}

/** Replica records whose last reported assignment is remembered (oldest forgotten first). */
export const maxAssignmentsRemembered = 100_000

export class CommittedAssignmentWatch {
  /** Replica record -> the stamp (term.seq) last reported for it. */
  readonly #reported = new Map<string, string>()

  /**
   * The committed assignments not reported yet: every one on the first call, then only new ones
   * (a record re-placed in a later term is reported again). `leader`: the term a leader decides in
   * and the highest of its decisions a majority acknowledged, or null on a non-leader.
   */
  scan(document: Document, leader: { term: number; committedSeq: number } | null): CommittedAssignment[] {
    const found: CommittedAssignment[] = []
    forEachJob(document, (jobId, job) => {
      const assignment = effectiveAssignment(job)
      if (assignment === null) return
      const committed = isCommitted(document, assignment) || (leader !== null && assignment.term === leader.term && assignment.seq <= leader.committedSeq)
      if (!committed) return
      const stamp = `${assignment.term}.${assignment.seq}`
      if (this.#reported.get(jobId) === stamp) return
      this.#reported.delete(jobId) // re-inserted last: the map's order is oldest report first
      this.#reported.set(jobId, stamp)
      if (this.#reported.size > maxAssignmentsRemembered) this.#reported.delete(this.#reported.keys().next().value!)
      found.push({ jobId, node: assignment.node, term: assignment.term, seq: assignment.seq })
    })
    return found
  }
}
