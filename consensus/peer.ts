// The peer: one Shuttle's consensus core as a deterministic state machine. It steps on an input
// (tick, message, gossip, submission, job exit) at a caller-given time and returns effects to
// perform in order (persist first, then sends), like etcd-io/raft's Ready. No clock, no randomness
// (drawn from the injected RandomSource), no I/O. node/ and sim/ drive the same code.
import * as A from '@automerge/automerge'
import type { BidPolicy, JobExplanation, VerifyBid } from '../placement/index.ts'
import { Bidder } from './bidder.ts'
import {
  leaderSeqOf,
  nodeRecord,
  originSeqOf,
  writeNode,
  writeRun,
  writeSnapshot,
  type ClusterDocument,
  type Document,
  type Role as AdmissionRole,
} from './cluster-document.ts'
import { roleOf, type VerifyGrant } from './admission-grants.ts'
import type { VerifySubmission } from './submission-proofs.ts'
import { CommitteeView, committeeStamp, everNamedVoters, type CommitteeConfig } from './committee.ts'
import { isJointMajority } from './quorum.ts'
import { DocumentReplica } from './document-replica.ts'
import { newLeaderState, type LeaderState } from './leader-state.ts'
import { Leadership } from './leadership.ts'
import { LeaderAuction } from './leader-auction.ts'
import { LeaderPlacement } from './leader-placement.ts'
import { notAVoterRefusal, planAdmit, planCancel, planDrain, planMigrate, planSubmit, planUndrain, remembering, replayRefusal, type RequestPlan, type RequestWrite } from './requests.ts'
import { PlacementViews } from './placement-views.ts'
import { CapacityTable } from './capacity-table.ts'
import { Submissions, majorityFanout } from './submissions.ts'
import { Runner } from './runner.ts'
import { Election, type Role } from './election.ts'
import { CommitWatermarks } from './commit-watermarks.ts'
import { StandingBidSender, StandingBids, standingTarget } from './standing-bids.ts'
import { LeaseGrants, NodeLease, maxClockDriftRate, type LeaseGrant } from './node-lease.ts'
import { SyncSchedule } from './sync-schedule.ts'
import type {
  CapacityGossip,
  JobId,
  NodeAttributes,
  NodeId,
  PeerConfig,
  PeerEffect,
  PeerEvent,
  PeerInput,
  PeerMessage,
  RandomSource,
  ReplayKey,
  Resources,
  SyncMessage,
  Term,
} from './types.ts'

export type { Role } from './election.ts'

export interface PersistedPeer {
  term: number
  votedFor: NodeId | null
  /** The election timeout the node adopted (hard state, election-timing.ts); absent, a restart waits the largest. */
  electionTimeoutMs?: number
  /** The saved document (genesis bytes for a new node), followed by any appended increments. */
  documentBytes: Uint8Array
  /** The same document already loaded with this peer's actor (a cheap clone), when the caller has one. */
  document?: Document
}

export interface PeerInit {
  config: PeerConfig
  attributes: NodeAttributes
  random: RandomSource
  persisted: PersistedPeer
  nowMs: number
  /**
   * This boot's incarnation (1 to 16 bytes of hex, drawn afresh at every boot by the adapter): the
   * node writes as actorOf(its id, incarnation) and numbers its requests afresh, so a restart from a
   * disk that lost writes never reuses a number its peers hold.
   */
  incarnation: string
  /** Checks admission grants (the admin key's signature inside); absent, no admission record is accepted. */
  verifyGrant?: VerifyGrant
  /** Checks the client's signed request inside a job record a non-voter wrote (submission-proofs.ts). */
  verifySubmission?: VerifySubmission
  /** Checks a bid's signature against its bidder's key (node/); absent, bids are trusted (simulator). */
  verifyBid?: VerifyBid
  /** How this node prices its bids. */
  bidPolicy?: BidPolicy
}

export class Peer {
  readonly id: NodeId
  /** Inbound messages refused (malformed, from a non-voter where a voter is required, ...). */
  droppedMessages = 0
  readonly #config: PeerConfig
  #now: number

  readonly #replica: DocumentReplica
  readonly #committee: CommitteeView

  readonly #election: Election
  /** Commit watermarks per term learned from awards and heartbeats (the document's markers lag). */
  readonly #knownCommitted: CommitWatermarks
  #leader: LeaderState | null = null
  readonly #leadership: Leadership

