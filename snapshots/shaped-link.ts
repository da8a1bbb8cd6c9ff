// A holder behind a link of a given speed, for `fabric bench snapshots --link-mbps`: on one machine
// the holders and the fetcher share the CPU, so two holders cannot beat one; between machines the
// link is usually the limit. A token bucket shared by every stream of one holder process paces
// what it writes, so each holder acts as if it had its own link of that speed. Bench only.
import { setTimeout as sleep } from 'node:timers/promises'
import type { AbortOptions, Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'

/** Bytes a link may send at once after being idle (a socket buffer's worth). */
export const defaultBurstBytes = 256 * 1024
/** The most handed to the underlying stream per token reservation: small enough to pace smoothly. */
const sliceBytes = 64 * 1024
/** Bytes a shaped stream queues before `send` returns false and the writer waits for 'drain'. */
const maxQueuedBytes = 1024 * 1024

/**
 * Tokens are bytes, refilled at `bytesPerSecond` up to `burstBytes`. A reservation may take the
 * bucket below zero: the caller waits until the debt is repaid, so concurrent senders share the
 * rate in the order they asked. No clock of its own: `nowMs` is given.
 */
export class TokenBucket {
  readonly bytesPerSecond: number
  readonly burstBytes: number
  readonly #nowMs: () => number
  #tokens: number
  #lastMs: number

  constructor(options: { bytesPerSecond: number; burstBytes?: number; nowMs: () => number }) {
    if (!(Number.isFinite(options.bytesPerSecond) && options.bytesPerSecond > 0)) throw new RangeError(`bytesPerSecond must be a positive number, got ${options.bytesPerSecond}`)
    this.bytesPerSecond = options.bytesPerSecond
    this.burstBytes = options.burstBytes ?? defaultBurstBytes
    this.#nowMs = options.nowMs
    this.#tokens = this.burstBytes
    this.#lastMs = this.#nowMs()
  }

  /** Takes `bytes` from the bucket; returns how many ms the caller must wait before sending them (0: at once). */
  reserve(bytes: number): number {
    const now = this.#nowMs()
    this.#tokens = Math.min(this.burstBytes, this.#tokens + ((now - this.#lastMs) * this.bytesPerSecond) / 1_000)
    this.#lastMs = now
    this.#tokens -= bytes
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1_000) / this.bytesPerSecond
  }
}

type ListenerArguments = Parameters<EventTarget['addEventListener']> extends [string, ...infer Rest] ? Rest : never

/** One holder's outgoing link: every stream shaped by it draws on the same bucket. */
export class ShapedLink {
  readonly bucket: TokenBucket

  constructor(options: { megabytesPerSecond: number; burstBytes?: number }) {
    this.bucket = new TokenBucket({ bytesPerSecond: options.megabytesPerSecond * 1e6, burstBytes: options.burstBytes, nowMs: () => performance.now() })
  }

