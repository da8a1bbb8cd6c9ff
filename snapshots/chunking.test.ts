// The streaming file chunker cuts exactly as the in-memory one, across its read blocks, and
// memory images get fixed page-aligned chunks.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { chunkFile, chunkLengths, chunkReadBlockBytes, chunkingFor, defaultChunkingPolicy, pageSizeBytes } from './chunking.ts'
import { seededBytes } from './synthetic-image.ts'

const directory = await mkdtemp(join(tmpdir(), 'fabric-chunking-'))
afterAll(() => rm(directory, { recursive: true, force: true }))

describe('chunking', () => {
  // Two and a half read blocks, and not a multiple of any chunk size.
  const data = seededBytes('chunking', chunkReadBlockBytes * 2 + chunkReadBlockBytes / 2 + 12_345)

  it('streams a file into the same gear chunks as cutting it in memory', async () => {
    const path = join(directory, 'core-1.img')
    await writeFile(path, data)
    const method = chunkingFor(path, defaultChunkingPolicy)
    expect(method.kind).toBe('gear')
    const streamed: number[] = []
    let expectedOffset = 0
    for await (const chunk of chunkFile(path, method)) {
      expect(chunk.offset).toBe(expectedOffset)
      expect(Buffer.compare(chunk.bytes, data.subarray(chunk.offset, chunk.offset + chunk.bytes.length))).toBe(0)
      streamed.push(chunk.bytes.length)
      expectedOffset += chunk.bytes.length
    }
    expect(streamed).toEqual(chunkLengths(data, method))
  })

  it('cuts pages-*.img into fixed chunks at page multiples, the last one short', async () => {
    const path = join(directory, 'pages-7.img')
    await writeFile(path, data)
    const method = chunkingFor(path, defaultChunkingPolicy)
    expect(method).toEqual({ kind: 'fixed', sizeBytes: defaultChunkingPolicy.pageChunkBytes })
    const offsets: number[] = []
    for await (const chunk of chunkFile(path, method)) offsets.push(chunk.offset)
    expect(offsets.every((offset) => offset % pageSizeBytes === 0 && offset % defaultChunkingPolicy.pageChunkBytes === 0)).toBe(true)
    expect(offsets.length).toBe(Math.ceil(data.length / defaultChunkingPolicy.pageChunkBytes))
  })

  it('yields nothing for an empty file', async () => {
    const path = join(directory, 'empty.img')
    await writeFile(path, '')
    const chunks = []
    for await (const chunk of chunkFile(path, chunkingFor(path, defaultChunkingPolicy))) chunks.push(chunk)
    expect(chunks).toEqual([])
  })
})
