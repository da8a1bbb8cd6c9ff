// Manifests come from strangers: the decoder accepts exactly the canonical encoding of a sound
// manifest, so a CID names one manifest, and refuses paths that could leave the target directory.
import { describe, expect, it } from 'vitest'
import { cidOf, isCid, cidMultihash, parseCid, InvalidCidError } from './cid.ts'
import { chunkHashOf } from './hash.ts'
import { decodeManifest, encodeManifest, manifestCid, manifestFormat, maxManifestBytes, type Manifest } from './manifest.ts'

const a = chunkHashOf(Buffer.from('a'))
const b = chunkHashOf(Buffer.from('bb'))
const sound: Manifest = {
  format: manifestFormat,
  entries: [
    { kind: 'file', path: 'core-1.img', mode: 0o600, sizeBytes: 3, chunking: 'gear-4096-16384-65536', chunks: [[a, 1], [b, 2]] },
    { kind: 'directory', path: 'sub', mode: 0o755 },
    { kind: 'file', path: 'sub/pages-1.img', mode: 0o644, sizeBytes: 1, chunking: 'fixed-16384', chunks: [[a, 1]] },
  ],
}

function withEntries(entries: unknown[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ format: manifestFormat, entries }))
}

describe('manifest', () => {
  it('round-trips, and its CID is b3: plus the BLAKE3 of its bytes', () => {
    const bytes = encodeManifest(sound)
    const decoded = decodeManifest(bytes)
    expect(decoded).toEqual({ ok: true, value: sound })
    const cid = manifestCid(sound)
    expect(cid).toBe(cidOf(bytes))
    expect(isCid(cid)).toBe(true)
    expect(cidMultihash(cid).subarray(0, 2)).toEqual(Uint8Array.from([0x1e, 32]))
    expect(() => parseCid('b3:xyz')).toThrow(InvalidCidError)
  })

  it('refuses a non-canonical encoding of the same manifest (one manifest, one CID)', () => {
    const spaced = new TextEncoder().encode(JSON.stringify(JSON.parse(new TextDecoder().decode(encodeManifest(sound))), null, 1))
    const decoded = decodeManifest(spaced)
    expect(decoded.ok).toBe(false)
    if (!decoded.ok) expect(decoded.reason).toMatch(/canonical/)
  })

  it.each([
    ['a parent escape', '../etc/passwd'],
    ['an absolute path', '/etc/passwd'],
    ['an empty segment', 'a//b'],
    ['a dot segment', './a'],
    ['a NUL', 'a\u0000b'],
  ])('refuses %s in a path', (_, path) => {
    const decoded = decodeManifest(withEntries([{ kind: 'file', path, mode: 0o644, sizeBytes: 1, chunking: 'x', chunks: [[a, 1]] }]))
    expect(decoded.ok).toBe(false)
  })

  it('refuses unsorted entries, a missing parent, sizes that do not add up, set-id bits and one hash with two sizes', () => {
    const file = (path: string, extra: Record<string, unknown> = {}) => ({ kind: 'file', path, mode: 0o644, sizeBytes: 1, chunking: 'x', chunks: [[a, 1]], ...extra })
    const cases: [unknown[], RegExp][] = [
      [[file('b'), file('a')], /sorted/],
      [[file('dir/a')], /parent/],
      [[file('a', { sizeBytes: 2 })], /add up/],
      [[file('a', { mode: 0o4755 })], /mode/],
      [[file('a', { sizeBytes: 3, chunks: [[a, 1], [a, 2]] })], /two sizes|sizes 1 and 2/],
      [[file('a', { chunks: [[a, 0]], sizeBytes: 0 })], /outside/],
      [[file('a', { chunks: [['not-a-hash', 1]] })], /hash/],
    ]
    for (const [entries, reason] of cases) {
      const decoded = decodeManifest(withEntries(entries))
      expect(decoded.ok, JSON.stringify(entries)).toBe(false)
      if (!decoded.ok) expect(decoded.reason).toMatch(reason)
    }
  })

  it('refuses bytes over the size limit before parsing them', () => {
    const decoded = decodeManifest(new Uint8Array(maxManifestBytes + 1))
    expect(decoded.ok).toBe(false)
    if (!decoded.ok) expect(decoded.reason).toMatch(/maxManifestBytes/)
  })
})
