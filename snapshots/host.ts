// A minimal libp2p host (tcp, noise, yamux) for holders that run outside the daemon: the holder
// process of `fabric bench snapshots` and the integration tests. The daemon serves snapshots on
// its own host (node/daemon-host.ts builds it with the same transport, encrypter and muxer).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

export async function createSnapshotHost(options: { listen?: string[]; privateKey?: PrivateKey } = {}): Promise<Libp2p> {
  return createLibp2p({
    ...(options.privateKey === undefined ? {} : { privateKey: options.privateKey }),
    addresses: { listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
}
