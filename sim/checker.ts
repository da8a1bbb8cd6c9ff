// The invariant checker: it looks at the simulated world after every event and at the end of the
// liveness phase. Every violation carries the seed, the virtual time and the recent transcript,
// so `fabric sim --seed S` replays it exactly.
import {
  copyFailed,
  effectiveAssignment,
  isCommitted,
  isJobDone,
  isCancelled,
  jobRecord,
  leaderSeqOf,
  replicaIdOf,
  asTerm,
  type JobId,
  type JobSubmission,
  type NodeId,
  type PeerEvent,
  type Peer,
  type Resources,
  type ArchivedJob,
  defaultPeerTiming,
} from '../consensus/index.ts'
import * as A from '@automerge/automerge'
import type { DriftingClock } from './clock.ts'
import { forgedTermFloor } from './byzantine.ts'

export interface Violation {
  invariant: string
  seed: number
  virtualMs: number
  detail: string
  trace: string[]
}

/** What the checker reads from the world (ground truth the peers themselves cannot see). */
export interface CheckedWorld {
  readonly seed: number
  readonly nowMs: number
  readonly nodes: readonly { index: number; id: NodeId; up: boolean; peer: Peer; clock: DriftingClock; running: ReadonlyMap<JobId, { demand: Resources }>; attributes: { offer: { capacity: Resources } } }[]
  voterIndexes(): readonly number[]
  indexOf(id: NodeId): number
  leaderIndex(): number | null
}

const maxViolationsPerRun = 20
/**
 * Two live copies of one replica on different nodes may overlap this long at most: a copy fenced by a
 * newer committed assignment stops once its node hears of it (a lost node's lease lapses before the
 * leader places its jobs again: no overlap at all); past this, the fencing or the lease failed.
 */
const maxCopyOverlapMs = defaultPeerTiming.nodeLeaseMs
/** After the faults heal, a replica whose run failed with attempts left is placed again within this. */
const retryPlacedWithinMs = 5_000
/** At the end, the leader holds every change a live honest node had written this long before (at most half the liveness phase). */
export const convergedWithinMs = 10_000
const traceLinesPerViolation = 40

export class Checker {
  readonly violations: Violation[] = []
  readonly submitted = new Map<JobId, JobSubmission>()
  readonly acknowledged = new Set<JobId>()
  readonly archived = new Set<JobId>()
  maxLeadersPerTerm = 0
  jobsLost = 0
  unplaceable: { jobId: JobId; reason: string }[] = []
  /** Replicas that finished (a job of n replicas counts n). */
  finished = 0
  replicas = 0
  restored = 0
  /** Runs that ended by themselves with a non-zero exit, and starts of a replica after one of its runs failed. */
  failedRuns = 0
  retried = 0
  /** Ground truth per replica: its runs that ended by themselves, in order. */
  readonly #ended = new Map<JobId, { node: NodeId; term: number; seq: number; exitCode: number; atMs: number }[]>()
  readonly #world: CheckedWorld
  readonly #traceLimit: number
  readonly #trace: string[] = []
  readonly #leadersByTerm = new Map<number, Set<number>>()
  readonly #leases = new Map<number, { term: number; realExpiryMs: number }>()
  readonly #maxCommitted = new Map<number, number>()
  /** Per term, the highest decision counted committed as time went (seq rising), to ask what was committed before a moment. */
  readonly #commitHistory = new Map<number, { seq: number; atMs: number }[]>()
  /** When each acknowledged job was first acknowledged. */
  readonly #acknowledgedAtMs = new Map<JobId, number>()
  /** Per node: its term, and since when it has had it (a candidate's election began then). */
  readonly #termSince = new Map<number, { term: number; sinceMs: number }>()
  /** Ground truth per replica: the nodes running a copy now (with when each started), and since when two or more have. */
  readonly #copies = new Map<JobId, Map<number, number>>()
  readonly #overlapSinceMs = new Map<JobId, number>()
  /** Per replica: the copies that ran to completion (exit 0), with when each started and ended. */
  readonly #completed = new Map<JobId, { node: NodeId; term: number; seq: number; startedAtMs: number; endedAtMs: number }[]>()
  #healed = false
  /** Per honest node: the last change it had written at the convergence mark, which the leader must hold at the end. */
  readonly #converging = new Map<number, string>()
  #convergenceMarkMs = 0
  /** Jobs handed to the Byzantine non-voter: it may drop what it never acknowledged (a client asks elsewhere). */
  readonly viaByzantine = new Set<JobId>()

