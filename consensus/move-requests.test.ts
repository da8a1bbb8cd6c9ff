// The client-facing moves on the core: a migration limited to a region or provider lands only on a
// node there (and is refused when none is registered, or the job forbids it); a drain moves every
// copy off its node, placing again without a snapshot the copies it could not checkpoint; undrain
// lets the node take work again; and a checkpoint asked for now is taken and recorded with its size.
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from './testing/harness.ts'
import { jobRecord, snapshotsOf } from './cluster-document.ts'
import { asJobId, asNodeId, type CallForBidsMessage, type StandingBid } from './types.ts'
import type { Bid } from '../placement/index.ts'

// n3 is the cheapest node, n4 next; n1 alone is in region eu-west-1 (provider gcp), the rest in test-1.
const layout = {
  pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02],
  offers: [undefined, { provider: 'gcp', region: 'eu-west-1' }, undefined, undefined, undefined],
}
const [n1, n3, n4] = [asNodeId('n1'), asNodeId('n3'), asNodeId('n4')]

function clusterWithJobOn(seed: number, ...jobs: string[]): Cluster {
  const cluster = new Cluster({ voters: 3, nonVoters: 2, seed, ...layout })
  const leader = cluster.awaitLeader()
  cluster.advance(200)
  for (const job of jobs) {
    cluster.submit(leader.id, testJob(job))
    expect(cluster.runUntil(() => cluster.running(n3).has(asJobId(job)), 2_000)).toBe(true)
  }
  return cluster
}

const refusal = (cluster: Cluster, requestId: string): string | undefined => cluster.events('submission-refused').find((record) => record.event.requestId === requestId)?.event.reason

describe('migrate --region / --provider', () => {
  it('re-auctions under the region: the job lands on the one node there, not on the cheaper one elsewhere', () => {
    const cluster = clusterWithJobOn(41, 'regional')
    const jobId = asJobId('regional')
    cluster.step(cluster.voterIds[0]!, { kind: 'migrate', requestId: 'r1', jobId, to: null, where: { region: 'eu-west-1' } })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', n3).length > 0, 2_000)).toBe(true)
    cluster.checkpointed(n3, jobId, 'b3:regional-1', true)
    expect(cluster.runUntil(() => cluster.running(n1).has(jobId), 2_000)).toBe(true)
    cluster.advance(1_000)
    expect(cluster.ids.filter((id) => cluster.running(id).has(jobId))).toEqual([n1])
    expect(cluster.effectsOf('start-job', n4).filter((record) => record.effect.jobId === jobId)).toHaveLength(0)
    const start = cluster.effectsOf('start-job', n1).find((record) => record.effect.jobId === jobId)!.effect
    expect(start.restoreFrom?.cid).toBe('b3:regional-1')
  })

  it('re-auctions under the provider the same way', () => {
    const cluster = clusterWithJobOn(42, 'provided')
    const jobId = asJobId('provided')
    cluster.step(cluster.voterIds[2]!, { kind: 'migrate', requestId: 'p1', jobId, to: null, where: { provider: 'gcp' } })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', n3).length > 0, 2_000)).toBe(true)
    cluster.checkpointed(n3, jobId, 'b3:provided-1', true)
    expect(cluster.runUntil(() => cluster.running(n1).has(jobId), 2_000)).toBe(true)
  })

  it('refuses, changing nothing, when no registered node is there or the job forbids it', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 43, ...layout })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('fenced', { constraints: { regions: ['test-1'] } }))
    expect(cluster.runUntil(() => cluster.running(n3).has(asJobId('fenced')), 2_000)).toBe(true)
    const jobId = asJobId('fenced')
    cluster.step(leader.id, { kind: 'migrate', requestId: 'x1', jobId, to: null, where: { region: 'mars-1' } })
    expect(refusal(cluster, 'x1')).toMatch(/regions \[test-1\]; mars-1 is not among them/)
    cluster.submit(leader.id, testJob('free'))
    expect(cluster.runUntil(() => cluster.running(n3).has(asJobId('free')), 2_000)).toBe(true)
    cluster.step(leader.id, { kind: 'migrate', requestId: 'x2', jobId: asJobId('free'), to: null, where: { region: 'mars-1' } })
    expect(refusal(cluster, 'x2')).toMatch(/no registered node other than the job's own is in region mars-1 \(registered provider\/region: gcp\/eu-west-1, test\/test-1\)/)
    cluster.step(leader.id, { kind: 'migrate', requestId: 'x3', jobId: asJobId('free'), to: n4, where: { region: 'eu-west-1' } })
    expect(refusal(cluster, 'x3')).toMatch(/either the node to move to or a provider\/region/)
    cluster.advance(500)
    expect(cluster.effectsOf('checkpoint-job', n3)).toHaveLength(0)
    expect(jobRecord(cluster.peer(leader.id).document, jobId)!.migrate).toEqual({})
  })
})

