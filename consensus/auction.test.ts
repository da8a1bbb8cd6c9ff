// The auction as the consensus leader runs it, over the harness's network: calls for bids and bids
// as messages, assignments in the document. Proves gangs are all-or-nothing (and re-placed whole),
// no node is over-committed across rounds, hard constraints and moving prices decide, and forged
// bids change nothing.
import { describe, expect, it } from 'vitest'
import { Cluster, capacity, testJob } from './testing/harness.ts'
import { effectiveAssignment, forEachJob, isCommitted, isJobDone, jobRecord, readText, replicaIdOf } from './cluster-document.ts'
import { asJobId, asNodeId, type JobId, type NodeId, type PeerMessage } from './types.ts'
import type { Peer } from './peer.ts'

const island = { capacity: { gpuCount: 8 }, gpu: { model: 'A100', memoryMiB: 40_960 }, placementGroup: 'pg-a', azId: 'use1-az1', efa: true, pricePerCpuHour: 0.01 }
const gangSpec = { intent: 'tightly-coupled', resources: { cpu: 1, memory: '1Gi', gpu: { count: 8, model: ['A100'] } } }

/** Node holding each replica's committed assignment in the peer's document. */
function placedOn(peer: Peer, jobId: string, replicas: number): (NodeId | null)[] {
  return Array.from({ length: replicas }, (_, replica) => {
    const job = jobRecord(peer.document, replicaIdOf(jobId, replica, replicas))
    const assignment = job === undefined ? null : effectiveAssignment(job)
    return assignment !== null && isCommitted(peer.document, assignment) ? assignment.node : null
  })
}

