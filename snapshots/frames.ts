// Length-prefixed frames (unsigned varint length, then the bytes: the same framing as
// @libp2p/utils' lpStream) read and written straight on a libp2p stream's message events. The
// chunk path moves thousands of frames a second; lpStream re-scans its segment list on every byte
// of every length prefix, which cost a third of the receive path. Here each message is parsed
// once, frames inside one message are handed on as views, only a frame split across two messages
// is copied, and the bytes held unread are bounded: past the bound the stream is aborted (a
// holder sending data nobody asked for).
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError'
}

export class ReadBufferOverflowError extends Error {
  override name = 'ReadBufferOverflowError'
}

export class StreamEndedError extends Error {
  override name = 'StreamEndedError'
}

/** Bytes of a varint length prefix for frames up to 2^28 bytes. */
const maxLengthPrefixBytes = 4

/**
 * The framing state machine, apart from any stream: feed it messages as they come, in any split,
 * and it hands out whole frames. Frames inside one message are views of it; a frame split across
 * messages is assembled in a buffer of its exact length.
 */
export class FrameParser {
  readonly #maxFrameBytes: number
  /** Bytes of a length prefix split across messages (rare: at most three). */
  #prefix: number[] = []
  #pending: Buffer | null = null
  #pendingFilled = 0

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes
  }

  /** Bytes held of an incomplete frame. */
  get pendingBytes(): number {
    return this.#pendingFilled + this.#prefix.length
  }

  /** Throws FrameTooLargeError on a length over the limit (the stream cannot be resynchronized). */
  feed(data: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let offset = 0
    while (offset < data.length) {
      if (this.#pending !== null) {
        const take = Math.min(this.#pending.length - this.#pendingFilled, data.length - offset)
        this.#pending.set(data.subarray(offset, offset + take), this.#pendingFilled)
        this.#pendingFilled += take
        offset += take
        if (this.#pendingFilled === this.#pending.length) {
          const frame = this.#pending
          this.#pending = null
          this.#pendingFilled = 0
          onFrame(frame)
        }
        continue
      }
      let length = -1
      while (offset < data.length) {
        const byte = data[offset++]!
        this.#prefix.push(byte)
        if (byte < 0x80) {
          length = 0
          for (let index = this.#prefix.length - 1; index >= 0; index--) length = length * 128 + (this.#prefix[index]! & 0x7f)
          this.#prefix.length = 0
          break
        }
        if (this.#prefix.length >= maxLengthPrefixBytes) throw new FrameTooLargeError(`frame length prefix longer than ${maxLengthPrefixBytes} bytes`)
      }
      if (length < 0) return
      if (length > this.#maxFrameBytes) throw new FrameTooLargeError(`frame of ${length} bytes exceeds the limit (${this.#maxFrameBytes})`)
      if (data.length - offset >= length) {
        // A view, as lpStream keeps them: the muxer hands each message's bytes over for good.
        onFrame(data.subarray(offset, offset + length))
        offset += length
      } else {
        this.#pending = Buffer.allocUnsafe(length)
      }
    }
  }
}

/** Frames from a stream, read one at a time; unread bytes are bounded. */
export class FrameReader {
  readonly #stream: Stream
  readonly #parser: FrameParser
  readonly #maxBufferedBytes: number
  readonly #frames: Uint8Array[] = []
  #framesHead = 0
  #bufferedBytes = 0
  #ended: Error | null = null
  #waiter: { resolve(frame: Uint8Array): void; reject(error: Error): void } | null = null
  readonly #onFrame = (frame: Uint8Array): void => {
    this.#frames.push(frame)
    this.#bufferedBytes += frame.length
  }

  constructor(stream: Stream, limits: { maxFrameBytes: number; maxBufferedBytes: number }) {
    this.#stream = stream
    this.#parser = new FrameParser(limits.maxFrameBytes)
    this.#maxBufferedBytes = limits.maxBufferedBytes
    stream.addEventListener('message', (event) => {
      const data = event.data
      if (data instanceof Uint8Array) return this.#receive(data)
      // A list's parts one by one: subarray() would copy them into one buffer (measured: 4 % of a fetch).
      for (const part of data) this.#receive(part)
    })
    stream.addEventListener('remoteCloseWrite', () => this.#end(new StreamEndedError('the remote closed the stream')))
    stream.addEventListener('close', (event) => this.#end(event.error ?? new StreamEndedError('the stream closed')))
  }

  /** The next frame; rejects once the stream ended and every complete frame was read. */
  read(): Promise<Uint8Array> {
    if (this.#framesHead < this.#frames.length) return Promise.resolve(this.#take())
    if (this.#ended !== null) return Promise.reject(this.#ended)
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject }
    })
  }

  #take(): Uint8Array {
    const frame = this.#frames[this.#framesHead]!
    this.#frames[this.#framesHead++] = empty
    if (this.#framesHead === this.#frames.length) {
      this.#frames.length = 0
      this.#framesHead = 0
    }
    this.#bufferedBytes -= frame.length
    return frame
  }

  #receive(data: Uint8Array): void {
    if (this.#ended !== null) return
    try {
      this.#parser.feed(data, this.#onFrame)
    } catch (error) {
      return this.#fail(error as Error)
    }
    if (this.#bufferedBytes + this.#parser.pendingBytes > this.#maxBufferedBytes) {
      return this.#fail(new ReadBufferOverflowError(`more than ${this.#maxBufferedBytes} bytes received and not read`))
    }
    if (this.#waiter !== null && this.#framesHead < this.#frames.length) {
      const waiter = this.#waiter
      this.#waiter = null
      waiter.resolve(this.#take())
    }
  }

  #fail(error: Error): void {
    this.#end(error)
    this.#stream.abort(error)
  }

  #end(error: Error): void {
    if (this.#ended !== null) return
    this.#ended = error
    if (this.#waiter !== null && this.#framesHead >= this.#frames.length) {
      const waiter = this.#waiter
      this.#waiter = null
      waiter.reject(error)
    }
  }
}

const empty = new Uint8Array(0)

/**
 * Frames, each given as parts, as one list for one send: the parts are not copied (the muxer and
 * the encrypter read them in place), only the length prefixes are new.
 */
export function encodeFrames(frames: readonly (readonly Uint8Array[])[]): Uint8ArrayList {
  const out = new Uint8ArrayList()
  for (const parts of frames) {
    let length = 0
    for (const part of parts) length += part.length
    const prefix = Buffer.allocUnsafe(varintLength(length))
    writeVarint(prefix, 0, length)
    out.append(prefix)
    for (const part of parts) if (part.length > 0) out.append(part)
  }
  return out
}

/** Sends `bytes`, waiting (at most `timeoutMs`) for the stream to drain when its write buffer is full. */
export async function sendAll(stream: Stream, bytes: Uint8Array | Uint8ArrayList, timeoutMs?: number): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain(timeoutMs === undefined ? undefined : { signal: AbortSignal.timeout(timeoutMs) })
}

function varintLength(value: number): number {
  let bytes = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    bytes++
  }
  return bytes
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 128)
  }
  out[offset++] = value
  return offset
}
