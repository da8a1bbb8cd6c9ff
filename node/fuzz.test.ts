// Protocol fuzzing of a real daemon (a separate process on loopback, the leader of a one-voter mesh
// running a job) from a separate libp2p host: thousands of malformed, truncated, oversized and forged
// frames on /fabric/consensus/1.0.0, requests on /fabric/client/1.0.0 and gossipsub RPCs on the
// capacity topic. Afterwards the daemon still runs and leads in the same term, its cluster document
// has the same heads, every refusal was counted where it belongs (transport, client protocol, topic
// validator), no forged gossip reached the core, and it still places a new job.
// The generator is seeded: FABRIC_FUZZ_SEED=N replays a run (the seed is in every failure message).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterAll, describe, expect, it } from 'vitest'
import { SeededRandom } from '../sim/index.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { clientProtocol, clientWireLimits, decodeClientRequest, decodeClientResponse, type StatusView } from './client-wire.ts'
import { consensusProtocol } from './consensus-transport.ts'
import { Daemon } from './daemon-process.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { clientRequests, consensusFrames, gossipMessages, gossipRpcFrames, oversizedConsensusFrame, type Identities } from './testing/fuzz-corpus.ts'
import { decodePeerMessage, maxPeerFrameBytes } from './wire.ts'
import { poll } from './testing/poll.ts'

const fuzzSeed = Number(process.env.FABRIC_FUZZ_SEED ?? 20_261_124)
const counts = { consensusFrames: 4_000, clientRequests: 2_000, gossipMessages: 2_000 }
/** Client requests in flight at once (under the daemon's maxConcurrentRequests, so none is refused as busy). */
const clientConcurrency = 8
/** The whole fuzzing phase must end within this (the bound is about a minute). */
const fuzzBudgetMs = 60_000
const readyTimeoutMs = 30_000
const settleTimeoutMs = 30_000
const gossipsubProtocol = '/meshsub/1.1.0'

let daemon: Daemon | null = null
let fuzzer: Libp2p | null = null
let client: Libp2p | null = null
const directories: string[] = []

afterAll(async () => {
  await fuzzer?.stop()
  await client?.stop()
  if (daemon?.alive === true) daemon.kill('SIGKILL')
  await daemon?.exited()
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})

const seedNote = `(fuzz seed ${fuzzSeed}: FABRIC_FUZZ_SEED=${fuzzSeed} replays it)`


interface Counters {
  peerDroppedMessages: number
  transport: { framesReceived: number; inboundRefused: number }
  capacity: { delivered: number; refused: number; stale: number }
  client: { requests: number; refused: number; failed: number }
}
const countersOf = (status: StatusView): Counters => status.counters as unknown as Counters

