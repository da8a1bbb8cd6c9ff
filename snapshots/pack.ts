// Packing: a snapshot directory (a CRIU image directory) becomes a manifest pinned in the store
// plus the chunks the store did not have. Two passes: the first cuts and hashes every file into
// the manifest; the manifest is pinned (which references its chunks); the second reads back only
// the chunks the store lacks and stores them. So a chunk is never written unreferenced, and a
// second checkpoint of a job writes only what changed. Re-packing after a crash finishes the job.
import { lstat, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { assertChunkingPolicy, chunkFile, chunkingFor, defaultChunkingPolicy, describeChunking, type ChunkingPolicy } from './chunking.ts'
import type { ChunkStore, StoredChunk } from './chunk-store.ts'
import type { Cid } from './cid.ts'
import { UnsupportedEntryError } from './errors.ts'
import { chunkHashOf, type ChunkHash } from './hash.ts'
import { manifestFormat, maxManifestEntries, permissionBitsMask, type Manifest, type ManifestChunk, type ManifestEntry } from './manifest.ts'

/** Bytes of chunks handed to the store in one batch. */
export const packWriteBatchBytes = 8 * 1024 * 1024

export interface ChunkLocation { path: string; offset: number; sizeBytes: number }

export interface BuiltManifest {
  manifest: Manifest
  /** Where each distinct chunk was first seen (relative path, offset), for the second pass. */
  locations: Map<ChunkHash, ChunkLocation>
}

/** Bytes and chunks cut so far of the directory's files (for a progress bar). */
export type PackProgress = (done: { bytes: number; chunks: number; bytesTotal: number }) => void

/** Walks `directory` and cuts every file: the manifest, without touching any store. */
export async function buildManifest(directory: string, policy: ChunkingPolicy = defaultChunkingPolicy, onProgress?: PackProgress): Promise<BuiltManifest> {
  assertChunkingPolicy(policy)
  const found = await walk(directory)
  let bytesTotal = 0
  for (const item of found) bytesTotal += item.sizeBytes
  let bytesCut = 0
  let chunksCut = 0
  const entries: ManifestEntry[] = []
  const locations = new Map<ChunkHash, ChunkLocation>()
  for (const item of found) {
    const mode = item.mode & permissionBitsMask
    if (item.kind === 'directory') {
      entries.push({ kind: 'directory', path: item.path, mode })
      continue
    }
    const method = chunkingFor(item.path, policy)
    const chunks: ManifestChunk[] = []
    let sizeBytes = 0
    for await (const chunk of chunkFile(join(directory, item.path), method)) {
      const hash = chunkHashOf(chunk.bytes)
      chunks.push([hash, chunk.bytes.length])
      if (!locations.has(hash)) locations.set(hash, { path: item.path, offset: chunk.offset, sizeBytes: chunk.bytes.length })
      sizeBytes += chunk.bytes.length
      bytesCut += chunk.bytes.length
      onProgress?.({ bytes: bytesCut, chunks: ++chunksCut, bytesTotal })
    }
    entries.push({ kind: 'file', path: item.path, mode, sizeBytes, chunking: describeChunking(method), chunks })
  }
  return { manifest: { format: manifestFormat, entries }, locations }
}

export interface PackResult {
  cid: Cid
  manifest: Manifest
  /** Bytes in the snapshot's files. */
  sizeBytes: number
  /** Distinct chunks the manifest names. */
  distinctChunks: number
  /** Chunks (and their bytes) this pack wrote; the rest were already stored. */
  chunksWritten: number
  bytesWritten: number
}

/** Packs `directory` into `store`, pinned for `owner`. */
export async function packDirectory(directory: string, store: ChunkStore, options: { owner: string; policy?: ChunkingPolicy; onProgress?: PackProgress }): Promise<PackResult> {
  const { manifest, locations } = await buildManifest(directory, options.policy, options.onProgress)
  const { cid } = await store.pin(manifest, options.owner)
  const missing = await store.missingChunks([...locations.keys()])
  let batch: StoredChunk[] = []
  let batchBytes = 0
  let bytesWritten = 0
  const flush = async (): Promise<void> => {
    if (batch.length > 0) await store.putChunks(batch)
    batch = []
    batchBytes = 0
  }
  // Read back file by file, in offset order, so reads stay sequential.
  const byFile = new Map<string, { hash: ChunkHash; location: ChunkLocation }[]>()
  for (const hash of missing) {
    const location = locations.get(hash)!
    let list = byFile.get(location.path)
    if (list === undefined) byFile.set(location.path, (list = []))
    list.push({ hash, location })
  }
  for (const [path, list] of byFile) {
    list.sort((a, b) => a.location.offset - b.location.offset)
    const handle = await open(join(directory, path), 'r')
    try {
      for (const { hash, location } of list) {
        const bytes = Buffer.allocUnsafe(location.sizeBytes)
        const { bytesRead } = await handle.read(bytes, 0, location.sizeBytes, location.offset)
        if (bytesRead !== location.sizeBytes) throw new Error(`${path} changed while it was packed (short read at ${location.offset})`)
        // putChunks re-hashes: a file changed between the passes is refused, never stored wrong.
        batch.push({ hash, bytes })
        batchBytes += bytes.length
        bytesWritten += bytes.length
        if (batchBytes >= packWriteBatchBytes) await flush()
      }
    } finally {
      await handle.close()
    }
  }
  await flush()
  let sizeBytes = 0
  for (const entry of manifest.entries) if (entry.kind === 'file') sizeBytes += entry.sizeBytes
  return { cid, manifest, sizeBytes, distinctChunks: locations.size, chunksWritten: missing.length, bytesWritten }
}

interface FoundEntry { kind: 'file' | 'directory'; path: string; mode: number; sizeBytes: number }

/** Every file and directory under `root` (relative '/' paths), sorted by path; anything else is refused. */
async function walk(root: string): Promise<FoundEntry[]> {
  const found: FoundEntry[] = []
  const visit = async (relative: string): Promise<void> => {
    const names = await readdir(relative === '' ? root : join(root, relative))
    for (const name of names) {
      const path = relative === '' ? name : `${relative}/${name}`
      const stats = await lstat(join(root, path))
      if (stats.isDirectory()) {
        found.push({ kind: 'directory', path, mode: stats.mode, sizeBytes: 0 })
        await visit(path)
      } else if (stats.isFile()) {
        found.push({ kind: 'file', path, mode: stats.mode, sizeBytes: stats.size })
      } else {
        throw new UnsupportedEntryError(join(root, path), stats.isSymbolicLink() ? 'symbolic link' : 'special file')
      }
      if (found.length > maxManifestEntries) throw new Error(`${root} holds more than maxManifestEntries (${maxManifestEntries}) entries`)
    }
  }
  await visit('')
  return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}