describe('auction placement in the leader', () => {
  it('places a tightly-coupled gang all-or-nothing inside one placement-group island, and re-places it whole when a member is lost', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 5, seed: 3, offers: [undefined, undefined, undefined, island, island, island, island, { ...island, azId: 'use1-az2', placementGroup: 'pg-b' }] })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('gang', { ...gangSpec, replicas: 3 }))
    expect(cluster.runUntil(() => placedOn(leader, 'gang', 3).every((node) => node !== null), 2_000)).toBe(true)
    const first = placedOn(leader, 'gang', 3) as NodeId[]
    expect(new Set(first).size).toBe(3)
    for (const node of first) expect(['n3', 'n4', 'n5', 'n6']).toContain(node)
    // One decision placed all three.
    const stamps = first.map((_, replica) => effectiveAssignment(jobRecord(leader.document, replicaIdOf('gang', replica, 3))!)!)
    expect(new Set(stamps.map((stamp) => `${stamp.term}.${stamp.seq}`)).size).toBe(1)

    // A member's node goes silent: after the node timeout the whole gang is placed again, in one decision.
    const lost = first[1]!
    cluster.isolate(lost)
    expect(cluster.runUntil(() => placedOn(leader, 'gang', 3).every((node) => node !== null && node !== lost), cluster.config.nodeTimeoutMs + 3_000)).toBe(true)
    const again = Array.from({ length: 3 }, (_, replica) => effectiveAssignment(jobRecord(leader.document, replicaIdOf('gang', replica, 3))!)!)
    expect(new Set(again.map((stamp) => `${stamp.term}.${stamp.seq}`)).size).toBe(1)
    expect(again[0]!.seq).toBeGreaterThan(stamps[0]!.seq)
    expect(new Set(again.map((stamp) => stamp.node)).size).toBe(3)
    for (const stamp of again) expect(['n3', 'n4', 'n5', 'n6']).toContain(stamp.node)
  })

  it('places no member of a gang that no island can hold, and records why', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 3, seed: 4, offers: [undefined, undefined, undefined, island, island, { ...island, placementGroup: 'pg-b' }] })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('big-gang', { ...gangSpec, replicas: 3 }))
    expect(cluster.runUntil(() => readText(jobRecord(leader.document, asJobId('big-gang#0'))?.unplaceable[String(leader.term)]) !== '', 2_000)).toBe(true)
    cluster.advance(1_000)
    for (let replica = 0; replica < 3; replica++) {
      const job = jobRecord(leader.document, replicaIdOf('big-gang', replica, 3))!
      expect(effectiveAssignment(job)).toBeNull()
      expect(readText(job.unplaceable[String(leader.term)])).toMatch(/^gang_no_island: /)
    }
    for (const id of cluster.ids) expect(cluster.running(id).size).toBe(0)
  })

  it('never assigns a node more than it has across rounds, and places the waiting replicas as room frees', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 5 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const total = capacity(4_000, 8_192)
    const overCommitted: string[] = []
    cluster.afterEvent(() => {
      const used = new Map<string, number>()
      forEachJob(leader.document, (_jobId, job) => {
        if (isJobDone(job)) return // its room is free again
        const assignment = effectiveAssignment(job)
        if (assignment !== null) used.set(assignment.node, (used.get(assignment.node) ?? 0) + job.cpuMillis)
      })
      for (const [node, cpu] of used) if (cpu > total.cpuMillis) overCommitted.push(`${node}: ${cpu}`)
    })
    // Five nodes of 4 CPUs: 20 one-CPU jobs fit, 10 must wait.
    for (let index = 0; index < 30; index++) {
      cluster.submit(cluster.ids[index % 5]!, testJob(`w${index}`))
      cluster.advance(7)
    }
    cluster.advance(2_000)
    expect(overCommitted).toEqual([])
    const placed = (): JobId[] => Array.from({ length: 30 }, (_, index) => asJobId(`w${index}`)).filter((jobId) => placedOn(leader, jobId, 1)[0] !== null)
    expect(placed()).toHaveLength(20)
    const waiting = Array.from({ length: 30 }, (_, index) => jobRecord(leader.document, asJobId(`w${index}`))!).filter((job) => effectiveAssignment(job) === null)
    expect(waiting).toHaveLength(10)
    for (const job of waiting) expect(readText(job.unplaceable[String(leader.term)])).toMatch(/^capacity_exhausted: /)
    // Five jobs finish on their runners: five waiting ones take their room.
    let finished = 0
    for (const id of cluster.ids) {
      for (const jobId of [...cluster.running(id)]) {
        if (finished === 5) break
        cluster.step(id, { kind: 'job-exited', jobId, exitCode: 0 })
        finished++
      }
    }
    expect(cluster.runUntil(() => placed().length === 25, 3_000)).toBe(true)
    cluster.advance(1_000)
    expect(overCommitted).toEqual([])
  })

  it('honours data sovereignty and on-demand-only constraints over price', () => {
    const cluster = new Cluster({
      voters: 3,
      nonVoters: 2,
      seed: 6,
      offers: [undefined, undefined, undefined, { spot: true, country: 'US', region: 'us-east-1', pricePerCpuHour: 0.001 }, { country: 'DE', region: 'eu-central-1', pricePerCpuHour: 0.2 }],
    })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('cheap'))
    cluster.submit(leader.id, testJob('eu-only', { constraints: { sovereignty: { regions: ['EU'] } } }))
    cluster.submit(leader.id, testJob('no-spot', { constraints: { spotAllowed: false } }))
    expect(cluster.runUntil(() => ['cheap', 'eu-only', 'no-spot'].every((id) => placedOn(leader, id, 1)[0] !== null), 2_000)).toBe(true)
    expect(placedOn(leader, 'cheap', 1)).toEqual(['n3'])
    expect(placedOn(leader, 'eu-only', 1)).toEqual(['n4'])
    // On-demand only: not the cheap spot node (the on-demand voters at 0.05 per CPU-hour are next).
    expect(placedOn(leader, 'no-spot', 1)[0]).not.toBe('n3')
    // The leader explains the decision: who bid, who was excluded and why, the winner and its price.
    const record = leader.explain('eu-only')!
    expect(record.awards.map((award) => award.nodeId)).toEqual(['n4'])
    expect(record.rows.find((row) => row.nodeId === 'n3')?.excluded).toMatchObject({ kind: 'sovereignty', country: 'US' })
    expect(record.answered).toBeGreaterThan(0)
  })

  it("a bidder's moved price decides later rounds", () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 7, pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('before'))
    expect(cluster.runUntil(() => placedOn(leader, 'before', 1)[0] !== null, 2_000)).toBe(true)
    expect(placedOn(leader, 'before', 1)).toEqual(['n3'])
    const effects = cluster.step(asNodeId('n3'), { kind: 'prices', prices: { perCpuHour: 0.5, perMemoryGiBHour: 0, perGpuHour: 0 } })
    // The new price goes to the leader as n3's standing bid at once (a round already under way used the old one).
    const sent = effects.find((effect) => effect.kind === 'send' && effect.message.kind === 'standing-bid')
    expect(sent).toMatchObject({ to: leader.id, message: { standing: { offer: { prices: { perCpuHour: 0.5 } } } } })
    cluster.advance(100)
    cluster.submit(leader.id, testJob('after'))
    expect(cluster.runUntil(() => placedOn(leader, 'after', 1)[0] !== null, 2_000)).toBe(true)
    expect(placedOn(leader, 'after', 1)).toEqual(['n4'])
  })

  it('drops a bid that names another node or claims more than the node has, and places as if it never came', () => {
    // Calls for bids every round (no standing bids): the forged bids answer a call.
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 8, pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02], config: { standingBidTtlMs: 0 } })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    let forged = false
    cluster.onEffect((node, effect) => {
      if (forged || node !== leader.id || effect.kind !== 'send' || effect.message.kind !== 'call-for-bids') return
      forged = true
      const call = effect.message.call
      const bid = { roundId: call.roundId, nodeId: asNodeId('n3'), provider: 'test', region: 'test-1', azId: 'az0', country: 'US', spot: false, labels: {}, efa: false, free: capacity(4_000, 8_192), performanceScore: 1, reliability: { uptime: 1, interruptions: 0 }, estimatedStartMs: 0, asks: call.classes.map((jobClass) => ({ classId: jobClass.classId, askPerHour: 0 })), signature: '' }
      const message = (bid: unknown): PeerMessage => ({ kind: 'bid', term: leader.term, bid } as PeerMessage)
      // n4 speaks for n3 with a free price; n3 claims a thousand CPUs.
      cluster.step(leader.id, { kind: 'message', from: asNodeId('n4'), message: message(bid) })
      cluster.step(leader.id, { kind: 'message', from: asNodeId('n3'), message: message({ ...bid, free: capacity(1_000_000, 8_192) }) })
    })
    cluster.submit(leader.id, testJob('honest'))
    expect(cluster.runUntil(() => placedOn(leader, 'honest', 1)[0] !== null, 2_000)).toBe(true)
    expect(forged).toBe(true)
    const drops = cluster.events('message-dropped').filter((record) => record.node === leader.id && record.event.message === 'bid')
    expect(drops.map((record) => record.event.reason)).toEqual([expect.stringContaining('came from n4'), 'attribute_mismatch'])
    // n3's own honest bid still wins at its real price.
    expect(placedOn(leader, 'honest', 1)).toEqual(['n3'])
  })
})
