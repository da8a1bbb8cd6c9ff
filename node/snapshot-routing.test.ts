// Snapshot holders through the DHT, on three real libp2p hosts over TCP on 127.0.0.1 with the
// Shuttle's DHT (fabricDht): A holds a snapshot and provides it; C, connected only to B, finds A
// through B's routing table and fetches the snapshot from it. Also pins down why the snapshot's own
// BLAKE3 multihash cannot be the DHT key (remote peers refuse it).
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerInfo } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { afterAll, describe, expect, it } from 'vitest'
import { ChunkStore, SnapshotFetcher, SnapshotServer, cidDigest, materializeSnapshot, packDirectory, silentSnapshotLogger } from '../snapshots/index.ts'
import { writeSyntheticImage } from '../snapshots/synthetic-image.ts'
import { fabricDht, SnapshotDhtRouting, snapshotDhtKey } from './snapshot-routing.ts'

const root = await mkdtemp(join(tmpdir(), 'fabric-snapshot-routing-'))
const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

async function dhtHost(): Promise<Libp2p<{ dht: ReturnType<ReturnType<typeof fabricDht>> }>> {
  const host = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping(), dht: fabricDht() },
  })
  cleanups.push(async () => {
    await host.stop()
  })
  return host
}

/** A - B - C on loopback: C knows only B. Waits until each DHT has its neighbours in its routing table. */
async function line(): Promise<[Libp2p, Libp2p, Libp2p]> {
  const [a, b, c] = [await dhtHost(), await dhtHost(), await dhtHost()]
  await a.dial(b.getMultiaddrs())
  await c.dial(b.getMultiaddrs())
  const deadline = Date.now() + 10_000
  const size = (host: typeof a): number => (host.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
  while (!(size(a) >= 1 && size(b) >= 2 && size(c) >= 1)) {
    if (Date.now() > deadline) throw new Error(`routing tables not filled: ${size(a)}, ${size(b)}, ${size(c)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return [a, b, c]
}

describe('snapshot holders through the DHT', () => {
  it('finds the holder through a third peer\'s routing table and fetches the snapshot from it', async () => {
    const [a, b, c] = await line()
    expect(c.getConnections(a.peerId)).toEqual([])
    const source = join(root, 'image')
    await writeSyntheticImage(source, { memoryBytes: 512 * 1024, seed: 'dht' })
    const storeA = await ChunkStore.open({ directory: join(root, 'store-a'), syncWrites: false })
    cleanups.push(() => storeA.close())
    const { cid } = await packDirectory(source, storeA, { owner: 'job-1' })
    const server = new SnapshotServer({ libp2p: a, store: storeA, logger: silentSnapshotLogger })
    await server.start()
    cleanups.push(() => server.stop())

    await new SnapshotDhtRouting({ libp2p: a }).announce(cid)
    const routingC = new SnapshotDhtRouting({ libp2p: c, lookupTimeoutMs: 5_000 })
    const providers = await routingC.providers(cid)
    expect(providers.map((provider) => provider.id.toString())).toEqual([a.peerId.toString()])
    // With A's loopback address (kept by the passthrough mapper): C can dial A from the record alone.
    expect(providers[0]!.multiaddrs.map(String)).toEqual(expect.arrayContaining(a.getMultiaddrs().map(String)))

    // Unioned with the document's holders: B named by the document only, A by the DHT only.
    const found = await routingC.holders(cid, [{ id: b.peerId, multiaddrs: b.getMultiaddrs() }])
    expect(found.holders.map((holder) => holder.id.toString())).toEqual([b.peerId.toString(), a.peerId.toString()])
    expect(Object.fromEntries(found.sources)).toEqual({ [b.peerId.toString()]: ['document'], [a.peerId.toString()]: ['dht'] })
    expect(found.dhtError).toBeNull()
    // Every address ends in its holder's own /p2p id (libp2p refuses a dial mixing forms), one copy each.
    const both = await routingC.holders(cid, [{ id: a.peerId, multiaddrs: a.getMultiaddrs().map((address) => address.decapsulateCode(421)) }])
    expect(both.holders).toHaveLength(1)
    expect(both.holders[0]!.multiaddrs.map(String).sort()).toEqual(a.getMultiaddrs().map(String).sort())
    expect(both.sources.get(a.peerId.toString())).toEqual(['document', 'dht'])

    // A snapshot nobody provides: the document's holders alone, no error.
    const unknown = `b3:${'0'.repeat(64)}` as typeof cid
    const none = await new SnapshotDhtRouting({ libp2p: c, lookupTimeoutMs: 1_000 }).holders(unknown, [{ id: b.peerId, multiaddrs: [] }])
    expect(Object.fromEntries(none.sources)).toEqual({ [b.peerId.toString()]: ['document'] })

    const storeC = await ChunkStore.open({ directory: join(root, 'store-c'), syncWrites: false })
    cleanups.push(() => storeC.close())
    const fetcher = new SnapshotFetcher({ libp2p: c, store: storeC, holdersOf: (key, options) => routingC.providers(key, options), logger: silentSnapshotLogger })
    const fetched = await fetcher.fetch(cid, { owner: 'job-1' })
    expect(fetched.holders).toEqual([expect.objectContaining({ peerId: a.peerId.toString(), failure: null })])
    await materializeSnapshot(storeC, cid, join(root, 'restored'))
    expect((await readFile(join(root, 'restored', 'core-1.img'))).equals(await readFile(join(source, 'core-1.img')))).toBe(true)
  })

  it('is keyed by sha2-256: a provide keyed by the BLAKE3 multihash is refused by the other peers', async () => {
    const [a, , c] = await line()
    const cid = `b3:${'ab'.repeat(32)}` as Parameters<typeof snapshotDhtKey>[0]
    expect(snapshotDhtKey(cid).multihash.code).toBe(0x12)
    const blake3Key = CID.createV1(0x55, Digest.create(0x1e, cidDigest(cid)))
    await a.contentRouting.provide(blake3Key)
    const found: string[] = []
    for await (const provider of c.contentRouting.findProviders(blake3Key, { signal: AbortSignal.timeout(2_000) })) found.push(provider.id.toString())
    expect(found).toEqual([])
  })
})
