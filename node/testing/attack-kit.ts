// What node/attacks.test.ts and node/document-attacks.test.ts attack a mesh of real daemons with,
// from libp2p hosts of their own: raw streams they write bytes to as they like, strictly signed
// gossipsub messages (valid or not) packed into raw RPC frames, signed client requests kept as bytes
// to send again, and the daemons' resident memory sampled through the attack; AttackReferee judges
// that the mesh served and held through each attack. Keys come from one seeded generator, so every
// run attacks with the same identities.
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { expect } from 'vitest'
import { encodeFrame, FrameReader, sendAll } from '../../codec/index.ts'
import { concatBytes } from '../../consensus/index.ts'
import type { SeededRandom } from '../../sim/index.ts'
import { clientCall } from '../client-connection.ts'
import { clientProtocol, clientWireLimits, clientWireVersion, decodeClientResponse, encodeClientRequest, type ClientRequest, type ClientRequestBody, type ClientResponse } from '../client-wire.ts'
import { agreedLeader, type Daemon } from '../daemon-process.ts'
import { createInvite } from '../invite-token.ts'
import { joinMesh } from '../join-client.ts'
import { signClientRequest } from '../request-signature.ts'

/** gossipsub's protocol, as the daemons speak it. */
export const gossipsubProtocol = '/meshsub/1.1.0'

/** The attack seed (FABRIC_ATTACK_SEED, else `fallback`) and how a failure message says to replay it. */
export function attackSeed(fallback: number): { seed: number; seedNote: string } {
  const seed = Number(process.env.FABRIC_ATTACK_SEED ?? fallback)
  return { seed, seedNote: `(attack seed ${seed}: FABRIC_ATTACK_SEED=${seed} replays it)` }
}

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

/** A client request as its client signs it for mesh `mesh` (the envelope filled in as clientFrames does), encoded: the bytes a replay sends again. */
export async function signedRequestBytes(client: Libp2p, body: ClientRequestBody, requestId: string, mesh: string): Promise<Uint8Array> {
  const unsigned = { ...body, v: clientWireVersion, requestId, client: client.peerId.toString(), mesh, signedAtMs: Date.now() }
  return encodeClientRequest({ ...unsigned, signature: await signClientRequest(client, unsigned) } as ClientRequest)
}

/** Sends request bytes as they are on a new client stream from `host` and reads the answer (the first result or error; keepalives skipped). */
export async function rawClientCall(host: Libp2p, address: Multiaddr, request: Uint8Array, timeoutMs = 30_000): Promise<ClientResponse> {
  const stream = await openStream(host, address, clientProtocol)
  const reader = new FrameReader(stream, { maxFrameBytes: clientWireLimits.maxResponseFrameBytes, maxBufferedBytes: 2 * clientWireLimits.maxResponseFrameBytes })
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    await sendAll(stream, encodeFrame(request), 10_000)
    for (;;) {
      const decoded = decodeClientResponse(await reader.read({ signal }))
      if (!decoded.ok) throw new Error(`unreadable answer: ${decoded.reason}`)
      if (decoded.value.type === 'result' || decoded.value.type === 'error') return decoded.value
    }
  } finally {
    stream.abort(new Error('done'))
  }
}

export interface RefereeInit {
  daemons: readonly Daemon[]
  /** The leader and term the mesh settled on before the attacks: each attack must leave both as they were. */
  leader: Daemon
  term: number
  /** A client host with the admin key, and that key (it signs the invites of the joiners). */
  admin: Libp2p
  adminKey: PrivateKey
  meshId: string
  random: SeededRandom
  /** Says how to replay the run, in every failure message. */
  seedNote: string
  maxRssGrowthMiB: number
  joinTimeoutMs: number
}

/**
 * Judges attacks on a closed mesh: while each one runs, an invited peer joins (never told busy) and
 * the admin admits a peer and reads the mesh; afterwards every daemon is up, the leader leads in the
 * same term, and no daemon's resident memory grew by maxRssGrowthMiB or more over the attack.
 */
export class AttackReferee {
  readonly rss: Record<string, RssFigures[]> = {}
  readonly durations: Record<string, number> = {}
  readonly #init: RefereeInit

  constructor(init: RefereeInit) {
    this.#init = init
  }

  /** `start` puts the pressure on; while it holds the mesh must serve (servesWhileAttacked); `finish` checks the attack failed. */
  async underAttack(name: string, attack: { start(): Promise<void>; finish(): Promise<void> }, checks: { sameTerm?: boolean } = {}): Promise<void> {
    const { daemons, leader, term, seedNote, maxRssGrowthMiB } = this.#init
    const sampler = new RssSampler(daemons)
    const startedMs = performance.now()
    sampler.start()
    try {
      await attack.start()
      await this.servesWhileAttacked(name)
      await attack.finish()
    } finally {
      this.rss[name] = sampler.stop()
      this.durations[name] = performance.now() - startedMs
    }
    for (const figure of this.rss[name]!) expect(figure.growthMiB, `${figure.name}'s RSS over ${name} ${seedNote}`).toBeLessThan(maxRssGrowthMiB)
    for (const daemon of daemons) expect(daemon.alive, `${daemon.name} is up after ${name}`).toBe(true)
    if (checks.sameTerm === false) return
    expect(agreedLeader(daemons), `the same leader after ${name} ${seedNote}`).toBe(leader)
    expect(leader.status!.term, `the same term after ${name} ${seedNote}`).toBe(term)
  }

  /** An invited peer joins (never told busy), and the admin admits a peer and sees it in the mesh. */
  async servesWhileAttacked(name: string): Promise<void> {
    const { admin, adminKey, meshId, leader, random, joinTimeoutMs } = this.#init
    const target = multiaddr(leader.address)
    const busy = async (): Promise<number> => ((await clientCall(admin, target, { kind: 'status' })).counters as { admission: { join: { refused: Record<string, number> } } }).admission.join.refused['busy'] ?? 0
    const busyBefore = await busy()
    const joinerKey = await seededKey(random)
    const token = await createInvite({ adminKey, meshId, role: 'viewer', peer: peerIdOf(joinerKey), ttlMs: 600_000, nowMs: Date.now(), bootstrap: [leader.address] })
    const joined = await joinMesh({ privateKey: joinerKey, token, bootstrap: [leader.address], timeoutMs: joinTimeoutMs })
    expect(joined.role, `an invited peer joins during ${name}`).toBe('viewer')
    const admitted = peerIdOf(await seededKey(random))
    expect(await clientCall(admin, target, { kind: 'admit', peerId: admitted, role: 'submitter' }), `the admin admits during ${name}`).toEqual({ peerId: admitted, role: 'submitter' })
    const mesh = await clientCall(admin, target, { kind: 'mesh' })
    expect(mesh.admitted.map((peer) => peer.peerId), `the admin reads the mesh during ${name}`).toEqual(expect.arrayContaining([admitted, peerIdOf(joinerKey)]))
    expect(await busy(), `no join was answered busy during ${name}`).toBe(busyBefore)
  }

  /** One line per attack: how long it ran and each daemon's RSS before and at its peak. */
  report(): string {
    return Object.entries(this.rss).map(([attack, figures]) => `${attack} (${(this.durations[attack]! / 1000).toFixed(1)} s): ${figures.map((figure) => `${figure.name} ${figure.beforeMiB} -> peak ${figure.peakMiB} MiB (+${figure.growthMiB})`).join(', ')}`).join('\n  ')
  }
}
