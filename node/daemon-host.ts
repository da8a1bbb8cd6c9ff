// The daemon's libp2p host: tcp, noise, yamux, identify, ping, gossipsub with strict signing, the DHT
// (snapshot-routing.ts) and the client request signer, behind the admission gate; made unstarted, so
// every protocol and topic is in place before it listens. And, with `--snapshot-transport iroh`, the
// iroh endpoint beside it that carries snapshot transfers.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { IrohSnapshotTransport } from '../snapshots/iroh-transport.ts'
import { requestSigner } from './request-signature.ts'
import { fabricDht } from './snapshot-routing.ts'

export interface DaemonHostInit {
  privateKey: PrivateKey
  connectionGater: ConnectionGater
  /** Multiaddrs to listen on. */
  listen: string[]
}

export function createDaemonHost(init: DaemonHostInit) {
  return createLibp2p({
    privateKey: init.privateKey,
    connectionGater: init.connectionGater,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign', allowPublishToZeroTopicPeers: true, emitSelf: false }),
      dht: fabricDht(),
      requestSigner: requestSigner(),
    },
    start: false,
  })
}

/** The daemon's libp2p host with its services. */
export type DaemonHost = Awaited<ReturnType<typeof createDaemonHost>>

/**
 * The iroh endpoint of a daemon: on UDP at the IP its first TCP listen address names (0.0.0.0
 * included) and the port number libp2p got for it, so peers derive it from the TCP addresses
 * identify told them.
 */
export async function irohBesideLibp2p(libp2p: Libp2p, privateKey: PrivateKey, listen: readonly string[]): Promise<IrohSnapshotTransport> {
  const tcpAddress = /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d+)/
  const configured = listen.map((address) => tcpAddress.exec(address)).find((parsed) => parsed !== null)
  const bound = libp2p.getMultiaddrs().map((address) => tcpAddress.exec(address.toString())).find((parsed) => parsed != null && (configured == null || configured[3] === '0' || parsed[3] === configured[3]))
  if (configured == null || bound == null) throw new Error('the iroh snapshot transport needs a TCP listen address to take its port number from')
  const bindAddr = configured[1] === 'ip6' ? `[${configured[2]}]:${bound[3]}` : `${configured[2]}:${bound[3]}`
  return IrohSnapshotTransport.create({ privateKey, bindAddr, udpPortOfTcp: true }).catch((error: Error) => {
    throw new Error(`cannot start the iroh snapshot transport on UDP ${bindAddr}: ${error.message}`)
  })
}
