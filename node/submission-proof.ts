// Submission proofs as the Shuttle makes and checks them (consensus/submission-proofs.ts says why):
// a non-voter that takes a submit request writes the client's signed request, as canonical JSON
// (signedRequestText), into the job's first record; every peer screening that change reads it again,
// checks the client's Ed25519 signature synchronously, and derives the job it makes exactly as the
// node that took it did (submissionFromSpecText). No clock is read: every peer reaches the same
// verdict on the same text.
import type { SubmissionFacts, VerifySubmission } from '../consensus/index.ts'
import { readSignedRequest } from './peer-signature.ts'
import { replayKeyOfSignature, signatureField } from './request-signature.ts'
import { submissionFromSpecText } from './submission.ts'

/** As long as the core lets a document text be (consensus/change-validator.ts): a spec of up to ~300 KiB as JSON. */
export const maxSubmissionProofChars = 320 * 1024

/**
 * Checks submission proofs for mesh `meshId`: null unless the request was signed for this mesh, the
 * client's signature verifies and the spec makes a job.
 */
export const submissionProofVerifier = (meshId: string): VerifySubmission => (text) => {
  if (text.length > maxSubmissionProofChars) return null
  const signed = readSignedRequest(text)
  if (signed === null) return null
  const { kind, client, mesh, signedAtMs, spec, [signatureField]: signature } = signed.fields
  if (kind !== 'submit' || mesh !== meshId || typeof client !== 'string' || typeof spec !== 'string' || typeof signature !== 'string') return null
  if (typeof signedAtMs !== 'number' || !Number.isSafeInteger(signedAtMs) || signedAtMs < 0) return null
  const replay = replayKeyOfSignature(signature, signedAtMs)
  const made = submissionFromSpecText(spec, replay.key)
  if (!made.ok) return null
  return { client, job: made.submission, key: replay.key, expiresAtMs: replay.expiresAtMs } satisfies SubmissionFacts
}
