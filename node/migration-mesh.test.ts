// Integration: three real daemons (processes over loopback) with real CRIU and a real Docker
// engine. A counting job (a container; then a plain process) runs on one node; `migrate --to`
// another: the runner checkpoints and stops it, the snapshot goes to the target, which restores it,
// and it keeps counting from where it stopped; the source copy is gone.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectDocker, dockerSocketPath, probeCriu, probeDockerEngine } from '../runtime/index.ts'
import { busyboxImage, ensureBusyboxImage } from '../runtime/testing/busybox-image.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import type { JobDetail } from './client-wire.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'

const criu = await probeCriu()
const socket = dockerSocketPath()
const docker = await probeDockerEngine(connectDocker(socket), socket)
const required = process.env.FABRIC_REQUIRE_RUNTIMES === '1'
const runnable = criu.available && docker.available
const started: Daemon[] = []
const directories: string[] = []
let dataDirs: string[] = []
let daemons: Daemon[] = []
let client: Libp2p | null = null

beforeAll(async () => {
  if (!runnable && !required) return
  await ensureBusyboxImage(connectDocker(socket))
  dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'fabric-migration-mesh-'))))
  directories.push(...dataDirs)
  const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId))
  for (let index = 0; index < 3; index++) {
    const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.address])
    const daemon = new Daemon(`d${index}`, ['--data', dataDirs[index]!, '--voters', ids.join(','), '--provider', `p${index}`, '--price-per-hour', String(1 + index), '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes', ...bootstrap])
    started.push(daemon)
    daemons.push(daemon)
    await Daemon.waitFor([daemon], () => daemon.ready !== null, 20_000, `${daemon.name} ready`)
  }
  await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, 20_000, 'one agreed leader')
  client = await createClientHost()
}, 90_000)

afterAll(async () => {
  await client?.stop()
  for (const daemon of started) if (daemon.alive && daemon.child.pid !== undefined) process.kill(daemon.child.pid, 'SIGKILL')
  await Promise.all(started.map((daemon) => (daemon.alive ? new Promise((done) => daemon.child.once('exit', done)) : undefined)))
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})


const numbers = (text: string): number[] => text.split('\n').filter((line) => /^\d+$/.test(line)).map(Number)
const counter = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done'

describe('migration across a mesh of three Shuttle processes', () => {
  for (const runtime of ['docker', 'process'] as const) {
    it.skipIf(!runnable && !required)(`moves a counting ${runtime === 'docker' ? 'container' : 'process'} to the node asked for, and it counts on from where it stopped`, async () => {
      const host = client!
      const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })
      const spec = JSON.stringify({ name: `counter-${runtime}`, ...(runtime === 'docker' ? { image: busyboxImage } : {}), command: ['sh', '-c', counter], resources: { cpu: '250m', memory: '64Mi' } })
      const { jobId } = await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'submit', spec })
      const placed = await poll(() => job(daemons[0]!, jobId), (detail) => detail.node !== null && detail.state === 'assigned', 30_000, 'the job placed')
      const from = daemons.findIndex((daemon) => daemon.peerId === placed.node)
      const to = (from + 1) % 3
      const sourceLog = join(dataDirs[from]!, 'jobs', jobId, 'stdout.log')
      await poll(() => readFile(sourceLog, 'utf8'), (text) => numbers(text).length >= 10, 30_000, 'the counter to count on the source')

      await clientCall(host, multiaddr(daemons[to]!.address), { kind: 'migrate', jobId, to: daemons[to]!.peerId })
      const moved = await poll(() => job(daemons[to]!, jobId), (detail) => detail.node === daemons[to]!.peerId && detail.state === 'assigned', 60_000, 'the job moved to the target')
      expect(moved.node).toBe(daemons[to]!.peerId)
      const targetLog = join(dataDirs[to]!, 'jobs', jobId, 'stdout.log')
      const after = numbers(await poll(() => readFile(targetLog, 'utf8'), (text) => numbers(text).length >= 5, 60_000, 'the restored counter to print on the target'))
      const before = numbers(await readFile(sourceLog, 'utf8'))
      // It goes on from the number after the last one the source printed: no gap, no repeat.
      expect(after[0]).toBe(before.at(-1)! + 1)
      for (let index = 1; index < after.length; index++) expect(after[index]).toBe(after[index - 1]! + 1)
      // The source copy is gone: its log stopped growing.
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      expect(numbers(await readFile(sourceLog, 'utf8')).length).toBe(before.length)
      await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'cancel', jobId })
    }, 150_000)
  }
})
