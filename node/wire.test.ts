// Proves the wire form round-trips every PeerMessage kind and CapacityGossip exactly, and that
// truncated, oversized, wrong-typed, unknown-kind and non-CBOR input is refused with a reason.
import { describe, expect, it } from 'vitest'
import { encodeCbor } from '../codec/index.ts'
import { asJobId, asNodeId, asTerm, maxElectionTimeoutMs, type CapacityGossip, type PeerMessage } from '../consensus/index.ts'
import {
  decodeAddressGossip,
  decodeCapacityGossip,
  encodeAddressGossip,
  maxAddressGossipBytes,
  maxAnnouncedAddresses,
  decodePeerMessage,
  encodeCapacityGossip,
  encodePeerMessage,
  maxCapacityGossipBytes,
  maxPeerFrameBytes,
  maxPeerMessageBytes,
} from './wire.ts'

import { answerCall, type CallForBids } from '../placement/index.ts'
import { jobSpec, offer } from '../placement/testing.ts'

const head = 'ab'.repeat(32)
const gpuSpec = jobSpec({ resources: { cpu: 4, memory: '16Gi', gpu: { count: 1, model: ['A100'] } }, constraints: { regions: ['us-east-1'], labels: { tier: 'gpu' } }, maxPricePerHour: 3 })
const call: CallForBids = {
  roundId: 'n1/7/3',
  leaderId: '12D3KooWleader',
  openedAtMs: 1_000,
  closesAtMs: 1_150,
  classes: [{ classId: 0, demand: gpuSpec.resources, constraints: gpuSpec.constraints, maxPricePerHour: 3, replicas: 2 }],
}
const gpuOffer = offer('12D3KooWbidder', { capacity: { gpuCount: 8 }, gpu: { model: 'A100', memoryMiB: 40_960 }, labels: { tier: 'gpu' }, placementGroup: 'pg-1', efa: true })
const term = asTerm(7)
const { nodeId: _nodeId, free: _free, ...standingOffer } = gpuOffer
const everyKind: PeerMessage[] = [
  { kind: 'pre-vote', term, committee: '3.1' },
  { kind: 'pre-vote-response', term, granted: true },
  { kind: 'vote', term, committee: '3.1' },
  { kind: 'vote-response', term, granted: true, heads: [head] },
  { kind: 'vote-response', term, granted: false },
  { kind: 'heartbeat', term, round: 3, commitSeq: 2, electionTimeoutMs: 1_400 },
  { kind: 'heartbeat-ack', term, round: 3 },
  { kind: 'barrier', term },
  { kind: 'barrier-reply', term, heads: [head, 'cd'.repeat(32)] },
  {
    kind: 'sync',
    term,
    data: new Uint8Array([0, 1, 2, 250, 255]),
    ack: { term, leaderSeq: 4, originSeq: 1, origin: 'aa00bb' },
    channel: { epoch: '0a1b2c3d4e5f6071', seq: 9 },
    leaderHint: asNodeId('12D3KooWexample'),
  },
  { kind: 'sync', term, data: null, ack: { term, leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: '00', seq: 0 }, leaderHint: null },
  { kind: 'lease-request', term, round: 7 },
  { kind: 'lease-grant', term, round: 7, durationMs: 2_000, heads: [head] },
  { kind: 'award', term, jobs: [{ jobId: asJobId('job-1'), seq: 5 }] },
  { kind: 'call-for-bids', term, call },
  { kind: 'bid', term, bid: answerCall(gpuOffer, call, 1_020) },
  { kind: 'standing-bid', term, standing: { offer: standingOffer, policy: { utilisationMarkup: 0.5, minUptimeToBid: 0.9 } } },
  { kind: 'standing-bid', term, standing: null },
]

const bytesOf = (value: unknown): Uint8Array => encodeCbor(value)

