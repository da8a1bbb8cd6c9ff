// Proves the metrics topic over real gossipsub between libp2p hosts on 127.0.0.1: a node's metrics
// reach another node; a message naming another node than its signer, an oversized one, a replay and
// one older than the signer's latest are never delivered (each refused or ignored, with a counter).
// A third, bare host injects raw gossipsub RPCs carrying messages signed with the publisher's key.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { RPC } from '@libp2p/gossipsub/message'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from './logger.ts'
import { MetricsGossipChannel, NodeMetricsBook, maxNodesWithMetrics, metricsTopic } from './metrics-gossip.ts'
import { poll } from './testing/poll.ts'
import { encodeNodeMetrics, maxNodeMetricsBytes, maxNodeIdLength, type NodeMetrics } from './wire.ts'
import { encodeCbor } from '../codec/index.ts'

type GossipHost = Libp2p<{ pubsub: GossipSub }>

const gossipHost = (privateKey: PrivateKey): Promise<GossipHost> =>
  createLibp2p({
    privateKey,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign', allowPublishToZeroTopicPeers: true, emitSelf: false }) },
  })

const metricsOf = (nodeId: string, seq: number): NodeMetrics => ({
  nodeId, seq, atMs: 1_700_000_000_000 + seq, runningJobs: 2, rssBytes: 80 * 2 ** 20, heapUsedBytes: 30 * 2 ** 20, heapTotalBytes: 40 * 2 ** 20,
  loadAverage1m: 0.5, inboxLength: 0, inboxDropped: 0, coreRefusedMessages: 1, clientRequestsServed: 7, clientRequestsRefused: 1, snapshotBytesServed: 0,
})

const seqnoBytes = (seq: bigint): Uint8Array => {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, seq, false)
  return bytes
}

/** A gossipsub message as the author `key` signs it (StrictSign), to inject from another host. */
async function signedMessage(key: PrivateKey, from: Libp2p['peerId'], seqno: bigint, data: Uint8Array): Promise<RPC.Message> {
  const unsigned: RPC.Message = { from: from.toMultihash().bytes, data, seqno: seqnoBytes(seqno), topic: metricsTopic }
  const signature = await key.sign(new Uint8Array([...new TextEncoder().encode('libp2p-pubsub:'), ...RPC.Message.encode(unsigned)]))
  return { ...unsigned, signature }
}

