// The Shuttle's side of checkpoints: a core `checkpoint-job` becomes a runtime checkpoint (CRIU),
// packed into the node's chunk store as a snapshot (snapshots/), replicated to k peers in other
// failure domains (they fetch it from here over /fabric/snapshots/1.0.0 when asked on
// /fabric/snapshot-replicate/1.0.0), and reported back with its CID and holders. A `start-job` with
// `restoreFrom` fetches the snapshot from its holders, writes it out and restores the job from it.
// Old snapshots of a job are released past its policy's `keep`, and all of them when it is archived.
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p, PeerInfo, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import type { JobId, NodeId } from '../consensus/index.ts'
import type { RunHandle, Runtime } from '../runtime/index.ts'
import { ChunkStore, SnapshotFetcher, SnapshotServer, isCid, materializeSnapshot, packDirectory, type Cid } from '../snapshots/index.ts'
import { FrameReader, encodeFrames, sendAll } from '../snapshots/frames.ts'
import type { Logger } from './logger.ts'

export const snapshotReplicateProtocol = '/fabric/snapshot-replicate/1.0.0'
/** A replicate request or reply is a small CBOR map. */
export const maxReplicateMessageBytes = 2_048
/** How long a holder may take to fetch a snapshot it was asked to keep. */
export const replicateTimeoutMs = 120_000
/** Replication requests served at once; more are refused (the asker tries another peer). */
export const maxConcurrentReplications = 4
/** Snapshots kept per job on this node when its policy says nothing. */
export const defaultKeep = 3

const replicateRequest = z.strictObject({ cid: z.string().refine(isCid, 'not a snapshot CID'), from: z.string().min(1).max(128), owner: z.string().min(1).max(256) })
const replicateReply = z.strictObject({ ok: z.boolean(), reason: z.string().max(512).optional() })

export interface SnapshotKeeperComponents {
  libp2p: Libp2p
  runtime: Runtime
  logger: Logger
  dataDir: string
  /** Peers to ask to hold a replica, best first (other failure domains first); never this node. */
  replicaCandidates(): NodeId[]
  /** Whether a peer may fetch snapshots or ask this node to hold one (mesh nodes only). */
  mayActAsNode(peerId: string): boolean
}

/** Replication requests this node was asked to serve: refused ones (answered `ok: false`) and those it now holds. */
export interface ReplicateCounters { requests: number; refused: number; replicated: number }

export class SnapshotKeeper {
  readonly #replicateCounters: ReplicateCounters = { requests: 0, refused: 0, replicated: 0 }
  readonly #components: SnapshotKeeperComponents
  readonly #store: ChunkStore
  readonly #server: SnapshotServer
  readonly #fetcher: SnapshotFetcher
  /** Per job: the snapshots this node made of it, oldest first (released past `keep`). */
  readonly #made = new Map<string, Cid[]>()
  #serial = 0
  #replicating = 0

  private constructor(components: SnapshotKeeperComponents, store: ChunkStore) {
    this.#components = components
    this.#store = store
    const logger = components.logger
    this.#server = new SnapshotServer({ libp2p: components.libp2p, store, logger, accept: (peerId) => components.mayActAsNode(peerId) })
    this.#fetcher = new SnapshotFetcher({ libp2p: components.libp2p, store, logger, holdersOf: async () => [] })
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
    await this.#store.close()
  }

