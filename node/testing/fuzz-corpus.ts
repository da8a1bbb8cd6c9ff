// A seeded generator of hostile input for the daemon's three inbound surfaces: frames for the
// consensus stream protocol, requests for the client protocol, and payloads and whole gossipsub RPCs
// for the capacity topic. Each item is malformed (random bytes, wrong shapes, mutated fields),
// truncated, oversized (past a named limit) or forged (another node's identity in a field, or a
// gossip signature that does not match its claimed author). One seed draws everything.
import { concatBytes } from '../../consensus/index.ts'
import { RPC } from '@libp2p/gossipsub/message'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { answerCall, type CallForBids } from '../../placement/index.ts'
import { offer } from '../../placement/testing.ts'
import type { SeededRandom } from '../../sim/index.ts'
import { clientWireLimits } from '../client-wire.ts'
import { decodeCapacityGossip, maxAwardJobs, maxCallClasses, maxCapacityGossipBytes, maxHeads, maxPeerFrameBytes, maxPeerMessageBytes } from '../wire.ts'
import { capacityTopic } from '../capacity-gossip.ts'

export interface Identities {
  /** The daemon under attack (a voter, the leader). */
  daemon: string
  /** The fuzzer's own peer id (what noise proves on its connection). */
  fuzzer: string
  /** A third identity the fuzzer claims to be. */
  victim: string
}

const utf8 = new TextEncoder()
const bytesOf = (value: unknown): Uint8Array => utf8.encode(JSON.stringify(value))

function randomBytes(random: SeededRandom, length: number): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let index = 0; index < length; index++) bytes[index] = random.int(0, 256)
  return bytes
}

/** A JSON value of any type, the odd ones (huge, negative, fractional, long) more often than chance. */
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
    case 8: return String(random.uint32())
    case 9: return Array.from({ length: random.int(0, 5) }, () => randomValue(random, depth + 1))
    default: return Object.fromEntries(Array.from({ length: random.int(0, 4) }, (_, index) => [`k${index}`, randomValue(random, depth + 1)]))
  }
}

/** One mutation of a JSON object: a field dropped, replaced, added, or one level deeper. */
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
      copy[random.pick(['extra', 'kind', '__proto__', 'v'])] = randomValue(random)
      break
    default: {
      const inner = copy[key]
      if (typeof inner === 'object' && inner !== null && !Array.isArray(inner) && Object.keys(inner).length > 0) copy[key] = mutate(random, inner as Record<string, unknown>)
      else copy[key] = randomValue(random)
    }
  }
  return copy
}

/** Bytes of `value`'s JSON, then malformed in one of several ways (or left whole). */
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

/** JSON padded with spaces (still valid JSON) to just past `limit` bytes. */
function padPast(value: unknown, limit: number): Uint8Array {
  const text = JSON.stringify(value)
  return utf8.encode(`${' '.repeat(Math.max(0, limit + 1 - text.length))}${text}`)
}

const head = 'ab'.repeat(32)
const inheritedNames = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']

/** Well-formed messages of every kind, each naming someone else where a field can: the seeds of the mutations. */
function consensusTemplates(ids: Identities, random: SeededRandom): Record<string, unknown>[] {
  const call: CallForBids = { roundId: `${ids.daemon}/1/1`, leaderId: ids.daemon, openedAtMs: 0, closesAtMs: 1, classes: [] }
  const term = random.pick([0, 1, 2, 1_000_000, Number.MAX_SAFE_INTEGER])
  const bid = answerCall(offer(ids.daemon), { ...call, leaderId: ids.victim }, 1)
  return [
    { kind: 'pre-vote', term },
    { kind: 'pre-vote-response', term, granted: true },
    { kind: 'vote', term },
    { kind: 'vote-response', term, granted: true, heads: [head] },
    { kind: 'heartbeat', term, round: random.int(0, 100), commitSeq: random.int(0, 100) },
    { kind: 'heartbeat-ack', term, round: 1 },
    { kind: 'barrier', term },
    { kind: 'barrier-reply', term, heads: [head] },
    { kind: 'sync', term, data: Buffer.from(randomBytes(random, random.int(1, 200))).toString('base64'), ack: { term, leaderSeq: 1_000, originSeq: 1_000 }, channel: { epoch: random.int(0, 1_000), seq: random.int(0, 100) }, leaderHint: ids.victim },
    { kind: 'sync', term, data: null, ack: { term, leaderSeq: 0, originSeq: 0 }, channel: { epoch: 1, seq: random.int(0, 100) }, leaderHint: ids.daemon },
    { kind: 'award', term, jobs: [{ jobId: random.pick(['forged-job', ...inheritedNames]), seq: 1 }] },
    { kind: 'call-for-bids', term, call },
    // A bid naming the daemon itself (the bidder field must be the sender's own id).
    { kind: 'bid', term, bid },
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
  frames.push(bytesOf({ ...sync, data: Buffer.from(randomBytes(random, 5 * 1024 * 1024)).toString('base64') }))
  frames.push(bytesOf({ kind: 'vote-response', term: 1, granted: true, heads: Array(maxHeads + 1).fill(head) }))
  frames.push(bytesOf({ kind: 'award', term: 1, jobs: Array.from({ length: maxAwardJobs + 1 }, (_, seq) => ({ jobId: 'j', seq })) }))
  frames.push(bytesOf({ kind: 'call-for-bids', term: 1, call: { roundId: 'r', leaderId: ids.daemon, openedAtMs: 0, closesAtMs: 1, classes: Array(maxCallClasses + 1).fill({}) } }))
  while (frames.length < count) {
    const templates = consensusTemplates(ids, random)
    switch (random.int(0, 5)) {
      case 0:
        frames.push(randomBytes(random, random.int(0, 300)))
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
  return new Uint8Array(maxPeerFrameBytes + 1).fill(0x20)
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
  ]
  const requests: Uint8Array[] = [
    new Uint8Array(clientWireLimits.maxRequestBytes + 1).fill(0x20),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'submit', spec: `name: x\n#${'x'.repeat(clientWireLimits.maxSpecTextBytes)}` }),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'jobs', limit: clientWireLimits.maxListedJobs + 1 }),
    bytesOf({ ...envelope(ids.fuzzer), kind: 'job', jobId: 'j'.repeat(clientWireLimits.maxIdLength + 1) }),
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

