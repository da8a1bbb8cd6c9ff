// The daemon's libp2p host: tcp, noise, yamux, identify, ping, gossipsub with strict signing, the DHT
// (snapshot-routing.ts) and the client request signer, behind the admission gate; made unstarted, so
// every protocol and topic is in place before it listens. And, with `--snapshot-transport iroh`, the
// iroh endpoint beside it that carries snapshot transfers. Bounded before any protocol runs
// (daemonHostLimits): connections in all and still upgrading, connections a second per address,
// upgrade and negotiation time, streams per connection, gossipsub's RPC size and messages per RPC,
// and the topics gossipsub keeps state for. Per peer and per protocol limits live with each
// protocol and in the admission gate (connections per peer).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey, StreamMiddleware } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { guardFrames } from '../codec/index.ts'
import { IrohSnapshotTransport } from '../snapshots/iroh-transport.ts'
import { addressesTopic } from './address-gossip.ts'
import { capacityTopic } from './capacity-gossip.ts'
import { GossipPenalties } from './gossip-penalties.ts'
import { metricsTopic } from './metrics-gossip.ts'
import { requestSigner } from './request-signature.ts'
import { dhtProtocol, fabricDht } from './snapshot-routing.ts'

export const daemonHostLimits = {
  /** Connections at once (libp2p refuses inbound ones past it and prunes): mesh peers (discovery dials at most 64 itself, more dial in), clients, up to 16 pending joiners. libp2p's default. */
  maxConnections: 300,
  /** Inbound connections still upgrading (noise handshake, muxer) at once; past it new ones are refused before any crypto. */
  maxIncomingPendingConnections: 16,
  /**
   * Inbound connections one IP address may open a second (libp2p's per-host rate limiter). Not
   * libp2p's default of 5: every peer of a mesh on one machine shares one address (its daemons, CLI
   * calls, joiners), and at 5 a 4-daemon test mesh refused CLI calls in about half its runs. The
   * pending-handshake bound above still bounds the crypto work a flood can cause.
   */
  inboundConnectionsPerSecondPerHost: 20,
  /** An inbound connection must be encrypted and multiplexed within this (a loopback handshake takes milliseconds). */
  inboundUpgradeTimeoutMs: 5_000,
  /** A new stream must agree on its protocol within this, in either direction. */
  protocolNegotiationTimeoutMs: 5_000,
  /** Streams one connection may have open at once over every protocol (yamux resets the next); the per-protocol limits add up to about 120. */
  maxStreamsPerConnection: 128,
  /** Bytes of one gossipsub RPC frame (messages are at most 8 KiB; an RPC carries a batch of them). */
  maxGossipRpcBytes: 1024 * 1024,
  /** Messages in one gossipsub RPC (its default 5,000); an RPC with more is dropped whole. gossipsub verifies an RPC's signatures in one go (about 0.25 ms each here): 64 is some 16 ms. */
  maxGossipMessagesPerRpc: 64,
  /** gossipsub streams per connection and direction (it keeps one per peer and replaces an older one). */
  maxGossipStreamsPerConnection: 2,
  /** A DHT message (kad-dht reads with a 4 MiB buffer: larger ones never arrived whole anyway). */
  maxDhtFrameBytes: 4 * 1024 * 1024,
  /** An identify message (identify's own MAX_IDENTIFY_MESSAGE_SIZE). */
  maxIdentifyFrameBytes: 8 * 1024,
  /** A frame of the DHT, gossipsub or identify that started must be complete within this (frames of at most 4 MiB). */
  libraryFrameTimeoutMs: 10_000,
} as const

/**
 * The length-prefixed protocols the libraries serve, and their largest frame: their streams are
 * guarded by codec/frames.ts (their readers, lpStream and it-length-prefixed, bound a length prefix
 * only once it decodes; 4 MiB of 0x80 on the DHT grew a daemon by 500 MiB). gossipsub's: every
 * version it speaks and floodsub, its fallback.
 */
export const guardedLibraryProtocols: readonly (readonly [protocol: string, maxFrameBytes: number])[] = [
  [dhtProtocol, daemonHostLimits.maxDhtFrameBytes],
  ['/meshsub/1.2.0', daemonHostLimits.maxGossipRpcBytes],
  ['/meshsub/1.1.0', daemonHostLimits.maxGossipRpcBytes],
  ['/meshsub/1.0.0', daemonHostLimits.maxGossipRpcBytes],
  ['/floodsub/1.0.0', daemonHostLimits.maxGossipRpcBytes],
  ['/ipfs/id/1.0.0', daemonHostLimits.maxIdentifyFrameBytes],
  ['/ipfs/id/push/1.0.0', daemonHostLimits.maxIdentifyFrameBytes],
]