describe('drain', () => {
  it('moves every copy off the node, re-placing without a snapshot the one whose checkpoint failed; the node bids nothing; undrain takes work again', () => {
    const cluster = clusterWithJobOn(44, 'first', 'second')
    const leader = cluster.awaitLeader()
    const bidsOfN3: Bid[] = []
    const standingOfN3: (StandingBid | null)[] = []
    cluster.onEffect((node, effect) => {
      if (effect.kind !== 'send' || node !== n3) return
      if (effect.message.kind === 'bid') bidsOfN3.push(effect.message.bid)
      if (effect.message.kind === 'standing-bid') standingOfN3.push(effect.message.standing)
    })
    cluster.step(leader.id, { kind: 'drain', requestId: 'd1', nodeId: n3 })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', n3).length >= 2, 2_000)).toBe(true)
    expect(cluster.effectsOf('checkpoint-job', n3).map((record) => [record.effect.jobId, record.effect.stop, record.effect.reason]).sort()).toEqual([['first', true, 'migrate'], ['second', true, 'migrate']])
    cluster.checkpointed(n3, asJobId('first'), 'b3:first-1', true)
    // No checkpoint for the second (the runtime could not dump it): it is stopped and started elsewhere afresh.
    cluster.step(n3, { kind: 'job-checkpoint-failed', jobId: asJobId('second'), reason: 'CRIU is not installed' })
    expect(cluster.effectsOf('stop-job', n3).some((record) => record.effect.jobId === 'second' && /drained without a checkpoint/.test(record.effect.reason))).toBe(true)
    expect(cluster.runUntil(() => ['first', 'second'].every((job) => cluster.ids.some((id) => id !== n3 && cluster.running(id).has(asJobId(job)))), 3_000)).toBe(true)
    expect(cluster.running(n3).size).toBe(0)
    const restarted = cluster.log.find((record) => record.effect.kind === 'start-job' && record.effect.jobId === 'second' && record.node !== n3)!.effect
    expect(restarted).toMatchObject({ restoreFrom: null })
    const moved = cluster.log.find((record) => record.effect.kind === 'start-job' && record.effect.jobId === 'first' && record.node !== n3)!.effect
    expect(moved).toMatchObject({ restoreFrom: { cid: 'b3:first-1', node: n3 } })
    // Drained: the cheapest node takes nothing new...
    cluster.submit(leader.id, testJob('newcomer'))
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(asJobId('newcomer'))), 2_000)).toBe(true)
    expect(cluster.running(n3).size).toBe(0)
    // ...it withdrew its standing bid, and bids nothing even when called by a leader that has not heard of the drain.
    expect(standingOfN3.at(-1)).toBeNull()
    const now = cluster.nowMs
    const call: CallForBidsMessage = {
      kind: 'call-for-bids',
      term: leader.term,
      call: { roundId: 'r-drain', leaderId: leader.id, openedAtMs: now, closesAtMs: now + 100, classes: [{ classId: 0, demand: { cpuMillis: 100, memoryMiB: 64, diskMiB: 0, gpuCount: 0, gpuModels: [], gpuMinMemoryMiB: 0 }, constraints: { labels: {}, spotAllowed: true }, replicas: 1 }] },
    }
    cluster.step(n3, { kind: 'message', from: leader.id, message: call })
    expect(bidsOfN3.at(-1)!.asks).toEqual([])
    // ...until it is undrained.
    cluster.step(leader.id, { kind: 'undrain', requestId: 'u1', nodeId: n3 })
    cluster.advance(300)
    cluster.submit(leader.id, testJob('welcome'))
    expect(cluster.runUntil(() => cluster.running(n3).has(asJobId('welcome')), 2_000)).toBe(true)
    expect(standingOfN3.at(-1)).not.toBeNull()
    cluster.step(n3, { kind: 'message', from: leader.id, message: call })
    expect(bidsOfN3.at(-1)!.asks.length).toBeGreaterThan(0)
    cluster.step(leader.id, { kind: 'undrain', requestId: 'u2', nodeId: n3 })
    expect(refusal(cluster, 'u2')).toMatch(/is not being drained/)
  })
})

