// The wire form of /fabric/client/1.0.0, the protocol the CLI (and a daemon forwarding a logs
// request) speaks to a daemon: one request frame per stream, answered by response frames (one
// result or error; or log chunks ending with `end`). Length-prefixed CBOR (codec/), a zod schema per kind
// and named size limits; a request that fails them is answered with an error and changes nothing.
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import { admissionRequestSchemas, admissionResultSchemas } from './admission-wire.ts'
import { maxSignatureChars } from './request-signature.ts'
import { byteString, nodeMetricsFields, type Decoded } from './wire.ts'

export const clientProtocol = '/fabric/client/1.0.0'
export const clientWireVersion = 1

// ---- Named limits

export const clientWireLimits = {
  /** A spec text (YAML or JSON) as placement/ accepts it. */
  maxSpecTextBytes: 256 * 1024,
  /** One request frame: the largest spec plus the envelope. */
  maxRequestBytes: 272 * 1024,
  /** A relayed request (cancel, migrate, drain, undrain: small ones). */
  maxRelayedRequestBytes: 16 * 1024,
  /** One response frame (a listing of jobs or nodes is the largest). */
  maxResponseFrameBytes: 4 * 1024 * 1024,
  /** Log text per frame (CBOR text: at most three UTF-8 bytes a character, far under the frame limit). */
  maxLogChunkChars: 64 * 1024,
  maxErrorMessageChars: 4_096,
  maxListedJobs: 1_000,
  maxListedNodes: 10_000,
  maxIdLength: 256,
  /** Rows of an explain or plan table sent (one per node considered; the rest are counted). */
  maxExplainRows: 1_000,
  /** Document heads in a status answer (concurrent changes not merged yet make several). */
  maxStatusHeads: 1_024,
  /** How long a drain or a followed migration may wait for its jobs to move. */
  maxMoveWaitMs: 30 * 60_000,
  /** Snapshots listed in one answer (replicas x nodes that took one). */
  maxListedSnapshots: 10_000,
  /** Holders named per snapshot. */
  maxHolders: 64,
} as const

// ---- Requests

const id = z.string().min(1).max(clientWireLimits.maxIdLength)
/** A mesh id: the SHA-256 of its genesis document, as lowercase hex. */
export const meshIdPattern = /^[0-9a-f]{64}$/
const envelope = {
  v: z.literal(clientWireVersion),
  /** Correlates the daemon's log lines with the client's; chosen by the client. */
  requestId: z.string().min(1).max(64),
  /** The client's peer id: must be the peer the connection authenticated, and the key that signed. */
  client: z.string().min(1).max(128),
  /**
   * The mesh the request is for (its genesis SHA-256, hex): a daemon of another mesh refuses it with
   * `wrong-mesh`, so a request signed for one mesh cannot be replayed to another that admits the same key.
   */
  mesh: z.string().regex(meshIdPattern, 'a mesh id is the genesis SHA-256 as 64 lowercase hex digits'),
  /** When the client signed (its clock): the daemon refuses requests outside its replay window. */
  signedAtMs: z.number().int().nonnegative(),
  /** Ed25519 signature (base64url) over the request's canonical bytes without this field (request-signature.ts). */
  signature: z.string().min(1).max(maxSignatureChars),
  /** Set by a daemon passing a request on to the node that can answer it; never passed on again. */
  forwarded: z.boolean().optional(),
}

export const logStreams = ['stdout', 'stderr', 'both'] as const

