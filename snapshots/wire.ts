// The wire form of /fabric/snapshots/1.0.0. A client opens a stream to a holder and writes
// length-prefixed CBOR requests (codec/); the holder answers each, in order, with length-prefixed binary
// frames (a tag byte, then the payload), so chunk bytes travel without base64 and a client can
// pipeline requests. Requests come from strangers: each is size-bounded and schema-checked, and a
// malformed one is answered with a `refused` frame and changes nothing.
//
//   request  {kind: "manifest", cid: "b3:<hex>"}  -> manifest frame | not-found frame (CID digest)
//   request  {kind: "chunks", hashes: ["<hex>",...]} -> per hash, in order: chunk | not-found frame
//   frames   0x01 manifest bytes | 0x02 hash(32) chunk bytes | 0x03 hash(32) | 0x04 UTF-8 reason
import { z } from 'zod'
import { decodeCbor, encodeCbor } from '../codec/index.ts'
import { maxChunkBytes } from './chunking.ts'
import { cidDigest, isCid, type Cid } from './cid.ts'
import { chunkHashBytes, chunkHashFromBytes, hashBytes, isChunkHash, type ChunkHash } from './hash.ts'
import { maxManifestBytes, type Decoded } from './manifest.ts'

export const snapshotProtocol = '/fabric/snapshots/1.0.0'

// ---- Named limits
/** Hashes in one chunks request. */
export const maxChunksPerRequest = 512
/** A request frame: 512 hashes of 66 CBOR bytes fit with room to spare. */
export const maxRequestBytes = 40 * 1024
/** A chunk frame: tag, hash, at most one chunk. */
export const maxChunkFrameBytes = 1 + hashBytes + maxChunkBytes
/** A manifest frame: tag and the largest manifest accepted. */
export const maxManifestFrameBytes = 1 + maxManifestBytes
/** The reason in a refused frame. */
export const maxRefusalBytes = 1_024

export const frameTag = { manifest: 0x01, chunk: 0x02, notFound: 0x03, refused: 0x04 } as const

export type SnapshotRequest = { kind: 'manifest'; cid: Cid } | { kind: 'chunks'; hashes: ChunkHash[] }

const requestSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('manifest'), cid: z.string().refine(isCid, 'not a snapshot CID') }),
  z.strictObject({ kind: z.literal('chunks'), hashes: z.array(z.string().refine(isChunkHash, 'not a chunk hash')).min(1).max(maxChunksPerRequest) }),
])

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export function encodeRequest(request: SnapshotRequest): Uint8Array {
  const bytes = encodeCbor(request)
  if (bytes.length > maxRequestBytes) throw new Error(`request of ${bytes.length} bytes exceeds maxRequestBytes (${maxRequestBytes})`)
  return bytes
}

export function decodeRequest(bytes: Uint8Array): Decoded<SnapshotRequest> {
  if (bytes.length > maxRequestBytes) return { ok: false, reason: `request of ${bytes.length} bytes exceeds maxRequestBytes (${maxRequestBytes})` }
  const decoded = decodeCbor(bytes)
  if (!decoded.ok) return { ok: false, reason: `request: ${decoded.reason}` }
  const parsed = requestSchema.safeParse(decoded.value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return { ok: false, reason: `request: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(root)'}: ${issue.message}`}` }
  }
  return { ok: true, value: parsed.data as SnapshotRequest }
}

// ---- Response frames

/** Header of a chunk frame; the chunk's bytes follow it in the same frame. */
export function chunkFrameHeader(hash: ChunkHash): Uint8Array {
  const header = new Uint8Array(1 + hashBytes)
  header[0] = frameTag.chunk
  header.set(chunkHashBytes(hash), 1)
  return header
}

export function notFoundFrame(name: ChunkHash | Cid): Uint8Array {
  const frame = new Uint8Array(1 + hashBytes)
  frame[0] = frameTag.notFound
  frame.set(isCid(name) ? cidDigest(name) : chunkHashBytes(name), 1)
  return frame
}

export function manifestFrame(manifestBytes: Uint8Array): Uint8Array {
  const frame = new Uint8Array(1 + manifestBytes.length)
  frame[0] = frameTag.manifest
  frame.set(manifestBytes, 1)
  return frame
}

export function refusedFrame(reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason).subarray(0, maxRefusalBytes)
  const frame = new Uint8Array(1 + text.length)
  frame[0] = frameTag.refused
  frame.set(text, 1)
  return frame
}

export type ResponseFrame =
  | { kind: 'manifest'; bytes: Uint8Array }
  | { kind: 'chunk'; hash: ChunkHash; bytes: Uint8Array }
  | { kind: 'not-found'; digest: ChunkHash }
  | { kind: 'refused'; reason: string }

export function decodeResponseFrame(frame: Uint8Array): Decoded<ResponseFrame> {
  if (frame.length === 0) return { ok: false, reason: 'empty frame' }
  const body = frame.subarray(1)
  switch (frame[0]) {
    case frameTag.manifest:
      return { ok: true, value: { kind: 'manifest', bytes: body } }
    case frameTag.chunk:
      if (body.length < hashBytes) return { ok: false, reason: 'chunk frame shorter than a hash' }
      return { ok: true, value: { kind: 'chunk', hash: chunkHashFromBytes(body.subarray(0, hashBytes)), bytes: body.subarray(hashBytes) } }
    case frameTag.notFound:
      if (body.length !== hashBytes) return { ok: false, reason: 'not-found frame is not one hash' }
      return { ok: true, value: { kind: 'not-found', digest: chunkHashFromBytes(body) } }
    case frameTag.refused: {
      let reason: string
      try {
        reason = strictUtf8.decode(body.subarray(0, maxRefusalBytes))
      } catch {
        reason = '(reason not UTF-8)'
      }
      return { ok: true, value: { kind: 'refused', reason } }
    }
    default:
      return { ok: false, reason: `unknown frame tag ${frame[0]}` }
  }
}
