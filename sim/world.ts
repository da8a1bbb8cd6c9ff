// The simulated world: N peers built from the real consensus core (and real Automerge) on a
// simulated network with a virtual clock. It owns time, the network and storage (as TigerBeetle's
// VOPR does): every effect a peer returns becomes an event here, and the checker looks at the
// world after every event.
import {
  Peer,
  asNodeId,
  createGenesis,
  defaultPeerTiming,
  type NodeAttributes,
  type NodeId,
  type PeerConfig,
  type PeerEffect,
  type PeerEvent,
  type PeerInput,
  type PeerMessage,
  type CapacityGossip,
  type JobId,
  type Resources,
} from '../consensus/index.ts'
import * as A from '@automerge/automerge'
import { actorOf, concatBytes, genesisActor, loadDocument, type Document } from '../consensus/index.ts'
import { Checker, convergedWithinMs } from './checker.ts'
import { DriftingClock, drawClock } from './clock.ts'
import { EventQueue } from './event-queue.ts'
import { FaultInjector, type FaultTarget } from './faults.ts'
import { GossipMesh, coverageTimeMs } from './gossip-mesh.ts'
import { SimNetwork } from './network.ts'
import type { SimOptions } from './options.ts'
import { SeededRandom } from './random.ts'
import { WorkloadGenerator } from './workload.ts'
import { SpotMarket, generatedFleet, renameFleet } from './fleet.ts'
import { PlacementMetrics } from './placement-metrics.ts'
import { Operator, simAdmin, type OperatorAction, type OperatorTarget } from './operator.ts'
import { signTestSubmission, testGrantVerifier, testSubmissionVerifier } from '../consensus/testing/grants.ts'
import { ByzantineNonVoter, type ByzantineTarget } from './byzantine.ts'

type SimEvent =
  | { kind: 'wake'; node: number }
  | { kind: 'deliver'; node: number; from: number; incarnation: number; message: PeerMessage }
  | { kind: 'capacity'; node: number; incarnation: number; gossip: CapacityGossip }
  | { kind: 'job-exit'; node: number; incarnation: number; jobId: JobId; token: number }
  /** The lease watchdog beside a node (outside its core): at its lease's end, it kills what still runs. */
  | { kind: 'watchdog'; node: number; incarnation: number }
  | { kind: 'submit' }
  | { kind: 'fault' }
  | { kind: 'heal' }
  | { kind: 'market' }
  | { kind: 'operator'; action: OperatorAction }
  | { kind: 'sample' }
  | { kind: 'byzantine' }
  | { kind: 'action'; action: () => void }

/** A node's disk: its hard state, and its document as chunks with the (virtual) time each was written. */
interface StoredState { term: number; votedFor: NodeId | null; electionTimeoutMs?: number; chunks: Uint8Array[]; writtenAtMs: number[] }

interface SimNode {
  index: number
  id: NodeId
  attributes: NodeAttributes
  clock: DriftingClock
  random: SeededRandom
  peer: Peer
  up: boolean
  incarnation: number
  /** Virtual time of the wake event currently queued for this node (Infinity when none). */
  wakeAtMs: number
  storage: StoredState
  /** Ground truth: what actually runs on this node, with the token of its exit event. */
  running: Map<JobId, { demand: Resources; token: number; endsAtMs: number; term: number; seq: number }>
  /** Paused (a stopped process, a frozen VM): its core takes no input; what arrives waits for it. */
  paused: boolean
  /** Inputs that arrived while it was paused, in order (stepped as one batch when it resumes). */
  deferred: ((nowMs: number) => PeerInput)[]
  /** Real time its lease ends (the watchdog's deadline; -Infinity: none). */
  leaseUntilRealMs: number
  /** At its next restart, the document writes of this many ms before the crash are lost (a disk that had not synced them). */
  loseWritesMs: number
}

/** How often utilization is sampled. */
const sampleEveryMs = 1_000
/** How long a simulated checkpoint (dump and publish) takes. */
const checkpointMs = 200
/** Large meshes recompute a publisher's gossip arrivals on this many publishes (and on every network change). */
const gossipRefreshEvery = 10
/** Safety valve: a run that schedules more events than this is a bug, not a workload. */
const maxEventsPerRun = 200_000_000

export interface WorldMetrics {
  failoverMs: number[]
  commitMs: number[]
  ackMs: number[]
  gossip99Ms: number[]
  gossipUnreached: number
  messagesSent: number
  events: number
  leaderChanges: number
}

const verifySimGrant = testGrantVerifier(simAdmin.secret)
const verifySimSubmission = testSubmissionVerifier(simAdmin.secret)
/** A client's replay window: how long a signed submission is remembered. */
const simRequestWindowMs = 60_000

