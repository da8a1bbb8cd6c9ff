// Capacity gossip as soft state (never in the document): the latest free resources heard from each
// peer, which the leader reads as liveness, and the sequence numbers of this node's own publications.
import type { CapacityGossip, NodeId, Resources } from './types.ts'

export interface CapacityTableInit {
  nodeId: NodeId
  maxPeersTracked: number
  nodeTimeoutMs: number
}

export class CapacityTable {
  readonly #nodeId: NodeId
  readonly #maxPeersTracked: number
  readonly #nodeTimeoutMs: number
  readonly #table = new Map<NodeId, { seq: number; lastSeenMs: number; free: Resources }>()
  #publishedSeq = 0

  constructor(init: CapacityTableInit) {
    this.#nodeId = init.nodeId
    this.#maxPeersTracked = init.maxPeersTracked
    this.#nodeTimeoutMs = init.nodeTimeoutMs
  }

  /**
   * The sequence number for this node's next publication. It follows this node's clock, so it keeps
   * rising across restarts (a restarted node's gossip must not look stale to peers that saw its earlier life).
   */
  nextPublishedSeq(nowMs: number): number {
    this.#publishedSeq = Math.max(this.#publishedSeq + 1, Math.floor(nowMs))
    return this.#publishedSeq
  }

  /** Records a peer's gossip unless it is stale, replayed, or the table is full. */
  accept(gossip: CapacityGossip, nowMs: number): void {
    const known = this.#table.get(gossip.nodeId)
    if (known !== undefined && known.seq >= gossip.seq) return // stale or replayed
    if (known === undefined && this.#table.size >= this.#maxPeersTracked) return
    this.#table.set(gossip.nodeId, { seq: gossip.seq, lastSeenMs: nowMs, free: gossip.free })
  }

  /** A node is alive while heard within nodeTimeoutMs; silence before `sinceMs` (a leader's start) is not held against it. */
  isAlive(nodeId: NodeId, sinceMs: number, nowMs: number): boolean {
    if (nodeId === this.#nodeId) return true
    const seen = this.#table.get(nodeId)
    const lastSeen = Math.max(seen?.lastSeenMs ?? -Infinity, sinceMs)
    return nowMs - lastSeen < this.#nodeTimeoutMs
  }
}
