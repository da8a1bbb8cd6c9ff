// Proves, over real libp2p hosts on 127.0.0.1 and small limits, how the client protocol shares its
// room: a client holds at most maxRequestsPerPeer requests, peers without a role share
// maxRequestsFromStrangers, others stop short of maxConcurrentRequests by reservedForAdmins, and an
// admin is still answered when everyone else has filled what they may take. Past a limit the answer
// is `busy`, at once. (node/attacks.test.ts does the same against real daemons at the default limits.)
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AdmissionRole } from '../consensus/index.ts'
import { FrameReader } from '../codec/index.ts'
import { clientFrames } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { ClientProtocol } from './client-protocol.ts'
import type { ClientService } from './client-service.ts'
import { clientProtocol, decodeClientResponse, type ClientResponse } from './client-wire.ts'
import { silentLogger } from './logger.ts'

const limits = { maxConcurrentRequests: 6, reservedForAdmins: 2, maxRequestsPerPeer: 3, maxRequestsFromStrangers: 1, requestReadTimeoutMs: 3_000 }
/** How long a request that was let in stays silent before the test calls it held. */
const heldAfterMs = 500

/** A service that answers nothing until the request is abandoned: every request it gets stays in flight. */
const holdingService = {
  async *handle(_request: unknown, signal: AbortSignal): AsyncGenerator<ClientResponse> {
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
  },
} as unknown as ClientService

describe('the client protocol\'s limits on requests in flight', () => {
  let daemon: Libp2p
  let protocol: ClientProtocol
  const hosts: Libp2p[] = []
  const roles = new Map<string, AdmissionRole>()
  const controller = new AbortController()

  const client = async (role: AdmissionRole | undefined): Promise<Libp2p> => {
    const key: PrivateKey = await generateKeyPair('Ed25519')
    if (role !== undefined) roles.set(peerIdFromPrivateKey(key).toString(), role)
    const host = await createClientHost({ privateKey: key })
    hosts.push(host)
    return host
  }

  /** Opens `count` requests from `from` at once: 'held' (let in, in flight) or the error code it was answered with. */
  const open = async (from: Libp2p, count: number): Promise<string[]> => {
    const firsts = Array.from({ length: count }, () => clientFrames(from, daemon.getMultiaddrs()[0]!, { kind: 'leader' }, { signal: controller.signal }).next())
    const window = new Promise<string>((resolve) => setTimeout(() => resolve('held'), heldAfterMs))
    return Promise.all(firsts.map((first) => {
      first.catch(() => {})
      return Promise.race([first.then(({ value }) => (value?.type === 'error' ? value.code : 'answered'), () => 'closed'), window])
    }))
  }

  beforeAll(async () => {
    daemon = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    protocol = new ClientProtocol({ libp2p: daemon, service: holdingService, logger: silentLogger, guard: { roleOf: (peerId) => roles.get(peerId), check: async () => ({ ok: true }) } }, limits)
    await protocol.start()
  })

  afterAll(async () => {
    controller.abort()
    for (const host of hosts) await host.stop()
    await protocol?.stop()
    await daemon?.stop()
  })

  it('answers busy past each limit, and still lets the admin in', async () => {
    // Strangers share one slot: the first (silent) stream takes it, the second is told busy.
    const stranger = await client(undefined)
    const silent: Stream[] = [await stranger.dialProtocol(daemon.getMultiaddrs()[0]!, clientProtocol)]
    await new Promise((resolve) => setTimeout(resolve, 100))
    silent.push(await stranger.dialProtocol(daemon.getMultiaddrs()[0]!, clientProtocol))
    const second = new FrameReader(silent[1]!, { maxFrameBytes: 1 << 20, maxBufferedBytes: 2 << 20 })
    expect(decodeClientResponse(await second.read({ signal: AbortSignal.timeout(5_000) }))).toMatchObject({ ok: true, value: { type: 'error', code: 'busy' } })

    // A viewer: three let in, the fourth told busy (maxRequestsPerPeer).
    expect((await open(await client('viewer'), 4)).sort()).toEqual(['busy', 'held', 'held', 'held'])
    // A node: the open room is 6 - 2 reserved = 4, the stranger and the viewer hold 4 already.
    expect(await open(await client('node'), 1)).toEqual(['busy'])
    // The admin takes the reserved room.
    expect(await open(await client('admin'), 2)).toEqual(['held', 'held'])
    expect(protocol.counters.busy).toBe(3)
    for (const stream of silent) stream.abort(new Error('done'))
  })
})
