// The requests a node takes from its clients and writes into the document as its origin's next
// change: submit, cancel, migrate, drain, undrain, admit. Each is planned here from the document (a refusal
// with its reason, or what to write, which jobs to look at again and which nodes to tell at once);
// Peer applies a plan the same way for all of them and acknowledges it once a majority holds it.
import {
  effectiveAssignment,
  forEachJob,
  isJobDone,
  nodeRecord,
  replicaRecords,
  roles,
  writeAdmission,
  writeCancel,
  writeDrain,
  writeJob,
  writeMigrate,
  writeUndrain,
  readText,
  isDraining,
  type ClusterDocument,
  type Document,
  type Role,
} from './cluster-document.ts'
import type { JobId, JobSubmission, MoveConstraints, NodeId } from './types.ts'
import { isUnconstrained, moveRefusal } from './move-constraints.ts'

export interface RequestWrite {
  /** The change's message (Automerge history). */
  message: string
  write: (draft: ClusterDocument, originSeq: number) => void
  /** Records the runner looks at again. */
  touch: JobId[]
  /** Nodes told at once (runners of the jobs concerned), not at their next refresh from a voter. */
  notify: NodeId[]
  /** What the acknowledgement names (a job, a node, a peer). */
  ackId: string
  /** A new job: the leader may start a round at once. */
  placeSoon: boolean
}

export type RequestPlan = { refused: string } | RequestWrite

const notifyRunners = (jobs: readonly { node: NodeId }[], self: NodeId): NodeId[] => [...new Set(jobs.map(({ node }) => node))].filter((node) => node !== self)

export function planSubmit(job: JobSubmission, refusal: string | null, self: NodeId, nowMs: number): RequestPlan {
  if (refusal !== null) return { refused: refusal }
  return { message: `submit ${job.id}`, write: (draft, originSeq) => writeJob(draft, job, self, originSeq, nowMs), touch: [job.id], notify: [], ackId: job.id, placeSoon: true }
}

export function planCancel(document: Document, jobId: JobId, self: NodeId, nowMs: number): RequestPlan {
  const active = replicaRecords(document, jobId).filter(({ job }) => !isJobDone(job))
  if (active.length === 0) return { refused: `job ${jobId} is not active (unknown, finished or cancelled already)` }
  const runners = active.flatMap(({ job }) => {
    const assignment = effectiveAssignment(job)
    return assignment === null ? [] : [{ node: assignment.node }]
  })
  return {
    message: `cancel ${jobId}`,
    write: (draft, originSeq) => writeCancel(draft, active.map(({ id }) => id), self, originSeq, nowMs),
    touch: active.map(({ id }) => id),
    notify: notifyRunners(runners, self),
    ackId: jobId,
    placeSoon: false,
  }
}

export function planMigrate(document: Document, jobId: JobId, to: NodeId | null, self: NodeId, nowMs: number, where: MoveConstraints = {}): RequestPlan {
  if (to !== null && !isUnconstrained(where)) return { refused: 'a migration names either the node to move to or a provider/region, not both' }
  const records = replicaRecords(document, jobId)
  const copies = records.flatMap(({ id, job }) => {
    const assignment = isJobDone(job) ? null : effectiveAssignment(job)
    return assignment === null || assignment.node === to ? [] : [{ jobId: id, term: assignment.term, seq: assignment.seq, node: assignment.node }]
  })
  if (copies.length === 0) return { refused: `job ${jobId} has no running replica to move${to === null ? '' : ` away from ${to}`}` }
  if (to !== null && nodeRecord(document, to) === undefined) return { refused: `node ${to} is not registered` }
  if (to !== null && isDraining(document, to)) return { refused: `node ${to} is being drained: it takes nothing new` }
  const refusal = moveRefusal(document, jobId, readText(records[0]!.job.spec), where, copies.map((copy) => copy.node))
  if (refusal !== null) return { refused: refusal }
  return {
    message: `migrate ${jobId}`,
    write: (draft, originSeq) => writeMigrate(draft, copies, self, to, originSeq, nowMs, where),
    touch: copies.map((copy) => copy.jobId),
    notify: notifyRunners(copies, self),
    ackId: jobId,
    placeSoon: false,
  }
}

export function planDrain(document: Document, nodeId: NodeId, self: NodeId, nowMs: number): RequestPlan {
  if (nodeRecord(document, nodeId) === undefined) return { refused: `node ${nodeId} is not registered` }
  if (document.draining === undefined) return { refused: 'this cluster document predates drains' }
  const copies: { jobId: JobId; term: number; seq: number }[] = []
  forEachJob(document, (jobId, job) => {
    const assignment = isJobDone(job) ? null : effectiveAssignment(job)
    if (assignment !== null && assignment.node === nodeId) copies.push({ jobId, term: assignment.term, seq: assignment.seq })
  })
  return {
    message: `drain ${nodeId}`,
    write: (draft, originSeq) => writeDrain(draft, nodeId, copies, self, originSeq, nowMs),
    touch: copies.map((copy) => copy.jobId),
    notify: notifyRunners([{ node: nodeId }], self),
    ackId: nodeId,
    placeSoon: false,
  }
}

export function planUndrain(document: Document, nodeId: NodeId, self: NodeId): RequestPlan {
  if (nodeRecord(document, nodeId) === undefined) return { refused: `node ${nodeId} is not registered` }
  if (!isDraining(document, nodeId)) return { refused: `node ${nodeId} is not being drained` }
  // The node hears at once: it bids again only once its own document says it is no longer drained.
  return { message: `undrain ${nodeId}`, write: (draft, originSeq) => writeUndrain(draft, nodeId, self, originSeq), touch: [], notify: notifyRunners([{ node: nodeId }], self), ackId: nodeId, placeSoon: true }
}

/** Peer ids are libp2p's (52 characters for Ed25519); this bounds what a request may write. */
export const maxPeerIdLength = 128

export function planAdmit(document: Document, peerId: string, role: Role, self: NodeId, nowMs: number): RequestPlan {
  if (document.admitted === undefined) return { refused: 'this cluster document predates admission records' }
  if (peerId.length === 0 || peerId.length > maxPeerIdLength) return { refused: `the peer id must have 1 to ${maxPeerIdLength} characters` }
  if (!roles.includes(role)) return { refused: `unknown role ${String(role)}` }
  return { message: `admit ${peerId} as ${role}`, write: (draft, originSeq) => writeAdmission(draft, peerId, role, self, originSeq, nowMs), touch: [], notify: [], ackId: peerId, placeSoon: false }
}
