// The Shuttle's side of checkpoints: a core `checkpoint-job` becomes a runtime checkpoint (CRIU),
// packed into the node's chunk store as a snapshot (snapshots/), replicated to k peers in other
// failure domains (they fetch it from here over /fabric/snapshots/1.0.0 when asked on
// /fabric/snapshot-replicate/1.0.0), and reported back with its CID and holders. Every node that holds
// a complete snapshot (its maker, each replica) provides it in the DHT. A `start-job` with
// `restoreFrom` fetches the snapshot from its holders (the document's, and those the DHT finds),
// writes it out and restores the job from it.
// Old snapshots of a job are released past its policy's `keep`, and all of them when it is archived.
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p, PeerInfo, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import type { JobId, NodeId } from '../consensus/index.ts'
import type { RunHandle, Runtime } from '../runtime/index.ts'
import { ChunkStore, SnapshotFetcher, SnapshotServer, isCid, materializeSnapshot, packDirectory, type Cid, type FetchProgress, type HoldersOf } from '../snapshots/index.ts'
import { FrameReader, encodeFrames, sendAll } from '../codec/index.ts'
import type { SnapshotTransport } from '../snapshots/transport.ts'
import type { Logger } from './logger.ts'
import { SnapshotDhtRouting } from './snapshot-routing.ts'
import { PhaseMeter, fetchFrame, type ProgressListener } from './transfer-progress.ts'

export const snapshotReplicateProtocol = '/fabric/snapshot-replicate/1.0.0'
/** A replicate request or reply is a small CBOR map. */
export const maxReplicateMessageBytes = 2_048
/** How long a holder may take to fetch a snapshot it was asked to keep. */
export const replicateTimeoutMs = 120_000
/** Replication requests served at once; more are refused (the asker tries another peer). */
export const maxConcurrentReplications = 4
/** Replication requests of one peer served at once: a maker asks each holder once per snapshot, so one peer cannot take every slot. */
export const maxReplicationsPerPeer = 2
/** A replicate request or reply frame whose first byte arrived must be complete within this (2 KiB: any link does it in far less). */
export const replicateFrameTimeoutMs = 10_000
/** The asker must send its request this soon after opening the stream. */
export const replicateRequestTimeoutMs = 10_000
/** Snapshots kept per job on this node when its policy says nothing. */
export const defaultKeep = 3
/** How long a DHT provide may take before it is given up (logged; the document still names the holders). */
export const announceTimeoutMs = 30_000

const replicateRequest = z.strictObject({ cid: z.string().refine(isCid, 'not a snapshot CID'), from: z.string().min(1).max(128), owner: z.string().min(1).max(256) })
const replicateReply = z.strictObject({ ok: z.boolean(), reason: z.string().max(512).optional() })
/** Sent by the holder while it fetches, before its reply: what it has of the snapshot so far. */
const replicateProgress = z.strictObject({ progress: z.strictObject({ bytesDone: z.number().nonnegative(), bytesTotal: z.number().nonnegative(), chunksDone: z.number().nonnegative(), chunksTotal: z.number().nonnegative(), bytesPerSecond: z.number().nonnegative(), etaMs: z.number().nonnegative().nullable() }) })

export interface SnapshotKeeperComponents {
  libp2p: Libp2p
  runtime: Runtime
  logger: Logger
  dataDir: string
  /** Peers to ask to hold a replica, best first (other failure domains first); never this node. */
  replicaCandidates(): NodeId[]
  /** Whether a peer may fetch snapshots or ask this node to hold one (mesh nodes only). */
  mayActAsNode(peerId: string): boolean
  /** What carries /fabric/snapshots (default libp2p streams on `libp2p`); the keeper closes it. */
  snapshotTransport?: SnapshotTransport & { close?(): Promise<void> }
}

/** Replication requests this node was asked to serve: refused ones (answered `ok: false`) and those it now holds. */
export interface ReplicateCounters { requests: number; refused: number; replicated: number }

