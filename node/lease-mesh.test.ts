// Integration: at most one running copy of a job, on real daemons. A runner that stops being heard
// (its daemon paused with SIGSTOP; or cut off from the mesh, its link in a network namespace taken
// down) stops its job when its lease lapses, by the watchdog outside its event loop or its own core,
// before the leader places the job again elsewhere; the two copies never run side by side and never
// both finish. Each copy of the job appends its own id to a shared marker file as it starts, every
// 200 ms while it runs, and when it is done: that file is the ground truth.
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { Daemon, agreedLeader } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const readyTimeoutMs = 20_000
const leaderTimeoutMs = 20_000
/** The node timeout (3 s) and an election, on a loaded machine. */
const replacedTimeoutMs = 25_000

const resources = testResources()

/** A job that marks its own copy: start, a tick every 200 ms for `seconds`, done. */
function markingJob(marks: string, seconds: number): string {
  const ticks = seconds * 5
  return JSON.stringify({
    name: 'marking',
    command: ['sh', '-c', `u=$(cat /proc/sys/kernel/random/uuid); echo "start $u" >> ${marks}; i=0; while [ $i -lt ${ticks} ]; do echo "tick $u" >> ${marks}; sleep 0.2; i=$((i+1)); done; echo "done $u" >> ${marks}`],
    resources: { cpu: '100m', memory: '32Mi' },
  })
}

interface Copy { id: string; first: number; last: number; done: boolean }

/** The copies the marker file shows, in the order they started (line numbers of their first and last marks). */
async function copiesIn(marks: string): Promise<Copy[]> {
  const lines = (await readFile(marks, 'utf8').catch(() => '')).split('\n').filter(Boolean)
  const copies = new Map<string, Copy>()
  lines.forEach((line, index) => {
    const [what, id] = line.split(' ') as [string, string]
    const copy = copies.get(id) ?? { id, first: index, last: index, done: false }
    copy.last = index
    if (what === 'done') copy.done = true
    copies.set(id, copy)
  })
  return [...copies.values()].sort((a, b) => a.first - b.first)
}

/** Every copy's marks end before the next copy's first mark: never two side by side. */
function expectOneAtATime(copies: readonly Copy[]): void {
  for (let index = 1; index < copies.length; index++) expect(copies[index - 1]!.last, `copy ${index - 1} still marked after copy ${index} started`).toBeLessThan(copies[index]!.first)
}

const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: 'ignore' })
}

/** Network namespaces can be made here (root, iproute2): the partition test needs them. */
function netnsAvailable(): boolean {
  try {
    ip('netns', 'add', 'fabric-probe')
    ip('netns', 'del', 'fabric-probe')
    return true
  } catch {
    return false
  }
}

const netns = netnsAvailable()
const required = process.env.FABRIC_REQUIRE_RUNTIMES === '1'

