// The node's snapshot store: chunks by BLAKE3 hash, manifests by CID, in one level database.
// Reference counting: a manifest is kept while at least one owner (a job id, a replication
// duty) pins it; each chunk counts the stored manifests that name it and is deleted when that
// count reaches zero. A chunk is accepted only when its bytes hash to its name and a pinned
// manifest names it, so nothing unreferenced or unverified is ever stored. A manifest can be
// pinned before its chunks arrive (a fetch in progress); `missingChunks` says what is left.
import { join } from 'node:path'
import { Level } from 'level'
import { cidDigest, type Cid } from './cid.ts'
import { ChunkHashMismatchError, InvalidManifestError, UnreferencedChunkError } from './errors.ts'
import { chunkHashOf, type ChunkHash } from './hash.ts'
import { decodeManifest, distinctChunks, encodeManifest, manifestCid, type Manifest } from './manifest.ts'

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
} as const
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

export interface ChunkStoreStats { manifests: number; pins: number; chunks: number; chunkBytes: number }

export class ChunkStore {
  readonly #db: Level<string, Uint8Array>
  readonly #syncWrites: boolean
  /** Pins, releases and chunk writes run one at a time: a release cannot interleave a write's reference check. */
  #exclusive: Promise<unknown> = Promise.resolve()
  #closed = false

  private constructor(db: Level<string, Uint8Array>, syncWrites: boolean) {
    this.#db = db
    this.#syncWrites = syncWrites
  }

  static async open(init: ChunkStoreInit): Promise<ChunkStore> {
    // A larger write buffer than level's 4 MiB: chunks arrive at tens of MB/s in large batches.
    const db = new Level<string, Uint8Array>(init.directory, { keyEncoding: 'utf8', valueEncoding: 'view', writeBufferSize: 32 * 1024 * 1024 })
    await db.open()
    const store = new ChunkStore(db, init.syncWrites ?? true)
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
      const bytes = await this.#db.get(keys.manifest(cid))
      if (otherOwners.length === 0 && bytes !== undefined) {
        const decoded = decodeManifest(bytes)
        if (!decoded.ok) throw new InvalidManifestError(`stored manifest ${cid}: ${decoded.reason}`)
        operations.push({ type: 'del', key: keys.manifest(cid) })
        const hashes = [...distinctChunks(decoded.value).keys()]
        const counts = await this.#referenceCounts(hashes)
        hashes.forEach((hash, index) => {
          const count = counts[index]!
          if (count <= 1) {
            operations.push({ type: 'del', key: keys.references(hash) }, { type: 'del', key: keys.chunk(hash) })
            chunksDeleted++
          } else {
            operations.push({ type: 'put', key: keys.references(hash), value: encodeCount(count - 1) })
          }
        })
      }
      await this.#db.batch(operations, { sync: this.#syncWrites })
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
    return this.#serially(async () => {
      const hashes = chunks.map((chunk) => chunk.hash)
      const counts = await this.#referenceCounts(hashes)
      const unreferenced = hashes.filter((_, index) => counts[index] === 0)
      if (unreferenced.length > 0) throw new UnreferencedChunkError(unreferenced)
      await this.#db.batch(chunks.map((chunk) => ({ type: 'put' as const, key: keys.chunk(chunk.hash), value: chunk.bytes })))
      return { written: chunks.length }
    })
  }

  async getChunk(hash: ChunkHash): Promise<Uint8Array | undefined> {
    return this.#db.get(keys.chunk(hash))
  }

  /** Bytes of each hash (undefined where not stored), unverified: callers that hand bytes on verify. */
  async getChunks(hashes: readonly ChunkHash[]): Promise<(Uint8Array | undefined)[]> {
    // Chunks are read once per transfer: kept out of level's small block cache (the OS caches the files).
    return this.#db.getMany(hashes.map(keys.chunk), { fillCache: false })
  }

  /** References to `hash` (stored manifests naming it). */
  async referenceCount(hash: ChunkHash): Promise<number> {
    return (await this.#referenceCounts([hash]))[0]!
  }

  // ---- Maintenance

  /** Deletes chunks no stored manifest names (a crash can leave them only through outside edits). */
  async collectGarbage(): Promise<{ chunksDeleted: number }> {
    return this.#serially(async () => {
      let chunksDeleted = 0
      let batch: string[] = []
      const flush = async (): Promise<void> => {
        const counts = await this.#db.getMany(batch.map((hash) => `${referencePrefix}${hash}`))
        const doomed = batch.filter((_, index) => counts[index] === undefined)
        if (doomed.length > 0) await this.#db.batch(doomed.map((hash) => ({ type: 'del' as const, key: `${chunkPrefix}${hash}` })))
        chunksDeleted += doomed.length
        batch = []
      }
      for await (const key of this.#db.keys({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
        batch.push(key.slice(chunkPrefix.length))
        if (batch.length >= lookupBatchSize) await flush()
      }
      if (batch.length > 0) await flush()
      return { chunksDeleted }
    })
  }

  /** Re-hashes every stored chunk; returns the names of those whose bytes no longer match. */
  async corruptChunks(): Promise<ChunkHash[]> {
    const corrupt: ChunkHash[] = []
    for await (const [key, value] of this.#db.iterator({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
      const hash = key.slice(chunkPrefix.length) as ChunkHash
      if (chunkHashOf(value) !== hash) corrupt.push(hash)
    }
    return corrupt
  }

  async stats(): Promise<ChunkStoreStats> {
    const stats: ChunkStoreStats = { manifests: 0, pins: 0, chunks: 0, chunkBytes: 0 }
    for await (const key of this.#db.keys({ gte: manifestPrefix, lt: prefixEnd(manifestPrefix) })) if (key) stats.manifests++
    for await (const key of this.#db.keys({ gte: 'p/', lt: prefixEnd('p/') })) if (key) stats.pins++
    for await (const value of this.#db.values({ gte: chunkPrefix, lt: prefixEnd(chunkPrefix) })) {
      stats.chunks++
      stats.chunkBytes += value.byteLength
    }
    return stats
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#exclusive.catch(() => {})
    await this.#db.close()
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

type BatchOperation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

const empty = new Uint8Array(0)
const encodeCount = (count: number): Uint8Array => new TextEncoder().encode(String(count))
const decodeCount = (bytes: Uint8Array): number => Number(new TextDecoder().decode(bytes))

function checkOwner(owner: string): void {
  if (owner.length === 0 || owner.length > maxOwnerLength || owner.includes('\0')) {
    throw new Error(`a pin owner is 1 to ${maxOwnerLength} characters without NUL, got ${JSON.stringify(owner.slice(0, 40))}`)
  }
}
