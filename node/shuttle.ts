// The Shuttle: Fabric's daemon. It hosts libp2p (tcp, noise, yamux, identify, ping, gossipsub
// with strict signing), boots the consensus core from the level store, and drives it: inputs
// (messages, gossip, timer ticks) are stepped one at a time and each step's effects performed in
// order, persist first and awaited, so nothing is sent before it is durable. No protocol rule
// lives here; this file only carries effects between the core and the world: jobs to the runtime
// (job-runner.ts), clients' requests in (client-protocol.ts) and the core's answers back.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { randomUUID } from 'node:crypto'
import { loadavg } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import {
  Peer,
  createGenesis,
  defaultPeerTiming,
  type JobId,
  type JobUsage,
  type JobSubmission,
  type MoveConstraints,
  type NodeAttributes,
  type NodeId,
  type PeerConfig,
  type PeerEffect,
  type PeerEvent,
  type PeerInput,
  type RandomSource,
  type AdmissionRole,
  type Role,
  type Term,
} from '../consensus/index.ts'
import { DockerRuntime, ProcessRuntime, type Runtime } from '../runtime/index.ts'
import { RuntimeSelector, dockerLabel } from './runtime-selector.ts'
import { removeAddressesFile, writeAddressesFile } from './addresses-file.ts'
import { Admission } from './admission.ts'
import { meshAddresses } from './admission-requests.ts'
import { admittedNodeIds } from './admission-records.ts'
import { AddressGossipChannel } from './address-gossip.ts'
import { CapacityGossipChannel } from './capacity-gossip.ts'
import { clientFrames } from './client-connection.ts'
import { ClientProtocol } from './client-protocol.ts'
import { ClientService, type ClientBackend, type SubmitOutcome } from './client-service.ts'
import { systemClock, systemRandom, type Clock } from './clock.ts'
import { ConsensusTransport } from './consensus-transport.ts'
import { loadOrCreateIdentity, type NodeIdentity } from './identity.ts'
import { JobRunner } from './job-runner.ts'
import { SnapshotKeeper } from './snapshot-keeper.ts'
import { IrohSnapshotTransport } from '../snapshots/iroh-transport.ts'
import type { SnapshotTransportName } from '../snapshots/transport.ts'
import { CheckpointWaiters, maxCheckpointWaiters, type CheckpointMade } from './checkpoint-waiters.ts'
import type { ProgressFrame } from './client-wire.ts'
import { RestoreProgressHub } from './transfer-progress.ts'
import { fabricDht } from './snapshot-routing.ts'
import { checkpointPolicyOf, replicaCandidates } from './snapshot-policy.ts'
import { jobExists } from './job-views.ts'
import type { Logger } from './logger.ts'
import { MetricsGossipChannel, NodeMetricsBook, metricsPublishIntervalMs } from './metrics-gossip.ts'
import { MachineFree } from './machine-resources.ts'
import { NodeLiveness } from './node-liveness.ts'
import { PeerDiscovery } from './peer-discovery.ts'
import { requestSigner } from './request-signature.ts'
import { ConsensusStore } from './store.ts'
import type { NodeMetrics } from './wire.ts'

/** Inputs waiting for the core; past this, new inputs are dropped (the core cannot keep up). */
export const maxInboxLength = 10_000
/** Inputs handed to the core in one step (what queued during the previous step's persist). */
export const maxStepBatch = 256
export const maxBootstrapAddresses = 64
/** How often bootstrap peers not connected are dialed again (start order does not matter). */
export const bootstrapRetryMs = 1_000
/** Increments in the store before it is compacted online into one saved document. */
export const compactEveryIncrements = 1_000
/** The timer is re-armed at least this often even when the core wants no tick sooner. */
const maxTimerDelayMs = 60_000
/** Client submissions waiting for the core's answer at once. */
export const maxWaitingSubmissions = 1_024
/** A submission not durable on a majority of voters by then is answered 'not-acknowledged' (the core keeps retrying it). */
export const submitAckTimeoutMs = 30_000
/** A job exit refused by a full inbox is offered again after this long (an exit must reach the core). */
const exitRetryMs = 100
/** What one non-follow logs request reads per stream. */
export const maxLogBytesPerRequest = 64 * 1024 * 1024