export class World implements FaultTarget, OperatorTarget, ByzantineTarget {
  readonly options: SimOptions
  readonly seed: number
  readonly nodes: SimNode[]
  readonly network: SimNetwork
  readonly checker: Checker
  readonly placement: PlacementMetrics
  readonly metrics: WorldMetrics = { failoverMs: [], commitMs: [], ackMs: [], gossip99Ms: [], gossipUnreached: 0, messagesSent: 0, events: 0, leaderChanges: 0 }
  #now = 0
  readonly #queue = new EventQueue<SimEvent>()
  readonly #mesh: GossipMesh
  readonly #arrivals: Float64Array
  readonly #scratch: Float64Array
  readonly #faults: FaultInjector
  readonly #workload: WorkloadGenerator
  readonly #market: SpotMarket
  readonly #random: SeededRandom
  /** Nodes the genesis or a committee change named voters: they consume voters' traffic (capacity) and may lead. */
  readonly #voterIndexes: number[]
  readonly #operator: Operator
  /** The admitted non-voter that attacks (the 'byzantine' fault), if any. */
  readonly byzantine: ByzantineNonVoter | null
  readonly #genesis: Uint8Array
  /** Bumped by every fault that changes links or liveness: cached gossip arrivals are then stale. */
  #networkEpoch = 0
  /** Per node: document sync to it takes this much more until then (after a lag: slowSyncTo). */
  readonly #slowSync = new Map<number, { extraMs: number; untilMs: number }>()
  /** Per link (from * N + to), when the last slowed sync on it arrives. */
  readonly #slowSyncLast = new Map<number, number>()
  readonly #gossipCache: ({ epoch: number; uses: number; toVoters: Float64Array } | undefined)[] = []
  #genesisLoaded: Document | undefined
  readonly #healAtMs: number
  #jobToken = 0
  /** Simulated snapshots: which replica each CID holds and how much of its work was left. */
  readonly #snapshots = new Map<string, { jobId: JobId; remainingMs: number }>()
  readonly migration = { requested: 0, checkpointed: 0, restored: 0 }
  /** Copies stopped because a committed assignment moved their replica to another node (its node was lost, or a leader placed it again). */
  fencedCopies = 0
  #faultHealed = false
  #leaderLostAtMs: number | null = null
  #lostLeaderTerm = 0
  readonly #decisionAtMs = new Map<string, number>()
  readonly #submittedAtMs = new Map<JobId, number>()
  /** Ground truth of flaky jobs: how many runs of each replica fail before one succeeds. */
  readonly #failuresPlanned = new Map<JobId, number>()
  /** Runs of each replica that ended by themselves. */
  readonly #runsEnded = new Map<JobId, number>()

