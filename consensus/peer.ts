// The peer: one Shuttle's consensus core as a deterministic state machine. It steps on an input
// (tick, message, gossip, submission, job exit) at a caller-given time and returns effects to
// perform in order (persist first, then sends), like etcd-io/raft's Ready. No clock, no randomness
// (drawn from the injected RandomSource), no I/O. node/ and sim/ drive the same code.
import * as A from '@automerge/automerge'
import {
  committeeVoters,
  committedSeqOf,
  createGenesis,
  demandOf,
  effectiveAssignment,
  forEachJob,
  forEachNode,
  isCommitted,
  isJobDone,
  jobRecord,
  leaderSeqOf,
  loadDocument,
  nodeRecord,
  originSeqOf,
  shardOf,
  writeAssignment,
  writeCommit,
  writeCommittee,
  writeJob,
  writeLeaderSeq,
  writeNode,
  writeRun,
  writeUnplaceable,
  deleteJob,
  finalRun,
  readText,
  type Document,
  type JobRecord,
} from './cluster-document.ts'
import { placeSpread, type PendingJob, type PlacementCandidate } from './interim-placement.ts'
import { isJointMajority, majorityValue, validateCommitteeChange } from './quorum.ts'
import { SyncSessions } from './sync-sessions.ts'
import { concatBytes } from './bytes.ts'
import type {
  CapacityGossip,
  DocumentAck,
  JobId,
  JobSubmission,
  NodeAttributes,
  NodeId,
  PeerConfig,
  PeerEffect,
  PeerEvent,
  PeerInput,
  PeerMessage,
  RandomSource,
  Resources,
  SyncMessage,
  Term,
} from './types.ts'
import { asTerm } from './types.ts'

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

export interface PersistedPeer {
  term: number
  votedFor: NodeId | null
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
}

interface LeaderState {
  ready: boolean
  startedMs: number
  barrierHeads: Map<NodeId, string[]>
  round: number
  roundSentAtMs: Map<number, number>
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
  /** Assignments of decisions not yet known committed: awarded to their runners on commit. */
  unawarded: Map<number, { jobId: JobId; nodeId: NodeId }[]>
  /** When this leader first saw each finished job: it drops them from the document after archiveAfterMs. */
  doneSeenMs: Map<JobId, number>
  leaseExpiryMs: number
  nextHeartbeatMs: number
  nextRoundMs: number
  /** A committee change in flight: its decision commits only with majorities of both committees. */
  joint: { previous: NodeId[]; next: NodeId[]; seq: number } | null
}

interface PendingSubmission { requestId: string; jobId: JobId; originSeq: number }
interface LocalRun { term: number; seq: number; demand: Resources }

const emptyBytes = new Uint8Array(0)

export class Peer {
  readonly id: NodeId
  /** Inbound messages refused (malformed, from a non-voter where a voter is required, ...). */
  droppedMessages = 0
  readonly #config: PeerConfig
  readonly #attributes: NodeAttributes
  readonly #random: RandomSource
  #now: number

  #document: Document
  #documentChanged = false
  #persistedHeads: string[]
  #hardStateChanged = false
  readonly #sessions: SyncSessions
  readonly #dirtyPartners = new Set<NodeId>()
  readonly #channelEpoch: number
  #channelSeq = 0
  readonly #channelReceived = new Map<NodeId, { epoch: number; seq: number }>()

  #role: Role = 'follower'
  #term: Term
  #votedFor: NodeId | null
  #leaderId: NodeId | null = null
  /** Commit watermarks per term learned from awards and heartbeats (the document's markers lag). */
  readonly #knownCommitted = new Map<number, number>()
  #lastHeardLeaderMs: number
  #noVoteBeforeMs: number
  #electionDeadlineMs: number
  #votes = new Set<NodeId>()
  /** Heads sent with granted votes: the new leader's barrier starts from them (one round trip saved). */
  readonly #voteHeads = new Map<NodeId, string[]>()
  #leader: LeaderState | null = null

  #originSeq: number
  readonly #pendingSubmissions: PendingSubmission[] = []
  readonly #durable = new Map<NodeId, number>()
  #nextSubmitRetryMs = Infinity

  readonly #capacityTable = new Map<NodeId, { seq: number; lastSeenMs: number; free: Resources }>()
  #capacitySeq = 0
  #nextCapacityMs: number
  #nextDownstreamMs: number
  #nextResyncMs: number
  #resyncCursor = 0
  #lastVoterSyncMs = -Infinity
  /** For non-voters: the leader named by the voters' sync messages. */
  #leaderHint: NodeId | null = null
  /** The leader received reports: it relays them to the voters once per round, batched. */
  #relayPending = false
  #servedCache: { key: string; served: NodeId[] } | null = null

  readonly #running = new Map<JobId, LocalRun>()
  /** Jobs whose effective assignment names this node (started or waiting for commit or room). */
  readonly #mine = new Map<JobId, { term: number; seq: number }>()
  readonly #touchedJobs = new Set<JobId>()
  /** Jobs already handed to the archive (a bounded memory of them; the archive itself is the adapter's). */
  readonly #archived = new Set<JobId>()
  #recheckAll = false

  #effects: PeerEffect[] = []