describe('metrics gossip over real gossipsub', () => {
  let publisherKey: PrivateKey
  let publisher: GossipHost
  let receiver: GossipHost
  let injector: Libp2p
  let sending: MetricsGossipChannel
  let receiving: MetricsGossipChannel
  const delivered: NodeMetrics[] = []
  /** The raw messages the receiver delivered (to replay one exactly). */
  const raw: { data: Uint8Array; sequenceNumber: bigint }[] = []

  beforeAll(async () => {
    publisherKey = await generateKeyPair('Ed25519')
    ;[publisher, receiver] = await Promise.all([gossipHost(publisherKey), gossipHost(await generateKeyPair('Ed25519'))])
    injector = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    sending = new MetricsGossipChannel({ pubsub: publisher.services.pubsub, logger: silentLogger, onMetrics: () => {} })
    receiving = new MetricsGossipChannel({ pubsub: receiver.services.pubsub, logger: silentLogger, onMetrics: (metrics) => delivered.push(metrics) })
    receiver.services.pubsub.addEventListener('message', (event) => {
      const message = event.detail
      if (message.topic === metricsTopic && message.type === 'signed') raw.push({ data: message.data, sequenceNumber: message.sequenceNumber })
    })
    sending.start()
    receiving.start()
    await publisher.dial(receiver.getMultiaddrs()[0]!)
    await poll(async () => publisher.services.pubsub.getSubscribers(metricsTopic).map(String), (subscribers) => subscribers.includes(receiver.peerId.toString()), 30_000, 'the publisher to see the receiver subscribed')
  }, 60_000)

  afterAll(async () => {
    sending?.stop()
    receiving?.stop()
    await Promise.all([publisher?.stop(), receiver?.stop(), injector?.stop()])
  })

  it('delivers a node\'s own metrics to another node', async () => {
    sending.publish(metricsOf(publisher.peerId.toString(), 1))
    await poll(async () => delivered.length, (count) => count === 1, 30_000, 'the metrics to arrive')
    expect(delivered[0]).toEqual(metricsOf(publisher.peerId.toString(), 1))
    expect(receiving.counters).toMatchObject({ delivered: 1, refused: 0, stale: 0 })
    await poll(async () => sending.counters.published, (count) => count === 1, 10_000, 'the publish to be counted')
  })

  it('refuses metrics naming another node than their signer, and oversized metrics', async () => {
    const pubsub = publisher.services.pubsub
    // Published raw: the channel's own publish would not send these.
    await pubsub.publish(metricsTopic, encodeNodeMetrics(metricsOf(receiver.peerId.toString(), 2)))
    const oversized = { ...metricsOf(publisher.peerId.toString(), 3), padding: 'x'.repeat(maxNodeMetricsBytes) }
    await pubsub.publish(metricsTopic, encodeCbor(oversized))
    await poll(async () => receiving.counters.refused, (count) => count === 2, 30_000, 'both to be refused')
    expect(delivered).toHaveLength(1)
  })

  it('ignores a replayed message and one older than the signer\'s latest', async () => {
    const gossip = lpStream(await injector.dialProtocol(receiver.getMultiaddrs()[0]!, '/meshsub/1.1.0'))
    const send = (messages: RPC.Message[]): Promise<void> => gossip.write(RPC.encode({ subscriptions: [{ subscribe: true, topic: metricsTopic }], messages })).then(() => {})
    const latest = raw.at(-1)!
    const publisherId = publisher.peerId
    // The same message again (gossipsub drops it as seen), then an older one (the channel's stale check),
    // then a fresh one, relayed by a host that is not the author: only the fresh one arrives.
    await send([await signedMessage(publisherKey, publisherId, latest.sequenceNumber, latest.data)])
    await send([await signedMessage(publisherKey, publisherId, latest.sequenceNumber - 1n, encodeNodeMetrics(metricsOf(publisherId.toString(), 4)))])
    await send([await signedMessage(publisherKey, publisherId, latest.sequenceNumber + 1_000n, encodeNodeMetrics(metricsOf(publisherId.toString(), 5)))])
    await poll(async () => delivered.length, (count) => count === 2, 30_000, 'the fresh relayed metrics to arrive')
    expect(delivered.map((metrics) => metrics.seq)).toEqual([1, 5])
    expect(receiving.counters).toMatchObject({ delivered: 2, stale: 1, refused: 2 })
  })
})

describe('metrics limits', () => {
  it('the largest well-formed metrics message fits maxNodeMetricsBytes', () => {
    const big = Number.MAX_SAFE_INTEGER
    const largest: NodeMetrics = {
      nodeId: 'x'.repeat(maxNodeIdLength), seq: big, atMs: big, runningJobs: big, rssBytes: big, heapUsedBytes: big, heapTotalBytes: big, loadAverage1m: 999_999.123456789,
      inboxLength: big, inboxDropped: big, coreRefusedMessages: big, clientRequestsServed: big, clientRequestsRefused: big, snapshotBytesServed: big,
    }
    expect(encodeNodeMetrics(largest).length).toBeLessThan(maxNodeMetricsBytes)
  })

  it('keeps the latest metrics of at most maxNodesWithMetrics nodes, dropping the least recently heard', () => {
    const book = new NodeMetricsBook()
    for (let index = 0; index <= maxNodesWithMetrics; index++) book.record(metricsOf(`node-${index}`, 1), index)
    expect(book.size).toBe(maxNodesWithMetrics)
    expect(book.latest('node-0')).toBeUndefined()
    book.record(metricsOf('node-1', 2), 99_999)
    expect(book.latest('node-1')).toEqual({ metrics: metricsOf('node-1', 2), heardAtMs: 99_999 })
  })
})
