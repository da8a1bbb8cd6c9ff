// This node's replica of the cluster document and its sync with partners: local changes, the
// increment to persist, one Automerge session per partner over an ordered channel, and the
// acknowledgement each sync message carries. Every received message is screened before any of it
// enters (change-validator.ts). Replies are batched: partners are marked during a step and each hears
// one message when the step flushes. Peer decides what a received change means.
import * as A from '@automerge/automerge'
import { actorOf } from './actors.ts'
import type { VerifyGrant } from './admission-grants.ts'
import type { VerifySubmission } from './submission-proofs.ts'
import { ChangeValidator } from './change-validator.ts'
import { leaderSeqOf, loadDocument, originSeqOf, type ClusterDocument, type Document } from './cluster-document.ts'
import { concatBytes } from './bytes.ts'
import { SyncChannel } from './sync-channel.ts'
import { SyncPenalties } from './sync-penalties.ts'
import { SyncSessions } from './sync-sessions.ts'
import type { DocumentAck, NodeId, PeerMessage, SyncMessage, Term } from './types.ts'

export interface DocumentReplicaInit {
  nodeId: NodeId
  /** This boot's incarnation: the node writes as actorOf(nodeId, incarnation), and its sync channel's epoch. */
  incarnation: string
  /** The saved document (with any appended increments), or the same already loaded. */
  documentBytes: Uint8Array
  document?: Document
  maxPeersTracked: number
  /** Checks admission grants (the admin key's signature); absent, no admission record is accepted. */
  verifyGrant?: VerifyGrant
  /** Checks the client's signed request a non-voter's new job carries; absent, a non-voter creates no job in a mesh with an admin key. */
  verifySubmission?: VerifySubmission
}

export interface DocumentReplicaComponents {
  term: () => Term
  /** The leader this node follows, named in each sync message for non-voters. */
  leaderId: () => NodeId | null
  send: (to: NodeId, message: PeerMessage) => void
  /** A voter (some committee named it): it checked the changes it relays; others may send only their own. */
  trusted: (peer: NodeId) => boolean
  /**
   * This node is a voter: it takes a non-voter's own changes. A non-voter takes changes from voters
   * only, so all it writes depends on what the voters hold: a non-voter that gave it a change of its
   * own and withheld it from the voters would otherwise cut it off (its next changes would wait
   * forever at every voter for that dependency, which only its author may hand them).
   */
  takesFromNonVoters: () => boolean
  /** This node's clock: a refused sender's syncs are dropped unread for a while (sync-penalties.ts). */
  nowMs: () => number
}

/** What a sync message brought: dropped (duplicate or stale), refused, or accepted with what it changed. */
export type SyncReceipt =
  | { kind: 'duplicate' }
  | { kind: 'undecodable'; reason: string }
  /** It carried a change its writer may not make: nothing of it entered, and its sender is penalized. */
  | { kind: 'refused'; reason: string }
  /** Its sender is penalized for an earlier refusal: dropped unread. */
  | { kind: 'penalized' }
  | { kind: 'accepted'; changed: boolean; touchedPaths: A.Prop[][] }

const emptyBytes = new Uint8Array(0)

const sameHeads = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((head) => b.includes(head))

export class DocumentReplica {
  readonly #components: DocumentReplicaComponents
  readonly actor: string
  readonly #validator: ChangeValidator
  #document: Document
  #changed = false
  #persistedHeads: string[]
  readonly #sessions: SyncSessions
  readonly #channel: SyncChannel
  readonly #penalties: SyncPenalties
  readonly #dirtyPartners = new Set<NodeId>()
  /** Partners whose changes arrived: they hear back (the ack) even when there is nothing to sync. */
  readonly #ackOwed = new Set<NodeId>()
  /** Per partner, the ack it last heard from this node (as many entries as sync sessions). */
  readonly #ackSent = new Map<NodeId, DocumentAck>()

  constructor(init: DocumentReplicaInit, components: DocumentReplicaComponents) {
    this.#components = components
    this.actor = actorOf(init.nodeId, init.incarnation)
    this.#document = init.document ?? loadDocument(init.documentBytes, this.actor)
    this.#persistedHeads = A.getHeads(this.#document)
    this.#sessions = new SyncSessions(init.maxPeersTracked)
    this.#channel = new SyncChannel(init.incarnation, init.maxPeersTracked)
    this.#penalties = new SyncPenalties(init.maxPeersTracked)
    this.#validator = new ChangeValidator({ self: init.nodeId, actor: this.actor, verifyGrant: init.verifyGrant, verifySubmission: init.verifySubmission })
  }

