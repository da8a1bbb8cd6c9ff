// Submissions, the commit rule, leader change, fencing and restart safety, driven through the
// deterministic harness (consensus/testing/harness.ts).
import { describe, expect, it } from 'vitest'
import { Cluster, capacity, testJob } from './testing/harness.ts'
import { asJobId, asNodeId, assignmentsOf, effectiveAssignment, runStateOf, jobRecord, leaderSeqOf, type JobId, type NodeId, type Peer, type Term } from './index.ts'
import { originSeqOf } from './cluster-document.ts'

/** How many voters (live ones, by their current document) hold `leaderLog[term] >= seq`. */
function votersHoldingDecision(cluster: Cluster, term: number, seq: number): number {
  return cluster.voterIds.filter((id) => cluster.isUp(id) && leaderSeqOf(cluster.peer(id).document, term as Term) >= seq).length
}

function votersHoldingJob(cluster: Cluster, jobId: JobId): number {
  return cluster.voterIds.filter((id) => cluster.isUp(id) && jobRecord(cluster.peer(id).document, jobId) !== undefined).length
}

const big = capacity(64_000, 65_536)
const medium = capacity(16_000, 32_768)

describe('submissions', () => {
  it('a non-voter acknowledges a submission only once a majority of voters hold the job', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 3 })
    cluster.awaitLeader()
    cluster.advance(200)
    const origin = asNodeId('n3')
    const seenAtEvent: number[] = []
    cluster.onEffect((node, effect) => {
      if (node === origin && effect.kind === 'event' && effect.event.kind === 'submission-durable') seenAtEvent.push(votersHoldingJob(cluster, effect.event.jobId))
    })
    for (let index = 0; index < 5; index++) {
      cluster.submit(origin, testJob(`a${index}`))
      // Nothing is acknowledged in the step that wrote it: no voter has it yet.
      expect(cluster.events('submission-durable').filter((record) => record.event.jobId === `a${index}`)).toHaveLength(0)
      cluster.advance(37)
    }
    cluster.advance(1_000)
    expect(cluster.events('submission-durable').map((record) => record.event.requestId)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4'])
    expect(seenAtEvent).toHaveLength(5)
    for (const holders of seenAtEvent) expect(holders).toBeGreaterThanOrEqual(2)
  })

  it('with a majority of voters partitioned away from the submitting non-voter there is no ack; after heal there is', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 4 })
    cluster.awaitLeader()
    cluster.advance(200)
    const origin = asNodeId('n3')
    const holdersAtAck: number[] = []
    cluster.onEffect((node, effect) => {
      if (node === origin && effect.kind === 'event' && effect.event.kind === 'submission-durable') holdersAtAck.push(votersHoldingJob(cluster, effect.event.jobId))
    })
    cluster.partition([origin], [asNodeId('n1'), asNodeId('n2')])
    cluster.submit(origin, testJob('p1'))
    cluster.advance(3_000)
    // n0 holds it (and may even have passed it on to the others), but n3 cannot hear a majority.
    expect(jobRecord(cluster.peer(asNodeId('n0')).document, asJobId('p1'))).toBeDefined()
    expect(cluster.events('submission-durable')).toHaveLength(0)
    cluster.heal()
    expect(cluster.runUntil(() => cluster.events('submission-durable').length > 0, 2_000)).toBe(true)
    expect(cluster.events('submission-durable')[0]!.event.jobId).toBe('p1')
    expect(holdersAtAck[0]).toBeGreaterThanOrEqual(2)
  })
})

