// Majority rules (quorum.ts), committee changes on the Peer, and the Peer's handling of bad input.
import * as A from '@automerge/automerge'
import { describe, expect, it } from 'vitest'
import { Cluster } from './testing/harness.ts'
import { asNodeId, committeeVoters, leaderSeqOf, isJointMajority, isMajority, majorityValue, validateCommitteeChange, type NodeId, type PeerMessage, type Term } from './index.ts'

/** A sync message as a peer would receive it (leaderHint: null, as from a peer that follows no leader). */
const syncMessage = (fields: { term: Term; data: Uint8Array | null; leaderSeq?: number; originSeq?: number; epoch?: string }): PeerMessage =>
  ({
    kind: 'sync',
    term: fields.term,
    data: fields.data,
    ack: { term: fields.term, leaderSeq: fields.leaderSeq ?? 0, originSeq: fields.originSeq ?? 0, origin: '' },
    channel: { epoch: fields.epoch ?? 'ee', seq: 1 },
    leaderHint: null,
  }) as PeerMessage

const ids = (...names: string[]): NodeId[] => names.map(asNodeId)
const set = (...names: string[]): Set<NodeId> => new Set(ids(...names))

describe('isMajority', () => {
  it('needs strictly more than half of the voters, counting only voters', () => {
    const three = ids('a', 'b', 'c')
    expect(isMajority(set('a'), three)).toBe(false)
    expect(isMajority(set('a', 'b'), three)).toBe(true)
    expect(isMajority(set('a', 'x', 'y', 'z'), three)).toBe(false) // non-voters do not count
    const four = ids('a', 'b', 'c', 'd')
    expect(isMajority(set('a', 'b'), four)).toBe(false) // half is not a majority
    expect(isMajority(set('a', 'b', 'c'), four)).toBe(true)
    const five = ids('a', 'b', 'c', 'd', 'e')
    expect(isMajority(set('a', 'b'), five)).toBe(false)
    expect(isMajority(set('c', 'd', 'e'), five)).toBe(true)
    expect(isMajority(new Set(), [])).toBe(false)
  })

  it("with broken: 'no-quorum' any single agreeing node counts as a majority", () => {
    expect(isMajority(set('a'), ids('a', 'b', 'c', 'd', 'e'), 'no-quorum')).toBe(true)
    expect(isMajority(new Set(), ids('a', 'b', 'c'), 'no-quorum')).toBe(false)
  })
})

describe('isJointMajority', () => {
  it('needs a majority of every committee during a change', () => {
    const old = ids('a', 'b', 'c')
    const next = ids('a', 'b', 'c', 'd')
    expect(isJointMajority(set('a', 'b'), [old, next])).toBe(false) // 2 of 3, but only 2 of 4
    expect(isJointMajority(set('a', 'b', 'd'), [old, next])).toBe(true)
    expect(isJointMajority(set('c', 'd'), [ids('a', 'b', 'c'), ids('b', 'c', 'd')])).toBe(false)
    expect(isJointMajority(set('b', 'c'), [ids('a', 'b', 'c'), ids('b', 'c', 'd')])).toBe(true)
    expect(isJointMajority(set('a', 'b'), [old])).toBe(true)
  })
})

describe('majorityValue', () => {
  it('is the highest value a majority reached, missing voters counting as 0', () => {
    const five = ids('a', 'b', 'c', 'd', 'e')
    const values = new Map<NodeId, number>([[asNodeId('a'), 9], [asNodeId('b'), 7], [asNodeId('c'), 3], [asNodeId('d'), 1]])
    expect(majorityValue(values, five)).toBe(3) // a, b, c have >= 3
    expect(majorityValue(values, ids('a', 'b', 'c'))).toBe(7)
    expect(majorityValue(values, ids('a', 'b', 'c', 'd'))).toBe(3) // needs 3 of 4
    expect(majorityValue(new Map([[asNodeId('a'), 5]]), ids('a', 'b', 'c'))).toBe(0)
    expect(majorityValue(new Map([[asNodeId('x'), 5], [asNodeId('y'), 5]]), ids('a', 'b', 'c'))).toBe(0) // non-voters ignored
    expect(majorityValue(values, [])).toBe(0)
  })

  it("with broken: 'no-quorum' it is the highest single value", () => {
    expect(majorityValue(new Map([[asNodeId('a'), 5]]), ids('a', 'b', 'c'), 'no-quorum')).toBe(5)
  })
})

