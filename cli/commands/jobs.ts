// `fabric jobs` and `fabric job ID`: the jobs a daemon knows (active ones from the cluster document,
// finished ones from its archive), and one job in detail: record, assignments, runs, where it runs.
// A job of several replicas is one entry: its state is its slowest replica's, and `job ID` lists
// every replica (`ID#0`, `ID#1`, ...), which `job ID#r` shows alone.
import type { Command } from 'commander'
import type { JobDetail, JobSummary } from '../../node/client-wire.ts'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { positiveInteger } from '../parse.ts'
import { ago, renderTable, shortId } from '../table.ts'

export function registerJobs(program: Command): void {
  addConnectOptions(
    program
      .command('jobs')
      .description('List jobs, newest first: active ones from the cluster document, finished ones from the daemon\'s archive')
      .option('--limit <n>', 'at most this many', '100')
      .option('--json', 'print the listing as JSON'),
  ).action(async (flags: ConnectFlags & { limit: string; json?: boolean }) => {
    const limit = Math.min(positiveInteger('--limit', flags.limit), 1_000)
    const result = await askDaemon(flags, { kind: 'jobs', limit })
    if (flags.json === true) return console.log(JSON.stringify(result, null, 2))
    const now = Date.now()
    console.log(renderTable(['ID', 'NAME', 'STATE', 'REPLICAS', 'NODE', 'SUBMITTED', 'EXIT'], result.jobs.map((job) => summaryRow(job, now))))
    if (result.truncated) console.log(`(more than ${limit}; raise --limit)`)
  })

  addConnectOptions(
    program
      .command('job')
      .description('Show one job: its record, assignments (by term), runs (by node) and where it runs')
      .argument('<id>', 'job id (as printed by fabric submit or fabric jobs)')
      .option('--json', 'print the job as JSON'),
  ).action(async (jobId: string, flags: ConnectFlags & { json?: boolean }) => {
    const job = await askDaemon(flags, { kind: 'job', jobId })
    console.log(flags.json === true ? JSON.stringify(job, null, 2) : describeJob(job, Date.now()))
  })
}

function summaryRow(job: JobSummary, nowMs: number): string[] {
  return [job.id, job.name, job.state, replicaCounts(job), nodesOf(job), ago(job.submittedAtMs, nowMs), job.exitCode === null ? '-' : String(job.exitCode)]
}

/** "1", or for several replicas how many are in each state: "3 (2 assigned, 1 pending)". */
function replicaCounts(job: JobSummary): string {
  if (job.replicas.length <= 1) return String(Math.max(1, job.replicas.length))
  const counts = new Map<string, number>()
  for (const replica of job.replicas) counts.set(replica.state, (counts.get(replica.state) ?? 0) + 1)
  return `${job.replicas.length} (${[...counts].map(([state, count]) => `${count} ${state}`).join(', ')})`
}

function nodesOf(job: JobSummary): string {
  if (job.node !== null) return shortId(job.node)
  const nodes = [...new Set(job.replicas.flatMap((replica) => (replica.node === null ? [] : [replica.node])))]
  return nodes.length === 0 ? '-' : nodes.map(shortId).join(',')
}

type Usage = NonNullable<JobDetail['runs'][number]['usage']>

/** ", used 0.52 s CPU, peak 51.3 MiB, wall 0.81 s" (what the runtime measured; nothing when it measured nothing). */
export function describeUsage(usage: Usage | null): string {
  if (usage === null) return ''
  const parts: string[] = []
  if (usage.cpuSeconds !== null) parts.push(`${usage.cpuSeconds.toFixed(2)} s CPU`)
  if (usage.peakMemoryBytes !== null) parts.push(`peak ${(usage.peakMemoryBytes / 2 ** 20).toFixed(1)} MiB`)
  if (usage.wallMs !== null) parts.push(`wall ${(usage.wallMs / 1000).toFixed(2)} s`)
  return parts.length === 0 ? '' : `, used ${parts.join(', ')}`
}

function describeJob(job: JobDetail, nowMs: number): string {
  const lines = [
    `job        ${job.id}`,
    `name       ${job.name}`,
    `state      ${job.state}${job.archived ? ' (from the archive)' : ''}`,
    `node       ${job.node ?? (job.replicas.some((replica) => replica.node !== null) ? '(several, see replicas)' : '-')}`,
    `submitted  ${new Date(job.submittedAtMs).toISOString()} (${ago(job.submittedAtMs, nowMs)})${job.origin === null ? '' : ` through ${job.origin}`}`,
  ]
  if (job.finishedAtMs !== null) lines.push(`finished   ${new Date(job.finishedAtMs).toISOString()}, exit code ${job.exitCode ?? '-'}`)
  if (job.command !== '') lines.push(`command    ${job.command}`)
  if (job.demand !== null) lines.push(`demand     ${job.demand.cpuMillis}m CPU, ${job.demand.memoryMiB} MiB${(job.demand.gpuCount ?? 0) > 0 ? `, ${job.demand.gpuCount} GPU` : ''}`)
  const several = job.replicas.length > 1
  // With several replicas each line names its replica record.
  const which = (replica: string): string => (several ? `${replica}: ` : '')
  if (several) {
    lines.push(`replicas   ${job.replicas.length}`)
    for (const replica of job.replicas) lines.push(`  ${replica.id}: ${replica.state}${replica.node === null ? '' : ` on ${replica.node}`}${replica.exitCode === null ? '' : `, exit ${replica.exitCode}`}`)
  }
  if (job.assignments.length > 0) {
    lines.push('assignments')
    for (const assignment of job.assignments) lines.push(`  ${which(assignment.replica)}term ${assignment.term} seq ${assignment.seq} -> ${assignment.node}${assignment.committed ? ' (committed)' : ' (not committed yet)'}`)
  }
  for (const progress of job.attempts ?? []) {
    // A job without retries on its first attempt has nothing to say here.
    if ((progress.of ?? 1) <= 1 && progress.failed.length === 0) continue
    lines.push(`attempts   ${which(progress.replica)}attempt ${progress.attempt}${progress.of === null ? '' : ` of ${progress.of}`}`)
    progress.failed.forEach((failure) => {
      lines.push(`  ${which(progress.replica)}attempt ${failure.attempt} failed on ${failure.node}: exit ${failure.exitCode}, term ${failure.term} seq ${failure.seq}, ${new Date(failure.atMs).toISOString()}${describeUsage(failure.usage)}`)
    })
  }
  if (job.runs.length > 0) {
    lines.push('runs')
    for (const run of job.runs) lines.push(`  ${which(run.replica)}${run.node}: ${run.state}, exit ${run.exitCode}, term ${run.term} seq ${run.seq}, ${new Date(run.atMs).toISOString()}${describeUsage(run.usage ?? null)}`)
  }
  for (const refusal of job.unplaceable) lines.push(`unplaceable ${which(refusal.replica)}in term ${refusal.term}: ${refusal.reason}`)
  if (job.local !== null) {
    const local = job.local
    lines.push(`here       ${several && local.replica !== undefined ? `${local.replica}: ` : ''}${local.state}${local.pid === null ? '' : `, pid ${local.pid}`}${local.gpus === undefined ? '' : `, GPUs ${local.gpus.join(',')}`}${local.exitCode === null ? '' : `, exit ${local.exitCode}`}${local.reason === null ? '' : ` (${local.reason})`}`)
  }
  return lines.join('\n')
}
