// A seeded generator of hostile input for the daemon's inbound surfaces: frames for the consensus
// stream protocol, requests for the client, join, snapshot and snapshot-replicate protocols, and
// payloads and whole gossipsub RPCs for the capacity topic. Each item is malformed (random bytes, wrong shapes, mutated fields,
// CBOR a strict decoder refuses: deep nesting, giant declared lengths, indefinite lengths, tags,
// duplicate keys), truncated, oversized (past a named limit) or forged (another node's identity in a
// field, or a gossip signature that does not match its claimed author). One seed draws everything.
import { encodeCbor } from '../../codec/index.ts'
import { concatBytes } from '../../consensus/index.ts'
import { RPC } from '@libp2p/gossipsub/message'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { answerCall, type CallForBids } from '../../placement/index.ts'
import { offer } from '../../placement/testing.ts'
import type { SeededRandom } from '../../sim/index.ts'
import { clientWireLimits } from '../client-wire.ts'
import { decodeAddressGossip, decodeCapacityGossip, decodeNodeMetrics, maxAddressGossipBytes, maxAwardJobs, maxCallClasses, maxCapacityGossipBytes, maxHeads, maxNodeMetricsBytes, maxPeerFrameBytes, maxPeerMessageBytes } from '../wire.ts'
import { addressesTopic } from '../address-gossip.ts'
import { capacityTopic } from '../capacity-gossip.ts'
import { metricsTopic } from '../metrics-gossip.ts'
import { createInvite, invitableRoles, inviteLimits, inviteTokenPrefix, verifyInvite } from '../invite-token.ts'
import { joinWireLimits, joinWireVersion } from '../join-wire.ts'
import { maxReplicateMessageBytes } from '../snapshot-keeper.ts'
import { maxChunksPerRequest, maxRequestBytes as maxSnapshotRequestBytes } from '../../snapshots/index.ts'

export interface Identities {
  /** The daemon under attack (a voter, the leader). */
  daemon: string
  /** The fuzzer's own peer id (what noise proves on its connection). */
  fuzzer: string
  /** A third identity the fuzzer claims to be. */
  victim: string
}

const utf8 = new TextEncoder()
const bytesOf = (value: unknown): Uint8Array => encodeCbor(value)

function randomBytes(random: SeededRandom, length: number): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let index = 0; index < length; index++) bytes[index] = random.int(0, 256)
  return bytes
}

/** A value of any type, the odd ones (huge, negative, fractional, long, bytes) more often than chance. */
function randomValue(random: SeededRandom, depth = 0): unknown {
  switch (random.int(0, depth > 1 ? 9 : 11)) {
    case 0: return null
    case 1: return random.chance(0.5)
    case 2: return random.pick([-1, 0, 1.5, 2 ** 53 + 2, 1e308, -1e308, Number.MAX_SAFE_INTEGER])
    case 3: return random.int(0, 1_000_000)
    case 4: return ''
    case 5: return 'x'.repeat(random.int(1, 600))
    case 6: return random.pick(['__proto__', 'constructor', '\u0000', '💥', '../../etc/passwd', '12D3KooW'])
    case 7: return 'ab'.repeat(random.int(1, 40))
    case 8: return random.chance(0.5) ? String(random.uint32()) : randomBytes(random, random.int(0, 64))
    case 9: return Array.from({ length: random.int(0, 5) }, () => randomValue(random, depth + 1))
    default: return Object.fromEntries(Array.from({ length: random.int(0, 4) }, (_, index) => [`k${index}`, randomValue(random, depth + 1)]))
  }
}

/** One mutation of an object: a field dropped, replaced, added, or one level deeper. */
function mutate(random: SeededRandom, value: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...value }
  const keys = Object.keys(copy)
  const key = random.pick(keys)
  switch (random.int(0, 4)) {
    case 0:
      delete copy[key]
      break
    case 1:
      copy[key] = randomValue(random)
      break
    case 2:
      // An own property even when the key is __proto__ (an assignment would set the prototype instead).
      Object.defineProperty(copy, random.pick(['extra', 'kind', '__proto__', 'v']), { value: randomValue(random), enumerable: true, configurable: true, writable: true })
      break
    default: {
      const inner = copy[key]
      if (typeof inner === 'object' && inner !== null && !Array.isArray(inner) && !(inner instanceof Uint8Array) && Object.keys(inner).length > 0) copy[key] = mutate(random, inner as Record<string, unknown>)
      else copy[key] = randomValue(random)
    }
  }
  return copy
}

