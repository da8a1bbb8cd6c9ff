// `fabric bench migrate`: the downtime of moving a running job with about `memoryMiB` resident
// between two nodes on this machine, phase by phase, through the parts the daemons use: the runtime's
// CRIU checkpoint (the job stops), packing into node A's chunk store, a fetch over
// /fabric/snapshots/1.0.0 on loopback into node B's store, writing it out, and the restore on B.
// The job is a counter holding a block of memory; the restored one must go on counting.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { JobId } from '../consensus/index.ts'
import { DockerRuntime, ProcessRuntime, connectDocker, dockerSocketPath, type Runtime, type RuntimeLogger } from '../runtime/index.ts'
import { ensureBusyboxImage, busyboxImage } from '../runtime/testing/busybox-image.ts'
import { ChunkStore, SnapshotFetcher, SnapshotServer, materializeSnapshot, packDirectory, silentSnapshotLogger, staticHolders } from '../snapshots/index.ts'
import { createSnapshotHost } from '../snapshots/host.ts'

export interface MigrateBenchOptions {
  runtime: 'docker' | 'process'
  memoryMiB: number
  nowMs: () => number
}

export interface MigrateBenchResult {
  bench: 'migrate'
  runtime: string
  memoryMiB: number
  snapshotBytes: number
  /** From the checkpoint's start (the job stops) to the restored job running on node B. */
  downtimeMs: number
  phasesMs: { checkpoint: number; pack: number; transfer: number; materialize: number; restore: number }
  /** The runtime's own split of its checkpoint and restore phases (from its job-checkpointed and job-restored log lines). */
  stepsMs: { checkpoint: Record<string, number>; restore: Record<string, number> }
  countBefore: number
  countAfter: number
  goalMs: number
  /** downtimeMs <= goalMs (issue D's goal for a move). */
  goalMet: boolean
}

const silent = { debug() {}, info() {}, warn() {}, error() {} }

/** A logger that keeps the stepsMs of the runtime's checkpoint and restore lines and drops the rest. */
function stepsRecorder(steps: MigrateBenchResult['stepsMs']): RuntimeLogger {
  return {
    ...silent,
    info(event: string, fields?: Record<string, unknown>) {
      const recorded = fields?.stepsMs
      if (recorded === undefined || recorded === null || typeof recorded !== 'object') return
      if (event === 'job-checkpointed') steps.checkpoint = { ...(recorded as Record<string, number>) }
      if (event === 'job-restored') steps.restore = { ...(recorded as Record<string, number>) }
    },
  }
}
/** Counts in memory while holding a block of `$1` MiB in a shell variable (busybox sh runs it too). */
const holdingCounter = 'x=$(head -c $(( $1 * 1048576 )) /dev/zero | tr "\\0" a); i=0; echo ready; while true; do echo $i; i=$((i+1)); sleep 0.05; done'

export async function benchMigrate(options: MigrateBenchOptions): Promise<MigrateBenchResult> {
  const root = await mkdtemp(join(tmpdir(), 'fabric-bench-migrate-'))
  const [dataA, dataB] = [join(root, 'a'), join(root, 'b')]
  const stepsMs: MigrateBenchResult['stepsMs'] = { checkpoint: {}, restore: {} }
  const logger = stepsRecorder(stepsMs)
  const make = (dataDir: string): Runtime =>
    options.runtime === 'docker' ? new DockerRuntime({ dataDir }, { logger }) : new ProcessRuntime({ dataDir, cgroups: 'off' }, { logger })
  const [runtimeA, runtimeB] = [make(dataA), make(dataB)]
  const [hostA, hostB] = [await createSnapshotHost(), await createSnapshotHost()]
  const [storeA, storeB] = [await ChunkStore.open({ directory: join(root, 'store-a') }), await ChunkStore.open({ directory: join(root, 'store-b') })]
  const jobId = `bench-migrate-${process.pid}` as JobId
  try {
    if (options.runtime === 'docker') await ensureBusyboxImage(connectDocker(dockerSocketPath()))
    const server = new SnapshotServer({ libp2p: hostA, store: storeA, logger: silentSnapshotLogger })
    await server.start()
    const log = (dataDir: string): Promise<string> => readFile(join(dataDir, 'jobs', jobId, 'stdout.log'), 'utf8').catch(() => '')
    const counts = (text: string): number[] => text.split('\n').filter((line) => /^\d+$/.test(line)).map(Number)
    await runtimeA.start({ jobId, command: ['sh', '-c', holdingCounter, 'holder', String(options.memoryMiB)], ...(options.runtime === 'docker' ? { image: busyboxImage } : {}) })
    await until(async () => counts(await log(dataA)).length >= 20, 120_000, 'the job to hold its memory and count')

    const directory = join(root, 'checkpoint')
    const started = options.nowMs()
    await runtimeA.checkpoint(jobId, directory)
    const dumped = options.nowMs()
    const countBefore = counts(await log(dataA)).at(-1)!
    const packed = await packDirectory(directory, storeA, { owner: jobId })
    const packedAt = options.nowMs()
    const fetcher = new SnapshotFetcher({ libp2p: hostB, store: storeB, logger: silentSnapshotLogger, holdersOf: staticHolders([{ id: hostA.peerId, multiaddrs: hostA.getMultiaddrs() }]) })
    const fetched = await fetcher.fetch(packed.cid, { owner: jobId })
    const fetchedAt = options.nowMs()
    const restoreDirectory = join(root, 'restore')
    await materializeSnapshot(storeB, packed.cid, restoreDirectory)
    const materialized = options.nowMs()
    await runtimeB.restore(jobId, restoreDirectory)
    const restored = options.nowMs()
    await until(async () => counts(await log(dataB)).length >= 3, 30_000, 'the restored job to count')
    const countAfter = counts(await log(dataB))[0]!
    await runtimeB.stop(jobId, 'bench over')
    await server.stop()
    const downtimeMs = Math.round(restored - started)
    const goalMs = 2_000
    return {
      bench: 'migrate',
      runtime: options.runtime,
      memoryMiB: options.memoryMiB,
      snapshotBytes: fetched.sizeBytes,
      downtimeMs,
      phasesMs: {
        checkpoint: Math.round(dumped - started),
        pack: Math.round(packedAt - dumped),
        transfer: Math.round(fetchedAt - packedAt),
        materialize: Math.round(materialized - fetchedAt),
        restore: Math.round(restored - materialized),
      },
      stepsMs,
      countBefore,
      countAfter,
      goalMs,
      goalMet: downtimeMs <= goalMs,
    }
  } finally {
    await Promise.all([runtimeA.close(), runtimeB.close()]).catch(() => {})
    await Promise.all([hostA.stop(), hostB.stop()]).catch(() => {})
    await Promise.all([storeA.close(), storeB.close()]).catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
