// How large a local mesh may be and how its daemons send requests: constants without dependencies, so
// `fabric bench mesh --help` can name them without loading the daemon (local-mesh.ts re-exports them).
import type { PeerConfig } from '../consensus/types.ts'

/** Daemons one local mesh may start (each is a Node process of some 100 MB). */
export const maxLocalMeshNodes = 32
/**
 * Where a local mesh's daemons send a request first (their --request-fanout): they share this
 * machine's cores, so the fewer that decode a request at once, the sooner the leader places it.
 */
export const localMeshRequestFanout: PeerConfig['requestFanout'] = 'majority'
