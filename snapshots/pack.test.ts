// Packing and materializing on real files and a real level store: a snapshot comes back
// byte-identical (contents, permission bits, nested directories, empty and duplicate files), and
// a second checkpoint that changed a few pages writes only the chunks that changed.
import { cp, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ChunkStore } from './chunk-store.ts'
import { defaultChunkingPolicy, pageSizeBytes } from './chunking.ts'
import { SnapshotIncompleteError, TargetExistsError, UnsupportedEntryError } from './errors.ts'
import { materializeSnapshot } from './materialize.ts'
import { packDirectory } from './pack.ts'
import { memoryImageName, mutateImage, seededBytes, writeSyntheticImage } from './synthetic-image.ts'

const root = await mkdtemp(join(tmpdir(), 'fabric-pack-'))
afterAll(() => rm(root, { recursive: true, force: true }))

/** path -> kind, permission bits and size, for every entry under `directory` (contents compared apart). */
async function describeTree(directory: string, relative = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(join(directory, relative))).sort()) {
    const path = relative === '' ? name : `${relative}/${name}`
    const stats = await stat(join(directory, path))
    const mode = (stats.mode & 0o777).toString(8)
    if (stats.isDirectory()) {
      out[path] = `dir ${mode}`
      Object.assign(out, await describeTree(directory, path))
    } else {
      out[path] = `file ${mode} ${stats.size}`
    }
  }
  return out
}

async function sameBytes(a: string, b: string, relative: string): Promise<boolean> {
  return (await readFile(join(a, relative))).equals(await readFile(join(b, relative)))
}

describe('pack and materialize', () => {
  it('materializes a directory byte-identical to the one packed', async () => {
    const source = join(root, 'source')
    await writeSyntheticImage(source, { memoryBytes: 3 * 1024 * 1024 + 3 * pageSizeBytes, seed: 'pack' })
    await mkdir(join(source, 'nested/deeper'), { recursive: true })
    await writeFile(join(source, 'nested/deeper/empty.img'), '')
    await writeFile(join(source, 'nested/copy-of-core.img'), await readFile(join(source, 'core-1.img')))
    await writeFile(join(source, 'nested/script.sh'), '#!/bin/sh\necho restored\n')
    await chmod(join(source, 'nested/script.sh'), 0o750)
    await writeFile(join(source, 'odd-size.bin'), seededBytes('odd', 200_001))
    await chmod(join(source, 'nested/deeper'), 0o700)

    const store = await ChunkStore.open({ directory: join(root, 'store-identical') })
    const packed = await packDirectory(source, store, { owner: 'job-1' })
    expect(packed.chunksWritten).toBe(packed.distinctChunks)
    const target = join(root, 'restored')
    await materializeSnapshot(store, packed.cid, target)
    const expected = await describeTree(source)
    expect(await describeTree(target)).toEqual(expected)
    for (const [path, kind] of Object.entries(expected)) if (kind.startsWith('file')) expect(await sameBytes(source, target, path), path).toBe(true)
    await expect(materializeSnapshot(store, packed.cid, target)).rejects.toBeInstanceOf(TargetExistsError)
    // Packing the same directory again is the same CID and writes nothing.
    const again = await packDirectory(source, store, { owner: 'job-1' })
    expect(again.cid).toBe(packed.cid)
    expect(again.chunksWritten).toBe(0)
    await store.close()
  })

  it('writes only the changed chunks for a second checkpoint of a barely changed memory image', async () => {
    const first = join(root, 'checkpoint-1')
    const second = join(root, 'checkpoint-2')
    await writeSyntheticImage(first, { memoryBytes: 8 * 1024 * 1024, seed: 'incremental' })
    await cp(first, second, { recursive: true })
    const { pagesChanged } = await mutateImage(second, { seed: 'incremental-2', changedFraction: 0.02, runPages: 4 })
    const store = await ChunkStore.open({ directory: join(root, 'store-incremental') })
    const one = await packDirectory(first, store, { owner: 'job-1' })
    const two = await packDirectory(second, store, { owner: 'job-1' })
    expect(two.cid).not.toBe(one.cid)
    const pagesPerChunk = defaultChunkingPolicy.pageChunkBytes / pageSizeBytes
    // At most every dirty page in a chunk of its own (plus the small metadata images).
    expect(two.bytesWritten).toBeLessThanOrEqual(pagesChanged * pagesPerChunk * pageSizeBytes + 64 * 1024)
    expect(two.bytesWritten).toBeLessThan(one.bytesWritten * 0.1)
    // The first snapshot released: the chunks only it named go, the second still materializes whole.
    const released = await store.release(one.cid, 'job-1')
    expect(released.chunksDeleted).toBeGreaterThan(0)
    await materializeSnapshot(store, two.cid, join(root, 'restored-2'))
    expect(await sameBytes(second, join(root, 'restored-2'), memoryImageName)).toBe(true)
    await store.close()
  })

  it('refuses what a snapshot cannot hold, and materializing an incomplete snapshot', async () => {
    const source = join(root, 'with-link')
    await mkdir(source)
    await writeFile(join(source, 'a.img'), 'a')
    await symlink('a.img', join(source, 'link.img'))
    const store = await ChunkStore.open({ directory: join(root, 'store-refusals') })
    await expect(packDirectory(source, store, { owner: 'job-1' })).rejects.toBeInstanceOf(UnsupportedEntryError)
    const { cid } = await store.pin({ format: 'fabric-snapshot/1', entries: [{ kind: 'file', path: 'x', mode: 0o600, sizeBytes: 1, chunking: 'test', chunks: [['0'.repeat(64) as never, 1]] }] }, 'job-1')
    await expect(materializeSnapshot(store, cid, join(root, 'never'))).rejects.toBeInstanceOf(SnapshotIncompleteError)
    await expect(stat(join(root, 'never'))).rejects.toThrow()
    await store.close()
  })
})