export interface ShuttleInit {
  dataDir: string
  /** Jobs naming an image run in Docker when an engine answers ('auto', the default); 'off' never tries. */
  docker?: 'auto' | 'off'
  /** Multiaddrs to listen on (default tcp on 127.0.0.1, a free port). */
  listen?: string[]
  /** Multiaddrs (with /p2p/<id>) dialed at start and again until connected. */
  bootstrap?: string[]
  /** The genesis committee (peer ids). Needed on first start; later the store holds the document. */
  voters?: NodeId[]
  /** With voters on first start: the admin key's peer id (admission); absent, an open mesh. */
  admin?: string
  /** Instead of voters: the genesis a join by invite received (node/join-client.ts). */
  genesis?: Uint8Array
  attributes: Omit<NodeAttributes, 'id'>
  /** Election timeout base T; heartbeats every T/5 (DESIGN's starting parameters). */
  electionTimeoutMs?: number
  /** fsync each persist (default true). */
  syncWrites?: boolean
  /** Where a request goes first (PeerConfig.requestFanout; default every voter). */
  requestFanout?: PeerConfig['requestFanout']
  /** What carries snapshot transfers: libp2p streams (default) or iroh, bound on UDP at the libp2p TCP port's number. */
  snapshotTransport?: SnapshotTransportName
}

export interface ShuttleStatus {
  nodeId: NodeId
  role: Role
  term: Term
  leaderId: NodeId | null
  readyLeader: boolean
  voters: NodeId[]
}

export interface ShuttleComponents {
  logger: Logger
  clock?: Clock
  random?: RandomSource
  /** Called after every step that changed role, term, leader or readiness (and once at start). */
  onStatus?(status: ShuttleStatus): void
  /** Called once when the host listens and the core is built, before the core's first step. */
  onReady?(ready: { nodeId: NodeId; addresses: string[]; term: Term; voters: NodeId[] }): void
  /** Called when the daemon stops itself on an error it cannot continue from (a failed persist). */
  onFatal?(error: Error): void
  /** Runs the jobs the core assigns here (default: the process runtime in DATA/jobs). */
  runtime?: Runtime
}

type PendingInput = (nowMs: number) => PeerInput

export class Shuttle {
  readonly #init: ShuttleInit
  readonly #logger: Logger
  readonly #clock: Clock
  readonly #random: RandomSource
  readonly #components: ShuttleComponents
  #identity: NodeIdentity | null = null
  #store: ConsensusStore | null = null
  #libp2p: Libp2p<{ pubsub: GossipSub }> | null = null
  #transport: ConsensusTransport | null = null
  #gossip: CapacityGossipChannel | null = null
  #metricsGossip: MetricsGossipChannel | null = null
  #addressGossip: AddressGossipChannel | null = null
  readonly #metricsHeard = new NodeMetricsBook()
  #metricsSeq = 0
  #metricsTimer: NodeJS.Timeout | null = null
  #peer: Peer | null = null
  #runtime: Runtime | null = null
  #jobs: JobRunner | null = null
  #clientProtocol: ClientProtocol | null = null
  #snapshots: SnapshotKeeper | null = null
  #admission: Admission | null = null
  #discovery: PeerDiscovery | null = null
  /** What the machine has free now: caps the free resources the capacity gossip announces. */
  #machineFree: MachineFree | null = null
  #liveness = new NodeLiveness(defaultPeerTiming.nodeTimeoutMs)
  readonly #checkpointWaiters = new CheckpointWaiters()
  /** Who follows the restore of a replica on this node (a followed migration's progress). */
  readonly #restoreProgress = new RestoreProgressHub()
  readonly #submitWaiters = new Map<string, { jobId: JobId; timer: NodeJS.Timeout; resolve: (outcome: SubmitOutcome) => void }>()
  /** Called with every event the core reports (client watches, benchmarks); see onCoreEvent. */
  readonly #eventListeners = new Set<(event: PeerEvent) => void>()
  #addressesWritten = false
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  readonly #inbox: PendingInput[] = []
  #inboxDropped = 0
  #draining: Promise<void> | null = null
  #drainRunning = false
  #timer: NodeJS.Timeout | null = null
  #timerAtMs = Infinity
  #tickQueued = false
  #bootstrapTimer: NodeJS.Timeout | null = null
  #lastStatus = ''
  #stopped: Promise<void> | null = null
  #starting: Promise<void> | null = null

  constructor(init: ShuttleInit, components: ShuttleComponents) {
    this.#init = init
    this.#components = components
    this.#logger = components.logger
    this.#clock = components.clock ?? systemClock
    this.#random = components.random ?? systemRandom
  }

