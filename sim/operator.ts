// What people do to a mesh while the faults run, drawn from the seed: move running jobs (migrate),
// cancel them, drain and undrain nodes, admit and revoke clients (grants the simulated admin key
// signs), and change the committee one voter at a time through the ready leader. Each goes through
// the same core inputs a daemon's clients use; the checker then holds the mesh to its invariants
// across all of them.
import { signTestGrant } from '../consensus/testing/grants.ts'
import type { JobId, NodeId, PeerEffect, PeerInput, Peer } from '../consensus/index.ts'
import type { SeededRandom } from './random.ts'

/** The simulated admin key: the genesis names it, and only grants made with its secret verify. */
export const simAdmin = { id: 'sim-admin', secret: 'sim-admin-secret' }

/** Mean gaps between operator actions of each kind, in virtual ms. */
export const operatorGapsMs = {
  migrate: 5_000,
  cancel: 4_000,
  drain: 12_000,
  admit: 6_000,
  committee: 7_000,
} as const

/** How long a drained node stays drained. */
const drainForMs = { min: 3_000, max: 10_000 }
/** Committee sizes the operator keeps to (quorum.ts allows 3 to 7). */
const committeeSize = { min: 3, max: 7 }

export interface OperatorNode {
  readonly index: number
  readonly id: NodeId
  readonly up: boolean
  readonly paused: boolean
  readonly peer: Peer
  readonly running: ReadonlyMap<JobId, unknown>
}

/** What the operator may do to the world. */
export interface OperatorTarget {
  readonly nowMs: number
  readonly nodes: readonly OperatorNode[]
  leaderIndex(): number | null
  /** Steps a node's core with a client input (deferred while it is paused). */
  request(node: number, make: (nowMs: number) => PeerInput): void
  /** Performs effects a node's core returned outside a step (a committee change). */
  perform(node: number, effects: readonly PeerEffect[]): void
  /** The admin makes voters only of nodes it trusts (never the Byzantine non-voter). */
  trusted(node: number): boolean
  /** The node may now be a voter: the world routes voters' traffic to it. */
  mayBeVoter(node: number): void
  /** Jobs acknowledged and not known finished, for cancels. */
  activeJobs(): JobId[]
  schedule(atMs: number, action: () => void): void
  trace(line: string): void
  localNowMs(node: number): number
}

export type OperatorAction = keyof typeof operatorGapsMs

export class Operator {
  readonly #random: SeededRandom
  readonly #target: OperatorTarget
  readonly #counts: Record<OperatorAction, number> = { migrate: 0, cancel: 0, drain: 0, admit: 0, committee: 0 }
  readonly #drained = new Set<number>()
  #grants = 0

  constructor(random: SeededRandom, target: OperatorTarget) {
    this.#random = random
    this.#target = target
  }

  /** How many of each action were asked for (the report's `operator`). */
  get counts(): Readonly<Record<OperatorAction, number>> { return this.#counts }

  nextGapMs(action: OperatorAction): number { return this.#random.exponential(operatorGapsMs[action]) }

  act(action: OperatorAction): void {
    switch (action) {
      case 'migrate':
        return this.#migrate()
      case 'cancel':
        return this.#cancel()
      case 'drain':
        return this.#drain()
      case 'admit':
        return this.#admit()
      case 'committee':
        return this.#changeCommittee()
    }
  }

  #live(): OperatorNode[] { return this.#target.nodes.filter((node) => node.up) }

  /** Cancels, moves and drains are written by voters: a client's daemon passes them to one. */
  #liveVoter(): OperatorNode | null {
    const leader = this.#target.leaderIndex()
    const voters = leader === null ? [] : this.#target.nodes[leader]!.peer.voters()
    const live = this.#live().filter((node) => voters.includes(node.id))
    return live.length === 0 ? null : this.#random.pick(live)
  }

  #migrate(): void {
    const runners = this.#live().filter((node) => node.running.size > 0)
    const via = this.#liveVoter()
    if (runners.length === 0 || via === null) return
    const replica = this.#random.pick([...this.#random.pick(runners).running.keys()])
    const jobId = replica.split('#')[0]! as JobId
    const requestId = `migrate-${++this.#counts.migrate}`
    this.#target.trace(`migrate ${jobId} via ${via.id}`)
    this.#target.request(via.index, (nowMs) => ({ kind: 'migrate', nowMs, requestId, jobId, to: null }))
  }

