// Integration: three real daemons (processes over loopback, real CRIU) started with
// `--snapshot-transport iroh`. A counting process is migrated to another node: the snapshot goes
// over iroh (the libp2p snapshot protocol is not even served), the target restores it, and it
// counts on from where it stopped. The target says where it found the holder (document, DHT).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { snapshotProtocol } from '../snapshots/wire.ts'
import { clientCall } from './client-connection.ts'
import { counterScript, numbers, startCounting } from './testing/counter-job.ts'
import { poll } from './testing/poll.ts'
import { criuMissingHere, irohAvailable, runtimeRequirement } from './testing/runtime-requirement.ts'
import { testResources } from './testing/test-mesh.ts'

const runtimes = runtimeRequirement({ CRIU: await criuMissingHere(), 'iroh binary': irohAvailable() })
const resources = testResources()


describe('snapshots over iroh between Shuttle processes', () => {
  it.skipIf(!runtimes.run)(`migrates a counting process with its snapshot carried over iroh${runtimes.note}`, async () => {
    const { daemons, dataDirs } = await resources.startMesh({
      nodes: 3,
      dirPrefix: 'fabric-iroh-mesh-',
      args: (index) => ['--provider', `p${index}`, '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes', '--snapshot-transport', 'iroh'],
      readyTimeoutMs: 20_000,
      leaderTimeoutMs: 20_000,
    })
    for (const daemon of daemons) {
      // iroh on UDP at the daemon's TCP port number.
      const port = /\/tcp\/(\d+)/.exec(daemon.address)![1]
      expect(daemon.events('snapshot-transport')).toEqual([expect.objectContaining({ name: 'iroh', addresses: [`/ip4/127.0.0.1/udp/${port}`] })])
    }
    const host = await resources.clientHost()
    // Only iroh carries snapshots: the libp2p protocol is not served.
    await expect(host.dialProtocol(multiaddr(daemons[0]!.address), snapshotProtocol)).rejects.toThrow(/protocol/i)

    const spec = JSON.stringify({ name: 'counter', command: ['sh', '-c', counterScript()], resources: { cpu: '250m', memory: '64Mi' } })
    const { jobId, job, from, sourceLog } = await startCounting(host, { daemons, dataDirs }, spec, 'on the source')
    const to = (from + 1) % 3

    await clientCall(host, multiaddr(daemons[to]!.address), { kind: 'migrate', jobId, to: daemons[to]!.peerId })
    await poll(() => job(daemons[to]!), (detail) => detail.node === daemons[to]!.peerId && detail.state === 'assigned', 60_000, 'the job moved to the target')
    const targetLog = join(dataDirs[to]!, 'jobs', jobId, 'stdout.log')
    const after = numbers(await poll(() => readFile(targetLog, 'utf8'), (text) => numbers(text).length >= 5, 60_000, 'the restored counter to print on the target'))
    const before = numbers(await readFile(sourceLog, 'utf8'))
    expect(after[0]).toBe(before.at(-1)! + 1)

    // The snapshot's chunks reached the target over iroh (nothing else serves them): fetched by its
    // restore, or earlier as the checkpoint's replica. A restore that fetched says which sources
    // named each holder (the document; the DHT where the provide landed first).
    const fetched = daemons[to]!.events('snapshot-fetched').filter((event) => event.jobId === jobId)
    const replicated = daemons[to]!.events('snapshot-replicated').filter((event) => event.from === daemons[from]!.peerId)
    expect([...fetched, ...replicated].reduce((sum, event) => sum + (event.chunks as number), 0)).toBeGreaterThan(0)
    for (const event of fetched) {
      const holders = event.holders as { peer: string; chunks: number; failure: string | null; sources: string[] }[]
      expect(holders.reduce((sum, holder) => sum + holder.chunks, 0)).toBe(event.chunks)
      for (const holder of holders) expect(holder.sources.length).toBeGreaterThan(0)
      expect(holders.find((holder) => holder.peer === daemons[from]!.peerId)).toMatchObject({ failure: null, sources: expect.arrayContaining(['document']) })
    }
    await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'cancel', jobId })
  }, 150_000)
})