/** Encoded bytes, then malformed in one of several ways (or left whole). */
function damage(random: SeededRandom, bytes: Uint8Array): Uint8Array {
  switch (random.int(0, 4)) {
    case 0: return bytes.subarray(0, random.int(0, bytes.length)) // truncated
    case 1: {
      const flipped = bytes.slice()
      for (let flips = random.int(1, 4); flips > 0; flips--) flipped[random.int(0, flipped.length)] = random.int(0, 256)
      return flipped
    }
    case 2: return concatBytes([bytes, randomBytes(random, random.int(1, 16))]) // trailing garbage
    default: return bytes
  }
}

/** Well-formed CBOR of `value` with a padding field, just past `limit` bytes. */
function padPast(value: Record<string, unknown>, limit: number): Uint8Array {
  let padding = Math.max(0, limit + 1 - bytesOf(value).length)
  for (;;) {
    const bytes = bytesOf({ ...value, pad: 'x'.repeat(padding) })
    if (bytes.length > limit) return bytes
    padding += limit + 1 - bytes.length
  }
}

// ---- CBOR a strict decoder must refuse (codec/cbor.ts), written by hand: cborg would not encode it.

/** A CBOR head: major type and argument, in the shortest form unless `width` (bytes of argument) is forced. */
function cborHead(major: number, argument: bigint, width?: 0 | 1 | 2 | 4 | 8): Uint8Array {
  const bytes = width ?? (argument < 24n ? 0 : argument < 0x100n ? 1 : argument < 0x10000n ? 2 : argument < 0x100000000n ? 4 : 8)
  if (bytes === 0) return new Uint8Array([(major << 5) | Number(argument)])
  const head = new Uint8Array(1 + bytes)
  head[0] = (major << 5) | { 1: 24, 2: 25, 4: 26, 8: 27 }[bytes]
  for (let index = 0; index < bytes; index++) head[bytes - index] = Number((argument >> BigInt(8 * index)) & 0xffn)
  return head
}

/** A value no strict decoder accepts, or one that must cost only a bounded effort to refuse; nesting fills at most `maxBytes`. */
function hostileCborValue(random: SeededRandom, maxBytes: number): Uint8Array {
  switch (random.int(0, 12)) {
    // Nesting far past maxCborDepth: arrays in arrays, or maps in maps.
    case 0: return concatBytes([new Uint8Array(random.int(33, Math.max(34, maxBytes))).fill(0x81), new Uint8Array([0x01])])
    case 1: {
      const level = concatBytes([new Uint8Array([0xa1]), bytesOf('k')])
      return concatBytes([...Array<Uint8Array>(random.int(33, Math.max(34, Math.floor(maxBytes / 3)))).fill(level), new Uint8Array([0xf6])])
    }
    // Giant declared lengths (byte string, text, array, map) over little data.
    case 2: return concatBytes([cborHead(random.pick([2, 3, 4, 5]), random.pick([0xffffffffn, 0xffffffffffffffffn, 1n << 40n])), randomBytes(random, random.int(0, 16))])
    // Indefinite lengths, and a lone break.
    case 3: return random.pick([new Uint8Array([0x9f, 0x01, 0xff]), new Uint8Array([0xbf, 0x61, 0x61, 0x01, 0xff]), new Uint8Array([0x5f, 0x41, 0x00, 0xff]), new Uint8Array([0x7f, 0x61, 0x61, 0xff]), new Uint8Array([0xff])])
    // Tags: a date, a bignum, a self-described CBOR, a big tag number.
    case 4: return concatBytes([cborHead(6, random.pick([0n, 1n, 2n, 24n, 55799n, 0xffffffffn])), bytesOf(random.pick([1, 'x', new Uint8Array([1])]))])
    // Non-minimal integer and length forms.
    case 5: return random.pick([cborHead(0, 1n, 8), cborHead(0, 23n, 1), concatBytes([cborHead(3, 1n, 4), utf8.encode('x')])])
    // Simple values JSON never had and our schemas do not want: undefined, NaN, Infinity, a simple(99).
    case 6: return random.pick([new Uint8Array([0xf7]), new Uint8Array([0xf9, 0x7e, 0x00]), new Uint8Array([0xf9, 0x7c, 0x00]), new Uint8Array([0xf8, 0x63])])
    // Integers past 2^53 (the decoder would need a BigInt).
    case 7: return random.pick([cborHead(0, 0xffffffffffffffffn), cborHead(1, 1n << 60n)])
    // Text that is not UTF-8.
    case 8: return concatBytes([cborHead(3, 2n), new Uint8Array([0xc3, 0x28])])
    // A map with an integer key.
    case 9: return new Uint8Array([0xa1, 0x01, 0x01])
    // Truncated in the middle of a head.
    case 10: return cborHead(random.pick([0, 2, 4]), 0xffffffffn).subarray(0, random.int(1, 4))
    default: return randomBytes(random, random.int(1, 32))
  }
}