describe('one running copy of a job, on Shuttle processes', () => {
  it('a runner paused (SIGSTOP) past the node timeout has its job killed by the watchdog before the job starts elsewhere; resumed, it starts nothing, and the job finishes once', async () => {
    const marks = join(await resources.tempDir('fabric-lease-marks-'), 'marks')
    // The cheapest node runs the job; the job may move to either other.
    const { daemons } = await resources.startMesh({
      nodes: 3,
      dirPrefix: 'fabric-lease-pause-',
      args: (index) => ['--price-per-hour', String(1 + 4 * index), '--cpu-millis', '2000', '--memory-mib', '4096'],
      readyTimeoutMs,
      leaderTimeoutMs,
    })
    const host = await resources.clientHost()
    const leader = agreedLeader(daemons)!
    const { jobId } = await clientCall(host, multiaddr(leader.address), { kind: 'submit', spec: markingJob(marks, 12) })
    await poll(() => copiesIn(marks), (copies) => copies.length === 1 && copies[0]!.last > copies[0]!.first + 3, 20_000, 'the first copy to run')
    const detail = await clientCall(host, multiaddr(leader.address), { kind: 'job', jobId })
    const runner = daemons.find((daemon) => daemon.peerId === detail.replicas[0]!.node)!
    expect(runner).toBeDefined()

    runner.kill('SIGSTOP')
    try {
      const copies = await poll(() => copiesIn(marks), (found) => found.length === 2, replacedTimeoutMs, 'the job to start again elsewhere')
      // The paused runner's copy stopped marking before the new one began: the watchdog killed it at the lease's end.
      expectOneAtATime(copies)
      // Paused a while longer, then resumed: it catches up before it starts anything, and starts nothing.
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    } finally {
      runner.kill('SIGCONT')
    }
    const finished = await poll(() => copiesIn(marks), (found) => found.some((copy) => copy.done), 30_000, 'the job to finish')
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const copies = await copiesIn(marks)
    expect(copies).toHaveLength(2)
    expectOneAtATime(copies)
    expect(copies.filter((copy) => copy.done).map((copy) => copy.id)).toEqual([copies[1]!.id])
    expect(finished.length).toBe(2)
    // The runner's record says how its copy ended: stopped, not finished.
    const record = await poll(
      () => clientCall(host, multiaddr(daemons.find((daemon) => daemon !== runner)!.address), { kind: 'job', jobId }),
      (job) => job.runs.some((run) => run.node === runner.peerId && run.state === 'stopped'),
      20_000,
      'the paused runner to report its copy stopped',
    )
    expect(record.runs.filter((run) => run.state === 'finished')).toHaveLength(1)
  }, 120_000)

  it.skipIf(!netns && !required)(`a runner cut off from the mesh (its link down) past the node timeout stops its job before the job starts elsewhere; back, it starts nothing${netns ? '' : ' (SKIPPED: no network namespaces here)'}`, async () => {
    const marks = join(await resources.tempDir('fabric-lease-marks-'), 'marks')
    const namespace = `fabric-lease-${process.pid}`
    const [hostSide, inside] = [`flh${process.pid % 100_000}`, `fln${process.pid % 100_000}`]
    const [hostIp, insideIp] = ['10.253.77.1', '10.253.77.2']
    ip('netns', 'add', namespace)
    try {
      ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', inside)
      ip('link', 'set', inside, 'netns', namespace)
      ip('addr', 'add', `${hostIp}/30`, 'dev', hostSide)
      ip('link', 'set', hostSide, 'up')
      ip('netns', 'exec', namespace, 'ip', 'addr', 'add', `${insideIp}/30`, 'dev', inside)
      ip('netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up')
      ip('netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up')

      // Three voters on the host side of the link, and the cheapest node, a non-voter, inside the namespace.
      const dataDirs = await Promise.all([0, 1, 2, 3].map(() => resources.tempDir('fabric-lease-cut-')))
      const ids = await Promise.all(dataDirs.map(async (dir) => (await loadOrCreateIdentity(dir)).nodeId as string))
      const voters = ids.slice(0, 3).join(',')
      const daemons: Daemon[] = []
      for (let index = 0; index < 3; index++) {
        const bootstrap = daemons.flatMap((daemon) => ['--bootstrap', daemon.address])
        const daemon = resources.startDaemon(`v${index}`, ['--data', dataDirs[index]!, '--voters', voters, '--listen', `/ip4/${hostIp}/tcp/0`, '--price-per-hour', String(5 + index), ...bootstrap])
        daemons.push(daemon)
        await Daemon.waitFor([daemon], () => daemon.ready !== null, readyTimeoutMs, `${daemon.name} ready`)
      }
      await Daemon.waitFor(daemons, () => agreedLeader(daemons) !== null, leaderTimeoutMs, 'one agreed leader')
      const runner = resources.startDaemon('cut', ['--data', dataDirs[3]!, '--voters', voters, '--listen', `/ip4/${insideIp}/tcp/0`, '--price-per-hour', '1', '--bootstrap', daemons[0]!.address], { netns: namespace })
      await Daemon.waitFor([runner], () => runner.ready !== null, readyTimeoutMs, 'the runner ready')
      const host = await resources.clientHost()
      const ask = () => multiaddr(agreedLeader(daemons)?.address ?? daemons[0]!.address)
      await poll(() => clientCall(host, ask(), { kind: 'nodes' }), (answer) => answer.nodes.some((node) => node.id === runner.peerId), 20_000, 'the runner registered')
      // Offered work only once it holds a lease.
      await Daemon.waitFor([runner], () => runner.logged('lease-held'), 20_000, 'the runner to hold a lease')

      const { jobId } = await clientCall(host, ask(), { kind: 'submit', spec: markingJob(marks, 12) })
      const first = await poll(() => clientCall(host, ask(), { kind: 'job', jobId }), (job) => job.replicas[0]?.node === runner.peerId && job.replicas[0]?.state === 'assigned', 20_000, 'the job to run on the cut-off node')
      expect(first.replicas[0]!.node).toBe(runner.peerId)
      await poll(() => copiesIn(marks), (copies) => copies.length === 1 && copies[0]!.last > copies[0]!.first + 3, 20_000, 'the first copy to mark')

      ip('link', 'set', hostSide, 'down')
      let copies: Copy[]
      try {
        copies = await poll(() => copiesIn(marks), (found) => found.length === 2, replacedTimeoutMs, 'the job to start again on the connected side')
        expectOneAtATime(copies)
        await new Promise((resolve) => setTimeout(resolve, 1_000))
      } finally {
        ip('link', 'set', hostSide, 'up')
      }
      await poll(() => copiesIn(marks), (found) => found.some((copy) => copy.done), 30_000, 'the job to finish')
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      copies = await copiesIn(marks)
      expect(copies).toHaveLength(2)
      expectOneAtATime(copies)
      expect(copies.filter((copy) => copy.done).map((copy) => copy.id)).toEqual([copies[1]!.id])
      expect(runner.logged('stop-job', { jobId })).toBe(true)
    } finally {
      try {
        ip('link', 'del', hostSide)
      } catch {
        // gone with the namespace
      }
      ip('netns', 'del', namespace)
    }
  }, 150_000)
})