const requestSchemas = {
  submit: z.strictObject({ ...envelope, kind: z.literal('submit'), spec: z.string().min(1).max(clientWireLimits.maxSpecTextBytes) }),
  jobs: z.strictObject({ ...envelope, kind: z.literal('jobs'), limit: z.number().int().min(1).max(clientWireLimits.maxListedJobs).optional() }),
  job: z.strictObject({ ...envelope, kind: z.literal('job'), jobId: id }),
  logs: z.strictObject({ ...envelope, kind: z.literal('logs'), jobId: id, follow: z.boolean(), stream: z.enum(logStreams) }),
  nodes: z.strictObject({ ...envelope, kind: z.literal('nodes') }),
  leader: z.strictObject({ ...envelope, kind: z.literal('leader') }),
  ...admissionRequestSchemas(envelope),
  /** Cancel every replica of a job; answered once the cancel is durable on a majority of voters. */
  cancel: z.strictObject({ ...envelope, kind: z.literal('cancel'), jobId: id }),
  /**
   * Move a job's running replicas (to `to`, or anywhere else; `provider`/`region` limit where);
   * answered once durable, like cancel. With `follow`, progress frames come first, until the job
   * runs again (or `waitMs` passes).
   */
  migrate: z.strictObject({ ...envelope, kind: z.literal('migrate'), jobId: id, to: id.nullable(), provider: id.optional(), region: id.optional(), follow: z.boolean().optional(), waitMs: z.number().int().min(1).max(clientWireLimits.maxMoveWaitMs).optional() }),
  /** Checkpoint the job's running replicas now (each on its runner; progress frames, then the snapshots). */
  checkpoint: z.strictObject({ ...envelope, kind: z.literal('checkpoint'), jobId: id }),
  /** The job's snapshots recorded in the document (per replica, per node that took one). */
  snapshots: z.strictObject({ ...envelope, kind: z.literal('snapshots'), jobId: id }),
  /** Drain a node: nothing new goes there and its jobs move away; `moved` frames as they do, then what moved (within `waitMs`). */
  drain: z.strictObject({ ...envelope, kind: z.literal('drain'), nodeId: id, waitMs: z.number().int().min(1).max(clientWireLimits.maxMoveWaitMs).optional() }),
  /** The progress of this node's restore of a replica (fetch, restore) until it runs here; asked by a node following a migration. */
  'restore-progress': z.strictObject({ ...envelope, kind: z.literal('restore-progress'), jobId: id, waitMs: z.number().int().min(1).max(clientWireLimits.maxMoveWaitMs).optional() }),
  /** Lift a drain: the node takes new work again. */
  undrain: z.strictObject({ ...envelope, kind: z.literal('undrain'), nodeId: id }),
  /** How the leader's latest auction round that held the job decided it (a non-leader asks the leader). */
  explain: z.strictObject({ ...envelope, kind: z.literal('explain'), jobId: id }),
  /** A dry run of one auction for a spec against the mesh as this node's document accounts it; places nothing. */
  plan: z.strictObject({ ...envelope, kind: z.literal('plan'), spec: z.string().min(1).max(clientWireLimits.maxSpecTextBytes) }),
  /** This node's role, term and document heads (read-only; tests compare heads to prove nothing changed). */
  status: z.strictObject({ ...envelope, kind: z.literal('status') }),
  /** Streams committed assignments as this node learns them: those already committed first, then new ones. */
  assignments: z.strictObject({ ...envelope, kind: z.literal('assignments') }),
  /**
   * A request a non-voter took that only a voter writes (cancel, migrate, drain, undrain), passed on
   * as the client sent it: its own signature and role are checked again where it lands.
   */
  relay: z.strictObject({ ...envelope, kind: z.literal('relay'), request: byteString.refine((bytes) => bytes.length <= clientWireLimits.maxRelayedRequestBytes, `a relayed request has at most ${clientWireLimits.maxRelayedRequestBytes} bytes`) }),
} as const

export type ClientRequestKind = keyof typeof requestSchemas
export type ClientRequest = { [K in ClientRequestKind]: z.infer<(typeof requestSchemas)[K]> }[ClientRequestKind]
export type ClientRequestOf<K extends ClientRequestKind> = z.infer<(typeof requestSchemas)[K]>
/** A request as a caller builds it: the envelope (and the signature) is filled in by the connection. */
export type ClientRequestBody = { [K in ClientRequestKind]: Omit<ClientRequestOf<K>, 'v' | 'requestId' | 'client' | 'mesh' | 'signedAtMs' | 'signature'> }[ClientRequestKind]