/**
 * `template` written as a CBOR map by hand, with one field's value replaced by hostile CBOR, or a
 * duplicate of one key (a second `kind`, say) added: the rest of the map is well-formed. Nesting is
 * kept within `maxBytes` (the protocol's frame limit) so that the frame reaches the decoder.
 */
function hostileCbor(random: SeededRandom, template: Record<string, unknown>, maxBytes: number): Uint8Array {
  for (;;) {
    const bytes = hostileCborCandidate(random, template, maxBytes)
    if (bytes.length <= maxBytes) return bytes
  }
}

function hostileCborCandidate(random: SeededRandom, template: Record<string, unknown>, maxBytes: number): Uint8Array {
  const entries = Object.entries(template)
  const parts: Uint8Array[] = []
  const target = random.int(0, entries.length)
  for (const [index, [key, value]] of entries.entries()) {
    parts.push(bytesOf(key), index === target && random.chance(0.8) ? hostileCborValue(random, maxBytes - bytesOf(template).length - 64) : bytesOf(value))
  }
  let count = entries.length
  if (random.chance(0.3) && entries.length > 0) {
    const [key] = random.pick(entries)
    parts.push(bytesOf(key), bytesOf(randomValue(random)))
    count++
  }
  return concatBytes([cborHead(5, BigInt(count)), ...parts])
}

const head = 'ab'.repeat(32)
const inheritedNames = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']

/** Well-formed messages of every kind, each naming someone else where a field can: the seeds of the mutations. */
function consensusTemplates(ids: Identities, random: SeededRandom): Record<string, unknown>[] {
  const call: CallForBids = { roundId: `${ids.daemon}/1/1`, leaderId: ids.daemon, openedAtMs: 0, closesAtMs: 1, classes: [] }
  const term = random.pick([0, 1, 2, 1_000_000, Number.MAX_SAFE_INTEGER])
  const bid = answerCall(offer(ids.daemon), { ...call, leaderId: ids.victim }, 1)
  const { nodeId: _nodeId, free: _free, ...standingOffer } = offer(ids.daemon)
  return [
    { kind: 'pre-vote', term, committee: '99.1' },
    { kind: 'pre-vote-response', term, granted: true },
    { kind: 'vote', term, committee: '99.1' },
    { kind: 'vote-response', term, granted: true, heads: [head] },
    { kind: 'heartbeat', term, round: random.int(0, 100), commitSeq: random.int(0, 100) },
    { kind: 'heartbeat-ack', term, round: 1 },
    { kind: 'barrier', term },
    { kind: 'barrier-reply', term, heads: [head] },
    { kind: 'sync', term, data: randomBytes(random, random.int(1, 200)), ack: { term, leaderSeq: 1_000, originSeq: 1_000, origin: '' }, channel: { epoch: random.int(0, 1_000).toString(16).padStart(4, '0'), seq: random.int(0, 100) }, leaderHint: ids.victim },
    { kind: 'sync', term, data: null, ack: { term, leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: '01', seq: random.int(0, 100) }, leaderHint: ids.daemon },
    // A lease the fuzzer grants itself (only a voter's grant counts), and a request for one (it is no registered node).
    { kind: 'lease-grant', term, round: 1, durationMs: 3_600_000, heads: [head] },
    { kind: 'lease-request', term, round: random.int(0, 100) },
    { kind: 'award', term, jobs: [{ jobId: random.pick(['forged-job', ...inheritedNames]), seq: 1 }] },
    { kind: 'call-for-bids', term, call },
    // A bid naming the daemon itself (the bidder field must be the sender's own id).
    { kind: 'bid', term, bid },
    // A standing bid claiming a thousand times the capacity at no price, and a withdrawal.
    { kind: 'standing-bid', term, standing: { offer: { ...standingOffer, capacity: { ...standingOffer.capacity, cpuMillis: standingOffer.capacity.cpuMillis * 1_000 }, prices: { perCpuHour: 0, perMemoryGiBHour: 0, perGpuHour: 0 } }, policy: { utilisationMarkup: 0, minUptimeToBid: 0 } } },
    { kind: 'standing-bid', term, standing: null },
  ]
}

