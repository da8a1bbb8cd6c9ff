// What isolation the process runtime can give a job on this machine, probed once per process:
// its own PID namespace (`unshare --pid --fork --kill-child`, root only) or just its own session and
// process group. Also reads the process table (/proc) to find a namespace's PID 1 on the host.
import { execFile } from 'node:child_process'
import { readdir, readFile, access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

export type NamespaceSupport = { available: true; unshare: string; setsid: string } | { available: false; reason: string }
export type ParentDeathSupport = { available: true; setpriv: string } | { available: false; reason: string }

export const isolationLimits = {
  probeTimeoutMs: 5_000,
} as const

/** The absolute path of an executable, searched on `searchPath`, or undefined. */
export async function resolveExecutable(name: string, searchPath: string, workingDir: string): Promise<string | undefined> {
  const candidates = name.includes('/') ? [name.startsWith('/') ? name : join(workingDir, name)] : searchPath.split(delimiter).filter((entry) => entry !== '').map((entry) => join(entry, name))
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // Try the next one.
    }
  }
  return undefined
}

let namespaceProbe: Promise<NamespaceSupport> | undefined

/** Whether jobs can get their own PID namespace here; the answer is cached for the process. */
export function probePidNamespace(): Promise<NamespaceSupport> {
  namespaceProbe ??= probeOnce()
  return namespaceProbe
}

async function probeOnce(): Promise<NamespaceSupport> {
  if (process.platform !== 'linux') return { available: false, reason: `PID namespaces need Linux (this is ${process.platform})` }
  if (process.getuid?.() !== 0) return { available: false, reason: 'PID namespaces need root (unprivileged user namespaces are not used)' }
  const searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'
  const unshare = await resolveExecutable('unshare', searchPath, '/')
  const setsid = await resolveExecutable('setsid', searchPath, '/')
  if (unshare === undefined || setsid === undefined) return { available: false, reason: `${unshare === undefined ? 'unshare' : 'setsid'} not found on PATH` }
  // Try it: the shell must see itself as PID 1 in the new namespace.
  const answer = await new Promise<{ ok: boolean; detail: string }>((resolve) => {
    execFile(unshare, ['--pid', '--fork', '--kill-child', setsid, '--wait', '/bin/sh', '-c', 'echo $$'], { timeout: isolationLimits.probeTimeoutMs }, (error, stdout, stderr) => {
      if (error !== null) resolve({ ok: false, detail: `${error.message.trim()} ${stderr.trim()}`.trim() })
      else resolve({ ok: stdout.trim() === '1', detail: `the probe saw PID ${stdout.trim()}` })
    })
  })
  if (!answer.ok) return { available: false, reason: `unshare --pid failed: ${answer.detail}` }
  return { available: true, unshare, setsid }
}

let parentDeathProbe: Promise<ParentDeathSupport> | undefined

/**
 * Whether a job's first process can be told to die with the daemon (`setpriv --pdeathsig KILL`, the
 * kernel's PR_SET_PDEATHSIG): a daemon killed with SIGKILL then leaves no job running that nobody
 * tracks. Cached for the process.
 */
export function probeParentDeathSignal(): Promise<ParentDeathSupport> {
  parentDeathProbe ??= probeParentDeathOnce()
  return parentDeathProbe
}

async function probeParentDeathOnce(): Promise<ParentDeathSupport> {
  if (process.platform !== 'linux') return { available: false, reason: `a parent-death signal needs Linux (this is ${process.platform})` }
  const setpriv = await resolveExecutable('setpriv', process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', '/')
  if (setpriv === undefined) return { available: false, reason: 'setpriv not found on PATH (util-linux)' }
  // Older setpriv (util-linux < 2.33) has no --pdeathsig: try it.
  const answer = await new Promise<{ ok: boolean; detail: string }>((resolve) => {
    execFile(setpriv, ['--pdeathsig', 'KILL', '/bin/sh', '-c', 'echo ok'], { timeout: isolationLimits.probeTimeoutMs }, (error, stdout, stderr) => {
      if (error !== null) resolve({ ok: false, detail: `${error.message.trim()} ${stderr.trim()}`.trim() })
      else resolve({ ok: stdout.trim() === 'ok', detail: stdout.trim() })
    })
  })
  if (!answer.ok) return { available: false, reason: `setpriv --pdeathsig failed: ${answer.detail}` }
  return { available: true, setpriv }
}

/**
 * The fields of a /proc/PID/stat line after the command name, from field 3 (state) on: the name may
 * contain spaces and parentheses, so they follow the last ')'. Index i is proc(5)'s field i + 3.
 */
export function procStatFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or undefined when it is gone. */
export async function processStartTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = procStatFields(stat)
    const ticks = Number(fields[19])
    return Number.isFinite(ticks) ? ticks : undefined
  } catch {
    return undefined
  }
}

/** Direct children of `pid` (by scanning /proc: this kernel may lack /proc/PID/task/TID/children). */
export async function childPids(pid: number): Promise<number[]> {
  const table = await processTable()
  return table.filter((entry) => entry.parentPid === pid).map((entry) => entry.pid)
}

/** `pid` and all its descendants, as seen now. */
export async function processTree(pid: number): Promise<number[]> {
  const table = await processTable()
  const tree = [pid]
  for (let index = 0; index < tree.length; index += 1) {
    for (const entry of table) if (entry.parentPid === tree[index]) tree.push(entry.pid)
  }
  return tree
}

/** Processes of group `groupId` that have not died (zombies waiting for their reaper do not count). */
export async function livingGroupMembers(groupId: number): Promise<number[]> {
  const table = await processTable()
  return table.filter((entry) => entry.groupId === groupId && !entry.dead).map((entry) => entry.pid)
}

/** True when `pid` is gone or a zombie (dead, only waiting for its parent or init to reap it). */
export async function isDead(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const state = procStatFields(stat)[0]
    return state === 'Z' || state === 'X'
  } catch {
    return true
  }
}

interface ProcessEntry { pid: number; parentPid: number; groupId: number; dead: boolean }

async function processTable(): Promise<ProcessEntry[]> {
  const names = await readdir('/proc')
  const table: ProcessEntry[] = []
  await Promise.all(
    names
      .filter((name) => /^\d+$/.test(name))
      .map(async (name) => {
        try {
          const stat = await readFile(`/proc/${name}/stat`, 'utf8')
          const fields = procStatFields(stat)
          table.push({ pid: Number(name), parentPid: Number(fields[1]), groupId: Number(fields[2]), dead: fields[0] === 'Z' || fields[0] === 'X' })
        } catch {
          // The process ended while we looked.
        }
      }),
  )
  return table
}