const isRequestKind = (kind: unknown): kind is ClientRequestKind => typeof kind === 'string' && Object.hasOwn(requestSchemas, kind)

// ---- Views the daemon answers with (types derived from the schemas the client checks them with)

const resources = z.object({ cpuMillis: z.number(), memoryMiB: z.number(), gpuCount: z.number().optional() })

export const jobStates = ['pending', 'placed', 'assigned', 'unplaceable', 'finished', 'failed', 'cancelled'] as const

/** One replica record of a job (a job of one replica has one, named by the job id itself). */
export const replicaSummarySchema = z.object({
  id: z.string(),
  state: z.enum(jobStates),
  node: z.string().nullable(),
  exitCode: z.number().nullable(),
})

/**
 * A submitted job. A job of n replicas is shown grouped: `replicas` lists its n records and
 * `state` is the least advanced of theirs (a failed or cancelled replica marks the whole job).
 */
export const jobSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  /** pending: not placed; placed: assigned, not yet committed; assigned: committed to `node` (it runs there or will). */
  state: z.enum(jobStates),
  node: z.string().nullable(),
  submittedAtMs: z.number(),
  finishedAtMs: z.number().nullable(),
  exitCode: z.number().nullable(),
  /** Read from the daemon's archive (the document keeps active jobs only). */
  archived: z.boolean(),
  replicas: z.array(replicaSummarySchema),
})

/** What a run used, measured by its runtime at exit (null: not measurable there). */
export const usageSchema = z.object({ cpuSeconds: z.number().nullable(), peakMemoryBytes: z.number().nullable(), wallMs: z.number().nullable() })

export const jobDetailSchema = jobSummarySchema.extend({
  command: z.string(),
  demand: resources.nullable(),
  origin: z.string().nullable(),
  /** Per replica record (`replica`: its id), so a job of several replicas lists every copy's history. */
  assignments: z.array(z.object({ replica: z.string(), term: z.number(), seq: z.number(), node: z.string(), committed: z.boolean() })),
  runs: z.array(z.object({ replica: z.string(), node: z.string(), state: z.string(), term: z.number(), seq: z.number(), exitCode: z.number(), atMs: z.number(), usage: usageSchema.nullable().optional() })),
  /** Per replica: which attempt it is on (of how many the spec's retries allow) and its failed runs. */
  attempts: z
    .array(z.object({
      replica: z.string(),
      attempt: z.number(),
      of: z.number().nullable(),
      failed: z.array(z.object({ attempt: z.number(), node: z.string(), term: z.number(), seq: z.number(), exitCode: z.number(), atMs: z.number(), usage: usageSchema.nullable() })),
    }))
    .optional(),
  unplaceable: z.array(z.object({ replica: z.string(), term: z.number(), reason: z.string() })),
  /** What the answering daemon's own runtime knows of the job, when it ran it here. */
  local: z
    .object({
      node: z.string(),
      replica: z.string().optional(),
      state: z.string(),
      pid: z.number().nullable(),
      exitCode: z.number().nullable(),
      reason: z.string().nullable(),
      /** The GPU device indices the run got on that node (absent when it asked for none). */
      gpus: z.array(z.number()).optional(),
    })
    .nullable(),
})

export const nodeViewSchema = z.object({
  id: z.string(),
  self: z.boolean(),
  voter: z.boolean(),
  leader: z.boolean(),
  /** Being drained: takes no new work, its jobs move away (absent: not drained). */
  draining: z.boolean().optional(),
  /** Heard on the capacity topic within the node timeout (as the answering daemon sees it). */
  alive: z.boolean(),
  lastHeardAgoMs: z.number().nullable(),
  capacity: resources,
  free: resources.nullable(),
  running: z.number().nullable(),
  provider: z.string(),
  region: z.string(),
  azId: z.string(),
  pricePerHour: z.number(),
  /** The model and memory of the GPUs it offers (capacity.gpuCount of them), when it offers any. */
  gpu: z.object({ model: z.string(), memoryMiB: z.number() }).optional(),
  /** The latest heard on the metrics topic (this node's own, now, for the node that answers), and how long ago. */
  metrics: z.object({ ...nodeMetricsFields, ageMs: z.number() }).optional(),
})

