// BLAKE3 names every chunk and every manifest. The hash is native (@napi-rs/blake-hash ships a
// prebuilt binary inside its registry package; measured here at ~4-6 GB/s, against ~0.7 GB/s for
// the WebAssembly hash-wasm and ~50 MB/s for pure-JS @noble/hashes), so verifying every chunk
// on arrival costs a few percent of a loopback transfer at most.
import { createRequire } from 'node:module'

/** BLAKE3 digest of a chunk, 64 lower-case hex characters (the form used in manifests and keys). */
export type ChunkHash = string & { readonly __brand: 'ChunkHash' }
export const hashBytes = 32

// The package is CommonJS with a native addon; `require` is the loader it documents.
const native = createRequire(import.meta.url)('@napi-rs/blake-hash') as { blake3(input: Buffer): Buffer }

/** The 32-byte BLAKE3 digest of `bytes`. */
export function blake3(bytes: Uint8Array): Buffer {
  return native.blake3(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
}

export function chunkHashOf(bytes: Uint8Array): ChunkHash {
  return blake3(bytes).toString('hex') as ChunkHash
}

const chunkHashPattern = /^[0-9a-f]{64}$/

export function isChunkHash(value: unknown): value is ChunkHash {
  return typeof value === 'string' && chunkHashPattern.test(value)
}

/** Raw digest bytes of a hash (what the wire carries). */
export function chunkHashBytes(hash: ChunkHash): Buffer {
  return Buffer.from(hash, 'hex')
}

export function chunkHashFromBytes(bytes: Uint8Array): ChunkHash {
  if (bytes.length !== hashBytes) throw new Error(`a BLAKE3 digest has ${hashBytes} bytes, got ${bytes.length}`)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex') as ChunkHash
}
