// The connection gater of a daemon (libp2p's `connectionGater`): an inbound peer with a role in the
// cluster document is let in; a revoked one is refused, in and out, and disconnected when its
// revocation arrives; a peer with no role is let in only as a pending joiner, a bounded number of
// them for a bounded time, during which the only protocol that serves it is /fabric/join/1.0.0 (the
// consensus transport and the gossip validator refuse peers that are not nodes, and the client
// protocol refuses clients without a role; identify and ping answer anyone). A joiner whose window
// ends unadmitted is disconnected and refused for a cooldown. Roles are read from the document, so
// an admission or revocation takes effect wherever the document has arrived.
// Strangers cannot keep an invited peer out: when the pending slots are full, a newcomer displaces
// the oldest pending joiner that has not presented a valid invite (cut off, not cooled), and a peer
// whose invite verified (`joinInvited`) is never displaced and never cooled (a `busy` answer, or an
// admission that could not be made durable in time, must not cost it the next try). Every peer,
// admitted or not, holds at most maxConnectionsPerPeer inbound connections.
import type { Connection, ConnectionGater, Libp2p, PeerId } from '@libp2p/interface'
import type { AdmissionRole } from '../consensus/index.ts'
import type { Logger } from './logger.ts'

export interface AdmissionGateLimits {
  /** Peers without a role connected at once while they may join. */
  maxPendingJoiners: number
  /** How long a peer without a role may stay connected to present an invite. */
  pendingJoinWindowMs: number
  /** After its window ended unadmitted, a peer is refused this long. */
  refusedCooldownMs: number
  /** Peers in cooldown remembered (oldest forgotten first). */
  maxCoolingPeers: number
  /** How often connections are checked against the document (revocations, ended windows). */
  sweepIntervalMs: number
  /** Refusals are all counted, but logged at most once per peer per interval. */
  refusalLogIntervalMs: number
  /** Inbound connections one peer may hold at once (libp2p has no such limit of its own). */
  maxConnectionsPerPeer: number
}

export const defaultAdmissionGateLimits: AdmissionGateLimits = {
  maxPendingJoiners: 16,
  pendingJoinWindowMs: 10_000,
  refusedCooldownMs: 30_000,
  maxCoolingPeers: 4_096,
  sweepIntervalMs: 500,
  refusalLogIntervalMs: 10_000,
  // Two peers dialing each other at once make two; a redial may overlap a connection not yet closed.
  maxConnectionsPerPeer: 4,
}

export interface AdmissionGateComponents {
  nowMs(): number
  /** The role `peerId` acts with in this node's current document (undefined: none). */
  roleOf(peerId: string): AdmissionRole | undefined
  logger: Logger
}

export interface AdmissionGateCounters {
  refused: Record<string, number>
  pendingAdmitted: number
  pendingExpired: number
  /** Pending joiners cut off to make room for a newcomer (the oldest without a valid invite). */
  pendingDisplaced: number
  revokedDisconnected: number
}

interface Pending { untilMs: number; joinsInFlight: number; invited: boolean }

export class AdmissionGate {
  readonly counters: AdmissionGateCounters = { refused: {}, pendingAdmitted: 0, pendingExpired: 0, pendingDisplaced: 0, revokedDisconnected: 0 }
  readonly #components: AdmissionGateComponents
  readonly #limits: AdmissionGateLimits
  readonly #pending = new Map<string, Pending>()
  /** Peer -> until when it is refused (insertion order: oldest first). */
  readonly #cooling = new Map<string, number>()
  readonly #lastLogged = new Map<string, number>()
  #libp2p: Libp2p | null = null
  #timer: NodeJS.Timeout | null = null

  constructor(components: AdmissionGateComponents, limits: Partial<AdmissionGateLimits> = {}) {
    this.#components = components
    this.#limits = { ...defaultAdmissionGateLimits, ...limits }
  }

  /** What createLibp2p takes as `connectionGater` (true = deny). */
  readonly gater: ConnectionGater = {
    denyInboundEncryptedConnection: (peerId: PeerId) => !this.#letIn(peerId.toString()),
    denyOutboundEncryptedConnection: (peerId: PeerId) => this.#isRevoked(peerId.toString(), 'outbound'),
    denyDialPeer: (peerId: PeerId) => this.#isRevoked(peerId.toString(), 'dial'),
  }

