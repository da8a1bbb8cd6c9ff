// The snapshot protocol over iroh (`@number0/iroh`: QUIC endpoints dialled by public key). Each
// snapshot stream is one QUIC bidirectional stream on a connection with ALPN `fabric/snapshots/1`,
// wrapped as a libp2p-style Stream (IrohStream) so the fetcher and the server run unchanged: the
// same frames, limits and chunk verification as over libp2p.
//
// Identity: the endpoint's secret key is the node's libp2p Ed25519 key, so an iroh endpoint id IS
// the node's libp2p peer id (the same 32-byte public key). A holder's iroh addresses travel in its
// PeerInfo as `/ip4/A/udp/P` (plain UDP, no `quic-v1`: not a libp2p QUIC address). A daemon binds
// iroh on UDP at its libp2p TCP port's number, so a peer's iroh address follows from the TCP
// listen addresses it already announces (`udpPortOfTcp`).
//
// iroh-js takes and returns `Array<number>` (one JS number per byte), so every byte crosses the
// native boundary as an array element; see the README for what that costs.
import { createRequire } from 'node:module'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { AbortOptions, Logger, PeerInfo, PrivateKey, Stream, StreamOptions } from '@libp2p/interface'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { AbstractStream, type SendResult } from '@libp2p/utils'
import type * as Iroh from '@number0/iroh'
import type { Uint8ArrayList } from 'uint8arraylist'
import type { SnapshotTransport } from './transport.ts'

export const irohSnapshotAlpn = 'fabric/snapshots/1'
/** The bench's baseline (raw-stream.ts) over iroh: bytes with no protocol around them. */
export const irohRawAlpn = 'fabric/bench/raw/1'
const alpns = [irohSnapshotAlpn, irohRawAlpn]
const alpnBytes = (alpn: string): number[] => [...Buffer.from(alpn)]

/** The bytes asked of one native read (it returns what arrived, up to this; iroh-js allocates and zeroes this much per read). */
const readBytes = 64 * 1024
/** Bytes handed to native writes and not yet taken; past this `send` says "wait for drain". */
const writeHighWaterBytes = 4 * 1024 * 1024
/** QUIC error codes on reset and stop (the peer sees them; their meaning is ours). */
const resetCode = 1n

export class IrohUnavailableError extends Error {
  override name = 'IrohUnavailableError'
}

type IrohModule = typeof Iroh
let loaded: IrohModule | Error | null = null

/** The native module, or a clear error saying why it cannot be used here. */
export function loadIroh(): IrohModule {
  if (loaded === null) {
    try {
      // CommonJS with a native binding picked by platform (@number0/iroh-<platform>); index.js by name
      // because the package's "main" names a file it does not ship (Node warns on each load).
      loaded = createRequire(import.meta.url)('@number0/iroh/index.js') as IrohModule
    } catch (error) {
      loaded = new IrohUnavailableError(`the iroh transport needs @number0/iroh and its native binary for ${process.platform}-${process.arch} (@number0/iroh-${process.platform}-${process.arch}-*): ${firstSentence((error as Error).message)}`)
    }
  }
  if (loaded instanceof Error) throw loaded
  return loaded
}

export interface IrohSnapshotTransportInit {
  /** The node's libp2p key (Ed25519): the endpoint id is then its peer id. */
  privateKey: PrivateKey
  /** UDP address to bind (default 127.0.0.1:0). */
  bindAddr?: string
  /** Holders given only TCP addresses are dialled on UDP at the same IP and port number (the daemon's convention). */
  udpPortOfTcp?: boolean
}

export class IrohSnapshotTransport implements SnapshotTransport {
  readonly name = 'iroh'
  readonly peerId: string
  readonly endpoint: Iroh.Endpoint
  readonly #iroh: IrohModule
  readonly #connections = new Map<string, Promise<Iroh.Connection>>()
  readonly #handlers = new Map<string, { handler: (stream: Stream, remotePeerId: string) => void; maxInboundStreams: number }>()
  #accepting: Promise<void> | null = null
  #streamIds = 0
  readonly #udpPortOfTcp: boolean

  private constructor(iroh: IrohModule, endpoint: Iroh.Endpoint, peerId: string, udpPortOfTcp: boolean) {
    this.#iroh = iroh
    this.endpoint = endpoint
    this.peerId = peerId
    this.#udpPortOfTcp = udpPortOfTcp
  }

