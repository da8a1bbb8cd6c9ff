// The chunk store on a real level database: it stores only verified chunks that a pinned manifest
// names, counts references per manifest, and deletes what no snapshot needs when one is released.
// Chunk bytes live in pack files beside the index: a pack goes when no chunk in it is needed, a pack
// cut short by a crash costs only its chunks (fetched again), and an older store is moved into packs.
import { mkdtemp, readdir, rm, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { ChunkStore, copyVerifiedChunk, verifyChunk } from './chunk-store.ts'
import { ChunkHashMismatchError, InvalidManifestError, UnreferencedChunkError } from './errors.ts'
import { chunkHashOf } from './hash.ts'
import { manifestFormat, type Manifest } from './manifest.ts'
import { decodeChunkLocation } from './pack-files.ts'

const root = await mkdtemp(join(tmpdir(), 'fabric-chunk-store-'))
afterAll(() => rm(root, { recursive: true, force: true }))

const bytes = { shared: Buffer.from('shared chunk'), first: Buffer.from('only in the first'), second: Buffer.from('only in the second') }
const hash = { shared: chunkHashOf(bytes.shared), first: chunkHashOf(bytes.first), second: chunkHashOf(bytes.second) }

function manifestOf(name: string, parts: (keyof typeof bytes)[]): Manifest {
  const chunks = parts.map((part) => [hash[part], bytes[part].length] as const)
  return { format: manifestFormat, entries: [{ kind: 'file', path: name, mode: 0o600, sizeBytes: chunks.reduce((sum, [, size]) => sum + size, 0), chunking: 'test', chunks }] }
}
const first = manifestOf('first.img', ['shared', 'first', 'shared'])
const second = manifestOf('second.img', ['shared', 'second'])

let directory: string
let counter = 0
beforeEach(() => {
  directory = join(root, `store-${counter++}`)
})

describe('chunk store', () => {
  it('refuses a chunk whose bytes do not match its hash, and one no pinned manifest names', async () => {
    const store = await ChunkStore.open({ directory })
    await expect(store.putChunks([{ hash: hash.first, bytes: bytes.first }])).rejects.toBeInstanceOf(UnreferencedChunkError)
    await store.pin(first, 'job-1')
    await expect(store.putChunks([{ hash: hash.first, bytes: bytes.second }])).rejects.toBeInstanceOf(ChunkHashMismatchError)
    // All or nothing: the good chunk in a batch with a bad one is not stored either.
    await expect(store.putChunks([{ hash: hash.shared, bytes: bytes.shared }, { hash: hash.first, bytes: bytes.second }])).rejects.toBeInstanceOf(ChunkHashMismatchError)
    expect((await store.stats()).chunks).toBe(0)
    await store.putChunks([{ hash: hash.first, bytes: bytes.first }])
    expect(Buffer.from((await store.getChunk(hash.first))!).equals(bytes.first)).toBe(true)
    // A fetch verifies on arrival; the store takes that chunk as verified, and nothing else.
    expect(verifyChunk(hash.shared, bytes.second)).toBeNull()
    await store.putChunks([verifyChunk(hash.shared, bytes.shared)!])
    expect(await store.hasChunk(hash.shared)).toBe(true)
    await store.close()
  })

  it('counts references per manifest and deletes a chunk only when its last manifest is released', async () => {
    const store = await ChunkStore.open({ directory })
    const { cid: firstCid } = await store.pin(first, 'job-1')
    const { cid: secondCid } = await store.pin(second, 'job-2')
    await store.putChunks(Object.keys(bytes).map((part) => ({ hash: hash[part as keyof typeof bytes], bytes: bytes[part as keyof typeof bytes] })))
    expect(await store.referenceCount(hash.shared)).toBe(2)
    expect(await store.referenceCount(hash.first)).toBe(1)

    expect(await store.release(firstCid, 'job-1')).toEqual({ manifestDeleted: true, chunksDeleted: 1 })
    expect(await store.hasChunk(hash.first)).toBe(false)
    expect(await store.hasChunk(hash.shared)).toBe(true)
    expect(await store.referenceCount(hash.shared)).toBe(1)
    expect(await store.manifest(firstCid)).toBeUndefined()

    expect(await store.release(secondCid, 'job-2')).toEqual({ manifestDeleted: true, chunksDeleted: 2 })
    expect(await store.stats()).toEqual({ manifests: 0, pins: 0, chunks: 0, chunkBytes: 0 })
    await store.close()
  })

  it('keeps a snapshot while any owner pins it; pinning twice is one pin', async () => {
    const store = await ChunkStore.open({ directory })
    const { cid, stored } = await store.pin(first, 'job-1')
    expect(stored).toBe(true)
    expect((await store.pin(first, 'job-1')).stored).toBe(false)
    await store.pin(first, 'replica-of-job-1')
    expect(await store.owners(cid)).toEqual(['job-1', 'replica-of-job-1'])
    expect(await store.referenceCount(hash.shared)).toBe(1)
    expect((await store.release(cid, 'job-1')).manifestDeleted).toBe(false)
    expect(await store.manifest(cid)).toEqual(first)
    expect((await store.release(cid, 'replica-of-job-1')).manifestDeleted).toBe(true)
    expect(await store.release(cid, 'replica-of-job-1')).toEqual({ manifestDeleted: false, chunksDeleted: 0 })
    await store.close()
  })

  it('refuses a malformed manifest and stores nothing for it', async () => {
    const store = await ChunkStore.open({ directory })
    await expect(store.pin(new TextEncoder().encode('{"format":"fabric-snapshot/1","entries":[{"kind":"file"}]}'), 'job-1')).rejects.toBeInstanceOf(InvalidManifestError)
    expect(await store.stats()).toEqual({ manifests: 0, pins: 0, chunks: 0, chunkBytes: 0 })
    await store.close()
  })

  it('survives a reopen, and collects a chunk no manifest names at open', async () => {
    let store = await ChunkStore.open({ directory })
    const { cid } = await store.pin(first, 'job-1')
    await store.putChunks([{ hash: hash.first, bytes: bytes.first }])
    await store.close()
    // An orphan written behind the store's back (as a crash between two writes could leave).
    const raw = new Level<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' })
    await raw.put(`c/${hash.second}`, bytes.second)
    await raw.close()
    store = await ChunkStore.open({ directory })
    expect(await store.hasChunk(hash.second)).toBe(false)
    expect(await store.hasChunk(hash.first)).toBe(true)
    expect(await store.owners(cid)).toEqual(['job-1'])
    expect(await store.missingChunks([hash.shared, hash.first])).toEqual([hash.shared])
    await store.close()
  })
  it('keeps chunk bytes in pack files and removes a pack once none of its chunks is needed', async () => {
    const store = await ChunkStore.open({ directory })
    const packs = (): Promise<string[]> => readdir(join(directory, 'packs'))
    const { cid: firstCid } = await store.pin(first, 'job-1')
    const { cid: secondCid } = await store.pin(second, 'job-2')
    await store.putChunks([{ hash: hash.shared, bytes: bytes.shared }, { hash: hash.first, bytes: bytes.first }])
    // Written again (another fetch racing this one): the first copy stays, no second pack is kept.
    await store.putChunks([{ hash: hash.shared, bytes: bytes.shared }])
    await store.putChunks([{ hash: hash.second, bytes: bytes.second }])
    expect(await packs()).toHaveLength(2)
    // A chunk asked for twice in one call is read once: both answers are the same bytes.
    const [one, other, again] = await store.getChunks([hash.shared, hash.first, hash.shared])
    expect(Buffer.from(one!).equals(bytes.shared) && Buffer.from(other!).equals(bytes.first)).toBe(true)
    expect(again).toBe(one)
    expect((await store.stats()).chunkBytes).toBe(bytes.shared.length + bytes.first.length + bytes.second.length)
    await store.release(firstCid, 'job-1')
    // The first pack still holds the shared chunk.
    expect(await packs()).toHaveLength(2)
    expect(Buffer.from((await store.getChunk(hash.shared))!).equals(bytes.shared)).toBe(true)
    await store.release(secondCid, 'job-2')
    expect(await packs()).toEqual([])
    await store.close()
  })

  it('forgets chunks whose pack was cut short by a crash, so they are fetched again', async () => {
    let store = await ChunkStore.open({ directory })
    await store.pin(first, 'job-1')
    await store.putChunks([{ hash: hash.shared, bytes: bytes.shared }, { hash: hash.first, bytes: bytes.first }])
    await store.close()
    const raw = new Level<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' })
    const location = decodeChunkLocation((await raw.get(`c/${hash.first}`))!)!
    await raw.close()
    // The chunk written second lost its last byte (an OS crash before the page cache reached the disk).
    await truncate(join(directory, 'packs', `${location.pack}.pack`), location.offset + location.length - 1)
    store = await ChunkStore.open({ directory })
    expect(await store.missingChunks([hash.shared, hash.first])).toEqual([hash.first])
    expect(await store.getChunk(hash.first)).toBeUndefined()
    await store.putChunks([{ hash: hash.first, bytes: bytes.first }])
    expect(await store.corruptChunks()).toEqual([])
    await store.close()
  })

  it('moves the chunk bytes of a store written before pack files into packs at open', async () => {
    let store = await ChunkStore.open({ directory })
    await store.pin(first, 'job-1')
    await store.close()
    // The earlier layout: chunk bytes as level values, no format mark.
    const raw = new Level<string, Uint8Array>(directory, { keyEncoding: 'utf8', valueEncoding: 'view' })
    await raw.batch([{ type: 'put', key: `c/${hash.shared}`, value: bytes.shared }, { type: 'put', key: `c/${hash.first}`, value: bytes.first }, { type: 'del', key: 'format' }])
    await raw.close()
    store = await ChunkStore.open({ directory })
    expect(Buffer.from((await store.getChunk(hash.first))!).equals(bytes.first)).toBe(true)
    expect(Buffer.from((await store.getChunk(hash.shared))!).equals(bytes.shared)).toBe(true)
    expect(await readdir(join(directory, 'packs'))).toHaveLength(1)
    expect(await store.corruptChunks()).toEqual([])
    await store.close()
  })

  it('copies a verified chunk into a staging buffer as verified, and refuses an unverified one', async () => {
    const store = await ChunkStore.open({ directory })
    await store.pin(first, 'job-1')
    const staging = new Uint8Array(64)
    const copy = copyVerifiedChunk(verifyChunk(hash.first, bytes.first)!, staging.subarray(0, bytes.first.length))
    expect(copy.bytes.buffer).toBe(staging.buffer)
    expect(() => copyVerifiedChunk({ hash: hash.shared, bytes: bytes.shared }, staging.subarray(0, bytes.shared.length))).toThrow(/only chunks from verifyChunk/)
    await store.putChunks([copy])
    expect(Buffer.from((await store.getChunk(hash.first))!).equals(bytes.first)).toBe(true)
    await store.close()
  })
})
