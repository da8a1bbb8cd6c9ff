// The Byzantine non-voter: one admitted node of the mesh (never a voter) that, besides running its
// honest core, attacks as a provider's machine could. It writes Automerge changes it has no right to
// (admission, committee, decisions, commit markers, assignments, cancels, drains, other nodes'
// entries), each with an actor of its own identity, and sends them as sync messages; it sends votes,
// pre-votes and heartbeats at terms far ahead, granted votes, forged acknowledgements and lease
// grants; and it reports runs of jobs it was never given (its own entries: taken, and ignored). It
// remembers the hash of every forbidden change and the jobs it lied about: the checker asserts that
// no honest node ever holds such a change, reaches such a term, counts it a voter or counts a lie.
import * as A from '@automerge/automerge'
import {
  actorOf,
  asJobId,
  asTerm,
  effectiveAssignment,
  shardOf,
  type ClusterDocument,
  type Document,
  type JobId,
  type NodeId,
  type Peer,
  type PeerMessage,
} from '../consensus/index.ts'
import { writeJob, writeRequestSeen } from '../consensus/cluster-document.ts'
import { validateJobSpec } from '../placement/index.ts'
import type { SeededRandom } from './random.ts'

/** The job it would have every machine run (its own command). */
const byzantineSpec = (() => {
  const result = validateJobSpec({ name: 'byzantine', command: ['sh', '-c', 'mine'], resources: { cpu: '100m', memory: '16Mi' } })
  if (!result.ok) throw new Error('assertion: the Byzantine job spec is valid')
  return result.spec
})()

/** Forged terms start here: an honest term never gets near it in a run. */
export const forgedTermFloor = 2 ** 40
/** How often the attacker strikes (virtual ms between attacks). */
const attackGapMs = { min: 200, max: 1_000 }
/** Forged change hashes the checker looks for (the latest ones: each check is a lookup per hash per node). */
const rememberedForgeries = 400

export interface ByzantineNode {
  readonly index: number
  readonly id: NodeId
  readonly up: boolean
  readonly peer: Peer
}

/** What the attacker may do in the world. */
export interface ByzantineTarget {
  readonly nodes: readonly ByzantineNode[]
  voterIndexes(): readonly number[]
  /** Sends a message as node `from` over the simulated network (cuts and loss apply). */
  sendAs(from: number, to: number, message: PeerMessage): void
  trace(line: string): void
}

const text = (value: string) => new A.ImmutableString(value)

type Forgery = (draft: ClusterDocument, context: { self: NodeId; actor: string; victim: { jobId: string; shard: string } | null; other: NodeId; term: number }) => boolean

/** Changes a non-voter may not write: each one must be refused whole by every honest peer. */
const forgeries: [string, Forgery][] = [
  ['an admin admission with no grant', (draft, { self }) => { draft.admitted[`${self}/forged${draft.formatVersion}`] = { role: text('admin'), by: text(self), atMs: 1, grant: text('trust me') }; return true }],
  ['itself into the committee', (draft, { self, term }) => { draft.committee.changes[`${term}.1`] = { voters: text(JSON.stringify([...Object.keys(draft.committee.voters), self].sort())), term, seq: 1 }; return true }],
  ['itself into the genesis committee', (draft, { self }) => { draft.committee.voters[self] = true; return true }],
  ['a decision of a forged term', (draft, { term }) => { draft.leaderLog[String(term)] = 3; return true }],
  ['a commit marker', (draft, { term }) => { draft.commits[String(term)] = 3; return true }],
  ['an assignment of a job to itself', (draft, { self, victim, term }) => {
    if (victim === null) return false
    draft.jobs[victim.shard]![victim.jobId]!.assignments[`${term}.1`] = { node: text(self), term, seq: 1 }
    return true
  }],
  ['a cancel of another client\'s job', (draft, { self, victim }) => {
    if (victim === null) return false
    const job = draft.jobs[victim.shard]![victim.jobId]!
    if (job.cancelled === undefined) job.cancelled = {}
    job.cancelled[self] = 1
    return true
  }],
  ['a drain of another node', (draft, { other }) => { draft.draining[other] = 1; return true }],
  ['the deletion of a job', (draft, { victim }) => {
    if (victim === null) return false
    delete draft.jobs[victim.shard]![victim.jobId]
    return true
  }],
  ['another node\'s run', (draft, { victim, other }) => {
    if (victim === null) return false
    draft.jobs[victim.shard]![victim.jobId]!.runs[other] = { state: text('finished'), term: 1, seq: 1, exitCode: 0, atMs: 1 }
    return true
  }],
  ['a job no client signed (its own command on other machines)', (draft, { self, actor, term }) => {
    writeJob(draft, { id: asJobId(`byzantine-${term}`), spec: byzantineSpec, durationMs: 1_000 }, { node: self, actor, seq: 1 }, 1)
    return true
  }],
  ['a replay key with no submission (a flood of them grows every document)', (draft, { term }) => {
    writeRequestSeen(draft, `byzantine-${term}`, term)
    return true
  }],
  ['another node\'s record', (draft, { other }) => {
    const record = draft.nodes[shardOf(other)]?.[other]
    if (record === undefined) return false
    record.cpuMillis = 1
    return true
  }],
]

