// CRIU, the tool both runtimes checkpoint with: finds the binary, probes its version and `criu check`
// (cached per path), runs it bounded, and pulls the useful lines out of its logs. The process runtime
// drives it directly; the Docker engine drives it through runc, which finds `criu` on dockerd's PATH.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { resolveExecutable } from './isolation.ts'

export const criuLimits = {
  /** `criu --version` and `criu check` together. */
  probeTimeoutMs: 20_000,
  /** One dump of a job (frozen while it runs). */
  dumpTimeoutMs: 120_000,
  /** From spawning `criu restore` to the restored tree running. */
  restoreStartTimeoutMs: 120_000,
  /** Error lines quoted from a CRIU log in an error message. */
  maxQuotedLogLines: 8,
  minimumMajorVersion: 4,
} as const

export type CriuSupport =
  | { available: true; path: string; version: string }
  | { available: false; reason: string; path?: string; version?: string }

/** Where CRIU is looked for besides PATH (install-runtime-deps.sh puts its wrapper in /usr/local/sbin). */
const criuSearchPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

const probes = new Map<string, Promise<CriuSupport>>()

/** Whether CRIU (>= 4, passing `criu check`) can be used here; `criuPath` defaults to `criu` on PATH. */
export function probeCriu(criuPath = 'criu'): Promise<CriuSupport> {
  let probe = probes.get(criuPath)
  if (probe === undefined) {
    probe = probeOnce(criuPath)
    probes.set(criuPath, probe)
  }
  return probe
}

async function probeOnce(criuPath: string): Promise<CriuSupport> {
  if (process.platform !== 'linux') return { available: false, reason: `CRIU needs Linux (this is ${process.platform})` }
  const path = await resolveExecutable(criuPath, `${process.env.PATH ?? ''}:${criuSearchPath}`, '/')
  if (path === undefined) return { available: false, reason: `${criuPath} not found (scripts/install-runtime-deps.sh installs CRIU 4.x)` }
  const versionRun = await runCriu(path, ['--version'], criuLimits.probeTimeoutMs)
  const version = /Version:\s*(\S+)/.exec(versionRun.stdout)?.[1]
  if (version === undefined) return { available: false, path, reason: `${path} --version said nothing usable: ${(versionRun.stderr || versionRun.stdout).trim().slice(0, 200)}` }
  const major = Number(version.split('.')[0])
  if (!(major >= criuLimits.minimumMajorVersion)) {
    return { available: false, path, version, reason: `CRIU ${version} is older than ${criuLimits.minimumMajorVersion}.0 (Debian 12's 3.17 fails on recent kernels; scripts/install-runtime-deps.sh installs 4.x)` }
  }
  if (process.getuid?.() !== 0) return { available: false, path, version, reason: 'CRIU needs root to dump and restore other processes' }
  const check = await runCriu(path, ['check'], criuLimits.probeTimeoutMs)
  if (check.code !== 0) return { available: false, path, version, reason: `criu check failed: ${errorLines(`${check.stdout}\n${check.stderr}`).join('; ') || `exit ${check.code}`}` }
  return { available: true, path, version }
}

export interface CriuRun {
  code: number | null
  stdout: string
  stderr: string
  timedOut: boolean
}

export function runCriu(path: string, args: string[], timeoutMs: number): Promise<CriuRun> {
  return new Promise((resolve) => {
    execFile(path, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
      resolve({ code, stdout, stderr: stderr || (error !== null && code === null ? error.message : ''), timedOut: error !== null && error.killed === true })
    })
  })
}

/**
 * The lines of a CRIU log or output that say what went wrong. The RLIMIT_NOFILE complaint comes on
 * every run where CAP_SYS_RESOURCE is missing and is harmless: left out.
 */
export function errorLines(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => /Error|error:|Can't|failed/.test(line) && !/RLIMIT_NOFILE/.test(line))
    .map((line) => line.replace(/^\(\d+\.\d+\)\s*/, '').trim())
    .slice(-criuLimits.maxQuotedLogLines)
}

/** What went wrong, from a CRIU log (and its stderr, when it wrote no log, e.g. a bad option). */
export async function logErrors(logPath: string, stderr = ''): Promise<string> {
  const text = await readFile(logPath, 'utf8').catch(() => '')
  return errorLines(text).join('; ') || stderr.trim().split('\n').slice(0, criuLimits.maxQuotedLogLines).join('; ') || 'no error line in the log'
}
