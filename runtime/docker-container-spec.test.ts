// The container a RunSpec becomes, checked without an engine: GPU requests for the devices the
// daemon assigned (no GPU here to run them on), limits, the work folder mount and the refusals.
import { describe, expect, it } from 'vitest'
import { asJobId } from '../consensus/index.ts'
import { containerCreateOptions, containerWorkDir } from './docker-container-spec.ts'
import { InvalidRunSpecError } from './runtime.ts'

const context = { name: 'fabric-j-1', hostWorkDir: '/data/jobs/j/work', networkMode: 'none', runtimeInstance: 'fabric-test' }
const jobId = asJobId('j')

describe('containerCreateOptions', () => {
  it('asks the engine for exactly the GPUs the job was given with a DeviceRequest, and for none otherwise', () => {
    const withGpus = containerCreateOptions({ jobId, image: 'cuda:12', command: ['nvidia-smi'], env: { NVIDIA_VISIBLE_DEVICES: 'all' }, resources: { gpuCount: 2, gpuDevices: [1, 3] } }, context)
    expect(withGpus.HostConfig?.DeviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: ['1', '3'], Capabilities: [['gpu']] }])
    // The job's env cannot widen the request (the engine sets NVIDIA_VISIBLE_DEVICES from it).
    expect(withGpus.Env).toEqual(['FABRIC_JOB_ID=j'])
    const without = containerCreateOptions({ jobId, image: 'x', command: ['true'], env: { NVIDIA_VISIBLE_DEVICES: 'all', A: '1' }, resources: { gpuCount: 0 } }, context)
    expect(without.HostConfig?.DeviceRequests).toBeUndefined()
    // A CUDA image's NVIDIA_VISIBLE_DEVICES=all would expose every GPU under NVIDIA's default runtime.
    expect(without.Env).toEqual(['FABRIC_JOB_ID=j', 'A=1', 'NVIDIA_VISIBLE_DEVICES=void'])
    expect(containerCreateOptions({ jobId, image: 'x', command: ['true'] }, context).HostConfig?.DeviceRequests).toBeUndefined()
  })

  it('refuses GPUs it is not told the devices of, and device lists that are not indices', () => {
    expect(() => containerCreateOptions({ jobId, image: 'x', command: ['true'], resources: { gpuCount: 2 } }, context)).toThrow(/resources\.gpuDevices names 0 devices for resources\.gpuCount 2/)
    expect(() => containerCreateOptions({ jobId, image: 'x', command: ['true'], resources: { gpuCount: 1, gpuDevices: [0, 1] } }, context)).toThrow(/names 2 devices for resources\.gpuCount 1/)
    expect(() => containerCreateOptions({ jobId, image: 'x', command: ['true'], resources: { gpuDevices: [0, 0] } }, context)).toThrow(/names a device twice/)
    expect(() => containerCreateOptions({ jobId, image: 'x', command: ['true'], resources: { gpuDevices: [-1] } }, context)).toThrow(/holds -1, not a device index/)
  })

  it('turns CPU and memory into NanoCpus and Memory (no swap beyond it), the command into the entrypoint, env and labels', () => {
    const options = containerCreateOptions({ jobId, image: 'img', command: ['/bin/sh', '-c'], args: ['echo hi'], env: { A: '1' }, resources: { cpuMillis: 1500, memoryMiB: 64 } }, context)
    expect(options.HostConfig).toMatchObject({ NanoCpus: 1_500_000_000, Memory: 64 * 2 ** 20, MemorySwap: 64 * 2 ** 20, NetworkMode: 'none', Binds: [`/data/jobs/j/work:${containerWorkDir}`] })
    expect(options).toMatchObject({ Image: 'img', Entrypoint: ['/bin/sh'], Cmd: ['-c', 'echo hi'], Env: ['FABRIC_JOB_ID=j', 'A=1', 'NVIDIA_VISIBLE_DEVICES=void'], WorkingDir: containerWorkDir, Tty: false })
    expect(options.Labels).toMatchObject({ 'fabric.job-id': 'j', 'fabric.runtime-instance': 'fabric-test' })
  })

  it('keeps the working folder inside the job folder and requires an image and a command', () => {
    expect(containerCreateOptions({ jobId, image: 'x', command: ['true'], workingDir: 'sub/dir' }, context).WorkingDir).toBe(`${containerWorkDir}/sub/dir`)
    expect(() => containerCreateOptions({ jobId, image: 'x', command: ['true'], workingDir: '../..' }, context)).toThrow(InvalidRunSpecError)
    expect(() => containerCreateOptions({ jobId, command: ['true'] }, context)).toThrow(/image is required/)
    expect(() => containerCreateOptions({ jobId, image: 'x', command: [] }, context)).toThrow(/command is empty/)
  })
})