  constructor(world: CheckedWorld, traceLimit: number) {
    this.#world = world
    this.#traceLimit = traceLimit
  }

  trace(line: string): void {
    this.#trace.push(`[${(this.#world.nowMs / 1000).toFixed(3)}s] ${line}`)
    if (this.#trace.length > this.#traceLimit) this.#trace.shift()
  }

  get transcript(): readonly string[] { return this.#trace }

  #violate(invariant: string, detail: string): void {
    if (this.violations.length >= maxViolationsPerRun) return
    this.trace(`VIOLATION ${invariant}: ${detail}`)
    this.violations.push({ invariant, seed: this.#world.seed, virtualMs: Math.round(this.#world.nowMs), detail, trace: this.#trace.slice(-traceLinesPerViolation) })
  }

  noteSubmitted(job: JobSubmission, viaByzantine = false): void {
    this.submitted.set(job.id, job)
    this.replicas += job.spec.replicas
    if (viaByzantine) this.viaByzantine.add(job.id)
  }

  #replicaIds(jobId: JobId): JobId[] {
    const replicas = this.submitted.get(jobId)?.spec.replicas ?? 1
    return Array.from({ length: replicas }, (_, replica) => replicaIdOf(jobId, replica, replicas))
  }
  /** Finished jobs leave the document for the nodes' archives: archived is finished, not lost. */
  noteArchived(job: ArchivedJob): void { this.archived.add(job.id) }
  noteHealed(): void {
    this.#healed = true
    this.trace('faults healed: liveness phase')
  }

  /** Whether a majority of every committee `peer` counts in (the one in force, and a pending one) holds something: the first short one's count, else the last's. */
  #voterMajority(peer: Peer, holds: (peer: Peer) => boolean): { count: number; of: number; majority: boolean } {
    const pending = peer.pendingVoters()
    let result = { count: 0, of: 0, majority: true }
    for (const committee of pending === null ? [peer.voters()] : [peer.voters(), pending]) {
      const count = committee.filter((id) => holds(this.#world.nodes[this.#world.indexOf(id)]!.peer)).length
      result = { count, of: committee.length, majority: count * 2 > committee.length }
      if (!result.majority) break
    }
    return result
  }

  /** Stamp -> voters of every committee some node has had in force. */
  readonly #committeesSeen = new Map<string, string>()

  /**
   * Committee agreement: every node's committee in force was committed (some leader counted the
   * decision that proposed it), and one stamp names one committee everywhere.
   */
  checkCommittees(): void {
    for (const node of this.#world.nodes) {
      if (!node.up) continue
      const stamp = node.peer.committeeStamp
      const voters = node.peer.voters().join(',')
      const known = this.#committeesSeen.get(stamp)
      if (known === undefined) this.#committeesSeen.set(stamp, voters)
      else if (known !== voters) this.#violate('committee-agreement', `${node.id} has committee ${stamp} as ${voters}, elsewhere it is ${known}`)
      const [term = 0, seq = 0] = stamp.split('.').map(Number)
      if (term > 0 && (this.#maxCommitted.get(term) ?? 0) < seq) this.#violate('committee-agreement', `${node.id} counts committee ${stamp} (${voters}) in force, but no leader counted decision ${stamp} committed`)
    }
  }

  onPeerEvent(index: number, event: PeerEvent): void {
    const node = this.#world.nodes[index]!
    switch (event.kind) {
      case 'became-leader': {
        this.trace(`${node.id} leader of term ${event.term}`)
        const leaders = this.#leadersByTerm.get(event.term) ?? new Set<number>()
        leaders.add(index)
        this.#leadersByTerm.set(event.term, leaders)
        this.maxLeadersPerTerm = Math.max(this.maxLeadersPerTerm, leaders.size)
        if (leaders.size > 1) this.#violate('one-leader-per-term', `term ${event.term} has leaders ${[...leaders].map((i) => this.#world.nodes[i]!.id).join(', ')}`)
        return
      }
      case 'leader-ready': {
        this.trace(`${node.id} ready to decide in term ${event.term}`)
        // What was committed or acknowledged before its election began: a majority held it, and the
        // barrier's majority (heads sent at or after that moment) shares a voter with it. What became
        // so during the election may reach the new leader after it is ready: it is not lost.
        const since = this.#termSince.get(index)
        const electionBeganMs = since?.term === event.term ? since.sinceMs : this.#world.nowMs
        const document = node.peer.document
        for (const [term, history] of this.#commitHistory) {
          if (term >= event.term) continue
          const seq = history.findLast((entry) => entry.atMs < electionBeganMs)?.seq ?? 0
          const held = leaderSeqOf(document, asTerm(term))
          if (held < seq) this.#violate('committed-survives-leader-change', `${node.id} (term ${event.term}) holds decisions of term ${term} up to ${held}, but ${seq} was committed before its election began`)
        }
        for (const [parent, atMs] of this.#acknowledgedAtMs) {
          if (atMs >= electionBeganMs) continue
          for (const jobId of this.#replicaIds(parent)) {
            if (jobRecord(document, jobId) === undefined && !this.archived.has(jobId)) this.#violate('acknowledged-job-survives', `${node.id} became ready in term ${event.term} without acknowledged job ${jobId}`)
          }
        }
        return
      }
      case 'committed': {
        const check = this.#voterMajority(node.peer, (peer) => leaderSeqOf(peer.document, event.term) >= event.seq)
        if (!check.majority) this.#violate('commit-needs-majority', `${node.id} counted ${event.term}.${event.seq} committed but only ${check.count} of ${check.of} voters hold it`)
        if ((this.#maxCommitted.get(event.term) ?? 0) < event.seq) {
          this.#maxCommitted.set(event.term, event.seq)
          const history = this.#commitHistory.get(event.term) ?? []
          history.push({ seq: event.seq, atMs: this.#world.nowMs })
          this.#commitHistory.set(event.term, history)
        }
        return
      }
      case 'submission-durable': {
        if (!this.submitted.has(event.jobId)) return // an operator's request (cancel, drain, admission, ...)
        const replicas = this.#replicaIds(event.jobId)
        const check = this.#voterMajority(node.peer, (peer) => replicas.every((jobId) => jobRecord(peer.document, jobId) !== undefined || this.archived.has(jobId)))
        if (!check.majority && !replicas.every((jobId) => this.archived.has(jobId))) this.#violate('ack-needs-majority', `${node.id} acknowledged ${event.jobId} held by only ${check.count} of ${check.of} voters`)
        this.acknowledged.add(event.jobId)
        if (!this.#acknowledgedAtMs.has(event.jobId)) this.#acknowledgedAtMs.set(event.jobId, this.#world.nowMs)
        return
      }
      case 'stepped-down':
        this.trace(`${node.id} steps down in term ${event.term}: ${event.reason}`)
        return
      default:
        return
    }
  }

  /** A run ended by itself (the world's ground truth, before the runner's core hears it). */
  noteRunEnded(index: number, jobId: JobId, stamp: { term: number; seq: number }, exitCode: number): void {
    const node = this.#world.nodes[index]!.id
    const runs = this.#ended.get(jobId) ?? []
    runs.push({ node, term: stamp.term, seq: stamp.seq, exitCode, atMs: this.#world.nowMs })
    this.#ended.set(jobId, runs)
    if (exitCode !== 0) this.failedRuns++
    const startedAtMs = this.#copies.get(jobId)?.get(index) ?? this.#world.nowMs
    this.noteCopyEnded(index, jobId)
    if (exitCode !== 0) return
    // Two copies that ran side by side must not both run to completion (a copy that finished while its
    // node was cut off, before the mesh placed the job again, is another matter: nobody could know).
    const completed = this.#completed.get(jobId) ?? []
    const alongside = completed.find((other) => other.endedAtMs > startedAtMs)
    if (alongside !== undefined) this.#violate('runs-to-completion-once', `${jobId} ran to completion on ${alongside.node} (assignment ${alongside.term}.${alongside.seq}) and, alongside it, on ${node} (assignment ${stamp.term}.${stamp.seq})`)
    completed.push({ node, term: stamp.term, seq: stamp.seq, startedAtMs, endedAtMs: this.#world.nowMs })
    this.#completed.set(jobId, completed)
  }

  /**
   * Node `index` restarts from a disk that lost writes: a run's end that only its lost writes held
   * (no other node's document has its report) never became durable anywhere, and the mesh can only
   * run that assignment again, as after a run lost with its node. Such ends are forgotten.
   */
  noteRunReportsLost(index: number): void {
    const nodeId = this.#world.nodes[index]!.id
    for (const [jobId, runs] of this.#ended) {
      const kept = runs.filter((run) => run.node !== nodeId || this.#world.nodes.some((other) => {
        if (other.index === index) return false
        const report = jobRecord(other.peer.document, jobId)?.runs[nodeId]
        return report !== undefined && report.term === run.term && report.seq === run.seq
      }))
      if (kept.length === runs.length) continue
      this.trace(`${nodeId}'s report of ${runs.length - kept.length} ended run(s) of ${jobId} was lost with its disk`)
      if (kept.length === 0) this.#ended.delete(jobId)
      else this.#ended.set(jobId, kept)
    }
  }

  /** A copy stopped running on node `index` (it ended, was killed, or its node died). */
  noteCopyEnded(index: number, jobId: JobId): void {
    const nodes = this.#copies.get(jobId)
    if (nodes === undefined || !nodes.delete(index)) return
    if (nodes.size === 0) this.#copies.delete(jobId)
    if (nodes.size <= 1) this.#endOverlap(jobId)
  }

  #endOverlap(jobId: JobId): void {
    const since = this.#overlapSinceMs.get(jobId)
    if (since === undefined) return
    this.#overlapSinceMs.delete(jobId)
    const lastedMs = this.#world.nowMs - since
    if (lastedMs > maxCopyOverlapMs) this.#violate('one-live-copy', `${jobId} ran on two nodes at once for ${Math.round(lastedMs)} ms (more than ${maxCopyOverlapMs} ms)`)
  }

  /**
   * A replica whose run already ended runs again only after a failure with attempts left: never on
   * the assignment that ran (a retry is a new one), never once its record is final (finished, out
   * of attempts, cancelled) on the node starting it, never after a success that node knows of.
   */
  #checkRunAgain(index: number, jobId: JobId, stamp: { term: number; seq: number }): void {
    const ended = this.#ended.get(jobId)
    if (ended === undefined) return
    const node = this.#world.nodes[index]!
    const again = ended.find((run) => run.term === stamp.term && run.seq === stamp.seq)
    if (again !== undefined) this.#violate('run-again-only-after-failure', `${node.id} starts ${jobId} on assignment ${stamp.term}.${stamp.seq}, whose run already ended on ${again.node} (exit ${again.exitCode})`)
    const job = jobRecord(node.peer.document, jobId)
    if (job === undefined || isJobDone(job)) {
      this.#violate('run-again-only-after-failure', `${node.id} starts ${jobId} whose record ${job === undefined ? 'it does not hold' : 'is final'} (${ended.length} runs ended)`)
      return
    }
    const knownSuccess = ended.find((run) => run.exitCode === 0 && job.runs[run.node]?.term === run.term && job.runs[run.node]?.seq === run.seq)
    if (knownSuccess !== undefined) this.#violate('run-again-only-after-failure', `${node.id} starts ${jobId} again after its run on ${knownSuccess.node} succeeded`)
    if (ended.some((run) => run.exitCode !== 0)) this.retried++
  }

  noteJobStarted(index: number, jobId: JobId, stamp: { term: number; seq: number }): void {
    this.#checkRunAgain(index, jobId, stamp)
    const node = this.#world.nodes[index]!
    // A runner starts only an assignment some leader counted committed (or whose ratification it counted).
    if ((this.#maxCommitted.get(stamp.term) ?? 0) < stamp.seq) this.#violate('start-only-committed', `${node.id} starts ${jobId} on assignment ${stamp.term}.${stamp.seq}, which no leader has counted committed (term ${stamp.term} committed up to ${this.#maxCommitted.get(stamp.term) ?? 0})`)
    let copies = this.#copies.get(jobId)
    if (copies === undefined) this.#copies.set(jobId, (copies = new Map()))
    copies.set(index, this.#world.nowMs)
    if (copies.size > 1 && !this.#overlapSinceMs.has(jobId)) this.#overlapSinceMs.set(jobId, this.#world.nowMs)
    const used = { cpuMillis: 0, memoryMiB: 0, diskMiB: 0, gpuCount: 0 }
    for (const run of node.running.values()) {
      used.cpuMillis += run.demand.cpuMillis
      used.memoryMiB += run.demand.memoryMiB
      used.diskMiB += run.demand.diskMiB
      used.gpuCount += run.demand.gpuCount
    }
    const capacity = node.attributes.offer.capacity
    const over = (['cpuMillis', 'memoryMiB', 'diskMiB', 'gpuCount'] as const).filter((resource) => used[resource] > capacity[resource])
    if (over.length > 0) {
      this.#violate('no-over-commit', `${node.id} runs ${over.map((resource) => `${resource} ${used[resource]} of ${capacity[resource]}`).join(', ')} after starting ${jobId}`)
    }
  }

  /** A replica restores only from a snapshot of itself. */
  noteRestored(index: number, jobId: JobId, cid: string, snapshotOf: JobId | undefined): void {
    this.restored++
    if (snapshotOf !== jobId) this.#violate('restore-own-snapshot', `${this.#world.nodes[index]!.id} restored ${jobId} from ${cid}, a snapshot of ${snapshotOf ?? 'nothing known'}`)
  }

  /** Node `index`'s core took an input (the only way its term moves): since when it has had its term. */
  noteStepped(index: number): void {
    const term = this.#world.nodes[index]!.peer.term
    if (this.#termSince.get(index)?.term !== term) this.#termSince.set(index, { term, sinceMs: this.#world.nowMs })
  }

  /** After every event: leases never overlap (a crashed leader's lease still counts until it ends). */
  afterEvent(): void {
    const now = this.#world.nowMs
    for (const index of this.#world.voterIndexes()) {
      const node = this.#world.nodes[index]!
      if (!node.up || node.peer.role !== 'leader') continue
      const expiry = node.peer.leaseExpiryMs
      if (!Number.isFinite(expiry)) continue
      const realExpiryMs = node.clock.realMsAt(expiry)
      const known = this.#leases.get(index)
      if (known === undefined || known.term !== node.peer.term || known.realExpiryMs < realExpiryMs) {
        this.#leases.set(index, { term: node.peer.term, realExpiryMs })
      }
    }
    let holder: number | null = null
    for (const [index, lease] of this.#leases) {
      if (lease.realExpiryMs <= now) {
        this.#leases.delete(index)
        continue
      }
      if (holder === null) holder = index
      else if (holder !== index) {
        const other = this.#leases.get(holder)!
        this.#violate('one-valid-lease', `${this.#world.nodes[holder]!.id} (term ${other.term}) and ${this.#world.nodes[index]!.id} (term ${lease.term}) both hold a lease`)
        this.#leases.delete(index)
      }
    }
  }

  /**
   * The Byzantine non-voter changed nothing: no honest node holds a change it forged, reached a term
   * it forged, counts it a voter, or counts a job done on its word alone.
   */
  checkByzantine(attacker: { index: number; forged: readonly string[]; falseReports: ReadonlySet<JobId> }): void {
    const attackerId = this.#world.nodes[attacker.index]!.id
    for (const node of this.#world.nodes) {
      if (!node.up || node.index === attacker.index) continue
      if (node.peer.term >= forgedTermFloor) this.#violate('byzantine-term', `${node.id} is at term ${node.peer.term}, one the Byzantine non-voter forged`)
      if (node.peer.voters().includes(attackerId)) this.#violate('byzantine-voter', `${node.id} counts the Byzantine non-voter ${attackerId} a voter`)
      const held = attacker.forged.find((hash) => A.hasHeads(node.peer.document, [hash]))
      if (held !== undefined) this.#violate('byzantine-change-applied', `${node.id} holds change ${held.slice(0, 12)} the Byzantine non-voter forged`)
    }
    const leaderIndex = this.#world.leaderIndex()
    if (leaderIndex === null) return
    const document = this.#world.nodes[leaderIndex]!.peer.document
    for (const jobId of attacker.falseReports) {
      const job = jobRecord(document, jobId)
      if (job !== undefined && isJobDone(job) && !isCancelled(job) && !this.#ended.has(jobId)) {
        this.#violate('byzantine-false-report', `the leader ${this.#world.nodes[leaderIndex]!.id} counts ${jobId} done, which only the Byzantine non-voter said it ran`)
      }
    }
  }

  /**
   * The convergence mark (some seconds before the end, faults healed): the last change each live
   * honest node had written by now must reach the leader by the end. A node whose changes peers
   * refuse or drop forever (a sequence number reused after a lost write, say) fails this.
   */
  markConvergence(honest: readonly number[]): void {
    for (const index of honest) {
      const node = this.#world.nodes[index]!
      if (!node.up) continue
      const last = A.getLastLocalChange(node.peer.document)
      if (last !== undefined) this.#converging.set(index, A.decodeChange(last).hash)
    }
    this.#convergenceMarkMs = this.#world.nowMs
    this.trace(`convergence mark: ${this.#converging.size} nodes' last changes must reach the leader`)
  }

  /** End of the liveness phase: a leader, every job accounted for, no job running twice. */
  atEnd(): void {
    const world = this.#world
    const leaderIndex = world.leaderIndex()
    for (const jobId of [...this.#overlapSinceMs.keys()]) this.#endOverlap(jobId)
    if (!this.#healed) return
    if (leaderIndex === null) {
      this.#violate('liveness-leader', 'no ready leader at the end of the liveness phase')
      return
    }
    const leader = world.nodes[leaderIndex]!
    const document = leader.peer.document
    for (const [index, hash] of this.#converging) {
      if (!A.hasHeads(document, [hash])) this.#violate('liveness-converged', `${world.nodes[index]!.id} had written change ${hash.slice(0, 12)} by ${(this.#convergenceMarkMs / 1000).toFixed(1)} s, and at the end the leader ${leader.id} does not hold it`)
    }
    const runningOn = new Map<JobId, NodeId[]>()
    for (const node of world.nodes) {
      if (!node.up) continue
      for (const jobId of node.running.keys()) runningOn.set(jobId, [...(runningOn.get(jobId) ?? []), node.id])
    }
    for (const [jobId, nodes] of runningOn) {
      if (nodes.length > 1) this.#violate('single-copy-after-heal', `${jobId} runs on ${nodes.join(' and ')}`)
    }
    for (const parent of this.submitted.keys()) for (const jobId of this.#replicaIds(parent)) {
      const job = jobRecord(document, jobId)
      if (job === undefined && this.archived.has(jobId)) {
        this.finished++
        continue
      }
      if (job === undefined) {
        if (this.acknowledged.has(parent)) {
          this.jobsLost++
          this.#violate('no-acknowledged-job-lost', `${jobId} was acknowledged but the leader ${leader.id} does not hold it`)
        } else if (!this.viaByzantine.has(parent)) {
          this.#violate('liveness-jobs', `${jobId} was submitted but never reached the leader ${leader.id}`)
        }
        continue
      }
      if (isJobDone(job)) {
        this.finished++
        continue
      }
      const reasons = Object.values(job.unplaceable)
      if (reasons.length > 0) {
        this.unplaceable.push({ jobId, reason: reasons[0]!.val })
        continue
      }
      const current = effectiveAssignment(job)
      // Runs fail in the liveness phase too: a retry must be placed (and committed) soon after.
      const failedAtMs = this.#ended.get(jobId)?.findLast((run) => run.exitCode !== 0)?.atMs ?? -Infinity
      const failedLately = world.nowMs - failedAtMs <= retryPlacedWithinMs
      if (current !== null && copyFailed(job, current)) {
        if (!failedLately) this.#violate('liveness-retry', `${jobId} failed on ${current.node} with attempts left and was not placed again`)
        continue
      }
      if (current !== null && isCommitted(document, current)) continue
      if (current !== null && failedLately) continue // its retry, placed just now, not committed yet
      this.#violate('liveness-jobs', `${jobId} is neither placed, finished nor reported unplaceable at the end`)
    }
  }
}
