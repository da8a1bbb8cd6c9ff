// Integration: node attributes from the operator's flags on real daemons. Four Shuttle processes:
// two share a placement group (one island), one is alone in another group, one carries a label. A
// tightly-coupled gang of two replicas, each too big to share a node, runs on the two daemons of the
// one island and never across islands; a job constrained to the label runs only where the label is.
// Bad attribute flags stop a daemon at start, naming the flag.
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import type { JobDetail } from './client-wire.ts'
import { runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const readyTimeoutMs = 15_000
const leaderTimeoutMs = 15_000
const placedTimeoutMs = 20_000
const resources = testResources()

describe('node attributes on a mesh of Shuttle processes', () => {
  it('places a gang on the island of two and a labelled job only where the label is', async () => {
    const attributes = [
      ['--placement-group', 'pg-a', '--efa'],
      ['--placement-group', 'pg-a', '--efa'],
      ['--placement-group', 'pg-b'],
      ['--label', 'tier=gold', '--label', 'team=ml'],
    ]
    const { daemons } = await resources.startMesh({
      nodes: 4,
      namePrefix: 'attr',
      dirPrefix: 'fabric-attributes-',
      // One core each: a replica of 800m needs a node of its own.
      args: (index) => ['--cpu-millis', '1000', '--no-sync-writes', ...attributes[index]!],
      readyTimeoutMs,
      leaderTimeoutMs,
    })
    const client = await resources.clientHost()
    const ask = multiaddr(daemons[3]!.address)
    const nodes = (await clientCall(client, ask, { kind: 'nodes' })).nodes
    expect(nodes).toHaveLength(4)

    const submit = async (spec: object): Promise<string> => (await clientCall(client, ask, { kind: 'submit', spec: JSON.stringify(spec) })).jobId
    const placed = (jobId: string, replicas: number): Promise<JobDetail> =>
      poll(() => clientCall(client, ask, { kind: 'job', jobId }), (detail) => new Set(detail.assignments.filter((assignment) => assignment.committed).map((assignment) => assignment.replica)).size === replicas, placedTimeoutMs, `${jobId} placed`)
    const nodesOf = (detail: JobDetail): string[] => [...new Set(detail.assignments.filter((assignment) => assignment.committed).map((assignment) => assignment.node))].sort()

    const gang = await submit({ name: 'gang', command: ['sleep', '30'], resources: { cpu: '800m', memory: '32Mi' }, replicas: 2, intent: 'tightly-coupled' })
    expect(nodesOf(await placed(gang, 2))).toEqual([daemons[0]!.peerId, daemons[1]!.peerId].sort())

    const labelled: string[] = []
    for (let index = 0; index < 2; index++) labelled.push(await submit({ name: `gold-${index}`, command: ['sleep', '5'], resources: { cpu: '100m', memory: '16Mi' }, constraints: { labels: { tier: 'gold' } } }))
    for (const jobId of labelled) expect(nodesOf(await placed(jobId, 1))).toEqual([daemons[3]!.peerId])

    // A gang that no island can hold (pg-a is busy, pg-b has one node) waits, and says why.
    const second = await submit({ name: 'gang-2', command: ['sleep', '5'], resources: { cpu: '800m', memory: '32Mi' }, replicas: 2, intent: 'tightly-coupled' })
    const waiting = await poll(() => clientCall(client, ask, { kind: 'job', jobId: second }), (detail) => detail.unplaceable.length > 0 || detail.assignments.length > 0, placedTimeoutMs, 'the second gang to be judged')
    expect(waiting.assignments.filter((assignment) => assignment.committed && [daemons[2]!.peerId, daemons[3]!.peerId].includes(assignment.node))).toEqual([])
    await clientCall(client, ask, { kind: 'cancel', jobId: gang })
    await clientCall(client, ask, { kind: 'cancel', jobId: second })
  }, 120_000)

  it('refuses bad attribute flags at start, naming the flag', async () => {
    const dir = await resources.tempDir('fabric-attributes-bad-')
    const { peerId } = JSON.parse((await runCli(['node', 'id', '--data', dir])).stdout) as { peerId: string }
    for (const [flags, message] of [
      [['--label', 'tier'], /--label: "tier" is not key=value/],
      [['--label', 'runtime.docker=no'], /label runtime\.docker is set by the daemon itself/],
      [['--label', 'a=b', '--label', 'a=c'], /label a given twice/],
      [['--label', 'bad key=x'], /label key "bad key"/],
      [['--placement-group', '-x'], /--placement-group: "-x"/],
    ] as const) {
      const result = await runCli(['node', 'start', '--data', dir, '--voters', peerId, ...flags])
      expect(result.code, result.stderr).toBe(1)
      expect(result.stderr).toMatch(message)
    }
  })
})
