// Integration: three real daemons (separate processes, libp2p over loopback, level on disk, the
// process runtime) and the client protocol. A job submitted with the `fabric` CLI through a node that
// is not the leader runs as a real process, and its output comes back (followed while it runs, and
// read afterwards) through a node that did not run it. Malformed requests get an error and change
// nothing. Then, with one job running on every node, the leader is SIGKILLed: every acknowledged job
// still finishes exactly once (one `done` in its own marker file, one finished run in the document),
// the leader's own job is re-placed on a survivor, and no acknowledged job is lost.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { clientProtocol, decodeClientResponse, type JobDetail } from './client-wire.ts'
import { signClientRequest } from './request-signature.ts'
import { Daemon, agreedLeader, runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { encodeCbor } from '../codec/index.ts'
import { testResources } from './testing/test-mesh.ts'

const readyTimeoutMs = 15_000
const electionTimeoutMs = 15_000
/** A job's life here: placement (tens of ms), a few seconds of running, the run's report syncing back. */
const jobTimeoutMs = 20_000
/** After the leader dies: a new election, its node timeout (3 s) before re-placing, and a 4 s run. */
const failoverJobsTimeoutMs = 30_000
/** Every node publishes its metrics every 5 s; a loaded machine and a forming gossip mesh add to it. */
const metricsTimeoutMs = 20_000

const resources = testResources()

const countLines = (text: string, line: string): number => text.split('\n').filter((entry) => entry === line).length
const readMarks = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '')

