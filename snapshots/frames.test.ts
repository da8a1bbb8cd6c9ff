// The frame parser is fed the same bytes split at every possible point and must hand out the same
// frames each time; it refuses an over-long length before buffering anything.
import { describe, expect, it } from 'vitest'
import { encodeFrames, FrameParser, FrameTooLargeError } from './frames.ts'
import { seededBytes } from './synthetic-image.ts'

describe('frame parser', () => {
  // Lengths that need one, two and three prefix bytes, and an empty frame.
  const frames = [seededBytes('f1', 5), new Uint8Array(0), seededBytes('f2', 300), seededBytes('f3', 20_000)]
  const encoded = encodeFrames(frames.map((frame) => [frame.subarray(0, 2), frame.subarray(2)])).subarray()

  it('yields the frames however the bytes are split into messages', () => {
    for (let split = 0; split <= encoded.length; split += split < 400 ? 1 : 997) {
      for (const second of [split, Math.min(encoded.length, split + 3), Math.min(encoded.length, split + 20_100)]) {
        const parser = new FrameParser(1 << 20)
        const out: Buffer[] = []
        for (const part of [encoded.subarray(0, split), encoded.subarray(split, second), encoded.subarray(second)]) parser.feed(part, (frame) => out.push(Buffer.from(frame)))
        expect(out.map((frame) => frame.toString('hex')), `split at ${split}/${second}`).toEqual(frames.map((frame) => Buffer.from(frame).toString('hex')))
        expect(parser.pendingBytes).toBe(0)
      }
    }
  })

  it('refuses a frame longer than its limit as soon as the length is read', () => {
    const parser = new FrameParser(1_000)
    expect(() => parser.feed(encodeFrames([[new Uint8Array(1_001)]]).subarray(0, 3), () => {})).toThrow(FrameTooLargeError)
    expect(() => new FrameParser(1 << 30).feed(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01), () => {})).toThrow(/prefix/)
  })
})