describe('peer message wire form', () => {
  it('round-trips every message kind exactly', () => {
    const kinds = new Set(everyKind.map((message) => message.kind))
    expect(kinds.size).toBe(Object.keys(maxPeerMessageBytes).length)
    for (const message of everyKind) {
      const decoded = decodePeerMessage(encodePeerMessage(message))
      expect(decoded).toEqual({ ok: true, value: message })
    }
  })

  it('gives back sync data as a plain Uint8Array', () => {
    const decoded = decodePeerMessage(encodePeerMessage(everyKind[9]!))
    if (!decoded.ok || decoded.value.kind !== 'sync') throw new Error('expected sync')
    expect(decoded.value.data?.constructor).toBe(Uint8Array)
  })

  it('refuses truncated input', () => {
    const bytes = encodePeerMessage({ kind: 'heartbeat', term, round: 1, commitSeq: 0 })
    const decoded = decodePeerMessage(bytes.subarray(0, bytes.length - 3))
    expect(decoded).toMatchObject({ ok: false, reason: expect.stringContaining('not valid CBOR') })
  })

  it('refuses a frame over the global limit before parsing it', () => {
    const decoded = decodePeerMessage(new Uint8Array(maxPeerFrameBytes + 1))
    expect(decoded).toMatchObject({ ok: false, reason: expect.stringContaining('maxPeerFrameBytes') })
  })

  it('refuses a message over its own kind\'s limit', () => {
    const padded = bytesOf({ kind: 'heartbeat', term: 1, round: 1, commitSeq: 0, pad: 'x'.repeat(maxPeerMessageBytes.heartbeat) })
    expect(decodePeerMessage(padded)).toMatchObject({ ok: false, reason: expect.stringContaining('exceeds its limit') })
  })

  it('refuses wrong types, missing fields and extra fields with the field named', () => {
    expect(decodePeerMessage(bytesOf({ kind: 'vote', term: '7' }))).toMatchObject({ ok: false, reason: expect.stringContaining('term') })
    expect(decodePeerMessage(bytesOf({ kind: 'vote', term: -1 }))).toMatchObject({ ok: false, reason: expect.stringContaining('term') })
    expect(decodePeerMessage(bytesOf({ kind: 'vote', term: 1.5 }))).toMatchObject({ ok: false })
    expect(decodePeerMessage(bytesOf({ kind: 'heartbeat', term: 1, round: 1 }))).toMatchObject({ ok: false, reason: expect.stringContaining('commitSeq') })
    // The advertised election timeout: optional, a whole number of ms within the core's bound.
    expect(decodePeerMessage(bytesOf({ kind: 'heartbeat', term: 1, round: 1, commitSeq: 0 })).ok).toBe(true)
    expect(decodePeerMessage(bytesOf({ kind: 'heartbeat', term: 1, round: 1, commitSeq: 0, electionTimeoutMs: maxElectionTimeoutMs })).ok).toBe(true)
    for (const electionTimeoutMs of [maxElectionTimeoutMs + 1, 0, -150, 150.5, '150', Number.MAX_SAFE_INTEGER]) {
      expect(decodePeerMessage(bytesOf({ kind: 'heartbeat', term: 1, round: 1, commitSeq: 0, electionTimeoutMs })), String(electionTimeoutMs)).toMatchObject({ ok: false, reason: expect.stringContaining('electionTimeoutMs') })
    }
    expect(decodePeerMessage(bytesOf({ kind: 'vote', term: 1, extra: true }))).toMatchObject({ ok: false })
    expect(decodePeerMessage(bytesOf({ kind: 'barrier-reply', term: 1, heads: ['not-a-head'] }))).toMatchObject({ ok: false, reason: expect.stringContaining('heads') })
    // Sync data is a byte string: text (the old base64 form), numbers and arrays of numbers are refused.
    const sync = { kind: 'sync', term: 1, data: new Uint8Array([65]), ack: { term: 1, leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: '01', seq: 1 }, leaderHint: null }
    expect(decodePeerMessage(bytesOf(sync)).ok).toBe(true)
    for (const data of ['QQ==', 65, [65], {}]) expect(decodePeerMessage(bytesOf({ ...sync, data })), JSON.stringify(data)).toMatchObject({ ok: false, reason: expect.stringContaining('data') })
  })

  it('decodes a sync of several MiB (a regex check once overflowed the stack there)', () => {
    const data = new Uint8Array(5 * 1024 * 1024).map((_, index) => index % 251)
    const message: PeerMessage = { kind: 'sync', term, data, ack: { term, leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: '01', seq: 1 }, leaderHint: null }
    const decoded = decodePeerMessage(encodePeerMessage(message))
    if (!decoded.ok || decoded.value.kind !== 'sync') throw new Error(`refused: ${decoded.ok ? decoded.value.kind : decoded.reason}`)
    expect(Buffer.compare(decoded.value.data!, data)).toBe(0)
  })

  it('refuses unknown kinds, non-objects, inherited kinds, invalid UTF-8 and JSON', () => {
    expect(decodePeerMessage(bytesOf({ kind: 'append-entries', term: 1 }))).toMatchObject({ ok: false, reason: expect.stringContaining('unknown kind') })
    expect(decodePeerMessage(bytesOf({ kind: 'toString', term: 1 }))).toMatchObject({ ok: false, reason: expect.stringContaining('unknown kind') })
    expect(decodePeerMessage(bytesOf({ term: 1 }))).toMatchObject({ ok: false, reason: expect.stringContaining('unknown kind') })
    expect(decodePeerMessage(bytesOf([1, 2]))).toMatchObject({ ok: false, reason: 'not an object' })
    expect(decodePeerMessage(bytesOf(null))).toMatchObject({ ok: false, reason: 'not an object' })
    expect(decodePeerMessage(bytesOf({ ['__proto__']: { kind: 'vote', term: 1 } }))).toMatchObject({ ok: false })
    // {"kind": "vote\xff"}: text that is not UTF-8
    expect(decodePeerMessage(new Uint8Array([0xa1, 0x64, ...new TextEncoder().encode('kind'), 0x65, ...new TextEncoder().encode('vote'), 0xff]))).toMatchObject({ ok: false, reason: expect.stringContaining('utf-8') })
    expect(decodePeerMessage(new TextEncoder().encode('{"kind":"vote","term":1}'))).toMatchObject({ ok: false, reason: expect.stringContaining('not valid CBOR') })
  })

  it('refuses CBOR forms a strict decoder must not accept', () => {
    const vote = bytesOf({ kind: 'vote', term: 1, committee: '0.0' })
    expect(decodePeerMessage(vote).ok).toBe(true)
    const hex = (text: string) => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'))
    const cases: Record<string, Uint8Array> = {
      // {"kind":"vote","kind":"vote"}
      'duplicate key': hex('a2 646b696e64 64766f7465 646b696e64 64766f7465'),
      // an indefinite-length map
      indefinite: hex('bf 646b696e64 64766f7465 647465726d 01 ff'),
      // term 1 written in two bytes
      'non-minimal integer': hex('a2 646b696e64 64766f7465 647465726d 1801'),
      // tag 1 (a date) around the term
      tag: hex('a2 646b696e64 64766f7465 647465726d c1 01'),
      undefined: hex('a2 646b696e64 64766f7465 647465726d f7'),
      NaN: hex('a2 646b696e64 64766f7465 647465726d f97e00'),
      // a map declaring 2^32-1 entries, an array declaring 2^64-1 items, a byte string of 4 GiB
      'giant map': hex('ba ffffffff 646b696e64 64766f7465'),
      'giant array': hex('a2 646b696e64 64766f7465 647465726d 9b ffffffffffffffff 01'),
      'giant bytes': hex('a2 646b696e64 64766f7465 647465726d 5a ffffffff 01'),
      'trailing bytes': new Uint8Array([...vote, 0x00]),
      'deep nesting': new Uint8Array(200_000).fill(0x81),
    }
    for (const [name, bytes] of Object.entries(cases)) expect(decodePeerMessage(bytes), name).toMatchObject({ ok: false })
  })

  it('bounds list lengths', () => {
    const heads = Array.from({ length: 1_025 }, () => head)
    expect(decodePeerMessage(bytesOf({ kind: 'barrier-reply', term: 1, heads }))).toMatchObject({ ok: false })
  })
})

