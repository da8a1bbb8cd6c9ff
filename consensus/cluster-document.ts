// The cluster document: the durable, replicated state every peer holds as an Automerge document.
// Large maps are sharded and pre-created in the genesis change, so two peers never create the same
// map concurrently (Automerge would keep one and hide the other). Every key has a single writer
// (a job's origin, its runner, or the leader of a term), so concurrent changes never conflict; who
// may write which key is checked before a received change enters (write-rules.ts).
import * as A from '@automerge/automerge'
import type { JobId, JobSubmission, JobUsage, MoveConstraints, NodeAttributes, NodeId, Resources, Term } from './types.ts'
import { canonicalJson } from '../placement/index.ts'
import { asJobId, asNodeId, asTerm } from './types.ts'
import { genesisActor } from './actors.ts'

export const shardCount = 64
/** The document's layout; a peer refuses to load another (no mesh of an older layout is deployed). */
export const formatVersion = 2

type Text = A.ImmutableString

/** A leader's placement of a replica, keyed `term.seq` (its decision): every one is kept, so a run can be checked against the assignment it names. */
export interface AssignmentRecord { node: Text; term: number; seq: number }
/**
 * 'checkpointed': the copy was checkpointed and stopped so that it moves (a migration).
 * 'evicted': the copy was stopped to move without a checkpoint of its own (a drain whose checkpoint
 * failed, or a copy that had not started): it starts elsewhere from its latest snapshot, if any.
 */
export type RunState = 'running' | 'finished' | 'failed' | 'stopped' | 'checkpointed' | 'evicted'
export interface RunRecord { state: Text; term: number; seq: number; exitCode: number; atMs: number; usage?: UsageRecord }
/** What a run used, measured by its runtime at exit (null where the machine cannot measure it). */
export interface UsageRecord { cpuSeconds: number | null; peakMemoryBytes: number | null; wallMs: number | null }
/** A failed run, keyed by its assignment stamp (`term.seq`): only the runner of that stamp writes it. */
export interface AttemptRecord { node: Text; term: number; seq: number; exitCode: number; atMs: number; usage?: UsageRecord }
/** One replica of a submitted job (a job of n replicas has n records, written in one change). */
export interface JobRecord {
  id: Text
  /** The submitted job this replica belongs to. */
  job: Text
  replica: number
  replicas: number
  /** A tightly-coupled job of several replicas: placed all-or-nothing, and re-placed whole. */
  gang: boolean
  name: Text
  /** The normalized job spec as JSON (placement's JobSpec), the same in every replica's record. */
  spec: Text
  cpuMillis: number
  memoryMiB: number
  diskMiB: number
  gpuCount: number
  durationMs: number
  origin: Text
  originSeq: number
  submittedAtMs: number
  /** The client's signed request (first replica only): how a non-voter shows a client with the right to submit asked for this job. */
  request?: Text
  /** Keyed by decision (`term.seq`): concurrent leaders write different keys; the highest stamp wins (fencing). */
  assignments: Record<string, AssignmentRecord>
  /** Keyed by runner node: each runner reports only its own copy. */
  runs: Record<string, RunRecord>
  /** Written by a leader when a round could not place the replica: why (which constraint, which resource). */
  unplaceable: Record<string, Text>
  /** Keyed by the node that took a cancel request, with its time: a cancelled job is done. */
  cancelled?: Record<string, number>
  /** From the spec's checkpoint policy: the runner checkpoints the replica this often (0: never). */
  checkpointEveryMs?: number
  /** Keyed by the runner that took it: the latest snapshot of its copy. */
  snapshots?: Record<string, SnapshotRecord>
  /** Keyed by the node that took a migrate request: move the replica (to `to`, or anywhere else when empty). */
  migrate?: Record<string, MigrateRecord>
  /** Runs the replica may take: the spec's retries + 1 (absent in records older than retries: 1). */
  maxAttempts?: number
  /** The replica's failed runs (consensus/retries.ts decides what follows one). */
  attempts?: Record<string, AttemptRecord>
}
export interface SnapshotRecord {
  cid: Text
  atMs: number
  term: number
  seq: number
  /** Peers that confirmed holding a replica of the snapshot (JSON array), besides the runner. */
  holders?: Text
  /** Bytes in the snapshot's files and distinct chunks (absent in records made before they were kept). */
  sizeBytes?: number
  chunks?: number
}
/** Names the copy to move by its assignment stamp (clock-free: the runner compares its own run's stamp). */
export interface MigrateRecord {
  to: Text
  term: number
  seq: number
  atMs: number
  /** The move's own constraints, added to the job's for this placement (empty or absent: none). */
  provider?: Text
  region?: Text
}
export interface NodeRecord {
  cpuMillis: number
  memoryMiB: number
  diskMiB: number
  gpuCount: number
  /** The node's offer as JSON (placement's NodeOffer: traits, capacity, registered prices). */
  offer: Text
}
/** Who may join the mesh or act on it: granted by the admin key (admission-grants.ts). */
export type Role = 'node' | 'admin' | 'submitter' | 'viewer' | 'revoked'
export const roles: readonly Role[] = ['node', 'admin', 'submitter', 'viewer', 'revoked']
/**
 * One grant of a role to a peer, as the node that took it wrote it: the grant's text carries the
 * admin key's signature (an invite token, or an admit/revoke request the admin key signed), which
 * every peer checks before the record enters. A peer's role is its latest grant's.
 */
