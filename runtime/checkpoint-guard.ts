// What CRIU cannot dump, found before it tries: a checkpoint is refused early, with the reason,
// rather than failing halfway with a frozen job. Reads each process's open files and mappings in
// /proc: io_uring instances (CRIU has no support) and GPU device files (NVIDIA, DRM, AMD KFD: their
// state lives in the device, which a CRIU image does not carry here).
import { readdir, readFile, readlink } from 'node:fs/promises'

export const checkpointGuardLimits = {
  /** Reasons listed in one refusal (the first ones found). */
  maxReasons: 5,
} as const

const gpuDevice = /^\/dev\/(nvidia|dri\/|kfd)/

/** Why the processes `pids` cannot be checkpointed; empty when nothing known stands in the way. */
export async function uncheckpointableReasons(pids: readonly number[]): Promise<string[]> {
  const reasons = new Set<string>()
  for (const pid of pids) {
    if (reasons.size >= checkpointGuardLimits.maxReasons) break
    for (const target of await openFiles(pid)) {
      if (target === 'anon_inode:[io_uring]') reasons.add(`process ${pid} uses io_uring, which CRIU cannot dump`)
      else if (gpuDevice.test(target)) reasons.add(`process ${pid} has the GPU device ${target} open, whose state CRIU cannot carry`)
    }
    const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '')
    for (const line of maps.split('\n')) {
      const path = line.split(/\s+/)[5]
      if (path !== undefined && gpuDevice.test(path)) reasons.add(`process ${pid} maps GPU memory from ${path}, which CRIU cannot carry`)
      if (line.includes('[io_uring]') || line.includes('anon_inode:[io_uring]')) reasons.add(`process ${pid} maps io_uring rings, which CRIU cannot dump`)
    }
  }
  return [...reasons].slice(0, checkpointGuardLimits.maxReasons)
}

async function openFiles(pid: number): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(`/proc/${pid}/fd`)
  } catch {
    return [] // gone, or not ours to read: CRIU will say so itself
  }
  const targets = await Promise.all(names.map((name) => readlink(`/proc/${pid}/fd/${name}`).catch(() => '')))
  return targets.filter((target) => target !== '')
}
