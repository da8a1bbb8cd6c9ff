// The one encoding of everything Fabric sends between peers: CBOR (RFC 8949) via cborg, decoded
// strictly because the bytes come from strangers. The zod schema of each message is its schema;
// this file only turns bytes into plain values (or a reason) and never throws on bad input.
// Refused: indefinite lengths, non-minimal integers and lengths, tags (none are used), undefined,
// NaN, Infinity, integers past 2^53, duplicate map keys, non-string map keys, invalid UTF-8 text,
// trailing bytes, and nesting deeper than maxCborDepth (cborg recurses once per level).
import { decode, encode, Tokenizer, Type, type Token } from 'cborg'

/** Arrays and maps inside each other; Fabric's deepest message nests six levels. */
export const maxCborDepth = 32

export type CborDecoded = { ok: true; value: unknown } | { ok: false; reason: string }

const encodeOptions = { ignoreUndefinedProperties: true }

/** Plain data to CBOR: object keys sorted (cborg's deterministic order), undefined properties left out as JSON does. */
export function encodeCbor(value: unknown): Uint8Array {
  return encode(value, encodeOptions)
}

/** CBOR bytes to plain data (objects, arrays, strings, numbers, booleans, null, Uint8Array); a refusal is a value. */
export function decodeCbor(bytes: Uint8Array): CborDecoded {
  try {
    const tokenizer = new BoundedTokenizer(bytes)
    return { ok: true, value: decode(bytes, { ...decodeOptions, tokenizer }) }
  } catch (error) {
    return { ok: false, reason: `not valid CBOR (${describe(error)})` }
  }
}

const decodeOptions = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
  retainStringBytes: true,
  tags: [],
} as const

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * cborg's tokenizer with the nesting depth counted: a stack of how many items each open array or
 * map still holds. A declared length larger than the input is harmless (cborg fills arrays item by
 * item and stops at the end of the bytes), but each level is a JavaScript call frame.
 */
class BoundedTokenizer extends Tokenizer {
  readonly #remaining: number[] = []

  constructor(bytes: Uint8Array) {
    super(bytes, decodeOptions)
  }

  override next(): Token {
    const token = super.next()
    const open = this.#remaining
    if (open.length > 0) open[open.length - 1]!--
    const items = token.type === Type.map ? 2 * token.value : token.type === Type.array ? token.value : 0
    if (items > 0) {
      // The parent stays open until this child is complete.
      open.push(items)
      if (open.length > maxCborDepth) throw new Error(`nested deeper than ${maxCborDepth} levels`)
      return token
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop()
    if (token.type === Type.string && (token.value as string).includes('\uFFFD')) {
      // cborg decodes text leniently; a replacement character may be a real one, so check the bytes.
      strictUtf8.decode(token.byteValue)
    }
    return token
  }
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.replace(/^CBOR decode error: /, '').slice(0, 120)
}