  static async create(init: IrohSnapshotTransportInit): Promise<IrohSnapshotTransport> {
    const iroh = loadIroh()
    if (init.privateKey.type !== 'Ed25519') throw new Error(`the iroh transport needs an Ed25519 node key, not ${init.privateKey.type}`)
    const builder = iroh.Endpoint.builder()
    // Minimal: no relays, no discovery services; peers are dialled at the addresses they gave.
    iroh.presetMinimal(builder)
    builder.secretKey([...init.privateKey.raw.subarray(0, 32)])
    builder.bindAddr(init.bindAddr ?? '127.0.0.1:0')
    builder.alpns(alpns.map(alpnBytes))
    const endpoint = await builder.bind()
    const peerId = peerIdOfEndpoint(endpoint.id())
    const expected = peerIdFromPublicKey(init.privateKey.publicKey).toString()
    if (peerId !== expected) {
      await endpoint.close()
      throw new Error(`iroh endpoint id ${peerId} does not match the node's peer id ${expected}`)
    }
    return new IrohSnapshotTransport(iroh, endpoint, peerId, init.udpPortOfTcp === true)
  }

  /** The endpoint's direct addresses as `/ip4/A/udp/P` multiaddrs, for PeerInfo. */
  get multiaddrs(): Multiaddr[] {
    return this.endpoint.addr().directAddresses().flatMap((address) => {
      const parsed = /^(?:\[(.+)\]|([0-9.]+)):(\d+)$/.exec(address)
      if (parsed === null) return []
      return [multiaddr(parsed[1] !== undefined ? `/ip6/${parsed[1]}/udp/${parsed[3]}` : `/ip4/${parsed[2]}/udp/${parsed[3]}`)]
    })
  }

  dial(holder: PeerInfo, options: { signal?: AbortSignal }): Promise<Stream> {
    return this.dialProtocol(holder, irohSnapshotAlpn, options)
  }

  /** A stream to `holder` on a connection for `alpn` (one connection per peer and ALPN, reused). */
  async dialProtocol(holder: PeerInfo, alpn: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    options.signal?.throwIfAborted()
    const key = `${alpn} ${holder.id.toString()}`
    let connecting = this.#connections.get(key)
    if (connecting === undefined) {
      connecting = this.#connect(holder, alpn)
      this.#connections.set(key, connecting)
      // A failed dial is not cached: the next fetch tries again.
      connecting.catch(() => this.#connections.delete(key))
    }
    const connection = await raceAbort(connecting, options.signal)
    if (connection.closeReason() !== null) {
      this.#connections.delete(key)
      return this.dialProtocol(holder, alpn, options)
    }
    const bi = await raceAbort(connection.openBi(), options.signal)
    return new IrohStream(bi, { id: `iroh-${++this.#streamIds}`, direction: 'outbound', protocol: alpn })
  }

  async #connect(holder: PeerInfo, alpn: string): Promise<Iroh.Connection> {
    const socketAddresses = (transport: 'udp' | 'tcp'): string[] => [...new Set(holder.multiaddrs.flatMap((address) => {
      const parsed = new RegExp(`^/(ip4|ip6)/([^/]+)/${transport}/(\\d+)(?:/p2p/[^/]+)?$`).exec(address.toString())
      if (parsed === null) return []
      return [parsed[1] === 'ip6' ? `[${parsed[2]}]:${parsed[3]}` : `${parsed[2]}:${parsed[3]}`]
    }))]
    let addresses = socketAddresses('udp')
    if (addresses.length === 0 && this.#udpPortOfTcp) addresses = socketAddresses('tcp')
    if (addresses.length === 0) throw new Error(`holder ${holder.id.toString()} has no iroh address (/ip4/A/udp/P) among ${holder.multiaddrs.length} addresses`)
    const endpointId = this.#iroh.EndpointId.fromBytes([...endpointKeyOf(holder)])
    return this.endpoint.connect(new this.#iroh.EndpointAddr(endpointId, null, addresses), alpnBytes(alpn))
  }

  handle(handler: (stream: Stream, remotePeerId: string) => void, options: { maxInboundStreamsPerConnection: number }): Promise<void> {
    return this.handleProtocol(irohSnapshotAlpn, handler, options)
  }

  async unhandle(): Promise<void> {
    this.#handlers.delete(irohSnapshotAlpn)
  }

  async handleProtocol(alpn: string, handler: (stream: Stream, remotePeerId: string) => void, options: { maxInboundStreamsPerConnection: number }): Promise<void> {
    if (!alpns.includes(alpn)) throw new Error(`the iroh endpoint was not built for ALPN ${alpn}`)
    this.#handlers.set(alpn, { handler, maxInboundStreams: options.maxInboundStreamsPerConnection })
    this.#accepting ??= this.#acceptLoop()
  }

  async close(): Promise<void> {
    this.#handlers.clear()
    this.#connections.clear()
    await this.endpoint.close()
    await this.#accepting
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      const incoming = await this.endpoint.acceptNext().catch(() => null)
      if (incoming === null) return
      void this.#serveConnection(incoming).catch(() => {})
    }
  }

  async #serveConnection(incoming: Iroh.Incoming): Promise<void> {
    const connection = await (await incoming.accept()).connect()
    const alpn = Buffer.from(connection.alpn()).toString()
    const served = this.#handlers.get(alpn)
    if (served === undefined) {
      connection.close(resetCode, alpnBytes(`not serving ${alpn}`))
      return
    }
    // QUIC's own stream limit: the peer cannot open more than this at once.
    connection.setMaxConcurrentBiStreams(BigInt(served.maxInboundStreams))
    const from = peerIdOfEndpoint(connection.remoteId())
    for (;;) {
      const bi = await connection.acceptBi()
      const handler = this.#handlers.get(alpn)?.handler
      const stream = new IrohStream(bi, { id: `iroh-${++this.#streamIds}`, direction: 'inbound', protocol: alpn })
      if (handler === undefined) stream.abort(new Error(`not serving ${alpn}`))
      else handler(stream, from)
    }
  }
}

