// The calling side of /fabric/client/1.0.0: opens a stream to a daemon, sends one request and reads
// its response frames, each checked against the wire schema. Used by the CLI (through its own client
// host) and by a daemon that passes a logs request on to the node holding the output.
import { randomUUID } from 'node:crypto'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { isMultiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { encodeFrame, FrameReader } from '../codec/index.ts'
import { signClientRequest } from './request-signature.ts'
import {
  clientProtocol,
  clientWireLimits,
  clientWireVersion,
  decodeClientResponse,
  decodeClientResult,
  encodeClientRequest,
  meshIdPattern,
  type ClientErrorCode,
  type ClientRequest,
  type ClientRequestBody,
  type ClientRequestKind,
  type ClientResponse,
  type ClientResult,
} from './client-wire.ts'

export const defaultClientDialTimeoutMs = 5_000

/** The daemon answered with an error frame. */
export class ClientRequestError extends Error {
  override name = 'ClientRequestError'
  readonly code: ClientErrorCode
  readonly jobId: string | undefined
  constructor(facts: { code: ClientErrorCode; message: string; jobId?: string }) {
    super(facts.message)
    this.code = facts.code
    this.jobId = facts.jobId
  }
}

/** The daemon could not be reached, or its answer broke off or did not parse. */
export class ClientConnectionError extends Error {
  override name = 'ClientConnectionError'
  readonly target: string
  readonly reason: string
  constructor(facts: { target: string; reason: string }) {
    super(`${facts.target}: ${facts.reason}`)
    this.target = facts.target
    this.reason = facts.reason
  }
}

export interface ClientCallOptions {
  signal?: AbortSignal
  dialTimeoutMs?: number
  /** The mesh the request is for (overrides the host's pinned one: pinMeshId). */
  meshId?: string
  /** Marks a request a daemon passes on (the receiver answers it itself or refuses). */
  forwarded?: boolean
}

/**
 * Every request is signed for one mesh (client-wire.ts). A host that knows its mesh pins it: a
 * daemon (its own), a CLI given --mesh or a local daemon's addresses.json. Otherwise the first
 * request to a daemon goes out for no mesh, the daemon answers `wrong-mesh` naming its own, and the
 * request is signed again for that one (trust on first use; pin the mesh to rule it out).
 */
const pinnedMeshes = new WeakMap<Libp2p, string>()
const learnedMeshes = new WeakMap<Libp2p, Map<string, string>>()
/** The mesh id a request whose mesh is not known yet is signed for: no daemon has it. */
export const unknownMeshId = '0'.repeat(64)
/** Daemons remembered per client host (a CLI talks to a few; a long-lived host keeps the latest). */
const maxLearnedMeshes = 256

export function pinMeshId(libp2p: Libp2p, meshId: string): void {
  if (!meshIdPattern.test(meshId)) throw new Error(`a mesh id is 64 lowercase hex digits (the genesis SHA-256), got "${meshId.slice(0, 80)}"`)
  pinnedMeshes.set(libp2p, meshId)
}

/** A daemon's key: its peer id (a multiaddr's /p2p part), else the address as given. */
const targetKey = (target: Multiaddr | PeerId): string => (isMultiaddr(target) ? target.getComponents().findLast((component) => component.name === 'p2p')?.value : undefined) ?? target.toString()

function learnMesh(libp2p: Libp2p, target: Multiaddr | PeerId, meshId: string): void {
  let learned = learnedMeshes.get(libp2p)
  if (learned === undefined) learnedMeshes.set(libp2p, (learned = new Map()))
  if (learned.size >= maxLearnedMeshes) learned.delete(learned.keys().next().value!)
  learned.set(targetKey(target), meshId)
}

/** Sends `body` to `target` and yields every response frame up to and including the last (result, error or end). */
export async function* clientFrames(libp2p: Libp2p, target: Multiaddr | PeerId, body: ClientRequestBody, options: ClientCallOptions = {}): AsyncGenerator<ClientResponse> {
  const pinned = options.meshId ?? pinnedMeshes.get(libp2p)
  let mesh = pinned ?? learnedMeshes.get(libp2p)?.get(targetKey(target)) ?? unknownMeshId
  for (let attempt = 0; ; attempt++) {
    let learned: string | null = null
    for await (const frame of framesOnce(libp2p, target, body, mesh, options)) {
      if (attempt === 0 && pinned === undefined && frame.type === 'error' && frame.code === 'wrong-mesh' && frame.mesh !== undefined && frame.mesh !== mesh) {
        learned = frame.mesh
        break
      }
      yield frame
    }
    if (learned === null) return
    learnMesh(libp2p, target, learned)
    mesh = learned
  }
}

async function* framesOnce(libp2p: Libp2p, target: Multiaddr | PeerId, body: ClientRequestBody, mesh: string, options: ClientCallOptions): AsyncGenerator<ClientResponse> {
  const name = target.toString()
  const dialSignal = AbortSignal.any([AbortSignal.timeout(options.dialTimeoutMs ?? defaultClientDialTimeoutMs), ...(options.signal ? [options.signal] : [])])
  // Signed by the host's own key (request-signature.ts): the daemon checks it against `client`.
  const unsigned = { ...body, v: clientWireVersion, requestId: randomUUID().slice(0, 8), client: libp2p.peerId.toString(), mesh, signedAtMs: Date.now(), ...(options.forwarded === true ? { forwarded: true } : {}) }
  const request = { ...unsigned, signature: await signClientRequest(libp2p, unsigned) } as ClientRequest
  let stream: Stream
  try {
    stream = await libp2p.dialProtocol(target, clientProtocol, { signal: dialSignal })
  } catch (error) {
    throw new ClientConnectionError({ target: name, reason: `cannot open ${clientProtocol}: ${(error as Error).message}` })
  }
  // Room for a whole frame of the largest size and the start of the next; a length prefix no longer than that size needs.
  const frames = new FrameReader(stream, { maxFrameBytes: clientWireLimits.maxResponseFrameBytes, maxBufferedBytes: 2 * clientWireLimits.maxResponseFrameBytes })
  let finished = false
  try {
    if (!stream.send(encodeFrame(encodeClientRequest(request)))) await stream.onDrain(options.signal ? { signal: options.signal } : {})
    for (;;) {
      let frame: Uint8Array
      try {
        frame = await frames.read(options.signal ? { signal: options.signal } : {})
      } catch (error) {
        if (options.signal?.aborted === true) throw error
        throw new ClientConnectionError({ target: name, reason: `the answer broke off: ${(error as Error).message}` })
      }
      const decoded = decodeClientResponse(frame)
      if (!decoded.ok) throw new ClientConnectionError({ target: name, reason: `unreadable answer: ${decoded.reason}` })
      yield decoded.value
      if (decoded.value.type === 'result' || decoded.value.type === 'error' || decoded.value.type === 'end') {
        finished = true
        return
      }
    }
  } finally {
    if (finished) await stream.close().catch(() => stream.abort(new Error('closing')))
    else stream.abort(new Error('request abandoned'))
  }
}

/** One request, one result (checked against its kind's schema); an error frame throws ClientRequestError. */
export async function clientCall<K extends Exclude<ClientRequestKind, 'logs'>>(
  libp2p: Libp2p,
  target: Multiaddr | PeerId,
  body: ClientRequestBody & { kind: K },
  options: ClientCallOptions = {},
): Promise<ClientResult<K>> {
  for await (const frame of clientFrames(libp2p, target, body, options)) {
    // Progress and moves stream before the result of checkpoint, drain and a followed migrate: a plain call skips them.
    if (frame.type === 'keepalive' || frame.type === 'progress' || frame.type === 'moved') continue
    if (frame.type === 'error') throw new ClientRequestError(frame.jobId === undefined ? frame : { ...frame, jobId: frame.jobId })
    if (frame.type !== 'result') throw new ClientConnectionError({ target: target.toString(), reason: `unexpected ${frame.type} frame in answer to ${body.kind}` })
    const result = decodeClientResult(body.kind as K, frame.value)
    if (!result.ok) throw new ClientConnectionError({ target: target.toString(), reason: `unreadable answer: ${result.reason}` })
    return result.value
  }
  throw new ClientConnectionError({ target: target.toString(), reason: 'the daemon closed the stream without an answer' })
}
