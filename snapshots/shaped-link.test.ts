// The paced link of `fabric bench snapshots --link-mbps`: the token bucket's arithmetic on a
// virtual clock, then real libp2p streams on loopback paced by it, whose bytes must all arrive
// (close waits for the queue) and no faster than the rate allows.
import type { Libp2p } from '@libp2p/interface'
import { byteStream } from '@libp2p/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSnapshotHost } from './host.ts'
import { receiveRawStream, serveRawStream } from './raw-stream.ts'
import { ShapedLink, TokenBucket } from './shaped-link.ts'

const mib = 1024 * 1024
const kib = 1024

describe('token bucket', () => {
  /** Sends `total` bytes in `piece`-byte reservations, waiting as told; returns the virtual ms it took. */
  function paced(bucket: TokenBucket, clock: { ms: number }, total: number, piece: number): number {
    const startMs = clock.ms
    for (let sent = 0; sent < total; sent += piece) clock.ms += bucket.reserve(Math.min(piece, total - sent))
    return clock.ms - startMs
  }

  it('lets the burst through at once, then the rest at the rate', () => {
    const clock = { ms: 1_000 }
    const bucket = new TokenBucket({ bytesPerSecond: 20e6, burstBytes: 256 * kib, nowMs: () => clock.ms })
    expect(bucket.reserve(256 * kib)).toBe(0)
    expect(bucket.reserve(64 * kib)).toBeCloseTo((64 * kib * 1_000) / 20e6, 9)
    // 4 MiB from a full bucket: all but the burst at 20 MB/s (196.6 ms).
    const fresh = new TokenBucket({ bytesPerSecond: 20e6, burstBytes: 256 * kib, nowMs: () => clock.ms })
    expect(paced(fresh, clock, 4 * mib, 64 * kib)).toBeCloseTo(((4 * mib - 256 * kib) * 1_000) / 20e6, 6)
  })

  it('refills no further than the burst however long it was idle', () => {
    const clock = { ms: 0 }
    const bucket = new TokenBucket({ bytesPerSecond: 1e6, burstBytes: 100_000, nowMs: () => clock.ms })
    expect(paced(bucket, clock, 1e6, 10_000)).toBeCloseTo(900, 6)
    clock.ms += 60_000
    expect(paced(bucket, clock, 1e6, 10_000)).toBeCloseTo(900, 6)
  })

  it('shares the rate between senders reserving together', () => {
    const clock = { ms: 0 }
    const bucket = new TokenBucket({ bytesPerSecond: 1e6, burstBytes: 0, nowMs: () => clock.ms })
    // Two senders ask at the same instant: the second waits behind the first's bytes.
    expect(bucket.reserve(500_000)).toBeCloseTo(500, 6)
    expect(bucket.reserve(500_000)).toBeCloseTo(1_000, 6)
  })

  it('refuses a rate that is not a positive number', () => {
    for (const bytesPerSecond of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new TokenBucket({ bytesPerSecond, nowMs: () => 0 })).toThrow(/positive/)
    }
  })
})

describe('shaped streams over libp2p on loopback', () => {
  let holder: Libp2p
  let fetcher: Libp2p
  const link = new ShapedLink({ megabytesPerSecond: 20 })
  const writeProtocol = '/fabric/test/shaped-write/1.0.0'

  beforeAll(async () => {
    holder = await createSnapshotHost()
    fetcher = await createSnapshotHost()
    await serveRawStream(holder, (stream) => link.shape(stream))
    // byteStream's write waits for a 'drain' event rather than onDrain: the pacer must send one.
    await holder.handle(writeProtocol, async (stream) => {
      const shaped = link.shape(stream)
      const bytes = byteStream(shaped)
      await bytes.write(Buffer.alloc(3 * mib, 1))
      await bytes.write(Buffer.alloc(mib, 2))
      await shaped.close()
    })
    // Warm the connection up so its setup is not timed.
    await receiveRawStream(fetcher, { id: holder.peerId, multiaddrs: holder.getMultiaddrs() }, 1024)
  })

  afterAll(async () => {
    await fetcher?.stop()
    await holder?.stop()
  })

  it('delivers every byte whether the sends fit in the burst or not', async () => {
    // 512 KiB is two sends the bucket allows at once: the second must not be stranded in the queue.
    for (const total of [1, 300 * kib, 512 * kib, 1280 * kib]) {
      expect(await receiveRawStream(fetcher, { id: holder.peerId, multiaddrs: holder.getMultiaddrs() }, total), `${total} bytes`).toBe(total)
    }
  })

  it('delivers every byte of a raw stream, no faster than 20 MB/s', async () => {
    const startMs = performance.now()
    const received = await receiveRawStream(fetcher, { id: holder.peerId, multiaddrs: holder.getMultiaddrs() }, 4 * mib)
    const elapsedMs = performance.now() - startMs
    expect(received).toBe(4 * mib)
    // (4 MiB - 256 KiB burst) / 20 MB/s = 197 ms at the least; unpaced loopback takes ~20 ms.
    expect(elapsedMs).toBeGreaterThanOrEqual(180)
    expect(elapsedMs).toBeLessThan(2_000)
  })

  it('paces writes that wait for the drain event, and closes after the last byte', async () => {
    const stream = await fetcher.dialProtocol(holder.getMultiaddrs(), writeProtocol)
    const startMs = performance.now()
    let length = 0
    let sum = 0
    for await (const message of stream) {
      for (const part of message instanceof Uint8Array ? [message] : message) {
        length += part.byteLength
        for (const byte of part) sum += byte
      }
    }
    const elapsedMs = performance.now() - startMs
    // 3 MiB of ones then 1 MiB of twos, all of them.
    expect({ length, sum }).toEqual({ length: 4 * mib, sum: 5 * mib })
    expect(elapsedMs).toBeGreaterThanOrEqual(180)
    expect(elapsedMs).toBeLessThan(2_000)
  })
})
