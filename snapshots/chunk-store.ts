// The node's snapshot store: chunks by BLAKE3 hash, manifests by CID, in one level database.
// Reference counting: a manifest is kept while at least one owner (a job id, a replication
// duty) pins it; each chunk counts the stored manifests that name it and is deleted when that
// count reaches zero. A chunk is accepted only when its bytes hash to its name and a pinned
// manifest names it, so nothing unreferenced or unverified is ever stored. A manifest can be
// pinned before its chunks arrive (a fetch in progress); `missingChunks` says what is left.
// Chunk bytes live in append-only pack files (pack-files.ts); level holds where each one is.
import { join } from 'node:path'
import { Level } from 'level'
import { cidDigest, type Cid } from './cid.ts'
import { ChunkHashMismatchError, InvalidManifestError, UnreferencedChunkError } from './errors.ts'
import { chunkHashOf, type ChunkHash } from './hash.ts'
import { decodeManifest, distinctChunks, encodeManifest, manifestCid, type Manifest } from './manifest.ts'
import { decodeChunkLocation, encodeChunkLocation, PackFiles, type ChunkLocation } from './pack-files.ts'

export const chunkStoreDirectoryName = 'snapshots.level'
/** Owner names are job ids or duty names; bounded so a pin key stays small. */
export const maxOwnerLength = 256
/** Keys asked of level in one getMany/hasMany call (bounds one call's memory). */
const lookupBatchSize = 8_192

const keys = {
  chunk: (hash: ChunkHash) => `c/${hash}`,
  references: (hash: ChunkHash) => `r/${hash}`,
  manifest: (cid: Cid) => `m/${cidDigest(cid).toString('hex')}`,
  pinPrefix: (cid: Cid) => `p/${cidDigest(cid).toString('hex')}/`,
  /** Live chunks in one pack file. */
  pack: (pack: number) => `k/${String(pack).padStart(10, '0')}`,
} as const
const packPrefix = 'k/'
/** Marks a store whose `c/` values are pack locations (earlier stores held the chunk bytes there). */
const formatKey = 'format'
const packFormat = 'packs/1'
const chunkPrefix = 'c/'
const referencePrefix = 'r/'
const manifestPrefix = 'm/'
/** Exclusive upper bound of a prefix scan: the prefix with its last character incremented. */
const prefixEnd = (prefix: string): string => prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)

export interface ChunkStoreInit {
  /** The directory holding the level database (created if missing). */
  directory: string
  /** fsync manifest and pin changes (default true). Chunk writes are not synced: a chunk lost in a crash is missing, and fetched again. */
  syncWrites?: boolean
  /** Delete chunks no manifest names at open (left by a crash between a release's steps); default true. */
  collectGarbageOnOpen?: boolean
}

export interface StoredChunk { hash: ChunkHash; bytes: Uint8Array }

/** Chunks checked by `verifyChunk`: putChunks takes them without hashing them a second time. */
const verifiedChunks = new WeakSet<StoredChunk>()

/** The chunk if `bytes` hash to `hash`, else null. A fetch verifies each chunk as it arrives (to blame the holder) and hands the result on. */
export function verifyChunk(hash: ChunkHash, bytes: Uint8Array): StoredChunk | null {
  if (chunkHashOf(bytes) !== hash) return null
  const chunk = Object.freeze({ hash, bytes })
  verifiedChunks.add(chunk)
  return chunk
}

/**
 * A verified chunk's bytes copied to `target` (same length), still counted as verified: a fetch
 * gathers arrivals into one reusable buffer per store write, so the network's buffers die young.
 */
export function copyVerifiedChunk(chunk: StoredChunk, target: Uint8Array): StoredChunk {
  if (!verifiedChunks.has(chunk)) throw new Error('copyVerifiedChunk takes only chunks from verifyChunk')
  if (target.byteLength !== chunk.bytes.byteLength) throw new Error(`copyVerifiedChunk: target has ${target.byteLength} bytes, the chunk ${chunk.bytes.byteLength}`)
  target.set(chunk.bytes)
  const copy = Object.freeze({ hash: chunk.hash, bytes: target })
  verifiedChunks.add(copy)
  return copy
}

export interface ChunkStoreStats { manifests: number; pins: number; chunks: number; chunkBytes: number }

export class ChunkStore {
  readonly #db: Level<string, Uint8Array>
  readonly #packs: PackFiles
  readonly #syncWrites: boolean
  /** Pins, releases and chunk writes run one at a time: a release cannot interleave a write's reference check. */
  #exclusive: Promise<unknown> = Promise.resolve()
  #closed = false

