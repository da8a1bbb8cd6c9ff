// Cancelling a job through any node: every replica stops on its runner, the job is archived as
// cancelled, the request is acknowledged once durable on a majority, and a cancel of an unknown
// or finished job is refused and changes nothing.
import { describe, expect, it } from 'vitest'
import * as A from '@automerge/automerge'
import { Cluster, testJob } from './testing/harness.ts'
import { isJobDone, replicaRecords } from './cluster-document.ts'
import { asJobId } from './types.ts'

describe('cancel', () => {
  it('stops every replica of a running job, archives it as cancelled and acknowledges the request', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 11 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    cluster.submit(leader.id, testJob('web', { replicas: 3 }))
    const running = (): number => cluster.ids.reduce((total, id) => total + [...cluster.running(id)].filter((jobId) => jobId.startsWith('web#')).length, 0)
    expect(cluster.runUntil(() => running() === 3, 2_000)).toBe(true)
    // Through a follower (voters hold every job; a non-voter's copy of the document may lag).
    const via = cluster.voterIds.find((id) => id !== leader.id)!
    cluster.step(via, { kind: 'cancel', requestId: 'cancel-1', jobId: asJobId('web') })
    expect(cluster.runUntil(() => running() === 0, 2_000)).toBe(true)
    expect(cluster.runUntil(() => cluster.events('submission-durable').some((record) => record.event.requestId === 'cancel-1'), 2_000)).toBe(true)
    const stops = cluster.effectsOf('stop-job').filter((record) => record.effect.jobId.startsWith('web#'))
    expect(stops.map((record) => record.effect.reason)).toEqual(['cancelled', 'cancelled', 'cancelled'])
    const archived = cluster.effectsOf('archive-job', leader.id).filter((record) => record.effect.job.id.startsWith('web#'))
    expect(archived.map((record) => record.effect.job.state)).toEqual(['cancelled', 'cancelled', 'cancelled'])
    // Each is archived as ended where it ran (where `fabric logs` finds its output), not on the node the cancel came through.
    const ranOn = new Map(stops.map((record) => [record.effect.jobId as string, record.node]))
    expect(new Set(ranOn.values()).size).toBe(3)
    for (const record of archived) expect(record.effect.job.node).toBe(ranOn.get(record.effect.job.id))
    // And with what it ran, which `fabric job` shows once the job has left the document.
    for (const record of archived) expect(record.effect.job.command).toEqual(['sleep', 'forever'])
    for (const { job } of replicaRecords(leader.document, 'web')) expect(isJobDone(job)).toBe(true)
  })

  it('refuses to cancel a job that is not active, changing nothing', () => {
    const cluster = new Cluster({ voters: 3, seed: 12 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const heads = A.getHeads(leader.document)
    cluster.step(leader.id, { kind: 'cancel', requestId: 'nope', jobId: asJobId('never-submitted') })
    const refused = cluster.events('submission-refused').find((record) => record.event.requestId === 'nope')
    expect(refused?.event.reason).toMatch(/not active/)
    expect(A.getHeads(leader.document)).toEqual(heads)
  })

  it('refuses a cancel or migrate naming an inherited property (__proto__, constructor) instead of throwing', () => {
    const cluster = new Cluster({ voters: 3, seed: 13 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const heads = A.getHeads(leader.document)
    for (const id of ['__proto__', 'constructor', 'toString']) {
      cluster.step(leader.id, { kind: 'cancel', requestId: `cancel-${id}`, jobId: asJobId(id) })
      cluster.step(leader.id, { kind: 'migrate', requestId: `migrate-${id}`, jobId: asJobId(id), to: null })
      cluster.step(leader.id, { kind: 'migrate', requestId: `migrate-to-${id}`, jobId: asJobId(id), to: id as never })
    }
    const refused = cluster.events('submission-refused').map((record) => record.event.requestId)
    expect(refused).toHaveLength(9)
    expect(A.getHeads(leader.document)).toEqual(heads)
  })
})
