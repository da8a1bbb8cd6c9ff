// Integration: admission on a mesh of real daemons (separate processes, libp2p over loopback). Three
// voters start with an admin key. A fourth node joins with an invite (`fabric invite` then `fabric
// node start --invite`) and takes part: the only job that fits anywhere runs on it, and its output
// comes back through a voter. A node of the same genesis without an invite is refused: its consensus
// streams are closed, it gets no document, and its connection is cut when its join window ends.
// Clients: one without a role is refused with a clear error; a viewer reads but cannot submit; a
// submitter submits; unsigned and replayed requests are refused; forged invites (another key,
// expired, another mesh) and a used one are refused. Revocation cuts the joined node and a client off.
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { clientProtocol, decodeClientResponse } from './client-wire.ts'
import { loadOrCreateIdentity, loadOrCreateKeyFile } from './identity.ts'
import { createInvite } from './invite-token.ts'
import { JoinRefusedError, joinMesh } from './join-client.ts'
import { signClientRequest } from './request-signature.ts'
import { Daemon, runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { encodeCbor } from '../codec/index.ts'
import { testResources } from './testing/test-mesh.ts'

const readyTimeoutMs = 15_000
const electionTimeoutMs = 15_000
const jobTimeoutMs = 20_000
/** The gate's join window (10 s) and its sweep, with room for a loaded machine. */
const joinWindowTimeoutMs = 20_000
const hourMs = 3_600_000

const resources = testResources()
const temporary = resources.tempDir

describe('admission on a mesh of Shuttle processes', () => {
  it('admits by invite, refuses the uninvited, checks client roles, and revokes', async () => {
    const work = await temporary('fabric-admission-')
    const adminKeyFile = join(work, 'admin.key')
    const created = await runCli(['admin', 'key', '--out', adminKeyFile])
    expect(created.code, created.stderr).toBe(0)
    const adminKey: PrivateKey = (await loadOrCreateKeyFile(adminKeyFile)).privateKey
    const adminId = created.stdout.trim()
    expect((await loadOrCreateKeyFile(adminKeyFile)).nodeId).toBe(adminId)

    const { daemons: voters, ids } = await resources.startMesh({
      nodes: 3,
      namePrefix: 'v',
      dirPrefix: 'fabric-admission-voter-',
      // 100 millicores each: a 500m job fits only on the node that joins below.
      args: () => ['--admin', adminId, '--cpu-millis', '100', '--no-sync-writes'],
      readyTimeoutMs,
      leaderTimeoutMs: electionTimeoutMs,
    })
    const entry = voters[0]!
    const admin = await resources.clientHost({ privateKey: adminKey })
    const ask = (daemon: Daemon) => multiaddr(daemon.address)

    // A node of the same genesis (same voters, same admin) that has no invite: it dials the mesh.
    const strangerDir = await temporary('fabric-admission-stranger-')
    const stranger = resources.startDaemon('stranger', ['--data', strangerDir, '--voters', ids.join(','), '--admin', adminId, '--no-sync-writes', '--bootstrap', entry.address])

    // 1. A fourth node joins with an invite bound to its peer id; bootstrap comes from the invite.
    const joinerDir = await temporary('fabric-admission-joiner-')
    const joinerId = (await loadOrCreateIdentity(joinerDir)).nodeId
    const invited = await runCli(['invite', '--admin-key', adminKeyFile, '--role', 'node', '--peer', joinerId, '--node', entry.address])
    expect(invited.code, invited.stderr).toBe(0)
    const joiner = resources.startDaemon('joiner', ['--data', joinerDir, '--invite', invited.stdout.trim(), '--cpu-millis', '2000', '--no-sync-writes'])
    await Daemon.waitFor([joiner], () => joiner.ready !== null || !joiner.alive, readyTimeoutMs * 2, 'the joiner ready')
    expect(joiner.alive, Daemon.describe([joiner])).toBe(true)

    // 2. Clients. No role: refused, saying so.
    const roleless = await runCli(['jobs', '--node', entry.address])
    expect(roleless.code).toBe(1)
    expect(roleless.stderr).toMatch(/unauthorized: client 12D3KooW\w+ is not admitted to this mesh/)
    expect(roleless.stderr).toMatch(/fabric join TOKEN/)

    // A viewer (invite from the CLI, joined with the CLI) reads but cannot submit.
    const viewerDir = await temporary('fabric-admission-viewer-')
    const viewerInvite = await runCli(['invite', '--admin-key', adminKeyFile, '--role', 'viewer', '--node', entry.address])
    expect(viewerInvite.code, viewerInvite.stderr).toBe(0)
    const viewerJoin = await runCli(['join', viewerInvite.stdout.trim(), '--data', viewerDir])
    expect(viewerJoin.code, viewerJoin.stderr).toBe(0)
    expect(viewerJoin.stdout).toMatch(/ as viewer: client 12D3KooW/)
    const viewerSubmit = await runCli(['submit', '--node', entry.address, '--data', viewerDir, '--cmd', 'true'])
    expect(viewerSubmit.code).toBe(1)
    expect(viewerSubmit.stderr).toMatch(/is a viewer; submit needs the submitter role or higher/)
    const viewerJobs = await runCli(['jobs', '--json', '--node', entry.address, '--data', viewerDir])
    expect(viewerJobs.code, viewerJobs.stderr).toBe(0)

    // The same invite again, from another client: used.
    const reused = await runCli(['join', viewerInvite.stdout.trim(), '--data', await temporary('fabric-admission-reuse-')])
    expect(reused.code).toBe(1)
    expect(reused.stderr).toMatch(/refused the invite: this invite was used already/)

    // Forged invites: another key, expired, another mesh. Each is refused by the node asked.
    const meshId = (await clientCall(admin, ask(entry), { kind: 'mesh' })).meshId
    const forger = await generateKeyPair('Ed25519')
    const forged = [
      { code: 'bad-signature', token: await createInvite({ adminKey: forger, meshId, role: 'admin', ttlMs: hourMs, nowMs: Date.now() }), message: /not signed by this mesh's admin key/ },
      { code: 'expired', token: await createInvite({ adminKey: adminKey, meshId, role: 'admin', ttlMs: hourMs, nowMs: Date.now() - 2 * hourMs }), message: /expired at/ },
      { code: 'wrong-mesh', token: await createInvite({ adminKey: adminKey, meshId: 'f'.repeat(64), role: 'admin', ttlMs: hourMs, nowMs: Date.now() }), message: /for mesh ffff/ },
    ]
    for (const attempt of forged) {
      const error = await joinMesh({ privateKey: await generateKeyPair('Ed25519'), token: attempt.token, bootstrap: [entry.address], timeoutMs: 10_000 }).catch((caught: unknown) => caught)
      expect(error, attempt.code).toBeInstanceOf(JoinRefusedError)
      expect((error as JoinRefusedError).code).toBe(attempt.code)
      expect((error as JoinRefusedError).message).toMatch(attempt.message)
    }

    // A submitter (invite made in process, joined with the CLI) submits; only the joined node has room.
    const submitterDir = await temporary('fabric-admission-submitter-')
    const submitterInvite = await createInvite({ adminKey, meshId, role: 'submitter', ttlMs: hourMs, nowMs: Date.now(), bootstrap: [voters[1]!.address] })
    const submitterJoin = await runCli(['join', submitterInvite, '--data', submitterDir])
    expect(submitterJoin.code, submitterJoin.stderr).toBe(0)
    const submitted = await runCli(['submit', '--node', voters[2]!.address, '--data', submitterDir, '--cpu', '500m', '--memory', '64Mi', '--cmd', "sh -c 'echo joined node ran me'"])
    expect(submitted.code, submitted.stderr).toBe(0)
    const jobId = submitted.stdout.trim()
    const finished = await poll(() => clientCall(admin, ask(entry), { kind: 'job', jobId }), (detail) => detail.state === 'finished', jobTimeoutMs, 'the job to finish')
    expect(finished.runs).toEqual([expect.objectContaining({ node: joinerId, state: 'finished', exitCode: 0 })])
    // Its output comes back through a voter, which asks the joined node with its own (node) key.
    const logs = await runCli(['logs', jobId, '--node', entry.address, '--data', viewerDir])
    expect(logs.stdout, logs.stderr).toBe('joined node ran me\n')
    const listed = (await clientCall(admin, ask(entry), { kind: 'nodes' })).nodes
    expect(listed.find((node) => node.id === joinerId)).toMatchObject({ alive: true, voter: false })

    // 3. Requests must be signed, and a signed request is accepted once.
    const raw = async (payload: Record<string, unknown>): Promise<unknown> => {
      const stream = await admin.dialProtocol(ask(entry), clientProtocol)
      const framed = lpStream(stream, { maxDataLength: 1024 * 1024 })
      await framed.write(encodeCbor(payload))
      const decoded = decodeClientResponse((await framed.read()).subarray())
      await stream.close()
      return decoded.ok ? decoded.value : decoded.reason
    }
    const unsigned = { v: 1, requestId: 'raw', client: admin.peerId.toString(), mesh: meshId, kind: 'leader', signedAtMs: Date.now() }
    expect(await raw(unsigned)).toMatchObject({ type: 'error', code: 'bad-request', message: expect.stringMatching(/signature/) })
    const signed = { ...unsigned, signature: await signClientRequest(admin, unsigned) }
    expect(await raw(signed)).toMatchObject({ type: 'result' })
    expect(await raw(signed)).toMatchObject({ type: 'error', code: 'unauthorized', message: expect.stringMatching(/replay/) })
    expect(await raw({ ...signed, requestId: 'changed' })).toMatchObject({ type: 'error', code: 'unauthorized', message: expect.stringMatching(/does not verify/) })
    // Signed for another mesh: refused, naming this one (a client that pinned no mesh learns it so).
    const elsewhere = { ...unsigned, requestId: 'other-mesh', mesh: 'f'.repeat(64) }
    expect(await raw({ ...elsewhere, signature: await signClientRequest(admin, elsewhere) })).toEqual({ type: 'error', code: 'wrong-mesh', mesh: meshId, message: expect.stringMatching(/signed for mesh ffffffffffffffff\.\.\., this daemon belongs to mesh/) })

    // 4. The uninvited node: its consensus streams are refused, it is cut off when its window ends,
    // and it holds no document but its own genesis and itself.
    await Daemon.waitFor([entry], () => entry.logged('pending-joiner-expired', { peerId: stranger.peerId }), joinWindowTimeoutMs, 'the stranger\'s join window to end')
    expect(entry.logged('message-refused', { from: stranger.peerId, reason: 'the peer is not admitted as a node of this mesh' })).toBe(true)
    await Daemon.waitFor([entry], () => entry.logged('connection-refused', { peerId: stranger.peerId, reason: 'cooling down after a join window it did not use' }), joinWindowTimeoutMs, 'the stranger\'s redial to be refused')
    // The stranger may be dropping and redialing its connections just now: ask until it answers.
    const strangerView = (await poll(() => clientCall(admin, ask(stranger), { kind: 'nodes' }), () => true, jobTimeoutMs, 'the stranger to answer')).nodes.map((node) => node.id)
    expect(strangerView).toEqual([stranger.peerId])
    const meshView = (await clientCall(admin, ask(entry), { kind: 'nodes' })).nodes.map((node) => node.id)
    expect(meshView.sort()).toEqual([...ids, joinerId].sort())

    // 5. Revocation: the joined node is disconnected and refused, and stops being alive; a revoked
    // client is refused.
    const revoked = await runCli(['revoke', joinerId, '--admin-key', adminKeyFile, '--node', entry.address])
    expect(revoked.code, revoked.stderr).toBe(0)
    await Daemon.waitFor(voters, () => voters.some((daemon) => daemon.logged('revoked-peer-disconnected', { peerId: joinerId })), jobTimeoutMs, 'the revoked node to be disconnected')
    await poll(() => clientCall(admin, ask(entry), { kind: 'nodes' }), ({ nodes }) => nodes.find((node) => node.id === joinerId)?.alive === false, jobTimeoutMs, 'the revoked node to go silent')
    const submitterId = (await loadOrCreateKeyFile(join(submitterDir, 'client.key'))).nodeId
    expect(await clientCall(admin, ask(entry), { kind: 'revoke', peerId: submitterId })).toEqual({ peerId: submitterId, role: 'revoked' })
    const afterRevoke = await runCli(['submit', '--node', entry.address, '--data', submitterDir, '--cmd', 'true'])
    expect(afterRevoke.code).toBe(1)
    const mesh = await clientCall(admin, ask(entry), { kind: 'mesh' })
    expect(mesh).toMatchObject({ admin: adminId, invitesUsed: 3 })
    expect(mesh.admitted.map((peer) => [peer.peerId, peer.role]).sort()).toEqual(
      [[joinerId, 'revoked'], [submitterId, 'revoked'], [(await loadOrCreateKeyFile(join(viewerDir, 'client.key'))).nodeId, 'viewer']].sort(),
    )
  }, 120_000)
})
