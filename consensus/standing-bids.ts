// Standing bids: a node says once, to the leader it follows, how it answers every call for bids (its
// offer and bid policy), and the leader answers its calls from that instead of a round trip per
// round. The node stays sovereign: it withdraws (null) while draining, a changed price is sent at
// once, and a standing bid the leader has not heard repeated within standingBidTtlMs is not used
// (the node is called instead). Both sides are here: what a node sends when, and the leader's table.
import { answerCall, type Bid, type CallForBids, type NodeOffer } from '../placement/index.ts'
import type { NodeId, PeerConfig, StandingBid, StandingBidMessage, Term } from './types.ts'

type StandingTiming = Pick<PeerConfig, 'standingBidRefreshMs' | 'standingBidTtlMs'>

/** The bid a standing bid gives for `call`: what the node itself would have answered (Bidder.bidFor). */
export function bidFromStanding(nodeId: NodeId, standing: StandingBid, call: CallForBids, nowMs: number): Bid {
  const offer = { ...standing.offer, nodeId, free: standing.offer.capacity } as NodeOffer
  return answerCall(offer, call, nowMs, standing.policy)
}

/** The leader a node stands with: of the leaders it knows of (not itself), the one of the highest term. */
export function standingTarget(self: NodeId, known: readonly ({ leader: NodeId | null; term: Term } | null)[]): { leader: NodeId; term: Term } | null {
  let target: { leader: NodeId; term: Term } | null = null
  for (const candidate of known) {
    if (candidate === null || candidate.leader === null || candidate.leader === self) continue
    if (target === null || candidate.term > target.term) target = { leader: candidate.leader, term: candidate.term }
  }
  return target
}

/** The node's side: when to (re)send its standing bid to the leader it follows. */
export class StandingBidSender {
  readonly #timing: StandingTiming
  #sent: { to: NodeId; term: Term; key: string; atMs: number } | null = null

  constructor(timing: StandingTiming) {
    this.#timing = timing
  }

  /** When the standing bid is next due again (Infinity when standing bids are off or none was sent). */
  nextDueMs(): number {
    return this.#timing.standingBidTtlMs <= 0 || this.#sent === null ? Infinity : this.#sent.atMs + this.#timing.standingBidRefreshMs
  }

  /** No leader to stand with (none known, or this node leads): nothing is due until one is. */
  forget(): void { this.#sent = null }

  /** The message to send `leader` now, if it has not heard this standing bid in this term lately. */
  due(leader: NodeId, term: Term, standing: StandingBid | null, nowMs: number): StandingBidMessage | null {
    if (this.#timing.standingBidTtlMs <= 0) return null
    const key = JSON.stringify(standing)
    const sent = this.#sent
    if (sent !== null && sent.to === leader && sent.term === term && sent.key === key && nowMs < sent.atMs + this.#timing.standingBidRefreshMs) return null
    this.#sent = { to: leader, term, key, atMs: nowMs }
    return { kind: 'standing-bid', term, standing }
  }
}

/** The leader's side, one table per term (it lives in LeaderState): each node's latest standing bid. */
export class StandingBids {
  readonly #timing: StandingTiming
  readonly #maxNodes: number
  readonly #byNode = new Map<NodeId, { standing: StandingBid; atMs: number }>()

  constructor(timing: StandingTiming, maxNodes: number) {
    this.#timing = timing
    this.#maxNodes = maxNodes
  }

  get size(): number { return this.#byNode.size }

  /** Records (or with null withdraws) `from`'s standing bid; a reason when it is refused. */
  receive(from: NodeId, standing: StandingBid | null, nowMs: number): string | null {
    if (this.#timing.standingBidTtlMs <= 0) return 'standing bids are off on this leader'
    if (standing === null) {
      this.#byNode.delete(from)
      return null
    }
    if (!this.#byNode.has(from) && this.#byNode.size >= this.#maxNodes) return 'standing-bid table full'
    this.#byNode.set(from, { standing, atMs: nowMs })
    return null
  }

  /** `node`'s answer to `call` from its standing bid, or null when it has none fresh enough (call it). */
  answer(node: NodeId, call: CallForBids, nowMs: number): Bid | null {
    const entry = this.#byNode.get(node)
    if (entry === undefined) return null
    if (nowMs - entry.atMs > this.#timing.standingBidTtlMs) {
      this.#byNode.delete(node)
      return null
    }
    return bidFromStanding(node, entry.standing, call, nowMs)
  }
}
