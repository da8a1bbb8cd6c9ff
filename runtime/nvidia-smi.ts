// NVIDIA GPUs as nvidia-smi lists them: index, model, memory and UUID of each device. The daemon
// offers them to jobs (node/machine-resources.ts) and `fabric doctor` prints them. The output is
// parsed strictly, all or nothing: the indices become CUDA_VISIBLE_DEVICES and Docker device IDs,
// so a line we cannot read whole is a probe problem to report, never a device to guess at.
import { execFile } from 'node:child_process'
import { resolveExecutable } from './isolation.ts'

export const nvidiaSmiLimits = {
  timeoutMs: 10_000,
  maxOutputBytes: 64 * 1024,
  /** More devices than any machine holds: a longer list is not nvidia-smi's. */
  maxGpus: 64,
  maxNameLength: 200,
} as const

/** The query, with its fields in the order the parser expects them. */
export const nvidiaSmiArguments = ['--query-gpu=index,name,memory.total,uuid', '--format=csv,noheader,nounits'] as const

/** Where nvidia-smi is looked for after $PATH (driver packages and NVIDIA's container images put it there). */
const fallbackDirectories = ['/usr/bin', '/usr/local/bin', '/usr/local/nvidia/bin']

export interface NvidiaGpu {
  /** nvidia-smi's (and CUDA's, under the default PCI bus order) index of the device. */
  index: number
  name: string
  memoryMiB: number
  uuid: string
}

export type NvidiaGpuListing =
  | { kind: 'listed'; nvidiaSmi: string; gpus: NvidiaGpu[] }
  | { kind: 'absent'; reason: string }
  | { kind: 'problem'; nvidiaSmi: string; problem: string }

export type NvidiaSmiParse = { ok: true; gpus: NvidiaGpu[] } | { ok: false; problem: string }

const decimal = /^(0|[1-9]\d*)$/
const uuidPattern = /^GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/
const printable = /^[\x20-\x7e]+$/

/** nvidia-smi's answer to nvidiaSmiArguments: every line four fields, every index distinct, or what is wrong. */
export function parseNvidiaSmiGpus(text: string): NvidiaSmiParse {
  const lines = text.split('\n').map((line) => line.trim()).filter((line) => line !== '')
  if (lines.length > nvidiaSmiLimits.maxGpus) return { ok: false, problem: `nvidia-smi listed ${lines.length} lines, at most ${nvidiaSmiLimits.maxGpus} GPUs expected` }
  const gpus: NvidiaGpu[] = []
  const seen = new Set<number>()
  for (const [number, line] of lines.entries()) {
    const where = `nvidia-smi line ${number + 1} (${JSON.stringify(line.slice(0, 120))})`
    const fields = line.split(',').map((field) => field.trim())
    if (fields.length !== 4) return { ok: false, problem: `${where}: expected 4 fields (index, name, memory.total, uuid), got ${fields.length}` }
    const [index, name, memory, uuid] = fields as [string, string, string, string]
    if (!decimal.test(index) || Number(index) >= nvidiaSmiLimits.maxGpus) return { ok: false, problem: `${where}: the index ${JSON.stringify(index)} is not a whole number below ${nvidiaSmiLimits.maxGpus}` }
    if (seen.has(Number(index))) return { ok: false, problem: `${where}: index ${index} is listed twice` }
    if (name === '' || name.length > nvidiaSmiLimits.maxNameLength || !printable.test(name)) return { ok: false, problem: `${where}: the name is empty, longer than ${nvidiaSmiLimits.maxNameLength} characters or not printable` }
    if (!decimal.test(memory) || Number(memory) === 0) return { ok: false, problem: `${where}: memory.total ${JSON.stringify(memory)} is not a positive number of MiB` }
    if (!uuidPattern.test(uuid)) return { ok: false, problem: `${where}: ${JSON.stringify(uuid)} is not a GPU UUID (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` }
    seen.add(Number(index))
    gpus.push({ index: Number(index), name, memoryMiB: Number(memory), uuid })
  }
  return { ok: true, gpus: gpus.sort((a, b) => a.index - b.index) }
}

/** Runs nvidia-smi when it is installed and reads its GPUs; never throws (a failure is a problem to report). */
export async function queryNvidiaGpus(searchPath = process.env.PATH ?? ''): Promise<NvidiaGpuListing> {
  const nvidiaSmi = await resolveExecutable('nvidia-smi', [searchPath, ...fallbackDirectories].join(':'), '/')
  if (nvidiaSmi === undefined) return { kind: 'absent', reason: 'nvidia-smi not found: no NVIDIA GPU usable here' }
  const answer = await new Promise<{ ok: true; stdout: string } | { ok: false; text: string }>((resolve) => {
    execFile(nvidiaSmi, nvidiaSmiArguments, { timeout: nvidiaSmiLimits.timeoutMs, maxBuffer: nvidiaSmiLimits.maxOutputBytes, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve(error === null ? { ok: true, stdout } : { ok: false, text: `${stderr.trim() || stdout.trim() || error.message}`.slice(0, 300) })
    })
  })
  if (!answer.ok) return { kind: 'problem', nvidiaSmi, problem: `nvidia-smi failed: ${answer.text}` }
  const parsed = parseNvidiaSmiGpus(answer.stdout)
  return parsed.ok ? { kind: 'listed', nvidiaSmi, gpus: parsed.gpus } : { kind: 'problem', nvidiaSmi, problem: parsed.problem }
}
