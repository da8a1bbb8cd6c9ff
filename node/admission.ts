// Admission in the daemon, in one place for the Shuttle to hold: the connection gater
// (admission-gate.ts), the join protocol (join-protocol.ts), the check of client requests
// (client-guard.ts), and whether a peer may act as a node (the consensus transport and the gossip
// topics ask). Every decision reads the roles in this node's current cluster document.
import type { ConnectionGater, Libp2p } from '@libp2p/interface'
import type { AdmissionRole, Document } from '../consensus/index.ts'
import { AdmissionGate, type AdmissionGateLimits } from './admission-gate.ts'
import { effectiveRole, mayActAsNode } from './admission-records.ts'
import type { AdmitOutcome } from './admission-requests.ts'
import { ClientGuard } from './client-guard.ts'
import { JoinProtocol, type JoinProtocolLimits } from './join-protocol.ts'
import type { Logger } from './logger.ts'

export interface AdmissionInit {
  nodeId: string
  /** The mesh's id (its genesis hash) and the genesis document a joining node boots from. */
  meshId: string
  genesis(): Promise<Uint8Array | undefined>
  /** This node's current cluster document (before the core exists: the one the store loaded). */
  document(): Document | undefined
  nowMs(): number
  logger: Logger
  gateLimits?: Partial<AdmissionGateLimits>
  joinLimits?: Partial<JoinProtocolLimits>
}

export class Admission {
  readonly gate: AdmissionGate
  readonly clientGuard: ClientGuard
  readonly #init: AdmissionInit
  #join: JoinProtocol | null = null

  constructor(init: AdmissionInit) {
    this.#init = init
    this.gate = new AdmissionGate({ nowMs: init.nowMs, roleOf: (peerId) => this.roleOf(peerId), logger: init.logger.child('gate') }, init.gateLimits)
    this.clientGuard = new ClientGuard({ meshId: init.meshId, nowMs: init.nowMs, roleOf: (peerId) => this.roleOf(peerId) })
  }

  /** For createLibp2p's `connectionGater`. */
  get connectionGater(): ConnectionGater { return this.gate.gater }

  roleOf(peerId: string): AdmissionRole | undefined {
    const document = this.#init.document()
    return document === undefined ? undefined : effectiveRole(document, peerId)
  }

  /** May this peer speak the consensus protocol and gossip (capacity, metrics)? */
  mayActAsNode(peerId: string): boolean {
    const document = this.#init.document()
    return document !== undefined && mayActAsNode(document, peerId)
  }

  /** Once the host runs and the core exists: the gate's sweeps and the join protocol. */
  async start(components: { libp2p: Libp2p; admit(peerId: string, grant: string): Promise<AdmitOutcome> }): Promise<void> {
    this.gate.start(components.libp2p)
    const init = this.#init
    this.#join = new JoinProtocol(
      {
        libp2p: components.libp2p,
        logger: init.logger.child('join'),
        nodeId: init.nodeId,
        meshId: init.meshId,
        nowMs: init.nowMs,
        document: () => {
          const document = init.document()
          if (document === undefined) throw new Error('assertion: the join protocol runs only once the core has a document')
          return document
        },
        genesis: init.genesis,
        admit: components.admit,
        joinStarted: (peerId) => this.gate.joinStarted(peerId),
        joinEnded: (peerId) => this.gate.joinEnded(peerId),
        joinInvited: (peerId) => this.gate.joinInvited(peerId),
      },
      init.joinLimits,
    )
    await this.#join.start()
  }

  async stop(): Promise<void> {
    await this.#join?.stop()
    this.gate.stop()
  }

  counters(): Record<string, unknown> {
    return { gate: this.gate.counters, pendingJoiners: this.gate.pendingJoiners, join: this.#join?.counters, clients: this.clientGuard.counters }
  }
}
