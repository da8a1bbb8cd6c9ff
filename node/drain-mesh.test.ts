// Integration: three real daemons (processes over loopback) with the process runtime and real CRIU,
// driven by the `fabric` CLI as a user would. A counting job asks for 2 replicas of each snapshot:
// `fabric checkpoint` streams the runner's progress and returns a CID that `fabric snapshots` then
// lists with 2 holders. `fabric drain` on the job's node moves it away (checkpoint, restore on
// another node) and the count goes on from where it stopped; `fabric nodes` shows the node
// draining until `fabric undrain`. `fabric migrate --region --follow` moves a job to the one node
// in that region (not the cheaper one elsewhere) while streaming the target's fetch and restore.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { beforeAll, describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import type { NodeView } from './client-wire.ts'
import { counterScript, numbers, startCounting } from './testing/counter-job.ts'
import { Daemon, runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { criuMissingHere, runtimeRequirement } from './testing/runtime-requirement.ts'
import { testResources } from './testing/test-mesh.ts'

const criu = runtimeRequirement({ CRIU: await criuMissingHere() })
const resources = testResources()
let dataDirs: string[] = []
let daemons: Daemon[] = []
let client: Libp2p | null = null

beforeAll(async () => {
  if (!criu.run) return
  ;({ daemons, dataDirs } = await resources.startMesh({
    nodes: 3,
    dirPrefix: 'fabric-drain-mesh-',
    // Three providers: each snapshot's 2 replicas go to the two other nodes.
    args: (index) => ['--provider', `p${index}`, '--region', `r${index}`, '--price-per-hour', String(1 + index), '--cpu-millis', '2000', '--memory-mib', '4096', '--no-sync-writes'],
    readyTimeoutMs: 30_000,
    leaderTimeoutMs: 30_000,
  }))
  client = await resources.clientHost()
}, 120_000)

const counter = counterScript()

/** `fabric ARGS --node D --json`: its JSON lines (exit code 0 required, with the output in the failure). */
async function fabric(daemon: Daemon, args: readonly string[], timeoutMs = 90_000): Promise<Record<string, unknown>[]> {
  const result = await runCli([...args, '--node', daemon.address, '--json', '--timeout', '60000'], timeoutMs)
  expect(result.code, `fabric ${args.join(' ')}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0)
  const text = result.stdout.trim()
  // Listings print one (indented) JSON document; streams print one JSON object per line.
  try {
    return [JSON.parse(text) as Record<string, unknown>]
  } catch {
    return text.split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
  }
}

describe('checkpoint, snapshots and drain from the CLI on a mesh of three Shuttle processes', () => {
  it.skipIf(!criu.run)(`checkpoints a counting process on demand (2 holders), then drains its node and it counts on elsewhere${criu.note}`, async () => {
    const spec = JSON.stringify({ name: 'drain-counter', command: ['sh', '-c', counter], resources: { cpu: '250m', memory: '64Mi' }, checkpoint: { interval: '1h', keep: 2, replicas: 2 } })
    // Submitting and watching the job go through a client host (quicker than a CLI process per poll).
    const host = client!
    const { jobId, job, from, sourceLog } = await startCounting(host, { daemons, dataDirs }, spec, 'on its node')

    // Asked of a node that does not run it: the request is passed on to the runner, which streams its progress.
    const asked = daemons[(from + 1) % 3]!
    const lines = await fabric(asked, ['checkpoint', jobId])
    const result = lines.at(-1)!
    expect(result.type).toBe('result')
    const made = (result.snapshots as { cid: string; node: string; holders: string[]; sizeBytes: number; chunks: number }[])
    expect(made).toHaveLength(1)
    expect(made[0]!.cid).toMatch(/^b3:[0-9a-f]{64}$/)
    expect(made[0]!.node).toBe(daemons[from]!.peerId)
    expect([...made[0]!.holders].sort()).toEqual(daemons.filter((_, index) => index !== from).map((daemon) => daemon.peerId).sort())
    expect(made[0]!.sizeBytes).toBeGreaterThan(0)
    expect(made[0]!.chunks).toBeGreaterThan(0)
    const phases = lines.filter((line) => line.type === 'progress').map((line) => line.phase as string)
    for (const phase of ['checkpoint', 'pack', 'replicate', 'done']) expect(phases, phases.join(',')).toContain(phase)
    // Both holders' fetches were reported, each ending with everything fetched.
    const replicated = lines.filter((line) => line.type === 'progress' && line.phase === 'replicate')
    expect(new Set(replicated.map((line) => line.peer))).toEqual(new Set(made[0]!.holders))
    for (const holder of made[0]!.holders) {
      const last = replicated.filter((line) => line.peer === holder).at(-1)!
      expect(last.bytesDone).toBe(last.bytesTotal)
    }

    const [listed] = await fabric(daemons[(from + 2) % 3]!, ['snapshots', jobId])
    const snapshots = listed!.snapshots as { cid: string; holders: string[]; sizeBytes: number; chunks: number; replica: string }[]
    expect(snapshots.map((snapshot) => snapshot.cid)).toContain(made[0]!.cid)
    const recorded = snapshots.find((snapshot) => snapshot.cid === made[0]!.cid)!
    expect(recorded.holders).toHaveLength(2)
    expect([recorded.sizeBytes, recorded.chunks, recorded.replica]).toEqual([made[0]!.sizeBytes, made[0]!.chunks, jobId])
    // It kept running through the checkpoint.
    const countedAfterCheckpoint = numbers(await readFile(sourceLog, 'utf8')).length
    await poll(() => readFile(sourceLog, 'utf8'), (text) => numbers(text).length >= countedAfterCheckpoint + 5, 20_000, 'the counter to go on after the checkpoint')

    // Drain its node: the job moves away, restored from the drain's checkpoint.
    const drained = daemons[from]!
    const drainLines = await fabric(daemons[(from + 1) % 3]!, ['drain', drained.peerId!, '--wait', '90000'], 150_000)
    const drainResult = drainLines.at(-1)!
    expect(drainResult).toMatchObject({ type: 'result', nodeId: drained.peerId, complete: true })
    const moved = (drainResult.moved as { jobId: string; from: string; to: string; how: string; cid: string | null }[])
    expect(moved).toHaveLength(1)
    expect(moved[0]).toMatchObject({ jobId, from: drained.peerId, how: 'restored' })
    expect(moved[0]!.to).not.toBe(drained.peerId)
    expect(moved[0]!.cid).toMatch(/^b3:/)
    expect(moved[0]!.cid).not.toBe(made[0]!.cid)
    expect(drainLines.filter((line) => line.type === 'moved')).toHaveLength(1)
    const to = daemons.findIndex((daemon) => daemon.peerId === moved[0]!.to)
    const targetLog = join(dataDirs[to]!, 'jobs', jobId, 'stdout.log')
    const after = numbers(await poll(() => readFile(targetLog, 'utf8'), (text) => numbers(text).length >= 5, 60_000, 'the restored counter to print on the target'))
    const before = numbers(await readFile(sourceLog, 'utf8'))
    expect(after[0]).toBe(before.at(-1)! + 1)
    for (let index = 1; index < after.length; index++) expect(after[index]).toBe(after[index - 1]! + 1)

    const draining = async (): Promise<boolean | undefined> => ((await fabric(daemons[to]!, ['nodes']))[0] as unknown as NodeView[]).find((node) => node.id === drained.peerId)?.draining
    expect(await draining()).toBe(true)
    await fabric(daemons[to]!, ['undrain', drained.peerId!])
    await poll(draining, (value) => value === undefined, 10_000, 'the node no longer shown draining')
    await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'cancel', jobId })
  }, 300_000)

  it.skipIf(!criu.run)(`moves a job to the region asked for and follows the target's fetch and restore; refuses a region with no node${criu.note}`, async () => {
    const host = client!
    const spec = JSON.stringify({ name: 'region-counter', command: ['sh', '-c', counter], resources: { cpu: '250m', memory: '64Mi' } })
    const { jobId, job, from, sourceLog } = await startCounting(host, { daemons, dataDirs }, spec, 'on its node')

    const nowhere = await runCli(['migrate', jobId, '--region', 'mars-1', '--node', daemons[0]!.address], 60_000)
    expect(nowhere.code, nowhere.stderr).toBe(1)
    expect(nowhere.stderr).toMatch(/no registered node other than the job's own is in region mars-1/)

    // The pricier of the two other nodes: an unconstrained auction would pick the cheaper one.
    const target = Math.max(...[0, 1, 2].filter((index) => index !== from))
    // Asked of the target itself, which follows its own restore (its progress frames, then the move's
    // answer): the path that once ended the answer early with the progress stream's own end frame.
    const lines = await fabric(daemons[target]!, ['migrate', jobId, '--region', `r${target}`, '--follow', '--wait', '90000'], 150_000)
    const result = lines.at(-1)!
    expect(result).toMatchObject({ jobId, region: `r${target}` })
    const moved = result.moved as { to: string; how: string }[]
    expect(moved).toMatchObject([{ jobId, from: daemons[from]!.peerId, to: daemons[target]!.peerId, how: 'restored' }])
    const fetches = lines.filter((line) => line.type === 'progress' && line.phase === 'fetch')
    expect(fetches.length, JSON.stringify(lines)).toBeGreaterThan(0)
    expect(fetches.every((line) => line.node === daemons[target]!.peerId)).toBe(true)
    expect(fetches.at(-1)!.bytesDone).toBe(fetches.at(-1)!.bytesTotal)
    expect(lines.some((line) => line.type === 'progress' && line.phase === 'restore' && line.node === daemons[target]!.peerId)).toBe(true)
    const targetLog = join(dataDirs[target]!, 'jobs', jobId, 'stdout.log')
    const after = numbers(await poll(() => readFile(targetLog, 'utf8'), (text) => numbers(text).length >= 5, 60_000, 'the restored counter to print on the target'))
    expect(after[0]).toBe(numbers(await readFile(sourceLog, 'utf8')).at(-1)! + 1)
    await clientCall(host, multiaddr(daemons[0]!.address), { kind: 'cancel', jobId })
  }, 300_000)
})
