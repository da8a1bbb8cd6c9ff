// The consensus transport: PeerMessages between Shuttles over the libp2p stream protocol
// /fabric/consensus/1.0.0, one long-lived outbound stream per peer carrying length-prefixed frames
// (wire.ts). Inbound frames are decoded and validated here; only valid messages reach `onMessage`.
// Delivery is best effort, as the core expects: a message that cannot be sent now is dropped and
// counted (the core retries by protocol: heartbeats, elections, sync restarts). Inbound streams are
// bounded (codec/frames.ts): a length prefix past what maxPeerFrameBytes needs, a frame not complete
// within frameTimeoutMs, or a stream silent for idleTimeoutMs costs its stream; a peer holds at most
// maxInboundStreamsPerPeer (a newer stream replaces its oldest: a peer that redialed has moved on).
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { asNodeId, type NodeId, type PeerMessage } from '../consensus/index.ts'
import { encodeFrame, FrameReader, sendAll } from '../codec/index.ts'
import type { Clock } from './clock.ts'
import type { Logger } from './logger.ts'
import { RefusalLog } from './refusal-log.ts'
import { decodePeerMessage, encodePeerMessage, maxPeerFrameBytes } from './wire.ts'

export const consensusProtocol = '/fabric/consensus/1.0.0'

/**
 * Bytes an inbound stream may hold unread: a whole frame of maxPeerFrameBytes plus the start of the
 * next (the read loop takes each frame as it completes, so only a peer's own frame sits here).
 */
export const inboundBufferBytes = 2 * maxPeerFrameBytes

/** Refused inbound messages are all counted, but logged at most once per peer per interval. */
export const refusalLogIntervalMs = 1_000

export interface ConsensusTransportLimits {
  /** Frames waiting for one peer's stream; past this new frames are dropped (the link is stuck). */
  maxQueuedFramesPerPeer: number
  /** Peers with an outbound link at once. */
  maxLinks: number
  dialTimeoutMs: number
  writeTimeoutMs: number
  /** After a failed dial, frames to that peer are dropped for this long instead of redialing per frame. */
  redialBackoffMs: number
  /** Inbound consensus streams one connection may hold open (libp2p resets the next). */
  maxInboundStreamsPerConnection: number
  /** Inbound consensus streams one peer may hold open over all its connections; a newer one closes its oldest. */
  maxInboundStreamsPerPeer: number
  /** Consensus streams this node may open on one connection (a link is one stream; a redial may overlap the old one). */
  maxOutboundStreamsPerConnection: number
  /** A frame whose first byte arrived must be complete within this, or its stream is closed. */
  frameTimeoutMs: number
  /** An inbound stream on which nothing arrives for this long is closed (the peer redials on its next message). */
  idleTimeoutMs: number
}

export const defaultConsensusTransportLimits: ConsensusTransportLimits = {
  maxQueuedFramesPerPeer: 1_024,
  maxLinks: 1_024,
  dialTimeoutMs: 2_000,
  writeTimeoutMs: 5_000,
  redialBackoffMs: 300,
  // libp2p resets a connection's streams past this before they reach us; ours below holds first.
  maxInboundStreamsPerConnection: 4,
  // A peer needs one (its link to us); the second lets a redial overlap a link that has not closed yet.
  maxInboundStreamsPerPeer: 2,
  maxOutboundStreamsPerConnection: 4,
  // Twice the sender's writeTimeoutMs: an honest sender gives up on a frame before this (8 MiB in
  // 10 s is 0.8 MB/s); nine streams trickling a byte a second held theirs forever before.
  frameTimeoutMs: 10_000,
  // A leader's heartbeats come every 30 ms, but a follower's link to another follower carries
  // nothing between elections and syncs for seconds or minutes. 60 s keeps such a link (closing it
  // costs only a redial, and may drop a message in flight), and reclaims a stream held silently
  // well before yamux's own 120 s inactivity reset.
  idleTimeoutMs: 60_000,
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
  /** Inbound streams closed: a frame not complete within frameTimeoutMs, nothing for idleTimeoutMs, a newer stream of the same peer past maxInboundStreamsPerPeer. */
  inboundTimedOut: number
  inboundIdleClosed: number
  inboundReplaced: number
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
  pumping: boolean
  retryAtMs: number
}

export class ConsensusTransport {
  readonly counters: ConsensusTransportCounters = { framesSent: 0, framesReceived: 0, outboundDropped: {}, inboundRefused: 0, unadmittedRefused: 0, inboundTimedOut: 0, inboundIdleClosed: 0, inboundReplaced: 0 }
  readonly #components: ConsensusTransportComponents
  readonly #limits: ConsensusTransportLimits
  readonly #links = new Map<NodeId, Link>()
  readonly #inbound = new Set<Stream>()
  /** Each peer's open inbound streams, oldest first. */
  readonly #inboundByPeer = new Map<NodeId, Stream[]>()
  readonly #refusalLog: RefusalLog
  #started = false

