// Proves the invite token: one signed by the admin key verifies for its mesh, before its expiry, for
// any peer (or only the bound one); a token signed by another key, for another mesh, expired, bound
// to another peer, tampered with or malformed is refused with a code and a reason naming the fault.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import { createInvite, decodeInvite, inviteLimits, inviteTokenPrefix, verifyInvite } from './invite-token.ts'

const meshId = 'a'.repeat(64)
const otherMesh = 'b'.repeat(64)
const nowMs = 1_700_000_000_000
const hourMs = 3_600_000

let admin: PrivateKey
let adminId: string
let stranger: PrivateKey
let joiner: string

beforeAll(async () => {
  admin = await generateKeyPair('Ed25519')
  adminId = peerIdFromPrivateKey(admin).toString()
  stranger = await generateKeyPair('Ed25519')
  joiner = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
})

const context = () => ({ adminId, meshId, peerId: joiner, nowMs })

describe('invite tokens', () => {
  it('round-trips: the admin-signed invite verifies and carries role, nonce, expiry and bootstrap', async () => {
    const token = await createInvite({ adminKey: admin, meshId, role: 'submitter', ttlMs: hourMs, nowMs, bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWx'] })
    expect(token.startsWith(inviteTokenPrefix)).toBe(true)
    expect(token.length).toBeLessThan(600)
    const verified = await verifyInvite(token, context())
    expect(verified).toMatchObject({ ok: true, invite: { meshId, role: 'submitter', peer: null, expiresAtMs: nowMs + hourMs, bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWx'] } })
    // Two invites differ in their nonce: each admits one peer.
    const again = await createInvite({ adminKey: admin, meshId, role: 'submitter', ttlMs: hourMs, nowMs })
    const nonces = [decodeInvite(token), decodeInvite(again)].map((decoded) => (decoded.ok ? decoded.invite.nonce : ''))
    expect(nonces[0]).not.toBe(nonces[1])
  })

  it('refuses a token signed by another key', async () => {
    const token = await createInvite({ adminKey: stranger, meshId, role: 'admin', ttlMs: hourMs, nowMs })
    expect(await verifyInvite(token, context())).toMatchObject({ ok: false, code: 'bad-signature', reason: expect.stringContaining(adminId) })
  })

  it('refuses a token for another mesh, and an expired one', async () => {
    const elsewhere = await createInvite({ adminKey: admin, meshId: otherMesh, role: 'node', ttlMs: hourMs, nowMs })
    expect(await verifyInvite(elsewhere, context())).toMatchObject({ ok: false, code: 'wrong-mesh', reason: expect.stringMatching(/for mesh bbbb.*belongs to mesh aaaa/) })
    const token = await createInvite({ adminKey: admin, meshId, role: 'node', ttlMs: hourMs, nowMs })
    expect((await verifyInvite(token, { ...context(), nowMs: nowMs + hourMs - 1 })).ok).toBe(true)
    expect(await verifyInvite(token, { ...context(), nowMs: nowMs + hourMs })).toMatchObject({ ok: false, code: 'expired', reason: expect.stringMatching(/expired at 2023-11-14T23:13:20.000Z/) })
  })

  it('a bound token verifies only for its peer', async () => {
    const token = await createInvite({ adminKey: admin, meshId, role: 'node', peer: joiner, ttlMs: hourMs, nowMs })
    expect((await verifyInvite(token, context())).ok).toBe(true)
    const other = peerIdFromPrivateKey(stranger).toString()
    expect(await verifyInvite(token, { ...context(), peerId: other })).toMatchObject({ ok: false, code: 'wrong-peer', reason: expect.stringContaining(`bound to peer ${joiner}, not to ${other}`) })
  })

  it('refuses a tampered payload: the signature covers every byte', async () => {
    const token = await createInvite({ adminKey: admin, meshId, role: 'viewer', ttlMs: hourMs, nowMs })
    const [payload, signature] = token.slice(inviteTokenPrefix.length).split('.') as [string, string]
    const promoted = Buffer.from(Buffer.from(payload, 'base64url').toString('utf8').replace('"viewer"', '"admin"')).toString('base64url')
    expect(await verifyInvite(`${inviteTokenPrefix}${promoted}.${signature}`, context())).toMatchObject({ ok: false, code: 'bad-signature' })
  })

  it('refuses malformed tokens, saying what is wrong', async () => {
    const refusal = async (token: string) => verifyInvite(token, context())
    expect(await refusal('hello')).toMatchObject({ ok: false, code: 'malformed', reason: expect.stringMatching(/does not start with/) })
    expect(await refusal(`${inviteTokenPrefix}abc`)).toMatchObject({ code: 'malformed', reason: expect.stringMatching(/two base64url parts/) })
    expect(await refusal(`${inviteTokenPrefix}${Buffer.from('{"mesh":1}').toString('base64url')}.AAAA`)).toMatchObject({ code: 'malformed', reason: expect.stringMatching(/mesh/) })
    expect(await refusal(`${inviteTokenPrefix}${'A'.repeat(inviteLimits.maxTokenChars)}.AAAA`)).toMatchObject({ code: 'malformed', reason: expect.stringMatching(/characters/) })
  })

  it('will not make an invite that no node would accept', async () => {
    await expect(createInvite({ adminKey: admin, meshId, role: 'node', ttlMs: inviteLimits.maxTtlMs + 1, nowMs })).rejects.toThrow(/time to live/)
    await expect(createInvite({ adminKey: admin, meshId: 'not-a-hash', role: 'node', ttlMs: hourMs, nowMs })).rejects.toThrow(/mesh/)
    await expect(createInvite({ adminKey: admin, meshId, role: 'node', peer: 'nobody', ttlMs: hourMs, nowMs })).rejects.toThrow(/not an Ed25519 peer id/)
    await expect(createInvite({ adminKey: admin, meshId, role: 'node', ttlMs: hourMs, nowMs, bootstrap: Array.from({ length: inviteLimits.maxBootstrapAddresses + 1 }, () => '/ip4/127.0.0.1/tcp/1') })).rejects.toThrow(/boot/)
  })
})
