// Materializing: a stored snapshot written out as a directory byte-identical to the one packed
// (contents and permission bits), for CRIU to restore from. Every chunk is re-hashed on the way
// out, so a store corrupted on disk fails loudly instead of restoring a damaged process.
import { chmod, mkdir, open, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ChunkStore } from './chunk-store.ts'
import type { Cid } from './cid.ts'
import { CorruptChunkError, SnapshotIncompleteError, SnapshotNotFoundError, TargetExistsError } from './errors.ts'
import { chunkHashOf } from './hash.ts'
import { distinctChunks } from './manifest.ts'

/** Chunks read from the store per lookup while writing a file. */
const readBatchChunks = 256

export async function materializeSnapshot(store: ChunkStore, cid: Cid, target: string): Promise<{ files: number; sizeBytes: number }> {
  const manifest = await store.manifest(cid)
  if (manifest === undefined) throw new SnapshotNotFoundError(cid, 'the local store')
  const missing = await store.missingChunks([...distinctChunks(manifest).keys()])
  if (missing.length > 0) throw new SnapshotIncompleteError(cid, missing.length)
  if (await exists(target)) throw new TargetExistsError(target)
  await mkdir(dirname(target), { recursive: true })
  await mkdir(target)
  let files = 0
  let sizeBytes = 0
  try {
    for (const entry of manifest.entries) {
      const path = join(target, entry.path)
      if (entry.kind === 'directory') {
        await mkdir(path)
        continue
      }
      const handle = await open(path, 'wx')
      // Bytes already hashed in this file, and as what (the store hands out one copy of a repeated chunk).
      const verified = new WeakMap<Uint8Array, string>()
      try {
        for (let start = 0; start < entry.chunks.length; start += readBatchChunks) {
          const slice = entry.chunks.slice(start, start + readBatchChunks)
          const values = await store.getChunks(slice.map(([hash]) => hash))
          const buffers = values.map((bytes, index) => {
            const hash = slice[index]![0]
            if (bytes === undefined) throw new CorruptChunkError(hash, 'the local store')
            if (verified.get(bytes) !== hash) {
              if (chunkHashOf(bytes) !== hash) throw new CorruptChunkError(hash, 'the local store')
              verified.set(bytes, hash)
            }
            return bytes
          })
          await handle.writev(buffers)
        }
      } finally {
        await handle.close()
      }
      await chmod(path, entry.mode)
      files++
      sizeBytes += entry.sizeBytes
    }
    // Directory modes last and deepest first: a read-only directory still received its files.
    for (const entry of [...manifest.entries].reverse()) if (entry.kind === 'directory') await chmod(join(target, entry.path), entry.mode)
  } catch (error) {
    await rm(target, { recursive: true, force: true })
    throw error
  }
  return { files, sizeBytes }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
}
