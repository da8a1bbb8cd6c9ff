// Retries end to end in the core: a run that exits non-zero with attempts left keeps its failure
// in the record and is auctioned again (away from the node it failed on when another can take it);
// a failure with none left is final; a cancelled job is never retried; a leader change between
// attempts neither loses an attempt nor counts one twice. Usage reported at exit lands in the record.
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from './testing/harness.ts'
import { failedAttempts, finalRun, isJobDone, jobRecord, type JobRecord } from './cluster-document.ts'
import { attemptProgress } from './retries.ts'
import { asJobId, asNodeId, type JobId, type NodeId } from './types.ts'

/** The two non-voters are the cheapest nodes: lowest-cost jobs go to n3, else n4. */
const cheapFirst = { pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] }

const startsOf = (cluster: Cluster, jobId: JobId): NodeId[] => cluster.effectsOf('start-job').filter((record) => record.effect.jobId === jobId).map((record) => record.node)
const runningOn = (cluster: Cluster, jobId: JobId): NodeId | undefined => cluster.ids.find((id) => cluster.running(id).has(jobId))

/** Runs until the job has its `count`-th start and returns the node it runs on. */
function awaitStart(cluster: Cluster, jobId: JobId, count: number): NodeId {
  if (!cluster.runUntil(() => startsOf(cluster, jobId).length >= count && runningOn(cluster, jobId) !== undefined, 3_000)) {
    throw new Error(`${jobId} did not start a ${count}th time (starts: ${startsOf(cluster, jobId).join(', ')})`)
  }
  return runningOn(cluster, jobId)!
}

