// Leadership once the election is won: the new leader's barrier (it decides nothing until it holds
// the documents of a majority of voters), heartbeat rounds that extend its lease and carry the
// commit watermark and the leader's election timeout, check-quorum, the followers' answers to all of
// these, and committee changes. Election owns terms, votes and their timing (election-timing.ts);
// Peer owns the LeaderState (leader-state.ts) and routes messages here.
import * as A from '@automerge/automerge'
import { writeLeaderSeq, type ClusterDocument, type Document } from './cluster-document.ts'
import { writeCommitteeProposal } from './committee.ts'
import type { ElectionTiming } from './election-timing.ts'
import { activeVoters, creditLease, openHeartbeatRound, type LeaderState } from './leader-state.ts'
import { validateCommitteeChange } from './quorum.ts'
import type { NodeId, PeerConfig, PeerEvent, PeerMessage, Term } from './types.ts'

export type LeadershipMessage = Extract<PeerMessage, { kind: 'heartbeat' | 'heartbeat-ack' | 'barrier' | 'barrier-reply' }>

export interface LeadershipComponents {
  nodeId: NodeId
  config: PeerConfig
  nowMs: () => number
  term: () => Term
  document: () => Document
  /** Round trips and the adopted election timeout (the Election's). */
  timing: ElectionTiming
  /** Whether `agreeing` holds a majority of every committee (two during a committee change). */
  quorum: (agreeing: ReadonlySet<NodeId>) => boolean
  /** The voters of every committee. */
  allVoters: () => NodeId[]
  /** The committee in force, then the pending one while a proposal awaits its commit. */
  committees: () => NodeId[][]
  send: (to: NodeId, message: PeerMessage) => void
  event: (event: PeerEvent) => void
  syncWith: (peer: NodeId) => void
  /** A leader of `term` (not older than ours) spoke: follow it. */
  followLeader: (leaderId: NodeId, term: Term) => void
  adoptTerm: (term: Term) => void
  /** A heartbeat names the leader's commit watermark. */
  learnCommitted: (term: Term, seq: number) => void
  /** A heartbeat round sent at `sentAtMs` was acknowledged by a quorum: the leader's own node lease is renewed. */
  selfGrant: (sentAtMs: number) => void
  change: (message: string, mutate: (draft: ClusterDocument) => void) => void
  /** The committee changed: who serves which non-voter is computed afresh. */
  membershipChanged: () => void
  markVotersDirty: () => void
}

/** Heartbeat rounds between a not-ready leader's repeated barrier requests (about an election timeout). */
const barrierAskEveryRounds = 5

export class Leadership {
  readonly #components: LeadershipComponents

  constructor(components: LeadershipComponents) {
    this.#components = components
  }

