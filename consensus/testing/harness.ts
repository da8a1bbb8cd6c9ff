// A tiny deterministic cluster for unit tests of the consensus core: N Peer objects, one virtual
// clock advanced by hand, a FIFO network with a fixed latency that can be cut between chosen peers,
// and crash/restart from the state the peers asked to persist. No real timers, no sleeps.
import {
  Peer,
  asNodeId,
  concatBytes,
  createGenesis,
  defaultPeerTiming,
  type JobId,
  type JobSubmission,
  type JobUsage,
  type NodeAttributes,
  type NodeId,
  type PeerConfig,
  type PeerEffect,
  type PeerEvent,
  type PeerInput,
  type PeerMessage,
  type RandomSource,
  type Resources,
} from '../index.ts'
import { jobSpec, offer, type OfferInit } from '../../placement/testing.ts'
import type { VerifyGrant } from '../admission-grants.ts'
import type { VerifySubmission } from '../submission-proofs.ts'
import { signTestSubmission, testGrantVerifier, testSubmissionVerifier } from './grants.ts'

/** mulberry32: a small seeded PRNG, enough for election jitter. */
export function mulberry32(seed: number): RandomSource {
  let state = seed >>> 0
  return {
    next(): number {
      state = (state + 0x6d2b79f5) >>> 0
      let t = state
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    },
  }
}

export interface ClusterOptions {
  voters: number
  /** Nodes registered in the genesis document that are not in the committee. */
  nonVoters?: number
  seed?: number
  latencyMs?: number
  config?: Partial<Omit<PeerConfig, 'nodeId'>>
  /** Per node index; the default is 4 CPUs and 8 GiB. */
  capacities?: readonly (Resources | undefined)[]
  /** Per node index: the price of a vCPU-hour (default 0.05); the auction places lowest_cost jobs on the cheapest node with room. */
  pricesPerCpuHour?: readonly (number | undefined)[]
  /** Per node index: traits of its offer (provider, region, GPUs, ...) over the defaults. */
  offers?: readonly (OfferInit | undefined)[]
  /** A closed mesh: the admin's id in genesis, and the secret its test grants are made with (grants.ts). */
  admin?: { id: string; secret: string }
}

export interface Stored { term: number; votedFor: NodeId | null; electionTimeoutMs?: number; chunks: Uint8Array[] }

/** What a peer did, in order, with the virtual time it did it (sends are not logged). */
export interface Recorded { atMs: number; node: NodeId; effect: PeerEffect }

type Delivery =
  | { atMs: number; to: NodeId; from: NodeId; incarnation: number; kind: 'message'; message: PeerMessage }
  | { atMs: number; to: NodeId; from: NodeId; incarnation: number; kind: 'capacity'; gossip: Extract<PeerEffect, { kind: 'publish-capacity' }>['gossip'] }
  /** A stopped job's exit, reported back to its node as a runtime would (killed: 137). */
  | { atMs: number; to: NodeId; from: NodeId; incarnation: number; kind: 'exit'; jobId: JobId }

interface HarnessNode {
  id: NodeId
  index: number
  attributes: NodeAttributes
  random: RandomSource
  peer: Peer | null
  incarnation: number
  stored: Stored
  /** Ground truth of what runs on this node (start-job adds, stop-job removes, crash clears). */
  running: Set<JobId>
}

/** Named limits, so a livelock in the core fails a test instead of hanging it. */
const maxEventsPerRun = 2_000_000
const maxTicksAtOneInstant = 1_000

export const defaultCapacity: Resources = { cpuMillis: 4_000, memoryMiB: 8_192, diskMiB: 100 * 1024, gpuCount: 0 }

/** Capacity with the default disk and no GPUs. */
export const capacity = (cpuMillis: number, memoryMiB: number): Resources => ({ cpuMillis, memoryMiB, diskMiB: 100 * 1024, gpuCount: 0 })

/** A job running "forever" (until stopped); `spec` fields override the 1 CPU / 512 MiB default. */
export function testJob(id: string, spec: Record<string, unknown> = {}): JobSubmission {
  return { id: id as JobId, spec: jobSpec({ name: id, command: ['sleep', 'forever'], resources: { cpu: 1, memory: '512Mi' }, ...spec }), durationMs: 1_000_000_000 }
}


