// The one place where a validated job spec (placement/) becomes the submission the consensus core
// accepts. What this daemon cannot honour yet is refused here with a clear reason rather than
// dropped: an image without a command (the Docker runtime is not wired into the daemon yet) and
// retries (a failed run is final for now).
import { randomBytes } from 'node:crypto'
import { asJobId, type JobId, type JobSubmission } from '../consensus/index.ts'
import type { JobSpec } from '../placement/index.ts'

export type SubmissionResult = { ok: true; submission: JobSubmission } | { ok: false; reason: string }

/** A fresh job id: the spec's name (already [a-z0-9-]) and 48 random bits. */
export function newJobId(name: string): JobId {
  return asJobId(`${name}-${randomBytes(6).toString('hex')}`)
}

export function submissionFromSpec(spec: JobSpec, jobId: JobId): SubmissionResult {
  const unsupported: string[] = []
  if (spec.command === undefined) unsupported.push(`image ${JSON.stringify(spec.image)} without a command: this daemon runs processes (the Docker runtime is not wired into it yet)`)
  if (spec.retries > 0) unsupported.push(`retries ${spec.retries}: a failed run is final for now`)
  if (unsupported.length > 0) return { ok: false, reason: `not supported yet: ${unsupported.join('; ')}` }
  return { ok: true, submission: { id: jobId, spec, durationMs: 0 } }
}