  get pendingJoiners(): number { return this.#pending.size }

  start(libp2p: Libp2p): void {
    if (this.#libp2p !== null) return
    this.#libp2p = libp2p
    this.#timer = setInterval(() => this.sweep(), this.#limits.sweepIntervalMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#libp2p = null
  }

  /** A join is being answered: the joiner keeps its connection past its window until it ends. */
  joinStarted(peerId: string): void {
    const pending = this.#pending.get(peerId)
    if (pending !== undefined) pending.joinsInFlight++
  }

  joinEnded(peerId: string): void {
    const pending = this.#pending.get(peerId)
    if (pending !== undefined) pending.joinsInFlight = Math.max(0, pending.joinsInFlight - 1)
  }

  /** The peer presented an invite that verified: it is never displaced, and its window ends without a cooldown. */
  joinInvited(peerId: string): void {
    const pending = this.#pending.get(peerId)
    if (pending !== undefined) pending.invited = true
  }

  /** Checks every connection against the document: revoked peers and ended windows are cut off. */
  sweep(): void {
    const libp2p = this.#libp2p
    if (libp2p === null) return
    const nowMs = this.#components.nowMs()
    const connected = new Set<string>()
    for (const connection of libp2p.getConnections()) {
      const peerId = connection.remotePeer.toString()
      connected.add(peerId)
      const role = this.#components.roleOf(peerId)
      if (role === 'revoked') {
        this.counters.revokedDisconnected++
        this.#log(peerId, 'revoked-peer-disconnected', { peerId, direction: connection.direction })
        cut(connection, 'revoked by the mesh\'s admin')
        continue
      }
      if (role !== undefined) continue
      if (connection.direction !== 'inbound') {
        // This node dialed a peer whose join window ended unused (the DHT refreshing its table): cut it too.
        if (this.#isCooling(peerId, nowMs)) cut(connection, 'its join window ended unused')
        continue
      }
      const pending = this.#pending.get(peerId)
      if (pending === undefined) {
        // Connected while it had a role that has since gone (a document from before its admission
        // replaced by sync cannot do that, but a restart on an older copy can): treat it as new.
        if (this.#pending.size < this.#limits.maxPendingJoiners) this.#pending.set(peerId, { untilMs: nowMs + this.#limits.pendingJoinWindowMs, joinsInFlight: 0, invited: false })
        else cut(connection, 'no role and no room for pending joiners')
        continue
      }
      if (nowMs >= pending.untilMs && pending.joinsInFlight === 0) {
        this.counters.pendingExpired++
        this.#log(peerId, 'pending-joiner-expired', { peerId, windowMs: this.#limits.pendingJoinWindowMs, invited: pending.invited })
        // An invited peer was turned away by this node (busy, not durable in time): it may come straight back.
        if (!pending.invited) this.#cool(peerId, nowMs)
        cut(connection, `not admitted within ${this.#limits.pendingJoinWindowMs} ms`)
      }
    }
    for (const [peerId, pending] of this.#pending) {
      if (this.#components.roleOf(peerId) !== undefined) {
        this.counters.pendingAdmitted++
        this.#pending.delete(peerId)
      } else if (!connected.has(peerId) || (nowMs >= pending.untilMs && pending.joinsInFlight === 0)) {
        this.#pending.delete(peerId)
      }
    }
  }

  #letIn(peerId: string): boolean {
    const role = this.#components.roleOf(peerId)
    if (role === 'revoked') return this.#refuse(peerId, 'revoked')
    const connections = this.#libp2p?.getConnections().filter((connection) => connection.remotePeer.toString() === peerId && connection.direction === 'inbound').length ?? 0
    if (connections >= this.#limits.maxConnectionsPerPeer) return this.#refuse(peerId, `${this.#limits.maxConnectionsPerPeer} connections of this peer already`)
    if (role !== undefined) return true
    const nowMs = this.#components.nowMs()
    const pending = this.#pending.get(peerId)
    if (pending !== undefined) return nowMs < pending.untilMs || pending.joinsInFlight > 0 ? true : this.#refuse(peerId, 'join window over')
    if (this.#isCooling(peerId, nowMs)) return this.#refuse(peerId, 'cooling down after a join window it did not use')
    this.#cooling.delete(peerId)
    if (this.#pending.size >= this.#limits.maxPendingJoiners && !this.#displaceOne()) return this.#refuse(peerId, `${this.#limits.maxPendingJoiners} pending joiners already`)
    this.#pending.set(peerId, { untilMs: nowMs + this.#limits.pendingJoinWindowMs, joinsInFlight: 0, invited: false })
    this.#components.logger.debug('pending-joiner', { peerId, windowMs: this.#limits.pendingJoinWindowMs })
    return true
  }

  /** Cuts off the oldest pending joiner without a valid invite to make room; false when every one has one. */
  #displaceOne(): boolean {
    for (const [peerId, pending] of this.#pending) {
      if (pending.invited) continue
      this.#pending.delete(peerId)
      this.counters.pendingDisplaced++
      this.#log(peerId, 'pending-joiner-displaced', { peerId })
      for (const connection of this.#libp2p?.getConnections() ?? []) {
        if (connection.remotePeer.toString() === peerId && connection.direction === 'inbound') cut(connection, 'displaced by a newer pending joiner')
      }
      return true
    }
    return false
  }

  #isRevoked(peerId: string, direction: string): boolean {
    if (this.#components.roleOf(peerId) !== 'revoked') return false
    this.#refuse(peerId, `revoked (${direction})`)
    return true
  }

  #refuse(peerId: string, reason: string): false {
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1
    this.#log(peerId, 'connection-refused', { peerId, reason })
    return false
  }

  /** The peer's join window ended unused a short while ago. */
  #isCooling(peerId: string, nowMs: number): boolean {
    return nowMs < (this.#cooling.get(peerId) ?? -Infinity)
  }

  #cool(peerId: string, nowMs: number): void {
    this.#cooling.delete(peerId)
    this.#cooling.set(peerId, nowMs + this.#limits.refusedCooldownMs)
    if (this.#cooling.size > this.#limits.maxCoolingPeers) this.#cooling.delete(this.#cooling.keys().next().value!)
  }

  /** One line per peer and event per interval: a peer redialing cannot flood the log. */
  #log(peerId: string, event: string, fields: Record<string, unknown>): void {
    const key = `${event}/${peerId}`
    const nowMs = this.#components.nowMs()
    const last = this.#lastLogged.get(key)
    if (last !== undefined && nowMs - last < this.#limits.refusalLogIntervalMs) return
    this.#lastLogged.delete(key)
    this.#lastLogged.set(key, nowMs)
    if (this.#lastLogged.size > this.#limits.maxCoolingPeers) this.#lastLogged.delete(this.#lastLogged.keys().next().value!)
    this.#components.logger.info(event, fields)
  }
}

function cut(connection: Connection, reason: string): void {
  connection.abort(new Error(reason))
}
