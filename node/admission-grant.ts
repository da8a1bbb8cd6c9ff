// Admission grants as the Shuttle makes and checks them: the texts the core records with each
// admission (consensus/admission-grants.ts), each carrying the admin key's Ed25519 signature. Two
// kinds: an invite token (a joiner presents it; fabric invite signs it) and an admit or revoke
// request the admin key signed (fabric admit/revoke). Every peer checks a grant before the record
// enters its document, synchronously (node:crypto), against the admin key in the genesis and this
// mesh's id: no clock is read, so every peer reaches the same verdict.
import { createHash } from 'node:crypto'
import type { GrantFacts, VerifyGrant } from '../consensus/index.ts'
import { decodeInvite, inviteTokenPrefix, withContext } from './invite-token.ts'
import { readSignedRequest, signedBy } from './peer-signature.ts'

/** A grant's text is an invite token or a signed request as canonical JSON; both are small. */
export const maxGrantChars = 8_192

/** A grant's id: from its signature, so one grant has one id. */
function grantId(signature: Uint8Array): string {
  return createHash('sha256').update(signature).digest('base64url').slice(0, 22)
}

/** Checks grants against the admin key named in the document and this mesh's id (the genesis hash). */
export function grantVerifier(meshId: string): VerifyGrant {
  return (grant, admin) => {
    if (grant.length > maxGrantChars || admin === '') return null
    return grant.startsWith(inviteTokenPrefix) ? inviteFacts(grant, admin, meshId) : requestFacts(grant, admin)
  }
}

function inviteFacts(token: string, admin: string, meshId: string): GrantFacts | null {
  const decoded = decodeInvite(token)
  if (!decoded.ok || decoded.invite.meshId !== meshId) return null
  if (!signedBy(admin, withContext(decoded.payloadBytes), decoded.signature)) return null
  const { invite } = decoded
  return { id: grantId(decoded.signature), role: invite.role, peer: invite.peer, nonce: invite.nonce, atMs: invite.issuedAtMs }
}

function requestFacts(text: string, admin: string): GrantFacts | null {
  const signed = readSignedRequest(text)
  if (signed === null) return null
  const request = signed.fields
  if (request.kind !== 'admit' && request.kind !== 'revoke') return null
  if (request.client !== admin || typeof request.peerId !== 'string' || typeof request.signedAtMs !== 'number' || !Number.isSafeInteger(request.signedAtMs)) return null
  const role = request.kind === 'revoke' ? 'revoked' : request.role
  if (role !== 'node' && role !== 'admin' && role !== 'submitter' && role !== 'viewer' && role !== 'revoked') return null
  return { id: grantId(signed.signature), role, peer: request.peerId, nonce: null, atMs: request.signedAtMs }
}
