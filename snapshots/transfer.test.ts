// /fabric/snapshots/1.0.0 over libp2p: real libp2p hosts over TCP on 127.0.0.1 running the shared
// acceptance suite (testing/transfer-suite.ts): byte-identical fetch then only changed chunks,
// corrupt and partial holders, the manifest only from a holder whose bytes hash to the CID, resume
// after a killed holder, malformed requests refused.
import { describe } from 'vitest'
import { createSnapshotHost } from './host.ts'
import { describeSnapshotTransfer, snapshotTransferHarness } from './testing/transfer-suite.ts'
import { libp2pSnapshotTransport } from './transport.ts'

const harness = await snapshotTransferHarness('libp2p', async () => {
  const host = await createSnapshotHost()
  return {
    transport: libp2pSnapshotTransport(host),
    info: { id: host.peerId, multiaddrs: host.getMultiaddrs() },
    close: async () => {
      await host.stop()
    },
  }
})

describe('snapshot transfer over libp2p', () => {
  describeSnapshotTransfer('libp2p', harness)
})