describe('retries', () => {
  it('retries a failed run while attempts are left, away from the node it failed on, until it succeeds', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 41, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('flaky')
    cluster.submit(leader.id, testJob('flaky', { retries: 2 }))
    const first = awaitStart(cluster, jobId, 1)
    expect(first).toBe(asNodeId('n3'))
    cluster.exited(first, jobId, 3)
    const second = awaitStart(cluster, jobId, 2)
    expect(second).not.toBe(first)
    const midway = attemptProgress(jobRecord(leader.document, jobId)!)
    expect([midway.attempt, midway.of, midway.failed.map((attempt) => [attempt.node, attempt.exitCode])]).toEqual([2, 3, [[first, 3]]])
    cluster.exited(second, jobId, 1)
    const third = awaitStart(cluster, jobId, 3)
    expect(third).not.toBe(second)
    cluster.exited(third, jobId, 0)
    expect(cluster.runUntil(() => cluster.effectsOf('archive-job', leader.id).some((record) => record.effect.job.id === jobId), 2_000)).toBe(true)
    const archived = cluster.effectsOf('archive-job', leader.id).find((record) => record.effect.job.id === jobId)!.effect.job
    expect([archived.state, archived.node, archived.exitCode, archived.attempts]).toEqual(['finished', third, 0, 3])
    cluster.advance(1_000)
    expect(startsOf(cluster, jobId)).toEqual([first, second, third])
  })

  it('ends failed after its last attempt: retries 1 runs twice', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 42, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('doomed')
    cluster.submit(leader.id, testJob('doomed', { retries: 1 }))
    cluster.exited(awaitStart(cluster, jobId, 1), jobId, 2)
    const last = awaitStart(cluster, jobId, 2)
    cluster.exited(last, jobId, 9)
    cluster.advance(2_000)
    expect(startsOf(cluster, jobId)).toHaveLength(2)
    const archived = cluster.effectsOf('archive-job', leader.id).find((record) => record.effect.job.id === jobId)?.effect.job
    expect([archived?.state, archived?.node, archived?.exitCode, archived?.attempts]).toEqual(['failed', last, 9, 2])
  })

  it('keeps a failure final for a job without retries (one run)', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 43, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('once')
    cluster.submit(leader.id, testJob('once'))
    cluster.exited(awaitStart(cluster, jobId, 1), jobId, 1)
    cluster.advance(2_000)
    expect(startsOf(cluster, jobId)).toHaveLength(1)
    const job = jobRecord(leader.document, jobId)
    // Archived already, or still in the document as final.
    if (job !== undefined) expect(finalRun(job)?.state).toBe('failed')
    else expect(cluster.effectsOf('archive-job', leader.id).find((record) => record.effect.job.id === jobId)?.effect.job.state).toBe('failed')
  })

  it('never retries a cancelled job, even one cancelled right after a failed attempt', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 44, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('stopme')
    cluster.submit(leader.id, testJob('stopme', { retries: 3 }))
    const first = awaitStart(cluster, jobId, 1)
    // The failure and the cancel reach the leader together: it must not place the job again.
    // (A cancel is written by a voter: the runner, a non-voter, refuses it for node/ to pass on.)
    cluster.exited(first, jobId, 1)
    const refused = cluster.step(first, { kind: 'cancel', requestId: 'cancel-at-runner', jobId })
    expect(refused).toContainEqual({ kind: 'event', event: expect.objectContaining({ kind: 'submission-refused', requestId: 'cancel-at-runner', reason: expect.stringMatching(/^not-a-voter/) }) })
    cluster.step(leader.id, { kind: 'cancel', requestId: 'cancel-stopme', jobId })
    cluster.advance(2_000)
    expect(startsOf(cluster, jobId)).toEqual([first])
    const archived = cluster.effectsOf('archive-job', leader.id).find((record) => record.effect.job.id === jobId)?.effect.job
    expect(archived?.state).toBe('cancelled')
  })

  it('stops a running retry that is cancelled and does not start another', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 45, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('stopretry')
    cluster.submit(leader.id, testJob('stopretry', { retries: 3 }))
    cluster.exited(awaitStart(cluster, jobId, 1), jobId, 1)
    const second = awaitStart(cluster, jobId, 2)
    cluster.step(leader.id, { kind: 'cancel', requestId: 'cancel-retry', jobId })
    expect(cluster.runUntil(() => !cluster.running(second).has(jobId), 2_000)).toBe(true)
    expect(cluster.effectsOf('stop-job', second).find((record) => record.effect.jobId === jobId)?.effect.reason).toBe('cancelled')
    cluster.advance(2_000)
    expect(startsOf(cluster, jobId)).toHaveLength(2)
  })

  it('takes the same node again when no other node can run the retry', () => {
    const cluster = new Cluster({ voters: 1, seed: 46 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('alone')
    cluster.submit(leader.id, testJob('alone', { retries: 1 }))
    cluster.exited(awaitStart(cluster, jobId, 1), jobId, 1)
    expect(awaitStart(cluster, jobId, 2)).toBe(leader.id)
    cluster.exited(leader.id, jobId, 0)
    cluster.advance(500)
    const job = jobRecord(leader.document, jobId)
    expect(job === undefined || isJobDone(job)).toBe(true)
    expect(startsOf(cluster, jobId)).toEqual([leader.id, leader.id])
  })

  it('neither loses nor double-counts an attempt when the leader changes between attempts', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 47, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('handover')
    cluster.submit(leader.id, testJob('handover', { retries: 3 }))
    const first = awaitStart(cluster, jobId, 1)
    // The failure reaches the leader, which dies before its retry can commit.
    cluster.exited(first, jobId, 1)
    expect(cluster.runUntil(() => failedAttempts(jobRecord(leader.document, jobId)!).length === 1, 1_000)).toBe(true)
    cluster.crash(leader.id)
    const next = cluster.awaitLeader(3_000)
    expect(next.id).not.toBe(leader.id)
    const second = awaitStart(cluster, jobId, 2)
    // The old leader comes back as a follower; then the new one changes too, while the retry runs.
    cluster.restart(leader.id)
    cluster.advance(500)
    cluster.crash(next.id)
    const third = cluster.awaitLeader(3_000)
    cluster.advance(1_000)
    // The running retry is not placed again by the newer leader.
    expect(startsOf(cluster, jobId)).toHaveLength(2)
    cluster.exited(second, jobId, 0)
    expect(cluster.runUntil(() => {
      const job = jobRecord(third.document, jobId)
      return job !== undefined && isJobDone(job)
    }, 2_000)).toBe(true)
    const job = jobRecord(third.document, jobId)!
    expect(finalRun(job)?.state).toBe('finished')
    expect(failedAttempts(job).map((attempt) => attempt.node)).toEqual([first])
    expect(attemptProgress(job)).toMatchObject({ attempt: 2, of: 4 })
    expect(startsOf(cluster, jobId)).toEqual([first, second])
  })

  it('records what a run used in its record', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 48, ...cheapFirst })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const jobId = asJobId('metered')
    cluster.submit(leader.id, testJob('metered', { retries: 1 }))
    const first = awaitStart(cluster, jobId, 1)
    const failedUsage = { cpuSeconds: 0.25, peakMemoryBytes: 41 * 2 ** 20, wallMs: 812 }
    cluster.exited(first, jobId, 1, failedUsage)
    const second = awaitStart(cluster, jobId, 2)
    const usage = { cpuSeconds: 1.5, peakMemoryBytes: null, wallMs: 2_000 }
    cluster.exited(second, jobId, 0, usage)
    expect(cluster.runUntil(() => jobRecord(leader.document, jobId)?.runs[second]?.usage !== undefined, 1_000)).toBe(true)
    const job = jobRecord(leader.document, jobId)!
    expect(job.runs[second]!.usage).toEqual(usage)
    expect(failedAttempts(job)[0]!.usage).toEqual(failedUsage)
    expect(cluster.runUntil(() => cluster.effectsOf('archive-job', leader.id).some((record) => record.effect.job.id === jobId), 1_000)).toBe(true)
    expect(cluster.effectsOf('archive-job', leader.id).find((record) => record.effect.job.id === jobId)!.effect.job.usage).toEqual(usage)
  })
})

