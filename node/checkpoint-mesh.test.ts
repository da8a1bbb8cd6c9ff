// Integration: three real daemons (processes over loopback, level on disk, the process runtime with
// real CRIU). A counting job with a checkpoint policy is checkpointed every 2 s; each snapshot is
// packed, replicated to a peer in another failure domain, and recorded in the document. Then the
// runner's daemon is SIGKILLed (its job dies with it) and its data directory deleted, as if the
// machine were gone: the job is re-placed on a survivor, fetched from the replica holder, restored,
// and keeps counting from its last checkpoint rather than from 1.
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import type { JobDetail } from './client-wire.ts'
import { counterScript, numbers } from './testing/counter-job.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { criuMissingHere, runtimeRequirement } from './testing/runtime-requirement.ts'
import { testResources } from './testing/test-mesh.ts'

const criu = runtimeRequirement({ CRIU: await criuMissingHere() })
const resources = testResources()


describe('checkpoints across a mesh of three Shuttle processes', () => {
  it.skipIf(!criu.run)(`restores a job whose node died from its latest replicated snapshot, and the count goes on${criu.note}`, async () => {
    const { daemons, dataDirs } = await resources.startMesh({
      nodes: 3,
      dirPrefix: 'fabric-checkpoint-mesh-',
      // Three providers: a replica goes to another failure domain.
      args: (index) => ['--provider', `p${index}`, '--price-per-hour', String(1 + index), '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes'],
      readyTimeoutMs: 20_000,
      leaderTimeoutMs: 20_000,
    })
    const host = await resources.clientHost()
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })

    const counter = counterScript(0.2)
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