  get nodeId(): NodeId {
    if (this.#identity === null) throw new Error('the Shuttle has not started')
    return this.#identity.nodeId
  }

  get addresses(): string[] {
    return this.#libp2p?.getMultiaddrs().map((address) => address.toString()) ?? []
  }

  status(): ShuttleStatus {
    const peer = this.#peer
    if (peer === null) throw new Error('the Shuttle has not started')
    return { nodeId: peer.id, role: peer.role, term: peer.term, leaderId: peer.knownLeaderId, readyLeader: peer.isReadyLeader, voters: peer.voters() }
  }

  counters(): Record<string, unknown> {
    return {
      inboxDropped: this.#inboxDropped,
      peerDroppedMessages: this.#peer?.droppedMessages ?? 0,
      transport: this.#transport?.counters,
      capacity: this.#gossip?.counters,
      metrics: this.#metricsGossip?.counters,
      addresses: this.#addressGossip?.counters,
      client: this.#clientProtocol?.counters,
      admission: this.#admission?.counters(),
      snapshots: this.#snapshots?.counters,
      discovery: this.#discovery === null ? undefined : { ...this.#discovery.counters, connectedPeers: this.#discovery.connectedPeers(), missingMembers: this.#discovery.missingMembers().length },
    }
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') return
    this.#state = 'starting'
    this.#starting = this.#start()
    try {
      await this.#starting
    } catch (error) {
      await this.stop()
      throw error
    }
  }

  async #start(): Promise<void> {
    const init = this.#init
    const identity = await loadOrCreateIdentity(init.dataDir)
    this.#identity = identity
    this.#machineFree = new MachineFree(init.dataDir)
    this.#logger.info('identity', { nodeId: identity.nodeId, created: identity.created })

    // Sorted and deduplicated: every node must derive byte-identical genesis from the same set,
    // whatever order its --voters flag listed them in.
    const voters = [...new Set(init.voters ?? [])].sort()
    const genesis = init.genesis ?? (voters.length > 0 ? createGenesis({ voters, ...(init.admin !== undefined ? { admin: init.admin } : {}) }) : null)
    const opened = await ConsensusStore.open({ dataDir: init.dataDir, nodeId: identity.nodeId, genesis, syncWrites: init.syncWrites ?? true })
    this.#store = opened.store
    this.#logger.info('store-opened', { term: opened.persisted.term, votedFor: opened.persisted.votedFor, ...opened.stats })
    if (this.#state !== 'starting') return

    const runtime = this.#components.runtime ?? (await this.#defaultRuntime())
    this.#runtime = runtime
    const offerLabels = runtime instanceof RuntimeSelector && runtime.hasDocker ? { ...init.attributes.offer.labels, [dockerLabel.key]: dockerLabel.value } : init.attributes.offer.labels
    const jobs = new JobRunner({
      runtime,
      store: opened.store,
      logger: this.#logger.child('jobs'),
      nowMs: () => this.#clock.nowMs(),
      onExit: (jobId, exitCode, usage) => this.#jobExited(jobId, exitCode, usage),
    })
    this.#jobs = jobs
    // Runs in flight when an earlier daemon on this directory died are ended before the core steps.
    const document = opened.persisted.document
    const lostRuns = await jobs.recover((jobId) => document === undefined || jobExists(document, jobId))
    if (this.#state !== 'starting') return

    const store = opened.store
    const admission = new Admission({ nodeId: identity.nodeId, meshId: store.genesisHash, genesis: () => store.genesis(), document: () => this.#peer?.document ?? document, nowMs: () => this.#clock.nowMs(), logger: this.#logger.child('admission') })
    this.#admission = admission
    const libp2p = await createLibp2p({
      privateKey: identity.privateKey,
      connectionGater: admission.connectionGater,
      addresses: { listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign', allowPublishToZeroTopicPeers: true, emitSelf: false }),
        dht: fabricDht(),
        requestSigner: requestSigner(),
      },
      start: false,
    })
    this.#libp2p = libp2p
    const transportLogger = this.#logger.child('transport')
    this.#transport = new ConsensusTransport({
      libp2p,
      clock: this.#clock,
      logger: transportLogger,
      onMessage: (from, message) => this.#enqueue((nowMs) => ({ kind: 'message', nowMs, from, message })),
      accept: (from) => admission.mayActAsNode(from),
    })
    this.#gossip = new CapacityGossipChannel({
      pubsub: libp2p.services.pubsub,
      logger: this.#logger.child('capacity'),
      accept: (signer) => admission.mayActAsNode(signer),
      onGossip: (gossip) => {
        this.#liveness.record(gossip, this.#clock.nowMs())
        this.#enqueue((nowMs) => ({ kind: 'capacity', nowMs, gossip }))
      },
    })
    this.#metricsGossip = new MetricsGossipChannel({
      pubsub: libp2p.services.pubsub,
      logger: this.#logger.child('metrics'),
      accept: (signer) => admission.mayActAsNode(signer),
      onMetrics: (metrics) => this.#metricsHeard.record(metrics, this.#clock.nowMs()),
    })
    this.#addressGossip = new AddressGossipChannel({
      pubsub: libp2p.services.pubsub,
      logger: this.#logger.child('addresses'),
      accept: (signer) => admission.mayActAsNode(signer),
      onAddresses: (gossip) => this.#discovery?.heard(gossip),
    })
    await libp2p.start()
    await this.#transport.start()
    this.#gossip.start()
    this.#metricsGossip.start()
    const snapshotTransport = init.snapshotTransport === 'iroh' ? await irohBesideLibp2p(libp2p, identity.privateKey, init.listen ?? ['/ip4/127.0.0.1/tcp/0']) : undefined
    if (snapshotTransport !== undefined) this.#logger.info('snapshot-transport', { name: 'iroh', addresses: snapshotTransport.multiaddrs.map(String) })
    this.#addressGossip.start()
    this.#snapshots = await SnapshotKeeper.open({
      libp2p,
      snapshotTransport,
      runtime,
      logger: this.#logger.child('snapshots'),
      dataDir: init.dataDir,
      replicaCandidates: () => replicaCandidates(this.#peer!.document, identity.nodeId, (nodeId) => this.#liveness.isAlive(nodeId, this.#clock.nowMs())),
      mayActAsNode: (peerId) => admission.mayActAsNode(peerId),
    })
    if (this.#state !== 'starting') return

    const electionTimeoutMs = init.electionTimeoutMs ?? defaultPeerTiming.electionTimeoutMs
    const config: PeerConfig = {
      ...defaultPeerTiming,
      nodeId: identity.nodeId,
      electionTimeoutMs,
      heartbeatIntervalMs: Math.max(1, Math.floor(electionTimeoutMs / 5)),
      requestFanout: init.requestFanout ?? defaultPeerTiming.requestFanout,
    }
    this.#peer = new Peer({
      config,
      attributes: { id: identity.nodeId, offer: { ...init.attributes.offer, labels: offerLabels, nodeId: identity.nodeId } },
      random: this.#random,
      persisted: opened.persisted,
      nowMs: this.#clock.nowMs(),
    })
    this.#clientProtocol = new ClientProtocol({ libp2p, service: new ClientService(this.#clientBackend()), logger: this.#logger.child('client'), guard: admission.clientGuard })
    await this.#clientProtocol.start()
    await admission.start({ libp2p, admit: (peerId, role) => this.admit(peerId, role) })
    if (this.#state !== 'starting') return
    this.#state = 'running'
    await writeAddressesFile(init.dataDir, { peerId: identity.nodeId, addresses: this.addresses, pid: process.pid, writtenAtMs: this.#clock.nowMs() })
    this.#addressesWritten = true
    this.#logger.info('started', { nodeId: identity.nodeId, addresses: this.addresses, voters: this.#peer.voters(), electionTimeoutMs })
    this.#components.onReady?.({ nodeId: identity.nodeId, addresses: this.addresses, term: this.#peer.term, voters: this.#peer.voters() })
    this.#dialBootstrap()
    this.#discovery = new PeerDiscovery({
      libp2p,
      dht: libp2p.services.dht,
      logger: this.#logger.child('discovery'),
      members: (limit) => (this.#peer === null ? [] : admittedNodeIds(this.#peer.document, limit)),
      nowMs: () => this.#clock.nowMs(),
      announce: (gossip) => this.#addressGossip?.publish(gossip),
    })
    this.#discovery.start()
    this.#metricsTimer = setInterval(() => {
      this.#metricsSeq++
      this.#metricsGossip?.publish(this.#ownMetrics())
    }, metricsPublishIntervalMs)
    // The core hears of runs lost with the previous daemon before anything else (see job-runner.ts).
    for (const lost of lostRuns) this.#jobExited(lost.jobId, lost.exitCode)
    this.#enqueueTick()
  }

  /**
   * Submits a job to the core and resolves once the core says it is durable on a majority of voters
   * (`submission-durable`) or refuses it (`submission-refused`), or after submitAckTimeoutMs.
   */
  submit(job: JobSubmission): Promise<SubmitOutcome> {
    return this.#acknowledged(job.id, `job ${job.id}`, (nowMs, requestId) => ({ kind: 'submit', nowMs, requestId, job }))
  }

  /** Cancels every replica of a job; acknowledged like a submission (durable on a majority of voters). */
  cancel(jobId: JobId): Promise<SubmitOutcome> {
    return this.#acknowledged(jobId, `the cancel of job ${jobId}`, (nowMs, requestId) => ({ kind: 'cancel', nowMs, requestId, jobId }))
  }

  /** Asks for a job's running replicas to move (to `to`, or anywhere else `where` allows); acknowledged like a submission. */
  migrate(jobId: JobId, to: NodeId | null, where: MoveConstraints = {}): Promise<SubmitOutcome> {
    return this.#acknowledged(jobId, `the migration of job ${jobId}`, (nowMs, requestId) => ({ kind: 'migrate', nowMs, requestId, jobId, to, where }))
  }

  /** Drains a node (its jobs move away, nothing new goes there), or lifts its drain; acknowledged like a submission. */
  drain(nodeId: NodeId, undo = false): Promise<SubmitOutcome> {
    return this.#acknowledged(nodeId as string as JobId, `the ${undo ? 'undrain' : 'drain'} of ${nodeId}`, (nowMs, requestId) => ({ kind: undo ? 'undrain' : 'drain', nowMs, requestId, nodeId }))
  }

  /** Checkpoints a replica this node runs, now (it keeps running); progress as it goes, the snapshot once made. */
  checkpointNow(jobId: JobId, onProgress: (frame: ProgressFrame) => void, signal: AbortSignal): Promise<CheckpointMade> {
    if (this.#state !== 'running') return Promise.reject(new Error('the daemon is not running'))
    if (this.#checkpointWaiters.size >= maxCheckpointWaiters) return Promise.reject(new Error(`${maxCheckpointWaiters} checkpoint requests are waiting on this node already`))
    const requestId = randomUUID()
    const made = this.#checkpointWaiters.wait(requestId, jobId, onProgress, signal)
    if (!this.#enqueue((nowMs) => ({ kind: 'checkpoint-now', nowMs, requestId, jobId }))) this.#checkpointWaiters.answered(requestId, 'the daemon\'s inbox is full; try again')
    return made
  }

  /** Hears the progress of this node's restores of `jobId` (fetch, then restore) until the returned function is called. */
  onRestoreProgress(jobId: JobId, listener: (frame: ProgressFrame) => void): () => void {
    return this.#restoreProgress.listen(jobId, listener)
  }

  /** Listens to every event the core reports until the returned function is called. */
  onCoreEvent(listener: (event: PeerEvent) => void): () => void {
    this.#eventListeners.add(listener)
    return () => this.#eventListeners.delete(listener)
  }

  /** A request the core acknowledges like a submission: answered by its `submission-durable` or `submission-refused`. */
  #acknowledged(jobId: JobId, what: string, input: (nowMs: number, requestId: string) => PeerInput): Promise<SubmitOutcome> {
    if (this.#state !== 'running') return Promise.resolve({ ok: false, code: 'unavailable', reason: 'the daemon is not running' })
    if (this.#submitWaiters.size >= maxWaitingSubmissions) return Promise.resolve({ ok: false, code: 'busy', reason: `${maxWaitingSubmissions} submissions are waiting for the core already` })
    const requestId = randomUUID()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#submitWaiters.delete(requestId)
        resolve({ ok: false, code: 'not-acknowledged', jobId, reason: `${what} was not durable on a majority of voters within ${submitAckTimeoutMs} ms; this node keeps offering it (check with \`fabric job ${jobId}\`)` })
      }, submitAckTimeoutMs)
      this.#submitWaiters.set(requestId, { jobId, timer, resolve })
      if (!this.#enqueue((nowMs) => input(nowMs, requestId))) this.#answerSubmission(requestId, { ok: false, code: 'busy', reason: 'the daemon\'s inbox is full; try again' })
    })
  }

  /** Records a peer's admission (or revocation) through the core; answered like a submission. */
  admit(peerId: string, role: AdmissionRole): Promise<SubmitOutcome> {
    if (this.#state !== 'running') return Promise.resolve({ ok: false, code: 'unavailable', reason: 'the daemon is not running' })
    if (this.#submitWaiters.size >= maxWaitingSubmissions) return Promise.resolve({ ok: false, code: 'busy', reason: `${maxWaitingSubmissions} requests are waiting for the core already` })
    const requestId = randomUUID()
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#submitWaiters.delete(requestId)
        resolve({ ok: false, code: 'not-acknowledged', reason: `the ${role} record of ${peerId} was not durable on a majority of voters within ${submitAckTimeoutMs} ms; this node keeps offering it` })
      }, submitAckTimeoutMs)
      this.#submitWaiters.set(requestId, { jobId: peerId as JobId, timer, resolve })
      if (!this.#enqueue((nowMs) => ({ kind: 'admit', nowMs, requestId, peerId, role }))) this.#answerSubmission(requestId, { ok: false, code: 'busy', reason: 'the daemon\'s inbox is full; try again' })
    })
  }

  #answerSubmission(requestId: string, outcome: SubmitOutcome): void {
    const waiter = this.#submitWaiters.get(requestId)
    if (waiter === undefined) return
    this.#submitWaiters.delete(requestId)
    clearTimeout(waiter.timer)
    waiter.resolve(outcome)
  }

  /** A run ended: the core must hear it, so a full inbox only delays it. */
  #jobExited(jobId: JobId, exitCode: number, usage?: JobUsage): void {
    if (this.#state !== 'running') return
    if (this.#enqueue((nowMs) => ({ kind: 'job-exited', nowMs, jobId, exitCode, ...(usage === undefined ? {} : { usage }) }))) return
    setTimeout(() => this.#jobExited(jobId, exitCode, usage), exitRetryMs).unref()
  }

  /** What the client protocol reads and asks of this daemon. */
  #clientBackend(): ClientBackend {
    const peer = (): Peer => {
      if (this.#peer === null) throw new Error('the Shuttle has not started')
      return this.#peer
    }
    const jobs = this.#jobs!
    const store = this.#store!
    const libp2p = this.#libp2p!
    return {
      nodeId: this.nodeId,
      nowMs: () => this.#clock.nowMs(),
      status: () => this.status(),
      document: () => peer().document,
      submit: (job) => this.submit(job),
      cancel: (jobId) => this.cancel(jobId),
      migrate: (jobId, to, where) => this.migrate(jobId, to, where),
      drain: (nodeId, undo) => this.drain(nodeId, undo),
      checkpointNow: (jobId, onProgress, signal) => this.checkpointNow(jobId, onProgress, signal),
      onRestoreProgress: (jobId, listener) => this.onRestoreProgress(jobId, listener),
      explain: (jobId) => peer().explain(jobId),
      leaderCommittedSeq: () => (peer().role === 'leader' ? peer().committedSeq : null),
      onCoreEvent: (listener) => this.onCoreEvent(listener),
      counters: () => this.counters(),
      archivedJob: (jobId) => store.archivedJob(jobId),
      archivedJobs: (limit) => store.archivedJobs(limit),
      liveness: this.#liveness,
      own: () => {
        const running = peer().runningJobs()
        const capacity = this.#init.attributes.offer.capacity
        let cpuMillis = capacity.cpuMillis
        let memoryMiB = capacity.memoryMiB
        for (const run of running.values()) {
          cpuMillis -= run.demand.cpuMillis
          memoryMiB -= run.demand.memoryMiB
        }
        if (this.#machineFree !== null) memoryMiB = Math.min(memoryMiB, this.#machineFree.memoryMiB())
        return { free: { cpuMillis, memoryMiB }, running: running.size, metrics: this.#ownMetrics() }
      },
      metricsHeard: this.#metricsHeard,
      localJob: (jobId) => jobs.local(jobId),
      localLogs: (jobId, options) => jobs.logs(jobId, options),
      forward: (nodeId, body, signal) => clientFrames(libp2p, peerIdFromString(nodeId), body, { signal, forwarded: true }),
      admission: { nodeId: this.nodeId, meshId: store.genesisHash, document: () => peer().document, addresses: () => meshAddresses(libp2p, peer().voters(), maxBootstrapAddresses), admit: (peerId, role) => this.admit(peerId, role) },
    }
  }

  /** This daemon's metrics now, from its own counters (published on the metrics topic, shown by `fabric nodes`). */
  #ownMetrics(): NodeMetrics {
    const memory = process.memoryUsage()
    const client = this.#clientProtocol?.counters
    return {
      nodeId: this.nodeId,
      seq: this.#metricsSeq,
      atMs: Math.max(0, Math.round(this.#clock.nowMs())),
      runningJobs: this.#peer?.runningJobs().size ?? 0,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      loadAverage1m: loadavg()[0] ?? 0,
      inboxLength: this.#inbox.length,
      inboxDropped: this.#inboxDropped,
      coreRefusedMessages: this.#peer?.droppedMessages ?? 0,
      clientRequestsServed: client?.requests ?? 0,
      clientRequestsRefused: client?.refused ?? 0,
      snapshotBytesServed: this.#snapshots?.bytesServed ?? 0,
    }
  }

  /** Idempotent; safe at any point of start (each part stops only what it started). */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async #stop(): Promise<void> {
    const wasStarting = this.#state === 'starting'
    this.#state = 'stopping'
    // A start in flight notices the state and returns; then everything it made is torn down here.
    if (wasStarting) await this.#starting?.catch(() => {})
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#bootstrapTimer !== null) clearTimeout(this.#bootstrapTimer)
    this.#discovery?.stop()
    if (this.#metricsTimer !== null) clearInterval(this.#metricsTimer)
    this.#timer = null
    this.#metricsTimer = null
    this.#bootstrapTimer = null
    this.#inbox.length = 0
    for (const requestId of [...this.#submitWaiters.keys()]) this.#answerSubmission(requestId, { ok: false, code: 'unavailable', reason: 'the daemon is stopping; the job may still have been accepted' })
    this.#checkpointWaiters.close('the daemon is stopping')
    await this.#clientProtocol?.stop()
    await this.#snapshots?.close().catch((error: unknown) => this.#logger.warn('snapshots-close-failed', { error }))
    await this.#admission?.stop()
    this.#gossip?.stop()
    this.#metricsGossip?.stop()
    this.#addressGossip?.stop()
    await this.#transport?.stop()
    try {
      await this.#libp2p?.stop()
    } catch (error) {
      this.#logger.warn('libp2p-stop-failed', { error })
    }
    // Let a step in flight finish its persist before the store closes.
    await this.#draining?.catch(() => {})
    // Jobs end with the daemon (the ledger keeps them in flight: the next start reports them lost).
    if (this.#jobs !== null) await this.#jobs.close()
    else await this.#runtime?.close()
    await this.#store?.close()
    if (this.#addressesWritten) await removeAddressesFile(this.#init.dataDir, process.pid)
    this.#state = 'stopped'
    this.#logger.info('stopped', { counters: this.counters() })
  }

  // ---- Driving the core: one input at a time, effects in order

  #enqueue(make: PendingInput): boolean {
    if (this.#state !== 'running') return false
    if (this.#inbox.length >= maxInboxLength) {
      this.#inboxDropped++
      if (this.#inboxDropped % 1_000 === 1) this.#logger.warn('inbox-full', { maxInboxLength, dropped: this.#inboxDropped })
      return false
    }
    this.#inbox.push(make)
    if (!this.#drainRunning) {
      this.#drainRunning = true
      this.#draining = this.#drain()
    }
    return true
  }

  #enqueueTick(): void {
    if (this.#tickQueued) return
    this.#tickQueued = true
    const queued = this.#enqueue((nowMs) => {
      this.#tickQueued = false
      return { kind: 'tick', nowMs }
    })
    // A full inbox refused the tick: the drain that empties it re-arms the timer.
    if (!queued) this.#tickQueued = false
  }

  async #drain(): Promise<void> {
    try {
      while (this.#inbox.length > 0 && this.#state === 'running') {
        const peer = this.#peer!
        // What queued while the last batch persisted and sent goes to the core as one batch: one
        // write and one sync message per partner for all of it (bounded, so a flood still yields).
        const nowMs = this.#clock.nowMs()
        const batch = this.#inbox.splice(0, maxStepBatch).map((make) => make(nowMs))
        const effects = peer.stepAll(batch)
        await this.#perform(effects)
        this.#reportStatus()
      }
    } catch (error) {
      this.#fatal(error as Error)
      return
    } finally {
      // Cleared in the same synchronous run as the last inbox check: no input can slip between.
      this.#drainRunning = false
    }
    this.#armTimer()
  }

  async #perform(effects: readonly PeerEffect[]): Promise<void> {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'persist':
          await this.#store!.persist(effect.state)
          if (this.#store!.incrementCount >= compactEveryIncrements) await this.#store!.compact(this.#peer!.document)
          break
        case 'send':
          this.#transport!.send(effect.to, effect.message)
          break
        case 'publish-capacity':
          this.#gossip!.publish(this.#machineFree === null ? effect.gossip : { ...effect.gossip, free: this.#machineFree.cap(effect.gossip.free) })
          break
        case 'archive-job':
          await this.#store!.archive(effect.job)
          this.#jobs!.forget(effect.job.id)
          void this.#snapshots!.release(effect.job.id).catch((error: unknown) => this.#logger.warn('snapshot-release-failed', { jobId: effect.job.id, error }))
          break
        case 'start-job': {
          // The document holds the job's record now; the launch itself does not hold up the core.
          this.#logger.info('start-job', { jobId: effect.jobId, term: effect.term, seq: effect.seq, restoreFrom: effect.restoreFrom?.cid ?? null })
          const from = effect.restoreFrom
          const snapshots = this.#snapshots!
          const restoreProgress = (frame: ProgressFrame): void => this.#restoreProgress.publish(effect.jobId, frame)
          this.#jobs!.start(effect, this.#peer!.document, from === null ? undefined : () => snapshots.restore(effect.jobId, from.cid, [from.node, ...from.holders], restoreProgress))
          break
        }
        case 'checkpoint-job':
          this.#checkpoint(effect)
          break
        case 'stop-job':
          this.#logger.info('stop-job', { jobId: effect.jobId, reason: effect.reason })
          this.#jobs!.stop(effect.jobId, effect.reason)
          break
        case 'event': {
          const event = effect.event
          if (event.kind === 'message-dropped') this.#logger.debug('core-dropped-message', event)
          else this.#logger.info(event.kind, event)
          if (event.kind === 'submission-durable') this.#answerSubmission(event.requestId, { ok: true, jobId: event.jobId })
          else if (event.kind === 'submission-refused') this.#answerSubmission(event.requestId, { ok: false, code: 'refused', reason: event.reason })
          else if (event.kind === 'checkpoint-answer') this.#checkpointWaiters.answered(event.requestId, event.refused)
          for (const listener of this.#eventListeners) {
            try {
              listener(event)
            } catch (error) {
              this.#logger.error('event-listener-failed', { error })
            }
          }
          break
        }
      }
    }
  }

  /** The process runtime, and the Docker runtime when an engine answers (jobs naming an image go there). */
  async #defaultRuntime(): Promise<RuntimeSelector> {
    const components = { logger: this.#logger.child('runtime'), nowMs: () => this.#clock.nowMs() }
    const processRuntime = new ProcessRuntime({ dataDir: this.#init.dataDir, limits: { maxLogBytesPerCall: maxLogBytesPerRequest } }, components)
    let docker: DockerRuntime | null = null
    if (this.#init.docker !== 'off') {
      const candidate = new DockerRuntime({ dataDir: this.#init.dataDir }, { logger: this.#logger.child('docker') })
      const engine = await candidate.engine()
      if (engine.available) docker = candidate
      else await candidate.close()
      this.#logger.info('docker-engine', engine.available ? { available: true, version: engine.version } : { available: false, reason: engine.reason })
    }
    return new RuntimeSelector({ process: processRuntime, docker })
  }

  /** Takes the checkpoint off the step loop; its outcome comes back as an input. */
  #checkpoint(effect: Extract<PeerEffect, { kind: 'checkpoint-job' }>): void {
    const { jobId, stop } = effect
    const policy = checkpointPolicyOf(this.#peer!.document, jobId)
    if (stop) this.#jobs!.endsWithCheckpoint(jobId)
    this.#logger.info('checkpoint-job', { jobId, stop, reason: effect.reason })
    const waiters = this.#checkpointWaiters
    this.#snapshots!.checkpoint(jobId, { stop, replicas: policy.replicas, keep: policy.keep, onProgress: (frame) => waiters.progress(jobId, frame) }).then(
      (made) => {
        this.#enqueue((nowMs) => ({ kind: 'job-checkpointed', nowMs, jobId, cid: made.cid, stopped: stop, holders: made.holders, sizeBytes: made.sizeBytes, chunks: made.chunks }))
        waiters.made(jobId, made)
      },
      (error: Error) => {
        this.#logger.warn('checkpoint-failed', { jobId, reason: error.message })
        waiters.failed(jobId, error.message)
        if (stop) this.#jobs!.checkpointFailed(jobId)
        this.#enqueue((nowMs) => ({ kind: 'job-checkpoint-failed', nowMs, jobId, reason: error.message }))
      },
    )
  }

  #armTimer(): void {
    if (this.#state !== 'running' || this.#peer === null) return
    const wakeMs = Math.min(this.#peer.nextWakeMs(), this.#clock.nowMs() + maxTimerDelayMs)
    if (this.#timer !== null && this.#timerAtMs <= wakeMs) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timerAtMs = wakeMs
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#timerAtMs = Infinity
      this.#enqueueTick()
    }, Math.max(0, wakeMs - this.#clock.nowMs()))
  }

  #reportStatus(): void {
    const status = this.status()
    const key = `${status.role}|${status.term}|${status.leaderId}|${status.readyLeader}`
    if (key === this.#lastStatus) return
    this.#lastStatus = key
    this.#logger.info('status', { ...status })
    this.#components.onStatus?.(status)
  }

  #fatal(error: Error): void {
    this.#logger.error('fatal', { error })
    this.#components.onFatal?.(error)
    void this.stop()
  }

  // ---- Bootstrap: dial the given peers until connected, whatever the start order

  #dialBootstrap(): void {
    const libp2p = this.#libp2p
    if (this.#state !== 'running' || libp2p === null) return
    const targets = (this.#init.bootstrap ?? []).slice(0, maxBootstrapAddresses)
    let pending = 0
    for (const text of targets) {
      let address
      try {
        address = multiaddr(text)
      } catch (error) {
        this.#logger.warn('bootstrap-address-invalid', { address: text, error })
        continue
      }
      const peer = address.getComponents().find((component) => component.name === 'p2p')?.value
      if (peer !== undefined && libp2p.getConnections().some((connection) => connection.remotePeer.toString() === peer)) continue
      pending++
      libp2p.dial(address, { signal: AbortSignal.timeout(bootstrapRetryMs * 2) }).then(
        () => this.#logger.info('bootstrap-connected', { address: text }),
        (error: unknown) => this.#logger.debug('bootstrap-dial-failed', { address: text, error }),
      )
    }
    if (pending > 0 || targets.length > 0) this.#bootstrapTimer = setTimeout(() => this.#dialBootstrap(), bootstrapRetryMs)
  }
}

/**
 * The iroh endpoint of a daemon: on UDP at the IP its first TCP listen address names (0.0.0.0
 * included) and the port number libp2p got for it, so peers derive it from the TCP addresses
 * identify told them.
 */
async function irohBesideLibp2p(libp2p: Libp2p, privateKey: PrivateKey, listen: readonly string[]): Promise<IrohSnapshotTransport> {
  const tcpAddress = /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d+)/
  const configured = listen.map((address) => tcpAddress.exec(address)).find((parsed) => parsed !== null)
  const bound = libp2p.getMultiaddrs().map((address) => tcpAddress.exec(address.toString())).find((parsed) => parsed != null && (configured == null || configured[3] === '0' || parsed[3] === configured[3]))
  if (configured == null || bound == null) throw new Error('the iroh snapshot transport needs a TCP listen address to take its port number from')
  const bindAddr = configured[1] === 'ip6' ? `[${configured[2]}]:${bound[3]}` : `${configured[2]}:${bound[3]}`
  return IrohSnapshotTransport.create({ privateKey, bindAddr, udpPortOfTcp: true }).catch((error: Error) => {
    throw new Error(`cannot start the iroh snapshot transport on UDP ${bindAddr}: ${error.message}`)
  })
}