/** `count` frames for /fabric/consensus/1.0.0, every one within maxPeerFrameBytes. */
export function consensusFrames(random: SeededRandom, ids: Identities, count: number): Uint8Array[] {
  const frames: Uint8Array[] = []
  // Past each kind's limit once (a sync's limit is the frame's: see oversizedConsensusFrame), and past the list limits of the schema.
  for (const template of consensusTemplates(ids, random)) {
    const limit = maxPeerMessageBytes[template.kind as keyof typeof maxPeerMessageBytes]
    if (limit < maxPeerFrameBytes) frames.push(padPast(template, limit))
  }
  // Large but within the frame limit (past libp2p's default 4 MiB stream buffer): undecodable sync data the core drops.
  const sync = consensusTemplates(ids, random).find((template) => template.kind === 'sync' && template.data !== null)!
  frames.push(bytesOf({ ...sync, data: randomBytes(random, 5 * 1024 * 1024) }))
  // A sync whose data declares 4 GiB, and a whole frame of nesting (within the frame limit).
  frames.push(concatBytes([bytesOf({ ...sync, data: null }).subarray(0, -1), cborHead(2, 0xffffffffn)]))
  frames.push(new Uint8Array(maxPeerMessageBytes.sync - 1).fill(0x81))
  frames.push(bytesOf({ kind: 'vote-response', term: 1, granted: true, heads: Array(maxHeads + 1).fill(head) }))
  frames.push(bytesOf({ kind: 'award', term: 1, jobs: Array.from({ length: maxAwardJobs + 1 }, (_, seq) => ({ jobId: 'j', seq })) }))
  frames.push(bytesOf({ kind: 'call-for-bids', term: 1, call: { roundId: 'r', leaderId: ids.daemon, openedAtMs: 0, closesAtMs: 1, classes: Array(maxCallClasses + 1).fill({}) } }))
  while (frames.length < count) {
    const templates = consensusTemplates(ids, random)
    switch (random.int(0, 6)) {
      case 0:
        frames.push(randomBytes(random, random.int(0, 300)))
        break
      case 5:
        frames.push(hostileCbor(random, random.pick(templates), 200_000))
        break
      case 1:
        frames.push(bytesOf(randomValue(random)))
        break
      case 2:
        // Well-formed, from a peer that is no voter, naming others: the core must drop it.
        frames.push(bytesOf(random.pick(templates)))
        break
      default:
        frames.push(damage(random, bytesOf(mutate(random, random.pick(templates)))))
    }
  }
  return frames
}

/** One frame just past maxPeerFrameBytes: it cannot be skipped, so it costs its stream. */
export function oversizedConsensusFrame(): Uint8Array {
  return new Uint8Array(maxPeerFrameBytes + 1).fill(0x81)
}

/**
 * `count` request frames for /fabric/client/1.0.0 (one per stream): malformed, oversized, naming
 * another client, or well-formed requests that read or must be refused (an invalid spec, jobs that
 * do not exist). None may change the cluster document.
 */
