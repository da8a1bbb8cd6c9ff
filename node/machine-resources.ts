// The machine a Shuttle runs on, as its capacity offer and its capacity gossip see it. The
// inventory (CPUs, memory, GPUs, the data directory's filesystem) is read once at start with
// systeminformation in a child process (machine-probe.ts), so the daemon's own memory does not carry
// that package. GPUs come from nvidia-smi when it lists them (their indices are what jobs are given),
// else from systeminformation's display controllers, numbered in the order found. The operator's
// flags cap what is offered: offered = min(flag, machine). What the
// gossip announces as free is min(the document's accounting, the machine's free memory and disk
// now), read cheaply each time (os.freemem is MemAvailable on Linux; statfs of the data directory).
// Placement itself uses the document's accounting; the gossiped free is what `fabric nodes` shows.
import { execFile } from 'node:child_process'
import { statfs } from 'node:fs/promises'
import { availableParallelism, freemem, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import type { Resources } from '../placement/index.ts'
import { queryNvidiaGpus } from '../runtime/index.ts'

/** The probe (a Node process loading systeminformation) must answer within this, else the os module's numbers are used. */
export const machineProbeTimeoutMs = 15_000
/** Its output: one JSON line of a few hundred bytes (more with many GPUs or mounts). */
const maxProbeOutputBytes = 256 * 1024
/** A display adapter counts as a GPU jobs can use when it is NVIDIA's or AMD's and has at least this much memory. */
export const minGpuMemoryMiB = 1_024
const maxGraphicsControllers = 64

const mib = 1024 * 1024

export interface GpuInfo { vendor: string; model: string; memoryMiB: number }
/** A GPU jobs can be given: its device index (nvidia-smi's) and, from nvidia-smi, its UUID. */
export interface GpuDevice extends GpuInfo { index: number; uuid?: string }

export interface MachineInventory {
  /** Where the numbers came from: systeminformation, or the os module when the probe failed. */
  source: 'systeminformation' | 'os'
  cpus: number
  memoryTotalMiB: number
  memoryAvailableMiB: number
  /** Every display controller systeminformation found, and the GPUs jobs can be given (by index). */
  graphics: GpuInfo[]
  gpus: GpuDevice[]
  /** Where the GPUs came from: nvidia-smi's list, or systeminformation's controllers (indices by position). */
  gpuSource: 'nvidia-smi' | 'systeminformation'
  /** The data directory's filesystem (null when the probe failed or found no mount for it). */
  disk: { mount: string; totalMiB: number; freeMiB: number } | null
}

const probeOutput = z.strictObject({
  cpus: z.number().int().positive(),
  memoryTotalBytes: z.number().positive(),
  memoryAvailableBytes: z.number().nonnegative(),
  graphics: z.array(z.strictObject({ vendor: z.string(), model: z.string(), vramMiB: z.number().nonnegative() })).max(maxGraphicsControllers),
  disk: z.strictObject({ mount: z.string(), totalBytes: z.number().nonnegative(), availableBytes: z.number().nonnegative() }).nullable(),
})

const probeScript = fileURLToPath(new URL('./machine-probe.ts', import.meta.url))

/** NVIDIA and AMD adapters with real memory; a VM's emulated VGA (Cirrus, QXL, virtio) is not one. */
export function isComputeGpu(controller: GpuInfo): boolean {
  return /nvidia|advanced micro devices|\bamd\b|\bati\b/i.test(controller.vendor) && controller.memoryMiB >= minGpuMemoryMiB
}

/**
 * The machine's inventory: systeminformation in a child process (on failure, the os module's numbers
 * and `error`) and nvidia-smi's GPUs (output it cannot parse is `gpuProblem`, and the controllers
 * systeminformation found are used instead).
 */
export async function probeMachine(dataDir: string, timeoutMs = machineProbeTimeoutMs, nvidiaSmiSearchPath = process.env.PATH ?? ''): Promise<MachineInventory & { error?: string; gpuProblem?: string }> {
  const [inventory, nvidia] = await Promise.all([probeInventory(dataDir, timeoutMs), queryNvidiaGpus(nvidiaSmiSearchPath)])
  if (nvidia.kind === 'listed' && nvidia.gpus.length > 0) {
    const gpus = nvidia.gpus.map((gpu) => ({ vendor: 'NVIDIA', model: gpu.name, memoryMiB: gpu.memoryMiB, index: gpu.index, uuid: gpu.uuid }))
    return { ...inventory, gpus, gpuSource: 'nvidia-smi' }
  }
  return nvidia.kind === 'problem' ? { ...inventory, gpuProblem: nvidia.problem } : inventory
}

async function probeInventory(dataDir: string, timeoutMs: number): Promise<MachineInventory & { error?: string }> {
  let stdout: string
  try {
    stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [probeScript, dataDir], { timeout: timeoutMs, maxBuffer: maxProbeOutputBytes, encoding: 'utf8' }, (error, out) => (error === null ? resolve(out) : reject(error)))
    })
  } catch (error) {
    return { ...fromOs(), error: `the machine probe failed: ${(error as Error).message.slice(0, 300)}` }
  }
  let parsed: z.infer<typeof probeOutput>
  try {
    const result = probeOutput.safeParse(JSON.parse(stdout))
    if (!result.success) return { ...fromOs(), error: `the machine probe answered ${result.error.issues[0]?.path.join('.') ?? ''}: ${result.error.issues[0]?.message ?? 'invalid'}` }
    parsed = result.data
  } catch {
    return { ...fromOs(), error: 'the machine probe printed no JSON' }
  }
  const graphics = parsed.graphics.map((controller) => ({ vendor: controller.vendor, model: controller.model, memoryMiB: controller.vramMiB }))
  return {
    source: 'systeminformation',
    cpus: parsed.cpus,
    memoryTotalMiB: Math.floor(parsed.memoryTotalBytes / mib),
    memoryAvailableMiB: Math.floor(parsed.memoryAvailableBytes / mib),
    graphics,
    gpus: graphics.filter(isComputeGpu).map((gpu, index) => ({ ...gpu, index })),
    gpuSource: 'systeminformation',
    disk: parsed.disk === null ? null : { mount: parsed.disk.mount, totalMiB: Math.floor(parsed.disk.totalBytes / mib), freeMiB: Math.floor(parsed.disk.availableBytes / mib) },
  }
}

