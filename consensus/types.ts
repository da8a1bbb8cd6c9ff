// Types shared by the consensus core and its adapters: branded ids, the peer's configuration,
// the inputs it steps on, the messages peers exchange and the effects it asks an adapter to perform.
// The core is sans-IO: it never reads a clock or draws randomness itself; both come in here.
import type { Bid, BidPolicy, CallForBids, JobSpec, NodeOffer, Resources, UnitPrices } from '../placement/index.ts'
import type { LeaseGrant, LeaseRequest } from './node-lease.ts'

export type NodeId = string & { readonly __brand: 'NodeId' }
export type JobId = string & { readonly __brand: 'JobId' }
export type Term = number & { readonly __brand: 'Term' }

export const asNodeId = (value: string): NodeId => value as NodeId
export const asJobId = (value: string): JobId => value as JobId
export const asTerm = (value: number): Term => value as Term

/** Randomness enters the core through this port, seeded by the caller (election jitter). */
export interface RandomSource {
  next(): number
}

/** CPU, memory, disk and GPUs: what a node has and a replica takes (placement's unit). */
export type { Resources } from '../placement/node-offer.ts'

/**
 * A submitted job: its validated spec (placement/job-spec.ts). The document holds one record per
 * replica; `replicaIdOf` names them.
 */
export interface JobSubmission {
  id: JobId
  spec: JobSpec
  /** How long each replica runs once started: the simulator's stand-in for a process (0 on a real node: the process decides). */
  durationMs: number
  /**
   * The client's signed request, as the document keeps it (node/: the signed submit request as
   * canonical JSON). A job record a non-voter writes must carry it (consensus/submission-proofs.ts).
   */
  request?: string
}

export interface NodeAttributes {
  id: NodeId
  /** What the node runs and bids with: static traits, capacity and its prices (its `free` is not used). */
  offer: NodeOffer
}

/**
 * Planted bugs, only to prove the simulator's checker catches real faults: a one-node majority, a
 * runner starting assignments before they commit, a leader deciding before its barrier, uncommitted
 * committee proposals counted, and a restart reusing its previous incarnation (actor and origin
 * sequence) instead of starting a new one.
 */
export const brokenVariants = ['none', 'no-quorum', 'uncommitted-start', 'skip-barrier', 'uncommitted-committee', 'reused-origin-seq'] as const
export type BrokenVariant = (typeof brokenVariants)[number]

export interface PeerConfig {
  nodeId: NodeId
  /**
   * The election timeout's lower bound: the effective T follows measured round trips (ten of them)
   * up to maxElectionTimeoutMs (election-timing.ts); a follower waits a random time in [T, 2T).
   */
  electionTimeoutMs: number
  heartbeatIntervalMs: number
  /** The leader's lease, as a fraction of the T its round advertised; must stay under (1 - drift) / (1 + drift). */
  leaseFraction: number
  preVote: boolean
  checkQuorum: boolean
  /** How often the leader batches pending jobs into one placement round (one document change). */
  roundIntervalMs: number
  /**
   * A node granted no lease for this long is lost and its jobs are placed elsewhere: longer than a
   * lease and the clocks' drift (node-lease.ts), so its lease, and with it its jobs, ended first.
   */
  nodeTimeoutMs: number
  /** How long a node's lease holds after it asked for it (it runs jobs only while it holds one). */
  nodeLeaseMs: number
  /** How often a node asks the leader to renew its lease. */
  leaseRenewMs: number
  capacityIntervalMs: number
  /** How often a voter pushes the document to the non-voters it serves. */
  downstreamSyncIntervalMs: number
  /** How often a sync session that may have lost a message is restarted. */
  resyncIntervalMs: number
  /** How often the leader records commits in the document when no decision carries them. */
  commitMarkerIntervalMs: number
  /** A finished job leaves the document this long after the leader saw it finish (it lives on in each node's archive). */
  archiveAfterMs: number
  /** How often a node with unacknowledged submissions retries pushing them to the voters. */
  submitRetryMs: number
  /** A replica an auction could not place waits this long before it is auctioned again. */
  pendingRetryMs: number
  /** Bounds of the auction's adaptive bid window (it follows recent bid latencies). */
  minBidWindowMs: number
  maxBidWindowMs: number
  /** How often a node repeats its standing bid to the leader (it also sends it at once when it changes or the leader does). */
  standingBidRefreshMs: number
  /**
   * Where a node sends a request (submit, cancel, ...) first. 'all-voters': every voter, so the
   * fastest majority acknowledges it (best where voters are separate machines and links differ).
   * 'majority': the leader and just enough others for a majority, taking turns; the rest get it
   * with the leader's decision (best where the daemons share a machine's cores: fewer decode it at once).
   */
  requestFanout: 'all-voters' | 'majority'
  /** A standing bid older than this (on the leader's clock) is not used: the node is called instead. 0: every round calls for bids. */
  standingBidTtlMs: number
  /** Limits (STYLE: every queue and table has a named maximum). */
  maxPendingSubmissions: number
  maxJobsPerRound: number
  maxPeersTracked: number
  maxArchiveRemembered: number
  broken: BrokenVariant
}

