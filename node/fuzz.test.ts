// Protocol fuzzing of a real daemon (a separate process on loopback, the leader of a one-voter mesh
// running a job) from a separate libp2p host: thousands of malformed (hostile CBOR among them), truncated, oversized and forged
// frames on /fabric/consensus/1.0.0, requests on /fabric/client/1.0.0, /fabric/join/1.0.0,
// /fabric/snapshots/1.0.0 and /fabric/snapshot-replicate/1.0.0, and gossipsub RPCs on the signed
// topics (capacity, metrics, addresses). The mesh is closed (an admin key) so that invites are checked; the fuzzer is admitted
// as a node, so that every node-only protocol serves it, and a stranger with no role tries the same
// doors. Afterwards the daemon still runs and leads in the same term, its cluster document has the
// same heads, every refusal was counted where it belongs (transport, client protocol, topic validator,
// join protocol, snapshot server, replication), no forged gossip reached the core, nobody was
// admitted, nothing was served or fetched, and it still places a new job.
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
import { decodeCbor } from '../codec/index.ts'
import { SeededRandom } from '../sim/index.ts'
import { clientCall } from './client-connection.ts'
import { createClientHost } from './client-host.ts'
import { clientProtocol, clientWireLimits, decodeClientRequest, decodeClientResponse, type StatusView } from './client-wire.ts'
import { consensusProtocol } from './consensus-transport.ts'
import { Daemon } from './daemon-process.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { verifyInvite } from './invite-token.ts'
import { decodeJoinAnswer, decodeJoinRequest, joinProtocol, joinWireLimits } from './join-wire.ts'
import { maxReplicateMessageBytes, snapshotReplicateProtocol } from './snapshot-keeper.ts'
import {
  clientRequests, consensusFrames, forgedInvites, fuzzedTopics, gossipMessages, gossipRpcFrames, joinRequests, oversizedConsensusFrame, oversizedSnapshotRequest, replicateRequests, snapshotRequests,
  type Identities,
} from './testing/fuzz-corpus.ts'
import { decodeSnapshotRequest, decodeSnapshotResponseFrame, maxChunkFrameBytes, snapshotProtocol } from '../snapshots/index.ts'
import { decodePeerMessage, maxPeerFrameBytes } from './wire.ts'
import { poll } from './testing/poll.ts'
import { addressesTopic } from './address-gossip.ts'
import { capacityTopic } from './capacity-gossip.ts'
import { metricsTopic } from './metrics-gossip.ts'

const fuzzSeed = Number(process.env.FABRIC_FUZZ_SEED ?? 20_261_124)
const counts = { consensusFrames: 4_000, clientRequests: 2_000, gossipMessages: 2_000, invites: 200, joinRequests: 400, snapshotRequests: 1_000, replicateRequests: 150 }
/** A peer holds one join stream at a time (a second replaces or waits: join-protocol.ts); the replicate protocol serves two per peer. */
const joinConcurrency = 1
const replicateConcurrency = 2
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
let stranger: Libp2p | null = null
const directories: string[] = []

afterAll(async () => {
  await fuzzer?.stop()
  await client?.stop()
  await stranger?.stop()
  if (daemon?.alive === true) daemon.kill('SIGKILL')
  await daemon?.exited()
  for (const dir of directories) await rm(dir, { recursive: true, force: true })
})

const seedNote = `(fuzz seed ${fuzzSeed}: FABRIC_FUZZ_SEED=${fuzzSeed} replays it)`


interface TopicCounters { delivered: number; refused: number; stale: number }
const topicCounterNames = ['capacity', 'metrics', 'addresses'] as const
type TopicCounterName = (typeof topicCounterNames)[number]
/** Where the daemon's status counts each signed topic. */
const topicCounterName: Record<string, TopicCounterName> = { [capacityTopic]: 'capacity', [metricsTopic]: 'metrics', [addressesTopic]: 'addresses' }

interface Counters {
  peerDroppedMessages: number
  transport: { framesReceived: number; inboundRefused: number }
  capacity: TopicCounters
  metrics: TopicCounters
  addresses: TopicCounters
  client: { requests: number; refused: number; failed: number }
  admission: { join: { admitted: number; refused: Record<string, number> } }
  snapshots: {
    server: { requests: number; manifestsServed: number; chunksServed: number; notFound: number; refused: number; streamsRefused: number }
    replicate: { requests: number; refused: number; replicated: number }
  }
}
const countersOf = (status: StatusView): Counters => status.counters as unknown as Counters

