// The wire form of what peers exchange: PeerMessage on the consensus stream protocol,
// CapacityGossip on the capacity topic, NodeMetrics on the metrics topic and AddressGossip on the
// addresses topic. Strict CBOR
// (codec/cbor.ts) with the sync data as a byte string; the zod schemas below are the wire schema.
// Every inbound byte string is checked against a named size limit and its kind's schema before
// anything reaches the core; a refusal is a value with a reason, never an exception.
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import type { CapacityGossip, PeerMessage } from '../consensus/index.ts'
// The leaf module, not the consensus barrel: the CLI decodes client answers with this file and should not load Automerge for it.
import { maxElectionTimeoutMs } from '../consensus/election-timing.ts'

// ---- Named limits (STYLE: every message has a maximum)

/** The largest frame the consensus stream accepts at all (a full document sync of a big cluster). */
export const maxPeerFrameBytes = 8 * 1024 * 1024
/** Per kind: control messages are tiny; heads lists and awards grow with the cluster; sync is the bulk. */
export const maxPeerMessageBytes: Record<PeerMessage['kind'], number> = {
  'pre-vote': 1_024,
  'pre-vote-response': 1_024,
  vote: 1_024,
  'vote-response': 128 * 1024,
  heartbeat: 1_024,
  'heartbeat-ack': 1_024,
  barrier: 1_024,
  'barrier-reply': 128 * 1024,
  sync: maxPeerFrameBytes,
  award: 1024 * 1024,
  'call-for-bids': 256 * 1024,
  bid: 16 * 1024,
  'standing-bid': 16 * 1024,
  'lease-request': 1_024,
  'lease-grant': 128 * 1024,
}
export const maxCapacityGossipBytes = 4 * 1024
/** A metrics message is a dozen numbers and a node id (some 600 bytes at most). */
export const maxNodeMetricsBytes = 2 * 1024
/** An address announcement: at most maxAnnouncedAddresses multiaddrs of at most maxAddressLength characters. */
export const maxAddressGossipBytes = 8 * 1024
export const maxAnnouncedAddresses = 16
export const maxAddressLength = 256
export const maxHeads = 1_024
export const maxAwardJobs = 10_000
export const maxNodeIdLength = 128
export const maxJobIdLength = 256
/** Job classes in one call for bids (the auction's maxClassesPerRound). */
export const maxCallClasses = 512
export const maxLabels = 64
export const maxNameLength = 256

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string }

// ---- Schemas

const counter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
/**
 * Terms move by one per election, only through voters (the trust model): a term at 2^48 would take a
 * million years of elections every 100 ms, so a larger one is a bug or an attack, never a term.
 */
export const maxTerm = 2 ** 48
const term = z.number().int().nonnegative().max(maxTerm)
/** A committee's stamp, "term.seq" (consensus/committee.ts). */
const committeeStamp = z.string().regex(/^\d{1,15}\.\d{1,15}$/)
/** An incarnation (the sync channel's epoch) and an actor: hex (consensus/actors.ts). */
const incarnation = z.string().regex(/^(?:[0-9a-f]{2}){1,16}$/)
const actor = z.string().regex(/^(?:[0-9a-f]{2}){0,160}$/)
const nodeId = z.string().min(1).max(maxNodeIdLength)
/** Automerge change hashes: 32 bytes of SHA-256 in hex. */
const heads = z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(maxHeads)
/** A CBOR byte string (cborg decodes it as a copy, owned by the message): Automerge sync data, a genesis. */
export const byteString = z.custom<Uint8Array>((value) => value instanceof Uint8Array, 'expected a byte string')

