// What node/attacks.test.ts attacks a mesh of real daemons with, from libp2p hosts of its own: raw
// streams it writes bytes to as it likes, strictly signed gossipsub messages (valid or not) packed
// into raw RPC frames, and the daemons' resident memory sampled through the attack. Keys come from
// one seeded generator, so every run attacks with the same identities.
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { encodeFrame, sendAll } from '../../codec/index.ts'
import { concatBytes } from '../../consensus/index.ts'
import type { SeededRandom } from '../../sim/index.ts'
import type { Daemon } from '../daemon-process.ts'

/** gossipsub's protocol, as the daemons speak it. */
export const gossipsubProtocol = '/meshsub/1.1.0'

/** A fresh Ed25519 key drawn from `random` (the same seed gives the same keys). */
export function seededKey(random: SeededRandom): Promise<PrivateKey> {
  return generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, () => random.int(0, 256)))
}

export const peerIdOf = (key: PrivateKey): string => peerIdFromPrivateKey(key).toString()

/** Opens a stream of `protocol` to `address`: what the attack then writes is up to it. */
export function openStream(host: Libp2p, address: Multiaddr, protocol: string): Promise<Stream> {
  return host.dialProtocol(address, protocol, { signal: AbortSignal.timeout(10_000) })
}

/** Writes `bytes` as they are (no framing); false once the stream is gone (the daemon closed it). */
export async function sendRaw(stream: Stream, bytes: Uint8Array, timeoutMs = 10_000): Promise<boolean> {
  if (stream.status !== 'open' || stream.writeStatus !== 'writable') return false
  try {
    await sendAll(stream, bytes, timeoutMs)
    return true
  } catch {
    return false
  }
}

/** Resolves once the stream is no longer open (the daemon reset or closed it); rejects after `timeoutMs`. */
export function closedWithin(stream: Stream, timeoutMs: number): Promise<number> {
  const startedMs = performance.now()
  if (stream.status !== 'open') return Promise.resolve(0)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the stream of ${stream.protocol ?? 'an unknown protocol'} stayed open for ${timeoutMs} ms`)), timeoutMs)
    stream.addEventListener('close', () => {
      clearTimeout(timer)
      resolve(performance.now() - startedMs)
    }, { once: true })
  })
}

const utf8 = new TextEncoder()

function seqnoBytes(seq: bigint): Uint8Array {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, seq, false)
  return bytes
}

/** gossipsub messages on `topic` signed by `key` as their author (StrictSign), with seqnos from `firstSeqno` up. */
export async function signedGossip(key: PrivateKey, topic: string, payloads: readonly Uint8Array[], firstSeqno: bigint): Promise<RPC.Message[]> {
  const from = peerIdFromPrivateKey(key).toMultihash().bytes
  const messages: RPC.Message[] = []
  let seqno = firstSeqno
  for (const data of payloads) {
    const unsigned: RPC.Message = { from, data, seqno: seqnoBytes(seqno++), topic }
    const signature = await key.sign(concatBytes([utf8.encode('libp2p-pubsub:'), RPC.Message.encode(unsigned)]))
    messages.push({ ...unsigned, signature })
  }
  return messages
}

/** The messages as length-prefixed RPC frames of `batch` messages each, ready to write on a gossipsub stream. */
export function gossipRpcFrames(messages: readonly RPC.Message[], batch: number): Uint8Array[] {
  const frames: Uint8Array[] = []
  for (let start = 0; start < messages.length; start += batch) {
    const slice = messages.slice(start, start + batch)
    const topics = [...new Set(slice.map((message) => message.topic))]
    frames.push(encodeFrame(RPC.encode({ subscriptions: topics.map((topic) => ({ subscribe: true, topic })), messages: slice })).subarray())
  }
  return frames
}

export interface RssFigures { name: string; beforeMiB: number; peakMiB: number; afterMiB: number; growthMiB: number }

/** Samples each daemon's VmRSS every `intervalMs` from `start()` to `stop()`: before, peak and after. */
export class RssSampler {
  readonly #daemons: readonly Daemon[]
  readonly #before = new Map<Daemon, number>()
  readonly #peak = new Map<Daemon, number>()
  #timer: NodeJS.Timeout | null = null

  constructor(daemons: readonly Daemon[]) {
    this.#daemons = daemons
  }

  start(intervalMs = 100): void {
    for (const daemon of this.#daemons) {
      const rss = daemon.rssBytes() ?? 0
      this.#before.set(daemon, rss)
      this.#peak.set(daemon, rss)
    }
    this.#timer = setInterval(() => this.#sample(), intervalMs)
  }

  stop(): RssFigures[] {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#sample()
    const mib = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10
    return this.#daemons.map((daemon) => {
      const before = this.#before.get(daemon) ?? 0
      const peak = this.#peak.get(daemon) ?? 0
      return { name: daemon.name, beforeMiB: mib(before), peakMiB: mib(peak), afterMiB: mib(daemon.rssBytes() ?? 0), growthMiB: mib(peak - before) }
    })
  }

  #sample(): void {
    for (const daemon of this.#daemons) {
      const rss = daemon.rssBytes()
      if (rss !== null && rss > (this.#peak.get(daemon) ?? 0)) this.#peak.set(daemon, rss)
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