  #cancel(): void {
    const jobs = this.#target.activeJobs()
    const via = this.#liveVoter()
    if (jobs.length === 0 || via === null) return
    const jobId = this.#random.pick(jobs)
    const requestId = `cancel-${++this.#counts.cancel}`
    this.#target.trace(`cancel ${jobId} via ${via.id}`)
    this.#target.request(via.index, (nowMs) => ({ kind: 'cancel', nowMs, requestId, jobId }))
  }

  #drain(): void {
    const via = this.#liveVoter()
    const leader = this.#target.leaderIndex()
    if (via === null || leader === null) return
    const voters = this.#target.nodes[leader]!.peer.voters()
    const candidates = this.#live().filter((node) => !voters.includes(node.id) && !this.#drained.has(node.index))
    if (candidates.length === 0) return
    const node = this.#random.pick(candidates)
    this.#drained.add(node.index)
    const number = ++this.#counts.drain
    this.#target.trace(`drain ${node.id} via ${via.id}`)
    this.#target.request(via.index, (nowMs) => ({ kind: 'drain', nowMs, requestId: `drain-${number}`, nodeId: node.id }))
    this.#target.schedule(this.#target.nowMs + this.#random.int(drainForMs.min, drainForMs.max), () => {
      const again = this.#liveVoter()
      this.#drained.delete(node.index)
      if (again === null) return
      this.#target.trace(`undrain ${node.id} via ${again.id}`)
      this.#target.request(again.index, (nowMs) => ({ kind: 'undrain', nowMs, requestId: `undrain-${number}`, nodeId: node.id }))
    })
  }

  /** The admin admits a client (or revokes one admitted before) through any node: the grant carries the admin's signature. */
  #admit(): void {
    const live = this.#live()
    if (live.length === 0) return
    const via = this.#random.pick(live)
    const number = ++this.#counts.admit
    const client = `sim-client-${this.#random.int(1, Math.max(2, Math.ceil(number / 2)))}`
    const role = this.#random.chance(0.25) ? 'revoked' : this.#random.pick(['submitter', 'viewer', 'admin'] as const)
    const grant = signTestGrant(simAdmin.secret, { id: `grant-${String(++this.#grants).padStart(6, '0')}`, role, peer: client, nonce: null, atMs: this.#target.nowMs })
    this.#target.trace(`admit ${client} as ${role} via ${via.id}`)
    this.#target.request(via.index, (nowMs) => ({ kind: 'admit', nowMs, requestId: `admit-${number}`, peerId: client, grant }))
  }

  /** One voter in or out, through the ready leader (it refuses while a change is in flight or before its first decision committed). */
  #changeCommittee(): void {
    const leaderIndex = this.#target.leaderIndex()
    if (leaderIndex === null) return
    const leader = this.#target.nodes[leaderIndex]!
    if (leader.paused) return
    const voters = leader.peer.voters()
    const outsiders = this.#live().filter((node) => !voters.includes(node.id) && !this.#drained.has(node.index) && this.#target.trusted(node.index))
    const add = voters.length < committeeSize.max && outsiders.length > 0 && (voters.length <= committeeSize.min || this.#random.chance(0.5))
    const change = add ? { add: this.#random.pick(outsiders).id } : { remove: this.#random.pick(voters) }
    if (!add && voters.length <= committeeSize.min) return
    const result = leader.peer.changeCommittee(this.#target.localNowMs(leaderIndex), change)
    this.#counts.committee++
    if (!result.ok) {
      this.#target.trace(`committee change ${JSON.stringify(change)} refused by ${leader.id}: ${result.reason}`)
      return
    }
    if (change.add !== undefined) this.#target.mayBeVoter(this.#target.nodes.findIndex((node) => node.id === change.add))
    this.#target.trace(`${leader.id} proposes committee change ${JSON.stringify(change)}`)
    this.#target.perform(leaderIndex, result.effects)
  }
}
