// Admission commands, in the order an operator uses them: `fabric admin key` (the mesh's admin key),
// `fabric invite` (a token signed by it), `fabric join` (a client uses an invite), `fabric admit`
// and `fabric revoke` (an admin's signed requests), `fabric mesh` (the mesh id, admin and admitted
// peers). Flags are parsed here; tokens, joins and requests live in node/ and are loaded when a
// command runs.
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { invitableRoles, inviteLimits, type InvitableRole } from '../../node/invite-terms.ts'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { clientKeyPath, defaultDataDir } from '../data-dir.ts'
import { positiveInteger } from '../parse.ts'
import { renderTable } from '../table.ts'
import { UserError } from '../user-error.ts'

const collect = (value: string, previous: string[]): string[] => [...previous, ...value.split(',').map((part) => part.trim()).filter((part) => part !== '')]

export function registerAdmission(program: Command): void {
  const admin = program.command('admin').description('The mesh\'s admin key (it signs invites and admits or revokes peers)')
  admin
    .command('key')
    .description('Create an Ed25519 admin key file (never overwritten) and print its peer id: the ADMIN_ID that `fabric node start --admin` takes')
    .requiredOption('--out <file>', 'where to keep the key (mode 0600; keep it off the nodes)')
    .option('--json', 'print {"adminId", "keyFile", "created"} as JSON')
    .action(async (flags: { out: string; json?: boolean }) => {
      const existed = existsSync(flags.out)
      const key = await loadKey(flags.out, '--out', existed)
      if (flags.json === true) return console.log(JSON.stringify({ adminId: key.nodeId, keyFile: flags.out, created: !existed }))
      if (existed) console.error(`fabric: ${flags.out} exists already; it is kept (its admin id follows)`)
      console.log(key.nodeId)
    })

  addConnectOptions(
    program
      .command('invite')
      .description(
        'Print an invite token signed by the admin key. A node joins with `fabric node start --invite TOKEN`, ' +
          'a client with `fabric join TOKEN`. Each invite admits one peer. The mesh id and default bootstrap ' +
          'addresses come from the daemon asked (--node or --data), or from --mesh (the mesh id: no daemon is asked) and --bootstrap.',
      )
      .requiredOption('--admin-key <file>', 'the admin key file (from `fabric admin key`)')
      .option('--role <role>', `role the invite grants: ${invitableRoles.join(', ')}`, 'node')
      .option('--peer <peerId>', 'only this peer may use the invite (a node\'s `fabric node id`)')
      .option('--ttl <duration>', 'how long the invite is valid: 90s, 30m, 1h, 7d', '1h')
      .option('--bootstrap <multiaddr>', 'addresses the joiner dials (repeatable, or comma list); default: the asked daemon\'s and those of the voters it knows', collect, [])
      .option('--json', 'print {"token", "meshId", "role", "peer", "expiresAtMs", "bootstrap"} as JSON'),
  ).action(async (flags: ConnectFlags & { adminKey: string; role: string; peer?: string; ttl: string; bootstrap: string[]; json?: boolean }) => {
    const role = parseRole(flags.role)
    const ttlMs = parseDuration(flags.ttl)
    const key = await loadKey(flags.adminKey, '--admin-key', true)
    const { adminIdOf, createInvite } = await import('../../node/invite-token.ts')
    const adminId = adminIdOf(key.privateKey)
    let meshId = flags.mesh
    let bootstrap = flags.bootstrap
    if (meshId === undefined) {
      const mesh = await askDaemon({ ...flags, key: flags.adminKey }, { kind: 'mesh' })
      if (mesh.admin === null) throw new UserError('the mesh asked is open (it has no admin key): every peer may join it without an invite')
      if (mesh.admin !== adminId) throw new UserError(`${flags.adminKey} is the key of ${adminId}, but the mesh's admin is ${mesh.admin}`)
      meshId = mesh.meshId
      if (bootstrap.length === 0) bootstrap = mesh.addresses.slice(0, inviteLimits.maxBootstrapAddresses)
    }
    try {
      const nowMs = Date.now()
      const token = await createInvite({ adminKey: key.privateKey, meshId, role, ...(flags.peer !== undefined ? { peer: flags.peer } : {}), ttlMs, nowMs, bootstrap })
      if (flags.json === true) return console.log(JSON.stringify({ token, meshId, role, peer: flags.peer ?? null, expiresAtMs: nowMs + ttlMs, bootstrap }))
      console.log(token)
    } catch (error) {
      if (error instanceof RangeError) throw new UserError(error.message)
      throw error
    }
  })

  program
    .command('join')
    .description('Use an invite as a client: keep a client key in the data directory (DATA/client.key, or --key) and have its role admitted. Client commands with the same --data then use that key')
    .argument('<token>', 'the invite from `fabric invite --role submitter|viewer|admin`')
    .option('--data <dir>', 'data directory that keeps the client key', defaultDataDir())
    .option('--key <file>', 'client key file instead of DATA/client.key (created if missing)')
    .option('--bootstrap <multiaddr>', 'node to ask instead of the invite\'s addresses (repeatable)', collect, [])
    .option('--timeout <ms>', 'give up after this long', '60000')
    .option('--json', 'print {"meshId", "role", "clientId", "keyFile", "admittedBy", "via"} as JSON')
    .action(async (token: string, flags: { data: string; key?: string; bootstrap: string[]; timeout: string; json?: boolean }) => {
      const [{ decodeInvite }, { joinMesh, JoinFailedError, JoinRefusedError }] = await Promise.all([import('../../node/invite-token.ts'), import('../../node/join-client.ts')])
      const decoded = decodeInvite(token)
      if (!decoded.ok) throw new UserError(decoded.reason, 'copy the whole token that `fabric invite` printed')
      if (decoded.invite.role === 'node') throw new UserError('this invite admits a node, not a client', 'start the node with `fabric node start --invite TOKEN`')
      const keyFile = flags.key ?? clientKeyPath(flags.data)
      const key = await loadKey(keyFile, '--key', false)
      try {
        const joined = await joinMesh({ privateKey: key.privateKey, token, bootstrap: flags.bootstrap, timeoutMs: positiveInteger('--timeout', flags.timeout) })
        if (flags.json === true) return console.log(JSON.stringify({ meshId: joined.meshId, role: joined.role, clientId: key.nodeId, keyFile, admittedBy: joined.node, via: joined.via }))
        console.log(`joined mesh ${joined.meshId.slice(0, 16)}... as ${joined.role}: client ${key.nodeId} (key ${keyFile}), admitted by ${joined.node}`)
      } catch (error) {
        if (error instanceof JoinRefusedError) throw new UserError(`cannot join: ${error.message}`, 'ask the mesh\'s admin for a new invite')
        if (error instanceof JoinFailedError) throw new UserError(`cannot join: ${error.message}`, 'check --bootstrap (or the invite\'s addresses) and that those nodes run')
        throw error
      }
    })

  addConnectOptions(
    program
      .command('admit')
      .description('Admit a peer (node or client) with a role, or change its role: a request signed by an admin key')
      .argument('<peerId>', 'the peer to admit')
      .requiredOption('--role <role>', `${invitableRoles.join(', ')}`)
      .option('--admin-key <file>', 'the admin key file (default: --key, or DATA/client.key of an admitted admin)')
      .option('--json', 'print {"peerId", "role"} as JSON'),
  ).action(async (peerId: string, flags: ConnectFlags & { role: string; adminKey?: string; json?: boolean }) => {
    const role = parseRole(flags.role)
    const result = await askDaemon(withAdminKey(flags), { kind: 'admit', peerId, role })
    if (flags.json === true) return console.log(JSON.stringify(result))
    console.log(`${result.peerId} is admitted as ${result.role}`)
  })

  addConnectOptions(
    program
      .command('revoke')
      .description('Revoke a peer: every node refuses and disconnects it once the record reaches it. A request signed by an admin key')
      .argument('<peerId>', 'the peer to revoke')
      .option('--admin-key <file>', 'the admin key file (default: --key, or DATA/client.key of an admitted admin)')
      .option('--json', 'print {"peerId"} as JSON'),
  ).action(async (peerId: string, flags: ConnectFlags & { adminKey?: string; json?: boolean }) => {
    const result = await askDaemon(withAdminKey(flags), { kind: 'revoke', peerId })
    if (flags.json === true) return console.log(JSON.stringify(result))
    console.log(`${result.peerId} is revoked`)
  })

  addConnectOptions(
    program
      .command('mesh')
      .description('Show the mesh id, its admin key and the admitted peers')
      .option('--json', 'print the answer as JSON'),
  ).action(async (flags: ConnectFlags & { json?: boolean }) => {
    const mesh = await askDaemon(flags, { kind: 'mesh' })
    if (flags.json === true) return console.log(JSON.stringify(mesh, null, 2))
    console.log(`mesh ${mesh.meshId}`)
    console.log(mesh.admin === null ? 'open mesh (no admin key): every peer acts as admin' : `admin ${mesh.admin}`)
    console.log(`invites used: ${mesh.invitesUsed}`)
    if (mesh.admitted.length > 0) console.log(renderTable(['PEER', 'ROLE', 'BY', 'AT'], mesh.admitted.map((peer) => [peer.peerId, peer.role, peer.by, new Date(peer.atMs).toISOString()])))
    if (mesh.truncated) console.log('(more admitted peers than listed)')
  })
}