  private constructor(db: Level<string, Uint8Array>, packs: PackFiles, syncWrites: boolean) {
    this.#db = db
    this.#packs = packs
    this.#syncWrites = syncWrites
  }

  static async open(init: ChunkStoreInit): Promise<ChunkStore> {
    // A larger write buffer than level's 4 MiB: chunks arrive at tens of MB/s in large batches.
    const db = new Level<string, Uint8Array>(init.directory, { keyEncoding: 'utf8', valueEncoding: 'view', writeBufferSize: 32 * 1024 * 1024 })
    await db.open()
    const packs = await PackFiles.open(init.directory)
    // A pack id the index names is never handed out again, even if its file is gone.
    for await (const key of db.keys({ gte: packPrefix, lt: prefixEnd(packPrefix) })) packs.reserveAbove(Number(key.slice(packPrefix.length)))
    const store = new ChunkStore(db, packs, init.syncWrites ?? true)
    await store.#moveChunkBytesToPacks()
    if (init.collectGarbageOnOpen ?? true) await store.collectGarbage()
    return store
  }

  /** The store inside a data directory, at its conventional name. */
  static directoryIn(dataDir: string): string {
    return join(dataDir, chunkStoreDirectoryName)
  }

  // ---- Manifests and pins

  /**
   * Stores the manifest (if new) and pins it for `owner`. Idempotent per (CID, owner). Accepts the
   * manifest's bytes (validated, canonical) or a manifest built locally.
   */
  async pin(manifest: Manifest | Uint8Array, owner: string): Promise<{ cid: Cid; manifest: Manifest; stored: boolean }> {
    checkOwner(owner)
    let bytes: Uint8Array
    let value: Manifest
    if (manifest instanceof Uint8Array) {
      const decoded = decodeManifest(manifest)
      if (!decoded.ok) throw new InvalidManifestError(decoded.reason)
      bytes = manifest
      value = decoded.value
    } else {
      bytes = encodeManifest(manifest)
      const decoded = decodeManifest(bytes)
      if (!decoded.ok) throw new InvalidManifestError(decoded.reason)
      value = manifest
    }
    const cid = manifestCid(value)
    return this.#serially(async () => {
      const pinKey = keys.pinPrefix(cid) + owner
      const operations: BatchOperation[] = [{ type: 'put', key: pinKey, value: empty }]
      const stored = (await this.#db.get(keys.manifest(cid))) === undefined
      if (stored) {
        operations.push({ type: 'put', key: keys.manifest(cid), value: bytes })
        const hashes = [...distinctChunks(value).keys()]
        const counts = await this.#referenceCounts(hashes)
        hashes.forEach((hash, index) => operations.push({ type: 'put', key: keys.references(hash), value: encodeCount(counts[index]! + 1) }))
      } else if ((await this.#db.get(pinKey)) !== undefined) {
        return { cid, manifest: value, stored: false }
      }
      await this.#db.batch(operations, { sync: this.#syncWrites })
      return { cid, manifest: value, stored }
    })
  }

  /**
   * Drops `owner`'s pin. When no pin is left the manifest is deleted, and every chunk it named
   * whose count reaches zero is deleted too, in the same atomic batch.
   */
  async release(cid: Cid, owner: string): Promise<{ manifestDeleted: boolean; chunksDeleted: number }> {
    checkOwner(owner)
    return this.#serially(async () => {
      const pinKey = keys.pinPrefix(cid) + owner
      if ((await this.#db.get(pinKey)) === undefined) return { manifestDeleted: false, chunksDeleted: 0 }
      const otherOwners = (await this.owners(cid)).filter((other) => other !== owner)
      const operations: BatchOperation[] = [{ type: 'del', key: pinKey }]
      let chunksDeleted = 0
      let emptied: number[] = []
      const bytes = await this.#db.get(keys.manifest(cid))
      if (otherOwners.length === 0 && bytes !== undefined) {
        const decoded = decodeManifest(bytes)
        if (!decoded.ok) throw new InvalidManifestError(`stored manifest ${cid}: ${decoded.reason}`)
        operations.push({ type: 'del', key: keys.manifest(cid) })
        const hashes = [...distinctChunks(decoded.value).keys()]
        const counts = await this.#referenceCounts(hashes)
        const doomed: ChunkHash[] = []
        hashes.forEach((hash, index) => {
          const count = counts[index]!
          if (count <= 1) {
            operations.push({ type: 'del', key: keys.references(hash) }, { type: 'del', key: keys.chunk(hash) })
            doomed.push(hash)
          } else {
            operations.push({ type: 'put', key: keys.references(hash), value: encodeCount(count - 1) })
          }
        })
        chunksDeleted = doomed.length
        emptied = await this.#packCountChanges(doomed, operations)
      }
      await this.#db.batch(operations, { sync: this.#syncWrites })
      // After the commit: a crash before these leaves files no count names, removed at the next open.
      for (const pack of emptied) await this.#packs.remove(pack)
      return { manifestDeleted: otherOwners.length === 0 && bytes !== undefined, chunksDeleted }
    })
  }

