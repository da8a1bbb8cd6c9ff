// Admission records in the document: an admit request (its admin signature is checked by node/)
// is written by the node that took it and acknowledged once durable; every node then reads the
// same role. Voters and registered nodes are nodes; an open mesh (no admin key) admits everyone.
import { describe, expect, it } from 'vitest'
import * as A from '@automerge/automerge'
import { Cluster } from './testing/harness.ts'
import { createGenesis, loadDocument, roleOf } from './cluster-document.ts'
import { asNodeId } from './types.ts'

describe('admission', () => {
  it('records an admitted client with its role on every voter, then its revocation', () => {
    const cluster = new Cluster({ voters: 3, seed: 21 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const follower = cluster.voterIds.find((id) => id !== leader.id)!
    cluster.step(follower, { kind: 'admit', requestId: 'a1', peerId: '12D3KooWclient', role: 'submitter' })
    expect(cluster.runUntil(() => cluster.events('submission-durable').some((record) => record.event.requestId === 'a1'), 2_000)).toBe(true)
    cluster.advance(500)
    for (const id of cluster.voterIds) expect(cluster.peer(id).roleOf('12D3KooWclient')).toBe('submitter')
    cluster.step(leader.id, { kind: 'admit', requestId: 'a2', peerId: '12D3KooWclient', role: 'revoked' })
    cluster.advance(500)
    for (const id of cluster.voterIds) expect(cluster.peer(id).roleOf('12D3KooWclient')).toBe('revoked')
  })

  it('refuses an unknown role and changes nothing', () => {
    const cluster = new Cluster({ voters: 3, seed: 22 })
    const leader = cluster.awaitLeader()
    const heads = A.getHeads(leader.document)
    cluster.step(leader.id, { kind: 'admit', requestId: 'bad', peerId: 'x', role: 'root' as never })
    expect(cluster.events('submission-refused').find((record) => record.event.requestId === 'bad')?.event.reason).toMatch(/unknown role/)
    expect(A.getHeads(leader.document)).toEqual(heads)
  })

  it('with an admin key, a stranger has no role; without one, everyone is admin; voters are nodes', () => {
    const closed = loadDocument(createGenesis({ voters: [asNodeId('v1')], admin: '12D3KooWadmin' }), asNodeId('v1'))
    expect(roleOf(closed, 'stranger')).toBeUndefined()
    expect(roleOf(closed, 'v1')).toBe('node')
    const open = loadDocument(createGenesis({ voters: [asNodeId('v1')] }), asNodeId('v1'))
    expect(roleOf(open, 'stranger')).toBe('admin')
  })
})