function fromOs(): MachineInventory {
  return { source: 'os', cpus: availableParallelism(), memoryTotalMiB: Math.floor(totalmem() / mib), memoryAvailableMiB: Math.floor(freemem() / mib), graphics: [], gpus: [], gpuSource: 'systeminformation', disk: null }
}

/** What the node offers: each of the operator's limits, capped by what the machine has. */
export function offeredCapacity(limits: Resources, machine: MachineInventory): Resources {
  return {
    cpuMillis: Math.min(limits.cpuMillis, machine.cpus * 1_000),
    memoryMiB: Math.min(limits.memoryMiB, machine.memoryTotalMiB),
    diskMiB: machine.disk === null ? limits.diskMiB : Math.min(limits.diskMiB, machine.disk.freeMiB),
    gpuCount: offeredGpus(limits.gpuCount, machine).length,
  }
}

/**
 * The GPUs the node offers jobs: those of the first GPU's model (an offer names one model, and a job
 * asking for it must not get another), lowest indices first, at most `limit`.
 */
export function offeredGpus(limit: number, machine: MachineInventory): GpuDevice[] {
  const first = machine.gpus[0]
  if (first === undefined) return []
  return machine.gpus.filter((gpu) => gpu.model === first.model).sort((a, b) => a.index - b.index).slice(0, Math.max(0, limit))
}

/** The machine's free memory and the data directory's free disk, now (cheap enough for every capacity gossip). */
export class MachineFree {
  readonly #dataDir: string
  #diskFreeMiB: number | null = null
  #refreshing: Promise<void> | null = null

  constructor(dataDir: string) {
    this.#dataDir = dataDir
  }

  memoryMiB(): number {
    return Math.floor(freemem() / mib)
  }

  /** The latest statfs reading (null before the first); each call starts a new reading for the next. */
  diskMiB(): number | null {
    this.#refreshing ??= statfs(this.#dataDir)
      .then((stats) => { this.#diskFreeMiB = Math.floor((stats.bavail * stats.bsize) / mib) })
      .catch(() => {})
      .finally(() => { this.#refreshing = null })
    return this.#diskFreeMiB
  }

  /**
   * The document's free resources, memory and disk capped by what the machine has free now. CPU is
   * not capped by the load: it is shared over time, and a load average would make it jump.
   */
  cap(free: Resources): Resources {
    const disk = this.diskMiB()
    return {
      ...free,
      memoryMiB: Math.min(free.memoryMiB, this.memoryMiB()),
      diskMiB: disk === null ? free.diskMiB : Math.min(free.diskMiB, disk),
    }
  }
}