export const leaderViewSchema = z.object({
  leaderId: z.string().nullable(),
  term: z.number(),
  /** The answering daemon and its role; readyLeader: it is the leader and has finished its barrier (places jobs). */
  askedNode: z.string(),
  askedRole: z.string(),
  readyLeader: z.boolean(),
})

/** An explain record (placement's JobExplanation) as it travels; the CLI renders it with renderExplanation. */
const tagged = z.looseObject({ kind: z.string() })
export const explanationSchema = z.object({
  roundId: z.string(),
  jobId: z.string(),
  name: z.string(),
  strategy: z.string(),
  intent: z.string(),
  replicas: z.number(),
  demand: z.object({ cpuMillis: z.number(), memoryMiB: z.number(), diskMiB: z.number(), gpuCount: z.number(), gpuModels: z.array(z.string()), gpuMinMemoryMiB: z.number() }),
  maxPricePerHour: z.number().optional(),
  eligible: z.number(),
  answered: z.number(),
  rows: z
    .array(
      z.object({
        nodeId: z.string(),
        provider: z.string(),
        region: z.string(),
        azId: z.string(),
        spot: z.boolean(),
        askPerHour: z.number().optional(),
        transferPerHour: z.number().optional(),
        costPerHour: z.number().optional(),
        score: z.number().optional(),
        excluded: tagged.optional(),
        awarded: z.number(),
      }),
    )
    .max(clientWireLimits.maxExplainRows),
  /** Rows left out to keep the answer within maxExplainRows. */
  rowsOmitted: z.number().optional(),
  awards: z.array(z.object({ jobId: z.string(), replica: z.number(), nodeId: z.string(), pricePerHour: z.number(), askPerHour: z.number(), costPerHour: z.number(), score: z.number(), classId: z.number() })),
  pending: z.object({ jobId: z.string(), replicas: z.array(z.number()), reason: tagged }).optional(),
})

export const statusViewSchema = z.object({
  nodeId: z.string(),
  role: z.string(),
  term: z.number(),
  leaderId: z.string().nullable(),
  readyLeader: z.boolean(),
  voters: z.array(z.string()),
  /** The cluster document's heads on this node: equal heads, equal documents. */
  documentHeads: z.array(z.string()).max(clientWireLimits.maxStatusHeads),
  /** Job records in the document (replicas count one each). */
  jobRecords: z.number(),
  /** What the daemon refused or dropped, by layer (transport, gossip, client protocol, core). */
  counters: z.record(z.string(), z.unknown()),
})

/** One snapshot of a replica, as the document records it (size and chunks absent in older records). */
export const snapshotViewSchema = z.object({
  replica: z.string(),
  node: z.string(),
  cid: z.string(),
  atMs: z.number(),
  sizeBytes: z.number().nullable(),
  chunks: z.number().nullable(),
  holders: z.array(z.string()).max(clientWireLimits.maxHolders),
})

/** A job's copy that a drain moved (or that was still moving when the wait ended). */
export const movedViewSchema = z.object({
  jobId: z.string(),
  from: z.string(),
  /** The node it runs on now (null: not placed again yet). */
  to: z.string().nullable(),
  /** restored: from the checkpoint it took to move; restarted: placed again without one; finished: ended before it moved; waiting: not moved yet. */
  how: z.enum(['restored', 'restarted', 'finished', 'waiting']),
  cid: z.string().nullable(),
})

