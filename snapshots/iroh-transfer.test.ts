// The snapshot protocol over iroh (real iroh endpoints on 127.0.0.1 UDP, real level stores): the
// same fetcher and server as over libp2p, only the transport differs. Proves that a fetch is
// byte-identical and then brings only changed chunks, that a holder serving corrupt chunks is
// caught and its chunks fetched from another, and that the endpoint id is the node's peer id.
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerInfo } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, describe, expect, it } from 'vitest'
import { ChunkStore } from './chunk-store.ts'
import { IrohSnapshotTransport } from './iroh-transport.ts'
import { silentSnapshotLogger } from './logger.ts'
import { distinctChunks } from './manifest.ts'
import { materializeSnapshot } from './materialize.ts'
import { packDirectory } from './pack.ts'
import { rotEveryChunk } from './testing/rot-chunks.ts'
import { SnapshotFetcher, type SnapshotFetcherLimits } from './snapshot-fetcher.ts'
import { SnapshotServer } from './snapshot-server.ts'
import { memoryImageName, mutateImage, writeSyntheticImage } from './synthetic-image.ts'

const root = await mkdtemp(join(tmpdir(), 'fabric-iroh-transfer-'))
const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const smallPipeline: Partial<SnapshotFetcherLimits> = { requestBytes: 64 * 1024, maxInFlightBytesPerHolder: 256 * 1024, progressIntervalMs: 0 }

async function irohNode(): Promise<{ transport: IrohSnapshotTransport; info: PeerInfo }> {
  const privateKey = await generateKeyPair('Ed25519')
  const transport = await IrohSnapshotTransport.create({ privateKey })
  cleanups.push(() => transport.close())
  return { transport, info: { id: peerIdFromPrivateKey(privateKey), multiaddrs: transport.multiaddrs } }
}

async function startHolder(store: ChunkStore): Promise<{ store: ChunkStore; server: SnapshotServer; info: PeerInfo }> {
  const { transport, info } = await irohNode()
  const server = new SnapshotServer({ transport, store, logger: silentSnapshotLogger })
  await server.start()
  cleanups.push(async () => {
    await server.stop()
    await store.close()
  })
  return { store, server, info }
}

async function openStore(name: string): Promise<ChunkStore> {
  const store = await ChunkStore.open({ directory: join(root, name), syncWrites: false })
  cleanups.push(() => store.close())
  return store
}

async function fetcherFor(store: ChunkStore, holders: PeerInfo[]): Promise<SnapshotFetcher> {
  const { transport } = await irohNode()
  return new SnapshotFetcher({ transport, store, holdersOf: async () => holders, logger: silentSnapshotLogger }, smallPipeline)
}

async function sameFile(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b))
}

