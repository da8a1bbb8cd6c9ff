// Control groups for the process runtime: CPU and memory limits, usage, and a sweep that finds every
// process of a job even when one left its process group. Probed once per runtime: cgroup v2 when it
// offers cpu and memory to us, else v1 hierarchies; job groups nest under this process's own groups
// (so any limit placed on the daemon still bounds its jobs). Unusable: limits are reported, not enforced.
import { mkdir, readFile, rmdir, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import type { RunResources, RunUsage } from './runtime.ts'

export const cgroupLimits = {
  /** CPU period for the CFS quota (the kernel's default). */
  cpuPeriodUs: 100_000,
  /** How long removal waits for a job group's dead processes to be reaped (some inits reap every ~2 s). */
  removeWaitMs: 10_000,
  removePollMs: 20,
} as const

export type CgroupSupport =
  | { available: true; version: 1 | 2; instanceDirs: string[]; createJob(name: string, resources: RunResources): Promise<JobCgroup>; close(): Promise<void> }
  | { available: false; reason: string }

export interface JobCgroup {
  /** `cgroup.procs` files the job's first process writes its PID into before it runs the command. */
  procsFiles: string[]
  enforced: boolean
  note: string
  pids(): Promise<number[]>
  /** SIGKILL to every process in the group (cgroup.kill on v2 when present). */
  killAll(): Promise<void>
  usage(): Promise<RunUsage>
  /** Waits (bounded) for the group to empty, then removes it. */
  remove(): Promise<void>
}

interface Mount { root: string; mountPoint: string; fsType: string; superOptions: string[] }

async function readMounts(): Promise<Mount[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8')
  const mounts: Mount[] = []
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ')
    if (left === undefined || right === undefined) continue
    const fields = left.split(' ')
    const [fsType, , superOptions] = right.split(' ')
    if (fields[3] === undefined || fields[4] === undefined || fsType === undefined) continue
    mounts.push({ root: fields[3], mountPoint: fields[4], fsType, superOptions: (superOptions ?? '').split(',') })
  }
  return mounts
}

/** This process's cgroup path per v1 controller, and its v2 path under key ''. */
async function ownGroups(): Promise<Map<string, string>> {
  const text = await readFile('/proc/self/cgroup', 'utf8')
  const groups = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line)
    if (match === null) continue
    const controllers = match[2] ?? ''
    const path = match[3] ?? '/'
    if (controllers === '') groups.set('', path)
    for (const controller of controllers.split(',')) if (controller !== '') groups.set(controller, path)
  }
  return groups
}

