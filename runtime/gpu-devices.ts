// Which GPUs a run was given, and how each runtime hands them to the job. A runtime never chooses
// GPUs: the daemon's allocator (node/gpu-allocator.ts) names the device indices in the RunSpec, so
// two runs on one node never share a device. The process runtime tells the job through the
// environment (CUDA and NVIDIA's variables); the Docker runtime asks the engine for exactly those
// devices. The job's own env cannot widen what it was given: these variables are the runtime's.
import type Docker from 'dockerode'
import { InvalidRunSpecError, type RunSpec } from './runtime.ts'

/** Device indices are nvidia-smi's; none is this large. */
export const maxGpuIndex = 1_023

/** The variables that say which GPUs a process may use: set by the runtime, never taken from the job's env. */
export const gpuVisibilityVariables = ['CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES'] as const

/** The device indices `spec` was given ([] for none); InvalidRunSpecError when they are not indices or disagree with gpuCount. */
export function assignedGpus(spec: RunSpec): readonly number[] {
  const jobId = spec.jobId
  const devices = spec.resources?.gpuDevices ?? []
  for (const index of devices) {
    if (!Number.isInteger(index) || index < 0 || index > maxGpuIndex) throw new InvalidRunSpecError({ jobId, field: 'resources.gpuDevices', reason: `holds ${index}, not a device index (0 to ${maxGpuIndex})` })
  }
  if (new Set(devices).size !== devices.length) throw new InvalidRunSpecError({ jobId, field: 'resources.gpuDevices', reason: `names a device twice (${devices.join(',')})` })
  const count = spec.resources?.gpuCount ?? devices.length
  if (count !== devices.length) {
    throw new InvalidRunSpecError({ jobId, field: 'resources.gpuDevices', reason: `names ${devices.length} devices for resources.gpuCount ${count}: a runtime does not choose GPUs, the daemon names them` })
  }
  return devices
}

/**
 * The environment a process job gets for its GPUs. Without any, CUDA_VISIBLE_DEVICES is set empty:
 * unset, CUDA shows a process every GPU of the machine, including those other jobs hold.
 * NVIDIA_VISIBLE_DEVICES matters only to NVIDIA's container toolkit (a job that starts containers).
 */
export function gpuEnvironment(devices: readonly number[]): Record<string, string> {
  if (devices.length === 0) return { CUDA_VISIBLE_DEVICES: '' }
  const list = devices.join(',')
  return { CUDA_VISIBLE_DEVICES: list, NVIDIA_VISIBLE_DEVICES: list }
}

/**
 * The container's GPU request: exactly these devices (the engine's `--gpus '"device=0,1"'`). Inside
 * the container the toolkit numbers them from 0, so CUDA_VISIBLE_DEVICES is not set there.
 */
export function gpuDeviceRequests(devices: readonly number[]): Docker.DeviceRequest[] | undefined {
  if (devices.length === 0) return undefined
  return [{ Driver: 'nvidia', DeviceIDs: devices.map(String), Capabilities: [['gpu']] }]
}

/**
 * The container's GPU variables. A container given no GPU gets NVIDIA_VISIBLE_DEVICES=void: CUDA
 * images set it to `all`, and on an engine whose default runtime is NVIDIA's that alone would expose
 * every GPU of the machine. With GPUs the engine sets it from the device request.
 */
export function containerGpuEnv(devices: readonly number[]): string[] {
  return devices.length === 0 ? ['NVIDIA_VISIBLE_DEVICES=void'] : []
}
