// Calls for bids and bids. A call groups the round's jobs into classes (same demand, constraints
// and ceiling), so a node answers with one bid per round carrying an ask per class it can serve:
// O(classes) per node instead of O(jobs). `makeBid` is the node's pure bidding policy.
import type { Demand, JobConstraints } from './job-spec.ts'
import { askPerHour, type GpuKind, type NodeId, type NodeOffer, type Reliability, type Resources } from './node-offer.ts'
import { exclusionOf } from './constraints.ts'

export type ClassId = number

/** What bidders need to know about one class of jobs in a round. */
export interface JobClassCall {
  classId: ClassId
  demand: Demand
  constraints: JobConstraints
  maxPricePerHour?: number
  /** Replicas of this class in the round (a hint: the node may offer less). */
  replicas: number
}

export interface CallForBids {
  roundId: string
  leaderId: string
  openedAtMs: number
  /** Bids arriving after this are late. */
  closesAtMs: number
  classes: readonly JobClassCall[]
}

export interface ClassAsk {
  classId: ClassId
  /** Hourly price for one replica of the class. */
  askPerHour: number
}

/** A node's answer to a call: its traits, free capacity and an ask per class it can run. */
export interface Bid {
  roundId: string
  nodeId: NodeId
  provider: string
  region: string
  azId: string
  country: string
  spot: boolean
  labels: Readonly<Record<string, string>>
  placementGroup?: string
  efa: boolean
  gpu?: GpuKind
  free: Resources
  performanceScore: number
  reliability: Reliability
  /** Absolute time at which an awarded job could start. */
  estimatedStartMs: number
  asks: readonly ClassAsk[]
  /** Over `bidSigningPayload(bid)`; checked by the injected `VerifyBid`. */
  signature: string
}

/** Checks a bid's signature against the bidder's key; injected (signing is wired by node/). */
export type VerifyBid = (bid: Bid) => boolean
export type SignBid = (payload: string) => string

/** For simulations and benchmarks only, where no keys exist: accepts every bid. */
export const trustAllBids: VerifyBid = () => true

/** The canonical bytes a bidder signs: every field but the signature, keys in fixed order. */
export function bidSigningPayload(bid: Omit<Bid, 'signature'> | Bid): string {
  const { signature: _signature, ...rest } = bid as Bid
  return canonicalJson(rest)
}

/** JSON with object keys sorted at every depth, so equal values give equal bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, item]) => item !== undefined)
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

export interface BidPolicy {
  /** Ask = base price x (1 + markup x utilisation): busy nodes price themselves up. 0 = list price. */
  utilisationMarkup: number
  /** A node below this uptime stops bidding (it knows it is unhealthy). */
  minUptimeToBid: number
}

export const defaultBidPolicy: BidPolicy = { utilisationMarkup: 0, minUptimeToBid: 0 }

/**
 * The node's bidding policy: one bid covering every class of the call it can run now, or
 * undefined when it can run none. Pure: time comes in as `nowMs`.
 */
export function makeBid(offer: NodeOffer, call: CallForBids, nowMs: number, policy: BidPolicy = defaultBidPolicy, sign?: SignBid): Bid | undefined {
  const bid = answerCall(offer, call, nowMs, policy, sign)
  return bid.asks.length > 0 ? bid : undefined
}

/**
 * The node's answer to a call even when it can run nothing (no asks): over a network the leader
 * closes a round as soon as every invited node answered, so a silent node would hold it open.
 */
export function answerCall(offer: NodeOffer, call: CallForBids, nowMs: number, policy: BidPolicy = defaultBidPolicy, sign?: SignBid): Bid {
  const healthy = offer.reliability.uptime >= policy.minUptimeToBid
  const used = offer.capacity.cpuMillis > 0 ? 1 - offer.free.cpuMillis / offer.capacity.cpuMillis : 0
  const markup = 1 + policy.utilisationMarkup * Math.max(0, Math.min(1, used))
  const asks: ClassAsk[] = []
  for (const jobClass of healthy ? call.classes : []) {
    const ask = askPerHour(offer.prices, jobClass.demand) * markup
    if (exclusionOf({ constraints: jobClass.constraints, demand: jobClass.demand, maxPricePerHour: jobClass.maxPricePerHour }, offer, offer.free, ask) === undefined) {
      asks.push({ classId: jobClass.classId, askPerHour: ask })
    }
  }
  const unsigned: Omit<Bid, 'signature'> = {
    roundId: call.roundId,
    nodeId: offer.nodeId,
    provider: offer.provider,
    region: offer.region,
    azId: offer.azId,
    country: offer.country,
    spot: offer.spot,
    labels: offer.labels,
    efa: offer.efa,
    free: { ...offer.free },
    performanceScore: offer.performanceScore,
    reliability: offer.reliability,
    estimatedStartMs: nowMs + offer.startDelayMs,
    asks,
  }
  if (offer.placementGroup !== undefined) unsigned.placementGroup = offer.placementGroup
  if (offer.gpu !== undefined) unsigned.gpu = offer.gpu
  return { ...unsigned, signature: sign ? sign(bidSigningPayload(unsigned)) : '' }
}
