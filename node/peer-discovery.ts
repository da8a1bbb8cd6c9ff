// Keeps a daemon connected to the rest of the admitted mesh, not only to its bootstrap peers and to
// those that dial it. Every discoveryIntervalMs it dials, by peer id, admitted nodes (the cluster
// document's voters, registered nodes and nodes admitted by the admin) it has no connection to;
// libp2p finds their addresses in its peer store, else through the DHT (/fabric/kad/1.0.0). The
// peer store learns them from the addresses topic (address-gossip.ts: each node announces its own,
// signed, every addressAnnounceIntervalMs) and from a walk of the DHT towards this node's own id (a
// self-lookup: at boot and while members are missing, at most every selfLookupIntervalMs). Dials per
// interval and connections are bounded; the connection gater (admission-gate.ts) still decides who
// may connect, and nothing here dials a peer the document does not name as a node.
import type { Libp2p, PeerId, PeerInfo } from '@libp2p/interface'
import type { QueryEvent } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from './logger.ts'
import { maxAddressLength, maxAnnouncedAddresses, type AddressGossip } from './wire.ts'

/** How often missing members are looked for and dialed. */
export const discoveryIntervalMs = 2_000
/** Dials started per interval (a mesh of thousands is joined a few peers at a time). */
export const maxDiscoveryDialsPerInterval = 8
/** Past this many connections, discovery dials no more (bootstrap and protocol dials still happen). */
export const maxDiscoveryConnections = 64
/** A discovery dial (address lookup through the DHT included) gives up after this long. */
export const discoveryDialTimeoutMs = 10_000
/** DHT self-lookups at most this often; the first runs as soon as the daemon has a connection. */
export const selfLookupIntervalMs = 30_000
/** A self-lookup gives up after this long. */
export const selfLookupTimeoutMs = 10_000
/** How often a node announces its own listen addresses on the addresses topic. */
export const addressAnnounceIntervalMs = 10_000
/** Members read from the document per interval (the rest wait for a later one). */
export const maxMembersConsidered = 4_096

/** The DHT as discovery uses it: a walk towards a key (kad-dht's getClosestPeers). */
export interface DiscoveryDht {
  getClosestPeers(key: Uint8Array, options?: { signal?: AbortSignal }): AsyncIterable<QueryEvent>
}

export interface PeerDiscoveryComponents {
  libp2p: Libp2p
  dht: DiscoveryDht
  logger: Logger
  /** The node ids the document admits as nodes (this node's own id may be among them). */
  members(limit: number): Iterable<string>
  nowMs(): number
  /** Publishes this node's addresses on the addresses topic (absent: nothing is announced). */
  announce?(gossip: AddressGossip): void
}

export interface PeerDiscoveryCounters {
  /** Discovery dials started, and those that failed. */
  dials: number
  dialFailures: number
  /** Self-lookups run, and the peers they reported. */
  lookups: number
  lookupPeers: number
  /** Intervals skipped because maxDiscoveryConnections was reached. */
  atConnectionLimit: number
  /** Address announcements of members kept, and of others ignored. */
  addressesHeard: number
  addressesIgnored: number
}

export class PeerDiscovery {
  readonly counters: PeerDiscoveryCounters = { dials: 0, dialFailures: 0, lookups: 0, lookupPeers: 0, atConnectionLimit: 0, addressesHeard: 0, addressesIgnored: 0 }
  readonly #components: PeerDiscoveryComponents
  readonly #dialing = new Set<string>()
  #timer: NodeJS.Timeout | null = null
  #lookup: AbortController | null = null
  #lastLookupMs = -Infinity
  /** Where the next interval starts in the member list, so members that fail to answer do not starve the rest. */
  #cursor = 0
  #started = false
  #announcedSeq = 0
  #lastAnnounceMs = -Infinity

  constructor(components: PeerDiscoveryComponents) {
    this.#components = components
  }

