// The daemon's side of /fabric/client/1.0.0: reads one length-prefixed request per stream, checks
// it (size, schema, that it names the peer the connection authenticated; then client-guard.ts: its
// signature, replay window and the client's role), hands it to the ClientService and writes the
// answer frames. A bad request gets an error frame and reaches nothing else. Bounded: requests in
// flight per client, from peers without a role together, and over all (with room only admins may
// take, so no flood of others locks the admin out); streams per connection; the request's length
// prefix and time to send it (codec/frames.ts); time a client may take to read. Idle follows are
// kept open with keepalive frames.
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { AdmissionRole } from '../consensus/index.ts'
import { decodeCbor, encodeFrame, FrameReader, sendAll } from '../codec/index.ts'
import type { ClientGuard } from './client-guard.ts'
import { relayedKinds, type ClientService, type RequestContext } from './client-service.ts'
import { clientProtocol, clientWireLimits, decodeClientRequest, encodeClientResponse, errorResponse, type ClientResponse } from './client-wire.ts'
import type { Logger } from './logger.ts'
import { RefusalLog } from './refusal-log.ts'

export interface ClientProtocolLimits {
  /** Requests answered at once, over all clients. */
  maxConcurrentRequests: number
  /** Of maxConcurrentRequests, the slots only admin clients may take. */
  reservedForAdmins: number
  /** Requests one client with a role may have in flight. */
  maxRequestsPerPeer: number
  /** Requests in flight from all peers without a role (or revoked) together: each is only ever refused. */
  maxRequestsFromStrangers: number
  maxInboundStreamsPerConnection: number
  /** Client streams this daemon may open on one connection (passing requests on to another node: one per follow). */
  maxOutboundStreamsPerConnection: number
  /** A client must send its whole request this soon after opening the stream. */
  requestReadTimeoutMs: number
  /** A client that does not take a frame for this long is dropped. */
  writeTimeoutMs: number
  keepaliveIntervalMs: number
}

export const defaultClientProtocolLimits: ClientProtocolLimits = {
  maxConcurrentRequests: 64,
  /** An admin asks one thing at a time (admit, revoke, drain): a few slots always left for it. */
  reservedForAdmins: 8,
  /** A daemon passing follows on to another holds one stream each; a CLI holds one. */
  maxRequestsPerPeer: 16,
  /** Enough for a few peers to hear why they are refused at once; more wait (`busy`). */
  maxRequestsFromStrangers: 4,
  /** A daemon passing follows on to another holds one stream each on its connection: libp2p's default. */
  maxInboundStreamsPerConnection: 32,
  maxOutboundStreamsPerConnection: 32,
  requestReadTimeoutMs: 5_000,
  writeTimeoutMs: 30_000,
  keepaliveIntervalMs: 30_000,
}

export interface ClientProtocolCounters { requests: number; refused: number; failed: number; busy: number }

export interface ClientProtocolComponents {
  libp2p: Libp2p
  service: ClientService
  logger: Logger
  /** Signature, replay window and role (admission); its role lookup also reserves room before a request is read. */
  guard: Pick<ClientGuard, 'check' | 'roleOf'>
}

/** Refusals are all counted, but logged at most once per client per interval (a flood cannot flood the log). */
export const clientRefusalLogIntervalMs = 1_000

export class ClientProtocol {
  readonly counters: ClientProtocolCounters = { requests: 0, refused: 0, failed: 0, busy: 0 }
  readonly #components: ClientProtocolComponents
  readonly #limits: ClientProtocolLimits
  readonly #active = new Map<Stream, AbortController>()
  /** Requests in flight per client peer id. */
  readonly #perPeer = new Map<string, number>()
  #fromStrangers = 0
  readonly #refusalLog: RefusalLog
  #started = false

  constructor(components: ClientProtocolComponents, limits: Partial<ClientProtocolLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultClientProtocolLimits, ...limits }
    this.#refusalLog = new RefusalLog(components.logger, undefined, { intervalMs: clientRefusalLogIntervalMs })
    if (this.#limits.reservedForAdmins >= this.#limits.maxConcurrentRequests) throw new Error('assertion: reservedForAdmins is below maxConcurrentRequests')
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#components.libp2p.handle(clientProtocol, (stream, connection) => void this.#serve(stream, connection), {
      maxInboundStreams: this.#limits.maxInboundStreamsPerConnection,
      maxOutboundStreams: this.#limits.maxOutboundStreamsPerConnection,
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
    this.#perPeer.clear()
    this.#fromStrangers = 0
  }

