// Proves the read-side answers the client protocol builds from a real cluster document (the
// consensus core run in its deterministic harness): a job of three replicas is listed once with its
// three records and a state that is its slowest replica's; `job` details every replica's history;
// the committed-assignment watch reports each commit once; and the live plan offers each node's
// capacity less what the document places there, placing nothing.
import * as A from '@automerge/automerge'
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from '../consensus/testing/harness.ts'
import { asJobId, readUsage, replicaRecords } from '../consensus/index.ts'
import { jobDetailSchema } from './client-wire.ts'
import { jobSpec } from '../placement/testing.ts'
import { CommittedAssignmentWatch } from './assignment-watch.ts'
import { jobDetail, listJobs, parentJobId } from './job-views.ts'
import { planOnDocument, usedByNode } from './live-plan.ts'

function clusterRunningWeb(): Cluster {
  const cluster = new Cluster({ voters: 3, seed: 5 })
  const leader = cluster.awaitLeader()
  cluster.advance(200)
  cluster.submit(leader.id, testJob('web', { replicas: 3 }))
  const running = (): number => cluster.ids.reduce((total, id) => total + [...cluster.running(id)].filter((jobId) => jobId.startsWith('web#')).length, 0)
  expect(cluster.runUntil(() => running() === 3, 2_000)).toBe(true)
  cluster.advance(1_500) // commit markers reach the document
  return cluster
}

describe('job views of a job with replicas', () => {
  it('lists a job of three replicas once, with its records, and details each replica', () => {
    const cluster = clusterRunningWeb()
    const document = cluster.awaitLeader().document
    const { jobs } = listJobs(document, [], 100)
    expect(jobs).toHaveLength(1)
    const web = jobs[0]!
    expect(web).toMatchObject({ id: 'web', name: 'web', state: 'assigned', archived: false })
    expect(web.replicas.map((replica) => replica.id)).toEqual(['web#0', 'web#1', 'web#2'])
    expect(web.replicas.every((replica) => replica.state === 'assigned' && replica.node !== null)).toBe(true)

    const detail = jobDetail(document, asJobId('web'), [], undefined)!
    expect(detail.replicas).toHaveLength(3)
    expect(new Set(detail.assignments.map((assignment) => assignment.replica))).toEqual(new Set(['web#0', 'web#1', 'web#2']))
    expect(detail.assignments.every((assignment) => assignment.committed)).toBe(true)
    // One replica asked for by its own id: that record alone.
    const one = jobDetail(document, asJobId('web#1'), [], undefined)!
    expect(one.replicas.map((replica) => replica.id)).toEqual(['web#1'])
    expect(one.assignments.map((assignment) => assignment.replica)).toEqual(['web#1'])
    expect(jobDetail(document, asJobId('nothing'), [], undefined)).toBeUndefined()
  })

  it('takes the slowest replica as the job state, and archived replicas join their job', () => {
    const cluster = clusterRunningWeb()
    const document = cluster.awaitLeader().document
    const records = replicaRecords(document, 'web')
    const archivedOne = { id: asJobId('old#0'), name: 'old', state: 'finished' as const, node: records[0]!.job.origin as never, exitCode: 0, submittedAtMs: 1, finishedAtMs: 2 }
    const archivedTwo = { ...archivedOne, id: asJobId('old#1'), exitCode: 3, state: 'failed' as const }
    const { jobs } = listJobs(document, [archivedOne, archivedTwo], 100)
    const old = jobs.find((job) => job.id === 'old')!
    expect(old).toMatchObject({ state: 'failed', archived: true, exitCode: 3 })
    expect(old.replicas.map((replica) => replica.id)).toEqual(['old#0', 'old#1'])
    // An archived job shows what it ran, quoted as a shell would take it back; an older archive, nothing.
    const withCommand = { ...archivedOne, id: asJobId('ran#0'), name: 'ran', command: ['sh', '-c', 'echo hi; exit 3'] }
    expect(jobDetail(document, asJobId('ran'), [withCommand], undefined)!.command).toBe("sh -c 'echo hi; exit 3'")
    expect(jobDetail(document, asJobId('old'), [archivedOne], undefined)!.command).toBe('')
    expect(parentJobId('old#12')).toBe('old')
    expect(parentJobId('plain')).toBe('plain')
  })
})