describe('snapshot transfer over iroh', () => {
  it('has the node\'s libp2p peer id as its endpoint id and gives /udp addresses', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const transport = await IrohSnapshotTransport.create({ privateKey })
    cleanups.push(() => transport.close())
    expect(transport.peerId).toBe(peerIdFromPrivateKey(privateKey).toString())
    expect(transport.multiaddrs.map(String)).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/udp\/\d+$/)])
  })

  it('fetches a snapshot byte-identical, then only the changed chunks of the next checkpoint', async () => {
    const first = join(root, 'one-holder-1')
    const second = join(root, 'one-holder-2')
    await writeSyntheticImage(first, { memoryBytes: 4 * 1024 * 1024, seed: 'iroh-one-holder' })
    await cp(first, second, { recursive: true })
    await mutateImage(second, { seed: 'iroh-one-holder-next', changedFraction: 0.02, runPages: 8 })
    const holder = await startHolder(await openStore('one-holder-source'))
    const one = await packDirectory(first, holder.store, { owner: 'job-1' })
    const two = await packDirectory(second, holder.store, { owner: 'job-1' })

    const local = await openStore('one-holder-local')
    const fetcher = await fetcherFor(local, [holder.info])
    const fetched = await fetcher.fetch(one.cid, { owner: 'job-1' })
    expect(fetched).toMatchObject({ manifestFetched: true, chunksAlreadyStored: 0, chunksFetched: one.distinctChunks, corruptChunks: 0 })
    expect(fetched.holders).toEqual([expect.objectContaining({ peerId: holder.info.id.toString(), failure: null })])
    await materializeSnapshot(local, one.cid, join(root, 'one-holder-restored'))
    expect(await sameFile(join(first, memoryImageName), join(root, 'one-holder-restored', memoryImageName))).toBe(true)
    expect(await sameFile(join(first, 'core-1.img'), join(root, 'one-holder-restored', 'core-1.img'))).toBe(true)

    const servedBefore = holder.server.counters.chunksServed
    const next = await fetcher.fetch(two.cid, { owner: 'job-1' })
    const firstChunks = distinctChunks(one.manifest)
    const newChunks = [...distinctChunks(two.manifest).keys()].filter((hash) => !firstChunks.has(hash))
    expect(next.chunksFetched).toBe(newChunks.length)
    expect(holder.server.counters.chunksServed - servedBefore).toBe(newChunks.length)
    await materializeSnapshot(local, two.cid, join(root, 'one-holder-restored-2'))
    expect(await sameFile(join(second, memoryImageName), join(root, 'one-holder-restored-2', memoryImageName))).toBe(true)
  })

  it('refuses a holder serving corrupt chunks, never stores them, and fetches them from another holder', async () => {
    const source = join(root, 'corrupt-source')
    await writeSyntheticImage(source, { memoryBytes: 2 * 1024 * 1024, seed: 'iroh-corrupt' })
    const good = await startHolder(await openStore('corrupt-good'))
    const { cid } = await packDirectory(source, good.store, { owner: 'job-1' })
    // The bad holder's disk rotted: every stored chunk has one bit flipped, written behind its store.
    const badDirectory = join(root, 'corrupt-bad')
    const packing = await ChunkStore.open({ directory: badDirectory })
    await packDirectory(source, packing, { owner: 'job-1' })
    await packing.close()
    const flipped = await rotEveryChunk(badDirectory)
    const bad = await startHolder(await ChunkStore.open({ directory: badDirectory }))

    const local = await openStore('corrupt-local')
    const fetcher = await fetcherFor(local, [bad.info, good.info])
    const result = await fetcher.fetch(cid, { owner: 'job-1' })
    const [badReport, goodReport] = result.holders
    expect(result.corruptChunks).toBeGreaterThanOrEqual(1)
    expect(badReport).toMatchObject({ chunks: 0, corruptChunks: result.corruptChunks })
    expect(badReport!.failure).toMatch(/HolderCorruptChunkError.*does not match its hash/)
    expect(goodReport).toMatchObject({ chunks: result.chunksFetched, failure: null })
    expect(bad.server.counters.chunksServed).toBeGreaterThanOrEqual(1)
    expect(await local.corruptChunks()).toEqual([])
    await materializeSnapshot(local, cid, join(root, 'corrupt-restored'))
    expect(await sameFile(join(source, memoryImageName), join(root, 'corrupt-restored', memoryImageName))).toBe(true)
  })

  it('names the missing iroh address when a holder gives only libp2p addresses', async () => {
    const holder = await startHolder(await openStore('no-address-source'))
    const source = join(root, 'no-address')
    await writeSyntheticImage(source, { memoryBytes: 256 * 1024, seed: 'iroh-no-address' })
    const { cid } = await packDirectory(source, holder.store, { owner: 'job-1' })
    const local = await openStore('no-address-local')
    const fetcher = await fetcherFor(local, [{ id: holder.info.id, multiaddrs: [] }])
    await expect(fetcher.fetch(cid, { owner: 'job-1' })).rejects.toThrow(/no iroh address/)
    expect(await local.snapshots()).toEqual([])
  })
})
