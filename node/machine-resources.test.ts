// Proves the machine inventory comes from systeminformation and agrees with the os module, that the
// operator's flags cap the offer (and the machine caps the flags), that only real GPUs count (from
// nvidia-smi when it lists them, by index; of one model), that
// the free resources gossiped are capped by what the machine has free, and that a failed probe falls
// back to the os module with the reason. Then on real daemons: the offer a daemon registers and the
// free memory it gossips, as another daemon's `nodes` answer shows them.
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { LocalMesh } from './local-mesh.ts'
import { MachineFree, isComputeGpu, machineProbeTimeoutMs, offeredCapacity, offeredGpus, probeMachine, type MachineInventory } from './machine-resources.ts'
import { poll } from './testing/poll.ts'

const mib = 1024 * 1024
const directories: string[] = []
let mesh: LocalMesh | null = null
let client: Libp2p | null = null

afterAll(async () => {
  await client?.stop()
  await mesh?.stop()
  for (const directory of directories) await rm(directory, { recursive: true, force: true })
})

const machine: MachineInventory = { source: 'systeminformation', cpus: 4, memoryTotalMiB: 8_192, memoryAvailableMiB: 6_000, graphics: [], gpus: [{ vendor: 'NVIDIA', model: 'A100', memoryMiB: 40_960, index: 0 }], gpuSource: 'systeminformation', disk: { mount: '/', totalMiB: 100_000, freeMiB: 50_000 } }

/** A directory holding a stand-in `nvidia-smi` that prints `output` (this machine has no GPU). */
async function nvidiaSmiPrinting(output: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fabric-nvidia-smi-'))
  directories.push(dir)
  await writeFile(join(dir, 'nvidia-smi'), `#!/bin/sh\ncat <<'EOF'\n${output}\nEOF\n`, { mode: 0o755 })
  return dir
}

describe('machine resources', () => {
  it('reads the inventory with systeminformation, in agreement with the os module', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-machine-'))
    directories.push(dataDir)
    const inventory = await probeMachine(dataDir)
    expect(inventory.error).toBeUndefined()
    expect(inventory.source).toBe('systeminformation')
    expect(inventory.cpus).toBe(availableParallelism())
    expect(inventory.memoryTotalMiB).toBe(Math.floor(totalmem() / mib))
    expect(inventory.memoryAvailableMiB).toBeGreaterThan(0)
    expect(inventory.memoryAvailableMiB).toBeLessThanOrEqual(inventory.memoryTotalMiB)
    expect(inventory.gpus.every(isComputeGpu)).toBe(true)
    if (inventory.gpuSource === 'systeminformation') expect(inventory.gpus.length).toBeLessThanOrEqual(inventory.graphics.length)
    // The data directory's filesystem: its free space as statfs sees it (within what a second of other writers changes).
    const stats = await statfs(dataDir)
    expect(inventory.disk).not.toBeNull()
    expect(Math.abs(inventory.disk!.freeMiB - (stats.bavail * stats.bsize) / mib)).toBeLessThan(Math.max(64, inventory.disk!.freeMiB * 0.01))
  })

  it('falls back to the os module, saying why, when the probe does not answer in time', async () => {
    const inventory = await probeMachine(tmpdir(), 1)
    expect(inventory).toMatchObject({ source: 'os', cpus: availableParallelism(), memoryTotalMiB: Math.floor(totalmem() / mib), disk: null, error: expect.stringContaining('machine probe failed') })
  })

  it('takes the GPUs nvidia-smi lists, with their indices; output it cannot parse is a problem reported, and the controllers found are used', async () => {
    const uuid = (n: number): string => `GPU-0000000${n}-aaaa-bbbb-cccc-dddddddddddd`
    const listed = await probeMachine(tmpdir(), machineProbeTimeoutMs, await nvidiaSmiPrinting(`0, NVIDIA A100-SXM4-40GB, 40960, ${uuid(0)}\n1, NVIDIA A100-SXM4-40GB, 40960, ${uuid(1)}`))
    expect(listed.gpuSource).toBe('nvidia-smi')
    expect(listed.gpuProblem).toBeUndefined()
    expect(listed.gpus).toEqual([
      { vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', memoryMiB: 40_960, index: 0, uuid: uuid(0) },
      { vendor: 'NVIDIA', model: 'NVIDIA A100-SXM4-40GB', memoryMiB: 40_960, index: 1, uuid: uuid(1) },
    ])
    const malformed = await probeMachine(tmpdir(), machineProbeTimeoutMs, await nvidiaSmiPrinting('0, NVIDIA A100-SXM4-40GB, 40 GiB'))
    expect(malformed.gpuSource).toBe('systeminformation')
    expect(malformed.gpuProblem).toMatch(/^nvidia-smi line 1 .*expected 4 fields/)
    expect(malformed.gpus.every((gpu) => gpu.uuid === undefined)).toBe(true)
  })

  it('offers GPUs of one model (the first\'s), lowest indices first, as many as the flag allows', () => {
    const gpu = (index: number, model: string) => ({ vendor: 'NVIDIA', model, memoryMiB: 16_384, index })
    const mixed: MachineInventory = { ...machine, gpus: [gpu(0, 'T4'), gpu(1, 'A10G'), gpu(2, 'T4'), gpu(3, 'T4')] }
    expect(offeredGpus(Infinity, mixed).map((device) => device.index)).toEqual([0, 2, 3])
    expect(offeredGpus(2, mixed).map((device) => device.index)).toEqual([0, 2])
    expect(offeredGpus(0, mixed)).toEqual([])
    expect(offeredCapacity({ cpuMillis: 1_000, memoryMiB: 512, diskMiB: 1_024, gpuCount: Infinity }, mixed).gpuCount).toBe(3)
    expect(offeredGpus(Infinity, { ...machine, gpus: [] })).toEqual([])
  })

  it('offers the smaller of each flag and what the machine has', () => {
    expect(offeredCapacity({ cpuMillis: Infinity, memoryMiB: Infinity, diskMiB: 102_400, gpuCount: Infinity }, machine)).toEqual({ cpuMillis: 4_000, memoryMiB: 8_192, diskMiB: 50_000, gpuCount: 1 })
    expect(offeredCapacity({ cpuMillis: 1_500, memoryMiB: 512, diskMiB: 1_024, gpuCount: 0 }, machine)).toEqual({ cpuMillis: 1_500, memoryMiB: 512, diskMiB: 1_024, gpuCount: 0 })
    expect(offeredCapacity({ cpuMillis: 1_500, memoryMiB: 512, diskMiB: 1_024, gpuCount: 0 }, { ...machine, disk: null }).diskMiB).toBe(1_024)
  })

  it('counts NVIDIA and AMD adapters with memory as GPUs, not a VM\'s emulated display', () => {
    expect(isComputeGpu({ vendor: 'NVIDIA Corporation', model: 'GA100 [A100 SXM4 80GB]', memoryMiB: 81_920 })).toBe(true)
    expect(isComputeGpu({ vendor: 'Advanced Micro Devices, Inc. [AMD/ATI]', model: 'Instinct MI210', memoryMiB: 65_536 })).toBe(true)
    expect(isComputeGpu({ vendor: 'Cirrus Logic', model: 'GD 5446', memoryMiB: 16 })).toBe(false)
    expect(isComputeGpu({ vendor: 'Red Hat, Inc.', model: 'QXL paravirtual graphic card', memoryMiB: 64 })).toBe(false)
    expect(isComputeGpu({ vendor: 'NVIDIA', model: 'tiny', memoryMiB: 512 })).toBe(false)
  })

  it('caps the free resources the gossip announces by what the machine has free now', async () => {
    const free = new MachineFree(tmpdir())
    expect(free.diskMiB()).toBeNull() // the first statfs is on its way
    const disk = await poll(async () => free.diskMiB(), (value) => value !== null, 5_000, 'a statfs reading')
    const capped = free.cap({ cpuMillis: 8_000, memoryMiB: 10 ** 9, diskMiB: 10 ** 9, gpuCount: 0 })
    expect(capped.cpuMillis).toBe(8_000)
    expect(capped.memoryMiB).toBeGreaterThan(0)
    expect(capped.memoryMiB).toBeLessThanOrEqual(Math.floor(totalmem() / mib))
    expect(capped.diskMiB).toBeLessThanOrEqual(disk! + 1_024)
    expect(free.cap({ cpuMillis: 1, memoryMiB: 3, diskMiB: 5, gpuCount: 0 })).toEqual({ cpuMillis: 1, memoryMiB: 3, diskMiB: 5, gpuCount: 0 })
  })
})

