// Ed25519 signatures checked against a peer id, synchronously (node:crypto): the core's checks of
// grants and submission proofs run inside its event handling, where nothing may wait. No clock is
// read, so every peer reaches the same verdict on the same bytes.
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { signatureField, signedBytes } from './request-signature.ts'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo: the 32 raw key bytes follow. */
const ed25519SpkiPrefix = Buffer.from('302a300506032b6570032100', 'hex')
const publicKeys = new Map<string, KeyObject | null>()
const maxCachedKeys = 64

function publicKeyOf(peerId: string): KeyObject | null {
  const cached = publicKeys.get(peerId)
  if (cached !== undefined) return cached
  let key: KeyObject | null = null
  try {
    const parsed = peerIdFromString(peerId)
    if (parsed.type === 'Ed25519') key = createPublicKey({ key: Buffer.concat([ed25519SpkiPrefix, Buffer.from(parsed.publicKey.raw)]), format: 'der', type: 'spki' })
  } catch {
    key = null
  }
  if (publicKeys.size >= maxCachedKeys) publicKeys.clear()
  publicKeys.set(peerId, key)
  return key
}

/** Whether `signature` is `peerId`'s Ed25519 signature of `bytes` (false for a peer id that is not an Ed25519 key). */
export function signedBy(peerId: string, bytes: Uint8Array, signature: Uint8Array): boolean {
  const key = publicKeyOf(peerId)
  if (key === null || signature.length !== 64) return false
  try {
    return verify(null, bytes, key, signature)
  } catch {
    return false
  }
}

/**
 * A signed client request kept as text in the document (signedRequestText): its fields and signature
 * bytes when the signature verifies against the client it names, else null (not JSON, not an
 * object, no signature, a forgery).
 */
export function readSignedRequest(text: string): { fields: Record<string, unknown>; signature: Uint8Array } | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null
  const fields = parsed as Record<string, unknown>
  const { [signatureField]: encoded, ...unsigned } = fields
  if (typeof fields.client !== 'string' || typeof encoded !== 'string' || !/^[A-Za-z0-9_-]+$/.test(encoded)) return null
  const signature = new Uint8Array(Buffer.from(encoded, 'base64url'))
  return signedBy(fields.client, signedBytes(unsigned), signature) ? { fields, signature } : null
}
