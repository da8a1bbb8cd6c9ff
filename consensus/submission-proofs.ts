// Who may create a job record. A voter writes the jobs its clients submit (it checked each client's
// signed request itself, and voters are trusted to). A non-voter, which may lie, must show that a
// client with the right to submit asked for exactly this job: the job's first record carries the
// client's signed request, and every peer that screens the change checks the signature, the client's
// role in the document, and that the records are what that request makes, field by field (the job id
// comes from the request's signature, so a copy of the request makes the same job, which exists).
import { roleOf } from './admission-grants.ts'
import { submittedRecordValues, type Document } from './cluster-document.ts'
import type { JobSubmission } from './types.ts'

/** What a signed submit request says, once its signature checked out. */
export interface SubmissionFacts {
  /** The client (peer id) whose key signed it. */
  client: string
  /** The submission it makes: job id (from the signature), spec, duration. */
  job: JobSubmission
  /** Its key in the mesh's replay memory, and until when it is remembered. */
  key: string
  expiresAtMs: number
}

/** Checks a signed request's text (node/: Ed25519 against the client's peer id and this mesh's id); null when it does not verify. */
export type VerifySubmission = (request: string) => SubmissionFacts | null

/** A new job record as the change writes it: its path and the scalar fields set in it. */
export interface CreatedJobRecord { id: string; fields: ReadonlyMap<string, unknown> }

const submitterRoles = new Set(['submitter', 'admin'])

/** Why a non-voter's new job records (and the replay keys it writes beside them) are refused, or null. */
export function submissionRefusal(
  writer: string,
  records: readonly CreatedJobRecord[],
  requestKeys: readonly { key: string; value: unknown }[],
  document: Document,
  admin: string,
  verify: VerifySubmission | undefined,
): string | null {
  if (records.length === 0) return requestKeys.length === 0 ? null : `${writer} wrote request key ${requestKeys[0]!.key.slice(0, 80)} without the submission it guards`
  const carrying = records.filter((record) => typeof record.fields.get('request') === 'string')
  if (carrying.length !== 1) return `${writer} wrote ${records.length} job record(s) carrying ${carrying.length} signed requests: a non-voter's submission carries exactly one`
  const facts = verify === undefined ? null : verify(carrying[0]!.fields.get('request') as string)
  if (facts === null) return `${writer} wrote job ${carrying[0]!.id.slice(0, 80)} without a request its client signed`
  const role = facts.client === admin ? 'admin' : roleOf(document, facts.client)
  if (role === undefined || !submitterRoles.has(role)) return `${writer} wrote job ${facts.job.id} for client ${facts.client.slice(0, 80)}, who may not submit (role ${role ?? 'none'})`
  const expected = submittedRecordValues(facts.job)
  if (expected.size !== records.length) return `${writer} wrote ${records.length} record(s) for job ${facts.job.id}, whose request makes ${expected.size}`
  for (const record of records) {
    const values = expected.get(record.id)
    if (values === undefined) return `${writer} wrote job record ${record.id.slice(0, 80)}, which the request for ${facts.job.id} does not make`
    for (const [field, value] of Object.entries(values)) {
      if (record.fields.get(field) !== value) return `${writer}'s job record ${record.id} says ${field} ${String(record.fields.get(field)).slice(0, 80)}, its client's request ${String(value).slice(0, 80)}`
    }
  }
  for (const { key, value } of requestKeys) {
    if (key !== facts.key || value !== facts.expiresAtMs) return `${writer} wrote request key ${key.slice(0, 80)} (until ${String(value)}), not the one its submission's request has`
  }
  return null
}