describe('when a failure is final', () => {
  const run = (state: string, term: number, seq: number, exitCode: number) => ({ state, term, seq, exitCode, atMs: term * 100 + seq })
  const attempt = (node: string, term: number, seq: number, exitCode: number) => ({ node, term, seq, exitCode, atMs: term * 100 + seq })
  /** Every run and attempt here ran under an assignment to its node (records of a job a node never ran do not count). */
  const assignment = (node: string, term: number, seq: number) => ({ [`${term}.${seq}`]: { node, term, seq } })
  const assignments = { ...assignment('n1', 1, 1), ...assignment('n1', 1, 2), ...assignment('n1', 1, 3) }
  const record = (fields: Record<string, unknown>): JobRecord => ({ runs: {}, cancelled: {}, assignments, ...fields }) as unknown as JobRecord

  it('in a record made before retries (no attempts kept), at the first failure', () => {
    const job = record({ runs: { n1: run('failed', 1, 1, 2) } })
    expect(isJobDone(job)).toBe(true)
    expect(finalRun(job)).toMatchObject({ node: 'n1', state: 'failed' })
  })

  it('with attempts kept, only once they reach the spec\'s retries + 1, whatever the run records say since', () => {
    const once = record({ maxAttempts: 2, runs: { n1: run('failed', 1, 1, 2) }, attempts: { '1.1': attempt('n1', 1, 1, 2) } })
    expect([isJobDone(once), finalRun(once)]).toEqual([false, null])
    // The second failure ran on n1 again, whose run record a stale report rewrote afterwards.
    const twice = record({ maxAttempts: 2, runs: { n1: run('stopped', 1, 3, -1) }, attempts: { '1.1': attempt('n1', 1, 1, 2), '1.2': attempt('n1', 1, 2, 7) } })
    expect(isJobDone(twice)).toBe(true)
    expect(finalRun(twice)).toMatchObject({ node: 'n1', state: 'failed', run: { term: 1, seq: 2, exitCode: 7 } })
  })
})