export interface AdmissionRecord { role: Text; by: Text; atMs: number; grant: Text }
/** A used invite: the peer it admitted (an invite admits one peer). */
export interface InviteUse { peer: Text; atMs: number }
/** A committee the leader of `term` proposed as its decision `seq`: it counts once that decision is committed. */
export interface CommitteeChangeRecord { voters: Text; term: number; seq: number }

export interface ClusterDocument {
  formatVersion: number
  /** The mesh's admin key as a peer id (empty: an open mesh, anyone may join and act). */
  admin: Text
  /** `peer/grant id` -> grant: peers admitted by the admin key (nodes and clients), with their role (admission-grants.ts). */
  admitted: Record<string, AdmissionRecord>
  /** Invite nonce -> the peer it admitted. */
  invites: Record<string, InviteUse>
  /** Nodes being drained (keyed by node, with when it was asked): no new placements; their jobs move. */
  draining: Record<string, number>
  /** The genesis committee, and the changes leaders proposed since (committee.ts: only committed ones count). */
  committee: { voters: Record<string, boolean>; changes: Record<string, CommitteeChangeRecord> }
  nodes: Record<string, Record<string, NodeRecord>>
  jobs: Record<string, Record<string, JobRecord>>
  /** Highest decision sequence each term's leader wrote: one writer per term. */
  leaderLog: Record<string, number>
  /** Decisions of its own term a leader knows committed (a majority of voters acknowledged them): one writer per term. */
  commits: Record<string, number>
  /** Ratifying term -> earlier term -> its decisions the ratifying leader's first decision committed. */
  ratified: Record<string, Record<string, number>>
  /** Per writing actor (a node's incarnation), how many requests it has written. */
  origins: Record<string, number>
  /** Shard -> request key -> until when a replay of that client request is refused (the mesh's replay memory). */
  requests: Record<string, Record<string, number>>
}

export type Document = A.Doc<ClusterDocument>

const text = (value: string): Text => new A.ImmutableString(value)
export const readText = (value: Text | string | undefined): string =>
  value === undefined ? '' : typeof value === 'string' ? value : value.val

