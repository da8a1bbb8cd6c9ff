// Submission proofs as the Shuttle makes and checks them (consensus/submission-proofs.ts says why):
// a non-voter that takes a submit request writes the client's signed request, as canonical JSON,
// into the job's first record; every peer screening that change parses it again, checks the
// client's Ed25519 signature synchronously, and derives the job it makes exactly as the node that
// took it did (job id from the signature, spec parsed the same way). No clock is read: every peer
// reaches the same verdict on the same text.
import type { SubmissionFacts, VerifySubmission } from '../consensus/index.ts'
import { parseJobSpec } from '../placement/job-spec.ts'
import { signedBy } from './peer-signature.ts'
import { canonicalJson, replayKeyOfSignature, signatureField, signedBytes } from './request-signature.ts'
import { newJobId, submissionFromSpec } from './submission.ts'

/** As long as the core lets a document text be (consensus/change-validator.ts): a spec of up to ~300 KiB as JSON. */
export const maxSubmissionProofChars = 320 * 1024

/** The text a signed submit request becomes in the document. */
export function submissionProof(signed: Record<string, unknown>): string {
  return canonicalJson(signed)
}

/** Checks a submission proof: null unless the client's signature verifies and the spec makes a job. */
export const verifySubmissionProof: VerifySubmission = (text) => {
  if (text.length > maxSubmissionProofChars) return null
  let request: unknown
  try {
    request = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) return null
  const fields = request as Record<string, unknown>
  const { client, signedAtMs, spec, [signatureField]: signature } = fields
  if (fields.kind !== 'submit' || typeof client !== 'string' || typeof spec !== 'string') return null
  if (typeof signedAtMs !== 'number' || !Number.isSafeInteger(signedAtMs) || signedAtMs < 0) return null
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]+$/.test(signature)) return null
  const { [signatureField]: _omitted, ...unsigned } = fields
  if (!signedBy(client, signedBytes(unsigned), new Uint8Array(Buffer.from(signature, 'base64url')))) return null
  const parsed = parseJobSpec(spec, 'spec')
  if (!parsed.ok) return null
  const replay = replayKeyOfSignature(signature, signedAtMs)
  const made = submissionFromSpec(parsed.spec, newJobId(parsed.spec.name, replay.key))
  if (!made.ok) return null
  return { client, job: made.submission, key: replay.key, expiresAtMs: replay.expiresAtMs } satisfies SubmissionFacts
}
