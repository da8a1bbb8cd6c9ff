// The holder side of /fabric/snapshots/1.0.0: answers manifest and chunk requests from the local
// chunk store. It serves what it holds, stored bytes as they are (the fetcher verifies every
// chunk; a holder whose disk rotted is caught there and dropped). What a client can make it buffer
// is bounded per stream: readAheadSteps steps of chunksPerWrite chunks read, maxQueuedSteps queued;
// requests are read with codec/frames.ts (a length prefix no longer than maxRequestBytes needs, a
// request complete within requestFrameTimeoutMs, a stream silent past requestIdleTimeoutMs closed);
// streams are bounded per connection, per peer and over all.
import type { Libp2p, Stream } from '@libp2p/interface'
import type { ChunkStore } from './chunk-store.ts'
import { encodeFrame, encodeFrames, FrameReader, sendAll } from '../codec/index.ts'
import type { Cid } from './cid.ts'
import type { ChunkHash } from './hash.ts'
import type { SnapshotLogger } from './logger.ts'
import { transportOf, type SnapshotTransport } from './transport.ts'
import { chunkFrameHeader, decodeRequest, manifestFrame, maxRequestBytes, notFoundFrame, refusedFrame } from './wire.ts'

export interface SnapshotServerLimits {
  /** Snapshot streams one connection may hold open. */
  maxInboundStreamsPerConnection: number
  /** Snapshot streams served at once across all peers; past this new streams are refused. */
  maxActiveStreams: number
  /** Snapshot streams one peer may have served at once (over all its connections); past this its new streams are refused. */
  maxActiveStreamsPerPeer: number
  /** Chunks read from the store and sent per step (one request is answered in several steps). */
  chunksPerWrite: number
  /** Steps whose store reads run ahead of the one being sent (they may belong to later requests). */
  readAheadSteps: number
  /** Answers queued before more requests are read from a stream. */
  maxQueuedSteps: number
  /** A client that takes none of what was sent for this long loses the stream (its buffers are freed). */
  sendTimeoutMs: number
  /** A stream with no request for this long is closed, freeing its place among maxActiveStreams. */
  requestIdleTimeoutMs: number
  /** A request whose first byte arrived must be complete within this, or its stream is closed. */
  requestFrameTimeoutMs: number
  /** Request bytes received and not yet read per stream (requests pipelined past maxQueuedSteps wait here); past it the stream is aborted. */
  maxBufferedRequestBytes: number
}

export const defaultSnapshotServerLimits: SnapshotServerLimits = {
  maxInboundStreamsPerConnection: 8,
  // Each stream holds up to 2 x chunksPerWrite chunks: 1 MiB at 16 KiB chunks, 64 MiB at the 1 MiB maximum.
  maxActiveStreams: 32,
  // A fetch opens one stream per holder (snapshot-fetcher.ts); a few fetches of one peer at once fit, one peer cannot take them all.
  maxActiveStreamsPerPeer: 8,
  chunksPerWrite: 32,
  readAheadSteps: 4,
  maxQueuedSteps: 8,
  sendTimeoutMs: 30_000,
  requestIdleTimeoutMs: 60_000,
  // A request is at most maxRequestBytes (40 KiB): seconds even on a slow link.
  requestFrameTimeoutMs: 10_000,
  // A fetcher pipelines maxInFlightBytesPerHolder / requestBytes = 8 requests of at most a few KiB hashes each.
  maxBufferedRequestBytes: 1024 * 1024,
}

export interface SnapshotServerCounters {
  requests: number
  manifestsServed: number
  chunksServed: number
  bytesServed: number
  notFound: number
  /** Requests answered with `refused` (malformed) plus streams dropped for an oversized frame. */
  refused: number
  streamsRefused: number
}

export interface SnapshotServerComponents {
  /** The host whose libp2p streams carry the protocol, unless `transport` is given. */
  libp2p?: Libp2p
  /** Another carrier for the same protocol (iroh-transport.ts). */
  transport?: SnapshotTransport
  store: ChunkStore
  logger: SnapshotLogger
  /** Who may fetch (the daemon admits mesh nodes only); everyone when absent. */
  accept?: (peerId: string) => boolean
}

export class SnapshotServer {
  readonly counters: SnapshotServerCounters = { requests: 0, manifestsServed: 0, chunksServed: 0, bytesServed: 0, notFound: 0, refused: 0, streamsRefused: 0 }
  readonly #components: SnapshotServerComponents
  readonly #limits: SnapshotServerLimits
  readonly #active = new Set<Stream>()
  /** Streams served per peer. */
  readonly #perPeer = new Map<string, number>()
  readonly #transport: SnapshotTransport
  #started = false

