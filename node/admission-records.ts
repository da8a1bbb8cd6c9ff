// Reading admission from the cluster document for node/: the role a peer acts with (the core's
// roleOf, plus the admin key itself, which is always an admin), whether a peer may take part as a
// node (consensus streams, gossip), and the markers that record used invites. The core writes the
// records (its 'admit' input); nothing here writes.
import { committeeVoters, forEachNode, readText, roleOf, type AdmissionRole, type Document } from '../consensus/index.ts'

/** Keys of the admission map that record a used invite rather than a peer (never a peer id: the colon). */
export const inviteMarkerPrefix = 'invite:'
export const inviteMarkerKey = (nonce: string): string => `${inviteMarkerPrefix}${nonce}`

/** The admin key's peer id, or null in an open mesh (no admin key: everyone acts as admin). */
export function adminOf(document: Document): string | null {
  const admin = readText(document.admin)
  return admin === '' ? null : admin
}

/** The role `peerId` acts with: undefined when it is not admitted. */
export function effectiveRole(document: Document, peerId: string): AdmissionRole | undefined {
  if (peerId.startsWith(inviteMarkerPrefix)) return undefined
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
  for (const peerId of Object.keys(document.admitted ?? {})) {
    if (ids.size >= limit) break
    if (effectiveRole(document, peerId) === 'node') ids.add(peerId)
  }
  return [...ids]
}

/** Was the invite with this nonce used already (recorded by some node that admitted its holder)? */
export function inviteUsed(document: Document, nonce: string): boolean {
  return document.admitted?.[inviteMarkerKey(nonce)] !== undefined
}

export interface AdmittedPeer { peerId: string; role: string; by: string; atMs: number }

/** The admission records of peers (invite markers left out), at most `limit`, and how many invites were used. */
export function admittedPeers(document: Document, limit: number): { peers: AdmittedPeer[]; truncated: boolean; invitesUsed: number } {
  const peers: AdmittedPeer[] = []
  let invitesUsed = 0
  let truncated = false
  for (const [peerId, record] of Object.entries(document.admitted ?? {})) {
    if (peerId.startsWith(inviteMarkerPrefix)) {
      invitesUsed++
      continue
    }
    if (peers.length >= limit) {
      truncated = true
      continue
    }
    peers.push({ peerId, role: readText(record.role), by: readText(record.by), atMs: record.atMs })
  }
  peers.sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  return { peers, truncated, invitesUsed }
}
