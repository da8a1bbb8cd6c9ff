// `fabric bench snapshots`: real libp2p hosts on 127.0.0.1, holders in child processes (as other
// machines would be), the fetcher in this process. Interleaved runs of: a raw libp2p stream of
// the snapshot's bytes from a holder (the ceiling), a fetch from that one holder, and a fetch
// from two holders; then, for a second checkpoint of a barely changed memory image, the bytes a
// node holding the first one must receive. Medians over the runs; per-run ratios so that load
// from elsewhere on the machine hits both sides of a comparison alike.
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p, PeerInfo } from '@libp2p/interface'
import { irohBenchTransport, irohParallelStreams, receiveRawIroh, type IrohBenchResult, type IrohBenchSamples } from './bench-iroh.ts'
import { ChunkStore, verifyChunk, type StoredChunk } from './chunk-store.ts'
import { defaultChunkingPolicy } from './chunking.ts'
import type { Cid } from './cid.ts'
import { HolderProcess } from './holder-process.ts'
import { createSnapshotHost } from './host.ts'
import { silentSnapshotLogger } from './logger.ts'
import { distinctChunks } from './manifest.ts'
import { packDirectory } from './pack.ts'
import { receiveRawStream } from './raw-stream.ts'
import { defaultSnapshotFetcherLimits, SnapshotFetcher, type FetchResult } from './snapshot-fetcher.ts'
import { defaultSnapshotServerLimits } from './snapshot-server.ts'
import { mutateImage, writeSyntheticImage } from './synthetic-image.ts'
import type { SnapshotTransport, SnapshotTransportName } from './transport.ts'

export interface SnapshotBenchOptions {
  memoryBytes: number
  /** Fraction of the memory image's pages dirtied for the second checkpoint. */
  changedFraction: number
  runs: number
  /** Pages per dirty run in the clustered variant (the scattered one dirties single pages). */
  clusteredRunPages?: number
  workDirectory?: string
  /** 'iroh' adds the iroh row (measured beside libp2p in the same runs); default libp2p only. */
  transport?: SnapshotTransportName
  /**
   * Paces each holder's outgoing bytes (raw stream and snapshot answers alike) to this many MB/s,
   * as if each sat behind its own link: the comparison between machines, where the link is the
   * limit rather than the shared CPU. Unpaced when absent or null.
   */
  linkMbps?: number | null
  nowMs: () => number
  /** Human-readable steps (the CLI prints them unless --json). */
  onStep?: (message: string) => void
}

interface IncrementalResult {
  runPages: number
  pagesChanged: number
  firstBytes: number
  secondBytes: number
  secondManifestBytes: number
  ratio: number
}

export interface SnapshotBenchResult {
  /** Each holder's paced link in MB/s, or null: unpaced loopback. */
  linkMbps: number | null
  memoryImageBytes: number
  snapshotBytes: number
  /** Distinct chunk bytes: what a node with an empty store receives (zero pages dedupe). */
  distinctChunkBytes: number
  chunks: number
  pageChunkBytes: number
  manifestBytes: number
  packMBps: number
  /** The chunk store alone: verified chunks from memory into an empty store, batched as a fetch does. */
  storeWriteMBps: number
  storeWriteCpuMsPerMB: number
  /** The chunk store alone: every chunk read back as a holder serves them. */
  storeReadMBps: number
  storeReadCpuMsPerMB: number
  runs: number
  rawStreamMBps: number
  oneHolderMBps: number
  twoHoldersMBps: number
  /** Median over runs of (one holder / raw stream in the same run). */
  oneHolderVsRaw: number
  /** Median over runs of (two holders / one holder in the same run). */
  twoHoldersVsOne: number
  incremental: { scattered: IncrementalResult; clustered: IncrementalResult }
  goals: { oneHolderVsRaw: number; twoHoldersVsOne: number; incrementalRatio: number }
  met: { oneHolderVsRaw: boolean; twoHoldersVsOne: boolean; incrementalScattered: boolean; incrementalClustered: boolean }
  samples: { rawStreamMBps: number[]; oneHolderMBps: number[]; twoHoldersMBps: number[] }
  /** CPU milliseconds (all threads, level's included) per MB moved: this process, and the holder processes together. */
  cpuMsPerMB: { rawStream: CpuSample; oneHolder: CpuSample; twoHolders: CpuSample }
  machine: { cores: number; loadAverageAtStart: number[]; loadAverageAtEnd: number[] }
  /** With `transport: 'iroh'`: the same holder over iroh, same runs (null otherwise). */
  iroh: IrohBenchResult | null
}