/** Capacity payloads the topic validator must refuse: malformed, oversized, or naming another node. */
function capacityPayload(random: SeededRandom, ids: Identities): Uint8Array {
  for (;;) {
    const payload = capacityCandidate(random, ids)
    // A mutation can leave a well-formed gossip naming the fuzzer itself: that one would be accepted.
    const decoded = decodeCapacityGossip(payload)
    if (!decoded.ok || decoded.value.nodeId !== ids.fuzzer) return payload
  }
}

function capacityCandidate(random: SeededRandom, ids: Identities): Uint8Array {
  const gossip = { nodeId: random.pick([ids.daemon, ids.victim]), seq: random.int(0, 1_000), free: { cpuMillis: 1_000, memoryMiB: 1_024, diskMiB: 0, gpuCount: 0 }, running: 0 }
  switch (random.int(0, 5)) {
    case 0: return randomBytes(random, random.int(0, 300))
    case 1: return padPast({ ...gossip, nodeId: ids.fuzzer }, maxCapacityGossipBytes)
    case 2: return damage(random, bytesOf(mutate(random, { ...gossip, nodeId: ids.fuzzer })))
    default: return bytesOf(gossip) // well-formed, signed by the fuzzer, naming the daemon or the victim
  }
}

/**
 * `count` gossipsub messages on the capacity topic: signed by the fuzzer as itself with a payload
 * the validator must refuse, or claiming another author (the daemon, the victim) under the fuzzer's
 * signature, or with a broken signature, or unsigned.
 */
export async function gossipMessages(random: SeededRandom, ids: Identities, fuzzerKey: PrivateKey, count: number): Promise<GossipFuzzMessage[]> {
  const messages: GossipFuzzMessage[] = []
  let seq = 1n << 40n
  const sign = async (from: string, data: Uint8Array): Promise<RPC.Message> => {
    const unsigned: RPC.Message = { from: peerIdFromString(from).toMultihash().bytes, data, seqno: seqnoBytes(seq++), topic: capacityTopic }
    const signature = await fuzzerKey.sign(concatBytes([utf8.encode('libp2p-pubsub:'), RPC.Message.encode(unsigned)]))
    return { ...unsigned, signature }
  }
  while (messages.length < count) {
    const data = capacityPayload(random, ids)
    switch (random.int(0, 6)) {
      case 0:
        messages.push({ message: await sign(random.pick([ids.daemon, ids.victim]), bytesOf({ nodeId: ids.victim, seq: 1, free: { cpuMillis: 1, memoryMiB: 1, diskMiB: 0, gpuCount: 0 }, running: 0 })), refusedBy: 'signature' })
        break
      case 1: {
        const signed = await sign(ids.fuzzer, data)
        messages.push({ message: { ...signed, signature: randomBytes(random, 64) }, refusedBy: 'signature' })
        break
      }
      case 2:
        messages.push({ message: { data, topic: capacityTopic }, refusedBy: 'unsigned' })
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
    const rpc = RPC.encode({ subscriptions: [{ subscribe: true, topic: capacityTopic }], messages: messages.slice(start, start + batch).map((entry) => entry.message) })
    frames.push(rpc)
    if (random.chance(0.3)) frames.push(rpc.subarray(0, random.int(1, rpc.length))) // truncated protobuf
    if (random.chance(0.3)) frames.push(randomBytes(random, random.int(1, 400)))
  }
  return frames
}
