// The trust model on the core: an admitted non-voter may lie about itself but can change nothing
// else. It writes Automerge changes with its own actor and sends them to a voter; every forbidden one
// is refused whole (the voter's document unchanged, the refusal counted and reported), and what
// Automerge itself would choke on (a sequence number reused or skipped) never reaches it.
import { describe, expect, it } from 'vitest'
import * as A from '@automerge/automerge'
import { Cluster, testJob } from './testing/harness.ts'
import { signTestGrant, signTestSubmission } from './testing/grants.ts'
import { actorOf } from './actors.ts'
import { SyncPenalties } from './sync-penalties.ts'
import { effectiveAssignment, isJobDone, jobRecord, shardOf, writeJob, writeRequestSeen, type ClusterDocument } from './cluster-document.ts'
import { asJobId, asNodeId, asTerm, type NodeId, type PeerEffect, type PeerMessage, type SyncMessage } from './types.ts'

const admin = { id: '12D3KooWadmin', secret: 'the admin key' }

/** A non-voter that writes what it likes, with an actor of its own (a fresh incarnation, so it never collides with the real peer's). */
class Forger {
  readonly #cluster: Cluster
  readonly id: NodeId
  readonly actor: string
  #document: A.Doc<ClusterDocument>
  #seq = 0
  #epoch: number

  constructor(cluster: Cluster, id: NodeId, incarnation = 'ffee') {
    this.#cluster = cluster
    this.id = id
    this.actor = actorOf(id, incarnation)
    this.#epoch = parseInt(incarnation, 16)
    this.#document = A.clone(cluster.peer(id).document, { actor: this.actor })
  }

  /** Catches up with what `from` holds now (so its changes depend on the current document). */
  refresh(from: NodeId): void {
    this.#document = A.merge(this.#document, A.clone(this.#cluster.peer(from).document))
  }

