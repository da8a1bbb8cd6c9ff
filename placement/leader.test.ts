// Proves the leader's book: rounds are batched on the interval, bids come back and awards are
// emitted; a lost node's replicas go back to pending and are re-auctioned elsewhere (a whole gang
// for tightly-coupled jobs); and nothing feasible leaves the job pending with its reason.
import { describe, expect, it } from 'vitest'
import { makeBid, trustAllBids } from './bid.ts'
import { asJobId } from './job-spec.ts'
import { PlacementLeader, type LeaderEffect } from './leader.ts'
import { asNodeId, type NodeOffer } from './node-offer.ts'
import { job, jobSpec, offer } from './testing.ts'

/** Runs one round at `nowMs`: every invited node bids at once, then the round closes. */
function runRound(leader: PlacementLeader, offers: NodeOffer[], nowMs: number): LeaderEffect[] {
  const effects = leader.tick(nowMs, offers)
  const call = effects.find((effect) => effect.kind === 'call_for_bids')
  if (call?.kind === 'call_for_bids') {
    for (const node of offers) {
      if (!call.to.includes(node.nodeId)) continue
      const bid = makeBid(node, call.call, nowMs)
      if (bid) expect(leader.receiveBid(bid, nowMs + 1)).toEqual({ ok: true })
    }
  }
  return [...effects.filter((effect) => effect.kind !== 'call_for_bids'), ...leader.tick(nowMs + 1, offers)]
}

const options = { leaderId: 'n0', roundIntervalMs: 50, maxPendingJobs: 100, auction: { verify: trustAllBids, bidWindowMs: 30 } }

describe('the placement leader', () => {
  it('batches pending jobs into a round and emits the awards', () => {
    const leader = new PlacementLeader(options)
    expect(leader.submit(job('a', jobSpec()))).toEqual({ ok: true })
    expect(leader.submit(job('a', jobSpec()))).toEqual({ ok: false, reason: 'duplicate' })
    leader.submit(job('b', jobSpec()))
    const effects = runRound(leader, [offer('n1'), offer('n2')], 0)
    const assign = effects.find((effect) => effect.kind === 'assign')
    expect(assign?.kind === 'assign' ? assign.awards.map((award) => award.jobId) : []).toEqual(['a', 'b'])
    expect(leader.pendingCount).toBe(0)
  })

  it('re-auctions the replicas of a lost node onto the nodes left', () => {
    const leader = new PlacementLeader(options)
    leader.submit(job('web', jobSpec({ replicas: 2 })))
    const fleet = [offer('n1'), offer('n2'), offer('n3', { pricePerCpuHour: 0.5 })]
    runRound(leader, fleet, 0)
    const before = leader.assignmentsOf(asJobId('web'))!
    expect([...before.values()].map((assignment) => assignment.nodeId).sort()).toEqual(['n1', 'n2'])
    expect(leader.nodeLost(asNodeId('n1'))).toEqual(['web'])
    expect(leader.isPending(asJobId('web'))).toBe(true)
    const effects = runRound(leader, fleet.filter((node) => node.nodeId !== 'n1'), 100)
    const assign = effects.find((effect) => effect.kind === 'assign')
    expect(assign?.kind === 'assign' ? assign.awards.map((award) => [award.replica, award.nodeId]) : []).toEqual([[0, 'n2']])
    expect(leader.assignmentsOf(asJobId('web'))!.size).toBe(2)
  })

  it('a lost gang member sends the whole gang back to pending', () => {
    const leader = new PlacementLeader(options)
    leader.submit(job('train', jobSpec({ replicas: 2, intent: 'tightly-coupled', resources: { cpu: 8, memory: '1Gi' } })))
    runRound(leader, [offer('g1', { placementGroup: 'pg' }), offer('g2', { placementGroup: 'pg' })], 0)
    expect(leader.assignmentsOf(asJobId('train'))!.size).toBe(2)
    leader.nodeLost(asNodeId('g1'))
    expect(leader.assignmentsOf(asJobId('train'))).toBeUndefined()
    // Only one node of the island is left: the gang stays pending with its reason.
    const effects = runRound(leader, [offer('g2', { placementGroup: 'pg' })], 100)
    expect(effects).toEqual([{ kind: 'pending', jobId: 'train', replicas: [0, 1], reason: { kind: 'gang_no_island', replicas: 2, bestIslandSlots: 1, islands: 1 } }])
    expect(leader.pendingReason(asJobId('train'))?.kind).toBe('gang_no_island')
  })

  it('a fenced replica is re-placed; awards to a node lost during the round are not kept', () => {
    const leader = new PlacementLeader(options)
    leader.submit(job('x', jobSpec()))
    const fleet = [offer('n1'), offer('n2', { pricePerCpuHour: 0.2 })]
    const opened = leader.tick(0, fleet)
    expect(opened[0]?.kind).toBe('call_for_bids')
    if (opened[0]?.kind !== 'call_for_bids') return
    for (const node of fleet) leader.receiveBid(makeBid(node, opened[0].call, 0)!, 1)
    leader.nodeLost(asNodeId('n1'))
    const closed = leader.tick(2, fleet)
    expect(closed.filter((effect) => effect.kind === 'assign')).toEqual([])
    expect(leader.isPending(asJobId('x'))).toBe(true)
    runRound(leader, [fleet[1]!], 100)
    expect(leader.assignmentsOf(asJobId('x'))!.get(0)!.nodeId).toBe('n2')
    expect(leader.fenced(asJobId('x'), 0)).toBe(true)
    expect(leader.isPending(asJobId('x'))).toBe(true)
  })
})
