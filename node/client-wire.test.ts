// Proves the client protocol's wire checks: a well-formed request passes whole; anything malformed,
// oversized, of an unknown kind, with unknown fields or a wrong version is refused with a reason
// naming what is wrong; response frames and result values are checked on the client side too.
import { describe, expect, it } from 'vitest'
import { encodeCbor } from '../codec/index.ts'
import { clientWireLimits, decodeClientRequest, decodeClientResponse, decodeClientResult, encodeClientRequest, errorResponse, type ClientRequest } from './client-wire.ts'

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const envelope = { v: 1, requestId: 'r1', client: '12D3KooWclient', mesh: 'c3'.repeat(32), signedAtMs: 1_700_000_000_000, signature: 'c2lnbmF0dXJl' } as const

describe('client wire: requests', () => {
  it('round-trips every request kind', () => {
    const requests: ClientRequest[] = [
      { ...envelope, kind: 'submit', spec: 'name: a\ncommand: [true]\nresources: {cpu: 1, memory: 1Gi}\n' },
      { ...envelope, kind: 'jobs', limit: 10 },
      { ...envelope, kind: 'job', jobId: 'a-1' },
      { ...envelope, kind: 'logs', jobId: 'a-1', follow: true, stream: 'both', forwarded: true },
      { ...envelope, kind: 'nodes' },
      { ...envelope, kind: 'leader' },
      { ...envelope, kind: 'admit', peerId: '12D3KooWpeer', role: 'viewer' },
      { ...envelope, kind: 'revoke', peerId: '12D3KooWpeer' },
      { ...envelope, kind: 'mesh' },
      { ...envelope, kind: 'cancel', jobId: 'a-1' },
      { ...envelope, kind: 'migrate', jobId: 'a-1', to: null },
      { ...envelope, kind: 'migrate', jobId: 'a-1', to: '12D3KooWnode' },
      { ...envelope, kind: 'migrate', jobId: 'a-1', to: null, provider: 'aws', region: 'eu-west-1', follow: true, waitMs: 60_000 },
      { ...envelope, kind: 'checkpoint', jobId: 'a-1' },
      { ...envelope, kind: 'checkpoint', jobId: 'a-1#0', forwarded: true },
      { ...envelope, kind: 'snapshots', jobId: 'a-1' },
      { ...envelope, kind: 'drain', nodeId: '12D3KooWnode' },
      { ...envelope, kind: 'drain', nodeId: '12D3KooWnode', waitMs: 1_000 },
      { ...envelope, kind: 'undrain', nodeId: '12D3KooWnode' },
      { ...envelope, kind: 'restore-progress', jobId: 'a-1', waitMs: 5_000, forwarded: true },
      { ...envelope, kind: 'explain', jobId: 'a-1', forwarded: true },
      { ...envelope, kind: 'plan', spec: 'name: a\ncommand: [true]\n' },
      { ...envelope, kind: 'status' },
      { ...envelope, kind: 'assignments' },
    ]
    for (const request of requests) expect(decodeClientRequest(encodeClientRequest(request))).toEqual({ ok: true, value: request })
  })

  it('refuses what is not a request, saying why', () => {
    const refusal = (bytes: Uint8Array): string => {
      const decoded = decodeClientRequest(bytes)
      if (decoded.ok) throw new Error('accepted')
      return decoded.reason
    }
    expect(refusal(new Uint8Array([0x62, 0xc3, 0x28]))).toMatch(/utf-8/)
    expect(refusal(utf8('{"kind":'))).toMatch(/not valid CBOR/)
    expect(refusal(new Uint8Array([0xa1, 0x64, 0x6b, 0x69, 0x6e, 0x64]))).toMatch(/not valid CBOR/)
    expect(refusal(encodeCbor([1, 2]))).toMatch(/not a CBOR map/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'drop-tables' })))).toMatch(/unknown request kind "drop-tables"/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'jobs', extra: 1 })))).toMatch(/jobs: .*extra/)
    expect(refusal(encodeCbor(({ ...envelope, v: 2, kind: 'jobs' })))).toMatch(/jobs: v/)
    expect(refusal(encodeCbor(({ v: 1, requestId: 'r', kind: 'leader' })))).toMatch(/client/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'logs', jobId: 'a', follow: 'yes', stream: 'both' })))).toMatch(/follow/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'jobs', limit: clientWireLimits.maxListedJobs + 1 })))).toMatch(/limit/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'job', jobId: 'x'.repeat(clientWireLimits.maxIdLength + 1) })))).toMatch(/jobId/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'migrate', jobId: 'a' })))).toMatch(/migrate: to/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'migrate', jobId: 'a', to: null, region: '' })))).toMatch(/migrate: region/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'migrate', jobId: 'a', to: null, zone: 'x' })))).toMatch(/migrate: .*zone/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'checkpoint' })))).toMatch(/checkpoint: jobId/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'snapshots', jobId: 'x'.repeat(clientWireLimits.maxIdLength + 1) })))).toMatch(/snapshots: jobId/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'drain', nodeId: '' })))).toMatch(/drain: nodeId/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'drain', nodeId: 'n', waitMs: clientWireLimits.maxMoveWaitMs + 1 })))).toMatch(/drain: waitMs/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'drain', nodeId: 'n', waitMs: 1.5 })))).toMatch(/drain: waitMs/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'undrain', jobId: 'n' })))).toMatch(/undrain: /)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'cancel', jobId: '' })))).toMatch(/cancel: jobId/)
    expect(refusal(encodeCbor(({ ...envelope, kind: 'plan', spec: 'x'.repeat(clientWireLimits.maxSpecTextBytes + 1) })))).toMatch(/plan: spec/)
  })

  it('refuses a spec over its limit and a frame over the request limit', () => {
    const big = encodeClientRequest({ ...envelope, kind: 'submit', spec: 'x'.repeat(clientWireLimits.maxSpecTextBytes + 1) })
    expect(decodeClientRequest(big)).toMatchObject({ ok: false, reason: expect.stringMatching(/spec/) })
    expect(decodeClientRequest(new Uint8Array(clientWireLimits.maxRequestBytes + 1))).toMatchObject({ ok: false, reason: expect.stringMatching(/exceeds maxRequestBytes/) })
  })
})