describe('drain of a copy that never started', () => {
  it('places it elsewhere without starting it on the drained node', () => {
    // Calls for bids every round (no standing bids): n3 answers the call, then goes deaf.
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 46, ...layout, config: { standingBidTtlMs: 0 } })
    const leader = cluster.awaitLeader()
    cluster.advance(1_200) // every node heard on the capacity topic
    // n3 (the cheapest) bids, then hears nothing more: the job is placed and committed there, but n3
    // learns of it only after the drain.
    let deaf = false
    cluster.onEffect((node, effect) => {
      if (deaf || node !== n3 || effect.kind !== 'send' || effect.message.kind !== 'bid') return
      deaf = true
      for (const other of cluster.ids) if (other !== n3) cluster.cutOneWay(other, n3)
    })
    const jobId = asJobId('unstarted')
    const assignedNode = (): string | undefined => {
      const assignments = jobRecord(cluster.peer(leader.id).document, jobId)?.assignments ?? {}
      return Object.values(assignments).map((record) => String(record.node))[0]
    }
    cluster.submit(leader.id, testJob('unstarted'))
    expect(cluster.runUntil(() => assignedNode() !== undefined, 1_000)).toBe(true)
    expect(assignedNode()).toBe(n3)
    cluster.advance(200) // committed by the voters
    cluster.step(leader.id, { kind: 'drain', requestId: 'd2', nodeId: n3 })
    cluster.advance(100)
    cluster.heal()
    // The messages n3 missed reach it with the voters' next push (downstreamSyncIntervalMs).
    expect(cluster.runUntil(() => cluster.ids.some((id) => id !== n3 && cluster.running(id).has(jobId)), cluster.config.downstreamSyncIntervalMs + 3_000)).toBe(true)
    // n3 never started it (and so had nothing to checkpoint): it reported the copy evicted.
    expect(cluster.effectsOf('start-job', n3).filter((record) => record.effect.jobId === jobId)).toHaveLength(0)
    expect(cluster.effectsOf('checkpoint-job', n3)).toHaveLength(0)
    expect(String(jobRecord(cluster.peer(leader.id).document, jobId)!.runs[n3]?.state)).toBe('evicted')
  })
})

describe('checkpoint now', () => {
  it('checkpoints the running copy without stopping it and records the snapshot with its size; a node without the copy refuses', () => {
    const cluster = clusterWithJobOn(45, 'saver')
    const jobId = asJobId('saver')
    cluster.step(n4, { kind: 'checkpoint-now', requestId: 'c0', jobId })
    expect(cluster.events('checkpoint-answer').find((record) => record.event.requestId === 'c0')?.event.refused).toMatch(/runs no copy of saver/)
    cluster.step(n3, { kind: 'checkpoint-now', requestId: 'c1', jobId })
    expect(cluster.events('checkpoint-answer').find((record) => record.event.requestId === 'c1')?.event.refused).toBeNull()
    expect(cluster.effectsOf('checkpoint-job', n3).map((record) => record.effect)).toMatchObject([{ jobId, stop: false, reason: 'requested' }])
    // Asked again while it is under way: no second checkpoint, the same snapshot answers both.
    cluster.step(n3, { kind: 'checkpoint-now', requestId: 'c2', jobId })
    expect(cluster.effectsOf('checkpoint-job', n3)).toHaveLength(1)
    cluster.step(n3, { kind: 'job-checkpointed', jobId, cid: 'b3:saved-1', stopped: false, holders: [n4], sizeBytes: 123_456, chunks: 9 })
    cluster.advance(300)
    expect(cluster.running(n3).has(jobId)).toBe(true)
    for (const id of [n3, cluster.voterIds[0]!]) {
      expect(snapshotsOf(jobRecord(cluster.peer(id).document, jobId)!)).toMatchObject([{ node: n3, cid: 'b3:saved-1', holders: [n4], sizeBytes: 123_456, chunks: 9 }])
    }
  })
})