describe('clients of a mesh of three Shuttle processes', () => {
  it('submits through a follower, runs real processes, serves logs from any node, and loses no acknowledged job when the leader is SIGKILLed', async () => {
    const marks = await resources.tempDir('fabric-client-marks-')
    const { daemons, dataDirs, ids } = await resources.startMesh({
      nodes: 3,
      dirPrefix: 'fabric-client-mesh-',
      // One core's worth of CPU each: the three 1-core jobs below land on three different nodes.
      args: () => ['--cpu-millis', '1000', '--memory-mib', '4096'],
      readyTimeoutMs,
      leaderTimeoutMs: electionTimeoutMs,
    })
    // On a loaded machine an election may come between two reads: `leader` is re-read where it matters.
    let leader = agreedLeader(daemons)!
    const follower = daemons.find((daemon) => daemon !== leader)!
    const byId = (id: string | null): Daemon | undefined => daemons.find((daemon) => daemon.peerId === id)

    const host = await resources.clientHost()
    const ask = (daemon: Daemon) => multiaddr(daemon.address)
    const job = (daemon: Daemon, jobId: string): Promise<JobDetail> => clientCall(host, ask(daemon), { kind: 'job', jobId })

    // The CLI finds a daemon through its data directory (addresses.json) and agrees on the leader.
    const leaderAnswer = await poll(
      () => runCli(['leader', '--json', '--data', dataDirs[daemons.indexOf(follower)]!]),
      (answer) => answer.code === 0 && (JSON.parse(answer.stdout) as { leaderId: string }).leaderId === agreedLeader(daemons)?.peerId,
      electionTimeoutMs,
      'the CLI to name the agreed leader',
    )
    leader = agreedLeader(daemons)!
    expect(JSON.parse(leaderAnswer.stdout)).toMatchObject({ leaderId: leader.peerId, askedNode: follower.peerId, askedRole: 'follower' })

    const { nodes } = await poll(
      () => clientCall(host, ask(follower), { kind: 'nodes' }),
      (answer) => answer.nodes.some((node) => node.leader && node.id === agreedLeader(daemons)?.peerId),
      electionTimeoutMs,
      'the follower to list the agreed leader',
    )
    leader = agreedLeader(daemons)!
    expect(nodes.map((node) => node.id).sort()).toEqual([...ids].sort())
    expect(nodes.filter((node) => node.leader).map((node) => node.id)).toEqual([leader.peerId])
    expect(nodes.filter((node) => node.self).map((node) => node.id)).toEqual([follower.peerId])
    expect(nodes.every((node) => node.voter && node.capacity.cpuMillis === 1000)).toBe(true)
    // Every node's metrics: its own now, the others' as heard on the metrics topic (published every 5 s).
    const withMetrics = await poll(async () => (await clientCall(host, ask(follower), { kind: 'nodes' })).nodes, (listed) => listed.every((node) => node.metrics !== undefined), metricsTimeoutMs, 'metrics from every node')
    for (const node of withMetrics) expect(node.metrics).toMatchObject({ nodeId: node.id, rssBytes: expect.any(Number), loadAverage1m: expect.any(Number), ageMs: expect.any(Number) })
    expect(withMetrics.find((node) => node.self)!.metrics!.ageMs).toBe(0)
    const nodesTable = await runCli(['nodes', '--node', follower.address])
    expect(nodesTable.code, nodesTable.stderr).toBe(0)
    expect(nodesTable.stdout).toMatch(/RSS +LOAD/)
    // Requests are signed for one mesh: pinned to another, the CLI is refused and says so; pinned to this one, answered.
    const { meshId } = await clientCall(host, ask(follower), { kind: 'mesh' })
    const otherMesh = await runCli(['leader', '--node', follower.address, '--mesh', 'f'.repeat(64)])
    expect(otherMesh.code).toBe(1)
    expect(otherMesh.stderr).toMatch(new RegExp(`answered wrong-mesh: the request was signed for mesh ffffffffffffffff\\.\\.\\., this daemon belongs to mesh ${meshId.slice(0, 16)}`))
    const pinned = await runCli(['leader', '--json', '--node', follower.address, '--mesh', meshId])
    expect(pinned.code, pinned.stderr).toBe(0)

    // 1. Submit through a follower with the CLI; the job runs as a real process.
    const submitted = await runCli(['submit', '--node', follower.address, '--cpu', '500m', '--cmd', "sh -c 'echo hello; sleep 1; echo done'"])
    expect(submitted.code, submitted.stderr).toBe(0)
    const helloId = submitted.stdout.trim()
    expect(helloId).toMatch(/^sh-[0-9a-f]{12}$/)
    const placed = await poll(() => job(follower, helloId), (detail) => detail.node !== null, jobTimeoutMs, 'the job to be placed')
    const runner = byId(placed.node)!
    const elsewhere = daemons.find((daemon) => daemon !== runner)!
    // Followed through a node that does not run it: streamed until the job ends.
    const followed = await runCli(['logs', '-f', helloId, '--node', elsewhere.address])
    expect(followed.code, followed.stderr).toBe(0)
    expect(followed.stdout).toBe('hello\ndone\n')
    const finished = await poll(() => job(elsewhere, helloId), (detail) => detail.state === 'finished', jobTimeoutMs, 'the job to finish')
    expect(finished.runs).toEqual([expect.objectContaining({ node: runner.peerId, state: 'finished', exitCode: 0 })])
    expect(finished.exitCode).toBe(0)
    const read = await runCli(['logs', helloId, '--node', elsewhere.address])
    expect(read.stdout).toBe('hello\ndone\n')
    // The node that ran it knows the run; the one that did not, does not.
    expect((await job(runner, helloId)).local).toMatchObject({ node: runner.peerId, state: 'exited', exitCode: 0 })
    expect((await job(elsewhere, helloId)).local).toBeNull()

    // 2. Malformed requests: an error answer each, and nothing changes.
    // A finished job moves to the archive 5 s later: compare what does not depend on when.
    const listed = async () => (await clientCall(host, ask(follower), { kind: 'jobs' })).jobs.map(({ archived: _archived, ...job }) => job)
    const jobsBefore = await listed()
    const rawAnswer = async (payload: Uint8Array): Promise<unknown> => {
      const stream = await host.dialProtocol(ask(follower), clientProtocol)
      const framed = lpStream(stream, { maxDataLength: 1024 * 1024 })
      await framed.write(payload)
      const decoded = decodeClientResponse((await framed.read()).subarray())
      await stream.close()
      return decoded.ok ? decoded.value : decoded.reason
    }
    const utf8 = (value: unknown): Uint8Array => (typeof value === 'string' ? new TextEncoder().encode(value) : encodeCbor(value))
    const signed = async (request: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const unsigned = { ...request, mesh: meshId, signedAtMs: Date.now() }
      return { ...unsigned, signature: await signClientRequest(host, unsigned) }
    }
    expect(await rawAnswer(utf8('{"kind":"submit","spec":'))).toMatchObject({ type: 'error', code: 'bad-request', message: expect.stringMatching(/not valid CBOR/) })
    expect(await rawAnswer(utf8({ v: 1, requestId: 'x', client: host.peerId.toString(), kind: 'submit', spec: 'name: x\n', extra: true }))).toMatchObject({ type: 'error', code: 'bad-request' })
    expect(await rawAnswer(utf8(await signed({ v: 1, requestId: 'x', client: follower.peerId, kind: 'jobs' })))).toMatchObject({ type: 'error', code: 'unauthorized', message: expect.stringMatching(/authenticated as/) })
    expect(await rawAnswer(utf8(await signed({ v: 1, requestId: 'x', client: host.peerId.toString(), kind: 'submit', spec: 'name: Bad Name\nresources: {cpu: 0}\n' })))).toMatchObject({ type: 'error', code: 'invalid-spec', message: expect.stringMatching(/name/) })
    const invalid = await runCli(['submit', '--node', follower.address, '--cmd', "echo 'unbalanced"])
    expect(invalid.code).toBe(1)
    expect(invalid.stderr).toMatch(/unterminated single quote/)
    const missing = await runCli(['job', 'no-such-job', '--node', follower.address])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/not-found: no job no-such-job/)
    expect(await listed()).toEqual(jobsBefore)

    // 3. One 1-core job on each node, then SIGKILL the leader while they run.
    const jobIds: string[] = []
    for (const name of ['k0', 'k1', 'k2']) {
      const spec = JSON.stringify({ name, command: ['sh', '-c', `echo start >> ${join(marks, name)}; echo running ${name}; sleep 4; echo done >> ${join(marks, name)}; echo finished ${name}`], resources: { cpu: 1, memory: '64Mi' } })
      jobIds.push((await clientCall(host, ask(follower), { kind: 'submit', spec })).jobId)
    }
    const names = ['k0', 'k1', 'k2']
    await poll(async () => Promise.all(names.map((name) => readMarks(join(marks, name)))), (texts) => texts.every((text) => text === 'start\n'), jobTimeoutMs, 'all three jobs to start')
    const placements = await Promise.all(jobIds.map((jobId) => job(follower, jobId)))
    expect(new Set(placements.map((detail) => detail.node)).size).toBe(3)
    await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, electionTimeoutMs, 'one agreed leader')
    leader = agreedLeader(daemons)!
    const leaderJob = placements.findIndex((detail) => detail.node === leader.peerId)
    expect(leaderJob).toBeGreaterThanOrEqual(0)
    const firstTerm = placements[leaderJob]!.assignments.at(-1)!.term

    process.kill(leader.child.pid!, 'SIGKILL')
    const survivors = daemons.filter((daemon) => daemon !== leader)
    await Daemon.waitFor(survivors, () => agreedLeader(survivors) !== null, electionTimeoutMs, 'a new leader')
    // A finished job leaves the document for the archive 5 s later (without its runs): keep the
    // last view of each job the document gave.
    const documentViews = new Map<string, JobDetail>()
    await poll(
      async () => {
        const details = await Promise.all(jobIds.map((jobId) => job(survivors[0]!, jobId)))
        for (const detail of details) if (!detail.archived) documentViews.set(detail.id, detail)
        return details
      },
      (details) => details.every((detail) => detail.state === 'finished') && jobIds.every((jobId) => documentViews.get(jobId)?.state === 'finished'),
      failoverJobsTimeoutMs,
      'every job to finish after the failover',
    )
    const done = jobIds.map((jobId) => documentViews.get(jobId)!)

    for (const [index, detail] of done.entries()) {
      const text = await readMarks(join(marks, names[index]!))
      expect(countLines(text, 'done'), `${names[index]} finished once`).toBe(1)
      const finishedRuns = detail.runs.filter((run) => run.state === 'finished')
      expect(finishedRuns).toHaveLength(1)
      expect(detail.runs.some((run) => run.node === leader.peerId)).toBe(false) // the dead leader reported nothing
      if (index === leaderJob) {
        // Its first run died with the leader (its process group went with it); a survivor ran it again.
        expect(countLines(text, 'start')).toBe(2)
        const last = detail.assignments.at(-1)!
        expect(last.term).toBeGreaterThan(firstTerm)
        expect(survivors.map((daemon) => daemon.peerId)).toContain(last.node)
        expect(finishedRuns[0]!.node).toBe(last.node)
      } else {
        expect(countLines(text, 'start')).toBe(1)
      }
    }
    // No acknowledged job is lost: every survivor lists all four as finished.
    for (const daemon of survivors) {
      const listed = (await clientCall(host, ask(daemon), { kind: 'jobs' })).jobs
      for (const jobId of [helloId, ...jobIds]) expect(listed.find((entry) => entry.id === jobId), `${jobId} on ${daemon.name}`).toMatchObject({ state: 'finished' })
    }
    // The re-run's output is served through the survivor that did not run it.
    const rerunNode = done[leaderJob]!.node
    const other = survivors.find((daemon) => daemon.peerId !== rerunNode)!
    const rerunLogs = await runCli(['logs', jobIds[leaderJob]!, '--node', other.address])
    expect(rerunLogs.stdout).toBe(`running ${names[leaderJob]}\nfinished ${names[leaderJob]}\n`)
  }, 90_000)
})
