// The election timeout follows measured round trips (ten of them, within [configured T, 2 s], a
// node's own estimate capped by its node lease): the estimate alone (election-timing.ts), then a
// cluster on 20 ms links where the leader advertises it, followers adopt it and the lease holds.
import { describe, expect, it } from 'vitest'
import { ElectionTiming, RoundTrips, maxElectionTimeoutMs } from './election-timing.ts'
import { Cluster } from './testing/harness.ts'
import { asNodeId, isMajority, type NodeId } from './index.ts'

const [self, a, b, c, d] = ['n0', 'n1', 'n2', 'n3', 'n4'].map(asNodeId) as [NodeId, NodeId, NodeId, NodeId, NodeId]
const five = [self, a, b, c, d]
const majorityOfFive = (agreeing: ReadonlySet<NodeId>): boolean => isMajority(agreeing, five)

/** A timing whose round trips to each peer were all `ms` (one sample per peer, or several). */
function timedWith(roundTrips: ReadonlyMap<NodeId, number>, lowerMs = 150): ElectionTiming {
  const timing = new ElectionTiming(lowerMs, undefined, 0)
  for (const [peer, ms] of roundTrips) for (let sample = 0; sample < 5; sample++) timing.roundTrips.sample(peer, ms, 0)
  return timing
}

describe('election timeout estimate', () => {
  it('grows with the round trip to the quorum, ten of them, clamped to [configured T, 2 s]', () => {
    const estimate = (ms: number): number | null => timedWith(new Map(five.slice(1).map((peer) => [peer, ms]))).estimateMs(self, five, majorityOfFive)
    expect(estimate(5)).toBe(150) // a LAN: the configured lower bound
    expect(estimate(100)).toBe(1_000)
    expect(estimate(150)).toBe(1_500)
    expect(estimate(250)).toBe(maxElectionTimeoutMs)
    expect(estimate(2_000)).toBe(maxElectionTimeoutMs)
    const rising = [5, 50, 100, 200, 300, 500, 1_000].map(estimate)
    expect(rising).toEqual([...rising].sort((x, y) => x! - y!))
    for (const ms of rising) expect(ms! >= 150 && ms! <= maxElectionTimeoutMs).toBe(true)
  })

  it('counts the round trip that completes a majority, not the slowest voter, and nothing before a quorum is timed', () => {
    // With itself, a voter of five needs two more answers: the second fastest peer decides.
    const timing = timedWith(new Map([[a, 40], [b, 90], [c, 600], [d, 3_000]]))
    expect(timing.estimateMs(self, five, majorityOfFive)).toBe(900)
    expect(timedWith(new Map([[a, 40]])).estimateMs(self, five, majorityOfFive)).toBeNull()
    // A single voter is its own quorum: the lower bound.
    expect(timedWith(new Map()).estimateMs(self, [self], (agreeing) => isMajority(agreeing, [self]))).toBe(150)
  })

  it('leaves out estimates not refreshed since a given time (a dead voter\'s old round trip)', () => {
    const roundTrips = new RoundTrips()
    roundTrips.sample(a, 10, 0) // fast, but last heard at 0
    roundTrips.sample(b, 300, 1_000)
    roundTrips.sample(c, 320, 1_000)
    expect(roundTrips.quorumMs(self, five, majorityOfFive)).toBe(300)
    expect(roundTrips.quorumMs(self, five, majorityOfFive, 500)).toBe(320)
  })

  it('times a request from its first send, so a late answer to a resent one overestimates', () => {
    const roundTrips = new RoundTrips()
    roundTrips.sent(a, 'pre-vote 3', 0)
    roundTrips.sent(a, 'pre-vote 3', 150) // the same request again
    roundTrips.answered(a, 'pre-vote 3', 220)
    expect(roundTrips.highMs(a)).toBe(220)
    roundTrips.answered(a, 'pre-vote 3', 230) // a duplicate: nothing outstanding
    roundTrips.answered(b, 'vote 4', 230) // never asked
    expect(roundTrips.highMs(a)).toBe(220)
    expect(roundTrips.highMs(b)).toBeUndefined()
  })
})