describe('commit rule', () => {
  it("a leader's decision is 'committed' only when a majority of voters hold leaderLog[term] >= seq, and runners start only committed assignments", () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 5, capacities: [undefined, undefined, undefined, big, big], pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.01] })
    const leader = cluster.awaitLeader()
    cluster.advance(200) // the nodes take up their leases from the new leader
    const holdersAtCommit: { term: number; seq: number; holders: number; decidedBefore: boolean }[] = []
    const startChecks: { jobId: JobId; node: NodeId; committedBefore: boolean; holders: number }[] = []
    cluster.onEffect((node, effect) => {
      if (effect.kind === 'event' && effect.event.kind === 'committed') {
        const { term, seq } = effect.event
        const decidedBefore = cluster.events('decision').some((record) => record.node === node && record.event.term === term && record.event.seq === seq)
        holdersAtCommit.push({ term, seq, holders: votersHoldingDecision(cluster, term, seq), decidedBefore })
      }
      if (effect.kind === 'start-job') {
        const committedBefore = cluster.events('committed').some((record) => record.event.term === effect.term && record.event.seq >= effect.seq)
        startChecks.push({ jobId: effect.jobId, node, committedBefore, holders: votersHoldingDecision(cluster, effect.term, effect.seq) })
      }
    })
    for (let index = 0; index < 6; index++) {
      cluster.submit(cluster.ids[index % cluster.ids.length]!, testJob(`c${index}`))
      cluster.advance(23)
    }
    cluster.advance(2_000)
    expect(holdersAtCommit.length).toBeGreaterThanOrEqual(2)
    for (const commit of holdersAtCommit) {
      expect(commit.decidedBefore, `${commit.term}.${commit.seq}`).toBe(true)
      expect(commit.holders, `${commit.term}.${commit.seq}`).toBeGreaterThanOrEqual(2)
    }
    // Every job started exactly once, on a non-voter (they have the room), after its commit.
    expect(startChecks.map((check) => check.jobId).sort()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5'])
    for (const check of startChecks) {
      expect(check.committedBefore, check.jobId).toBe(true)
      expect(check.holders, check.jobId).toBeGreaterThanOrEqual(2)
      expect(cluster.nonVoterIds).toContain(check.node)
    }
    expect(leader.isReadyLeader).toBe(true)
  })

  for (const broken of ['none', 'no-quorum'] as const) {
    it(`a leader cut off from the other voters ${broken === 'none' ? 'decides but never reports committed' : "reports 'committed' alone when broken: 'no-quorum' (the flag breaks the rule)"}`, () => {
      // A short bid window: the cut-off leader's round closes on its own bid well before check-quorum deposes it.
      const cluster = new Cluster({ voters: 3, seed: 6, config: { broken, maxBidWindowMs: 40 } })
      const leader = cluster.awaitLeader()
      cluster.advance(300)
      const term = leader.term
      const decisionsBefore = cluster.events('decision').length
      const holdersAtCommit: number[] = []
      cluster.onEffect((node, effect) => {
        if (node === leader.id && effect.kind === 'event' && effect.event.kind === 'committed' && effect.event.seq > 1) holdersAtCommit.push(votersHoldingDecision(cluster, effect.event.term, effect.event.seq))
      })
      cluster.isolate(leader.id)
      cluster.submit(leader.id, testJob('lonely'))
      cluster.advance(100) // under one election timeout: still leader (check-quorum needs T)
      const decisions = cluster.events('decision').slice(decisionsBefore)
      expect(decisions.length).toBeGreaterThan(0)
      const seq = decisions.at(-1)!.event.seq
      const committed = cluster.events('committed').filter((record) => record.node === leader.id && record.event.term === term && record.event.seq >= seq)
      if (broken === 'none') {
        expect(committed).toHaveLength(0)
        expect(cluster.running(leader.id).size).toBe(0)
      } else {
        expect(committed.length).toBeGreaterThan(0)
        expect(holdersAtCommit).toEqual([1]) // only the leader holds what it calls committed
        expect(cluster.running(leader.id).has(asJobId('lonely'))).toBe(true)
      }
    })
  }
})

describe('leader change', () => {
  it("every decision committed in term T is in the new leader's document when it emits 'leader-ready' (only one surviving voter holds them)", () => {
    for (const seed of [1, 2, 3]) {
      const cluster = new Cluster({ voters: 5, nonVoters: 1, seed, capacities: [undefined, undefined, undefined, undefined, undefined, big], pricesPerCpuHour: [undefined, undefined, undefined, undefined, undefined, 0.01] })
      const old = cluster.awaitLeader()
      cluster.advance(300)
      const term = old.term
      // The decisions reach the leader and two followers only (a bare majority).
      const followers = cluster.voterIds.filter((id) => id !== old.id)
      const [keeper, other, cutA, cutB] = followers as [NodeId, NodeId, NodeId, NodeId]
      cluster.partition([old.id, keeper, other], [cutA, cutB])
      for (let index = 0; index < 4; index++) cluster.submit(old.id, testJob(`t${seed}-${index}`))
      expect(cluster.runUntil(() => cluster.events('committed').some((record) => record.event.term === term && record.event.seq >= 2), 1_000)).toBe(true)
      const committedSeq = Math.max(...cluster.events('committed').filter((record) => record.event.term === term).map((record) => record.event.seq))
      const assigned: JobId[] = []
      for (let index = 0; index < 4; index++) {
        const job = jobRecord(old.document, asJobId(`t${seed}-${index}`))!
        const assignment = effectiveAssignment(job)
        if (assignment !== null && assignment.seq <= committedSeq) assigned.push(asJobId(`t${seed}-${index}`))
      }
      expect(assigned.length).toBeGreaterThan(0)
      // Lose the leader and one of the two followers that hold the decisions; heal the rest.
      cluster.crash(old.id)
      cluster.crash(other)
      cluster.heal()
      const atReady: { node: NodeId; seq: number; missing: JobId[] }[] = []
      cluster.onEffect((node, effect) => {
        if (effect.kind !== 'event' || effect.event.kind !== 'leader-ready' || effect.event.term <= term) return
        const document = cluster.peer(node).document
        const missing = assigned.filter((jobId) => {
          const job = jobRecord(document, jobId)
          return job === undefined || !assignmentsOf(job).some((assignment) => assignment.term === term)
        })
        atReady.push({ node, seq: leaderSeqOf(document, term), missing })
      })
      expect(cluster.runUntil(() => atReady.length > 0, 3_000), `seed ${seed}`).toBe(true)
      expect(atReady[0]!.seq, `seed ${seed} new leader ${atReady[0]!.node}`).toBeGreaterThanOrEqual(committedSeq)
      expect(atReady[0]!.missing, `seed ${seed}`).toEqual([])
      void keeper
    }
  })
})

