// `fabric bench cli`: how fast the CLI answers, called as a user calls it: bin/fabric.js under the
// project's Node, a new process each time. `runs` calls of `fabric --help` and `runs` of
// `fabric leader --json` against a one-node mesh this bench starts on loopback and stops (the query
// finds the daemon through its data directory's addresses.json, makes a client host, dials, asks,
// prints). Each call is timed from spawn to the end of its output; one unmeasured call of each comes
// first, so Node's compile cache is warm as it is for anyone who ran the CLI before. Then, where GNU
// time exists, `runs` more of each under it give CPU time and peak RSS: on a machine shared with
// other work, CPU time is the figure the load distorts least.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { repositoryRoot } from '../node/daemon-process.ts'
import { LocalMesh } from '../node/local-mesh.ts'

/** Goals of issue F, item 7, on the 2-vCPU machine of bench/RESULTS.md. */
export const cliBenchGoals = { helpMs: 150, queryMs: 400 } as const

export const cliBenchLimits = {
  electionTimeoutMs: 30_000,
  /** One CLI call taking longer than this fails the run (a loaded machine starts Node slowly). */
  callTimeoutMs: 60_000,
} as const

/** Where GNU time lives on Debian: user and system CPU seconds and peak RSS of the command (from wait4). */
const gnuTimePath = '/usr/bin/time'

export interface CliBenchOptions {
  runs: number
  /** Progress lines (stderr in the CLI: stdout carries the one JSON object). */
  progress?(line: string): void
}

export interface CliBenchResult {
  bench: 'cli'
  runs: number
  /** Medians of the samples, in ms. */
  helpMs: number
  queryMs: number
  helpSamplesMs: number[]
  querySamplesMs: number[]
  /** Medians of `runs` more calls of each under GNU time (user + system CPU, peak RSS); null where /usr/bin/time is missing. */
  helpCpuMs: number | null
  queryCpuMs: number | null
  helpPeakRssMiB: number | null
  queryPeakRssMiB: number | null
  goals: Record<'helpMs' | 'queryMs', { goal: number; measured: number; met: boolean }>
  /** The machine's 1-minute load average when the run started and ended: other work on it shows here. */
  machine: { cpus: number; node: string; loadAverageAtStart: number; loadAverageAtEnd: number }
}

export const fabricEntry = join(repositoryRoot, 'bin/fabric.js')
export const projectNode = join(repositoryRoot, 'node_modules/.bin/node')

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const roundMs = (value: number): number => Math.round(value * 10) / 10

export async function runCliBench(options: CliBenchOptions): Promise<CliBenchResult> {
  if (!Number.isInteger(options.runs) || options.runs < 1) throw new RangeError(`runs must be a positive integer, not ${options.runs}`)
  const progress = options.progress ?? (() => {})
  const loadAverageAtStart = loadavg()[0]!
  progress('starting a one-node mesh on loopback')
  const mesh = await LocalMesh.start({ nodes: 1, cpuMillis: 1_000, memoryMiB: 1_024, logLevel: 'warn' })
  try {
    const daemon = await mesh.waitForLeader(cliBenchLimits.electionTimeoutMs)
    const query = ['leader', '--json', '--data', mesh.dataDirOf(daemon)]
    const checkQuery = (stdout: string): void => {
      const answer = JSON.parse(stdout) as { leaderId?: unknown }
      if (answer.leaderId !== daemon.peerId) throw new Error(`fabric leader named ${String(answer.leaderId)}, not the mesh's one node ${daemon.peerId}`)
    }
    progress(`${daemon.name} leads; one warm-up call of each, then ${options.runs} of each, interleaved`)
    await timeCall(['--help'])
    checkQuery((await timeCall(query)).stdout)
    const helpSamplesMs: number[] = []
    const querySamplesMs: number[] = []
    for (let run = 0; run < options.runs; run++) {
      helpSamplesMs.push(roundMs((await timeCall(['--help'])).ms))
      const answer = await timeCall(query)
      checkQuery(answer.stdout)
      querySamplesMs.push(roundMs(answer.ms))
    }
    if (existsSync(gnuTimePath)) progress(`then ${options.runs} of each under GNU time, for CPU time and peak RSS`)
    const helpUsage = await usageOf(['--help'], options.runs)
    const queryUsage = await usageOf(query, options.runs)
    const helpMs = roundMs(median(helpSamplesMs))
    const queryMs = roundMs(median(querySamplesMs))
    return {
      bench: 'cli',
      runs: options.runs,
      helpMs,
      queryMs,
      helpSamplesMs,
      querySamplesMs,
      helpCpuMs: helpUsage?.cpuMs ?? null,
      queryCpuMs: queryUsage?.cpuMs ?? null,
      helpPeakRssMiB: helpUsage?.peakRssMiB ?? null,
      queryPeakRssMiB: queryUsage?.peakRssMiB ?? null,
      goals: {
        helpMs: { goal: cliBenchGoals.helpMs, measured: helpMs, met: helpMs <= cliBenchGoals.helpMs },
        queryMs: { goal: cliBenchGoals.queryMs, measured: queryMs, met: queryMs <= cliBenchGoals.queryMs },
      },
      machine: { cpus: availableParallelism(), node: process.version, loadAverageAtStart, loadAverageAtEnd: loadavg()[0]! },
    }
  } finally {
    await mesh.stop()
  }
}

interface CallResult { ms: number; stdout: string; stderr: string }

/** Runs `fabric ARGS` and times it from spawn to the end of its output; a non-zero exit fails the bench. */
function timeCall(args: readonly string[], wrapper: readonly string[] = []): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const [file, ...rest] = [...wrapper, projectNode, fabricEntry, ...args]
    const started = performance.now()
    const child = spawn(file!, rest, { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), cliBenchLimits.callTimeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      const ms = performance.now() - started
      clearTimeout(timer)
      if (code === 0) resolve({ ms, stdout, stderr })
      else reject(new Error(`fabric ${args.join(' ')} ended with ${code ?? signal}${signal === 'SIGKILL' ? ` (killed after ${cliBenchLimits.callTimeoutMs} ms)` : ''}:\n${stderr.slice(-2_000)}`))
    })
  })
}

/** Medians of CPU time (user + system) and peak RSS over `runs` calls under GNU time, or null without it. */
async function usageOf(args: readonly string[], runs: number): Promise<{ cpuMs: number; peakRssMiB: number } | null> {
  if (!existsSync(gnuTimePath)) return null
  const cpuMs: number[] = []
  const rssKiB: number[] = []
  for (let run = 0; run < runs; run++) {
    const { stderr } = await timeCall(args, [gnuTimePath, '-f', '%U %S %M'])
    // GNU time's line is the last one of stderr.
    const [user, system, kib] = (stderr.trim().split('\n').at(-1) ?? '').split(' ').map(Number)
    if (!Number.isFinite(user) || !Number.isFinite(system) || !Number.isFinite(kib)) return null
    cpuMs.push((user! + system!) * 1000)
    rssKiB.push(kib!)
  }
  return { cpuMs: roundMs(median(cpuMs)), peakRssMiB: Math.round(median(rssKiB) / 1024) }
}