  /** Why `peerId` (acting with `role`) may not start a request now, or null when it may. */
  #noRoomFor(peerId: string, role: AdmissionRole | undefined): string | null {
    const limits = this.#limits
    const stranger = role === undefined || role === 'revoked'
    if (stranger && this.#fromStrangers >= limits.maxRequestsFromStrangers) return `this daemon is answering ${limits.maxRequestsFromStrangers} requests from peers without a role already`
    if ((this.#perPeer.get(peerId) ?? 0) >= limits.maxRequestsPerPeer) return `this daemon is answering ${limits.maxRequestsPerPeer} requests of client ${peerId} already`
    const open = role === 'admin' ? limits.maxConcurrentRequests : limits.maxConcurrentRequests - limits.reservedForAdmins
    if (this.#active.size >= open) return `this daemon is answering ${this.#active.size} requests already`
    return null
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const peerId = connection.remotePeer.toString()
    const write = (response: ClientResponse): Promise<void> => sendAll(stream, encodeFrame(encodeClientResponse(response)), this.#limits.writeTimeoutMs)
    const refuse = async (code: Parameters<typeof errorResponse>[0], message: string, mesh?: string): Promise<void> => {
      this.counters.refused++
      this.#logRefusal(peerId, { code, message })
      await write(mesh === undefined ? errorResponse(code, message) : { ...errorResponse(code, message), mesh }).catch(() => {})
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
    if (!this.#started) return stream.abort(new Error('not serving'))
    const role = this.#components.guard.roleOf(peerId)
    const noRoom = this.#noRoomFor(peerId, role)
    if (noRoom !== null) {
      this.counters.busy++
      return refuse('busy', noRoom)
    }

    const stranger = role === undefined || role === 'revoked'
    const controller = new AbortController()
    this.#active.set(stream, controller)
    this.#perPeer.set(peerId, (this.#perPeer.get(peerId) ?? 0) + 1)
    if (stranger) this.#fromStrangers++
    stream.addEventListener('close', () => controller.abort())
    // One request, then nothing: what a client sends past it only counts against the buffer bound.
    const reader = new FrameReader(stream, { maxFrameBytes: clientWireLimits.maxRequestBytes, maxBufferedBytes: clientWireLimits.maxRequestBytes + 1_024 })
    try {
      let bytes: Uint8Array
      try {
        bytes = await reader.read({ signal: AbortSignal.timeout(this.#limits.requestReadTimeoutMs) })
      } catch (error) {
        const name = (error as Error).name
        if (name === 'FrameTooLargeError' || name === 'ReadBufferOverflowError') {
          return await refuse('bad-request', `request exceeds maxRequestBytes (${clientWireLimits.maxRequestBytes}): ${(error as Error).message}`)
        }
        if (name === 'TimeoutError' || name === 'AbortError') return await refuse('bad-request', `no request within ${this.#limits.requestReadTimeoutMs} ms`)
        this.#components.logger.debug('client-stream-ended', { peerId, error })
        return
      }
      const decoded = decodeClientRequest(bytes)
      if (!decoded.ok) return await refuse('bad-request', decoded.reason)
      let request = decoded.value
      if (request.client !== peerId) return await refuse('unauthorized', `the request names client ${request.client.slice(0, 128)}, but the connection is authenticated as ${peerId}`)
      // The signature covers the request as received (decoded again: it decoded once already, so this cannot fail).
      const received = decodeCbor(bytes)
      let signed = (received.ok ? received.value : {}) as Record<string, unknown>
      const verdict = await this.#components.guard.check(request, signed)
      if (!verdict.ok) return await refuse(verdict.code, verdict.reason, verdict.code === 'wrong-mesh' ? verdict.mesh : undefined)
      let frame = bytes
      if (request.kind === 'relay') {
        // A node passes on a client's request only a voter writes: it is answered as the client's own, checked again here.
        const inner = decodeClientRequest(request.request)
        if (!inner.ok) return await refuse('bad-request', `relayed: ${inner.reason}`)
        if (inner.value.kind === 'relay' || !relayedKinds.has(inner.value.kind)) return await refuse('bad-request', `a ${inner.value.kind} request is not relayed`)
        const innerSigned = decodeCbor(request.request)
        signed = (innerSigned.ok ? innerSigned.value : {}) as Record<string, unknown>
        const innerVerdict = await this.#components.guard.check(inner.value, signed)
        if (!innerVerdict.ok) return await refuse(innerVerdict.code, `relayed: ${innerVerdict.reason}`)
        frame = request.request
        request = inner.value
      }

      this.counters.requests++
      this.#components.logger.debug('client-request', { peerId, requestId: request.requestId, kind: request.kind, forwarded: request.forwarded === true })
      try {
        const context: RequestContext = { frame, signed, relayed: decoded.value.kind === 'relay' }
        for await (const answer of withKeepalive(this.#components.service.handle(request, controller.signal, context), this.#limits.keepaliveIntervalMs)) {
          try {
            await write(answer)
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
      if (this.#active.delete(stream)) {
        const left = (this.#perPeer.get(peerId) ?? 1) - 1
        if (left > 0) this.#perPeer.set(peerId, left)
        else this.#perPeer.delete(peerId)
        if (stranger) this.#fromStrangers--
      }
    }
  }

  /** One line per client per `clientRefusalLogIntervalMs`, with how many were not logged. */
  #logRefusal(peerId: string, fields: Record<string, unknown>): void {
    this.#refusalLog.log(peerId, 'info', 'client-request-refused', { peerId, ...fields })
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