export function clientRequests(random: SeededRandom, ids: Identities, count: number): Uint8Array[] {
  const envelope = (client: string) => ({ v: 1, requestId: `fuzz${random.int(0, 1_000_000)}`, client })
  // Requests that read, or that the daemon must refuse (an invalid spec, jobs that do not exist).
  const harmless = (client: string): Record<string, unknown>[] => [
    { ...envelope(client), kind: 'submit', spec: random.pick(['name: Bad Name\n', '{"name": "x", "resources": {"cpu": -1}}', ': [', 'name: ok\ncommand: []\nresources: {cpu: 0}\n']) },
    { ...envelope(client), kind: 'jobs', limit: random.int(1, 100) },
    { ...envelope(client), kind: 'job', jobId: `no-such-${random.int(0, 1_000)}` },
    { ...envelope(client), kind: 'logs', jobId: 'no-such-job', follow: false, stream: 'both' },
    { ...envelope(client), kind: 'nodes' },
    { ...envelope(client), kind: 'leader' },
    { ...envelope(client), kind: 'status' },
    { ...envelope(client), kind: 'cancel', jobId: `no-such-${random.int(0, 1_000)}` },
    { ...envelope(client), kind: 'migrate', jobId: `no-such-${random.int(0, 1_000)}`, to: random.pick([null, ids.victim, ids.daemon]) },
    { ...envelope(client), kind: 'explain', jobId: 'no-such-job', forwarded: random.chance(0.5) },
    { ...envelope(client), kind: 'plan', spec: 'name: fuzz-plan\ncommand: [true]\nresources: {cpu: 1, memory: 1Mi}\n' },
    // Ids that are members of every JavaScript object: they must read as unknown jobs and nodes.
    { ...envelope(client), kind: random.pick(['job', 'cancel', 'explain']), jobId: random.pick(inheritedNames) },
    { ...envelope(client), kind: 'migrate', jobId: random.pick(inheritedNames), to: random.pick([null, ...inheritedNames]) },
    { ...envelope(client), kind: 'logs', jobId: random.pick(inheritedNames), follow: false, stream: 'stdout' },
    // Snapshots and moves of jobs and nodes that do not exist (a node may pass a checkpoint on; drains need an admin).
    { ...envelope(client), kind: 'checkpoint', jobId: random.pick([`no-such-${random.int(0, 1_000)}`, ...inheritedNames]), forwarded: random.chance(0.5) },
    { ...envelope(client), kind: 'snapshots', jobId: random.pick([`no-such-${random.int(0, 1_000)}`, ...inheritedNames]) },
    { ...envelope(client), kind: 'restore-progress', jobId: random.pick(['no-such-job', ...inheritedNames]), waitMs: random.int(1, 50) },
    { ...envelope(client), kind: random.pick(['drain', 'undrain']), nodeId: random.pick([ids.victim, ids.daemon, ...inheritedNames]) },
    { ...envelope(client), kind: 'migrate', jobId: `no-such-${random.int(0, 1_000)}`, to: null, region: random.pick(['eu', ...inheritedNames]), follow: random.chance(0.5), waitMs: random.int(1, 50) },
  ]
  const requests: Uint8Array[] = [
    new Uint8Array(clientWireLimits.maxRequestBytes + 1).fill(0x81),
    new Uint8Array(clientWireLimits.maxRequestBytes).fill(0x81),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'submit', spec: `name: x\n#${'x'.repeat(clientWireLimits.maxSpecTextBytes)}` }),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'jobs', limit: clientWireLimits.maxListedJobs + 1 }),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'job', jobId: 'j'.repeat(clientWireLimits.maxIdLength + 1) }),
  ]
  while (requests.length < count) {
    switch (random.int(0, 7)) {
      case 0:
        requests.push(randomBytes(random, random.int(0, 200)))
        break
      case 1:
        requests.push(bytesOf(randomValue(random)))
        break
      case 6:
        requests.push(hostileCbor(random, random.pick(harmless(ids.fuzzer)), clientWireLimits.maxRequestBytes))
        break
      case 2:
        // Well-formed, but naming a client other than the one the connection authenticated.
        requests.push(bytesOf(random.pick(harmless(random.pick([ids.victim, ids.daemon])))))
        break
      case 3:
        requests.push(bytesOf(random.pick(harmless(ids.fuzzer))))
        break
      default: {
        // Mutated (it may stay well-formed: the test judges each by the decoder); a spec stays invalid.
        const mutated = mutate(random, random.pick(harmless(ids.fuzzer)))
        if (mutated.kind === 'submit' && typeof mutated.spec === 'string') mutated.spec = `name: Not Valid\n${mutated.spec}`
        requests.push(damage(random, bytesOf(mutated)))
      }
    }
  }
  return requests
}

const seqnoBytes = (seq: bigint): Uint8Array => {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, seq, false)
  return bytes
}

export interface GossipFuzzMessage {
  message: RPC.Message
  /** 'validator': signed by the fuzzer as itself, so only the capacity topic's validator can refuse it. */
  refusedBy: 'validator' | 'signature' | 'unsigned'
}

/** One signed topic as the fuzzer attacks it: a well-formed payload's shape, its decoder and size limit. */
export interface FuzzedTopic {
  topic: string
  template(nodeId: string, seq: number): Record<string, unknown>
  decode(bytes: Uint8Array): { ok: true; value: { nodeId: string } } | { ok: false }
  maxBytes: number
}

/** The three signed topics a Shuttle validates (signed-topic.ts): capacity, metrics, addresses. */
export const fuzzedTopics: readonly FuzzedTopic[] = [
  {
    topic: capacityTopic,
    template: (nodeId, seq) => ({ nodeId, seq, free: { cpuMillis: 1_000, memoryMiB: 1_024, diskMiB: 0, gpuCount: 0 }, running: 0 }),
    decode: decodeCapacityGossip,
    maxBytes: maxCapacityGossipBytes,
  },
  {
    topic: metricsTopic,
    template: (nodeId, seq) => ({
      nodeId, seq, atMs: 1, runningJobs: 0, rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, loadAverage1m: 0.5, inboxLength: 0, inboxDropped: 0,
      coreRefusedMessages: 0, clientRequestsServed: 0, clientRequestsRefused: 0, snapshotBytesServed: 0,
    }),
    decode: decodeNodeMetrics,
    maxBytes: maxNodeMetricsBytes,
  },
  {
    topic: addressesTopic,
    template: (nodeId, seq) => ({ nodeId, seq, addresses: ['/ip4/127.0.0.1/tcp/4001'] }),
    decode: decodeAddressGossip,
    maxBytes: maxAddressGossipBytes,
  },
]

