// Moving a running replica: a migrate request reaches its runner, which checkpoints and stops the
// copy; the leader places it again away from that node (or on the node asked for), and the new
// runner starts it from the snapshot. Periodic checkpoints follow the spec's policy, and a replica
// re-placed after its node is lost restores from its latest snapshot.
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from './testing/harness.ts'
import { asJobId, asNodeId } from './types.ts'

const cheapFirst = { pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] }

describe('migration', () => {
  it('checkpoints and stops the copy, places it elsewhere, and restores it from the snapshot', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 31, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('mover')
    const [from, to] = [asNodeId('n3'), asNodeId('n4')]
    cluster.submit(leader.id, testJob('mover'))
    expect(cluster.runUntil(() => cluster.running(from).has(jobId), 2_000)).toBe(true)
    cluster.step(cluster.voterIds.find((id) => id !== leader.id)!, { kind: 'migrate', requestId: 'm1', jobId, to: null })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', from).length > 0, 2_000)).toBe(true)
    const checkpoint = cluster.effectsOf('checkpoint-job', from)[0]!.effect
    expect([checkpoint.stop, checkpoint.reason]).toEqual([true, 'migrate'])
    cluster.checkpointed(from, jobId, 'b3:snapshot-1', true)
    expect(cluster.runUntil(() => cluster.running(to).has(jobId), 2_000)).toBe(true)
    const start = cluster.effectsOf('start-job', to).find((record) => record.effect.jobId === jobId)!.effect
    expect(start.restoreFrom).toEqual({ cid: 'b3:snapshot-1', node: from, holders: [] })
    cluster.advance(1_000)
    // The source never runs it again, and no second copy appears.
    expect(cluster.effectsOf('start-job', from).filter((record) => record.effect.jobId === jobId)).toHaveLength(1)
    expect(cluster.ids.filter((id) => cluster.running(id).has(jobId))).toEqual([to])
  })

  it('moves to the node asked for, even when it is not the cheapest', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 32, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('pinned')
    cluster.submit(leader.id, testJob('pinned'))
    expect(cluster.runUntil(() => cluster.running(asNodeId('n3')).has(jobId), 2_000)).toBe(true)
    cluster.step(leader.id, { kind: 'migrate', requestId: 'm2', jobId, to: cluster.voterIds[0]! })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', asNodeId('n3')).length > 0, 2_000)).toBe(true)
    cluster.checkpointed(asNodeId('n3'), jobId, 'b3:snapshot-2', true)
    expect(cluster.runUntil(() => cluster.running(cluster.voterIds[0]!).has(jobId), 2_000)).toBe(true)
  })

  it('takes periodic checkpoints by the spec and restores a replica re-placed after its node is lost from the latest one', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 33, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('trainer')
    const [first, second] = [asNodeId('n3'), asNodeId('n4')]
    cluster.submit(leader.id, testJob('trainer', { checkpoint: { interval: '1s' } }))
    expect(cluster.runUntil(() => cluster.running(first).has(jobId), 2_000)).toBe(true)
    for (const cid of ['b3:periodic-1', 'b3:periodic-2']) {
      const before = cluster.effectsOf('checkpoint-job', first).length
      expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', first).length > before, 1_500)).toBe(true)
      expect(cluster.effectsOf('checkpoint-job', first).at(-1)!.effect).toMatchObject({ stop: false, reason: 'periodic' })
      cluster.checkpointed(first, jobId, cid, false)
      cluster.advance(200) // the snapshot record reaches the voters
    }
    cluster.crash(first)
    expect(cluster.runUntil(() => cluster.running(second).has(jobId), cluster.config.nodeTimeoutMs + 3_000)).toBe(true)
    const start = cluster.effectsOf('start-job', second).find((record) => record.effect.jobId === jobId)!.effect
    expect(start.restoreFrom).toEqual({ cid: 'b3:periodic-2', node: first, holders: [] })
  })

  it('drains a node: its jobs move away and nothing new is placed there', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 35, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const [drained, other] = [asNodeId('n3'), asNodeId('n4')]
    cluster.submit(leader.id, testJob('resident'))
    expect(cluster.runUntil(() => cluster.running(drained).has(asJobId('resident')), 2_000)).toBe(true)
    cluster.step(leader.id, { kind: 'drain', requestId: 'd1', nodeId: drained })
    expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', drained).length > 0, 2_000)).toBe(true)
    cluster.checkpointed(drained, asJobId('resident'), 'b3:drained-1', true)
    expect(cluster.runUntil(() => cluster.running(other).has(asJobId('resident')), 2_000)).toBe(true)
    // The cheapest node is drained: a new job goes elsewhere.
    cluster.submit(leader.id, testJob('newcomer'))
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(asJobId('newcomer'))), 2_000)).toBe(true)
    expect(cluster.running(drained).size).toBe(0)
  })

  it('refuses to move a job that runs nowhere', () => {
    const cluster = new Cluster({ voters: 3, seed: 34 })
    const leader = cluster.awaitLeader()
    cluster.step(leader.id, { kind: 'migrate', requestId: 'm3', jobId: asJobId('ghost'), to: null })
    expect(cluster.events('submission-refused').find((record) => record.event.requestId === 'm3')?.event.reason).toMatch(/no running replica/)
  })
})