  readonly #submissions: Submissions
  readonly #capacity: CapacityTable
  #nextCapacityMs: number
  readonly #syncSchedule: SyncSchedule
  /** For non-voters: the leader named by the voters' sync messages, and the term it was named in. */
  #leaderHint: NodeId | null = null
  #leaderHintTerm = 0 as Term
  /** The latest leader that called this node for bids (calls come from leaders only). */
  #calledBy: { leader: NodeId; term: Term } | null = null
  /** The leader received reports: it relays them to the voters once per round, batched. */
  #relayPending = false

  readonly #runner: Runner
  readonly #bidder: Bidder
  readonly #standingBid: StandingBidSender
  readonly #verifyBid: VerifyBid | undefined
  readonly #verifyGrant: VerifyGrant | undefined
  readonly #placement: LeaderPlacement
  /** The lease this node runs jobs under (node-lease.ts). */
  readonly #lease: NodeLease
  /** The lease expiry the adapter's watchdog last heard. */
  #leaseAnnouncedMs = -Infinity

  #effects: PeerEffect[] = []

  constructor(init: PeerInit) {
    this.#config = init.config
    this.id = init.config.nodeId
    this.#now = init.nowMs
    this.#knownCommitted = new CommitWatermarks(init.config.maxPeersTracked)
    this.#lease = new NodeLease(init.config, init.nowMs)
    this.#replica = new DocumentReplica(
      {
        nodeId: this.id,
        incarnation: init.incarnation,
        documentBytes: init.persisted.documentBytes,
        ...(init.persisted.document === undefined ? {} : { document: init.persisted.document }),
        maxPeersTracked: init.config.maxPeersTracked,
        ...(init.verifyGrant === undefined ? {} : { verifyGrant: init.verifyGrant }),
        ...(init.verifySubmission === undefined ? {} : { verifySubmission: init.verifySubmission }),
      },
      { term: () => this.#election.term, leaderId: () => this.#election.leaderId, send: (to, message) => this.#send(to, message), trusted: (peer) => everNamedVoters(this.#document).has(peer), takesFromNonVoters: () => this.#everVoter(), nowMs: () => this.#now },
    )
    // A planted bug for the simulator: every proposal counts, committed or not.
    const isCommitted = init.config.broken === 'uncommitted-committee' ? () => true : (stamp: { term: number; seq: number }) => this.#knownCommitted.isCommitted(this.#document, stamp)
    this.#committee = new CommitteeView(isCommitted, () => this.#knownCommitted.version)
    this.#syncSchedule = new SyncSchedule(this.id, init.config, this.#replica, init.nowMs)
    this.#election = new Election(
      { nodeId: this.id, config: init.config, random: init.random, term: init.persisted.term, votedFor: init.persisted.votedFor, electionTimeoutMs: init.persisted.electionTimeoutMs },
      {
        nowMs: () => this.#now,
        voters: () => this.#allVoters(),
        committeeStamp: () => committeeStamp(this.#committeeInForce()),
        isVoter: () => this.#isVoter(),
        quorum: (agreeing) => this.#quorum(agreeing),
        heads: () => A.getHeads(this.#document),
        send: (to, message) => this.#send(to, message),
        event: (event) => this.#event(event),
        elected: (voteHeads) => this.#becomeLeader(voteHeads),
        dropLeadership: () => { this.#leader = null },
      },
    )
    this.#submissions = new Submissions({ originSeq: originSeqOf(this.#document, this.#replica.actor), maxPendingSubmissions: init.config.maxPendingSubmissions, submitRetryMs: init.config.submitRetryMs })
    this.#capacity = new CapacityTable({ nodeId: this.id, maxPeersTracked: init.config.maxPeersTracked, nodeTimeoutMs: init.config.nodeTimeoutMs })
    this.#bidder = new Bidder(this.id, init.attributes.offer, init.bidPolicy)
    this.#standingBid = new StandingBidSender(init.config)
    this.#verifyBid = init.verifyBid
    this.#verifyGrant = init.verifyGrant
    this.#runner = new Runner({
      nodeId: this.id,
      capacity: init.attributes.offer.capacity,
      maxArchiveRemembered: init.config.maxArchiveRemembered,
      document: () => this.#document,
      nowMs: () => this.#now,
      isCommitted: (assignment) => init.config.broken === 'uncommitted-start' || this.#knownCommitted.isCommitted(this.#document, assignment),
      leaseHolds: () => this.#lease.holds(this.#now) && this.#lease.catchUp === null,
      emit: (effect) => this.#emit(effect),
      reportRun: (message, jobId, run) => {
        this.#change(message, (draft) => writeRun(draft, jobId, this.id, run))
        this.#markReportDirty()
      },
      onArchived: (jobId) => {
        if (this.#election.role === 'leader') this.#leader?.doneSeenMs.set(jobId, this.#now)
      },
      reportSnapshot: (jobId, snapshot) => {
        this.#change(`snapshot ${jobId}`, (draft) => writeSnapshot(draft, jobId, this.id, snapshot))
        this.#markReportDirty()
      },
      event: (event) => this.#event(event),
    })
    // What the leader's helpers share of this peer: identity, clock, term, document and outputs.
    const shared = {
      nodeId: this.id,
      config: init.config,
      nowMs: () => this.#now,
      term: () => this.#election.term,
      document: () => this.#document,
      send: (to: NodeId, message: PeerMessage) => this.#send(to, message),
      event: (event: PeerEvent) => this.#event(event),
      syncWith: (peer: NodeId) => this.#replica.syncWith(peer),
      change: (message: string, mutate: (draft: ClusterDocument) => void) => this.#change(message, mutate),
      markVotersDirty: () => this.#markVotersDirty(),
      membershipChanged: () => this.#syncSchedule.membershipChanged(),
    }
    this.#leadership = new Leadership({
      ...shared,
      timing: this.#election.timing,
      quorum: (agreeing) => this.#quorum(agreeing),
      allVoters: () => this.#allVoters(),
      committees: () => this.#committees(),
      followLeader: (leaderId, term) => this.#election.followLeader(leaderId, term),
      adoptTerm: (term) => this.#election.adoptTerm(term),
      learnCommitted: (term, seq) => {
        if (this.#knownCommitted.learn(term, seq)) this.#runner.recheckAll()
      },
      selfGrant: (sentAtMs) => this.#selfGrant(sentAtMs),
    })
    this.#placement = new LeaderPlacement({
      ...shared,
      capacity: this.#capacity,
      views: new PlacementViews(),
      runner: this.#runner,
      committees: () => this.#committees(),
      isVoter: () => this.#isVoter(),
      bidFor: (call) => this.#bidder.bidFor(call, this.#document, this.#now),
      drop: (from, kind, reason) => this.#drop(from, kind, reason),
      learnCommitted: (term, seq) => this.#knownCommitted.learn(term, seq),
      stepDown: (reason) => this.#election.stepDown(reason),
    })
    this.#nextCapacityMs = init.nowMs
    if (nodeRecord(this.#document, this.id) === undefined) {
      this.#change('register node', (draft) => writeNode(draft, init.attributes))
      this.#markVotersDirty()
    }
    // Catch up with the committee at once (the runner starts nothing before its first lease, nor before it holds what the granting leader held).
    const voters = this.#committeeInForce().voters.filter((id) => id !== this.id)
    if (voters.length > 0) this.#replica.syncWith(voters[this.id.length % voters.length]!)
    const drift = 1 + 2 * maxClockDriftRate
    if (!(init.config.nodeTimeoutMs > init.config.nodeLeaseMs * drift)) throw new Error(`assertion: nodeTimeoutMs (${init.config.nodeTimeoutMs}) must exceed nodeLeaseMs (${init.config.nodeLeaseMs}) and the clocks' drift`)
  }

  /** A fresh node's persisted state: the genesis document and term 0. */
  static fresh(genesis: Uint8Array): PersistedPeer {
    return { term: 0, votedFor: null, documentBytes: genesis }
  }

  // ---- Read-only views (CLI, node/ adapter, the simulator's checker)

  get role(): Role { return this.#election.role }
  /** A peer's admission role in this node's document (undefined: not admitted). */
  roleOf(peerId: string): AdmissionRole | undefined { return roleOf(this.#document, peerId) }
  get term(): Term { return this.#election.term }
  /** The election timeout this node holds to now (its leader's advertised one, or its own estimate): election-timing.ts. */
  get electionTimeoutMs(): number { return this.#election.timeoutMs }
  get leaderId(): NodeId | null { return this.#election.leaderId }
  /** The leader as this node knows it: its election's, or for a non-voter the one voters name in their sync messages. */
  get knownLeaderId(): NodeId | null { return this.#election.role === 'leader' ? this.id : this.#election.leaderId ?? (this.#isVoter() ? null : this.#leaderHint) }
  get document(): Document { return this.#document }
  get isReadyLeader(): boolean { return this.#election.role === 'leader' && this.#leader?.ready === true }
  /** Local time until which this leader's lease holds (-Infinity when it holds none). */
  get leaseExpiryMs(): number { return this.#election.role === 'leader' && this.#leader !== null ? this.#leader.leaseExpiryMs : -Infinity }
  get committedSeq(): number { return this.#leader?.committedSeq ?? 0 }
  runningJobs(): ReadonlyMap<JobId, { term: number; seq: number; demand: Resources }> { return this.#runner.running }
  /** The committee in force, as this node knows it. */
  voters(): NodeId[] { return this.#committeeInForce().voters }
  /** The committee proposal awaiting its commit, if any. */
  pendingVoters(): NodeId[] | null { return this.#committee.pending(this.#document)?.voters ?? null }
  /** The stamp of the committee in force (committee.ts), as candidates name it. */
  get committeeStamp(): string { return committeeStamp(this.#committeeInForce()) }
  /** This node's Automerge actor (its identity and incarnation). */
  get actor(): string { return this.#replica.actor }
  /** Received sync messages refused whole (a forbidden change), and changes held back until they can be judged. */
  get screening(): DocumentReplica['screening'] { return this.#replica.screening }
  /** On the leader: how a recent auction round decided the job (undefined elsewhere, or when too old). */
  explain(jobId: string): JobExplanation | undefined { return this.#leader?.auction.explain(jobId) }

  /** The earliest local time at which this peer wants a tick. */
  nextWakeMs(): number {
    let wake = Math.min(this.#nextCapacityMs, this.#syncSchedule.nextWakeMs(this.#isVoter()), this.#submissions.nextRetryMs, this.#standingBid.nextDueMs(), this.#runner.nextCheckpointMs())
    // Renew the lease (a leader renews its own with its heartbeats); stop the jobs the moment it lapses.
    if (this.#election.role !== 'leader') wake = Math.min(wake, this.#lease.nextRequestMs)
    if (this.#runner.running.size > 0 && this.#lease.holds(this.#now)) wake = Math.min(wake, this.#lease.expiryMs)
    if (this.#isVoter() && this.#election.role !== 'leader') wake = Math.min(wake, this.#election.electionDeadlineMs)
    if (this.#leader !== null) {
      wake = Math.min(wake, this.#leader.nextHeartbeatMs)
      if (this.#leader.ready) wake = Math.min(wake, this.#leader.nextRoundMs, this.#leader.auction.closesAtMs)
    }
    return wake
  }

  step(input: PeerInput): PeerEffect[] {
    return this.stepAll([input])
  }

  /**
   * Several inputs, one batch of effects (raft's Ready): timers, the runner, document sync and the
   * persist run once after all of them, so a busy node answers k sync messages with one per partner
   * and one write, not k of each. Same outcome as stepping them one by one, in fewer messages.
   */
  stepAll(inputs: readonly PeerInput[]): PeerEffect[] {
    for (const input of inputs) {
      this.#now = Math.max(this.#now, input.nowMs)
      this.#apply(input)
    }
    this.#onTimers()
    this.#checkCatchUp()
    this.#runner.reconcile()
    this.#replica.flush()
    if (this.#lease.expiryMs !== this.#leaseAnnouncedMs) {
      this.#leaseAnnouncedMs = this.#lease.expiryMs
      this.#emit({ kind: 'lease', untilMs: this.#lease.expiryMs })
    }
    return this.#drain()
  }

  #apply(input: PeerInput): void {
    switch (input.kind) {
      case 'tick':
        break
      case 'message':
        this.#onMessage(input.from, input.message)
        break
      case 'capacity':
        this.#onCapacity(input.gossip)
        break
      case 'submit': {
        // A voter's records need no proof (it checked the client itself): the client's request is kept only by a non-voter.
        const { request, ...unsigned } = input.job
        const job = request === undefined || this.#everVoter() ? unsigned : input.job
        this.#applyRequest(input.requestId, planSubmit(job, replayRefusal(this.#document, input.replay, this.#now) ?? this.#submissions.refusal(job, this.#document), this.#now), input.replay)
        break
      }
      case 'job-exited':
        this.#runner.jobExited(input.jobId, input.exitCode, input.usage, input.leaseLapsed === true)
        break
      case 'prices':
        this.#bidder.setPrices(input.prices)
        break
      case 'cancel':
        this.#applyRequest(input.requestId, this.#voterRequest(input.replay) ?? planCancel(this.#document, input.jobId, this.id, this.#now), input.replay)
        break
      case 'admit':
        this.#applyRequest(input.requestId, planAdmit(this.#document, input.peerId, input.grant, this.#verifyGrant))
        break
      case 'migrate':
        this.#applyRequest(input.requestId, this.#voterRequest(input.replay) ?? planMigrate(this.#document, input.jobId, input.to, this.id, this.#now, input.where), input.replay)
        break
      case 'drain':
        this.#applyRequest(input.requestId, this.#voterRequest(input.replay) ?? planDrain(this.#document, input.nodeId, this.id, this.#now), input.replay)
        break
      case 'undrain':
        this.#applyRequest(input.requestId, this.#voterRequest(input.replay) ?? planUndrain(this.#document, input.nodeId, this.id), input.replay)
        break
      case 'checkpoint-now':
        this.#event({ kind: 'checkpoint-answer', requestId: input.requestId, jobId: input.jobId, refused: this.#runner.requestCheckpoint(input.jobId) })
        break
      case 'job-checkpointed':
        this.#runner.checkpointed(input.jobId, input.cid, input.stopped, input.holders ?? [], { ...(input.sizeBytes === undefined ? {} : { sizeBytes: input.sizeBytes }), ...(input.chunks === undefined ? {} : { chunks: input.chunks }) })
        break
      case 'job-checkpoint-failed':
        this.#runner.checkpointFailed(input.jobId, input.reason)
        break
    }
  }

  /** Leader only: move one voter in or out of the committee (committed by old and new majorities). */
  changeCommittee(nowMs: number, change: { add?: NodeId; remove?: NodeId }): { ok: true; effects: PeerEffect[] } | { ok: false; reason: string } {
    this.#now = Math.max(this.#now, nowMs)
    const changed = this.#leadership.changeCommittee(this.#election.role === 'leader' ? this.#leader : null, change)
    if (!changed.ok) return changed
    this.#replica.flush()
    return { ok: true, effects: this.#drain() }
  }

  // ---- Effects plumbing

  #drop(from: NodeId, kind: string, reason: string): void {
    this.droppedMessages++
    this.#event({ kind: 'message-dropped', from, message: kind, reason })
  }

  #emit(effect: PeerEffect): void { this.#effects.push(effect) }
  #event(event: PeerEvent): void { this.#effects.push({ kind: 'event', event }) }
  #send(to: NodeId, message: PeerMessage): void { this.#effects.push({ kind: 'send', to, message }) }

  /** Persist comes first so nothing is acknowledged before it is durable (raft's rule). */
  #drain(): PeerEffect[] {
    const effects = this.#effects
    this.#effects = []
    if (this.#replica.changed || this.#election.hardStateChanged) {
      const documentIncrement = this.#replica.takeIncrement()
      effects.unshift({ kind: 'persist', state: { term: this.#election.term, votedFor: this.#election.votedFor, electionTimeoutMs: this.#election.timing.adoptedMs, documentIncrement } })
      this.#election.markPersisted()
    }
    return effects
  }

  /** The document lives in the replica, which syncs it and hands over the increment to persist. */
  get #document(): Document { return this.#replica.document }

  #change(message: string, mutate: (draft: A.Doc<ClusterDocument>) => void): void { this.#replica.change(message, mutate) }

  // ---- Committee helpers

  #committeeInForce(): CommitteeConfig { return this.#committee.inForce(this.#document) }

  #isVoter(id: NodeId = this.id): boolean { return this.#committeeInForce().voters.includes(id) }
  /** Some committee ever named this node: it checks what it takes from non-voters, and its own writes need no proof (the trust model). */
  #everVoter(): boolean { return everNamedVoters(this.#document).has(this.id) }

  /** The committee in force, and the pending one while a proposal awaits its commit: decisions need majorities of both. */
  #committees(): NodeId[][] { return this.#committee.committees(this.#document) }

  #allVoters(): NodeId[] {
    const all = new Set<NodeId>()
    for (const committee of this.#committees()) for (const id of committee) all.add(id)
    return [...all]
  }

  #quorum(agreeing: ReadonlySet<NodeId>): boolean {
    return isJointMajority(agreeing, this.#committees(), this.#config.broken)
  }

  #markVotersDirty(): void {
    for (const voter of this.#allVoters()) if (voter !== this.id) this.#replica.syncWith(voter)
  }

  /**
   * A request needs a majority of voters. With requestFanout 'majority' it goes to the leader (which
   * places it in the same step) and to just enough other voters for a majority, in turn; the rest
   * receive it with the leader's decision, one sync message instead of two, and a voter that does
   * not acknowledge is pushed to again after submitRetryMs. Without a known leader, or during a
   * committee change, it goes to every voter, as it always does with 'all-voters'.
   */
  #markRequestDirty(originSeq: number): void {
    const committees = this.#committees()
    const targets = this.#config.requestFanout === 'majority' && committees.length === 1 ? majorityFanout(this.id, this.knownLeaderId, committees[0]!, originSeq) : null
    if (targets === null) return this.#markVotersDirty()
    for (const voter of targets) this.#replica.syncWith(voter)
  }

  /** A runner's report goes to the leader, which relays it to the voters batched per round. */
  #markReportDirty(): void {
    const leader = this.#election.role === 'leader' ? this.id : this.#election.leaderId ?? this.#leaderHint
    if (leader === null || this.#election.role === 'leader') this.#markVotersDirty()
    else if (leader !== this.id) this.#replica.syncWith(leader)
  }

  // ---- Timers

  #onTimers(): void {
    const now = this.#now
    if (this.#isVoter() && this.#election.role !== 'leader' && now >= this.#election.electionDeadlineMs) this.#election.campaign()
    const leader = this.#leader
    if (leader !== null && this.#election.role === 'leader') {
      if (this.#config.checkQuorum && now - leader.startedMs >= this.#config.electionTimeoutMs && !this.#leadership.quorumActive(leader)) {
        this.#election.stepDown('check-quorum: no majority heard within an election timeout')
      } else {
        if (now >= leader.nextHeartbeatMs) this.#leadership.sendHeartbeats(leader)
        if (leader.ready && (now >= leader.nextRoundMs || leader.auction.shouldClose(now))) {
          leader.nextRoundMs = now + this.#config.roundIntervalMs
          this.#placement.round(leader)
          if (this.#relayPending) this.#markVotersDirty()
          this.#relayPending = false
        }
      }
    }
    if (now >= this.#nextCapacityMs) {
      this.#nextCapacityMs = now + this.#config.capacityIntervalMs
      this.#publishCapacity()
    }
    this.#syncSchedule.onTimers({ nowMs: now, document: this.#document, isVoter: this.#isVoter(), isLeader: this.#election.role === 'leader', leaderId: this.knownLeaderId })
    if (now >= this.#submissions.nextRetryMs) this.#retrySubmissions()
    if (now >= this.#runner.nextCheckpointMs()) this.#runner.checkpointDue()
    if (this.#election.role !== 'leader' && now >= this.#lease.nextRequestMs) this.#requestLease()
    this.#offerStandingBid()
  }

  // ---- Node lease (node-lease.ts): this node's, and the ones the leader grants

  /** Asks the leader this node follows to renew its lease; every voter when it knows none or the leader went quiet. */
  #requestLease(): void {
    const { round, broadcast } = this.#lease.request(this.#now)
    const leader = this.knownLeaderId
    const targets = leader === null || broadcast ? this.#allVoters() : [leader]
    for (const target of targets) if (target !== this.id) this.#send(target, { kind: 'lease-request', term: this.#election.term, round })
  }

  /** The leader's heartbeat round sent at `sentAtMs` was acknowledged by a quorum: its own lease is renewed with it. */
  #selfGrant(sentAtMs: number): void {
    if (this.#lease.selfGranted(sentAtMs, () => A.getHeads(this.#document), this.#now) === 'taken-up') this.#runner.recheckAll()
  }

  #onLeaseGrant(from: NodeId, grant: LeaseGrant): void {
    if (this.#lease.granted(grant, this.#now) === 'taken-up') this.#runner.recheckAll()
    // Only a leader grants: a non-voter follows it (its reports and requests go there).
    if (!this.#isVoter() && grant.term >= this.#leaderHintTerm) {
      this.#leaderHint = from
      this.#leaderHintTerm = grant.term
    }
  }

  /** A lease taken up again after a lapse lets the runner start jobs only once this document holds what the granting leader held. */
  #checkCatchUp(): void {
    const heads = this.#lease.catchUp
    if (heads === null || !A.hasHeads(this.#document, [...heads])) return
    this.#lease.caughtUp()
    this.#runner.recheckAll()
  }

  /** The ready leader grants a registered node a lease, while its own leader lease holds (so no two leaders grant at once). */
  #onLeaseRequest(from: NodeId, round: number): void {
    const leader = this.#leader
    if (leader === null || !leader.ready || leader.leaseExpiryMs <= this.#now) return
    if (nodeRecord(this.#document, from) === undefined) return this.#drop(from, 'lease-request', 'not a registered node')
    if (!leader.grants.grant(from, this.#now)) return this.#drop(from, 'lease-request', 'the lease table is full')
    this.#send(from, { kind: 'lease-grant', term: this.#election.term, round, durationMs: this.#config.nodeLeaseMs, heads: A.getHeads(this.#document) })
  }

  /** Tells the leader this node follows how it bids, when that leader has not heard it lately. */
  #offerStandingBid(): void {
    const hint = this.#isVoter() ? null : { leader: this.#leaderHint, term: this.#leaderHintTerm }
    const target = this.#election.role === 'leader' ? null : standingTarget(this.id, [this.#calledBy, { leader: this.#election.leaderId, term: this.#election.term }, hint])
    if (target === null) return this.#standingBid.forget()
    const message = this.#standingBid.due(target.leader, target.term, this.#bidder.standing(this.#document), this.#now)
    if (message !== null) this.#send(target.leader, message)
  }

  // ---- Leadership and message dispatch: votes go to Election, heartbeats and the barrier to Leadership

  /** The election is won: build the leader's state and start its barrier. */
  #becomeLeader(voteHeads: ReadonlyMap<NodeId, string[]>): void {
    const auction = new LeaderAuction({ leaderId: this.id, verify: this.#verifyBid, maxReplicasPerRound: this.#config.maxJobsPerRound, minBidWindowMs: this.#config.minBidWindowMs, maxBidWindowMs: this.#config.maxBidWindowMs })
    const standingBids = new StandingBids(this.#config, this.#config.maxPeersTracked)
    this.#leader = newLeaderState(this.#now, voteHeads, leaderSeqOf(this.#document, this.#election.term), auction, standingBids, new LeaseGrants(this.#config, this.#config.maxPeersTracked, this.#now))
    this.#leadership.begin(this.#leader, voteHeads)
  }

  /** A leader still behind its barrier looks again as the voters' documents arrive. */
  #checkBarrier(): void {
    if (this.#leader !== null) this.#leadership.checkBarrier(this.#leader)
  }

  #onMessage(from: NodeId, message: PeerMessage): void {
    // Election and leadership messages count only from committee members (the leader is one);
    // any node syncs, and any node bids (the auction checks the bidder is registered and invited).
    if (message.kind !== 'sync' && message.kind !== 'bid' && message.kind !== 'standing-bid' && message.kind !== 'lease-request' && !this.#allVoters().includes(from)) {
      this.#drop(from, message.kind, 'sender is not a voter')
      return
    }
    switch (message.kind) {
      case 'pre-vote':
      case 'pre-vote-response':
      case 'vote':
      case 'vote-response':
        return this.#election.onMessage(from, message)
      case 'heartbeat':
      case 'heartbeat-ack':
      case 'barrier':
      case 'barrier-reply':
        return this.#leadership.onMessage(this.#leader, from, message)
      case 'sync':
        return this.#onSync(from, message)
      case 'lease-request':
        return this.#onLeaseRequest(from, message.round)
      case 'lease-grant':
        return this.#onLeaseGrant(from, message)
      case 'call-for-bids':
        // Every invited node answers the leader directly.
        if (message.term >= this.#election.term) {
          this.#send(from, { kind: 'bid', term: message.term, bid: this.#bidder.bidFor(message.call, this.#document, this.#now) })
          if (this.#calledBy === null || message.term >= this.#calledBy.term) this.#calledBy = { leader: from, term: message.term }
        }
        return
      case 'bid':
        if (this.#leader !== null) this.#placement.onBid(this.#leader, from, message)
        return
      case 'standing-bid':
        if (this.#leader !== null) this.#placement.onStandingBid(this.#leader, from, message)
        return
      case 'award':
        // Only a leader that counted a majority of acknowledgements sends an award, so even a
        // deposed leader's award is true: record the commit watermark it proves.
        for (const job of message.jobs) this.#knownCommitted.learn(message.term, job.seq)
        this.#runner.recheckAll()
        return
    }
  }

  // ---- Document sync: what a received change means here (the sessions are DocumentReplica's)

  #onSync(from: NodeId, message: SyncMessage): void {
    const receipt = this.#replica.receive(from, message)
    if (receipt.kind === 'duplicate' || receipt.kind === 'penalized') return
    if (receipt.kind === 'undecodable') return this.#drop(from, 'sync', receipt.reason)
    if (receipt.kind === 'refused') {
      this.#drop(from, 'sync', receipt.reason)
      return this.#event({ kind: 'change-refused', from, reason: receipt.reason })
    }
    if (receipt.changed) {
      this.#noteTouched(receipt.touchedPaths)
      if (this.#election.role === 'leader') this.#relayPending = true
    }
    if (!this.#allVoters().includes(from)) return
    this.#syncSchedule.heardFromVoter(this.#now)
    if (message.leaderHint !== null && !this.#isVoter()) {
      this.#leaderHint = message.leaderHint
      this.#leaderHintTerm = message.term
    }
    const leader = this.#leader
    if (leader !== null) this.#placement.onAck(leader, from, message.ack)
    if (message.ack.origin === this.#replica.actor && this.#submissions.recordDurable(from, message.ack.originSeq)) this.#acknowledgeDurable()
    if (leader !== null && !leader.ready) this.#checkBarrier()
  }

  #noteTouched(paths: readonly (readonly (string | number)[])[]): void {
    for (const path of paths) {
      const root = path[0]
      if (root === 'jobs') {
        const jobId = path[2]
        if (typeof jobId === 'string') this.#runner.touch(jobId as JobId)
        if (path.length === 3) this.#placement.placeSoon(this.#leader)
      } else if (root === 'commits' || root === 'ratified') {
        this.#runner.recheckAll()
        this.#syncSchedule.membershipChanged() // a committee proposal may have committed
      } else if (root === 'committee' || root === 'nodes') {
        this.#syncSchedule.membershipChanged()
      }
    }
  }

  // ---- Requests (submit, cancel, migrate, drain, admit): acknowledged once durable on a majority of voters

  /** Cancels, moves and drains are written by voters only (write-rules.ts): a non-voter refuses them as not-a-voter, and node/ passes them on to one. */
  #voterRequest(replay: ReplayKey | undefined): RequestPlan | null {
    if (!this.#isVoter()) return { refused: `${notAVoterRefusal}: ${this.id} is not a voter, and only a voter records this request` }
    const replayed = replayRefusal(this.#document, replay, this.#now)
    return replayed === null ? null : { refused: replayed }
  }

  /** Writes a planned request as this node's next origin change (with its replay key), or reports its refusal. */
  #applyRequest(requestId: string, planned: RequestPlan, replay?: ReplayKey): void {
    const plan = remembering(planned, replay)
    const refused = 'refused' in plan ? plan.refused : this.#submissions.capacityRefusal()
    if (refused !== null) return this.#event({ kind: 'submission-refused', requestId, reason: refused })
    const request = plan as RequestWrite
    const originSeq = this.#submissions.nextOriginSeq()
    this.#change(request.message, (draft) => request.write(draft, { node: this.id, actor: this.#replica.actor, seq: originSeq }))
    if (request.placeSoon) this.#placement.placeSoon(this.#leader)
    for (const jobId of request.touch) this.#runner.touch(jobId)
    for (const node of request.notify) this.#replica.syncWith(node)
    this.#submissions.add({ requestId, jobId: request.ackId as JobId, originSeq }, this.#now)
    this.#markRequestDirty(originSeq)
    this.#acknowledgeDurable()
  }

  #acknowledgeDurable(): void {
    for (const submission of this.#submissions.takeDurable(this.#committees(), this.#isVoter() ? this.id : null)) {
      this.#event({ kind: 'submission-durable', jobId: submission.jobId, requestId: submission.requestId })
    }
  }

  #retrySubmissions(): void {
    for (const voter of this.#submissions.retryTargets(this.#now, this.#allVoters(), this.id)) this.#replica.resyncWith(voter)
  }

  // ---- Capacity gossip (soft state, never in the document)

  #publishCapacity(): void {
    const seq = this.#capacity.nextPublishedSeq(this.#now)
    this.#emit({ kind: 'publish-capacity', gossip: { nodeId: this.id, seq, free: this.#runner.freeResources(), running: this.#runner.running.size } })
  }

  #onCapacity(gossip: CapacityGossip): void {
    this.#capacity.accept(gossip, this.#now)
  }
}