/** Payloads the topic's validator must refuse: malformed, oversized, or naming another node. */
function topicPayload(random: SeededRandom, ids: Identities, topic: FuzzedTopic): Uint8Array {
  for (;;) {
    const payload = topicCandidate(random, ids, topic)
    // A mutation can leave a well-formed payload naming the fuzzer itself: that one would be accepted.
    const decoded = topic.decode(payload)
    if (!decoded.ok || decoded.value.nodeId !== ids.fuzzer) return payload
  }
}

function topicCandidate(random: SeededRandom, ids: Identities, topic: FuzzedTopic): Uint8Array {
  const own = topic.template(ids.fuzzer, random.int(0, 1_000))
  switch (random.int(0, 6)) {
    case 0: return randomBytes(random, random.int(0, 300))
    case 1: return padPast(own, topic.maxBytes)
    case 5: return hostileCbor(random, own, topic.maxBytes)
    case 2: return damage(random, bytesOf(mutate(random, own)))
    default: return bytesOf(topic.template(random.pick([ids.daemon, ids.victim]), random.int(0, 1_000))) // well-formed, signed by the fuzzer, naming the daemon or the victim
  }
}

/**
 * `count` gossipsub messages on `topic`: signed by the fuzzer as itself with a payload the validator
 * must refuse, or claiming another author (the daemon, the victim) under the fuzzer's signature, or
 * with a broken signature, or unsigned.
 */
export async function gossipMessages(random: SeededRandom, ids: Identities, fuzzerKey: PrivateKey, count: number, topic: FuzzedTopic = fuzzedTopics[0]!): Promise<GossipFuzzMessage[]> {
  const messages: GossipFuzzMessage[] = []
  // gossipsub knows a message by author and seqno: each topic draws from its own range, or one
  // topic's messages would be dropped as seen before the validator could refuse them.
  let seq = (1n << 40n) + (BigInt(Math.max(0, fuzzedTopics.indexOf(topic))) << 32n)
  const sign = async (from: string, data: Uint8Array): Promise<RPC.Message> => {
    const unsigned: RPC.Message = { from: peerIdFromString(from).toMultihash().bytes, data, seqno: seqnoBytes(seq++), topic: topic.topic }
    const signature = await fuzzerKey.sign(concatBytes([utf8.encode('libp2p-pubsub:'), RPC.Message.encode(unsigned)]))
    return { ...unsigned, signature }
  }
  while (messages.length < count) {
    const data = topicPayload(random, ids, topic)
    switch (random.int(0, 6)) {
      case 0:
        messages.push({ message: await sign(random.pick([ids.daemon, ids.victim]), bytesOf(topic.template(ids.victim, 1))), refusedBy: 'signature' })
        break
      case 1: {
        const signed = await sign(ids.fuzzer, data)
        messages.push({ message: { ...signed, signature: randomBytes(random, 64) }, refusedBy: 'signature' })
        break
      }
      case 2:
        messages.push({ message: { data, topic: topic.topic }, refusedBy: 'unsigned' })
        break
      default:
        messages.push({ message: await sign(ids.fuzzer, data), refusedBy: 'validator' })
    }
  }
  return messages
}

/** Whole RPC frames: the messages in batches, plus malformed protobuf (framing intact). */
export function gossipRpcFrames(random: SeededRandom, messages: readonly GossipFuzzMessage[], batch: number): Uint8Array[] {
  const frames: Uint8Array[] = []
  for (let start = 0; start < messages.length; start += batch) {
    const slice = messages.slice(start, start + batch).map((entry) => entry.message)
    const topics = [...new Set(slice.map((message) => message.topic))]
    const rpc = RPC.encode({ subscriptions: topics.map((topic) => ({ subscribe: true, topic })), messages: slice })
    frames.push(rpc)
    if (random.chance(0.3)) frames.push(rpc.subarray(0, random.int(1, rpc.length))) // truncated protobuf
    if (random.chance(0.3)) frames.push(randomBytes(random, random.int(1, 400)))
  }
  return frames
}

