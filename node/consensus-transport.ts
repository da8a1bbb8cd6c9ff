// The consensus transport: PeerMessages between Shuttles over the libp2p stream protocol
// /fabric/consensus/1.0.0, one long-lived outbound stream per peer carrying length-prefixed frames
// (wire.ts). Inbound frames are decoded and validated here; only valid messages reach `onMessage`.
// Delivery is best effort, as the core expects: a message that cannot be sent now is dropped and
// counted (the core retries by protocol: heartbeats, elections, sync restarts).
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { asNodeId, type NodeId, type PeerMessage } from '../consensus/index.ts'
import type { Clock } from './clock.ts'
import type { Logger } from './logger.ts'
import { decodePeerMessage, encodePeerMessage, maxPeerFrameBytes } from './wire.ts'

export const consensusProtocol = '/fabric/consensus/1.0.0'

/**
 * Bytes an inbound stream may buffer while a frame arrives: a whole frame of maxPeerFrameBytes plus
 * the start of the next. (libp2p's default, 4 MiB, reset the stream on any frame past it.)
 */
export const inboundBufferBytes = 2 * maxPeerFrameBytes

/** Refused inbound messages are all counted, but logged at most once per peer per interval. */
export const refusalLogIntervalMs = 1_000
const maxRefusalLogPeers = 1_024

export interface ConsensusTransportLimits {
  /** Frames waiting for one peer's stream; past this new frames are dropped (the link is stuck). */
  maxQueuedFramesPerPeer: number
  /** Peers with an outbound link at once. */
  maxLinks: number
  dialTimeoutMs: number
  writeTimeoutMs: number
  /** After a failed dial, frames to that peer are dropped for this long instead of redialing per frame. */
  redialBackoffMs: number
  /** Inbound consensus streams one connection may hold open. */
  maxInboundStreamsPerConnection: number
}

export const defaultConsensusTransportLimits: ConsensusTransportLimits = {
  maxQueuedFramesPerPeer: 1_024,
  maxLinks: 1_024,
  dialTimeoutMs: 2_000,
  writeTimeoutMs: 5_000,
  redialBackoffMs: 300,
  maxInboundStreamsPerConnection: 4,
}

export interface ConsensusTransportCounters {
  framesSent: number
  framesReceived: number
  /** Outbound frames dropped, by reason (queue full, dial failed, backoff, write failed). */
  outboundDropped: Record<string, number>
  /** Inbound frames refused by the wire schema or size limits (never reached the core). */
  inboundRefused: number
  /** Inbound streams refused because the peer is not admitted as a node. */
  unadmittedRefused: number
}

export interface ConsensusTransportComponents {
  libp2p: Libp2p
  clock: Clock
  logger: Logger
  onMessage(from: NodeId, message: PeerMessage): void
  /** Admission: may this peer speak consensus? (absent: everyone may). A refused peer's stream is closed. */
  accept?(from: NodeId): boolean
}

interface Link {
  peerId: PeerId
  queue: Uint8Array[]
  stream: Stream | null
  writer: LengthPrefixedStream<Stream> | null
  pumping: boolean
  retryAtMs: number
}

export class ConsensusTransport {
  readonly counters: ConsensusTransportCounters = { framesSent: 0, framesReceived: 0, outboundDropped: {}, inboundRefused: 0, unadmittedRefused: 0 }
  readonly #components: ConsensusTransportComponents
  readonly #limits: ConsensusTransportLimits
  readonly #links = new Map<NodeId, Link>()
  readonly #inbound = new Set<Stream>()
  readonly #refusalLog = new Map<NodeId, { atMs: number; suppressed: number }>()
  #started = false

