// The DHT every Shuttle runs (kad-dht), and snapshot holders through it: a node that holds a
// complete snapshot provides its key; a fetch asks `findProviders` and unions what it finds with
// the holders the cluster document names (the document stays the fallback: a DHT lookup that
// finds nothing, or times out, changes nothing).
//
// The key is NOT the snapshot's BLAKE3 multihash. kad-dht sends only a key's multihash on the wire
// and the receiving peer decodes it with `CID.decode`, which accepts a bare multihash only when it
// is sha2-256 (a CIDv0); any other hash (BLAKE3, code 0x1e) is answered "Invalid CID" and the
// stream reset, so ADD_PROVIDER was dropped by every peer and GET_PROVIDERS found nothing (the
// loopback probe that found no providers; js-libp2p-kad-dht#381 is the same decode). The key is
// therefore sha2-256 of the CID's text, which every node derives from the CID alone.
import { createHash } from 'node:crypto'
import type { Libp2p, PeerId, PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { Cid } from '../snapshots/index.ts'

export const dhtProtocol = '/fabric/kad/1.0.0'

/** Multicodec codes: the raw codec (the key names bytes, not a structure) and sha2-256. */
const rawCodec = 0x55
const sha256Code = 0x12

/**
 * Our own protocol (a Fabric mesh's DHT never mixes with the public IPFS one), private addresses
 * kept (meshes run on LANs and VPCs, tests on loopback; kad-dht drops them by default: the mapper
 * applies to the peers it answers with and to provider records), and server mode from the start
 * (kad-dht would wait for a public address before answering anyone).
 */
export function fabricDht() {
  return kadDHT({ protocol: dhtProtocol, clientMode: false, peerInfoMapper: passthroughMapper })
}

/** The DHT key of a snapshot: CIDv1(raw, sha2-256("b3:<hex>")). */
export function snapshotDhtKey(cid: Cid): CID {
  return CID.createV1(rawCodec, Digest.create(sha256Code, createHash('sha256').update(cid).digest()))
}

export type HolderSource = 'document' | 'dht'

export interface FoundHolders {
  /** Document holders first (the node that made the snapshot leads), then those only the DHT knew. */
  holders: PeerInfo[]
  /** Per peer id: which sources named it. */
  sources: Map<string, HolderSource[]>
  /** Why the DHT lookup gave nothing, if it failed (the document's holders are still returned). */
  dhtError: string | null
}

export interface SnapshotDhtRoutingInit {
  libp2p: Libp2p
  /** How long a lookup may take before the holders found so far are used. */
  lookupTimeoutMs?: number
  /** Stop looking after this many providers. */
  maxProviders?: number
}

export class SnapshotDhtRouting {
  readonly #libp2p: Libp2p
  readonly #lookupTimeoutMs: number
  readonly #maxProviders: number

  constructor(init: SnapshotDhtRoutingInit) {
    this.#libp2p = init.libp2p
    this.#lookupTimeoutMs = init.lookupTimeoutMs ?? 5_000
    this.#maxProviders = init.maxProviders ?? 16
  }

  /** Says in the DHT that this node holds `cid` (call once the snapshot is complete in its store). */
  async announce(cid: Cid, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.#libp2p.contentRouting.provide(snapshotDhtKey(cid), { signal: options.signal })
  }

  /** Stops re-announcing `cid` (its last local owner released it). */
  async withdraw(cid: Cid): Promise<void> {
    await this.#libp2p.contentRouting.cancelReprovide(snapshotDhtKey(cid))
  }

  /** Providers of `cid` found within the lookup timeout (never this node). */
  async providers(cid: Cid, options: { signal?: AbortSignal } = {}): Promise<PeerInfo[]> {
    const timeout = AbortSignal.timeout(this.#lookupTimeoutMs)
    const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
    const self = this.#libp2p.peerId.toString()
    const found = new Map<string, PeerInfo>()
    try {
      for await (const provider of this.#libp2p.contentRouting.findProviders(snapshotDhtKey(cid), { signal })) {
        const id = provider.id.toString()
        if (id === self) continue
        // The same peer may come from several answers: keep every address heard.
        found.set(id, { id: provider.id, multiaddrs: mergeAddresses(provider.id, found.get(id)?.multiaddrs ?? [], provider.multiaddrs) })
        if (found.size >= this.#maxProviders) break
      }
    } catch (error) {
      // Timing out is how a lookup ends when fewer than maxProviders exist: keep what was found.
      if (!timeout.aborted || options.signal?.aborted === true) throw error
    }
    return [...found.values()]
  }

  /** The document's holders and the DHT's providers together, each peer once, with where it came from. */
  async holders(cid: Cid, documentHolders: readonly PeerInfo[], options: { signal?: AbortSignal } = {}): Promise<FoundHolders> {
    let fromDht: PeerInfo[] = []
    let dhtError: string | null = null
    try {
      fromDht = await this.providers(cid, options)
    } catch (error) {
      options.signal?.throwIfAborted()
      dhtError = (error as Error).message
    }
    const sources = new Map<string, HolderSource[]>()
    const byId = new Map<string, PeerInfo>()
    for (const [source, list] of [['document', documentHolders], ['dht', fromDht]] as const) {
      for (const holder of list) {
        const id = holder.id.toString()
        sources.set(id, [...(sources.get(id) ?? []), source])
        byId.set(id, { id: holder.id, multiaddrs: mergeAddresses(holder.id, byId.get(id)?.multiaddrs ?? [], holder.multiaddrs) })
      }
    }
    return { holders: [...byId.values()], sources, dhtError }
  }
}

/** p2p's multiaddr code: every address is kept ending in the holder's /p2p id (a dial wants all of one peer's or none). */
const p2pCode = 421

/**
 * `known` and `more` as one list for `peer`: each address once, all ending in /p2p/<peer>, and none
 * that names another peer (libp2p refuses a dial of addresses with and without, or with differing, /p2p ids).
 */
function mergeAddresses(peer: PeerId, known: readonly Multiaddr[], more: readonly Multiaddr[]): Multiaddr[] {
  const merged = new Map<string, Multiaddr>()
  for (const address of [...known, ...more]) {
    const named = address.getComponents().find((component) => component.code === p2pCode)?.value
    if (named !== undefined && named !== peer.toString()) continue
    const full = named === undefined ? address.encapsulate(`/p2p/${peer.toString()}`) : address
    merged.set(full.toString(), full)
  }
  return [...merged.values()]
}