const goals = { oneHolderVsRaw: 0.9, twoHoldersVsOne: 1.6, incrementalRatio: 0.1 }

export async function benchSnapshots(options: SnapshotBenchOptions): Promise<SnapshotBenchResult> {
  const { nowMs } = options
  const step = options.onStep ?? (() => {})
  const loadAverageAtStart = loadavg().map(round2)
  const work = await mkdtemp(join(options.workDirectory ?? tmpdir(), 'fabric-bench-snapshots-'))
  const holders: HolderProcess[] = []
  let host: Libp2p | null = null
  let iroh: Awaited<ReturnType<typeof irohBenchTransport>> | null = null
  try {
    // Checkpoint 1 and two variants of checkpoint 2: ~changedFraction of the pages dirtied, scattered or clustered.
    const clusteredRunPages = options.clusteredRunPages ?? 16
    step(`writing a ${mib(options.memoryBytes)} MiB synthetic memory image and two later checkpoints of it`)
    const base = join(work, 'checkpoint-1')
    await writeSyntheticImage(base, { memoryBytes: options.memoryBytes, seed: 'bench' })
    const variants = { scattered: { directory: join(work, 'checkpoint-2-scattered'), runPages: 1, pagesChanged: 0 }, clustered: { directory: join(work, 'checkpoint-2-clustered'), runPages: clusteredRunPages, pagesChanged: 0 } }
    for (const variant of Object.values(variants)) {
      await cp(base, variant.directory, { recursive: true })
      variant.pagesChanged = (await mutateImage(variant.directory, { seed: `bench-${variant.runPages}`, changedFraction: options.changedFraction, runPages: variant.runPages })).pagesChanged
    }

    step('packing the checkpoints into the first holder\'s store')
    const holderDirectories = [join(work, 'holder-1'), join(work, 'holder-2')]
    const store = await ChunkStore.open({ directory: holderDirectories[0]!, syncWrites: false })
    const packStartMs = nowMs()
    const first = await packDirectory(base, store, { owner: 'bench' })
    const packMs = nowMs() - packStartMs
    const scattered = await packDirectory(variants.scattered.directory, store, { owner: 'bench' })
    const clustered = await packDirectory(variants.clustered.directory, store, { owner: 'bench' })
    const manifestBytes = (await store.manifestBytes(first.cid))!.length
    step('timing the chunk store alone: writing the snapshot\'s chunks into an empty store, reading them back')
    const storeWrite = await storeWriteRate(store, first.cid, work, nowMs)
    const storeRead = await storeReadRate(store, first.cid, nowMs)
    await store.close()
    await cp(holderDirectories[0]!, holderDirectories[1]!, { recursive: true })

    step('starting two holder processes')
    const withIroh = options.transport === 'iroh'
    const linkMbps = options.linkMbps ?? null
    if (linkMbps !== null) step(`each holder's sending paced to ${linkMbps} MB/s`)
    for (const directory of holderDirectories) holders.push(await HolderProcess.start(directory, { iroh: withIroh, linkMbps }))
    host = await createSnapshotHost()
    const [one, two] = holders.map((holder) => holder.info) as [PeerInfo, PeerInfo]
    // Warm up connections and code paths on both sides before timing anything.
    await receiveRawStream(host, one, 8 * 1024 * 1024)
    await receiveRawStream(host, two, 8 * 1024 * 1024)
    const oneIroh = holders[0]!.irohInfo
    if (withIroh) {
      iroh = await irohBenchTransport()
      await receiveRawIroh(iroh, oneIroh!, 1024 * 1024, 1)
    }
    const irohSamples: IrohBenchSamples = { rawStreamMBps: [], rawParallelStreamsMBps: [], oneHolderMBps: [], oneHolderVsLibp2p: [] }
    const irohCpu = { rawStream: [] as CpuSample[], oneHolder: [] as CpuSample[] }

    const samples = { rawStreamMBps: [] as number[], oneHolderMBps: [] as number[], twoHoldersMBps: [] as number[] }
    const cpu = { rawStream: [] as CpuSample[], oneHolder: [] as CpuSample[], twoHolders: [] as CpuSample[] }
    const oneVsRaw: number[] = []
    const twoVsOne: number[] = []
    for (let run = 1; run <= options.runs; run++) {
      const raw = await measured(holders.slice(0, 1), nowMs, async () => receiveRawStream(host!, one, first.bytesWritten))
      const single = await withFreshStore(work, (store) => measured(holders.slice(0, 1), nowMs, async () => fetchedBytes(await fetchInto(host!, store, first.cid, [one], nowMs))))
      const double = await withFreshStore(work, (store) => measured(holders, nowMs, async () => fetchedBytes(await fetchInto(host!, store, first.cid, [one, two], nowMs))))
      samples.rawStreamMBps.push(raw.mbps)
      samples.oneHolderMBps.push(single.mbps)
      samples.twoHoldersMBps.push(double.mbps)
      cpu.rawStream.push(raw.cpu)
      cpu.oneHolder.push(single.cpu)
      cpu.twoHolders.push(double.cpu)
      // Ratios of the unrounded rates: at a paced link's 20 MB/s, whole MB/s are 5 % steps.
      oneVsRaw.push(single.exactMBps / raw.exactMBps)
      twoVsOne.push(double.exactMBps / single.exactMBps)
      step(`run ${run}/${options.runs}: raw stream ${raw.mbps} MB/s, one holder ${single.mbps} MB/s, two holders ${double.mbps} MB/s`)
      if (iroh !== null) {
        const transport = iroh
        const irohRaw = await measured(holders.slice(0, 1), nowMs, () => receiveRawIroh(transport, oneIroh!, first.bytesWritten, 1))
        const irohParallel = await measured(holders.slice(0, 1), nowMs, () => receiveRawIroh(transport, oneIroh!, first.bytesWritten, irohParallelStreams))
        const irohSingle = await withFreshStore(work, (store) => measured(holders.slice(0, 1), nowMs, async () => fetchedBytes(await fetchInto(host!, store, first.cid, [oneIroh!], nowMs, transport))))
        irohSamples.rawStreamMBps.push(irohRaw.mbps)
        irohSamples.rawParallelStreamsMBps.push(irohParallel.mbps)
        irohSamples.oneHolderMBps.push(irohSingle.mbps)
        irohSamples.oneHolderVsLibp2p.push(round2(irohSingle.mbps / single.mbps))
        irohCpu.rawStream.push(irohRaw.cpu)
        irohCpu.oneHolder.push(irohSingle.cpu)
        step(`run ${run}/${options.runs} over iroh: raw stream ${irohRaw.mbps} MB/s, ${irohParallelStreams} raw streams ${irohParallel.mbps} MB/s, one holder ${irohSingle.mbps} MB/s`)
      }
    }

    step('fetching checkpoint 1, then checkpoint 2, into one store')
    const incremental = {
      scattered: await incrementalTransfer(host, work, first.cid, scattered.cid, one, variants.scattered, nowMs),
      clustered: await incrementalTransfer(host, work, first.cid, clustered.cid, one, variants.clustered, nowMs),
    }
    const result: SnapshotBenchResult = {
      linkMbps,
      memoryImageBytes: options.memoryBytes,
      snapshotBytes: first.sizeBytes,
      distinctChunkBytes: first.bytesWritten,
      chunks: first.distinctChunks,
      pageChunkBytes: defaultChunkingPolicy.pageChunkBytes,
      manifestBytes,
      packMBps: mbps(first.sizeBytes, packMs),
      storeWriteMBps: storeWrite.mbps,
      storeWriteCpuMsPerMB: storeWrite.cpuMsPerMB,
      storeReadMBps: storeRead.mbps,
      storeReadCpuMsPerMB: storeRead.cpuMsPerMB,
      runs: options.runs,
      rawStreamMBps: median(samples.rawStreamMBps),
      oneHolderMBps: median(samples.oneHolderMBps),
      twoHoldersMBps: median(samples.twoHoldersMBps),
      oneHolderVsRaw: round2(median(oneVsRaw)),
      twoHoldersVsOne: round2(median(twoVsOne)),
      incremental,
      goals,
      met: {
        oneHolderVsRaw: median(oneVsRaw) >= goals.oneHolderVsRaw,
        twoHoldersVsOne: median(twoVsOne) >= goals.twoHoldersVsOne,
        incrementalScattered: incremental.scattered.ratio <= goals.incrementalRatio,
        incrementalClustered: incremental.clustered.ratio <= goals.incrementalRatio,
      },
      samples,
      cpuMsPerMB: { rawStream: medianCpu(cpu.rawStream), oneHolder: medianCpu(cpu.oneHolder), twoHolders: medianCpu(cpu.twoHolders) },
      machine: { cores: availableParallelism(), loadAverageAtStart, loadAverageAtEnd: loadavg().map(round2) },
      iroh: iroh === null ? null : {
        rawStreamMBps: median(irohSamples.rawStreamMBps),
        rawParallelStreamsMBps: median(irohSamples.rawParallelStreamsMBps),
        parallelStreams: irohParallelStreams,
        oneHolderMBps: median(irohSamples.oneHolderMBps),
        oneHolderVsLibp2p: median(irohSamples.oneHolderVsLibp2p),
        samples: irohSamples,
        cpuMsPerMB: { rawStream: medianCpu(irohCpu.rawStream), oneHolder: medianCpu(irohCpu.oneHolder) },
      },
    }
    return result
  } finally {
    for (const holder of holders) await holder.stop()
    await host?.stop()
    await iroh?.close()
    await rm(work, { recursive: true, force: true })
  }
}

