// Signed client requests: every request on /fabric/client/1.0.0 carries the client's Ed25519
// signature over its canonical bytes (JSON with sorted keys, without the signature field) and the
// time it was signed. The daemon checks the signature against the client's peer id, refuses a
// request signed outside its replay window, and remembers the signatures it accepted inside the
// window so the same bytes are not accepted twice. The connection is already authenticated by
// noise; the signature makes the request itself attributable, also when a node passes it on.
import { createHash } from 'node:crypto'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

/** The signature covers this prefix too, so no other signed Fabric message can pass as a request. */
const signingContext = 'fabric-client-request/1\n'
/** The field carrying the signature (left out of what it covers). */
export const signatureField = 'signature'
/** An Ed25519 signature is 64 bytes: 86 base64url characters. */
export const maxSignatureChars = 128

export interface RequestSignatureLimits {
  /** A request signed further than this from the daemon's clock (either way) is refused. */
  maxClockSkewMs: number
  /** Signatures remembered inside the window; when full, new requests are refused as busy (never forgotten early). */
  maxRememberedSignatures: number
}

export const requestSignatureLimits: RequestSignatureLimits = { maxClockSkewMs: 60_000, maxRememberedSignatures: 65_536 }

/** A libp2p service that signs with the host's own key (the key never leaves libp2p's components). */
export interface RequestSigner { sign(bytes: Uint8Array): Promise<Uint8Array> }
export const requestSignerServiceName = 'requestSigner'

export function requestSigner(): (components: { privateKey: PrivateKey }) => RequestSigner {
  return (components) => ({ sign: async (bytes) => components.privateKey.sign(bytes) })
}

export class MissingRequestSignerError extends Error {
  override name = 'MissingRequestSignerError'
  constructor() {
    super(`this libp2p host has no ${requestSignerServiceName} service, so it cannot sign client requests (createClientHost and the Shuttle add it)`)
  }
}

/** Signs `unsigned` (a request without its signature) with the host's key; returns the base64url signature. */
export async function signClientRequest(libp2p: Libp2p, unsigned: Record<string, unknown>): Promise<string> {
  const signer = (libp2p.services as Record<string, unknown>)[requestSignerServiceName] as RequestSigner | undefined
  if (signer === undefined || typeof signer.sign !== 'function') throw new MissingRequestSignerError()
  return Buffer.from(await signer.sign(signedBytes(unsigned))).toString('base64url')
}

/** Checks the signature of a decoded request (the JSON object as received) against the peer id `client`. */
export async function verifyClientRequestSignature(received: Record<string, unknown>, client: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const signature = received[signatureField]
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]+$/.test(signature)) return { ok: false, reason: 'the request carries no signature' }
  let publicKey
  try {
    const peerId = peerIdFromString(client)
    publicKey = peerId.type === 'Ed25519' ? peerId.publicKey : undefined
  } catch {
    publicKey = undefined
  }
  if (publicKey === undefined) return { ok: false, reason: `client ${client.slice(0, 128)} is not an Ed25519 peer id, so its signature cannot be checked` }
  const { [signatureField]: _omitted, ...unsigned } = received
  let valid = false
  try {
    valid = await publicKey.verify(signedBytes(unsigned), new Uint8Array(Buffer.from(signature, 'base64url')))
  } catch {
    valid = false
  }
  return valid ? { ok: true } : { ok: false, reason: `the request's signature does not verify against client ${client}` }
}

/**
 * Refuses a request signed outside the window around the daemon's clock, or whose signature was
 * already accepted (a replay). Ed25519 signatures are deterministic, so the signature identifies
 * the signed bytes. Entries are kept until their request would fall out of the window anyway.
 */
export class ReplayGuard {
  readonly #maxClockSkewMs: number
  readonly #maxRemembered: number
  /** Signature -> the time after which a replay of it is refused by the window alone. */
  readonly #seen = new Map<string, number>()

  constructor(limits: Partial<RequestSignatureLimits> = {}) {
    this.#maxClockSkewMs = limits.maxClockSkewMs ?? requestSignatureLimits.maxClockSkewMs
    this.#maxRemembered = limits.maxRememberedSignatures ?? requestSignatureLimits.maxRememberedSignatures
  }

  get size(): number { return this.#seen.size }

  check(signature: string, signedAtMs: number, nowMs: number): { ok: true } | { ok: false; code: 'unauthorized' | 'busy'; reason: string } {
    const skewMs = signedAtMs - nowMs
    if (Math.abs(skewMs) > this.#maxClockSkewMs) {
      return { ok: false, code: 'unauthorized', reason: `the request was signed ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs < 0 ? 'ago' : 'ahead of this daemon\'s clock'}, outside the replay window of ${this.#maxClockSkewMs / 1000} s (check the clocks)` }
    }
    this.#forgetExpired(nowMs)
    if (this.#seen.has(signature)) return { ok: false, code: 'unauthorized', reason: 'this exact request was received before (a replay)' }
    if (this.#seen.size >= this.#maxRemembered) return { ok: false, code: 'busy', reason: `${this.#maxRemembered} signed requests arrived within the replay window; try again shortly` }
    this.#seen.set(signature, signedAtMs + this.#maxClockSkewMs)
    return { ok: true }
  }

  /** Entries are roughly in arrival order: drop expired ones from the front (a skewed one only delays this). */
  #forgetExpired(nowMs: number): void {
    for (const [signature, expiresAtMs] of this.#seen) {
      if (expiresAtMs >= nowMs) return
      this.#seen.delete(signature)
    }
  }
}

/**
 * A signed request's key in the mesh's replay memory, from its signature (one signed request, one
 * key), and until when it is remembered: past that, the replay window alone refuses it.
 */
export function replayKeyOfSignature(signature: string, signedAtMs: number): { key: string; expiresAtMs: number } {
  return { key: createHash('sha256').update(signature).digest('base64url').slice(0, 22), expiresAtMs: signedAtMs + requestSignatureLimits.maxClockSkewMs }
}

/** The text a signed request becomes in the document (an admission grant, a submission proof): canonical JSON, signature included. */
export function signedRequestText(signed: Record<string, unknown>): string {
  return canonicalJson(signed)
}

/** The bytes a client request's signature covers (the request without its signature). */
export function signedBytes(unsigned: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(signingContext + canonicalJson(unsigned))
}

/** JSON with object keys sorted at every level: the same value gives the same bytes on both sides. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, entry]) => entry !== undefined)
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, entry]) => `${JSON.stringify(key)}:${canonicalJson(entry)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}