const name = z.string().max(maxNameLength)
const amount = z.number().finite().nonnegative()
const names = z.array(name).max(maxLabels)
const labels = z.record(name, name).refine((value) => Object.keys(value).length <= maxLabels, `at most ${maxLabels} labels`)
const resources = z.strictObject({ cpuMillis: amount, memoryMiB: amount, diskMiB: amount, gpuCount: amount })
const callForBids = z.strictObject({
  roundId: name,
  leaderId: nodeId,
  openedAtMs: z.number().finite(),
  closesAtMs: z.number().finite(),
  classes: z
    .array(
      z.strictObject({
        classId: counter,
        demand: z.strictObject({ cpuMillis: amount, memoryMiB: amount, diskMiB: amount, gpuCount: amount, gpuModels: names, gpuMinMemoryMiB: amount }),
        constraints: z.strictObject({
          providers: names.optional(),
          regions: names.optional(),
          azIds: names.optional(),
          labels,
          allowedCountries: names.optional(),
          spotAllowed: z.boolean(),
        }),
        maxPricePerHour: amount.optional(),
        replicas: counter,
      }),
    )
    .max(maxCallClasses),
})
const bid = z.strictObject({
  roundId: name,
  nodeId,
  provider: name,
  region: name,
  azId: name,
  country: name,
  spot: z.boolean(),
  labels,
  placementGroup: name.optional(),
  efa: z.boolean(),
  gpu: z.strictObject({ model: name, memoryMiB: amount }).optional(),
  free: resources,
  performanceScore: amount,
  reliability: z.strictObject({ uptime: z.number().min(0).max(1), interruptions: counter }),
  estimatedStartMs: z.number().finite(),
  asks: z.array(z.strictObject({ classId: counter, askPerHour: amount })).max(maxCallClasses),
  signature: z.string().max(1_024),
})
/** A standing bid: the node's offer without its id (the sender's) or free room (the leader's accounting), and its bid policy. */
const standingBid = z.strictObject({
  offer: z.strictObject({
    provider: name,
    region: name,
    azId: name,
    country: name,
    instanceType: name.optional(),
    spot: z.boolean(),
    labels,
    placementGroup: name.optional(),
    efa: z.boolean(),
    gpu: z.strictObject({ model: name, memoryMiB: amount }).optional(),
    capacity: resources,
    prices: z.strictObject({ perCpuHour: amount, perMemoryGiBHour: amount, perGpuHour: amount }),
    performanceScore: amount,
    reliability: z.strictObject({ uptime: z.number().min(0).max(1), interruptions: counter }),
    startDelayMs: amount,
  }),
  policy: z.strictObject({ utilisationMarkup: amount, minUptimeToBid: z.number().min(0).max(1) }),
})

const peerMessageSchemas = {
  'pre-vote': z.strictObject({ kind: z.literal('pre-vote'), term, committee: committeeStamp }),
  'pre-vote-response': z.strictObject({ kind: z.literal('pre-vote-response'), term, granted: z.boolean() }),
  vote: z.strictObject({ kind: z.literal('vote'), term, committee: committeeStamp }),
  'vote-response': z.strictObject({ kind: z.literal('vote-response'), term, granted: z.boolean(), heads: heads.optional() }),
  // The leader's effective election timeout: within the core's bounds (absent from older leaders).
  heartbeat: z.strictObject({ kind: z.literal('heartbeat'), term, round: counter, commitSeq: counter, electionTimeoutMs: z.number().int().positive().max(maxElectionTimeoutMs).optional() }),
  'heartbeat-ack': z.strictObject({ kind: z.literal('heartbeat-ack'), term, round: counter }),
  barrier: z.strictObject({ kind: z.literal('barrier'), term }),
  'barrier-reply': z.strictObject({ kind: z.literal('barrier-reply'), term, heads }),
  sync: z.strictObject({
    kind: z.literal('sync'),
    term,
    data: byteString.nullable(),
    ack: z.strictObject({ term, leaderSeq: counter, originSeq: counter, origin: actor }),
    channel: z.strictObject({ epoch: incarnation, seq: counter }),
    leaderHint: nodeId.nullable(),
  }),
  award: z.strictObject({
    kind: z.literal('award'),
    term,
    jobs: z.array(z.strictObject({ jobId: z.string().min(1).max(maxJobIdLength), seq: counter })).max(maxAwardJobs),
  }),
  'call-for-bids': z.strictObject({ kind: z.literal('call-for-bids'), term, call: callForBids }),
  bid: z.strictObject({ kind: z.literal('bid'), term, bid }),
  'standing-bid': z.strictObject({ kind: z.literal('standing-bid'), term, standing: standingBid.nullable() }),
  'lease-request': z.strictObject({ kind: z.literal('lease-request'), term, round: counter }),
  'lease-grant': z.strictObject({ kind: z.literal('lease-grant'), term, round: counter, durationMs: z.number().int().positive().max(3_600_000), heads }),
} as const

