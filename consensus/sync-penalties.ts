// Penalties for a peer whose sync carried a forbidden change (the trust model: the sync is refused
// whole and the sender penalized). Screening a change costs its decoding, about 10 ms per 1,000
// operations, so a flood of large forged changes would stall the event loop long enough to move
// terms. A refused sender pays for the screening it cost: its sync messages are dropped unread for
// as long as the refused message's bytes take at `bytesPerSecond`, so whatever it sends, screening
// it costs a bounded share of the time. An honest peer is never refused, so it never waits; a small
// forgery costs its sender milliseconds. Deterministic: time is the caller's.
import type { NodeId } from './types.ts'

export const syncPenaltyLimits = {
  /** The screening a refused sender may cost: its refused bytes are repaid at this rate (about 20 ms of decoding a second). */
  bytesPerSecond: 64 * 1024,
  maxMs: 60_000,
}

export class SyncPenalties {
  readonly #maxPeers: number
  /** Per penalized peer: until when its sync messages are dropped. */
  readonly #untilMs = new Map<NodeId, number>()
  readonly counters = { penalized: 0, dropped: 0 }

  constructor(maxPeers: number) {
    this.#maxPeers = maxPeers
  }

  /** How long a refused message of `bytes` keeps its sender's syncs out. */
  static penaltyMs(bytes: number): number {
    return Math.min(syncPenaltyLimits.maxMs, Math.ceil((bytes * 1000) / syncPenaltyLimits.bytesPerSecond))
  }

  /** `peer`'s sync of `bytes` carried a forbidden change at `nowMs`. */
  refused(peer: NodeId, nowMs: number, bytes: number): void {
    const from = Math.max(nowMs, this.#untilMs.get(peer) ?? nowMs)
    this.#untilMs.delete(peer)
    // Bounded: the oldest penalty is forgotten first (re-inserted peers move to the end).
    if (this.#untilMs.size >= this.#maxPeers) this.#untilMs.delete(this.#untilMs.keys().next().value!)
    this.#untilMs.set(peer, Math.min(nowMs + syncPenaltyLimits.maxMs, from + SyncPenalties.penaltyMs(bytes)))
    this.counters.penalized++
  }

  /** Whether `peer`'s sync message is dropped unread now. */
  drops(peer: NodeId, nowMs: number): boolean {
    const untilMs = this.#untilMs.get(peer)
    if (untilMs === undefined) return false
    if (nowMs >= untilMs) {
      this.#untilMs.delete(peer)
      return false
    }
    this.counters.dropped++
    return true
  }
}
