// Proves the client side of admission: the role table (viewers read, submitters also submit, admins
// also admit and revoke, nodes read; no role, a revoked role or a kind missing from the table is
// refused with a reason) and the request check (a signature by the client's key over the request's
// canonical bytes, inside the replay window, never accepted twice; any changed byte fails it).
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { beforeAll, describe, expect, it } from 'vitest'
import type { AdmissionRole } from '../consensus/index.ts'
import { authorize, requiredRole } from './client-authorization.ts'
import { ClientGuard } from './client-guard.ts'
import { decodeClientRequest, type ClientRequest, type ClientRequestKind } from './client-wire.ts'
import { ReplayGuard, canonicalJson, requestSignatureLimits, requestSigner, signClientRequest } from './request-signature.ts'
import { encodeCbor } from '../codec/index.ts'

const client = '12D3KooWclient'
const kinds = Object.keys(requiredRole) as ClientRequestKind[]

describe('the role table', () => {
  const allowed = (role: AdmissionRole | undefined): string[] => kinds.filter((kind) => authorize({ kind, client }, role).ok).sort()

  it('viewers and nodes read, submitters also submit, admins do everything', () => {
    const reads = ['assignments', 'explain', 'job', 'jobs', 'leader', 'logs', 'mesh', 'nodes', 'plan', 'relay', 'restore-progress', 'snapshots', 'status']
    expect(allowed('viewer')).toEqual(reads)
    expect(allowed('node')).toEqual(reads)
    expect(allowed('submitter')).toEqual([...reads, 'cancel', 'checkpoint', 'migrate', 'submit'].sort())
    expect(allowed('admin')).toEqual([...kinds].sort())
  })

  it('refuses clients with no role or a revoked one, and says what is missing', () => {
    expect(allowed(undefined)).toEqual([])
    expect(allowed('revoked')).toEqual([])
    expect(authorize({ kind: 'jobs', client }, undefined)).toMatchObject({ ok: false, reason: expect.stringMatching(/not admitted to this mesh.*fabric join/) })
    expect(authorize({ kind: 'jobs', client }, 'revoked')).toMatchObject({ ok: false, reason: expect.stringMatching(/was revoked/) })
    expect(authorize({ kind: 'submit', client }, 'viewer')).toMatchObject({ ok: false, reason: `client ${client} is a viewer; submit needs the submitter role or higher` })
    expect(authorize({ kind: 'revoke', client }, 'submitter')).toMatchObject({ ok: false, reason: expect.stringMatching(/revoke needs the admin role/) })
  })

  it('lets only admins drain and undrain, and viewers neither checkpoint nor drain', () => {
    for (const kind of ['drain', 'undrain'] as const) {
      expect(authorize({ kind, client }, 'admin')).toEqual({ ok: true })
      expect(authorize({ kind, client }, 'submitter')).toMatchObject({ ok: false, reason: `client ${client} is a submitter; ${kind} needs the admin role` })
      expect(authorize({ kind, client }, 'viewer')).toMatchObject({ ok: false, reason: `client ${client} is a viewer; ${kind} needs the admin role` })
      expect(authorize({ kind, client }, 'node')).toMatchObject({ ok: false })
    }
    expect(authorize({ kind: 'checkpoint', client }, 'viewer')).toMatchObject({ ok: false, reason: `client ${client} is a viewer; checkpoint needs the submitter role or higher` })
    expect(authorize({ kind: 'checkpoint', client }, 'submitter')).toEqual({ ok: true })
    expect(authorize({ kind: 'snapshots', client }, 'viewer')).toEqual({ ok: true })
  })

  it('lets a node pass a checkpoint on to the runner, but not ask for one itself, nor pass on a drain', () => {
    expect(authorize({ kind: 'checkpoint', client, forwarded: true }, 'node')).toEqual({ ok: true })
    expect(authorize({ kind: 'checkpoint', client }, 'node')).toMatchObject({ ok: false, reason: `client ${client} is a node; checkpoint needs the submitter role or higher` })
    expect(authorize({ kind: 'checkpoint', client, forwarded: true }, 'viewer')).toMatchObject({ ok: false })
    expect(authorize({ kind: 'drain', client, forwarded: true }, 'node')).toMatchObject({ ok: false })
  })

  it('refuses a kind that is not in the table, whatever the role', () => {
    expect(authorize({ kind: 'drop-tables' as ClientRequestKind, client }, 'admin')).toMatchObject({ ok: false, reason: expect.stringMatching(/no entry in the role table/) })
  })
})