/** The only topics gossipsub keeps any state for; subscriptions to and messages on others are dropped. */
export const gossipTopics = [capacityTopic, metricsTopic, addressesTopic] as const

export interface DaemonHostInit {
  privateKey: PrivateKey
  connectionGater: ConnectionGater
  /** Multiaddrs to listen on. */
  listen: string[]
}

export async function createDaemonHost(init: DaemonHostInit) {
  // Peers flooding the signed topics are graylisted through their application-specific score (gossip-penalties.ts).
  const penalties = new GossipPenalties()
  const libp2p = await createLibp2p({
    privateKey: init.privateKey,
    connectionGater: init.connectionGater,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: daemonHostLimits.maxStreamsPerConnection, maxOutboundStreams: daemonHostLimits.maxStreamsPerConnection })],
    connectionManager: {
      maxConnections: daemonHostLimits.maxConnections,
      maxIncomingPendingConnections: daemonHostLimits.maxIncomingPendingConnections,
      inboundConnectionThreshold: daemonHostLimits.inboundConnectionsPerSecondPerHost,
      inboundUpgradeTimeout: daemonHostLimits.inboundUpgradeTimeoutMs,
      inboundStreamProtocolNegotiationTimeout: daemonHostLimits.protocolNegotiationTimeoutMs,
      outboundStreamProtocolNegotiationTimeout: daemonHostLimits.protocolNegotiationTimeoutMs,
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        allowedTopics: [...gossipTopics],
        maxInboundDataLength: daemonHostLimits.maxGossipRpcBytes,
        maxInboundStreams: daemonHostLimits.maxGossipStreamsPerConnection,
        maxOutboundStreams: daemonHostLimits.maxGossipStreamsPerConnection,
        decodeRpcLimits: { maxSubscriptions: gossipTopics.length * 2, maxMessages: daemonHostLimits.maxGossipMessagesPerRpc, maxIhaveMessageIDs: 5_000, maxIwantMessageIDs: 5_000, maxControlMessages: 64, maxIdontwantMessageIDs: 512, maxPeerInfos: 16 },
        scoreParams: { appSpecificScore: penalties.appSpecificScore },
      }),
      dht: fabricDht(),
      requestSigner: requestSigner(),
    },
    start: false,
  })
  penalties.attach(libp2p.services.pubsub)
  // Middleware runs on every stream of the protocol, inbound and outbound, before the library's handler or caller sees it.
  for (const [protocol, maxFrameBytes] of guardedLibraryProtocols) {
    const guard: StreamMiddleware = (stream, connection, next) => {
      // libp2p 3.3 appends the handler to the very array of middleware it keeps for the protocol, on
      // every inbound stream (connection.js, onIncomingStream): left alone, the nth stream would run
      // the handler n times. A fresh array each time keeps the next stream's chain [guard, its handler].
      libp2p.use(protocol, guard)
      guardFrames(stream, { maxFrameBytes, frameTimeoutMs: daemonHostLimits.libraryFrameTimeoutMs })
      next(stream, connection)
    }
    libp2p.use(protocol, guard)
  }
  return libp2p
}

/** The daemon's libp2p host with its services. */
export type DaemonHost = Awaited<ReturnType<typeof createDaemonHost>>

/**
 * The iroh endpoint of a daemon: on UDP at the IP its first TCP listen address names (0.0.0.0
 * included) and the port number libp2p got for it, so peers derive it from the TCP addresses
 * identify told them.
 */
export async function irohBesideLibp2p(libp2p: Libp2p, privateKey: PrivateKey, listen: readonly string[]): Promise<IrohSnapshotTransport> {
  const tcpAddress = /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d+)/
  const configured = listen.map((address) => tcpAddress.exec(address)).find((parsed) => parsed !== null)
  const bound = libp2p.getMultiaddrs().map((address) => tcpAddress.exec(address.toString())).find((parsed) => parsed != null && (configured == null || configured[3] === '0' || parsed[3] === configured[3]))
  if (configured == null || bound == null) throw new Error('the iroh snapshot transport needs a TCP listen address to take its port number from')
  const bindAddr = configured[1] === 'ip6' ? `[${configured[2]}]:${bound[3]}` : `${configured[2]}:${bound[3]}`
  return IrohSnapshotTransport.create({ privateKey, bindAddr, udpPortOfTcp: true }).catch((error: Error) => {
    throw new Error(`cannot start the iroh snapshot transport on UDP ${bindAddr}: ${error.message}`)
  })
}
