// Raft's election for the committee: terms and votes, with pre-vote, leader stickiness and
// randomized timeouts. It holds the hard state (term, vote, and the election timeout it adopted:
// election-timing.ts) and the role; Peer builds the leader's state when this wins, and drops it when
// this steps down or follows another leader.
import type { NodeId, PeerConfig, PeerEvent, PeerMessage, RandomSource, Term } from './types.ts'
import { asTerm } from './types.ts'
import { ElectionTiming } from './election-timing.ts'

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

type VoteMessage = Extract<PeerMessage, { kind: 'pre-vote' | 'pre-vote-response' | 'vote' | 'vote-response' }>

export interface ElectionInit {
  nodeId: NodeId
  config: Pick<PeerConfig, 'electionTimeoutMs' | 'preVote' | 'nodeLeaseMs' | 'leaseRenewMs'>
  random: RandomSource
  term: number
  votedFor: NodeId | null
  /** The election timeout this voter adopted, as persisted (absent: an adapter that does not keep it). */
  electionTimeoutMs?: number | undefined
}

export interface ElectionComponents {
  nowMs: () => number
  /** The voters this node asks for votes (the committee in force and a pending one). */
  voters: () => NodeId[]
  /** The stamp of the committee in force as this node knows it (committee.ts). */
  committeeStamp: () => string
  isVoter: () => boolean
  quorum: (agreeing: ReadonlySet<NodeId>) => boolean
  /** The heads of this node's document, sent with a granted vote. */
  heads: () => string[]
  send: (to: NodeId, message: PeerMessage) => void
  event: (event: PeerEvent) => void
  /** This node won: its role is leader; `voteHeads` are the heads its voters sent with their votes. */
  elected: (voteHeads: ReadonlyMap<NodeId, string[]>) => void
  /** This node no longer leads (or campaigns): drop any leader state. */
  dropLeadership: () => void
}

export class Election {
  readonly #nodeId: NodeId
  readonly #config: ElectionInit['config']
  readonly #random: RandomSource
  readonly #components: ElectionComponents
  readonly #timing: ElectionTiming
  #role: Role = 'follower'
  #term: Term
  #votedFor: NodeId | null
  #leaderId: NodeId | null = null
  #hardStateChanged = false
  #lastHeardLeaderMs: number
  #noVoteBeforeMs: number
  #electionDeadlineMs: number
  #votes = new Set<NodeId>()
  /** Heads sent with granted votes: the new leader's barrier starts from them (one round trip saved). */
  readonly #voteHeads = new Map<NodeId, string[]>()

  constructor(init: ElectionInit, components: ElectionComponents) {
    this.#nodeId = init.nodeId
    this.#config = init.config
    this.#random = init.random
    this.#components = components
    this.#term = asTerm(init.term)
    this.#votedFor = init.votedFor
    this.#timing = new ElectionTiming(init.config.electionTimeoutMs, init.electionTimeoutMs, init.term, init.config)
    const now = components.nowMs()
    // A (re)started voter grants no vote for one election timeout, the largest it may have acknowledged:
    // a lease it acknowledged before a crash may still be running (the lease bound relies on this).
    this.#lastHeardLeaderMs = now
    this.#noVoteBeforeMs = now + this.#timing.bootNoVoteMs
    this.#electionDeadlineMs = Math.max(this.#drawElectionDeadline(), this.#noVoteBeforeMs)
  }

