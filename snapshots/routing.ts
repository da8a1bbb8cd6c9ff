// Where snapshots are found: the port the fetcher asks for holders of a CID, and the one a
// holder uses to say it has one. The daemon implements both with kad-dht (provide and
// findProviders, keyed by `cidMultihash(cid)` wrapped as a CIDv1 of the raw codec); until then
// callers inject a function. Nothing in snapshots/ depends on how holders are found.
import type { PeerInfo } from '@libp2p/interface'
import type { Cid } from './cid.ts'

/** Peers that may hold `cid` (with addresses when known), best first. */
export type HoldersOf = (cid: Cid, options: { signal?: AbortSignal }) => Promise<readonly PeerInfo[]>

export interface SnapshotRouting {
  holdersOf: HoldersOf
  /** Called by the daemon after a snapshot is complete in the local store. */
  announce(cid: Cid, options: { signal?: AbortSignal }): Promise<void>
}

/** A fixed table of holders (tests, the bench, and a daemon before the DHT is wired). */
export function staticHolders(table: ReadonlyMap<Cid, readonly PeerInfo[]> | readonly PeerInfo[]): HoldersOf {
  return async (cid) => (Array.isArray(table) ? table : ((table as ReadonlyMap<Cid, readonly PeerInfo[]>).get(cid) ?? []))
}
