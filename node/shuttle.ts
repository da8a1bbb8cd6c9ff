// The Shuttle: Fabric's daemon. It hosts libp2p (daemon-host.ts), boots the consensus core from the
// level store, and drives it (core-driver.ts): inputs (messages, gossip, timer ticks) are stepped in
// batches and each batch's effects performed in order (effect-performer.ts), persist first and
// awaited, so nothing is sent before it is durable. No protocol rule lives here; this file wires the
// parts that carry effects between the core and the world: jobs to the runtime (job-runner.ts),
// clients' requests in (client-protocol.ts, client-backend.ts) and the core's answers back
// (core-requests.ts), and stops them in order.
import { randomBytes } from 'node:crypto'
import {
  Peer,
  actorOf,
  createGenesis,
  defaultPeerTiming,
  type JobId,
  type JobUsage,
  type JobSubmission,
  type MoveConstraints,
  type NodeAttributes,
  type NodeId,
  type PeerConfig,
  type PeerEvent,
  type RandomSource,
  type ReplayKey,
  type Role,
  type Term,
} from '../consensus/index.ts'
import type { Runtime } from '../runtime/index.ts'
import type { SnapshotTransportName } from '../snapshots/transport.ts'
import { RuntimeSelector, dockerLabel } from './runtime-selector.ts'
import { removeAddressesFile, writeAddressesFile } from './addresses-file.ts'
import { Admission } from './admission.ts'
import { grantVerifier } from './admission-grant.ts'
import { submissionProofVerifier } from './submission-proof.ts'
import { admittedNodeIds } from './admission-records.ts'
import { AddressGossipChannel } from './address-gossip.ts'
import { BootstrapDialer } from './bootstrap-dialer.ts'
import { CapacityGossipChannel } from './capacity-gossip.ts'
import type { CheckpointMade } from './checkpoint-waiters.ts'
import { pinMeshId } from './client-connection.ts'
import { clientBackendOf } from './client-backend.ts'
import { ClientProtocol } from './client-protocol.ts'
import { ClientService, type SubmitOutcome } from './client-service.ts'
import type { ProgressFrame } from './client-wire.ts'
import { systemClock, systemRandom, type Clock } from './clock.ts'
import { ConsensusTransport } from './consensus-transport.ts'
import { CoreDriver } from './core-driver.ts'
import { CoreRequests } from './core-requests.ts'
import { createDaemonHost, irohBesideLibp2p, type DaemonHost } from './daemon-host.ts'
import { defaultRuntime } from './default-runtime.ts'
import { EffectPerformer } from './effect-performer.ts'
import { loadOrCreateIdentity, type NodeIdentity } from './identity.ts'
import { GpuAllocator } from './gpu-allocator.ts'
import { JobRunner } from './job-runner.ts'
import { jobExists } from './job-views.ts'
import type { Logger } from './logger.ts'
import { MachineFree } from './machine-resources.ts'
import { MetricsGossipChannel, NodeMetricsBook } from './metrics-gossip.ts'
import { NodeLiveness } from './node-liveness.ts'
import { OwnMetrics } from './own-metrics.ts'
import { PeerDiscovery } from './peer-discovery.ts'
import { SnapshotKeeper } from './snapshot-keeper.ts'
import { replicaCandidates } from './snapshot-policy.ts'
import { ConsensusStore } from './store.ts'
import { RestoreProgressHub } from './transfer-progress.ts'

// The parts' limits, exported here too: node/index.ts and callers import them from the Shuttle.
export { maxInboxLength, maxStepBatch } from './core-driver.ts'
export { maxBootstrapAddresses, bootstrapRetryMs } from './bootstrap-dialer.ts'
export { compactEveryIncrements } from './effect-performer.ts'
export { maxWaitingSubmissions, submitAckTimeoutMs } from './core-requests.ts'
export { maxLogBytesPerRequest } from './default-runtime.ts'

