// Integration: GPU jobs on a real daemon (one Shuttle process, the process runtime). This machine has
// no GPU, so the daemon's PATH starts with a stand-in nvidia-smi that lists two. The node offers
// them (count and model in `nodes`); two 1-GPU jobs run at once on disjoint devices (each sees its
// own CUDA_VISIBLE_DEVICES; `fabric job` shows the index); a third waits, unplaced, while both run,
// and once the shorter one has finished it runs on the device that one gave back.
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { nvidiaSmiArguments } from '../runtime/index.ts'
import { clientCall } from './client-connection.ts'
import type { JobDetail } from './client-wire.ts'
import { runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const model = 'NVIDIA A100-SXM4-40GB'
/** Answers only the daemon's query (systeminformation asks other questions: those fail, as on a machine without the driver). */
const standInNvidiaSmi = `#!/bin/sh
if [ "$1 $2" != "${nvidiaSmiArguments.join(' ')}" ]; then echo "stand-in nvidia-smi: unexpected query $*" >&2; exit 2; fi
echo "0, ${model}, 40960, GPU-00000000-1111-2222-3333-444444444444"
echo "1, ${model}, 40960, GPU-11111111-1111-2222-3333-444444444444"
`

const resources = testResources()

describe('GPU jobs on a Shuttle process whose machine lists two GPUs', () => {
  it('runs two 1-GPU jobs on disjoint devices, keeps a third waiting until one ends, then runs it on the freed device', async () => {
    const bin = await resources.tempDir('fabric-gpu-bin-')
    await writeFile(join(bin, 'nvidia-smi'), standInNvidiaSmi)
    await chmod(join(bin, 'nvidia-smi'), 0o755)
    const { daemons, dataDirs } = await resources.startMesh({
      nodes: 1,
      dirPrefix: 'fabric-gpu-mesh-',
      args: () => ['--cpu-millis', '2000', '--memory-mib', '2048', '--no-sync-writes'],
      readyTimeoutMs: 30_000,
      leaderTimeoutMs: 20_000,
      daemon: { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } },
    })
    const node = daemons[0]!
    const host = await resources.clientHost()
    const target = multiaddr(node.address)
    const job = (jobId: string): Promise<JobDetail> => clientCall(host, target, { kind: 'job', jobId })
    const submit = async (name: string, script: string): Promise<string> => {
      const spec = JSON.stringify({ name, command: ['sh', '-c', script], resources: { cpu: '100m', memory: '32Mi', gpu: { count: 1 } } })
      return (await clientCall(host, target, { kind: 'submit', spec })).jobId
    }
    const output = (jobId: string): Promise<string> => readFile(join(dataDirs[0]!, 'jobs', jobId, 'stdout.log'), 'utf8')
    const describeNode = (): string => node.stderrTail.slice(-10).join('\n')

    // Discovered through nvidia-smi and offered: two GPUs of that model.
    expect(node.logged('machine', { gpuSource: 'nvidia-smi' })).toBe(true)
    const { nodes } = await clientCall(host, target, { kind: 'nodes' })
    expect(nodes[0]).toMatchObject({ capacity: { gpuCount: 2 }, gpu: { model, memoryMiB: 40_960 } })

    // The short one ends first; the long one outlives the third job's whole run.
    const short = await submit('gpu-short', 'echo "gpus=$CUDA_VISIBLE_DEVICES"; sleep 5')
    const long = await submit('gpu-long', 'echo "gpus=$CUDA_VISIBLE_DEVICES"; sleep 16')
    const running = (jobId: string): Promise<JobDetail> => poll(() => job(jobId), (detail) => detail.local?.state === 'running', 20_000, `${jobId} to run`, { describe: describeNode })
    const [shortRun, longRun] = [await running(short), await running(long)]
    const shortGpu = shortRun.local!.gpus
    const longGpu = longRun.local!.gpus
    expect(shortGpu).toHaveLength(1)
    expect(longGpu).toHaveLength(1)
    expect([...shortGpu!, ...longGpu!].sort()).toEqual([0, 1])
    expect(shortRun.demand).toMatchObject({ gpuCount: 1 })
    expect(await poll(() => output(short), (text) => text !== '', 5_000, 'the short job\'s output')).toBe(`gpus=${shortGpu![0]}\n`)
    expect(await poll(() => output(long), (text) => text !== '', 5_000, 'the long job\'s output')).toBe(`gpus=${longGpu![0]}\n`)

    // No GPU is free: the leader does not place the third (its accounting counts GPUs per node).
    const third = await submit('gpu-third', 'echo "gpus=$CUDA_VISIBLE_DEVICES"; sleep 1')
    const waiting = await poll(() => job(third), (detail) => detail.state === 'unplaceable', 10_000, 'the third job to be refused a place', { describe: describeNode })
    expect(waiting.local).toBeNull()
    expect(waiting.unplaceable.map((refusal) => refusal.reason).join(' ')).toMatch(/not enough free gpu/)
    const shortNow = await job(short)
    expect(shortNow.state, 'the short job still ran while the third waited').not.toBe('finished')

    const text = await runCli(['job', long, '--node', node.address])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(new RegExp(`here +running, pid \\d+, GPUs ${longGpu![0]}\\b`))
    expect(text.stdout).toMatch(/demand +100m CPU, 32 MiB, 1 GPU/)

    // The short job ends, its device is free again: the third runs on it while the long one still runs.
    const thirdRun = await poll(() => job(third), (detail) => detail.local?.state === 'running' || detail.state === 'finished', 30_000, 'the third job to run', { describe: describeNode })
    expect((await job(short)).state).toBe('finished')
    expect(thirdRun.local!.gpus).toEqual(shortGpu)
    expect((await job(long)).local?.state).toBe('running')
    expect(await poll(() => output(third), (text) => text !== '', 5_000, 'the third job\'s output')).toBe(`gpus=${shortGpu![0]}\n`)
    const ended = await poll(() => Promise.all([job(short), job(long), job(third)]), (details) => details.every((detail) => detail.state === 'finished'), 30_000, 'all three to finish', { describe: describeNode })
    expect(ended.map((detail) => detail.exitCode)).toEqual([0, 0, 0])
  }, 90_000)
})
