// Proves peer discovery's own part, on real libp2p hosts over loopback TCP with no DHT of their
// own: it dials the members it is not connected to (addresses from the peer store, from what a
// self-lookup reported, or from a member's own announcement), never a peer the document does not name, at most
// maxDiscoveryDialsPerInterval at a time, and runs a self-lookup once it has a connection.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerInfo } from '@libp2p/interface'
import type { QueryEvent } from '@libp2p/kad-dht'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterAll, describe, expect, it } from 'vitest'
import { silentLogger } from './logger.ts'
import { PeerDiscovery, maxDiscoveryDialsPerInterval, type DiscoveryDht } from './peer-discovery.ts'
import { poll } from './testing/poll.ts'

const hosts: Libp2p[] = []
let discovery: PeerDiscovery | null = null

afterAll(async () => {
  discovery?.stop()
  await Promise.all(hosts.map((host) => host.stop()))
})

async function host(): Promise<Libp2p> {
  const created = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  })
  hosts.push(created)
  return created
}

/** A DHT whose walk reports the peers it is given (what kad-dht's getClosestPeers yields), and counts walks. */
function reportingDht(peers: () => PeerInfo[]): DiscoveryDht & { walks: number } {
  const dht = {
    walks: 0,
    async *getClosestPeers(_key: Uint8Array): AsyncIterable<QueryEvent> {
      dht.walks++
      yield { name: 'PEER_RESPONSE', closer: peers() } as unknown as QueryEvent
    },
  }
  return dht
}

describe('peer discovery', () => {
  it('dials the members it lacks, a few at a time, and no one else', async () => {
    const [self, known, heard, announcer, stranger] = [await host(), await host(), await host(), await host(), await host()]
    // Members that cannot be reached: a refused port each (more than one interval's dials).
    const unreachable = await Promise.all(Array.from({ length: 2 * maxDiscoveryDialsPerInterval }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
    for (const peer of unreachable) await self.peerStore.merge(peer, { multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/1')] })
    // `known` and the stranger are in the peer store (as a bootstrap or an earlier walk leaves them); `heard` only the walk reports.
    await self.peerStore.merge(known.peerId, { multiaddrs: known.getMultiaddrs() })
    await self.peerStore.merge(stranger.peerId, { multiaddrs: stranger.getMultiaddrs() })
    const dht = reportingDht(() => [{ id: heard.peerId, multiaddrs: heard.getMultiaddrs() }, { id: stranger.peerId, multiaddrs: stranger.getMultiaddrs() }])
    const members = [self.peerId.toString(), 'not-a-peer-id', ...unreachable.map(String), known.peerId.toString(), heard.peerId.toString(), announcer.peerId.toString()]
    const announced: string[][] = []
    discovery = new PeerDiscovery({ libp2p: self, dht, logger: silentLogger, members: (limit) => members.slice(0, limit), nowMs: () => Date.now(), announce: (gossip) => announced.push(gossip.addresses) })
    // Announcements (as the addresses topic delivers them, signer already checked): a member's is kept,
    // a stranger's is not, and an address naming another peer is left out.
    const address = (peer: Libp2p) => peer.getMultiaddrs().map(String)
    discovery.heard({ nodeId: stranger.peerId.toString(), seq: 1, addresses: address(stranger) })
    discovery.heard({ nodeId: announcer.peerId.toString(), seq: 1, addresses: [...address(stranger), 'not a multiaddr', ...address(announcer)] })
    expect(discovery.counters).toMatchObject({ addressesHeard: 1, addressesIgnored: 1 })

    discovery.start()
    const first = await poll(async () => discovery!.counters.dials, (dials) => dials > 0, 5_000, 'the first round of dials')
    expect(first).toBeLessThanOrEqual(maxDiscoveryDialsPerInterval)

    const isConnected = (peer: Libp2p) => self.getConnections(peer.peerId).length > 0
    await poll(async () => [isConnected(known), isConnected(heard), isConnected(announcer)], (connected) => connected.every(Boolean), 30_000, 'the three reachable members to be connected')
    // It announced its own addresses once (the next is due after addressAnnounceIntervalMs).
    expect(announced).toEqual([address(self)])
    expect(dht.walks).toBeGreaterThanOrEqual(1)
    expect(discovery.counters.lookupPeers).toBeGreaterThanOrEqual(2)
    // The stranger was in the peer store and in the walk's answer, but is no member: never dialed.
    expect(isConnected(stranger)).toBe(false)
    expect(stranger.getConnections(self.peerId)).toHaveLength(0)
    expect(discovery.counters.dialFailures).toBeGreaterThanOrEqual(maxDiscoveryDialsPerInterval)
    expect(discovery.missingMembers()).toEqual(expect.arrayContaining(unreachable.map(String)))
    expect(discovery.missingMembers()).not.toContain(known.peerId.toString())
    expect(discovery.connectedPeers()).toEqual([known.peerId.toString(), heard.peerId.toString(), announcer.peerId.toString()].sort())
  })
})
