// What this node can run and checkpoint, probed now: CRIU (version, `criu check`, and this boot's
// real dump and restore of a tiny process), the Docker engine, cgroups, PID namespaces, NVIDIA GPUs.
// `fabric doctor` prints it; the daemon can use the same report to decide which runtimes it offers
// and bids for.
import { readFile } from 'node:fs/promises'
import { probeCriu, type CriuSupport } from './criu.ts'
import { dockerSocketPath, probeDockerEngine, type DockerEngineInfo } from './docker-engine.ts'
import { probePidNamespace, type NamespaceSupport } from './isolation.ts'
import { queryNvidiaGpus } from './nvidia-smi.ts'

export type CgroupReport = { version: 'v1' | 'v2' | 'hybrid'; controllers: string[] } | { version: 'none'; reason: string }

export interface GpuReport {
  /** Where nvidia-smi is, when installed. */
  nvidiaSmi: string | undefined
  gpus: { index: number; name: string; memoryMiB: number }[]
  /** Why no GPU is listed, when none is. */
  note?: string
}

export interface NodeCapabilities {
  criu: CriuSupport
  docker: DockerEngineInfo
  cgroups: CgroupReport
  pidNamespaces: NamespaceSupport
  gpus: GpuReport
  /** What follows for each runtime: can it run jobs here, can it checkpoint them (and why not). */
  runtimes: {
    process: { run: true; checkpoint: boolean; why?: string }
    docker: { run: boolean; checkpoint: boolean; why?: string }
  }
}

export interface CapabilityProbeOptions {
  dockerSocket?: string
  criuPath?: string
}

export async function probeNodeCapabilities(options: CapabilityProbeOptions = {}): Promise<NodeCapabilities> {
  const endpoint = dockerSocketPath(options.dockerSocket)
  const [criu, docker, cgroups, pidNamespaces, gpus] = await Promise.all([
    probeCriu(options.criuPath),
    probeDockerEngine(endpoint),
    probeCgroupVersion(),
    probePidNamespace(),
    probeGpus(),
  ])
  const processWhy = !pidNamespaces.available ? `no PID namespace for jobs: ${pidNamespaces.reason}` : !criu.available ? criu.reason : undefined
  const dockerWhy = !docker.available ? `no Docker engine: ${docker.reason}` : !docker.experimental ? 'the Docker engine has experimental features off' : !criu.available ? criu.reason : undefined
  return {
    criu,
    docker,
    cgroups,
    pidNamespaces,
    gpus,
    runtimes: {
      process: { run: true, checkpoint: processWhy === undefined, ...(processWhy === undefined ? {} : { why: processWhy }) },
      docker: { run: docker.available, checkpoint: dockerWhy === undefined, ...(dockerWhy === undefined ? {} : { why: dockerWhy }) },
    },
  }
}

export async function probeCgroupVersion(): Promise<CgroupReport> {
  let mounts: string
  try {
    mounts = await readFile('/proc/self/mountinfo', 'utf8')
  } catch (error) {
    return { version: 'none', reason: `cannot read /proc/self/mountinfo: ${(error as Error).message}` }
  }
  let v2 = false
  const controllers = new Set<string>()
  for (const line of mounts.split('\n')) {
    const right = line.split(' - ')[1]
    if (right === undefined) continue
    const [fsType, , superOptions] = right.split(' ')
    if (fsType === 'cgroup2') v2 = true
    if (fsType === 'cgroup') {
      for (const option of (superOptions ?? '').split(',')) if (['cpu', 'cpuacct', 'memory', 'pids', 'cpuset', 'freezer', 'devices', 'blkio'].includes(option)) controllers.add(option)
    }
  }
  if (v2 && controllers.size > 0) return { version: 'hybrid', controllers: [...controllers].sort() }
  if (controllers.size > 0) return { version: 'v1', controllers: [...controllers].sort() }
  if (v2) {
    const offered = await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8').catch(() => '')
    return { version: 'v2', controllers: offered.trim().split(/\s+/).filter((name) => name !== '') }
  }
  return { version: 'none', reason: 'no cgroup file system is mounted' }
}

export async function probeGpus(): Promise<GpuReport> {
  const listing = await queryNvidiaGpus()
  if (listing.kind === 'absent') return { nvidiaSmi: undefined, gpus: [], note: listing.reason }
  if (listing.kind === 'problem') return { nvidiaSmi: listing.nvidiaSmi, gpus: [], note: listing.problem }
  const gpus = listing.gpus.map(({ index, name, memoryMiB }) => ({ index, name, memoryMiB }))
  return gpus.length === 0 ? { nvidiaSmi: listing.nvidiaSmi, gpus, note: 'nvidia-smi lists no GPU' } : { nvidiaSmi: listing.nvidiaSmi, gpus }
}

/** The report as lines for a terminal. */
export function renderCapabilities(report: NodeCapabilities): string {
  const mark = (ok: boolean): string => (ok ? 'ok  ' : 'no  ')
  const lines: string[] = []
  const { criu, docker, cgroups, pidNamespaces, gpus, runtimes } = report
  lines.push(`${mark(criu.available)}CRIU            ${criu.available ? `${criu.version} at ${criu.path}, criu check and a dump/restore probe passed (${criu.dumpProbe.durationMs} ms, ${criu.dumpProbe.probedAt})` : `${criu.version !== undefined ? `${criu.version} at ${criu.path}: ` : ''}${criu.reason}`}`)
  lines.push(
    `${mark(docker.available)}Docker engine   ${docker.available ? `${docker.version} (API ${docker.apiVersion}) at ${docker.endpoint}, experimental ${docker.experimental ? 'on' : 'off (no checkpoints)'}, cgroup v${docker.cgroupVersion} (${docker.cgroupDriver})` : `${docker.endpoint}: ${docker.reason}`}`,
  )
  lines.push(`${mark(cgroups.version !== 'none')}cgroups         ${cgroups.version === 'none' ? cgroups.reason : `${cgroups.version}: ${cgroups.controllers.join(' ') || 'no controllers'}`}`)
  lines.push(`${mark(pidNamespaces.available)}PID namespaces  ${pidNamespaces.available ? 'jobs get their own' : pidNamespaces.reason}`)
  lines.push(`${mark(gpus.gpus.length > 0)}GPUs            ${gpus.gpus.length > 0 ? gpus.gpus.map((gpu) => `#${gpu.index} ${gpu.name} ${gpu.memoryMiB} MiB`).join(', ') : gpus.note ?? 'none'}`)
  lines.push('')
  lines.push(`runtime process: runs jobs; checkpoints ${runtimes.process.checkpoint ? 'yes' : `no (${runtimes.process.why})`}`)
  lines.push(`runtime docker:  ${runtimes.docker.run ? 'runs jobs' : 'cannot run jobs'}; checkpoints ${runtimes.docker.checkpoint ? 'yes' : `no (${runtimes.docker.why})`}`)
  return lines.join('\n')
}