export class SnapshotKeeper {
  readonly #replicateCounters: ReplicateCounters = { requests: 0, refused: 0, replicated: 0 }
  readonly #components: SnapshotKeeperComponents
  readonly #store: ChunkStore
  readonly #server: SnapshotServer
  readonly #fetcher: SnapshotFetcher
  readonly #routing: SnapshotDhtRouting
  /** Per job: the snapshots this node made of it, oldest first (released past `keep`). */
  readonly #made = new Map<string, Cid[]>()
  #serial = 0
  #replicating = 0
  /** Replication requests being served per asking peer. */
  readonly #replicatingFor = new Map<string, number>()

  private constructor(components: SnapshotKeeperComponents, store: ChunkStore) {
    this.#components = components
    this.#store = store
    const logger = components.logger
    this.#server = new SnapshotServer({ libp2p: components.libp2p, transport: components.snapshotTransport, store, logger, accept: (peerId) => components.mayActAsNode(peerId) })
    this.#fetcher = new SnapshotFetcher({ libp2p: components.libp2p, transport: components.snapshotTransport, store, logger, holdersOf: async () => [] })
    this.#routing = new SnapshotDhtRouting({ libp2p: components.libp2p })
  }

  static async open(components: SnapshotKeeperComponents): Promise<SnapshotKeeper> {
    const store = await ChunkStore.open({ directory: join(components.dataDir, 'snapshots') })
    const keeper = new SnapshotKeeper(components, store)
    await keeper.#server.start()
    await components.libp2p.handle(snapshotReplicateProtocol, (stream, connection) => {
      // A reply that fails to send must not become an unhandled rejection (it would end the daemon).
      keeper.#serveReplicate(stream, connection.remotePeer.toString()).catch((error: unknown) => components.logger.debug('replicate-answer-failed', { error: String(error) }))
    }, { maxInboundStreams: maxConcurrentReplications })
    return keeper
  }