/** A job exit refused by a full inbox is offered again after this long (an exit must reach the core). */
const exitRetryMs = 100

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
  /**
   * The GPU device indices (nvidia-smi's) jobs here may be given, one per GPU of the offer's
   * capacity.gpuCount; default 0 to gpuCount - 1.
   */
  gpuDevices?: readonly number[]
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

export class Shuttle {
  readonly #init: ShuttleInit
  readonly #logger: Logger
  readonly #clock: Clock
  readonly #random: RandomSource
  readonly #components: ShuttleComponents
  readonly #driver: CoreDriver
  readonly #requests: CoreRequests
  /** The GPU devices jobs here are given (checked against the offer when constructed). */
  readonly #gpus: GpuAllocator
  #identity: NodeIdentity | null = null
  #store: ConsensusStore | null = null
  #libp2p: DaemonHost | null = null
  #transport: ConsensusTransport | null = null
  #gossip: CapacityGossipChannel | null = null
  #metricsGossip: MetricsGossipChannel | null = null
  #addressGossip: AddressGossipChannel | null = null
  readonly #metricsHeard = new NodeMetricsBook()
  #ownMetrics: OwnMetrics | null = null
  #peer: Peer | null = null
  #effects: EffectPerformer | null = null
  #runtime: Runtime | null = null
  #jobs: JobRunner | null = null
  #clientProtocol: ClientProtocol | null = null
  #snapshots: SnapshotKeeper | null = null
  #admission: Admission | null = null
  #discovery: PeerDiscovery | null = null
  #bootstrap: BootstrapDialer | null = null
  #liveness = new NodeLiveness(defaultPeerTiming.nodeTimeoutMs)
  /** Who follows the restore of a replica on this node (a followed migration's progress). */
  readonly #restoreProgress = new RestoreProgressHub()
  /** Called with every event the core reports (client watches, benchmarks); see onCoreEvent. */
  readonly #eventListeners = new Set<(event: PeerEvent) => void>()
  #addressesWritten = false
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #lastStatus = ''
  #stopped: Promise<void> | null = null
  #starting: Promise<void> | null = null