describe('machine resources in the offer and the gossip of real daemons', () => {
  it('registers the machine\'s totals when the flags ask for more, the flags when they ask for less, and gossips free memory below the total', async () => {
    client = await createClientHost()
    const host = client
    const totalMiB = Math.floor(totalmem() / mib)
    // Flags far above the machine: the machine's totals are offered.
    mesh = await LocalMesh.start({ nodes: 2, voters: 1, cpuMillis: 10 ** 9, memoryMiB: 10 ** 9 })
    const [first, second] = mesh.daemons as [typeof mesh.daemons[0], typeof mesh.daemons[0]]
    const seenBy = (asked: typeof first, about: typeof first) =>
      poll(async () => (await clientCall(host, multiaddr(asked.address), { kind: 'nodes' })).nodes.find((node) => node.id === about.peerId), (node) => node?.free != null, 30_000, `${asked.name} to hear ${about.name}'s capacity`)
    const other = (await seenBy(first, second))!
    expect(other.capacity).toMatchObject({ cpuMillis: availableParallelism() * 1_000, memoryMiB: totalMiB })
    // Gossiped free memory: the document says all of it is free (no job runs); the machine has less.
    expect(other.free!.memoryMiB).toBeGreaterThan(0)
    expect(other.free!.memoryMiB).toBeLessThan(other.capacity.memoryMiB)
    expect(other.free!.cpuMillis).toBe(other.capacity.cpuMillis)
    const self = (await seenBy(first, first))!
    expect(self.free!.memoryMiB).toBeGreaterThan(0)
    expect(self.free!.memoryMiB).toBeLessThan(totalMiB)
    await mesh.stop()
    // Flags below the machine: the flags are offered.
    mesh = await LocalMesh.start({ nodes: 1, voters: 1, cpuMillis: 500, memoryMiB: 256 })
    const only = mesh.daemons[0]!
    const own = (await seenBy(only, only))!
    expect(own.capacity).toMatchObject({ cpuMillis: 500, memoryMiB: 256 })
    expect(own.free!.memoryMiB).toBeGreaterThan(0)
    expect(own.free!.memoryMiB).toBeLessThanOrEqual(256)
  })
})
