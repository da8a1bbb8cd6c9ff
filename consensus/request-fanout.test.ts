// With requestFanout 'majority' a request goes to the leader and just enough other voters for a
// majority, not to every voter: the rest receive it with the leader's decision. It is still
// acknowledged only once a majority persisted it, and when the voter it went to is cut off, the
// retry pushes it to the others. The default sends it to every voter.
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from './testing/harness.ts'
import { jobRecord } from './cluster-document.ts'
import { asJobId, type NodeId, type PeerEffect } from './types.ts'

const syncTargets = (effects: readonly PeerEffect[]): NodeId[] =>
  effects.flatMap((effect) => (effect.kind === 'send' && effect.message.kind === 'sync' && effect.message.data !== null ? [effect.to] : [])).sort()

const durable = (cluster: Cluster, requestId: string): boolean => cluster.events('submission-durable').some((record) => record.event.requestId === requestId)

const majority = { config: { requestFanout: 'majority' as const } }

describe('request fan-out', () => {
  it('by default sends a submission to every voter', () => {
    const cluster = new Cluster({ voters: 5, seed: 30 })
    const leader = cluster.awaitLeader()
    cluster.advance(500)
    const follower = cluster.ids.find((id) => id !== leader.id)!
    expect(syncTargets(cluster.submit(follower, testJob('everyone')))).toEqual(cluster.ids.filter((id) => id !== follower).sort())
  })

  it('sends a submission to the leader and one other of five voters; every voter holds it once the leader decided', () => {
    const cluster = new Cluster({ voters: 5, seed: 31, ...majority })
    const leader = cluster.awaitLeader()
    cluster.advance(500)
    const follower = cluster.ids.find((id) => id !== leader.id)!
    const effects = cluster.submit(follower, testJob('fanned'))
    const targets = syncTargets(effects)
    expect(targets).toHaveLength(2)
    expect(targets).toContain(leader.id)
    expect(durable(cluster, 'fanned')).toBe(false)
    expect(cluster.runUntil(() => durable(cluster, 'fanned'), 1_000)).toBe(true)
    // The two voters it was not sent to have it from the leader (with its placement).
    expect(cluster.runUntil(() => cluster.ids.every((id) => jobRecord(cluster.peer(id).document, asJobId('fanned')) !== undefined), 1_000)).toBe(true)
    // Successive submissions take turns among the other voters.
    const next = syncTargets(cluster.submit(follower, testJob('turn')))
    expect(next).toContain(leader.id)
    expect(next.filter((id) => id !== leader.id)).not.toEqual(targets.filter((id) => id !== leader.id))
  })

  it('a submission whose other voter is cut off is acknowledged after the retry reaches the rest', () => {
    const cluster = new Cluster({ voters: 5, seed: 32, ...majority })
    const leader = cluster.awaitLeader()
    cluster.advance(500)
    const follower = cluster.ids.find((id) => id !== leader.id)!
    const effects = cluster.submit(follower, testJob('retried'))
    const chosen = syncTargets(effects).find((id) => id !== leader.id)!
    cluster.isolate(chosen)
    // Not acknowledged on the leader alone (two of five)...
    cluster.advance(cluster.config.submitRetryMs - 50)
    expect(durable(cluster, 'retried')).toBe(false)
    // ...until the retry pushes it to the voters that have not acknowledged it.
    expect(cluster.runUntil(() => durable(cluster, 'retried'), 2 * cluster.config.submitRetryMs)).toBe(true)
  })

  it('goes to every voter while no leader is known', () => {
    const cluster = new Cluster({ voters: 5, seed: 33, ...majority })
    const someone = cluster.ids[1]!
    expect(cluster.peer(someone).knownLeaderId).toBeNull()
    const targets = syncTargets(cluster.submit(someone, testJob('early')))
    expect(targets).toEqual(cluster.ids.filter((id) => id !== someone).sort())
  })
})
