// This node's side of an auction: it answers each call for bids with an ask for every class its
// traits and capacity allow, priced by its policy at its current prices (the 'prices' input).
import { answerCall, defaultBidPolicy, type Bid, type BidPolicy, type CallForBids, type NodeOffer } from '../placement/index.ts'
import { isDraining, type Document } from './cluster-document.ts'
import type { NodeId, StandingBid } from './types.ts'

export class Bidder {
  readonly #nodeId: NodeId
  #offer: NodeOffer
  readonly #policy: BidPolicy | undefined

  constructor(nodeId: NodeId, offer: Omit<NodeOffer, 'nodeId'>, policy: BidPolicy | undefined) {
    this.#nodeId = nodeId
    this.#offer = { ...offer, nodeId }
    this.#policy = policy
  }

  setPrices(prices: NodeOffer['prices']): void {
    this.#offer = { ...this.#offer, prices }
  }

  /**
   * This node's bid. Free room is the leader's to account (from the document): this node's own view
   * lags it (an award not started yet, a fenced copy still stopping), so it does not narrow the asks.
   */
  bidFor(call: CallForBids, document: Document, nowMs: number): Bid {
    const bid = answerCall({ ...this.#offer, free: this.#offer.capacity }, call, nowMs, this.#policy)
    // A drained node asks for nothing, even of a leader whose document has not heard of the drain yet.
    return isDraining(document, this.#nodeId) ? { ...bid, asks: [] } : bid
  }

  /**
   * The same answers said in advance (the leader applies answerCall to it exactly as bidFor does
   * here); null while this node drains: it asks for nothing new.
   */
  standing(document: Document): StandingBid | null {
    if (isDraining(document, this.#nodeId)) return null
    const { nodeId: _nodeId, free: _free, ...offer } = this.#offer
    return { offer, policy: this.#policy ?? defaultBidPolicy }
  }
}

