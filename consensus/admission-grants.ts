// Admission in the document: each grant of a role to a peer is kept under `peer/grant id` (flat: two
// nodes admitting one peer at once must not both create a map for it), with the grant's text, which carries the admin key's signature (an invite token, or an
// admit/revoke request the admin key signed). Every peer checks that signature before a record
// enters (write-rules.ts), so no node can admit anyone the admin key did not; a peer's role is its
// latest grant's (by the signed time, then id), so replaying an old grant changes nothing. An invite
// that names no peer admits one peer: its nonce is recorded with the grant, once.
import * as A from '@automerge/automerge'
import { committeeVoters } from './committee.ts'
import { nodeRecord, ownEntry, readText, roles, type ClusterDocument, type Document, type Role } from './cluster-document.ts'
import { asNodeId } from './types.ts'

/** What a valid grant says, read from its text by the verifier. */
export interface GrantFacts {
  /** Its key under the peer (derived from its signature, so one grant has one key). */
  id: string
  role: Role
  /** The one peer it may admit; null: an invite any one peer may use, once. */
  peer: string | null
  /** An invite's nonce (recorded when it is used), null for an admit/revoke request. */
  nonce: string | null
  /** When the admin key signed it: the latest grant of a peer decides its role. */
  atMs: number
}

/**
 * Reads a grant's text and checks the signature inside against the mesh's admin key; null when it is
 * not a valid grant. Pure and deterministic (no clock: expiry is checked by the node that takes a
 * join, not by every peer later). node/ checks Ed25519 signatures; the simulator its own.
 */
export type VerifyGrant = (grant: string, admin: string) => GrantFacts | null

/** Grant ids and invite nonces: what a key of the admission maps may look like. */
export const grantIdPattern = /^[A-Za-z0-9_-]{8,64}$/

/** The admission map's key of a peer's grant. */
export const grantKey = (peerId: string, grantId: string): string => `${peerId}/${grantId}`

/** Splits an admission key into peer and grant id (null: not one). */
export function splitGrantKey(key: string): { peer: string; id: string } | null {
  const slash = key.lastIndexOf('/')
  if (slash <= 0) return null
  const id = key.slice(slash + 1)
  return grantIdPattern.test(id) ? { peer: key.slice(0, slash), id } : null
}

interface LatestGrant { id: string; role: Role; atMs: number; by: string }

/** Per document version: each peer's latest grant (by signed time, then id). */
const latestIndexes = new WeakMap<Document, Map<string, LatestGrant>>()

function latestGrants(document: Document): Map<string, LatestGrant> {
  let index = latestIndexes.get(document)
  if (index !== undefined) return index
  index = new Map()
  for (const [key, record] of Object.entries(document.admitted)) {
    const split = splitGrantKey(key)
    const role = readText(record.role) as Role
    if (split === null || !roles.includes(role) || typeof record.atMs !== 'number') continue
    const best = index.get(split.peer)
    if (best === undefined || record.atMs > best.atMs || (record.atMs === best.atMs && split.id > best.id)) index.set(split.peer, { id: split.id, role, atMs: record.atMs, by: readText(record.by) })
  }
  latestIndexes.set(document, index)
  return index
}

function latestGrant(document: Document, peerId: string): LatestGrant | undefined {
  return latestGrants(document).get(peerId)
}

/**
 * A peer's role: its latest grant; else voters and registered nodes are 'node'; an open mesh (no
 * admin key) lets everyone be an 'admin'. Undefined: not admitted.
 */
export function roleOf(document: Document, peerId: string): Role | undefined {
  const granted = latestGrant(document, peerId)
  if (granted !== undefined) return granted.role
  if (committeeVoters(document).includes(asNodeId(peerId)) || nodeRecord(document, asNodeId(peerId)) !== undefined) return 'node'
  if (readText(document.admin) === '') return 'admin'
  return undefined
}

/** Was this invite used already? */
export function inviteUsed(document: Document, nonce: string): boolean {
  return ownEntry(document.invites, nonce) !== undefined
}

export interface AdmittedPeer { peerId: string; role: string; by: string; atMs: number }

/** The admitted peers with their current role, at most `limit`, and how many invites were used. */
export function admittedPeers(document: Document, limit: number): { peers: AdmittedPeer[]; truncated: boolean; invitesUsed: number } {
  const peers: AdmittedPeer[] = []
  let truncated = false
  for (const [peerId, latest] of latestGrants(document)) {
    if (peers.length >= limit) {
      truncated = true
      continue
    }
    peers.push({ peerId, role: latest.role, by: latest.by, atMs: latest.atMs })
  }
  peers.sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  return { peers, truncated, invitesUsed: Object.keys(document.invites).length }
}

/** Records a verified grant of `facts.role` to `peerId`, and the invite's use when it is one. */
export function writeGrant(draft: ClusterDocument, peerId: string, facts: GrantFacts, grant: string, by: string): void {
  const text = (value: string) => new A.ImmutableString(value)
  draft.admitted[grantKey(peerId, facts.id)] = { role: text(facts.role), by: text(by), atMs: facts.atMs, grant: text(grant) }
  if (facts.nonce !== null) draft.invites[facts.nonce] = { peer: text(peerId), atMs: facts.atMs }
}