/** One QUIC bidirectional stream as a libp2p Stream: writes are chained in order, reads flow as message events. */
class IrohStream extends AbstractStream {
  readonly #bi: Iroh.BiStream
  #writes: Promise<void> = Promise.resolve()
  #queuedBytes = 0
  #paused = false
  #reading = false

  constructor(bi: Iroh.BiStream, init: { id: string; direction: 'inbound' | 'outbound'; protocol: string } & Partial<StreamOptions>) {
    super({ ...init, log: silentLog })
    this.#bi = bi
    void this.#readLoop()
  }

  sendData(data: Uint8ArrayList): SendResult {
    const bytes = data.byteLength
    const array = toNumberArray(data)
    this.#queuedBytes += bytes
    this.#writes = this.#writes.then(
      () => this.#bi.send.writeAll(array),
    ).then(
      () => {
        this.#queuedBytes -= bytes
        if (this.writableNeedsDrain && this.#queuedBytes < writeHighWaterBytes) this.onMuxerDrain()
      },
      (error: unknown) => {
        this.#queuedBytes -= bytes
        this.abort(error instanceof Error ? error : new Error(String(error)))
      },
    )
    return { sentBytes: bytes, canSendMore: this.#queuedBytes < writeHighWaterBytes }
  }

  sendReset(_error: Error): void {
    void this.#bi.send.reset(resetCode).catch(() => {})
    void this.#bi.recv.stop(resetCode).catch(() => {})
  }

  sendPause(): void {
    this.#paused = true
  }

  sendResume(): void {
    this.#paused = false
    if (!this.#reading) void this.#readLoop()
  }

  async sendCloseWrite(_options?: AbortOptions): Promise<void> {
    await this.#writes
    await this.#bi.send.finish()
  }

  async sendCloseRead(_options?: AbortOptions): Promise<void> {
    await this.#bi.recv.stop(0n)
  }

  async #readLoop(): Promise<void> {
    this.#reading = true
    try {
      while (!this.#paused && this.status === 'open' && this.readStatus !== 'closed') {
        const part = await this.#bi.recv.read(readBytes)
        // An empty read is the end of the peer's writes (QUIC FIN).
        if (part.length === 0) return this.onRemoteCloseWrite()
        this.onData(Buffer.from(part))
      }
    } catch (error) {
      if (this.status !== 'open') return
      const message = error instanceof Error ? error.message : String(error)
      if (/reset/i.test(message)) this.onRemoteReset()
      else this.abort(new Error(`iroh stream read failed: ${message}`))
    } finally {
      this.#reading = false
    }
  }
}

/** Bytes as the JS array iroh-js takes. A plain loop: Array.from on a Buffer is ~6x slower. */
function toNumberArray(data: Uint8ArrayList): number[] {
  const out = new Array<number>(data.byteLength)
  let offset = 0
  for (const part of data) {
    for (let index = 0; index < part.length; index++) out[offset + index] = part[index]!
    offset += part.length
  }
  return out
}

/** The loader's own first sentence only (the rest advises deleting the lock file, wrong here). */
function firstSentence(message: string): string {
  return message.split(/(?<=\.)\s/)[0]!.split('\n')[0]!
}

function peerIdOfEndpoint(id: Iroh.EndpointId): string {
  return peerIdFromPublicKey(publicKeyFromRaw(Uint8Array.from(id.toBytes()))).toString()
}

function endpointKeyOf(holder: PeerInfo): Uint8Array {
  const key = holder.id.publicKey
  if (holder.id.type !== 'Ed25519' || key === undefined) throw new Error(`holder ${holder.id.toString()} has a ${holder.id.type} peer id; iroh needs Ed25519`)
  return key.raw
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  return Promise.race([promise, new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason)
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })])
}

const silentLog: Logger = Object.assign(() => {}, { error() {}, trace() {}, enabled: false, newScope: () => silentLog })