describe('committed assignment watch', () => {
  it('reports every committed assignment once, and a later one when it comes', () => {
    const cluster = clusterRunningWeb()
    const leader = cluster.awaitLeader()
    const watch = new CommittedAssignmentWatch()
    const first = watch.scan(leader.document, { term: leader.term, committedSeq: leader.committedSeq })
    expect(first.map((assignment) => assignment.jobId).sort()).toEqual(['web#0', 'web#1', 'web#2'])
    expect(watch.scan(leader.document, { term: leader.term, committedSeq: leader.committedSeq })).toEqual([])
    cluster.submit(leader.id, testJob('api'))
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(asJobId('api'))), 2_000)).toBe(true)
    const later = watch.scan(cluster.awaitLeader().document, { term: leader.term, committedSeq: cluster.awaitLeader().committedSeq })
    expect(later.map((assignment) => assignment.jobId)).toEqual(['api'])
  })

  it('sees nothing committed on a document without commit markers when told of no leader', () => {
    const cluster = new Cluster({ voters: 3, seed: 9 })
    cluster.awaitLeader()
    expect(new CommittedAssignmentWatch().scan(cluster.awaitLeader().document, null)).toEqual([])
  })
})

describe('live plan', () => {
  it('offers what the document leaves free on each live node and places nothing', () => {
    const cluster = clusterRunningWeb()
    const document = cluster.awaitLeader().document
    const heads = A.getHeads(document)
    const used = usedByNode(document)
    expect([...used.values()].reduce((total, resources) => total + resources.cpuMillis, 0)).toBe(3_000)
    const silent = cluster.ids[2]!
    const plan = planOnDocument(document, jobSpec({ name: 'big', command: ['true'], resources: { cpu: 3.5, memory: '1Gi' } }), {
      nowMs: 0,
      isAlive: (nodeId) => nodeId !== silent,
      describeSilence: () => 'silent',
    })
    expect(plan.considered).toBe(2)
    expect(plan.leftOut).toEqual([{ nodeId: silent, reason: 'silent' }])
    // Each node has 4 cores and runs one 1-core replica: 3 free, so 3.5 cores fit nowhere.
    expect(plan.explanation.awards).toEqual([])
    expect(plan.explanation.rows.every((row) => row.excluded?.kind === 'resources')).toBe(true)
    const fits = planOnDocument(document, jobSpec({ name: 'small', command: ['true'], resources: { cpu: 2, memory: '1Gi' }, replicas: 2 }), { nowMs: 0, isAlive: () => true, describeSilence: () => '' })
    expect(fits.explanation.awards).toHaveLength(2)
    expect(A.getHeads(document)).toEqual(heads)
  })
})

describe('job views of a job with retries', () => {
  it('shows a replica whose run failed with attempts left as pending, with the failed attempt and its usage, in a detail the wire accepts', () => {
    const cluster = new Cluster({ voters: 3, seed: 6 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('flaky')
    cluster.submit(leader.id, testJob('flaky', { retries: 2 }))
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(jobId)), 2_000)).toBe(true)
    const runner = cluster.ids.find((id) => cluster.running(id).has(jobId))!
    const usage = { cpuSeconds: 0.5, peakMemoryBytes: 52_428_800, wallMs: 700 }
    cluster.exited(runner, jobId, 3, usage)
    // The runner's own document, before the leader places it again.
    const document = cluster.peer(runner).document
    expect(listJobs(document, [], 100).jobs.find((job) => job.id === 'flaky')).toMatchObject({ state: 'pending', node: null })
    const detail = jobDetail(document, jobId, [], undefined)!
    expect(detail.attempts).toEqual([{ replica: 'flaky', attempt: 2, of: 3, failed: [expect.objectContaining({ attempt: 1, node: runner, exitCode: 3, usage })] }])
    expect(detail.runs).toEqual([expect.objectContaining({ node: runner, state: 'failed', usage })])
    expect(jobDetailSchema.parse(detail)).toEqual(detail)
  })

  it('reads a usage record any peer may have written: each figure a number >= 0 or null', () => {
    expect(readUsage({ cpuSeconds: 'lots', peakMemoryBytes: -1, wallMs: 5 })).toEqual({ cpuSeconds: null, peakMemoryBytes: null, wallMs: 5 })
    expect(readUsage({ cpuSeconds: Number.NaN, peakMemoryBytes: Number.POSITIVE_INFINITY })).toEqual({ cpuSeconds: null, peakMemoryBytes: null, wallMs: null })
    expect(readUsage('junk')).toBeNull()
    expect(readUsage(null)).toBeNull()
  })
})
