// Integration: three real daemons (processes over loopback, real CRIU) started with
// `--snapshot-transport iroh`. A counting process is migrated to another node: the snapshot goes
// over iroh (the libp2p snapshot protocol is not even served), the target restores it, and it
// counts on from where it stopped. The target says where it found the holder (document, DHT).
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { probeCriu } from '../runtime/index.ts'
import { loadIroh } from '../snapshots/iroh-transport.ts'
import { snapshotProtocol } from '../snapshots/wire.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import type { JobDetail } from './client-wire.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'

const criu = await probeCriu()
const iroh = (() => {
  try {
    loadIroh()
    return true
  } catch {
    return false
  }
})()
const required = process.env.FABRIC_REQUIRE_RUNTIMES === '1'
const started: Daemon[] = []
const directories: string[] = []
let client: Libp2p | null = null

afterAll(async () => {
  await client?.stop()
  for (const daemon of started) if (daemon.alive && daemon.child.pid !== undefined) process.kill(daemon.child.pid, 'SIGKILL')
  await Promise.all(started.map((daemon) => (daemon.alive ? new Promise((done) => daemon.child.once('exit', done)) : undefined)))
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})

const numbers = (text: string): number[] => text.split('\n').filter((line) => /^\d+$/.test(line)).map(Number)

describe('snapshots over iroh between Shuttle processes', () => {
  it.skipIf(!(criu.available && iroh) && !required)(`migrates a counting process with its snapshot carried over iroh${criu.available ? '' : ' [skipped: no CRIU]'}${iroh ? '' : ' [skipped: no iroh binary]'}`, async () => {
    const dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'fabric-iroh-mesh-'))))
    directories.push(...dataDirs)
    const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId))
    const daemons: Daemon[] = []
    for (let index = 0; index < 3; index++) {
      const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.address])
      const daemon = new Daemon(`d${index}`, ['--data', dataDirs[index]!, '--voters', ids.join(','), '--provider', `p${index}`, '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes', '--snapshot-transport', 'iroh', ...bootstrap])
      started.push(daemon)
      daemons.push(daemon)
      await Daemon.waitFor([daemon], () => daemon.ready !== null, 20_000, `${daemon.name} ready`)
    }
    await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, 20_000, 'one agreed leader')
    for (const daemon of daemons) {
      // iroh on UDP at the daemon's TCP port number.
      const port = /\/tcp\/(\d+)/.exec(daemon.address)![1]
      expect(daemon.events('snapshot-transport')).toEqual([expect.objectContaining({ name: 'iroh', addresses: [`/ip4/127.0.0.1/udp/${port}`] })])
    }
    client = await createClientHost()
    const host = client
    // Only iroh carries snapshots: the libp2p protocol is not served.
    await expect(host.dialProtocol(multiaddr(daemons[0]!.address), snapshotProtocol)).rejects.toThrow(/protocol/i)
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })

    const spec = JSON.stringify({ name: 'counter', command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done'], resources: { cpu: '250m', memory: '64Mi' } })
    const { jobId } = await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'submit', spec })
    const placed = await poll(() => job(daemons[0]!, jobId), (detail) => detail.node !== null && detail.state === 'assigned', 30_000, 'the job placed')
    const from = daemons.findIndex((daemon) => daemon.peerId === placed.node)
    const to = (from + 1) % 3
    const sourceLog = join(dataDirs[from]!, 'jobs', jobId, 'stdout.log')
    await poll(() => readFile(sourceLog, 'utf8'), (text) => numbers(text).length >= 10, 30_000, 'the counter to count on the source')

    await clientCall(host, multiaddr(daemons[to]!.address), { kind: 'migrate', jobId, to: daemons[to]!.peerId })
    await poll(() => job(daemons[to]!, jobId), (detail) => detail.node === daemons[to]!.peerId && detail.state === 'assigned', 60_000, 'the job moved to the target')
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
