// A followed migration asked of a node that is neither the job's old node nor its new one: the
// move comes from the document (a real one, from the consensus harness), the restore's progress is
// asked of the new node once and relayed frame by frame, the new node's `end` frame does not end
// the answer early, and a new node that does not answer shows as one restore step without numbers.
// (The mesh test asks the target itself; whether a remote restore is still under way when a real
// forward arrives depends on timing, so this path is pinned here.)
import { describe, expect, it } from 'vitest'
import { Cluster, testJob } from '../consensus/testing/harness.ts'
import { asJobId, asNodeId, type NodeId } from '../consensus/index.ts'
import type { ClientBackend } from './client-service.ts'
import type { ClientRequestBody, ClientResponse, ProgressFrame } from './client-wire.ts'
import { MoveRequests } from './move-requests.ts'

const [n0, n3, n4] = [asNodeId('n0'), asNodeId('n3'), asNodeId('n4')]
const jobId = asJobId('mover')

/** A 5-node harness cluster with `mover` running on n3 (the cheapest node). */
function clusterWithMover(seed: number): Cluster {
  const cluster = new Cluster({ voters: 3, nonVoters: 2, seed, pricesPerCpuHour: [undefined, undefined, undefined, 0.01, 0.02] })
  const leader = cluster.awaitLeader()
  cluster.advance(200)
  cluster.submit(leader.id, testJob('mover'))
  expect(cluster.runUntil(() => cluster.running(n3).has(jobId), 2_000)).toBe(true)
  return cluster
}

const frame = (phase: ProgressFrame['phase'], bytesDone: number): ClientResponse => ({ type: 'progress', jobId, node: n4, phase, bytesDone, bytesTotal: 100, chunksDone: bytesDone / 10, chunksTotal: 10, bytesPerSecond: 1_000, etaMs: 0 })

/** Node n0's backend over the harness: migrate drives the whole move (checkpoint on n3, restore on n4) before it answers. */
function backendOf(cluster: Cluster, forward: (node: NodeId, body: ClientRequestBody) => AsyncIterable<ClientResponse>, asked: { node: NodeId; body: ClientRequestBody }[]): ClientBackend {
  const backend: Partial<ClientBackend> = {
    nodeId: n0,
    nowMs: () => Date.now(),
    document: () => cluster.peer(n0).document,
    async migrate(job, to) {
      cluster.step(n0, { kind: 'migrate', requestId: 'm1', jobId: job, to, where: {} })
      expect(cluster.runUntil(() => cluster.effectsOf('checkpoint-job', n3).length > 0, 2_000)).toBe(true)
      cluster.checkpointed(n3, jobId, 'b3:mover-1', true)
      expect(cluster.runUntil(() => cluster.running(n4).has(jobId), 2_000)).toBe(true)
      cluster.advance(1_500) // n0's document holds the commit marker of the new assignment
      return { ok: true, jobId: job }
    },
    forward(node, body) {
      asked.push({ node, body })
      return forward(node, body)
    },
  }
  return backend as ClientBackend
}

/** The request as the client service hands it on (signed fields checked before it gets here). */
const followRequest = { kind: 'migrate', v: 1, requestId: 'r-follow', client: 'client', mesh: '0'.repeat(64), signedAtMs: 0, signature: '', jobId, to: n4, follow: true, waitMs: 5_000 } as const

async function collect(answer: AsyncIterable<ClientResponse>): Promise<ClientResponse[]> {
  const frames: ClientResponse[] = []
  for await (const response of answer) frames.push(response)
  return frames
}

describe('migrate --follow asked of a third node', () => {
  it('relays the new node\'s restore progress, past its end frame, then answers with the move', async () => {
    const cluster = clusterWithMover(51)
    const asked: { node: NodeId; body: ClientRequestBody }[] = []
    const forward = async function* (): AsyncGenerator<ClientResponse> {
      yield frame('fetch', 50)
      yield frame('fetch', 100)
      yield frame('restore', 100)
      yield { type: 'end' }
    }
    const moves = new MoveRequests(backendOf(cluster, forward, asked), { movePollMs: 5 })
    const frames = await collect(moves.migrate(followRequest, new AbortController().signal))
    expect(asked).toEqual([{ node: n4, body: { kind: 'restore-progress', jobId, waitMs: expect.any(Number) } }])
    expect(frames.map((response) => response.type)).toEqual(['moved', 'progress', 'progress', 'progress', 'result'])
    expect(frames[0]).toMatchObject({ type: 'moved', jobId, from: n3, to: n4, how: 'restored', cid: 'b3:mover-1' })
    expect(frames.slice(1, 4).map((response) => (response as ProgressFrame).phase)).toEqual(['fetch', 'fetch', 'restore'])
    expect(frames.at(-1)).toMatchObject({ type: 'result', value: { jobId, to: n4, moved: [{ jobId, to: n4, how: 'restored' }] } })
  })

  it('shows one restore step without numbers when the new node does not answer, and still answers with the move', async () => {
    const cluster = clusterWithMover(52)
    const asked: { node: NodeId; body: ClientRequestBody }[] = []
    const forward = async function* (): AsyncGenerator<ClientResponse> {
      throw new Error('dial failed')
    }
    const moves = new MoveRequests(backendOf(cluster, forward, asked), { movePollMs: 5 })
    const frames = await collect(moves.migrate(followRequest, new AbortController().signal))
    expect(asked).toHaveLength(1)
    expect(frames.map((response) => response.type)).toEqual(['moved', 'progress', 'result'])
    expect(frames[1]).toMatchObject({ type: 'progress', jobId, node: n4, phase: 'restore', bytesDone: 0, bytesTotal: 0 })
    expect(frames.at(-1)).toMatchObject({ type: 'result', value: { moved: [{ to: n4, how: 'restored' }] } })
  })
})