describe('validateCommitteeChange', () => {
  const committee = (size: number): NodeId[] => Array.from({ length: size }, (_, index) => asNodeId(`v${index}`))

  for (const size of [3, 4, 5, 6, 7]) {
    it(`from ${size} voters accepts moving exactly one voter within 3..7 and refuses anything else`, () => {
      const current = committee(size)
      const added = [...current, asNodeId('new')]
      const removed = current.slice(1)
      const swapped = [...current.slice(1), asNodeId('new')]
      expect(validateCommitteeChange(current, added).ok).toBe(size + 1 <= 7)
      expect(validateCommitteeChange(current, removed).ok).toBe(size - 1 >= 3)
      expect(validateCommitteeChange(current, swapped)).toMatchObject({ ok: false, reason: expect.stringMatching(/exactly one voter/) })
      expect(validateCommitteeChange(current, [...current, asNodeId('x'), asNodeId('y')]).ok).toBe(false)
      expect(validateCommitteeChange(current, current).ok).toBe(false) // no change at all
    })
  }

  it('names the size limit when a change would leave 2 or 8 voters', () => {
    expect(validateCommitteeChange(committee(3), committee(2))).toMatchObject({ ok: false, reason: expect.stringMatching(/3 to 7 voters/) })
    expect(validateCommitteeChange(committee(7), committee(8))).toMatchObject({ ok: false, reason: expect.stringMatching(/3 to 7 voters/) })
  })
})

describe('Peer.changeCommittee', () => {
  it('the ready leader refuses a two-voter change, accepts a one-voter change and commits it', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 2, seed: 12 })
    const leader = cluster.awaitLeader()
    // Not before this leader's first decision committed (it finishes or supersedes an earlier leader's proposal).
    expect(leader.changeCommittee(cluster.nowMs, { add: asNodeId('n3') })).toMatchObject({ ok: false, reason: expect.stringMatching(/first decision/) })
    cluster.advance(200)
    const follower = cluster.voterIds.find((id) => id !== leader.id)!
    expect(cluster.peer(follower).changeCommittee(cluster.nowMs, { add: asNodeId('n3') })).toMatchObject({ ok: false, reason: expect.stringMatching(/ready leader/) })
    const twoVoters = leader.changeCommittee(cluster.nowMs, { add: asNodeId('n3'), remove: follower })
    expect(twoVoters).toMatchObject({ ok: false, reason: expect.stringMatching(/exactly one voter/) })
    expect(committeeVoters(leader.document)).toEqual(cluster.voterIds)
    const decisionsBefore = cluster.events('committed').length
    const added = leader.changeCommittee(cluster.nowMs, { add: asNodeId('n3') })
    expect(added.ok).toBe(true)
    if (!added.ok) return
    expect(added.effects[0]?.kind).toBe('persist') // durable before it is sent
    cluster.perform(leader.id, added.effects)
    const changeSeq = leaderSeqOf(leader.document, leader.term)
    // Proposed, not in force: it counts once committed (by majorities of the old and the new committee).
    expect(leader.voters()).toEqual(cluster.voterIds)
    expect(leader.pendingVoters()).toEqual(ids('n0', 'n1', 'n2', 'n3'))
    // A second change while the first is in flight is refused.
    expect(leader.changeCommittee(cluster.nowMs, { add: asNodeId('n4') })).toMatchObject({ ok: false, reason: expect.stringMatching(/in flight/) })
    cluster.advance(1_000)
    expect(cluster.events('committed').length).toBeGreaterThan(decisionsBefore)
    expect(cluster.events('committed').some((record) => record.node === leader.id && record.event.seq >= changeSeq)).toBe(true)
    expect(committeeVoters(cluster.peer(asNodeId('n3')).document)).toEqual(ids('n0', 'n1', 'n2', 'n3'))
    expect(leader.voters()).toEqual(ids('n0', 'n1', 'n2', 'n3'))
    expect(leader.pendingVoters()).toBeNull()
    expect(leader.isReadyLeader).toBe(true)
    // Once committed, the next one-voter change is accepted.
    const next = leader.changeCommittee(cluster.nowMs, { add: asNodeId('n4') })
    expect(next.ok).toBe(true)
  })
})

