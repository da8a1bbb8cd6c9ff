// Node leases: a node runs jobs only while it holds a lease from the committee, which it renews with
// the leader it follows. The leader grants one only while its own leader lease holds (so no two
// leaders grant at once), for nodeLeaseMs counted from when the node sent its request (on the
// node's clock: the lease never outlasts what the leader granted). A node whose lease lapsed stops
// its jobs (the runner here, and a watchdog outside the daemon's event loop: the 'lease' effect),
// and after a lapse it starts nothing until its document holds what the leader held when it granted
// again. The leader places a node's jobs elsewhere only once it has granted that node nothing for
// nodeTimeoutMs, longer than a lease and the clocks' drift: by then the lease has surely lapsed.
// Neither depends on the election timeout T (which follows round trips, up to 2 s): an earlier leader
// granted only inside its leader lease, which ended before this leader was elected however long T
// made it, so its grants precede this leader's start, from which nodeTimeoutMs is counted.
import type { NodeId, PeerConfig, Term } from './types.ts'

export interface LeaseRequest { kind: 'lease-request'; term: Term; round: number }
/** `heads`: the leader's document when it granted: after a lapse, the node starts nothing before it holds them. */
export interface LeaseGrant { kind: 'lease-grant'; term: Term; round: number; durationMs: number; heads: string[] }

export type LeaseTiming = Pick<PeerConfig, 'nodeLeaseMs' | 'nodeTimeoutMs' | 'leaseRenewMs'>

/** The clock drift rate any node may have (the simulator draws up to this): the lease and node timeout allow for it. */
export const maxClockDriftRate = 0.01

/** Without a lease, a node asks this many times as often as it renews one it holds. */
const unleasedRequestFactor = 5

/** Requests remembered for their send times (older grants are ignored). */
const maxOpenRounds = 64

/** The lease this node holds, on its own clock. */
export class NodeLease {
  readonly #timing: LeaseTiming
  #round = 0
  readonly #sentAtMs = new Map<number, number>()
  #expiryMs = -Infinity
  /** What the granting leader's document held, when the lease was taken up again after a lapse. */
  #catchUp: string[] | null = null
  #nextRequestMs: number
  /** Requests since the last grant: past a few, ask every voter (the leader may have changed). */
  #unanswered = 0

  constructor(timing: LeaseTiming, nowMs: number) {
    this.#timing = timing
    this.#nextRequestMs = nowMs
  }

  /** Local time the lease holds until (-Infinity: none). */
  get expiryMs(): number { return this.#expiryMs }
  get nextRequestMs(): number { return this.#nextRequestMs }

  holds(nowMs: number): boolean { return nowMs < this.#expiryMs }

  /** Heads this node's document must hold before it starts anything (null: none). */
  get catchUp(): readonly string[] | null { return this.#catchUp }
  caughtUp(): void { this.#catchUp = null }

  /** The next request is due: its round, and whether to ask every voter rather than the leader alone. */
  request(nowMs: number): { round: number; broadcast: boolean } {
    const round = ++this.#round
    this.#sentAtMs.set(round, nowMs)
    if (this.#sentAtMs.size > maxOpenRounds) this.#sentAtMs.delete(this.#sentAtMs.keys().next().value!)
    this.#nextRequestMs = nowMs + (this.holds(nowMs) ? this.#timing.leaseRenewMs : this.#timing.leaseRenewMs / unleasedRequestFactor)
    return { round, broadcast: this.#unanswered++ >= 2 }
  }

  /**
   * A grant from a leader: 'taken-up' when it starts a lease (after none, or a lapse: it brings the
   * heads to catch up with), 'renewed' when it extends the one held, null when it changes nothing.
   */
  granted(grant: LeaseGrant, nowMs: number): 'taken-up' | 'renewed' | null {
    const sentAt = this.#sentAtMs.get(grant.round)
    if (sentAt === undefined || !(grant.durationMs > 0)) return null
    this.#unanswered = 0
    return this.#extend(sentAt + Math.min(grant.durationMs, this.#timing.nodeLeaseMs), () => grant.heads, nowMs)
  }

  /** The leader's own lease: its quorum-acknowledged heartbeat round sent at `sentAtMs` extends it (no request needed). */
  selfGranted(sentAtMs: number, heads: () => string[], nowMs: number): 'taken-up' | 'renewed' | null {
    return this.#extend(sentAtMs + this.#timing.nodeLeaseMs, heads, nowMs)
  }

  #extend(expiry: number, heads: () => string[], nowMs: number): 'taken-up' | 'renewed' | null {
    if (expiry <= this.#expiryMs || expiry <= nowMs) return null
    const takenUp = !this.holds(nowMs)
    if (takenUp) this.#catchUp = heads()
    this.#expiryMs = expiry
    return takenUp ? 'taken-up' : 'renewed'
  }
}

/** The leader's record of what it granted to whom, in its term. */
export class LeaseGrants {
  readonly #timing: LeaseTiming
  readonly #maxTracked: number
  readonly #startedMs: number
  readonly #lastGrantMs = new Map<NodeId, number>()

  constructor(timing: LeaseTiming, maxTracked: number, startedMs: number) {
    this.#timing = timing
    this.#maxTracked = maxTracked
    this.#startedMs = startedMs
  }

  /** Records a grant to `node` now; false when the table is full (the node is not granted). */
  grant(node: NodeId, nowMs: number): boolean {
    if (!this.#lastGrantMs.has(node) && this.#lastGrantMs.size >= this.#maxTracked) return false
    this.#lastGrantMs.set(node, nowMs)
    return true
  }

  /**
   * The node may take new placements: it holds a lease this leader granted, or, in this leader's
   * first lease period, one an earlier leader may have granted (it starts nothing without a lease
   * anyway, and is found lost in time if it has none).
   */
  mayTakeWork(node: NodeId, nowMs: number): boolean {
    const last = this.#lastGrantMs.get(node)
    if (last !== undefined) return nowMs - last < this.#timing.nodeLeaseMs
    return nowMs - this.#startedMs < this.#timing.nodeLeaseMs
  }

  /**
   * The node's lease has surely lapsed: nothing granted for nodeTimeoutMs, counted from this leader's
   * start at the earliest (an earlier leader may have granted one just before this one was elected).
   */
  isLost(node: NodeId, nowMs: number): boolean {
    const last = Math.max(this.#lastGrantMs.get(node) ?? -Infinity, this.#startedMs)
    return nowMs - last >= this.#timing.nodeTimeoutMs
  }
}
