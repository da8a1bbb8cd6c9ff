// The libp2p host a client (the CLI) talks to daemons through: tcp, noise and yamux, listening
// nowhere. Its key is the client's identity (ephemeral, or kept in a file); every request names
// the resulting peer id, which noise proves to the daemon, and is signed with it (requestSigner).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { requestSigner, type RequestSigner } from './request-signature.ts'

export async function createClientHost(options: { privateKey?: PrivateKey } = {}): Promise<Libp2p<{ requestSigner: RequestSigner }>> {
  return createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { requestSigner: requestSigner() },
  })
}