  constructor(components: ConsensusTransportComponents, limits: Partial<ConsensusTransportLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultConsensusTransportLimits, ...limits }
    this.#refusalLog = new RefusalLog(components.logger, () => components.clock.nowMs(), { intervalMs: refusalLogIntervalMs })
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(consensusProtocol, (stream, connection) => {
      void this.#readLoop(stream, asNodeId(connection.remotePeer.toString()))
    }, { maxInboundStreams: this.#limits.maxInboundStreamsPerConnection, maxOutboundStreams: this.#limits.maxOutboundStreamsPerConnection })
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
    this.#inboundByPeer.clear()
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
      link = { peerId, queue: [], stream: null, pumping: false, retryAtMs: 0 }
      this.#links.set(to, link)
    }
    if (link.stream === null && !link.pumping && this.#components.clock.nowMs() < link.retryAtMs) return this.#dropped('redial backoff')
    if (link.queue.length >= this.#limits.maxQueuedFramesPerPeer) return this.#dropped('queue full')
    link.queue.push(encodePeerMessage(message))
    void this.#pump(to, link)
  }

  async #pump(to: NodeId, link: Link): Promise<void> {
    if (link.pumping) return
    link.pumping = true
    try {
      while (link.queue.length > 0 && this.#started) {
        if (link.stream === null && !(await this.#open(to, link))) return
        const frame = link.queue.shift()!
        try {
          await sendAll(link.stream!, encodeFrame(frame), this.#limits.writeTimeoutMs)
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
      stream.addEventListener('close', () => {
        if (link.stream === stream) link.stream = null
      })
      // The protocol is one way: a peer that sends on our link is not buffered, its stream is ended.
      stream.addEventListener('message', () => stream.abort(new Error('the consensus protocol sends nothing back')))
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
    this.#track(stream, from)
    const reader = new FrameReader(stream, { maxFrameBytes: maxPeerFrameBytes, maxBufferedBytes: inboundBufferBytes, frameTimeoutMs: this.#limits.frameTimeoutMs, idleTimeoutMs: this.#limits.idleTimeoutMs })
    try {
      for (;;) {
        const frame = await reader.read()
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
      // The reader aborted the stream already on each of these; the frame cannot be skipped safely.
      const name = (error as Error).name
      if (name === 'FrameTooLargeError' || name === 'ReadBufferOverflowError') {
        this.counters.inboundRefused++
        this.#logRefusal(from, { reason: `frame exceeds maxPeerFrameBytes (${maxPeerFrameBytes}): ${(error as Error).message}` })
      } else if (name === 'FrameTimeoutError') {
        this.counters.inboundTimedOut++
        this.#logRefusal(from, { reason: (error as Error).message })
      } else if (name === 'StreamIdleError') {
        this.counters.inboundIdleClosed++
        this.#components.logger.debug('inbound-stream-idle', { from, idleTimeoutMs: this.#limits.idleTimeoutMs })
      } else if (this.#started && name !== 'StreamEndedError') {
        this.#components.logger.debug('inbound-stream-ended', { from, error })
      }
    } finally {
      this.#untrack(stream, from)
    }
  }

  /** Counts the stream against its peer; past maxInboundStreamsPerPeer the peer's oldest is closed. */
  #track(stream: Stream, from: NodeId): void {
    this.#inbound.add(stream)
    const streams = this.#inboundByPeer.get(from) ?? []
    streams.push(stream)
    this.#inboundByPeer.set(from, streams)
    while (streams.length > this.#limits.maxInboundStreamsPerPeer) {
      const oldest = streams.shift()!
      this.counters.inboundReplaced++
      oldest.abort(new Error(`replaced by a newer stream of the same peer (at most ${this.#limits.maxInboundStreamsPerPeer})`))
    }
  }

  #untrack(stream: Stream, from: NodeId): void {
    this.#inbound.delete(stream)
    const streams = this.#inboundByPeer.get(from)
    if (streams === undefined) return
    const index = streams.indexOf(stream)
    if (index >= 0) streams.splice(index, 1)
    if (streams.length === 0) this.#inboundByPeer.delete(from)
  }

  /** One warning per peer per `refusalLogIntervalMs`, with how many were not logged: a hostile peer cannot flood the log. */
  #logRefusal(from: NodeId, fields: Record<string, unknown>): void {
    this.#refusalLog.log(from, 'warn', 'message-refused', { from, ...fields })
  }

  #dropped(reason: string): void {
    this.counters.outboundDropped[reason] = (this.counters.outboundDropped[reason] ?? 0) + 1
  }
}
