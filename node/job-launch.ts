// The one place where the core's `start-job` effect and the job's record in the cluster document
// become what a runtime runs (a RunSpec): the record carries the job's normalized spec as JSON, whose
// image (Docker), command and args, env and timeout the runtimes honour; the replica's resources
// come with the effect (its GPU count too: which devices, the job runner decides as it launches).
import { jobRecord, readText, type Document, type PeerEffect } from '../consensus/index.ts'
import type { JobSpec } from '../placement/index.ts'
import type { RunSpec } from '../runtime/index.ts'

export type StartJobEffect = Extract<PeerEffect, { kind: 'start-job' }>
export type LaunchPlan = { ok: true; spec: RunSpec } | { ok: false; reason: string }

/** Arguments one command may hold (the runtime has its own, larger maximum). */
export const maxCommandWords = 4_096

/** What to run for `effect`, read from `document` (which holds the job's record when the effect is made). */
export function runSpecFor(effect: StartJobEffect, document: Document): LaunchPlan {
  const job = jobRecord(document, effect.jobId)
  if (job === undefined) return { ok: false, reason: `job ${effect.jobId} is not in the document` }
  let spec: JobSpec
  try {
    spec = JSON.parse(readText(job.spec)) as JobSpec
  } catch {
    return { ok: false, reason: `job ${effect.jobId} has no readable spec in the document` }
  }
  const command = [...(Array.isArray(spec.command) ? spec.command : []), ...(Array.isArray(spec.args) ? spec.args : [])]
  if (!Array.isArray(spec.command) || spec.command.length === 0) return { ok: false, reason: `the job has no command${spec.image === undefined ? '' : ` to run in image ${JSON.stringify(spec.image)}`}` }
  if (!command.every((word) => typeof word === 'string')) return { ok: false, reason: 'the command holds something other than text' }
  if (command.length > maxCommandWords) return { ok: false, reason: `the command has ${command.length} words, at most ${maxCommandWords}` }
  const run: RunSpec = { jobId: effect.jobId, command, resources: { cpuMillis: effect.demand.cpuMillis, memoryMiB: effect.demand.memoryMiB, ...(effect.demand.gpuCount > 0 ? { gpuCount: effect.demand.gpuCount } : {}) } }
  if (spec.env !== null && typeof spec.env === 'object' && Object.keys(spec.env).length > 0) run.env = spec.env
  if (typeof spec.timeoutMs === 'number') run.timeoutMs = spec.timeoutMs
  if (typeof spec.image === 'string') run.image = spec.image
  // durationMs is the simulator's stand-in for a process; a real process decides when it ends.
  return { ok: true, spec: run }
}
