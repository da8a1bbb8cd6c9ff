// The invariant checker: it looks at the simulated world after every event and at the end of the
// liveness phase. Every violation carries the seed, the virtual time and the recent transcript,
// so `fabric sim --seed S` replays it exactly.
import {
  copyFailed,
  effectiveAssignment,
  isCommitted,
  isJobDone,
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
} from '../consensus/index.ts'
import type { DriftingClock } from './clock.ts'

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
  leaderIndex(): number | null
}

const maxViolationsPerRun = 20
/** After the faults heal, a replica whose run failed with attempts left is placed again within this. */
const retryPlacedWithinMs = 5_000
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
  #healed = false

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

  noteSubmitted(job: JobSubmission): void {
    this.submitted.set(job.id, job)
    this.replicas += job.spec.replicas
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

  #voterMajority(holds: (peer: Peer) => boolean): { count: number; of: number; majority: boolean } {
    const voters = this.#world.voterIndexes()
    let count = 0
    for (const index of voters) if (holds(this.#world.nodes[index]!.peer)) count++
    return { count, of: voters.length, majority: count * 2 > voters.length }
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
        const document = node.peer.document
        for (const [term, seq] of this.#maxCommitted) {
          if (term >= event.term) continue
          const held = leaderSeqOf(document, asTerm(term))
          if (held < seq) this.#violate('committed-survives-leader-change', `${node.id} (term ${event.term}) holds decisions of term ${term} up to ${held}, but ${seq} was committed`)
        }
        for (const parent of this.acknowledged) {
          for (const jobId of this.#replicaIds(parent)) {
            if (jobRecord(document, jobId) === undefined && !this.archived.has(jobId)) this.#violate('acknowledged-job-survives', `${node.id} became ready in term ${event.term} without acknowledged job ${jobId}`)
          }
        }
        return
      }
      case 'committed': {
        const check = this.#voterMajority((peer) => leaderSeqOf(peer.document, event.term) >= event.seq)
        if (!check.majority) this.#violate('commit-needs-majority', `${node.id} counted ${event.term}.${event.seq} committed but only ${check.count} of ${check.of} voters hold it`)
        this.#maxCommitted.set(event.term, Math.max(this.#maxCommitted.get(event.term) ?? 0, event.seq))
        return
      }
      case 'submission-durable': {
        const replicas = this.#replicaIds(event.jobId)
        const check = this.#voterMajority((peer) => replicas.every((jobId) => jobRecord(peer.document, jobId) !== undefined || this.archived.has(jobId)))
        if (!check.majority && !replicas.every((jobId) => this.archived.has(jobId))) this.#violate('ack-needs-majority', `${node.id} acknowledged ${event.jobId} held by only ${check.count} of ${check.of} voters`)
        this.acknowledged.add(event.jobId)
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
    const runs = this.#ended.get(jobId) ?? []
    runs.push({ node: this.#world.nodes[index]!.id, term: stamp.term, seq: stamp.seq, exitCode, atMs: this.#world.nowMs })
    this.#ended.set(jobId, runs)
    if (exitCode !== 0) this.failedRuns++
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

  /** End of the liveness phase: a leader, every job accounted for, no job running twice. */
  atEnd(): void {
    const world = this.#world
    const leaderIndex = world.leaderIndex()
    if (!this.#healed) return
    if (leaderIndex === null) {
      this.#violate('liveness-leader', 'no ready leader at the end of the liveness phase')
      return
    }
    const leader = world.nodes[leaderIndex]!
    const document = leader.peer.document
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
        } else {
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
