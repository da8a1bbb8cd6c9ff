// An admitted node that lies, for node/document-attacks.test.ts: it speaks /fabric/consensus/1.0.0
// from a libp2p host of the test's own, reads a daemon's cluster document the way a node does (rounds
// of the Automerge sync protocol in `sync` messages, the daemon answering on the stream it opens back
// to this host), writes forged changes into a copy of it under its own actor (consensus/actors.ts) or
// another's, and sends them as sync messages; it sends any other peer message as it likes too. What
// the daemons send it is kept per daemon (bounded), to read their sync replies and acknowledgements.
import * as A from '@automerge/automerge'
import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { encodeFrame, FrameReader, sendAll } from '../../codec/index.ts'
import { actorOf, asNodeId, asTerm, type ClusterDocument, type PeerMessage, type SyncMessage } from '../../consensus/index.ts'
import { consensusProtocol, inboundBufferBytes } from '../consensus-transport.ts'
import type { Daemon } from '../daemon-process.ts'
import { decodePeerMessage, encodePeerMessage, maxPeerFrameBytes } from '../wire.ts'
import { openStream } from './attack-kit.ts'

/** Messages kept per daemon (the oldest dropped first): a test reads the latest few. */
export const maxKeptMessagesPerDaemon = 1_000
/** Sync rounds a document fetch may take (an empty copy needs two or three). */
export const maxSyncRounds = 12
/** How long a fetch waits for each reply of the daemon. */
export const syncReplyTimeoutMs = 3_000

/**
 * The shard a document key lives in: the document's own layout (consensus/cluster-document.ts
 * shardOf, FNV-1a over the key, 64 shards), which consensus/ does not export and which any node
 * reading the document knows. `checkShards` asserts it against a document.
 */
export function documentShardOf(key: string): string {
  let hash = 0x811c9dc5
  for (let index = 0; index < key.length; index++) {
    hash ^= key.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193)
  }
  return ((hash >>> 0) % 64).toString(16).padStart(2, '0')
}

/** Asserts documentShardOf against every job and node record of `document` (the layout changed if it fails). */
export function checkShards(document: A.Doc<ClusterDocument>): void {
  for (const section of [document.jobs, document.nodes] as Record<string, Record<string, unknown>>[]) {
    for (const [shard, records] of Object.entries(section)) {
      for (const key of Object.keys(records)) if (documentShardOf(key) !== shard) throw new Error(`assertion: ${key} is in shard ${shard}, documentShardOf says ${documentShardOf(key)}: the document's layout changed`)
    }
  }
}

export type Forged = { data: Uint8Array; hashes: string[]; document: A.Doc<ClusterDocument> }

export class WireInsider {
  readonly host: Libp2p
  readonly nodeId: string
  /** Per daemon: the latest messages it sent, and how many it sent in all (a message's number is its place in that count). */
  readonly #received = new Map<string, { messages: PeerMessage[]; total: number }>()
  readonly #waiters = new Set<() => void>()
  readonly #streams = new Map<string, Stream>()
  /** The sync channel this node numbers its messages in (consensus/sync-channel.ts); a new epoch reopens it. */
  #epochNumber = 0xfe00
  #seq = 0

  private constructor(host: Libp2p) {
    this.host = host
    this.nodeId = host.peerId.toString()
  }

  /** Takes over `host` (admitted as a node): it now answers the daemons' consensus streams. */
  static async start(host: Libp2p): Promise<WireInsider> {
    const insider = new WireInsider(host)
    await host.handle(consensusProtocol, (stream, connection) => {
      void insider.#read(stream, connection.remotePeer.toString())
    })
    return insider
  }

  /** The channel epoch this node's sync messages carry now (an incarnation: hex). */
  get epoch(): string { return this.#epochNumber.toString(16) }

  /** The actor this node writes with in its current epoch, as an honest node would. */
  get actor(): string { return actorOf(asNodeId(this.nodeId), this.epoch) }

  /** A new channel epoch: every daemon restarts its sync session with this node at its next message (a node that restarted). */
  reopen(): void {
    this.#epochNumber++
    this.#seq = 0
  }

  /** Sends one message to `daemon` on this node's stream to it (opened, or opened again once closed). */
  async send(daemon: Daemon, message: PeerMessage): Promise<void> {
    await sendAll(await this.#stream(daemon), encodeFrame(encodePeerMessage(message)), 10_000)
  }

  /** A sync message carrying `data` in this node's channel. */
  syncMessage(data: Uint8Array | null, term: number, leaderHint: string | null = null): SyncMessage {
    return { kind: 'sync', term: asTerm(term), data, ack: { term: asTerm(term), leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: this.epoch, seq: ++this.#seq }, leaderHint: leaderHint === null ? null : asNodeId(leaderHint) }
  }

  /** What `daemon` sent this node lately (at most maxKeptMessagesPerDaemon, oldest first). */
  received(daemon: Daemon): readonly PeerMessage[] {
    return this.#received.get(daemon.peerId)?.messages ?? []
  }

  /** How many messages `daemon` sent this node so far: a mark for nextFrom. */
  mark(daemon: Daemon): number {
    return this.#received.get(daemon.peerId)?.total ?? 0
  }

  /** The first message from `daemon` numbered `after` or later (see mark) that `matches`; rejects after `timeoutMs`. */
  nextFrom(daemon: Daemon, after: number, matches: (message: PeerMessage) => boolean, timeoutMs: number): Promise<PeerMessage> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const kept = this.#received.get(daemon.peerId)
        const found = kept === undefined ? undefined : kept.messages.slice(Math.max(0, after - (kept.total - kept.messages.length))).find(matches)
        if (found === undefined) return
        cleanup()
        resolve(found)
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`${daemon.name} sent no matching message within ${timeoutMs} ms (${this.mark(daemon) - after} messages since)`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
      }
      this.#waiters.add(check)
      check()
    })
  }

