// The acceptance suite of the snapshot protocol over a SnapshotTransport (as automerge-repo's
// adapter suites): every transport runs these scenarios with real endpoints and real level stores
// on disk, holders in this process or (to be killed for real) in child processes. Proves that a
// fetch brings only missing chunks and reassembles byte-identical, that a holder serving corrupt
// bytes is caught and the chunk fetched from another, that a chunk a holder lacks is asked of
// another, that the manifest is taken only from a holder whose bytes hash to the CID, that a killed
// holder's fetch resumes without refetching, and that malformed requests are refused without
// changing anything. Transport-specific tests stay in each transport's test file.
import { encodeCbor } from '../../codec/index.ts'
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PeerInfo } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { Level } from 'level'
import { afterAll, describe, expect, it } from 'vitest'
import { ChunkStore } from '../chunk-store.ts'
import type { Cid } from '../cid.ts'
import { FetchFailedError } from '../errors.ts'
import { HolderProcess } from '../holder-process.ts'
import { silentSnapshotLogger } from '../logger.ts'
import { distinctChunks } from '../manifest.ts'
import { materializeSnapshot } from '../materialize.ts'
import { packDirectory } from '../pack.ts'
import type { FetchProgress } from '../progress.ts'
import { SnapshotFetcher, type SnapshotFetcherLimits } from '../snapshot-fetcher.ts'
import { SnapshotServer } from '../snapshot-server.ts'
import { memoryImageName, mutateImage, writeSyntheticImage } from '../synthetic-image.ts'
import type { SnapshotTransport, SnapshotTransportName } from '../transport.ts'
import { decodeResponseFrame, encodeRequest, maxRequestBytes } from '../wire.ts'
import { rotEveryChunk } from './rot-chunks.ts'

/** One endpoint of the transport under test: how it is dialled, and how to close it. */
export interface TestEndpoint {
  transport: SnapshotTransport
  info: PeerInfo
  close(): Promise<void>
}

export interface SnapshotTransferHarness {
  root: string
  /** Runs `cleanup` after all (last registered, first run). */
  onCleanup(cleanup: () => Promise<void>): void
  /** A new endpoint of the transport, closed after all. */
  endpoint(): Promise<TestEndpoint>
  /** A store under the suite's temporary directory, closed after all. */
  openStore(name: string): Promise<ChunkStore>
  /** A holder serving `store` on a new endpoint (closed after all). */
  startHolder(store: ChunkStore): Promise<{ store: ChunkStore; server: SnapshotServer; info: PeerInfo }>
  /** A fetcher on a new endpoint with small requests, so a few MiB make many round trips. */
  fetcherFor(store: ChunkStore, holdersOf: () => Promise<PeerInfo[]>): Promise<SnapshotFetcher>
}

/** Small requests and pipeline so that a few MiB make many round trips. */
const smallPipeline: Partial<SnapshotFetcherLimits> = { requestBytes: 64 * 1024, maxInFlightBytesPerHolder: 256 * 1024, progressIntervalMs: 0 }

async function sameFile(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b))
}

/**
 * Temporary directory, stores and endpoints for one transport's tests, all cleaned up after all.
 * Call at the top level of a test file (it registers an afterAll).
 */
export async function snapshotTransferHarness(name: SnapshotTransportName, openEndpoint: () => Promise<TestEndpoint>): Promise<SnapshotTransferHarness> {
  const root = await mkdtemp(join(tmpdir(), `fabric-${name}-transfer-`))
  const cleanups: (() => Promise<void>)[] = []
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    await rm(root, { recursive: true, force: true })
  })
  const endpoint = async (): Promise<TestEndpoint> => {
    const opened = await openEndpoint()
    cleanups.push(() => opened.close())
    return opened
  }
  return {
    root,
    onCleanup: (cleanup) => void cleanups.push(cleanup),
    endpoint,
    async openStore(storeName) {
      const store = await ChunkStore.open({ directory: join(root, storeName), syncWrites: false })
      cleanups.push(() => store.close())
      return store
    },
    async startHolder(store) {
      const { transport, info } = await endpoint()
      const server = new SnapshotServer({ transport, store, logger: silentSnapshotLogger })
      await server.start()
      cleanups.push(async () => {
        await server.stop()
        await store.close()
      })
      return { store, server, info }
    },
    async fetcherFor(store, holdersOf) {
      const { transport } = await endpoint()
      return new SnapshotFetcher({ transport, store, holdersOf, logger: silentSnapshotLogger }, smallPipeline)
    },
  }
}