  constructor(options: SimOptions, seed: number) {
    if (options.voters < 1 || options.voters > options.nodes) throw new Error(`voters must be between 1 and the node count (${options.nodes})`)
    this.options = options
    this.seed = seed
    this.#random = new SeededRandom(seed)
    this.network = new SimNetwork(options.nodes, this.#random.fork('network'), {
      linkLatencyMinMs: options.linkLatencyMinMs,
      linkLatencyMaxMs: options.linkLatencyMaxMs,
    })
    this.#mesh = new GossipMesh(options.nodes, this.#random.fork('mesh'), options.gossipDegree)
    this.#arrivals = new Float64Array(options.nodes)
    this.#scratch = new Float64Array(options.nodes)
    const width = String(options.nodes - 1).length
    const ids = Array.from({ length: options.nodes }, (_, index) => asNodeId(`n${String(index).padStart(Math.max(3, width), '0')}`))
    // Voters spread by index; with the drawn ids this is as good as spreading over failure domains.
    const stride = options.nodes / options.voters
    this.#voterIndexes = Array.from({ length: options.voters }, (_, index) => Math.floor(index * stride))
    if (options.fleet !== null && options.fleet.length !== options.nodes) throw new Error(`the fleet has ${options.fleet.length} nodes but the mesh ${options.nodes}`)
    const offers = renameFleet(options.fleet ?? generatedFleet(options.nodes), ids)
    const attributes = offers.map((offer): NodeAttributes => ({ id: offer.nodeId as string as NodeId, offer }))
    this.#genesis = createGenesis({ voters: this.#voterIndexes.map((index) => ids[index]!), nodes: attributes, admin: simAdmin.id })
    const clockRandom = this.#random.fork('clocks')
    const drift = options.faults.includes('drift')
    this.nodes = ids.map((id, index) => {
      const node: SimNode = {
        index,
        id,
        attributes: attributes[index]!,
        clock: drift ? drawClock(clockRandom, options.maxDriftRate, 10_000) : new DriftingClock({ driftRate: 0, offsetMs: 0 }),
        random: this.#random.fork(`peer-${id}`),
        peer: undefined as unknown as Peer,
        up: true,
        incarnation: 0,
        wakeAtMs: Infinity,
        storage: { term: 0, votedFor: null, chunks: [this.#genesis], writtenAtMs: [0] },
        running: new Map(),
        paused: false,
        deferred: [],
        leaseUntilRealMs: -Infinity,
        loseWritesMs: 0,
      }
      return node
    })
    this.checker = new Checker(this, options.traceLimit)
    this.placement = new PlacementMetrics(offers)
    this.#market = new SpotMarket(this.#random.fork('market'), offers)
    for (const node of this.nodes) this.#boot(node)
    this.#workload = new WorkloadGenerator(this.#random.fork('workload'), options.ratePerSecond, options.workload ?? undefined)
    this.#faults = new FaultInjector(this.#random.fork('faults'), options.faults, this)
    this.#healAtMs = Math.round(options.durationMs * options.faultPhaseFraction)
    if (this.#faults.active) this.#queue.push(this.#faults.nextGapMs(), { kind: 'fault' })
    this.#queue.push(this.#healAtMs, { kind: 'heal' })
    this.#queue.push(SpotMarket.periodMs, { kind: 'market' })
    this.#operator = new Operator(this.#random.fork('operator'), this)
    if (options.migrationsPerSecond > 0) this.#queue.push(this.#random.exponential(1000 / options.migrationsPerSecond), { kind: 'operator', action: 'migrate' })
    // With faults, people act too: cancels, drains, admissions and committee changes.
    if (this.#faults.active) for (const action of ['cancel', 'drain', 'admit', 'committee'] as const) this.#queue.push(this.#operator.nextGapMs(action), { kind: 'operator', action })
    this.#queue.push(sampleEveryMs, { kind: 'sample' })
    // The Byzantine non-voter: the last node the genesis did not make a voter; it attacks all run long.
    const byzantine = options.faults.includes('byzantine') ? this.nodes.findLast((node) => !this.#voterIndexes.includes(node.index)) : undefined
    this.byzantine = byzantine === undefined ? null : new ByzantineNonVoter(this.#random.fork('byzantine'), byzantine.index, this)
    if (this.byzantine !== null) this.#queue.push(this.byzantine.nextGapMs(), { kind: 'byzantine' })
    const gap = this.#workload.nextGapMs()
    if (gap < this.#healAtMs) this.#queue.push(gap, { kind: 'submit' })
  }

  get nowMs(): number { return this.#now }
  get nodeCount(): number { return this.nodes.length }
  voterIndexes(): readonly number[] { return this.#voterIndexes }
  isUp(node: number): boolean { return this.nodes[node]?.up === true }

  peerConfig(id: NodeId): PeerConfig {
    const timeout = this.options.electionTimeoutMs
    return {
      ...defaultPeerTiming,
      nodeId: id,
      electionTimeoutMs: timeout,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      broken: this.options.broken,
      // Scale background chatter with the mesh so 1,000 nodes stay cheap to simulate.
      downstreamSyncIntervalMs: Math.max(defaultPeerTiming.downstreamSyncIntervalMs, this.options.nodes * 10),
      resyncIntervalMs: Math.max(defaultPeerTiming.resyncIntervalMs, this.options.nodes * 4),
    }
  }

  #boot(node: SimNode): void {
    const fresh = node.storage.chunks.length === 1 && node.storage.chunks[0] === this.#genesis
    const documentBytes = concatBytes(node.storage.chunks)
    node.storage.chunks = [documentBytes]
    node.storage.writtenAtMs = [this.#now]
    // A fresh peer clones the genesis document loaded once (loading it per peer dominated boot at 1,000 peers).
    // A new incarnation at every boot, as a daemon draws one; the planted bug reuses the first.
    const boot = this.options.broken === 'reused-origin-seq' ? 0 : node.incarnation
    const incarnation = ((node.index + 1) * 0x10000 + boot).toString(16).padStart(8, '0')
    const document = fresh ? A.clone(this.#genesisDocument(), { actor: actorOf(node.id, incarnation) }) : undefined
    node.peer = new Peer({
      config: this.peerConfig(node.id),
      attributes: node.attributes,
      random: node.random,
      persisted: { term: node.storage.term, votedFor: node.storage.votedFor, ...(node.storage.electionTimeoutMs === undefined ? {} : { electionTimeoutMs: node.storage.electionTimeoutMs }), documentBytes, ...(document ? { document } : {}) },
      nowMs: node.clock.localMs(this.#now),
      incarnation,
      verifyGrant: verifySimGrant,
      verifySubmission: verifySimSubmission,
    })
    node.wakeAtMs = Infinity
    this.#step(node, { kind: 'tick', nowMs: node.clock.localMs(this.#now) })
  }

  #genesisDocument(): Document {
    this.#genesisLoaded ??= loadDocument(this.#genesis, genesisActor)
    return this.#genesisLoaded
  }

  /** The current leader as the checker sees it: the ready leader with the highest term among live nodes (a voter the committee added, too). */
  leaderIndex(): number | null {
    let best: SimNode | null = null
    for (const node of this.nodes) {
      if (node.up && node.peer.isReadyLeader && (best === null || node.peer.term > best.peer.term)) best = node
    }
    return best?.index ?? null
  }

  /** The voters of the committee the current leader counts in force (the genesis voters while there is none). */
  committeeIndexes(): readonly number[] {
    const leader = this.leaderIndex()
    return leader === null ? this.#voterIndexes : this.nodes[leader]!.peer.voters().map((id) => this.indexOf(id))
  }

  indexOf(id: NodeId): number {
    const index = Number(id.slice(1))
    if (!(index >= 0 && index < this.nodes.length) || this.nodes[index]?.id !== id) throw new Error(`unknown node ${id}`)
    return index
  }

  // ---- Running

  run(): void {
    const end = this.options.durationMs
    let processed = 0
    for (;;) {
      const next = this.#queue.peekTimeMs()
      if (next === undefined || next > end) break
      const item = this.#queue.pop()!
      this.#now = item.atMs
      this.#handle(item.event)
      this.checker.afterEvent()
      if (++processed > maxEventsPerRun) throw new Error(`run exceeded ${maxEventsPerRun} events`)
      if (this.options.stopAtFirstViolation && this.checker.violations.length > 0) {
        // The end-of-run checks (liveness) would judge a run cut short: they are skipped.
        this.stoppedAtMs = this.#now
        this.metrics.events = processed
        return
      }
    }
    this.#now = end
    this.metrics.events = processed
    this.checker.atEnd()
  }

  /** When the run stopped at its first violation (stopAtFirstViolation), else null: it ran to the end. */
  stoppedAtMs: number | null = null

  #handle(event: SimEvent): void {
    switch (event.kind) {
      case 'wake': {
        const node = this.nodes[event.node]!
        if (!node.up || node.paused || node.wakeAtMs !== this.#now) return // superseded by an earlier wake
        node.wakeAtMs = Infinity
        this.#step(node, { kind: 'tick', nowMs: node.clock.localMs(this.#now) })
        return
      }
      case 'deliver': {
        const node = this.nodes[event.node]!
        if (!node.up || node.incarnation !== event.incarnation) return
        const from = this.nodes[event.from]!.id
        this.#input(node, (nowMs) => ({ kind: 'message', nowMs, from, message: event.message }))
        return
      }
      case 'capacity': {
        const node = this.nodes[event.node]!
        if (!node.up || node.incarnation !== event.incarnation) return
        this.#input(node, (nowMs) => ({ kind: 'capacity', nowMs, gossip: event.gossip }))
        return
      }
      case 'job-exit': {
        // The process ends by itself whether or not its daemon is paused; the core hears of it when it runs.
        const node = this.nodes[event.node]!
        if (!node.up || node.incarnation !== event.incarnation || node.running.get(event.jobId)?.token !== event.token) return
        const run = node.running.get(event.jobId)!
        node.running.delete(event.jobId)
        const exitCode = this.#exitCodeOf(event.jobId)
        this.checker.noteRunEnded(node.index, event.jobId, run, exitCode)
        this.#input(node, (nowMs) => ({ kind: 'job-exited', nowMs, jobId: event.jobId, exitCode }))
        return
      }
      case 'watchdog': {
        const node = this.nodes[event.node]!
        if (!node.up || node.incarnation !== event.incarnation || node.leaseUntilRealMs > this.#now || node.running.size === 0) return
        this.checker.trace(`${node.id}: lease lapsed, the watchdog kills ${node.running.size} job(s)${node.paused ? ' (its daemon is paused)' : ''}`)
        for (const jobId of [...node.running.keys()]) this.#killCopy(node, jobId, true)
        return
      }
      case 'submit': {
        const job = this.#workload.nextJob()
        const live = this.nodes.filter((node) => node.up)
        const gap = this.#workload.nextGapMs()
        if (this.#now + gap < this.#healAtMs) this.#queue.push(this.#now + gap, { kind: 'submit' })
        if (live.length === 0) return
        const node = this.#random.pick(live)
        this.checker.noteSubmitted(job, this.byzantine?.index === node.index)
        // A job with retries fails its first 0 to retries + 1 runs (all of them: a final failure).
        if (job.spec.retries > 0) this.#failuresPlanned.set(job.id, this.#random.int(0, job.spec.retries + 2))
        this.placement.noteSubmitted(job, this.#now)
        this.#submittedAtMs.set(job.id, this.#now)
        if (process.env.SIM_TRACE_JOB === job.id) this.checker.trace(`submit ${job.id} via ${node.id}`)
        // The admin's client signs it: a non-voter's job record carries the request (consensus/submission-proofs.ts).
        const request = signTestSubmission(simAdmin.secret, { client: simAdmin.id, job, key: `sim-${job.id}`, expiresAtMs: this.#now + simRequestWindowMs })
        this.#step(node, { kind: 'submit', nowMs: node.clock.localMs(this.#now), requestId: job.id, job: { ...job, request } })
        return
      }
      case 'fault': {
        if (this.#faultHealed) return
        this.#faults.injectOne()
        this.#queue.push(this.#now + this.#faults.nextGapMs(), { kind: 'fault' })
        return
      }
      case 'heal': {
        this.#faultHealed = true
        this.#faults.healAll()
        this.checker.noteHealed()
        // Half the liveness phase at least, for what the heal set moving to arrive.
        const markAtMs = Math.max(this.options.durationMs - convergedWithinMs, (this.#now + this.options.durationMs) / 2)
        this.schedule(markAtMs, () => this.checker.markConvergence(this.nodes.map((node) => node.index).filter((index) => this.trusted(index))))
        return
      }
      case 'market': {
        // Spot prices move: each spot node hears its new prices (its later bids ask them).
        for (const [index, prices] of this.#market.move(this.placement.offers)) {
          this.placement.setPrices(index, prices)
          const node = this.nodes[index]!
          if (node.up) this.#step(node, { kind: 'prices', nowMs: node.clock.localMs(this.#now), prices })
        }
        this.#queue.push(this.#now + SpotMarket.periodMs, { kind: 'market' })
        return
      }
      case 'operator': {
        const gap = event.action === 'migrate' ? this.#random.exponential(1000 / this.options.migrationsPerSecond) : this.#operator.nextGapMs(event.action)
        if (this.#now + gap < this.#healAtMs) this.#queue.push(this.#now + gap, event)
        this.#operator.act(event.action)
        if (event.action === 'committee') this.checker.checkCommittees()
        return
      }
      case 'sample':
        this.placement.sample(this.nodes)
        if (this.byzantine !== null) this.checker.checkByzantine(this.byzantine)
        this.#queue.push(this.#now + sampleEveryMs, { kind: 'sample' })
        return
      case 'byzantine':
        this.byzantine!.act()
        this.#queue.push(this.#now + this.byzantine!.nextGapMs(), { kind: 'byzantine' })
        return
      case 'action':
        event.action()
        return
    }
  }

  /** A replica's run ended by itself: it fails while the planned failures of its job last. */
  #exitCodeOf(jobId: JobId): number {
    const ended = this.#runsEnded.get(jobId) ?? 0
    this.#runsEnded.set(jobId, ended + 1)
    return ended < (this.#failuresPlanned.get(jobId.split('#')[0]! as JobId) ?? 0) ? 1 : 0
  }

  #step(node: SimNode, input: PeerInput): void {
    const effects = node.peer.step(input)
    this.checker.noteStepped(node.index)
    this.#perform(node, effects)
  }

  /** An input for a node's core: now, or when it resumes if it is paused. */
  #input(node: SimNode, make: (nowMs: number) => PeerInput): void {
    if (node.paused) node.deferred.push(make)
    else this.#step(node, make(node.clock.localMs(this.#now)))
  }

  /**
   * A copy's process is killed (a stop the core asked for, or the watchdog): its exit reaches the core,
   * also when it was already gone (the watchdog took it, or it ended): the core still hears how it ended.
   */
  #killCopy(node: SimNode, jobId: JobId, leaseLapsed: boolean): void {
    if (node.running.delete(jobId)) this.checker.noteCopyEnded(node.index, jobId)
    // After the step that asked for it: the core hears the exit as a later input, as from a runtime.
    const incarnation = node.incarnation
    this.schedule(this.#now, () => {
      if (node.up && node.incarnation === incarnation) this.#input(node, (nowMs) => ({ kind: 'job-exited', nowMs, jobId, exitCode: 137, leaseLapsed }))
    })
  }

  #perform(node: SimNode, effects: readonly PeerEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'persist':
          node.storage.term = effect.state.term
          node.storage.votedFor = effect.state.votedFor
          node.storage.electionTimeoutMs = effect.state.electionTimeoutMs
          if (effect.state.documentIncrement.length > 0) {
            node.storage.chunks.push(effect.state.documentIncrement)
            node.storage.writtenAtMs.push(this.#now)
          }
          break
        case 'lease': {
          // The watchdog beside the node holds the deadline on real time (the node's clock may drift).
          node.leaseUntilRealMs = Number.isFinite(effect.untilMs) ? node.clock.realMsAt(effect.untilMs) : -Infinity
          if (Number.isFinite(node.leaseUntilRealMs)) this.#queue.push(Math.max(this.#now, node.leaseUntilRealMs), { kind: 'watchdog', node: node.index, incarnation: node.incarnation })
          break
        }
        case 'send':
          this.#send(node, effect.to, effect.message)
          break
        case 'publish-capacity':
          this.#publishCapacity(node, effect.gossip)
          break
        case 'start-job': {
          const token = ++this.#jobToken
          let durationMs = effect.durationMs
          if (effect.restoreFrom !== null) {
            // Restored: only the work left at the checkpoint remains.
            const snapshot = this.#snapshots.get(effect.restoreFrom.cid)
            this.checker.noteRestored(node.index, effect.jobId, effect.restoreFrom.cid, snapshot?.jobId)
            if (snapshot !== undefined) durationMs = snapshot.remainingMs
            this.migration.restored++
          }
          node.running.set(effect.jobId, { demand: effect.demand, token, endsAtMs: this.#now + durationMs, term: effect.term, seq: effect.seq })
          this.checker.noteJobStarted(node.index, effect.jobId, { term: effect.term, seq: effect.seq })
          if (process.env.SIM_TRACE_JOB === effect.jobId) this.checker.trace(`${node.id} starts ${effect.jobId} ${effect.term}.${effect.seq} restore=${effect.restoreFrom?.cid ?? '-'} for ${durationMs} ms`)
          this.placement.noteStarted(effect.jobId, this.#now)
          this.#queue.push(this.#now + durationMs, { kind: 'job-exit', node: node.index, incarnation: node.incarnation, jobId: effect.jobId, token })
          break
        }
        case 'checkpoint-job':
          this.#checkpoint(node, effect.jobId, effect.stop)
          break
        case 'stop-job':
          if (effect.cause === 'fenced') this.fencedCopies++
          this.#killCopy(node, effect.jobId, false)
          break
        case 'archive-job':
          this.checker.noteArchived(effect.job)
          break
        case 'event':
          this.#onPeerEvent(node, effect.event)
          break
      }
    }
    this.#scheduleWake(node)
  }

  /** A checkpoint takes checkpointMs; a stopping one ends the copy then. The node may crash meanwhile. */
  #checkpoint(node: SimNode, jobId: JobId, stop: boolean): void {
    const incarnation = node.incarnation
    const token = node.running.get(jobId)?.token
    this.schedule(this.#now + checkpointMs, () => {
      if (!node.up || node.incarnation !== incarnation) return
      const run = node.running.get(jobId)
      const nowMs = node.clock.localMs(this.#now)
      if (run === undefined || run.token !== token) {
        this.#step(node, { kind: 'job-checkpoint-failed', nowMs, jobId, reason: 'the process is gone' })
        return
      }
      const cid = `sim-${this.seed}-${this.#snapshots.size + 1}`
      this.#snapshots.set(cid, { jobId, remainingMs: Math.max(0, run.endsAtMs - this.#now) })
      this.migration.checkpointed++
      if (stop && node.running.delete(jobId)) this.checker.noteCopyEnded(node.index, jobId)
      this.#step(node, { kind: 'job-checkpointed', nowMs, jobId, cid, stopped: stop })
    })
  }

  #scheduleWake(node: SimNode): void {
    if (!node.up || node.paused) return
    const local = node.peer.nextWakeMs()
    if (!Number.isFinite(local)) return
    // Never schedule into the past, and land at or after the local deadline despite rounding.
    const real = Math.max(this.#now + 0.001, node.clock.realMsAt(local) + 0.0001)
    if (real >= node.wakeAtMs) return
    node.wakeAtMs = real
    this.#queue.push(real, { kind: 'wake', node: node.index })
  }

  #send(node: SimNode, to: NodeId, message: PeerMessage): void {
    const target = this.indexOf(to)
    this.metrics.messagesSent++
    const receiver = this.nodes[target]!
    const slowSync = message.kind === 'sync' ? this.#slowSync.get(target) : undefined
    for (const delay of this.network.transmit(node.index, target)) {
      let atMs = this.#now + delay
      if (slowSync !== undefined && this.#now < slowSync.untilMs) {
        // A congested link delivers in order: never before the sync queued ahead on it.
        const link = node.index * this.nodes.length + target
        atMs = Math.max(atMs + slowSync.extraMs, this.#slowSyncLast.get(link) ?? 0)
        this.#slowSyncLast.set(link, atMs)
      }
      this.#queue.push(atMs, { kind: 'deliver', node: target, from: node.index, incarnation: receiver.incarnation, message })
    }
  }

  slowSyncTo(node: number, extraMs: number, untilMs: number): void {
    this.#slowSync.set(node, { extraMs, untilMs })
    this.checker.trace(`${this.nodes[node]!.id}: document sync to it takes ${extraMs} ms more until ${(untilMs / 1000).toFixed(3)}s`)
  }

  /** Gossip modelled as gossipsub's mesh: arrival at every node is computed; only voters consume it. */
  #publishCapacity(node: SimNode, gossip: CapacityGossip): void {
    // A full propagation over the mesh costs ~0.3 ms at 1,000 peers, and every peer publishes each
    // second: large meshes reuse a publisher's arrival times at the voters until the network changes
    // or every gossipRefreshEvery-th publish (coverage is measured on the fresh propagations).
    const cached = this.#gossipCache[node.index]
    const refreshEvery = this.nodes.length > 100 ? gossipRefreshEvery : 1
    let arrivals: ArrayLike<number>
    if (cached !== undefined && cached.epoch === this.#networkEpoch && ++cached.uses % refreshEvery !== 0) {
      arrivals = cached.toVoters
    } else {
      this.#mesh.propagate(node.index, this.network, (index) => this.nodes[index]!.up, this.#arrivals)
      const coverage = coverageTimeMs(this.#arrivals, 0.99, this.#scratch)
      if (Number.isFinite(coverage)) this.metrics.gossip99Ms.push(coverage)
      else this.metrics.gossipUnreached++
      const toVoters = new Float64Array(this.#voterIndexes.length)
      this.#voterIndexes.forEach((voter, slot) => { toVoters[slot] = this.#arrivals[voter]! })
      this.#gossipCache[node.index] = { epoch: this.#networkEpoch, uses: 0, toVoters }
      arrivals = toVoters
    }
    for (let slot = 0; slot < this.#voterIndexes.length; slot++) {
      const index = this.#voterIndexes[slot]!
      const arrival = arrivals[slot]!
      if (index === node.index || !Number.isFinite(arrival)) continue
      const receiver = this.nodes[index]!
      this.#queue.push(this.#now + arrival, { kind: 'capacity', node: index, incarnation: receiver.incarnation, gossip })
    }
  }

  #onPeerEvent(node: SimNode, event: PeerEvent): void {
    this.checker.onPeerEvent(node.index, event)
    switch (event.kind) {
      case 'became-leader':
        this.metrics.leaderChanges++
        break
      case 'leader-ready':
        if (this.#leaderLostAtMs !== null && event.term > this.#lostLeaderTerm) {
          this.metrics.failoverMs.push(this.#now - this.#leaderLostAtMs)
          this.#leaderLostAtMs = null
        }
        break
      case 'decision':
        this.#decisionAtMs.set(`${event.term}.${event.seq}`, this.#now)
        if (event.auction !== null) this.placement.noteAuction(event.auction)
        break
      case 'committed': {
        if (event.ratified === true) break
        const key = `${event.term}.${event.seq}`
        const at = this.#decisionAtMs.get(key)
        if (at !== undefined) {
          this.metrics.commitMs.push(this.#now - at)
          this.#decisionAtMs.delete(key)
        }
        break
      }
      case 'submission-durable': {
        const at = this.#submittedAtMs.get(event.jobId)
        if (at !== undefined) this.metrics.ackMs.push(this.#now - at)
        break
      }
      default:
        break
    }
  }

  /** Failover is timed from the moment a fault takes the ready leader away. */
  #noteLeaderHit(node: number): void {
    const leader = this.leaderIndex()
    if (leader === null || leader !== node || this.#leaderLostAtMs !== null) return
    this.#leaderLostAtMs = this.#now
    this.#lostLeaderTerm = this.nodes[leader]!.peer.term
  }

  // ---- FaultTarget

  crash(index: number, reason: string, loseWritesMs = 0): void {
    this.#networkEpoch++
    const node = this.nodes[index]!
    if (!node.up) return
    this.#noteLeaderHit(index)
    node.up = false
    node.incarnation++
    for (const jobId of node.running.keys()) this.checker.noteCopyEnded(index, jobId)
    node.running.clear() // its workloads die with it
    node.wakeAtMs = Infinity
    node.paused = false
    node.deferred = []
    node.leaseUntilRealMs = -Infinity
    node.loseWritesMs = loseWritesMs
    this.checker.trace(`${node.id} ${reason}${loseWritesMs > 0 ? ` (its disk loses its last ${loseWritesMs} ms of document writes)` : ''}`)
  }

  restart(index: number): void {
    this.#networkEpoch++
    const node = this.nodes[index]!
    if (node.up) return
    node.up = true
    node.incarnation++
    if (node.loseWritesMs > 0) {
      // A disk that lost what it had not synced: the document's last writes are gone (the hard state, term and vote, is synced: Raft's assumption).
      const { chunks, writtenAtMs } = node.storage
      const lostAfterMs = this.#now - node.loseWritesMs
      let keep = chunks.length
      while (keep > 1 && writtenAtMs[keep - 1]! > lostAfterMs) keep--
      this.checker.trace(`${node.id} restarts from a stale disk: ${chunks.length - keep} document write(s) lost`)
      if (keep < chunks.length) this.checker.noteRunReportsLost(index)
      node.storage.chunks = chunks.slice(0, keep)
      node.storage.writtenAtMs = writtenAtMs.slice(0, keep)
      node.loseWritesMs = 0
    }
    this.checker.trace(`${node.id} restarts (term ${node.storage.term})`)
    this.#boot(node)
  }

  voterSet(): ReadonlySet<number> {
    return new Set([...this.#voterIndexes, ...this.committeeIndexes()])
  }

  /** The node's process stops (SIGSTOP, a frozen VM) for `durationMs`: its jobs run on until its lease's watchdog kills them. */
  pause(index: number, durationMs: number): void {
    const node = this.nodes[index]!
    if (!node.up || node.paused) return
    this.#noteLeaderHit(index)
    node.paused = true
    node.wakeAtMs = Infinity
    const incarnation = node.incarnation
    this.checker.trace(`${node.id} pauses for ${durationMs} ms`)
    this.schedule(this.#now + durationMs, () => this.resume(index, incarnation))
  }

  resume(index: number, incarnation = this.nodes[index]!.incarnation): void {
    const node = this.nodes[index]!
    if (!node.up || !node.paused || node.incarnation !== incarnation) return
    node.paused = false
    const nowMs = node.clock.localMs(this.#now)
    const inputs = [...node.deferred.map((make) => make(nowMs)), { kind: 'tick' as const, nowMs }]
    node.deferred = []
    this.checker.trace(`${node.id} resumes (${inputs.length - 1} input(s) waited)`)
    const effects = node.peer.stepAll(inputs)
    this.checker.noteStepped(node.index)
    this.#perform(node, effects)
  }

  partition(groups: number[][], reason: string): void {
    this.#networkEpoch++
    const leader = this.leaderIndex()
    this.network.partition(groups)
    if (leader !== null) {
      const side = groups.find((group) => group.includes(leader)) ?? []
      const votersWithLeader = this.#voterIndexes.filter((voter) => side.includes(voter)).length
      if (votersWithLeader * 2 <= this.#voterIndexes.length) this.#noteLeaderHit(leader)
    }
    this.checker.trace(reason)
  }

  cutOneWay(from: number, to: number): void {
    this.#networkEpoch++
    this.network.cutOneWay(from, to)
  }

  heal(reason: string): void {
    this.#networkEpoch++
    this.network.heal()
    this.#slowSync.clear()
    this.checker.trace(reason)
  }

  setLossRate(rate: number): void {
    this.#networkEpoch++
    this.network.setLossRate(rate)
  }
  setReorderRate(rate: number): void { this.network.setReorderRate(rate) }
  setDuplicateRate(rate: number): void { this.network.setDuplicateRate(rate) }
  setSlowFactor(node: number, factor: number): void {
    this.#networkEpoch++
    this.network.setSlowFactor(node, factor)
  }

  schedule(atMs: number, action: () => void): void {
    this.#queue.push(Math.max(atMs, this.#now), { kind: 'action', action })
  }

  // ---- OperatorTarget

  get operatorCounts(): Operator['counts'] { return this.#operator.counts }

  request(index: number, make: (nowMs: number) => PeerInput): void {
    const node = this.nodes[index]!
    if (node.up) this.#input(node, make)
  }

  perform(index: number, effects: readonly PeerEffect[]): void {
    this.#perform(this.nodes[index]!, effects)
  }

  trusted(index: number): boolean { return index !== this.byzantine?.index }

  mayBeVoter(index: number): void {
    if (index < 0 || this.#voterIndexes.includes(index)) return
    this.#voterIndexes.push(index)
    this.#voterIndexes.sort((a, b) => a - b)
    this.#networkEpoch++ // capacity now reaches it too
  }

  activeJobs(): JobId[] {
    return [...this.checker.acknowledged].filter((jobId) => !this.checker.archived.has(jobId) && !this.checker.archived.has(`${jobId}#0` as JobId))
  }

  trace(line: string): void { this.checker.trace(line) }

  // ---- ByzantineTarget

  sendAs(from: number, to: number, message: PeerMessage): void {
    const sender = this.nodes[from]!
    if (sender.up && !sender.paused) this.#send(sender, this.nodes[to]!.id, message)
  }

  localNowMs(index: number): number { return this.nodes[index]!.clock.localMs(this.#now) }
}