  get document(): Document { return this.#document }
  /** Received messages refused whole for a forbidden change, and changes held back until they can be judged. */
  get screening(): { refused: number; heldBack: number; penalized: number; dropped: number } { return { ...this.#validator.counters, ...this.#penalties.counters } }
  /** The document changed since the last persist. */
  get changed(): boolean { return this.#changed }

  change(message: string, mutate: (draft: A.Doc<ClusterDocument>) => void): void {
    const before = this.#document
    this.#document = A.change(this.#document, { time: undefined, message }, mutate)
    if (this.#document !== before) this.#changed = true
  }

  /**
   * The changes added since the last persist, as concatenated change chunks (Automerge loads them
   * after the saved document). Cheaper than saveIncremental, which re-saves a freshly loaded
   * document whole on its first call.
   */
  takeIncrement(): Uint8Array {
    if (!this.#changed) return emptyBytes
    this.#changed = false
    const changes = A.getChangesSince(this.#document, this.#persistedHeads)
    this.#persistedHeads = A.getHeads(this.#document)
    return changes.length === 0 ? emptyBytes : concatBytes(changes)
  }

  /** `peer` hears from this node when the step flushes. */
  syncWith(peer: NodeId): void { this.#dirtyPartners.add(peer) }

  /** Restarts the session with `peer` (a message may have been lost) and syncs with it. */
  resyncWith(peer: NodeId): void {
    this.#sessions.restart(peer)
    this.#dirtyPartners.add(peer)
  }

  /** True when `peer`'s last known heads equal ours. */
  inSync(peer: NodeId): boolean { return this.#sessions.inSync(this.#document, peer) }

  /** One sync message to each marked partner that has something to hear (changes, an owed ack, or a request for what its waiting changes need). */
  flush(): void {
    for (const peer of this.#dirtyPartners) {
      let data = this.#sessions.generate(this.#document, peer)
      const needs = this.#validator.needs(peer, this.#document)
      if (needs.length > 0) {
        if (data === null) {
          this.#sessions.restart(peer)
          data = this.#sessions.generate(this.#document, peer)
        }
        if (data !== null) data = withNeeds(data, needs)
      }
      if (data !== null || this.#ackOwed.has(peer)) this.#sendSync(peer, data)
    }
    this.#dirtyPartners.clear()
    this.#ackOwed.clear()
  }

  #sendSync(peer: NodeId, data: Uint8Array | null): void {
    const term = this.#components.term()
    const ack = this.#ackFor(peer, term)
    this.#ackSent.set(peer, ack)
    this.#components.send(peer, { kind: 'sync', term, data, ack, channel: this.#channel.next(), leaderHint: this.#components.leaderId() })
  }

  /** This node holds more of `peer`'s requests or decisions than it last told it. */
  #ackAdvanced(peer: NodeId): boolean {
    const sent = this.#ackSent.get(peer)
    const now = this.#ackFor(peer, this.#components.term())
    return sent === undefined || now.term !== sent.term || now.leaderSeq !== sent.leaderSeq || now.originSeq !== sent.originSeq || now.origin !== sent.origin
  }

  /** What this node holds of `peer`'s current incarnation's requests (0 until it has heard that incarnation). */
  #ackFor(peer: NodeId, term: Term): DocumentAck {
    const epoch = this.#channel.epochOf(peer)
    const origin = epoch === undefined ? '' : actorOf(peer, epoch)
    return { term, leaderSeq: leaderSeqOf(this.#document, term), originSeq: origin === '' ? 0 : originSeqOf(this.#document, origin), origin }
  }

  receive(from: NodeId, message: SyncMessage): SyncReceipt {
    // Accept each sync message once and in order; a sender that restarted opens a new channel.
    const channel = this.#channel.accept(from, message.channel)
    if (channel === 'drop') return { kind: 'duplicate' }
    if (channel === 'reopened') this.#sessions.restart(from)
    if (message.data === null) return { kind: 'accepted', changed: false, touchedPaths: [] }
    // A voter checked every change it took before it passes it on (the trust model): only others' messages are screened.
    const trusted = this.#components.trusted(from)
    if (!trusted && this.#penalties.drops(from, this.#components.nowMs())) return { kind: 'penalized' }
    const screened = trusted
      ? ({ kind: 'pass', data: message.data } as const)
      : this.#components.takesFromNonVoters() ? this.#validator.screen(this.#document, message.data, from) : this.#validator.holdAll(message.data)
    if (screened.kind !== 'pass') {
      this.#sessions.restart(from)
      if (screened.kind === 'refused') this.#penalties.refused(from, this.#components.nowMs(), message.data.length)
      return screened
    }
    const headsBefore = A.getHeads(this.#document)
    let received
    try {
      received = this.#sessions.receive(this.#document, from, screened.data)
    } catch (error) {
      // A corrupt or hostile sync message changes nothing: drop it and start the session afresh.
      this.#sessions.restart(from)
      return { kind: 'undecodable', reason: `undecodable sync data (${(error as Error).message})` }
    }
    this.#document = received.document
    this.#validator.noteApplied(this.#document, headsBefore)
    // Heads, not patches, say whether anything arrived: a change to an archived (deleted) job
    // shows no patch, yet it is part of the document and must be persisted like any other.
    const changed = !sameHeads(headsBefore, A.getHeads(this.#document))
    if (changed) this.#changed = true
    // The reply goes out when the step (or batch) flushes: one per partner, whatever arrived. It
    // carries an ack when changes arrived, and also when this node got the partner's changes from
    // someone else since it last told it (a request relayed by the leader): Automerge says nothing
    // when the documents already agree, and the partner's retry would go unanswered.
    this.#dirtyPartners.add(from)
    if (changed || this.#ackAdvanced(from)) this.#ackOwed.add(from)
    return { kind: 'accepted', changed, touchedPaths: received.touchedPaths }
  }
}

/** Our sync message, asking also for `needs` (the changes a partner's waiting changes depend on). */
function withNeeds(data: Uint8Array, needs: readonly string[]): Uint8Array {
  const message = A.decodeSyncMessage(data)
  return A.encodeSyncMessage({ ...message, need: [...new Set([...message.need, ...needs])] })
}
