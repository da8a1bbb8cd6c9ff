// Election, pre-vote, check-quorum and lease, driven through the deterministic harness
// (consensus/testing/harness.ts): virtual time, fixed 5 ms latency, seeded jitter.
import { describe, expect, it } from 'vitest'
import { Cluster } from './testing/harness.ts'
import type { NodeId, Term } from './index.ts'

const electionTimeoutMs = 150
const seeds = [1, 2, 3, 4, 5]

describe('election', () => {
  for (const voters of [3, 5]) {
    it(`with ${voters} voters exactly one leader becomes ready within 1.5 s and every peer agrees on its term (seeds ${seeds.join(',')})`, () => {
      for (const seed of seeds) {
        const cluster = new Cluster({ voters, seed })
        const leader = cluster.awaitLeader(1_500)
        // Let the followers hear it, then look again: still one leader, one term, one leader id.
        cluster.advance(300)
        const leaders = cluster.livePeers().filter((peer) => peer.role === 'leader')
        expect(leaders.map((peer) => peer.id), `seed ${seed}`).toEqual([leader.id])
        expect(leader.isReadyLeader).toBe(true)
        for (const peer of cluster.livePeers()) {
          expect(peer.term, `seed ${seed} ${peer.id}`).toBe(leader.term)
          expect(peer.leaderId, `seed ${seed} ${peer.id}`).toBe(leader.id)
        }
        const winners = cluster.events('became-leader').filter((record) => record.event.term === leader.term)
        expect(winners.map((record) => record.node), `seed ${seed}`).toEqual([leader.id])
      }
    })
  }

  it('non-voters know the leader the voters name, a quiet mesh included (1 voter, 3 non-voters)', () => {
    const cluster = new Cluster({ voters: 1, nonVoters: 3, seed: 21 })
    const leader = cluster.awaitLeader(1_500)
    cluster.advance(12_000) // past a non-voter's resync with no document change in between
    const nonVoters = cluster.livePeers().filter((peer) => peer.id !== leader.id)
    expect(nonVoters).toHaveLength(3)
    for (const peer of nonVoters) {
      expect(peer.role).not.toBe('leader')
      expect(peer.leaderId, peer.id).toBeNull() // they take no part in elections
      expect(peer.knownLeaderId, peer.id).toBe(leader.id)
    }
    expect(leader.knownLeaderId).toBe(leader.id)
  })

  it('never elects two leaders in one term across repeated leader crashes and restarts (5 voters, 6 crashes, 3 seeds)', () => {
    for (const seed of [11, 12, 13]) {
      const cluster = new Cluster({ voters: 5, seed })
      let previousTerm = 0
      for (let crash = 0; crash < 6; crash++) {
        const leader = cluster.awaitLeader(3_000)
        expect(leader.term).toBeGreaterThan(previousTerm)
        previousTerm = leader.term
        const id = leader.id
        cluster.advance(100)
        cluster.crash(id)
        cluster.awaitLeader(3_000)
        cluster.advance(200)
        cluster.restart(id)
        cluster.advance(500)
      }
      const leadersByTerm = new Map<number, Set<NodeId>>()
      for (const { node, event } of cluster.events('became-leader')) {
        const set = leadersByTerm.get(event.term) ?? new Set<NodeId>()
        set.add(node)
        leadersByTerm.set(event.term, set)
      }
      expect(leadersByTerm.size, `seed ${seed}`).toBeGreaterThanOrEqual(7)
      for (const [term, nodes] of leadersByTerm) expect([...nodes], `seed ${seed} term ${term}`).toHaveLength(1)
    }
  })
})

describe('pre-vote', () => {
  it('a voter partitioned away for 5 s keeps its old term and, on rejoining, does not depose the healthy leader', () => {
    const cluster = new Cluster({ voters: 3, seed: 7 })
    const leader = cluster.awaitLeader()
    cluster.advance(300)
    const term = leader.term
    const loner = cluster.voterIds.find((id) => id !== leader.id)!
    cluster.isolate(loner)
    cluster.advance(5_000)
    // It campaigned (pre-candidate) many times but never won a pre-vote, so never bumped its term.
    expect(cluster.peer(loner).term).toBe(term)
    expect(cluster.peer(loner).role).toBe('pre-candidate')
    expect(cluster.peer(leader.id).isReadyLeader).toBe(true)
    cluster.heal()
    cluster.advance(2_000)
    expect(cluster.readyLeaders().map((peer) => peer.id)).toEqual([leader.id])
    expect(cluster.peer(leader.id).term).toBe(term)
    expect(cluster.peer(loner).term).toBe(term)
    expect(cluster.peer(loner).leaderId).toBe(leader.id)
    expect(cluster.events('stepped-down')).toEqual([])
    expect(cluster.events('became-leader')).toHaveLength(1)
  })

  it('without pre-vote the same isolated voter does bump its term (the control that shows the pre-vote test can fail)', () => {
    const cluster = new Cluster({ voters: 3, seed: 7, config: { preVote: false } })
    const leader = cluster.awaitLeader()
    cluster.advance(300)
    const loner = cluster.voterIds.find((id) => id !== leader.id)!
    cluster.isolate(loner)
    cluster.advance(5_000)
    expect(cluster.peer(loner).term).toBeGreaterThan(leader.term)
  })
})

