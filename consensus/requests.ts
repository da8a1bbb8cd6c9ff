// The requests a node takes from its clients and writes into the document as its origin's next
// change: submit, cancel, migrate, drain, undrain, admit. Each is planned here from the document (a refusal
// with its reason, or what to write, which jobs to look at again and which nodes to tell at once);
// Peer applies a plan the same way for all of them and acknowledges it once a majority holds it.
// A client request the adapter took carries a replay key: the mesh remembers it (in the document) until
// it expires, so the same signed request is taken once, through whichever node it reaches.
import {
  effectiveAssignment,
  forEachJob,
  isJobDone,
  nodeRecord,
  replicaRecords,
  requestSeen,
  writeCancel,
  writeDrain,
  writeJob,
  writeMigrate,
  writeRequestSeen,
  writeUndrain,
  writeOrigin,
  readText,
  isDraining,
  type ClusterDocument,
  type Document,
  type OriginStamp,
} from './cluster-document.ts'
import { inviteUsed, writeGrant, type VerifyGrant } from './admission-grants.ts'
import type { JobId, JobSubmission, MoveConstraints, NodeId, ReplayKey } from './types.ts'
import { isUnconstrained, moveRefusal } from './move-constraints.ts'

/** The start of a refusal that names no fault of the request: this node is not a voter, and a voter must write it (node/ passes it on). */
export const notAVoterRefusal = 'not-a-voter'

export interface RequestWrite {
  /** The change's message (Automerge history). */
  message: string
  write: (draft: ClusterDocument, origin: OriginStamp) => void
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

/** Refuses a request the mesh took already (a replay), or one whose replay window has closed. */
export function replayRefusal(document: Document, replay: ReplayKey | undefined, nowMs: number): string | null {
  if (replay === undefined) return null
  if (!(replay.expiresAtMs >= nowMs)) return 'the request expired before this node took it (check the clocks)'
  return requestSeen(document, replay.key) ? 'this exact request was taken before, by this or another node (a replay)' : null
}

/** The plan, remembering the request's replay key in the same change. */
export function remembering(plan: RequestPlan, replay: ReplayKey | undefined): RequestPlan {
  if ('refused' in plan || replay === undefined) return plan
  return {
    ...plan,
    write: (draft, origin) => {
      plan.write(draft, origin)
      writeRequestSeen(draft, replay.key, replay.expiresAtMs)
    },
  }
}

export function planSubmit(job: JobSubmission, refusal: string | null, nowMs: number): RequestPlan {
  if (refusal !== null) return { refused: refusal }
  return { message: `submit ${job.id}`, write: (draft, origin) => writeJob(draft, job, origin, nowMs), touch: [job.id], notify: [], ackId: job.id, placeSoon: true }
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
    write: (draft, origin) => writeCancel(draft, active.map(({ id }) => id), origin, nowMs),
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
    write: (draft, origin) => writeMigrate(draft, copies, origin, to, nowMs, where),
    touch: copies.map((copy) => copy.jobId),
    notify: notifyRunners(copies, self),
    ackId: jobId,
    placeSoon: false,
  }
}

export function planDrain(document: Document, nodeId: NodeId, self: NodeId, nowMs: number): RequestPlan {
  if (nodeRecord(document, nodeId) === undefined) return { refused: `node ${nodeId} is not registered` }
  const copies: { jobId: JobId; term: number; seq: number }[] = []
  forEachJob(document, (jobId, job) => {
    const assignment = isJobDone(job) ? null : effectiveAssignment(job)
    if (assignment !== null && assignment.node === nodeId) copies.push({ jobId, term: assignment.term, seq: assignment.seq })
  })
  return {
    message: `drain ${nodeId}`,
    write: (draft, origin) => writeDrain(draft, nodeId, copies, origin, nowMs),
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
  return { message: `undrain ${nodeId}`, write: (draft, origin) => writeUndrain(draft, nodeId, origin), touch: [], notify: notifyRunners([{ node: nodeId }], self), ackId: nodeId, placeSoon: true }
}

/** Peer ids are libp2p's (52 characters for Ed25519); this bounds what a request may write. */
export const maxPeerIdLength = 128

/**
 * Records a grant of a role to `peerId`: the grant (an invite token, or an admit/revoke request the
 * admin key signed) is checked here as every peer will check it before the record enters.
 */
export function planAdmit(document: Document, peerId: string, grant: string, verifyGrant: VerifyGrant | undefined): RequestPlan {
  const admin = readText(document.admin)
  if (admin === '') return { refused: 'this mesh has no admin key, so it admits no one (everyone may act in an open mesh)' }
  if (peerId.length === 0 || peerId.length > maxPeerIdLength || peerId.includes('/')) return { refused: `the peer id must have 1 to ${maxPeerIdLength} characters and no /` }
  const facts = verifyGrant?.(grant, admin) ?? null
  if (facts === null) return { refused: 'the grant does not carry the admin key\'s signature' }
  if (facts.peer !== null && facts.peer !== peerId) return { refused: `the grant is for ${facts.peer}, not ${peerId}` }
  if (facts.nonce !== null && inviteUsed(document, facts.nonce)) return { refused: 'this invite was used already (an invite admits one peer)' }
  return {
    message: `admit ${peerId} as ${facts.role}`,
    write: (draft, origin) => {
      writeGrant(draft, peerId, facts, grant, origin.node)
      writeOrigin(draft, origin)
    },
    touch: [],
    notify: [],
    ackId: peerId,
    placeSoon: false,
  }
}
