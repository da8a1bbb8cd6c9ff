// Invite tokens: what the mesh's admin key signs so that one peer (a node or a client) may be
// admitted with a role. A token is `fabric-invite-1.<payload>.<signature>`, both base64url; the
// payload is JSON (mesh id = the genesis hash, role, optional bound peer, nonce, expiry, bootstrap
// addresses) and the signature is the admin key's Ed25519 signature over a domain prefix and the
// payload's exact bytes. Verification needs only the admin's peer id (an Ed25519 peer id embeds
// its public key), which the cluster document holds. Single use is checked by the join protocol
// against the document (see join-protocol.ts); everything else is checked here.
import { randomBytes } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { invitableRoles, inviteLimits, type InvitableRole } from './invite-terms.ts'

export const inviteTokenPrefix = 'fabric-invite-1.'
export { invitableRoles, inviteLimits, type InvitableRole } from './invite-terms.ts'

/** What the signature covers is prefixed with this, so no other signed Fabric message can pass as an invite. */
const signingContext = new TextEncoder().encode('fabric-invite/1\n')

const payloadSchema = z.strictObject({
  /** The mesh's id: the SHA-256 (hex) of its genesis document. */
  mesh: z.string().regex(/^[0-9a-f]{64}$/),
  role: z.enum(invitableRoles),
  /** When set, only this peer id may use the invite. */
  peer: z.string().min(1).max(128).optional(),
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  /** Expiry, milliseconds since the epoch. */
  exp: z.number().int().positive(),
  /** When the admin key signed it (a peer's latest grant decides its role); absent in older tokens. */
  iat: z.number().int().nonnegative().optional(),
  /** Where the mesh can be reached (multiaddrs with /p2p/<id>). */
  boot: z.array(z.string().min(1).max(inviteLimits.maxAddressChars)).max(inviteLimits.maxBootstrapAddresses).optional(),
})

export type InvitePayload = z.infer<typeof payloadSchema>

export interface Invite {
  meshId: string
  role: InvitableRole
  peer: string | null
  nonce: string
  expiresAtMs: number
  /** When it was signed (0 for tokens made before this was kept). */
  issuedAtMs: number
  bootstrap: string[]
}

/** Why a token is refused; `code` lets callers (and the join protocol's answer) tell the cases apart. */
export type InviteRefusal = { ok: false; code: 'malformed' | 'bad-signature' | 'wrong-mesh' | 'expired' | 'wrong-peer'; reason: string }

export interface CreateInviteOptions {
  adminKey: PrivateKey
  meshId: string
  role: InvitableRole
  peer?: string
  ttlMs: number
  nowMs: number
  bootstrap?: readonly string[]
  /** Chosen at random when absent (tests pass one to make tokens reproducible). */
  nonce?: string
}

/** Signs an invite with the admin key; throws on arguments no valid token could carry. */
export async function createInvite(options: CreateInviteOptions): Promise<string> {
  if (!Number.isInteger(options.ttlMs) || options.ttlMs <= 0 || options.ttlMs > inviteLimits.maxTtlMs) {
    throw new RangeError(`an invite's time to live must be 1 ms to ${inviteLimits.maxTtlMs} ms, got ${options.ttlMs}`)
  }
  const payload: InvitePayload = {
    mesh: options.meshId,
    role: options.role,
    ...(options.peer !== undefined ? { peer: options.peer } : {}),
    nonce: options.nonce ?? randomBytes(inviteLimits.nonceBytes).toString('base64url'),
    exp: options.nowMs + options.ttlMs,
    iat: options.nowMs,
    ...(options.bootstrap !== undefined && options.bootstrap.length > 0 ? { boot: [...options.bootstrap] } : {}),
  }
  const checked = payloadSchema.safeParse(payload)
  if (!checked.success) throw new RangeError(`cannot make this invite: ${checked.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`)
  if (options.peer !== undefined) assertPeerId(options.peer, 'the bound peer')
  const payloadBytes = new TextEncoder().encode(JSON.stringify(payload))
  const signature = await options.adminKey.sign(withContext(payloadBytes))
  const token = `${inviteTokenPrefix}${Buffer.from(payloadBytes).toString('base64url')}.${Buffer.from(signature).toString('base64url')}`
  if (token.length > inviteLimits.maxTokenChars) throw new RangeError(`the invite would be ${token.length} characters, over maxTokenChars (${inviteLimits.maxTokenChars}): give fewer bootstrap addresses`)
  return token
}

