// The election timeout T as the links allow. Voters time round trips with messages they already
// exchange (heartbeat -> ack at the leader, pre-vote and vote -> response at a candidate); T is ten
// of the round trips a majority needs (etcd's advice) within [configured T, maxElectionTimeoutMs].
// The leader advertises its T in heartbeats and followers adopt it, keeping a larger one until they
// have heard only smaller ones for a full larger T: a leader's lease (a fraction of the T its
// acknowledged round advertised) then ends before any voter that acknowledged it votes again.
// Estimates only decide how long to wait; safety rests on the adopted T alone, never on an estimate.
import type { NodeId } from './types.ts'

/** The upper bound of the effective election timeout (the configured electionTimeoutMs is the lower one). */
export const maxElectionTimeoutMs = 2_000
/** etcd: "the election timeout should be at least 10 times the round-trip time" (docs: tuning). */
export const roundTripsPerElectionTimeout = 10
/** Peers timed at most: a committee has at most 7 voters, 8 during a change. */
export const maxPeersTimed = 16
/** RFC 6298's gains for the smoothed round trip and its mean deviation, and deviations counted above it. */
const smoothingGain = 1 / 8
const deviationGain = 1 / 4
const deviationsAbove = 4

interface Estimate {
  smoothedMs: number
  deviationMs: number
  sampledAtMs: number
  /** One outstanding request: the earliest send of `key`, so a late answer overestimates, never underestimates. */
  probe: { key: string; sentAtMs: number } | null
}

/** Per-peer round-trip estimates: smoothed round trip plus four mean deviations (RFC 6298's RTO, first sample at face value). */
export class RoundTrips {
  readonly #peers = new Map<NodeId, Estimate>()

  #entry(peer: NodeId, nowMs: number): Estimate {
    let entry = this.#peers.get(peer)
    if (entry === undefined) {
      // Full: forget the peer inserted first (a former voter, most likely).
      if (this.#peers.size >= maxPeersTimed) this.#peers.delete(this.#peers.keys().next().value!)
      entry = { smoothedMs: Number.NaN, deviationMs: 0, sampledAtMs: nowMs, probe: null }
      this.#peers.set(peer, entry)
    }
    return entry
  }

  /**
   * A request `key` that `peer` answers went out now. A probe unanswered for longer than any round
   * trip we would count (maxElectionTimeoutMs) is given up as lost: a voter cut off for seconds, that
   * sent the same pre-vote all along, would otherwise time its first answer after the heal from its
   * first send and take seconds for a round trip.
   */
  sent(peer: NodeId, key: string, nowMs: number): void {
    const entry = this.#entry(peer, nowMs)
    if (entry.probe?.key !== key || nowMs - entry.probe.sentAtMs > maxElectionTimeoutMs) entry.probe = { key, sentAtMs: nowMs }
  }

  /** `peer` answered request `key`: one sample, if it was outstanding (and not given up as lost). */
  answered(peer: NodeId, key: string, nowMs: number): void {
    const probe = this.#peers.get(peer)?.probe
    if (probe?.key !== key) return
    this.#peers.get(peer)!.probe = null
    if (nowMs - probe.sentAtMs > maxElectionTimeoutMs) return
    this.sample(peer, nowMs - probe.sentAtMs, nowMs)
  }

  sample(peer: NodeId, roundTripMs: number, nowMs: number): void {
    if (!(roundTripMs >= 0)) return
    const sample = Math.min(roundTripMs, maxElectionTimeoutMs)
    const entry = this.#entry(peer, nowMs)
    entry.sampledAtMs = nowMs
    if (Number.isNaN(entry.smoothedMs)) {
      entry.smoothedMs = sample
      return
    }
    entry.deviationMs += deviationGain * (Math.abs(sample - entry.smoothedMs) - entry.deviationMs)
    entry.smoothedMs += smoothingGain * (sample - entry.smoothedMs)
  }

  /** A high estimate of the round trip to `peer` (undefined: never timed). */
  highMs(peer: NodeId): number | undefined {
    const entry = this.#peers.get(peer)
    return entry === undefined || Number.isNaN(entry.smoothedMs) ? undefined : entry.smoothedMs + deviationsAbove * entry.deviationMs
  }

