// The ready leader's placement: each round closes a due auction (or opens one for the replicas
// waiting) and writes what it decided as one document change; once the voters' acks show a majority
// of every committee holds a decision, it commits and its assignments are awarded to their runners.
// The auction is leader-auction.ts, the round's plan leader-round.ts; Peer owns the LeaderState and
// the timers.
import type { Bid } from '../placement/index.ts'
import { expiredRequests, isDraining, isJobDone, jobRecord, type ClusterDocument, type Document } from './cluster-document.ts'
import type { CapacityTable } from './capacity-table.ts'
import type { LeaderState } from './leader-state.ts'
import { firstDecisionRatify, isIdle, noPlacement, planRound, ratifiedAssignments, surveyJobs, writeRound, type Placement } from './leader-round.ts'
import type { PlacementViews } from './placement-views.ts'
import { majorityValue } from './quorum.ts'
import { scopeRound } from './retries.ts'
import type { Runner } from './runner.ts'
import { asTerm, type AuctionSummary, type BidMessage, type CallForBidsMessage, type DocumentAck, type JobId, type NodeId, type PeerConfig, type PeerEvent, type PeerMessage, type StandingBidMessage, type Term } from './types.ts'

/** How often the leader looks for client request keys to forget, and how long past its expiry a key is kept. */
const requestForgetIntervalMs = 5_000
const requestForgetSlackMs = 60_000

export interface LeaderPlacementComponents {
  nodeId: NodeId
  config: PeerConfig
  nowMs: () => number
  term: () => Term
  document: () => Document
  /** Liveness from capacity gossip. */
  capacity: CapacityTable
  views: PlacementViews
  runner: Pick<Runner, 'touch' | 'recheckAll'>
  /** The committees whose majorities commit (two during a committee change). */
  committees: () => NodeId[][]
  isVoter: () => boolean
  /** This node's own bid, when the leader invites itself. */
  bidFor: (call: CallForBidsMessage['call']) => Bid
  change: (message: string, mutate: (draft: ClusterDocument) => void) => void
  send: (to: NodeId, message: PeerMessage) => void
  event: (event: PeerEvent) => void
  drop: (from: NodeId, kind: string, reason: string) => void
  /** Sync the round's change to the voters. */
  markVotersDirty: () => void
  syncWith: (peer: NodeId) => void
  learnCommitted: (term: number, seq: number) => boolean
  /** The committee changed: who serves which non-voter is computed afresh. */
  membershipChanged: () => void
  stepDown: (reason: string) => void
}

export class LeaderPlacement {
  readonly #components: LeaderPlacementComponents

  constructor(components: LeaderPlacementComponents) {
    this.#components = components
  }

  /** A bid for the open round: true when the auction took it. */
  onBid(leader: LeaderState, from: NodeId, message: BidMessage, kind: 'bid' | 'standing-bid' = 'bid'): boolean {
    const { nowMs, term, drop } = this.#components
    const now = nowMs()
    if (message.term !== term()) return false
    const refusal = leader.auction.receive(from, message.bid, now)
    if (refusal !== null) {
      drop(from, kind, refusal)
      return false
    }
    // The last answer closes the round at once (the next tick runs the placement round).
    if (leader.auction.shouldClose(now)) leader.nextRoundMs = now
    return true
  }

