// Gossip penalties: a peer that floods the signed topics with messages of its own (past its budget,
// or refused past its allowance) is graylisted in gossipsub for gossipPenaltyMs, through gossipsub's
// application-specific score: its RPCs are then dropped as they arrive, before a single signature is
// verified. gossipsub verifies every message's signature before any topic validator runs (about
// 0.2 ms each here), so ignoring a flood in the validator alone still cost seconds of event loop:
// 13,000 valid capacity messages stalled a daemon for 2.3 s and its leadership with it.
// The daemon host builds gossipsub with `appSpecificScore` from here (daemon-host.ts) and registers
// the box under its gossipsub; the signed-topic channels find it there (`gossipPenaltiesOf`).
import type { GossipSub } from '@libp2p/gossipsub'

/** How long a flooding peer stays graylisted; it floods again afterwards at the cost of one RPC's signatures per period. */
export const gossipPenaltyMs = 10_000
/** Its application-specific score meanwhile: times gossipsub's weight (10) far under the graylist threshold (-80). */
export const penalizedAppScore = -1_000
/** Peers penalized at once (the oldest penalty forgotten first). */
export const maxPenalizedPeers = 10_000

export interface GossipPenaltyCounters { penalized: number }

export class GossipPenalties {
  readonly counters: GossipPenaltyCounters = { penalized: 0 }
  readonly #nowMs: () => number
  readonly #until = new Map<string, number>()
  #pubsub: GossipSub | null = null

  constructor(nowMs: () => number = () => performance.now()) {
    this.#nowMs = nowMs
  }

  /** For gossipsub's `scoreParams.appSpecificScore`. */
  readonly appSpecificScore = (peerId: string): number => (this.isPenalized(peerId) ? penalizedAppScore : 0)

  isPenalized(peerId: string): boolean {
    const until = this.#until.get(peerId)
    if (until === undefined) return false
    if (this.#nowMs() < until) return true
    this.#until.delete(peerId)
    return false
  }

  /** Graylists `peerId` from now on (not only once gossipsub's caches expire: they are dropped for it). */
  penalize(peerId: string): void {
    if (this.isPenalized(peerId)) return
    this.counters.penalized++
    this.#until.set(peerId, this.#nowMs() + gossipPenaltyMs)
    if (this.#until.size > maxPenalizedPeers) this.#until.delete(this.#until.keys().next().value!)
    const pubsub = this.#pubsub
    if (pubsub === null) return
    // gossipsub 17 caches a peer's score for a heartbeat and, for a peer whose score was >= 0, lets
    // 128 RPCs or 1 s through without looking again: a flood would pass in that window. Both caches
    // are dropped for this peer, so its next RPC is judged on the new score.
    const internals = pubsub as unknown as { score?: { scoreCache?: unknown }; acceptFromWhitelist?: unknown }
    if (internals.score?.scoreCache instanceof Map) internals.score.scoreCache.delete(peerId)
    if (internals.acceptFromWhitelist instanceof Map) internals.acceptFromWhitelist.delete(peerId)
  }

  attach(pubsub: GossipSub): void {
    this.#pubsub = pubsub
    boxes.set(pubsub, this)
  }
}

const boxes = new WeakMap<object, GossipPenalties>()

/** The penalties of the daemon whose gossipsub this is (undefined: none, e.g. a test's stand-in). */
export function gossipPenaltiesOf(pubsub: object): GossipPenalties | undefined {
  return boxes.get(pubsub)
}
