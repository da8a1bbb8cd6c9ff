// Penalties for a peer whose sync carried a forbidden change (the trust model: the sync is refused
// whole and the sender penalized). Screening a change costs its decoding, which a flood of large
// forged changes turns into a stall of the event loop long enough to move terms. So after a refusal
// the sender's sync messages are dropped unread for a while, doubling with each refusal; an honest
// peer is never refused, so it never waits. Deterministic: time is the caller's.
import type { NodeId } from './types.ts'

export const syncPenaltyMs = { first: 1_000, max: 60_000 }

export class SyncPenalties {
  readonly #maxPeers: number
  /** Per penalized peer: until when its sync messages are dropped, and how many refusals it earned. */
  readonly #penalties = new Map<NodeId, { untilMs: number; strikes: number }>()
  readonly counters = { penalized: 0, dropped: 0 }

  constructor(maxPeers: number) {
    this.#maxPeers = maxPeers
  }

  /** `peer`'s sync carried a forbidden change at `nowMs`. */
  refused(peer: NodeId, nowMs: number): void {
    const strikes = (this.#penalties.get(peer)?.strikes ?? 0) + 1
    this.#penalties.delete(peer)
    // Bounded: the oldest penalty is forgotten first (re-inserted peers move to the end).
    if (this.#penalties.size >= this.#maxPeers) this.#penalties.delete(this.#penalties.keys().next().value!)
    const durationMs = Math.min(syncPenaltyMs.max, syncPenaltyMs.first * 2 ** Math.min(strikes - 1, 16))
    this.#penalties.set(peer, { untilMs: nowMs + durationMs, strikes })
    this.counters.penalized++
  }

  /** Whether `peer`'s sync message is dropped unread now. */
  drops(peer: NodeId, nowMs: number): boolean {
    const penalty = this.#penalties.get(peer)
    if (penalty === undefined || nowMs >= penalty.untilMs) return false
    this.counters.dropped++
    return true
  }
}
