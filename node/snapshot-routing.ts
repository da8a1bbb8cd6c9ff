// The DHT every Shuttle runs (kad-dht): peer routing across the mesh today. Content routing for
// snapshots (providing a CID, finding its holders) is not used yet: on a three-node loopback mesh a
// probe found no providers after a successful provide, so holders come from the document's
// snapshot records (the runner and the replicas that confirmed), which the restore path needs anyway.
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'

export const dhtProtocol = '/fabric/kad/1.0.0'

/**
 * Our own protocol (a Fabric mesh's DHT never mixes with the public IPFS one), and private addresses
 * kept (meshes run on LANs and VPCs, tests on loopback; kad-dht drops them by default).
 */
export function fabricDht() {
  return kadDHT({ protocol: dhtProtocol, clientMode: false, peerInfoMapper: passthroughMapper })
}