  /** The election is won: ask the voters whose heads the votes did not bring, and start the heartbeats. */
  begin(leader: LeaderState, voteHeads: ReadonlyMap<NodeId, string[]>): void {
    const { nodeId, send } = this.#components
    const term = this.#components.term()
    this.#components.event({ kind: 'became-leader', term })
    for (const voter of this.#components.allVoters()) if (voter !== nodeId && !voteHeads.has(voter)) send(voter, { kind: 'barrier', term })
    this.sendHeartbeats(leader)
    this.checkBarrier(leader)
  }

  sendHeartbeats(leader: LeaderState): void {
    const { nodeId, config, send, timing } = this.#components
    const now = this.#components.nowMs()
    const electionTimeoutMs = this.#timeoutMs(leader)
    // The leader acks its own round: it holds to the T it advertises like any acker (and persists it first).
    timing.heard(electionTimeoutMs, now)
    const round = openHeartbeatRound(leader, nodeId, now, { electionTimeoutMs, heartbeatIntervalMs: config.heartbeatIntervalMs })
    this.#creditLease(leader, round)
    // A leader behind its barrier asks again, every few rounds, the voters whose heads it lacks: one
    // that was down or restarting when the barrier went out would otherwise never be asked, and a
    // joint committee may need it for a majority of the new voters.
    const askAgain = !leader.ready && round % barrierAskEveryRounds === 0
    for (const voter of this.#components.allVoters()) {
      if (voter === nodeId) continue
      send(voter, { kind: 'heartbeat', term: this.#components.term(), round, commitSeq: leader.committedSeq, electionTimeoutMs })
      if (askAgain && !leader.barrierHeads.has(voter)) send(voter, { kind: 'barrier', term: this.#components.term() })
    }
  }

  /**
   * The T this leader advertises: ten round trips to its quorum, timed on voters that answered within
   * the T it last advertised (a dead voter's old estimate does not count); until then, what it holds.
   */
  #timeoutMs(leader: LeaderState): number {
    const { nodeId, timing } = this.#components
    const last = leader.roundTimeoutMs.get(leader.round) ?? timing.adoptedMs
    return timing.estimateMs(nodeId, this.#components.allVoters(), this.#components.quorum, this.#components.nowMs() - last) ?? last
  }

  #creditLease(leader: LeaderState, round: number): void {
    if (!creditLease(leader, round, this.#components.quorum, this.#components.config) || !leader.ready) return
    this.#components.selfGrant(leader.roundSentAtMs.get(round)!)
  }

  /**
   * Check-quorum: a majority acknowledged this leader within the T it advertises last, or it is new,
   * or its lease still holds (it never steps down inside its lease: a majority heard it recently).
   */
  quorumActive(leader: LeaderState): boolean {
    const now = this.#components.nowMs()
    const timeoutMs = leader.roundTimeoutMs.get(leader.round) ?? this.#components.timing.adoptedMs
    if (now - leader.startedMs < timeoutMs || now < leader.leaseExpiryMs) return true
    return this.#components.quorum(activeVoters(leader, this.#components.nodeId, now, timeoutMs))
  }

  /** A new leader decides nothing until it holds the documents of a majority of voters. */
  checkBarrier(leader: LeaderState): void {
    if (leader.ready) return
    const document = this.#components.document()
    const merged = new Set<NodeId>([this.#components.nodeId])
    for (const [voter, heads] of leader.barrierHeads) {
      if (A.hasHeads(document, heads)) merged.add(voter)
      else this.#components.syncWith(voter)
    }
    // The planted bug 'skip-barrier' decides at once, whatever it holds.
    if (!this.#components.quorum(merged) && this.#components.config.broken !== 'skip-barrier') return
    leader.ready = true
    leader.nextRoundMs = this.#components.nowMs()
    this.#components.event({ kind: 'leader-ready', term: this.#components.term(), documentHeads: A.getHeads(document) })
  }

  /**
   * Proposes moving one voter in or out of the committee (`leader`: this node's, when it leads), as a
   * decision of this term: it counts once committed, by majorities of the old and the new committee.
   * Only after this leader's first decision committed (which finished or superseded any earlier
   * leader's proposal), and one proposal at a time.
   */
  changeCommittee(leader: LeaderState | null, change: { add?: NodeId; remove?: NodeId }): { ok: true } | { ok: false; reason: string } {
    if (leader === null || !leader.ready) return { ok: false, reason: 'only the ready leader changes the committee' }
    if (!leader.ratified) return { ok: false, reason: 'a new leader changes the committee only after its first decision is committed' }
    const committees = this.#components.committees()
    if (committees.length > 1) return { ok: false, reason: 'a committee change is already in flight' }
    const previous = committees[0]!
    const next = previous.filter((id) => id !== change.remove)
    if (change.add !== undefined && !next.includes(change.add)) next.push(change.add)
    next.sort()
    const valid = validateCommitteeChange(previous, next)
    if (!valid.ok) return valid
    const seq = leader.seq + 1
    const term = this.#components.term()
    this.#components.change(`committee ${term}.${seq}`, (draft) => {
      writeCommitteeProposal(draft, next, term, seq)
      writeLeaderSeq(draft, term, seq)
    })
    leader.seq = seq
    leader.ackedSeq.set(this.#components.nodeId, seq)
    this.#components.membershipChanged()
    this.#components.markVotersDirty()
    return valid
  }

  /** Heartbeats and barriers from a leader, and their answers to this node when it leads (`leader`). */
  onMessage(leader: LeaderState | null, from: NodeId, message: LeadershipMessage): void {
    const { send, term } = this.#components
    switch (message.kind) {
      case 'heartbeat': {
        if (message.term < term()) return send(from, { kind: 'heartbeat-ack', term: term(), round: message.round })
        // Adopt its T before following (the election deadline) and before the ack (the lease rests on it).
        this.#components.timing.heard(message.electionTimeoutMs, this.#components.nowMs())
        this.#components.followLeader(from, message.term)
        this.#components.learnCommitted(message.term, message.commitSeq)
        send(from, { kind: 'heartbeat-ack', term: term(), round: message.round })
        return
      }
      case 'heartbeat-ack': {
        if (message.term > term()) return this.#components.adoptTerm(message.term)
        if (leader === null || message.term !== term()) return
        const now = this.#components.nowMs()
        leader.lastAckMs.set(from, now)
        const ackers = leader.roundAckers.get(message.round)
        // Only a round's first ack times the round trip (a duplicate comes later and would inflate it).
        if (ackers !== undefined && !ackers.has(from)) this.#components.timing.roundTrips.sample(from, now - leader.roundSentAtMs.get(message.round)!, now)
        ackers?.add(from)
        this.#creditLease(leader, message.round)
        return
      }
      case 'barrier': {
        if (message.term < term()) return send(from, { kind: 'heartbeat-ack', term: term(), round: 0 })
        this.#components.followLeader(from, message.term)
        send(from, { kind: 'barrier-reply', term: term(), heads: A.getHeads(this.#components.document()) })
        this.#components.syncWith(from)
        return
      }
      case 'barrier-reply': {
        if (leader === null || message.term !== term() || leader.ready) return
        leader.barrierHeads.set(from, message.heads)
        leader.lastAckMs.set(from, this.#components.nowMs())
        this.checkBarrier(leader)
        return
      }
    }
  }
}