export const defaultPeerTiming = {
  electionTimeoutMs: 150,
  heartbeatIntervalMs: 30,
  leaseFraction: 0.9,
  preVote: true,
  checkQuorum: true,
  roundIntervalMs: 50,
  nodeTimeoutMs: 3_000,
  nodeLeaseMs: 2_000,
  leaseRenewMs: 500,
  capacityIntervalMs: 1_000,
  downstreamSyncIntervalMs: 10_000,
  resyncIntervalMs: 1_000,
  submitRetryMs: 300,
  pendingRetryMs: 500,
  minBidWindowMs: 20,
  maxBidWindowMs: 250,
  standingBidRefreshMs: 2_000,
  standingBidTtlMs: 5_000,
  requestFanout: 'all-voters' as 'all-voters' | 'majority',
  commitMarkerIntervalMs: 1_000,
  archiveAfterMs: 5_000,
  maxPendingSubmissions: 10_000,
  maxJobsPerRound: 1_000,
  maxPeersTracked: 10_000,
  maxArchiveRemembered: 100_000,
  broken: 'none' as BrokenVariant,
}

// ---- Messages between peers (carried by libp2p streams in node/, by the simulated network in sim/)

/**
 * A candidate names the committee it counts votes in (its stamp, committee.ts): a voter that knows a
 * later committee refuses it, so a candidate behind on committee changes cannot win with an old majority.
 */
export interface PreVoteRequest { kind: 'pre-vote'; term: Term; committee: string }
export interface PreVoteResponse { kind: 'pre-vote-response'; term: Term; granted: boolean }
export interface VoteRequest { kind: 'vote'; term: Term; committee: string }
/** A granted vote carries the voter's document heads: the vote doubles as the new leader's barrier reply. */
export interface VoteResponse { kind: 'vote-response'; term: Term; granted: boolean; heads?: string[] }
export interface Heartbeat {
  kind: 'heartbeat'
  term: Term
  /** Lease round: echoed by the ack so the leader knows which send time a majority confirmed. */
  round: number
  commitSeq: number
  /** The leader's effective election timeout T: followers adopt it before they ack (election-timing.ts); absent from older leaders. */
  electionTimeoutMs?: number
}
export interface HeartbeatAck { kind: 'heartbeat-ack'; term: Term; round: number }
/** A new leader asks each voter for its document heads: it merges a majority before deciding. */
export interface BarrierRequest { kind: 'barrier'; term: Term }
export interface BarrierReply { kind: 'barrier-reply'; term: Term; heads: string[] }
/** One message of Automerge's sync protocol plus what the sender's persisted document holds. */
export interface SyncMessage {
  kind: 'sync'
  term: Term
  data: Uint8Array | null
  ack: DocumentAck
  /**
   * Sync rides an ordered channel: (epoch, seq) lets the receiver drop duplicates and stale,
   * reordered messages (a gap is treated as loss and healed by a session restart).
   * The epoch is the sender's incarnation (new at every boot), so a restarted sender starts afresh.
   */
  channel: { epoch: string; seq: number }
  /** The leader the sender follows: non-voters hear no heartbeats and report to it. */
  leaderHint: NodeId | null
}
/** The leader tells a runner its assignments are committed, so it starts without waiting for markers. */
export interface Award {
  kind: 'award'
  term: Term
  jobs: { jobId: JobId; seq: number }[]
}
/** The leader invites the nodes that could run some of a round's jobs to bid (placement/). */
export interface CallForBidsMessage {
  kind: 'call-for-bids'
  term: Term
  call: CallForBids
}
/** A node's answer, straight back to the leader (never over gossip); it may carry no asks. */
export interface BidMessage {
  kind: 'bid'
  term: Term
  bid: Bid
}
/**
 * What a node answers every call for bids with, said once in advance: its traits, capacity, prices
 * and policy. The leader answers calls on its behalf from it (placement's answerCall, the node's own
 * rule), so a round whose nodes all stand closes without a round trip.
 */