export class Cluster {
  readonly ids: NodeId[]
  readonly voterIds: NodeId[]
  readonly nonVoterIds: NodeId[]
  readonly latencyMs: number
  readonly config: Omit<PeerConfig, 'nodeId'>
  readonly genesis: Uint8Array
  readonly verifyGrant: VerifyGrant | undefined
  readonly verifySubmission: VerifySubmission | undefined
  readonly #admin: { id: string; secret: string } | undefined
  readonly log: Recorded[] = []
  nowMs = 0
  readonly #nodes = new Map<NodeId, HarnessNode>()
  readonly #queue: Delivery[] = []
  readonly #blocked = new Set<string>()
  readonly #listeners: ((node: NodeId, effect: PeerEffect) => void)[] = []
  readonly #afterEvent: (() => void)[] = []
  #ticksAtInstant = 0
  #lastTickInstant = -1

  constructor(options: ClusterOptions) {
    const total = options.voters + (options.nonVoters ?? 0)
    this.ids = Array.from({ length: total }, (_, index) => asNodeId(`n${index}`))
    this.voterIds = this.ids.slice(0, options.voters)
    this.nonVoterIds = this.ids.slice(options.voters)
    this.latencyMs = options.latencyMs ?? 5
    this.config = { ...defaultPeerTiming, ...options.config }
    const attributes = this.ids.map((id, index): NodeAttributes => ({
      id,
      offer: offer(id, { provider: 'test', region: 'test-1', azId: 'az0', capacity: options.capacities?.[index] ?? defaultCapacity, pricePerCpuHour: options.pricesPerCpuHour?.[index] ?? 0.05, ...options.offers?.[index] }),
    }))
    this.genesis = createGenesis({ voters: this.voterIds, nodes: attributes, ...(options.admin === undefined ? {} : { admin: options.admin.id }) })
    this.verifyGrant = options.admin === undefined ? undefined : testGrantVerifier(options.admin.secret)
    this.verifySubmission = options.admin === undefined ? undefined : testSubmissionVerifier(options.admin.secret)
    this.#admin = options.admin
    const seed = options.seed ?? 1
    this.ids.forEach((id, index) => {
      this.#nodes.set(id, {
        id,
        index,
        attributes: attributes[index]!,
        random: mulberry32(seed * 7919 + index * 104_729 + 1),
        peer: null,
        incarnation: 0,
        stored: { term: 0, votedFor: null, chunks: [this.genesis] },
        running: new Set(),
      })
    })
    for (const id of this.ids) this.#boot(this.#node(id))
  }

  // ---- Observation

  peer(id: NodeId): Peer {
    const peer = this.#node(id).peer
    if (peer === null) throw new Error(`${id} is crashed`)
    return peer
  }

  isUp(id: NodeId): boolean { return this.#node(id).peer !== null }
  livePeers(): Peer[] { return this.ids.flatMap((id) => this.#node(id).peer ?? []) }
  stored(id: NodeId): Readonly<Stored> { return this.#node(id).stored }
  running(id: NodeId): ReadonlySet<JobId> { return this.#node(id).running }
  inFlight(): number { return this.#queue.length }

  readyLeaders(): Peer[] { return this.livePeers().filter((peer) => peer.isReadyLeader) }

  /** Every peer event recorded so far (optionally of one kind), with when and where. */
  events<K extends PeerEvent['kind']>(kind?: K): { atMs: number; node: NodeId; event: Extract<PeerEvent, { kind: K }> }[] {
    const out: { atMs: number; node: NodeId; event: Extract<PeerEvent, { kind: K }> }[] = []
    for (const record of this.log) {
      if (record.effect.kind !== 'event') continue
      if (kind !== undefined && record.effect.event.kind !== kind) continue
      out.push({ atMs: record.atMs, node: record.node, event: record.effect.event as Extract<PeerEvent, { kind: K }> })
    }
    return out
  }

  effectsOf<K extends PeerEffect['kind']>(kind: K, node?: NodeId): { atMs: number; node: NodeId; effect: Extract<PeerEffect, { kind: K }> }[] {
    return this.log
      .filter((record) => record.effect.kind === kind && (node === undefined || record.node === node))
      .map((record) => ({ atMs: record.atMs, node: record.node, effect: record.effect as Extract<PeerEffect, { kind: K }> }))
  }

  /** Called with every effect a peer returns (sends included), after the harness performed it. */
  onEffect(listener: (node: NodeId, effect: PeerEffect) => void): void { this.#listeners.push(listener) }
  /** Called after every delivery and tick: the place for invariants that must hold at all times. */
  afterEvent(check: () => void): void { this.#afterEvent.push(check) }

  // ---- Inputs

  /** Steps one peer now with the given input and performs the effects; returns them. */
  step(id: NodeId, input: DistributiveOmit<PeerInput, 'nowMs'>): PeerEffect[] {
    const node = this.#node(id)
    if (node.peer === null) throw new Error(`${id} is crashed`)
    const effects = node.peer.step({ ...input, nowMs: this.nowMs } as PeerInput)
    this.#perform(node, effects)
    return effects
  }

  /** In a closed mesh the admin's client signs each submission (a non-voter's job record carries it). */
  submit(id: NodeId, job: JobSubmission, requestId: string = job.id): PeerEffect[] {
    const admin = this.#admin
    const signed = admin === undefined || job.request !== undefined ? job : { ...job, request: signTestSubmission(admin.secret, { client: admin.id, job, key: `key-${job.id}`, expiresAtMs: this.nowMs + 60_000 }) }
    return this.step(id, { kind: 'submit', requestId, job: signed })
  }

  /** The adapter's side of a run's end: the workload exits with `exitCode` (and what it used). */
  exited(id: NodeId, jobId: JobId, exitCode: number, usage?: JobUsage): PeerEffect[] {
    this.#node(id).running.delete(jobId)
    return this.step(id, { kind: 'job-exited', jobId, exitCode, ...(usage === undefined ? {} : { usage }) })
  }

  /** The adapter's side of a checkpoint-job effect: the snapshot is published (a stopping copy ends). */
  checkpointed(id: NodeId, jobId: JobId, cid: string, stopped: boolean): PeerEffect[] {
    if (stopped) this.#node(id).running.delete(jobId)
    return this.step(id, { kind: 'job-checkpointed', jobId, cid, stopped })
  }

  /** Performs effects a caller obtained from the peer outside step (e.g. changeCommittee). */
  perform(id: NodeId, effects: readonly PeerEffect[]): void { this.#perform(this.#node(id), effects) }

  // ---- Faults

  /** Drops every message between the two groups, both ways, until heal. */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) for (const b of groupB) {
      this.#blocked.add(`${a}>${b}`)
      this.#blocked.add(`${b}>${a}`)
    }
  }

  isolate(id: NodeId): void { this.partition([id], this.ids.filter((other) => other !== id)) }
  cutOneWay(from: NodeId, to: NodeId): void { this.#blocked.add(`${from}>${to}`) }
  heal(): void { this.#blocked.clear() }
  #linkUp(from: NodeId, to: NodeId): boolean { return !this.#blocked.has(`${from}>${to}`) }

  /** Drops the Peer object; what it persisted stays. Its running workloads die with it. */
  crash(id: NodeId): void {
    const node = this.#node(id)
    node.peer = null
    node.incarnation++
    node.running.clear()
  }

  /** Boots a new Peer from the persisted term, vote and document (genesis + appended increments). */
  restart(id: NodeId): void {
    const node = this.#node(id)
    if (node.peer !== null) throw new Error(`${id} is up`)
    node.incarnation++
    this.#boot(node)
  }

  // ---- Time

  /** Runs deliveries and ticks in virtual time order for `ms`. */
  advance(ms: number): void { this.runUntil(() => false, ms) }

  /** Runs until `done()` holds (checked after every event) or `limitMs` of virtual time passed. */
  runUntil(done: () => boolean, limitMs: number): boolean {
    const end = this.nowMs + limitMs
    if (done()) return true
    for (let events = 0; ; events++) {
      if (events > maxEventsPerRun) throw new Error(`more than ${maxEventsPerRun} events in one run`)
      const message = this.#queue[0]
      let wakeNode: HarnessNode | null = null
      let wakeAtMs = Infinity
      for (const node of this.#nodes.values()) {
        if (node.peer === null) continue
        const at = Math.max(node.peer.nextWakeMs(), this.nowMs)
        if (at < wakeAtMs) {
          wakeAtMs = at
          wakeNode = node
        }
      }
      const messageAtMs = message?.atMs ?? Infinity
      const atMs = Math.min(messageAtMs, wakeAtMs)
      if (atMs > end) {
        this.nowMs = end
        return false
      }
      this.nowMs = atMs
      if (message !== undefined && messageAtMs <= wakeAtMs) {
        this.#queue.shift()
        this.#deliver(message)
      } else if (wakeNode !== null) {
        if (this.#lastTickInstant === atMs) {
          if (++this.#ticksAtInstant > maxTicksAtOneInstant) throw new Error(`${wakeNode.id} asked for more than ${maxTicksAtOneInstant} ticks at ${atMs} ms`)
        } else {
          this.#lastTickInstant = atMs
          this.#ticksAtInstant = 0
        }
        this.step(wakeNode.id, { kind: 'tick' })
      }
      for (const check of this.#afterEvent) check()
      if (done()) return true
    }
  }

  /** Delivers every message in flight and those they cause (ticking peers due meanwhile). */
  stabilize(limitMs = 1_000): void {
    if (!this.runUntil(() => this.#queue.length === 0, limitMs)) throw new Error(`messages still in flight after ${limitMs} ms`)
  }

  /** Runs until one ready leader exists and returns it (fails the test if none within limitMs). */
  awaitLeader(limitMs = 3_000): Peer {
    if (!this.runUntil(() => this.readyLeaders().length > 0, limitMs)) throw new Error(`no ready leader within ${limitMs} ms`)
    return this.readyLeaders()[0]!
  }

  // ---- Plumbing

  #node(id: NodeId): HarnessNode {
    const node = this.#nodes.get(id)
    if (node === undefined) throw new Error(`unknown node ${id}`)
    return node
  }

  #boot(node: HarnessNode): void {
    const documentBytes = concatBytes(node.stored.chunks)
    node.stored.chunks = [documentBytes]
    node.peer = new Peer({
      config: { ...this.config, nodeId: node.id },
      attributes: node.attributes,
      random: node.random,
      persisted: { term: node.stored.term, votedFor: node.stored.votedFor, ...(node.stored.electionTimeoutMs === undefined ? {} : { electionTimeoutMs: node.stored.electionTimeoutMs }), documentBytes },
      nowMs: this.nowMs,
      // A new incarnation per boot, as the daemon draws one (deterministic here).
      incarnation: ((node.index + 1) * 0x10000 + node.incarnation).toString(16).padStart(8, '0'),
      ...(this.verifyGrant === undefined ? {} : { verifyGrant: this.verifyGrant }),
      ...(this.verifySubmission === undefined ? {} : { verifySubmission: this.verifySubmission }),
    })
    this.step(node.id, { kind: 'tick' })
  }

  #deliver(delivery: Delivery): void {
    const node = this.#node(delivery.to)
    if (node.peer === null || node.incarnation !== delivery.incarnation || !this.#linkUp(delivery.from, delivery.to)) return
    if (delivery.kind === 'message') this.step(node.id, { kind: 'message', from: delivery.from, message: delivery.message })
    else if (delivery.kind === 'exit') this.step(node.id, { kind: 'job-exited', jobId: delivery.jobId, exitCode: 137 })
    else this.step(node.id, { kind: 'capacity', gossip: delivery.gossip })
  }

  #enqueue(delivery: Delivery): void {
    // Fixed latency and a monotonic clock keep the queue in time order (FIFO per link).
    const last = this.#queue.at(-1)
    if (last !== undefined && last.atMs > delivery.atMs) throw new Error('delivery queue out of order')
    this.#queue.push(delivery)
  }

  #perform(node: HarnessNode, effects: readonly PeerEffect[]): void {
    const atMs = this.nowMs + this.latencyMs
    for (const effect of effects) {
      switch (effect.kind) {
        case 'persist':
          node.stored.term = effect.state.term
          node.stored.votedFor = effect.state.votedFor
          node.stored.electionTimeoutMs = effect.state.electionTimeoutMs
          if (effect.state.documentIncrement.length > 0) node.stored.chunks.push(effect.state.documentIncrement)
          break
        case 'send': {
          if (!this.#linkUp(node.id, effect.to)) break
          const to = this.#nodes.get(effect.to)
          if (to === undefined) break // a node the harness does not know: the network drops it
          this.#enqueue({ atMs, to: effect.to, from: node.id, incarnation: to.incarnation, kind: 'message', message: effect.message })
          break
        }
        case 'publish-capacity':
          // The capacity topic, reduced to what consumes it: every other voter.
          for (const voter of this.voterIds) {
            if (voter === node.id || !this.#linkUp(node.id, voter)) continue
            this.#enqueue({ atMs, to: voter, from: node.id, incarnation: this.#node(voter).incarnation, kind: 'capacity', gossip: effect.gossip })
          }
          break
        case 'start-job':
          node.running.add(effect.jobId)
          this.log.push({ atMs: this.nowMs, node: node.id, effect })
          break
        case 'stop-job':
          if (node.running.delete(effect.jobId)) this.#enqueue({ atMs, to: node.id, from: node.id, incarnation: node.incarnation, kind: 'exit', jobId: effect.jobId })
          this.log.push({ atMs: this.nowMs, node: node.id, effect })
          break
        case 'event':
        case 'archive-job':
        case 'checkpoint-job':
          this.log.push({ atMs: this.nowMs, node: node.id, effect })
          break
      }
      for (const listener of this.#listeners) listener(node.id, effect)
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
