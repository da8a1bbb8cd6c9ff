// Proves, over two real libp2p hosts on 127.0.0.1, that the consensus transport delivers
// PeerMessages in order on one long-lived stream, and that malformed frames never reach the core:
// each is refused with a logged reason and a counter (a bad message keeps the stream; an
// oversized frame ends it), while valid messages after a bad one still arrive. And that inbound
// streams are bounded: a length prefix longer than maxPeerFrameBytes needs ends its stream at once,
// a frame not complete within frameTimeoutMs ends its stream, and a peer's newest stream replaces
// its oldest past maxInboundStreamsPerPeer.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { asNodeId, asTerm, type NodeId, type PeerMessage } from '../consensus/index.ts'
import { systemClock } from './clock.ts'
import { ConsensusTransport, consensusProtocol } from './consensus-transport.ts'
import { jsonLogger } from './logger.ts'
import { encodePeerMessage, maxPeerFrameBytes } from './wire.ts'
import { encodeCbor, encodeFrame } from '../codec/index.ts'

const host = (): Promise<Libp2p> =>
  createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })

function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const poll = (): void => {
      if (condition()) return resolve()
      if (Date.now() - started > timeoutMs) return reject(new Error(`condition not met within ${timeoutMs} ms`))
      setTimeout(poll, 10)
    }
    poll()
  })
}

describe('ConsensusTransport over libp2p', () => {
  let a: Libp2p
  let b: Libp2p
  let sender: ConsensusTransport
  let receiver: ConsensusTransport
  const received: { from: NodeId; message: PeerMessage }[] = []
  const logLines: Record<string, unknown>[] = []

  beforeAll(async () => {
    ;[a, b] = await Promise.all([host(), host()])
    const logger = jsonLogger({ component: 'test', level: 'debug', sink: { write: (line) => { logLines.push(JSON.parse(line)) } } })
    sender = new ConsensusTransport({ libp2p: a, clock: systemClock, logger, onMessage: () => {} })
    receiver = new ConsensusTransport({ libp2p: b, clock: systemClock, logger, onMessage: (from, message) => received.push({ from, message }) })
    await sender.start()
    await receiver.start()
    await a.dial(b.getMultiaddrs()[0]!)
  })

  afterAll(async () => {
    await sender?.stop()
    await receiver?.stop()
    await a?.stop()
    await b?.stop()
  })

  it('delivers messages in order from the sending peer', async () => {
    const to = asNodeId(b.peerId.toString())
    for (let round = 1; round <= 50; round++) sender.send(to, { kind: 'heartbeat', term: asTerm(2), round, commitSeq: 0 })
    await until(() => received.length === 50, 5_000)
    expect(received.map(({ message }) => (message.kind === 'heartbeat' ? message.round : -1))).toEqual(Array.from({ length: 50 }, (_, index) => index + 1))
    expect(received.every(({ from }) => from === a.peerId.toString())).toBe(true)
    expect(sender.counters.framesSent).toBe(50)
  })

  it('refuses malformed frames with a reason and a counter, keeping the stream for the next valid one', async () => {
    received.length = 0
    const stream = await a.dialProtocol(b.peerId, consensusProtocol)
    const writer = lpStream(stream)
    await writer.write(encodeCbor({ kind: 'vote', term: 'seven' }))
    await writer.write(encodeCbor({ kind: 'launch-missiles' }))
    await writer.write(new Uint8Array([1, 2, 3]))
    await writer.write(encodePeerMessage({ kind: 'vote', term: asTerm(9), committee: '0.0' }))
    await until(() => received.length === 1, 5_000)
    expect(received[0]!.message).toEqual({ kind: 'vote', term: 9, committee: '0.0' })
    expect(receiver.counters.inboundRefused).toBe(3)
    // Every refusal is counted; the log keeps the first reason and rate-limits the rest.
    const refusals = logLines.filter((line) => line.event === 'message-refused')
    expect(refusals).toHaveLength(1)
    expect(String(refusals[0]!.reason)).toContain('term')
  })

  it('ends a stream whose frame is over maxPeerFrameBytes', async () => {
    const stream = await a.dialProtocol(b.peerId, consensusProtocol)
    const writer = lpStream(stream, { maxDataLength: maxPeerFrameBytes * 2 })
    const refusedBefore = receiver.counters.inboundRefused
    await writer.write(new Uint8Array(maxPeerFrameBytes + 1)).catch(() => {})
    await until(() => receiver.counters.inboundRefused === refusedBefore + 1, 5_000)
    await until(() => stream.status !== 'open', 5_000)
  })
})

describe('ConsensusTransport inbound bounds', () => {
  let a: Libp2p
  let b: Libp2p
  let receiver: ConsensusTransport
  const frameTimeoutMs = 300

  beforeAll(async () => {
    ;[a, b] = await Promise.all([host(), host()])
    receiver = new ConsensusTransport({ libp2p: b, clock: systemClock, logger: jsonLogger({ component: 'test', level: 'error' }), onMessage: () => {} }, { frameTimeoutMs, maxInboundStreamsPerPeer: 2 })
    await receiver.start()
    await a.dial(b.getMultiaddrs()[0]!)
  })

  afterAll(async () => {
    await receiver?.stop()
    await a?.stop()
    await b?.stop()
  })

  it('ends a stream at the first byte its length prefix has past what maxPeerFrameBytes needs (4 MiB of 0x80 once grew a daemon by 209 MiB)', async () => {
    const stream = await a.dialProtocol(b.peerId, consensusProtocol)
    const refusedBefore = receiver.counters.inboundRefused
    stream.send(new Uint8Array(4 * 1024 * 1024).fill(0x80))
    await until(() => stream.status !== 'open', 5_000)
    expect(receiver.counters.inboundRefused).toBe(refusedBefore + 1)
  })

  it('ends a stream whose frame does not complete within frameTimeoutMs, however slowly its bytes keep coming', async () => {
    const stream = await a.dialProtocol(b.peerId, consensusProtocol)
    const before = receiver.counters.inboundTimedOut
    const frame = encodeFrame(new Uint8Array(64 * 1024)).subarray()
    stream.send(frame.subarray(0, 1_000))
    const trickle = setInterval(() => {
      if (stream.status === 'open') stream.send(Uint8Array.of(0))
    }, 50)
    try {
      await until(() => stream.status !== 'open', 5 * frameTimeoutMs)
    } finally {
      clearInterval(trickle)
    }
    expect(receiver.counters.inboundTimedOut).toBe(before + 1)
  })

  it('holds at most maxInboundStreamsPerPeer streams of a peer: a newer one closes its oldest', async () => {
    const before = receiver.counters.inboundReplaced
    const streams: Stream[] = []
    for (let index = 0; index < 3; index++) {
      const received = receiver.counters.framesReceived
      const stream = await a.dialProtocol(b.peerId, consensusProtocol)
      stream.send(new Uint8Array([0])) // an empty frame: the stream is being read (and the frame refused)
      streams.push(stream)
      await until(() => receiver.counters.framesReceived > received, 5_000)
    }
    await until(() => streams[0]!.status !== 'open', 5_000)
    expect(receiver.counters.inboundReplaced).toBe(before + 1)
    expect(streams.slice(1).map((stream) => stream.status)).toEqual(['open', 'open'])
    for (const stream of streams) stream.abort(new Error('done'))
  })
})
