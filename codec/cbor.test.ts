// Proves the strict CBOR codec round-trips plain data (bytes included) and refuses, as a value
// with a reason, every form a stranger could use to smuggle, confuse or exhaust the decoder.
import { describe, expect, it } from 'vitest'
import { decodeCbor, encodeCbor, maxCborDepth } from './index.ts'

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replaceAll(' ', ''), 'hex'))
const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let level = 0; level < depth; level++) value = level % 2 === 0 ? [value] : { k: value }
  return value
}

describe('strict CBOR codec', () => {
  it('round-trips objects, arrays, text, integers, floats, booleans, null and bytes', () => {
    const value = { text: 'héllo ✓ \uFFFD', count: 2 ** 40, negative: -3, ratio: 0.25, yes: true, none: null, bytes: new Uint8Array([0, 255]), list: [[], {}, ['x']] }
    expect(decodeCbor(encodeCbor(value))).toEqual({ ok: true, value })
  })

  it('leaves undefined properties out, as JSON does', () => {
    expect(decodeCbor(encodeCbor({ a: 1, b: undefined }))).toEqual({ ok: true, value: { a: 1 } })
  })

  it('encodes the same value to the same bytes whatever the key order', () => {
    expect(Buffer.from(encodeCbor({ b: 1, a: 2 })).equals(Buffer.from(encodeCbor({ a: 2, b: 1 })))).toBe(true)
  })

  it(`accepts nesting up to ${maxCborDepth} levels and refuses one more`, () => {
    expect(decodeCbor(encodeCbor(nested(maxCborDepth))).ok).toBe(true)
    expect(decodeCbor(encodeCbor(nested(maxCborDepth + 1)))).toMatchObject({ ok: false, reason: expect.stringContaining('nested deeper') })
    // Wide is not deep: siblings do not add levels.
    expect(decodeCbor(encodeCbor(Array.from({ length: 1_000 }, () => [[1]]))).ok).toBe(true)
    expect(decodeCbor(new Uint8Array(1_000_000).fill(0x81))).toMatchObject({ ok: false, reason: expect.stringContaining('nested deeper') })
  })

  it('refuses each non-strict form with a reason', () => {
    const cases: Record<string, [Uint8Array, string]> = {
      empty: [new Uint8Array(0), 'content'],
      truncated: [hex('a1 6161'), 'enough'],
      'indefinite array': [hex('9f 01 ff'), 'indefinite'],
      'indefinite text': [hex('7f 6161 ff'), 'indefinite'],
      'stray break': [hex('ff'), 'indefinite'],
      'non-minimal length': [hex('78 01 61'), 'strict'],
      'duplicate key': [hex('a2 6161 01 6161 02'), 'repeat map key'],
      'integer key': [hex('a1 01 01'), 'non-string keys'],
      tag: [hex('c2 41 01'), 'tag'],
      undefined: [hex('f7'), 'undefined'],
      NaN: [hex('f9 7e00'), 'NaN'],
      Infinity: [hex('f9 7c00'), 'Infinity'],
      'integer past 2^53': [hex('1b 0020000000000000'), 'safe integer'],
      'invalid UTF-8': [hex('62 c328'), 'utf-8'],
      'giant declared array': [hex('9b ffffffffffffffff 01'), ''],
      'giant declared bytes': [hex('5a ffffffff 01'), 'enough data'],
      'trailing bytes': [hex('01 01'), 'too many'],
    }
    for (const [name, [bytes, words]] of Object.entries(cases)) {
      const decoded = decodeCbor(bytes)
      expect(decoded, name).toMatchObject({ ok: false, reason: expect.stringContaining('not valid CBOR') })
      if (!decoded.ok) expect(decoded.reason.toLowerCase(), name).toContain(words.toLowerCase())
    }
  })
})
