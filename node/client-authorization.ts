// Who may do what over the client protocol: the seam where admission (client keys with roles:
// admin, submitter, viewer; signed requests) will decide. The connection has already proved the
// client's peer id (noise) and the request names the same id.
import type { ClientRequest } from './client-wire.ts'

export type Authorization = { ok: true } | { ok: false; reason: string }

/**
 * UNFINISHED: every authenticated peer may do everything. Admission replaces this with a lookup of
 * `peerId`'s role in the document's admission list (viewer: jobs, job, logs, nodes, leader;
 * submitter: also submit; admin: everything) and a check of the request's signature.
 */
export function authorize(_request: ClientRequest, _peerId: string): Authorization {
  return { ok: true }
}