  start(): void {
    if (this.#started) return
    this.#started = true
    this.#schedule(0)
  }

  stop(): void {
    this.#started = false
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#lookup?.abort()
  }

  /** The peers this daemon holds a connection to, sorted (what `status` reports). */
  connectedPeers(): string[] {
    return [...new Set(this.#components.libp2p.getConnections().map((connection) => connection.remotePeer.toString()))].sort()
  }

  /** Members of the mesh this daemon is not connected to (bounded by maxMembersConsidered). */
  missingMembers(): string[] {
    const self = this.#components.libp2p.peerId.toString()
    const connected = new Set(this.connectedPeers())
    const missing: string[] = []
    for (const member of this.#components.members(maxMembersConsidered)) {
      if (member !== self && !connected.has(member) && !missing.includes(member)) missing.push(member)
    }
    return missing
  }

  #schedule(delayMs: number): void {
    if (!this.#started) return
    this.#timer = setTimeout(() => {
      try {
        this.#round()
      } catch (error) {
        this.#components.logger.warn('discovery-round-failed', { error })
      }
      this.#schedule(discoveryIntervalMs)
    }, delayMs)
  }

  /** An announcement heard on the addresses topic (signer and admission already checked): kept for a member. */
  heard(gossip: AddressGossip): void {
    const { libp2p } = this.#components
    const isMember = gossip.nodeId !== libp2p.peerId.toString() && [...this.#components.members(maxMembersConsidered)].includes(gossip.nodeId)
    if (!isMember) {
      this.counters.addressesIgnored++
      return
    }
    const addresses: Multiaddr[] = []
    for (const text of gossip.addresses) {
      try {
        const address = multiaddr(text)
        const names = address.getComponents().find((component) => component.name === 'p2p')?.value
        if (names === undefined || names === gossip.nodeId) addresses.push(address)
      } catch {
        // not a multiaddr: left out
      }
    }
    if (addresses.length === 0) return
    this.counters.addressesHeard++
    libp2p.peerStore.merge(peerIdFromString(gossip.nodeId), { multiaddrs: addresses }).catch((error: unknown) => this.#components.logger.debug('discovery-address-merge-failed', { peerId: gossip.nodeId, error }))
  }

  #announce(): void {
    const { libp2p, announce } = this.#components
    if (announce === undefined || this.#components.nowMs() - this.#lastAnnounceMs < addressAnnounceIntervalMs) return
    const addresses = libp2p.getMultiaddrs().map(String).filter((text) => text.length <= maxAddressLength).slice(0, maxAnnouncedAddresses)
    if (addresses.length === 0) return
    this.#lastAnnounceMs = this.#components.nowMs()
    announce({ nodeId: libp2p.peerId.toString(), seq: ++this.#announcedSeq, addresses })
  }

  #round(): void {
    const { libp2p, logger } = this.#components
    this.#announce()
    const missing = this.missingMembers()
    if (missing.length === 0) return
    const connections = libp2p.getConnections().length
    if (connections >= maxDiscoveryConnections) {
      this.counters.atConnectionLimit++
      return
    }
    if (connections > 0 && this.#lookup === null && this.#components.nowMs() - this.#lastLookupMs >= selfLookupIntervalMs) void this.#selfLookup()
    const room = Math.min(maxDiscoveryDialsPerInterval - this.#dialing.size, maxDiscoveryConnections - connections)
    const start = this.#cursor % missing.length
    let started = 0
    for (let offset = 0; offset < missing.length && started < room; offset++) {
      const member = missing[(start + offset) % missing.length]!
      if (this.#dialing.has(member)) continue
      let peer: PeerId
      try {
        peer = peerIdFromString(member)
      } catch {
        continue // a document entry that is no peer id (it cannot be dialed)
      }
      started++
      this.#dialing.add(member)
      this.counters.dials++
      libp2p.dial(peer, { signal: AbortSignal.timeout(discoveryDialTimeoutMs) }).then(
        () => logger.info('discovery-connected', { peerId: member }),
        (error: unknown) => {
          this.counters.dialFailures++
          logger.debug('discovery-dial-failed', { peerId: member, error })
        },
      ).finally(() => this.#dialing.delete(member))
    }
    this.#cursor = start + started
  }

  /** A walk towards this node's own id: every peer asked answers with those it knows closest to it. */
  async #selfLookup(): Promise<void> {
    const { libp2p, dht, logger } = this.#components
    const controller = new AbortController()
    this.#lookup = controller
    this.#lastLookupMs = this.#components.nowMs()
    this.counters.lookups++
    const timeout = setTimeout(() => controller.abort(), selfLookupTimeoutMs)
    const heard = new Set<string>()
    const missing = new Set(this.missingMembers())
    try {
      for await (const event of dht.getClosestPeers(libp2p.peerId.toMultihash().bytes, { signal: controller.signal })) {
        const peers: PeerInfo[] = event.name === 'PEER_RESPONSE' ? event.closer : event.name === 'FINAL_PEER' ? [event.peer] : []
        for (const peer of peers) {
          const id = peer.id.toString()
          if (heard.has(id)) continue
          heard.add(id)
          // Kept for the next dial: only for members (the peer store does not fill with strangers).
          if (missing.has(id) && peer.multiaddrs.length > 0) await libp2p.peerStore.merge(peer.id, { multiaddrs: peer.multiaddrs })
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) logger.debug('discovery-lookup-failed', { error })
    } finally {
      clearTimeout(timeout)
      this.#lookup = null
      this.counters.lookupPeers += heard.size
    }
  }
}
