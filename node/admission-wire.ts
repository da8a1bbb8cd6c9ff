// The admission requests of /fabric/client/1.0.0 (admit, revoke, mesh): their schemas and the
// schemas of their answers, spread into client-wire.ts's tables. Kept apart so that the client
// protocol's own file only names them; the envelope (version, ids, signature) comes from there.
import { z } from 'zod'
import { invitableRoles } from './invite-terms.ts'

export const admissionWireLimits = {
  maxPeerIdLength: 128,
  /** Admission records one `mesh` answer lists. */
  maxListedAdmitted: 10_000,
  maxListedAddresses: 64,
} as const

const peerId = z.string().min(1).max(admissionWireLimits.maxPeerIdLength)

/** The request schemas, each extending the client protocol's envelope. */
export function admissionRequestSchemas<Envelope extends z.ZodRawShape>(envelope: Envelope) {
  return {
    /** Admin: admit a peer (node or client) with a role, or change its role. */
    admit: z.strictObject({ ...envelope, kind: z.literal('admit'), peerId, role: z.enum(invitableRoles) }),
    /** Admin: revoke a peer; the mesh refuses and disconnects it. */
    revoke: z.strictObject({ ...envelope, kind: z.literal('revoke'), peerId }),
    /** Viewer: the mesh's id (for invites), its admin, the asked node's addresses, the admitted peers. */
    mesh: z.strictObject({ ...envelope, kind: z.literal('mesh') }),
  }
}

export const admittedPeerSchema = z.object({ peerId: z.string(), role: z.string(), by: z.string(), atMs: z.number() })

export const meshViewSchema = z.object({
  meshId: z.string(),
  /** Null: an open mesh (no admin key; every peer acts as admin). */
  admin: z.string().nullable(),
  askedNode: z.string(),
  /** Where the asked node and the voters it knows listen, with /p2p/<id>: what an invite's bootstrap list defaults to. */
  addresses: z.array(z.string()).max(admissionWireLimits.maxListedAddresses),
  admitted: z.array(admittedPeerSchema).max(admissionWireLimits.maxListedAdmitted),
  truncated: z.boolean(),
  invitesUsed: z.number(),
})

export type MeshView = z.infer<typeof meshViewSchema>

export const admissionResultSchemas = {
  admit: z.object({ peerId: z.string(), role: z.string() }),
  revoke: z.object({ peerId: z.string(), role: z.literal('revoked') }),
  mesh: meshViewSchema,
} as const
