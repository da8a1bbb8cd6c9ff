// Who may do what over the client protocol: the one role table. Each request kind names the least
// role it needs; roles are ordered viewer < submitter < admin, and a node (a daemon passing a logs
// request on) reads like a viewer. A kind missing from the table does not type-check, and one that
// reaches here anyway is refused. The signature and the replay window are checked before this
// (client-guard.ts); the role comes from the cluster document's admission records.
import type { AdmissionRole } from '../consensus/index.ts'
import type { ClientRequest, ClientRequestKind } from './client-wire.ts'

export type Authorization = { ok: true } | { ok: false; reason: string }

export type ClientRole = 'viewer' | 'submitter' | 'admin'

/** The least role each request kind needs. New kinds are added here (reads: viewer). */
export const requiredRole = {
  jobs: 'viewer',
  job: 'viewer',
  logs: 'viewer',
  nodes: 'viewer',
  leader: 'viewer',
  mesh: 'viewer',
  explain: 'viewer',
  plan: 'viewer',
  status: 'viewer',
  assignments: 'viewer',
  snapshots: 'viewer',
  'restore-progress': 'viewer',
  submit: 'submitter',
  cancel: 'submitter',
  migrate: 'submitter',
  checkpoint: 'submitter',
  drain: 'admin',
  undrain: 'admin',
  admit: 'admin',
  revoke: 'admin',
  // The relayed request inside is checked on its own (its client's signature and role): carrying it is no right of the carrier.
  relay: 'viewer',
} as const satisfies Record<ClientRequestKind, ClientRole>

const rank: Record<ClientRole, number> = { viewer: 1, submitter: 2, admin: 3 }

/** What an admitted role may do as a client: nodes read, like viewers. */
const clientRank: Record<Exclude<AdmissionRole, 'revoked'>, number> = { node: rank.viewer, viewer: rank.viewer, submitter: rank.submitter, admin: rank.admin }

/**
 * Kinds a node may pass on to the node that can answer them, beyond what it may ask itself: the node
 * that took the request authorized its client (a checkpoint goes to the job's runner).
 */
export const passedOnByNodes: ReadonlySet<ClientRequestKind> = new Set(['checkpoint'])

/** Whether a client acting with `role` (undefined: not admitted) may make `request`. */
export function authorize(request: Pick<ClientRequest, 'kind' | 'client'> & { forwarded?: boolean }, role: AdmissionRole | undefined): Authorization {
  const needed = Object.hasOwn(requiredRole, request.kind) ? requiredRole[request.kind] : undefined
  if (needed === undefined) return { ok: false, reason: `request kind ${String(request.kind).slice(0, 64)} has no entry in the role table, so no one may make it` }
  if (role === undefined) return { ok: false, reason: `client ${request.client} is not admitted to this mesh; ${request.kind} needs the ${needed} role (ask the mesh's admin for an invite and run \`fabric join TOKEN\`)` }
  if (role === 'revoked') return { ok: false, reason: `client ${request.client} was revoked by the mesh's admin` }
  if (role === 'node' && request.forwarded === true && passedOnByNodes.has(request.kind)) return { ok: true }
  const has = clientRank[role]
  if (has === undefined) return { ok: false, reason: `client ${request.client} has an unknown role ${String(role).slice(0, 32)}` }
  if (has < rank[needed]) return { ok: false, reason: `client ${request.client} is a ${role}; ${request.kind} needs the ${needed} role${needed === 'admin' ? '' : ' or higher'}` }
  return { ok: true }
}
