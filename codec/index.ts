// codec/: the strict CBOR codec every wire format of node/ and snapshots/ uses (cbor.ts).
export { encodeCbor, decodeCbor, maxCborDepth, type CborDecoded } from './cbor.ts'
