// Zero trust between peers, on real daemons: a closed mesh of three Shuttle processes (voters, an admin
// key), attacked by an insider admitted as a node (never a voter) from a libp2p host of the test's
// own, over /fabric/consensus/1.0.0 as a node speaks it (testing/wire-insider.ts). The insider reads
// the cluster document from a daemon with the Automerge sync protocol, forges changes to its copy and
// sends them to every daemon as sync messages; it also sends election messages it has no right to.
// Strangers try the same and are not heard at all. Each attack class issue E found once:
//   1. admission records making a stranger (or the insider) admin: no grant, grants forged, a real
//      grant used for another peer or another role;
//   2. the insider writing itself into the committee (a proposal, the genesis map), a decision, a
//      commit marker; a committee proposal written under a voter's actor;
//   3. pre-votes, votes, heartbeats and the rest at a higher term, at the wire's cap (2^48) and past
//      it (2^53-1);
//   4. a cancel of another client's running job, its assignment to the insider, its runner's run
//      reported finished, its deletion, a drain of its runner; a false report of the insider's own;
//   5. one signed submission sent again: to the daemon that took it, to the two others, relayed by
//      the insider, and by a stranger holding the bytes;
// and last, every daemon's document holds none of the forged changes.
//   7. a job record the insider writes itself, which no client signed (a non-voter's job record must
//      carry its client's signed request: consensus/submission-proofs.ts);
//   8. a flood of replay keys of its own, with no submission beside them;
// For each: every daemon refuses (the reason in its log), the state it serves is unchanged, an invited
// peer joins and the admin admits a peer during the attack, every daemon stays up, the leader leads in
// the same term, and no daemon's RSS grows by 50 MiB. A control shows the forging works: the
// insider's own request counter is taken by every daemon.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeFrame } from '../codec/index.ts'
import { actorOf, asNodeId, asTerm, SyncPenalties, type ClusterDocument, type PeerMessage } from '../consensus/index.ts'
import { SeededRandom } from '../sim/index.ts'
import { clientCall } from './client-connection.ts'
import type { StatusView } from './client-wire.ts'
import { consensusProtocol } from './consensus-transport.ts'
import { agreedLeader, Daemon } from './daemon-process.ts'
import { loadOrCreateKeyFile } from './identity.ts'
import { createInvite, decodeInvite } from './invite-token.ts'
import { joinMesh } from './join-client.ts'
import { canonicalJson, signedBytes } from './request-signature.ts'
import { encodePeerMessage, maxTerm } from './wire.ts'
import { attackSeed, AttackReferee, closedWithin, openStream, peerIdOf, rawClientCall, seededKey, sendRaw, signedRequestBytes, sleep } from './testing/attack-kit.ts'
import { runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'
import { checkShards, documentShardOf, WireInsider, type Forged } from './testing/wire-insider.ts'

const { seed, seedNote } = attackSeed(20_260_302)
const readyTimeoutMs = 20_000
const settleTimeoutMs = 20_000
/** How long a daemon has to log its refusal of one forged message (it is refused in the step that reads it). */
const refusalTimeoutMs = 5_000
/** As in attacks.test.ts: three daemons, the attacker and vitest share two cores; 150 ms moved the term with no attack at all. */
const electionTimeoutMs = 500

const resources = testResources()
const text = (value: string): A.ImmutableString => new A.ImmutableString(value)

interface Counters {
  peerDroppedMessages: number
  transport: { inboundRefused: number; unadmittedRefused: number }
}
const countersOf = (status: StatusView): Counters => status.counters as unknown as Counters

/** A grant's id as the daemons derive it (node/admission-grant.ts): from its signature. */
const grantIdOf = (signature: Uint8Array): string => createHash('sha256').update(signature).digest('base64url').slice(0, 22)

describe('document and election attacks by an admitted node on a closed mesh of Shuttle processes', () => {
  const random = new SeededRandom(seed)
  let daemons: Daemon[] = []
  let leader: Daemon
  let term = 0
  let voters: string[] = []
  let admin: Libp2p
  let adminKey: PrivateKey
  let adminId = ''
  let meshId = ''
  let insiderToken = ''
  let insider: WireInsider
  let submitter: Libp2p
  let referee: AttackReferee
  const strangerKeys: PrivateKey[] = []
  /** Every forged change sent, and the few the daemons may take (the insider's own entries): the last test looks for the others in every document. */
  const forgedHashes = new Map<string, string>()
  const takenHashes = new Set<string>()
  /** What each daemon said of each forgery, for the report. */
  const outcomes: string[] = []

  const statusOf = (daemon: Daemon): Promise<StatusView> => clientCall(admin, multiaddr(daemon.address), { kind: 'status' })
  const sameHeads = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((head) => b.includes(head))

  /** The document every daemon holds once they agree (their heads equal), as the insider reads it from the leader. */
  async function currentDocument(): Promise<A.Doc<ClusterDocument>> {
    const statuses = await poll(() => Promise.all(daemons.map(statusOf)), (all) => all.every((status) => sameHeads(status.documentHeads, all[0]!.documentHeads)), settleTimeoutMs, 'the daemons to hold one document')
    return insider.fetchDocument(leader, statuses[0]!.documentHeads, term)
  }

  /** Sends a forgery to every daemon and checks each refuses it whole, for `reason`. */
  async function expectRefused(attack: string, what: string, forged: Forged, reason: RegExp): Promise<void> {
    for (const hash of forged.hashes) forgedHashes.set(hash, what)
    const marks = daemons.map((daemon) => daemon.events('change-refused').length)
    for (const daemon of daemons) await insider.send(daemon, insider.syncMessage(forged.data, term))
    for (const [index, daemon] of daemons.entries()) {
      await Daemon.waitFor([daemon], () => daemon.events('change-refused').length > marks[index]!, refusalTimeoutMs, `${daemon.name} to refuse ${what}`)
      const event = daemon.events('change-refused')[marks[index]!]!
      outcomes.push(`${attack} | ${what} | ${daemon.name}: ${String(event.reason)}`)
      expect(event.from, `${daemon.name} names the insider as the sender of ${what}`).toBe(insider.nodeId)
      expect(String(event.reason), `${daemon.name}'s reason for refusing ${what} ${seedNote}`).toMatch(reason)
    }
    await waitOutPenalty(forged.data)
  }

  /** A refused sender's syncs are dropped unread for a while (consensus/sync-penalties.ts): the insider waits before its next attack. */
  const waitOutPenalty = (refusedData: Uint8Array): Promise<void> => sleep(SyncPenalties.penaltyMs(refusedData.length) + 100)

  /** The shard a job's record is in (the document's own layout: consensus keeps shardOf to itself). */
  const shardHolding = (document: A.Doc<ClusterDocument>, jobId: string): string => {
    const shard = Object.keys(document.jobs).find((key) => document.jobs[key]![jobId] !== undefined)
    if (shard === undefined) throw new Error(`the insider's copy holds no job ${jobId}`)
    return shard
  }

  beforeAll(async () => {
    const insiderKey = await seededKey(random)
    const submitterKey = await seededKey(random)
    for (let index = 0; index < 3; index++) strangerKeys.push(await seededKey(random))
    const work = await resources.tempDir('fabric-document-attacks-')
    const adminKeyFile = join(work, 'admin.key')
    const created = await runCli(['admin', 'key', '--out', adminKeyFile])
    expect(created.code, created.stderr).toBe(0)
    adminId = created.stdout.trim()
    adminKey = (await loadOrCreateKeyFile(adminKeyFile)).privateKey
    // Debug logs: the core's drops of election messages from a non-voter are logged at debug (core-dropped-message).
    const mesh = await resources.startMesh({
      nodes: 3,
      namePrefix: 'v',
      dirPrefix: 'fabric-document-attacks-voter-',
      args: () => ['--admin', adminId, '--no-sync-writes', '--cpu-millis', '500', '--memory-mib', '512', '--election-timeout', String(electionTimeoutMs), '--log-level', 'debug'],
      readyTimeoutMs,
      leaderTimeoutMs: readyTimeoutMs,
    })
    daemons = mesh.daemons
    voters = [...mesh.ids].sort()
    leader = agreedLeader(daemons)!
    admin = await resources.clientHost({ privateKey: adminKey })
    meshId = (await clientCall(admin, multiaddr(leader.address), { kind: 'mesh' })).meshId
    // The insider: invited as a node, bound to its peer id, joined with its own key; then its host speaks consensus.
    const invited = await runCli(['invite', '--admin-key', adminKeyFile, '--role', 'node', '--peer', peerIdOf(insiderKey), '--node', leader.address])
    expect(invited.code, invited.stderr).toBe(0)
    insiderToken = invited.stdout.trim()
    expect((await joinMesh({ privateKey: insiderKey, token: insiderToken, bootstrap: [leader.address], timeoutMs: settleTimeoutMs })).role).toBe('node')
    insider = await WireInsider.start(await resources.clientHost({ privateKey: insiderKey }))
    // A client with the submitter role: its jobs are the victims of attacks 4 and 5.
    expect(await clientCall(admin, multiaddr(leader.address), { kind: 'admit', peerId: peerIdOf(submitterKey), role: 'submitter' })).toEqual({ peerId: peerIdOf(submitterKey), role: 'submitter' })
    submitter = await resources.clientHost({ privateKey: submitterKey })
    for (const daemon of daemons) {
      const knows = (answer: { admitted: { peerId: string; role: string }[] }, peerId: string, role: string): boolean => answer.admitted.some((peer) => peer.peerId === peerId && peer.role === role)
      await poll(() => clientCall(admin, multiaddr(daemon.address), { kind: 'mesh' }), (answer) => knows(answer, insider.nodeId, 'node') && knows(answer, peerIdOf(submitterKey), 'submitter'), settleTimeoutMs, `${daemon.name} to know the insider and the submitter`)
    }
    leader = (await poll(async () => agreedLeader(daemons), (agreed) => agreed !== null, settleTimeoutMs, 'one agreed leader'))!
    term = leader.status!.term
    referee = new AttackReferee({ daemons, leader, term, admin, adminKey, meshId, random, seedNote, maxRssGrowthMiB: 50, joinTimeoutMs: settleTimeoutMs })
  }, 90_000)

  afterAll(async () => {
    await insider?.stop()
    console.log(`what each daemon said of each forgery ${seedNote}\n  ${outcomes.join('\n  ')}`)
    if (referee !== undefined) console.log(`resident memory of the daemons over each attack ${seedNote}\n  ${referee.report()}`)
  })

  it('0. (control) takes the insider\'s own request counter on every daemon: the document read and the forging work over the wire', async () => {
    const document = await currentDocument()
    const actor = insider.actor
    const forged = insider.forge(document, (draft) => { draft.origins[actor] = 1 })
    for (const hash of forged.hashes) takenHashes.add(hash)
    const refusedBefore = daemons.map((daemon) => daemon.events('change-refused').length)
    for (const daemon of daemons) {
      const mark = insider.mark(daemon)
      await insider.send(daemon, insider.syncMessage(forged.data, term))
      // The daemon's next sync message acknowledges the insider's request 1 of this incarnation: the change entered its document.
      const ack = await insider.nextFrom(daemon, mark, (message) => message.kind === 'sync' && message.ack.origin === actor && message.ack.originSeq === 1, refusalTimeoutMs)
      expect(ack.kind).toBe('sync')
    }
    expect(daemons.map((daemon) => daemon.events('change-refused').length), 'nothing refused').toEqual(refusedBefore)
  })

  it('1. refuses admission records making a stranger or the insider admin, with no grant, forged grants or a real grant misused', async () => {
    const stranger = strangerKeys[0]!
    const strangerId = peerIdOf(stranger)
    const nowMs = Date.now()
    // A real grant: the insider's own invite (the admin signed it: role node, bound to the insider).
    const real = decodeInvite(insiderToken)
    if (!real.ok) throw new Error(real.reason)
    const realId = grantIdOf(real.signature)
    // An invite the stranger signed itself, and an admit request the stranger signed naming the admin as its client.
    const selfSigned = await createInvite({ adminKey: stranger, meshId, role: 'admin', peer: strangerId, ttlMs: 600_000, nowMs })
    const selfSignedDecoded = decodeInvite(selfSigned)
    if (!selfSignedDecoded.ok) throw new Error(selfSignedDecoded.reason)
    const unsigned = { kind: 'admit', v: 1, requestId: 'forged01', client: adminId, peerId: strangerId, role: 'admin', signedAtMs: nowMs }
    const forgedSignature = await stranger.sign(signedBytes(unsigned))
    const forgedRequest = canonicalJson({ ...unsigned, signature: Buffer.from(forgedSignature).toString('base64url') })
    const strangerHost = await resources.clientHost({ privateKey: stranger })
    /** Per daemon: whether the stranger got a consensus stream at all (the gate may refuse its connection first), and its close. */
    const strangerStreams = new Map<Daemon, Promise<number> | null>()
    await referee.underAttack('1. admission records', {
      start: async () => {
        const document = await currentDocument()
        const record = (peer: string, id: string, grant: string, role = 'admin', atMs = nowMs) => (draft: ClusterDocument): void => {
          draft.admitted[`${peer}/${id}`] = { role: text(role), by: text(insider.nodeId), atMs, grant: text(grant) }
        }
        const attack = '1. admission'
        const unsignedGrant = /without a grant the admin key signed/
        await expectRefused(attack, 'a stranger made admin with no grant', insider.forge(document, record(strangerId, 'abcdefgh', 'trust me')), unsignedGrant)
        await expectRefused(attack, 'the same, as a whole forged document', insider.forge(document, record(strangerId, 'abcdefgi', 'trust me'), { asDocument: true }), unsignedGrant)
        await expectRefused(attack, 'a stranger made admin by an invite it signed itself', insider.forge(document, record(strangerId, grantIdOf(selfSignedDecoded.signature), selfSigned, 'admin', selfSignedDecoded.invite.issuedAtMs)), unsignedGrant)
        await expectRefused(attack, 'a stranger made admin by an admit request it signed as the admin', insider.forge(document, record(strangerId, grantIdOf(forgedSignature), forgedRequest)), unsignedGrant)
        await expectRefused(attack, 'a stranger made admin by the insider\'s real invite', insider.forge(document, record(strangerId, realId, insiderToken, 'admin', real.invite.issuedAtMs)), /used a grant for/)
        await expectRefused(attack, 'the insider made admin by its own real invite', insider.forge(document, record(insider.nodeId, realId, insiderToken, 'admin', real.invite.issuedAtMs)), /does not say what its grant says/)
        // The stranger itself cannot even speak consensus: its stream is closed unread.
        const message = insider.syncMessage(insider.forge(document, record(strangerId, 'abcdefgj', 'trust me')).data, term)
        for (const daemon of daemons) {
          const stream = await openStream(strangerHost, multiaddr(daemon.address), consensusProtocol).catch(() => null)
          strangerStreams.set(daemon, stream === null ? null : closedWithin(stream, 5_000))
          if (stream !== null) void sendRaw(stream, encodeFrame(encodePeerMessage(message)).subarray())
        }
      },
      finish: async () => {
        await Promise.all(strangerStreams.values())
        for (const daemon of daemons) {
          const address = multiaddr(daemon.address)
          const mesh = await clientCall(admin, address, { kind: 'mesh' })
          expect(mesh.admitted.some((peer) => peer.peerId === strangerId), `${daemon.name} lists no record of the stranger`).toBe(false)
          expect(mesh.admitted.find((peer) => peer.peerId === insider.nodeId)?.role, `${daemon.name}: the insider is still a node`).toBe('node')
          expect(mesh.admin).toBe(adminId)
          // The stranger acts with no role: it may neither submit nor admit.
          await expect(clientCall(strangerHost, address, { kind: 'submit', spec: JSON.stringify({ name: 'stranger', command: ['true'], resources: { cpu: 0.1, memory: '16Mi' } }) }), `${daemon.name} refuses the stranger's submission`).rejects.toMatchObject({ code: 'unauthorized' })
          await expect(clientCall(strangerHost, address, { kind: 'admit', peerId: strangerId, role: 'admin' }), `${daemon.name} refuses the stranger's admit`).rejects.toMatchObject({ code: 'unauthorized' })
          if (strangerStreams.get(daemon) !== null) expect(countersOf(await statusOf(daemon)).transport.unadmittedRefused, `${daemon.name} refused the stranger's consensus stream`).toBeGreaterThanOrEqual(1)
        }
      },
    })
  })

  it('2. refuses the insider writing itself into the committee, a decision or a commit marker, and holds back a proposal written as a voter', async () => {
    const spoofedVoter = voters.find((voter) => voter !== leader.peerId)!
    let spoofedHash = ''
    await referee.underAttack('2. committee', {
      start: async () => {
        const document = await currentDocument()
        const attack = '2. committee'
        const next = term + 1
        const withInsider = JSON.stringify([...voters, insider.nodeId].sort())
        await expectRefused(attack, 'a committee proposal naming the insider', insider.forge(document, (draft) => { draft.committee.changes[`${next}.1`] = { voters: text(withInsider), term: next, seq: 1 } }), /only a voter may write committee\.changes/)
        await expectRefused(attack, 'the insider in the genesis committee', insider.forge(document, (draft) => { draft.committee.voters[insider.nodeId] = true }), /genesis committee/)
        await expectRefused(attack, 'a decision of a later term', insider.forge(document, (draft) => { draft.leaderLog[String(next)] = 1 }), /only a voter may write leaderLog/)
        await expectRefused(attack, 'a commit marker', insider.forge(document, (draft) => { draft.commits[String(next)] = 1 }), /only a voter may write commits/)
        // Written under a voter's actor: the daemons hold it back (it is not the insider's to send) and refuse nothing.
        const refusedBefore = daemons.map((daemon) => daemon.events('change-refused').length)
        const spoofed = insider.forge(document, (draft) => { draft.committee.changes[`${next}.2`] = { voters: text(withInsider), term: next, seq: 2 } }, { actor: actorOf(asNodeId(spoofedVoter), 'ff03') })
        spoofedHash = spoofed.hashes[0]!
        for (const hash of spoofed.hashes) forgedHashes.set(hash, `a committee proposal written as ${spoofedVoter}`)
        for (const daemon of daemons) await insider.send(daemon, insider.syncMessage(spoofed.data, term))
        await sleep(500)
        expect(daemons.map((daemon) => daemon.events('change-refused').length), 'a change the insider did not write is held back, not refused').toEqual(refusedBefore)
      },
      finish: async () => {
        for (const daemon of daemons) {
          const status = await statusOf(daemon)
          expect([...status.voters].sort(), `${daemon.name}'s voters are the genesis committee`).toEqual(voters)
          expect(status.documentHeads.includes(spoofedHash), `${daemon.name} did not take the proposal written as a voter`).toBe(false)
        }
        outcomes.push(`2. committee | a committee proposal written as voter ${spoofedVoter} | every daemon: held back (no refusal, not in the document)`)
      },
    })
  })

  it('3. ignores pre-votes, votes, heartbeats and the rest from the insider at a higher term and at 2^48, and refuses 2^53-1 at the wire', async () => {
    const higher = term + 1_000
    const kinds = (at: number): PeerMessage[] => [
      { kind: 'pre-vote', term: asTerm(at), committee: '0.0' },
      { kind: 'vote', term: asTerm(at), committee: '0.0' },
      { kind: 'pre-vote-response', term: asTerm(at), granted: true },
      { kind: 'vote-response', term: asTerm(at), granted: true },
      { kind: 'heartbeat', term: asTerm(at), round: 1, commitSeq: 0 },
      { kind: 'barrier', term: asTerm(at) },
      { kind: 'award', term: asTerm(at), jobs: [] },
      { kind: 'lease-grant', term: asTerm(at), round: 1, durationMs: 3_600_000, heads: [] },
    ]
    const heard = [...kinds(higher), ...kinds(maxTerm)]
    const pastCap = [...kinds(2 ** 53 - 1), ...kinds(maxTerm + 1)]
    const before = new Map<Daemon, Counters>()
    const stranger = await resources.clientHost({ privateKey: strangerKeys[1]! })
    const strangerStreams = new Map<Daemon, Promise<number> | null>()
    await referee.underAttack('3. elections', {
      start: async () => {
        for (const daemon of daemons) before.set(daemon, countersOf(await statusOf(daemon)))
        for (const daemon of daemons) {
          for (const message of heard) await insider.send(daemon, message)
          // A sync message (any node may send one) at the cap, naming the insider the leader.
          await insider.send(daemon, insider.syncMessage(null, maxTerm, insider.nodeId))
          // Past the cap: encoded by hand (the schema refuses them), as the attacker would.
          for (const message of pastCap) await insider.send(daemon, message)
          const stream = await openStream(stranger, multiaddr(daemon.address), consensusProtocol).catch(() => null)
          strangerStreams.set(daemon, stream === null ? null : closedWithin(stream, 5_000))
          if (stream !== null) void sendRaw(stream, encodeFrame(encodePeerMessage({ kind: 'vote', term: asTerm(higher), committee: '0.0' })).subarray())
        }
        // Two election timeouts for any of it to move a term.
        await sleep(2 * electionTimeoutMs)
      },
      finish: async () => {
        await Promise.all(strangerStreams.values())
        for (const daemon of daemons) {
          const status = await statusOf(daemon)
          const now = countersOf(status)
          const then = before.get(daemon)!
          expect(status.term, `${daemon.name}'s term`).toBe(term)
          expect(status.leaderId, `${daemon.name}'s leader`).toBe(leader.peerId)
          expect(now.peerDroppedMessages - then.peerDroppedMessages, `${daemon.name}'s core dropped each message under the cap`).toBeGreaterThanOrEqual(heard.length)
          expect(now.transport.inboundRefused - then.transport.inboundRefused, `${daemon.name} refused each message past the cap at the wire`).toBe(pastCap.length)
          expect(now.transport.unadmittedRefused - then.transport.unadmittedRefused, `${daemon.name} refused the stranger's stream`).toBe(strangerStreams.get(daemon) === null ? 0 : 1)
          const drops = daemon.events('core-dropped-message').filter((line) => line.from === insider.nodeId && line.message !== 'sync')
          const reasons = new Set(drops.map((line) => `${String(line.message)}: ${String(line.reason)}`))
          for (const message of heard) expect(reasons.has(`${message.kind}: sender is not a voter`), `${daemon.name} logged the drop of ${message.kind}`).toBe(true)
          const refused = daemon.events('message-refused').filter((line) => line.from === insider.nodeId)
          expect(refused.length, `${daemon.name} logged its wire refusals`).toBeGreaterThanOrEqual(1)
          outcomes.push(`3. elections | ${heard.length} election messages at ${higher} and 2^48 | ${daemon.name}: dropped by the core (${[...reasons].join('; ')})`)
          outcomes.push(`3. elections | ${pastCap.length} messages at 2^53-1 and 2^48+1 | ${daemon.name}: refused at the wire (${String(refused[0]!.reason)})`)
        }
      },
    })
  })

  it('4. refuses a cancel of another client\'s running job, its assignment to the insider, a false end of its run, its deletion and a drain of its runner', async () => {
    const spec = JSON.stringify({ name: 'victim', command: ['sleep', '600'], resources: { cpu: 0.1, memory: '16Mi' } })
    const { jobId } = await clientCall(submitter, multiaddr(leader.address), { kind: 'submit', spec })
    const placed = await poll(() => clientCall(admin, multiaddr(leader.address), { kind: 'job', jobId }), (job) => job.state === 'assigned' && job.node !== null, settleTimeoutMs, 'the victim to be placed')
    const runner = placed.node!
    const runnerDaemon = daemons.find((daemon) => daemon.peerId === runner)!
    // Its runner reports a run when it ends: while it runs, the runner's own runtime says so.
    const running = await poll(() => clientCall(admin, multiaddr(runnerDaemon.address), { kind: 'job', jobId }), (job) => job.local?.state === 'running' && typeof job.local.pid === 'number', settleTimeoutMs, 'the victim to run', { describe: () => Daemon.describe(daemons) })
    const localBefore = running.local!
    let ownRunHash = ''
    await referee.underAttack('4. jobs', {
      start: async () => {
        const document = await currentDocument()
        const shard = shardHolding(document, jobId)
        const victim = (draft: ClusterDocument) => draft.jobs[shard]![jobId]!
        const attack = '4. jobs'
        const nowMs = Date.now()
        await expectRefused(attack, 'a cancel of the victim in the insider\'s name', insider.forge(document, (draft) => { victim(draft).cancelled![insider.nodeId] = nowMs }), /only a voter may write jobs\..*\.cancelled/)
        await expectRefused(attack, 'a cancel of the victim in its runner\'s name', insider.forge(document, (draft) => { victim(draft).cancelled![runner] = nowMs }), /it is .*'s entry/)
        await expectRefused(attack, 'an assignment of the victim to the insider', insider.forge(document, (draft) => { victim(draft).assignments[`${term}.999999`] = { node: text(insider.nodeId), term, seq: 999_999 } }), /only a voter may write jobs\..*\.assignments/)
        await expectRefused(attack, 'the victim\'s run reported finished by its runner', insider.forge(document, (draft) => { victim(draft).runs[runner] = { state: text('finished'), term, seq: 1, exitCode: 0, atMs: nowMs } }), /it is .*'s entry/)
        await expectRefused(attack, 'the deletion of the victim', insider.forge(document, (draft) => { delete draft.jobs[shard]![jobId] }), /only a voter may write jobs/)
        await expectRefused(attack, 'a drain of the victim\'s runner', insider.forge(document, (draft) => { draft.draining[runner] = nowMs }), /only a voter may write draining/)
        // Its own entry: a false report that it ran the victim to the end. Taken (a node may lie about itself) and ignored.
        const ownRun = insider.forge(document, (draft) => { victim(draft).runs[insider.nodeId] = { state: text('finished'), term, seq: 1, exitCode: 0, atMs: nowMs } })
        ownRunHash = ownRun.hashes[0]!
        for (const hash of ownRun.hashes) takenHashes.add(hash)
        for (const daemon of daemons) await insider.send(daemon, insider.syncMessage(ownRun.data, term))
      },
      finish: async () => {
        for (const daemon of daemons) {
          // Every daemon took the insider's own report, and the victim still runs where it ran.
          const job = await poll(() => clientCall(admin, multiaddr(daemon.address), { kind: 'job', jobId }), (answer) => answer.runs.some((run) => run.node === insider.nodeId), settleTimeoutMs, `${daemon.name} to take the insider's report of its own`)
          expect(job.state, `${daemon.name}: the victim is still assigned`).toBe('assigned')
          expect(job.node, `${daemon.name}: on its runner`).toBe(runner)
          expect(job.assignments.map((assignment) => assignment.node), `${daemon.name}: never assigned elsewhere`).toEqual(running.assignments.map((assignment) => assignment.node))
          expect(job.runs.filter((run) => run.node !== insider.nodeId), `${daemon.name}: no run of it ended`).toEqual([])
          expect(job.finishedAtMs, `${daemon.name}: not finished`).toBeNull()
          const nodes = await clientCall(admin, multiaddr(daemon.address), { kind: 'nodes' })
          expect(nodes.nodes.find((node) => node.id === runner)?.draining ?? false, `${daemon.name}: the runner is not drained`).toBe(false)
        }
        const localAfter = (await clientCall(admin, multiaddr(runnerDaemon.address), { kind: 'job', jobId })).local
        expect(localAfter?.pid, 'the same process runs it').toBe(localBefore.pid)
        expect(localAfter?.state, 'and it still runs').toBe('running')
        outcomes.push(`4. jobs | the insider's own run of the victim reported finished | every daemon: taken (${ownRunHash.slice(0, 12)}), ignored: the victim still runs on ${runner}`)
      },
    })
    await clientCall(submitter, multiaddr(leader.address), { kind: 'cancel', jobId })
  })

  it('5. takes a signed submission once: the same bytes to the daemon that took them, to the two others, relayed by the insider or sent by a stranger, are refused', async () => {
    const { meshId } = await clientCall(submitter, multiaddr(leader.address), { kind: 'mesh' })
    const request = await signedRequestBytes(submitter, { kind: 'submit', spec: JSON.stringify({ name: 'replayed', command: ['sleep', '30'], resources: { cpu: 0.1, memory: '16Mi' } }) }, 'replay01', meshId)
    const followers = daemons.filter((daemon) => daemon !== leader)
    const answers: { to: string; answer: Awaited<ReturnType<typeof rawClientCall>> }[] = []
    let jobId = ''
    await referee.underAttack('5. replay', {
      start: async () => {
        const first = await rawClientCall(submitter, multiaddr(leader.address), request)
        expect(first, 'the leader takes the submission').toMatchObject({ type: 'result' })
        jobId = (first as { value: { jobId: string } }).value.jobId
        // At once, as an attacker holding the bytes would: each follower, the leader again, and relayed by the insider.
        for (const follower of followers) answers.push({ to: follower.name, answer: await rawClientCall(submitter, multiaddr(follower.address), request) })
        answers.push({ to: `${leader.name} (again)`, answer: await rawClientCall(submitter, multiaddr(leader.address), request) })
        const relay = await signedRequestBytes(insider.host, { kind: 'relay', request }, 'relay001', meshId)
        answers.push({ to: `${followers[0]!.name} (relayed by the insider)`, answer: await rawClientCall(insider.host, multiaddr(followers[0]!.address), relay) })
        // A stranger holding the bytes: the request names a client the connection is not.
        const stranger = await resources.clientHost({ privateKey: strangerKeys[2]! })
        answers.push({ to: `${followers[1]!.name} (sent by a stranger)`, answer: await rawClientCall(stranger, multiaddr(followers[1]!.address), request) })
      },
      finish: async () => {
        for (const { to, answer } of answers) {
          outcomes.push(`5. replay | the same signed submit to ${to} | ${answer.type === 'error' ? `${answer.code}: ${answer.message}` : JSON.stringify(answer)}`)
          expect(answer.type, `${to} refuses the replay ${seedNote}`).toBe('error')
        }
        const codes = answers.map(({ answer }) => (answer.type === 'error' ? answer.code : 'taken'))
        expect(codes.slice(0, followers.length), 'the followers refuse it as a request the mesh took').toEqual(followers.map(() => 'refused'))
        expect(codes[followers.length], 'the leader refuses it as a signature it saw').toBe('unauthorized')
        expect(codes[followers.length + 1], 'a submission is not relayed').toBe('bad-request')
        expect(codes[followers.length + 2], 'a stranger may not send another client\'s request').toBe('unauthorized')
        for (const daemon of daemons) {
          const listed = await poll(() => clientCall(admin, multiaddr(daemon.address), { kind: 'jobs' }), (answer) => answer.jobs.some((job) => job.id === jobId), settleTimeoutMs, `${daemon.name} to list the job`)
          expect(listed.jobs.filter((job) => job.name === 'replayed').map((job) => job.id), `${daemon.name} lists one job`).toEqual([jobId])
        }
      },
    })
    await clientCall(submitter, multiaddr(leader.address), { kind: 'cancel', jobId })
  })

  it('6. holds none of the forged changes in any daemon\'s document (read over the wire)', async () => {
    expect(forgedHashes.size, 'the forgeries of tests 1, 2 and 4').toBeGreaterThanOrEqual(17)
    for (const daemon of daemons) {
      const document = await insider.fetchDocument(daemon, (await statusOf(daemon)).documentHeads, term)
      for (const hash of takenHashes) expect(A.hasHeads(document, [hash]), `${daemon.name} holds the insider's own change ${hash}`).toBe(true)
      const found = [...forgedHashes].filter(([hash]) => A.hasHeads(document, [hash])).map(([, what]) => what)
      expect(found, `forged changes in ${daemon.name}'s document ${seedNote}`).toEqual([])
      expect(Object.keys(document.committee.voters).sort(), `${daemon.name}'s genesis committee`).toEqual(voters)
      // The leaders' own proposals (a new leader's first decision affirms the committee) name the voters only.
      for (const [stamp, proposal] of Object.entries(document.committee.changes)) expect(String(proposal.voters), `${daemon.name}'s committee proposal ${stamp}`).not.toContain(insider.nodeId)
      expect(Object.keys(document.admitted).filter((key) => key.startsWith(`${peerIdOf(strangerKeys[0]!)}/`)), `${daemon.name}'s admission records of the stranger`).toEqual([])
    }
  })
  it('7. runs no job record the insider writes itself, which no client signed', async () => {
    // A record a client submitted, whose normalized spec the forgery copies.
    const { jobId: templateId } = await clientCall(submitter, multiaddr(leader.address), { kind: 'submit', spec: JSON.stringify({ name: 'template', command: ['sleep', '30'], resources: { cpu: 0.1, memory: '16Mi' } }) })
    const document = await currentDocument()
    checkShards(document)
    const template = document.jobs[documentShardOf(templateId)]![templateId]!
    const spec = { ...(JSON.parse(String(template.spec)) as Record<string, unknown>), name: 'unsigned', command: ['sh', '-c', 'echo written by the insider; sleep 60'] }
    const id = 'unsigned-000000000001'
    const forged = insider.forge(document, (draft) => {
      draft.jobs[documentShardOf(id)]![id] = {
        ...(JSON.parse(JSON.stringify(template)) as ClusterDocument['jobs'][string][string]),
        id: text(id), job: text(id), name: text('unsigned'), spec: text(JSON.stringify(spec)), origin: text(insider.nodeId), originSeq: 1, submittedAtMs: Date.now(),
        assignments: {}, runs: {}, unplaceable: {}, cancelled: {}, snapshots: {}, migrate: {}, attempts: {},
      }
    })
    for (const hash of forged.hashes) forgedHashes.set(hash, 'a job record no client signed')
    const refusedBefore = daemons.map((daemon) => daemon.events('change-refused').length)
    for (const daemon of daemons) await insider.send(daemon, insider.syncMessage(forged.data, term))
    await sleep(5_000)
    const refused = daemons.map((daemon, index) => daemon.events('change-refused').slice(refusedBefore[index]!).map((event) => String(event.reason)))
    const started = daemons.filter((daemon) => daemon.events('start-job').some((event) => event.jobId === id)).map((daemon) => daemon.name)
    outcomes.push(`7. | a job record the insider wrote itself | refusals ${JSON.stringify(refused)}; started on ${JSON.stringify(started)}`)
    expect(started, `a job no client signed runs on ${started.join(', ')} ${seedNote}`).toEqual([])
    for (const [index, reasons] of refused.entries()) expect(reasons.some((reason) => /signed request|without a request its client signed/.test(reason)), `${daemons[index]!.name}'s refusals: ${JSON.stringify(reasons)}`).toBe(true)
  })

  // Each batch is a 10,000-key change that costs a daemon about 120 ms to decode and screen, each
  // written on the same document (so each is judged, none waits for another). A refused sender's
  // syncs are dropped unread for as long as its refused bytes take at 64 KiB/s (about 5 s here), so
  // the flood costs a daemon one screening every few seconds. Before that penalty, ten in a row moved
  // the term (2 to 9 in one run). The batches are forged before the attack: on this 2-core machine
  // the attacker's own forging (about 1 s of CPU a batch) would otherwise starve the daemons, which a
  // remote attacker cannot do.
  // Open finding: run alone, the term holds (1 before and after); inside the whole suite, with other
  // test files on the same two cores, the one screening per daemon still moved it (1 to 3): a single
  // 10,000-operation change stalls a daemon longer than a 150 ms election timeout allows. The term is
  // checked only with FABRIC_ATTACK_OPEN=1 until a change's cost is bounded before it is decoded.
  const termOpen = process.env.FABRIC_ATTACK_OPEN === '1'
  it(`8. refuses replay keys a node writes without a submission: 100,000 of them do not grow a daemon by 50 MiB${termOpen ? ' nor move the term' : ' [the term under load: an open finding, FABRIC_ATTACK_OPEN=1 checks it]'}`, async () => {
    const batches = 10
    const keysPerBatch = 10_000
    const document = await currentDocument()
    const forgedBatches = Array.from({ length: batches }, (_, batch) => insider.forge(document, (draft) => {
      for (let index = 0; index < keysPerBatch; index++) {
        const key = `flood${batch}x${index}`.padEnd(22, 'q')
        draft.requests[documentShardOf(key)]![key] = Number.MAX_SAFE_INTEGER
      }
    }))
    const bytes = forgedBatches.reduce((sum, forged) => sum + forged.data.length, 0)
    const refusedBefore = daemons.map((daemon) => daemon.events('change-refused').length)
    const closedByDaemons: string[] = []
    await referee.underAttack('8. replay-key flood', {
      start: async () => {
        for (const forged of forgedBatches) {
          // As fast as the daemons take it: each batch once every daemon answered the previous one, or
          // 2 s passed (a penalized sender's syncs go unanswered).
          const marks = daemons.map((daemon) => insider.mark(daemon))
          // A daemon may close the insider's connection under the flood (a starved machine's timeouts):
          // that only stops the attack on it; the next batch opens a new stream.
          for (const daemon of daemons) await insider.send(daemon, insider.syncMessage(forged.data, term)).catch((error: Error) => void closedByDaemons.push(`${daemon.name}: ${error.name}`))
          await Promise.all(daemons.map((daemon, index) => insider.nextFrom(daemon, marks[index]!, (message) => message.kind === 'sync', 2_000).catch(() => null)))
        }
      },
      finish: async () => {
        const terms = daemons.map((daemon) => `${daemon.name} term ${daemon.status?.term} (${daemon.status?.role})`)
        outcomes.push(`8. | ${batches * keysPerBatch} replay keys of its own, ${(bytes / 1024 / 1024).toFixed(1)} MiB of sync data per daemon | refusals ${daemons.map((daemon) => daemon.events('change-refused').filter((event) => /requests/.test(String(event.reason))).length).join(', ')}; ${terms.join(', ')}${closedByDaemons.length > 0 ? `; connections closed by daemons: ${closedByDaemons.join(', ')}` : ''}`)
      },
    }, { sameTerm: termOpen })
    for (const [index, daemon] of daemons.entries()) {
      const reasons = daemon.events('change-refused').slice(refusedBefore[index]!).map((event) => String(event.reason))
      expect(reasons.some((reason) => /request key .* without the submission it guards/.test(reason)), `${daemon.name}'s refusals: ${JSON.stringify(reasons.slice(0, 3))}`).toBe(true)
    }
  }, 180_000)
})