  constructor(components: ConsensusTransportComponents, limits: Partial<ConsensusTransportLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultConsensusTransportLimits, ...limits }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(consensusProtocol, (stream, connection) => {
      void this.#readLoop(stream, asNodeId(connection.remotePeer.toString()))
    }, { maxInboundStreams: this.#limits.maxInboundStreamsPerConnection })
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#components.libp2p.unhandle(consensusProtocol).catch(() => {})
    for (const link of this.#links.values()) {
      link.queue.length = 0
      link.stream?.abort(new Error('transport stopping'))
    }
    this.#links.clear()
    for (const stream of this.#inbound) stream.abort(new Error('transport stopping'))
    this.#inbound.clear()
  }

  /** Queues one message for `to`; never blocks and never throws (delivery is best effort). */
  send(to: NodeId, message: PeerMessage): void {
    if (!this.#started) return
    let link = this.#links.get(to)
    if (link === undefined) {
      if (this.#links.size >= this.#limits.maxLinks) return this.#dropped('too many links')
      let peerId: PeerId
      try {
        peerId = peerIdFromString(to)
      } catch {
        return this.#dropped('not a peer id')
      }
      link = { peerId, queue: [], stream: null, writer: null, pumping: false, retryAtMs: 0 }
      this.#links.set(to, link)
    }
    if (link.writer === null && !link.pumping && this.#components.clock.nowMs() < link.retryAtMs) return this.#dropped('redial backoff')
    if (link.queue.length >= this.#limits.maxQueuedFramesPerPeer) return this.#dropped('queue full')
    link.queue.push(encodePeerMessage(message))
    void this.#pump(to, link)
  }

  async #pump(to: NodeId, link: Link): Promise<void> {
    if (link.pumping) return
    link.pumping = true
    try {
      while (link.queue.length > 0 && this.#started) {
        if (link.writer === null && !(await this.#open(to, link))) return
        const frame = link.queue.shift()!
        try {
          await link.writer!.write(frame, { signal: AbortSignal.timeout(this.#limits.writeTimeoutMs) })
          this.counters.framesSent++
        } catch (error) {
          this.#dropped('write failed')
          this.#components.logger.debug('write-failed', { to, error })
          this.#closeLink(link, error as Error)
        }
      }
    } finally {
      link.pumping = false
    }
  }

  async #open(to: NodeId, link: Link): Promise<boolean> {
    try {
      const stream = await this.#components.libp2p.dialProtocol(link.peerId, consensusProtocol, { signal: AbortSignal.timeout(this.#limits.dialTimeoutMs) })
      if (!this.#started) {
        stream.abort(new Error('transport stopped'))
        return false
      }
      link.stream = stream
      link.writer = lpStream(stream, { maxDataLength: maxPeerFrameBytes })
      stream.addEventListener('close', () => {
        if (link.stream === stream) {
          link.stream = null
          link.writer = null
        }
      })
      this.#components.logger.debug('link-open', { to })
      return true
    } catch (error) {
      link.retryAtMs = this.#components.clock.nowMs() + this.#limits.redialBackoffMs
      for (let index = 0; index < link.queue.length; index++) this.#dropped('dial failed')
      link.queue.length = 0
      this.#components.logger.debug('dial-failed', { to, error })
      return false
    }
  }

  #closeLink(link: Link, error: Error): void {
    link.stream?.abort(error)
    link.stream = null
    link.writer = null
  }

  async #readLoop(stream: Stream, from: NodeId): Promise<void> {
    if (!this.#started) {
      stream.abort(new Error('transport stopped'))
      return
    }
    if (this.#components.accept?.(from) === false) {
      this.counters.unadmittedRefused++
      this.#logRefusal(from, { reason: 'the peer is not admitted as a node of this mesh' })
      stream.abort(new Error('not admitted as a node of this mesh'))
      return
    }
    this.#inbound.add(stream)
    const reader = lpStream(stream, { maxDataLength: maxPeerFrameBytes, maxBufferSize: inboundBufferBytes })
    try {
      for (;;) {
        const frame = (await reader.read()).subarray()
        this.counters.framesReceived++
        const decoded = decodePeerMessage(frame)
        if (!decoded.ok) {
          // Framing is intact, so one bad message does not cost the stream.
          this.counters.inboundRefused++
          this.#logRefusal(from, { reason: decoded.reason, sizeBytes: frame.length })
          continue
        }
        this.#components.onMessage(from, decoded.value)
      }
    } catch (error) {
      const name = (error as Error).name
      if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') {
        // A frame over the limit cannot be skipped safely: refuse it and drop the stream.
        this.counters.inboundRefused++
        this.#logRefusal(from, { reason: `frame exceeds maxPeerFrameBytes (${maxPeerFrameBytes}): ${(error as Error).message}` })
        stream.abort(error as Error)
      } else if (this.#started && name !== 'UnexpectedEOFError') {
        this.#components.logger.debug('inbound-stream-ended', { from, error })
      }
    } finally {
      this.#inbound.delete(stream)
    }
  }

  /** One warning per peer per `refusalLogIntervalMs`, with how many were not logged: a hostile peer cannot flood the log. */
  #logRefusal(from: NodeId, fields: Record<string, unknown>): void {
    const now = this.#components.clock.nowMs()
    const last = this.#refusalLog.get(from)
    if (last !== undefined && now - last.atMs < refusalLogIntervalMs) {
      last.suppressed++
      return
    }
    this.#refusalLog.delete(from)
    if (this.#refusalLog.size >= maxRefusalLogPeers) this.#refusalLog.delete(this.#refusalLog.keys().next().value!)
    this.#refusalLog.set(from, { atMs: now, suppressed: 0 })
    this.#components.logger.warn('message-refused', { from, ...fields, suppressedSinceLast: last?.suppressed ?? 0 })
  }

  #dropped(reason: string): void {
    this.counters.outboundDropped[reason] = (this.counters.outboundDropped[reason] ?? 0) + 1
  }
}