  /** Writes a change and returns it as a sync message from this node. */
  write(mutate: (draft: ClusterDocument) => void): PeerMessage {
    const before = A.getHeads(this.#document)
    this.#document = A.change(this.#document, mutate)
    return this.message(A.getChangesSince(this.#document, before))
  }

  message(changes: Uint8Array[]): PeerMessage {
    const data = A.encodeSyncMessage({ heads: A.getHeads(this.#document), need: [], have: [], changes } as unknown as A.DecodedSyncMessage)
    return { kind: 'sync', term: asTerm(0), data, ack: { term: asTerm(0), leaderSeq: 0, originSeq: 0, origin: '' }, channel: { epoch: this.#epoch.toString(16), seq: ++this.#seq }, leaderHint: null }
  }

  /** A new channel epoch: after the cluster ran, the real peer of this id has spoken since (its channel retired ours). */
  reopen(): void { this.#epoch++ }

  get document(): A.Doc<ClusterDocument> { return this.#document }
}

function setup(seed: number): { cluster: Cluster; voter: NodeId; forger: Forger } {
  const cluster = new Cluster({ voters: 3, nonVoters: 2, seed, admin, pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] })
  cluster.awaitLeader()
  cluster.advance(300)
  cluster.submit(cluster.voterIds[0]!, testJob('victim'))
  expect(cluster.runUntil(() => cluster.running(asNodeId('n3')).has(asJobId('victim')), 2_000)).toBe(true)
  cluster.advance(300)
  const voter = cluster.voterIds[1]!
  const forger = new Forger(cluster, asNodeId('n4'))
  forger.refresh(voter)
  return { cluster, voter, forger }
}

/** Delivers the forged message to `voter`: true when it was refused whole, its document unchanged. */
function refused(cluster: Cluster, voter: NodeId, message: PeerMessage): { refused: boolean; reason: string } {
  const heads = A.getHeads(cluster.peer(voter).document)
  const effects: PeerEffect[] = cluster.step(voter, { kind: 'message', from: asNodeId('n4'), message })
  const event = effects.find((effect) => effect.kind === 'event' && effect.event.kind === 'change-refused')
  const unchanged = JSON.stringify(A.getHeads(cluster.peer(voter).document)) === JSON.stringify(heads)
  return { refused: event !== undefined && unchanged, reason: event?.kind === 'event' && event.event.kind === 'change-refused' ? event.event.reason : '' }
}

const text = (value: string) => new A.ImmutableString(value)

describe('zero trust: a non-voter writing what is not its own', () => {
  const attacks: [string, (draft: ClusterDocument) => void, RegExp][] = [
    ['an admission record with no grant (making another key admin)', (draft) => { draft.admitted['12D3KooWevil/abcdefgh'] = { role: text('admin'), by: text('n4'), atMs: 1, grant: text('trust me') } }, /without a grant the admin key signed/],
    ['an admission record with a grant it forged', (draft) => { draft.admitted['12D3KooWevil/forged01'] = { role: text('admin'), by: text('n4'), atMs: 1, grant: text(signTestGrant('guessed', { id: 'forged01', role: 'admin', peer: '12D3KooWevil', nonce: null, atMs: 1 })) } }, /without a grant the admin key signed/],
    ['itself into the committee', (draft) => { draft.committee.changes['99.1'] = { voters: text(JSON.stringify(['n0', 'n1', 'n2', 'n4'])), term: 99, seq: 1 } }, /only a voter/],
    ['the genesis committee', (draft) => { draft.committee.voters['n4'] = true }, /genesis committee/],
    ['a decision of a term', (draft) => { draft.leaderLog['7'] = 3 }, /only a voter/],
    ['a commit marker', (draft) => { draft.commits['1'] = 99 }, /only a voter/],
    ['an assignment of a job to itself', (draft) => { draft.jobs[shardOf('victim')]!['victim']!.assignments['99.1'] = { node: text('n4'), term: 99, seq: 1 } }, /only a voter/],
    ['a cancel of another client\'s job', (draft) => { draft.jobs[shardOf('victim')]!['victim']!.cancelled!['n4'] = 1 }, /only a voter/],
    ['a drain of another node', (draft) => { draft.draining['n3'] = 1 }, /only a voter/],
    ['the deletion of a job', (draft) => { delete draft.jobs[shardOf('victim')]!['victim'] }, /only a voter/],
    ['a change to a job\'s spec', (draft) => { draft.jobs[shardOf('victim')]!['victim']!.spec = text('{}') }, /written once/],
    ['another node\'s run', (draft) => { draft.jobs[shardOf('victim')]!['victim']!.runs['n3'] = { state: text('finished'), term: 1, seq: 2, exitCode: 0, atMs: 1 } }, /n3's entry/],
    ['another node\'s record', (draft) => { draft.nodes[shardOf('n3')]!['n3']!.cpuMillis = 1 }, /n3's entry/],
    ['another writer\'s request counter', (draft) => { draft.origins[actorOf(asNodeId('n0'), '01')] = 999 }, /only its own request counter/],
    ['a top-level key', (draft) => { (draft as unknown as Record<string, unknown>)['admin'] = text('12D3KooWevil') }, /genesis only/],
  ]
  for (const [what, mutate, reason] of attacks) {
    it(`refuses ${what}, whole, leaving the voter's document as it was`, () => {
      const { cluster, voter, forger } = setup(31)
      const outcome = refused(cluster, voter, forger.write(mutate))
      expect(outcome.refused, outcome.reason).toBe(true)
      expect(outcome.reason).toMatch(reason)
      expect(cluster.peer(voter).screening.refused).toBe(1)
      // The mesh carries on: a job still places and runs.
      cluster.submit(voter, testJob('after'))
      expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(asJobId('after'))), 2_000)).toBe(true)
    })
  }

  it('holds back a change written as another node, and refuses none of it', () => {
    const { cluster, voter, forger } = setup(32)
    const spoofed = new Forger(cluster, asNodeId('n3'), 'ff03')
    spoofed.refresh(voter)
    const message = spoofed.write((draft) => { draft.draining['n1'] = 1 })
    const heads = A.getHeads(cluster.peer(voter).document)
    cluster.step(voter, { kind: 'message', from: forger.id, message })
    expect(A.getHeads(cluster.peer(voter).document)).toEqual(heads)
    expect(cluster.peer(voter).screening.heldBack).toBe(1)
  })

  it('refuses a second change under one sequence number (a fork of its history) and one that skips numbers', () => {
    const { cluster, voter, forger } = setup(33)
    const base = A.clone(forger.document)
    const first = forger.write((draft) => { draft.jobs[shardOf('victim')]!['victim']!.runs['n4'] = { state: text('running'), term: 1, seq: 2, exitCode: 0, atMs: 1 } })
    expect(refused(cluster, voter, first).refused).toBe(false)
    // The same actor and number, other content: what a node restarted from a stale disk would write if it kept its actor.
    let fork = A.clone(base, { actor: forger.actor })
    const before = A.getHeads(fork)
    fork = A.change(fork, (draft) => { draft.jobs[shardOf('victim')]!['victim']!.runs['n4'] = { state: text('failed'), term: 1, seq: 2, exitCode: 1, atMs: 2 } })
    const outcome = refused(cluster, voter, forger.message(A.getChangesSince(fork, before)))
    expect(outcome.refused).toBe(true)
    expect(outcome.reason).toMatch(/two different changes numbered 1/)
    // A change numbered 5 with nothing between: Automerge would panic on it.
    const decoded = A.decodeChange(A.getChangesSince(fork, before)[0]!)
    const skipping = A.encodeChange({ ...decoded, seq: 5, deps: A.getHeads(cluster.peer(voter).document) } as Parameters<typeof A.encodeChange>[0])
    cluster.advance(100) // past the few milliseconds' penalty of that small refusal
    forger.reopen()
    expect(refused(cluster, voter, forger.message([skipping])).reason).toMatch(/follows its change 1/)
  })

  it('drops a refused sender\'s syncs unread for as long as its refused bytes take at the screening rate, then screens them again', () => {
    const { cluster, voter, forger } = setup(38)
    // Each forbidden change from a fresh incarnation of n4 (a change on top of a refused one would wait for it instead).
    let incarnation = 0xfe00
    const forbidden = (keys: number) => {
      const fresh = new Forger(cluster, forger.id, (incarnation++).toString(16))
      fresh.refresh(voter)
      return fresh.write((draft) => { for (let index = 0; index < keys; index++) draft.draining[`n${100 + index}`] = 1 })
    }
    // A small forgery costs its sender milliseconds: the next one is screened (and refused) at once.
    const small = forbidden(1)
    expect(SyncPenalties.penaltyMs((small as SyncMessage).data!.length)).toBeLessThan(50)
    expect(refused(cluster, voter, small).refused).toBe(true)
    cluster.advance(50)
    expect(refused(cluster, voter, forbidden(1)).refused).toBe(true)
    // A large one keeps its sender out for as long as its bytes take at the rate.
    cluster.advance(50)
    const large = forbidden(10_000)
    const penaltyMs = SyncPenalties.penaltyMs((large as SyncMessage).data!.length)
    expect(penaltyMs).toBeGreaterThan(500)
    expect(refused(cluster, voter, large).refused).toBe(true)
    const dropped = cluster.peer(voter).screening.dropped
    // An honest change of its own, within the penalty: not even read (nothing refused, nothing taken).
    const own = forger.write((draft) => { draft.jobs[shardOf('victim')]!['victim']!.runs['n4'] = { state: text('running'), term: 1, seq: 2, exitCode: 0, atMs: 1 } })
    const heads = A.getHeads(cluster.peer(voter).document)
    cluster.step(voter, { kind: 'message', from: forger.id, message: own })
    expect(A.getHeads(cluster.peer(voter).document)).toEqual(heads)
    expect(cluster.peer(voter).screening).toMatchObject({ refused: 3, dropped: dropped + 1, penalized: 3 })
    // Past the penalty it is screened again.
    cluster.advance(penaltyMs)
    expect(refused(cluster, voter, forbidden(1)).refused).toBe(true)
    expect(cluster.peer(voter).screening).toMatchObject({ refused: 4, penalized: 4 })
  })

  it('takes a false report of a job it never ran as its own entry, and ignores it: the job is not done', () => {
    const { cluster, voter, forger } = setup(34)
    const outcome = refused(cluster, voter, forger.write((draft) => { draft.jobs[shardOf('victim')]!['victim']!.runs['n4'] = { state: text('finished'), term: 1, seq: 2, exitCode: 0, atMs: 1 } }))
    expect(outcome.refused).toBe(false)
    const job = jobRecord(cluster.peer(voter).document, asJobId('victim'))!
    expect(readRun(job.runs['n4'])).toBe('finished')
    expect(isJobDone(job)).toBe(false)
    expect(effectiveAssignment(job)?.node).toBe('n3')
    cluster.advance(1_000)
    expect(cluster.running(asNodeId('n3')).has(asJobId('victim'))).toBe(true)
  })

  it('takes an admission the admin key signed from any node', () => {
    const { cluster, voter, forger } = setup(35)
    const grant = signTestGrant(admin.secret, { id: 'granted1', role: 'viewer', peer: '12D3KooWfriend', nonce: null, atMs: 1 })
    const outcome = refused(cluster, voter, forger.write((draft) => { draft.admitted['12D3KooWfriend/granted1'] = { role: text('viewer'), by: text('n4'), atMs: 1, grant: text(grant) } }))
    expect(outcome.refused, outcome.reason).toBe(false)
    expect(cluster.peer(voter).roleOf('12D3KooWfriend')).toBe('viewer')
  })
})

describe('zero trust: a non-voter creating a job', () => {
  /** A submission the client `client` signed with `secret` (the admin's secret signs as the admin's key in the harness). */
  const signed = (name: string, client = admin.id, secret = admin.secret) => {
    const job = testJob(name)
    return { ...job, request: signTestSubmission(secret, { client, job, key: `key-${name}`, expiresAtMs: 99_000 }) }
  }
  const origin = (forger: Forger) => ({ node: forger.id, actor: forger.actor, seq: 1 })

  it('takes a job whose record carries a request a client with the right to submit signed, and runs it', () => {
    const { cluster, voter, forger } = setup(36)
    const outcome = refused(cluster, voter, forger.write((draft) => {
      writeJob(draft, signed('relayed'), origin(forger), 1)
      writeRequestSeen(draft, 'key-relayed', 99_000)
    }))
    expect(outcome.refused, outcome.reason).toBe(false)
    expect(jobRecord(cluster.peer(voter).document, asJobId('relayed'))).toBeDefined()
    expect(cluster.runUntil(() => cluster.ids.some((id) => cluster.running(id).has(asJobId('relayed'))), 3_000)).toBe(true)
  })

  const attacks: [string, (forger: Forger) => (draft: ClusterDocument) => void, RegExp][] = [
    ['a job with no signed request (its own command on the voters)', (forger) => (draft) => writeJob(draft, testJob('unsigned'), origin(forger), 1), /carrying 0 signed requests/],
    ['a job whose request no client signed', (forger) => (draft) => writeJob(draft, signed('forged', admin.id, 'guessed'), origin(forger), 1), /without a request its client signed/],
    ['a job signed by a client that may not submit', (forger) => (draft) => writeJob(draft, signed('viewer', '12D3KooWstranger', admin.secret), origin(forger), 1), /may not submit/],
    ['a job whose record says other than its request (a larger demand)', (forger) => (draft) => {
      writeJob(draft, signed('tampered'), origin(forger), 1)
      draft.jobs[shardOf('tampered')]!['tampered']!.cpuMillis = 1
    }, /says cpuMillis 1/],
    ['a job whose request is for another job', (forger) => (draft) => {
      const other = signed('other')
      writeJob(draft, { ...testJob('mine'), request: other.request }, origin(forger), 1)
    }, /does not make|whose request makes/],
    ['a replay key without the submission it guards', () => (draft) => writeRequestSeen(draft, 'flood-0001', 1e15), /without the submission it guards/],
    ['a replay key other than its submission\'s', (forger) => (draft) => {
      writeJob(draft, signed('keyed'), origin(forger), 1)
      writeRequestSeen(draft, 'key-keyed', 1e15)
    }, /not the one its submission's request has/],
  ]
  for (const [what, mutate, reason] of attacks) {
    it(`refuses ${what}, whole`, () => {
      const { cluster, voter, forger } = setup(37)
      const outcome = refused(cluster, voter, forger.write(mutate(forger)))
      expect(outcome.refused, outcome.reason).toBe(true)
      expect(outcome.reason).toMatch(reason)
    })
  }
})

function readRun(run: { state: unknown } | undefined): string {
  return run === undefined ? '' : String(run.state)
}