export interface InviteKeys {
  /** The mesh's admin key: the only key whose invites the daemon honours. */
  adminKey: PrivateKey
  /** Any other key. */
  forgerKey: PrivateKey
  meshId: string
  nowMs: number
}

const hourMs = 3_600_000
const hex = (random: SeededRandom, length: number): string => Array.from({ length }, () => '0123456789abcdef'[random.int(0, 16)]).join('')
const nonceOf = (random: SeededRandom): string => Buffer.from(randomBytes(random, inviteLimits.nonceBytes)).toString('base64url')

/** One token that fails exactly one check (or several): forged, altered, expired, for another mesh or peer, or malformed. */
async function inviteCandidate(random: SeededRandom, ids: Identities, keys: InviteKeys): Promise<string> {
  const role = random.pick(invitableRoles)
  const valid = { adminKey: keys.adminKey, meshId: keys.meshId, role, ttlMs: hourMs, nowMs: keys.nowMs, nonce: nonceOf(random) }
  const parts = (token: string): [string, string] => token.slice(inviteTokenPrefix.length).split('.') as [string, string]
  switch (random.int(0, 10)) {
    case 0: return createInvite({ ...valid, adminKey: keys.forgerKey })
    case 1: {
      // The admin's signature over another payload: a role, peer or expiry raised after signing.
      const [, signature] = parts(await createInvite(valid))
      const payload = { mesh: keys.meshId, role: 'admin', nonce: nonceOf(random), exp: keys.nowMs + 1_000 * hourMs }
      return `${inviteTokenPrefix}${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`
    }
    case 2: {
      const [payload, signature] = parts(await createInvite(valid))
      const bytes = Buffer.from(signature, 'base64url')
      bytes[random.int(0, bytes.length)]! ^= 1 << random.int(0, 8)
      return `${inviteTokenPrefix}${payload}.${bytes.toString('base64url')}`
    }
    case 3: return createInvite({ ...valid, nowMs: keys.nowMs - random.int(2, 24 * 30) * hourMs })
    case 4: return createInvite({ ...valid, meshId: hex(random, 64) })
    case 5: return createInvite({ ...valid, peer: random.pick([ids.victim, ids.daemon]) })
    case 6: return createInvite({ ...valid, meshId: hex(random, 64), nowMs: keys.nowMs - 2 * hourMs, adminKey: random.pick([keys.adminKey, keys.forgerKey]) })
    case 7: {
      // Well-signed payloads the schema refuses.
      const payload = mutate(random, { mesh: keys.meshId, role, nonce: nonceOf(random), exp: keys.nowMs + hourMs })
      return `${inviteTokenPrefix}${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${Buffer.from(await keys.adminKey.sign(randomBytes(random, 8))).toString('base64url')}`
    }
    case 8: return random.pick([inviteTokenPrefix, `${inviteTokenPrefix}a.b.c`, `${inviteTokenPrefix}!!.??`, 'x'.repeat(random.int(1, 200)), `${inviteTokenPrefix}${Buffer.from('not json').toString('base64url')}.AA`])
    default: {
      const token = await createInvite(valid)
      const damaged = Buffer.from(damage(random, utf8.encode(token))).toString('latin1')
      return damaged.length > 0 ? damaged : token.slice(0, -1)
    }
  }
}

/**
 * `count` invite tokens for the join protocol, every one of which this mesh must refuse when the
 * fuzzer presents it (checked here with the daemon's own verifyInvite: a token that would admit is
 * drawn again, so no frame can change the document).
 */
export async function forgedInvites(random: SeededRandom, ids: Identities, keys: InviteKeys, count: number): Promise<string[]> {
  const tokens: string[] = []
  while (tokens.length < count) {
    const token = await inviteCandidate(random, ids, keys)
    const verdict = await verifyInvite(token, { adminId: peerIdFromPrivateKey(keys.adminKey).toString(), meshId: keys.meshId, peerId: ids.fuzzer, nowMs: keys.nowMs })
    if (!verdict.ok) tokens.push(token)
  }
  return tokens
}

