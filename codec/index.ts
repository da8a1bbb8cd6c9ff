// codec/: the strict CBOR codec (cbor.ts) and the bounded length-prefixed framing (frames.ts) every
// wire format of node/ and snapshots/ uses.
export { encodeCbor, decodeCbor, maxCborDepth, type CborDecoded } from './cbor.ts'
export {
  FrameParser, FrameReader, guardFrames, encodeFrame, encodeFrames, sendAll, lengthPrefixBytes,
  FrameTooLargeError, ReadBufferOverflowError, StreamEndedError, FrameTimeoutError, StreamIdleError,
  type FrameReaderLimits,
} from './frames.ts'
