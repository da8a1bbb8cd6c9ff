// Content-defined chunking with a gear rolling hash (FastCDC: cut-point skipping below the minimum
// size, normalized chunking with a harder mask before the average size and an easier one after).
// Boundaries depend only on the bytes around them, so an insertion shifts the following bytes
// without changing their chunks. The gear table is derived from BLAKE3 and is part of the format:
// changing it (or the masks) changes every boundary, hence every CID.
import { blake3 } from './hash.ts'

export interface GearParameters {
  minSizeBytes: number
  /** A power of two: the mask width is log2 of it. */
  averageSizeBytes: number
  maxSizeBytes: number
}

/** FastCDC's normalization level 2: masks two bits harder / easier than the average's. */
const normalizationBits = 2

/** table[i] = first four bytes of BLAKE3("fabric/gear/1/" + i), little-endian, as int32. */
const gearTable: Int32Array = (() => {
  const table = new Int32Array(256)
  for (let index = 0; index < 256; index++) table[index] = blake3(new TextEncoder().encode(`fabric/gear/1/${index}`)).readInt32LE(0)
  return table
})()

/** The `bits` highest bits of a 32-bit word: with a shift-left gear hash they cover the last 32 bytes. */
const topBitsMask = (bits: number): number => (bits >= 32 ? -1 : ((1 << bits) - 1) << (32 - bits)) | 0

export function assertGearParameters(parameters: GearParameters): void {
  const { minSizeBytes, averageSizeBytes, maxSizeBytes } = parameters
  const bits = Math.log2(averageSizeBytes)
  if (!Number.isInteger(bits) || bits < 6 || bits > 28) throw new Error(`averageSizeBytes must be a power of two in [64, 2^28], got ${averageSizeBytes}`)
  if (!(Number.isInteger(minSizeBytes) && minSizeBytes >= 1 && minSizeBytes < averageSizeBytes && averageSizeBytes < maxSizeBytes && Number.isInteger(maxSizeBytes))) {
    throw new Error(`gear sizes must satisfy 1 <= min < average < max, got ${minSizeBytes}/${averageSizeBytes}/${maxSizeBytes}`)
  }
}

/**
 * The length of the chunk starting at `start` in `data[start, end)`. The caller passes at least
 * `maxSizeBytes` bytes unless the input ends at `end` (then the rest may be shorter).
 */
export function gearCut(data: Uint8Array, start: number, end: number, parameters: GearParameters): number {
  const available = end - start
  if (available <= parameters.minSizeBytes) return available
  const limit = Math.min(available, parameters.maxSizeBytes)
  const normal = Math.min(limit, parameters.averageSizeBytes)
  const bits = Math.log2(parameters.averageSizeBytes)
  const hardMask = topBitsMask(bits + normalizationBits)
  const easyMask = topBitsMask(bits - normalizationBits)
  const table = gearTable
  let hash = 0
  let index = start + parameters.minSizeBytes
  const normalEnd = start + normal
  const limitEnd = start + limit
  for (; index < normalEnd; index++) {
    hash = ((hash << 1) + table[data[index]!]!) | 0
    if ((hash & hardMask) === 0) return index + 1 - start
  }
  for (; index < limitEnd; index++) {
    hash = ((hash << 1) + table[data[index]!]!) | 0
    if ((hash & easyMask) === 0) return index + 1 - start
  }
  return limit
}
