// CRIU, the tool both runtimes checkpoint with: finds the binary, probes its version, `criu check` and
// a real dump and restore of a tiny process (cached per path; the dump/restore verdict once per boot,
// on disk, shared with scripts/install-runtime-deps.sh), runs it bounded, and pulls the useful lines
// out of its logs. The process runtime drives it directly; the Docker engine drives it through runc,
// which finds `criu` on dockerd's PATH.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { resolveExecutable } from './isolation.ts'

export const criuLimits = {
  /** `criu --version` and `criu check` together. */
  probeTimeoutMs: 20_000,
  /** Each step (dump, then restore) of the per-boot probe of a tiny process. */
  dumpProbeStepTimeoutMs: 20_000,
  /** The probe script in all: waiting out another probe's lock, then its own two steps. */
  dumpProbeTimeoutMs: 150_000,
  /** A recorded verdict larger than this is not read (it is one JSON line). */
  maxVerdictBytes: 16_384,
  /** One dump of a job (frozen while it runs). */
  dumpTimeoutMs: 120_000,
  /** From spawning `criu restore` to the restored tree running. */
  restoreStartTimeoutMs: 120_000,
  /** Error lines quoted from a CRIU log in an error message. */
  maxQuotedLogLines: 8,
  minimumMajorVersion: 4,
} as const

export type CriuSupport =
  | { available: true; path: string; version: string; dumpProbe: CriuDumpProbe }
  | { available: false; reason: string; path?: string; version?: string; dumpProbe?: CriuDumpProbe }

/**
 * What runtime/criu-probe.sh found when it dumped and restored a tiny process with this CRIU on this
 * boot (`criu check` passes on boots where every dump hangs). Kept in `file` until the next boot.
 */
export interface CriuDumpProbe {
  ok: boolean
  /** The step that failed, and how. */
  failed?: 'dump' | 'restore'
  reason?: string
  /** More on a failure: a hung step's last log line. */
  detail?: string
  bootId: string
  probedAt: string
  probedBy: string
  durationMs: number
  /** Whether the verdict is kept in `file` (a probe that could not run is not). */
  recorded: boolean
  file: string
}

const dumpProbeVerdictSchema = z.object({
  format: z.literal(1),
  ok: z.boolean(),
  bootId: z.string(),
  criuPath: z.string(),
  criuVersion: z.string(),
  failed: z.enum(['dump', 'restore']).optional(),
  reason: z.string().optional(),
  detail: z.string().optional(),
  durationMs: z.number(),
  probedAt: z.string(),
  probedBy: z.string(),
})

/** The probe script, beside this file; install-runtime-deps.sh runs the same one. */
const dumpProbeScript = fileURLToPath(new URL('./criu-probe.sh', import.meta.url))

/** Where this boot's dump/restore verdict is kept (FABRIC_CRIU_PROBE_FILE moves it, e.g. for tests). */
export function criuDumpProbeFile(): string {
  return process.env.FABRIC_CRIU_PROBE_FILE ?? '/run/fabric/criu-probe.json'
}

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
  const dumpProbe = await probeDumpAndRestore(path, version)
  if (!dumpProbe.ok) {
    const where = dumpProbe.recorded ? `; kept in ${dumpProbe.file} until reboot` : ''
    return { available: false, path, version, dumpProbe, reason: `CRIU dump/restore probe failed: ${dumpProbe.reason ?? 'no reason given'} (probed ${dumpProbe.probedAt} by ${dumpProbe.probedBy}${where})` }
  }
  return { available: true, path, version, dumpProbe }
}

/**
 * Whether CRIU is unavailable because this boot's recorded dump/restore probe failed: a fact of the
 * kernel and machine until reboot, which no install step can change (unlike a missing binary).
 */
export function criuProbeFailedOnThisBoot(criu: CriuSupport): boolean {
  return !criu.available && criu.dumpProbe?.recorded === true && !criu.dumpProbe.ok
}

/**
 * This boot's verdict on a real dump and restore with the CRIU at `path`: read from the verdict file
 * when this boot has one for this binary and version, else found by running runtime/criu-probe.sh
 * (which records it; concurrent callers wait for one probe and read its verdict). Bounded: a dump
 * that hangs is killed after criuLimits.dumpProbeStepTimeoutMs.
 */
async function probeDumpAndRestore(path: string, version: string): Promise<CriuDumpProbe> {
  const file = criuDumpProbeFile()
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim()
  const recorded = await readVerdict(file)
  if (recorded !== undefined && bootId !== '' && recorded.bootId === bootId && recorded.criuPath === path && recorded.criuVersion === version) return toDumpProbe(recorded, file)
  const env = { ...process.env, FABRIC_CRIU_PROBE_FILE: file, FABRIC_CRIU_PROBE_STEP_TIMEOUT_S: String(Math.ceil(criuLimits.dumpProbeStepTimeoutMs / 1000)), FABRIC_CRIU_PROBE_CALLER: `probeCriu (pid ${process.pid})` }
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    // SIGTERM on timeout: the script then kills what it started before it exits.
    execFile('bash', [dumpProbeScript, path], { env, timeout: criuLimits.dumpProbeTimeoutMs, killSignal: 'SIGTERM', maxBuffer: criuLimits.maxVerdictBytes * 4 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr: stderr || (error?.message ?? '') })
    })
  })
  const lastLine = run.stdout.trim().split('\n').at(-1) ?? ''
  const parsed = (() => {
    try {
      return dumpProbeVerdictSchema.safeParse(JSON.parse(lastLine))
    } catch {
      return undefined
    }
  })()
  if (parsed?.success === true && (run.code === 0 || run.code === 1)) return toDumpProbe(parsed.data, file)
  // Could not probe (exit 2: lock held too long, the test process did not start; or killed): not
  // recorded, so the next process probes again; meanwhile CRIU counts as unavailable, as a dump might hang.
  const said = run.stderr.trim().split('\n').filter((line) => line !== '').slice(-2).join('; ')
  return { ok: false, reason: `the probe could not run (${dumpProbeScript} exited ${run.code ?? 'on a signal'}${said === '' ? '' : `: ${said}`})`, bootId, probedAt: new Date().toISOString(), probedBy: env.FABRIC_CRIU_PROBE_CALLER, durationMs: 0, recorded: false, file }
}

async function readVerdict(file: string): Promise<z.infer<typeof dumpProbeVerdictSchema> | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined || text.length > criuLimits.maxVerdictBytes) return undefined
  try {
    const parsed = dumpProbeVerdictSchema.safeParse(JSON.parse(text))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

function toDumpProbe(verdict: z.infer<typeof dumpProbeVerdictSchema>, file: string): CriuDumpProbe {
  const { ok, failed, reason, detail, bootId, probedAt, probedBy, durationMs } = verdict
  return { ok, ...(failed === undefined ? {} : { failed }), ...(reason === undefined ? {} : { reason }), ...(detail === undefined ? {} : { detail }), bootId, probedAt, probedBy, durationMs, recorded: true, file }
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