interface CpuSample { fetcher: number; holders: number }

/** Runs `task` (which returns the bytes it moved) and measures its rate and the CPU both sides spent. */
async function measured(holders: HolderProcess[], nowMs: () => number, task: () => Promise<number>): Promise<{ mbps: number; exactMBps: number; cpu: CpuSample }> {
  const holdersBefore = await Promise.all(holders.map((holder) => holder.counters()))
  const cpuBefore = process.cpuUsage()
  const startMs = nowMs()
  const bytes = await task()
  const elapsedMs = nowMs() - startMs
  const cpuAfter = process.cpuUsage(cpuBefore)
  const holdersAfter = await Promise.all(holders.map((holder) => holder.counters()))
  const holderMs = holdersAfter.reduce((sum, after, index) => sum + after.cpuMs - holdersBefore[index]!.cpuMs, 0)
  const megabytes = bytes / 1e6
  return { mbps: mbps(bytes, elapsedMs), exactMBps: megabytes / (elapsedMs / 1_000), cpu: { fetcher: round2((cpuAfter.user + cpuAfter.system) / 1_000 / megabytes), holders: round2(holderMs / megabytes) } }
}

/** Reads every chunk of `cid` as a holder serves them (32 per lookup). */
async function storeReadRate(store: ChunkStore, cid: Cid, nowMs: () => number): Promise<{ mbps: number; cpuMsPerMB: number }> {
  const hashes = [...distinctChunks((await store.manifest(cid))!).keys()]
  const cpuBefore = process.cpuUsage()
  const startMs = nowMs()
  let bytes = 0
  for (let start = 0; start < hashes.length; start += defaultSnapshotServerLimits.chunksPerWrite) {
    for (const value of await store.getChunks(hashes.slice(start, start + defaultSnapshotServerLimits.chunksPerWrite))) bytes += value?.byteLength ?? 0
  }
  const elapsedMs = nowMs() - startMs
  const cpu = process.cpuUsage(cpuBefore)
  return { mbps: mbps(bytes, elapsedMs), cpuMsPerMB: round2((cpu.user + cpu.system) / 1_000 / (bytes / 1e6)) }
}

