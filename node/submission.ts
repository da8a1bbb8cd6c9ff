// The one place where a validated job spec (placement/) becomes the submission the consensus core
// accepts. A job naming an image runs in Docker: it gets the constraint that only nodes with an
// engine bid for it. What no daemon can honour yet is refused here with a clear reason rather than
// dropped: an image without a command (the command replaces the image's entrypoint, as in the
// process runtime). Retries are the core's (consensus/retries.ts): the spec carries them.
import { randomBytes } from 'node:crypto'
import { asJobId, type JobId, type JobSubmission } from '../consensus/index.ts'
import { parseJobSpec, type JobSpec } from '../placement/index.ts'
import { dockerLabel } from './runtime-selector.ts'

export type SubmissionResult = { ok: true; submission: JobSubmission } | { ok: false; reason: string }

/**
 * A job id: the spec's name (already [a-z0-9-]) and 48 bits, taken from the signed request's replay
 * key when there is one (the same request taken twice is the same job), else random.
 */
export function newJobId(name: string, replayKey?: string): JobId {
  const bits = replayKey === undefined ? randomBytes(6).toString('hex') : Buffer.from(replayKey, 'base64url').subarray(0, 6).toString('hex')
  return asJobId(`${name}-${bits}`)
}

export function submissionFromSpec(spec: JobSpec, jobId: JobId): SubmissionResult {
  const unsupported: string[] = []
  if (spec.command === undefined) unsupported.push(`image ${JSON.stringify(spec.image)} without a command: give the command to run in it`)
  if (unsupported.length > 0) return { ok: false, reason: `not supported yet: ${unsupported.join('; ')}` }
  const placed = spec.image === undefined ? spec : { ...spec, constraints: { ...spec.constraints, labels: { ...spec.constraints.labels, [dockerLabel.key]: dockerLabel.value } } }
  return { ok: true, submission: { id: jobId, spec: placed, durationMs: 0 } }
}

/**
 * The submission a submit request's spec text makes, its id from the signed request's replay key:
 * what the node that takes the request writes, and what every peer checking a non-voter's
 * submission proof derives again (submission-proof.ts). Both must agree to the field.
 */
export function submissionFromSpecText(text: string, replayKey: string | undefined): SubmissionResult {
  const parsed = parseJobSpec(text, 'spec')
  if (!parsed.ok) return { ok: false, reason: parsed.errors.map((error) => `${error.path}: ${error.message}`).join('; ') }
  return submissionFromSpec(parsed.spec, newJobId(parsed.spec.name, replayKey))
}