  constructor(init: ShuttleInit, components: ShuttleComponents) {
    this.#init = init
    this.#components = components
    this.#logger = components.logger
    this.#clock = components.clock ?? systemClock
    this.#random = components.random ?? systemRandom
    this.#gpus = new GpuAllocator(gpuDevicesOf(init))
    const running = (): boolean => this.#state === 'running'
    this.#driver = new CoreDriver({
      clock: this.#clock,
      logger: this.#logger,
      peer: () => this.#peer,
      running,
      perform: (effects) => this.#effects!.perform(effects),
      onStepped: () => this.#reportStatus(),
      onFatal: (error) => this.#fatal(error),
    })
    this.#requests = new CoreRequests({ running, enqueue: (make) => this.#driver.enqueue(make) })
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
      inboxDropped: this.#driver.inboxDropped,
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
    // What the machine has free now: caps the free resources the capacity gossip announces.
    const machineFree = new MachineFree(init.dataDir)
    this.#logger.info('identity', { nodeId: identity.nodeId, created: identity.created })

    // Sorted and deduplicated: every node must derive byte-identical genesis from the same set,
    // whatever order its --voters flag listed them in.
    const voters = [...new Set(init.voters ?? [])].sort()
    const genesis = init.genesis ?? (voters.length > 0 ? createGenesis({ voters, ...(init.admin !== undefined ? { admin: init.admin } : {}) }) : null)
    // A new incarnation at every boot: this node writes as a new Automerge actor and numbers its requests afresh (consensus/actors.ts).
    const incarnation = randomBytes(8).toString('hex')
    const opened = await ConsensusStore.open({ dataDir: init.dataDir, nodeId: identity.nodeId, actor: actorOf(identity.nodeId, incarnation), genesis, syncWrites: init.syncWrites ?? true })
    this.#store = opened.store
    this.#logger.info('store-opened', { term: opened.persisted.term, votedFor: opened.persisted.votedFor, ...opened.stats })
    if (this.#state !== 'starting') return

    const runtime = this.#components.runtime ?? (await defaultRuntime({ dataDir: init.dataDir, docker: init.docker, clock: this.#clock, logger: this.#logger }))
    this.#runtime = runtime
    const offerLabels = runtime instanceof RuntimeSelector && runtime.hasDocker ? { ...init.attributes.offer.labels, [dockerLabel.key]: dockerLabel.value } : init.attributes.offer.labels
    const jobs = new JobRunner({
      runtime,
      gpus: this.#gpus,
      store: opened.store,
      logger: this.#logger.child('jobs'),
      nowMs: () => this.#clock.nowMs(),
      onExit: (jobId, exitCode, usage, leaseLapsed) => this.#jobExited(jobId, exitCode, usage, leaseLapsed),
    })
    this.#jobs = jobs
    // Runs in flight when an earlier daemon on this directory died are ended before the core steps.
    const document = opened.persisted.document
    const lostRuns = await jobs.recover((jobId) => document === undefined || jobExists(document, jobId))
    if (this.#state !== 'starting') return

    const store = opened.store
    const admission = new Admission({ nodeId: identity.nodeId, meshId: store.genesisHash, genesis: () => store.genesis(), document: () => this.#peer?.document ?? document, nowMs: () => this.#clock.nowMs(), logger: this.#logger.child('admission') })
    this.#admission = admission
    const libp2p = await createDaemonHost({ privateKey: identity.privateKey, connectionGater: admission.connectionGater, listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] })
    this.#libp2p = libp2p
    // What this daemon asks other daemons (a forwarded logs request, a relayed cancel) is signed for its own mesh.
    pinMeshId(libp2p, store.genesisHash)
    const enqueue = this.#driver.enqueue.bind(this.#driver)
    const transport = new ConsensusTransport({
      libp2p,
      clock: this.#clock,
      logger: this.#logger.child('transport'),
      onMessage: (from, message) => enqueue((nowMs) => ({ kind: 'message', nowMs, from, message })),
      accept: (from) => admission.mayActAsNode(from),
    })
    this.#transport = transport
    const gossip = new CapacityGossipChannel({
      pubsub: libp2p.services.pubsub,
      logger: this.#logger.child('capacity'),
      accept: (signer) => admission.mayActAsNode(signer),
      onGossip: (heard) => {
        this.#liveness.record(heard, this.#clock.nowMs())
        enqueue((nowMs) => ({ kind: 'capacity', nowMs, gossip: heard }))
      },
    })
    this.#gossip = gossip
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
      onAddresses: (heard) => this.#discovery?.heard(heard),
    })
    await libp2p.start()
    await transport.start()
    gossip.start()
    this.#metricsGossip.start()
    const snapshotTransport = init.snapshotTransport === 'iroh' ? await irohBesideLibp2p(libp2p, identity.privateKey, init.listen ?? ['/ip4/127.0.0.1/tcp/0']) : undefined
    if (snapshotTransport !== undefined) this.#logger.info('snapshot-transport', { name: 'iroh', addresses: snapshotTransport.multiaddrs.map(String) })
    this.#addressGossip.start()
    const snapshots = await SnapshotKeeper.open({
      libp2p,
      snapshotTransport,
      runtime,
      logger: this.#logger.child('snapshots'),
      dataDir: init.dataDir,
      replicaCandidates: () => replicaCandidates(this.#peer!.document, identity.nodeId, (nodeId) => this.#liveness.isAlive(nodeId, this.#clock.nowMs())),
      mayActAsNode: (peerId) => admission.mayActAsNode(peerId),
    })
    this.#snapshots = snapshots
    if (this.#state !== 'starting') return

    const electionTimeoutMs = init.electionTimeoutMs ?? defaultPeerTiming.electionTimeoutMs
    const config: PeerConfig = {
      ...defaultPeerTiming,
      nodeId: identity.nodeId,
      electionTimeoutMs,
      heartbeatIntervalMs: Math.max(1, Math.floor(electionTimeoutMs / 5)),
      requestFanout: init.requestFanout ?? defaultPeerTiming.requestFanout,
    }
    const peer = new Peer({
      config,
      attributes: { id: identity.nodeId, offer: { ...init.attributes.offer, labels: offerLabels, nodeId: identity.nodeId } },
      random: this.#random,
      persisted: opened.persisted,
      nowMs: this.#clock.nowMs(),
      incarnation,
      verifyGrant: grantVerifier(store.genesisHash),
      verifySubmission: submissionProofVerifier(store.genesisHash),
    })
    this.#peer = peer
    this.#effects = new EffectPerformer({ peer, store, transport, capacity: gossip, machineFree, jobs, snapshots, restoreProgress: this.#restoreProgress, requests: this.#requests, eventListeners: this.#eventListeners, enqueue, logger: this.#logger })
    const ownMetrics = new OwnMetrics({ nodeId: identity.nodeId, clock: this.#clock, driver: this.#driver, peer: () => this.#peer, clientProtocol: () => this.#clientProtocol, snapshots: () => this.#snapshots })
    this.#ownMetrics = ownMetrics
    const backend = clientBackendOf(this, { peer: () => this.#peer, clock: this.#clock, libp2p, store, jobs, capacity: init.attributes.offer.capacity, machineFree, liveness: this.#liveness, ownMetrics, metricsHeard: this.#metricsHeard })
    this.#clientProtocol = new ClientProtocol({ libp2p, service: new ClientService(backend), logger: this.#logger.child('client'), guard: admission.clientGuard })
    await this.#clientProtocol.start()
    await admission.start({ libp2p, admit: (peerId, grant) => this.admit(peerId, grant) })
    if (this.#state !== 'starting') return
    this.#state = 'running'
    await writeAddressesFile(init.dataDir, { peerId: identity.nodeId, meshId: store.genesisHash, addresses: this.addresses, pid: process.pid, writtenAtMs: this.#clock.nowMs() })
    this.#addressesWritten = true
    this.#logger.info('started', { nodeId: identity.nodeId, addresses: this.addresses, voters: peer.voters(), electionTimeoutMs })
    this.#components.onReady?.({ nodeId: identity.nodeId, addresses: this.addresses, term: peer.term, voters: peer.voters() })
    this.#bootstrap = new BootstrapDialer({ libp2p, addresses: init.bootstrap ?? [], logger: this.#logger, running: () => this.#state === 'running' })
    this.#bootstrap.dial()
    this.#discovery = new PeerDiscovery({
      libp2p,
      dht: libp2p.services.dht,
      logger: this.#logger.child('discovery'),
      members: (limit) => (this.#peer === null ? [] : admittedNodeIds(this.#peer.document, limit)),
      nowMs: () => this.#clock.nowMs(),
      announce: (announced) => this.#addressGossip?.publish(announced),
    })
    this.#discovery.start()
    ownMetrics.start((metrics) => this.#metricsGossip?.publish(metrics))
    // The core hears of runs lost with the previous daemon before anything else (see job-runner.ts).
    for (const lost of lostRuns) this.#jobExited(lost.jobId, lost.exitCode)
    this.#driver.enqueueTick()
  }

  /**
   * Submits a job to the core and resolves once the core says it is durable on a majority of voters
   * (`submission-durable`) or refuses it (`submission-refused`), or after submitAckTimeoutMs.
   */
  submit(job: JobSubmission, replay?: ReplayKey): Promise<SubmitOutcome> {
    return this.#requests.acknowledged(job.id, `job ${job.id}`, (nowMs, requestId) => ({ kind: 'submit', nowMs, requestId, job, ...withReplay(replay) }))
  }

  /** Cancels every replica of a job; acknowledged like a submission (durable on a majority of voters). */
  cancel(jobId: JobId, replay?: ReplayKey): Promise<SubmitOutcome> {
    return this.#requests.acknowledged(jobId, `the cancel of job ${jobId}`, (nowMs, requestId) => ({ kind: 'cancel', nowMs, requestId, jobId, ...withReplay(replay) }))
  }

  /** Asks for a job's running replicas to move (to `to`, or anywhere else `where` allows); acknowledged like a submission. */
  migrate(jobId: JobId, to: NodeId | null, where: MoveConstraints = {}, replay?: ReplayKey): Promise<SubmitOutcome> {
    return this.#requests.acknowledged(jobId, `the migration of job ${jobId}`, (nowMs, requestId) => ({ kind: 'migrate', nowMs, requestId, jobId, to, where, ...withReplay(replay) }))
  }

  /** Drains a node (its jobs move away, nothing new goes there), or lifts its drain; acknowledged like a submission. */
  drain(nodeId: NodeId, undo = false, replay?: ReplayKey): Promise<SubmitOutcome> {
    return this.#requests.acknowledged(nodeId as string as JobId, `the ${undo ? 'undrain' : 'drain'} of ${nodeId}`, (nowMs, requestId) => ({ kind: undo ? 'undrain' : 'drain', nowMs, requestId, nodeId, ...withReplay(replay) }))
  }

  /** Checkpoints a replica this node runs, now (it keeps running); progress as it goes, the snapshot once made. */
  checkpointNow(jobId: JobId, onProgress: (frame: ProgressFrame) => void, signal: AbortSignal): Promise<CheckpointMade> {
    return this.#requests.checkpointNow(jobId, onProgress, signal)
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

  /** Records a grant of a role to a peer (an invite, or an admit/revoke request the admin key signed) through the core; answered like a submission. */
  admit(peerId: string, grant: string): Promise<SubmitOutcome> {
    return this.#requests.admit(peerId, grant)
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
    this.#driver.stop()
    this.#bootstrap?.stop()
    this.#discovery?.stop()
    this.#ownMetrics?.stop()
    this.#requests.close()
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
    await this.#driver.settled()
    // Jobs end with the daemon (the ledger keeps them in flight: the next start reports them lost).
    if (this.#jobs !== null) await this.#jobs.close()
    else await this.#runtime?.close()
    await this.#store?.close()
    if (this.#addressesWritten) await removeAddressesFile(this.#init.dataDir, process.pid)
    this.#state = 'stopped'
    this.#logger.info('stopped', { counters: this.counters() })
  }

  /** A run ended: the core must hear it, so a full inbox only delays it. */
  #jobExited(jobId: JobId, exitCode: number, usage?: JobUsage, leaseLapsed = false): void {
    if (this.#state !== 'running') return
    if (this.#driver.enqueue((nowMs) => ({ kind: 'job-exited', nowMs, jobId, exitCode, ...(usage === undefined ? {} : { usage }), ...(leaseLapsed ? { leaseLapsed } : {}) }))) return
    setTimeout(() => this.#jobExited(jobId, exitCode, usage, leaseLapsed), exitRetryMs).unref()
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
}

/** The devices the offer's GPUs are: as many as it offers, so the leader's count and the runner's devices agree. */
function gpuDevicesOf(init: ShuttleInit): readonly number[] {
  const offered = init.attributes.offer.capacity.gpuCount
  const devices = init.gpuDevices ?? Array.from({ length: offered }, (_, index) => index)
  if (devices.length !== offered) throw new RangeError(`the offer has ${offered} GPUs but gpuDevices names ${devices.length} (${devices.join(',')}): they must be the same devices`)
  return devices
}

/** A request's replay key, when its client signed one, for the core's input. */
function withReplay(replay: ReplayKey | undefined): { replay?: ReplayKey } {
  return replay === undefined ? {} : { replay }
}
