// Length-prefixed frames (unsigned varint length, then the bytes): the framing of every Fabric
// stream protocol, read straight off a libp2p stream's message events and written in one send.
// Bounded as the bytes arrive: a length prefix may take only the bytes the largest allowed frame
// needs (ceil(bits / 7)) and is refused at the first byte past them; a frame's bytes are held only
// as they arrive (nothing is allocated for a declared length); the bytes held unread are bounded; a
// frame that has started must complete within a time, and a read waiting on a silent stream gives
// up after another. (@libp2p/utils' lpStream checks its `maxLengthLength` only once a varint
// decodes, so 4 MiB of 0x80 grew its length buffer a byte at a time, and it has no read timeout.)
// The snapshot chunk path moves thousands of frames a second: each message is parsed once, frames
// inside one message are handed on as views, and only a frame split across messages is copied, once.
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/** A frame longer than the protocol allows, by its length or by its length prefix (the stream cannot be resynchronized). */
export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError'
}

/** More bytes received and not read than the reader holds. */
export class ReadBufferOverflowError extends Error {
  override name = 'ReadBufferOverflowError'
}

/** The stream ended (every complete frame was read first). */
export class StreamEndedError extends Error {
  override name = 'StreamEndedError'
}

/** A frame started and did not complete within the reader's frameTimeoutMs. */
export class FrameTimeoutError extends Error {
  override name = 'FrameTimeoutError'
}

/** A read waited longer than the reader's idleTimeoutMs without a byte arriving. */
export class StreamIdleError extends Error {
  override name = 'StreamIdleError'
}