/** The shared scenarios over `name` (libp2p or iroh); `harness` from snapshotTransferHarness. */
export function describeSnapshotTransfer(name: SnapshotTransportName, harness: SnapshotTransferHarness): void {
  const { root, onCleanup, endpoint, openStore, startHolder, fetcherFor } = harness
  /** A holder in a child process, to be killed for real; its PeerInfo on this transport. */
  const holderProcess = async (directory: string): Promise<{ holder: HolderProcess; info: PeerInfo }> => {
    const holder = await HolderProcess.start(directory, { iroh: name === 'iroh' })
    return { holder, info: name === 'iroh' ? holder.irohInfo! : holder.info }
  }

  describe(`snapshot transfer over ${name} (shared suite)`, () => {
    it('fetches a snapshot byte-identical, then only the changed chunks of the next checkpoint, with progress', async () => {
      const first = join(root, 'one-holder-1')
      const second = join(root, 'one-holder-2')
      await writeSyntheticImage(first, { memoryBytes: 4 * 1024 * 1024, seed: `${name}-one-holder` })
      await cp(first, second, { recursive: true })
      await mutateImage(second, { seed: `${name}-one-holder-next`, changedFraction: 0.02, runPages: 8 })
      const holder = await startHolder(await openStore('one-holder-source'))
      const one = await packDirectory(first, holder.store, { owner: 'job-1' })
      const two = await packDirectory(second, holder.store, { owner: 'job-1' })

      const local = await openStore('one-holder-local')
      const fetcher = await fetcherFor(local, async () => [holder.info])
      const events: FetchProgress[] = []
      const fetched = await fetcher.fetch(one.cid, { owner: 'job-1', onProgress: (progress) => events.push(progress) })
      expect(fetched).toMatchObject({ manifestFetched: true, chunksAlreadyStored: 0, chunksFetched: one.distinctChunks, corruptChunks: 0 })
      expect(fetched.holders).toEqual([expect.objectContaining({ peerId: holder.info.id.toString(), failure: null })])
      await materializeSnapshot(local, one.cid, join(root, 'one-holder-restored'))
      expect(await sameFile(join(first, memoryImageName), join(root, 'one-holder-restored', memoryImageName))).toBe(true)
      expect(await sameFile(join(first, 'core-1.img'), join(root, 'one-holder-restored', 'core-1.img'))).toBe(true)
      // Progress: monotonic bytes, an ETA while running, and a final event with everything done.
      expect(events.at(-1)).toMatchObject({ phase: 'done', bytesFetched: fetched.bytesFetched, bytesTotal: fetched.bytesFetched, chunksFetched: fetched.chunksFetched })
      expect(events.every((event, index) => index === 0 || event.bytesFetched >= events[index - 1]!.bytesFetched)).toBe(true)
      expect(events.some((event) => event.phase === 'chunks' && event.etaMs !== null && event.bytesPerSecond > 0)).toBe(true)

      const servedBefore = holder.server.counters.chunksServed
      const next = await fetcher.fetch(two.cid, { owner: 'job-1' })
      const firstChunks = distinctChunks(one.manifest)
      const newChunks = [...distinctChunks(two.manifest).keys()].filter((hash) => !firstChunks.has(hash))
      expect(next.chunksFetched).toBe(newChunks.length)
      expect(next.chunksAlreadyStored).toBe(next.chunksTotal - newChunks.length)
      expect(holder.server.counters.chunksServed - servedBefore).toBe(newChunks.length)
      expect(next.bytesFetched).toBeLessThan(fetched.bytesFetched * 0.1)
      await materializeSnapshot(local, two.cid, join(root, 'one-holder-restored-2'))
      expect(await sameFile(join(second, memoryImageName), join(root, 'one-holder-restored-2', memoryImageName))).toBe(true)
    })

    it('detects a holder serving corrupt chunks, never stores them, and fetches them from another holder', async () => {
      const source = join(root, 'corrupt-source')
      await writeSyntheticImage(source, { memoryBytes: 2 * 1024 * 1024, seed: `${name}-corrupt` })
      const good = await startHolder(await openStore('corrupt-good'))
      const { cid } = await packDirectory(source, good.store, { owner: 'job-1' })
      // The bad holder's disk rotted: every stored chunk has one bit flipped, written behind its store.
      const badDirectory = join(root, 'corrupt-bad')
      const packing = await ChunkStore.open({ directory: badDirectory })
      await packDirectory(source, packing, { owner: 'job-1' })
      await packing.close()
      const flipped = await rotEveryChunk(badDirectory)
      const bad = await startHolder(await ChunkStore.open({ directory: badDirectory }))
      expect((await bad.store.corruptChunks()).length).toBe(flipped)

      const local = await openStore('corrupt-local')
      // The bad holder listed first, so it is asked for chunks from the start.
      const fetcher = await fetcherFor(local, async () => [bad.info, good.info])
      const result = await fetcher.fetch(cid, { owner: 'job-1' })
      const [badReport, goodReport] = result.holders
      expect(result.corruptChunks).toBeGreaterThanOrEqual(1)
      expect(badReport).toMatchObject({ chunks: 0, corruptChunks: result.corruptChunks })
      expect(badReport!.failure).toMatch(/HolderCorruptChunkError.*does not match its hash/)
      expect(goodReport).toMatchObject({ chunks: result.chunksFetched, failure: null })
      expect(bad.server.counters.chunksServed).toBeGreaterThanOrEqual(1)
      expect(await local.corruptChunks()).toEqual([])
      expect((await local.stats()).chunks).toBe(result.chunksTotal)
      await materializeSnapshot(local, cid, join(root, 'corrupt-restored'))
      expect(await sameFile(join(source, memoryImageName), join(root, 'corrupt-restored', memoryImageName))).toBe(true)
    })

    it('asks another holder for the chunks a holder lacks', async () => {
      const source = join(root, 'partial-source')
      await writeSyntheticImage(source, { memoryBytes: 2 * 1024 * 1024, seed: `${name}-partial` })
      const full = await startHolder(await openStore('partial-full'))
      const { cid, manifest } = await packDirectory(source, full.store, { owner: 'job-1' })
      // A holder in the middle of its own fetch: the manifest and every other chunk.
      const partialStore = await openStore('partial-half')
      await partialStore.pin(manifest, 'replica')
      const hashes = [...distinctChunks(manifest).keys()]
      const half = hashes.filter((_, index) => index % 2 === 0)
      const values = await full.store.getChunks(half)
      await partialStore.putChunks(half.map((hash, index) => ({ hash, bytes: values[index]! })))
      const partial = await startHolder(partialStore)

      const local = await openStore('partial-local')
      const fetcher = await fetcherFor(local, async () => [partial.info, full.info])
      const result = await fetcher.fetch(cid, { owner: 'job-1' })
      expect(result.chunksFetched).toBe(hashes.length)
      expect(result.holders[0]!.notFound).toBeGreaterThan(0)
      expect(result.holders[0]!.failure).toBeNull()
      expect(result.holders[0]!.chunks + result.holders[1]!.chunks).toBe(hashes.length)
      expect(await local.missingChunks(hashes)).toEqual([])
    })

    it('takes the manifest only from a holder whose bytes hash to the CID, passing over one that lacks it', async () => {
      const source = join(root, 'manifest-source')
      await writeSyntheticImage(source, { memoryBytes: 512 * 1024, seed: `${name}-manifest` })
      const good = await startHolder(await openStore('manifest-good'))
      const { cid } = await packDirectory(source, good.store, { owner: 'job-1' })
      const empty = await startHolder(await openStore('manifest-empty'))
      // A holder whose stored manifest rotted on disk: one byte of it changed behind its store.
      const rottenDirectory = join(root, 'manifest-rotten')
      const packing = await ChunkStore.open({ directory: rottenDirectory })
      await packDirectory(source, packing, { owner: 'job-1' })
      await packing.close()
      const raw = new Level<string, Uint8Array>(rottenDirectory, { keyEncoding: 'utf8', valueEncoding: 'view' })
      const key = `m/${cid.slice(3)}`
      const manifestBytes = Buffer.from((await raw.get(key))!)
      manifestBytes[manifestBytes.indexOf('"mode":') + 7] = '4'.charCodeAt(0)
      await raw.put(key, manifestBytes)
      await raw.close()
      const rotten = await startHolder(await ChunkStore.open({ directory: rottenDirectory }))

      const local = await openStore('manifest-local')
      const fetcher = await fetcherFor(local, async () => [empty.info, rotten.info, good.info])
      const result = await fetcher.fetch(cid, { owner: 'job-1' })
      const [emptyReport, rottenReport, goodReport] = result.holders
      expect(result.manifestFetched).toBe(true)
      expect(emptyReport!.failure).toBeNull()
      expect(rottenReport!.failure).toMatch(/does not hash to the CID/)
      expect(rottenReport!.chunks).toBe(0)
      expect(rotten.server.counters.chunksServed).toBe(0)
      expect(goodReport!.chunks + emptyReport!.chunks).toBe(result.chunksFetched)
      expect(await local.manifest(cid)).toEqual((await good.store.manifest(cid))!)
    })

    it('resumes after the only holder is killed mid-transfer, without fetching any chunk twice', async () => {
      const source = join(root, 'resume-source')
      await writeSyntheticImage(source, { memoryBytes: 16 * 1024 * 1024, seed: `${name}-resume`, zeroFraction: 0 })
      const holderDirectory = join(root, 'resume-holder')
      const packing = await ChunkStore.open({ directory: holderDirectory })
      const { cid, manifest } = await packDirectory(source, packing, { owner: 'job-1' })
      await packing.close()
      const total = distinctChunks(manifest).size

      let { holder, info } = await holderProcess(holderDirectory)
      onCleanup(() => holder.stop())
      const local = await openStore('resume-local')
      const fetcher = await fetcherFor(local, async () => [info])
      let killed = false
      const interrupted = fetcher.fetch(cid, {
        owner: 'job-1',
        onProgress: (progress) => {
          if (!killed && progress.chunksFetched >= total / 4) {
            killed = true
            void holder.kill()
          }
        },
      })
      await expect(interrupted).rejects.toBeInstanceOf(FetchFailedError)
      expect(killed).toBe(true)
      const storedAfterKill = total - (await local.missingChunks([...distinctChunks(manifest).keys()])).length
      expect(storedAfterKill).toBeGreaterThanOrEqual(total / 4)
      expect(storedAfterKill).toBeLessThan(total)

      // Restarted on its store (a new address); the same fetch again picks up where it stopped.
      ;({ holder, info } = await holderProcess(holderDirectory))
      const resumed = await fetcher.fetch(cid, { owner: 'job-1' })
      expect(resumed).toMatchObject({ manifestFetched: false, chunksAlreadyStored: storedAfterKill, chunksFetched: total - storedAfterKill })
      expect((await holder.counters()).chunksServed).toBe(total - storedAfterKill)
      await materializeSnapshot(local, cid, join(root, 'resume-restored'))
      expect(await sameFile(join(source, memoryImageName), join(root, 'resume-restored', memoryImageName))).toBe(true)
    })

    it('refuses malformed requests without changing anything, and keeps serving the stream', async () => {
      const source = join(root, 'malformed-source')
      await writeSyntheticImage(source, { memoryBytes: 256 * 1024, seed: `${name}-malformed` })
      const holder = await startHolder(await openStore('malformed-holder'))
      const { cid } = await packDirectory(source, holder.store, { owner: 'job-1' })
      const before = await holder.store.stats()
      const { transport: client } = await endpoint()
      const stream = await client.dial(holder.info, {})
      const framed = lpStream(stream, { maxDataLength: 1 << 24 })
      const ask = async (bytes: Uint8Array): Promise<string> => {
        await framed.write(bytes)
        const decoded = decodeResponseFrame((await framed.read()).subarray())
        if (!decoded.ok) return `undecodable: ${decoded.reason}`
        return decoded.value.kind === 'refused' ? `refused: ${decoded.value.reason}` : decoded.value.kind
      }
      const text = (value: string): Uint8Array => new TextEncoder().encode(value)
      expect(await ask(text('{"kind":"manifest"}'))).toMatch(/^refused: request: not valid CBOR/)
      expect(await ask(Uint8Array.of(0xff, 0xfe))).toMatch(/^refused/)
      expect(await ask(encodeCbor({ kind: 'chunks', hashes: [] }))).toMatch(/^refused: request: hashes/)
      expect(await ask(encodeCbor({ kind: 'manifest', cid: 'b3:../../etc/passwd' }))).toMatch(/^refused: request: cid/)
      expect(await ask(encodeCbor({ kind: 'chunks', hashes: Array(513).fill('0'.repeat(64)) }))).toMatch(/^refused/)
      expect(await ask(encodeCbor({ kind: 'manifest', cid, extra: 1 }))).toMatch(/^refused/)
      // The stream survived every refusal: a sound request is answered on it.
      expect(await ask(encodeRequest({ kind: 'manifest', cid }))).toBe('manifest')
      expect(await ask(encodeRequest({ kind: 'manifest', cid: `b3:${'0'.repeat(64)}` as Cid }))).toBe('not-found')
      expect(holder.server.counters.refused).toBe(6)
      // A frame over maxRequestBytes cannot be skipped: the holder drops the stream.
      await framed.write(new Uint8Array(maxRequestBytes + 1))
      await expect(framed.read()).rejects.toThrow()
      expect(holder.server.counters.refused).toBe(7)
      expect(await holder.store.stats()).toEqual(before)
    })
  })
}