/** Writes every chunk of `cid` from `source` into a new store, as a fetch's writer does (4 MiB batches, 4 under way). */
async function storeWriteRate(source: ChunkStore, cid: Cid, work: string, nowMs: () => number): Promise<{ mbps: number; cpuMsPerMB: number }> {
  const manifest = (await source.manifest(cid))!
  const hashes = [...distinctChunks(manifest).keys()]
  const values = await source.getChunks(hashes)
  const chunks = hashes.map((hash, index) => verifyChunk(hash, values[index]!)!)
  const bytes = chunks.reduce((sum, chunk) => sum + chunk.bytes.byteLength, 0)
  return withFreshStore(work, async (store) => {
    await store.pin(manifest, 'bench')
    const cpuBefore = process.cpuUsage()
    const startMs = nowMs()
    const pending = new Set<Promise<unknown>>()
    const write = async (batch: StoredChunk[]): Promise<void> => {
      const written: Promise<unknown> = store.putChunks(batch).finally(() => pending.delete(written))
      pending.add(written)
      while (pending.size >= defaultSnapshotFetcherLimits.maxPendingWrites) await Promise.race(pending)
    }
    let batch: StoredChunk[] = []
    let batchBytes = 0
    for (const chunk of chunks) {
      batch.push(chunk)
      batchBytes += chunk.bytes.byteLength
      if (batchBytes < defaultSnapshotFetcherLimits.writeBatchBytes) continue
      await write(batch)
      batch = []
      batchBytes = 0
    }
    if (batch.length > 0) await write(batch)
    await Promise.all(pending)
    const elapsedMs = nowMs() - startMs
    const cpu = process.cpuUsage(cpuBefore)
    return { mbps: mbps(bytes, elapsedMs), cpuMsPerMB: round2((cpu.user + cpu.system) / 1_000 / (bytes / 1e6)) }
  })
}