/** Bytes of the varint length prefix of a frame of `maxFrameBytes`: ceil(bits / 7), at least 1. */
export function lengthPrefixBytes(maxFrameBytes: number): number {
  if (!(Number.isSafeInteger(maxFrameBytes) && maxFrameBytes >= 0)) throw new Error(`assertion: a frame limit is a non-negative safe integer, not ${maxFrameBytes}`)
  let bytes = 1
  for (let rest = Math.floor(maxFrameBytes / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++
  return bytes
}

/**
 * The framing state machine, apart from any stream: feed it messages as they come, in any split,
 * and it hands out whole frames. Frames inside one message are views of it; a frame split across
 * messages is kept as the views that carried it and joined once complete.
 */
export class FrameParser {
  readonly maxFrameBytes: number
  /** The longest length prefix a frame of maxFrameBytes needs; a longer one is refused at its first extra byte. */
  readonly maxPrefixBytes: number
  /** False: only the framing is followed (a guard beside another reader); a frame split across messages is handed out empty. */
  readonly #keepBytes: boolean
  #prefixBytes = 0
  #prefixValue = 0
  #prefixScale = 1
  /** The length of the frame being assembled, or -1 between frames. */
  #frameLength = -1
  #parts: Uint8Array[] = []
  #filled = 0

  constructor(maxFrameBytes: number, options: { keepBytes?: boolean } = {}) {
    this.maxFrameBytes = maxFrameBytes
    this.maxPrefixBytes = lengthPrefixBytes(maxFrameBytes)
    this.#keepBytes = options.keepBytes ?? true
  }

  /** Bytes held of an incomplete frame (its prefix included). */
  get pendingBytes(): number {
    return this.#filled + this.#prefixBytes
  }

  /** A frame has started (a byte of its prefix or of its body arrived) and is not complete. */
  get inFrame(): boolean {
    return this.#prefixBytes > 0 || this.#frameLength >= 0
  }

  /** Throws FrameTooLargeError on a length or a length prefix over the limit. */
  feed(data: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let offset = 0
    while (offset < data.length) {
      if (this.#frameLength >= 0) {
        const take = Math.min(this.#frameLength - this.#filled, data.length - offset)
        if (this.#keepBytes) this.#parts.push(data.subarray(offset, offset + take))
        this.#filled += take
        offset += take
        if (this.#filled === this.#frameLength) onFrame(this.#takeFrame())
        continue
      }
      let length = -1
      while (offset < data.length) {
        const byte = data[offset++]!
        this.#prefixValue += (byte & 0x7f) * this.#prefixScale
        this.#prefixBytes++
        if (byte < 0x80) {
          length = this.#prefixValue
          this.#prefixBytes = 0
          this.#prefixValue = 0
          this.#prefixScale = 1
          break
        }
        if (this.#prefixBytes >= this.maxPrefixBytes) {
          throw new FrameTooLargeError(`frame length prefix longer than ${this.maxPrefixBytes} bytes (frames are at most ${this.maxFrameBytes} bytes)`)
        }
        this.#prefixScale *= 128
      }
      if (length < 0) return
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(`frame of ${length} bytes exceeds the limit (${this.maxFrameBytes})`)
      if (data.length - offset >= length) {
        // A view: the muxer hands each message's bytes over for good.
        onFrame(data.subarray(offset, offset + length))
        offset += length
      } else {
        this.#frameLength = length
      }
    }
  }

  #takeFrame(): Uint8Array {
    const parts = this.#parts
    const frame = !this.#keepBytes ? empty : parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#frameLength)
    this.#parts = []
    this.#filled = 0
    this.#frameLength = -1
    return frame
  }
}

export interface FrameReaderLimits {
  maxFrameBytes: number
  /** Bytes received and not yet read (complete frames waiting plus the frame arriving); past it the stream is aborted. */
  maxBufferedBytes: number
  /** A frame whose first byte arrived must be complete within this, or the stream is aborted (absent: no limit). */
  frameTimeoutMs?: number
  /** A read waiting with no frame under way aborts the stream after this long without a byte (absent: no limit). */
  idleTimeoutMs?: number
  /** Follow the framing only, keeping nothing (guardFrames: another reader takes the bytes). */
  discardFrames?: boolean
}

/** Frames from a stream, read one at a time; unread bytes, frame time and idle reads are bounded. */
export class FrameReader {
  readonly #stream: Stream
  readonly #parser: FrameParser
  readonly #limits: FrameReaderLimits
  readonly #frames: Uint8Array[] = []
  #framesHead = 0
  #bufferedBytes = 0
  #ended: Error | null = null
  #waiter: { resolve(frame: Uint8Array): void; reject(error: Error): void } | null = null
  #completed = 0
  #frameStartedMs = 0
  #lastByteMs = performance.now()
  #waitStartedMs = 0
  /** One timer per reader, armed at the nearest deadline and re-checked when it fires (not re-armed per frame). */
  #timer: NodeJS.Timeout | null = null
  #timerAtMs = Infinity
  readonly #onFrame = (frame: Uint8Array): void => {
    this.#completed++
    if (this.#limits.discardFrames === true) return
    this.#frames.push(frame)
    this.#bufferedBytes += frame.length
  }

  constructor(stream: Stream, limits: FrameReaderLimits) {
    this.#stream = stream
    this.#parser = new FrameParser(limits.maxFrameBytes, { keepBytes: limits.discardFrames !== true })
    this.#limits = limits
    stream.addEventListener('message', (event) => {
      const data = event.data
      if (data instanceof Uint8Array) return this.#receive(data)
      // A list's parts one by one: subarray() would copy them into one buffer (measured: 4 % of a fetch).
      for (const part of data) this.#receive(part)
    })
    stream.addEventListener('remoteCloseWrite', () => this.#end(new StreamEndedError('the remote closed the stream')))
    stream.addEventListener('close', (event) => this.#end(event.error ?? new StreamEndedError('the stream closed')))
  }

  /** The next frame; rejects once the stream ended (or `signal` aborted) and every complete frame was read. */
  read(options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    if (this.#framesHead < this.#frames.length) return Promise.resolve(this.#take())
    if (this.#ended !== null) return Promise.reject(this.#ended)
    if (this.#waiter !== null) throw new Error('assertion: one read at a time')
    const signal = options.signal
    if (signal?.aborted === true) return Promise.reject(signal.reason as Error)
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiter = null
        reject(signal!.reason as Error)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const settled = (): void => signal?.removeEventListener('abort', onAbort)
      this.#waiter = {
        resolve: (frame) => { settled(); resolve(frame) },
        reject: (error) => { settled(); reject(error) },
      }
      this.#waitStartedMs = performance.now()
      this.#arm()
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
    if (this.#ended !== null || data.length === 0) return
    const nowMs = performance.now()
    this.#lastByteMs = nowMs
    const wasInFrame = this.#parser.inFrame
    const completedBefore = this.#completed
    try {
      this.#parser.feed(data, this.#onFrame)
    } catch (error) {
      return this.#fail(error as Error)
    }
    // A frame started in this message: the one left incomplete began after any that completed here.
    if (this.#parser.inFrame && (!wasInFrame || this.#completed > completedBefore)) this.#frameStartedMs = nowMs
    if (this.#bufferedBytes + this.#parser.pendingBytes > this.#limits.maxBufferedBytes) {
      return this.#fail(new ReadBufferOverflowError(`more than ${this.#limits.maxBufferedBytes} bytes received and not read`))
    }
    if (this.#waiter !== null && this.#framesHead < this.#frames.length) {
      const waiter = this.#waiter
      this.#waiter = null
      waiter.resolve(this.#take())
    }
    this.#arm()
  }

  /** The nearest deadline that applies now: the started frame's, and the waiting read's idle one. */
  #deadlineMs(): number {
    const { frameTimeoutMs, idleTimeoutMs } = this.#limits
    let atMs = Infinity
    if (frameTimeoutMs !== undefined && this.#parser.inFrame) atMs = this.#frameStartedMs + frameTimeoutMs
    if (idleTimeoutMs !== undefined && this.#waiter !== null) atMs = Math.min(atMs, this.#idleSinceMs() + idleTimeoutMs)
    return atMs
  }

  /** Idle counts from the later of the last byte and the start of the waiting read (a reader that paused is not idle). */
  #idleSinceMs(): number {
    return Math.max(this.#lastByteMs, this.#waitStartedMs)
  }

  #arm(): void {
    if (this.#ended !== null) return
    const atMs = this.#deadlineMs()
    // An armed timer due no later stays: it re-checks when it fires (deadlines mostly move later).
    if (atMs === Infinity || this.#timerAtMs <= atMs) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timerAtMs = atMs
    this.#timer = setTimeout(this.#onTimer, Math.max(0, atMs - performance.now()))
    this.#timer.unref()
  }

  readonly #onTimer = (): void => {
    this.#timer = null
    this.#timerAtMs = Infinity
    if (this.#ended !== null) return
    const nowMs = performance.now()
    const { frameTimeoutMs, idleTimeoutMs } = this.#limits
    if (frameTimeoutMs !== undefined && this.#parser.inFrame && nowMs >= this.#frameStartedMs + frameTimeoutMs) {
      return this.#fail(new FrameTimeoutError(`a frame started and was not complete within ${frameTimeoutMs} ms (${this.#parser.pendingBytes} bytes of it arrived)`))
    }
    if (idleTimeoutMs !== undefined && this.#waiter !== null && nowMs >= this.#idleSinceMs() + idleTimeoutMs) {
      return this.#fail(new StreamIdleError(`nothing arrived for ${idleTimeoutMs} ms`))
    }
    this.#arm()
  }

  #fail(error: Error): void {
    this.#end(error)
    this.#stream.abort(error)
  }

  #end(error: Error): void {
    if (this.#ended !== null) return
    this.#ended = error
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#timerAtMs = Infinity
    if (this.#waiter !== null) {
      const waiter = this.#waiter
      this.#waiter = null
      if (this.#framesHead < this.#frames.length) waiter.resolve(this.#take())
      else waiter.reject(error)
    }
  }
}

const empty = new Uint8Array(0)

/**
 * Guards a stream that a reader of another library consumes (the DHT's, gossipsub's, identify's
 * lpStream, which checks a length prefix's length only once it decodes, so 4 MiB of 0x80 grew a
 * daemon by 500 MiB through the DHT): the framing is followed beside that reader, keeping no bytes,
 * and the stream is aborted on a length prefix or frame past maxFrameBytes, or a frame not complete
 * within frameTimeoutMs. The guard starts listening just before the first 'message' listener the
 * reader adds (a stream hands its buffered bytes to every listener once one is added, so listening
 * earlier would take them from a reader that attaches later).
 */
export function guardFrames(stream: Stream, limits: { maxFrameBytes: number; frameTimeoutMs?: number }): void {
  const original = stream.addEventListener
  let guarding = false
  stream.addEventListener = function (this: Stream, ...args: Parameters<Stream['addEventListener']>): void {
    if (!guarding && args[0] === 'message') {
      guarding = true
      new FrameReader(stream, { maxFrameBytes: limits.maxFrameBytes, maxBufferedBytes: limits.maxFrameBytes + lengthPrefixBytes(limits.maxFrameBytes), ...(limits.frameTimeoutMs === undefined ? {} : { frameTimeoutMs: limits.frameTimeoutMs }), discardFrames: true })
    }
    original.apply(this, args)
  } as Stream['addEventListener']
}

/**
 * Frames, each given as parts, as one list for one send: the parts are not copied (the muxer and
 * the encrypter read them in place), only the length prefixes are new.
 */
export function encodeFrames(frames: readonly (readonly Uint8Array[])[]): Uint8ArrayList {
  const out = new Uint8ArrayList()
  for (const parts of frames) {
    let length = 0
    for (const part of parts) length += part.length
    const prefix = Buffer.allocUnsafe(lengthPrefixBytes(length))
    writeVarint(prefix, 0, length)
    out.append(prefix)
    for (const part of parts) if (part.length > 0) out.append(part)
  }
  return out
}

/** One frame, ready for `sendAll`. */
export function encodeFrame(frame: Uint8Array): Uint8ArrayList {
  return encodeFrames([[frame]])
}

/** Sends `bytes`, waiting (at most `timeoutMs`) for the stream to drain when its write buffer is full. */
export async function sendAll(stream: Stream, bytes: Uint8Array | Uint8ArrayList, timeoutMs?: number): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain(timeoutMs === undefined ? undefined : { signal: AbortSignal.timeout(timeoutMs) })
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 128)
  }
  out[offset++] = value
  return offset
}