/** Reads a token without checking its signature (a joiner learns its role and bootstrap addresses). */
export function decodeInvite(token: string): { ok: true; invite: Invite; payloadBytes: Uint8Array; signature: Uint8Array } | InviteRefusal {
  const malformed = (reason: string): InviteRefusal => ({ ok: false, code: 'malformed', reason: `the invite token is malformed: ${reason}` })
  const trimmed = token.trim()
  if (trimmed.length > inviteLimits.maxTokenChars) return malformed(`${trimmed.length} characters, over ${inviteLimits.maxTokenChars}`)
  if (!trimmed.startsWith(inviteTokenPrefix)) return malformed(`it does not start with ${inviteTokenPrefix}`)
  const parts = trimmed.slice(inviteTokenPrefix.length).split('.')
  if (parts.length !== 2 || !parts.every((part) => /^[A-Za-z0-9_-]+$/.test(part))) return malformed('expected two base64url parts separated by a dot')
  const payloadBytes = new Uint8Array(Buffer.from(parts[0]!, 'base64url'))
  const signature = new Uint8Array(Buffer.from(parts[1]!, 'base64url'))
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payloadBytes))
  } catch (error) {
    return malformed(`its payload is not JSON (${(error as Error).message.slice(0, 80)})`)
  }
  const parsed = payloadSchema.safeParse(json)
  if (!parsed.success) return malformed(parsed.error.issues.slice(0, 3).map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; '))
  const payload = parsed.data
  return {
    ok: true,
    payloadBytes,
    signature,
    invite: { meshId: payload.mesh, role: payload.role, peer: payload.peer ?? null, nonce: payload.nonce, expiresAtMs: payload.exp, issuedAtMs: payload.iat ?? 0, bootstrap: payload.boot ?? [] },
  }
}

export interface VerifyInviteContext {
  /** The admin key's peer id, from the cluster document. */
  adminId: string
  /** This mesh's genesis hash. */
  meshId: string
  /** The peer presenting the token (authenticated by the connection). */
  peerId: string
  nowMs: number
}

/** Checks format, signature (against the document's admin key), mesh, expiry and peer binding. */
export async function verifyInvite(token: string, context: VerifyInviteContext): Promise<{ ok: true; invite: Invite } | InviteRefusal> {
  const decoded = decodeInvite(token)
  if (!decoded.ok) return decoded
  const { invite } = decoded
  const adminKey = publicKeyOf(context.adminId)
  let signed = false
  try {
    signed = adminKey !== undefined && (await adminKey.verify(withContext(decoded.payloadBytes), decoded.signature))
  } catch {
    signed = false
  }
  if (!signed) return { ok: false, code: 'bad-signature', reason: `the invite is not signed by this mesh's admin key (${context.adminId})` }
  if (invite.meshId !== context.meshId) return { ok: false, code: 'wrong-mesh', reason: `the invite is for mesh ${invite.meshId.slice(0, 16)}..., this node belongs to mesh ${context.meshId.slice(0, 16)}...` }
  if (context.nowMs >= invite.expiresAtMs) return { ok: false, code: 'expired', reason: `the invite expired at ${new Date(invite.expiresAtMs).toISOString()} (now ${new Date(context.nowMs).toISOString()} on this node)` }
  if (invite.peer !== null && invite.peer !== context.peerId) return { ok: false, code: 'wrong-peer', reason: `the invite is bound to peer ${invite.peer}, not to ${context.peerId}` }
  return { ok: true, invite }
}

/** The admin id of a key: what `--admin` takes and the document records. */
export function adminIdOf(adminKey: PrivateKey): string {
  return peerIdFromPrivateKey(adminKey).toString()
}

/** Throws unless `peerId` is a peer id whose public key is inline (Ed25519), as admin ids and bound peers must be. */
export function assertPeerId(peerId: string, what: string): void {
  if (publicKeyOf(peerId) === undefined) throw new RangeError(`${what} "${peerId}" is not an Ed25519 peer id`)
}

function publicKeyOf(peerId: string) {
  try {
    const parsed = peerIdFromString(peerId)
    return parsed.type === 'Ed25519' ? parsed.publicKey : undefined
  } catch {
    return undefined
  }
}

/** The bytes an invite's signature covers. */
export function withContext(payloadBytes: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(signingContext.length + payloadBytes.length)
  bytes.set(signingContext)
  bytes.set(payloadBytes, signingContext.length)
  return bytes
}