  /** `stream` with its sends paced by this link; reads, events and everything else are the stream's own. */
  shape(stream: Stream): Stream {
    const pacer = new Pacer(stream, this.bucket)
    return new Proxy(stream, {
      get(target, property) {
        switch (property) {
          case 'send': return pacer.send
          case 'onDrain': return pacer.onDrain
          case 'close': return pacer.close
          case 'abort': return pacer.abort
          case 'writeBufferLength': return pacer.queuedBytes + target.writeBufferLength
          // 'drain' is this pacer's (byteStream's write waits for it); other events are the stream's.
          case 'addEventListener': return (type: string, ...rest: ListenerArguments) => (type === 'drain' ? pacer.events : target as EventTarget).addEventListener(type, ...rest)
          case 'removeEventListener': return (type: string, ...rest: ListenerArguments) => (type === 'drain' ? pacer.events : target as EventTarget).removeEventListener(type, ...rest)
        }
        const value = Reflect.get(target, property, target) as unknown
        // Methods run on the stream itself (its private fields are not the proxy's).
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
  }
}

/** The queue between a writer and its stream: bytes leave when the bucket allows. */
class Pacer {
  readonly events = new EventTarget()
  queuedBytes = 0
  readonly #stream: Stream
  readonly #bucket: TokenBucket
  readonly #queue: Uint8Array[] = []
  #pumping: Promise<void> | null = null
  #failed: Error | null = null
  #drainWaiters: { resolve(): void; reject(error: Error): void }[] = []

  constructor(stream: Stream, bucket: TokenBucket) {
    this.#stream = stream
    this.#bucket = bucket
  }

  readonly send = (data: Uint8Array | Uint8ArrayList): boolean => {
    if (this.#failed !== null) throw this.#failed
    if (this.#stream.writeStatus !== 'writable') return this.#stream.send(data) // throws as the stream would
    for (const part of data instanceof Uint8Array ? [data] : data) {
      if (part.byteLength === 0) continue
      this.#queue.push(part)
      this.queuedBytes += part.byteLength
    }
    this.#pumping ??= this.#pump()
    return this.queuedBytes < maxQueuedBytes
  }

  readonly onDrain = async (options?: AbortOptions): Promise<void> => {
    if (this.#failed !== null) throw this.#failed
    if (this.queuedBytes < maxQueuedBytes) return
    const drained = new Promise<void>((resolve, reject) => this.#drainWaiters.push({ resolve, reject }))
    if (options?.signal === undefined) return drained
    options.signal.throwIfAborted()
    const signal = options.signal
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason as Error)
      signal.addEventListener('abort', onAbort, { once: true })
      drained.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  /** Closes once every queued byte has gone out, as the stream's own close waits for its buffer. */
  readonly close = async (options?: AbortOptions): Promise<void> => {
    while (this.#pumping !== null) await this.#pumping
    if (this.#failed !== null) throw this.#failed
    await this.#stream.close(options)
  }

  readonly abort = (error: Error): void => {
    this.#fail(error)
    this.#stream.abort(error)
  }

  async #pump(): Promise<void> {
    // Yield first, so that #pumping is set before the loop can end and clear it (a burst that the
    // bucket allows at once would otherwise run the whole loop inside send()).
    await Promise.resolve()
    try {
      while (this.#queue.length > 0 && this.#failed === null) {
        const slice = this.#take()
        const waitMs = this.#bucket.reserve(slice.byteLength)
        if (waitMs > 0) await sleep(waitMs)
        if (this.#failed !== null) return
        if (!this.#stream.send(slice)) await this.#stream.onDrain()
        const wasFull = this.queuedBytes >= maxQueuedBytes
        this.queuedBytes -= slice.byteLength
        if (wasFull && this.queuedBytes < maxQueuedBytes) this.#drained()
      }
    } catch (error) {
      this.#fail(error as Error)
    } finally {
      // In the same turn as the loop's last check of the queue: a send after this starts a new pump.
      this.#pumping = null
    }
  }

  /** Up to sliceBytes from the head of the queue, without copying. */
  #take(): Uint8ArrayList {
    const slice = new Uint8ArrayList()
    while (this.#queue.length > 0 && slice.byteLength < sliceBytes) {
      const head = this.#queue[0]!
      const room = sliceBytes - slice.byteLength
      if (head.byteLength <= room) {
        slice.append(this.#queue.shift()!)
      } else {
        slice.append(head.subarray(0, room))
        this.#queue[0] = head.subarray(room)
      }
    }
    return slice
  }

  #drained(): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const waiter of waiters) waiter.resolve()
    this.events.dispatchEvent(new Event('drain'))
  }

  #fail(error: Error): void {
    if (this.#failed !== null) return
    this.#failed = error
    this.#queue.length = 0
    this.queuedBytes = 0
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const waiter of waiters) waiter.reject(error)
  }
}