describe('protocol fuzzing of a Shuttle process', () => {
  it('survives thousands of malformed, truncated, oversized and forged messages on every protocol and topic, its document unchanged', async () => {
    const random = new SeededRandom(fuzzSeed)
    const dataDir = await mkdtemp(join(tmpdir(), 'fabric-fuzz-'))
    directories.push(dataDir)
    const daemonId = (await loadOrCreateIdentity(dataDir)).nodeId
    const seededKey = () => generateKeyPairFromSeed('Ed25519', Uint8Array.from({ length: 32 }, () => random.int(0, 256)))
    const fuzzerKey = await seededKey()
    const victimKey = await seededKey()
    const adminKey = await seededKey()
    const strangerKey = await seededKey()
    const adminId = peerIdFromPrivateKey(adminKey).toString()
    daemon = new Daemon('target', ['--data', dataDir, '--voters', daemonId, '--admin', adminId, '--cpu-millis', '2000', '--memory-mib', '2048', '--no-sync-writes', '--log-level', 'error'])
    const target = daemon
    await Daemon.waitFor([target], () => target.status?.role === 'leader' && target.status.readyLeader, readyTimeoutMs, 'the daemon to lead its one-voter mesh')
    const address = multiaddr(target.address)

    client = await createClientHost({ privateKey: adminKey })
    const host = client
    const status = (): Promise<StatusView> => clientCall(host, address, { kind: 'status' })
    // The fuzzer is a node (consensus, gossip, snapshots and replication serve it as in an open mesh); the stranger has no role.
    const fuzzerId = peerIdFromPrivateKey(fuzzerKey).toString()
    await clientCall(host, address, { kind: 'admit', peerId: fuzzerId, role: 'node' })
    const { meshId } = await clientCall(host, address, { kind: 'mesh' })
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

    fuzzer = await createLibp2p({ privateKey: fuzzerKey, addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const attacker = fuzzer
    const ids: Identities = { daemon: daemonId, fuzzer: fuzzerId, victim: peerIdFromPrivateKey(victimKey).toString() }
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

    // 3. The signed topics (capacity, metrics, addresses), as raw gossipsub RPCs: forged authors, broken
    // and missing signatures, and payloads signed by the fuzzer itself that each topic's validator must
    // refuse; then an RPC frame past gossipsub's inbound limit.
    const byTopic = await Promise.all(fuzzedTopics.map(async (topic) => ({
      name: topicCounterName[topic.topic]!,
      messages: await gossipMessages(random.fork(`gossip-${topic.topic}`), ids, fuzzerKey, Math.round(counts.gossipMessages / fuzzedTopics.length), topic),
    })))
    const toValidatorOf = Object.fromEntries(byTopic.map(({ name, messages }) => [name, messages.filter((message) => message.refusedBy === 'validator').length])) as Record<TopicCounterName, number>
    const messages = random.fork('gossip-order').shuffle(byTopic.flatMap((topic) => topic.messages))
    const rpcs = gossipRpcFrames(random.fork('rpc'), messages, 20)
    const gossip = lpStream(await attacker.dialProtocol(address, gossipsubProtocol), { maxDataLength: 8 * 1024 * 1024 })
    for (const rpc of rpcs) await gossip.write(rpc)

    // 4. /fabric/join/1.0.0, one frame per stream: invites forged, altered after signing, expired, for
    // another mesh or bound to another peer, and malformed and oversized frames. Each is answered with
    // the refusal the daemon's own checks give (invite-token.ts, join-wire.ts); nobody is admitted.
    const tokens = await forgedInvites(random.fork('invites'), ids, { adminKey, forgerKey: victimKey, meshId, nowMs: Date.now() }, counts.invites)
    const joins = joinRequests(random.fork('join'), tokens, counts.joinRequests)
    const joinRefusals: Record<string, number> = {}
    const joinVerdicts: string[] = []
    const presentJoin = async (from: Libp2p, bytes: Uint8Array): Promise<void> => {
      const decoded = decodeJoinRequest(bytes)
      const token = decoded.ok ? decoded.value.token : undefined
      const verified = token !== undefined ? await verifyInvite(token, { adminId, meshId, peerId: from.peerId.toString(), nowMs: Date.now() }) : null
      if (verified?.ok === true) return void joinVerdicts.push(`the corpus drew an invite that admits: ${token}`)
      // A request without a token asks an open mesh for its genesis: this closed mesh says an invite is needed.
      const expected = !decoded.ok ? 'bad-request' : verified === null ? 'invite-needed' : verified.code
      joinRefusals[expected] = (joinRefusals[expected] ?? 0) + 1
      const stream = await from.dialProtocol(address, joinProtocol)
      const framed = lpStream(stream, { maxDataLength: joinWireLimits.maxAnswerBytes })
      void framed.write(bytes, { signal: AbortSignal.timeout(10_000) }).catch(() => {})
      let verdict: string
      try {
        const answer = decodeJoinAnswer((await framed.read({ signal: AbortSignal.timeout(15_000) })).subarray())
        verdict = !answer.ok ? `unreadable answer: ${answer.reason}` : answer.value.ok ? `admitted as ${answer.value.role}` : answer.value.code
      } catch (error) {
        verdict = bytes.length > joinWireLimits.maxRequestBytes ? 'bad-request' : `no answer: ${(error as Error).message}`
      }
      stream.abort(new Error('done'))
      if (verdict !== expected) joinVerdicts.push(`${expected} expected, got ${verdict}: ${Buffer.from(bytes.subarray(0, 120)).toString('utf8')}`)
    }
    let nextJoin = 0
    await Promise.all(Array.from({ length: joinConcurrency }, async () => {
      while (nextJoin < joins.length) await presentJoin(attacker, joins[nextJoin++]!)
    }))

    // A joiner that opens a stream and never sends: refused when the request read times out (meanwhile, 5 and 6).
    const silentJoin = (async () => {
      const stream = lpStream(await attacker.dialProtocol(address, joinProtocol), { maxDataLength: joinWireLimits.maxAnswerBytes })
      joinRefusals['bad-request'] = (joinRefusals['bad-request'] ?? 0) + 1
      return decodeJoinAnswer((await stream.read({ signal: AbortSignal.timeout(20_000) })).subarray())
    })()

    // 5. /fabric/snapshots/1.0.0, every request on one stream, answered in order: a malformed one with
    // a refused frame, a well-formed one with not-found (the daemon holds no snapshot); then one
    // frame past maxRequestBytes, which costs its stream.
    const snapshotFrames = snapshotRequests(random.fork('snapshots'), counts.snapshotRequests)
    const expectedSnapshotAnswers = snapshotFrames.flatMap((bytes): string[] => {
      const decoded = decodeSnapshotRequest(bytes)
      return !decoded.ok ? ['refused'] : decoded.value.kind === 'manifest' ? ['not-found'] : decoded.value.hashes.map(() => 'not-found')
    })
    const snapshotRefused = expectedSnapshotAnswers.filter((kind) => kind === 'refused').length
    const snapshots = lpStream(await attacker.dialProtocol(address, snapshotProtocol), { maxDataLength: maxChunkFrameBytes })
    const snapshotAnswers: string[] = []
    await Promise.all([
      (async () => { for (const frame of snapshotFrames) await snapshots.write(frame) })(),
      (async () => {
        while (snapshotAnswers.length < expectedSnapshotAnswers.length) {
          const decoded = decodeSnapshotResponseFrame((await snapshots.read({ signal: AbortSignal.timeout(15_000) })).subarray())
          snapshotAnswers.push(decoded.ok ? decoded.value.kind : `unreadable: ${decoded.reason}`)
        }
      })(),
    ])
    const firstWrongAnswer = snapshotAnswers.findIndex((kind, index) => kind !== expectedSnapshotAnswers[index])
    expect(firstWrongAnswer, `snapshot answer ${firstWrongAnswer}: ${snapshotAnswers[firstWrongAnswer]} instead of ${expectedSnapshotAnswers[firstWrongAnswer]} ${seedNote}`).toBe(-1)
    const oversizedSnapshot = lpStream(await attacker.dialProtocol(address, snapshotProtocol), { maxDataLength: maxChunkFrameBytes })
    await oversizedSnapshot.write(oversizedSnapshotRequest(), { signal: AbortSignal.timeout(10_000) }).catch(() => {})

    // 6. /fabric/snapshot-replicate/1.0.0, one request per stream: malformed, oversized, wrong CIDs, a
    // source other than the asker, or a snapshot to fetch from the fuzzer (which serves none). Every
    // one is refused and nothing is fetched.
    const replicates = replicateRequests(random.fork('replicate'), ids, counts.replicateRequests)
    const replicateVerdicts: string[] = []
    const replicate = async (from: Libp2p, bytes: Uint8Array): Promise<string> => {
      const stream = await from.dialProtocol(address, snapshotReplicateProtocol)
      const framed = lpStream(stream, { maxDataLength: maxReplicateMessageBytes })
      void framed.write(bytes, { signal: AbortSignal.timeout(10_000) }).catch(() => {})
      try {
        const decoded = decodeCbor((await framed.read({ signal: AbortSignal.timeout(15_000) })).subarray())
        if (!decoded.ok) throw new Error(`unreadable reply: ${decoded.reason}`)
        const reply = decoded.value as { ok: boolean; reason?: string }
        if (reply.ok !== false) replicateVerdicts.push(`accepted: ${Buffer.from(bytes.subarray(0, 120)).toString('utf8')}`)
        return reply.reason ?? ''
      } catch (error) {
        // The oversized frame costs its stream; anything else must be answered.
        if (bytes.length <= maxReplicateMessageBytes) replicateVerdicts.push(`no answer (${(error as Error).message}): ${Buffer.from(bytes.subarray(0, 120)).toString('utf8')}`)
        return 'no answer'
      } finally {
        stream.abort(new Error('done'))
      }
    }
    let nextReplicate = 0
    await Promise.all(Array.from({ length: replicateConcurrency }, async () => {
      while (nextReplicate < replicates.length) await replicate(attacker, replicates[nextReplicate++]!)
    }))

    // 7. A stranger with no role, let in only to join: its invites are refused like the fuzzer's, the
    // snapshot server drops its stream, replication refuses it, and streams it opens and drops at once
    // (or never writes to) leave the daemon as it was.
    stranger = await createLibp2p({ privateKey: strangerKey, addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const outsider = stranger
    for (const bytes of joins.slice(0, 4)) await presentJoin(outsider, bytes)
    const refusedStream = lpStream(await outsider.dialProtocol(address, snapshotProtocol), { maxDataLength: maxChunkFrameBytes })
    await refusedStream.write(snapshotFrames[1]!).catch(() => {})
    await expect(refusedStream.read({ signal: AbortSignal.timeout(15_000) }), `the snapshot server serves a stranger ${seedNote}`).rejects.not.toHaveProperty('name', 'TimeoutError')
    expect(await replicate(outsider, replicates.at(-1)!), seedNote).toMatch(/only mesh nodes/)
    for (let round = 0; round < 4; round++) {
      for (const protocol of [snapshotReplicateProtocol, snapshotProtocol, joinProtocol]) (await outsider.dialProtocol(address, protocol)).abort(new Error('gone'))
    }
    expect(await silentJoin, seedNote).toMatchObject({ ok: true, value: { ok: false, code: 'bad-request' } })
    expect(joinVerdicts, seedNote).toEqual([])
    expect(replicateVerdicts, seedNote).toEqual([])

    // Everything sent has been read: the daemon counted every consensus frame.
    const after = await poll(
      status,
      (answer) => {
        const counters = countersOf(answer)
        return (
          counters.transport.framesReceived - countersBefore.transport.framesReceived >= frames.length &&
          topicCounterNames.every((name) => counters[name].refused - countersBefore[name].refused >= toValidatorOf[name]) &&
          counters.snapshots.server.refused - countersBefore.snapshots.server.refused >= snapshotRefused + 1
        )
      },
      settleTimeoutMs,
      'the daemon to have read every frame',
    )
    await gossip.write(new Uint8Array(5 * 1024 * 1024), { signal: AbortSignal.timeout(10_000) }).catch(() => {})
    const fuzzMs = performance.now() - fuzzStarted
    console.log(
      `fuzzed in ${(fuzzMs / 1000).toFixed(1)} s: ${frames.length + 1} consensus frames (${expectedRefused + 1} malformed), ${requests.length + 2} client requests, ` +
        `${messages.length} gossip messages in ${rpcs.length + 1} RPCs, ${joins.length + 5} join requests ${JSON.stringify(joinRefusals)}, ${snapshotFrames.length + 2} snapshot requests ` +
        `(${snapshotRefused + 1} malformed), ${replicates.length + 1} replication requests ${seedNote}`,
    )
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
    // No forged or malformed gossip reached the core; each topic's validator refused every message the
    // fuzzer signed as itself.
    for (const name of topicCounterNames) {
      expect(counters[name].delivered - countersBefore[name].delivered, `${name} ${seedNote}`).toBe(0)
      expect(counters[name].refused - countersBefore[name].refused, `${name} ${seedNote}`).toBe(toValidatorOf[name])
    }
    // Nobody was admitted: every join was refused with the code the invite deserved.
    const joinCounters = (counters: Counters) => counters.admission.join
    expect(joinCounters(counters).admitted - joinCounters(countersBefore).admitted, seedNote).toBe(0)
    const refusedNow = Object.fromEntries(Object.entries(joinCounters(counters).refused).map(([code, count]) => [code, count - (joinCounters(countersBefore).refused[code] ?? 0)]).filter(([, count]) => count !== 0))
    // A join stream the stranger dropped at once is refused as bad-request when it reached the handler.
    expect((refusedNow['bad-request'] ?? 0) - (joinRefusals['bad-request'] ?? 0), seedNote).toBeLessThanOrEqual(4)
    expect({ ...refusedNow, 'bad-request': joinRefusals['bad-request'] }, seedNote).toEqual(joinRefusals)
    expect(refusedNow['bad-request'], seedNote).toBeGreaterThanOrEqual(joinRefusals['bad-request']!)
    // The snapshot server answered every request from the store (holding nothing), refused the
    // malformed and the oversized, and dropped the stranger's stream.
    const server = counters.snapshots.server
    const serverBefore = countersBefore.snapshots.server
    expect({
      requests: server.requests - serverBefore.requests,
      refused: server.refused - serverBefore.refused,
      notFound: server.notFound - serverBefore.notFound,
      served: server.manifestsServed + server.chunksServed - serverBefore.manifestsServed - serverBefore.chunksServed,
    }, seedNote).toEqual({ requests: snapshotFrames.length, refused: snapshotRefused + 1, notFound: expectedSnapshotAnswers.length - snapshotRefused, served: 0 })
    // The stranger's stream, plus those it dropped at once that reached the handler.
    expect(server.streamsRefused - serverBefore.streamsRefused, seedNote).toBeGreaterThanOrEqual(1)
    expect(server.streamsRefused - serverBefore.streamsRefused, seedNote).toBeLessThanOrEqual(5)
    // Replication refused every request (the dropped streams may not have reached the handler) and holds nothing new.
    const replicated = counters.snapshots.replicate
    const replicatedBefore = countersBefore.snapshots.replicate
    expect(replicated.replicated - replicatedBefore.replicated, seedNote).toBe(0)
    expect(replicated.refused - replicatedBefore.refused, seedNote).toBe(replicated.requests - replicatedBefore.requests)
    expect(replicated.requests - replicatedBefore.requests, seedNote).toBeGreaterThanOrEqual(replicates.length + 1)
    const failures = target.stderrTail.filter((line) => line.includes('client-request-failed')).join('\n')
    expect(counters.client.failed - countersBefore.client.failed, `no request hit a daemon bug ${seedNote}\n${failures}`).toBe(0)

    // And it still places: a new job is committed and runs.
    const { jobId: probe } = await clientCall(host, address, { kind: 'submit', spec: JSON.stringify({ name: 'probe', command: ['true'], resources: { cpu: '100m', memory: '16Mi' } }) })
    await poll(() => clientCall(host, address, { kind: 'job', jobId: probe }), (detail) => detail.state === 'finished', settleTimeoutMs, 'a job submitted after the fuzzing to finish')
  }, 240_000)
})