  /** A node's standing bid (or its withdrawal) for this term; the next rounds answer its calls from it. */
  onStandingBid(leader: LeaderState, from: NodeId, message: StandingBidMessage): void {
    if (message.term !== this.#components.term()) return
    const refusal = leader.standingBids.receive(from, message.standing, this.#components.nowMs())
    if (refusal !== null) this.#components.drop(from, 'standing-bid', refusal)
  }

  /**
   * A new job reached the leader: with no auction round open, the next one starts now instead of at
   * the round interval (which then only bounds how often rounds run under load: while a round is
   * open, new jobs wait and are batched into the next).
   */
  placeSoon(leader: LeaderState | null): void {
    if (leader === null || !leader.ready || leader.auction.isOpen) return
    leader.nextRoundMs = Math.min(leader.nextRoundMs, this.#components.nowMs())
  }

  /** A node may take new placements while it holds a lease (this node renews its own with its heartbeats). */
  #mayTakeWork(leader: LeaderState, nodeId: NodeId): boolean {
    return nodeId === this.#components.nodeId || leader.grants.mayTakeWork(nodeId, this.#components.nowMs())
  }

  /** A node's jobs stay placed until its lease has surely lapsed (node-lease.ts). */
  #isAlive(leader: LeaderState, nodeId: NodeId): boolean {
    return nodeId === this.#components.nodeId || !leader.grants.isLost(nodeId, this.#components.nowMs())
  }

  /** Closes a due auction round, or opens one for the replicas waiting, and writes what it decided. */
  round(leader: LeaderState): void {
    const { nodeId, config, runner } = this.#components
    const now = this.#components.nowMs()
    const term = this.#components.term()
    const document = this.#components.document()
    // Before its first decision, a leader already counts what that decision will ratify as committed.
    const firstRatify = firstDecisionRatify(document, leader, term)
    const survey = surveyJobs(document, leader, term, now, config, (node) => this.#isAlive(leader, node), leader.ratify ?? firstRatify)
    for (const jobId of survey.doneSeen) leader.doneSeenMs.set(jobId, now)
    let placement: Placement = noPlacement
    let summary: AuctionSummary | null = null
    if (leader.auction.shouldClose(now)) {
      const closed = leader.auction.close(now)
      summary = closed.summary
      for (const jobId of closed.waiting) leader.retryAtMs.set(jobId, now + config.pendingRetryMs)
      placement = this.#stillWaiting(closed.placement)
    } else if (!leader.auction.isOpen && survey.pending.length > 0) {
      // Migrations and retries go in rounds of their own (consensus/retries.ts); draining nodes take nothing new.
      const views = this.#components.views
      const { pending, offers } = scopeRound(survey.pending, (jobId) => leader.retryAtMs.has(jobId), (allows) =>
        views.offers(document, survey.used, (node) => !isDraining(document, node) && allows(node) && this.#mayTakeWork(leader, node)))
      const { opened, unreadable } = leader.auction.open(pending, offers, (text) => views.specOf(text), now, term)
      if (unreadable.length > 0) placement = { assignments: [], unplaceable: unreadable }
      if (opened !== null) {
        leader.nextRoundMs = Math.min(leader.nextRoundMs, opened.call.closesAtMs)
        // Nodes with a standing bid are answered for at once; the others are called.
        // A standing bid the auction refuses (it claims more than the node registered) is forgotten.
        for (const node of opened.invite) {
          if (node === nodeId) {
            this.onBid(leader, node, { kind: 'bid', term, bid: this.#components.bidFor(opened.call) })
            continue
          }
          const standing = leader.standingBids.answer(node, opened.call, now)
          if (standing !== null && this.onBid(leader, node, { kind: 'bid', term, bid: standing }, 'standing-bid')) continue
          if (standing !== null) leader.standingBids.receive(node, null, now)
          this.#components.send(node, { kind: 'call-for-bids', term, call: opened.call })
        }
        // Nobody left to hear from: decide now.
        if (leader.auction.shouldClose(now) && placement === noPlacement) {
          const closed = leader.auction.close(now)
          summary = closed.summary
          for (const jobId of closed.waiting) leader.retryAtMs.set(jobId, now + config.pendingRetryMs)
          placement = this.#stillWaiting(closed.placement)
          // The answers given here (its own, standing bids) asked for a round now: this was it. The next
          // waits the round interval, or a leader whose decisions do not take (a stale leader's lower
          // stamps) would run rounds back to back without end.
          leader.nextRoundMs = now + config.roundIntervalMs
        }
      }
    }
    for (const { jobId } of placement.assignments) leader.retryAtMs.delete(jobId)
    const committees = this.#components.committees()
    // Now and then, the request keys whose replay window has surely closed (a client's clock may be off by the window too).
    let forget: string[] = []
    if (now >= leader.nextForgetMs) {
      forget = expiredRequests(document, now - requestForgetSlackMs, config.maxJobsPerRound)
      leader.nextForgetMs = now + requestForgetIntervalMs
    }
    const plan = planRound(leader, now, placement, survey.expired, firstRatify, committees[committees.length - 1]!, forget)
    if (isIdle(plan)) return
    if (plan.ratify !== null) leader.ratify = plan.ratify
    // The runners of what the ratification commits learn it now (read before the change marks it committed).
    const ratified = plan.ratifyNow && leader.ratify !== null ? ratifiedAssignments(document, leader.ratify) : null
    this.#components.change(plan.decide ? `round ${term}.${plan.seq}` : `commit ${term}.${leader.committedSeq}`, (draft) => writeRound(draft, plan, term, leader))
    if (ratified !== null) {
      leader.ratified = true
      // The first decision committed, and with it the earlier terms' decisions it ratified.
      for (const [earlierTerm, earlierSeq] of leader.ratify!) {
        this.#components.learnCommitted(Number(earlierTerm), earlierSeq)
        this.#components.event({ kind: 'committed', term: asTerm(Number(earlierTerm)), seq: earlierSeq, ratified: true })
      }
      runner.recheckAll()
      this.#awardRatified(ratified)
    }
    for (const jobId of plan.expired) {
      leader.doneSeenMs.delete(jobId)
      leader.retryAtMs.delete(jobId)
    }
    if (plan.markCommit) {
      leader.markerSeq = leader.committedSeq
      leader.nextMarkerMs = now + config.commitMarkerIntervalMs
    }
    if (plan.markCommit) runner.recheckAll()
    if ((plan.expired.length > 0 || plan.forget.length > 0) && !plan.decide && !plan.markCommit) {
      this.#components.markVotersDirty()
      return
    }
    for (const { jobId } of plan.assignments) runner.touch(jobId)
    if (plan.decide) {
      leader.seq = plan.seq
      if (plan.assignments.length > 0) leader.unawarded.set(plan.seq, plan.assignments)
      this.#components.event({ kind: 'decision', term, seq: plan.seq, assigned: plan.assignments.length, unplaceable: plan.unplaceable.length, auction: summary })
      this.#advanceCommit(leader)
    }
    this.#components.markVotersDirty()
  }

  /** A round's decisions for replicas still in the document and not finished (they may have ended while bids came in). */
  #stillWaiting(placement: Placement): Placement {
    const document = this.#components.document()
    const active = (jobId: JobId): boolean => {
      const job = jobRecord(document, jobId)
      return job !== undefined && !isJobDone(job)
    }
    return { assignments: placement.assignments.filter(({ jobId }) => active(jobId)), unplaceable: placement.unplaceable.filter(({ jobId }) => active(jobId)) }
  }

  /** A voter's acknowledgement, sent with its sync messages: decisions of this term its persisted document holds. */
  onAck(leader: LeaderState, from: NodeId, ack: DocumentAck): void {
    if (ack.term !== this.#components.term()) return
    leader.lastAckMs.set(from, this.#components.nowMs())
    if (ack.leaderSeq > (leader.ackedSeq.get(from) ?? 0)) {
      leader.ackedSeq.set(from, ack.leaderSeq)
      this.#advanceCommit(leader)
    }
  }

  /** Commits what a majority of every committee acknowledged, then awards it. */
  #advanceCommit(leader: LeaderState): void {
    const { nodeId, config } = this.#components
    const term = this.#components.term()
    leader.ackedSeq.set(nodeId, leader.seq)
    let committed = Infinity
    for (const committee of this.#components.committees()) committed = Math.min(committed, majorityValue(leader.ackedSeq, committee, config.broken))
    if (committed <= leader.committedSeq) return
    for (let seq = leader.committedSeq + 1; seq <= committed; seq++) this.#components.event({ kind: 'committed', term, seq })
    leader.committedSeq = committed
    const committeesBefore = this.#components.committees().length
    this.#award(leader) // learns the commit: a committee proposal among these decisions is now in force
    if (this.#components.committees().length === committeesBefore) return
    this.#components.membershipChanged()
    // A leader voted out by the change it just committed hands over.
    if (!this.#components.isVoter()) this.#components.stepDown('left the committee')
  }

  /** Tells the runners of earlier terms' assignments the first decision ratified that they are committed. */
  #awardRatified(ratified: ReturnType<typeof ratifiedAssignments>): void {
    for (const [nodeId, byTerm] of ratified) {
      if (nodeId === this.#components.nodeId) continue
      for (const [term, jobs] of byTerm) this.#components.send(nodeId, { kind: 'award', term: asTerm(term), jobs })
      this.#components.syncWith(nodeId)
    }
  }

  /** Tell each runner of newly committed assignments, and push it the document that holds them. */
  #award(leader: LeaderState): void {
    const { nodeId: self, runner } = this.#components
    const term = this.#components.term()
    const byNode = new Map<NodeId, { jobId: JobId; seq: number }[]>()
    for (const [seq, assignments] of leader.unawarded) {
      if (seq > leader.committedSeq) continue
      leader.unawarded.delete(seq)
      for (const { jobId, nodeId } of assignments) byNode.set(nodeId, [...(byNode.get(nodeId) ?? []), { jobId, seq }])
    }
    this.#components.learnCommitted(term, leader.committedSeq)
    for (const [nodeId, jobs] of byNode) {
      if (nodeId === self) {
        runner.recheckAll()
        continue
      }
      this.#components.send(nodeId, { kind: 'award', term, jobs })
      this.#components.syncWith(nodeId)
    }
  }
}