  get role(): Role { return this.#role }
  get term(): Term { return this.#term }
  get votedFor(): NodeId | null { return this.#votedFor }
  get leaderId(): NodeId | null { return this.#leaderId }
  get electionDeadlineMs(): number { return this.#electionDeadlineMs }
  /** Round trips and the adopted election timeout (Leadership times heartbeats and advertises it). */
  get timing(): ElectionTiming { return this.#timing }
  /** The term, vote or adopted timeout changed since the last persist. */
  get hardStateChanged(): boolean { return this.#hardStateChanged || this.#timing.persistDue }
  markPersisted(): void {
    this.#hardStateChanged = false
    this.#timing.markPersisted()
  }

  /**
   * The election timeout T this node waits by: a follower the one its leader advertised; a node
   * without a leader its own estimate, but never less than what it adopted (the vote bound).
   */
  get timeoutMs(): number {
    if (this.#leaderId !== null && this.#role === 'follower') return this.#timing.adoptedMs
    const estimate = this.#timing.estimateMs(this.#nodeId, this.#components.voters(), this.#components.quorum)
    return Math.max(this.#timing.adoptedMs, estimate ?? this.#timing.lowerMs)
  }

  #drawElectionDeadline(): number {
    const timeout = this.timeoutMs
    return this.#components.nowMs() + timeout + Math.floor(this.#random.next() * timeout)
  }

  #heardRecently(): boolean {
    const now = this.#components.nowMs()
    if (now < this.#noVoteBeforeMs) return true
    if (this.#role === 'leader') return true
    return this.#leaderId !== null && now - this.#lastHeardLeaderMs < this.#timing.adoptedMs
  }

  campaign(): void {
    const now = this.#components.nowMs()
    // Not even for itself before the no-vote period after a boot ends.
    if (now < this.#noVoteBeforeMs) {
      this.#electionDeadlineMs = Math.max(this.#drawElectionDeadline(), this.#noVoteBeforeMs)
      return
    }
    if (this.#config.preVote) {
      this.#role = 'pre-candidate'
      this.#votes = new Set([this.#nodeId])
      this.#leaderId = null
      this.#electionDeadlineMs = this.#drawElectionDeadline()
      if (this.#components.quorum(this.#votes)) return this.#startElection()
      const term = asTerm(this.#term + 1)
      const committee = this.#components.committeeStamp()
      for (const voter of this.#components.voters()) {
        if (voter === this.#nodeId) continue
        this.#timing.roundTrips.sent(voter, `pre-vote ${term}`, now)
        this.#components.send(voter, { kind: 'pre-vote', term, committee })
      }
    } else {
      this.#startElection()
    }
  }

  #startElection(): void {
    this.#term = asTerm(this.#term + 1)
    this.#votedFor = this.#nodeId
    this.#hardStateChanged = true
    this.#role = 'candidate'
    this.#leaderId = null
    this.#votes = new Set([this.#nodeId])
    this.#voteHeads.clear()
    this.#electionDeadlineMs = this.#drawElectionDeadline()
    if (this.#components.quorum(this.#votes)) return this.#becomeLeader()
    const committee = this.#components.committeeStamp()
    const now = this.#components.nowMs()
    for (const voter of this.#components.voters()) {
      if (voter === this.#nodeId) continue
      this.#timing.roundTrips.sent(voter, `vote ${this.#term}`, now)
      this.#components.send(voter, { kind: 'vote', term: this.#term, committee })
    }
  }

  adoptTerm(term: Term): void {
    if (term <= this.#term) return
    const wasLeader = this.#role === 'leader'
    this.#term = term
    this.#votedFor = null
    this.#hardStateChanged = true
    this.#role = 'follower'
    this.#leaderId = null
    this.#components.dropLeadership()
    if (wasLeader) this.#components.event({ kind: 'stepped-down', term, reason: `saw higher term ${term}` })
  }

  stepDown(reason: string): void {
    this.#components.event({ kind: 'stepped-down', term: this.#term, reason })
    this.#role = 'follower'
    this.#components.dropLeadership()
    this.#leaderId = null
    this.#electionDeadlineMs = this.#drawElectionDeadline()
  }

  #becomeLeader(): void {
    this.#role = 'leader'
    this.#leaderId = this.#nodeId
    this.#components.elected(this.#voteHeads)
  }

  /** A message from a live leader of `term` (heartbeat or barrier). */
  followLeader(leaderId: NodeId, term: Term): void {
    this.adoptTerm(term)
    if (this.#role !== 'follower') {
      this.#role = 'follower'
      this.#components.dropLeadership()
    }
    this.#leaderId = leaderId
    this.#lastHeardLeaderMs = this.#components.nowMs()
    this.#electionDeadlineMs = this.#drawElectionDeadline()
  }

  onMessage(from: NodeId, message: VoteMessage): void {
    const send = this.#components.send
    switch (message.kind) {
      case 'pre-vote': {
        if (!this.#components.isVoter()) return
        const granted = message.term > this.#term && !this.#heardRecently() && !stampBehind(message.committee, this.#components.committeeStamp())
        send(from, { kind: 'pre-vote-response', term: granted ? message.term : this.#term, granted })
        return
      }
      case 'pre-vote-response': {
        this.#timing.roundTrips.answered(from, `pre-vote ${message.term}`, this.#components.nowMs())
        if (this.#role !== 'pre-candidate') return
        if (message.granted && message.term === this.#term + 1) {
          this.#votes.add(from)
          if (this.#components.quorum(this.#votes)) this.#startElection()
        } else if (!message.granted && message.term > this.#term) {
          this.adoptTerm(message.term)
        }
        return
      }
      case 'vote': {
        if (!this.#components.isVoter()) return
        if (message.term < this.#term) return send(from, { kind: 'vote-response', term: this.#term, granted: false })
        // Leader stickiness: a voter that hears a live leader ignores the disruption (and keeps its term).
        if (message.term > this.#term && this.#heardRecently()) return send(from, { kind: 'vote-response', term: message.term, granted: false })
        this.adoptTerm(message.term)
        const granted = (this.#votedFor === null || this.#votedFor === from) && !stampBehind(message.committee, this.#components.committeeStamp())
        if (granted) {
          this.#votedFor = from
          this.#hardStateChanged = true
          this.#electionDeadlineMs = this.#drawElectionDeadline()
        }
        send(from, granted ? { kind: 'vote-response', term: this.#term, granted, heads: this.#components.heads() } : { kind: 'vote-response', term: this.#term, granted })
        return
      }
      case 'vote-response': {
        this.#timing.roundTrips.answered(from, `vote ${message.term}`, this.#components.nowMs())
        if (message.term > this.#term) {
          // A refusal stamped with a higher term only counts when it is the responder's real term.
          if (!message.granted && this.#role !== 'candidate') this.adoptTerm(message.term)
          return
        }
        if (this.#role !== 'candidate' || message.term !== this.#term || !message.granted) return
        this.#votes.add(from)
        if (message.heads !== undefined) this.#voteHeads.set(from, message.heads)
        if (this.#components.quorum(this.#votes)) this.#becomeLeader()
        return
      }
    }
  }
}

/** True when committee stamp `theirs` ("term.seq") is older than `ours`. */
function stampBehind(theirs: string, ours: string): boolean {
  const [theirTerm = 0, theirSeq = 0] = theirs.split('.').map(Number)
  const [ourTerm = 0, ourSeq = 0] = ours.split('.').map(Number)
  return theirTerm < ourTerm || (theirTerm === ourTerm && theirSeq < ourSeq)
}
