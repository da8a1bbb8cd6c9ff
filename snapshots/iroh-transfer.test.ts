// The snapshot protocol over iroh (real iroh endpoints on 127.0.0.1 UDP, real level stores): the
// same fetcher and server as over libp2p, only the transport differs, so the shared acceptance
// suite (testing/transfer-suite.ts) runs here too. Proves besides that the endpoint id is the
// node's peer id and that a holder with no iroh address gives a clear error.
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, expect, it } from 'vitest'
import { IrohSnapshotTransport } from './iroh-transport.ts'
import { packDirectory } from './pack.ts'
import { writeSyntheticImage } from './synthetic-image.ts'
import { describeSnapshotTransfer, snapshotTransferHarness } from './testing/transfer-suite.ts'

const harness = await snapshotTransferHarness('iroh', async () => {
  const privateKey = await generateKeyPair('Ed25519')
  const transport = await IrohSnapshotTransport.create({ privateKey })
  return { transport, info: { id: peerIdFromPrivateKey(privateKey), multiaddrs: transport.multiaddrs }, close: () => transport.close() }
})
const { root, onCleanup, openStore, startHolder, fetcherFor } = harness

describe('snapshot transfer over iroh', () => {
  it('has the node\'s libp2p peer id as its endpoint id and gives /udp addresses', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const transport = await IrohSnapshotTransport.create({ privateKey })
    onCleanup(() => transport.close())
    expect(transport.peerId).toBe(peerIdFromPrivateKey(privateKey).toString())
    expect(transport.multiaddrs.map(String)).toEqual([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/udp\/\d+$/)])
  })

  it('names the missing iroh address when a holder gives only libp2p addresses', async () => {
    const holder = await startHolder(await openStore('no-address-source'))
    const source = join(root, 'no-address')
    await writeSyntheticImage(source, { memoryBytes: 256 * 1024, seed: 'iroh-no-address' })
    const { cid } = await packDirectory(source, holder.store, { owner: 'job-1' })
    const local = await openStore('no-address-local')
    const fetcher = await fetcherFor(local, async () => [{ id: holder.info.id, multiaddrs: [] }])
    await expect(fetcher.fetch(cid, { owner: 'job-1' })).rejects.toThrow(/no iroh address/)
    expect(await local.snapshots()).toEqual([])
  })

  describeSnapshotTransfer('iroh', harness)
})