export class ByzantineNonVoter {
  readonly index: number
  readonly #random: SeededRandom
  readonly #target: ByzantineTarget
  /** Hashes of the forbidden changes sent, newest last. */
  readonly forged: string[] = []
  /** Jobs it reported as finished on itself without being assigned them. */
  readonly falseReports = new Set<JobId>()
  readonly counts = { changes: 0, messages: 0, falseReports: 0 }
  #incarnations = 0
  #channelSeq = 0

  constructor(random: SeededRandom, index: number, target: ByzantineTarget) {
    this.#random = random
    this.index = index
    this.#target = target
  }

  nextGapMs(): number { return this.#random.int(attackGapMs.min, attackGapMs.max) }

  #self(): ByzantineNode { return this.#target.nodes[this.index]! }

  /** A forged term: far ahead of any honest term, and different every time. */
  #forgedTerm(): number { return forgedTermFloor + this.#random.int(0, 2 ** 30) }

  /** Someone to send to: a voter mostly (they decide), any node otherwise. */
  #recipient(): number {
    const voters = this.#target.voterIndexes()
    const pool = this.#random.chance(0.7) && voters.length > 0 ? voters : this.#target.nodes.map((node) => node.index)
    const choices = pool.filter((index) => index !== this.index)
    return this.#random.pick(choices)
  }

  /** One attack, drawn at random. Nothing while its own process is down. */
  act(): void {
    const self = this.#self()
    if (!self.up) return
    const draw = this.#random.int(0, 10)
    if (draw < 5) return this.#forgeChange()
    if (draw < 6) return this.#falseReport()
    this.#forgeMessage()
  }

  /** A job of the document assigned to another node, if any. */
  #victim(document: Document): { jobId: string; shard: string } | null {
    const shards = Object.keys(document.jobs)
    for (let tries = 0; tries < 8; tries++) {
      const shard = this.#random.pick(shards)
      const ids = Object.keys(document.jobs[shard]!)
      if (ids.length === 0) continue
      const jobId = this.#random.pick(ids)
      const assignment = effectiveAssignment(document.jobs[shard]![jobId]!)
      if (assignment !== null && assignment.node !== this.#self().id) return { jobId, shard }
    }
    return null
  }