export function shardOf(id: string): string {
  let hash = 0x811c9dc5
  for (let index = 0; index < id.length; index++) {
    hash ^= id.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return ((hash >>> 0) % shardCount).toString(16).padStart(2, '0')
}

const emptyShards = <T>(): Record<string, Record<string, T>> => {
  const shards: Record<string, Record<string, T>> = {}
  for (let shard = 0; shard < shardCount; shard++) shards[shard.toString(16).padStart(2, '0')] = {}
  return shards
}

/** The genesis document every peer starts from: identical bytes on every peer (fixed actor, no time). */
export function createGenesis(options: { voters: readonly NodeId[]; nodes?: readonly NodeAttributes[]; admin?: string }): Uint8Array {
  const voters: Record<string, boolean> = {}
  for (const voter of options.voters) voters[voter] = true
  let document = A.init<ClusterDocument>({ actor: genesisActor })
  document = A.change(document, { time: undefined, message: 'genesis' }, (draft) => {
    draft.formatVersion = formatVersion
    draft.admin = text(options.admin ?? '')
    draft.admitted = {}
    draft.invites = {}
    draft.draining = {}
    draft.committee = { voters, changes: {} }
    draft.nodes = emptyShards<NodeRecord>()
    draft.jobs = emptyShards<JobRecord>()
    draft.leaderLog = {}
    draft.commits = {}
    draft.ratified = {}
    draft.origins = {}
    draft.requests = emptyShards<number>()
    for (const node of options.nodes ?? []) writeNode(draft, node)
  })
  return A.save(document)
}

export class DocumentFormatError extends Error {
  override name = 'DocumentFormatError'
  constructor(found: unknown) {
    super(`the cluster document has format ${JSON.stringify(found)}, this Shuttle reads format ${formatVersion} (start the mesh afresh)`)
  }
}

/** Loads a saved document to write with `actor` (actors.ts: the node's identity and incarnation). */
export function loadDocument(bytes: Uint8Array, actor: string): Document {
  const document = A.load<ClusterDocument>(bytes, { actor })
  if (document.formatVersion !== formatVersion) throw new DocumentFormatError(document.formatVersion)
  return document
}

// ---- Readers

export function leaderSeqOf(document: Document, term: Term): number {
  return document.leaderLog[String(term)] ?? 0
}

/** Commit knowledge per term from the document: each term's own markers and later leaders' ratifications (cached per document version). */
const commitIndexes = new WeakMap<Document, Map<string, number>>()

function commitIndex(document: Document): Map<string, number> {
  let index = commitIndexes.get(document)
  if (index !== undefined) return index
  index = new Map()
  for (const [term, seq] of Object.entries(document.commits)) index.set(term, seq)
  for (const earlier of Object.values(document.ratified)) {
    for (const [term, seq] of Object.entries(earlier)) if (seq > (index.get(term) ?? 0)) index.set(term, seq)
  }
  commitIndexes.set(document, index)
  return index
}

export function committedSeqOf(document: Document, term: number): number {
  return commitIndex(document).get(String(term)) ?? 0
}

/** How many requests the actor (a node's incarnation) has written. */
export function originSeqOf(document: Document, actor: string): number {
  return ownEntry(document.origins, actor) ?? 0
}

/**
 * The entry `key` of a map of the document, own properties only: ids come from clients and peers,
 * and `__proto__` or `constructor` must read as absent, not as Object.prototype's members (a cancel
 * of job `constructor` once threw inside the core and stopped the daemon).
 */
export function ownEntry<T>(map: Record<string, T> | undefined, key: string): T | undefined {
  return map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined
}

export function jobRecord(document: Document, jobId: JobId): JobRecord | undefined {
  return ownEntry(document.jobs[shardOf(jobId)], jobId)
}

/** What a record's spec runs: its command and args (their text words) and its image; null when the spec is not readable. */
export function specCommandOf(job: JobRecord): { words: string[]; image: string | undefined } | null {
  try {
    const spec = JSON.parse(readText(job.spec)) as { command?: unknown; args?: unknown; image?: unknown }
    const words = [spec.command, spec.args].flatMap((list) => (Array.isArray(list) ? list.filter((word): word is string => typeof word === 'string') : []))
    return { words, image: typeof spec.image === 'string' ? spec.image : undefined }
  } catch {
    return null
  }
}

export interface EffectiveAssignment { term: Term; seq: number; node: NodeId }

/** The job's effective assignment: the one with the highest stamp (a higher term, then the later decision of the term: fencing). */
export function effectiveAssignment(job: JobRecord): EffectiveAssignment | null {
  let best: EffectiveAssignment | null = null
  for (const record of Object.values(job.assignments)) {
    if (best === null || stampAfter(record, best)) best = { term: asTerm(record.term), seq: record.seq, node: asNodeId(readText(record.node)) }
  }
  return best
}

/** Every assignment of the job, oldest first. */
export function assignmentsOf(job: JobRecord): EffectiveAssignment[] {
  return Object.values(job.assignments)
    .map((record) => ({ term: asTerm(record.term), seq: record.seq, node: asNodeId(readText(record.node)) }))
    .sort((a, b) => a.term - b.term || a.seq - b.seq)
}

const assignmentKey = (term: number, seq: number): string => `${term}.${seq}`

export function isCommitted(document: Document, assignment: { term: number; seq: number }): boolean {
  return committedSeqOf(document, assignment.term) >= assignment.seq
}

export function runStateOf(run: RunRecord): RunState {
  return readText(run.state) as RunState
}

/**
 * Whether a node's run, attempt or snapshot record of a job counts: the assignment it names (term,
 * seq) must have been that node's. Any node may write such records under its own key (write-rules.ts),
 * so a node reporting a job it never ran (a lie, or a bug) changes nothing.
 */
export function ranThere(job: JobRecord, node: string, stamp: { term: number; seq: number }): boolean {
  const assignment = ownEntry(job.assignments, assignmentKey(stamp.term, stamp.seq))
  return assignment !== undefined && assignment.term === stamp.term && assignment.seq === stamp.seq && readText(assignment.node) === node
}

/** The job's run records that count (ranThere), by node. */
export function runsOf(job: JobRecord): [NodeId, RunRecord][] {
  const runs: [NodeId, RunRecord][] = []
  for (const node of Object.keys(job.runs)) {
    const run = job.runs[node]!
    if (ranThere(job, node, run)) runs.push([asNodeId(node), run])
  }
  return runs
}

/** The run that ended the job (finished, failed for good, or cancelled: where it was placed), or null while it is active. */
export function finalRun(job: JobRecord): { node: NodeId; state: 'finished' | 'failed' | 'cancelled'; run: RunRecord } | null {
  for (const canceller of Object.keys(job.cancelled ?? {})) {
    const atMs = job.cancelled![canceller]!
    // The node it was placed on (its output is there), not the one the cancel came through.
    const node = effectiveAssignment(job)?.node ?? asNodeId(canceller)
    return { node, state: 'cancelled', run: { state: text('stopped'), term: 0, seq: 0, exitCode: -1, atMs } }
  }
  let failed: { node: NodeId; state: 'failed'; run: RunRecord } | null = null
  for (const [node, run] of runsOf(job)) {
    const state = runStateOf(run)
    if (state === 'finished') return { node, state, run }
    if (state === 'failed' && (failed === null || stampAfter(run, failed.run))) failed = { node, state, run }
  }
  if (job.attempts === undefined) return failed // made before retries: any failure is final
  if (hasAttemptsLeft(job)) return null
  // Out of attempts: the last failure ends it (kept as an attempt even if its run record was rewritten since).
  const last = failedAttempts(job).at(-1)
  if (failed !== null && (last === undefined || !stampAfter(last, failed.run))) return failed
  return last === undefined ? null : { node: last.node, state: 'failed', run: { state: text('failed'), term: last.term, seq: last.seq, exitCode: last.exitCode, atMs: last.atMs, ...(last.usage === null ? {} : { usage: last.usage }) } }
}

/** A job is done once any copy of it finished, its last attempt failed, or it was cancelled. */
export function isJobDone(job: JobRecord): boolean {
  if (isCancelled(job)) return true
  let failed = false
  for (const [, run] of runsOf(job)) {
    const state = runStateOf(run)
    if (state === 'finished') return true
    if (state === 'failed') failed = true
  }
  // Every failure is kept as an attempt; in records made before retries, any failure is final.
  return job.attempts === undefined ? failed : !hasAttemptsLeft(job)
}

/** (term, seq) order: a higher term wins, then the later decision of the term. */
export function stampAfter(a: { term: number; seq: number }, b: { term: number; seq: number }): boolean {
  return a.term > b.term || (a.term === b.term && a.seq > b.seq)
}

/** The replica's failed runs, oldest first (none in records older than retries). */
export function failedAttempts(job: JobRecord): { node: NodeId; term: number; seq: number; exitCode: number; atMs: number; usage: UsageRecord | null }[] {
  return Object.values(job.attempts ?? {})
    .map((attempt) => ({ node: asNodeId(readText(attempt.node)), term: attempt.term, seq: attempt.seq, exitCode: attempt.exitCode, atMs: attempt.atMs, usage: readUsage(attempt.usage) }))
    .filter((attempt) => ranThere(job, attempt.node, attempt))
    .sort((a, b) => a.term - b.term || a.seq - b.seq)
}

/** Whether a failed run may be followed by another: fewer failures recorded than runs allowed. */
export function hasAttemptsLeft(job: JobRecord): boolean {
  if (job.attempts === undefined) return false // made before retries: a failure is final
  return failedAttempts(job).length < (job.maxAttempts ?? 1)
}

export function isCancelled(job: JobRecord): boolean {
  for (const _node in job.cancelled ?? {}) return true
  return false
}

/** The records of a submitted job's replicas present in the document (none when it is unknown or archived). */
export function replicaRecords(document: Document, jobId: string): { id: JobId; job: JobRecord }[] {
  const single = jobRecord(document, asJobId(jobId))
  if (single !== undefined && (single.replicas ?? 1) === 1) return [{ id: asJobId(jobId), job: single }]
  const first = jobRecord(document, replicaIdOf(jobId, 0, 2))
  const replicas = first?.replicas ?? 0
  const records: { id: JobId; job: JobRecord }[] = []
  for (let replica = 0; replica < replicas; replica++) {
    const id = replicaIdOf(jobId, replica, replicas)
    const job = jobRecord(document, id)
    if (job !== undefined) records.push({ id, job })
  }
  return records
}

export function demandOf(job: JobRecord): Resources {
  return { cpuMillis: job.cpuMillis, memoryMiB: job.memoryMiB, diskMiB: job.diskMiB ?? 0, gpuCount: job.gpuCount ?? 0 }
}

export function capacityOf(node: NodeRecord): Resources {
  return { cpuMillis: node.cpuMillis, memoryMiB: node.memoryMiB, diskMiB: node.diskMiB ?? 0, gpuCount: node.gpuCount ?? 0 }
}

/** The record id of replica `replica` of job `jobId`: the job id itself when it has one replica. */
export function replicaIdOf(jobId: string, replica: number, replicas: number): JobId {
  return asJobId(replicas === 1 ? jobId : `${jobId}#${replica}`)
}

/** Job ids may not contain this: it separates a job id from a replica number. */
export const replicaSeparator = '#'

export function forEachJob(document: Document, visit: (jobId: JobId, job: JobRecord) => void): void {
  for (const shard of Object.values(document.jobs)) {
    for (const id of Object.keys(shard)) {
      const job = shard[id]
      if (job !== undefined) visit(asJobId(id), job)
    }
  }
}

export function forEachNode(document: Document, visit: (nodeId: NodeId, node: NodeRecord) => void): void {
  for (const shard of Object.values(document.nodes)) {
    for (const id of Object.keys(shard)) {
      const node = shard[id]
      if (node !== undefined) visit(asNodeId(id), node)
    }
  }
}

export function nodeRecord(document: Document, nodeId: NodeId): NodeRecord | undefined {
  return ownEntry(document.nodes[shardOf(nodeId)], nodeId)
}

// ---- Writers (called inside A.change; each writes only keys its caller owns)

export function writeNode(draft: ClusterDocument, node: NodeAttributes): void {
  const shard = draft.nodes[shardOf(node.id)]
  if (shard === undefined) throw new Error(`missing node shard for ${node.id}`)
  const { capacity } = node.offer
  shard[node.id] = {
    cpuMillis: capacity.cpuMillis,
    memoryMiB: capacity.memoryMiB,
    diskMiB: capacity.diskMiB,
    gpuCount: capacity.gpuCount,
    offer: text(canonicalJson({ ...node.offer, nodeId: node.id, free: capacity })),
  }
}

/** Who writes a request and its number among that writer's requests: the node, and its actor (its incarnation). */
export interface OriginStamp { node: NodeId; actor: string; seq: number }

/** The writer's request counter: voters acknowledge a request by the counter they hold (submissions.ts). */
export function writeOrigin(draft: ClusterDocument, origin: OriginStamp): void {
  draft.origins[origin.actor] = origin.seq
}

/**
 * The values of a job's replica records that follow from the submission alone (every scalar field
 * but its origin and time, and the client's request, which only the first record carries): what a
 * node writes, and what a voter checks a non-voter wrote.
 */
export interface SubmittedRecordValues {
  id: string
  job: string
  replica: number
  replicas: number
  gang: boolean
  name: string
  spec: string
  cpuMillis: number
  memoryMiB: number
  diskMiB: number
  gpuCount: number
  durationMs: number
  checkpointEveryMs: number
  maxAttempts: number
}

/** The submitted values of each replica record, by replica id. */
export function submittedRecordValues(job: JobSubmission): Map<string, SubmittedRecordValues> {
  const spec = canonicalJson(job.spec)
  const replicas = job.spec.replicas
  const { cpuMillis, memoryMiB, diskMiB, gpuCount } = job.spec.resources
  const values = new Map<string, SubmittedRecordValues>()
  for (let replica = 0; replica < replicas; replica++) {
    const id = replicaIdOf(job.id, replica, replicas)
    values.set(id, {
      id,
      job: job.id,
      replica,
      replicas,
      gang: replicas > 1 && job.spec.intent === 'tightly-coupled',
      name: job.spec.name,
      spec,
      cpuMillis,
      memoryMiB,
      diskMiB,
      gpuCount,
      durationMs: job.durationMs,
      checkpointEveryMs: job.spec.checkpoint?.intervalMs ?? 0,
      maxAttempts: job.spec.retries + 1,
    })
  }
  return values
}

/** Writes one record per replica of the job (all in the caller's one change). */
export function writeJob(draft: ClusterDocument, job: JobSubmission, origin: OriginStamp, nowMs: number): void {
  for (const [id, values] of submittedRecordValues(job)) {
    const shard = draft.jobs[shardOf(id)]
    if (shard === undefined) throw new Error(`missing job shard for ${id}`)
    shard[id] = {
      ...values,
      id: text(values.id),
      job: text(values.job),
      name: text(values.name),
      spec: text(values.spec),
      origin: text(origin.node),
      originSeq: origin.seq,
      submittedAtMs: nowMs,
      ...(job.request !== undefined && values.replica === 0 ? { request: text(job.request) } : {}),
      assignments: {},
      runs: {},
      unplaceable: {},
      cancelled: {},
      snapshots: {},
      migrate: {},
      attempts: {},
    }
  }
  writeOrigin(draft, origin)
}

/** The newest snapshot of the replica (any runner's), or null. */
export function latestSnapshot(job: JobRecord): { cid: string; node: NodeId; holders: NodeId[]; atMs: number } | null {
  let best: { cid: string; node: NodeId; holders: NodeId[]; atMs: number } | null = null
  for (const [node, snapshot] of Object.entries(job.snapshots ?? {})) {
    if (!ranThere(job, node, snapshot)) continue
    if (best === null || snapshot.atMs > best.atMs) best = { cid: readText(snapshot.cid), node: asNodeId(node), holders: readHolders(snapshot.holders), atMs: snapshot.atMs }
  }
  return best
}

function readHolders(value: Text | undefined): NodeId[] {
  try {
    const holders: unknown = JSON.parse(readText(value) || '[]')
    return Array.isArray(holders) ? holders.filter((holder): holder is string => typeof holder === 'string').map(asNodeId) : []
  } catch {
    return []
  }
}

/** The migrate request for the copy stamped (term, seq), or null. */
export function migrateOf(job: JobRecord, stamp: { term: number; seq: number }): { to: NodeId | null; where: MoveConstraints } | null {
  for (const request of Object.values(job.migrate ?? {})) {
    if (request.term !== stamp.term || request.seq !== stamp.seq) continue
    const where: MoveConstraints = {}
    if (readText(request.provider) !== '') where.provider = readText(request.provider)
    if (readText(request.region) !== '') where.region = readText(request.region)
    return { to: readText(request.to) === '' ? null : asNodeId(readText(request.to)), where }
  }
  return null
}

export interface SnapshotView { node: NodeId; cid: string; atMs: number; term: number; seq: number; holders: NodeId[]; sizeBytes: number | null; chunks: number | null }

/** Every runner's latest snapshot of the replica, newest first. */
export function snapshotsOf(job: JobRecord): SnapshotView[] {
  return Object.entries(job.snapshots ?? {})
    .filter(([node, snapshot]) => ranThere(job, node, snapshot))
    .map(([node, snapshot]) => ({ node: asNodeId(node), cid: readText(snapshot.cid), atMs: snapshot.atMs, term: snapshot.term, seq: snapshot.seq, holders: readHolders(snapshot.holders), sizeBytes: snapshot.sizeBytes ?? null, chunks: snapshot.chunks ?? null }))
    .sort((a, b) => b.atMs - a.atMs)
}

export function writeSnapshot(draft: ClusterDocument, jobId: JobId, node: NodeId, snapshot: { cid: string; atMs: number; term: number; seq: number; holders: readonly NodeId[]; sizeBytes?: number; chunks?: number }): void {
  const job = draftJob(draft, jobId)
  if (job.snapshots === undefined) job.snapshots = {}
  const record: SnapshotRecord = { cid: text(snapshot.cid), atMs: snapshot.atMs, term: snapshot.term, seq: snapshot.seq, holders: text(JSON.stringify(snapshot.holders)) }
  if (snapshot.sizeBytes !== undefined) record.sizeBytes = snapshot.sizeBytes
  if (snapshot.chunks !== undefined) record.chunks = snapshot.chunks
  job.snapshots[node] = record
}

/** The origin's node records a migrate request for these replicas, as its origin's next write. */
export function writeMigrate(draft: ClusterDocument, copies: readonly { jobId: JobId; term: number; seq: number }[], origin: OriginStamp, to: NodeId | null, nowMs: number, where: MoveConstraints = {}): void {
  for (const { jobId, term, seq } of copies) {
    const job = draftJob(draft, jobId)
    if (job.migrate === undefined) job.migrate = {}
    const record: MigrateRecord = { to: text(to ?? ''), term, seq, atMs: nowMs }
    if (where.provider !== undefined) record.provider = text(where.provider)
    if (where.region !== undefined) record.region = text(where.region)
    job.migrate[origin.node] = record
  }
  writeOrigin(draft, origin)
}

export function isDraining(document: Document, nodeId: NodeId): boolean {
  return ownEntry(document.draining, nodeId) !== undefined
}

/** The origin records that `nodeId` is drained, and a migrate request for every copy running there. */
export function writeDrain(draft: ClusterDocument, nodeId: NodeId, copies: readonly { jobId: JobId; term: number; seq: number }[], origin: OriginStamp, nowMs: number): void {
  draft.draining[nodeId] = nowMs
  writeMigrate(draft, copies, origin, null, nowMs)
}

/** The origin lifts the drain of `nodeId`: it takes new placements again. */
export function writeUndrain(draft: ClusterDocument, nodeId: NodeId, origin: OriginStamp): void {
  delete draft.draining[nodeId]
  writeOrigin(draft, origin)
}

/** The origin's node records a cancel of these replicas (its own key in each), as its origin's next write. */
export function writeCancel(draft: ClusterDocument, jobIds: readonly JobId[], origin: OriginStamp, nowMs: number): void {
  for (const jobId of jobIds) {
    const job = draftJob(draft, jobId)
    if (job.cancelled === undefined) job.cancelled = {}
    job.cancelled[origin.node] = nowMs
  }
  writeOrigin(draft, origin)
}

/** A client request's key in the mesh's replay memory (node/ derives it from the request's signature). */
export function requestSeen(document: Document, key: string): boolean {
  return ownEntry(document.requests[shardOf(key)], key) !== undefined
}

/** Remembers a client request until `expiresAtMs`: a replay of it, to any node, is refused until then. */
export function writeRequestSeen(draft: ClusterDocument, key: string, expiresAtMs: number): void {
  const shard = draft.requests[shardOf(key)]
  if (shard === undefined) throw new Error(`missing request shard for ${key}`)
  shard[key] = expiresAtMs
}

/** Request keys whose replay window ended by `nowMs` (the leader forgets them), at most `limit`. */
export function expiredRequests(document: Document, nowMs: number, limit: number): string[] {
  const expired: string[] = []
  for (const shard of Object.values(document.requests)) {
    for (const [key, expiresAtMs] of Object.entries(shard)) {
      if (expired.length >= limit) return expired
      if (expiresAtMs < nowMs) expired.push(key)
    }
  }
  return expired
}

export function deleteRequestSeen(draft: ClusterDocument, key: string): void {
  const shard = draft.requests[shardOf(key)]
  if (shard !== undefined) delete shard[key]
}

function draftJob(draft: ClusterDocument, jobId: JobId): JobRecord {
  const job = draft.jobs[shardOf(jobId)]?.[jobId]
  if (job === undefined) throw new Error(`job ${jobId} is not in the document`)
  return job
}

export function writeAssignment(draft: ClusterDocument, jobId: JobId, term: Term, node: NodeId, seq: number): void {
  draftJob(draft, jobId).assignments[assignmentKey(term, seq)] = { node: text(node), term, seq }
}

export function writeUnplaceable(draft: ClusterDocument, jobId: JobId, term: Term, reason: string): void {
  draftJob(draft, jobId).unplaceable[String(term)] = text(reason)
}

/** The runner `node` reports its run; a failure is also kept as an attempt (its run record is rewritten by a retry here). */
export function writeRun(draft: ClusterDocument, jobId: JobId, node: NodeId, run: { state: RunState; term: number; seq: number; exitCode: number; atMs: number; usage?: JobUsage }): void {
  const job = draftJob(draft, jobId)
  const { usage: measured, ...rest } = run
  const usage = measured === undefined ? {} : { usage: readUsage(measured)! }
  job.runs[node] = { ...rest, state: text(run.state), ...usage }
  if (run.state !== 'failed' || job.attempts === undefined) return
  job.attempts[`${run.term}.${run.seq}`] = { node: text(node), term: run.term, seq: run.seq, exitCode: run.exitCode, atMs: run.atMs, ...usage }
}

/**
 * A usage record as read from the document (any peer may have written it): each figure a finite,
 * non-negative number or null; null when it is not a usage record at all.
 */
export function readUsage(value: unknown): UsageRecord | null {
  if (typeof value !== 'object' || value === null) return null
  const figure = (key: keyof UsageRecord): number | null => {
    const number = (value as Record<string, unknown>)[key]
    return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : null
  }
  return { cpuSeconds: figure('cpuSeconds'), peakMemoryBytes: figure('peakMemoryBytes'), wallMs: figure('wallMs') }
}

/** The leader drops an archived job; runners' concurrent reports land in the detached map and vanish. */
export function deleteJob(draft: ClusterDocument, jobId: JobId): void {
  const shard = draft.jobs[shardOf(jobId)]
  if (shard !== undefined) delete shard[jobId]
}

export function writeLeaderSeq(draft: ClusterDocument, term: Term, seq: number): void {
  draft.leaderLog[String(term)] = seq
}

/** The leader of `term` records its own commit watermark (one writer per term, so it never goes down). */
export function writeCommit(draft: ClusterDocument, term: Term, seq: number): void {
  if ((draft.commits[String(term)] ?? 0) < seq) draft.commits[String(term)] = seq
}

/** The leader of `term` records the earlier terms' decisions its first decision committed (its own key: never lowered by another writer). */
export function writeRatified(draft: ClusterDocument, term: Term, earlier: ReadonlyMap<string, number>): void {
  const record: Record<string, number> = {}
  for (const [earlierTerm, seq] of earlier) record[earlierTerm] = seq
  draft.ratified[String(term)] = record
}
