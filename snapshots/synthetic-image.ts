// Synthetic CRIU-like image directories for tests and `fabric bench snapshots`: a memory image
// (pages-1.img) of deterministic pseudo-random pages with runs of zero pages, and a few small
// metadata images. `mutateImage` then dirties a fraction of the pages in place, as a running
// process does between two checkpoints, and rewrites the small images (registers, counters).
import { createCipheriv, createHash } from 'node:crypto'
import { mkdir, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pageSizeBytes } from './chunking.ts'

export const memoryImageName = 'pages-1.img'
const metadataImages: Record<string, number> = { 'inventory.img': 48, 'core-1.img': 2_100, 'mm-1.img': 9_000, 'pagemap-1.img': 1_800, 'fdinfo-2.img': 300, 'files.img': 700 }
/** Bytes generated per write while filling the memory image. */
const writeBlockBytes = 4 * 1024 * 1024

/** A seeded byte stream (AES-128-CTR over zeros): fast, deterministic, incompressible. */
export function seededBytes(seed: string, length: number, stream = 0): Buffer {
  const key = createHash('sha256').update(`fabric-synthetic/${seed}`).digest().subarray(0, 16)
  const iv = Buffer.alloc(16)
  iv.writeUInt32BE(stream >>> 0, 0)
  return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(length))
}

/** A seeded generator of numbers in [0, 1) (mulberry32). */
export function seededRandom(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0)
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let value = Math.imul(state ^ (state >>> 15), 1 | state)
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296
  }
}

export interface SyntheticImageOptions {
  memoryBytes: number
  seed: string
  /** Fraction of pages that are zero, in runs (default 0.1). */
  zeroFraction?: number
}

export async function writeSyntheticImage(directory: string, options: SyntheticImageOptions): Promise<void> {
  await mkdir(directory, { recursive: true })
  const pages = Math.floor(options.memoryBytes / pageSizeBytes)
  const random = seededRandom(`${options.seed}/zero-runs`)
  const zeroFraction = options.zeroFraction ?? 0.1
  const handle = await open(join(directory, memoryImageName), 'w')
  try {
    const pagesPerBlock = writeBlockBytes / pageSizeBytes
    let zeroRunLeft = 0
    for (let first = 0, block = 0; first < pages; first += pagesPerBlock, block++) {
      const count = Math.min(pagesPerBlock, pages - first)
      const bytes = seededBytes(options.seed, count * pageSizeBytes, block)
      for (let page = 0; page < count; page++) {
        // Zero runs of 1-64 pages, started so that about zeroFraction of all pages are zero.
        if (zeroRunLeft === 0 && random() < zeroFraction / 32) zeroRunLeft = 1 + Math.floor(random() * 64)
        if (zeroRunLeft > 0) {
          bytes.fill(0, page * pageSizeBytes, (page + 1) * pageSizeBytes)
          zeroRunLeft--
        }
      }
      await handle.write(bytes)
    }
  } finally {
    await handle.close()
  }
  await writeMetadata(directory, `${options.seed}/metadata`)
}

export interface MutationOptions {
  seed: string
  /** Fraction of the memory image's pages rewritten (for example 0.02). */
  changedFraction: number
  /** Pages per dirty run: 1 scatters single pages, larger values cluster them. */
  runPages?: number
}

/** Dirties pages of the memory image in place and rewrites the metadata images; returns the pages changed. */
export async function mutateImage(directory: string, options: MutationOptions): Promise<{ pagesChanged: number }> {
  const path = join(directory, memoryImageName)
  const handle = await open(path, 'r+')
  try {
    const pages = Math.floor((await handle.stat()).size / pageSizeBytes)
    const runPages = Math.max(1, options.runPages ?? 1)
    const target = Math.round(pages * options.changedFraction)
    const random = seededRandom(`${options.seed}/dirty`)
    const dirty = new Set<number>()
    // Bounded: each try dirties at least one new page unless the image is nearly all dirty.
    for (let tries = 0; dirty.size < target && tries < pages * 4; tries++) {
      const first = Math.floor(random() * pages)
      for (let page = first; page < Math.min(pages, first + runPages) && dirty.size < target; page++) dirty.add(page)
    }
    const fresh = seededBytes(`${options.seed}/dirty-bytes`, dirty.size * pageSizeBytes)
    let index = 0
    for (const page of [...dirty].sort((a, b) => a - b)) {
      await handle.write(fresh, index * pageSizeBytes, pageSizeBytes, page * pageSizeBytes)
      index++
    }
    await writeMetadata(directory, `${options.seed}/metadata`)
    return { pagesChanged: dirty.size }
  } finally {
    await handle.close()
  }
}

async function writeMetadata(directory: string, seed: string): Promise<void> {
  let stream = 0
  for (const [name, size] of Object.entries(metadataImages)) await writeFile(join(directory, name), seededBytes(seed, size, stream++), { mode: 0o600 })
}