  /**
   * Checkpoints the job, packs the images as a snapshot and gets `replicas` peers to hold it.
   * Returns the CID and the peers that confirmed. The local images are removed once packed.
   */
  async checkpoint(jobId: JobId, options: { stop: boolean; replicas: number; keep: number }): Promise<{ cid: Cid; holders: NodeId[] }> {
    const directory = join(this.#components.dataDir, 'checkpoints', `${jobId.replaceAll('#', '.r')}-${Date.now()}-${++this.#serial}`)
    await mkdir(join(this.#components.dataDir, 'checkpoints'), { recursive: true })
    try {
      await this.#components.runtime.checkpoint(jobId, directory, { leaveRunning: !options.stop })
      const packed = await packDirectory(directory, this.#store, { owner: jobId })
      const cid = packed.cid
      await this.#keepOnly(jobId, cid, options.keep)
      const holders = await this.#replicate(cid, jobId, options.replicas)
      this.#components.logger.info('snapshot-made', { jobId, cid, holders, stop: options.stop })
      return { cid, holders }
    } finally {
      await rm(directory, { recursive: true, force: true })
    }
  }

  /** Fetches the snapshot from its holders (the first is the node that made it), writes it out and restores the job. */
  async restore(jobId: JobId, cid: string, holders: readonly NodeId[]): Promise<RunHandle> {
    if (!isCid(cid)) throw new Error(`"${cid}" is not a snapshot CID`)
    const self = this.#components.libp2p.peerId.toString()
    const peers = holders.filter((holder) => holder !== self).map((holder) => this.#peerInfo(holder))
    if (await this.#store.manifest(cid) === undefined || peers.length > 0) {
      const fetched = await this.#fetchFrom(cid, jobId, peers)
      this.#components.logger.info('snapshot-fetched', { jobId, cid, bytes: fetched.bytesFetched, chunks: fetched.chunksFetched, alreadyStored: fetched.chunksAlreadyStored, ms: Math.round(fetched.elapsedMs) })
    }
    const directory = join(this.#components.dataDir, 'restores', `${jobId.replaceAll('#', '.r')}-${Date.now()}-${++this.#serial}`)
    await mkdir(join(this.#components.dataDir, 'restores'), { recursive: true })
    await materializeSnapshot(this.#store, cid, directory)
    try {
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
        if ((await this.#store.owners(cid)).includes(owner)) await this.#store.release(cid, owner)
      }
    }
  }

  async #keepOnly(jobId: string, cid: Cid, keep: number): Promise<void> {
    const made = this.#made.get(jobId) ?? []
    made.push(cid)
    this.#made.set(jobId, made)
    while (made.length > Math.max(1, keep)) await this.#store.release(made.shift()!, jobId)
  }

  async #fetchFrom(cid: Cid, owner: string, peers: readonly PeerInfo[]) {
    const fetcher = new SnapshotFetcher({ libp2p: this.#components.libp2p, store: this.#store, logger: this.#components.logger, holdersOf: async () => peers })
    return fetcher.fetch(cid, { owner })
  }

  #peerInfo(id: string): PeerInfo {
    const peerId = peerIdFromString(id)
    return { id: peerId, multiaddrs: this.#components.libp2p.getConnections(peerId).map((connection) => connection.remoteAddr) }
  }

  /** Asks candidates in turn until `count` confirmed holding the snapshot (bounded by the candidates). */
  async #replicate(cid: Cid, jobId: string, count: number): Promise<NodeId[]> {
    const holders: NodeId[] = []
    for (const candidate of this.#components.replicaCandidates()) {
      if (holders.length >= count) break
      const reason = await this.#askToHold(candidate, cid, jobId).catch((error: Error) => error.message)
      if (reason === null) holders.push(candidate)
      else this.#components.logger.warn('snapshot-replica-refused', { cid, peer: candidate, reason })
    }
    return holders
  }

  async #askToHold(peer: NodeId, cid: Cid, owner: string): Promise<string | null> {
    const signal = AbortSignal.timeout(replicateTimeoutMs)
    const stream = await this.#components.libp2p.dialProtocol(peerIdFromString(peer), snapshotReplicateProtocol, { signal })
    try {
      const frames = new FrameReader(stream, { maxFrameBytes: maxReplicateMessageBytes, maxBufferedBytes: 2 * maxReplicateMessageBytes })
      await sendAll(stream, encodeFrames([[encodeCbor({ cid, from: this.#components.libp2p.peerId.toString(), owner })]]))
      const bytes = await withTimeout(frames.read(), signal)
      const decoded = decodeCbor(bytes)
      const reply = replicateReply.safeParse(decoded.ok ? decoded.value : undefined)
      if (!reply.success) return 'malformed reply'
      return reply.data.ok ? null : (reply.data.reason ?? 'refused')
    } finally {
      await stream.close().catch(() => stream.abort(new Error('closing')))
    }
  }

  async #serveReplicate(stream: Stream, from: string): Promise<void> {
    const frames = new FrameReader(stream, { maxFrameBytes: maxReplicateMessageBytes, maxBufferedBytes: 2 * maxReplicateMessageBytes })
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
    this.#replicating++
    try {
      const bytes = await withTimeout(frames.read(), AbortSignal.timeout(10_000))
      const parsed = decodeCbor(bytes)
      if (!parsed.ok) return await answer({ ok: false, reason: parsed.reason })
      const request = replicateRequest.safeParse(parsed.value)
      if (!request.success) return await answer({ ok: false, reason: `malformed: ${request.error.issues[0]?.message ?? 'invalid'}` })
      // Only the peer that made the snapshot may ask (it is the one we fetch from).
      if (request.data.from !== from) return await answer({ ok: false, reason: 'the request names another peer as the source' })
      await this.#fetchFrom(request.data.cid as Cid, `replica:${request.data.owner}`, [this.#peerInfo(from)])
      await answer({ ok: true })
    } catch (error) {
      await answer({ ok: false, reason: (error as Error).message.slice(0, 500) }).catch(() => {})
    } finally {
      this.#replicating--
    }
  }
}

function withTimeout<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('timed out')), { once: true }))])
}