describe('fencing', () => {
  it('a runner cut off from the leader stops its job when its lease lapses, before the job is placed again elsewhere; after the heal it does not start it again', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 8, capacities: [undefined, undefined, undefined, big, medium], pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('fenced')
    const oldRunner = asNodeId('n3')
    const newRunner = asNodeId('n4')
    cluster.submit(leader.id, testJob('fenced'))
    expect(cluster.runUntil(() => cluster.running(oldRunner).has(jobId), 1_000)).toBe(true)
    const firstStart = cluster.effectsOf('start-job', oldRunner)[0]!.effect
    const cutAtMs = cluster.nowMs
    cluster.isolate(oldRunner)
    expect(cluster.runUntil(() => cluster.running(newRunner).has(jobId), cluster.config.nodeTimeoutMs + 2_000)).toBe(true)
    const secondStart = cluster.effectsOf('start-job', newRunner)[0]!
    // The old runner's lease lapsed first: it stopped its copy before the leader placed the job again.
    const stop = cluster.effectsOf('stop-job', oldRunner)[0]
    expect(stop?.effect.cause).toBe('lease-lapsed')
    expect(stop!.atMs).toBeLessThanOrEqual(cutAtMs + cluster.config.nodeLeaseMs)
    expect(stop!.atMs).toBeLessThan(secondStart.atMs)
    // Re-placed only once nothing was granted to the old runner for the node timeout.
    expect(secondStart.atMs - cutAtMs).toBeGreaterThanOrEqual(cluster.config.nodeTimeoutMs - cluster.config.leaseRenewMs)
    expect(secondStart.effect.term > firstStart.term || (secondStart.effect.term === firstStart.term && secondStart.effect.seq > firstStart.seq)).toBe(true)
    cluster.heal()
    const learnLimitMs = 3 * Math.max(cluster.config.downstreamSyncIntervalMs, cluster.config.resyncIntervalMs)
    cluster.advance(learnLimitMs)
    // Back with a lease, it caught up first: it sees the job placed elsewhere and does not start it again.
    expect(cluster.effectsOf('start-job', oldRunner).filter((record) => record.effect.jobId === jobId)).toHaveLength(1)
    const current = effectiveAssignment(jobRecord(cluster.peer(oldRunner).document, jobId)!)!
    expect(current.node).toBe(newRunner)
    expect(cluster.running(newRunner).has(jobId)).toBe(true)
    expect(cluster.effectsOf('stop-job', newRunner)).toHaveLength(0)
    // Its record says how its copy ended: stopped (it had not finished).
    const run = jobRecord(cluster.peer(newRunner).document, jobId)!.runs[oldRunner]!
    expect([runStateOf(run), run.term, run.seq]).toEqual(['stopped', firstStart.term, firstStart.seq])
  })
})

