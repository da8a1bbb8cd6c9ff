// Integration: three real daemons (processes over loopback, level on disk, the process runtime with
// real CRIU). A counting job with a checkpoint policy is checkpointed every 2 s; each snapshot is
// packed, replicated to a peer in another failure domain, and recorded in the document. Then the
// runner's daemon is SIGKILLed (its job dies with it) and its data directory deleted, as if the
// machine were gone: the job is re-placed on a survivor, fetched from the replica holder, restored,
// and keeps counting from its last checkpoint rather than from 1.
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { probeCriu } from '../runtime/index.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import type { JobDetail } from './client-wire.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'

const criu = await probeCriu()
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

describe('checkpoints across a mesh of three Shuttle processes', () => {
  it.skipIf(!criu.available && !required)(`restores a job whose node died from its latest replicated snapshot, and the count goes on${criu.available ? '' : ' [skipped: no CRIU]'}`, async () => {
    const dataDirs = await Promise.all([0, 1, 2].map(() => mkdtemp(join(tmpdir(), 'fabric-checkpoint-mesh-'))))
    directories.push(...dataDirs)
    const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId))
    const daemons: Daemon[] = []
    for (let index = 0; index < 3; index++) {
      const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.address])
      // Three providers: a replica goes to another failure domain.
      const daemon = new Daemon(`d${index}`, ['--data', dataDirs[index]!, '--voters', ids.join(','), '--provider', `p${index}`, '--price-per-hour', String(1 + index), '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes', ...bootstrap])
      started.push(daemon)
      daemons.push(daemon)
      await Daemon.waitFor([daemon], () => daemon.ready !== null, 20_000, `${daemon.name} ready`)
    }
    await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, 20_000, 'one agreed leader')
    client = await createClientHost()
    const host = client
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })

    const counter = 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done'
    const spec = JSON.stringify({ name: 'counter', command: ['sh', '-c', counter], resources: { cpu: '250m', memory: '64Mi' }, checkpoint: { interval: '2s', keep: 2, replicas: 1 } })
    const submitter = daemons[0]!
    const { jobId } = await clientCall(host, multiaddr(submitter.address), { kind: 'submit', spec })
    const placed = await poll(() => job(submitter, jobId), (detail) => detail.node !== null && detail.state === 'assigned', 20_000, 'the job placed')
    const runnerIndex = daemons.findIndex((daemon) => daemon.peerId === placed.node)
    const runner = daemons[runnerIndex]!
    const firstLog = join(dataDirs[runnerIndex]!, 'jobs', jobId, 'stdout.log')
    // Let it count through a few checkpoints (each one packed and replicated).
    await poll(() => readFile(firstLog, 'utf8'), (text) => numbers(text).length >= 35, 30_000, 'the counter to run 7 s')
    const countedBefore = numbers(await readFile(firstLog, 'utf8')).at(-1)!

    process.kill(runner.child.pid!, 'SIGKILL')
    await new Promise((done) => runner.child.once('exit', done))
    await rm(dataDirs[runnerIndex]!, { recursive: true, force: true }) // the machine is gone
    const survivors = daemons.filter((daemon) => daemon !== runner)
    await Daemon.waitFor(survivors, () => agreedLeader(survivors) !== null, 20_000, 'a leader among the survivors')
    const moved = await poll(() => job(survivors[0]!, jobId), (detail) => detail.node !== null && detail.node !== runner.peerId && detail.state === 'assigned', 30_000, 'the job re-placed on a survivor')
    const newIndex = daemons.findIndex((daemon) => daemon.peerId === moved.node)
    const restoredLog = join(dataDirs[newIndex]!, 'jobs', jobId, 'stdout.log')
    const restored = numbers(await poll(() => readFile(restoredLog, 'utf8'), (text) => numbers(text).length >= 5, 30_000, 'the restored counter to print'))
    // It went on from a checkpoint (the latest the document recorded: on a loaded machine a report
    // may still be on its way when the runner dies), not from 1, and never past what it had counted.
    expect(restored[0]!, `first number after restore; last before the kill ${countedBefore}`).toBeGreaterThan(5)
    expect(restored[0]!).toBeLessThanOrEqual(countedBefore + 1)
    for (let index = 1; index < restored.length; index++) expect(restored[index]).toBe(restored[index - 1]! + 1)
    expect(existsSync(dataDirs[runnerIndex]!)).toBe(false)
  }, 150_000)
})