describe('protocol fuzzing of a Shuttle process', () => {
  it('survives thousands of malformed, truncated, oversized and forged messages on every protocol and topic, its document unchanged', async () => {
    const random = new SeededRandom(fuzzSeed)
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-fuzz-'))
    directories.push(dataDir)
    const daemonId = (await loadOrCreateIdentity(dataDir)).nodeId
    daemon = new Daemon('target', ['--data', dataDir, '--voters', daemonId, '--cpu-millis', '2000', '--memory-mib', '2048', '--no-sync-writes', '--log-level', 'error'])
    const target = daemon
    await Daemon.waitFor([target], () => target.status?.role === 'leader' && target.status.readyLeader, readyTimeoutMs, 'the daemon to lead its one-voter mesh')
    const address = multiaddr(target.address)

    client = await createClientHost()
    const host = client
    const status = (): Promise<StatusView> => clientCall(host, address, { kind: 'status' })
    // A running job: the document holds an assignment and a run in flight while it is attacked.
    const { jobId } = await clientCall(host, address, { kind: 'submit', spec: JSON.stringify({ name: 'steady', command: ['sleep', '600'], resources: { cpu: '100m', memory: '16Mi' } }) })
    await poll(() => clientCall(host, address, { kind: 'job', jobId }), (detail) => detail.local?.state === 'running' && detail.state === 'assigned', settleTimeoutMs, 'the job to run')
    // Idle: the heads stop moving once the commit marker is written.
    let before = await status()
    await poll(async () => {
      const previous = before
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      before = await status()
      return previous.documentHeads.join() === before.documentHeads.join()
    }, (stable) => stable, settleTimeoutMs, 'the document to be idle')
    const countersBefore = countersOf(before)

    const fuzzerKey = await generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, () => random.int(0, 256)))
    const victimKey = await generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, () => random.int(0, 256)))
    fuzzer = await createLibp2p({ privateKey: fuzzerKey, addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const attacker = fuzzer
    const ids: Identities = { daemon: daemonId, fuzzer: attacker.peerId.toString(), victim: peerIdFromPrivateKey(victimKey).toString() }
    const fuzzStarted = performance.now()

    // 1. /fabric/consensus/1.0.0: every frame on one stream (framing intact), then one past maxPeerFrameBytes.
    const frames = consensusFrames(random.fork('consensus'), ids, counts.consensusFrames)
    const expectedRefused = frames.filter((frame) => !decodePeerMessage(frame).ok).length
    const wellFormed = frames.length - expectedRefused
    expect(expectedRefused, `most consensus frames are malformed ${seedNote}`).toBeGreaterThan(counts.consensusFrames / 2)
    const consensus = lpStream(await attacker.dialProtocol(address, consensusProtocol), { maxDataLength: maxPeerFrameBytes * 2 })
    for (const frame of frames) await consensus.write(frame)
    const oversized = lpStream(await attacker.dialProtocol(address, consensusProtocol), { maxDataLength: maxPeerFrameBytes * 2 })
    await oversized.write(oversizedConsensusFrame(), { signal: AbortSignal.timeout(10_000) }).catch(() => {})

    // 2. /fabric/client/1.0.0: one request per stream; each answer is a schema-valid frame, and a
    // request the wire refuses, or one naming another client, is answered bad-request or unauthorized.
    const requests = clientRequests(random.fork('client'), ids, counts.clientRequests)
    const verdicts: string[] = []
    const silent = [0, 1].map(async () => {
      // A client that opens a stream and never sends: refused when the request read times out.
      const stream = lpStream(await attacker.dialProtocol(address, clientProtocol), { maxDataLength: clientWireLimits.maxResponseFrameBytes })
      const answer = decodeClientResponse((await stream.read({ signal: AbortSignal.timeout(20_000) })).subarray())
      expect(answer, seedNote).toMatchObject({ ok: true, value: { type: 'error', code: 'bad-request' } })
    })
    let nextRequest = 0
    await Promise.all(
      Array.from({ length: clientConcurrency }, async () => {
        while (nextRequest < requests.length) {
          const bytes = requests[nextRequest++]!
          const decoded = decodeClientRequest(bytes)
          const expected = bytes.length > clientWireLimits.maxRequestBytes || !decoded.ok ? 'bad-request' : decoded.value.client !== ids.fuzzer ? 'unauthorized' : 'answered'
          const stream = await attacker.dialProtocol(address, clientProtocol)
          const framed = lpStream(stream, { maxDataLength: clientWireLimits.maxResponseFrameBytes })
          // An oversized request is refused as soon as its length prefix is read: the rest may never be taken.
          void framed.write(bytes, { signal: AbortSignal.timeout(10_000) }).catch(() => {})
          let verdict: string
          try {
            const answer = decodeClientResponse((await framed.read({ signal: AbortSignal.timeout(15_000) })).subarray())
            if (!answer.ok) verdict = `unreadable answer: ${answer.reason}`
            else if (answer.value.type === 'error' && (answer.value.code === 'bad-request' || answer.value.code === 'unauthorized')) verdict = answer.value.code
            else verdict = 'answered'
          } catch (error) {
            verdict = expected === 'bad-request' && bytes.length > clientWireLimits.maxRequestBytes ? 'bad-request' : `no answer: ${(error as Error).message}`
          }
          stream.abort(new Error('done'))
          if (verdict !== expected) verdicts.push(`${expected} expected, got ${verdict}: ${Buffer.from(bytes.subarray(0, 120)).toString('utf8')}`)
        }
      }),
    )
    await Promise.all(silent)
    expect(verdicts, seedNote).toEqual([])

    // 3. The capacity topic, as raw gossipsub RPCs: forged authors, broken and missing signatures,
    // and payloads signed by the fuzzer itself that the topic validator must refuse; then an RPC
    // frame past gossipsub's inbound limit.
    const messages = await gossipMessages(random.fork('gossip'), ids, fuzzerKey, counts.gossipMessages)
    const toValidator = messages.filter((message) => message.refusedBy === 'validator').length
    const rpcs = gossipRpcFrames(random.fork('rpc'), messages, 20)
    const gossip = lpStream(await attacker.dialProtocol(address, gossipsubProtocol), { maxDataLength: 8 * 1024 * 1024 })
    for (const rpc of rpcs) await gossip.write(rpc)

    // Everything sent has been read: the daemon counted every consensus frame.
    const after = await poll(
      status,
      (answer) => {
        const counters = countersOf(answer)
        return counters.transport.framesReceived - countersBefore.transport.framesReceived >= frames.length && counters.capacity.refused - countersBefore.capacity.refused >= toValidator
      },
      settleTimeoutMs,
      'the daemon to have read every frame',
    )
    await gossip.write(new Uint8Array(5 * 1024 * 1024), { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    const fuzzMs = performance.now() - fuzzStarted
    console.log(`fuzzed in ${(fuzzMs / 1000).toFixed(1)} s: ${frames.length + 1} consensus frames (${expectedRefused + 1} malformed), ${requests.length + 2} client requests, ${messages.length} gossip messages in ${rpcs.length + 1} RPCs ${seedNote}`)
    expect(fuzzMs).toBeLessThan(fuzzBudgetMs)

    // The daemon lives, still leads in the same term, and its document did not change.
    const final = await status()
    expect(target.alive, seedNote).toBe(true)
    expect(final).toMatchObject({ role: 'leader', term: before.term, leaderId: daemonId, readyLeader: true, jobRecords: before.jobRecords })
    expect(final.documentHeads, `the document changed ${seedNote}`).toEqual(before.documentHeads)
    expect(await clientCall(host, address, { kind: 'leader' })).toMatchObject({ leaderId: daemonId, term: before.term, askedRole: 'leader' })
    const counters = countersOf(after)
    // Every malformed consensus frame was refused by the transport (plus the oversized one, which cost its stream).
    expect(counters.transport.inboundRefused - countersBefore.transport.inboundRefused, seedNote).toBe(expectedRefused + 1)
    // The well-formed ones came from a peer that is no voter and claimed others' roles: the core dropped them.
    expect(counters.peerDroppedMessages - countersBefore.peerDroppedMessages, seedNote).toBeGreaterThan(wellFormed / 2)
    // No forged or malformed gossip reached the core; the validator refused each one the fuzzer signed as itself.
    expect(counters.capacity.delivered - countersBefore.capacity.delivered, seedNote).toBe(0)
    expect(counters.capacity.refused - countersBefore.capacity.refused, seedNote).toBe(toValidator)
    const failures = target.stderrTail.filter((line) => line.includes('client-request-failed')).join('\n')
    expect(counters.client.failed - countersBefore.client.failed, `no request hit a daemon bug ${seedNote}\n${failures}`).toBe(0)

    // And it still places: a new job is committed and runs.
    const { jobId: probe } = await clientCall(host, address, { kind: 'submit', spec: JSON.stringify({ name: 'probe', command: ['true'], resources: { cpu: '100m', memory: '16Mi' } }) })
    await poll(() => clientCall(host, address, { kind: 'job', jobId: probe }), (detail) => detail.state === 'finished', settleTimeoutMs, 'a job submitted after the fuzzing to finish')
  }, 240_000)
})
