// The holder side of /fabric/snapshots/1.0.0: answers manifest and chunk requests from the local
// chunk store. It serves what it holds, stored bytes as they are (the fetcher verifies every
// chunk; a holder whose disk rotted is caught there and dropped). Each stream is served one
// request at a time, which bounds what a client can make it buffer to one request's answer.
import type { Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { ChunkStore } from './chunk-store.ts'
import { encodeFrames, sendAll } from './frames.ts'
import type { ChunkHash } from './hash.ts'
import type { SnapshotLogger } from './logger.ts'
import { transportOf, type SnapshotTransport } from './transport.ts'
import { chunkFrameHeader, decodeRequest, manifestFrame, maxRequestBytes, notFoundFrame, refusedFrame } from './wire.ts'

export interface SnapshotServerLimits {
  /** Snapshot streams one connection may hold open. */
  maxInboundStreamsPerConnection: number
  /** Snapshot streams served at once across all peers; past this new streams are refused. */
  maxActiveStreams: number
  /** Chunks read from the store and sent per step while answering one request (two steps are in memory at once). */
  chunksPerWrite: number
  /** A client that takes none of what was sent for this long loses the stream (its buffers are freed). */
  sendTimeoutMs: number
  /** A stream with no request for this long is closed, freeing its place among maxActiveStreams. */
  requestIdleTimeoutMs: number
}

export const defaultSnapshotServerLimits: SnapshotServerLimits = {
  maxInboundStreamsPerConnection: 8,
  // Each stream holds up to 2 x chunksPerWrite chunks: 1 MiB at 16 KiB chunks, 64 MiB at the 1 MiB maximum.
  maxActiveStreams: 32,
  chunksPerWrite: 32,
  sendTimeoutMs: 30_000,
  requestIdleTimeoutMs: 60_000,
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
  }

  /** Answers one chunks request: reads the next slice from the store while the current one is sent. */
  async #sendChunks(stream: Stream, hashes: readonly ChunkHash[]): Promise<void> {
    const { store } = this.#components
    const step = this.#limits.chunksPerWrite
    let next = store.getChunks(hashes.slice(0, step))
    for (let start = 0; start < hashes.length; start += step) {
      const slice = hashes.slice(start, start + step)
      const values = await next
      if (start + step < hashes.length) next = store.getChunks(hashes.slice(start + step, start + 2 * step))
      const frames = values.map((bytes, index): Uint8Array[] => {
        const hash = slice[index]!
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
  }

  async #serve(stream: Stream, from: string): Promise<void> {
    if (!this.#started || this.#active.size >= this.#limits.maxActiveStreams || (this.#components.accept?.(from) === false)) {
      this.counters.streamsRefused++
      stream.abort(new Error('snapshot server busy'))
      return
    }
    this.#active.add(stream)
    const framed = lpStream(stream, { maxDataLength: maxRequestBytes })
    const { store, logger } = this.#components
    try {
      for (;;) {
        let frame: Uint8Array
        try {
          frame = (await framed.read({ signal: AbortSignal.timeout(this.#limits.requestIdleTimeoutMs) })).subarray()
        } catch (error) {
          const name = (error as Error).name
          if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') {
            // An oversized request cannot be skipped safely: refuse it and drop the stream.
            this.counters.refused++
            logger.warn('request-refused', { from, reason: `frame exceeds maxRequestBytes (${maxRequestBytes})` })
            stream.abort(error as Error)
          } else if (name === 'TimeoutError') {
            stream.abort(error as Error)
          } else {
            // The client is done (or gone): close our side too.
            stream.close().catch(() => {})
          }
          return
        }
        this.counters.requests++
        const decoded = decodeRequest(frame)
        if (!decoded.ok) {
          this.counters.refused++
          logger.debug('request-refused', { from, reason: decoded.reason })
          await framed.write(refusedFrame(decoded.reason))
          continue
        }
        const request = decoded.value
        if (request.kind === 'manifest') {
          const bytes = await store.manifestBytes(request.cid)
          if (bytes === undefined) this.counters.notFound++
          else this.counters.manifestsServed++
          await framed.write(bytes === undefined ? notFoundFrame(request.cid) : manifestFrame(bytes))
          continue
        }
        await this.#sendChunks(stream, request.hashes)
      }
    } catch (error) {
      if (this.#started) logger.debug('stream-ended', { from, error: (error as Error).message })
    } finally {
      this.#active.delete(stream)
    }
  }
}