  /** Writes one change with a fresh actor of its own identity on its own document, and sends it. */
  #write(mutate: (draft: ClusterDocument, actor: string) => boolean): string | null {
    const self = this.#self()
    const actor = actorOf(self.id, `bad${(++this.#incarnations).toString(16).padStart(5, '0')}`)
    const base = A.clone(self.peer.document, { actor })
    const before = A.getHeads(base)
    let wrote = false
    // No wall-clock time in the change (Automerge's default): a seed must replay to the same hashes.
    const after = A.change(base, { time: undefined }, (draft) => { wrote = mutate(draft, actor) })
    if (!wrote) return null
    const changes = A.getChangesSince(after, before)
    if (changes.length === 0) return null
    const to = this.#recipient()
    const data = A.encodeSyncMessage({ heads: A.getHeads(after), need: [], have: [], changes } as unknown as A.DecodedSyncMessage)
    this.#target.sendAs(this.index, to, {
      kind: 'sync',
      term: self.peer.term,
      data,
      ack: { term: self.peer.term, leaderSeq: 0, originSeq: 0, origin: '' },
      channel: { epoch: actor.slice(-8), seq: ++this.#channelSeq },
      leaderHint: null,
    })
    return A.decodeChange(changes.at(-1)!).hash
  }

  #forgeChange(): void {
    const self = this.#self()
    const [what, forge] = this.#random.pick(forgeries)
    const victim = this.#victim(self.peer.document)
    const others = this.#target.nodes.filter((node) => node.index !== this.index)
    const context = { self: self.id, victim, other: this.#random.pick(others).id, term: this.#forgedTerm() }
    const hash = this.#write((draft, actor) => forge(draft, { ...context, actor }))
    if (hash === null) return
    this.counts.changes++
    this.forged.push(hash)
    if (this.forged.length > rememberedForgeries) this.forged.shift()
    this.#target.trace(`byzantine ${self.id} forges ${what}`)
  }

  /** Its own entry, a lie: a run that finished on it, of a job the leader gave another node. */
  #falseReport(): void {
    const self = this.#self()
    const victim = this.#victim(self.peer.document)
    if (victim === null) return
    const assignment = effectiveAssignment(self.peer.document.jobs[victim.shard]![victim.jobId]!)!
    const hash = this.#write((draft) => {
      draft.jobs[victim.shard]![victim.jobId]!.runs[self.id] = { state: text('finished'), term: assignment.term, seq: assignment.seq, exitCode: 0, atMs: 1 }
      return true
    })
    if (hash === null) return
    this.counts.falseReports++
    this.falseReports.add(victim.jobId as JobId)
    this.#target.trace(`byzantine ${self.id} reports ${victim.jobId} finished on itself (assigned to ${assignment.node})`)
  }

  /** Jobs the recipient's own document assigns to it (committed or not): an award from no leader must start none. */
  #assignedTo(recipient: ByzantineNode): { jobId: JobId; seq: number }[] {
    const jobs: { jobId: JobId; seq: number }[] = []
    for (const shard of Object.values(recipient.peer.document.jobs)) {
      for (const [jobId, job] of Object.entries(shard)) {
        const assignment = effectiveAssignment(job)
        if (assignment !== null && assignment.node === recipient.id && jobs.length < 8) jobs.push({ jobId: jobId as JobId, seq: assignment.seq })
      }
    }
    return jobs
  }

  /** Protocol messages only voters (or the leader) may send, at forged terms or with forged counts. */
  #forgeMessage(): void {
    const self = this.#self()
    const to = this.#recipient()
    const recipient = this.#target.nodes[to]!
    const term = this.#forgedTerm()
    const current = recipient.peer.term
    const heads = A.getHeads(self.peer.document)
    const messages: PeerMessage[] = [
      { kind: 'heartbeat', term: asTerm(term), round: 1, commitSeq: 1_000_000 },
      { kind: 'pre-vote', term: asTerm(term), committee: recipient.peer.committeeStamp },
      { kind: 'vote', term: asTerm(term), committee: recipient.peer.committeeStamp },
      { kind: 'vote-response', term: current, granted: true, heads },
      { kind: 'pre-vote-response', term: asTerm(current + 1), granted: true },
      { kind: 'heartbeat-ack', term: current, round: 1_000_000 },
      { kind: 'barrier-reply', term: current, heads },
      { kind: 'lease-grant', term: current, round: 1_000_000, durationMs: 60_000, heads },
      { kind: 'award', term: current, jobs: this.#assignedTo(recipient) },
      { kind: 'sync', term: current, data: null, ack: { term: current, leaderSeq: 1_000_000, originSeq: 1_000_000, origin: recipient.peer.actor }, channel: { epoch: 'b0b0b0b0', seq: ++this.#channelSeq }, leaderHint: self.id },
    ]
    const message = this.#random.pick(messages)
    this.counts.messages++
    this.#target.trace(`byzantine ${self.id} sends ${message.kind} (term ${message.term}) to ${recipient.id}`)
    this.#target.sendAs(this.index, to, message)
  }
}
