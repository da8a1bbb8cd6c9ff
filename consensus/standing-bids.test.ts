// Standing bids over the harness's network: once the nodes stand, a job is decided in the step that
// brings it to the leader, with no call for bids, at the price the node stood at; a standing bid not
// repeated within the TTL is not used (the node is called again); one claiming more than the node
// registered is refused and forgotten, and the node is called instead; with standing bids off every
// round calls for bids as before.
import { describe, expect, it } from 'vitest'
import { Cluster, capacity, testJob } from './testing/harness.ts'
import { effectiveAssignment, jobRecord } from './cluster-document.ts'
import type { Peer } from './peer.ts'
import { asJobId, asNodeId, type NodeId, type PeerEffect, type PeerMessage } from './types.ts'

// n3 is the cheapest node, n4 next: both are non-voters, so they learn the leader from a call.
const prices = { pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] }
const n3 = asNodeId('n3')

function sendsOf(cluster: Cluster, node: NodeId, kind: PeerMessage['kind']): Extract<PeerEffect, { kind: 'send' }>[] {
  const sent: Extract<PeerEffect, { kind: 'send' }>[] = []
  cluster.onEffect((from, effect) => {
    if (from === node && effect.kind === 'send' && effect.message.kind === kind) sent.push(effect)
  })
  return sent
}

const placedNode = (cluster: Cluster, leader: NodeId, jobId: string): NodeId | null => {
  const job = jobRecord(cluster.peer(leader).document, asJobId(jobId))
  return job === undefined ? null : effectiveAssignment(job)?.node ?? null
}

/** Elects a leader and places a first job: its round calls the non-voters, the call teaches them the leader, and they stand. */
function withFirstJobPlaced(cluster: Cluster): Peer {
  const leader = cluster.awaitLeader()
  cluster.advance(200)
  cluster.submit(leader.id, testJob('first'))
  expect(cluster.runUntil(() => placedNode(cluster, leader.id, 'first') !== null, 2_000)).toBe(true)
  cluster.advance(100)
  return leader
}

describe('standing bids', () => {
  it('once the nodes stand, a job is decided in the step that brings it to the leader, with no call for bids', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 21, ...prices })
    const leader = withFirstJobPlaced(cluster)
    const calls = sendsOf(cluster, leader.id, 'call-for-bids')
    const decisionsBefore = cluster.events('decision').filter((record) => record.node === leader.id).length
    const effects = cluster.submit(leader.id, testJob('second'))
    // Decided in the submit's own step: the decision event and the round's change are among its effects.
    const decision = effects.find((effect) => effect.kind === 'event' && effect.event.kind === 'decision')
    expect(decision).toMatchObject({ event: { assigned: 1, auction: { answered: 5, eligible: 5 } } })
    expect(cluster.events('decision').filter((record) => record.node === leader.id).length).toBe(decisionsBefore + 1)
    expect(placedNode(cluster, leader.id, 'second')).toBe('n3')
    cluster.advance(500)
    expect(calls).toEqual([])
    // explain shows n3's answer, given from its standing bid, at its price.
    const record = cluster.peer(leader.id).explain('second')!
    expect(record.awards.map((award) => award.nodeId)).toEqual(['n3'])
  })

  it('a standing bid not repeated within the TTL is not used: the node is called again', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 22, ...prices, config: { standingBidRefreshMs: 60_000, standingBidTtlMs: 1_000 } })
    const leader = withFirstJobPlaced(cluster)
    const calls = sendsOf(cluster, leader.id, 'call-for-bids')
    cluster.submit(leader.id, testJob('fresh'))
    expect(cluster.runUntil(() => placedNode(cluster, leader.id, 'fresh') !== null, 2_000)).toBe(true)
    expect(calls).toEqual([])
    // Past the TTL without a refresh (the nodes repeat every 60 s here): every other node is called.
    cluster.advance(1_500)
    cluster.submit(leader.id, testJob('stale'))
    expect(cluster.runUntil(() => placedNode(cluster, leader.id, 'stale') !== null, 2_000)).toBe(true)
    expect(new Set(calls.map((call) => call.to))).toEqual(new Set(cluster.ids.filter((id) => id !== leader.id)))
    expect(placedNode(cluster, leader.id, 'stale')).toBe('n3')
  })

  it('a standing bid claiming more than the node registered is refused and forgotten; the node is called and its own bid wins', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 23, ...prices })
    const leader = withFirstJobPlaced(cluster)
    // n3 claims a thousand CPUs at no price.
    const honest = cluster.peer(n3)
    expect(honest.role).toBe('follower')
    const lie = { offer: { provider: 'test', region: 'test-1', azId: 'az0', country: 'US', spot: false, labels: {}, efa: false, capacity: capacity(1_000_000, 8_192), prices: { perCpuHour: 0, perMemoryGiBHour: 0, perGpuHour: 0 }, performanceScore: 1, reliability: { uptime: 1, interruptions: 0 }, startDelayMs: 0 }, policy: { utilisationMarkup: 0, minUptimeToBid: 0 } }
    cluster.step(leader.id, { kind: 'message', from: n3, message: { kind: 'standing-bid', term: leader.term, standing: lie } })
    const calls = sendsOf(cluster, leader.id, 'call-for-bids')
    cluster.submit(leader.id, testJob('honest'))
    expect(cluster.runUntil(() => placedNode(cluster, leader.id, 'honest') !== null, 2_000)).toBe(true)
    const drops = cluster.events('message-dropped').filter((record) => record.node === leader.id && record.event.message === 'standing-bid')
    expect(drops.map((record) => record.event.reason)).toEqual(['attribute_mismatch'])
    expect(calls.map((call) => call.to)).toEqual([n3])
    // n3's honest answer to the call wins at its real price (0.01/CPU-hour, cheaper than n4).
    expect(placedNode(cluster, leader.id, 'honest')).toBe('n3')
    expect(cluster.peer(leader.id).explain('honest')!.awards[0]!.askPerHour).toBeGreaterThan(0)
  })

  it('with standing bids off (TTL 0) every round calls for bids, and nodes send none', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 24, ...prices, config: { standingBidTtlMs: 0 } })
    const standing = cluster.ids.flatMap((id) => [sendsOf(cluster, id, 'standing-bid')])
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const calls = sendsOf(cluster, leader.id, 'call-for-bids')
    for (const name of ['a', 'b']) {
      cluster.submit(leader.id, testJob(name))
      expect(cluster.runUntil(() => placedNode(cluster, leader.id, name) !== null, 2_000)).toBe(true)
      cluster.advance(100)
    }
    expect(calls.length).toBe(2 * (cluster.ids.length - 1))
    expect(standing.flat()).toEqual([])
    expect(placedNode(cluster, leader.id, 'b')).toBe(n3)
  })
})
