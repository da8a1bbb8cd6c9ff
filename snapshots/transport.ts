// The seam between the snapshot protocol and the network: open a stream to a holder, serve the
// streams peers open. The fetcher and the server speak /fabric/snapshots/1.0.0 over any libp2p-style
// `Stream` (message events, send/onDrain, close/abort), so the frames, limits and verification are
// the same whichever transport carries them. libp2p is the default; iroh-transport.ts is the other.
import type { Libp2p, PeerInfo, Stream } from '@libp2p/interface'
import { snapshotProtocol } from './wire.ts'

export type SnapshotTransportName = 'libp2p' | 'iroh'
export const snapshotTransportNames: readonly SnapshotTransportName[] = ['libp2p', 'iroh']

export interface SnapshotTransport {
  readonly name: SnapshotTransportName
  /** This node's peer id as holders know it (a fetch never asks itself). */
  readonly peerId: string
  /** A new stream speaking the snapshot protocol to `holder`. */
  dial(holder: PeerInfo, options: { signal?: AbortSignal }): Promise<Stream>
  /** Serves the snapshot protocol: `handler` gets each inbound stream and the peer id that opened it. */
  handle(handler: (stream: Stream, remotePeerId: string) => void, options: { maxInboundStreamsPerConnection: number }): Promise<void>
  unhandle(): Promise<void>
}

/** The snapshot protocol as a libp2p stream protocol on `libp2p`. */
export function libp2pSnapshotTransport(libp2p: Libp2p): SnapshotTransport {
  return {
    name: 'libp2p',
    get peerId() {
      return libp2p.peerId.toString()
    },
    dial: (holder, { signal }) => libp2p.dialProtocol(holder.multiaddrs.length > 0 ? holder.multiaddrs : holder.id, snapshotProtocol, { signal }),
    handle: (handler, { maxInboundStreamsPerConnection }) =>
      libp2p.handle(snapshotProtocol, (stream, connection) => handler(stream, connection.remotePeer.toString()), { maxInboundStreams: maxInboundStreamsPerConnection }),
    unhandle: () => libp2p.unhandle(snapshotProtocol),
  }
}

/** The transport a component was given, or libp2p on its host. */
export function transportOf(components: { libp2p?: Libp2p; transport?: SnapshotTransport }, who: string): SnapshotTransport {
  if (components.transport !== undefined) return components.transport
  if (components.libp2p !== undefined) return libp2pSnapshotTransport(components.libp2p)
  throw new Error(`${who} needs a libp2p host or a snapshot transport`)
}
