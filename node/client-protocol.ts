// The daemon's side of /fabric/client/1.0.0: reads one length-prefixed request per stream, checks
// it (size, schema, that it names the peer the connection authenticated; then client-guard.ts: its
// signature, replay window and the client's role), hands it to the ClientService and writes the
// answer frames. A bad request gets an error frame and reaches nothing else. Bounded: concurrent
// requests, streams per connection, time to send the request, time a client may take to read; idle
// follows are kept open with keepalive frames.
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { ClientGuard } from './client-guard.ts'
import type { ClientService } from './client-service.ts'
import { decodeCbor } from '../codec/index.ts'
import { clientProtocol, clientWireLimits, decodeClientRequest, encodeClientResponse, errorResponse, type ClientResponse } from './client-wire.ts'
import type { Logger } from './logger.ts'

export interface ClientProtocolLimits {
  maxConcurrentRequests: number
  maxInboundStreamsPerConnection: number
  /** A client must send its request this soon after opening the stream. */
  requestReadTimeoutMs: number
  /** A client that does not take a frame for this long is dropped. */
  writeTimeoutMs: number
  keepaliveIntervalMs: number
}

export const defaultClientProtocolLimits: ClientProtocolLimits = {
  maxConcurrentRequests: 64,
  /** A daemon passing follows on to another holds one stream each on its connection: libp2p's default. */
  maxInboundStreamsPerConnection: 32,
  requestReadTimeoutMs: 5_000,
  writeTimeoutMs: 30_000,
  keepaliveIntervalMs: 30_000,
}

export interface ClientProtocolCounters { requests: number; refused: number; failed: number }

export interface ClientProtocolComponents {
  libp2p: Libp2p
  service: ClientService
  logger: Logger
  /** Signature, replay window and role (admission). */
  guard: ClientGuard
}

export class ClientProtocol {
  readonly counters: ClientProtocolCounters = { requests: 0, refused: 0, failed: 0 }
  readonly #components: ClientProtocolComponents
  readonly #limits: ClientProtocolLimits
  readonly #active = new Map<Stream, AbortController>()
  #started = false

  constructor(components: ClientProtocolComponents, limits: Partial<ClientProtocolLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultClientProtocolLimits, ...limits }
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(clientProtocol, (stream, connection) => void this.#serve(stream, connection), {
      maxInboundStreams: this.#limits.maxInboundStreamsPerConnection,
    })
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#components.libp2p.unhandle(clientProtocol).catch(() => {})
    for (const [stream, controller] of this.#active) {
      controller.abort()
      stream.abort(new Error('the daemon is stopping'))
    }
    this.#active.clear()
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const framed = lpStream(stream, { maxDataLength: clientWireLimits.maxRequestBytes })
    const write = (response: ClientResponse): Promise<void> => framed.write(encodeClientResponse(response), { signal: AbortSignal.timeout(this.#limits.writeTimeoutMs) })
    const refuse = async (code: Parameters<typeof errorResponse>[0], message: string): Promise<void> => {
      this.counters.refused++
      this.#components.logger.info('client-request-refused', { peerId, code, message })
      await write(errorResponse(code, message)).catch(() => {})
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
    if (!this.#started) return stream.abort(new Error('not serving'))
    if (this.#active.size >= this.#limits.maxConcurrentRequests) return refuse('busy', `this daemon is answering ${this.#limits.maxConcurrentRequests} requests already`)

    const controller = new AbortController()
    this.#active.set(stream, controller)
    stream.addEventListener('close', () => controller.abort())
    try {
      let bytes: Uint8Array
      try {
        bytes = (await framed.read({ signal: AbortSignal.timeout(this.#limits.requestReadTimeoutMs) })).subarray()
      } catch (error) {
        const name = (error as Error).name
        if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') {
          return await refuse('bad-request', `request exceeds maxRequestBytes (${clientWireLimits.maxRequestBytes})`)
        }
        if (name === 'TimeoutError' || name === 'AbortError') return await refuse('bad-request', `no request within ${this.#limits.requestReadTimeoutMs} ms`)
        this.#components.logger.debug('client-stream-ended', { peerId, error })
        return
      }
      const decoded = decodeClientRequest(bytes)
      if (!decoded.ok) return await refuse('bad-request', decoded.reason)
      const request = decoded.value
      if (request.client !== peerId) return await refuse('unauthorized', `the request names client ${request.client.slice(0, 128)}, but the connection is authenticated as ${peerId}`)
      // The signature covers the request as received (decoded again: it decoded once already, so this cannot fail).
      const received = decodeCbor(bytes)
      const verdict = await this.#components.guard.check(request, (received.ok ? received.value : {}) as Record<string, unknown>)
      if (!verdict.ok) return await refuse(verdict.code, verdict.reason)

      this.counters.requests++
      this.#components.logger.debug('client-request', { peerId, requestId: request.requestId, kind: request.kind, forwarded: request.forwarded === true })
      try {
        for await (const frame of withKeepalive(this.#components.service.handle(request, controller.signal), this.#limits.keepaliveIntervalMs)) {
          try {
            await write(frame)
          } catch (error) {
            // The client went away or stopped reading: nothing more to say to it.
            controller.abort()
            this.#components.logger.debug('client-gone', { peerId, requestId: request.requestId, error })
            return
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return // the client went away
        this.counters.failed++
        this.#components.logger.error('client-request-failed', { peerId, requestId: request.requestId, kind: request.kind, error })
        await write(errorResponse('internal', `the daemon failed answering ${request.kind}: ${(error as Error).message}`)).catch(() => {})
      }
      await stream.close().catch(() => stream.abort(new Error('closing')))
    } finally {
      controller.abort() // ends anything still reading on the request's behalf (a log follow)
      this.#active.delete(stream)
    }
  }
}

/** Passes `source` through, adding a keepalive frame whenever it stays silent for `intervalMs`. */
async function* withKeepalive(source: AsyncIterable<ClientResponse>, intervalMs: number): AsyncGenerator<ClientResponse> {
  const iterator = source[Symbol.asyncIterator]()
  let next = iterator.next()
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined
      const tick = new Promise<'tick'>((resolve) => {
        timer = setTimeout(() => resolve('tick'), intervalMs)
      })
      const winner = await Promise.race([next, tick])
      clearTimeout(timer)
      if (winner === 'tick') {
        yield { type: 'keepalive' }
        continue
      }
      if (winner.done === true) return
      yield winner.value
      next = iterator.next()
    }
  } finally {
    // Not awaited: a source waiting for output ends when the request's signal aborts; whatever it
    // settles with then has no reader.
    next.catch(() => {})
    iterator.return?.(undefined).catch(() => {})
  }
}