describe('bad input', () => {
  const garbage = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x42, 0x13, 0x37, 0xff, 0x10, 0x20])

  // Automerge's receiveSyncMessage throws on bytes that are not a sync message: the peer must catch
  // it, count the drop and change nothing (one hostile message must not stop a daemon's step loop).
  it("a 'sync' message with garbage bytes from a voter does not throw out of step, and the peer keeps working", () => {
    const cluster = new Cluster({ voters: 3, seed: 13 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const follower = cluster.voterIds.find((id) => id !== leader.id)!
    const message = syncMessage({ term: leader.term, data: garbage, epoch: 'f0f0' })
    const headsBefore = A.getHeads(cluster.peer(follower).document)
    const droppedBefore = cluster.peer(follower).droppedMessages
    expect(() => cluster.step(follower, { kind: 'message', from: leader.id, message })).not.toThrow()
    expect(A.getHeads(cluster.peer(follower).document)).toEqual(headsBefore)
    expect(cluster.peer(follower).droppedMessages).toBe(droppedBefore + 1)
    cluster.advance(500)
    expect(cluster.readyLeaders().map((peer) => peer.id)).toEqual([leader.id])
  })

  it('messages of every kind from a node id outside the document do not throw and do not unseat the leader', () => {
    const cluster = new Cluster({ voters: 3, seed: 14 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const stranger = asNodeId('stranger')
    const term = leader.term
    const lower = (term - 1) as Term
    const messages: PeerMessage[] = [
      { kind: 'pre-vote', term: lower, committee: '0.0' },
      { kind: 'pre-vote-response', term, granted: true },
      { kind: 'vote', term: lower, committee: '0.0' },
      { kind: 'vote-response', term, granted: true },
      { kind: 'heartbeat', term: lower, round: 1, commitSeq: 0 },
      { kind: 'heartbeat-ack', term, round: 1 },
      { kind: 'barrier', term: lower },
      { kind: 'barrier-reply', term, heads: [] },
      syncMessage({ term, data: null, leaderSeq: 99, originSeq: 99 }),
    ]
    for (const id of cluster.voterIds) {
      for (const message of messages) expect(() => cluster.step(id, { kind: 'message', from: stranger, message }), `${message.kind} to ${id}`).not.toThrow()
    }
    cluster.advance(500)
    expect(cluster.readyLeaders().map((peer) => peer.id)).toEqual([leader.id])
    expect(cluster.peer(leader.id).term).toBe(term)
  })

  // The same garbage from a node id outside the document is dropped too.
  it("a 'sync' message with garbage bytes from a node id outside the document does not throw", () => {
    const cluster = new Cluster({ voters: 3, seed: 15 })
    const leader = cluster.awaitLeader()
    const message = syncMessage({ term: leader.term, data: garbage })
    expect(() => cluster.step(leader.id, { kind: 'message', from: asNodeId('stranger'), message })).not.toThrow()
  })

  // Election and leadership messages (heartbeat, barrier, votes, awards) count only from voters:
  // otherwise one heartbeat stamped term+1 from any node would make a follower adopt that term and
  // the healthy leader step down ('saw higher term').
  it('a heartbeat with a higher term from a non-voter does not depose the healthy leader', () => {
    const cluster = new Cluster({ voters: 3, nonVoters: 1, seed: 16 })
    const leader = cluster.awaitLeader()
    cluster.advance(200)
    const term = leader.term
    const follower = cluster.voterIds.find((id) => id !== leader.id)!
    cluster.step(follower, { kind: 'message', from: asNodeId('n3'), message: { kind: 'heartbeat', term: (term + 1) as Term, round: 1, commitSeq: 0 } })
    cluster.advance(500)
    expect(cluster.peer(follower).leaderId).toBe(leader.id)
    expect(cluster.events('stepped-down')).toEqual([])
    expect(cluster.readyLeaders().map((peer) => peer.id)).toEqual([leader.id])
    expect(cluster.peer(leader.id).term).toBe(term)
  })
})
