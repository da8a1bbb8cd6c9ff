// Integration: three real daemons (processes over loopback) with real CRIU and a real Docker
// engine. A counting job (a container; then a plain process) runs on one node; `migrate --to`
// another: the runner checkpoints and stops it, the snapshot goes to the target, which restores it,
// and it keeps counting from where it stopped; the source copy is gone.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { beforeAll, describe, expect, it } from 'vitest'
import { connectDocker, dockerSocketPath } from '../runtime/index.ts'
import { dockerLabels } from '../runtime/docker-container-spec.ts'
import { busyboxImage, ensureBusyboxImage } from '../runtime/testing/busybox-image.ts'
import { clientCall } from './client-connection.ts'
import { counterScript, numbers, startCounting } from './testing/counter-job.ts'
import { Daemon } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { criuMissingHere, dockerAvailable, runtimeRequirement } from './testing/runtime-requirement.ts'
import { testResources } from './testing/test-mesh.ts'

const runtimes = runtimeRequirement({ CRIU: await criuMissingHere(), Docker: await dockerAvailable() })
const resources = testResources()
let dataDirs: string[] = []
let daemons: Daemon[] = []
let client: Libp2p | null = null

beforeAll(async () => {
  if (!runtimes.run) return
  await ensureBusyboxImage(connectDocker(dockerSocketPath()))
  ;({ daemons, dataDirs } = await resources.startMesh({
    nodes: 3,
    dirPrefix: 'fabric-migration-mesh-',
    args: (index) => ['--provider', `p${index}`, '--price-per-hour', String(1 + index), '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes'],
    readyTimeoutMs: 20_000,
    leaderTimeoutMs: 20_000,
  }))
  client = await resources.clientHost()
}, 90_000)


const counter = counterScript()

describe('migration across a mesh of three Shuttle processes', () => {
  for (const runtime of ['docker', 'process'] as const) {
    it.skipIf(!runtimes.run)(`moves a counting ${runtime === 'docker' ? 'container' : 'process'} to the node asked for, and it counts on from where it stopped${runtimes.note}`, async () => {
      const host = client!
      const spec = JSON.stringify({ name: `counter-${runtime}`, ...(runtime === 'docker' ? { image: busyboxImage } : {}), command: ['sh', '-c', counter], resources: { cpu: '250m', memory: '64Mi' } })
      const { jobId, job, from, sourceLog } = await startCounting(host, { daemons, dataDirs }, spec, 'on the source')
      const to = (from + 1) % 3

      await clientCall(host, multiaddr(daemons[to]!.address), { kind: 'migrate', jobId, to: daemons[to]!.peerId })
      const moved = await poll(() => job(daemons[to]!), (detail) => detail.node === daemons[to]!.peerId && detail.state === 'assigned', 60_000, 'the job moved to the target')
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
      // The cancel ends the restored copy: a container is removed once its exit is recorded (the
      // test's daemons are SIGKILLed after, and a container outlives a killed daemon until it restarts).
      if (runtime === 'docker') {
        const docker = connectDocker(dockerSocketPath())
        await poll(() => docker.listContainers({ all: true, filters: { label: [`${dockerLabels.jobId}=${jobId}`] } }), (left) => left.length === 0, 30_000, 'the cancelled container to be removed')
      }
    }, 150_000)
  }
})
