// Length-prefixed frames (unsigned varint length, then the bytes: the same framing as
// @libp2p/utils' lpStream) read and written straight on a libp2p stream's message events. The
// chunk path moves tens of thousands of frames a second; lpStream re-scans its segment list on
// every byte of every length prefix, which cost a third of the receive path. Here each message is
// parsed once, frames that arrive whole are handed on as views without a copy, and the bytes held
// unread are bounded: past the bound the stream is aborted (a holder sending unasked data).
import type { Stream } from '@libp2p/interface'

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

export class FrameReader {
  readonly #stream: Stream
  readonly #maxFrameBytes: number
  readonly #maxBufferedBytes: number
  readonly #frames: Uint8Array[] = []
  #framesHead = 0
  #bufferedBytes = 0
  /** Bytes of an incomplete frame (or length prefix) carried to the next message. */
  #partial: Buffer | null = null
  #ended: Error | null = null
  #waiter: { resolve(frame: Uint8Array): void; reject(error: Error): void } | null = null

  constructor(stream: Stream, limits: { maxFrameBytes: number; maxBufferedBytes: number }) {
    this.#stream = stream
    this.#maxFrameBytes = limits.maxFrameBytes
    this.#maxBufferedBytes = limits.maxBufferedBytes
    stream.addEventListener('message', (event) => {
      const data = event.data
      this.#receive(data instanceof Uint8Array ? data : data.subarray())
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

  #receive(message: Uint8Array): void {
    if (this.#ended !== null) return
    let data: Uint8Array = message
    if (this.#partial !== null) {
      data = Buffer.concat([this.#partial, message])
      this.#partial = null
    }
    let offset = 0
    while (offset < data.length) {
      let length = 0
      let shift = 0
      let cursor = offset
      let complete = false
      while (cursor < data.length && cursor - offset < maxLengthPrefixBytes) {
        const byte = data[cursor++]!
        length += (byte & 0x7f) * 2 ** shift
        shift += 7
        if (byte < 0x80) {
          complete = true
          break
        }
      }
      if (!complete && cursor - offset >= maxLengthPrefixBytes) return this.#fail(new FrameTooLargeError(`frame length prefix longer than ${maxLengthPrefixBytes} bytes`))
      if (complete && length > this.#maxFrameBytes) return this.#fail(new FrameTooLargeError(`frame of ${length} bytes exceeds the limit (${this.#maxFrameBytes})`))
      if (!complete || data.length - cursor < length) break
      this.#frames.push(data.subarray(cursor, cursor + length))
      this.#bufferedBytes += length
      offset = cursor + length
    }
    // A view, as lpStream keeps them: the muxer hands each message's bytes over for good.
    if (offset < data.length) this.#partial = Buffer.from(data.buffer, data.byteOffset + offset, data.length - offset)
    if (this.#bufferedBytes + (this.#partial?.length ?? 0) > this.#maxBufferedBytes) {
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

/** Frames, each given as parts, encoded into one buffer (one send, one muxer write). */
export function encodeFrames(frames: readonly (readonly Uint8Array[])[]): Buffer {
  let total = 0
  for (const parts of frames) {
    let length = 0
    for (const part of parts) length += part.length
    total += varintLength(length) + length
  }
  const out = Buffer.allocUnsafe(total)
  let offset = 0
  for (const parts of frames) {
    let length = 0
    for (const part of parts) length += part.length
    offset = writeVarint(out, offset, length)
    for (const part of parts) {
      out.set(part, offset)
      offset += part.length
    }
  }
  return out
}

/** Sends `bytes`, waiting for the stream to drain when its write buffer is full. */
export async function sendAll(stream: Stream, bytes: Uint8Array): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain()
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