  /** For the daemon's status: what the snapshot server answered and what replication requests came to. */
  get counters(): { server: SnapshotServer['counters']; replicate: ReplicateCounters } {
    return { server: this.#server.counters, replicate: this.#replicateCounters }
  }

  /** Chunk bytes this node's snapshot server has sent to others. */
  get bytesServed(): number {
    return this.#server.counters.bytesServed
  }

  async close(): Promise<void> {
    await this.#components.libp2p.unhandle(snapshotReplicateProtocol).catch(() => {})
    await this.#server.stop()
    await this.#components.snapshotTransport?.close?.()
    await this.#store.close()
  }

  /**
   * Checkpoints the job, packs the images as a snapshot and gets `replicas` peers to hold it.
   * Returns the CID and the peers that confirmed. The local images are removed once packed.
   */
  async checkpoint(jobId: JobId, options: { stop: boolean; replicas: number; keep: number; onProgress?: ProgressListener }): Promise<{ cid: Cid; holders: NodeId[]; sizeBytes: number; chunks: number }> {
    const directory = join(this.#components.dataDir, 'checkpoints', `${jobId.replaceAll('#', '.r')}-${Date.now()}-${++this.#serial}`)
    await mkdir(join(this.#components.dataDir, 'checkpoints'), { recursive: true })
    const listener = options.onProgress
    const meter = (phase: 'checkpoint' | 'pack' | 'replicate', peer?: string): PhaseMeter | null =>
      listener === undefined ? null : new PhaseMeter({ jobId, node: this.#components.libp2p.peerId.toString(), phase, ...(peer === undefined ? {} : { peer }) }, () => performance.now(), listener)
    try {
      meter('checkpoint')?.update(0, 0, true)
      await this.#components.runtime.checkpoint(jobId, directory, { leaveRunning: !options.stop })
      const packing = meter('pack')
      const packed = await packDirectory(directory, this.#store, {
        owner: jobId,
        ...(packing === null ? {} : { onProgress: ({ bytes, chunks, bytesTotal }: { bytes: number; chunks: number; bytesTotal: number }) => { packing.total(bytesTotal, 0); packing.update(bytes, chunks) } }),
      })
      packing?.total(packed.sizeBytes, packed.distinctChunks)
      packing?.finish()
      const cid = packed.cid
      await this.#keepOnly(jobId, cid, options.keep)
      this.#announce(cid)
      const holders = await this.#replicate(cid, jobId, options.replicas, listener === undefined ? undefined : (peer) => meter('replicate', peer)!)
      this.#components.logger.info('snapshot-made', { jobId, cid, holders, stop: options.stop, sizeBytes: packed.sizeBytes, chunks: packed.distinctChunks })
      return { cid, holders, sizeBytes: packed.sizeBytes, chunks: packed.distinctChunks }
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  }

  /** Fetches the snapshot from its holders (the first is the node that made it), writes it out and restores the job. */
  async restore(jobId: JobId, cid: string, holders: readonly NodeId[], onProgress?: ProgressListener): Promise<RunHandle> {
    if (!isCid(cid)) throw new Error(`"${cid}" is not a snapshot CID`)
    const self = this.#components.libp2p.peerId.toString()
    const peers = await Promise.all(holders.filter((holder) => holder !== self).map((holder) => this.#peerInfo(holder)))
    // Asked only when chunks are missing: the document's holders, then any the DHT knows besides.
    let sources = new Map<string, string[]>()
    const holdersOf = async (_cid: Cid, options: { signal?: AbortSignal }): Promise<PeerInfo[]> => {
      const found = await this.#routing.holders(cid, peers, options)
      sources = found.sources
      this.#components.logger.info('snapshot-holders', { jobId, cid, holders: found.holders.map((holder) => ({ peer: holder.id.toString(), sources: found.sources.get(holder.id.toString()) })), dhtError: found.dhtError })
      return found.holders
    }
    const fetched = await this.#fetchFrom(cid, jobId, holdersOf, onProgress === undefined ? undefined : (progress) => onProgress(fetchFrame(progress, { jobId, node: self, phase: 'fetch' })))
    if (fetched.chunksFetched > 0 || fetched.manifestFetched) {
      const used = fetched.holders.map((holder) => ({ peer: holder.peerId, sources: sources.get(holder.peerId), chunks: holder.chunks, failure: holder.failure }))
      this.#components.logger.info('snapshot-fetched', { jobId, cid, bytes: fetched.bytesFetched, chunks: fetched.chunksFetched, alreadyStored: fetched.chunksAlreadyStored, ms: Math.round(fetched.elapsedMs), holders: used })
      this.#announce(cid)
    }
    const directory = join(this.#components.dataDir, 'restores', `${jobId.replaceAll('#', '.r')}-${Date.now()}-${++this.#serial}`)
    await mkdir(join(this.#components.dataDir, 'restores'), { recursive: true })
    await materializeSnapshot(this.#store, cid, directory)
    try {
      onProgress?.({ type: 'progress', jobId, node: self, phase: 'restore', bytesDone: 0, bytesTotal: 0, chunksDone: 0, chunksTotal: 0, bytesPerSecond: 0, etaMs: null })
      return await this.#components.runtime.restore(jobId, directory)
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  }

  /** The job is archived: every snapshot this node keeps of it (its own and replicas) is released. */
  async release(jobId: string): Promise<void> {
    this.#made.delete(jobId)
    for (const owner of [jobId, `replica:${jobId}`]) {
      for (const cid of await this.#store.snapshots()) {
        if (!(await this.#store.owners(cid)).includes(owner)) continue
        await this.#store.release(cid, owner)
        if ((await this.#store.owners(cid)).length === 0) await this.#withdraw(cid)
      }
    }
  }

  async #keepOnly(jobId: string, cid: Cid, keep: number): Promise<void> {
    const made = this.#made.get(jobId) ?? []
    made.push(cid)
    this.#made.set(jobId, made)
    while (made.length > Math.max(1, keep)) {
      const old = made.shift()!
      await this.#store.release(old, jobId)
      if ((await this.#store.owners(old)).length === 0) await this.#withdraw(old)
    }
  }

  async #fetchFrom(cid: Cid, owner: string, holdersOf: HoldersOf, onProgress?: (progress: FetchProgress) => void) {
    const fetcher = new SnapshotFetcher({ libp2p: this.#components.libp2p, transport: this.#components.snapshotTransport, store: this.#store, logger: this.#components.logger, holdersOf })
    return fetcher.fetch(cid, { owner, ...(onProgress === undefined ? {} : { onProgress }) })
  }

  /** Provides `cid` in the DHT, in the background: a checkpoint or restore never waits on it, and the document still names the holders. */
  #announce(cid: Cid): void {
    const startedMs = performance.now()
    this.#routing.announce(cid, { signal: AbortSignal.timeout(announceTimeoutMs) }).then(
      () => this.#components.logger.debug('snapshot-announced', { cid, ms: Math.round(performance.now() - startedMs) }),
      (error: unknown) => this.#components.logger.warn('snapshot-announce-failed', { cid, error: (error as Error).message }),
    )
  }

  async #withdraw(cid: Cid): Promise<void> {
    await this.#routing.withdraw(cid).catch((error: unknown) => this.#components.logger.debug('snapshot-withdraw-failed', { cid, error: (error as Error).message }))
  }

  async #peerInfo(id: string): Promise<PeerInfo> {
    const peerId = peerIdFromString(id)
    const libp2p = this.#components.libp2p
    if ((this.#components.snapshotTransport?.name ?? 'libp2p') === 'libp2p') return { id: peerId, multiaddrs: libp2p.getConnections(peerId).map((connection) => connection.remoteAddr) }
    // iroh: the peer's announced listen addresses (not a connection's, whose port may be ephemeral):
    // its iroh endpoint is on UDP at its TCP port's number.
    const known = await libp2p.peerStore.get(peerId).then((peer) => peer.addresses.map((address) => address.multiaddr), () => [])
    return { id: peerId, multiaddrs: known }
  }

  /** Asks candidates in turn until `count` confirmed holding the snapshot (bounded by the candidates). */
  async #replicate(cid: Cid, jobId: string, count: number, meterFor?: (peer: NodeId) => PhaseMeter): Promise<NodeId[]> {
    const holders: NodeId[] = []
    for (const candidate of this.#components.replicaCandidates()) {
      if (holders.length >= count) break
      const reason = await this.#askToHold(candidate, cid, jobId, meterFor?.(candidate)).catch((error: Error) => error.message)
      if (reason === null) holders.push(candidate)
      else this.#components.logger.warn('snapshot-replica-refused', { cid, peer: candidate, reason })
    }
    return holders
  }

  /** Null once `peer` holds the snapshot, else why not; the holder's fetch progress goes to `meter` as it comes. */
  async #askToHold(peer: NodeId, cid: Cid, owner: string, meter?: PhaseMeter): Promise<string | null> {
    const signal = AbortSignal.timeout(replicateTimeoutMs)
    const stream = await this.#components.libp2p.dialProtocol(peerIdFromString(peer), snapshotReplicateProtocol, { signal })
    try {
      const frames = new FrameReader(stream, { maxFrameBytes: maxReplicateMessageBytes, maxBufferedBytes: 2 * maxReplicateMessageBytes, frameTimeoutMs: replicateFrameTimeoutMs })
      await sendAll(stream, encodeFrames([[encodeCbor({ cid, from: this.#components.libp2p.peerId.toString(), owner })]]))
      for (;;) {
        const decoded = decodeCbor(await frames.read({ signal }))
        const parsed = decoded.ok ? decoded.value : undefined
        const progress = replicateProgress.safeParse(parsed)
        if (progress.success) {
          const { bytesDone, bytesTotal, chunksDone, chunksTotal } = progress.data.progress
          meter?.total(bytesTotal, chunksTotal)
          meter?.update(bytesDone, chunksDone)
          continue
        }
        const reply = replicateReply.safeParse(parsed)
        if (!reply.success) return 'malformed reply'
        if (reply.data.ok) meter?.finish()
        return reply.data.ok ? null : (reply.data.reason ?? 'refused')
      }
    } finally {
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
  }

  async #serveReplicate(stream: Stream, from: string): Promise<void> {
    const frames = new FrameReader(stream, { maxFrameBytes: maxReplicateMessageBytes, maxBufferedBytes: 2 * maxReplicateMessageBytes, frameTimeoutMs: replicateFrameTimeoutMs })
    this.#replicateCounters.requests++
    let counted = false
    const answer = async (reply: z.infer<typeof replicateReply>): Promise<void> => {
      // Counted once: a reply that could not be sent is answered again from the catch below.
      if (!counted) this.#replicateCounters[reply.ok ? 'replicated' : 'refused']++
      counted = true
      await sendAll(stream, encodeFrames([[encodeCbor(reply)]]), 10_000)
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
    if (!this.#components.mayActAsNode(from)) return answer({ ok: false, reason: 'only mesh nodes may ask to hold a snapshot' })
    if (this.#replicating >= maxConcurrentReplications) return answer({ ok: false, reason: 'busy replicating' })
    const forPeer = this.#replicatingFor.get(from) ?? 0
    if (forPeer >= maxReplicationsPerPeer) return answer({ ok: false, reason: `busy replicating ${maxReplicationsPerPeer} snapshots for this peer` })
    this.#replicating++
    this.#replicatingFor.set(from, forPeer + 1)
    try {
      const bytes = await frames.read({ signal: AbortSignal.timeout(replicateRequestTimeoutMs) })
      const parsed = decodeCbor(bytes)
      if (!parsed.ok) return await answer({ ok: false, reason: parsed.reason })
      const request = replicateRequest.safeParse(parsed.value)
      if (!request.success) return await answer({ ok: false, reason: `malformed: ${request.error.issues[0]?.message ?? 'invalid'}` })
      // Only the peer that made the snapshot may ask (it is the one we fetch from).
      if (request.data.from !== from) return await answer({ ok: false, reason: 'the request names another peer as the source' })
      const source = [await this.#peerInfo(from)]
      // The asker shows the fetch as its replicate progress: one small frame per update, in order.
      let sending: Promise<void> = Promise.resolve()
      const report = (progress: FetchProgress): void => {
        const frame = { progress: { bytesDone: progress.bytesFetched, bytesTotal: progress.bytesTotal, chunksDone: progress.chunksFetched, chunksTotal: progress.chunksTotal, bytesPerSecond: progress.bytesPerSecond, etaMs: progress.etaMs } }
        sending = sending.then(() => sendAll(stream, encodeFrames([[encodeCbor(frame)]]), 10_000)).catch(() => {})
      }
      const fetched = await this.#fetchFrom(request.data.cid as Cid, `replica:${request.data.owner}`, async () => source, report)
      await sending
      this.#components.logger.info('snapshot-replicated', { cid: request.data.cid, from, chunks: fetched.chunksFetched, bytes: fetched.bytesFetched, alreadyStored: fetched.chunksAlreadyStored, ms: Math.round(fetched.elapsedMs) })
      this.#announce(request.data.cid as Cid)
      await answer({ ok: true })
    } catch (error) {
      await answer({ ok: false, reason: (error as Error).message.slice(0, 500) }).catch(() => {})
    } finally {
      this.#replicating--
      const left = (this.#replicatingFor.get(from) ?? 1) - 1
      if (left > 0) this.#replicatingFor.set(from, left)
      else this.#replicatingFor.delete(from)
    }
  }
}