export interface StandingBid {
  offer: Omit<NodeOffer, 'nodeId' | 'free'>
  policy: BidPolicy
}
/**
 * A node's standing bid, straight to the leader it follows (never over gossip); null withdraws it
 * (a draining node). Refreshed every standingBidRefreshMs and whenever it changes.
 */
export interface StandingBidMessage {
  kind: 'standing-bid'
  term: Term
  standing: StandingBid | null
}
export interface DocumentAck {
  /** The sender's current term; a leader counts acks of its own term only. */
  term: Term
  /** Highest leader decision of `term` present in the sender's persisted document. */
  leaderSeq: number
  /** Highest request of the receiver's incarnation `origin` that the sender's persisted document holds. */
  originSeq: number
  /** The receiver's actor this counts (its incarnation as the sender last heard it): a restarted receiver ignores its previous one's. */
  origin: string
}

export type { LeaseRequest, LeaseGrant } from './node-lease.ts'

export type PeerMessage =
  | LeaseRequest
  | LeaseGrant
  | PreVoteRequest
  | PreVoteResponse
  | VoteRequest
  | VoteResponse
  | Heartbeat
  | HeartbeatAck
  | BarrierRequest
  | BarrierReply
  | SyncMessage
  | Award
  | CallForBidsMessage
  | BidMessage
  | StandingBidMessage

/** Where a migration may go besides the job's own constraints: one provider and/or one region. */
export interface MoveConstraints {
  provider?: string
  region?: string
}

/** Soft state on the capacity topic: never written to the document. */
export interface CapacityGossip {
  nodeId: NodeId
  seq: number
  free: Resources
  running: number
}

/** What a run used, as its runtime measured it at exit (null: this machine cannot measure it). */
export interface JobUsage {
  cpuSeconds: number | null
  peakMemoryBytes: number | null
  wallMs: number | null
}

export interface ArchivedJob {
  id: JobId
  name: string
  state: 'finished' | 'failed' | 'cancelled'
  node: NodeId
  exitCode: number
  submittedAtMs: number
  finishedAtMs: number
  /** Runs it took (failed attempts + the last); absent in archives older than retries. */
  attempts?: number
  /** Runs the spec allowed (retries + 1). */
  maxAttempts?: number
  /** What the last run used, when its runtime measured it. */
  usage?: JobUsage
  /** What it ran: the spec's command and args, and its image if it named one (absent in older archives). */
  command?: string[]
  image?: string
}

// ---- Inputs

/** A client request's key in the mesh's replay memory (from its signature) and until when it is kept. */
export interface ReplayKey { key: string; expiresAtMs: number }

export type PeerInput =
  | { kind: 'tick'; nowMs: number }
  | { kind: 'message'; nowMs: number; from: NodeId; message: PeerMessage }
  | { kind: 'capacity'; nowMs: number; gossip: CapacityGossip }
  | { kind: 'submit'; nowMs: number; requestId: string; job: JobSubmission; replay?: ReplayKey }
  /** A local job ended; `leaseLapsed`: the watchdog ended it because the node's lease lapsed (not the job's failure). */
  | { kind: 'job-exited'; nowMs: number; jobId: JobId; exitCode: number; usage?: JobUsage; leaseLapsed?: boolean }
  /** Cancel every replica of a submitted job; acknowledged like a submission (durable on a majority). */
  | { kind: 'cancel'; nowMs: number; requestId: string; jobId: JobId; replay?: ReplayKey }
  /** Move a running job's replicas: checkpoint, place elsewhere (on `to` when given, or where `where` allows), restore there. */
  | { kind: 'migrate'; nowMs: number; requestId: string; jobId: JobId; to: NodeId | null; where?: MoveConstraints; replay?: ReplayKey }
  /** Drain a node: nothing new is placed there, and every replica running there migrates away. */
  | { kind: 'drain'; nowMs: number; requestId: string; nodeId: NodeId; replay?: ReplayKey }
  /** Undo a drain: the node takes new placements again (what moved away stays where it went). */
  | { kind: 'undrain'; nowMs: number; requestId: string; nodeId: NodeId; replay?: ReplayKey }
  /** A client asks this node to checkpoint its running replica now (answered by a `checkpoint-answer` event). */
  | { kind: 'checkpoint-now'; nowMs: number; requestId: string; jobId: JobId }
  /** The adapter checkpointed a replica (a checkpoint-job effect) and published the snapshot as `cid`. */
  | { kind: 'job-checkpointed'; nowMs: number; jobId: JobId; cid: string; stopped: boolean; holders?: NodeId[]; sizeBytes?: number; chunks?: number }
  | { kind: 'job-checkpoint-failed'; nowMs: number; jobId: JobId; reason: string }
  /** Record a grant of a role to a peer (an invite token or an admit/revoke request the admin key signed: checked here and by every peer); acknowledged like a submission. */
  | { kind: 'admit'; nowMs: number; requestId: string; peerId: string; grant: string }
  /** The node's prices changed (a spot market moved, an operator repriced): later bids ask them. */
  | { kind: 'prices'; nowMs: number; prices: UnitPrices }