function withAdminKey<T extends ConnectFlags & { adminKey?: string }>(flags: T): T {
  return flags.adminKey === undefined ? flags : { ...flags, key: flags.adminKey }
}

async function loadKey(path: string, flag: string, mustExist: boolean) {
  if (mustExist && !existsSync(path)) throw new UserError(`${flag}: no key file at ${path}`, 'make the admin key once with `fabric admin key --out FILE`')
  const { IdentityFileError, loadOrCreateKeyFile } = await import('../../node/identity.ts')
  try {
    return await loadOrCreateKeyFile(path)
  } catch (error) {
    if (error instanceof IdentityFileError) throw new UserError(error.message)
    throw error
  }
}

function parseRole(text: string): InvitableRole {
  if (!(invitableRoles as readonly string[]).includes(text)) throw new UserError(`--role must be one of ${invitableRoles.join(', ')}, got "${text}"`)
  return text as InvitableRole
}

const durationUnitsMs: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "90s", "30m", "1h", "7d" or plain milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim())
  if (match === null) throw new UserError(`--ttl must look like 90s, 30m, 1h or 7d, got "${text}"`)
  const ms = Number(match[1]) * durationUnitsMs[match[2] ?? 'ms']!
  if (ms < 1 || ms > inviteLimits.maxTtlMs) throw new UserError(`--ttl must be between 1 ms and ${inviteLimits.maxTtlMs / 86_400_000} days, got "${text}"`)
  return ms
}
