// Integration: a local mesh of three real daemons (separate processes on loopback, node/local-mesh.ts)
// answers the job-control and placement requests through the `fabric` CLI: `plan` is a dry run on
// the live mesh (what the document leaves free, nothing placed); a job of three replicas is listed
// once with its records; `explain` asked of a follower is answered by the leader; `migrate` is
// refused for an unknown job or node and acknowledged for a running one; `cancel` stops every
// replica and a second cancel is refused. Each refusal exits 1 with the daemon's reason.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import type { JobDetail } from './client-wire.ts'
import type { Daemon } from './daemon-process.ts'
import { runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const electionTimeoutMs = 30_000
const placedTimeoutMs = 30_000

const resources = testResources()

describe('job control and placement requests on a mesh of three Shuttle processes', () => {
  it('plans on the live mesh, lists replicas, explains through a follower, refuses and acknowledges migrate, cancels', async () => {
    // Two cores each: the three 1-core replicas below leave each node one core free.
    const mesh = await resources.startLocalMesh({ nodes: 3, cpuMillis: 2_000, memoryMiB: 4_096 })
    const specs = await resources.tempDir('fabric-requests-')
    const leader = await mesh.waitForLeader(electionTimeoutMs)
    const follower = mesh.live.find((daemon) => daemon !== leader)!
    const at = (daemon: Daemon): string[] => ['--node', daemon.address]
    const host = await resources.clientHost()
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, multiaddr(daemon.address), { kind: 'job', jobId })
    const status = (daemon: Daemon) => clientCall(host, multiaddr(daemon.address), { kind: 'status' })
    /** The daemon's document heads once unchanged for 2 s (runs' reports and commit markers come and go). */
    const settledHeads = async (daemon: Daemon): Promise<string[]> => {
      let heads = (await status(daemon)).documentHeads
      await poll(async () => {
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        const now = (await status(daemon)).documentHeads
        const same = JSON.stringify(now) === JSON.stringify(heads)
        heads = now
        return same
      }, (same) => same, placedTimeoutMs, `the document of ${daemon.name} to settle`)
      return heads
    }

    // 1. plan: every node offers; two 1.5-core replicas fit, 3 cores fit nowhere; nothing is placed.
    await poll(() => status(follower), (answer) => answer.voters.length === 3, placedTimeoutMs, 'the follower to know the committee')
    const fitting = join(specs, 'fitting.yaml')
    await writeFile(fitting, 'name: fitting\ncommand: [sleep, "1"]\nreplicas: 2\nresources: {cpu: 1.5, memory: 64Mi}\n')
    const plan = async () => {
      const result = await runCli(['plan', fitting, '--json', ...at(follower)])
      expect(result.code, result.stderr).toBe(0)
      return JSON.parse(result.stdout) as { explanation: { awards: unknown[]; rows: { excluded?: { kind: string } }[] }; considered: number; leftOut: unknown[] }
    }
    // Offers come from nodes the follower hears on the capacity topic: wait until it hears all three.
    await poll(plan, (planned) => planned.considered === 3, placedTimeoutMs, 'a plan over all three nodes')
    // A young mesh still writes its own records (nodes' registrations, the leader's commit markers):
    // the heads to compare with are those once the document has settled.
    const headsBefore = await settledHeads(follower)
    const planned = await plan()
    expect(planned.explanation.awards).toHaveLength(2)
    expect(planned.leftOut).toEqual([])
    const tooBig = join(specs, 'too-big.yaml')
    await writeFile(tooBig, 'name: too-big\ncommand: [sleep, "1"]\nresources: {cpu: 3, memory: 64Mi}\n')
    const refusedPlan = await runCli(['plan', tooBig, ...at(follower)])
    expect(refusedPlan.code, refusedPlan.stderr).toBe(0)
    expect(refusedPlan.stdout).toMatch(/needs 3000 millicores, 2000 free/)
    expect(refusedPlan.stdout).toMatch(/nothing was placed/)
    expect((await status(follower)).documentHeads).toEqual(headsBefore)
    expect((await status(follower)).jobRecords).toBe(0)
    // The simulated fleet stays available with --fleet.
    const simulated = await runCli(['plan', fitting, '--fleet', 'examples/fleet.yaml'])
    expect(simulated.code, simulated.stderr).toBe(0)
    expect(simulated.stdout).toMatch(/replica 0 ->/)

    // 2. A job of three replicas, submitted through the follower: one entry in `jobs`, three records.
    const spec = JSON.stringify({ name: 'trio', command: ['sleep', '120'], replicas: 3, resources: { cpu: 1, memory: '32Mi' } })
    const { jobId } = await clientCall(host, multiaddr(follower.address), { kind: 'submit', spec })
    const placed = await poll(() => job(follower, jobId), (detail) => detail.state === 'assigned', placedTimeoutMs, 'all three replicas assigned')
    expect(placed.replicas.map((replica) => replica.id)).toEqual([`${jobId}#0`, `${jobId}#1`, `${jobId}#2`])
    const listed = await runCli(['jobs', '--json', ...at(follower)])
    const entries = (JSON.parse(listed.stdout) as { jobs: { id: string; replicas: unknown[] }[] }).jobs
    expect(entries.map((entry) => entry.id)).toEqual([jobId])
    expect(entries[0]!.replicas).toHaveLength(3)
    const table = await runCli(['jobs', ...at(follower)])
    expect(table.stdout).toMatch(/3 \(3 assigned\)/)

    // 3. explain, asked of a follower, answered by the leader.
    const explained = await runCli(['explain', jobId, '--json', ...at(follower)])
    expect(explained.code, explained.stderr).toBe(0)
    const explanation = JSON.parse(explained.stdout) as { answeredBy: string; explanation: { jobId: string; awards: unknown[]; replicas: number } }
    expect(explanation.answeredBy).toBe(leader.peerId)
    expect(explanation.explanation).toMatchObject({ jobId, replicas: 3 })
    expect(explanation.explanation.awards).toHaveLength(3)
    const explainedText = await runCli(['explain', `${jobId}#1`, ...at(follower)])
    expect(explainedText.stdout).toMatch(new RegExp(`Job trio \\(${jobId}\\): 3 replica`))
    const unknown = await runCli(['explain', 'no-such-job', ...at(follower)])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/not-found: no job no-such-job/)

    // 4. migrate: refused for an unknown job and an unregistered node (nothing changes); acknowledged for a running job.
    const headsBeforeMigrate = await settledHeads(leader)
    const noJob = await runCli(['migrate', 'no-such-job', ...at(follower)])
    expect(noJob.code).toBe(1)
    expect(noJob.stderr).toMatch(/refused: job no-such-job has no running replica to move/)
    const noNode = await runCli(['migrate', jobId, '--to', '12D3KooWNotARegisteredNode', ...at(follower)])
    expect(noNode.code).toBe(1)
    expect(noNode.stderr).toMatch(/not registered/)
    expect((await status(leader)).documentHeads).toEqual(headsBeforeMigrate)
    const target = placed.replicas[0]!.node!
    const moved = await runCli(['migrate', jobId, '--to', target, '--json', ...at(follower)])
    expect(moved.code, moved.stderr).toBe(0)
    expect(JSON.parse(moved.stdout)).toEqual({ jobId, to: target })

    // 5. cancel: every replica stops on its runner; a second cancel is refused.
    const cancelled = await runCli(['cancel', jobId, ...at(follower)])
    expect(cancelled.code, cancelled.stderr).toBe(0)
    expect(cancelled.stdout).toMatch(new RegExp(`cancelled ${jobId}`))
    const done = await poll(() => job(leader, jobId), (detail) => detail.state === 'cancelled', placedTimeoutMs, 'the job to be cancelled')
    expect(done.replicas.every((replica) => replica.state === 'cancelled')).toBe(true)
    for (const daemon of mesh.live) {
      await poll(() => job(daemon, jobId), (detail) => detail.local === null || detail.local.state !== 'running', placedTimeoutMs, `no replica running on ${daemon.name}`)
    }
    const again = await runCli(['cancel', jobId, ...at(follower)])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/refused: job .* is not active/)
  }, 180_000)
})
