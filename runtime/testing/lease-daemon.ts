// A stand-in daemon for the lease watchdog tests (lease-watchdog.test.ts): builds a runtime in the data
// folder argv[2] (argv[3]: 'process-ns', 'process-group', 'process-restored' or 'docker'), starts one
// long job under a long lease (in 'process-restored' mode: checkpoints and restores it first), then
// sets the lease to end argv[4] ms later and prints {"pid", "deadlineMs", "containers"}. The test then pauses or kills this
// process. It prints {"exit": ...} when it hears the job's exit, and closes the runtime and exits
// when its stdin ends.
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { asJobId } from '../../consensus/index.ts'
import { DockerRuntime } from '../docker-runtime.ts'
import { monotonicNowMs } from '../lease-watchdog.ts'
import { ProcessRuntime } from '../process-runtime.ts'
import type { Runtime } from '../runtime.ts'
import { busyboxImage } from './busybox-image.ts'

const modes = ['process-ns', 'process-group', 'process-restored', 'docker'] as const
const [dataDir, mode, leaseText] = [process.argv[2], process.argv[3] as (typeof modes)[number], process.argv[4]]
if (dataDir === undefined || !modes.includes(mode) || !(Number(leaseText) > 0)) {
  console.error(`usage: lease-daemon.ts DATA_DIR ${modes.join('|')} LEASE_MS`)
  process.exit(2)
}
const silent = { debug() {}, info() {}, warn() {}, error() {} }
const runtime: Runtime & { containers?(): Promise<string[]> } =
  mode === 'docker'
    ? new DockerRuntime({ dataDir, networkMode: 'none', defaultImage: busyboxImage }, { logger: silent })
    : new ProcessRuntime({ dataDir, pidNamespace: mode === 'process-group' ? 'off' : 'auto', cgroups: 'off' }, { logger: silent })
const jobId = asJobId('guarded')
// A child and a grandchild-to-be, so the test can check the whole tree ends.
const command = ['/bin/sh', '-c', 'sleep 60 & echo up > up; wait']
runtime.onExit((exit) => process.stdout.write(`${JSON.stringify({ exit })}\n`))

// A lease held from the start (as a daemon holds one before it runs jobs), then one ending soon.
runtime.setLeaseDeadline(monotonicNowMs() + 600_000)
let pid: number
if (mode === 'process-restored') {
  const started = await runtime.start({ jobId, command })
  const checkpoint = join(await mkdtemp(join(dataDir, 'checkpoint-')), 'images')
  await runtime.checkpoint(jobId, checkpoint)
  await started.exited
  pid = (await runtime.restore(jobId, checkpoint)).pid
} else {
  pid = (await runtime.start({ jobId, command })).pid
}
const deadlineMs = monotonicNowMs() + Number(leaseText)
runtime.setLeaseDeadline(deadlineMs)
process.stdout.write(`${JSON.stringify({ pid, deadlineMs, containers: (await runtime.containers?.()) ?? [] })}\n`)

process.stdin.resume()
process.stdin.on('end', () => {
  void runtime.close().then(() => process.exit(0))
})
