// The one place where a validated job spec (placement/) becomes the submission the consensus core
// accepts today ({id, name, demand, durationMs, command}). What the core cannot carry or honour yet
// is refused here with a clear reason rather than dropped: an image without a command (the process
// runtime runs commands), several replicas, GPUs, and placement constraints (the interim placement
// knows CPU and memory only), and env, timeout, retries, price caps and checkpoints, which nothing
// carries yet. Strategy, intent and priority are preferences the interim placement ignores.
import { randomBytes } from 'node:crypto'
import { asJobId, type JobId, type JobSubmission } from '../consensus/index.ts'
import { jobDemand, type JobSpec } from '../placement/index.ts'
import { encodeCommand } from './job-launch.ts'

export type SubmissionResult = { ok: true; submission: JobSubmission } | { ok: false; reason: string }

/** A fresh job id: the spec's name (already [a-z0-9-]) and 48 random bits. */
export function newJobId(name: string): JobId {
  return asJobId(`${name}-${randomBytes(6).toString('hex')}`)
}

export function submissionFromSpec(spec: JobSpec, jobId: JobId): SubmissionResult {
  const unsupported: string[] = []
  if (spec.command === undefined) unsupported.push(`image ${JSON.stringify(spec.image)} without a command: this daemon runs processes (the Docker runtime is not wired yet)`)
  if (spec.replicas !== 1) unsupported.push(`replicas ${spec.replicas}: one replica per job for now`)
  const demand = jobDemand(spec)
  if (demand.gpuCount > 0) unsupported.push('GPUs: the interim placement does not know them yet')
  const constraints = spec.constraints
  if (constraints.providers || constraints.regions || constraints.azIds || constraints.allowedCountries || Object.keys(constraints.labels).length > 0) {
    unsupported.push('placement constraints: the interim placement places by CPU and memory only')
  }
  if (spec.data.length > 0) unsupported.push('data inputs: not placed by data location yet')
  if (Object.keys(spec.env).length > 0) unsupported.push('env: not carried to the runtime yet')
  if (spec.timeoutMs !== undefined) unsupported.push('timeout: not carried to the runtime yet')
  if (spec.retries > 0) unsupported.push(`retries ${spec.retries}: a failed run is final for now`)
  if (spec.maxPricePerHour !== undefined) unsupported.push('maxPricePerHour: the interim placement does not price yet')
  if (spec.checkpoint !== undefined) unsupported.push('checkpoint: CRIU checkpoints are not wired yet')
  if (unsupported.length > 0) return { ok: false, reason: `not supported yet: ${unsupported.join('; ')}` }
  return {
    ok: true,
    submission: {
      id: jobId,
      name: spec.name,
      demand: { cpuMillis: demand.cpuMillis, memoryMiB: demand.memoryMiB },
      durationMs: 0, // the process decides when it ends
      command: encodeCommand([...(spec.command ?? []), ...spec.args]),
    },
  }
}
