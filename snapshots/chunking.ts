// Which chunker cuts which file, and the streaming reader that cuts a file without holding it in
// memory. CRIU memory images (pages-*.img) are raw page contents, rewritten in place page by page
// between checkpoints: fixed, page-aligned chunks keep an unchanged page range an unchanged chunk
// at no hashing cost. Everything else gets content-defined chunks (gear-chunker.ts), which survive
// insertions. The sizes below were chosen by measurement (README.md in this folder).
import { open } from 'node:fs/promises'
import { basename } from 'node:path'
import { assertGearParameters, gearCut, type GearParameters } from './gear-chunker.ts'

/** The largest chunk any snapshot may contain; the wire protocol's frames are sized from it. */
export const maxChunkBytes = 1024 * 1024
export const pageSizeBytes = 4096

export type ChunkingMethod =
  | { kind: 'fixed'; sizeBytes: number }
  | ({ kind: 'gear' } & GearParameters)

export interface ChunkingPolicy {
  /** Fixed chunk size for memory images, a multiple of the page size. */
  pageChunkBytes: number
  gear: GearParameters
}

export const defaultChunkingPolicy: ChunkingPolicy = {
  pageChunkBytes: 16 * 1024,
  gear: { minSizeBytes: 4 * 1024, averageSizeBytes: 16 * 1024, maxSizeBytes: 64 * 1024 },
}

const memoryImagePattern = /^pages-\d+\.img$/

export function isMemoryImage(path: string): boolean {
  return memoryImagePattern.test(basename(path))
}

export function assertChunkingPolicy(policy: ChunkingPolicy): void {
  const { pageChunkBytes } = policy
  if (!Number.isInteger(pageChunkBytes) || pageChunkBytes <= 0 || pageChunkBytes % pageSizeBytes !== 0 || pageChunkBytes > maxChunkBytes) {
    throw new Error(`pageChunkBytes must be a multiple of ${pageSizeBytes} up to ${maxChunkBytes}, got ${pageChunkBytes}`)
  }
  assertGearParameters(policy.gear)
  if (policy.gear.maxSizeBytes > maxChunkBytes) throw new Error(`gear maxSizeBytes ${policy.gear.maxSizeBytes} exceeds maxChunkBytes (${maxChunkBytes})`)
}

export function chunkingFor(path: string, policy: ChunkingPolicy): ChunkingMethod {
  return isMemoryImage(path) ? { kind: 'fixed', sizeBytes: policy.pageChunkBytes } : { kind: 'gear', ...policy.gear }
}

/** The manifest's record of how a file was cut (informational; reassembly needs only the list). */
export function describeChunking(method: ChunkingMethod): string {
  return method.kind === 'fixed' ? `fixed-${method.sizeBytes}` : `gear-${method.minSizeBytes}-${method.averageSizeBytes}-${method.maxSizeBytes}`
}

const largestChunk = (method: ChunkingMethod): number => (method.kind === 'fixed' ? method.sizeBytes : method.maxSizeBytes)

function cutLength(data: Uint8Array, start: number, end: number, method: ChunkingMethod): number {
  if (method.kind === 'fixed') return Math.min(method.sizeBytes, end - start)
  return gearCut(data, start, end, method)
}

/** Chunk lengths of an in-memory byte string (tests and measurements). */
export function chunkLengths(data: Uint8Array, method: ChunkingMethod): number[] {
  const lengths: number[] = []
  for (let start = 0; start < data.length;) {
    const length = cutLength(data, start, data.length, method)
    lengths.push(length)
    start += length
  }
  return lengths
}

/** Bytes read from disk at a time while chunking (several chunks per read). */
export const chunkReadBlockBytes = 4 * 1024 * 1024

export interface FileChunk {
  offset: number
  /** A view into the reader's buffer: valid only until the next iteration. */
  bytes: Uint8Array
}

/** Cuts the file at `path` into chunks, streaming; an empty file yields nothing. */
export async function* chunkFile(path: string, method: ChunkingMethod): AsyncGenerator<FileChunk> {
  const handle = await open(path, 'r')
  try {
    const largest = largestChunk(method)
    const buffer = Buffer.allocUnsafe(chunkReadBlockBytes + largest)
    let start = 0
    let filled = 0
    let fileOffset = 0
    let ended = false
    for (;;) {
      // Keep at least one largest chunk ahead of the cut, so cuts never depend on read sizes.
      if (!ended && filled - start < largest) {
        buffer.copyWithin(0, start, filled)
        filled -= start
        start = 0
        while (!ended && filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null)
          if (bytesRead === 0) ended = true
          filled += bytesRead
        }
      }
      if (start >= filled) return
      const length = cutLength(buffer, start, filled, method)
      yield { offset: fileOffset, bytes: buffer.subarray(start, start + length) }
      start += length
      fileOffset += length
    }
  } finally {
    await handle.close()
  }
}