describe('check-quorum', () => {
  it('a leader cut off from every other voter steps down within 2 election timeouts and the majority elects a higher term', () => {
    const cluster = new Cluster({ voters: 5, seed: 21 })
    const old = cluster.awaitLeader()
    cluster.advance(300)
    const oldTerm = old.term
    const cutAtMs = cluster.nowMs
    cluster.isolate(old.id)
    const steppedDown = cluster.runUntil(() => cluster.peer(old.id).role !== 'leader', 2 * electionTimeoutMs)
    expect(steppedDown).toBe(true)
    const stepDown = cluster.events('stepped-down').find((record) => record.node === old.id)
    expect(stepDown?.event.reason).toMatch(/check-quorum/)
    expect(stepDown!.atMs - cutAtMs).toBeLessThanOrEqual(2 * electionTimeoutMs)
    const majority = cluster.ids.filter((id) => id !== old.id)
    expect(cluster.runUntil(() => majority.some((id) => cluster.peer(id).isReadyLeader), 3_000)).toBe(true)
    const next = majority.map((id) => cluster.peer(id)).find((peer) => peer.isReadyLeader)!
    expect(next.term).toBeGreaterThan(oldTerm)
    // The old leader, alone, never became leader again nor raised its term.
    expect(cluster.peer(old.id).role).not.toBe('leader')
    expect(cluster.peer(old.id).term).toBe(oldTerm)
    cluster.heal()
    cluster.advance(1_000)
    expect(cluster.readyLeaders().map((peer) => peer.id)).toEqual([next.id])
    expect(cluster.peer(old.id).leaderId).toBe(next.id)
  })

  it('without check-quorum the cut-off leader keeps its role (the control that shows the test can fail)', () => {
    const cluster = new Cluster({ voters: 5, seed: 21, config: { checkQuorum: false } })
    const old = cluster.awaitLeader()
    cluster.advance(300)
    cluster.isolate(old.id)
    cluster.advance(4 * electionTimeoutMs)
    expect(cluster.peer(old.id).role).toBe('leader')
  })
})

describe('lease', () => {
  it('the lease is finite once heartbeats are acked and always equals (send time of the latest majority-acked round) + 0.9 T < that + T', () => {
    const cluster = new Cluster({ voters: 3, seed: 31 })
    const leader = cluster.awaitLeader()
    const sentAtMs = new Map<number, number>()
    const ackers = new Map<number, Set<NodeId>>()
    cluster.onEffect((node, effect) => {
      if (node !== leader.id || effect.kind !== 'send' || effect.message.kind !== 'heartbeat') return
      sentAtMs.set(effect.message.round, cluster.nowMs)
    })
    // Count acks as the leader receives them: a majority (with the leader itself) of the same round.
    cluster.onEffect((node, effect) => {
      if (node === leader.id || effect.kind !== 'send' || effect.to !== leader.id || effect.message.kind !== 'heartbeat-ack') return
      if (effect.message.term !== leader.term) return
      const round = effect.message.round
      ackers.set(round, (ackers.get(round) ?? new Set([leader.id])).add(node))
    })
    let checks = 0
    cluster.afterEvent(() => {
      if (!leader.isReadyLeader) return
      // Rounds a majority acked and whose acks have had time to arrive (one latency after the send).
      let latest = -Infinity
      for (const [round, set] of ackers) {
        const sent = sentAtMs.get(round)
        if (sent !== undefined && set.size >= 2 && cluster.nowMs >= sent + 2 * cluster.latencyMs) latest = Math.max(latest, sent)
      }
      if (latest === -Infinity) return
      checks++
      expect(Number.isFinite(leader.leaseExpiryMs)).toBe(true)
      expect(leader.leaseExpiryMs).toBeLessThan(latest + electionTimeoutMs)
      expect(leader.leaseExpiryMs).toBeGreaterThanOrEqual(latest + 0.9 * electionTimeoutMs)
    })
    cluster.advance(2_000)
    expect(checks).toBeGreaterThan(100)
    expect(leader.leaseExpiryMs).toBeGreaterThan(cluster.nowMs)
  })

  for (const fault of ['isolated', 'crashed'] as const) {
    it(`no new leader is ready while the ${fault} old leader's lease is still valid (5 seeds)`, () => {
      for (const seed of seeds) {
        const cluster = new Cluster({ voters: 3, seed: 40 + seed })
        const old = cluster.awaitLeader()
        cluster.advance(200 + seed * 7)
        const oldTerm: Term = old.term
        // Take the lease at the last instant the old leader can extend it (acks in flight are lost).
        if (fault === 'isolated') cluster.isolate(old.id)
        const leaseExpiryMs = old.leaseExpiryMs
        expect(leaseExpiryMs).toBeGreaterThan(cluster.nowMs)
        if (fault === 'crashed') cluster.crash(old.id)
        // Invariant at every event: a leader of a higher term is not ready before the lease ends.
        cluster.afterEvent(() => {
          for (const peer of cluster.livePeers()) {
            if (peer.isReadyLeader && peer.term > oldTerm) expect(cluster.nowMs, `seed ${seed}`).toBeGreaterThanOrEqual(leaseExpiryMs)
          }
          if (fault === 'isolated') expect(old.leaseExpiryMs === -Infinity || old.leaseExpiryMs === leaseExpiryMs).toBe(true)
        })
        const others = cluster.ids.filter((id) => id !== old.id)
        expect(cluster.runUntil(() => others.some((id) => cluster.peer(id).isReadyLeader), 3_000)).toBe(true)
        const ready = cluster.events('leader-ready').filter((record) => record.event.term > oldTerm)
        expect(ready.length).toBeGreaterThan(0)
        expect(ready[0]!.atMs).toBeGreaterThanOrEqual(leaseExpiryMs)
      }
    })
  }
})