  /**
   * The round trip within which a quorum answers: the voters sorted by estimate, the estimate of the
   * one whose answer completes a majority (this node counts itself). This, not the slowest voter, is
   * what elections, check-quorum and the lease wait for, so one distant or dead voter does not
   * stretch everyone's timeout. Only estimates sampled since `sampledSinceMs` count; null when they
   * do not reach a quorum.
   */
  quorumMs(self: NodeId, voters: readonly NodeId[], quorum: (agreeing: ReadonlySet<NodeId>) => boolean, sampledSinceMs = -Infinity): number | null {
    const agreeing = new Set<NodeId>([self])
    if (quorum(agreeing)) return 0
    const timed: { peer: NodeId; ms: number }[] = []
    for (const peer of voters) {
      const ms = this.highMs(peer)
      if (peer !== self && ms !== undefined && this.#peers.get(peer)!.sampledAtMs >= sampledSinceMs) timed.push({ peer, ms })
    }
    timed.sort((a, b) => a.ms - b.ms)
    for (const { peer, ms } of timed) {
      agreeing.add(peer)
      if (quorum(agreeing)) return ms
    }
    return null
  }
}

/**
 * This voter's election timeout: its own estimate, and the leader's advertised T it adopted (its own
 * while it leads). Users: the randomized timeouts [T, 2T), leader stickiness (no vote within T of a
 * leader's message), check-quorum, the lease, and the no-vote period after a restart.
 */
export class ElectionTiming {
  readonly lowerMs: number
  readonly upperMs = maxElectionTimeoutMs
  readonly roundTrips = new RoundTrips()
  #adoptedMs: number
  /** Smaller values heard since the adopted one: since when (contiguously), and the largest of them. */
  #smaller: { sinceMs: number; maxMs: number } | null = null
  /** What the last persist wrote (0: nothing yet). */
  #persistedMs: number
  /** How long this node, just booted, waits before it votes. */
  readonly bootNoVoteMs: number

  /**
   * The most this node's own estimate asks for (its lower bound at least). A leader's failover takes
   * up to 2T and its election: runners' node leases must outlast it, or every leader change would
   * stop every job (nodeLeaseMs - leaseRenewMs of lease is left at worst; a third of it is T's cap).
   * What other leaders advertise is clamped only to the wire's bound: holding to a smaller T than
   * a leader's lease assumed would break the lease.
   */
  readonly estimateCapMs: number

  /**
   * `persistedMs`: the adopted T the node persisted before a restart. Without it a node that may have
   * acknowledged a lease (term > 0) waits the largest T any leader could have advertised.
   * `lease`: the node lease's timing, which caps the estimate (estimateCapMs).
   */
  constructor(lowerMs: number, persistedMs: number | undefined, term: number, lease: { nodeLeaseMs: number; leaseRenewMs: number } = { nodeLeaseMs: Infinity, leaseRenewMs: 0 }) {
    if (!(lowerMs > 0 && lowerMs <= maxElectionTimeoutMs)) throw new Error(`assertion: electionTimeoutMs (${lowerMs}) must be in (0, ${maxElectionTimeoutMs}]`)
    this.lowerMs = lowerMs
    this.estimateCapMs = Math.max(lowerMs, Math.min(maxElectionTimeoutMs, Math.floor((lease.nodeLeaseMs - lease.leaseRenewMs) / 3)))
    this.#adoptedMs = this.clamp(persistedMs ?? lowerMs)
    this.#persistedMs = persistedMs ?? 0
    this.bootNoVoteMs = persistedMs === undefined && term > 0 ? this.upperMs : this.#adoptedMs
  }

  clamp(ms: number): number { return Math.min(this.upperMs, Math.max(this.lowerMs, Math.ceil(ms))) }

  /** The leader's advertised T this node holds to (its own while it leads). */
  get adoptedMs(): number { return this.#adoptedMs }

  /** Ten quorum round trips, clamped; null until a quorum was timed (since `sampledSinceMs`). */
  estimateMs(self: NodeId, voters: readonly NodeId[], quorum: (agreeing: ReadonlySet<NodeId>) => boolean, sampledSinceMs?: number): number | null {
    const roundTripMs = this.roundTrips.quorumMs(self, voters, quorum, sampledSinceMs)
    return roundTripMs === null ? null : Math.min(this.estimateCapMs, this.clamp(roundTripsPerElectionTimeout * roundTripMs))
  }

  /**
   * A leader's heartbeat advertised `advertisedMs` (undefined: a leader that advertises none leases
   * on its configured T, the lower bound we share). A larger T is adopted at once, before the ack goes out;
   * a smaller one only once smaller ones alone were heard for a full adopted T, and then the largest
   * of them, so a lapse of leader messages as long as any acknowledged round's T precedes every vote.
   */
  heard(advertisedMs: number | undefined, nowMs: number): void {
    if (advertisedMs === undefined || !Number.isFinite(advertisedMs)) return
    const ms = this.clamp(advertisedMs)
    if (ms >= this.#adoptedMs) {
      this.#adoptedMs = ms
      this.#smaller = null
      return
    }
    if (this.#smaller === null) this.#smaller = { sinceMs: nowMs, maxMs: ms }
    else this.#smaller.maxMs = Math.max(this.#smaller.maxMs, ms)
    if (nowMs - this.#smaller.sinceMs >= this.#adoptedMs) {
      this.#adoptedMs = this.#smaller.maxMs
      this.#smaller = null
    }
  }

  /** The adopted T grew past what is on disk: it must be persisted before an ack goes out. */
  get persistDue(): boolean { return this.#adoptedMs > this.#persistedMs }

  /** The adopted T (what a persist writes) is on disk. */
  markPersisted(): void { this.#persistedMs = this.#adoptedMs }
}