describe('restart safety', () => {
  it('a voter that crashes and restarts keeps its term and vote and still holds every job it acknowledged', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 1, seed: 9 })
    const leader = cluster.awaitLeader()
    cluster.advance(300)
    const term = leader.term
    const follower = cluster.voterIds.find((id) => id !== leader.id && cluster.stored(id).votedFor === leader.id)
    expect(follower, 'a follower that voted for the leader').toBeDefined()
    const voter = follower!
    const other = cluster.voterIds.find((id) => id !== leader.id && id !== voter)!
    // What the voter told each origin (incarnation) it holds (the ack rides on its sync messages).
    const acknowledged = new Map<string, { node: NodeId; seq: number }>()
    cluster.onEffect((node, effect) => {
      if (node !== voter || effect.kind !== 'send' || effect.message.kind !== 'sync' || effect.message.ack.origin === '') return
      const { origin, originSeq } = effect.message.ack
      acknowledged.set(origin, { node: effect.to, seq: Math.max(acknowledged.get(origin)?.seq ?? 0, originSeq) })
    })
    const submitted = new Map<NodeId, JobId[]>()
    for (let index = 0; index < 6; index++) {
      const origin = index % 2 === 0 ? asNodeId('n3') : leader.id
      cluster.submit(origin, testJob(`r${index}`))
      submitted.set(origin, [...(submitted.get(origin) ?? []), asJobId(`r${index}`)])
      cluster.advance(41)
    }
    cluster.advance(500)
    expect(acknowledged.get(cluster.peer(asNodeId('n3')).actor)?.seq ?? 0).toBeGreaterThan(0)
    cluster.crash(voter)
    cluster.advance(50)
    cluster.restart(voter)
    const restarted = cluster.peer(voter)
    expect(restarted.term).toBe(term)
    expect(cluster.stored(voter).votedFor).toBe(leader.id)
    for (const [origin, { node, seq }] of acknowledged) {
      expect(originSeqOf(restarted.document, origin)).toBeGreaterThanOrEqual(seq)
      for (const jobId of (submitted.get(node) ?? []).slice(0, seq)) expect(jobRecord(restarted.document, jobId), jobId).toBeDefined()
    }
    // The vote it cast in this term survives: a rival asking in the same term is refused,
    // the candidate it voted for is granted again.
    const committee = restarted.committeeStamp
    const refused = cluster.step(voter, { kind: 'message', from: other, message: { kind: 'vote', term, committee } })
    expect(refused.filter((effect) => effect.kind === 'send')).toContainEqual({ kind: 'send', to: other, message: { kind: 'vote-response', term, granted: false } })
    const regranted = cluster.step(voter, { kind: 'message', from: leader.id, message: { kind: 'vote', term, committee } })
    expect(regranted.filter((effect) => effect.kind === 'send')).toContainEqual({ kind: 'send', to: leader.id, message: expect.objectContaining({ kind: 'vote-response', term, granted: true }) })
    cluster.advance(500)
    expect(cluster.readyLeaders().map((peer: Peer) => peer.id)).toEqual([leader.id])
  })
})

describe('archive', () => {
  it('a finished job is archived by every node and then leaves the document (active state only)', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 1, seed: 21 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('short')
    cluster.submit(cluster.nonVoterIds[0]!, testJob('short'))
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(jobId)), 2_000)).toBe(true)
    const runner = cluster.ids.find((id) => cluster.running(id).has(jobId))!
    cluster.step(runner, { kind: 'job-exited', jobId, exitCode: 0 })
    // Still in the document right after it finished: the leader keeps it for archiveAfterMs.
    cluster.advance(500)
    expect(jobRecord(cluster.peer(leader.id).document, jobId)).toBeDefined()
    expect(cluster.runUntil(() => cluster.voterIds.every((id) => jobRecord(cluster.peer(id).document, jobId) === undefined), cluster.config.archiveAfterMs + 3_000)).toBe(true)
    for (const id of cluster.voterIds) {
      const archived = cluster.effectsOf('archive-job', id).filter((entry) => entry.effect.job.id === jobId)
      expect(archived, id).toHaveLength(1)
      expect(archived[0]!.effect.job).toMatchObject({ state: 'finished', node: runner, exitCode: 0 })
    }
  })

  it('a surplus copy cut off during re-placement stops once the job finished elsewhere', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 8, capacities: [undefined, undefined, undefined, big, medium], pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('twice')
    const oldRunner = asNodeId('n3')
    const newRunner = asNodeId('n4')
    cluster.submit(leader.id, testJob('twice'))
    expect(cluster.runUntil(() => cluster.running(oldRunner).has(jobId), 1_000)).toBe(true)
    cluster.isolate(oldRunner)
    expect(cluster.runUntil(() => cluster.running(newRunner).has(jobId), cluster.config.nodeTimeoutMs + 2_000)).toBe(true)
    cluster.step(newRunner, { kind: 'job-exited', jobId, exitCode: 0 })
    cluster.advance(cluster.config.archiveAfterMs + 2_000)
    cluster.heal()
    const learnLimitMs = 3 * Math.max(cluster.config.downstreamSyncIntervalMs, cluster.config.resyncIntervalMs)
    expect(cluster.runUntil(() => !cluster.running(oldRunner).has(jobId), learnLimitMs)).toBe(true)
    expect(cluster.effectsOf('stop-job', oldRunner)).toHaveLength(1)
  })
})
