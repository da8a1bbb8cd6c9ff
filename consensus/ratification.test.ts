// A new leader's first decision ratifies what earlier leaders decided and it holds: their assignments
// are committed with it. Its first round must already count them so, or it places every job running
// under one again (a copy started elsewhere, the running one fenced), on each leader change.
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from './testing/harness.ts'
import { asJobId } from './types.ts'

describe('ratification', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`keeps every committed copy running where it is across three leader changes (seed ${seed})`, () => {
      const cluster = new Cluster({ voters: 5, seed })
      let leader = cluster.awaitLeader()
      cluster.advance(300)
      const followers = cluster.ids.filter((id) => id !== leader.id)
      const jobs = Array.from({ length: 12 }, (_, index) => `job${index}`)
      jobs.forEach((id, index) => cluster.submit(followers[index % followers.length]!, testJob(id)))
      cluster.advance(20 + (seed % 7) * 5)
      // The leader is cut off while decisions are in flight, and heals as a follower: three times.
      for (let change = 0; change < 3; change++) {
        cluster.isolate(leader.id)
        cluster.advance(400 + (seed % 5) * 40)
        cluster.heal()
        leader = cluster.awaitLeader()
        cluster.advance(30 + seed * 3)
      }
      cluster.advance(2_000)
      const fenced = cluster.effectsOf('stop-job').map(({ node, effect }) => `${node} ${effect.jobId}: ${effect.reason}`)
      expect(fenced).toEqual([])
      for (const id of jobs) {
        const starts = cluster.effectsOf('start-job').filter(({ effect }) => effect.jobId === asJobId(id))
        expect(starts, `${id} started once`).toHaveLength(1)
      }
    })
  }
})