  async owners(cid: Cid): Promise<string[]> {
    const prefix = keys.pinPrefix(cid)
    const owners: string[] = []
    for await (const key of this.#db.keys({ gte: prefix, lt: prefixEnd(prefix) })) owners.push(key.slice(prefix.length))
    return owners
  }

  async manifestBytes(cid: Cid): Promise<Uint8Array | undefined> {
    return this.#db.get(keys.manifest(cid))
  }

  async manifest(cid: Cid): Promise<Manifest | undefined> {
    const bytes = await this.manifestBytes(cid)
    if (bytes === undefined) return undefined
    const decoded = decodeManifest(bytes)
    if (!decoded.ok) throw new InvalidManifestError(`stored manifest ${cid}: ${decoded.reason}`)
    return decoded.value
  }

  /** CIDs of every stored manifest. */
  async snapshots(): Promise<Cid[]> {
    const cids: Cid[] = []
    for await (const key of this.#db.keys({ gte: manifestPrefix, lt: prefixEnd(manifestPrefix) })) cids.push(`b3:${key.slice(manifestPrefix.length)}` as Cid)
    return cids
  }

  // ---- Chunks

  /** The hashes among `hashes` not stored here, in the given order. */
  async missingChunks(hashes: readonly ChunkHash[]): Promise<ChunkHash[]> {
    const missing: ChunkHash[] = []
    for (let start = 0; start < hashes.length; start += lookupBatchSize) {
      const slice = hashes.slice(start, start + lookupBatchSize)
      const present = await this.#db.hasMany(slice.map(keys.chunk))
      slice.forEach((hash, index) => {
        if (!present[index]) missing.push(hash)
      })
    }
    return missing
  }

  async hasChunk(hash: ChunkHash): Promise<boolean> {
    return this.#db.has(keys.chunk(hash))
  }

  /**
   * Stores chunks after checking each one's bytes against its hash and that a pinned manifest
   * names it. All or nothing: one bad chunk refuses the whole call.
   */
  async putChunks(chunks: readonly StoredChunk[]): Promise<{ written: number }> {
    for (const chunk of chunks) {
      if (verifiedChunks.has(chunk)) continue
      const actual = chunkHashOf(chunk.bytes)
      if (actual !== chunk.hash) throw new ChunkHashMismatchError(chunk.hash, actual)
    }
    // Each chunk's bytes once per call; the file is written before taking the store's turn (a new
    // pack is no one else's), and only the index update waits for it.
    const seen = new Set<ChunkHash>()
    const distinct = chunks.filter((chunk) => !seen.has(chunk.hash) && seen.add(chunk.hash) !== undefined)
    if (distinct.length === 0) return { written: 0 }
    if (this.#closed) throw new Error('the chunk store is closed')
    const locations = await this.#packs.write(distinct.map((chunk) => chunk.bytes))
    const pack = locations[0]!.pack
    try {
      return await this.#serially(async () => {
        const hashes = distinct.map((chunk) => chunk.hash)
        const [counts, present] = await Promise.all([this.#referenceCounts(hashes), this.#db.hasMany(hashes.map(keys.chunk))])
        const unreferenced = hashes.filter((_, index) => counts[index] === 0)
        if (unreferenced.length > 0) throw new UnreferencedChunkError(unreferenced)
        // A chunk stored meanwhile keeps its first copy; this pack's copy is dead space.
        const operations: BatchOperation[] = []
        distinct.forEach((chunk, index) => {
          if (!present[index]) operations.push({ type: 'put', key: keys.chunk(chunk.hash), value: encodeChunkLocation(locations[index]!) })
        })
        if (operations.length === 0) throw new AllPresent()
        operations.push({ type: 'put', key: keys.pack(pack), value: encodeCount(operations.length) })
        await this.#db.batch(operations)
        return { written: chunks.length }
      })
    } catch (error) {
      await this.#packs.remove(pack).catch(() => {})
      if (error instanceof AllPresent) return { written: chunks.length }
      throw error
    } finally {
      this.#packs.settle(pack)
    }
  }

  async getChunk(hash: ChunkHash): Promise<Uint8Array | undefined> {
    return (await this.getChunks([hash]))[0]
  }

  /** Bytes of each hash (undefined where not stored), unverified: callers that hand bytes on verify. */
  async getChunks(hashes: readonly ChunkHash[]): Promise<(Uint8Array | undefined)[]> {
    return this.#packs.read(await this.#locations(hashes))
  }

  /** References to `hash` (stored manifests naming it). */
  async referenceCount(hash: ChunkHash): Promise<number> {
    return (await this.#referenceCounts([hash]))[0]!
  }

  // ---- Maintenance

  /**
   * Deletes chunks no stored manifest names (a crash can leave them only through outside edits) and
   * index entries whose bytes are not in their pack (a pack cut short by a crash: chunk writes are
   * not fsynced, so such a chunk is just missing and fetched again), then recounts every pack and
   * removes pack files no chunk needs.
   */
  async collectGarbage(): Promise<{ chunksDeleted: number }> {
    return this.#serially(async () => {
      let chunksDeleted = 0
      const live = new Map<number, number>()
      const packSizes = new Map<number, number>()
      let batch: [string, Uint8Array][] = []
      const flush = async (): Promise<void> => {
        const counts = await this.#db.getMany(batch.map(([hash]) => `${referencePrefix}${hash}`))
        const doomed: string[] = []
        for (const [index, [hash, value]] of batch.entries()) {
          const location = counts[index] === undefined ? null : decodeChunkLocation(value)
          if (location !== null) {
            if (!packSizes.has(location.pack)) packSizes.set(location.pack, await this.#packs.sizeOf(location.pack))
            if (location.offset + location.length <= packSizes.get(location.pack)!) {
              live.set(location.pack, (live.get(location.pack) ?? 0) + 1)
              continue
            }
          }
          doomed.push(hash)
        }
        if (doomed.length > 0) await this.#db.batch(doomed.map((hash) => ({ type: 'del' as const, key: `${chunkPrefix}${hash}` })))
        chunksDeleted += doomed.length
        batch = []
      }
      for await (const [key, value] of this.#db.iterator({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
        batch.push([key.slice(chunkPrefix.length), value])
        if (batch.length >= lookupBatchSize) await flush()
      }
      if (batch.length > 0) await flush()
      const operations: BatchOperation[] = []
      for await (const key of this.#db.keys({ gte: packPrefix, lt: prefixEnd(packPrefix) })) {
        if (!live.has(Number(key.slice(packPrefix.length)))) operations.push({ type: 'del', key })
      }
      for (const [pack, count] of live) operations.push({ type: 'put', key: keys.pack(pack), value: encodeCount(count) })
      await this.#db.batch(operations, { sync: this.#syncWrites })
      for (const pack of await this.#packs.list()) if (!live.has(pack) && !this.#packs.isUnsettled(pack)) await this.#packs.remove(pack)
      return { chunksDeleted }
    })
  }

  /** Re-hashes every stored chunk; returns the names of those whose bytes no longer match (or are gone). */
  async corruptChunks(): Promise<ChunkHash[]> {
    const corrupt: ChunkHash[] = []
    let batch: ChunkHash[] = []
    const check = async (): Promise<void> => {
      const values = await this.getChunks(batch)
      batch.forEach((hash, index) => {
        const value = values[index]
        if (value === undefined || chunkHashOf(value) !== hash) corrupt.push(hash)
      })
      batch = []
    }
    for await (const key of this.#db.keys({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
      batch.push(key.slice(chunkPrefix.length) as ChunkHash)
      if (batch.length >= 256) await check()
    }
    if (batch.length > 0) await check()
    return corrupt
  }

  async stats(): Promise<ChunkStoreStats> {
    const stats: ChunkStoreStats = { manifests: 0, pins: 0, chunks: 0, chunkBytes: 0 }
    for await (const key of this.#db.keys({ gte: manifestPrefix, lt: prefixEnd(manifestPrefix) })) if (key) stats.manifests++
    for await (const key of this.#db.keys({ gte: 'p/', lt: prefixEnd('p/') })) if (key) stats.pins++
    for await (const value of this.#db.values({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
      stats.chunks++
      stats.chunkBytes += decodeChunkLocation(value)?.length ?? 0
    }
    return stats
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#exclusive.catch(() => {})
    await this.#packs.closeAll()
    await this.#db.close()
  }

  async #locations(hashes: readonly ChunkHash[]): Promise<(ChunkLocation | undefined)[]> {
    const values = await this.#db.getMany(hashes.map(keys.chunk))
    return values.map((value) => (value === undefined ? undefined : decodeChunkLocation(value) ?? undefined))
  }

  /** Adds to `operations` the pack count changes for deleting `doomed`; returns the packs left empty. */
  async #packCountChanges(doomed: readonly ChunkHash[], operations: BatchOperation[]): Promise<number[]> {
    const dropped = new Map<number, number>()
    for (let start = 0; start < doomed.length; start += lookupBatchSize) {
      for (const location of await this.#locations(doomed.slice(start, start + lookupBatchSize))) {
        if (location !== undefined) dropped.set(location.pack, (dropped.get(location.pack) ?? 0) + 1)
      }
    }
    const packs = [...dropped.keys()]
    const counts = await this.#db.getMany(packs.map(keys.pack))
    const emptied: number[] = []
    packs.forEach((pack, index) => {
      const left = (counts[index] === undefined ? 0 : decodeCount(counts[index]!)) - dropped.get(pack)!
      if (left > 0) {
        operations.push({ type: 'put', key: keys.pack(pack), value: encodeCount(left) })
      } else {
        operations.push({ type: 'del', key: keys.pack(pack) })
        emptied.push(pack)
      }
    })
    return emptied
  }

  /**
   * Stores written before pack files kept chunk bytes as `c/` values: each such value (it hashes to
   * its key) moves into a pack, in batches, so an interrupted move resumes at the next open.
   */
  async #moveChunkBytesToPacks(): Promise<void> {
    const format = await this.#db.get(formatKey)
    if (format !== undefined && new TextDecoder().decode(format) === packFormat) return
    let batch: StoredChunk[] = []
    let batchBytes = 0
    const move = async (): Promise<void> => {
      const locations = await this.#packs.write(batch.map((chunk) => chunk.bytes))
      const operations: BatchOperation[] = batch.map((chunk, index) => ({ type: 'put', key: keys.chunk(chunk.hash), value: encodeChunkLocation(locations[index]!) }))
      operations.push({ type: 'put', key: keys.pack(locations[0]!.pack), value: encodeCount(batch.length) })
      await this.#db.batch(operations, { sync: true })
      this.#packs.settle(locations[0]!.pack)
      batch = []
      batchBytes = 0
    }
    for await (const [key, value] of this.#db.iterator({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
      const hash = key.slice(chunkPrefix.length) as ChunkHash
      if (chunkHashOf(value) !== hash) continue
      batch.push({ hash, bytes: value })
      batchBytes += value.byteLength
      if (batchBytes >= 16 * 1024 * 1024) await move()
    }
    if (batch.length > 0) await move()
    await this.#db.put(formatKey, new TextEncoder().encode(packFormat), { sync: true })
  }

  async #referenceCounts(hashes: readonly ChunkHash[]): Promise<number[]> {
    const counts: number[] = []
    for (let start = 0; start < hashes.length; start += lookupBatchSize) {
      const values = await this.#db.getMany(hashes.slice(start, start + lookupBatchSize).map(keys.references))
      for (const value of values) counts.push(value === undefined ? 0 : decodeCount(value))
    }
    return counts
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the chunk store is closed'))
    const run = this.#exclusive.then(task, task)
    this.#exclusive = run.catch(() => {})
    return run
  }
}

/** Every chunk of a write was stored already: its pack file is dropped. */
class AllPresent extends Error {}

type BatchOperation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

const empty = new Uint8Array(0)
const encodeCount = (count: number): Uint8Array => new TextEncoder().encode(String(count))
const decodeCount = (bytes: Uint8Array): number => Number(new TextDecoder().decode(bytes))

function checkOwner(owner: string): void {
  if (owner.length === 0 || owner.length > maxOwnerLength || owner.includes('\0')) {
    throw new Error(`a pin owner is 1 to ${maxOwnerLength} characters without NUL, got ${JSON.stringify(owner.slice(0, 40))}`)
  }
}