describe('client wire: responses', () => {
  it('checks frames and the result of each kind', () => {
    expect(decodeClientResponse(encodeCbor({ type: 'end' }))).toEqual({ ok: true, value: { type: 'end' } })
    expect(decodeClientResponse(utf8('{"type":"end"}')).ok).toBe(false)
    expect(decodeClientResponse(encodeCbor({ type: 'log', stream: 'stdout', offsetBytes: -1, text: 'x' })).ok).toBe(false)
    expect(decodeClientResponse(encodeCbor({ type: 'error', code: 'teapot', message: 'x' })).ok).toBe(false)
    expect(decodeClientResult('submit', { jobId: 'a-1' })).toEqual({ ok: true, value: { jobId: 'a-1' } })
    expect(decodeClientResult('leader', { leaderId: null }).ok).toBe(false)
    expect(decodeClientResponse(encodeCbor({ type: 'assignment', jobId: 'a#0', node: 'n', term: 2, seq: 3 })).ok).toBe(true)
    // Progress and moved frames (checkpoint, drain, a followed migrate) and the results they end with.
    const progress = { type: 'progress', jobId: 'a', node: 'n', phase: 'replicate', peer: 'm', bytesDone: 10, bytesTotal: 20, chunksDone: 1, chunksTotal: 2, bytesPerSecond: 5, etaMs: 2_000 }
    expect(decodeClientResponse(encodeCbor(progress))).toEqual({ ok: true, value: progress })
    expect(decodeClientResponse(encodeCbor({ ...progress, phase: 'teleport' })).ok).toBe(false)
    expect(decodeClientResponse(encodeCbor({ ...progress, bytesDone: -1 })).ok).toBe(false)
    expect(decodeClientResponse(encodeCbor({ ...progress, etaMs: null })).ok).toBe(true)
    const moved = { type: 'moved', jobId: 'a', from: 'n', to: 'm', how: 'restored', cid: 'b3:00' }
    expect(decodeClientResponse(encodeCbor(moved))).toEqual({ ok: true, value: moved })
    expect(decodeClientResponse(encodeCbor({ ...moved, how: 'vanished' })).ok).toBe(false)
    const snapshot = { replica: 'a', node: 'n', cid: 'b3:00', atMs: 1, sizeBytes: 4_096, chunks: 3, holders: ['m'] }
    expect(decodeClientResult('checkpoint', { jobId: 'a', snapshots: [snapshot] }).ok).toBe(true)
    expect(decodeClientResult('snapshots', { jobId: 'a', snapshots: [{ ...snapshot, sizeBytes: null, chunks: null }] }).ok).toBe(true)
    expect(decodeClientResult('snapshots', { jobId: 'a', snapshots: [{ ...snapshot, holders: Array(clientWireLimits.maxHolders + 1).fill('m') }] }).ok).toBe(false)
    expect(decodeClientResult('drain', { nodeId: 'n', moved: [{ jobId: 'a', from: 'n', to: null, how: 'waiting', cid: null }], complete: false }).ok).toBe(true)
    expect(decodeClientResult('drain', { nodeId: 'n', moved: [] }).ok).toBe(false)
    expect(decodeClientResult('status', { nodeId: 'n', role: 'leader', term: 1, leaderId: 'n', readyLeader: true, voters: ['n'], documentHeads: [], jobRecords: 0, counters: {} }).ok).toBe(true)
    // An explain record whose table is over the row limit is refused, not rendered.
    const row = { nodeId: 'n', provider: 'p', region: 'r', azId: 'a', spot: false, awarded: 0 }
    const explanation = { roundId: 'r', jobId: 'j', name: 'j', strategy: 'lowest_cost', intent: 'throughput', replicas: 1, demand: { cpuMillis: 1, memoryMiB: 1, diskMiB: 0, gpuCount: 0, gpuModels: [], gpuMinMemoryMiB: 0 }, eligible: 1, answered: 1, rows: [row], awards: [] }
    expect(decodeClientResult('explain', { explanation, answeredBy: 'n', term: 1 }).ok).toBe(true)
    expect(decodeClientResult('explain', { explanation: { ...explanation, rows: Array(clientWireLimits.maxExplainRows + 1).fill(row) }, answeredBy: 'n', term: 1 }).ok).toBe(false)
  })

  it('clips an error message to its limit', () => {
    const response = errorResponse('internal', 'y'.repeat(clientWireLimits.maxErrorMessageChars * 2))
    expect(response.message).toHaveLength(clientWireLimits.maxErrorMessageChars)
    expect(decodeClientResponse(encodeCbor((response))).ok).toBe(true)
  })
})
