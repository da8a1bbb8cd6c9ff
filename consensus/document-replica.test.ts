// DocumentReplica's acknowledgements: a partner retrying its request hears whether this node holds it,
// also when the request reached this node through someone else (the leader) and the two documents
// already agree, where Automerge's sync session has nothing to say.
import { describe, expect, it } from 'vitest'
import { createGenesis, writeJob } from './cluster-document.ts'
import { DocumentReplica } from './document-replica.ts'
import { testJob } from './testing/harness.ts'
import { asNodeId, asTerm, type NodeId, type PeerMessage, type SyncMessage } from './types.ts'

interface Sent { from: NodeId; to: NodeId; message: SyncMessage }

function replicas(ids: readonly NodeId[]): { replica: Map<NodeId, DocumentReplica>; outbox: Sent[] } {
  const genesis = createGenesis({ voters: ids })
  const outbox: Sent[] = []
  const replica = new Map(ids.map((id, index) => [id, new DocumentReplica(
    { nodeId: id, documentBytes: genesis, incarnation: (index + 1).toString(16).padStart(4, '0'), maxPeersTracked: 16 },
    { term: () => asTerm(1), leaderId: () => ids[1]!, send: (to, message: PeerMessage) => { if (message.kind === 'sync') outbox.push({ from: id, to, message }) }, trusted: (peer) => ids.includes(peer), takesFromNonVoters: () => ids.includes(id), nowMs: () => 0 },
  )]))
  return { replica, outbox }
}

/** Delivers what is queued between `a` and `b` (and the replies) until they fall silent; drops the rest. */
function exchange(replica: Map<NodeId, DocumentReplica>, outbox: Sent[], a: NodeId, b: NodeId): Sent[] {
  const delivered: Sent[] = []
  for (let rounds = 0; outbox.length > 0 && rounds < 20; rounds++) {
    const batch = outbox.splice(0).filter((sent) => (sent.from === a && sent.to === b) || (sent.from === b && sent.to === a))
    for (const sent of batch) {
      delivered.push(sent)
      replica.get(sent.to)!.receive(sent.from, sent.message)
    }
    for (const id of [a, b]) replica.get(id)!.flush()
  }
  return delivered
}

describe('DocumentReplica acknowledgements', () => {
  it('answers a retry with its ack when it holds the request from another partner and the documents agree', () => {
    const [submitter, leader, voter] = [asNodeId('s'), asNodeId('l'), asNodeId('v')]
    const { replica, outbox } = replicas([submitter, leader, voter])
    const get = (id: NodeId) => replica.get(id)!
    // Every pair in sync on the genesis document first.
    for (const [a, b] of [[submitter, leader], [submitter, voter], [leader, voter]] as const) {
      get(a).syncWith(b)
      get(a).flush()
      exchange(replica, outbox, a, b)
    }
    // The submitter's request reaches the leader only; the voter gets it from the leader.
    get(submitter).change('submit j', (draft) => writeJob(draft, testJob('j'), { node: submitter, actor: get(submitter).actor, seq: 1 }, 0))
    get(submitter).syncWith(leader)
    get(submitter).flush()
    exchange(replica, outbox, submitter, leader)
    get(leader).syncWith(voter)
    get(leader).flush()
    exchange(replica, outbox, leader, voter)
    // The submitter's retry: the voter must tell it that it holds origin sequence number 1.
    get(submitter).resyncWith(voter)
    get(submitter).flush()
    const delivered = exchange(replica, outbox, submitter, voter)
    const acks = delivered.filter((sent) => sent.from === voter).map((sent) => sent.message.ack)
    expect(acks).toContainEqual(expect.objectContaining({ origin: get(submitter).actor, originSeq: 1 }))
  })

  it('sends no ack-only reply when nothing it holds of the partner changed', () => {
    const [a, b] = [asNodeId('a'), asNodeId('b')]
    const { replica, outbox } = replicas([a, b])
    replica.get(a)!.syncWith(b)
    replica.get(a)!.flush()
    exchange(replica, outbox, a, b)
    // A second resync of agreeing documents ends after b's one answer (no ping-pong of acks).
    replica.get(a)!.resyncWith(b)
    replica.get(a)!.flush()
    const delivered = exchange(replica, outbox, a, b)
    expect(delivered.filter((sent) => sent.from === b).length).toBeLessThanOrEqual(1)
    expect(outbox).toHaveLength(0)
  })
})
