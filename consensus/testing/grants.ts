// Admission grants for the harness and the simulator, which have no Ed25519 keys: a grant is its
// facts as JSON plus a keyed hash only the holder of `secret` (the test's "admin key") can make.
// node/ checks real signatures (node/admission-grant.ts); the core only sees a VerifyGrant.
import type { GrantFacts, VerifyGrant } from '../admission-grants.ts'
import { grantIdPattern } from '../admission-grants.ts'
import { roles, type Role } from '../cluster-document.ts'
import type { SubmissionFacts, VerifySubmission } from '../submission-proofs.ts'

const prefix = 'test-grant.'

/** FNV-1a over the text, twice with different seeds: a stand-in for a signature (not secure; tests only). */
function mac(secret: string, text: string): string {
  let a = 0x811c9dc5
  let b = 0x01000193
  for (const char of `${secret}\u0000${text}`) {
    a = Math.imul(a ^ char.charCodeAt(0), 0x01000193) >>> 0
    b = Math.imul(b ^ char.charCodeAt(0), 0x811c9dc5) >>> 0
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0')
}

/** `prefix`, the JSON as base64url, and its keyed hash. */
function seal(sealPrefix: string, secret: string, json: string): string {
  return `${sealPrefix}${Buffer.from(json).toString('base64url')}.${mac(secret, json)}`
}

/** The JSON `seal(sealPrefix, secret, ...)` sealed in `text`, or null. */
function unseal(sealPrefix: string, secret: string, text: string): unknown {
  if (!text.startsWith(sealPrefix)) return null
  const [payload, signature] = text.slice(sealPrefix.length).split('.')
  if (payload === undefined || signature === undefined) return null
  const json = Buffer.from(payload, 'base64url').toString()
  if (mac(secret, json) !== signature) return null
  try {
    return JSON.parse(json)
  } catch {
    return null
  }
}

export function signTestGrant(secret: string, facts: GrantFacts): string {
  return seal(prefix, secret, JSON.stringify(facts))
}

/** Accepts exactly the grants `signTestGrant(secret, ...)` made. */
export function testGrantVerifier(secret: string): VerifyGrant {
  return (grant) => {
    const facts = unseal(prefix, secret, grant) as GrantFacts | null
    if (facts === null || !roles.includes(facts.role as Role) || !grantIdPattern.test(facts.id) || typeof facts.atMs !== 'number') return null
    return { id: facts.id, role: facts.role, peer: facts.peer ?? null, nonce: facts.nonce ?? null, atMs: facts.atMs }
  }
}

const submissionPrefix = 'test-submission.'

/** A client's "signed" submit request for the harness and the simulator: the facts as JSON plus a keyed hash. */
export function signTestSubmission(secret: string, facts: SubmissionFacts): string {
  const { request: _request, ...job } = facts.job
  return seal(submissionPrefix, secret, JSON.stringify({ ...facts, job }))
}

/** Accepts exactly the requests `signTestSubmission(secret, ...)` made. */
export function testSubmissionVerifier(secret: string): VerifySubmission {
  return (request) => unseal(submissionPrefix, secret, request) as SubmissionFacts | null
}