describe('adopting the leader\'s election timeout', () => {
  it('takes a larger T at once and a smaller one only after hearing smaller ones for a full T (then the largest of them)', () => {
    const timing = new ElectionTiming(150, undefined, 0)
    timing.heard(2_000, 0)
    expect(timing.adoptedMs).toBe(2_000)
    expect(timing.persistDue).toBe(true) // before the ack goes out
    timing.markPersisted()
    timing.heard(600, 100)
    timing.heard(700, 1_000)
    timing.heard(500, 2_099)
    expect(timing.adoptedMs).toBe(2_000)
    timing.heard(500, 2_100) // 2 s of smaller values
    expect(timing.adoptedMs).toBe(700)
    expect(timing.persistDue).toBe(false) // smaller: on disk with the next persist
    // A larger value in between starts the wait again.
    timing.heard(300, 2_200)
    timing.heard(700, 2_500)
    timing.heard(300, 2_899)
    expect(timing.adoptedMs).toBe(700)
    // Bounds: never under the configured T, never over maxElectionTimeoutMs (2 s).
    timing.heard(60_000, 3_000)
    expect(timing.adoptedMs).toBe(maxElectionTimeoutMs)
    const low = new ElectionTiming(150, undefined, 0)
    low.heard(20, 0)
    expect(low.adoptedMs).toBe(150)
  })

  it('its own estimate stops at a third of the node lease left after a renewal (a failover must not outlast the runners\' leases), but a leader\'s larger T is adopted as advertised', () => {
    const lease = { nodeLeaseMs: 2_000, leaseRenewMs: 500 }
    const timing = new ElectionTiming(150, undefined, 0, lease)
    expect(timing.estimateCapMs).toBe(500)
    for (const peer of five.slice(1)) for (let sample = 0; sample < 5; sample++) timing.roundTrips.sample(peer, 100, 0)
    expect(timing.estimateMs(self, five, majorityOfFive)).toBe(500)
    timing.heard(1_800, 0)
    expect(timing.adoptedMs).toBe(1_800)
    // A lower bound above the cap wins: the operator asked for it.
    expect(new ElectionTiming(900, undefined, 0, lease).estimateCapMs).toBe(900)
  })

  it('a restarted voter waits the T it persisted before voting, the 2 s bound when it persisted none, nothing extra when new', () => {
    expect(new ElectionTiming(150, 1_800, 7).bootNoVoteMs).toBe(1_800)
    expect(new ElectionTiming(150, undefined, 7).bootNoVoteMs).toBe(maxElectionTimeoutMs)
    expect(new ElectionTiming(150, undefined, 0).bootNoVoteMs).toBe(150)
  })
})

describe('a cluster on 20 ms links (40 ms round trips)', () => {
  for (const voters of [3, 5]) {
    it(`with ${voters} voters: the leader advertises about ten round trips, followers adopt it, and its lease holds`, () => {
      const latencyMs = 20
      const tenRoundTrips = 10 * 2 * latencyMs
      const cluster = new Cluster({ voters, seed: 5, latencyMs })
      const leader = cluster.awaitLeader(15_000)
      const advertised: number[] = []
      cluster.onEffect((node, effect) => {
        if (node === leader.id && effect.kind === 'send' && effect.message.kind === 'heartbeat') advertised.push(effect.message.electionTimeoutMs!)
      })
      cluster.advance(3_000)
      expect(leader.role).toBe('leader')
      expect(advertised.length).toBeGreaterThan(50)
      // Ten 40 ms round trips (under the 500 ms cap the default node lease sets), not the configured 150 ms.
      for (const ms of advertised) expect(ms).toBeGreaterThanOrEqual(tenRoundTrips)
      expect(advertised.at(-1)!).toBeLessThanOrEqual(tenRoundTrips + 10)
      // The lease (0.9 T from a round's send) outlasts the round trip its acks take, so it holds.
      expect(leader.leaseExpiryMs).toBeGreaterThan(cluster.nowMs)
      expect(leader.leaseExpiryMs).toBeLessThanOrEqual(cluster.nowMs + 0.9 * (tenRoundTrips + 10))
      // Followers adopted it: with the leader gone, none campaigns before 400 ms (it would from 150 ms at the configured T).
      const cutAtMs = cluster.nowMs
      const firstCampaign: number[] = []
      cluster.onEffect((node, effect) => {
        if (node !== leader.id && effect.kind === 'send' && effect.message.kind === 'pre-vote') firstCampaign.push(cluster.nowMs)
      })
      cluster.crash(leader.id)
      const next = cluster.awaitLeader(15_000)
      expect(next.id).not.toBe(leader.id)
      expect(Math.min(...firstCampaign) - cutAtMs).toBeGreaterThanOrEqual(tenRoundTrips - latencyMs)
    })
  }
})
