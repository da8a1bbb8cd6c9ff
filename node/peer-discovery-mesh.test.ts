// Integration: four real Shuttle processes on loopback, each told of only one other in a chain
// (B knows A, C knows B, D knows C; A knows nobody), end up each connected to every other within a
// bound, and so does a daemon restarted with no bootstrap peer at all. Checked from outside on each
// daemon's `status` answer (its discovery counters list the peers it holds connections to). Two
// mechanisms get there: kad-dht's own walk towards its id when it starts, and peer discovery
// (node/peer-discovery.ts), which dials the document's nodes it has no connection to every 2 s;
// on four nodes the walk alone reaches all (checked by hand with discovery off), so this test holds
// the property; peer-discovery.test.ts proves discovery's own part, and peer-discovery-scale.test.ts
// shows it at 30 hosts, where the walk alone leaves each host with a few connections.
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { LocalMesh } from './local-mesh.ts'
import { poll } from './testing/poll.ts'

/** Every daemon connected to every other within this (discovery runs every 2 s; a loaded machine is slower). */
const fullMeshTimeoutMs = 45_000

let mesh: LocalMesh | null = null
let client: Libp2p | null = null

afterAll(async () => {
  await client?.stop()
  await mesh?.stop()
})

interface DiscoveryView { connectedPeers: string[]; dials: number; lookups: number }

describe('peer discovery across a mesh of Shuttle processes', () => {
  it('connects every daemon to every other from a one-peer bootstrap chain, and again after one restarts knowing nobody', async () => {
    // One voter (A): the consensus streams of B, C and D go to A only, so B-D and C-D (and A-C, A-D
    // until the nodes register) exist only if discovery makes them.
    mesh = await LocalMesh.start({ nodes: 4, voters: 1, cpuMillis: 1_000, memoryMiB: 512, bootstrapOf: (index, addresses) => (index === 0 ? [] : [addresses[index - 1]!]) })
    const daemons = mesh.daemons
    const ids = daemons.map((daemon) => daemon.peerId)
    client = await createClientHost()
    const host = client
    const discoveryOf = async (index: number): Promise<DiscoveryView> => {
      const status = await clientCall(host, multiaddr(daemons[index]!.address), { kind: 'status' })
      return status.counters.discovery as DiscoveryView
    }
    const fullMesh = async (what: string): Promise<DiscoveryView[]> => {
      const startedAt = performance.now()
      const views = await poll(
        () => Promise.all(daemons.map((_, index) => discoveryOf(index))),
        (views) => views.every((view, index) => ids.every((id, other) => other === index || view.connectedPeers.includes(id))),
        fullMeshTimeoutMs,
        `every daemon to be connected to every other ${what}`,
      )
      for (const [index, view] of views.entries()) {
        expect(view.connectedPeers, `${daemons[index]!.name}`).toEqual(expect.arrayContaining(ids.filter((_, other) => other !== index)))
      }
      console.log(`full mesh of 4 ${what} within ${Math.round(performance.now() - startedAt)} ms; discovery dials ${views.map((view) => view.dials).join('/')}, self-lookups ${views.map((view) => view.lookups).join('/')}`)
      return views
    }
    await fullMesh('from a bootstrap chain')
    // A restarted with no bootstrap peer (and an empty peer store): the others find it again.
    await mesh.kill(daemons[0]!)
    await mesh.restart(daemons[0]!)
    await fullMesh('after A restarted knowing nobody')
  })
})
