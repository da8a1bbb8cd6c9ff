// How a RunSpec becomes a Docker container: pure, so the shape (limits, GPU DeviceRequests, the
// job's work folder mounted at a fixed path) is unit-tested without an engine or a GPU. The work
// folder's path inside the container never changes, so a checkpoint restores into a container on
// another node whose data folder lives elsewhere.
import { posix } from 'node:path'
import type Docker from 'dockerode'
import { assignedGpus, containerGpuEnv, gpuDeviceRequests, gpuVisibilityVariables } from './gpu-devices.ts'
import { InvalidRunSpecError, type RunSpec } from './runtime.ts'

/** Where the job's work folder (DATA/jobs/<jobId>/work on the host) appears inside its container. */
export const containerWorkDir = '/fabric/work'

export const dockerLabels = {
  jobId: 'fabric.job-id',
  runtimeInstance: 'fabric.runtime-instance',
} as const

export interface ContainerContext {
  name: string
  /** The host folder mounted at containerWorkDir. */
  hostWorkDir: string
  networkMode: string
  runtimeInstance: string
}

export function containerCreateOptions(spec: RunSpec, context: ContainerContext): Docker.ContainerCreateOptions {
  const jobId = spec.jobId
  if (spec.image === undefined || spec.image === '') throw new InvalidRunSpecError({ jobId, field: 'image', reason: 'is required by the docker runtime' })
  const argv = [...spec.command, ...(spec.args ?? [])]
  if (argv.length === 0 || argv[0] === '') throw new InvalidRunSpecError({ jobId, field: 'command', reason: 'is empty' })
  const workingDir = posix.normalize(posix.join(containerWorkDir, spec.workingDir ?? '.'))
  if (workingDir !== containerWorkDir && !workingDir.startsWith(`${containerWorkDir}/`)) {
    throw new InvalidRunSpecError({ jobId, field: 'workingDir', reason: `leaves the job's folder (${spec.workingDir})` })
  }
  const resources = spec.resources ?? {}
  const hostConfig: Docker.HostConfig = {
    Binds: [`${context.hostWorkDir}:${containerWorkDir}`],
    NetworkMode: context.networkMode,
  }
  if (resources.cpuMillis !== undefined) hostConfig.NanoCpus = Math.round(resources.cpuMillis * 1e6)
  if (resources.memoryMiB !== undefined) {
    hostConfig.Memory = resources.memoryMiB * 2 ** 20
    hostConfig.MemorySwap = hostConfig.Memory // no swap beyond the limit
  }
  // NVIDIA's container toolkit answers the request for exactly the devices the daemon assigned.
  const gpus = assignedGpus(spec)
  const deviceRequests = gpuDeviceRequests(gpus)
  if (deviceRequests !== undefined) hostConfig.DeviceRequests = deviceRequests
  const gpuVariables = new Set<string>(gpuVisibilityVariables)
  return {
    name: context.name,
    Image: spec.image,
    // The command replaces the image's entrypoint, as in the process runtime: argv is the whole call.
    Entrypoint: argv.slice(0, 1),
    Cmd: argv.slice(1),
    Env: [`FABRIC_JOB_ID=${jobId}`, ...Object.entries(spec.env ?? {}).filter(([key]) => !gpuVariables.has(key)).map(([key, value]) => `${key}=${value}`), ...containerGpuEnv(gpus)],
    WorkingDir: workingDir,
    Labels: { [dockerLabels.jobId]: jobId, [dockerLabels.runtimeInstance]: context.runtimeInstance },
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    HostConfig: hostConfig,
  }
}
