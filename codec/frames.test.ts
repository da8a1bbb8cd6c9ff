// The frame parser is fed the same bytes split at every possible point and must hand out the same
// frames each time; it refuses an over-long length before buffering anything, and a length prefix
// at the first byte past what the largest frame needs. The reader over a real in-memory stream pair
// bounds what it holds and aborts a stream whose frame does not complete in time, or that stays
// silent while a read waits. A guard beside another reader takes none of its bytes and aborts the
// stream on an over-long prefix.
import { createHash } from 'node:crypto'
import { streamPair } from '@libp2p/utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { encodeFrames, FrameParser, FrameReader, FrameTimeoutError, FrameTooLargeError, guardFrames, lengthPrefixBytes, ReadBufferOverflowError, StreamIdleError } from './frames.ts'

/** Deterministic bytes (SHA-256 in counter mode). */
function seededBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let offset = 0, block = 0; offset < length; offset += 32, block++) createHash('sha256').update(`${seed}/${block}`).digest().copy(out, offset)
  return out
}

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
        expect(parser.inFrame).toBe(false)
      }
    }
  })

  it('refuses a frame longer than its limit as soon as the length is read', () => {
    const parser = new FrameParser(1_000)
    expect(() => parser.feed(encodeFrames([[new Uint8Array(1_001)]]).subarray(0, 3), () => {})).toThrow(FrameTooLargeError)
  })

  it('takes a length prefix only as long as the largest frame needs, refusing it at its first byte past that', () => {
    expect([0, 127, 128, 16_383, 16_384, 2_048, 8 * 1024 * 1024, 2 ** 28 - 1, 2 ** 28].map(lengthPrefixBytes)).toEqual([1, 1, 2, 2, 3, 2, 4, 4, 5])
    // 8 MiB frames: four prefix bytes at most; the fourth with its continuation bit set is refused.
    const parser = new FrameParser(8 * 1024 * 1024)
    expect(parser.maxPrefixBytes).toBe(4)
    parser.feed(Uint8Array.of(0x80, 0x80, 0x80), () => {})
    expect(parser.pendingBytes).toBe(3)
    expect(() => parser.feed(Uint8Array.of(0x80), () => {})).toThrow(/prefix longer than 4 bytes/)
    // 4 MiB of 0x80 in one message: refused at byte 4, nothing else read.
    expect(() => new FrameParser(8 * 1024 * 1024).feed(new Uint8Array(4 * 1024 * 1024).fill(0x80), () => {})).toThrow(FrameTooLargeError)
    // The largest frame's own prefix is accepted.
    const largest = new FrameParser(2_048)
    let got = -1
    largest.feed(encodeFrames([[new Uint8Array(2_048)]]).subarray(), (frame) => (got = frame.length))
    expect(got).toBe(2_048)
  })

  it('holds only the bytes that arrived of a frame whose prefix declares the largest length', () => {
    const parser = new FrameParser(8 * 1024 * 1024)
    parser.feed(encodeFrames([[new Uint8Array(8 * 1024 * 1024)]]).subarray(0, 10), () => {})
    expect(parser.inFrame).toBe(true)
    expect(parser.pendingBytes).toBe(10 - 4)
  })
})

describe('frame reader', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('reads frames and aborts the stream once more than maxBufferedBytes wait unread', async () => {
    const [outbound, inbound] = await streamPair()
    const reader = new FrameReader(inbound, { maxFrameBytes: 100, maxBufferedBytes: 250 })
    outbound.send(encodeFrames([[seededBytes('a', 100)], [seededBytes('b', 50)]]))
    expect((await reader.read()).length).toBe(100)
    expect((await reader.read()).length).toBe(50)
    outbound.send(encodeFrames([[seededBytes('c', 100)], [seededBytes('d', 100)], [seededBytes('e', 100)]]))
    // The frames complete before the bound was passed are still handed out; then the reason.
    for (let index = 0; index < 3; index++) expect((await reader.read()).length).toBe(100)
    await expect(reader.read()).rejects.toBeInstanceOf(ReadBufferOverflowError)
    expect(inbound.status).toBe('aborted')
  }, 10_000)

  it('aborts a stream whose frame started and did not complete within frameTimeoutMs, one byte at a time or not', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const [outbound, inbound] = await streamPair()
    const reader = new FrameReader(inbound, { maxFrameBytes: 1_000, maxBufferedBytes: 2_000, frameTimeoutMs: 1_000, idleTimeoutMs: 5_000 })
    const read = reader.read()
    read.catch(() => {})
    const frame = encodeFrames([[new Uint8Array(1_000)]]).subarray()
    // The prefix and most of the frame, then a byte every 300 ms: each byte is activity, but the frame is late.
    outbound.send(frame.subarray(0, 900))
    await vi.advanceTimersByTimeAsync(10)
    for (let index = 900; index < 906 && outbound.status === 'open'; index++) {
      outbound.send(frame.subarray(index, index + 1))
      await vi.advanceTimersByTimeAsync(300)
    }
    await expect(read).rejects.toBeInstanceOf(FrameTimeoutError)
    expect(inbound.status).toBe('aborted')
  }, 10_000)

  it('aborts a stream that stays silent while a read waits past idleTimeoutMs, and not one whose reader paused', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const [outbound, inbound] = await streamPair()
    const reader = new FrameReader(inbound, { maxFrameBytes: 1_000, maxBufferedBytes: 2_000, frameTimeoutMs: 100, idleTimeoutMs: 1_000 })
    outbound.send(encodeFrames([[new Uint8Array(10)]]))
    await vi.advanceTimersByTimeAsync(10)
    expect((await reader.read()).length).toBe(10)
    // Nobody reads for longer than the idle time: nothing happens (the reader, not the stream, paused).
    await vi.advanceTimersByTimeAsync(3_000)
    expect(inbound.status).toBe('open')
    const read = reader.read()
    read.catch(() => {})
    await vi.advanceTimersByTimeAsync(900)
    expect(inbound.status).toBe('open')
    await vi.advanceTimersByTimeAsync(200)
    await expect(read).rejects.toBeInstanceOf(StreamIdleError)
    expect(inbound.status).toBe('aborted')
  }, 10_000)
})

describe('frame guard', () => {
  it('leaves every byte to a reader that attaches late, and aborts the stream at an over-long length prefix', async () => {
    const [outbound, inbound] = await streamPair()
    guardFrames(inbound, { maxFrameBytes: 1_000 })
    // Bytes arrive before the other reader listens: they wait for it, the guard does not take them.
    const frame = encodeFrames([[seededBytes('g', 10)]]).subarray()
    outbound.send(frame)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const received: Uint8Array[] = []
    inbound.addEventListener('message', (event) => { received.push(event.data.subarray()) })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(Buffer.concat(received).toString('hex')).toBe(Buffer.from(frame).toString('hex'))
    // 1,000-byte frames need two prefix bytes: a second continuation byte ends the stream (the other reader checks nothing).
    outbound.send(Uint8Array.of(0x80, 0x80, 0x80, 0x80))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(inbound.status).toBe('aborted')
  })
})
