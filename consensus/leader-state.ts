// What a leader remembers for its term: the barrier, heartbeat rounds and the lease they extend,
// acknowledged and committed decision numbers, ratification of earlier terms, and a committee change
// in flight. Peer owns one while it leads; the helpers here keep the round and lease bookkeeping.
import { LeaderAuction } from './leader-auction.ts'
import type { StandingBids } from './standing-bids.ts'
import type { LeaseGrants } from './node-lease.ts'
import type { JobId, NodeId, PeerConfig } from './types.ts'

export interface LeaderState {
  ready: boolean
  startedMs: number
  barrierHeads: Map<NodeId, string[]>
  round: number
  roundSentAtMs: Map<number, number>
  /** The election timeout each round advertised: its lease is a fraction of it (election-timing.ts). */
  roundTimeoutMs: Map<number, number>
  roundAckers: Map<number, Set<NodeId>>
  lastAckMs: Map<NodeId, number>
  ackedSeq: Map<NodeId, number>
  seq: number
  committedSeq: number
  markerSeq: number
  /** Earlier terms' decisions present at this leader's first decision: committed along with it. */
  ratify: Map<string, number> | null
  ratified: boolean
  nextMarkerMs: number
  /** When this leader next forgets client request keys whose replay window has closed. */
  nextForgetMs: number
  /** Assignments of decisions not yet known committed: awarded to their runners on commit. */
  unawarded: Map<number, { jobId: JobId; nodeId: NodeId }[]>
  /** When this leader first saw each finished job: it drops them from the document after archiveAfterMs. */
  doneSeenMs: Map<JobId, number>
  /** The placement auction: one round open at a time. */
  auction: LeaderAuction
  /** Nodes' standing bids heard in this term: their calls are answered from them. */
  standingBids: StandingBids
  /** The node leases this leader granted: whom it may place on, and whose jobs are lost. */
  grants: LeaseGrants
  /** Replicas a round could not place: not auctioned again before this time. */
  retryAtMs: Map<JobId, number>
  leaseExpiryMs: number
  nextHeartbeatMs: number
  nextRoundMs: number
}

/** A new leader's state: not ready until its barrier holds, deciding from `seq` (its term's last decision). */
export function newLeaderState(nowMs: number, voteHeads: ReadonlyMap<NodeId, string[]>, seq: number, auction: LeaderAuction, standingBids: StandingBids, grants: LeaseGrants): LeaderState {
  return {
    ready: false,
    startedMs: nowMs,
    barrierHeads: new Map(voteHeads),
    round: 0,
    roundSentAtMs: new Map(),
    roundTimeoutMs: new Map(),
    roundAckers: new Map(),
    lastAckMs: new Map(),
    ackedSeq: new Map(),
    seq,
    committedSeq: 0,
    markerSeq: 0,
    ratify: null,
    ratified: false,
    nextMarkerMs: nowMs,
    nextForgetMs: nowMs,
    unawarded: new Map(),
    doneSeenMs: new Map(),
    auction,
    standingBids,
    grants,
    retryAtMs: new Map(),
    leaseExpiryMs: -Infinity,
    nextHeartbeatMs: nowMs,
    nextRoundMs: nowMs,
  }
}

type RoundTiming = Pick<PeerConfig, 'electionTimeoutMs' | 'heartbeatIntervalMs'>

/**
 * Opens the next heartbeat round (acknowledged by the leader itself), advertising the election
 * timeout `timing.electionTimeoutMs` (the leader's effective one), and forgets rounds too old to matter.
 */
export function openHeartbeatRound(leader: LeaderState, leaderId: NodeId, nowMs: number, timing: RoundTiming): number {
  leader.nextHeartbeatMs = nowMs + timing.heartbeatIntervalMs
  const round = ++leader.round
  leader.roundSentAtMs.set(round, nowMs)
  leader.roundTimeoutMs.set(round, timing.electionTimeoutMs)
  leader.roundAckers.set(round, new Set([leaderId]))
  // Rounds older than two election timeouts can no longer extend the lease (at most 2 x maxElectionTimeoutMs of rounds).
  const oldest = round - Math.ceil((2 * timing.electionTimeoutMs) / timing.heartbeatIntervalMs) - 1
  for (const key of leader.roundSentAtMs.keys()) {
    if (key >= oldest) break
    leader.roundSentAtMs.delete(key)
    leader.roundTimeoutMs.delete(key)
    leader.roundAckers.delete(key)
  }
  return round
}

/**
 * A round acknowledged by a quorum extends the lease from the time it was sent; true when it did.
 * The lease is a fraction of the T the round advertised: every acker adopted at least that T before
 * acking, and votes for no one until it has heard no leader for that long (election-timing.ts).
 */
export function creditLease(leader: LeaderState, round: number, quorum: (agreeing: ReadonlySet<NodeId>) => boolean, lease: Pick<PeerConfig, 'leaseFraction'>): boolean {
  const ackers = leader.roundAckers.get(round)
  const sentAt = leader.roundSentAtMs.get(round)
  const timeoutMs = leader.roundTimeoutMs.get(round)
  if (ackers === undefined || sentAt === undefined || timeoutMs === undefined || !quorum(ackers)) return false
  leader.leaseExpiryMs = Math.max(leader.leaseExpiryMs, sentAt + timeoutMs * lease.leaseFraction)
  return true
}

/** The leader and the voters that acknowledged it within an election timeout (check-quorum). */
export function activeVoters(leader: LeaderState, leaderId: NodeId, nowMs: number, electionTimeoutMs: number): Set<NodeId> {
  const active = new Set<NodeId>([leaderId])
  for (const [voter, at] of leader.lastAckMs) if (nowMs - at < electionTimeoutMs) active.add(voter)
  return active
}