  constructor(init: PeerInit) {
    this.#config = init.config
    this.#attributes = init.attributes
    this.id = init.config.nodeId
    this.#random = init.random
    this.#now = init.nowMs
    this.#channelEpoch = init.nowMs
    this.#sessions = new SyncSessions(init.config.maxPeersTracked)
    this.#document = init.persisted.document ?? loadDocument(init.persisted.documentBytes, this.id)
    this.#persistedHeads = A.getHeads(this.#document)
    this.#term = asTerm(init.persisted.term)
    this.#votedFor = init.persisted.votedFor
    this.#originSeq = originSeqOf(this.#document, this.id)
    // A (re)started voter grants no vote for one election timeout: a lease it acknowledged before
    // a crash may still be running (the lease bound relies on this).
    this.#lastHeardLeaderMs = init.nowMs
    this.#noVoteBeforeMs = init.nowMs + init.config.electionTimeoutMs
    this.#electionDeadlineMs = this.#drawElectionDeadline()
    this.#nextCapacityMs = init.nowMs
    this.#nextDownstreamMs = init.nowMs + init.config.downstreamSyncIntervalMs
    this.#nextResyncMs = init.nowMs + init.config.resyncIntervalMs
    if (nodeRecord(this.#document, this.id) === undefined) {
      this.#change('register node', (draft) => writeNode(draft, init.attributes))
      this.#markVotersDirty()
    }
    this.#recheckAll = true
  }

  /** A fresh node's persisted state: the genesis document and term 0. */
  static fresh(genesis: Uint8Array): PersistedPeer {
    return { term: 0, votedFor: null, documentBytes: genesis }
  }

  static genesis = createGenesis

  // ---- Read-only views (CLI, node/ adapter, the simulator's checker)

  get role(): Role { return this.#role }
  get term(): Term { return this.#term }
  get leaderId(): NodeId | null { return this.#leaderId }
  get document(): Document { return this.#document }
  get isReadyLeader(): boolean { return this.#role === 'leader' && this.#leader?.ready === true }
  /** Local time until which this leader's lease holds (-Infinity when it holds none). */
  get leaseExpiryMs(): number { return this.#role === 'leader' && this.#leader !== null ? this.#leader.leaseExpiryMs : -Infinity }
  get committedSeq(): number { return this.#leader?.committedSeq ?? 0 }
  runningJobs(): ReadonlyMap<JobId, { term: number; seq: number; demand: Resources }> { return this.#running }
  voters(): NodeId[] { return committeeVoters(this.#document) }

  /** The earliest local time at which this peer wants a tick. */
  nextWakeMs(): number {
    let wake = Math.min(this.#nextCapacityMs, this.#nextResyncMs, this.#nextSubmitRetryMs)
    if (this.#isVoter()) {
      wake = Math.min(wake, this.#nextDownstreamMs)
      if (this.#role !== 'leader') wake = Math.min(wake, this.#electionDeadlineMs)
    }
    if (this.#leader !== null) {
      wake = Math.min(wake, this.#leader.nextHeartbeatMs)
      if (this.#leader.ready) wake = Math.min(wake, this.#leader.nextRoundMs)
    }
    return wake
  }

  step(input: PeerInput): PeerEffect[] {
    this.#now = Math.max(this.#now, input.nowMs)
    switch (input.kind) {
      case 'tick':
        break
      case 'message':
        this.#onMessage(input.from, input.message)
        break
      case 'capacity':
        this.#onCapacity(input.gossip)
        break
      case 'submit':
        this.#onSubmit(input.requestId, input.job)
        break
      case 'job-exited':
        this.#onJobExited(input.jobId, input.exitCode)
        break
    }
    this.#onTimers()
    this.#reconcileRunner()
    this.#flushSync()
    return this.#drain()
  }

  /** Leader only: move one voter in or out of the committee (committed by old and new majorities). */
  changeCommittee(nowMs: number, change: { add?: NodeId; remove?: NodeId }): { ok: true; effects: PeerEffect[] } | { ok: false; reason: string } {
    this.#now = Math.max(this.#now, nowMs)
    const leader = this.#leader
    if (this.#role !== 'leader' || leader === null || !leader.ready) return { ok: false, reason: 'only the ready leader changes the committee' }
    if (leader.joint !== null) return { ok: false, reason: 'a committee change is already in flight' }
    const previous = committeeVoters(this.#document)
    const next = previous.filter((id) => id !== change.remove)
    if (change.add !== undefined && !next.includes(change.add)) next.push(change.add)
    next.sort()
    const valid = validateCommitteeChange(previous, next)
    if (!valid.ok) return valid
    const seq = leader.seq + 1
    this.#change(`committee epoch ${this.#document.committee.epoch + 1}`, (draft) => {
      writeCommittee(draft, next, draft.committee.epoch + 1)
      writeLeaderSeq(draft, this.#term, seq)
    })
    leader.seq = seq
    leader.ackedSeq.set(this.id, seq)
    leader.joint = { previous, next, seq }
    this.#servedCache = null
    this.#markVotersDirty()
    this.#flushSync()
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
    if (this.#documentChanged || this.#hardStateChanged) {
      const documentIncrement = this.#documentChanged ? this.#changesSincePersist() : emptyBytes
      effects.unshift({ kind: 'persist', state: { term: this.#term, votedFor: this.#votedFor, documentIncrement } })
      this.#documentChanged = false
      this.#hardStateChanged = false
    }
    return effects
  }

  /**
   * The changes added since the last persist, as concatenated change chunks (Automerge loads them
   * after the saved document). Cheaper than saveIncremental, which re-saves a freshly loaded
   * document whole on its first call.
   */
  #changesSincePersist(): Uint8Array {
    const changes = A.getChangesSince(this.#document, this.#persistedHeads)
    this.#persistedHeads = A.getHeads(this.#document)
    return changes.length === 0 ? emptyBytes : concatBytes(changes)
  }

  #change(message: string, mutate: (draft: A.Doc<import('./cluster-document.ts').ClusterDocument>) => void): void {
    const before = this.#document
    this.#document = A.change(this.#document, { time: undefined, message }, mutate)
    if (this.#document !== before) this.#documentChanged = true
  }

  // ---- Committee helpers

  #isVoter(id: NodeId = this.id): boolean { return this.#document.committee.voters[id] === true }

  #committees(): NodeId[][] {
    const joint = this.#leader?.joint
    return joint ? [joint.previous, joint.next] : [committeeVoters(this.#document)]
  }

  #allVoters(): NodeId[] {
    const all = new Set<NodeId>()
    for (const committee of this.#committees()) for (const id of committee) all.add(id)
    return [...all]
  }

  #quorum(agreeing: ReadonlySet<NodeId>): boolean {
    return isJointMajority(agreeing, this.#committees(), this.#config.broken)
  }

  #markVotersDirty(): void {
    for (const voter of this.#allVoters()) if (voter !== this.id) this.#dirtyPartners.add(voter)
  }

  /** A runner's report goes to the leader, which relays it to the voters batched per round. */
  #markReportDirty(): void {
    const leader = this.#role === 'leader' ? this.id : this.#leaderId ?? this.#leaderHint
    if (leader === null || this.#role === 'leader') this.#markVotersDirty()
    else if (leader !== this.id) this.#dirtyPartners.add(leader)
  }



  // ---- Timers

  #drawElectionDeadline(): number {
    const timeout = this.#config.electionTimeoutMs
    return this.#now + timeout + Math.floor(this.#random.next() * timeout)
  }

  #heardRecently(): boolean {
    if (this.#now < this.#noVoteBeforeMs) return true
    if (this.#role === 'leader') return true
    return this.#leaderId !== null && this.#now - this.#lastHeardLeaderMs < this.#config.electionTimeoutMs
  }

  #onTimers(): void {
    const now = this.#now
    if (this.#isVoter() && this.#role !== 'leader' && now >= this.#electionDeadlineMs) this.#campaign()
    const leader = this.#leader
    if (leader !== null && this.#role === 'leader') {
      if (this.#config.checkQuorum && now - leader.startedMs >= this.#config.electionTimeoutMs && !this.#quorumActive(leader)) {
        this.#stepDown('check-quorum: no majority heard within an election timeout')
      } else {
        if (now >= leader.nextHeartbeatMs) this.#sendHeartbeats(leader)
        if (leader.ready && now >= leader.nextRoundMs) {
          leader.nextRoundMs = now + this.#config.roundIntervalMs
          this.#placementRound(leader)
          if (this.#relayPending) this.#markVotersDirty()
          this.#relayPending = false
        }
      }
    }
    if (now >= this.#nextCapacityMs) {
      this.#nextCapacityMs = now + this.#config.capacityIntervalMs
      this.#publishCapacity()
    }
    if (this.#isVoter() && now >= this.#nextDownstreamMs) {
      this.#nextDownstreamMs = now + this.#config.downstreamSyncIntervalMs
      for (const peer of this.#servedNonVoters()) if (!this.#sessions.inSync(this.#document, peer)) this.#dirtyPartners.add(peer)
    }
    if (now >= this.#nextResyncMs) {
      this.#nextResyncMs = now + this.#config.resyncIntervalMs
      this.#resync()
    }
    if (now >= this.#nextSubmitRetryMs) this.#retrySubmissions()
  }

  /** Restart sessions that may have lost a message so a lossy link cannot stall them. */
  #resync(): void {
    const voters = committeeVoters(this.#document).filter((id) => id !== this.id)
    if (this.#role === 'leader') {
      for (const voter of voters) {
        if (this.#sessions.inSync(this.#document, voter)) continue
        this.#sessions.restart(voter)
        this.#dirtyPartners.add(voter)
      }
    } else if (!this.#isVoter() && voters.length > 0 && this.#now - this.#lastVoterSyncMs >= 2 * this.#config.downstreamSyncIntervalMs) {
      // Rotate through the voters so a non-voter stays current even when its home voter is down.
      const voter = voters[this.#resyncCursor++ % voters.length]
      if (voter !== undefined) {
        this.#sessions.restart(voter)
        this.#dirtyPartners.add(voter)
      }
    } else if (this.#leaderId !== null && this.#leaderId !== this.id && !this.#sessions.inSync(this.#document, this.#leaderId)) {
      this.#sessions.restart(this.#leaderId)
      this.#dirtyPartners.add(this.#leaderId)
    }
  }

  // ---- Election (Raft terms and votes, with pre-vote, check-quorum, lease and stickiness)

  #campaign(): void {
    this.#electionDeadlineMs = this.#drawElectionDeadline()
    if (this.#config.preVote) {
      this.#role = 'pre-candidate'
      this.#votes = new Set([this.id])
      this.#leaderId = null
      if (this.#quorum(this.#votes)) return this.#startElection()
      for (const voter of committeeVoters(this.#document)) if (voter !== this.id) this.#send(voter, { kind: 'pre-vote', term: asTerm(this.#term + 1) })
    } else {
      this.#startElection()
    }
  }

  #startElection(): void {
    this.#term = asTerm(this.#term + 1)
    this.#votedFor = this.id
    this.#hardStateChanged = true
    this.#role = 'candidate'
    this.#leaderId = null
    this.#votes = new Set([this.id])
    this.#voteHeads.clear()
    this.#electionDeadlineMs = this.#drawElectionDeadline()
    if (this.#quorum(this.#votes)) return this.#becomeLeader()
    for (const voter of committeeVoters(this.#document)) if (voter !== this.id) this.#send(voter, { kind: 'vote', term: this.#term })
  }

  #adoptTerm(term: Term): void {
    if (term <= this.#term) return
    const wasLeader = this.#role === 'leader'
    this.#term = term
    this.#votedFor = null
    this.#hardStateChanged = true
    this.#role = 'follower'
    this.#leaderId = null
    this.#leader = null
    if (wasLeader) this.#event({ kind: 'stepped-down', term, reason: `saw higher term ${term}` })
  }

  #stepDown(reason: string): void {
    this.#event({ kind: 'stepped-down', term: this.#term, reason })
    this.#role = 'follower'
    this.#leader = null
    this.#leaderId = null
    this.#electionDeadlineMs = this.#drawElectionDeadline()
  }

  #becomeLeader(): void {
    this.#role = 'leader'
    this.#leaderId = this.id
    const now = this.#now
    this.#leader = {
      ready: false,
      startedMs: now,
      barrierHeads: new Map(this.#voteHeads),
      round: 0,
      roundSentAtMs: new Map(),
      roundAckers: new Map(),
      lastAckMs: new Map(),
      ackedSeq: new Map(),
      seq: leaderSeqOf(this.#document, this.#term),
      committedSeq: 0,
      markerSeq: 0,
      ratify: null,
      ratified: false,
      nextMarkerMs: now,
      unawarded: new Map(),
      doneSeenMs: new Map(),
      leaseExpiryMs: -Infinity,
      nextHeartbeatMs: now,
      nextRoundMs: now,
      joint: null,
    }
    this.#event({ kind: 'became-leader', term: this.#term })
    for (const voter of committeeVoters(this.#document)) if (voter !== this.id && !this.#voteHeads.has(voter)) this.#send(voter, { kind: 'barrier', term: this.#term })
    this.#sendHeartbeats(this.#leader)
    this.#checkBarrier()
  }

  #sendHeartbeats(leader: LeaderState): void {
    leader.nextHeartbeatMs = this.#now + this.#config.heartbeatIntervalMs
    const round = ++leader.round
    leader.roundSentAtMs.set(round, this.#now)
    leader.roundAckers.set(round, new Set([this.id]))
    // Rounds older than two election timeouts can no longer extend the lease.
    const oldest = round - Math.ceil((2 * this.#config.electionTimeoutMs) / this.#config.heartbeatIntervalMs) - 1
    for (const key of leader.roundSentAtMs.keys()) {
      if (key >= oldest) break
      leader.roundSentAtMs.delete(key)
      leader.roundAckers.delete(key)
    }
    this.#creditLease(leader, round)
    for (const voter of this.#allVoters()) {
      if (voter !== this.id) this.#send(voter, { kind: 'heartbeat', term: this.#term, round, commitSeq: leader.committedSeq })
    }
  }

  #creditLease(leader: LeaderState, round: number): void {
    const ackers = leader.roundAckers.get(round)
    const sentAt = leader.roundSentAtMs.get(round)
    if (ackers === undefined || sentAt === undefined || !this.#quorum(ackers)) return
    leader.leaseExpiryMs = Math.max(leader.leaseExpiryMs, sentAt + this.#config.electionTimeoutMs * this.#config.leaseFraction)
  }

  #quorumActive(leader: LeaderState): boolean {
    const active = new Set<NodeId>([this.id])
    for (const [voter, at] of leader.lastAckMs) if (this.#now - at < this.#config.electionTimeoutMs) active.add(voter)
    return this.#quorum(active)
  }

  #onMessage(from: NodeId, message: PeerMessage): void {
    // Election and leadership messages count only from committee members (the leader is one).
    if (message.kind !== 'sync' && !this.#isVoter(from) && !(this.#leader?.joint?.previous.includes(from) ?? false)) {
      this.#drop(from, message.kind, 'sender is not a voter')
      return
    }
    switch (message.kind) {
      case 'pre-vote': {
        if (!this.#isVoter()) return
        const granted = message.term > this.#term && !this.#heardRecently()
        this.#send(from, { kind: 'pre-vote-response', term: granted ? message.term : this.#term, granted })
        return
      }
      case 'pre-vote-response': {
        if (this.#role !== 'pre-candidate') return
        if (message.granted && message.term === this.#term + 1) {
          this.#votes.add(from)
          if (this.#quorum(this.#votes)) this.#startElection()
        } else if (!message.granted && message.term > this.#term) {
          this.#adoptTerm(message.term)
        }
        return
      }
      case 'vote': {
        if (!this.#isVoter()) return
        if (message.term < this.#term) return this.#send(from, { kind: 'vote-response', term: this.#term, granted: false })
        // Leader stickiness: a voter that hears a live leader ignores the disruption (and keeps its term).
        if (message.term > this.#term && this.#heardRecently()) return this.#send(from, { kind: 'vote-response', term: message.term, granted: false })
        this.#adoptTerm(message.term)
        const granted = this.#votedFor === null || this.#votedFor === from
        if (granted) {
          this.#votedFor = from
          this.#hardStateChanged = true
          this.#electionDeadlineMs = this.#drawElectionDeadline()
        }
        this.#send(from, granted ? { kind: 'vote-response', term: this.#term, granted, heads: A.getHeads(this.#document) } : { kind: 'vote-response', term: this.#term, granted })
        return
      }
      case 'vote-response': {
        if (message.term > this.#term) {
          // A refusal stamped with a higher term only counts when it is the responder's real term.
          if (!message.granted && this.#role !== 'candidate') this.#adoptTerm(message.term)
          return
        }
        if (this.#role !== 'candidate' || message.term !== this.#term || !message.granted) return
        this.#votes.add(from)
        if (message.heads !== undefined) this.#voteHeads.set(from, message.heads)
        if (this.#quorum(this.#votes)) this.#becomeLeader()
        return
      }
      case 'heartbeat': {
        if (message.term < this.#term) return this.#send(from, { kind: 'heartbeat-ack', term: this.#term, round: message.round })
        this.#followLeader(from, message.term)
        if (this.#learnCommitted(message.term, message.commitSeq)) this.#recheckAll = true
        this.#send(from, { kind: 'heartbeat-ack', term: this.#term, round: message.round })
        return
      }
      case 'heartbeat-ack': {
        if (message.term > this.#term) return this.#adoptTerm(message.term)
        const leader = this.#leader
        if (leader === null || message.term !== this.#term) return
        leader.lastAckMs.set(from, this.#now)
        leader.roundAckers.get(message.round)?.add(from)
        this.#creditLease(leader, message.round)
        return
      }
      case 'barrier': {
        if (message.term < this.#term) return this.#send(from, { kind: 'heartbeat-ack', term: this.#term, round: 0 })
        this.#followLeader(from, message.term)
        this.#send(from, { kind: 'barrier-reply', term: this.#term, heads: A.getHeads(this.#document) })
        this.#dirtyPartners.add(from)
        return
      }
      case 'barrier-reply': {
        const leader = this.#leader
        if (leader === null || message.term !== this.#term || leader.ready) return
        leader.barrierHeads.set(from, message.heads)
        leader.lastAckMs.set(from, this.#now)
        this.#checkBarrier()
        return
      }
      case 'sync':
        return this.#onSync(from, message)
      case 'award':
        // Only a leader that counted a majority of acknowledgements sends an award, so even a
        // deposed leader's award is true: record the commit watermark it proves.
        for (const job of message.jobs) this.#learnCommitted(message.term, job.seq)
        this.#recheckAll = true
        return
    }
  }

  #followLeader(leaderId: NodeId, term: Term): void {
    this.#adoptTerm(term)
    if (this.#role !== 'follower') {
      this.#role = 'follower'
      this.#leader = null
    }
    this.#leaderId = leaderId
    this.#lastHeardLeaderMs = this.#now
    this.#electionDeadlineMs = this.#drawElectionDeadline()
  }

  /** A new leader decides nothing until it holds the documents of a majority of voters. */
  #checkBarrier(): void {
    const leader = this.#leader
    if (leader === null || leader.ready) return
    const merged = new Set<NodeId>([this.id])
    for (const [voter, heads] of leader.barrierHeads) {
      if (A.hasHeads(this.#document, heads)) merged.add(voter)
      else this.#dirtyPartners.add(voter)
    }
    if (!this.#quorum(merged)) return
    leader.ready = true
    leader.nextRoundMs = this.#now
    this.#event({ kind: 'leader-ready', term: this.#term, documentHeads: A.getHeads(this.#document) })
  }

  // ---- Document sync and acknowledgements

  #ackFor(peer: NodeId): DocumentAck {
    return { term: this.#term, leaderSeq: leaderSeqOf(this.#document, this.#term), originSeq: originSeqOf(this.#document, peer) }
  }

  #flushSync(): void {
    for (const peer of this.#dirtyPartners) {
      const data = this.#sessions.generate(this.#document, peer)
      if (data !== null) this.#sendSync(peer, data)
    }
    this.#dirtyPartners.clear()
  }

  #sendSync(peer: NodeId, data: Uint8Array | null): void {
    this.#send(peer, { kind: 'sync', term: this.#term, data, ack: this.#ackFor(peer), channel: { epoch: this.#channelEpoch, seq: ++this.#channelSeq }, leaderHint: this.#leaderId })
  }

  /** Accept each sync message once and in order; a sender that restarted opens a new channel. */
  #acceptChannel(from: NodeId, channel: { epoch: number; seq: number }): boolean {
    const last = this.#channelReceived.get(from)
    if (last !== undefined && (channel.epoch < last.epoch || (channel.epoch === last.epoch && channel.seq <= last.seq))) return false
    if (last === undefined && this.#channelReceived.size >= this.#config.maxPeersTracked) return false
    if (last !== undefined && channel.epoch > last.epoch) this.#sessions.restart(from)
    this.#channelReceived.set(from, channel)
    return true
  }

  #onSync(from: NodeId, message: SyncMessage): void {
    if (!this.#acceptChannel(from, message.channel)) return
    if (message.data !== null) {
      const before = this.#document
      let received
      try {
        received = this.#sessions.receive(this.#document, from, message.data)
      } catch (error) {
        // A corrupt or hostile sync message changes nothing: drop it and start the session afresh.
        this.#sessions.restart(from)
        this.#drop(from, 'sync', `undecodable sync data (${(error as Error).message})`)
        return
      }
      this.#document = received.document
      const changed = received.touchedPaths.length > 0
      if (changed) {
        this.#documentChanged = true
        this.#noteTouched(received.touchedPaths)
        if (this.#role === 'leader') this.#relayPending = true
      }
      void before
      const reply = this.#sessions.generate(this.#document, from)
      if (reply !== null || changed) this.#sendSync(from, reply)
    }
    if (!this.#isVoter(from)) return
    this.#lastVoterSyncMs = this.#now
    if (message.leaderHint !== null && !this.#isVoter()) this.#leaderHint = message.leaderHint
    const leader = this.#leader
    if (leader !== null && message.ack.term === this.#term) {
      leader.lastAckMs.set(from, this.#now)
      if (message.ack.leaderSeq > (leader.ackedSeq.get(from) ?? 0)) {
        leader.ackedSeq.set(from, message.ack.leaderSeq)
        this.#advanceCommit(leader)
      }
    }
    if (message.ack.originSeq > (this.#durable.get(from) ?? 0)) {
      this.#durable.set(from, message.ack.originSeq)
      this.#acknowledgeDurable()
    }
    if (leader !== null && !leader.ready) this.#checkBarrier()
  }

  #noteTouched(paths: readonly (readonly (string | number)[])[]): void {
    for (const path of paths) {
      const root = path[0]
      if (root === 'jobs') {
        const jobId = path[2]
        if (typeof jobId === 'string') this.#touchedJobs.add(jobId as JobId)
      } else if (root === 'commits') {
        this.#recheckAll = true
      } else if (root === 'committee' || root === 'nodes') {
        this.#servedCache = null
      }
    }
  }

  #learnCommitted(term: number, seq: number): boolean {
    if ((this.#knownCommitted.get(term) ?? 0) >= seq) return false
    if (!this.#knownCommitted.has(term) && this.#knownCommitted.size >= this.#config.maxPeersTracked) return false
    this.#knownCommitted.set(term, seq)
    return true
  }

  #isCommittedHere(assignment: { term: number; seq: number }): boolean {
    return isCommitted(this.#document, assignment) || (this.#knownCommitted.get(assignment.term) ?? 0) >= assignment.seq
  }

  /** Tell each runner of newly committed assignments, and push it the document that holds them. */
  #award(leader: LeaderState): void {
    const byNode = new Map<NodeId, { jobId: JobId; seq: number }[]>()
    for (const [seq, assignments] of leader.unawarded) {
      if (seq > leader.committedSeq) continue
      leader.unawarded.delete(seq)
      for (const { jobId, nodeId } of assignments) byNode.set(nodeId, [...(byNode.get(nodeId) ?? []), { jobId, seq }])
    }
    this.#learnCommitted(this.#term, leader.committedSeq)
    for (const [nodeId, jobs] of byNode) {
      if (nodeId === this.id) {
        this.#recheckAll = true
        continue
      }
      this.#send(nodeId, { kind: 'award', term: this.#term, jobs })
      this.#dirtyPartners.add(nodeId)
    }
  }

  #advanceCommit(leader: LeaderState): void {
    leader.ackedSeq.set(this.id, leader.seq)
    let committed = Infinity
    for (const committee of this.#committees()) committed = Math.min(committed, majorityValue(leader.ackedSeq, committee, this.#config.broken))
    if (committed <= leader.committedSeq) return
    for (let seq = leader.committedSeq + 1; seq <= committed; seq++) this.#event({ kind: 'committed', term: this.#term, seq })
    leader.committedSeq = committed
    this.#award(leader)
    if (leader.joint !== null && committed >= leader.joint.seq) {
      leader.joint = null
      this.#servedCache = null
      // A leader voted out by the change it just committed hands over.
      if (!this.#isVoter()) this.#stepDown('left the committee')
    }
  }

  /** Voters this non-voter reports to, and the non-voters a voter serves downstream (by hash). */
  #servedNonVoters(): NodeId[] {
    const voters = committeeVoters(this.#document)
    const key = `${this.#document.committee.epoch}:${voters.join(',')}`
    if (this.#servedCache !== null && this.#servedCache.key === key) return this.#servedCache.served
    const index = voters.indexOf(this.id)
    const served: NodeId[] = []
    if (index >= 0) {
      forEachNode(this.#document, (nodeId) => {
        if (voters.includes(nodeId)) return
        if (parseInt(shardOf(nodeId + '/home'), 16) % voters.length === index) served.push(nodeId)
      })
    }
    this.#servedCache = { key, served }
    return served
  }

  // ---- Submissions: acknowledged once durable on a majority of voters

  #onSubmit(requestId: string, job: JobSubmission): void {
    const refuse = (reason: string): void => this.#event({ kind: 'submission-refused', requestId, reason })
    if (this.#pendingSubmissions.length >= this.#config.maxPendingSubmissions) return refuse(`this node holds ${this.#config.maxPendingSubmissions} unacknowledged submissions already`)
    if (!(job.demand.cpuMillis > 0) || !(job.demand.memoryMiB > 0)) return refuse('resources must ask for a positive CPU and memory')
    if (!(job.durationMs >= 0)) return refuse('duration must not be negative')
    if (jobRecord(this.#document, job.id) !== undefined) return refuse(`job ${job.id} exists already`)
    const originSeq = ++this.#originSeq
    this.#change(`submit ${job.id}`, (draft) => writeJob(draft, job, this.id, originSeq, this.#now))
    this.#touchedJobs.add(job.id)
    this.#pendingSubmissions.push({ requestId, jobId: job.id, originSeq })
    this.#markVotersDirty()
    this.#nextSubmitRetryMs = this.#now + this.#config.submitRetryMs
    this.#acknowledgeDurable()
  }

  #acknowledgeDurable(): void {
    if (this.#pendingSubmissions.length === 0) return
    const voters = committeeVoters(this.#document)
    const durable = new Map(this.#durable)
    if (this.#isVoter()) durable.set(this.id, this.#originSeq)
    const safeSeq = majorityValue(durable, voters)
    while (this.#pendingSubmissions.length > 0 && (this.#pendingSubmissions[0]?.originSeq ?? Infinity) <= safeSeq) {
      const submission = this.#pendingSubmissions.shift()!
      this.#event({ kind: 'submission-durable', jobId: submission.jobId, requestId: submission.requestId })
    }
    if (this.#pendingSubmissions.length === 0) this.#nextSubmitRetryMs = Infinity
  }

  #retrySubmissions(): void {
    this.#nextSubmitRetryMs = this.#pendingSubmissions.length > 0 ? this.#now + this.#config.submitRetryMs : Infinity
    const needed = this.#pendingSubmissions.at(-1)?.originSeq ?? 0
    for (const voter of committeeVoters(this.#document)) {
      if (voter === this.id || (this.#durable.get(voter) ?? 0) >= needed) continue
      this.#sessions.restart(voter)
      this.#dirtyPartners.add(voter)
    }
  }

  // ---- Capacity gossip (soft state, never in the document)

  #freeResources(): Resources {
    let cpuMillis = this.#attributes.capacity.cpuMillis
    let memoryMiB = this.#attributes.capacity.memoryMiB
    for (const run of this.#running.values()) {
      cpuMillis -= run.demand.cpuMillis
      memoryMiB -= run.demand.memoryMiB
    }
    return { cpuMillis, memoryMiB }
  }

  #publishCapacity(): void {
    // Sequence numbers follow this node's clock, so they keep rising across restarts (a restarted
    // node's gossip must not look stale to peers that saw its earlier life).
    this.#capacitySeq = Math.max(this.#capacitySeq + 1, Math.floor(this.#now))
    this.#emit({ kind: 'publish-capacity', gossip: { nodeId: this.id, seq: this.#capacitySeq, free: this.#freeResources(), running: this.#running.size } })
  }

  #onCapacity(gossip: CapacityGossip): void {
    const known = this.#capacityTable.get(gossip.nodeId)
    if (known !== undefined && known.seq >= gossip.seq) return // stale or replayed
    if (known === undefined && this.#capacityTable.size >= this.#config.maxPeersTracked) return
    this.#capacityTable.set(gossip.nodeId, { seq: gossip.seq, lastSeenMs: this.#now, free: gossip.free })
  }

  #isAlive(nodeId: NodeId, leader: LeaderState): boolean {
    if (nodeId === this.id) return true
    const seen = this.#capacityTable.get(nodeId)
    const lastSeen = Math.max(seen?.lastSeenMs ?? -Infinity, leader.startedMs)
    return this.#now - lastSeen < this.#config.nodeTimeoutMs
  }

  // ---- Placement rounds (one document change per round)

  #placementRound(leader: LeaderState): void {
    const used = new Map<NodeId, Resources>()
    const pending: (PendingJob & { submittedAtMs: number })[] = []
    const expired: JobId[] = []
    forEachJob(this.#document, (jobId, job) => {
      if (isJobDone(job)) {
        const seen = leader.doneSeenMs.get(jobId)
        if (seen === undefined) leader.doneSeenMs.set(jobId, this.#now)
        else if (this.#now - seen >= this.#config.archiveAfterMs && expired.length < this.#config.maxJobsPerRound) expired.push(jobId)
        return
      }
      let current = effectiveAssignment(job)
      // An earlier term's assignment that is neither committed nor ratified by this leader arrived
      // after its barrier: its leader never got a majority, so the job is placed again in this term.
      if (current !== null && current.term < this.#term) {
        const covered = Math.max(committedSeqOf(this.#document, current.term), leader.ratify?.get(String(current.term)) ?? 0)
        if (current.seq > covered) current = null
      }
      if (current !== null && this.#isAlive(current.node, leader)) {
        const total = used.get(current.node) ?? { cpuMillis: 0, memoryMiB: 0 }
        total.cpuMillis += job.cpuMillis
        total.memoryMiB += job.memoryMiB
        used.set(current.node, total)
        return
      }
      if (current === null && Object.keys(job.unplaceable).length > 0) return
      pending.push({ jobId, demand: demandOf(job), submittedAtMs: job.submittedAtMs })
    })
    pending.sort((a, b) => a.submittedAtMs - b.submittedAtMs || (a.jobId < b.jobId ? -1 : 1))
    const batch = pending.slice(0, this.#config.maxJobsPerRound)
    const candidates: PlacementCandidate[] = []
    forEachNode(this.#document, (nodeId, node) => {
      candidates.push({ id: nodeId, capacity: { cpuMillis: node.cpuMillis, memoryMiB: node.memoryMiB }, used: used.get(nodeId) ?? { cpuMillis: 0, memoryMiB: 0 }, alive: this.#isAlive(nodeId, leader) })
    })
    const result = batch.length > 0 ? placeSpread(batch, candidates) : { assignments: [], unplaceable: [], waiting: 0 }
    const firstDecision = leader.seq === leaderSeqOf(this.#document, this.#term) && leader.ratify === null
    const decide = result.assignments.length > 0 || result.unplaceable.length > 0 || firstDecision
    const ratifyNow = leader.ratify !== null && !leader.ratified && leader.committedSeq >= 1
    const markCommit = leader.committedSeq > leader.markerSeq && (decide || this.#now >= leader.nextMarkerMs)
    if (!decide && !markCommit && !ratifyNow && expired.length === 0) return
    if (firstDecision) {
      // Everything earlier leaders decided that this leader holds is committed with its first decision.
      leader.ratify = new Map()
      for (const [term, seq] of Object.entries(this.#document.leaderLog)) if (Number(term) < this.#term) leader.ratify.set(term, seq)
    }
    const seq = decide ? leader.seq + 1 : leader.seq
    const term = this.#term
    this.#change(decide ? `round ${term}.${seq}` : `commit ${term}.${leader.committedSeq}`, (draft) => {
      if (decide) {
        writeLeaderSeq(draft, term, seq)
        for (const { jobId, nodeId } of result.assignments) writeAssignment(draft, jobId, term, nodeId, seq)
        for (const { jobId, reason } of result.unplaceable) writeUnplaceable(draft, jobId, term, reason)
      }
      if (markCommit) writeCommit(draft, term, leader.committedSeq)
      if (ratifyNow && leader.ratify !== null) for (const [earlierTerm, earlierSeq] of leader.ratify) writeCommit(draft, Number(earlierTerm), earlierSeq)
      for (const jobId of expired) deleteJob(draft, jobId)
    })
    for (const jobId of expired) leader.doneSeenMs.delete(jobId)
    if (markCommit) {
      leader.markerSeq = leader.committedSeq
      leader.nextMarkerMs = this.#now + this.#config.commitMarkerIntervalMs
    }
    if (ratifyNow) {
      leader.ratified = true
      this.#recheckAll = true
    }
    if (markCommit) this.#recheckAll = true
    if (expired.length > 0 && !decide && !markCommit) {
      this.#markVotersDirty()
      return
    }
    for (const { jobId } of result.assignments) this.#touchedJobs.add(jobId)
    if (decide) {
      leader.seq = seq
      if (result.assignments.length > 0) leader.unawarded.set(seq, result.assignments)
      this.#event({ kind: 'decision', term, seq, assigned: result.assignments.length, unplaceable: result.unplaceable.length })
      this.#advanceCommit(leader)
    }
    this.#markVotersDirty()
  }

  // ---- Runner: start committed assignments to this node, stop fenced copies

  #reconcileRunner(): void {
    const document = this.#document
    const check = this.#recheckAll ? null : this.#touchedJobs
    if (check === null) {
      this.#mine.clear()
      forEachJob(document, (jobId, job) => {
        const current = effectiveAssignment(job)
        if (current !== null && current.node === this.id && !isJobDone(job)) this.#mine.set(jobId, current)
      })
    } else {
      for (const jobId of check) {
        const job = jobRecord(document, jobId)
        const current = job === undefined ? null : effectiveAssignment(job)
        if (job !== undefined && current !== null && current.node === this.id && !isJobDone(job)) this.#mine.set(jobId, current)
        else this.#mine.delete(jobId)
      }
    }
    this.#archiveDone(check)
    this.#recheckAll = false
    this.#touchedJobs.clear()
    // Fencing: a committed assignment elsewhere with a higher stamp stops this copy.
    for (const [jobId, run] of this.#running) {
      const job = jobRecord(document, jobId)
      if (job === undefined || isJobDone(job)) {
        // Another copy finished it (and the leader may have archived it already): this copy is surplus.
        this.#running.delete(jobId)
        this.#emit({ kind: 'stop-job', jobId, reason: 'the job finished on another node' })
        continue
      }
      const current = effectiveAssignment(job)
      if (current === null || current.node === this.id || !this.#isCommittedHere(current)) continue
      this.#running.delete(jobId)
      this.#emit({ kind: 'stop-job', jobId, reason: `fenced: assignment ${current.term}.${current.seq} moved it to ${current.node}` })
      this.#change(`stop ${jobId}`, (draft) => writeRun(draft, jobId, this.id, { state: 'stopped', term: run.term, seq: run.seq, exitCode: -1, atMs: this.#now }))
      this.#markReportDirty()
    }
    for (const [jobId, assignment] of this.#mine) {
      if (this.#running.has(jobId) || !this.#isCommittedHere(assignment)) continue
      const job = jobRecord(document, jobId)
      if (job === undefined) continue
      const demand = demandOf(job)
      const free = this.#freeResources()
      if (demand.cpuMillis > free.cpuMillis || demand.memoryMiB > free.memoryMiB) continue // wait for room
      this.#running.set(jobId, { term: assignment.term, seq: assignment.seq, demand })
      // Only the outcome goes into the document; that it runs is soft state (capacity gossip).
      this.#emit({ kind: 'start-job', jobId, demand, durationMs: job.durationMs, term: asTerm(assignment.term), seq: assignment.seq })
    }
  }

  /** Every node archives the jobs it sees finish; the leader later drops them from the document. */
  #archiveDone(check: ReadonlySet<JobId> | null): void {
    const visit = (jobId: JobId, job: JobRecord): void => {
      if (this.#archived.has(jobId)) return
      const outcome = finalRun(job)
      if (outcome === null) return
      if (this.#archived.size >= this.#config.maxArchiveRemembered) this.#archived.delete(this.#archived.keys().next().value!)
      this.#archived.add(jobId)
      if (this.#role === 'leader') this.#leader?.doneSeenMs.set(jobId, this.#now)
      this.#emit({ kind: 'archive-job', job: { id: jobId, name: readText(job.name), state: outcome.state, node: outcome.node, exitCode: outcome.run.exitCode, submittedAtMs: job.submittedAtMs, finishedAtMs: outcome.run.atMs } })
    }
    if (check === null) forEachJob(this.#document, visit)
    else for (const jobId of check) {
      const job = jobRecord(this.#document, jobId)
      if (job !== undefined) visit(jobId, job)
    }
  }

  #onJobExited(jobId: JobId, exitCode: number): void {
    const run = this.#running.get(jobId)
    if (run === undefined) return
    this.#running.delete(jobId)
    this.#mine.delete(jobId)
    const state = exitCode === 0 ? 'finished' : 'failed'
    if (jobRecord(this.#document, jobId) !== undefined) {
      this.#change(`${state} ${jobId}`, (draft) => writeRun(draft, jobId, this.id, { state, term: run.term, seq: run.seq, exitCode, atMs: this.#now }))
      this.#markReportDirty()
    }
    this.#recheckAll = true // room freed: a waiting assignment may start
  }
}
