// Admission records in the document: a grant the admin key signed (an admit or revoke request, an
// invite) is written by the node that took it and acknowledged once durable; every node then reads
// the same role, the latest grant deciding. A grant without the admin's signature, for another peer,
// or an invite used twice is refused; an open mesh admits no one (everyone may act there).
import { describe, expect, it } from 'vitest'
import * as A from '@automerge/automerge'
import { Cluster } from './testing/harness.ts'
import { signTestGrant } from './testing/grants.ts'
import { createGenesis, loadDocument } from './cluster-document.ts'
import { roleOf, type GrantFacts } from './admission-grants.ts'
import { actorOf } from './actors.ts'
import { asNodeId } from './types.ts'

const admin = { id: '12D3KooWadmin', secret: 'the admin key' }
const grant = (facts: Partial<GrantFacts> & Pick<GrantFacts, 'role' | 'atMs'>, secret = admin.secret): string =>
  signTestGrant(secret, { id: `g${facts.atMs}-${facts.role}`.padEnd(8, '0'), peer: null, nonce: null, ...facts })

describe('admission', () => {
  it('records a grant on every voter, then a later revocation; an older grant replayed changes nothing', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 1, seed: 21, admin })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const client = '12D3KooWclient'
    const admitted = grant({ role: 'submitter', peer: client, atMs: 1_000 })
    // Taken by a non-voter: any node may write a grant the admin signed.
    cluster.step(cluster.nonVoterIds[0]!, { kind: 'admit', requestId: 'a1', peerId: client, grant: admitted })
    expect(cluster.runUntil(() => cluster.events('submission-durable').some((record) => record.event.requestId === 'a1'), 2_000)).toBe(true)
    cluster.advance(500)
    for (const id of cluster.ids) expect(cluster.peer(id).roleOf(client)).toBe('submitter')
    cluster.step(leader.id, { kind: 'admit', requestId: 'a2', peerId: client, grant: grant({ role: 'revoked', peer: client, atMs: 2_000 }) })
    cluster.advance(cluster.config.downstreamSyncIntervalMs + 500) // non-voters hear it with their voter's push
    for (const id of cluster.ids) expect(cluster.peer(id).roleOf(client)).toBe('revoked')
    // The first grant again (a replay): it is already recorded, and older than the revocation.
    cluster.step(leader.id, { kind: 'admit', requestId: 'a3', peerId: client, grant: admitted })
    cluster.advance(500)
    for (const id of cluster.ids) expect(cluster.peer(id).roleOf(client)).toBe('revoked')
  })

  it('refuses, changing nothing, a grant not signed by the admin key, one for another peer, and a second use of an invite', () => {
    const cluster = new Cluster({ voters: 3, seed: 22, admin })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const reason = (requestId: string): string | undefined => cluster.events('submission-refused').find((record) => record.event.requestId === requestId)?.event.reason
    const heads = A.getHeads(leader.document)
    cluster.step(leader.id, { kind: 'admit', requestId: 'forged', peerId: 'mallory', grant: grant({ role: 'admin', peer: 'mallory', atMs: 5 }, 'not the admin key') })
    cluster.step(leader.id, { kind: 'admit', requestId: 'other', peerId: 'mallory', grant: grant({ role: 'admin', peer: 'alice', atMs: 6 }) })
    expect(reason('forged')).toMatch(/admin key's signature/)
    expect(reason('other')).toMatch(/for alice, not mallory/)
    expect(A.getHeads(leader.document)).toEqual(heads)
    const invite = grant({ role: 'node', nonce: 'nonce-0001', atMs: 7 })
    cluster.step(leader.id, { kind: 'admit', requestId: 'first', peerId: 'joiner-1', grant: invite })
    cluster.advance(300)
    expect(leader.roleOf('joiner-1')).toBe('node')
    cluster.step(leader.id, { kind: 'admit', requestId: 'second', peerId: 'joiner-2', grant: invite })
    expect(reason('second')).toMatch(/used already/)
    expect(leader.roleOf('joiner-2')).toBeUndefined()
  })

  it('an open mesh admits no one: everyone acts as admin there', () => {
    const cluster = new Cluster({ voters: 3, seed: 23 })
    const leader = cluster.awaitLeader()
    cluster.step(leader.id, { kind: 'admit', requestId: 'open', peerId: 'someone', grant: grant({ role: 'viewer', peer: 'someone', atMs: 1 }) })
    expect(cluster.events('submission-refused').find((record) => record.event.requestId === 'open')?.event.reason).toMatch(/no admin key/)
    expect(leader.roleOf('someone')).toBe('admin')
  })

  it('with an admin key, a stranger has no role; without one, everyone is admin; voters are nodes', () => {
    const closed = loadDocument(createGenesis({ voters: [asNodeId('v1')], admin: '12D3KooWadmin' }), actorOf(asNodeId('v1'), '01'))
    expect(roleOf(closed, 'stranger')).toBeUndefined()
    expect(roleOf(closed, 'v1')).toBe('node')
    const open = loadDocument(createGenesis({ voters: [asNodeId('v1')] }), actorOf(asNodeId('v1'), '01'))
    expect(roleOf(open, 'stranger')).toBe('admin')
  })
})