export type ReplicaSummary = z.infer<typeof replicaSummarySchema>
export type SnapshotView = z.infer<typeof snapshotViewSchema>
export type MovedView = z.infer<typeof movedViewSchema>
export type JobSummary = z.infer<typeof jobSummarySchema>
export type JobDetail = z.infer<typeof jobDetailSchema>
export type NodeView = z.infer<typeof nodeViewSchema>
export type LeaderView = z.infer<typeof leaderViewSchema>
export type ExplanationView = z.infer<typeof explanationSchema>
export type StatusView = z.infer<typeof statusViewSchema>

export const resultSchemas = {
  submit: z.object({ jobId: z.string() }),
  jobs: z.object({ jobs: z.array(jobSummarySchema).max(clientWireLimits.maxListedJobs), truncated: z.boolean() }),
  job: jobDetailSchema,
  logs: z.object({}),
  nodes: z.object({ nodes: z.array(nodeViewSchema).max(clientWireLimits.maxListedNodes) }),
  leader: leaderViewSchema,
  ...admissionResultSchemas,
  cancel: z.object({ jobId: z.string() }),
  migrate: z.object({ jobId: z.string(), to: z.string().nullable(), provider: z.string().optional(), region: z.string().optional(), moved: z.array(movedViewSchema).optional() }),
  checkpoint: z.object({ jobId: z.string(), snapshots: z.array(snapshotViewSchema).max(clientWireLimits.maxListedSnapshots) }),
  snapshots: z.object({ jobId: z.string(), snapshots: z.array(snapshotViewSchema).max(clientWireLimits.maxListedSnapshots) }),
  /** `complete`: every copy moved (or finished) within the wait. */
  drain: z.object({ nodeId: z.string(), moved: z.array(movedViewSchema).max(clientWireLimits.maxListedJobs), complete: z.boolean() }),
  undrain: z.object({ nodeId: z.string() }),
  'restore-progress': z.object({}),
  /** `answeredBy`: the leader whose rounds these are, in `term`. */
  explain: z.object({ explanation: explanationSchema, answeredBy: z.string(), term: z.number() }),
  /** `considered`: nodes whose offers went into the dry run; `leftOut`: registered nodes that did not, and why. */
  plan: z.object({ explanation: explanationSchema, considered: z.number(), leftOut: z.array(z.object({ nodeId: z.string(), reason: z.string() })).max(clientWireLimits.maxListedNodes) }),
  status: statusViewSchema,
  assignments: z.object({}),
  /** The relayed request's own result (the client that sent it reads it by that request's kind). */
  relay: z.object({}).loose(),
} as const satisfies Record<ClientRequestKind, z.ZodType>

export type ClientResult<K extends ClientRequestKind> = z.infer<(typeof resultSchemas)[K]>

// ---- Response frames

export const clientErrorCodes = [
  'bad-request', // the request does not parse or breaks a limit
  'unauthorized', // the client may not do this (or names another peer than the connection's)
  'wrong-mesh', // the request was signed for another mesh (the frame names this daemon's)
  'invalid-spec', // the job spec is refused (every error names the field)
  'refused', // the core refused the submission
  'not-found', // no such job
  'not-acknowledged', // accepted but not durable on a majority of voters in time
  'busy', // a bound was reached; try again
  'unavailable', // the daemon, or the node that holds the answer, cannot answer now
  'internal', // a bug in the daemon
] as const
export type ClientErrorCode = (typeof clientErrorCodes)[number]

export const progressPhases = ['checkpoint', 'pack', 'replicate', 'fetch', 'restore', 'done'] as const
const progressFrameSchema = z.object({
  type: z.literal('progress'),
  jobId: z.string(),
  node: z.string(),
  phase: z.enum(progressPhases),
  /** The peer a replicate phase sends to, or a fetch takes from (absent otherwise). */
  peer: z.string().optional(),
  bytesDone: z.number().nonnegative(),
  bytesTotal: z.number().nonnegative(),
  chunksDone: z.number().nonnegative(),
  chunksTotal: z.number().nonnegative(),
  bytesPerSecond: z.number().nonnegative(),
  etaMs: z.number().nonnegative().nullable(),
})
export type ProgressFrame = z.infer<typeof progressFrameSchema>

const responseSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('result'), value: z.unknown() }),
  /** `mesh`: with `wrong-mesh`, the mesh this daemon belongs to. */
  z.object({ type: z.literal('error'), code: z.enum(clientErrorCodes), message: z.string().max(clientWireLimits.maxErrorMessageChars), jobId: z.string().optional(), mesh: z.string().regex(meshIdPattern).optional() }),
  z.object({ type: z.literal('log'), stream: z.enum(['stdout', 'stderr']), offsetBytes: z.number().int().nonnegative(), text: z.string() }),
  /** One committed assignment (an `assignments` stream): replica record `jobId` runs on `node`, decided in `term` as decision `seq`. */
  z.object({ type: z.literal('assignment'), jobId: z.string(), node: z.string(), term: z.number(), seq: z.number() }),
  /** Progress of a snapshot's making or transfer on node `node` (checkpoint, pack, replicate to `peer`, fetch, restore). */
  progressFrameSchema,
  /** A copy a drain or migration moved (or gave up waiting for). */
  z.object({ type: z.literal('moved'), ...movedViewSchema.shape }),
  /** Sent while a follow waits for output, so idle streams are not closed for inactivity. */
  z.object({ type: z.literal('keepalive') }),
  /** The end of a logs answer (the job ended, or everything asked for was sent). */
  z.object({ type: z.literal('end') }),
])

export type ClientResponse = z.infer<typeof responseSchema>
export type ClientErrorResponse = Extract<ClientResponse, { type: 'error' }>

// ---- Encoding

export function encodeClientRequest(request: ClientRequest): Uint8Array {
  return encodeCbor(request)
}

export function decodeClientRequest(bytes: Uint8Array): Decoded<ClientRequest> {
  if (bytes.length > clientWireLimits.maxRequestBytes) return { ok: false, reason: `request of ${bytes.length} bytes exceeds maxRequestBytes (${clientWireLimits.maxRequestBytes})` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const value = parsed.value
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'request is not a CBOR map' }
  const kind = (value as { kind?: unknown }).kind
  if (!isRequestKind(kind)) return { ok: false, reason: `unknown request kind ${JSON.stringify(kind)?.slice(0, 64) ?? 'undefined'} (known: ${Object.keys(requestSchemas).join(', ')})` }
  const result = requestSchemas[kind].safeParse(value)
  if (!result.success) return { ok: false, reason: `${kind}: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data as ClientRequest }
}

export function encodeClientResponse(response: ClientResponse): Uint8Array {
  return encodeCbor(response)
}

export function decodeClientResponse(bytes: Uint8Array): Decoded<ClientResponse> {
  if (bytes.length > clientWireLimits.maxResponseFrameBytes) return { ok: false, reason: `response frame of ${bytes.length} bytes exceeds maxResponseFrameBytes` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const result = responseSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, reason: `response: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data }
}

/** Checks a result value against the schema of the request kind it answers. */
export function decodeClientResult<K extends ClientRequestKind>(kind: K, value: unknown): Decoded<ClientResult<K>> {
  const result = resultSchemas[kind].safeParse(value)
  if (!result.success) return { ok: false, reason: `${kind} result: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data as ClientResult<K> }
}

/** An error frame whose message fits the limit. */
export function errorResponse(code: ClientErrorCode, message: string, jobId?: string): ClientErrorResponse {
  const clipped = message.length > clientWireLimits.maxErrorMessageChars ? `${message.slice(0, clientWireLimits.maxErrorMessageChars - 3)}...` : message
  return jobId === undefined ? { type: 'error', code, message: clipped } : { type: 'error', code, message: clipped, jobId }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ')
}