/** `count` frames for /fabric/join/1.0.0 (one per stream): malformed, oversized, or well-formed around a refused token. */
export function joinRequests(random: SeededRandom, tokens: readonly string[], count: number): Uint8Array[] {
  const request = (): Record<string, unknown> => ({ v: joinWireVersion, token: random.pick(tokens) })
  const requests: Uint8Array[] = [
    padPast(request(), joinWireLimits.maxRequestBytes),
    bytesOf({ v: joinWireVersion, token: `${inviteTokenPrefix}${'a'.repeat(inviteLimits.maxTokenChars)}` }),
    new Uint8Array(0),
  ]
  while (requests.length < count) {
    switch (random.int(0, 6)) {
      case 0:
        requests.push(randomBytes(random, random.int(0, 200)))
        break
      case 1:
        requests.push(bytesOf(randomValue(random)))
        break
      case 2:
        requests.push(damage(random, bytesOf(mutate(random, request()))))
        break
      case 3:
        requests.push(hostileCbor(random, request(), joinWireLimits.maxRequestBytes))
        break
      default:
        requests.push(bytesOf(request()))
    }
  }
  return requests
}

/**
 * `count` request frames for /fabric/snapshots/1.0.0, all on one stream: malformed, hash lists past
 * maxChunksPerRequest, and well-formed requests for manifests and chunks the daemon does not hold.
 */
export function snapshotRequests(random: SeededRandom, count: number): Uint8Array[] {
  const hashes = (length: number): string[] => Array.from({ length }, () => hex(random, 64))
  const templates = (): Record<string, unknown>[] => [
    { kind: 'manifest', cid: `b3:${hex(random, 64)}` },
    { kind: 'chunks', hashes: hashes(random.int(1, 9)) },
    { kind: 'manifest', cid: random.pick([`b3:${hex(random, 63)}`, `b3:${hex(random, 64).toUpperCase()}`, hex(random, 64), ...inheritedNames]) },
    { kind: 'chunks', hashes: [random.pick(['', hex(random, 65), `b3:${hex(random, 64)}`, ...inheritedNames])] },
  ]
  const requests: Uint8Array[] = [
    bytesOf({ kind: 'chunks', hashes: hashes(maxChunksPerRequest + 1) }),
    bytesOf({ kind: 'chunks', hashes: hashes(maxChunksPerRequest) }),
    bytesOf({ kind: 'chunks', hashes: [] }),
    new Uint8Array(0),
  ]
  while (requests.length < count) {
    switch (random.int(0, 5)) {
      case 0:
        requests.push(randomBytes(random, random.int(0, 200)))
        break
      case 1:
        requests.push(bytesOf(randomValue(random)))
        break
      case 2:
        requests.push(bytesOf(random.pick(templates())))
        break
      case 3:
        requests.push(hostileCbor(random, random.pick(templates()), maxSnapshotRequestBytes))
        break
      default:
        requests.push(damage(random, bytesOf(mutate(random, random.pick(templates())))))
    }
  }
  return requests
}

/** One snapshot request frame just past maxRequestBytes: it costs its stream. */
export function oversizedSnapshotRequest(): Uint8Array {
  return new Uint8Array(maxSnapshotRequestBytes + 1).fill(0x81)
}

/**
 * `count` frames for /fabric/snapshot-replicate/1.0.0 (one per stream): malformed, oversized, wrong
 * CIDs, a `from` naming another peer, or well-formed asking the daemon to fetch a snapshot from the
 * fuzzer (which serves no snapshots): every one must be refused and nothing fetched.
 */
export function replicateRequests(random: SeededRandom, ids: Identities, count: number): Uint8Array[] {
  const template = (from: string): Record<string, unknown> => ({ cid: `b3:${hex(random, 64)}`, from, owner: random.pick(['job-1#0', '../../etc', ...inheritedNames]) })
  const requests: Uint8Array[] = [
    new Uint8Array(maxReplicateMessageBytes + 1).fill(0x81),
    padPast(template(ids.fuzzer), maxReplicateMessageBytes),
    new Uint8Array(0),
  ]
  while (requests.length < count) {
    switch (random.int(0, 6)) {
      case 0:
        requests.push(randomBytes(random, random.int(0, 200)))
        break
      case 1:
        requests.push(bytesOf(randomValue(random)))
        break
      case 2:
        requests.push(bytesOf(template(random.pick([ids.daemon, ids.victim]))))
        break
      case 3:
        requests.push(bytesOf({ ...template(ids.fuzzer), cid: random.pick([`b3:${hex(random, 63)}`, hex(random, 64), '', ...inheritedNames]) }))
        break
      case 4:
        requests.push(random.chance(0.5) ? bytesOf(template(ids.fuzzer)) : hostileCbor(random, template(ids.fuzzer), maxReplicateMessageBytes))
        break
      default:
        requests.push(damage(random, bytesOf(mutate(random, template(random.pick([ids.fuzzer, ids.victim]))))))
    }
  }
  return requests
}