describe('signed requests', () => {
  let key: PrivateKey
  let host: Libp2p
  let peerId: string
  const nowMs = 1_700_000_000_000
  const meshId = 'a1'.repeat(32)

  beforeAll(async () => {
    key = await generateKeyPair('Ed25519')
    peerId = peerIdFromPrivateKey(key).toString()
    // The same signer service the client host and the Shuttle carry, on a real key.
    host = { services: { requestSigner: requestSigner()({ privateKey: key }) } } as unknown as Libp2p
  })

  /** A request as the client protocol receives it: signed, encoded as CBOR, parsed back by the wire decoder. */
  const signedRequest = async (body: Record<string, unknown>, signedAtMs = nowMs): Promise<{ request: ClientRequest; received: Record<string, unknown> }> => {
    const unsigned = { v: 1, requestId: 'r1', client: peerId, mesh: meshId, signedAtMs, ...body }
    const received = JSON.parse(JSON.stringify({ ...unsigned, signature: await signClientRequest(host, unsigned) })) as Record<string, unknown>
    const decoded = decodeClientRequest(encodeCbor(received))
    if (!decoded.ok) throw new Error(decoded.reason)
    return { request: decoded.value, received }
  }

  const guard = (role: AdmissionRole | undefined, at = nowMs) => new ClientGuard({ meshId, nowMs: () => at, roleOf: (id) => (id === peerId ? role : undefined) })

  it('accepts a request signed by the client key, once', async () => {
    const checker = guard('submitter')
    const { request, received } = await signedRequest({ kind: 'submit', spec: 'name: a\n' })
    expect(await checker.check(request, received)).toEqual({ ok: true })
    expect(await checker.check(request, received)).toMatchObject({ ok: false, code: 'unauthorized', reason: expect.stringMatching(/replay/) })
    expect(checker.counters).toMatchObject({ accepted: 1, replayed: 1 })
  })

  it('refuses a request whose bytes changed after signing, or that another key signed', async () => {
    const { request, received } = await signedRequest({ kind: 'jobs', limit: 5 })
    const changed = { ...received, limit: 500 }
    expect(await guard('viewer').check({ ...request, limit: 500 } as ClientRequest, changed)).toMatchObject({ ok: false, reason: expect.stringMatching(/does not verify against client/) })
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    expect(await guard('viewer').check({ ...request, client: other }, { ...received, client: other })).toMatchObject({ ok: false, reason: expect.stringMatching(/does not verify/) })
    const { signature: _dropped, ...unsigned } = received
    expect(await guard('viewer').check(request, unsigned)).toMatchObject({ ok: false, reason: 'the request carries no signature' })
  })

  it('refuses a request signed outside the replay window, either way', async () => {
    const windowMs = requestSignatureLimits.maxClockSkewMs
    const old = await signedRequest({ kind: 'nodes' }, nowMs - windowMs - 1)
    expect(await guard('viewer').check(old.request, old.received)).toMatchObject({ ok: false, reason: expect.stringMatching(/signed 60 s ago, outside the replay window/) })
    const ahead = await signedRequest({ kind: 'nodes' }, nowMs + windowMs + 1)
    expect(await guard('viewer').check(ahead.request, ahead.received)).toMatchObject({ ok: false, reason: expect.stringMatching(/ahead of this daemon's clock/) })
    const edge = await signedRequest({ kind: 'nodes' }, nowMs - windowMs)
    expect(await guard('viewer').check(edge.request, edge.received)).toEqual({ ok: true })
  })

  it('refuses a request signed for another mesh, naming this one, before it counts as seen', async () => {
    const checker = guard('submitter')
    const { request, received } = await signedRequest({ kind: 'submit', spec: 'name: a\n', mesh: 'b2'.repeat(32) })
    expect(await checker.check(request, received)).toEqual({ ok: false, code: 'wrong-mesh', mesh: meshId, reason: `the request was signed for mesh ${'b2'.repeat(8)}..., this daemon belongs to mesh ${'a1'.repeat(8)}...` })
    // The mesh is signed: rewriting it to this mesh breaks the signature.
    expect(await checker.check({ ...request, mesh: meshId }, { ...received, mesh: meshId })).toMatchObject({ ok: false, code: 'unauthorized', reason: expect.stringMatching(/does not verify/) })
    expect(checker.counters).toMatchObject({ accepted: 0, wrongMesh: 1, badSignature: 1 })
  })

  it('checks the role after the signature', async () => {
    const { request, received } = await signedRequest({ kind: 'submit', spec: 'name: a\n' })
    expect(await guard('viewer').check(request, received)).toMatchObject({ ok: false, code: 'unauthorized', reason: expect.stringMatching(/is a viewer; submit needs/) })
    expect(await guard(undefined).check(request, received)).toMatchObject({ ok: false, reason: expect.stringMatching(/not admitted/) })
  })
})

describe('the replay guard', () => {
  it('remembers a bounded number of signatures and forgets them once the window has passed', () => {
    const replay = new ReplayGuard({ maxClockSkewMs: 1_000, maxRememberedSignatures: 2 })
    expect(replay.check('a', 0, 0).ok).toBe(true)
    expect(replay.check('b', 0, 0).ok).toBe(true)
    expect(replay.check('c', 0, 0)).toMatchObject({ ok: false, code: 'busy' })
    expect(replay.check('a', 0, 500)).toMatchObject({ ok: false, reason: expect.stringMatching(/replay/) })
    // After the window, 'a' would be refused by its age anyway: it is forgotten and room is made.
    expect(replay.check('c', 1_500, 1_500).ok).toBe(true)
    expect(replay.size).toBe(1)
    expect(replay.check('a', 0, 1_500)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside the replay window/) })
  })

  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: 'x' } })).toBe(canonicalJson({ a: { c: 'x', d: [1, { e: 3, f: 2 }] }, b: 1 }))
    expect(canonicalJson({ b: 1, a: 2 })).toBe('{"a":2,"b":1}')
  })
})
