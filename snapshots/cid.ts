// The snapshot CID: `b3:` followed by the 64 hex characters of the BLAKE3 digest of the manifest's
// canonical bytes. A plain string reads well in logs, the cluster document and the CLI; the
// multihash form (BLAKE3 code 0x1e, length 32) is derived here for the DHT, which keys providers
// by multihash.
import { blake3 } from './hash.ts'

export type Cid = string & { readonly __brand: 'Cid' }

export const cidPrefix = 'b3:'
/** Multihash code of BLAKE3 (multicodec table: `blake3`, 0x1e), 32-byte digest. */
export const blake3MultihashCode = 0x1e
const cidPattern = /^b3:[0-9a-f]{64}$/

export function cidOf(manifestBytes: Uint8Array): Cid {
  return `${cidPrefix}${blake3(manifestBytes).toString('hex')}` as Cid
}

export function isCid(value: unknown): value is Cid {
  return typeof value === 'string' && cidPattern.test(value)
}

export class InvalidCidError extends Error {
  override name = 'InvalidCidError'
  readonly value: string
  constructor(value: string) {
    super(`"${value.slice(0, 80)}" is not a snapshot CID (expected b3: and 64 lower-case hex characters)`)
    this.value = value
  }
}

export function parseCid(value: string): Cid {
  if (!isCid(value)) throw new InvalidCidError(value)
  return value
}

/** The 32 digest bytes of a CID. */
export function cidDigest(cid: Cid): Buffer {
  return Buffer.from(cid.slice(cidPrefix.length), 'hex')
}

/** The CID as a multihash (code, length, digest): what a DHT provider record is keyed by. */
export function cidMultihash(cid: Cid): Uint8Array {
  const digest = cidDigest(cid)
  return Uint8Array.from([blake3MultihashCode, digest.length, ...digest])
}
