// One error class per failure at the edges of snapshots/, each with `name` and the facts a user
// or the daemon needs. Expected refusals inside cores are values instead (Decoded in manifest.ts).
import type { Cid } from './cid.ts'
import type { ChunkHash } from './hash.ts'

export class ChunkHashMismatchError extends Error {
  override name = 'ChunkHashMismatchError'
  readonly expected: ChunkHash
  readonly actual: ChunkHash
  constructor(expected: ChunkHash, actual: ChunkHash) {
    super(`chunk bytes hash to ${actual.slice(0, 16)}..., expected ${expected.slice(0, 16)}...`)
    this.expected = expected
    this.actual = actual
  }
}

export class UnreferencedChunkError extends Error {
  override name = 'UnreferencedChunkError'
  readonly hashes: ChunkHash[]
  constructor(hashes: ChunkHash[]) {
    super(`${hashes.length} chunk(s) are named by no pinned manifest (first ${hashes[0]?.slice(0, 16)}...); pin the manifest before storing its chunks`)
    this.hashes = hashes
  }
}

export class InvalidManifestError extends Error {
  override name = 'InvalidManifestError'
  readonly reason: string
  constructor(reason: string) {
    super(`invalid snapshot manifest: ${reason}`)
    this.reason = reason
  }
}

export class SnapshotNotFoundError extends Error {
  override name = 'SnapshotNotFoundError'
  readonly cid: Cid
  constructor(cid: Cid, where: string) {
    super(`snapshot ${cid} is not in ${where}`)
    this.cid = cid
  }
}

export class SnapshotIncompleteError extends Error {
  override name = 'SnapshotIncompleteError'
  readonly cid: Cid
  readonly missingChunks: number
  constructor(cid: Cid, missingChunks: number) {
    super(`snapshot ${cid} is missing ${missingChunks} chunk(s) locally; fetch it first`)
    this.cid = cid
    this.missingChunks = missingChunks
  }
}

export class CorruptChunkError extends Error {
  override name = 'CorruptChunkError'
  readonly hash: ChunkHash
  constructor(hash: ChunkHash, where: string) {
    super(`chunk ${hash.slice(0, 16)}... in ${where} does not match its hash`)
    this.hash = hash
  }
}

export class UnsupportedEntryError extends Error {
  override name = 'UnsupportedEntryError'
  readonly path: string
  constructor(path: string, what: string) {
    super(`${path} is a ${what}; snapshots hold regular files and directories only`)
    this.path = path
  }
}

export class TargetExistsError extends Error {
  override name = 'TargetExistsError'
  readonly path: string
  constructor(path: string) {
    super(`${path} already exists; a snapshot is materialized into a new directory`)
    this.path = path
  }
}

/** Every holder was tried and chunks (or the manifest) are still missing. */
export class FetchFailedError extends Error {
  override name = 'FetchFailedError'
  readonly cid: Cid
  readonly missingChunks: number
  readonly holderFailures: readonly { holder: string; reason: string }[]
  constructor(cid: Cid, missingChunks: number, holderFailures: readonly { holder: string; reason: string }[], what = `${missingChunks} chunk(s) still missing`) {
    const reasons = holderFailures.slice(0, 4).map((failure) => `${failure.holder.slice(-8)}: ${failure.reason}`).join('; ')
    super(`fetch of ${cid} failed: ${what} after trying ${holderFailures.length} holder(s)${reasons ? ` (${reasons})` : ''}; stored chunks are kept, fetch again to resume`)
    this.cid = cid
    this.missingChunks = missingChunks
    this.holderFailures = holderFailures
  }
}