// ---- Effects (the adapter performs them in order: persist first, as raft does)

export interface PersistedIncrement {
  term: Term
  votedFor: NodeId | null
  /** The election timeout this node adopted: a restart votes for no one for that long (election-timing.ts). */
  electionTimeoutMs: number
  /** Automerge incremental save since the previous persist (append to what is stored). */
  documentIncrement: Uint8Array
}

export type PeerEvent =
  | { kind: 'became-leader'; term: Term }
  | { kind: 'leader-ready'; term: Term; documentHeads: string[] }
  | { kind: 'stepped-down'; term: Term; reason: string }
  | { kind: 'decision'; term: Term; seq: number; assigned: number; unplaceable: number; auction: AuctionSummary | null }
  /** Decisions up to `seq` of `term` are committed (`ratified`: an earlier term's, by this leader's first decision). */
  | { kind: 'committed'; term: Term; seq: number; ratified?: boolean }
  | { kind: 'submission-durable'; jobId: JobId; requestId: string }
  | { kind: 'submission-refused'; requestId: string; reason: string }
  | { kind: 'message-dropped'; from: NodeId; message: string; reason: string }
  /** A sync message carried a change its writer may not make: refused whole (the sender broke the trust model, or runs other code). */
  | { kind: 'change-refused'; from: NodeId; reason: string }
  | { kind: 'checkpoint-failed'; jobId: JobId; reason: string }
  /** A `checkpoint-now` request: refused (null: a checkpoint of the replica was started, or is under way already). */
  | { kind: 'checkpoint-answer'; requestId: string; jobId: JobId; refused: string | null }

/** What a closed auction decided, for metrics: per strategy, awarded cost against the round's cheapest. */
export interface AuctionSummary {
  roundId: string
  eligible: number
  answered: number
  awards: number
  pending: number
  byStrategy: Record<string, { replicas: number; costPerHour: number; cheapestPerHour: number }>
}

export type PeerEffect =
  | { kind: 'persist'; state: PersistedIncrement }
  | { kind: 'send'; to: NodeId; message: PeerMessage }
  | { kind: 'publish-capacity'; gossip: CapacityGossip }
  /** Start a replica; from its latest snapshot when `restoreFrom` names one (its runner at the time holds it). */
  | { kind: 'start-job'; jobId: JobId; demand: Resources; durationMs: number; term: Term; seq: number; restoreFrom: { cid: string; node: NodeId; holders: NodeId[] } | null }
  /** Checkpoint a running replica and publish the snapshot; `stop`: the copy ends with it (it moves). */
  | { kind: 'checkpoint-job'; jobId: JobId; term: Term; seq: number; stop: boolean; reason: 'periodic' | 'migrate' | 'requested' }
  /** Stop a replica's copy here: `cause` for counting (the simulator's report), `reason` for people. The adapter reports its exit as usual. */
  | { kind: 'stop-job'; jobId: JobId; cause: 'cancelled' | 'finished-elsewhere' | 'fenced' | 'drained' | 'lease-lapsed'; reason: string }
  /**
   * This node's lease now holds until `untilMs` (its own clock): the adapter's watchdog, outside the
   * core's event loop, kills every job once that passes without a later lease.
   */
  | { kind: 'lease'; untilMs: number }
  /** A finished job, for this node's archive (the document keeps active state only). */
  | { kind: 'archive-job'; job: ArchivedJob }
  | { kind: 'event'; event: PeerEvent }