  /**
   * The daemon's cluster document as of `heads` (its status answer), fetched like a node that starts
   * empty: a new channel epoch (the daemon restarts its session with this node), then sync rounds
   * until this copy holds those heads. Every sync message this node sends carries no change.
   */
  async fetchDocument(daemon: Daemon, heads: readonly string[], term: number): Promise<A.Doc<ClusterDocument>> {
    this.reopen()
    let document = A.init<ClusterDocument>()
    let state = A.initSyncState()
    for (let round = 0; round < maxSyncRounds; round++) {
      if (A.hasHeads(document, [...heads])) return document
      let [next, outgoing] = A.generateSyncMessage(document, state)
      // Automerge says nothing while it waits for an answer that did not come: ask again, as a new session would.
      if (outgoing === null) [next, outgoing] = A.generateSyncMessage(document, A.initSyncState())
      state = next
      const mark = this.mark(daemon)
      await this.send(daemon, this.syncMessage(outgoing, term))
      const reply = await this.nextFrom(daemon, mark, (message) => message.kind === 'sync' && message.data !== null, syncReplyTimeoutMs).catch(() => null)
      if (reply === null || reply.kind !== 'sync' || reply.data === null) continue
      ;[document, state] = A.receiveSyncMessage(document, state, reply.data)
    }
    if (A.hasHeads(document, [...heads])) return document
    throw new Error(`${daemon.name}'s document did not arrive within ${maxSyncRounds} sync rounds (holding ${A.getHeads(document).length} heads, ${A.getAllChanges(document).length} changes)`)
  }

  /**
   * A change `mutate` makes to a copy of `document` written as `actor` (this node's by default), as
   * the data of a sync message: the change alone, or (`asDocument`) the whole forged document as one
   * chunk, which Automerge's v2 messages may carry. `document` itself is left as it was.
   */
  forge(document: A.Doc<ClusterDocument>, mutate: (draft: ClusterDocument) => void, options: { actor?: string; asDocument?: boolean } = {}): Forged {
    const before = A.getHeads(document)
    const forged = A.change(A.clone(document, { actor: options.actor ?? this.actor }), mutate)
    const changes = A.getChangesSince(forged, before)
    if (changes.length === 0) throw new Error('assertion: the forgery changed nothing')
    const hashes = changes.map((change) => A.decodeChange(change).hash)
    const sent = options.asDocument === true ? [A.save(forged)] : changes
    const data = A.encodeSyncMessage({ heads: A.getHeads(forged), need: [], have: [], changes: sent } as unknown as A.DecodedSyncMessage)
    return { data, hashes, document: forged }
  }

  async stop(): Promise<void> {
    for (const stream of this.#streams.values()) stream.abort(new Error('done'))
    this.#streams.clear()
    await this.host.unhandle(consensusProtocol).catch(() => {})
  }

  async #stream(daemon: Daemon): Promise<Stream> {
    const open = this.#streams.get(daemon.peerId)
    if (open !== undefined && open.status === 'open' && open.writeStatus === 'writable') return open
    const stream = await openStream(this.host, multiaddr(daemon.address), consensusProtocol)
    this.#streams.set(daemon.peerId, stream)
    return stream
  }

  /** A daemon's link to this node: frames read as the daemons' own transport reads them (bounded), each decoded by the wire schema. */
  async #read(stream: Stream, from: string): Promise<void> {
    const reader = new FrameReader(stream, { maxFrameBytes: maxPeerFrameBytes, maxBufferedBytes: inboundBufferBytes })
    try {
      for (;;) {
        const decoded = decodePeerMessage(await reader.read())
        if (!decoded.ok) continue
        let kept = this.#received.get(from)
        if (kept === undefined) this.#received.set(from, (kept = { messages: [], total: 0 }))
        kept.messages.push(decoded.value)
        kept.total++
        if (kept.messages.length > maxKeptMessagesPerDaemon) kept.messages.shift()
        for (const waiter of [...this.#waiters]) waiter()
      }
    } catch {
      // the daemon closed its link (it opens another for its next message)
    }
  }
}