function directoryFor(mount: Mount, ownPath: string): string {
  const relative = mount.root !== '/' && ownPath.startsWith(mount.root) ? ownPath.slice(mount.root.length) : ownPath
  return join(mount.mountPoint, relative)
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

async function removeWhenEmpty(directory: string): Promise<void> {
  const deadline = Date.now() + cgroupLimits.removeWaitMs
  for (;;) {
    try {
      await rmdir(directory)
      return
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY' || Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, cgroupLimits.removePollMs))
    }
  }
}

async function readPids(procsFile: string): Promise<number[]> {
  try {
    return (await readFile(procsFile, 'utf8')).split('\n').filter((line) => line !== '').map(Number)
  } catch {
    return []
  }
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
}

async function readNumber(path: string): Promise<number | undefined> {
  try {
    const value = Number((await readFile(path, 'utf8')).trim())
    return Number.isFinite(value) ? value : undefined
  } catch {
    return undefined
  }
}

async function probeV2(mounts: Mount[], groups: Map<string, string>, instanceName: string): Promise<CgroupSupport> {
  const mount = mounts.find((candidate) => candidate.fsType === 'cgroup2')
  const ownPath = groups.get('')
  if (mount === undefined || ownPath === undefined) return { available: false, reason: 'no cgroup2 mount' }
  const own = directoryFor(mount, ownPath)
  const controllers = (await readFile(join(own, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/)
  if (!controllers.includes('cpu') || !controllers.includes('memory')) {
    return { available: false, reason: `cgroup v2 offers [${controllers.join(' ')}], not cpu and memory` }
  }
  const instance = join(own, instanceName)
  try {
    // Our own group must delegate cpu and memory; the kernel refuses when it holds processes (not root).
    await writeFile(join(own, 'cgroup.subtree_control'), '+cpu +memory')
    await mkdir(instance)
    await writeFile(join(instance, 'cgroup.subtree_control'), '+cpu +memory')
  } catch (error) {
    await rmdir(instance).catch(() => {})
    return { available: false, reason: `cgroup v2 not delegated to us: ${describe(error)}` }
  }
  return {
    available: true,
    version: 2,
    instanceDirs: [instance],
    async createJob(name, resources) {
      const directory = join(instance, name)
      await mkdir(directory)
      const failures: string[] = []
      if (resources.cpuMillis !== undefined) {
        const quotaUs = Math.max(1000, Math.round((resources.cpuMillis / 1000) * cgroupLimits.cpuPeriodUs))
        await writeFile(join(directory, 'cpu.max'), `${quotaUs} ${cgroupLimits.cpuPeriodUs}`).catch((error) => failures.push(`cpu: ${describe(error)}`))
      }
      if (resources.memoryMiB !== undefined) {
        await writeFile(join(directory, 'memory.max'), String(resources.memoryMiB * 2 ** 20)).catch((error) => failures.push(`memory: ${describe(error)}`))
      }
      const procs = join(directory, 'cgroup.procs')
      return {
        procsFiles: [procs],
        enforced: failures.length === 0,
        note: failures.length === 0 ? 'cgroup v2' : `limits not enforced: ${failures.join('; ')}`,
        pids: () => readPids(procs),
        async killAll() {
          if (await exists(join(directory, 'cgroup.kill'))) await writeFile(join(directory, 'cgroup.kill'), '1').catch(() => {})
          else killPids(await readPids(procs))
        },
        async usage() {
          const stat = await readFile(join(directory, 'cpu.stat'), 'utf8').catch(() => '')
          const usageUs = /usage_usec (\d+)/.exec(stat)?.[1]
          const usage: RunUsage = {}
          if (usageUs !== undefined) usage.cpuSeconds = Number(usageUs) / 1e6
          const current = await readNumber(join(directory, 'memory.current'))
          if (current !== undefined) usage.memoryBytes = current
          const peak = await readNumber(join(directory, 'memory.peak'))
          if (peak !== undefined) usage.memoryPeakBytes = peak
          return usage
        },
        remove: () => removeWhenEmpty(directory),
      }
    },
    async close() {
      await removeWhenEmpty(instance).catch(() => {})
    },
  }
}

async function probeV1(mounts: Mount[], groups: Map<string, string>, instanceName: string): Promise<CgroupSupport> {
  // One directory per hierarchy (cpu and cpuacct are often mounted together).
  const hierarchies = new Map<string, { controllers: Set<string>; instance: string }>()
  const missing: string[] = []
  for (const controller of ['cpu', 'memory', 'cpuacct']) {
    const mount = mounts.find((candidate) => candidate.fsType === 'cgroup' && candidate.superOptions.includes(controller))
    const ownPath = groups.get(controller)
    if (mount === undefined || ownPath === undefined) {
      missing.push(controller)
      continue
    }
    const instance = join(directoryFor(mount, ownPath), instanceName)
    const entry = hierarchies.get(instance) ?? { controllers: new Set<string>(), instance }
    entry.controllers.add(controller)
    hierarchies.set(instance, entry)
  }
  if (missing.includes('cpu') || missing.includes('memory')) return { available: false, reason: `cgroup v1 lacks ${missing.join(', ')}` }
  const created: string[] = []
  try {
    for (const instance of hierarchies.keys()) {
      await mkdir(instance)
      created.push(instance)
    }
  } catch (error) {
    for (const instance of created) await rmdir(instance).catch(() => {})
    return { available: false, reason: `cgroup v1 not writable: ${describe(error)}` }
  }
  const entries = [...hierarchies.values()]
  return {
    available: true,
    version: 1,
    instanceDirs: created,
    async createJob(name, resources) {
      const directories = new Map<string, string>()
      for (const entry of entries) {
        const directory = join(entry.instance, name)
        await mkdir(directory)
        for (const controller of entry.controllers) directories.set(controller, directory)
      }
      const failures: string[] = []
      const cpu = directories.get('cpu')
      const memory = directories.get('memory')
      if (resources.cpuMillis !== undefined && cpu !== undefined) {
        const quotaUs = Math.max(1000, Math.round((resources.cpuMillis / 1000) * cgroupLimits.cpuPeriodUs))
        await writeFile(join(cpu, 'cpu.cfs_period_us'), String(cgroupLimits.cpuPeriodUs))
          .then(() => writeFile(join(cpu, 'cpu.cfs_quota_us'), String(quotaUs)))
          .catch((error) => failures.push(`cpu: ${describe(error)}`))
      }
      if (resources.memoryMiB !== undefined && memory !== undefined) {
        await writeFile(join(memory, 'memory.limit_in_bytes'), String(resources.memoryMiB * 2 ** 20)).catch((error) => failures.push(`memory: ${describe(error)}`))
      }
      const unique = [...new Set(directories.values())]
      const procsFiles = unique.map((directory) => join(directory, 'cgroup.procs'))
      const pids = async (): Promise<number[]> => [...new Set((await Promise.all(procsFiles.map(readPids))).flat())]
      return {
        procsFiles,
        enforced: failures.length === 0,
        note: failures.length === 0 ? 'cgroup v1' : `limits not enforced: ${failures.join('; ')}`,
        pids,
        async killAll() {
          killPids(await pids())
        },
        async usage() {
          const usage: RunUsage = {}
          const cpuacct = directories.get('cpuacct')
          const cpuNs = cpuacct === undefined ? undefined : await readNumber(join(cpuacct, 'cpuacct.usage'))
          if (cpuNs !== undefined) usage.cpuSeconds = cpuNs / 1e9
          if (memory !== undefined) {
            const current = await readNumber(join(memory, 'memory.usage_in_bytes'))
            if (current !== undefined) usage.memoryBytes = current
            const peak = await readNumber(join(memory, 'memory.max_usage_in_bytes'))
            if (peak !== undefined) usage.memoryPeakBytes = peak
          }
          return usage
        },
        async remove() {
          for (const directory of unique) await removeWhenEmpty(directory)
        },
      }
    },
    async close() {
      for (const instance of created) await removeWhenEmpty(instance).catch(() => {})
    },
  }
}

/** Finds usable cgroups and creates this runtime's own group folder in each hierarchy. */
export async function probeCgroups(instanceName: string): Promise<CgroupSupport> {
  if (process.platform !== 'linux') return { available: false, reason: `cgroups need Linux (this is ${process.platform})` }
  let mounts: Mount[]
  let groups: Map<string, string>
  try {
    mounts = await readMounts()
    groups = await ownGroups()
  } catch (error) {
    return { available: false, reason: `cannot read cgroup mounts: ${describe(error)}` }
  }
  const v2 = await probeV2(mounts, groups, instanceName)
  if (v2.available) return v2
  const v1 = await probeV1(mounts, groups, instanceName)
  if (v1.available) return v1
  return { available: false, reason: `${v2.reason}; ${v1.reason}` }
}