  constructor(components: SnapshotServerComponents, limits: Partial<SnapshotServerLimits> = {}) {
    this.#components = components
    this.#transport = transportOf(components, 'SnapshotServer')
    this.#limits = { ...defaultSnapshotServerLimits, ...limits }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#transport.handle((stream, from) => {
      void this.#serve(stream, from)
    }, { maxInboundStreamsPerConnection: this.#limits.maxInboundStreamsPerConnection })
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#transport.unhandle().catch(() => {})
    for (const stream of this.#active) stream.abort(new Error('snapshot server stopping'))
    this.#active.clear()
    this.#perPeer.clear()
  }

  async #serve(stream: Stream, from: string): Promise<void> {
    const fromPeer = this.#perPeer.get(from) ?? 0
    if (!this.#started || this.#active.size >= this.#limits.maxActiveStreams || fromPeer >= this.#limits.maxActiveStreamsPerPeer || (this.#components.accept?.(from) === false)) {
      this.counters.streamsRefused++
      stream.abort(new Error('snapshot server busy'))
      return
    }
    this.#active.add(stream)
    this.#perPeer.set(from, fromPeer + 1)
    const requests = new FrameReader(stream, {
      maxFrameBytes: maxRequestBytes,
      maxBufferedBytes: this.#limits.maxBufferedRequestBytes,
      frameTimeoutMs: this.#limits.requestFrameTimeoutMs,
      idleTimeoutMs: this.#limits.requestIdleTimeoutMs,
    })
    const { store, logger } = this.#components
    // Requests are read while earlier answers are still being sent, and the store reads for the
    // next steps (across request boundaries) run while the current one is sent: a holder must not
    // leave the stream idle while its disk answers. Answers still go out in request order.
    const queue: Answer[] = []
    let wake: (() => void) | null = null
    const notify = (): void => {
      const waiting = wake
      wake = null
      waiting?.()
    }
    const changed = (): Promise<void> => new Promise((resolve) => { wake = resolve })
    let reading = true
    let stopped = false
    const readRequests = async (): Promise<void> => {
      try {
        for (;;) {
          // Bounded: at most maxQueuedSteps answers wait (plus the steps of the request just read).
          while (queue.length >= this.#limits.maxQueuedSteps && !stopped) await changed()
          if (stopped) return
          let frame: Uint8Array
          try {
            frame = await requests.read()
          } catch (error) {
            // The reader aborted the stream on each of these; otherwise the client is done (or gone):
            // our side closes once the answers are out.
            const name = (error as Error).name
            if (name === 'FrameTooLargeError' || name === 'ReadBufferOverflowError') {
              // An oversized request cannot be skipped safely: refuse it (the stream is gone).
              this.counters.refused++
              logger.warn('request-refused', { from, reason: `frame exceeds maxRequestBytes (${maxRequestBytes}): ${(error as Error).message}` })
            } else if (name === 'FrameTimeoutError' || name === 'StreamIdleError') {
              logger.debug('stream-timed-out', { from, reason: (error as Error).message })
            }
            return
          }
          this.counters.requests++
          const decoded = decodeRequest(frame)
          if (!decoded.ok) {
            this.counters.refused++
            logger.debug('request-refused', { from, reason: decoded.reason })
            queue.push({ kind: 'frame', frame: refusedFrame(decoded.reason) })
          } else if (decoded.value.kind === 'manifest') {
            queue.push({ kind: 'manifest', cid: decoded.value.cid })
          } else {
            const { hashes } = decoded.value
            for (let start = 0; start < hashes.length; start += this.#limits.chunksPerWrite) queue.push({ kind: 'chunks', hashes: hashes.slice(start, start + this.#limits.chunksPerWrite), values: null })
          }
          notify()
        }
      } finally {
        reading = false
        notify()
      }
    }
    const sendAnswers = async (): Promise<void> => {
      for (;;) {
        if (queue.length === 0) {
          if (!reading) return
          await changed()
          continue
        }
        // Store reads for the next steps start now, in order, a bounded number ahead.
        for (const answer of queue.slice(0, this.#limits.readAheadSteps)) {
          if (answer.kind === 'chunks' && answer.values === null) {
            answer.values = store.getChunks(answer.hashes)
            // Awaited when its turn comes; a stream that ends first must not leave it unhandled.
            answer.values.catch(() => {})
          }
        }
        const answer = queue[0]!
        if (answer.kind === 'frame') {
          await sendAll(stream, encodeFrame(answer.frame), this.#limits.sendTimeoutMs)
        } else if (answer.kind === 'manifest') {
          const bytes = await store.manifestBytes(answer.cid)
          if (bytes === undefined) this.counters.notFound++
          else this.counters.manifestsServed++
          await sendAll(stream, encodeFrame(bytes === undefined ? notFoundFrame(answer.cid) : manifestFrame(bytes)), this.#limits.sendTimeoutMs)
        } else {
          const values = await answer.values!
          const frames = values.map((bytes, index): Uint8Array[] => {
            const hash = answer.hashes[index]!
            if (bytes === undefined) {
              this.counters.notFound++
              return [notFoundFrame(hash)]
            }
            this.counters.chunksServed++
            this.counters.bytesServed += bytes.byteLength
            return [chunkFrameHeader(hash), bytes]
          })
          await sendAll(stream, encodeFrames(frames), this.#limits.sendTimeoutMs)
        }
        queue.shift()
        notify()
      }
    }
    try {
      const reader = readRequests()
      await sendAnswers()
      await reader
      if (stream.status === 'open') await stream.close().catch(() => {})
    } catch (error) {
      stopped = true
      notify()
      stream.abort(error as Error)
      if (this.#started) logger.debug('stream-ended', { from, error: (error as Error).message })
    } finally {
      this.#active.delete(stream)
      const left = (this.#perPeer.get(from) ?? 1) - 1
      if (left > 0) this.#perPeer.set(from, left)
      else this.#perPeer.delete(from)
    }
  }
}

/** One answer, in request order: a refusal, a manifest, or one step of a chunks request. */
type Answer =
  | { kind: 'frame'; frame: Uint8Array }
  | { kind: 'manifest'; cid: Cid }
  | { kind: 'chunks'; hashes: ChunkHash[]; values: Promise<(Uint8Array | undefined)[]> | null }
