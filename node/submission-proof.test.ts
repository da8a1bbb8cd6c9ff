// Submission proofs: the signed submit request a non-voter keeps in a job's first record, checked by
// every peer screening the change (node:crypto, no clock), and the job it makes.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { canonicalJson, replayKeyOfSignature, signedBytes, signedRequestText } from './request-signature.ts'
import { maxSubmissionProofChars, submissionProofVerifier } from './submission-proof.ts'
import { newJobId } from './submission.ts'

const meshId = 'd4'.repeat(32)
const verifySubmissionProof = submissionProofVerifier(meshId)
const spec = JSON.stringify({ name: 'train', command: ['sh', '-c', 'echo hi'], resources: { cpu: 0.5, memory: '64Mi' } })

async function signed(key: PrivateKey, fields: Record<string, unknown>): Promise<Record<string, unknown>> {
  const unsigned = { v: 1, requestId: 'r1', client: peerIdFromPrivateKey(key).toString(), mesh: meshId, signedAtMs: 1_700_000_000_000, kind: 'submit', spec, ...fields }
  const signature = Buffer.from(await key.sign(signedBytes(unsigned))).toString('base64url')
  return { ...unsigned, signature }
}

describe('submission proofs', () => {
  let client: PrivateKey
  let other: PrivateKey
  beforeAll(async () => {
    client = await generateKeyPair('Ed25519')
    other = await generateKeyPair('Ed25519')
  })

  it('verifies a signed submit request and makes the job the node that took it made (job id from the signature)', async () => {
    const request = await signed(client, {})
    const facts = verifySubmissionProof(signedRequestText(request))
    const replay = replayKeyOfSignature(String(request.signature), 1_700_000_000_000)
    expect(facts?.client).toBe(peerIdFromPrivateKey(client).toString())
    expect(facts?.key).toBe(replay.key)
    expect(facts?.expiresAtMs).toBe(replay.expiresAtMs)
    expect(facts?.job.id).toBe(newJobId('train', replay.key))
    expect(facts?.job.spec.resources.cpuMillis).toBe(500)
  })

  it('refuses a tampered spec, another client named, a signature by another key, another kind, and text that is not a request', async () => {
    const request = await signed(client, {})
    expect(verifySubmissionProof(canonicalJson({ ...request, spec: spec.replace('0.5', '4') }))).toBeNull()
    expect(verifySubmissionProof(canonicalJson({ ...request, client: peerIdFromPrivateKey(other).toString() }))).toBeNull()
    const byOther = await signed(other, { client: peerIdFromPrivateKey(client).toString() })
    expect(verifySubmissionProof(canonicalJson(byOther))).toBeNull()
    expect(verifySubmissionProof(canonicalJson(await signed(client, { kind: 'cancel', jobId: 'x' })))).toBeNull()
    // Signed for another mesh: a peer of this one refuses it (a request taken elsewhere replayed into this mesh's document).
    const elsewhere = await signed(client, { mesh: 'e5'.repeat(32) })
    expect(submissionProofVerifier('e5'.repeat(32))(signedRequestText(elsewhere))?.client).toBe(peerIdFromPrivateKey(client).toString())
    expect(verifySubmissionProof(signedRequestText(elsewhere))).toBeNull()
    expect(verifySubmissionProof('{"kind":"submit"')).toBeNull()
    expect(verifySubmissionProof('[]')).toBeNull()
    expect(verifySubmissionProof('x'.repeat(maxSubmissionProofChars + 1))).toBeNull()
  })

  it('refuses a signed request whose spec makes no job', async () => {
    const request = await signed(client, { spec: JSON.stringify({ name: 'bad', resources: { cpu: -1 } }) })
    expect(verifySubmissionProof(signedRequestText(request))).toBeNull()
  })
})
