// The document's periodic sync, beyond the partners each step marks: a voter pushes to the
// non-voters homed on it every downstream interval, and every resync interval the sessions that may
// have lost a message restart, so a lossy link cannot stall them.
import type { Document } from './cluster-document.ts'
import { committeeVoters } from './committee.ts'
import type { DocumentReplica } from './document-replica.ts'
import { ServedNonVoters } from './downstream.ts'
import type { NodeId, PeerConfig } from './types.ts'

/** The peer as it stands when the timers run. */
export interface SyncScheduleView {
  nowMs: number
  document: Document
  isVoter: boolean
  isLeader: boolean
  leaderId: NodeId | null
}

type SyncTiming = Pick<PeerConfig, 'downstreamSyncIntervalMs' | 'resyncIntervalMs'>

export class SyncSchedule {
  readonly #nodeId: NodeId
  readonly #config: SyncTiming
  readonly #replica: DocumentReplica
  readonly #served = new ServedNonVoters()
  #nextDownstreamMs: number
  #nextResyncMs: number
  #resyncCursor = 0
  #lastVoterSyncMs = -Infinity

  constructor(nodeId: NodeId, config: SyncTiming, replica: DocumentReplica, nowMs: number) {
    this.#nodeId = nodeId
    this.#config = config
    this.#replica = replica
    this.#nextDownstreamMs = nowMs + config.downstreamSyncIntervalMs
    this.#nextResyncMs = nowMs + config.resyncIntervalMs
  }

  /** A voter's sync message arrived: a non-voter is not cut off. */
  heardFromVoter(nowMs: number): void { this.#lastVoterSyncMs = nowMs }

  /** The committee or the node set changed: who serves which non-voter is computed afresh. */
  membershipChanged(): void { this.#served.invalidate() }

  nextWakeMs(isVoter: boolean): number {
    return isVoter ? Math.min(this.#nextResyncMs, this.#nextDownstreamMs) : this.#nextResyncMs
  }

  onTimers(peer: SyncScheduleView): void {
    if (peer.isVoter && peer.nowMs >= this.#nextDownstreamMs) {
      this.#nextDownstreamMs = peer.nowMs + this.#config.downstreamSyncIntervalMs
      for (const partner of this.#served.of(peer.document, this.#nodeId)) if (!this.#replica.inSync(partner)) this.#replica.syncWith(partner)
    }
    if (peer.nowMs >= this.#nextResyncMs) {
      this.#nextResyncMs = peer.nowMs + this.#config.resyncIntervalMs
      this.#resync(peer)
    }
  }

  /** Restart sessions that may have lost a message. */
  #resync(peer: SyncScheduleView): void {
    const voters = committeeVoters(peer.document).filter((id) => id !== this.#nodeId)
    if (peer.isLeader) {
      for (const voter of voters) if (!this.#replica.inSync(voter)) this.#replica.resyncWith(voter)
    } else if (!peer.isVoter && voters.length > 0 && peer.nowMs - this.#lastVoterSyncMs >= 2 * this.#config.downstreamSyncIntervalMs) {
      // Rotate through the voters so a non-voter stays current even when its home voter is down.
      const voter = voters[this.#resyncCursor++ % voters.length]
      if (voter !== undefined) this.#replica.resyncWith(voter)
    } else if (peer.leaderId !== null && peer.leaderId !== this.#nodeId && !this.#replica.inSync(peer.leaderId)) {
      this.#replica.resyncWith(peer.leaderId)
    }
  }
}
