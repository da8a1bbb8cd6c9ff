// Integration: a fresh node started the way deploy/fabric-shuttle.service starts it (its ExecStart
// flags, with loopback addresses), with --bootstrap and nothing else. Against an open mesh it fetches
// the mesh's genesis from the peer and takes part; against a closed mesh it exits with the status the
// unit's RestartPreventExitStatus names, saying an invite is needed, and the mesh admits nobody. A
// data directory with no mesh and no way to find one exits with that status too.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { clientCall } from './client-connection.ts'
import { loadOrCreateIdentity, loadOrCreateKeyFile } from './identity.ts'
import { Daemon, repositoryRoot, runCli } from './testing/daemon-process.ts'
import { poll } from './testing/poll.ts'
import { testResources } from './testing/test-mesh.ts'

const readyTimeoutMs = 15_000
const leaderTimeoutMs = 15_000
const resources = testResources()

const unitText = readFileSync(join(repositoryRoot, 'deploy/fabric-shuttle.service'), 'utf8')

/** The unit's `fabric node start` flags, as systemd would pass them, with this test's directory and addresses. */
function unitArgs(dataDir: string, bootstrap: string): string[] {
  const execStart = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unitText)?.[1]
  if (execStart === undefined) throw new Error('the unit has no ExecStart')
  const words = execStart.replace(/\\\n/g, ' ').split(/\s+/).filter((word) => word !== '')
  const args = words.slice(words.indexOf('start') + 1).map((word) => word.replace('${FABRIC_DATA}', dataDir))
  const set = (flag: string, value: string): void => {
    const at = args.indexOf(flag)
    if (at < 0) throw new Error(`the unit's ExecStart has no ${flag}`)
    args[at + 1] = value
  }
  set('--listen', '/ip4/127.0.0.1/tcp/0')
  set('--bootstrap', bootstrap)
  return [...args, '--no-sync-writes']
}

const preventedStatus = Number(/^RestartPreventExitStatus=(\d+)$/m.exec(unitText)?.[1])

describe('a fresh node started as the systemd unit starts it', () => {
  it('the unit keeps systemd from restarting a node that cannot start until its operator acts', async () => {
    expect(preventedStatus).toBe(78)
    const empty = await resources.tempDir('fabric-unit-nothing-')
    const nothing = await runCli(['node', 'start', '--data', empty])
    expect(nothing.code, nothing.stderr).toBe(preventedStatus)
    expect(nothing.stderr).toMatch(/--bootstrap ADDR to join an open one/)
  })

  it('joins an open mesh with --bootstrap alone: it fetches the genesis from the peer and takes part', async () => {
    const { daemons } = await resources.startMesh({ nodes: 2, namePrefix: 'open', dirPrefix: 'fabric-unit-open-', args: () => ['--no-sync-writes'], readyTimeoutMs, leaderTimeoutMs })
    const dataDir = await resources.tempDir('fabric-unit-fresh-')
    const fresh = resources.startDaemon('fresh', unitArgs(dataDir, daemons[0]!.address))
    await Daemon.waitFor([fresh], () => fresh.ready !== null || !fresh.alive, readyTimeoutMs, 'the fresh node ready')
    expect(fresh.alive, fresh.stderrTail.join('\n')).toBe(true)
    const client = await resources.clientHost()
    const meshOf = async (daemon: Daemon): Promise<string> => (await clientCall(client, multiaddr(daemon.address), { kind: 'mesh' })).meshId
    expect(await meshOf(fresh)).toBe(await meshOf(daemons[0]!))
    const listed = await poll(
      () => clientCall(client, multiaddr(daemons[1]!.address), { kind: 'nodes' }),
      (answer) => answer.nodes.some((node) => node.id === fresh.peerId && node.alive),
      leaderTimeoutMs,
      'the mesh to list the fresh node',
    )
    expect(listed.nodes.find((node) => node.id === fresh.peerId)).toMatchObject({ voter: false, provider: 'aws', region: 'us-east-1' })
    // A restart reads the mesh from its data directory: the peer is not asked again.
    fresh.kill('SIGTERM')
    await fresh.exited()
    const again = resources.startDaemon('fresh-again', unitArgs(dataDir, '/ip4/127.0.0.1/tcp/9/p2p/' + daemons[0]!.peerId))
    await Daemon.waitFor([again], () => again.ready !== null || !again.alive, readyTimeoutMs, 'the restarted node ready')
    expect(again.alive, again.stderrTail.join('\n')).toBe(true)
  }, 90_000)

  it('exits 78 from a closed mesh, saying an invite is needed, and the mesh admits nobody', async () => {
    const adminKeyFile = join(await resources.tempDir('fabric-unit-admin-'), 'admin.key')
    const created = await runCli(['admin', 'key', '--out', adminKeyFile, '--json'])
    expect(created.code, created.stderr).toBe(0)
    const { adminId } = JSON.parse(created.stdout) as { adminId: string; created: boolean }
    expect(JSON.parse(created.stdout)).toEqual({ adminId: (await loadOrCreateKeyFile(adminKeyFile)).nodeId, keyFile: adminKeyFile, created: true })
    const { daemons } = await resources.startMesh({ nodes: 1, namePrefix: 'closed', dirPrefix: 'fabric-unit-closed-', args: () => ['--admin', adminId, '--no-sync-writes'], readyTimeoutMs, leaderTimeoutMs })
    const uninvitedDir = await resources.tempDir('fabric-unit-uninvited-')
    const fresh = resources.startDaemon('uninvited', unitArgs(uninvitedDir, daemons[0]!.address))
    await fresh.exited()
    expect(fresh.exit?.code, fresh.stderrTail.join('\n')).toBe(preventedStatus)
    const said = fresh.stderrTail.join('\n')
    expect(said).toMatch(/this mesh admits peers by invite only/)
    expect(said).toMatch(/--invite TOKEN/)
    const admin = await resources.clientHost({ privateKey: (await loadOrCreateKeyFile(adminKeyFile)).privateKey })
    const mesh = await clientCall(admin, multiaddr(daemons[0]!.address), { kind: 'mesh' })
    const uninvited = (await loadOrCreateIdentity(uninvitedDir)).nodeId
    expect(mesh.admitted.map((peer) => peer.peerId)).not.toContain(uninvited)
    expect(said).toContain(`fabric invite --peer ${uninvited}`)
    expect(mesh.invitesUsed).toBe(0)

    // What the refusal said to do works: an invite for this node (--json), then the same start with --invite.
    const invite = await runCli(['invite', '--admin-key', adminKeyFile, '--peer', uninvited, '--node', daemons[0]!.address, '--json'])
    expect(invite.code, invite.stderr).toBe(0)
    const { token, peer, role } = JSON.parse(invite.stdout) as { token: string; peer: string; role: string }
    expect({ peer, role }).toEqual({ peer: uninvited, role: 'node' })
    const invited = resources.startDaemon('invited', [...unitArgs(uninvitedDir, daemons[0]!.address), '--invite', token])
    await Daemon.waitFor([invited], () => invited.ready !== null || !invited.alive, readyTimeoutMs, 'the invited node ready')
    expect(invited.alive, invited.stderrTail.join('\n')).toBe(true)
    expect((await clientCall(admin, multiaddr(daemons[0]!.address), { kind: 'mesh' })).admitted.map((admitted) => admitted.peerId)).toContain(uninvited)
  }, 90_000)
})