const signedAmount = z.number().int().min(-(2 ** 40)).max(2 ** 40)
const freeResources = z.strictObject({ cpuMillis: signedAmount, memoryMiB: signedAmount, diskMiB: signedAmount, gpuCount: signedAmount })
const capacityGossipSchema = z.strictObject({ nodeId, seq: counter, free: freeResources, running: counter })
/** The fields of a metrics message; the client's node view shows them again, with their age. */
export const nodeMetricsFields = {
  nodeId,
  /** The sender's own count of metrics it published, and its wall clock then (staleness is gossipsub's seqno). */
  seq: counter,
  atMs: counter,
  runningJobs: counter,
  rssBytes: counter,
  heapUsedBytes: counter,
  heapTotalBytes: counter,
  loadAverage1m: z.number().finite().nonnegative().max(1e6),
  inboxLength: counter,
  inboxDropped: counter,
  /** Messages the consensus core refused (its droppedMessages). */
  coreRefusedMessages: counter,
  clientRequestsServed: counter,
  clientRequestsRefused: counter,
  snapshotBytesServed: counter,
}
const nodeMetricsSchema = z.strictObject(nodeMetricsFields)
/** What a Shuttle tells the mesh about itself every metricsPublishIntervalMs (node/metrics-gossip.ts). */
export type NodeMetrics = z.infer<typeof nodeMetricsSchema>
const addressGossipSchema = z.strictObject({ nodeId, seq: counter, addresses: z.array(z.string().min(1).max(maxAddressLength)).max(maxAnnouncedAddresses) })
/** Where a node listens, signed by it (node/peer-discovery.ts dials members at these). */
export type AddressGossip = z.infer<typeof addressGossipSchema>

const isPeerMessageKind = (kind: unknown): kind is PeerMessage['kind'] =>
  typeof kind === 'string' && Object.hasOwn(peerMessageSchemas, kind)

// ---- Encoding

export function encodePeerMessage(message: PeerMessage): Uint8Array {
  return encodeCbor(message)
}

export function decodePeerMessage(bytes: Uint8Array): Decoded<PeerMessage> {
  if (bytes.length > maxPeerFrameBytes) return { ok: false, reason: `frame of ${bytes.length} bytes exceeds maxPeerFrameBytes (${maxPeerFrameBytes})` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const value = parsed.value
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not an object' }
  const kind = (value as { kind?: unknown }).kind
  if (!isPeerMessageKind(kind)) return { ok: false, reason: `unknown kind ${JSON.stringify(kind)?.slice(0, 64) ?? 'undefined'}` }
  const limit = maxPeerMessageBytes[kind]
  if (bytes.length > limit) return { ok: false, reason: `${kind} of ${bytes.length} bytes exceeds its limit (${limit})` }
  const result = peerMessageSchemas[kind].safeParse(value)
  if (!result.success) return { ok: false, reason: `${kind}: ${describeIssues(result.error)}` }
  const message = result.data as PeerMessage
  // cborg hands out byte strings as views of its input, a Buffer when the input was one: the core gets a plain Uint8Array (a view, no copy).
  if (message.kind === 'sync' && message.data !== null && message.data.constructor !== Uint8Array) message.data = new Uint8Array(message.data.buffer, message.data.byteOffset, message.data.byteLength)
  return { ok: true, value: message }
}

export function encodeCapacityGossip(gossip: CapacityGossip): Uint8Array {
  return encodeCbor(gossip)
}

export function decodeCapacityGossip(bytes: Uint8Array): Decoded<CapacityGossip> {
  if (bytes.length > maxCapacityGossipBytes) return { ok: false, reason: `capacity gossip of ${bytes.length} bytes exceeds maxCapacityGossipBytes (${maxCapacityGossipBytes})` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const result = capacityGossipSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, reason: `capacity: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data as CapacityGossip }
}

export function encodeNodeMetrics(metrics: NodeMetrics): Uint8Array {
  return encodeCbor(metrics)
}

export function decodeNodeMetrics(bytes: Uint8Array): Decoded<NodeMetrics> {
  if (bytes.length > maxNodeMetricsBytes) return { ok: false, reason: `metrics of ${bytes.length} bytes exceed maxNodeMetricsBytes (${maxNodeMetricsBytes})` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const result = nodeMetricsSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, reason: `metrics: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data }
}

export function encodeAddressGossip(gossip: AddressGossip): Uint8Array {
  return encodeCbor(gossip)
}

export function decodeAddressGossip(bytes: Uint8Array): Decoded<AddressGossip> {
  if (bytes.length > maxAddressGossipBytes) return { ok: false, reason: `address gossip of ${bytes.length} bytes exceeds maxAddressGossipBytes (${maxAddressGossipBytes})` }
  const parsed = decodeCbor(bytes)
  if (!parsed.ok) return parsed
  const result = addressGossipSchema.safeParse(parsed.value)
  if (!result.success) return { ok: false, reason: `addresses: ${describeIssues(result.error)}` }
  return { ok: true, value: result.data }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ')
}
