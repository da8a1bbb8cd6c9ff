// Answers to the admission requests of the client protocol: admit and revoke (an admin's signed
// request becomes the core's 'admit' input, answered once durable on a majority of voters) and mesh
// (the mesh id, its admin, where the asked node listens, the admitted peers). The role table
// (client-authorization.ts) has already let only admins through to admit and revoke.
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { committeeVoters, type AdmissionRole, type Document } from '../consensus/index.ts'
import { adminOf, admittedPeers } from './admission-records.ts'
import { admissionWireLimits } from './admission-wire.ts'
import { errorResponse, type ClientErrorCode, type ClientRequestOf, type ClientResponse } from './client-wire.ts'

export type AdmitOutcome = { ok: true } | { ok: false; code: ClientErrorCode; reason: string }

export interface AdmissionRequestBackend {
  readonly nodeId: string
  readonly meshId: string
  document(): Document
  /** Where this node and the voters it knows listen, with /p2p/<id> (what an invite's bootstrap list defaults to). */
  addresses(): Promise<string[]>
  /** Steps the core's 'admit' input with the grant and resolves once it is durable on a majority of voters (or refused). */
  admit(peerId: string, grant: string): Promise<AdmitOutcome>
}

export type AdmissionRequest = ClientRequestOf<'admit'> | ClientRequestOf<'revoke'> | ClientRequestOf<'mesh'>

/** `grant`: the request as the admin key signed it (null when its signed form is not at hand: it cannot be recorded). */
export async function answerAdmissionRequest(request: AdmissionRequest, backend: AdmissionRequestBackend, grant: string | null): Promise<ClientResponse> {
  switch (request.kind) {
    case 'mesh':
      return meshView(backend, await backend.addresses())
    case 'admit':
    case 'revoke': {
      const role: AdmissionRole = request.kind === 'revoke' ? 'revoked' : request.role
      const refusal = refusalFor(request.peerId, role, backend.document())
      if (refusal !== null) return errorResponse('refused', refusal)
      if (grant === null) return errorResponse('refused', 'the signed request is not at hand, so it cannot be recorded as a grant')
      const outcome = await backend.admit(request.peerId, grant)
      if (!outcome.ok) return errorResponse(outcome.code, outcome.reason)
      return { type: 'result', value: { peerId: request.peerId, role } }
    }
  }
}

function refusalFor(peerId: string, role: AdmissionRole, document: Document): string | null {
  try {
    peerIdFromString(peerId)
  } catch {
    return `"${peerId}" is not a peer id`
  }
  if (peerId === adminOf(document)) return `${peerId} is the mesh's admin key, which is always an admin: it cannot be given another role`
  // A revoked voter could no longer vote: the committee must drop it first (one voter at a time).
  if (role !== 'node' && committeeVoters(document).includes(peerId as never)) return `${peerId} is a voter of the committee; take it out of the committee before giving it the role ${role}`
  return null
}

function meshView(backend: AdmissionRequestBackend, addresses: string[]): ClientResponse {
  const document = backend.document()
  const { peers, truncated, invitesUsed } = admittedPeers(document, admissionWireLimits.maxListedAdmitted)
  return {
    type: 'result',
    value: {
      meshId: backend.meshId,
      admin: adminOf(document),
      askedNode: backend.nodeId,
      addresses: addresses.slice(0, admissionWireLimits.maxListedAddresses),
      admitted: peers,
      truncated,
      invitesUsed,
    },
  }
}

/**
 * This node's addresses, then those the peer store holds for the voters (learned by identify). A
 * joiner should reach the voters itself: a node finds peers only through the connections it has
 * (there is no peer routing yet), and the leader calls for bids over them.
 */
export async function meshAddresses(libp2p: Libp2p, voters: readonly string[], limit: number): Promise<string[]> {
  const addresses = libp2p.getMultiaddrs().map((address) => address.toString())
  for (const voter of voters) {
    if (voter === libp2p.peerId.toString()) continue
    try {
      const known = await libp2p.peerStore.get(peerIdFromString(voter))
      const first = known.addresses[0]?.multiaddr.toString()
      if (first !== undefined) addresses.push(first.includes('/p2p/') ? first : `${first}/p2p/${voter}`)
    } catch {
      // not in the peer store: not connected yet
    }
  }
  return addresses.slice(0, limit)
}
