// The manifest: what a snapshot directory contains (directories, files, permission bits, sizes)
// and each file's ordered chunk list. Its canonical JSON bytes are hashed into the CID, so the
// decoder accepts only canonical bytes (it re-encodes and compares): one manifest, one byte
// string, one CID. Manifests arrive from strangers: every field and count is bounded, paths
// cannot escape the target directory, and a refusal is a value with a reason.
import { z } from 'zod'
import { maxChunkBytes } from './chunking.ts'
import { cidOf, type Cid } from './cid.ts'
import { isChunkHash, type ChunkHash } from './hash.ts'

export const manifestFormat = 'fabric-snapshot/1'

// ---- Named limits
/** 1M chunks of ~76 JSON bytes each, with room for paths: the largest manifest accepted. */
export const maxManifestBytes = 96 * 1024 * 1024
export const maxManifestEntries = 100_000
/** At the default 16 KiB page chunks, 16 GiB of memory image per snapshot. */
export const maxManifestChunks = 1_000_000
export const maxPathBytes = 4_096
export const maxPathSegmentBytes = 255
/** Permission bits only: set-id and sticky bits are dropped at pack and refused here. */
export const permissionBitsMask = 0o777

export type ManifestChunk = readonly [hash: ChunkHash, sizeBytes: number]

export interface ManifestDirectory {
  kind: 'directory'
  path: string
  mode: number
}

export interface ManifestFile {
  kind: 'file'
  path: string
  mode: number
  sizeBytes: number
  /** How the file was cut (describeChunking); informational. */
  chunking: string
  chunks: readonly ManifestChunk[]
}

export type ManifestEntry = ManifestDirectory | ManifestFile

export interface Manifest {
  format: typeof manifestFormat
  /** Sorted by path; every parent directory is listed before what it contains. */
  entries: readonly ManifestEntry[]
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string }

// ---- Encoding

/** Canonical bytes: fixed key order, no whitespace. */
export function encodeManifest(manifest: Manifest): Uint8Array {
  const entries = manifest.entries.map((entry) =>
    entry.kind === 'directory'
      ? { kind: entry.kind, path: entry.path, mode: entry.mode }
      : { kind: entry.kind, path: entry.path, mode: entry.mode, sizeBytes: entry.sizeBytes, chunking: entry.chunking, chunks: entry.chunks },
  )
  return new TextEncoder().encode(JSON.stringify({ format: manifest.format, entries }))
}

export function manifestCid(manifest: Manifest): Cid {
  return cidOf(encodeManifest(manifest))
}

// ---- Decoding

const mode = z.number().int().min(0).max(permissionBitsMask)
const entrySchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('directory'), path: z.string(), mode }),
  z.strictObject({
    kind: z.literal('file'),
    path: z.string(),
    mode,
    sizeBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    chunking: z.string().max(64),
    // Checked by hand below: a million tuples is too many for a schema walk per element.
    chunks: z.array(z.unknown()).max(maxManifestChunks),
  }),
])
const manifestSchema = z.strictObject({ format: z.literal(manifestFormat), entries: z.array(entrySchema).max(maxManifestEntries) })

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export function decodeManifest(bytes: Uint8Array): Decoded<Manifest> {
  if (bytes.length > maxManifestBytes) return { ok: false, reason: `manifest of ${bytes.length} bytes exceeds maxManifestBytes (${maxManifestBytes})` }
  let value: unknown
  try {
    value = JSON.parse(strictUtf8.decode(bytes))
  } catch (error) {
    return { ok: false, reason: `manifest is not UTF-8 JSON (${(error as Error).message.slice(0, 120)})` }
  }
  const parsed = manifestSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return { ok: false, reason: `manifest: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(root)'}: ${issue.message}`}` }
  }
  const manifest = parsed.data as Manifest
  const problem = checkManifest(manifest)
  if (problem !== null) return { ok: false, reason: `manifest: ${problem}` }
  // Canonical form only, so the CID of these bytes is the CID of this manifest.
  if (!Buffer.from(encodeManifest(manifest)).equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
    return { ok: false, reason: 'manifest is not in canonical form' }
  }
  return { ok: true, value: manifest }
}

/** Semantic rules beyond the schema; null when the manifest is sound. */
export function checkManifest(manifest: Manifest): string | null {
  const directories = new Set<string>()
  let previous: string | null = null
  const sizes = new Map<string, number>()
  let chunkCount = 0
  for (const entry of manifest.entries) {
    const pathProblem = checkPath(entry.path)
    if (pathProblem !== null) return `${JSON.stringify(entry.path.slice(0, 80))}: ${pathProblem}`
    if (previous !== null && !(previous < entry.path)) return `entries are not sorted and unique at ${JSON.stringify(entry.path.slice(0, 80))}`
    previous = entry.path
    const slash = entry.path.lastIndexOf('/')
    if (slash >= 0 && !directories.has(entry.path.slice(0, slash))) return `${JSON.stringify(entry.path.slice(0, 80))} has no parent directory entry`
    if (entry.kind === 'directory') {
      directories.add(entry.path)
      continue
    }
    chunkCount += entry.chunks.length
    if (chunkCount > maxManifestChunks) return `more than maxManifestChunks (${maxManifestChunks}) chunks`
    let total = 0
    for (const chunk of entry.chunks) {
      if (!Array.isArray(chunk) || chunk.length !== 2 || !isChunkHash(chunk[0])) return `${entry.path}: a chunk is not [hash, sizeBytes]`
      const size = chunk[1]
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > maxChunkBytes) return `${entry.path}: chunk size ${String(size)} is outside [1, ${maxChunkBytes}]`
      // One hash, one size: otherwise the same chunk would be both verified and not.
      const known = sizes.get(chunk[0])
      if (known === undefined) sizes.set(chunk[0], size)
      else if (known !== size) return `${entry.path}: chunk ${chunk[0].slice(0, 16)}... listed with sizes ${known} and ${size}`
      total += size
    }
    if (total !== entry.sizeBytes) return `${entry.path}: chunks add up to ${total} bytes, the file has ${entry.sizeBytes}`
  }
  return null
}

/** A relative path of non-empty segments, none of them `.` or `..`, so it stays inside the target. */
export function checkPath(path: string): string | null {
  if (path.length === 0) return 'empty path'
  if (Buffer.byteLength(path) > maxPathBytes) return `path longer than maxPathBytes (${maxPathBytes})`
  if (path.includes('\0')) return 'path contains NUL'
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'path must be relative, without empty, "." or ".." segments'
    if (Buffer.byteLength(segment) > maxPathSegmentBytes) return `path segment longer than ${maxPathSegmentBytes} bytes`
  }
  return null
}

// ---- Views

/** Each distinct chunk once, with its size, in first-use order (a zero page repeated is one chunk). */
export function distinctChunks(manifest: Manifest): Map<ChunkHash, number> {
  const chunks = new Map<ChunkHash, number>()
  for (const entry of manifest.entries) {
    if (entry.kind !== 'file') continue
    for (const [hash, size] of entry.chunks) chunks.set(hash, size)
  }
  return chunks
}

export function manifestSizeBytes(manifest: Manifest): number {
  let total = 0
  for (const entry of manifest.entries) if (entry.kind === 'file') total += entry.sizeBytes
  return total
}
