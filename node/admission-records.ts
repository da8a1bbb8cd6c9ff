// Reading admission from the cluster document for node/: the role a peer acts with (the core's
// roleOf, plus the admin key itself, which is always an admin), whether a peer may take part as a
// node (consensus streams, gossip), and which invites were used. The core writes the records (its
// 'admit' input, with a grant the admin key signed: node/admission-grant.ts); nothing here writes.
import { admittedPeers as admittedInDocument, committeeVoters, forEachNode, inviteUsed as inviteUsedInDocument, readText, roleOf, type AdmissionRole, type AdmittedPeer, type Document } from '../consensus/index.ts'

/** The admin key's peer id, or null in an open mesh (no admin key: everyone acts as admin). */
export function adminOf(document: Document): string | null {
  const admin = readText(document.admin)
  return admin === '' ? null : admin
}

/** The role `peerId` acts with: undefined when it is not admitted. */
export function effectiveRole(document: Document, peerId: string): AdmissionRole | undefined {
  const admin = adminOf(document)
  if (admin !== null && peerId === admin) return 'admin'
  return roleOf(document, peerId)
}

/** May `peerId` speak the consensus protocol and gossip? Nodes may; in an open mesh anyone not revoked. */
export function mayActAsNode(document: Document, peerId: string): boolean {
  const role = effectiveRole(document, peerId)
  if (role === 'node') return true
  return adminOf(document) === null && role !== undefined && role !== 'revoked'
}

/** The peers the document names as nodes (voters, registered nodes, peers admitted as nodes), at most `limit`: whom peer discovery dials. */
export function admittedNodeIds(document: Document, limit: number): string[] {
  const ids = new Set<string>()
  for (const voter of committeeVoters(document)) if (ids.size < limit && mayActAsNode(document, voter)) ids.add(voter)
  forEachNode(document, (nodeId) => {
    if (ids.size < limit && mayActAsNode(document, nodeId)) ids.add(nodeId)
  })
  for (const { peerId } of admittedInDocument(document, limit).peers) {
    if (ids.size >= limit) break
    if (effectiveRole(document, peerId) === 'node') ids.add(peerId)
  }
  return [...ids]
}

/** Was the invite with this nonce used already (recorded by some node that admitted its holder)? */
export function inviteUsed(document: Document, nonce: string): boolean {
  return inviteUsedInDocument(document, nonce)
}

export type { AdmittedPeer }

/** The admitted peers with their current role, at most `limit`, and how many invites were used. */
export function admittedPeers(document: Document, limit: number): { peers: AdmittedPeer[]; truncated: boolean; invitesUsed: number } {
  return admittedInDocument(document, limit)
}