const fetchedBytes = (result: FetchResult): number => result.bytesFetched + (result.manifestFetched ? result.manifestBytes : 0)

async function fetchInto(host: Libp2p, store: ChunkStore, cid: Cid, holders: PeerInfo[], nowMs: () => number, transport?: SnapshotTransport): Promise<FetchResult> {
  const fetcher = new SnapshotFetcher({ libp2p: host, transport, store, holdersOf: async () => holders, logger: silentSnapshotLogger, nowMs })
  return fetcher.fetch(cid, { owner: 'bench' })
}

/** Runs `task` on a new, empty store, removed afterwards (outside any timing). */
async function withFreshStore<T>(work: string, task: (store: ChunkStore) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(work, 'store-'))
  const store = await ChunkStore.open({ directory, syncWrites: false })
  try {
    return await task(store)
  } finally {
    await store.close()
    await rm(directory, { recursive: true, force: true })
  }
}

/** Bytes a node holding checkpoint 1 receives for checkpoint 2: its manifest and the chunks it lacks. */
async function incrementalTransfer(host: Libp2p, work: string, firstCid: Cid, secondCid: Cid, holder: PeerInfo, variant: { runPages: number; pagesChanged: number }, nowMs: () => number): Promise<IncrementalResult> {
  return withFreshStore(work, async (store) => {
    const firstBytes = fetchedBytes(await fetchInto(host, store, firstCid, [holder], nowMs))
    const second = await fetchInto(host, store, secondCid, [holder], nowMs)
    const secondBytes = fetchedBytes(second)
    return { runPages: variant.runPages, pagesChanged: variant.pagesChanged, firstBytes, secondBytes, secondManifestBytes: second.manifestBytes, ratio: Math.round((secondBytes / firstBytes) * 10_000) / 10_000 }
  })
}

const mbps = (bytes: number, ms: number): number => Math.round(bytes / 1e6 / (ms / 1_000))
const mib = (bytes: number): number => Math.round(bytes / 1024 / 1024)
const round2 = (value: number): number => Math.round(value * 100) / 100

function medianCpu(samples: readonly CpuSample[]): CpuSample {
  return { fetcher: median(samples.map((sample) => sample.fetcher)), holders: median(samples.map((sample) => sample.holders)) }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
