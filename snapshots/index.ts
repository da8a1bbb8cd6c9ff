// snapshots/: CRIU image directories as content-addressed snapshots. A directory is cut into
// BLAKE3-addressed chunks listed by a manifest whose hash is the CID (pack.ts), kept in a level
// chunk store with reference counts (chunk-store.ts), written back byte-identical
// (materialize.ts), and moved between peers over /fabric/snapshots/1.0.0 (snapshot-server.ts,
// snapshot-fetcher.ts). Holder discovery is a port (routing.ts) the daemon fills with the DHT.
export { type Cid, cidOf, cidMultihash, cidDigest, isCid, parseCid, InvalidCidError, blake3MultihashCode } from './cid.ts'
export { type ChunkHash, chunkHashOf, isChunkHash } from './hash.ts'
export { type ChunkingMethod, type ChunkingPolicy, defaultChunkingPolicy, maxChunkBytes, pageSizeBytes, isMemoryImage, chunkingFor } from './chunking.ts'
export { type GearParameters } from './gear-chunker.ts'
export {
  type Manifest, type ManifestEntry, type ManifestFile, type ManifestDirectory, type ManifestChunk,
  manifestFormat, encodeManifest, decodeManifest, manifestCid, distinctChunks, manifestSizeBytes,
  maxManifestBytes, maxManifestEntries, maxManifestChunks,
} from './manifest.ts'
export { ChunkStore, verifyChunk, chunkStoreDirectoryName, maxOwnerLength, type ChunkStoreInit, type ChunkStoreStats, type StoredChunk } from './chunk-store.ts'
export { packDirectory, buildManifest, type PackResult } from './pack.ts'
export { materializeSnapshot } from './materialize.ts'
export { SnapshotServer, defaultSnapshotServerLimits, type SnapshotServerLimits, type SnapshotServerCounters } from './snapshot-server.ts'
export {
  SnapshotFetcher, defaultSnapshotFetcherLimits, HolderCorruptChunkError, HolderIdleError, HolderProtocolError,
  type SnapshotFetcherLimits, type FetchOptions, type FetchResult, type HolderReport,
} from './snapshot-fetcher.ts'
export { type FetchProgress, type ProgressListener } from './progress.ts'
export { type HoldersOf, type SnapshotRouting, staticHolders } from './routing.ts'
export {
  snapshotProtocol, maxChunksPerRequest, maxRequestBytes, maxChunkFrameBytes, maxManifestFrameBytes,
  decodeRequest as decodeSnapshotRequest, decodeResponseFrame as decodeSnapshotResponseFrame,
} from './wire.ts'
export { type SnapshotLogger, silentSnapshotLogger } from './logger.ts'
export * from './errors.ts'
export { benchSnapshots, type SnapshotBenchOptions, type SnapshotBenchResult } from './bench-snapshots.ts'
