// The Shuttle: Fabric's daemon. It hosts libp2p (tcp, noise, yamux, identify, ping, gossipsub
// with strict signing), boots the consensus core from the level store, and drives it: inputs
// (messages, gossip, timer ticks) are stepped one at a time and each step's effects performed in
// order, persist first and awaited, so nothing is sent before it is durable. No protocol rule
// lives here; this file only carries effects between the core and the world.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import {
  Peer,
  createGenesis,
  defaultPeerTiming,
  type NodeAttributes,
  type NodeId,
  type PeerConfig,
  type PeerEffect,
  type PeerInput,
  type RandomSource,
  type Role,
  type Term,
} from '../consensus/index.ts'
import { CapacityGossipChannel } from './capacity-gossip.ts'
import { systemClock, systemRandom, type Clock } from './clock.ts'
import { ConsensusTransport } from './consensus-transport.ts'
import { loadOrCreateIdentity, type NodeIdentity } from './identity.ts'
import type { Logger } from './logger.ts'
import { ConsensusStore } from './store.ts'

/** Inputs waiting for the core; past this, new inputs are dropped (the core cannot keep up). */
export const maxInboxLength = 10_000
export const maxBootstrapAddresses = 64
/** How often bootstrap peers not connected are dialed again (start order does not matter). */
export const bootstrapRetryMs = 1_000
/** Increments in the store before it is compacted online into one saved document. */
export const compactEveryIncrements = 1_000
/** The timer is re-armed at least this often even when the core wants no tick sooner. */
const maxTimerDelayMs = 60_000

export interface ShuttleInit {
  dataDir: string
  /** Multiaddrs to listen on (default tcp on 127.0.0.1, a free port). */
  listen?: string[]
  /** Multiaddrs (with /p2p/<id>) dialed at start and again until connected. */
  bootstrap?: string[]
  /** The genesis committee (peer ids). Needed on first start; later the store holds the document. */
  voters?: NodeId[]
  attributes: Omit<NodeAttributes, 'id'>
  /** Election timeout base T; heartbeats every T/5 (DESIGN's starting parameters). */
  electionTimeoutMs?: number
  /** fsync each persist (default true). */
  syncWrites?: boolean
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
  #peer: Peer | null = null
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
    return { nodeId: peer.id, role: peer.role, term: peer.term, leaderId: peer.leaderId, readyLeader: peer.isReadyLeader, voters: peer.voters() }
  }

  counters(): Record<string, unknown> {
    return {
      inboxDropped: this.#inboxDropped,
      peerDroppedMessages: this.#peer?.droppedMessages ?? 0,
      transport: this.#transport?.counters,
      capacity: this.#gossip?.counters,
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
    this.#logger.info('identity', { nodeId: identity.nodeId, created: identity.created })

    // Sorted and deduplicated: every node must derive byte-identical genesis from the same set,
    // whatever order its --voters flag listed them in.
    const voters = [...new Set(init.voters ?? [])].sort()
    const genesis = voters.length > 0 ? createGenesis({ voters }) : null
    const opened = await ConsensusStore.open({ dataDir: init.dataDir, nodeId: identity.nodeId, genesis, syncWrites: init.syncWrites ?? true })
    this.#store = opened.store
    this.#logger.info('store-opened', { term: opened.persisted.term, votedFor: opened.persisted.votedFor, ...opened.stats })
    if (this.#state !== 'starting') return

    const libp2p = await createLibp2p({
      privateKey: identity.privateKey,
      addresses: { listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign', allowPublishToZeroTopicPeers: true, emitSelf: false }),
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
    })
    this.#gossip = new CapacityGossipChannel({
      pubsub: libp2p.services.pubsub,
      logger: this.#logger.child('capacity'),
      onGossip: (gossip) => this.#enqueue((nowMs) => ({ kind: 'capacity', nowMs, gossip })),
    })
    await libp2p.start()
    await this.#transport.start()
    this.#gossip.start()
    if (this.#state !== 'starting') return

    const electionTimeoutMs = init.electionTimeoutMs ?? defaultPeerTiming.electionTimeoutMs
    const config: PeerConfig = {
      ...defaultPeerTiming,
      nodeId: identity.nodeId,
      electionTimeoutMs,
      heartbeatIntervalMs: Math.max(1, Math.floor(electionTimeoutMs / 5)),
    }
    this.#peer = new Peer({
      config,
      attributes: { id: identity.nodeId, offer: { ...init.attributes.offer, nodeId: identity.nodeId } },
      random: this.#random,
      persisted: opened.persisted,
      nowMs: this.#clock.nowMs(),
    })
    this.#state = 'running'
    this.#logger.info('started', { nodeId: identity.nodeId, addresses: this.addresses, voters: this.#peer.voters(), electionTimeoutMs })
    this.#components.onReady?.({ nodeId: identity.nodeId, addresses: this.addresses, term: this.#peer.term, voters: this.#peer.voters() })
    this.#dialBootstrap()
    this.#enqueueTick()
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
    this.#timer = null
    this.#bootstrapTimer = null
    this.#inbox.length = 0
    this.#gossip?.stop()
    await this.#transport?.stop()
    try {
      await this.#libp2p?.stop()
    } catch (error) {
      this.#logger.warn('libp2p-stop-failed', { error })
    }
    // Let a step in flight finish its persist before the store closes.
    await this.#draining?.catch(() => {})
    await this.#store?.close()
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
        const input = this.#inbox.shift()!(this.#clock.nowMs())
        const effects = peer.step(input)
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
          this.#gossip!.publish(effect.gossip)
          break
        case 'archive-job':
          await this.#store!.archive(effect.job)
          break
        case 'start-job':
        case 'stop-job':
          // The process runtime is not wired yet: the assignment is only logged.
          this.#logger.warn('job-effect-ignored', { effect: effect.kind, jobId: effect.jobId })
          break
        case 'event':
          if (effect.event.kind === 'message-dropped') this.#logger.debug('core-dropped-message', effect.event)
          else this.#logger.info(effect.event.kind, effect.event)
          break
      }
    }
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
