// Content-defined chunking: deterministic, within its size bounds, and resilient to an insertion
// (the property that makes it worth its cost over fixed chunks for non-memory files).
import { describe, expect, it } from 'vitest'
import { chunkLengths, defaultChunkingPolicy, type ChunkingMethod } from './chunking.ts'
import { chunkHashOf } from './hash.ts'
import { seededBytes } from './synthetic-image.ts'

const gear: ChunkingMethod = { kind: 'gear', ...defaultChunkingPolicy.gear }

function chunkHashes(data: Uint8Array): string[] {
  const hashes: string[] = []
  let offset = 0
  for (const length of chunkLengths(data, gear)) {
    hashes.push(chunkHashOf(data.subarray(offset, offset + length)))
    offset += length
  }
  return hashes
}

describe('gear chunker', () => {
  const data = seededBytes('gear-test', 4 * 1024 * 1024)

  it('cuts the same bytes the same way, covering them exactly, within min and max', () => {
    const first = chunkLengths(data, gear)
    expect(chunkLengths(Buffer.from(data), gear)).toEqual(first)
    expect(first.reduce((sum, length) => sum + length, 0)).toBe(data.length)
    for (const length of first.slice(0, -1)) {
      expect(length).toBeGreaterThanOrEqual(defaultChunkingPolicy.gear.minSizeBytes)
      expect(length).toBeLessThanOrEqual(defaultChunkingPolicy.gear.maxSizeBytes)
    }
    // Normalized chunking keeps the mean near the target average.
    const mean = data.length / first.length
    expect(mean).toBeGreaterThan(defaultChunkingPolicy.gear.averageSizeBytes * 0.7)
    expect(mean).toBeLessThan(defaultChunkingPolicy.gear.averageSizeBytes * 1.5)
  })

  it('keeps almost every chunk when bytes are inserted in the middle (fixed chunks would lose half)', () => {
    const middle = data.length / 2
    const edited = Buffer.concat([data.subarray(0, middle), Buffer.from('inserted bytes shift everything after them'), data.subarray(middle)])
    const before = new Set(chunkHashes(data))
    const after = chunkHashes(edited)
    const shared = after.filter((hash) => before.has(hash)).length
    expect(after.length - shared).toBeLessThanOrEqual(3)
  })

  it('has a pinned boundary for a pinned input (the gear table is part of the format)', () => {
    const lengths = chunkLengths(seededBytes('gear-pinned', 256 * 1024), gear)
    expect(lengths.slice(0, 4)).toMatchInlineSnapshot(`
      [
        4504,
        17272,
        21225,
        16739,
      ]
    `)
  })
})