describe('capacity gossip wire form', () => {
  const gossip: CapacityGossip = { nodeId: asNodeId('12D3KooWexample'), seq: 4, free: { cpuMillis: 2_000, memoryMiB: -10, diskMiB: 0, gpuCount: 0 }, running: 1 }

  it('round-trips', () => {
    expect(decodeCapacityGossip(encodeCapacityGossip(gossip))).toEqual({ ok: true, value: gossip })
  })

  it('refuses oversized, wrong-typed and truncated gossip', () => {
    expect(decodeCapacityGossip(new Uint8Array(maxCapacityGossipBytes + 1))).toMatchObject({ ok: false, reason: expect.stringContaining('maxCapacityGossipBytes') })
    expect(decodeCapacityGossip(bytesOf({ ...gossip, seq: 'four' }))).toMatchObject({ ok: false, reason: expect.stringContaining('seq') })
    expect(decodeCapacityGossip(bytesOf({ ...gossip, free: { cpuMillis: 1 } }))).toMatchObject({ ok: false, reason: expect.stringContaining('memoryMiB') })
    const bytes = encodeCapacityGossip(gossip)
    expect(decodeCapacityGossip(bytes.subarray(0, 10))).toMatchObject({ ok: false, reason: expect.stringContaining('CBOR') })
  })
})

describe('address gossip wire form', () => {
  const gossip = { nodeId: '12D3KooWexample', seq: 3, addresses: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWexample'] }

  it('round-trips', () => {
    expect(decodeAddressGossip(encodeAddressGossip(gossip))).toEqual({ ok: true, value: gossip })
  })

  it('refuses oversized gossip, too many or too long addresses, and wrong types', () => {
    expect(decodeAddressGossip(new Uint8Array(maxAddressGossipBytes + 1))).toMatchObject({ ok: false, reason: expect.stringContaining('maxAddressGossipBytes') })
    expect(decodeAddressGossip(bytesOf({ ...gossip, addresses: Array(maxAnnouncedAddresses + 1).fill('/ip4/1.2.3.4/tcp/1') }))).toMatchObject({ ok: false, reason: expect.stringContaining('addresses') })
    expect(decodeAddressGossip(bytesOf({ ...gossip, addresses: ['/'.repeat(300)] }))).toMatchObject({ ok: false, reason: expect.stringContaining('addresses') })
    expect(decodeAddressGossip(bytesOf({ ...gossip, addresses: [new Uint8Array(4)] }))).toMatchObject({ ok: false })
    expect(decodeAddressGossip(bytesOf({ ...gossip, extra: 1 }))).toMatchObject({ ok: false })
  })
})
